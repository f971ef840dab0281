/**
 * DINOv2 position-embedding interpolation (spec §2.2), reproducing PyTorch's
 * `F.interpolate(mode='bicubic', align_corners=False, antialias=False, scale_factor=((ph+0.1)/37, (pw+0.1)/37))`.
 *
 * Public API:
 *  - `bicubicMatrix(outSize, inSize, scaleFactor)`: the [outSize, inSize] 1-D resampling matrix (row-major).
 *  - `PosEmbedInterpolator`: caches the row/column matrices per patch grid as kept tensors and applies them to a
 *    (1, 1 + S², D) position embedding; `interpolate(posEmbed, ph, pw)` → (1, 1 + ph·pw, D). `dispose()` frees the cache.
 *  - `needsInterpolation(ph, pw, gridSize)`: false only for the exact square grid the embedding was trained at.
 *
 * The interpolation is a pair of matMuls with constant matrices, so it is differentiable (pos_embed is trained) and
 * runs on every backend. Outside a gradient tape the result is cached too, per grid, and reused while the embedding
 * is the same tensor data: a changed weight (loadWeights, an optimizer step) is a new dataId, so it is recomputed.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Cubic-convolution coefficient used by PyTorch's bicubic upsampling. */
const CUBIC_A = -0.75;

/** DINOv2's `interpolate_offset`: added to the target grid size before computing the scale factor. */
export const INTERPOLATE_OFFSET = 0.1;

const f32 = Math.fround;

/** Weight of a tap at distance s ∈ [0, 1]. */
function cubicNear(s: number): number {
  return ((CUBIC_A + 2) * s - (CUBIC_A + 3)) * s * s + 1;
}

/** Weight of a tap at distance s ∈ [1, 2]. */
function cubicFar(s: number): number {
  return ((CUBIC_A * s - 5 * CUBIC_A) * s + 8 * CUBIC_A) * s - 4 * CUBIC_A;
}

/**
 * The [outSize, inSize] matrix of PyTorch's 1-D bicubic resampling (align_corners=False) with an explicit scale
 * factor. PyTorch maps output index i to `src = (i + 0.5)·(1/scaleFactor) − 0.5` — the *given* scale, not
 * inSize/outSize — takes the 4 taps floor(src)−1 … floor(src)+2 clamped to the border, and computes the coordinate
 * in float32 (its accumulation type for float tensors), which `Math.fround` mirrors.
 */
export function bicubicMatrix(outSize: number, inSize: number, scaleFactor: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  const scale = f32(1 / scaleFactor);
  for (let i = 0; i < outSize; i++) {
    const src = f32(f32(scale * f32(i + 0.5)) - 0.5);
    const f = Math.floor(src);
    const t = f32(src - f);
    const weights = [cubicFar(t + 1), cubicNear(t), cubicNear(1 - t), cubicFar(2 - t)];
    for (let tap = 0; tap < 4; tap++) {
      const j = Math.min(Math.max(f - 1 + tap, 0), inSize - 1);
      m[i * inSize + j] += weights[tap]!;
    }
  }
  return m;
}

/** DINOv2 uses the stored embedding unchanged only for the exact square training grid (37×37 at 518×518). */
export function needsInterpolation(ph: number, pw: number, gridSize: number): boolean {
  return !(ph * pw === gridSize * gridSize && ph === pw);
}

interface GridMatrices {
  /** [ph, S]: resamples rows. */
  rows: tf.Tensor2D;
  /** [pw, S]: resamples columns. */
  cols: tf.Tensor2D;
  /** The last inference result for this grid and the embedding data it was computed from. */
  result?: { source: object; value: tf.Tensor3D };
}

/** Interpolates a (1, 1 + S², D) position embedding to a ph×pw patch grid, caching the matrices per grid. */
export class PosEmbedInterpolator {
  private readonly cache = new Map<string, GridMatrices>();

  /** @param gridSize S, the side of the stored square grid (37 for DINOv2 at img_size 518). */
  constructor(readonly gridSize: number) {}

  /** Number of grids whose matrices are cached (each holds 2 kept tensors, plus its result once used for inference). */
  get cachedGrids(): number {
    return this.cache.size;
  }

  /**
   * (1, 1 + S², D) → (1, 1 + ph·pw, D): CLS entry unchanged, patch entries bicubically resampled (row-major grid).
   * Returns the input itself for the exact S×S grid, and the cached result outside a gradient tape: the returned
   * tensor is borrowed (do not dispose it). Call inside the caller's tf.tidy.
   */
  interpolate(posEmbed: tf.Tensor3D, ph: number, pw: number): tf.Tensor3D {
    if (!needsInterpolation(ph, pw, this.gridSize)) return posEmbed;
    const entry = this.matrices(ph, pw);
    // Under a tape the result must be computed from posEmbed by recorded ops, or pos_embed gets no gradient.
    if (tf.engine().isTapeOn()) return this.resample(posEmbed, entry, ph, pw);
    if (entry.result?.source !== posEmbed.dataId) {
      if (entry.result) entry.result.value.dispose();
      entry.result = { source: posEmbed.dataId, value: tf.keep(tf.tidy(() => this.resample(posEmbed, entry, ph, pw))) };
    }
    return entry.result.value;
  }

  /** Frees the cached matrices and results. */
  dispose(): void {
    for (const { rows, cols, result } of this.cache.values()) tf.dispose([rows, cols, ...(result ? [result.value] : [])]);
    this.cache.clear();
  }

  private resample(posEmbed: tf.Tensor3D, { rows, cols }: GridMatrices, ph: number, pw: number): tf.Tensor3D {
    const s = this.gridSize;
    const d = posEmbed.shape[2];
    const cls = tf.slice(posEmbed, [0, 0, 0], [1, 1, d]);
    const grid = tf.reshape(tf.slice(posEmbed, [0, 1, 0], [1, s * s, d]), [s, s * d]); // [S(rows), S(cols)·D]
    const rowsDone = tf.reshape(tf.matMul(rows, grid), [ph, s, d]); // [ph, S(cols), D]
    const colsFirst = tf.reshape(tf.transpose(rowsDone, [1, 0, 2]), [s, ph * d]); // [S(cols), ph·D]
    const both = tf.reshape(tf.matMul(cols, colsFirst), [pw, ph, d]); // [pw, ph, D]
    const patches = tf.reshape(tf.transpose(both, [1, 0, 2]), [1, ph * pw, d]); // [1, ph·pw, D] row-major
    return tf.concat([cls, patches], 1) as tf.Tensor3D;
  }

  private matrices(ph: number, pw: number): GridMatrices {
    const key = `${ph}x${pw}`;
    let entry = this.cache.get(key);
    if (!entry) {
      const s = this.gridSize;
      // Kept so that a first call inside the caller's tidy does not dispose the cache with the frame.
      entry = {
        rows: tf.keep(tf.tensor2d(bicubicMatrix(ph, s, (ph + INTERPOLATE_OFFSET) / s), [ph, s])),
        cols: tf.keep(tf.tensor2d(bicubicMatrix(pw, s, (pw + INTERPOLATE_OFFSET) / s), [pw, s])),
      };
      this.cache.set(key, entry);
    }
    return entry;
  }
}
