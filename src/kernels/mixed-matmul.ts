/**
 * `mixedMatMul`: the linear-layer op of `--precision mixed` (f16 operands on tensor cores, f32 accumulation), with
 * its shape checks and epilogue choice, over the kernel of ./tc-matmul.ts. Forward only; callers use it only where
 * `useTensorCores()` says so.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';
import { tensorCoreMatMul } from './tc-matmul.js';
import type { MatMulEpilogue, TensorCoreMatMulLayout } from './tc-matmul_webgpu.js';

export interface MixedMatMulOptions {
  bias?: tf.Tensor;
  /** Applied after the bias: exact GELU or ReLU, or `residual + gamma·y` (DINOv2's LayerScale residual). */
  activation?: 'gelu' | 'relu';
  residual?: { x: tf.Tensor; gamma: tf.Tensor };
  /** b is stored as [N, K] (tf.matMul's transposeB): packed transposed once, like any weight. */
  transposeB?: boolean;
  /** Workgroup layout (tuning; default `tensorCoreMatMulLayout(M, N)`). */
  layout?: TensorCoreMatMulLayout;
}

/** Whether the kernel takes these sizes: rows of A and B are packed from vec4s. */
export function mixedMatMulSupports(inFeatures: number, outFeatures: number): boolean {
  return inFeatures % 4 === 0 && outFeatures % 4 === 0;
}

/**
 * a [M, K] · b [K, N] (or bᵀ with b [N, K], `transposeB`) (+ bias [N]) then the optional epilogue → [M, N], with f16
 * operands and f32 accumulation.
 */
export function mixedMatMul(a: tf.Tensor2D, b: tf.Tensor2D, options: MixedMatMulOptions = {}): tf.Tensor2D {
  const [m, k] = a.shape;
  const { bias, residual, transposeB = false } = options;
  const [bk, n] = transposeB ? [b.shape[1], b.shape[0]] : b.shape;
  if (bk !== k || !mixedMatMulSupports(k, n) || (bias !== undefined && bias.size !== n)
    || (residual !== undefined && (residual.gamma.size !== n || residual.x.size !== m * n))) {
    throw new ShapeError(`mixedMatMul: expected a [M, K], b [K, N] (${transposeB ? '[N, K] transposed' : 'as stored'}) with K and N multiples of 4, bias/gamma [N] and residual [M, N]; got a [${a.shape.join(', ')}], b [${b.shape.join(', ')}]`
      + `${bias ? `, bias [${bias.shape.join(', ')}]` : ''}${residual ? `, gamma [${residual.gamma.shape.join(', ')}], residual [${residual.x.shape.join(', ')}]` : ''}`);
  }
  if (residual && options.activation) throw new ShapeError('mixedMatMul: an activation and a residual cannot be combined');
  const epilogue: MatMulEpilogue = residual ? 'scaleAdd' : options.activation ?? 'none';
  const extra = residual ? { residual: tf.reshape(residual.x, [m, n]), gamma: residual.gamma } : {};
  return tensorCoreMatMul({ a, weight: b, transposeWeight: transposeB, ...(bias ? { bias } : {}), ...extra }, epilogue, options.layout);
}
