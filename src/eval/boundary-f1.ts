/**
 * Scale-invariant boundary F1 (Depth Pro's `SI_boundary_F1`, as the reference calls it; spec §7 step 4), on two
 * depth maps [H, W] that are positive and finite (the clipped depths of metrics.ts). No validity mask.
 *
 * For a threshold t, a neighbour pair is a boundary in a direction when the depth ratio exceeds t:
 *   right: d[y, x+1] / d[y, x] > t     left:   d[y, x] / d[y, x+1] > t
 *   bottom: d[y+1, x] / d[y, x] > t    top:    d[y, x] / d[y+1, x] > t
 * recall = ¼ Σ_dir |P ∧ G| / max(|G|, 1), precision = ¼ Σ_dir |P ∧ G| / max(|P|, 1), F1 = 2PR / (P + R) (0 when
 * P + R = 0), and the score is Σ_k F1(t_k) · t_k / Σ t, t = linspace(1.05, 1.25, 10).
 *
 * Speed: instead of 10 thresholds × 4 directions × 3 masks of comparisons, each ratio map is bucketed once with
 * `searchSorted` (bucket b = how many thresholds the ratio exceeds) and all buckets are counted with one `bincount`;
 * "pred and GT both exceed t_k" is min(b_pred, b_gt) > k. Comparisons are exact: numpy compares the float32 ratio with
 * the float64 threshold, so each threshold becomes the smallest float32 above it and `ratio ≥ that` is tested.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';

export interface BoundaryF1Options {
  tMin?: number;
  tMax?: number;
  /** Number of thresholds. */
  count?: number;
}

/** `np.linspace(tMin, tMax, count)` in float64, with numpy's formula (start + i·step, last value exactly tMax). */
export function linspace(start: number, stop: number, count: number): number[] {
  if (count === 1) return [start];
  const step = (stop - start) / (count - 1);
  const out = Array.from({ length: count }, (_, i) => start + i * step);
  out[count - 1] = stop;
  return out;
}

const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);

/** The smallest float32 strictly greater than x (x positive and finite): float32 v > x ⇔ v ≥ this. */
export function float32Above(x: number): number {
  const r = Math.fround(x);
  if (r > x) return r;
  f32[0] = r;
  i32[0] = i32[0]! + 1;
  return f32[0]!;
}

/** One direction's boundary pair counts per threshold k: pairs of pred, of GT, and of both. */
export interface DirectionCounts {
  pred: number[];
  gt: number[];
  both: number[];
}

/** The four ratio maps of the 4 directions, each flattened: [right, left, bottom, top]. */
function directionRatios(d: tf.Tensor2D): tf.Tensor1D[] {
  const [h, w] = d.shape;
  const east = tf.slice(d, [0, 1], [h, w - 1]);
  const west = tf.slice(d, [0, 0], [h, w - 1]);
  const south = tf.slice(d, [1, 0], [h - 1, w]);
  const north = tf.slice(d, [0, 0], [h - 1, w]);
  return [tf.div(east, west), tf.div(west, east), tf.div(south, north), tf.div(north, south)].map((r) => tf.reshape(r, [-1]) as tf.Tensor1D);
}

/**
 * Boundary pair counts of pred and GT per direction and threshold. Thresholds ascending. Returns one entry per
 * direction (right, left, bottom, top).
 */
export async function boundaryCounts(predDepth: tf.Tensor2D, gtDepth: tf.Tensor2D, thresholds: readonly number[]): Promise<DirectionCounts[]> {
  if (predDepth.rank !== 2 || gtDepth.rank !== 2 || predDepth.shape[0] !== gtDepth.shape[0] || predDepth.shape[1] !== gtDepth.shape[1]) {
    throw new ShapeError(`boundaryF1: expected two [H, W] depth maps of one size but got [${predDepth.shape.join(', ')}] and [${gtDepth.shape.join(', ')}]`);
  }
  const buckets = thresholds.length + 1;
  const [h, w] = predDepth.shape;
  if (h < 2 && w < 2) return [0, 1, 2, 3].map(() => ({ pred: thresholds.map(() => 0), gt: thresholds.map(() => 0), both: thresholds.map(() => 0) }));
  const histogram = tf.tidy(() => {
    const edges = tf.tensor1d(thresholds.map(float32Above), 'float32');
    const rp = directionRatios(predDepth);
    const rg = directionRatios(gtDepth);
    // side 'right' counts the edges ≤ ratio, i.e. the thresholds the ratio exceeds. (searchSorted returns [1, n].)
    const bucketsOf = (r: tf.Tensor1D): tf.Tensor1D => tf.reshape(tf.searchSorted(edges, r, 'right'), [-1]) as tf.Tensor1D;
    // Offsets are int32 scalars: a plain number would promote the bucket indices to float32.
    const offset = (x: tf.Tensor1D, by: number): tf.Tensor1D => tf.add(x, tf.scalar(by, 'int32'));
    const parts: tf.Tensor1D[] = [];
    for (let dir = 0; dir < 4; dir++) {
      if (rp[dir]!.size === 0) continue;
      const bp = bucketsOf(rp[dir]!);
      const bg = bucketsOf(rg[dir]!);
      const base = dir * 3 * buckets;
      parts.push(offset(bp, base), offset(bg, base + buckets), offset(tf.minimum(bp, bg), base + 2 * buckets));
    }
    // Histogram layout: per direction, [pred buckets | GT buckets | both buckets].
    return tf.bincount(tf.concat(parts) as tf.Tensor1D, tf.tensor1d([], 'float32'), 4 * 3 * buckets);
  });
  const hist = await histogram.data().finally(() => histogram.dispose());
  // count(ratio > t_k) = Σ_{b > k} hist[b].
  const exceed = (offset: number): number[] => thresholds.map((_, k) => {
    let s = 0;
    for (let b = k + 1; b < buckets; b++) s += hist[offset + b]!;
    return s;
  });
  return [0, 1, 2, 3].map((dir) => {
    const base = dir * 3 * buckets;
    return { pred: exceed(base), gt: exceed(base + buckets), both: exceed(base + 2 * buckets) };
  });
}

/** F1 at threshold index k from the direction counts (the reference's `boundary_f1`). */
export function f1AtThreshold(counts: readonly DirectionCounts[], k: number): number {
  let recall = 0;
  let precision = 0;
  for (const c of counts) {
    recall += c.both[k]! / Math.max(c.gt[k]!, 1);
    precision += c.both[k]! / Math.max(c.pred[k]!, 1);
  }
  recall *= 0.25;
  precision *= 0.25;
  return recall + precision === 0 ? 0 : (2 * recall * precision) / (recall + precision);
}

/** Scale-invariant boundary F1 of one frame: Σ_k F1(t_k) · t_k / Σ t. */
export async function boundaryF1(predDepth: tf.Tensor2D, gtDepth: tf.Tensor2D, options: BoundaryF1Options = {}): Promise<number> {
  const thresholds = linspace(options.tMin ?? 1.05, options.tMax ?? 1.25, options.count ?? 10);
  const counts = await boundaryCounts(predDepth, gtDepth, thresholds);
  const total = thresholds.reduce((a, b) => a + b, 0);
  return thresholds.reduce((acc, t, k) => acc + f1AtThreshold(counts, k) * (t / total), 0);
}
