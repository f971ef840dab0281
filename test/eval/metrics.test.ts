import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { alignmentStats, applyScaleShift, EMPTY_ALIGNMENT_STATS, fitScaleShift, mergeAlignmentStats, solveScaleShift } from '../../src/eval/align.js';
import { boundaryF1, float32Above, linspace } from '../../src/eval/boundary-f1.js';
import { computeDepthMetrics, disparityToDepth, frameMetrics, resizePrediction } from '../../src/eval/metrics.js';
import { useTestBackend } from '../helpers/backend.js';

/** The reference's SI boundary F1 written out pixel by pixel (float32 ratios vs float64 thresholds), for checking. */
function bruteForceF1(pred: Float32Array, gt: Float32Array, h: number, w: number): number {
  const ts = linspace(1.05, 1.25, 10);
  const total = ts.reduce((a, b) => a + b, 0);
  const rel = (d: Float32Array, t: number): boolean[][] => {
    const out: boolean[][] = [[], [], [], []];
    for (let y = 0; y < h; y++) for (let x = 0; x + 1 < w; x++) {
      const a = d[y * w + x]!; const b = d[y * w + x + 1]!;
      out[0]!.push(Math.fround(b / a) > t); out[1]!.push(Math.fround(a / b) > t);
    }
    for (let y = 0; y + 1 < h; y++) for (let x = 0; x < w; x++) {
      const a = d[y * w + x]!; const b = d[(y + 1) * w + x]!;
      out[2]!.push(Math.fround(b / a) > t); out[3]!.push(Math.fround(a / b) > t);
    }
    return out;
  };
  let score = 0;
  for (const t of ts) {
    const p = rel(pred, t); const g = rel(gt, t);
    let r = 0; let pr = 0;
    for (let k = 0; k < 4; k++) {
      const both = p[k]!.filter((v, i) => v && g[k]![i]).length;
      r += both / Math.max(g[k]!.filter(Boolean).length, 1);
      pr += both / Math.max(p[k]!.filter(Boolean).length, 1);
    }
    r /= 4; pr /= 4;
    score += (r + pr === 0 ? 0 : (2 * r * pr) / (r + pr)) * (t / total);
  }
  return score;
}

