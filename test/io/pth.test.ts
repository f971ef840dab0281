import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { CheckpointError } from '../../src/errors.js';
import { openTorchCheckpoint, type TorchCheckpoint } from '../../src/io/pth.js';
import { buildZip, bytesOf, PickleBuilder, writeTorchFile } from '../helpers/torch-files.js';

/** Asserts `fn` throws a CheckpointError with exactly `message`. */
function expectCheckpointError(fn: () => unknown, message: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a CheckpointError').to.be.instanceOf(CheckpointError);
  expect((caught as Error).message).to.equal(message);
}

describe('io/pth: hand-made torch.save files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pth-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  // storage 0: float32 0..11; storage 1: float16 [1, -2, 0.5, 65504, 2^-24]; storage 2: bfloat16 [1, -3, 0.25, 3.140625]
  const storages = {
    '0': bytesOf(Float32Array.from({ length: 12 }, (_, i) => i)),
    '1': bytesOf(Uint16Array.from([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001])),
    '2': bytesOf(Uint16Array.from([0x3f80, 0xc040, 0x3e80, 0x4049])),
  };

  /**
   * Python equivalent (what torch.save would pickle at protocol 2):
   *   s = torch.arange(12.)
   *   {'model': {'module.enc': {'w': s.view(3, 4).t(), 'v': s.as_strided((2, 2), (1, 4), 1), 'h': half[1:4]},
   *              'module.bf': bf16.view(2, 2)},
   *    'step': 7, 'args': argparse.Namespace(lr=0.1)}
   */
  function nestedPickle(): Uint8Array {
    const p = new PickleBuilder().proto(2).emptyDict().mark();
    p.str('model').emptyDict().mark();
    p.str('module.enc').emptyDict().mark();
    p.str('w').tensor('FloatStorage', '0', 12, 0, [4, 3], [1, 4]);
    p.str('v').tensor('FloatStorage', '0', 12, 1, [2, 2], [1, 4]);
    p.str('h').tensor('HalfStorage', '1', 5, 1, [3], [1]);
    p.setitems();
    p.str('module.bf').tensor('BFloat16Storage', '2', 4, 0, [2, 2], [2, 1]);
    p.setitems();
    p.str('step').int(7);
    p.str('args').global('argparse', 'Namespace').emptyTuple().raw(0x81).emptyDict().str('lr').float(0.1).setitem().build();
    return p.setitems().stop().bytes();
  }

  let nested: string;
  before(() => {
    nested = join(dir, 'nested.pth');
    writeTorchFile(nested, { folder: 'nested', pickle: nestedPickle(), storages });
  });

  function checkNested(ckpt: TorchCheckpoint): void {
    expect(ckpt.keys()).to.deep.equal(['enc.w', 'enc.v', 'enc.h', 'bf']);
    expect(ckpt.info('enc.w')).to.deep.equal({ shape: [4, 3], dtype: 'float32' });
    expect(Array.from(ckpt.readFloat32('enc.w'))).to.deep.equal([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    expect(Array.from(ckpt.readFloat32('enc.v'))).to.deep.equal([1, 5, 2, 6]);
    expect(ckpt.info('enc.h')).to.deep.equal({ shape: [3], dtype: 'float16' });
    expect(Array.from(ckpt.readFloat32('enc.h'))).to.deep.equal([-2, 0.5, 65504]);
    expect(ckpt.info('bf')).to.deep.equal({ shape: [2, 2], dtype: 'bfloat16' });
    expect(Array.from(ckpt.readFloat32('bf'))).to.deep.equal([1, -3, 0.25, 3.140625]);
    expect(ckpt.metadata).to.deep.equal({ step: 7, args: { $class: 'argparse.Namespace', args: [], state: { lr: 0.1 } } });
  }

  it('reads nested {model: …} dicts, strips module., converts float16/bfloat16, gathers offset and transposed views', () => {
    const ckpt = openTorchCheckpoint(nested);
    try {
      checkNested(ckpt);
      // raw bytes of a transposed view are gathered into row-major order, in the stored dtype
      expect(Array.from(new Float32Array(ckpt.readRaw('enc.w').slice().buffer))).to.deep.equal([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
      expect(Array.from(new Uint16Array(ckpt.readRaw('enc.h').slice().buffer))).to.deep.equal([0xc000, 0x3800, 0x7bff]);
    } finally {
      ckpt.close();
    }
  });

  it('reads the same file written as zip64', () => {
    const f = join(dir, 'nested64.pth');
    writeTorchFile(f, { folder: 'nested64', pickle: nestedPickle(), storages, zip64: true });
    const ckpt = openTorchCheckpoint(f);
    try {
      checkNested(ckpt);
    } finally {
      ckpt.close();
    }
  });

  it('takes a bare state_dict as is and keeps keys without a common module. prefix', () => {
    const f = join(dir, 'bare.pth');
    const p = new PickleBuilder().proto(2).global('collections', 'OrderedDict').emptyTuple().reduce().mark();
    p.str('module.a').tensor('FloatStorage', '0', 12, 0, [12], [1]);
    p.str('b').tensor('FloatStorage', '0', 12, 11, [1], [1]);
    writeTorchFile(f, { pickle: p.setitems().stop().bytes(), storages });
    const ckpt = openTorchCheckpoint(f);
    expect(ckpt.keys()).to.deep.equal(['module.a', 'b']);
    expect(Array.from(ckpt.readFloat32('b'))).to.deep.equal([11]);
    expect(ckpt.metadata).to.deep.equal({});
    expectCheckpointError(() => ckpt.info('c'), `${f}: no tensor named 'c' (2 tensors in the file)`);
    ckpt.close();
  });

  it('rejects a truncated zip', () => {
    const f = join(dir, 'truncated.pth');
    writeFileSync(f, readFileSync(nested).subarray(0, 300));
    expectCheckpointError(() => openTorchCheckpoint(f), `${f}: truncated or corrupt zip archive (no end-of-central-directory record in the last 300 bytes)`);
  });

  it('refuses a pickle that names os.system, without running it', () => {
    const f = join(dir, 'evil.pth');
    const p = new PickleBuilder().proto(2).global('os', 'system').str('touch /tmp/pwned').tuple1().reduce().stop();
    writeTorchFile(f, { pickle: p.bytes(), storages: {} });
    expectCheckpointError(() => openTorchCheckpoint(f),
      `${f}: archive/data.pkl: refusing to load: the pickle references the Python global 'os.system', which is not an allowed checkpoint type (allowed: collections.OrderedDict, torch._utils._rebuild_tensor_v2/_rebuild_parameter, torch.*Storage, and inert argparse/numpy scalar types)`);
  });

  it('rejects a missing storage record', () => {
    const f = join(dir, 'missing.pth');
    const p = new PickleBuilder().proto(2).emptyDict().str('x').tensor('HalfStorage', '1', 5, 0, [5], [1]).setitem().stop();
    writeTorchFile(f, { pickle: p.bytes(), storages: { '0': storages['0'] } });
    expectCheckpointError(() => openTorchCheckpoint(f), `${f}: missing storage record 'archive/data/1' referenced by data.pkl`);
  });

  it('rejects a storage record shorter than its element count', () => {
    const f = join(dir, 'short.pth');
    const p = new PickleBuilder().proto(2).emptyDict().str('x').tensor('FloatStorage', '0', 20, 0, [20], [1]).setitem().stop();
    writeTorchFile(f, { pickle: p.bytes(), storages: { '0': storages['0'] } });
    expectCheckpointError(() => openTorchCheckpoint(f), `${f}: storage record 'archive/data/0' holds 48 bytes but 20 float32 elements need 80`);
  });

  it('rejects a view that reaches past its storage', () => {
    const f = join(dir, 'overrun.pth');
    const p = new PickleBuilder().proto(2).emptyDict().str('x').tensor('FloatStorage', '0', 12, 4, [3, 3], [3, 1]).setitem().stop();
    writeTorchFile(f, { pickle: p.bytes(), storages: { '0': storages['0'] } });
    const ckpt = openTorchCheckpoint(f);
    expectCheckpointError(() => ckpt.readFloat32('x'), `${f}: tensor 'x' (offset 4, shape (3, 3), stride (3, 1)) reaches past its storage of 12 elements`);
    ckpt.close();
  });

  it('rejects a compressed storage entry when it is read', () => {
    const f = join(dir, 'deflated.pth');
    const p = new PickleBuilder().proto(2).emptyDict().str('x').tensor('FloatStorage', '0', 12, 0, [12], [1]).setitem().stop();
    writeFileSync(f, buildZip([
      { name: 'a/data.pkl', data: p.bytes() },
      { name: 'a/data/0', data: storages['0'], method: 8 },
    ]));
    const ckpt = openTorchCheckpoint(f);
    expectCheckpointError(() => ckpt.readFloat32('x'), `${f}: zip entry 'a/data/0' is compressed (method 8); torch.save writes stored (uncompressed) entries, so re-save the checkpoint with torch.save`);
    ckpt.close();
  });

  it('rejects a TorchScript archive and a zip that is not a checkpoint', () => {
    const ts = join(dir, 'scripted.pt');
    writeTorchFile(ts, {
      pickle: new PickleBuilder().proto(2).none().stop().bytes(), storages: {},
      extra: [{ name: 'archive/constants.pkl', data: new Uint8Array([0x80, 2, 0x29, 0x2e]) }, { name: 'archive/code/__torch__.py', data: Buffer.from('x') }],
    });
    expectCheckpointError(() => openTorchCheckpoint(ts), `${ts}: this is a TorchScript archive (torch.jit.save), not a torch.save state_dict checkpoint; save model.state_dict() with torch.save instead`);
    const plain = join(dir, 'plain.zip');
    writeFileSync(plain, buildZip([{ name: 'readme.txt', data: Buffer.from('hello') }]));
    expectCheckpointError(() => openTorchCheckpoint(plain), `${plain}: zip archive without a <dir>/data.pkl record: not a torch.save checkpoint`);
  });

  it('rejects big-endian storages', () => {
    const f = join(dir, 'bigendian.pth');
    const p = new PickleBuilder().proto(2).emptyDict().str('x').tensor('FloatStorage', '0', 12, 0, [12], [1]).setitem().stop();
    writeFileSync(f, buildZip([
      { name: 'be/data.pkl', data: p.bytes() },
      { name: 'be/byteorder', data: Buffer.from('big') },
      { name: 'be/data/0', data: storages['0'] },
    ]));
    expectCheckpointError(() => openTorchCheckpoint(f), `${f}: storages were written big-endian (be/byteorder); only little-endian checkpoints are supported`);
  });

  it('rejects a pickle whose top level is not a dict', () => {
    const f = join(dir, 'list.pth');
    writeTorchFile(f, { pickle: new PickleBuilder().proto(2).emptyList().stop().bytes(), storages: {} });
    expectCheckpointError(() => openTorchCheckpoint(f), `${f}: the checkpoint holds a list/tuple of 0 items, expected a dict of tensors (a state_dict)`);
  });
});
