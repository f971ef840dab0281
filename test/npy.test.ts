import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { encodeNpy, readNpy, readNpyFloat32, writeNpy } from '../src/io/npy.js';
import { fixture } from './helpers/fixtures.js';

describe('io/npy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'npy-'));

  it('round-trips float32 and uint16 arrays', () => {
    const f = join(dir, 'a.npy');
    writeNpy(f, new Float32Array([1.5, -2, 3.25, 0, 7, 8]), [2, 3]);
    const a = readNpy(f);
    expect(a.dtype).to.equal('float32');
    expect(a.shape).to.deep.equal([2, 3]);
    expect(Array.from(a.data as Float32Array)).to.deep.equal([1.5, -2, 3.25, 0, 7, 8]);
    const g = join(dir, 'b.npy');
    writeNpy(g, new Uint16Array([0, 65535, 1000]), [3]);
    expect(Array.from(readNpy(g).data as Uint16Array)).to.deep.equal([0, 65535, 1000]);
  });

  it('pads the header to 64 bytes like numpy', () => {
    const buf = encodeNpy(new Float32Array(4), [4]);
    expect((10 + buf.readUInt16LE(8)) % 64).to.equal(0);
  });

  it('reads a numpy-written fixture', function () {
    const { shape, data } = readNpyFloat32(fixture(this, 'inputs', 'clip_126x224.npy'));
    expect(shape).to.deep.equal([3, 3, 126, 224]);
    expect(data.length).to.equal(3 * 3 * 126 * 224);
    expect(Number.isFinite(data[12345]!)).to.equal(true);
  });

  it('names the file in errors', () => {
    const f = join(dir, 'bad.npy');
    writeFileSync(f, 'hello');
    expect(() => readNpy(f)).to.throw(/bad\.npy: not a \.npy file/);
    const t = join(dir, 'trunc.npy');
    writeFileSync(t, encodeNpy(new Float32Array(100), [100]).subarray(0, 200));
    expect(() => readNpy(t)).to.throw(/trunc\.npy: truncated \.npy data/);
  });
});
