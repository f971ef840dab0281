/**
 * The reference's per-sequence alignment (spec §7 step 1): one least-squares scale and shift in disparity space,
 *   (s, t) = argmin Σ (s·pred + t − gt)²  over pixels with gt ≥ 1/max_depth,
 * for the whole sequence (`np.linalg.lstsq` on the stacked (T, H, W) arrays).
 *
 * A sequence can be longer than memory allows (UrbanSyn: 1000 frames at 2048×1024), so the fit is built from
 * per-frame sufficient statistics (count, means, centred second moments) merged with Chan's parallel formulas in
 * float64. Centring keeps the 2×2 normal equations well conditioned; the solution is the one lstsq returns, including
 * the minimum-norm answer when the prediction is constant over the mask (rank-deficient design matrix).
 *
 * Choices beyond the reference (which would propagate NaN into the fit): pixels whose GT or prediction is not finite
 * are left out of the fit.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';

/** The reference's max_depth (m): the depth clip and, as 1/70 in disparity, the alignment mask. */
export const MAX_DEPTH = 70;

/** Sufficient statistics of the least-squares fit over a set of pixels. Centred sums are about the set's means. */
export interface AlignmentStats {
  /** Pixels in the fit. */
  count: number;
  meanPred: number;
  meanGt: number;
  /** Σ (pred − meanPred)². */
  sumSqPred: number;
  /** Σ (pred − meanPred)(gt − meanGt). */
  sumCross: number;
}

export interface ScaleShift {
  scale: number;
  shift: number;
}

export const EMPTY_ALIGNMENT_STATS: Readonly<AlignmentStats> = { count: 0, meanPred: 0, meanGt: 0, sumSqPred: 0, sumCross: 0 };

function checkSameShape(pred: tf.Tensor, gt: tf.Tensor, what: string): void {
  if (pred.shape.length !== gt.shape.length || pred.shape.some((d, i) => d !== gt.shape[i])) {
    throw new ShapeError(`${what}: prediction [${pred.shape.join(', ')}] and ground truth [${gt.shape.join(', ')}] differ in shape (resize the prediction to the GT size first)`);
  }
}

/**
 * The fit's statistics over one frame (or any stack of frames): pixels with gt ≥ 1/maxDepth (compared in float32,
 * as numpy compares a float32 array with a Python float) and both values finite.
 */
export async function alignmentStats(pred: tf.Tensor, gt: tf.Tensor, maxDepth = MAX_DEPTH): Promise<AlignmentStats> {
  checkSameShape(pred, gt, 'alignmentStats');
  const values = tf.tidy(() => {
    const p = tf.cast(pred, 'float32');
    const g = tf.cast(gt, 'float32');
    const mask = tf.logicalAnd(tf.greaterEqual(g, 1 / maxDepth), tf.logicalAnd(tf.isFinite(p), tf.isFinite(g)));
    const zeros = tf.zerosLike(p);
    const m = tf.cast(mask, 'float32');
    const n = tf.sum(m);
    const safeN = tf.maximum(n, 1);
    const pm = tf.where(mask, p, zeros);
    const gm = tf.where(mask, g, zeros);
    const meanP = tf.div(tf.sum(pm), safeN);
    const meanG = tf.div(tf.sum(gm), safeN);
    const dp = tf.mul(tf.sub(pm, meanP), m);
    const dg = tf.mul(tf.sub(gm, meanG), m);
    return tf.stack([n, meanP, meanG, tf.sum(tf.square(dp)), tf.sum(tf.mul(dp, dg))]);
  });
  // Asynchronous readback: WebGPU in Node has no synchronous one (dataSync needs OffscreenCanvas).
  const [count, meanPred, meanGt, sumSqPred, sumCross] = Array.from(await values.data().finally(() => values.dispose()));
  return count! > 0 ? { count: count!, meanPred: meanPred!, meanGt: meanGt!, sumSqPred: sumSqPred!, sumCross: sumCross! } : { ...EMPTY_ALIGNMENT_STATS };
}

/** Statistics of the union of two disjoint pixel sets (Chan et al.'s pairwise update). */
export function mergeAlignmentStats(a: AlignmentStats, b: AlignmentStats): AlignmentStats {
  if (a.count === 0) return { ...b };
  if (b.count === 0) return { ...a };
  const count = a.count + b.count;
  const dP = b.meanPred - a.meanPred;
  const dG = b.meanGt - a.meanGt;
  const f = (a.count * b.count) / count;
  return {
    count,
    meanPred: a.meanPred + (dP * b.count) / count,
    meanGt: a.meanGt + (dG * b.count) / count,
    sumSqPred: a.sumSqPred + b.sumSqPred + dP * dP * f,
    sumCross: a.sumCross + b.sumCross + dP * dG * f,
  };
}

// lstsq's default rcond: machine epsilon of the inputs (float32 here) times the larger matrix dimension.
const FLOAT32_EPS = 1.1920929e-7;

/**
 * The least-squares (s, t). With no pixel in the mask lstsq returns zeros. When pred is (numerically) constant the
 * design matrix [pred, 1] has rank 1 and lstsq returns the minimum-norm solution s = c·ḡ/(c²+1), t = ḡ/(c²+1), which
 * maps the constant c onto ḡ.
 */
export function solveScaleShift(stats: AlignmentStats): ScaleShift {
  const { count: n, meanPred: c, meanGt: g, sumSqPred, sumCross } = stats;
  if (n === 0) return { scale: 0, shift: 0 };
  // Squared ratio of A's smallest to largest singular value, against lstsq's cutoff (rcond·σmax)².
  const variance = sumSqPred / n;
  const cutoff = FLOAT32_EPS * Math.max(n, 2);
  if (variance <= cutoff * cutoff * (c * c + 1 + variance)) {
    return { scale: (c * g) / (c * c + 1), shift: g / (c * c + 1) };
  }
  const scale = sumCross / sumSqPred;
  return { scale, shift: g - scale * c };
}

/** Fits (s, t) over a whole stack at once (in-memory sequences, tests). */
export async function fitScaleShift(pred: tf.Tensor, gt: tf.Tensor, maxDepth = MAX_DEPTH): Promise<ScaleShift> {
  return solveScaleShift(await alignmentStats(pred, gt, maxDepth));
}

/**
 * s·pred + t. A non-finite prediction becomes disparity 0 (the far clip, 70 m) instead of NaN: the pixel then counts
 * as an error rather than poisoning the sequence's mean (the reference would report NaN).
 */
export function applyScaleShift(pred: tf.Tensor, { scale, shift }: ScaleShift): tf.Tensor {
  return tf.tidy(() => {
    const p = tf.cast(pred, 'float32');
    return tf.where(tf.isFinite(p), tf.add(tf.mul(p, scale), shift), tf.zerosLike(p));
  });
}
