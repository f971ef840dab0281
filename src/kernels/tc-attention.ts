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
 * heads of 64): ViT-L at 518² (1 370 tokens × 16 heads) 1.7 vs 2.8 ms, the Full teacher (2 170 tokens × 16 heads) 1.8
 * vs 3.2 ms; but ViT-S at 518² (6 heads) 1.0 vs 0.6 ms and the 2K student (11 972 tokens × 6 heads) 16.5 vs 15.7 ms.
 */
export function tensorCoreAttentionPays(lq: number, lk: number, heads: number): boolean {
  return heads >= 12 && lq * lk <= 2 ** 24;
}

/** Subgroups to aim for: 4 key splits for ViT-L at 518² and the Full teacher, the fastest layout measured there. */
const TARGET_SUBGROUPS = 8192;

/**
 * The layout for a problem: key splits (1, 2 or 4) so that at least TARGET_SUBGROUPS subgroups run where the query
 * tiles alone are fewer, and fewer subgroups per workgroup where the device's workgroup memory is smaller.
 */
export function tensorCoreAttentionLayout(batch: number, lq: number, numHeads: number, headDim: number, limitBytes = webgpuCapabilities().maxWorkgroupStorageBytes): TensorCoreAttentionLayout {
  const tiles = Math.ceil(lq / 16) * numHeads * batch;
  let splits = 1;
  while (splits < 4 && tiles * splits < TARGET_SUBGROUPS) splits *= 2;
  let layout: TensorCoreAttentionLayout = { ...DEFAULT_TC_ATTENTION_LAYOUT, splits };
  while (layout.subgroups > layout.splits && tcAttentionWorkgroupBytes(layout, headDim) > limitBytes) layout = { ...layout, subgroups: layout.subgroups / 2 };
  return layout;
}

function tensorCoreAttentionWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { q, k, v } = args.inputs as { q: tf.TensorInfo; k: tf.TensorInfo; v: tf.TensorInfo };
  const a = args.attrs as unknown as FlashAttentionAttrs & { tcLayout?: TensorCoreAttentionLayout };
  const backend = args.backend as WebGPUBackendLike;
  const [batch, lq] = q.shape as [number, number, number];
  const lk = k.shape[1]!;
  const layout = a.tcLayout ?? tensorCoreAttentionLayout(batch, lq, a.numHeads, a.headDim);
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
    // Plane offsets in halves: 4 per vec4 unit.
    return backend.runWebGPUProgram(new TensorCoreAttentionProgram(batch, lq, a.numHeads, a.headDim, layout), [packed], 'float32', [
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
