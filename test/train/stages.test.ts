import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { loadConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { openSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { createFlashDepth } from '../../src/models/create.js';
import type { FlashModule } from '../../src/models/module.js';
import { exportTorchTensors } from '../../src/models/weights.js';
import { initTrainingWeights } from '../../src/train/init.js';
import { runTraining } from '../../src/train/run.js';
import { useTestBackend } from '../helpers/backend.js';
import { REPO_ROOT } from '../helpers/fixtures.js';

const TINY = join(REPO_ROOT, 'configs', 'tiny');
const SIZE = { width: 70, height: 70 };
/** configs/tiny as a Full model: the tiny student plus a tiny ViT-L-shaped teacher (DPT-L features 256). */
const TINY_FULL = [
  'hybrid_configs.use_hybrid=true', 'hybrid_configs.teacher_vit_embed_dim=32', 'hybrid_configs.teacher_vit_depth=4',
  'hybrid_configs.teacher_vit_num_heads=2', 'hybrid_configs.teacher_vit_taps=[0,1,2,3]', 'hybrid_configs.teacher_dpt_out_channels=[8,16,16,32]',
];
/** The same teacher as a stand-alone FlashDepth-L-shaped model (what a FlashDepth-L checkpoint holds). */
const TINY_L = ['model.vit_size=vitl', 'model.mamba_in_dpt_layer=[3]'];

function saveWeights(model: FlashModule, path: string, keep: (key: string) => boolean = () => true): void {
  const tensors = exportTorchTensors(model);
  writeSafetensors(path, [...tensors].filter(([k]) => keep(k)).map(([key, t]) => ({ key, shape: t.shape, dtype: 'float32' as const, data: t.dataSync() as Float32Array })));
  tf.dispose([...tensors.values()]);
}

describe('train: stage-1 and stage-2 initialisation (spec §4.3)', () => {
  let dir: string;
  before(() => useTestBackend());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'flashdepth-stages-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('train --load <DA-V2>: pretrained.* and depth_head.* load non-strictly, mamba.* keeps its fresh init', async () => {
    const dav2 = createFlashDepth(TINY);
    initTrainingWeights(dav2, 9);
    saveWeights(dav2, join(dir, 'dav2.safetensors'), (k) => !k.startsWith('mamba.'));
    const nonMamba = [...dav2.namedParameters()].filter((p) => !p.key.startsWith('mamba.')).length;
    dav2.dispose();
    const r = await runTraining({ stage: 'train', config: TINY, load: join(dir, 'dav2.safetensors'), synthetic: true, size: SIZE, maxSteps: 1, runDir: join(dir, 'run'), console: false });
    const report = r.loads[0]!.report;
    expect(report.loaded).to.have.length(nonMamba);
    expect(report.missing.length).to.be.greaterThan(0);
    expect(report.missing.every((k) => k.startsWith('mamba.'))).to.equal(true);
    expect(r.endStep).to.equal(1);
  });

  it('distill: student from S (incl. mamba), frozen teacher from L under teacher_model., fresh fusion; the teacher never changes', async () => {
    const s = createFlashDepth(TINY);
    initTrainingWeights(s, 1);
    saveWeights(s, join(dir, 's.safetensors'));
    const sKeys = [...s.namedParameters()].length;
    s.dispose();
    const l = createFlashDepth(loadConfig(TINY, TINY_L));
    initTrainingWeights(l, 2);
    saveWeights(l, join(dir, 'l.safetensors'));
    l.dispose();
    const runDir = join(dir, 'run');
    const r = await runTraining({
      stage: 'distill', config: TINY, overrides: TINY_FULL, load: join(dir, 's.safetensors'), teacher: join(dir, 'l.safetensors'),
      synthetic: true, size: SIZE, maxSteps: 1, runDir, console: false,
    });
    const [student, teacher] = r.loads;
    expect(student!.report.loaded).to.have.length(sKeys);
    expect(student!.report.missing.every((k) => k.startsWith('teacher_model.') || k.startsWith('hybrid_fusion.'))).to.equal(true);
    expect(teacher!.report.missing).to.deep.equal([]);
    expect(teacher!.report.loaded.every((k) => k.startsWith('teacher_model.pretrained.') || k.startsWith('teacher_model.depth_head.'))).to.equal(true);
    // After a step: the saved teacher equals FlashDepth-L's weights bit for bit; it has no optimiser state.
    const saved = openSafetensors(join(runDir, 'iter_1.safetensors'));
    const lFile = openSafetensors(join(dir, 'l.safetensors'));
    const moments = openSafetensors(join(runDir, 'iter_1.optim.safetensors'));
    try {
      for (const key of ['pretrained.blocks.0.attn.qkv.weight', 'depth_head.scratch.refinenet4.out_conv.weight']) {
        expect(Buffer.from(saved.readFloat32(`teacher_model.${key}`).buffer).equals(Buffer.from(lFile.readFloat32(key).buffer)), key).to.equal(true);
      }
      expect(moments.keys().some((k) => k.includes('teacher_model.'))).to.equal(false);
      expect(moments.keys().some((k) => k.startsWith('exp_avg.hybrid_fusion.'))).to.equal(true);
      expect(moments.keys().some((k) => k.startsWith('exp_avg.pretrained.'))).to.equal(true);
    } finally {
      saved.close();
      lFile.close();
      moments.close();
    }
  });

  it('train refuses a hybrid config and distill a non-hybrid one', async () => {
    let error: unknown;
    try {
      await runTraining({ stage: 'distill', config: TINY, synthetic: true, size: SIZE, maxSteps: 1, runDir: dir, console: false });
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(ConfigError);
    expect((error as Error).message).to.equal(`distill: ${TINY} has hybrid_configs.use_hybrid false; stage 2 needs the Full config (configs/flashdepth)`);
  });
});