describe('eval metrics', () => {
  before(async () => {
    await useTestBackend();
  });

  describe('alignment (least squares in disparity, gt ≥ 1/70)', () => {
    it('fits s and t over the masked, finite pixels only', async () => {
      // Fit pixels: pred [0, 1, 2, 3], gt [1, 3, 4, 8]. p̄ = 1.5, ḡ = 4; Σ(p−p̄)² = 2.25+0.25+0.25+2.25 = 5;
      // Σ(p−p̄)(g−ḡ) = (−1.5)(−3) + (−0.5)(−1) + (0.5)(0) + (1.5)(4) = 11 → s = 11/5 = 2.2, t = 4 − 2.2·1.5 = 0.7.
      // Left out: gt 0 (sky), gt −1 (invalid), gt 0.01 < 1/70, pred NaN, gt NaN, gt +inf, pred −inf.
      const pred = tf.tensor1d([0, 1, 2, 3, 100, 5, 9, NaN, 7, 4, -Infinity]);
      const gt = tf.tensor1d([1, 3, 4, 8, 0, -1, 0.01, 2, NaN, Infinity, 3]);
      const st = await alignmentStats(pred, gt);
      expect(st.count).to.equal(4);
      const { scale, shift } = solveScaleShift(st);
      expect(scale).to.be.closeTo(2.2, 1e-6);
      expect(shift).to.be.closeTo(0.7, 1e-6);
      tf.dispose([pred, gt]);
    });

    it('merges per-frame statistics into the whole-sequence fit', async () => {
      const p = [0.3, 1.2, 2.5, 0.7, 3.1, 1.9];
      const g = [1.1, 2.0, 5.2, 1.4, 7.0, 4.1];
      const whole = await fitScaleShift(tf.tensor1d(p), tf.tensor1d(g));
      const a = await alignmentStats(tf.tensor1d(p.slice(0, 2)), tf.tensor1d(g.slice(0, 2)));
      const b = await alignmentStats(tf.tensor1d(p.slice(2)), tf.tensor1d(g.slice(2)));
      const merged = solveScaleShift(mergeAlignmentStats(mergeAlignmentStats(EMPTY_ALIGNMENT_STATS, a), b));
      expect(merged.scale).to.be.closeTo(whole.scale, 1e-6);
      expect(merged.shift).to.be.closeTo(whole.shift, 1e-6);
    });

    it('returns lstsq\'s minimum-norm solution for a constant prediction, zeros for an empty mask', async () => {
      // pred ≡ c = 2, gt [1, 3]: ḡ = 2; s = c·ḡ/(c²+1) = 0.8, t = ḡ/(c²+1) = 0.4 (s·c + t = ḡ).
      const r = await fitScaleShift(tf.tensor1d([2, 2]), tf.tensor1d([1, 3]));
      expect(r.scale).to.be.closeTo(0.8, 1e-6);
      expect(r.shift).to.be.closeTo(0.4, 1e-6);
      expect(await fitScaleShift(tf.tensor1d([1, 2]), tf.tensor1d([0, -1]))).to.deep.equal({ scale: 0, shift: 0 });
    });

    it('maps non-finite predictions to disparity 0', () => {
      const out = applyScaleShift(tf.tensor1d([1, NaN, Infinity]), { scale: 2, shift: 0.5 });
      expect(Array.from(out.dataSync())).to.deep.equal([2.5, 0, 0]);
    });
  });

  it('converts disparity to depth clipped to [1e-3, 70]', () => {
    // 1/2 = 0.5; 1/0.5 = 2; 0 → 1/1e-3 = 1000 → 70; −1 → 70; 1e-4 → 70; 1000 → 1e-3; 0.01 → 100 → 70.
    const d = disparityToDepth(tf.tensor1d([2, 0.5, 0, -1, 1e-4, 1000, 0.01]));
    const v = Array.from(d.dataSync());
    [0.5, 2, 70, 70, 70, 1e-3, 70].forEach((e, i) => expect(v[i]).to.be.closeTo(e, 1e-6));
  });

  it('computes AbsRel and δ1 after alignment, with sky valid and NaN/invalid GT left out', async () => {
    // gt (disparity) [0.5, 0.25, 0, −1 | 0.1, 0.2, NaN, 0.5]; pred = (gt − 0.1)/2 on the fit pixels (0, 1, 4, 7), so
    // the fit is s = 2, t = 0.1 and aligned pred = gt there. Pixel 2 (sky): pred −0.03 → 2·(−0.03)+0.1 = 0.04 → 25 m
    // vs 70 m: |25 − 70|/70 = 0.642857, ratio 2.8 (miss). Pixel 3: gt −1, invalid. Pixel 5: pred NaN → disparity 0
    // → 70 m vs 5 m: 13, miss. Pixel 6: gt NaN, invalid. Valid: 0, 1, 2, 4, 5, 7 (6 pixels).
    // AbsRel = (0.642857 + 13)/6 = 2.2738095; δ1 = 4/6.
    const gt = tf.tensor3d([0.5, 0.25, 0, -1, 0.1, 0.2, NaN, 0.5], [1, 2, 4]);
    const pred = tf.tensor3d([0.2, 0.075, -0.03, 3, 0, NaN, 9, 0.2], [1, 2, 4]);
    const before = tf.memory().numTensors;
    const m = await computeDepthMetrics(pred, gt);
    expect(tf.memory().numTensors).to.equal(before);
    expect(m.scale).to.be.closeTo(2, 1e-5);
    expect(m.shift).to.be.closeTo(0.1, 1e-6);
    expect(m.absRel).to.be.closeTo((45 / 70 + 13) / 6, 1e-5);
    expect(m.delta1).to.be.closeTo(4 / 6, 1e-9);
    expect(m.validPixels).to.equal(6);
    expect(m.frames).to.equal(1);
  });

  it('averages AbsRel over every valid pixel of the sequence and F1 over frames', async () => {
    // Frame 0: gt [0.5, 0.25], pred the same. Frame 1: gt [1, 0 (sky)], pred [1, 0.5].
    // Fit pixels (0.5, 0.5), (0.25, 0.25), (1, 1) → s = 1, t = 0. Valid: all 4 (sky included). The only error is the
    // sky pixel: pred 0.5 → 2 m vs 70 m → 68/70, ratio 35 (miss). AbsRel = (68/70)/4 over the sequence; δ1 = 3/4.
    const gt = tf.tensor3d([0.5, 0.25, 1, 0], [2, 1, 2]);
    const pred = tf.tensor3d([0.5, 0.25, 1, 0.5], [2, 1, 2]);
    const m = await computeDepthMetrics(pred, gt);
    expect(m.absRel).to.be.closeTo(68 / 70 / 4, 1e-5);
    expect(m.delta1).to.equal(0.75);
    expect(m.frames).to.equal(2);
  });

  it('frameMetrics counts an all-invalid frame as no valid pixels', async () => {
    const r = await frameMetrics(tf.tensor2d([[1, 2]]), tf.tensor2d([[-1, NaN]]));
    expect(r.sums).to.deep.equal({ absRelSum: 0, delta1Count: 0, validCount: 0 });
  });

  it('resizes predictions to the GT size with bilinear align_corners=True', () => {
    // [[0, 1], [2, 3]] → 3×3: corners kept, midpoints averaged.
    const r = resizePrediction(tf.tensor2d([[0, 1], [2, 3]]), 3, 3);
    expect(Array.from(r.dataSync())).to.deep.equal([0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3]);
  });

  describe('boundary F1', () => {
    it('thresholds are numpy linspace(1.05, 1.25, 10), compared exactly in float32', () => {
      const t = linspace(1.05, 1.25, 10);
      expect(t[0]).to.equal(1.05);
      expect(t[9]).to.equal(1.25);
      expect(t[1]).to.be.closeTo(1.0722222222, 1e-9);
      // 1.25 is exact in float32: the smallest float32 above it is 1.25 + 2^-23.
      expect(float32Above(1.25)).to.equal(1.25 + 2 ** -23);
      expect(float32Above(1.05)).to.be.greaterThan(1.05);
      expect(Math.fround(float32Above(1.05))).to.equal(float32Above(1.05));
    });

    it('matches a hand-computed case', async () => {
      // gt [[1, 1, 2], [1, 1, 2]]: 2 "right" boundaries (ratio 2, column 1→2) at every t; no other direction.
      // pred [[1, 1, 1.1], [1, 1, 2]]: right ratios 1.1 (row 0) and 2 (row 1); row 0's exceeds t_0..t_2 only
      // (1.05, 1.0722, 1.0944). pred also has a "bottom" boundary (2/1.1) that GT lacks: it adds 0/1 to precision.
      // k ≤ 2: right |P∧G| = 2, |P| = 2, |G| = 2 → R = ¼·1, P = ¼·(1 + 0) → F1 = 0.25.
      // k ≥ 3: right |P∧G| = 1, |P| = 1, |G| = 2 → R = ¼·½ = 0.125, P = 0.25 → F1 = 1/6.
      // Σt = 11.5, t_0 + t_1 + t_2 = 3.2166667 → F1 = (0.25·3.2166667 + (11.5 − 3.2166667)/6) / 11.5 = 0.1899758.
      const gt = tf.tensor2d([[1, 1, 2], [1, 1, 2]]);
      const pred = tf.tensor2d([[1, 1, 1.1], [1, 1, 2]]);
      expect(await boundaryF1(pred, gt)).to.be.closeTo(0.1899758, 1e-6);
    });

    it('a ratio equal to a threshold is not a boundary (strict >), and a perfect single-direction match scores ¼', async () => {
      // 5/4 = 1.25 exactly: a boundary for t_0..t_8, not t_9. Per k ≤ 8: R = P = ¼ (one direction of four) → F1 = ¼.
      // F1 = ¼ · (11.5 − 1.25)/11.5 = 0.2228261.
      const d = tf.tensor2d([[4, 5]]);
      expect(await boundaryF1(d, d)).to.be.closeTo(0.25 * 10.25 / 11.5, 1e-9);
    });

    it('equals the pixel-by-pixel reference on random maps', async () => {
      const h = 23;
      const w = 31;
      const pred = tf.tidy(() => tf.exp(tf.randomUniform([h, w], 0, 0.6, 'float32', 7))) as tf.Tensor2D;
      const gt = tf.tidy(() => tf.exp(tf.randomUniform([h, w], 0, 0.6, 'float32', 8))) as tf.Tensor2D;
      const before = tf.memory().numTensors;
      const ours = await boundaryF1(pred, gt);
      expect(tf.memory().numTensors).to.equal(before);
      expect(ours).to.be.closeTo(bruteForceF1(pred.dataSync() as Float32Array, gt.dataSync() as Float32Array, h, w), 1e-12);
      expect(ours).to.be.greaterThan(0.2);
      tf.dispose([pred, gt]);
    });
  });
});
