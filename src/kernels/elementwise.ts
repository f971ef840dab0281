/** `FlashDepthGelu` and `FlashDepthScaleAdd`: kernel functions and ops for the elementwise programs. Forward only. */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';
import { GeluProgram, ScaleAddProgram } from './elementwise_webgpu.js';
import type { WebGPUBackendLike } from './program.js';

export const GELU = 'FlashDepthGelu';
export const SCALE_ADD = 'FlashDepthScaleAdd';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown };

function geluWebGPU({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const x = inputs['x']!;
  return (backend as WebGPUBackendLike).runWebGPUProgram(new GeluProgram(x.shape), [x], 'float32');
}

function scaleAddWebGPU({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { x, y, gamma } = inputs as { x: tf.TensorInfo; y: tf.TensorInfo; gamma: tf.TensorInfo };
  return (backend as WebGPUBackendLike).runWebGPUProgram(new ScaleAddProgram(x.shape), [x, y, gamma], 'float32');
}

export const geluConfig: tf.KernelConfig = { kernelName: GELU, backendName: 'webgpu', kernelFunc: geluWebGPU as tf.KernelFunc };
export const scaleAddConfig: tf.KernelConfig = { kernelName: SCALE_ADD, backendName: 'webgpu', kernelFunc: scaleAddWebGPU as tf.KernelFunc };

/** Whether the vec4 elementwise kernels take a tensor whose last axis has this many elements. */
export function vec4Compatible(lastAxis: number): boolean {
  return lastAxis % 4 === 0;
}

/** Exact (erf) GELU; x's last axis a multiple of 4. */
export function fusedGelu(x: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(GELU, { x }, {}) as tf.Tensor;
}

/** x + y·gamma, gamma [C] over the last axis of x and y (same shape; C a multiple of 4). */
export function fusedScaleAdd(x: tf.Tensor, y: tf.Tensor, gamma: tf.Tensor): tf.Tensor {
  const cols = x.shape[x.shape.length - 1]!;
  if (!tf.util.arraysEqual(x.shape, y.shape) || gamma.size !== cols || !vec4Compatible(cols)) {
    throw new ShapeError(`scaleAdd: expected x and y of one shape with a last axis of a multiple of 4 and gamma of that size, got [${x.shape.join(', ')}], [${y.shape.join(', ')}], [${gamma.shape.join(', ')}]`);
  }
  return tf.engine().runKernel(SCALE_ADD, { x, y, gamma }, {}) as tf.Tensor;
}
