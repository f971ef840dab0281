/**
 * The reference's depth metrics (spec §7, upstream `compute_depth_metrics`). Inputs are inverse depth (disparity):
 *
 *  1. align: one (s, t) per sequence in disparity over gt ≥ 1/70 (align.ts);
 *  2. to depth: d = 1 / clip(disp, min 1e-3), then clip to [1e-3, 70], for prediction and GT alike;
 *  3. over valid = (gt_depth > 0) & (gt_disp ≥ 0), which keeps sky (GT disparity 0 → 70 m):
 *     AbsRel = mean |d_pred − d_gt| / d_gt,  δ1 = mean(max(d_pred/d_gt, d_gt/d_pred) < 1.25);
 *  4. scale-invariant boundary F1 per frame on the clipped depth maps, no mask (boundary-f1.ts), averaged over frames.
 *
 * AbsRel and δ1 are means over every valid pixel of the sequence (the reference stacks (T, H, W)), so frames add up
 * as sums and counts (`DepthErrorSums`). Pure functions; tensors in, numbers or new tensors out.
 *
 * Choices beyond the reference: GT that is not finite is invalid (the dataset readers already turn it into −1; the
 * reference would keep +inf as a 1 mm "valid" pixel). Predictions are first resized to the GT size (bilinear,
 * align_corners=True, spec §6.3).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';
import { resizeAlignCorners } from '../models/ops.js';
import { applyScaleShift, fitScaleShift, MAX_DEPTH, type ScaleShift } from './align.js';
import { boundaryF1 } from './boundary-f1.js';

/** The lower clip of disparity and of depth. */
export const MIN_DEPTH = 1e-3;
/** δ1's ratio threshold. */
export const DELTA1_THRESHOLD = 1.25;

/** Sums over the valid pixels of one or more frames, from which AbsRel and δ1 follow. */
export interface DepthErrorSums {
  /** Σ |d_pred − d_gt| / d_gt. */
  absRelSum: number;
  /** Pixels with max(d_pred/d_gt, d_gt/d_pred) < 1.25. */
  delta1Count: number;
  validCount: number;
}

export const EMPTY_ERROR_SUMS: Readonly<DepthErrorSums> = { absRelSum: 0, delta1Count: 0, validCount: 0 };

/** The metrics of one sequence (or of any set of frames treated as one). */
export interface DepthMetrics {
  /** NaN when no pixel is valid (as numpy's mean of an empty array). */
  absRel: number;
  delta1: number;
  /** Mean of the per-frame boundary F1. */
  boundaryF1: number;
  /** The sequence's disparity alignment pred ← scale·pred + shift. */
  scale: number;
  shift: number;
  validPixels: number;
  /** Frames with ground truth that entered the metrics. */
  frames: number;
}

/** GT disparity with non-finite values (NaN, ±inf) marked invalid (−1), the dataset readers' convention. */
export function sanitizeGroundTruth(gtDisp: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.where(tf.isFinite(gtDisp), gtDisp, tf.fill(gtDisp.shape, -1)));
}

/** d = 1 / clip(disp, min 1e-3), clipped to [1e-3, maxDepth]. */
export function disparityToDepth(disp: tf.Tensor, maxDepth = MAX_DEPTH): tf.Tensor {
  return tf.tidy(() => tf.clipByValue(tf.div(1, tf.maximum(disp, MIN_DEPTH)), MIN_DEPTH, maxDepth));
}

/** AbsRel and δ1 sums of one frame (or stack): depths already clipped, `gtDisp` the sanitised GT disparity. */
export async function depthErrorSums(predDepth: tf.Tensor, gtDepth: tf.Tensor, gtDisp: tf.Tensor): Promise<DepthErrorSums> {
  const sums = tf.tidy(() => {
    const valid = tf.logicalAnd(tf.greater(gtDepth, 0), tf.greaterEqual(gtDisp, 0));
    const v = tf.cast(valid, 'float32');
    const absRel = tf.div(tf.abs(tf.sub(predDepth, gtDepth)), gtDepth);
    const ratio = tf.maximum(tf.div(predDepth, gtDepth), tf.div(gtDepth, predDepth));
    const within = tf.cast(tf.less(ratio, DELTA1_THRESHOLD), 'float32');
    return tf.stack([tf.sum(tf.mul(absRel, v)), tf.sum(tf.mul(within, v)), tf.sum(v)]);
  });
  const [absRelSum, delta1Count, validCount] = Array.from(await sums.data().finally(() => sums.dispose()));
  return { absRelSum: absRelSum!, delta1Count: delta1Count!, validCount: validCount! };
}

export function addErrorSums(a: DepthErrorSums, b: DepthErrorSums): DepthErrorSums {
  return { absRelSum: a.absRelSum + b.absRelSum, delta1Count: a.delta1Count + b.delta1Count, validCount: a.validCount + b.validCount };
}

