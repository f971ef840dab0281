import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { datasetSpec, type FileDatasetName } from '../../src/dataloaders/datasets.js';
import { readNpyHeader, writeNpy } from '../../src/io/npy.js';
import { evalSequences, runEvaluation } from '../../src/eval/run.js';
import type { EvalReport } from '../../src/eval/report.js';
import { runCliProcess } from '../cli/spawn-cli.js';
import { buildTinyTree } from '../dataloaders/helpers/tiny-tree.js';
import { useTestBackend } from '../helpers/backend.js';
import { fixture } from '../helpers/fixtures.js';

const DATASETS: FileDatasetName[] = ['sintel', 'eth3d', 'urbansyn', 'unreal4k'];

describe('npm run eval', function () {
  let root: string;
  let dataRoot: string;

  before(async () => {
    await useTestBackend();
    root = mkdtempSync(join(tmpdir(), 'flashdepth-eval-'));
    dataRoot = join(root, 'data');
    await buildTinyTree(dataRoot);
  });

  after(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('runs FlashDepth-S on the tiny test sets: tables, metrics.json, sequences.csv, predictions and vis', async function () {
    const checkpoint = fixture(this, 's_model.pth');
    const out = join(root, 'model-run');
    // 112×70 instead of the spec's test sizes keeps this fast; 70 rows is the least the Mamba pooling accepts.
    const r = await runCliProcess(['eval', '--config', 's', '--checkpoint', checkpoint, '--data-root', dataRoot, '--datasets', DATASETS.join(','),
      '--input-size', '112x70', '--max-sequences', '2', '--backend', 'wasm', '--out', out, '--save-vis']);
    expect(r.code, r.stderr).to.equal(0);
    for (const d of DATASETS) expect(r.stdout).to.match(new RegExp(`(^|\\n)${d}\\nsequence`));
    expect(r.stdout).to.match(/dataset\s+AbsRel\s+δ1\s+F1\s+frames\s+FPS/);

    const report = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as EvalReport;
    expect(report.mode).to.equal('model');
    expect(report.datasets.map((d) => d.dataset)).to.deep.equal(DATASETS);
    // sintel: 2 of 9 scenes × 3 frames; eth3d 2 × 2; urbansyn 2 × 3; unreal4k 1 × 3.
    expect(report.datasets.map((d) => [d.sequences, d.frames])).to.deep.equal([[2, 6], [2, 4], [2, 6], [1, 3]]);
    for (const s of report.sequences) {
      expect(s.absRel).to.be.a('number').and.to.be.at.least(0);
      expect(s.delta1).to.be.within(0, 1);
      expect(s.boundaryF1).to.be.within(0, 1);
      expect(s.fps).to.be.greaterThan(0);
    }
    const csv = readFileSync(join(out, 'sequences.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).to.equal('dataset,sequence,frames,abs_rel,delta1,boundary_f1,scale,shift,valid_pixels,fps,frames_without_gt');
    expect(csv).to.have.length(1 + report.sequences.length);
    expect(readNpyHeader(join(out, 'predictions', 'sintel', 'scene_0', 'frame_0001.npy'))).to.deep.equal({ dtype: 'float32', shape: [70, 112] });
    expect(existsSync(join(out, 'vis', 'eth3d', 'courtyard', 'DSC_0001.png'))).to.equal(true);

    // The same predictions scored from the folder give the same numbers (only FPS is gone).
    const again = await runEvaluation({ predictions: join(out, 'predictions'), dataRoot, datasets: DATASETS, maxSequences: 2, outDir: join(root, 'rescore'), backend: 'wasm' });
    expect(again.mode).to.equal('predictions');
    again.sequences.forEach((s, i) => {
      const m = report.sequences[i]!;
      expect([s.dataset, s.sequence, s.frames]).to.deep.equal([m.dataset, m.sequence, m.frames]);
      expect(s.absRel).to.be.closeTo(m.absRel, 1e-9);
      expect(s.delta1).to.equal(m.delta1);
      expect(s.boundaryF1).to.be.closeTo(m.boundaryF1, 1e-12);
      expect(s.fps).to.equal(null);
    });
  });

  it('scores predictions equal to the GT inverse depth as AbsRel 0, δ1 1 (both file layouts; UrbanSyn\'s constant GT is rank-deficient)', async () => {
    const preds = join(root, 'gt-preds');
    const datasets: FileDatasetName[] = [...DATASETS, 'waymo'];
    for (const d of datasets) {
      for (const seq of evalSequences(dataRoot, d, 'val')) {
        const dir = join(preds, d, seq.name);
        mkdirSync(dir, { recursive: true });
        for (const f of seq.frames) {
          const gt = await datasetSpec(d).readInvDepth(f.depth, f.rgb);
          // eth3d: the PyTorch code's name (frame_<i>.npy); the others: this command's (<rgb stem>.npy).
          writeNpy(join(dir, d === 'eth3d' ? `frame_${f.index}.npy` : `${f.stem}.npy`), gt.data, [gt.height, gt.width]);
        }
      }
    }
    const before = tf.memory().numTensors;
    // val split: the tiny Waymo segments are not among the 30 test segments.
    const report = await runEvaluation({ predictions: preds, dataRoot, datasets, split: 'val', outDir: join(root, 'gt-run'), backend: 'wasm' });
    expect(tf.memory().numTensors).to.equal(before);
    expect(report.datasets.map((d) => d.dataset)).to.deep.equal(datasets);
    for (const s of report.sequences.filter((x) => x.dataset !== 'urbansyn')) {
      expect(s.absRel, `${s.dataset}/${s.sequence}`).to.be.closeTo(0, 1e-6);
      expect(s.delta1, `${s.dataset}/${s.sequence}`).to.equal(1);
      expect(s.validPixels).to.be.greaterThan(0);
    }
    // UrbanSyn's tiny GT is one constant c = 1/3.0517578125 m⁻¹ plus a sky pixel, so over the fit mask (sky left
    // out) the prediction is constant: lstsq's minimum-norm answer s = c²/(c²+1), t = c/(c²+1) maps c onto c but sky
    // (pred 0) onto t → 1/t = 3.379 m instead of 70 m. Per frame: AbsRel = |1/t − 70|/70 over 384 valid pixels
    // (plus float32 rounding of s·c + t ≈ 3e-6 on the others), δ1 = 383/384.
    const c = 1 / 3.0517578125;
    const t = c / (c * c + 1);
    for (const s of report.sequences.filter((x) => x.dataset === 'urbansyn')) {
      expect(s.shift).to.be.closeTo(t, 1e-6);
      expect(s.scale).to.be.closeTo((c * c) / (c * c + 1), 1e-6);
      expect(s.absRel).to.be.closeTo(Math.abs(1 / t - 70) / 70 / 384, 1e-5);
      expect(s.delta1).to.equal(383 / 384);
    }
    // Sintel frame n: 1/n m everywhere but three row-0 specials (0 → invalid, 2e4 m → sky, NaN → invalid), so
    // 24·16 − 2 = 382 valid pixels per frame, 3 frames.
    expect(report.sequences.find((s) => s.dataset === 'sintel')!.validPixels).to.equal(3 * 382);
  });

  it('names the missing prediction file', async () => {
    const empty = join(root, 'empty-preds');
    mkdirSync(empty, { recursive: true });
    let message = '';
    try {
      await runEvaluation({ predictions: empty, dataRoot, datasets: ['unreal4k'], outDir: join(root, 'x'), backend: 'wasm' });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).to.equal(`${join(empty, 'unreal4k', '00000', '00000.npy')}: prediction not found (also tried ${join(empty, 'unreal4k', '00000', 'frame_0.npy')}, ${join(empty, 'unreal4k', '00000', 'depth_npy_files', 'frame_0.npy')})`);
  });

  it('rejects a model and a predictions folder together (exit 2)', async () => {
    const r = await runCliProcess(['eval', '--config', 's', '--predictions', root, '--data-root', dataRoot]);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.contain('eval: give either --config (run a model) or --predictions <folder> (evaluate saved predictions), not both or neither');
  });
});
