/** `FlashDepthLayerNorm`: LayerNormProgram's kernel function and op. Forward only. */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';
import { LayerNormProgram } from './layer-norm_webgpu.js';
import { layerNormRowLanes } from './mode.js';
import type { WebGPUBackendLike } from './program.js';

export const LAYER_NORM = 'FlashDepthLayerNorm';

function layerNormWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { x, gamma, beta } = args.inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
  // tokens > 1: leave the first row of every sequence of that many out (LayerNormProgram).
  const { eps, tokens = 0 } = args.attrs as { eps: number; tokens?: number };
  const program = new LayerNormProgram(x.shape[0]!, x.shape[1]!, layerNormRowLanes(), tokens);
  const uniforms = [{ type: 'float32' as const, data: [eps] }, ...(tokens > 1 ? [{ type: 'int32' as const, data: [tokens] }] : [])];
  return (args.backend as WebGPUBackendLike).runWebGPUProgram(program, [x, gamma, beta], 'float32', uniforms);
}

export const layerNormConfig: tf.KernelConfig = { kernelName: LAYER_NORM, backendName: 'webgpu', kernelFunc: layerNormWebGPU as tf.KernelFunc };

/** (x − mean)/√(var + eps)·weight + bias over the last axis of x (any rank); weight and bias [C]. */
export function fusedLayerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor {
  checkLayerNormParams(x, weight, bias);
  const cols = x.shape[x.shape.length - 1]!;
  return tf.tidy(() => {
    const x2 = tf.reshape(x, [-1, cols]); // [..., C] -> [rows, C]
    const y = tf.engine().runKernel(LAYER_NORM, { x: x2, gamma: weight, beta: bias }, { eps }) as tf.Tensor;
    return tf.reshape(y, x.shape);
  });
}

/**
 * fusedLayerNorm of tokens 1… of each sequence of x [B, T, C] (a ViT's patch tokens, its CLS token left out):
 * [B, T − 1, C] in the one dispatch, with no slice before or after it.
 */
export function fusedLayerNormDroppingFirst(x: tf.Tensor3D, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor3D {
  checkLayerNormParams(x, weight, bias);
  const [b, t, cols] = x.shape;
  if (t < 2) throw new ShapeError(`layerNorm: no tokens after the first in x [${x.shape.join(', ')}]`);
  return tf.tidy(() => {
    const y = tf.engine().runKernel(LAYER_NORM, { x: tf.reshape(x, [b * t, cols]), gamma: weight, beta: bias }, { eps, tokens: t }) as tf.Tensor;
    return tf.reshape(y, [b, t - 1, cols]);
  });
}

function checkLayerNormParams(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor): void {
  const cols = x.shape[x.shape.length - 1]!;
  if (weight.size !== cols || bias.size !== cols) {
    throw new ShapeError(`layerNorm: weight [${weight.shape.join(', ')}] and bias [${bias.shape.join(', ')}] must have ${cols} elements (the last axis of x [${x.shape.join(', ')}])`);
  }
}
