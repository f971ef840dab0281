/** `FlashDepthPointwiseConv`: the kernel function and op of ./pointwise-conv_webgpu.ts. Forward only. */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';
import { PointwiseConvProgram } from './pointwise-conv_webgpu.js';
import type { WebGPUBackendLike } from './program.js';

export const POINTWISE_CONV = 'FlashDepthPointwiseConv';

/** Output channels the kernel computes per pixel at most (each is a register accumulator). */
const MAX_OUT_CHANNELS = 4;

/** Whether fusedPointwiseConv takes a 1×1 convolution from `cin` to `cout` channels. */
export function pointwiseConvSupports(cin: number, cout: number): boolean {
  return cin % 4 === 0 && cin > 0 && cout >= 1 && cout <= MAX_OUT_CHANNELS;
}

function pointwiseConvWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { x, w, bias } = args.inputs as { x: tf.TensorInfo; w: tf.TensorInfo; bias: tf.TensorInfo };
  const { relu } = args.attrs as unknown as { relu: boolean };
  const [b, h, width] = x.shape as [number, number, number, number];
  return (args.backend as WebGPUBackendLike).runWebGPUProgram(new PointwiseConvProgram(x.shape, w.shape[1]!, relu), [x, w, bias], 'float32',
    [{ type: 'int32', data: [b * h * width] }]);
}

export const pointwiseConvConfig: tf.KernelConfig = { kernelName: POINTWISE_CONV, backendName: 'webgpu', kernelFunc: pointwiseConvWebGPU as tf.KernelFunc };

/** 1×1 convolution of NHWC `x` with `filter` [1, 1, Cin, Cout] plus `bias` (optional ReLU); `pointwiseConvSupports`. */
export function fusedPointwiseConv(x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor | undefined, relu: boolean): tf.Tensor4D {
  const [kh, kw, cin, cout] = filter.shape;
  if (kh !== 1 || kw !== 1 || cin !== x.shape[3] || !pointwiseConvSupports(cin, cout)) {
    throw new ShapeError(`pointwiseConv: expected a [1, 1, ${x.shape[3]}, ≤ ${MAX_OUT_CHANNELS}] filter with input channels a multiple of 4, got [${filter.shape.join(', ')}]`);
  }
  return tf.tidy(() => {
    const w = tf.reshape(filter, [cin, cout]);
    const b = bias ?? tf.zeros([cout]);
    return tf.engine().runKernel(POINTWISE_CONV, { x, w, bias: b }, { relu } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
  });
}
