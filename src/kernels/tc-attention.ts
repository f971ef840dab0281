/**
 * `FlashDepthTensorCoreAttention`: multi-head attention on tensor cores (f16 operands, f32 accumulation) for
 * `--precision mixed` — the pack and attention programs of ./tc-attention_webgpu.ts behind one kernel, with the same
 * inputs and attributes as `FlashDepthFlashAttention` (plus an optional `tcLayout` for tuning). Forward only;
 * `flashAttention` routes here when `useTensorCores()` holds, the head size is whole 16-channel tiles and
 * `tensorCoreAttentionPays`.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { webgpuCapabilities } from '../backend/webgpu.js';
import type { FlashAttentionAttrs } from './flash-attention.js';
import type { WebGPUBackendLike } from './program.js';
import {
  DEFAULT_TC_ATTENTION_LAYOUT, PackHeadsF16Program, packedPlanes, tcAttentionWorkgroupBytes, tcRowsPerWorkgroup, TensorCoreAttentionProgram,
  type TensorCoreAttentionLayout,
} from './tc-attention_webgpu.js';

export const TC_ATTENTION = 'FlashDepthTensorCoreAttention';

/** Head sizes the tensor-core program takes: whole 16-channel tiles, accumulators for at most 128 channels. */
export function tensorCoreAttentionSupports(headDim: number): boolean {
  return headDim % 16 === 0 && headDim <= 128;
}

/**
 * Whether the tensor-core program beats the fp32 flash kernel here (H100, default Dawn toggles, kernel-timing.ts,
 * heads of 64, K/V staged): ViT-L at 518² (1 370 tokens × 16 heads) 8.6 vs 2.4 TFLOP/s, the Full teacher (2 170 × 16)
 * 16.6 vs 6.7, the 2K student (11 972 × 6) 22.6 vs 15.1; only ViT-S at 518² (6 heads, 1.9 GFLOP) stays fp32:
 * 3.8 vs 4.7.
 */
export function tensorCoreAttentionPays(lq: number, lk: number, heads: number): boolean {
  return heads >= 12 || lq * lk >= 2 ** 24;
}

/**
 * The layout for a problem: 4 subgroups of 16 query rows sharing each staged block of 32 keys (the fastest measured
 * for every model shape; key splits are for tuning), fewer subgroups and then smaller blocks where the device's
 * workgroup memory is smaller.
 */
export function tensorCoreAttentionLayout(headDim: number, limitBytes = webgpuCapabilities().maxWorkgroupStorageBytes): TensorCoreAttentionLayout {
  let layout: TensorCoreAttentionLayout = DEFAULT_TC_ATTENTION_LAYOUT;
  while (layout.subgroups > 1 && tcAttentionWorkgroupBytes(layout, headDim) > limitBytes) layout = { ...layout, subgroups: layout.subgroups / 2 };
  if (tcAttentionWorkgroupBytes(layout, headDim) > limitBytes) layout = { ...layout, blockK: 16 };
  return layout;
}

function tensorCoreAttentionWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { q, k, v } = args.inputs as { q: tf.TensorInfo; k: tf.TensorInfo; v: tf.TensorInfo };
  const a = args.attrs as unknown as FlashAttentionAttrs & { tcLayout?: TensorCoreAttentionLayout };
  const backend = args.backend as WebGPUBackendLike;
  const [batch, lq] = q.shape as [number, number, number];
  const lk = k.shape[1]!;
  const layout = a.tcLayout ?? tensorCoreAttentionLayout(a.headDim);
  const planes = packedPlanes(batch, lq, lk, a.numHeads, a.headDim, tcRowsPerWorkgroup(layout), layout.blockK * layout.splits);
  const packed = backend.runWebGPUProgram(new PackHeadsF16Program(planes, a.headDim), [q, k, v], 'int32', [
    { type: 'int32', data: [a.qOffset / 4] },
    { type: 'int32', data: [a.kOffset / 4] },
    { type: 'int32', data: [a.vOffset / 4] },
    { type: 'float32', data: [a.scale * Math.LOG2E] },
    { type: 'int32', data: [a.numHeads] },
    { type: 'int32', data: [planes.lqPad] },
    { type: 'int32', data: [planes.lkPad] },
    { type: 'int32', data: [planes.qUnits] },
    { type: 'int32', data: [planes.kUnits] },
    { type: 'int32', data: [planes.totalUnits] },
  ]);
  try {
    // The planes as f16 (Q tiles) and as int32 vec4s (K/V staging): the same buffer, bound read-only twice. Plane
    // offsets in halves: 4 per vec4 unit.
    return backend.runWebGPUProgram(new TensorCoreAttentionProgram(batch, lq, a.numHeads, a.headDim, layout), [packed, packed], 'float32', [
      { type: 'uint32', data: [lq] },
      { type: 'uint32', data: [lk] },
      { type: 'uint32', data: [planes.lqPad] },
      { type: 'uint32', data: [planes.lkPad] },
      { type: 'uint32', data: [a.numHeads] },
      { type: 'uint32', data: [planes.qUnits * 4] },
      { type: 'uint32', data: [(planes.qUnits + planes.kUnits) * 4] },
    ]);
  } finally {
    backend.disposeData(packed.dataId);
  }
}

export const tensorCoreAttentionConfig: tf.KernelConfig = {
  kernelName: TC_ATTENTION,
  backendName: 'webgpu',
  kernelFunc: tensorCoreAttentionWebGPU as tf.KernelFunc,
};
