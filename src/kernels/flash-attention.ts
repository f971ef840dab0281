/**
 * `FlashDepthFlashAttention`: the kernel function around FlashAttentionProgram, and the op that calls it.
 * Forward only (no gradient is registered): callers use it only where `useFusedKernels()` says so (src/kernels/index.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';
import { FlashAttentionProgram, type FlashBlocks } from './flash-attention_webgpu.js';
import { useTensorCores } from './mode.js';
import type { WebGPUBackendLike } from './program.js';
import { TC_ATTENTION, tensorCoreAttentionLayout } from './tc-attention.js';

export const FLASH_ATTENTION = 'FlashDepthFlashAttention';

export interface FlashAttentionAttrs {
  numHeads: number;
  headDim: number;
  scale: number;
  /** First channel of head 0 of q, k and v within their rows (multiples of 4). */
  qOffset: number;
  kOffset: number;
  vOffset: number;
  /** Tuning: rows per workgroup and keys per block (default `flashBlocksFor(...)`). */
  blocks?: FlashBlocks;
}

function flashAttentionWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { q, k, v } = args.inputs as { q: tf.TensorInfo; k: tf.TensorInfo; v: tf.TensorInfo };
  const a = args.attrs as unknown as FlashAttentionAttrs;
  const program = new FlashAttentionProgram(q.shape[0]!, q.shape[1]!, a.numHeads, a.headDim, a.blocks);
  const uniforms = [
    { type: 'int32' as const, data: [a.qOffset / 4] },
    { type: 'int32' as const, data: [a.kOffset / 4] },
    { type: 'int32' as const, data: [a.vOffset / 4] },
    { type: 'float32' as const, data: [a.scale * Math.LOG2E] },
  ];
  return (args.backend as WebGPUBackendLike).runWebGPUProgram(program, [q, k, v], 'float32', uniforms);
}

export const flashAttentionConfig: tf.KernelConfig = {
  kernelName: FLASH_ATTENTION,
  backendName: 'webgpu',
  kernelFunc: flashAttentionWebGPU as tf.KernelFunc,
};

/** Whether the kernel handles this head size: vec4 loads need Dh % 4 = 0; registers hold 2·Dh floats per thread. */
export function flashAttentionSupports(headDim: number): boolean {
  return headDim % 4 === 0 && headDim <= 128;
}

/**
 * softmax(q·kᵀ·scale)·v for every head; q [B, Lq, *], k and v [B, Lk, *] with each head's channels at
 * offset + h·headDim (see FlashAttentionProgram) → [B, Lq, numHeads·headDim]. The same tensor may be passed as q, k
 * and v (a fused qkv projection).
 */
export function flashAttention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, attrs: FlashAttentionAttrs): tf.Tensor3D {
  const { numHeads, headDim, qOffset, kOffset, vOffset } = attrs;
  const width = numHeads * headDim;
  const fits = (t: tf.Tensor3D, offset: number) => offset % 4 === 0 && t.shape[2] % 4 === 0 && offset + width <= t.shape[2];
  if (!flashAttentionSupports(headDim) || !fits(q, qOffset) || !fits(k, kOffset) || !fits(v, vOffset)
    || k.shape[0] !== q.shape[0] || v.shape[0] !== q.shape[0] || k.shape[1] !== v.shape[1]) {
    throw new ShapeError(`flashAttention: ${numHeads} heads of ${headDim} channels (a multiple of 4, at most 128) at offsets `
      + `${qOffset}/${kOffset}/${vOffset} do not fit q [${q.shape.join(', ')}], k [${k.shape.join(', ')}], v [${v.shape.join(', ')}]`);
  }
  // --precision mixed: the tensor-core program (f16 operands) where it has a layout for this head size; the layout
  // chosen here (for this grid) goes with the call, so the kernel does not choose again.
  const tcLayout = useTensorCores() ? tensorCoreAttentionLayout(headDim, undefined, { rows: q.shape[1], planes: numHeads * q.shape[0] }) : null;
  const [kernel, kernelAttrs] = tcLayout ? [TC_ATTENTION, { ...attrs, tcLayout }] : [FLASH_ATTENTION, { ...attrs }];
  return tf.engine().runKernel(kernel, { q, k, v }, kernelAttrs as unknown as tf.NamedAttrMap) as tf.Tensor3D;
}
