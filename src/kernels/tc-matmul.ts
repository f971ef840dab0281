/**
 * `FlashDepthTensorCoreMatMul` (A f32, packed to f16 per call; B pre-packed f16 → C f32 on subgroup matrices,
 * ./tc-matmul_webgpu.ts) and `FlashDepthPackF16`, which packs a weight once; `packedWeight` caches the
 * packed copy per weight tensor. Forward only; `mixedMatMul` routes here.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MatMulEpilogue } from './tc-matmul_webgpu.js';
import type { WebGPUBackendLike } from './program.js';
import {
  SLICE_K, TensorCoreMatMulProgram, PackF16Program, packF16Uniforms, packedShape,
  tensorCoreMatMulLayout, type TensorCoreMatMulLayout, type PackedShape,
} from './tc-matmul_webgpu.js';

export const PACK_F16 = 'FlashDepthPackF16';
export const TC_MATMUL = 'FlashDepthTensorCoreMatMul';

/** Layouts use at most 4×4 tiles per subgroup: operands are padded to at least 64 rows (A) and columns (B). */
const MIN_PACKED = 64;

/** The packed shape of A [m, k] or of B [k, n]. */
export function packedA(m: number, k: number): PackedShape {
  return packedShape(m, k, 16, SLICE_K, MIN_PACKED);
}
export function packedB(k: number, n: number): PackedShape {
  return packedShape(k, n, SLICE_K, 16, 0, MIN_PACKED);
}

function packF16WebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const [k, n] = x.shape as [number, number];
  const shape = packedB(k, n);
  return (args.backend as WebGPUBackendLike).runWebGPUProgram(new PackF16Program(shape), [x], 'int32', packF16Uniforms(shape));
}

function tensorCoreMatMulWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { a, b16, bias, residual, gamma } = args.inputs as Record<string, tf.TensorInfo | undefined>;
  const attrs = args.attrs as unknown as { n: number; epilogue: MatMulEpilogue; layout?: TensorCoreMatMulLayout | null };
  const backend = args.backend as WebGPUBackendLike;
  const [m, k] = a!.shape as [number, number];
  const { n, epilogue } = attrs;
  const aShape = packedA(m, k);
  const bShape = packedB(k, n);
  const layout = attrs.layout ?? tensorCoreMatMulLayout(m, n, k);
  const a16 = layout.convertA ? undefined : backend.runWebGPUProgram(new PackF16Program(aShape), [a!], 'int32', packF16Uniforms(aShape));
  try {
    const program = new TensorCoreMatMulProgram(m, n, aShape, bShape, bias !== undefined, epilogue, layout);
    const inputs = [a16 ?? a!, b16!, ...(bias ? [bias] : []), ...(epilogue === 'scaleAdd' ? [residual!, gamma!] : [])];
    return backend.runWebGPUProgram(program, inputs, 'float32', [
      { type: 'uint32', data: [m] },
      { type: 'uint32', data: [n] },
      { type: 'uint32', data: [k] },
      { type: 'uint32', data: [aShape.rowsPad] },
      { type: 'uint32', data: [bShape.colsPad] },
      { type: 'uint32', data: [aShape.colsPad] },
    ]);
  } finally {
    if (a16) backend.disposeData(a16.dataId);
  }
}

export const packF16Config: tf.KernelConfig = { kernelName: PACK_F16, backendName: 'webgpu', kernelFunc: packF16WebGPU as tf.KernelFunc };
export const tensorCoreMatMulConfig: tf.KernelConfig = { kernelName: TC_MATMUL, backendName: 'webgpu', kernelFunc: tensorCoreMatMulWebGPU as tf.KernelFunc };

/**
 * Packed f16 copies of weights, made on first use and kept (outside any tidy) while the weight's data lives. Keyed
 * by the data, not the tensor object: a reshaped view of a weight (the patch embedding's filter) shares its data, and
 * loading new values into a variable gives it new data. Copies whose data was freed since are dropped whenever a new
 * copy is made, or all at once by releasePackedWeights.
 */
const packed = new Map<tf.DataId, { shape: string; copy: tf.Tensor }>();

function dataAlive(dataId: tf.DataId): boolean {
  return tf.engine().state.tensorInfo.has(dataId);
}

export function packedWeight(weight: tf.Tensor2D): tf.Tensor {
  const shape = weight.shape.join('x');
  const hit = packed.get(weight.dataId);
  if (hit?.shape === shape) return hit.copy;
  hit?.copy.dispose();
  for (const [dataId, entry] of packed) {
    if (!dataAlive(dataId)) {
      entry.copy.dispose();
      packed.delete(dataId);
    }
  }
  const copy = tf.keep(tf.engine().runKernel(PACK_F16, { x: weight }) as tf.Tensor);
  packed.set(weight.dataId, { shape, copy });
  return copy;
}

/** Frees every cached packed weight (they are remade on next use). */
export function releasePackedWeights(): void {
  for (const entry of packed.values()) entry.copy.dispose();
  packed.clear();
}

export interface TensorCoreMatMulInputs {
  a: tf.Tensor2D;
  weight: tf.Tensor2D;
  bias?: tf.Tensor;
  residual?: tf.Tensor;
  gamma?: tf.Tensor;
}

/** a [M, K] · weight [K, N] (+ bias) then the epilogue, with the weight's cached f16 copy. Shapes checked by the caller. */
export function tensorCoreMatMul(inputs: TensorCoreMatMulInputs, epilogue: MatMulEpilogue, layout?: TensorCoreMatMulLayout): tf.Tensor2D {
  const n = inputs.weight.shape[1];
  const named: tf.NamedTensorMap = { a: inputs.a, b16: packedWeight(inputs.weight) };
  if (inputs.bias) named['bias'] = inputs.bias;
  if (inputs.residual && inputs.gamma) {
    named['residual'] = inputs.residual;
    named['gamma'] = inputs.gamma;
  }
  const attrs = { n, epilogue, layout: layout ?? null };
  return tf.engine().runKernel(TC_MATMUL, named, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}
