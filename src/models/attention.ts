/**
 * Multi-head scaled-dot-product attention that never materialises a score tensor larger than a budget.
 *
 * At 2044×1148 the ViT-S student has 11 973 tokens: one (heads × N × N) score tensor would be 3.4 GB, beyond wasm's
 * 4 GiB heap and WebGPU's 2 GiB binding limit. Queries are therefore processed in blocks so that each block's scores
 * (B × heads × rows × Lk) stay under `maxScoreElements`. Softmax is over complete key rows, so the result is
 * identical to the unchunked computation.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface AttentionOptions {
  /** Largest number of score elements (B·heads·rows·Lk) materialised at once. Default 2^25 (128 MiB of float32). */
  maxScoreElements?: number;
  /** Score scale; default 1/√headDim. */
  scale?: number;
}

export const DEFAULT_MAX_SCORE_ELEMENTS = 2 ** 25;

/** [B, L, H·Dh] → [B, H, L, Dh] (head-major channel order, as PyTorch's reshape(B, L, H, Dh)). */
export function splitHeads(x: tf.Tensor, numHeads: number): tf.Tensor4D {
  const [b, l, c] = x.shape as [number, number, number];
  return tf.transpose(tf.reshape(x, [b, l, numHeads, c / numHeads]), [0, 2, 1, 3]);
}

/** [B, H, L, Dh] → [B, L, H·Dh]. */
export function mergeHeads(x: tf.Tensor): tf.Tensor3D {
  const [b, h, l, d] = x.shape as [number, number, number, number];
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b, l, h * d]);
}

/**
 * softmax(q·kᵀ·scale)·v per head. q: [B, Lq, H·Dh], k and v: [B, Lk, H·Dh] → [B, Lq, H·Dh]. No mask.
 */
export function scaledDotProductAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, numHeads: number, options: AttentionOptions = {}): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, lq, c] = q.shape as [number, number, number];
    const lk = k.shape[1]!;
    const headDim = c / numHeads;
    if (!Number.isInteger(headDim)) throw new RangeError(`attention: ${c} channels do not split into ${numHeads} heads`);
    const scale = options.scale ?? 1 / Math.sqrt(headDim);
    const budget = options.maxScoreElements ?? DEFAULT_MAX_SCORE_ELEMENTS;
    const qh = splitHeads(tf.mul(q, scale), numHeads); // [B, H, Lq, Dh]
    const kh = splitHeads(k, numHeads); // [B, H, Lk, Dh]
    const vh = splitHeads(v, numHeads); // [B, H, Lk, Dh]
    const rows = Math.max(1, Math.min(lq, Math.floor(budget / (b * numHeads * lk))));
    const blocks: tf.Tensor[] = [];
    for (let start = 0; start < lq; start += rows) {
      const n = Math.min(rows, lq - start);
      const qb = rows >= lq ? qh : tf.slice(qh, [0, 0, start, 0], [b, numHeads, n, headDim]);
      const scores = tf.matMul(qb, kh, false, true); // [B, H, n, Lk]
      blocks.push(tf.matMul(tf.softmax(scores), vh)); // [B, H, n, Dh]
    }
    const out = blocks.length === 1 ? blocks[0]! : tf.concat(blocks, 2);
    return mergeHeads(out);
  });
}
