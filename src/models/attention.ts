/**
 * Multi-head scaled-dot-product attention that never materialises a score tensor larger than a budget.
 *
 * At 2044×1148 the ViT-S student has 11 973 tokens: one (heads × N × N) score tensor would be 3.4 GB, beyond wasm's
 * 4 GiB heap and WebGPU's 2 GiB binding limit. Queries are therefore processed in blocks so that each block's scores
 * (rows × Lk per head, heads one at a time) stay under `maxScoreElements`, and each block runs in its own tidy so that its scores are
 * freed before the next block starts (at inference; a gradient tape keeps what the backward pass needs). Softmax is
 * over complete key rows, so the result equals the unchunked computation.
 *
 * Public API: `scaledDotProductAttention(q, k, v, numHeads, {maxScoreElements, scale})`, `selfAttention(qkv, ...)`, `queryBlockRows(...)`
 * (the block size it uses), `splitHeads`, `mergeHeads`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';
import './ops.js'; // registers the gradients
import { flashAttention, flashAttentionSupports, useFusedKernels } from '../kernels/index.js';

export interface AttentionOptions {
  /** Largest number of score elements (rows·Lk of one head) materialised at once. Default 2^25 (128 MiB of float32). */
  maxScoreElements?: number;
  /** Score scale; default 1/√headDim. */
  scale?: number;
  /** All heads in one batched matMul (default on GPU backends) or one 2-D matMul per head (default on wasm/cpu). */
  batchedHeads?: boolean;
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
 * Query rows per block so that one head's block of scores (rows × Lk) stays within the budget (at least one row:
 * a single row of scores is the smallest unit softmax can be computed on).
 */
export function queryBlockRows(lq: number, lk: number, maxScoreElements: number): number {
  return Math.max(1, Math.min(lq, Math.floor(maxScoreElements / lk)));
}

/**
 * softmax(q·kᵀ·scale)·v per head. q: [B, Lq, H·Dh], k and v: [B, Lk, H·Dh] → [B, Lq, H·Dh]. No mask.
 *
 * Each (batch, head) pair is computed with 2-D matMuls against a pre-transposed K: on wasm, 2-D matMul runs through
 * XNNPACK while batched (rank-4) matMul and `transposeB` take a far slower path (measured on the 2-core dev box, ViT-S
 * at 518², 6 heads × 1370 tokens: q·kᵀ 15 s batched vs 0.06 s as six 2-D products; scores·v 0.6 s vs 0.03 s).
 * Heads are merged by concatenating along channels, which is PyTorch's head-major order.
 */
export function scaledDotProductAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, numHeads: number, options: AttentionOptions = {}): tf.Tensor3D {
  return tf.tidy(() => {
    if (q.rank !== 3 || k.rank !== 3 || v.rank !== 3 || k.shape[0] !== q.shape[0] || v.shape[0] !== q.shape[0]
      || k.shape[1] !== v.shape[1] || k.shape[2] !== q.shape[2] || v.shape[2] !== q.shape[2]) {
      throw new ShapeError(`attention: expected q [B, Lq, C], k and v [B, Lk, C], got [${q.shape.join(', ')}], [${k.shape.join(', ')}], [${v.shape.join(', ')}]`);
    }
    const [b, lq, c] = q.shape as [number, number, number];
    const lk = k.shape[1]!;
    const headDim = c / numHeads;
    if (!Number.isInteger(headDim)) throw new ShapeError(`attention: ${c} channels do not split into ${numHeads} heads`);
    const scale = options.scale ?? 1 / Math.sqrt(headDim);
    const maxScoreElements = options.maxScoreElements ?? DEFAULT_MAX_SCORE_ELEMENTS;
    // On webgpu one flash-attention dispatch replaces the chunked matMul/softmax path (no scores in memory at all).
    if (useFusedKernels() && flashAttentionSupports(headDim)) {
      return flashAttention(q as tf.Tensor3D, k as tf.Tensor3D, v as tf.Tensor3D, { numHeads, headDim, scale, qOffset: 0, kOffset: 0, vOffset: 0 });
    }
    const rows = queryBlockRows(lq, lk, maxScoreElements);
    const qh = splitHeads(tf.mul(q, scale), numHeads); // [B, H, Lq, Dh]
    const khT = tf.transpose(tf.reshape(k, [b, lk, numHeads, headDim]), [0, 2, 3, 1]) as tf.Tensor4D; // [B, H, Dh, Lk]
    const vh = splitHeads(v, numHeads); // [B, H, Lk, Dh]
    if (options.batchedHeads ?? prefersBatchedMatMul()) return batchedHeads(qh, khT, vh, maxScoreElements);
    const batches: tf.Tensor[] = [];
    for (let n = 0; n < b; n++) {
      const heads: tf.Tensor[] = [];
      for (let h = 0; h < numHeads; h++) {
        const kT = tf.reshape(tf.slice(khT, [n, h, 0, 0], [1, 1, headDim, lk]), [headDim, lk]);
        const vv = tf.reshape(tf.slice(vh, [n, h, 0, 0], [1, 1, lk, headDim]), [lk, headDim]);
        const blocks: tf.Tensor[] = [];
        for (let start = 0; start < lq; start += rows) {
          const m = Math.min(rows, lq - start);
          // Own tidy: this block's scores are freed before the next block's are made.
          blocks.push(tf.tidy(() => {
            const qb = tf.reshape(tf.slice(qh, [n, h, start, 0], [1, 1, m, headDim]), [m, headDim]);
            return tf.matMul(tf.softmax(tf.matMul(qb, kT)), vv); // [m, Dh]
          }));
        }
        heads.push(blocks.length === 1 ? blocks[0]! : tf.concat(blocks, 0)); // [Lq, Dh]
      }
      batches.push(tf.concat(heads, 1)); // [Lq, H·Dh], head-major
    }
    return tf.stack(batches) as tf.Tensor3D; // [B, Lq, C]
  });
}

