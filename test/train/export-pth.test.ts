import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { float32ToFloat16Bits } from '../../src/io/half.js';
import { openTorchCheckpoint } from '../../src/io/pth.js';
import { ZipReader } from '../../src/io/zip.js';
import { createFlashDepth, loadFlashDepthWeights } from '../../src/models/create.js';
import { exportPth, PICKLE_GLOBALS, PICKLE_OPCODES, stateDictPickle, writePth, type PthTensor } from '../../src/train/export-pth.js';
import { initTrainingWeights } from '../../src/train/init.js';
import { saveCheckpoint } from '../../src/train/checkpoint.js';
import { AdamW } from '../../src/train/optimizer.js';
import { buildParamGroups } from '../../src/train/param-groups.js';
import { useTestBackend } from '../helpers/backend.js';
import { fixture, REPO_ROOT } from '../helpers/fixtures.js';
import { loadConfig } from '../../src/config.js';

/** Walks a pickle opcode by opcode: every opcode and every GLOBAL it uses. */
function scanPickle(buf: Buffer): { ops: Set<number>; globals: Set<string> } {
  const ops = new Set<number>();
  const globals = new Set<string>();
  const O = PICKLE_OPCODES;
  let pos = 0;
  for (;;) {
    const op = buf[pos++]!;
    ops.add(op);
    if (op === O.STOP) break;
    switch (op) {
      case O.PROTO: case O.BININT1: case O.BINPUT: case O.BINGET: pos += 1; break;
      case O.BININT2: pos += 2; break;
      case O.BININT: pos += 4; break;
      case O.LONG1: pos += 1 + buf[pos]!; break;
      case O.BINUNICODE: pos += 4 + buf.readUInt32LE(pos); break;
      case O.GLOBAL: {
        const a = buf.indexOf(0x0a, pos);
        const b = buf.indexOf(0x0a, a + 1);
        globals.add(`${buf.toString('latin1', pos, a)}.${buf.toString('latin1', a + 1, b)}`);
        pos = b + 1;
        break;
      }
      default: if (!Object.values(O).includes(op as never)) throw new Error(`unexpected opcode 0x${op.toString(16)} at ${pos - 1}`);
    }
  }
  expect(pos, 'STOP is the last byte').to.equal(buf.length);
  return { ops, globals };
}

