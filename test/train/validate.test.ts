import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { InputError } from '../../src/errors.js';
import { runEvaluation } from '../../src/eval/run.js';
import { runTraining } from '../../src/train/run.js';
import { checkSequenceValidation } from '../../src/train/validate.js';
import { buildTinyTree } from '../dataloaders/helpers/tiny-tree.js';
import { useTestBackend } from '../helpers/backend.js';
import { REPO_ROOT } from '../helpers/fixtures.js';

const TINY = join(REPO_ROOT, 'configs', 'tiny');

interface ValLine { kind: 'val'; step: number; metrics: Record<string, number | null> }

describe('train: validation on the real val splits (tiny trees, tiny config, wasm)', () => {
  let root: string;
  let dir: string;
  before(async () => {
    await useTestBackend();
    root = mkdtempSync(join(tmpdir(), 'flashdepth-val-root-'));
    await buildTinyTree(root);
  });
  after(() => rmSync(root, { recursive: true, force: true }));
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'flashdepth-val-run-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('val_freq=1 for 2 steps logs AbsRel/δ1/boundary F1 per dataset, equal to `eval --split val` on the same weights; no tensor leaks', async () => {
    const tensorsBefore = tf.memory().numTensors;
    await runTraining({
      stage: 'train', config: TINY, runDir: join(dir, 'run'), maxSteps: 2, resume: false, console: false,
      size: { width: 70, height: 70 }, valSequences: 2, valFrames: 2,
      overrides: [`dataset.data_root=${root}`, 'dataset.val_datasets=[sintel,eth3d]', 'training.val_freq=1', 'training.save_freq=1', 'training.start_with_val=true'],
    });
    expect(tf.memory().numTensors).to.equal(tensorsBefore);
    const lines = readFileSync(join(dir, 'run', 'train_log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string });
    const vals = lines.filter((l): l is ValLine => l.kind === 'val');
    expect(vals.map((v) => v.step)).to.deep.equal([0, 1]);
    for (const v of vals) {
      expect(Object.keys(v.metrics).sort()).to.deep.equal(['eth3d/absRel', 'eth3d/boundaryF1', 'eth3d/delta1', 'sintel/absRel', 'sintel/boundaryF1', 'sintel/delta1']);
      for (const d of ['sintel', 'eth3d']) {
        // Two val frames at 1 m and 2 m: an (almost) flat untrained prediction aligns to 1/0.75 m → AbsRel ≈ 1/3.
        expect(v.metrics[`${d}/absRel`], `${d} AbsRel @ ${v.step}`).to.be.a('number').and.be.closeTo(1 / 3, 0.01);
        expect(v.metrics[`${d}/delta1`], `${d} δ1 @ ${v.step}`).to.be.a('number').and.be.within(0, 1);
      }
    }
    expect(readFileSync(join(dir, 'run', 'train_plot.html'), 'utf8')).to.contain('val sintel/absRel').and.contain('val eth3d/absRel');

    // The step-1 validation ran on the weights of iter_1 (saved just before it): eval's val protocol must agree.
    const report = await runEvaluation({
      config: TINY, checkpoint: join(dir, 'run', 'iter_1.safetensors'), dataRoot: root, datasets: ['sintel', 'eth3d'], split: 'val',
      maxSequences: 2, maxFrames: 2, outDir: join(dir, 'eval'), backend: 'wasm',
    });
    for (const d of report.datasets) {
      expect(d.sequences).to.equal(2);
      for (const k of ['absRel', 'delta1', 'boundaryF1'] as const) {
        const ours = vals[1]!.metrics[`${d.dataset}/${k}`]!;
        expect(Math.abs(ours - d[k]), `${d.dataset} ${k}: val ${ours} vs eval ${d[k]}`).to.be.at.most(1e-4 * Math.max(1e-3, Math.abs(d[k])));
      }
    }
  });

  it('a val dataset missing from the data root stops the run before training, naming it', async () => {
    const partial = join(dir, 'data');
    mkdirSync(partial);
    symlinkSync(join(root, 'sintel'), join(partial, 'sintel'));
    let error: unknown;
    try {
      await runTraining({
        stage: 'train', config: TINY, runDir: join(dir, 'run'), maxSteps: 1, resume: false, console: false, size: { width: 70, height: 70 },
        overrides: [`dataset.data_root=${partial}`, 'dataset.val_datasets=[sintel,waymo]'],
      });
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(InputError);
    expect((error as Error).message).to.equal(`${join(partial, 'waymo/val')}: waymo not found under data root ${partial} (expected folder waymo/val)`);
    expect(existsSync(join(dir, 'run', 'train_log.jsonl'))).to.equal(false);
  });

  it('--val-frames / --val-size are checked', () => {
    const base = { dataRoot: root, datasets: ['sintel'] as const, resolution: 'base' as const, maxSequences: 2 };
    expect(() => checkSequenceValidation({ ...base, maxFrames: 0 })).to.throw('Expected positive integer for --val-frames but received 0 (number)');
    expect(() => checkSequenceValidation({ ...base, maxFrames: 2, inputSize: { width: 70, height: 40 } })).to.throw('Expected a positive multiple of 14 for --val-size height but received 40 (number)');
  });
});