/**
 * Self-attention from a fused qkv projection: qkv [B, N, 3·C] with columns [q | k | v], each head-major → [B, N, C].
 * On webgpu the flash kernel reads q, k and v straight from qkv (no split); elsewhere this is split + the above.
 */
export function selfAttention(qkv: tf.Tensor3D, numHeads: number, options: AttentionOptions = {}): tf.Tensor3D {
  return tf.tidy(() => {
    const c = qkv.shape[2] / 3;
    const headDim = c / numHeads;
    if (useFusedKernels() && Number.isInteger(headDim) && flashAttentionSupports(headDim)) {
      const scale = options.scale ?? 1 / Math.sqrt(headDim);
      return flashAttention(qkv, qkv, qkv, { numHeads, headDim, scale, qOffset: 0, kOffset: c, vOffset: 2 * c });
    }
    const [q, k, v] = tf.split(qkv, 3, 2); // [B, N, 3C] -> 3 × [B, N, C]
    return scaledDotProductAttention(q!, k!, v!, numHeads, options);
  });
}

/**
 * On GPU backends every kernel launch costs host time (≈0.25 ms per dispatch measured with tfjs-webgpu on the H100),
 * so there all heads go through one batched matMul per query block; on wasm and cpu the per-head 2-D path above is
 * far faster (see scaledDotProductAttention).
 */
function prefersBatchedMatMul(): boolean {
  const backend = tf.getBackend();
  return backend !== 'wasm' && backend !== 'cpu';
}

/** All heads at once: qh [B, H, Lq, Dh], khT [B, H, Dh, Lk], vh [B, H, Lk, Dh] → [B, Lq, H·Dh]. */
function batchedHeads(qh: tf.Tensor4D, khT: tf.Tensor4D, vh: tf.Tensor4D, maxScoreElements: number): tf.Tensor3D {
  const [b, h, lq, d] = qh.shape;
  const lk = khT.shape[3];
  // The budget covers the scores of every head of the block: B·H·rows·Lk elements.
  const rows = queryBlockRows(lq, lk * b * h, maxScoreElements);
  const blocks: tf.Tensor[] = [];
  for (let start = 0; start < lq; start += rows) {
    const m = Math.min(rows, lq - start);
    blocks.push(tf.tidy(() => {
      const qb = m === lq ? qh : tf.slice(qh, [0, 0, start, 0], [b, h, m, d]);
      return tf.matMul(tf.softmax(tf.matMul(qb, khT)), vh); // [B, H, m, Dh]
    }));
  }
  return mergeHeads(blocks.length === 1 ? blocks[0]! : tf.concat(blocks, 2));
}
