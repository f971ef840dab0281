/**
 * The training loss of the reference's `train_sequence` (spec §5.3). Pure: tensors in, a scalar out.
 *
 *  - gt ← 100·gt (inverse depth in 1/m scaled to DA-V2's output range); valid = gt ≥ 0 (invalid pixels are −1, sky 0
 *    counts as valid).
 *  - `l1`: mean over the valid pixels of all frames of |pred − gt|.
 *  - `scaleshift`: per frame, least-squares s, t minimising Σ_valid (s·pred + t − gt)² (2×2 normal equations; frames
 *    with det ≤ 0 get s = t = 0), then the L1 of s·pred + t against gt.
 *  - `…temporal…k{K}`: after step 500, adds 0.5·Σ_{k=1..K} L1(pred_{t+k} − pred_t, gt_{t+k} − gt_t) over pixels valid
 *    in both frames whose relative gt change |Δgt| / (|mean of the two gt| + 1e-6) is below 0.2.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, ShapeError } from '../errors.js';

/** The "magic" factor matching DA-V2's output scale. */
export const GT_SCALE = 100;
/** The temporal term starts after this many steps. */
export const TEMPORAL_START_STEP = 500;
export const TEMPORAL_WEIGHT = 0.5;
export const TEMPORAL_MAX_RELATIVE_CHANGE = 0.2;

export interface LossSpec {
  base: 'l1' | 'scaleshift';
  /** K of the temporal term; 0 = none. */
  temporalK: number;
}

/** Parses `training.loss_type`: `l1`, `scaleshift`, or a string containing `temporal` and `k{K}`. */
export function parseLossType(lossType: string): LossSpec {
  const base = lossType.includes('scaleshift') ? 'scaleshift' : 'l1';
  if (lossType.includes('temporal')) {
    const k = /k(\d+)/.exec(lossType);
    if (!k || Number(k[1]) < 1) throw new ConfigError(`training.loss_type: ${JSON.stringify(lossType)} names a temporal loss without k{K} (e.g. l1_temporal_k2)`);
    return { base, temporalK: Number(k[1]) };
  }
  if (lossType !== 'l1' && lossType !== 'scaleshift') {
    throw new ConfigError(`training.loss_type: expected "l1", "scaleshift" or a temporal variant like "l1_temporal_k2" but received ${JSON.stringify(lossType)}`);
  }
  return { base, temporalK: 0 };
}

/** Mean of |a − b| over mask (1/0); an empty mask gives 0 rather than the NaN of an empty mean. */
function maskedL1(a: tf.Tensor, b: tf.Tensor, mask: tf.Tensor): tf.Scalar {
  const count = tf.maximum(tf.sum(mask), 1);
  return tf.div(tf.sum(tf.mul(tf.abs(tf.sub(a, b)), mask)), count) as tf.Scalar;
}

/**
 * Per-frame least-squares scale and shift aligning pred to gt on mask, applied: s·pred + t. Tensors are [N, H, W]
 * (N frames); the solve is differentiable in pred, as in the reference.
 */
export function alignScaleShift(pred: tf.Tensor3D, gt: tf.Tensor3D, mask: tf.Tensor3D): tf.Tensor3D {
  const a00 = tf.sum(tf.mul(tf.mul(pred, pred), mask), [1, 2]);
  const a01 = tf.sum(tf.mul(pred, mask), [1, 2]);
  const a11 = tf.sum(mask, [1, 2]);
  const b0 = tf.sum(tf.mul(tf.mul(pred, gt), mask), [1, 2]);
  const b1 = tf.sum(tf.mul(gt, mask), [1, 2]);
  const det = tf.sub(tf.mul(a00, a11), tf.mul(a01, a01));
  const ok = tf.greater(det, 0);
  const safeDet = tf.where(ok, det, tf.onesLike(det));
  const zero = tf.zerosLike(det);
  const s = tf.where(ok, tf.div(tf.sub(tf.mul(a11, b0), tf.mul(a01, b1)), safeDet), zero);
  const t = tf.where(ok, tf.div(tf.add(tf.mul(tf.neg(a01), b0), tf.mul(a00, b1)), safeDet), zero);
  return tf.add(tf.mul(pred, tf.reshape(s, [-1, 1, 1])), tf.reshape(t, [-1, 1, 1])) as tf.Tensor3D;
}

/**
 * The loss of one batch. pred: the model's ReLU'd output [B, T, H, W]; gtInvDepth: inverse depth in 1/m [B, T, H, W]
 * (−1 invalid); step: the optimiser step (for the temporal term's start).
 */
export function depthLoss(pred: tf.Tensor4D, gtInvDepth: tf.Tensor4D, spec: LossSpec, step = 0): tf.Scalar {
  if (pred.shape.some((d, i) => d !== gtInvDepth.shape[i])) {
    throw new ShapeError(`loss: prediction [${pred.shape.join(', ')}] and ground truth [${gtInvDepth.shape.join(', ')}] must have one shape [B, T, H, W]`);
  }
  return tf.tidy(() => {
    const [b, t, h, w] = pred.shape;
    const gt = tf.mul(gtInvDepth, GT_SCALE);
    const valid = tf.cast(tf.greaterEqual(gt, 0), 'float32');
    let aligned: tf.Tensor = pred;
    if (spec.base === 'scaleshift') {
      const flat = (x: tf.Tensor) => tf.reshape(x, [b * t, h, w]) as tf.Tensor3D;
      aligned = tf.reshape(alignScaleShift(flat(pred), flat(gt), flat(valid)), [b, t, h, w]);
    }
    let loss = maskedL1(aligned, gt, valid);
    if (spec.temporalK > 0 && step > TEMPORAL_START_STEP) {
      const terms: tf.Scalar[] = [];
      for (let k = 1; k <= Math.min(spec.temporalK, t - 1); k++) {
        const later = (x: tf.Tensor) => tf.slice(x, [0, k, 0, 0], [b, t - k, h, w]);
        const earlier = (x: tf.Tensor) => tf.slice(x, [0, 0, 0, 0], [b, t - k, h, w]);
        const gtDiff = tf.sub(later(gt), earlier(gt));
        const gtMean = tf.div(tf.add(later(gt), earlier(gt)), 2);
        const stable = tf.less(tf.div(tf.abs(gtDiff), tf.add(tf.abs(gtMean), 1e-6)), TEMPORAL_MAX_RELATIVE_CHANGE);
        const mask = tf.mul(tf.mul(later(valid), earlier(valid)), tf.cast(stable, 'float32'));
        terms.push(maskedL1(tf.sub(later(aligned), earlier(aligned)), gtDiff, mask));
      }
      if (terms.length > 0) loss = tf.add(loss, tf.mul(tf.addN(terms), TEMPORAL_WEIGHT)) as tf.Scalar;
    }
    return loss;
  });
}