/** AbsRel and δ1 from sums (NaN when nothing is valid). */
export function metricsFromSums(sums: DepthErrorSums): { absRel: number; delta1: number } {
  if (sums.validCount === 0) return { absRel: NaN, delta1: NaN };
  return { absRel: sums.absRelSum / sums.validCount, delta1: sums.delta1Count / sums.validCount };
}

export interface FrameMetrics {
  sums: DepthErrorSums;
  boundaryF1: number;
}

/**
 * Steps 2–4 for one frame [H, W] whose prediction is already resized and aligned: error sums and boundary F1.
 * `gtDisp` is the raw GT disparity (non-finite values are treated as invalid).
 */
export async function frameMetrics(alignedPred: tf.Tensor, gtDisp: tf.Tensor, maxDepth = MAX_DEPTH): Promise<FrameMetrics> {
  if (alignedPred.rank !== 2 || gtDisp.rank !== 2) {
    throw new ShapeError(`frameMetrics: expected [H, W] maps but got prediction [${alignedPred.shape.join(', ')}] and ground truth [${gtDisp.shape.join(', ')}]`);
  }
  const [gtClean, predDepth, gtDepth] = tf.tidy(() => {
    const g = sanitizeGroundTruth(gtDisp);
    return [g, disparityToDepth(alignedPred, maxDepth), disparityToDepth(g, maxDepth)];
  });
  try {
    return {
      sums: await depthErrorSums(predDepth, gtDepth, gtClean),
      boundaryF1: await boundaryF1(predDepth as tf.Tensor2D, gtDepth as tf.Tensor2D),
    };
  } finally {
    tf.dispose([gtClean, predDepth, gtDepth]);
  }
}

/**
 * Resizes a prediction [h, w] (or [1, h, w]) to the GT size [H, W] with bilinear align_corners=True (spec §6.3); a
 * same-size prediction is returned as a copy.
 */
export function resizePrediction(pred: tf.Tensor, height: number, width: number): tf.Tensor2D {
  return tf.tidy(() => {
    const p = tf.cast(pred, 'float32');
    const map = p.rank === 3 && p.shape[0] === 1 ? tf.squeeze(p, [0]) : p;
    if (map.rank !== 2) throw new ShapeError(`resizePrediction: expected an [H, W] or [1, H, W] prediction but got [${pred.shape.join(', ')}]`);
    const [h, w] = map.shape as [number, number];
    if (h === height && w === width) return tf.clone(map) as tf.Tensor2D;
    const x = tf.reshape(map, [1, h, w, 1]) as tf.Tensor4D;
    return tf.reshape(resizeAlignCorners(x, height, width), [height, width]) as tf.Tensor2D;
  });
}

/**
 * `compute_depth_metrics(pred (T, H, W), gt (T, H, W))` on in-memory stacks: both inverse depth, pred already at the
 * GT size. The streaming evaluator (run.ts) computes the same from per-frame statistics.
 */
export async function computeDepthMetrics(pred: tf.Tensor, gt: tf.Tensor, maxDepth = MAX_DEPTH): Promise<DepthMetrics> {
  const stackPred = pred.rank === 2 ? tf.expandDims(pred, 0) : pred;
  const stackGt = gt.rank === 2 ? tf.expandDims(gt, 0) : gt;
  try {
    if (stackPred.rank !== 3 || stackPred.shape.some((d, i) => d !== stackGt.shape[i])) {
      throw new ShapeError(`computeDepthMetrics: prediction [${pred.shape.join(', ')}] and ground truth [${gt.shape.join(', ')}] must both be [T, H, W] of one shape`);
    }
    const alignment: ScaleShift = await fitScaleShift(stackPred, stackGt, maxDepth);
    const frames = stackPred.shape[0]!;
    let sums: DepthErrorSums = { ...EMPTY_ERROR_SUMS };
    let f1Sum = 0;
    for (let t = 0; t < frames; t++) {
      const [p, g] = tf.tidy(() => {
        const [, h, w] = stackPred.shape as [number, number, number];
        const pt = tf.reshape(tf.slice(stackPred, [t, 0, 0], [1, h, w]), [h, w]);
        return [applyScaleShift(pt, alignment), tf.reshape(tf.slice(stackGt, [t, 0, 0], [1, h, w]), [h, w])];
      });
      try {
        const m = await frameMetrics(p, g, maxDepth);
        sums = addErrorSums(sums, m.sums);
        f1Sum += m.boundaryF1;
      } finally {
        tf.dispose([p, g]);
      }
    }
    return { ...metricsFromSums(sums), boundaryF1: frames > 0 ? f1Sum / frames : NaN, ...alignment, validPixels: sums.validCount, frames };
  } finally {
    if (stackPred !== pred) stackPred.dispose();
    if (stackGt !== gt) stackGt.dispose();
  }
}
