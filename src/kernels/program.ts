/**
 * The slice of tfjs-backend-webgpu's program/backend interfaces our kernels use, declared here so that only
 * src/backend imports the backend package (the shapes mirror `dist/webgpu_program.d.ts` and
 * `WebGPUBackend.runWebGPUProgram` of tfjs-backend-webgpu 4.22).
 *
 * tfjs generates the WGSL header for a program: `result` (output), one storage array per `variableNames` entry,
 * `uniforms` (every input's and the output's shape and strides, then the program's `uniforms` fields) and the
 * private `localId`, `localIndex`, `workgroupId`, `numWorkgroups`; the program supplies `fn main()` (or
 * `fn main(index : i32)` for a flat dispatch layout).
 */
import type * as tf from '@tensorflow/tfjs-core';

export interface WebGPUProgram {
  variableNames: string[];
  /** Components per input element (4: the input is bound as array<vec4<f32>>). */
  variableComponents?: number[];
  outputComponent?: number;
  outputShape: number[];
  /** Everything that changes the WGSL text; sizes go in uniforms so one pipeline serves every resolution. */
  shaderKey: string;
  dispatchLayout: { x: number[]; y?: number[]; z?: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  /** Adds `uniforms.size` (the output's element count). */
  size?: boolean;
  /** Extra uniform fields, e.g. `'eps : f32, cols : i32,'`. */
  uniforms?: string;
  getUserCode: () => string;
}

export interface ProgramUniform {
  type: 'int32' | 'float32' | 'uint32';
  data: number[];
}

export interface WebGPUBackendLike {
  runWebGPUProgram(program: WebGPUProgram, inputs: tf.TensorInfo[], outputDtype: tf.DataType, programUniforms?: ProgramUniform[]): tf.TensorInfo;
  /** A tensor without values (its buffer is allocated when first bound): a program's second output, bound as an input. */
  makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  /** Frees an intermediate a kernel made with runWebGPUProgram. */
  disposeData(dataId: tf.DataId): boolean;
}

/** A 1-D dispatch of `workgroups` workgroups, folded into y when it passes the 65 535-per-dimension limit. */
export function foldedDispatch(workgroups: number, maxPerDimension = 65535): [number, number, number] {
  if (workgroups <= maxPerDimension) return [workgroups, 1, 1];
  const y = Math.ceil(workgroups / maxPerDimension);
  return [Math.ceil(workgroups / y), y, 1];
}

/** WGSL: the linear workgroup number of a (possibly y-folded) 1-D dispatch. */
export const LINEAR_WORKGROUP = 'i32(workgroupId.y * numWorkgroups.x + workgroupId.x)';