describe('train: export to the official .pth layout', () => {
  let dir: string;
  before(() => useTestBackend());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'flashdepth-pth-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('our .pth reader reads every tensor back bit-exactly (f32, f16, 0-d to 4-d, a numel needing BININT), with step', () => {
    const f32 = Float32Array.from({ length: 70000 }, (_, i) => Math.sin(i) * 1e3);
    const tensors: PthTensor[] = [
      { key: 'pretrained.pos_embed', dtype: 'float32', shape: [1, 70000, 1], bytes: () => new Uint8Array(f32.buffer) },
      { key: 'depth_head.projects.0.weight', dtype: 'float32', shape: [2, 3, 1, 2], bytes: () => new Uint8Array(new Float32Array([1, -2, 3.5, NaN, -0, 1e-30, 6, 7, 8, 9, 10, 11]).buffer) },
      { key: 'mamba.blocks.0.0.mamba.D', dtype: 'float16', shape: [3], bytes: () => new Uint8Array(float32ToFloat16Bits(new Float32Array([1, 0.5, -2])).buffer) },
      { key: 'scalar', dtype: 'float32', shape: [], bytes: () => new Uint8Array(new Float32Array([42]).buffer) },
    ];
    const out = join(dir, 'iter_7.pth');
    writePth(out, tensors, 70001);
    const ckpt = openTorchCheckpoint(out);
    try {
      expect(ckpt.keys()).to.deep.equal(tensors.map((t) => t.key));
      expect(ckpt.metadata['step']).to.equal(70001);
      for (const t of tensors) {
        expect(ckpt.info(t.key), t.key).to.deep.equal({ shape: [...t.shape], dtype: t.dtype });
        expect(Buffer.from(ckpt.readRaw(t.key)).equals(Buffer.from(t.bytes())), t.key).to.equal(true);
      }
    } finally {
      ckpt.close();
    }
    const zip = new ZipReader(out);
    try {
      const names = zip.entries().map((e) => e.name);
      expect(names.slice(0, 4)).to.deep.equal(['iter_7/data.pkl', 'iter_7/.format_version', 'iter_7/.storage_alignment', 'iter_7/byteorder']);
      expect(names).to.include.members(['iter_7/data/0', 'iter_7/data/3', 'iter_7/version']);
      const raw = readFileSync(out);
      // Every storage starts 64-byte aligned (torch's writer does this; mmap loading relies on it).
      for (const e of zip.entries().filter((x) => x.name.includes('/data/'))) {
        const first = zip.read(e, 0, Math.min(8, e.size));
        const at = raw.indexOf(first, 0);
        expect(at % 64, e.name).to.equal(0);
      }
    } finally {
      zip.close();
    }
  });

  it('the pickle uses only protocol-2 opcodes and the allowed globals', () => {
    const tensors: PthTensor[] = [
      { key: 'a', dtype: 'float32', shape: [2, 3, 4, 5, 6], bytes: () => new Uint8Array(0) },
      { key: 'b', dtype: 'float16', shape: [300], bytes: () => new Uint8Array(0) },
      { key: 'c', dtype: 'int64', shape: [], bytes: () => new Uint8Array(0) },
    ];
    const { ops, globals } = scanPickle(stateDictPickle(tensors, 3_000_000_000));
    expect([...globals].sort()).to.deep.equal(['collections.OrderedDict', 'torch.FloatStorage', 'torch.HalfStorage', 'torch.LongStorage', 'torch._utils._rebuild_tensor_v2']);
    expect([...globals].every((g) => PICKLE_GLOBALS.includes(g))).to.equal(true);
    expect(ops.has(PICKLE_OPCODES.LONG1), 'a step ≥ 2^31 is a LONG1').to.equal(true);
    expect(ops.has(PICKLE_OPCODES.BINGET), 'globals are memoised').to.equal(true);
  });

  it('a training checkpoint exports to .pth that loads strictly into the model with identical weights', async () => {
    const config = loadConfig(join(REPO_ROOT, 'configs', 'tiny'));
    const a = createFlashDepth(config);
    initTrainingWeights(a, 4);
    const opt = new AdamW(buildParamGroups(a, config.training.lr).groups);
    await saveCheckpoint({ dir, step: 12, model: a, optimizer: opt, config, data: null, run: {}, keepLast: 0 });
    opt.dispose();
    const report = exportPth(join(dir, 'iter_12.safetensors'), join(dir, 'iter_12.pth'));
    expect(report).to.deep.equal({ tensors: [...a.namedParameters()].length, step: 12 });
    const b = createFlashDepth(config);
    try {
      loadFlashDepthWeights(b, join(dir, 'iter_12.pth'), { strict: true });
      const pa = [...a.namedParameters()];
      const pb = [...b.namedParameters()];
      pa.forEach((p, i) => expect(Buffer.from(p.spec.variable.read().dataSync().buffer).equals(Buffer.from(pb[i]!.spec.variable.read().dataSync().buffer)), p.key).to.equal(true));
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('re-exports the PyTorch fixture s_model.pth byte-identically in its tensors (float16)', function () {
    const src = fixture(this, 's_model.pth');
    const out = join(dir, 's_again.pth');
    exportPth(src, out);
    const ref = openTorchCheckpoint(src);
    const ours = openTorchCheckpoint(out);
    try {
      expect(ours.keys()).to.deep.equal(ref.keys());
      for (const k of ref.keys()) expect(Buffer.from(ours.readRaw(k)).equals(Buffer.from(ref.readRaw(k))), k).to.equal(true);
      expect(ours.metadata['step']).to.equal(0);
    } finally {
      ref.close();
      ours.close();
    }
  });
});
