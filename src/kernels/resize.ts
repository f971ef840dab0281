/** `FlashDepthResizeAlignCorners`: the kernel function and op of ./resize_webgpu.ts. Forward only. */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';
import { ResizeAlignCornersProgram } from './resize_webgpu.js';
import type { WebGPUBackendLike } from './program.js';

export const RESIZE_ALIGN_CORNERS = 'FlashDepthResizeAlignCorners';

function resizeAlignCornersWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const x = args.inputs['x']!;
  const { height, width } = args.attrs as unknown as { height: number; width: number };
  const adjust = [height > 1 ? 1 : 0, width > 1 ? 1 : 0];
  return (args.backend as WebGPUBackendLike).runWebGPUProgram(new ResizeAlignCornersProgram(x.shape, height, width), [x], 'float32', [{ type: 'float32', data: adjust }]);
}

export const resizeAlignCornersConfig: tf.KernelConfig = { kernelName: RESIZE_ALIGN_CORNERS, backendName: 'webgpu', kernelFunc: resizeAlignCornersWebGPU as tf.KernelFunc };

/** Bilinear resize of NHWC `x` (C a multiple of 4) to height × width with align_corners=True. */
export function fusedResizeAlignCorners(x: tf.Tensor4D, height: number, width: number): tf.Tensor4D {
  if (x.shape[3] % 4 !== 0 || !(height >= 1 && width >= 1)) {
    throw new ShapeError(`resizeAlignCorners: expected NHWC with C a multiple of 4 and an output of at least 1×1, got [${x.shape.join(', ')}] → ${height}×${width}`);
  }
  return tf.engine().runKernel(RESIZE_ALIGN_CORNERS, { x }, { height, width } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}
