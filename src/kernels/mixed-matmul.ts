/**
 * `FlashDepthMixedMatMul`: the kernel function around MixedMatMulProgram (tensor cores, f16 operands, f32
 * accumulation) and the op that calls it. Forward only; callers use it only where `useTensorCores()` says so.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';
import { MixedMatMulProgram, type MatMulEpilogue, type MatMulTiles } from './mixed-matmul_webgpu.js';
import type { WebGPUBackendLike } from './program.js';

export const MIXED_MATMUL = 'FlashDepthMixedMatMul';

export interface MixedMatMulOptions {
  bias?: tf.Tensor;
  /** Applied after the bias: exact GELU, or `residual + gamma·y` (DINOv2's LayerScale residual). */
  activation?: 'gelu';
  residual?: { x: tf.Tensor; gamma: tf.Tensor };
  /** Workgroup tile in 16×16 tiles (tuning; default DEFAULT_MATMUL_TILES). */
  tiles?: MatMulTiles;
}

function mixedMatMulWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { a, b, bias, residual, gamma } = args.inputs as Record<string, tf.TensorInfo | undefined>;
  const epilogue = (args.attrs?.['epilogue'] ?? 'none') as MatMulEpilogue;
  const tiles = args.attrs?.['tiles'] as MatMulTiles | undefined;
  const program = new MixedMatMulProgram(a!.shape[0]!, b!.shape[1]!, bias !== undefined, epilogue, tiles ?? undefined);
  const inputs = [a!, b!, ...(bias ? [bias] : []), ...(epilogue === 'scaleAdd' ? [residual!, gamma!] : [])];
  return (args.backend as WebGPUBackendLike).runWebGPUProgram(program, inputs, 'float32');
}

export const mixedMatMulConfig: tf.KernelConfig = { kernelName: MIXED_MATMUL, backendName: 'webgpu', kernelFunc: mixedMatMulWebGPU as tf.KernelFunc };

/** Whether the kernel takes these sizes: rows of A and B are read as vec4s. */
export function mixedMatMulSupports(inFeatures: number, outFeatures: number): boolean {
  return inFeatures % 4 === 0 && outFeatures % 4 === 0;
}

/** a [M, K] · b [K, N] (+ bias [N]) then the optional epilogue → [M, N], with f16 operands and f32 accumulation. */
export function mixedMatMul(a: tf.Tensor2D, b: tf.Tensor2D, options: MixedMatMulOptions = {}): tf.Tensor2D {
  const [m, k] = a.shape;
  const n = b.shape[1];
  const { bias, residual } = options;
  if (b.shape[0] !== k || !mixedMatMulSupports(k, n) || (bias !== undefined && bias.size !== n)
    || (residual !== undefined && (residual.gamma.size !== n || residual.x.size !== m * n))) {
    throw new ShapeError(`mixedMatMul: expected a [M, K], b [K, N] with K and N multiples of 4, bias/gamma [N] and residual [M, N]; got a [${a.shape.join(', ')}], b [${b.shape.join(', ')}]`
      + `${bias ? `, bias [${bias.shape.join(', ')}]` : ''}${residual ? `, gamma [${residual.gamma.shape.join(', ')}], residual [${residual.x.shape.join(', ')}]` : ''}`);
  }
  const epilogue: MatMulEpilogue = residual ? 'scaleAdd' : options.activation === 'gelu' ? 'gelu' : 'none';
  if (residual && options.activation) throw new ShapeError('mixedMatMul: an activation and a residual cannot be combined');
  const inputs: tf.NamedTensorMap = { a, b };
  if (bias) inputs['bias'] = bias;
  if (residual) {
    inputs['residual'] = tf.reshape(residual.x, [m, n]);
    inputs['gamma'] = residual.gamma;
  }
  const attrs = { epilogue, ...(options.tiles ? { tiles: options.tiles } : {}) };
  return tf.engine().runKernel(MIXED_MATMUL, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}
