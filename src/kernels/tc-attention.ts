/**
 * `FlashDepthTensorCoreAttention`: multi-head attention on tensor cores (f16 operands, f32 accumulation) for
 * `--precision mixed` — the pack and attention programs of ./tc-attention_webgpu.ts behind one kernel, with the same
 * inputs and attributes as `FlashDepthFlashAttention` plus an optional `tcLayout` (the routing passes the one it chose;
 * tuning passes others; without it the kernel chooses). Forward only;
 * `flashAttention` routes here when `useTensorCores()` holds, `tensorCoreAttentionPays` and `tensorCoreAttentionLayout`
 * finds a layout (head size whole 16-channel tiles, workgroup memory enough).
 */
import type * as tf from '@tensorflow/tfjs-core';
import { webgpuCapabilities } from '../backend/webgpu.js';
import { ShapeError } from '../errors.js';
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
 * Whether to use the tensor-core program at all: for problems of ≥ 12 heads or ≥ 2²⁴ scores per head. Below that
 * (ViT-S at 518², 1 370 tokens × 6 heads) the kernel alone is faster (0.19–0.29 vs 0.63–0.69 ms per call), but the
 * model is not: FlashDepth-S, host-bound, streamed at 14.5–15.3 ms per frame with it against 12.2–12.4 ms with the
 * fp32 flash kernel (H100, one lease) — its pack dispatch doubles the attention's dispatches.
 */
export function tensorCoreAttentionPays(lq: number, lk: number, heads: number): boolean {
  return heads >= 12 || lq * lk >= 2 ** 24;
}

/** The H100's multiprocessors: fewer 2-tile workgroups than this leave some idle either way. */
const H100_MULTIPROCESSORS = 132;
/** Workgroups of 2 tiles that fill the H100 (4 resident workgroups per multiprocessor) well enough. */
const FULL_GRID = 512;

/**
 * The layout for a problem (`planes` = batch × heads), or null where none fits the device's workgroup memory (the fp32
 * flash kernel runs instead). Always 4 subgroups: with 2 the staged program gave wrong results on the H100 (Dawn
 * 0.6.2, driver 580; not understood: the same layouts are right under emulation and with K/V read from storage).
 * 2 query tiles per subgroup and 32-key blocks, except for grids of 132–511 such workgroups, where 1 tile (twice the
 * workgroups) measured faster. H100, kernel-timing.ts, two leases (ms per call, 2 tiles vs 1): the 2K student
 * (11 972 tokens × 6 heads, 564 workgroups) 4.64–4.70 vs 4.72–5.72; the Full teacher (2 170 × 16, 272) 0.95 vs
 * 0.87–0.94; ViT-L at 518² (1 370 × 16, 176) 1.14 vs 0.95–0.97; ViT-S at 518² (1 370 × 6, 66) 0.19–0.29 vs 0.36–0.42.
 */
export function tensorCoreAttentionLayout(headDim: number, lq: number, planes: number, limitBytes = webgpuCapabilities().maxWorkgroupStorageBytes): TensorCoreAttentionLayout | null {
  if (!tensorCoreAttentionSupports(headDim)) return null;
  const grid = Math.ceil(lq / tcRowsPerWorkgroup(DEFAULT_TC_ATTENTION_LAYOUT)) * planes;
  const preferred = grid >= FULL_GRID || grid < H100_MULTIPROCESSORS ? DEFAULT_TC_ATTENTION_LAYOUT : { ...DEFAULT_TC_ATTENTION_LAYOUT, tiles: 1 };
  const candidates = [preferred, { ...preferred, tiles: 1 }, { ...preferred, tiles: 1, blockK: 16 }];
  return candidates.find((layout) => tcAttentionWorkgroupBytes(layout, headDim) <= limitBytes) ?? null;
}

function tensorCoreAttentionWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { q, k, v } = args.inputs as { q: tf.TensorInfo; k: tf.TensorInfo; v: tf.TensorInfo };
  const a = args.attrs as unknown as FlashAttentionAttrs & { tcLayout?: TensorCoreAttentionLayout };
  const backend = args.backend as WebGPUBackendLike;
  const [batch, lq] = q.shape as [number, number, number];
  const lk = k.shape[1]!;
  const layout = a.tcLayout ?? tensorCoreAttentionLayout(a.headDim, lq, batch * a.numHeads);
  if (!layout) throw new ShapeError(`tensor-core attention: no layout for heads of ${a.headDim} fits ${webgpuCapabilities().maxWorkgroupStorageBytes} bytes of workgroup memory`);
  const planes = packedPlanes(batch, lq, lk, a.numHeads, a.headDim, tcRowsPerWorkgroup(layout), layout.blockK);
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
