/**
 * A tiny end-to-end check of the running backend: a matmul against a plain JavaScript dot product. It catches the
 * failure modes that do not throw (a WebGPU binding over its limit reads back zeros, a broken thread pool).
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '../errors.js';

export interface MatmulCheck {
  n: number;
  backend: string;
  maxAbsError: number;
  maxAbsRef: number;
}

/** Deterministic values in [-1, 1) (an LCG), so a failure reproduces. */
function pseudoRandom(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let s = seed >>> 0;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** n×n matmul on the backend vs. a float64 JS reference; throws a BackendError past `tolerance`·max|ref|. */
export async function checkMatmul(n = 64, tolerance = 1e-4): Promise<MatmulCheck> {
  const a = pseudoRandom(n * n, 1);
  const b = pseudoRandom(n * n, 2);
  const product = tf.tidy(() => tf.matMul(tf.tensor2d(a, [n, n]), tf.tensor2d(b, [n, n])));
  const ours = await product.data();
  product.dispose();
  let maxAbsError = 0;
  let maxAbsRef = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let dot = 0;
      for (let k = 0; k < n; k++) dot += a[i * n + k]! * b[k * n + j]!;
      const err = Math.abs(ours[i * n + j]! - dot);
      maxAbsError = Number.isNaN(err) ? Infinity : Math.max(maxAbsError, err);
      maxAbsRef = Math.max(maxAbsRef, Math.abs(dot));
    }
  }
  const result = { n, backend: tf.getBackend(), maxAbsError, maxAbsRef };
  if (!(maxAbsError <= tolerance * maxAbsRef)) {
    throw new BackendError(`backend ${result.backend}: ${n}×${n} matmul check failed: max |tf − js| = ${maxAbsError.toExponential(2)} (max |ref| ${maxAbsRef.toFixed(3)})`);
  }
  return result;
}
