/** `FlashDepthLayerNorm`: LayerNormProgram's kernel function and op. Forward only. */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';
import { LayerNormProgram } from './layer-norm_webgpu.js';
import { layerNormRowLanes } from './mode.js';
import type { WebGPUBackendLike } from './program.js';

export const LAYER_NORM = 'FlashDepthLayerNorm';

function layerNormWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { x, gamma, beta } = args.inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
  const eps = (args.attrs as { eps: number }).eps;
  const program = new LayerNormProgram(x.shape[0]!, x.shape[1]!, layerNormRowLanes());
  return (args.backend as WebGPUBackendLike).runWebGPUProgram(program, [x, gamma, beta], 'float32', [{ type: 'float32', data: [eps] }]);
}

export const layerNormConfig: tf.KernelConfig = { kernelName: LAYER_NORM, backendName: 'webgpu', kernelFunc: layerNormWebGPU as tf.KernelFunc };

/** (x − mean)/√(var + eps)·weight + bias over the last axis of x (any rank); weight and bias [C]. */
export function fusedLayerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor {
  const cols = x.shape[x.shape.length - 1]!;
  if (weight.size !== cols || bias.size !== cols) {
    throw new ShapeError(`layerNorm: weight [${weight.shape.join(', ')}] and bias [${bias.shape.join(', ')}] must have ${cols} elements (the last axis of x [${x.shape.join(', ')}])`);
  }
  return tf.tidy(() => {
    const x2 = tf.reshape(x, [-1, cols]); // [..., C] -> [rows, C]
    const y = tf.engine().runKernel(LAYER_NORM, { x: x2, gamma: weight, beta: bias }, { eps }) as tf.Tensor;
    return tf.reshape(y, x.shape);
  });
}
