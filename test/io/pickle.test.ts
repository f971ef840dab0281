import { expect } from 'chai';
import { PickleObject, unpickle, type PickleGlobal } from '../../src/io/pickle.js';
import { PickleBuilder } from '../helpers/torch-files.js';
import { errorOf } from '../helpers/errors.js';

const noGlobals = { source: 'test.pkl', resolveGlobal: (): PickleGlobal | undefined => undefined };

describe('io/pickle', () => {
  it('reads protocol 4 opcodes: FRAME, MEMOIZE, SHORT_BINUNICODE, lists, longs, floats', () => {
    // pickle.dumps({'a': [1, -1, 2**64, 0.25, None, True], 'b': ('x', 'x')}, protocol=4), memo references included
    const p = new PickleBuilder().emptyDict().memoize().mark();
    p.shortStr('a').memoize().emptyList().memoize().mark();
    p.int(1).long1([0xff]).long1([0, 0, 0, 0, 0, 0, 0, 0, 1]).float(0.25).none().bool(true).appends();
    p.shortStr('b').memoize().shortStr('x').memoize().get(4).tuple2().memoize();
    const body = p.setitems().stop().bytes();
    const framed = new PickleBuilder().proto(4).frame(body.length).raw(...body).bytes();
    const value = unpickle(framed, noGlobals);
    expect(value).to.deep.equal(new Map<unknown, unknown>([['a', [1, -1, 2n ** 64n, 0.25, null, true]], ['b', ['x', 'x']]]));
  });

  it('builds allow-listed classes as inert objects through NEWOBJ and BUILD', () => {
    const seen: string[] = [];
    const resolveGlobal = (module: string, name: string): PickleGlobal => {
      seen.push(`${module}.${name}`);
      return { kind: 'global', qualifiedName: `${module}.${name}`, call: (args) => new PickleObject(`${module}.${name}`, args) };
    };
    const p = new PickleBuilder().proto(2).global('argparse', 'Namespace').emptyTuple().raw(0x81);
    p.emptyDict().str('lr').float(1e-4).setitem().build().stop();
    const obj = unpickle(p.bytes(), { source: 't', resolveGlobal });
    expect(seen).to.deep.equal(['argparse.Namespace']);
    expect(obj).to.be.instanceOf(PickleObject);
    expect((obj as PickleObject).className).to.equal('argparse.Namespace');
    expect((obj as PickleObject).state).to.deep.equal(new Map([['lr', 1e-4]]));
  });

  it('refuses globals the resolver does not allow, by name', () => {
    const p = new PickleBuilder().proto(4).shortStr('builtins').shortStr('eval').raw(0x93).shortStr('1+1').tuple1().reduce().stop();
    expect(errorOf(() => unpickle(p.bytes(), { ...noGlobals, refusalHint: 'allowed: nothing' })))
      .to.equal("test.pkl: refusing to load: the pickle references the Python global 'builtins.eval', which is not an allowed checkpoint type (allowed: nothing)");
  });

  it('names unsupported opcodes, truncation and malformed streams', () => {
    expect(errorOf(() => unpickle(Uint8Array.from([0x80, 2, 0x49, 0x31, 0x0a, 0x2e]), noGlobals)))
      .to.equal('test.pkl: unsupported pickle opcode 0x49 at offset 2 (only binary protocols 2–5 are read)');
    expect(errorOf(() => unpickle(new PickleBuilder().proto(2).str('abcdef').bytes().subarray(0, 8), noGlobals)))
      .to.equal('test.pkl: truncated pickle (needs 6 more bytes at offset 7, has 1)');
    expect(errorOf(() => unpickle(Uint8Array.from([0x80, 2, 0x68, 5, 0x2e]), noGlobals)))
      .to.equal('test.pkl: malformed pickle (memo 5 read before it was written, offset 2)');
    expect(errorOf(() => unpickle(Uint8Array.from([0x80, 2, 0x2e]), noGlobals)))
      .to.equal('test.pkl: malformed pickle (stack underflow at offset 3)');
  });
});
