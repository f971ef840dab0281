import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import { errorOf } from '../helpers/errors.js';

describe('io/safetensors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'st-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the standard layout: u64 header length, JSON header padded to 8 bytes, raw little-endian data', () => {
    const f = join(dir, 'a.safetensors');
    writeSafetensors(f, [
      { key: 'w', shape: [2], dtype: 'float32', data: Float32Array.from([1, -2]) },
      { key: 'h', shape: [1, 2], dtype: 'float16', data: Float32Array.from([1, 0.5]) },
    ], { format: 'pt' });
    const bytes = readFileSync(f);
    const json = '{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"h":{"dtype":"F16","shape":[1,2],"data_offsets":[8,12]}}';
    const padded = json + ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
    expect(Number(bytes.readBigUInt64LE(0))).to.equal(padded.length);
    expect((8 + padded.length) % 8).to.equal(0);
    expect(bytes.toString('utf8', 8, 8 + padded.length)).to.equal(padded);
    const data = bytes.subarray(8 + padded.length);
    expect([...data]).to.deep.equal([0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0x00, 0x3c, 0x00, 0x38]);
  });

  it('reads back names, shapes, dtypes, metadata and values', () => {
    const f = join(dir, 'b.safetensors');
    const tensors: TensorToWrite[] = [
      { key: 'z.bf', shape: [3], dtype: 'bfloat16', data: Uint16Array.from([0x3f80, 0xc040, 0x4049]) },
      { key: 'a.f32', shape: [2, 2], dtype: 'float32', data: Float32Array.from([0.1, 0.2, 0.3, 0.4]) },
      { key: 'i', shape: [2], dtype: 'int64', data: new Uint8Array(BigInt64Array.from([-5n, 7n]).buffer) },
      { key: 'empty', shape: [0, 3], dtype: 'float32', data: new Float32Array(0) },
    ];
    writeSafetensors(f, tensors, { note: 'x' });
    const st = openSafetensors(f);
    try {
      expect(st.keys()).to.deep.equal(['z.bf', 'a.f32', 'i', 'empty']);
      expect(st.info('z.bf')).to.deep.equal({ shape: [3], dtype: 'bfloat16' });
      expect(Array.from(st.readFloat32('z.bf'))).to.deep.equal([1, -3, 3.140625]);
      expect(Array.from(st.readFloat32('a.f32'))).to.deep.equal(Array.from(Float32Array.from([0.1, 0.2, 0.3, 0.4])));
      expect(Array.from(st.readFloat32('i'))).to.deep.equal([-5, 7]);
      expect(st.readFloat32('empty').length).to.equal(0);
      expect(st.metadata).to.deep.equal({ note: 'x' });
      expect(errorOf(() => st.info('nope'))).to.equal(`${f}: no tensor named 'nope' (4 tensors in the file)`);
    } finally {
      st.close();
    }
  });

  it('asks for each lazy tensor only when writing it, in order', () => {
    const f = join(dir, 'lazy.safetensors');
    const calls: string[] = [];
    const lazy = (key: string, v: number): TensorToWrite => ({
      key, shape: [1], dtype: 'float32', data: () => { calls.push(key); return Float32Array.from([v]); },
    });
    writeSafetensors(f, [lazy('a', 1), lazy('b', 2), lazy('c', 3)]);
    expect(calls).to.deep.equal(['a', 'b', 'c']);
    const st = openSafetensors(f);
    expect(Array.from(st.readFloat32('c'))).to.deep.equal([3]);
    st.close();
  });

  it('rejects bad tensors without leaving a partial or temporary file', () => {
    const f = join(dir, 'bad.safetensors');
    expect(errorOf(() => writeSafetensors(f, [{ key: 'w', shape: [3], dtype: 'float32', data: new Float32Array(2) }])))
      .to.equal(`${f}: tensor 'w': shape (3) float32 needs 12 bytes but the data has 8`);
    expect(errorOf(() => writeSafetensors(f, [
      { key: 'w', shape: [1], dtype: 'float32', data: new Float32Array(1) },
      { key: 'w', shape: [1], dtype: 'float32', data: new Float32Array(1) },
    ]))).to.equal(`${f}: duplicate tensor name 'w'`);
    expect(errorOf(() => writeSafetensors(f, [{ key: 'w', shape: [1], dtype: 'int32', data: new Float32Array(1) }])))
      .to.equal(`${f}: tensor 'w': cannot write Float32Array data as int32 (give a Uint8Array of raw bytes)`);
    expect(existsSync(f)).to.equal(false);
    expect(readdirSync(dir).filter((n) => n.startsWith('bad.safetensors'))).to.deep.equal([]);
  });

  it('names the file and the problem for corrupt files', () => {
    const good = join(dir, 'good.safetensors');
    writeSafetensors(good, [{ key: 'w', shape: [4], dtype: 'float32', data: new Float32Array(4) }]);
    const bytes = readFileSync(good);
    const truncated = join(dir, 'truncated.safetensors');
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 4));
    expect(errorOf(() => openSafetensors(truncated)))
      .to.equal(`${truncated}: truncated file: tensor 'w' ends at byte ${bytes.length} but the file has ${bytes.length - 4} bytes`);
    const huge = join(dir, 'huge.safetensors');
    const head = Buffer.alloc(16);
    head.writeBigUInt64LE(1n << 40n, 0);
    writeFileSync(huge, head);
    expect(errorOf(() => openSafetensors(huge))).to.equal(`${huge}: corrupt or truncated safetensors file (header length ${1n << 40n}, file has 16 bytes)`);
    const fp8 = join(dir, 'fp8.safetensors');
    const json = Buffer.from('{"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length), 0);
    writeFileSync(fp8, Buffer.concat([len, json, Buffer.from([0])]));
    expect(errorOf(() => openSafetensors(fp8)))
      .to.equal(`${fp8}: tensor 'w' has unsupported safetensors dtype "F8_E4M3" (supported: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)`);
  });
});
