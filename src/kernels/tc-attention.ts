/**
 * `FlashDepthTensorCoreAttention`: multi-head attention on tensor cores (f16 operands, f32 accumulation) for
 * `--precision mixed` — the pack and attention programs of ./tc-attention_webgpu.ts behind one kernel, with the same
 * inputs and attributes as `FlashDepthFlashAttention` plus an optional `tcLayout` (the routing passes the one it chose;
 * tuning passes others; without it the kernel chooses). Forward only;
 * `flashAttention` routes here when `useTensorCores()` holds and `tensorCoreAttentionLayout` finds a layout (head size
 * whole 16-channel tiles, workgroup memory enough) — for every problem size since session 9: sessions 5–8 kept ViT-S at
 * 518² on the fp32 flash kernel because the pack dispatch cost the then host-bound model more than it saved; with
 * recorded-frame replay (src/infer/streaming.ts) S streams at 5.2–5.3 instead of 9.1 ms (H100, lease 9C), and at
 * 11.9 against 11.8 without replay.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { webgpuCapabilities } from '../backend/webgpu.js';
import { ConfigError, ShapeError } from '../errors.js';
import type { FlashAttentionAttrs } from './flash-attention.js';
import { attentionBanks, attentionLayoutOverride, attentionMasking, attentionRowMax, attentionScratchSync, attentionSoftmax, attentionWaves, tileElement, type AttentionRowMaxChoice } from './mode.js';
import { wholeWaves } from './tc-matmul_webgpu.js';
import type { WebGPUBackendLike } from './program.js';
import {
  DEFAULT_TC_ATTENTION_LAYOUT, PackHeadsF16Program, attentionUniforms, packedPlanes, stageKeys, tcAttentionWorkgroupBytes, tcRowsPerWorkgroup, TensorCoreAttentionProgram,
  type PackedPlanes, type TensorCoreAttentionLayout,
} from './tc-attention_webgpu.js';

export const TC_ATTENTION = 'FlashDepthTensorCoreAttention';
export const TC_SELF_ATTENTION = 'FlashDepthTensorCoreSelfAttention';

/** Head sizes the tensor-core program takes: whole 16-channel tiles, up to the 64 of DINOv2 (the sizes kernel-check covers). */
export function tensorCoreAttentionSupports(headDim: number): boolean {
  return headDim % 16 === 0 && headDim <= 64;
}

/**
 * Layouts in order of preference, each used where the device's workgroup memory takes it: the default (192 rows, 45
 * KiB, ./tc-attention_webgpu.ts; FLASHDEPTH_ATTENTION_LAYOUT replaces it), then the two that ran fastest at ≤ 31 KiB, i.e. two workgroups per multiprocessor
 * on the H100 (64 rows: the 2K student 2.58 / 2.62 ms per call, the Full teacher 0.63 / 0.52, session 8), which also
 * fit software Vulkan's 32 KiB.
 */
const LAYOUTS_BY_PREFERENCE: readonly TensorCoreAttentionLayout[] = [
  DEFAULT_TC_ATTENTION_LAYOUT,
  { subgroups: 4, tiles: 1, blockK: 32, kvBuffers: 1, oSplit: 2 },
  { subgroups: 4, tiles: 1, blockK: 16, kvBuffers: 2, oSplit: 2 },
];

/**
 * Below this many workgroups of the preferred layout, the first fitting one with fewer query rows per workgroup is
 * taken: 96 of 132 H100 multiprocessors busy in the one wave (ViT-L at 518²: 8 × 16 = 128 workgroups of 192 rows;
 * ViT-S: 8 × 6 = 48, so 64-row workgroups, 132).
 */
const SMALL_GRID_WORKGROUPS = 96;

/**
 * The layout FLASHDEPTH_ATTENTION_WAVES=fit (the default since session 17) may take instead: since session 20, 18
 * subgroups of 1 query tile (288 rows per workgroup, 576 invocations) with spread banks (`spreadBanks`: score rows of
 * 24 floats and the softmax's rows dealt to lanes so that the scores' stores, their vec4 reads and the P stores are
 * all free of bank conflicts), 16 keys staged per barrier to stay in 48 KiB (45 KiB). H100 lease 20B, GPU time per call
 * (`kernel-timing.js --attention-only`): the 2K student 1.556 → 1.408 ms (156 TFLOP/s), the Full teacher 0.178 →
 * 0.169; with P rows unpadded to keep 32-key stages (`denseP`, whose reload as a matrix then meets two rows per bank)
 * 1.527 and 0.174; P's exponentials in f16 (`exp2F16`) 1.615 and 0.183 (slower). Lease 20C, Full per frame: 45.2,
 * 44.6 ms against 46.6, 46.5 with session 19's layout. Session 19's (SESSION19_WAVE_FITTED_TC_ATTENTION_LAYOUT, 32-key
 * stages, 45 KiB; lease 19B: the student 1.61 → 1.556, the teacher 0.23 → 0.179 against the default's 12 subgroups)
 * stays behind FLASHDEPTH_ATTENTION_BANKS=session19. The 12-subgroup default has spread banks too since session 24
 * (lease 24C: ViT-L at 518², the model that runs it with Full's four cross-attentions, 7% faster per call; see
 * DEFAULT_TC_ATTENTION_LAYOUT).
 */
export const WAVE_FITTED_TC_ATTENTION_LAYOUT: TensorCoreAttentionLayout = { subgroups: 18, tiles: 1, blockK: 16, kvBuffers: 1, oSplit: 4, spreadBanks: true };

/** Session 19's wave-fitted layout (FLASHDEPTH_ATTENTION_BANKS=session19): 32-key stages, session 18's banks. */
export const SESSION19_WAVE_FITTED_TC_ATTENTION_LAYOUT: TensorCoreAttentionLayout = { subgroups: 18, tiles: 1, blockK: 16, stageK: 32, kvBuffers: 1, oSplit: 4 };

/**
 * Predicted GPU time of an attention over `grid` in `layout`, in query rows: its whole waves of workgroups times the
 * rows of one workgroup, a workgroup's time taken as proportional to its rows.
 */
export function tcAttentionWaveCost(layout: TensorCoreAttentionLayout, grid: { rows: number; planes: number }): number {
  const rows = tcRowsPerWorkgroup(layout);
  return wholeWaves(Math.ceil(grid.rows / rows) * grid.planes) * rows;
}

/**
 * The layout for head size `headDim`, or null where none fits the device's workgroup memory (the fp32 flash kernel runs
 * instead): the first of LAYOUTS_BY_PREFERENCE that fits, unless `grid` (query rows, and batch × heads planes) gives it
 * under SMALL_GRID_WORKGROUPS workgroups; then the first fitting one with fewer rows per workgroup. With
 * FLASHDEPTH_ATTENTION_WAVES=fit (the default), WAVE_FITTED_TC_ATTENTION_LAYOUT where it fits and is predicted to take
 * at most the preferred layout's time (the Full teacher: 128 workgroups, one wave of 288 rows, against 192 in two of
 * 192; the 2K student: 252 in two waves of 288 rows against 378 in three of 192; ViT-L at 518² keeps its one wave of
 * 192), unless FLASHDEPTH_ATTENTION_LAYOUT is set. Every chosen layout
 * takes `scratchSync` from FLASHDEPTH_ATTENTION_SYNC, `softmax` from FLASHDEPTH_ATTENTION_SOFTMAX, `masking` from
 * FLASHDEPTH_ATTENTION_MASKING, `tileElement` from FLASHDEPTH_TC_TILE_ELEMENT and `rowMax` from
 * FLASHDEPTH_ATTENTION_ROW_MAX where that names one; FLASHDEPTH_ATTENTION_BANKS may take the spread banks off, and
 * FLASHDEPTH_ATTENTION_LAYOUT replaces the default (./mode.ts).
 */
export function tensorCoreAttentionLayout(headDim: number, limitBytes = webgpuCapabilities().maxWorkgroupStorageBytes, grid?: { rows: number; planes: number }): TensorCoreAttentionLayout | null {
  if (!tensorCoreAttentionSupports(headDim)) return null;
  const scratchSync = attentionScratchSync();
  const softmax = attentionSoftmax();
  const masking = attentionMasking();
  const banks = attentionBanks();
  // The softmax's form, masking and tile element are named only where they are not the kernel's defaults (vec4,
  // crossing, vec4), so that chosen layouts compare equal to the constants.
  const tile = tileElement();
  const rowMax = attentionRowMax();
  const switches = { scratchSync, ...(softmax !== 'vec4' ? { softmax } : {}), ...(masking !== 'crossing' ? { masking } : {}), ...(tile !== 'vec4' ? { tileElement: tile } : {}) };
  // The 12-subgroup default without its spread banks where FLASHDEPTH_ATTENTION_BANKS asks for an earlier session's.
  const banked = (layout: TensorCoreAttentionLayout) => (layout === DEFAULT_TC_ATTENTION_LAYOUT && banks !== 'spread' ? withoutKey(layout, 'spreadBanks') : layout);
  const override = attentionLayoutOverride();
  const preference = override ? [override, ...LAYOUTS_BY_PREFERENCE.slice(1)] : LAYOUTS_BY_PREFERENCE;
  // An override's own options ("/every", "/spread", …) win over the variables.
  const fitting = preference.map((layout) => ({ ...withRowMax(banked(layout), rowMax), ...switches, ...(layout === override ? override : {}) }))
    .filter((layout) => tcAttentionWorkgroupBytes(layout, headDim) <= limitBytes);
  const preferred = fitting[0];
  if (!preferred || !grid) return preferred ?? null;
  if (Math.ceil(grid.rows / tcRowsPerWorkgroup(preferred)) * grid.planes < SMALL_GRID_WORKGROUPS) {
    return fitting.find((layout) => tcRowsPerWorkgroup(layout) < tcRowsPerWorkgroup(preferred)) ?? preferred;
  }
  if (override || attentionWaves() !== 'fit') return preferred;
  // Ties go to the fitted layout: at the same predicted time its 18 warps per multiprocessor ran faster (the 2K student).
  const fitted = { ...withRowMax(banks === 'session19' ? SESSION19_WAVE_FITTED_TC_ATTENTION_LAYOUT : WAVE_FITTED_TC_ATTENTION_LAYOUT, rowMax), ...switches };
  const fits = tcAttentionWorkgroupBytes(fitted, headDim) <= limitBytes && tcAttentionWaveCost(fitted, grid) <= tcAttentionWaveCost(preferred, grid);
  return fits ? fitted : preferred;
}

/** `layout` without its field `key` (where a switch takes back what a constant sets, so that results compare equal). */
function withoutKey<K extends keyof TensorCoreAttentionLayout>(layout: TensorCoreAttentionLayout, key: K): TensorCoreAttentionLayout {
  const copy = { ...layout };
  delete copy[key];
  return copy;
}

/** `layout` with the row maxima FLASHDEPTH_ATTENTION_ROW_MAX names ('shuffle' unnamed, as the kernel's default), or its own. */
function withRowMax(layout: TensorCoreAttentionLayout, rowMax: AttentionRowMaxChoice): TensorCoreAttentionLayout {
  if (rowMax === 'layout') return layout;
  return rowMax === 'vote' ? { ...layout, rowMax } : withoutKey(layout, 'rowMax');
}

/**
 * Throws a one-line ConfigError where an explicitly chosen layout (tuning: the kernel's `tcLayout`) has blocks that
 * are not whole 16-key tiles or stages that are not whole blocks, or needs more workgroup memory than `limitBytes`,
 * instead of leaving it to a Dawn validation error at pipeline creation or a wrong result.
 */
export function checkTcAttentionLayout(layout: TensorCoreAttentionLayout, headDim: number, limitBytes: number): void {
  const stageK = stageKeys(layout);
  if (layout.blockK % 16 !== 0 || stageK % layout.blockK !== 0) {
    throw new ConfigError(`tensor-core attention layout: blockK must be a multiple of 16 and stageK a multiple of blockK, got blockK ${layout.blockK}, stageK ${stageK}`);
  }
  const bytes = tcAttentionWorkgroupBytes(layout, headDim);
  if (bytes > limitBytes) {
    throw new ConfigError(`tensor-core attention layout (${layout.subgroups} subgroups of ${layout.tiles} tiles, ${layout.blockK}-key blocks): needs ${bytes} bytes of workgroup memory for heads of ${headDim}, the device allows ${limitBytes}`);
  }
}

function tensorCoreAttentionWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { q, k, v } = args.inputs as { q: tf.TensorInfo; k: tf.TensorInfo; v: tf.TensorInfo };
  const a = args.attrs as unknown as FlashAttentionAttrs & { tcLayout?: TensorCoreAttentionLayout };
  const backend = args.backend as WebGPUBackendLike;
  const [batch, lq] = q.shape as [number, number, number];
  const lk = k.shape[1]!;
  if (a.tcLayout) checkTcAttentionLayout(a.tcLayout, a.headDim, webgpuCapabilities().maxWorkgroupStorageBytes);
  const layout = a.tcLayout ?? tensorCoreAttentionLayout(a.headDim, undefined, { rows: lq, planes: batch * a.numHeads });
  if (!layout) throw new ShapeError(`tensor-core attention: no layout for heads of ${a.headDim} fits ${webgpuCapabilities().maxWorkgroupStorageBytes} bytes of workgroup memory`);
  const planes = packedPlanes(batch, lq, lk, a.numHeads, a.headDim, tcRowsPerWorkgroup(layout), stageKeys(layout));
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
    return backend.runWebGPUProgram(new TensorCoreAttentionProgram(batch, lq, a.numHeads, a.headDim, layout), [packed, packed], 'float32',
      attentionUniforms(lq, lk, a.numHeads, planes));
  } finally {
    backend.disposeData(packed.dataId);
  }
}

export const tensorCoreAttentionConfig: tf.KernelConfig = {
  kernelName: TC_ATTENTION,
  backendName: 'webgpu',
  kernelFunc: tensorCoreAttentionWebGPU as tf.KernelFunc,
};

/** Attributes of `FlashDepthTensorCoreSelfAttention`. */
export interface TensorCoreSelfAttentionAttrs {
  /** Sequences, and tokens per sequence. */
  batch: number;
  tokens: number;
  numHeads: number;
  headDim: number;
  /** The layout the head planes were written for (`selfAttentionPlanes`). */
  tcLayout: TensorCoreAttentionLayout;
  /** Rows of the packed output: the projection's A operand (`packedA(batch·tokens, heads·Dh).rowsPad`). */
  rowsPad: number;
}

/** The head planes of B sequences of N tokens for `layout`: queries padded to whole workgroups, keys to whole stages. */
export function selfAttentionPlanes(batch: number, tokens: number, numHeads: number, headDim: number, layout: TensorCoreAttentionLayout): PackedPlanes {
  return packedPlanes(batch, tokens, tokens, numHeads, headDim, tcRowsPerWorkgroup(layout), stageKeys(layout));
}

/** The layout of a self-attention over B sequences of N tokens, or null where none fits (as tensorCoreAttentionLayout). */
export function tensorCoreSelfAttentionLayout(batch: number, tokens: number, numHeads: number, headDim: number): TensorCoreAttentionLayout | null {
  return tensorCoreAttentionLayout(headDim, undefined, { rows: tokens, planes: batch * numHeads });
}

/**
 * Self-attention between two products with no packing dispatch on either side: `planes` are a qkv product's head
 * planes (its 'headPlanes' store, Q pre-scaled; `selfAttentionPlanes`), and the result is the packed f16 token rows
 * [rowsPad, heads·Dh / 2] (int32 half pairs) the output projection reads as its A operand.
 */
function tensorCoreSelfAttentionWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { planes } = args.inputs as { planes: tf.TensorInfo };
  const a = args.attrs as unknown as TensorCoreSelfAttentionAttrs;
  const layout = selfAttentionPlanes(a.batch, a.tokens, a.numHeads, a.headDim, a.tcLayout);
  if (planes.shape.length !== 1 || planes.shape[0] !== layout.totalUnits * 2 || a.rowsPad < a.batch * a.tokens) {
    throw new ShapeError(`tensor-core self-attention: head planes [${planes.shape.join(', ')}] are not those of ${a.batch} × ${a.tokens} tokens in ${a.numHeads} heads of ${a.headDim} (${layout.totalUnits * 2} int32), or ${a.rowsPad} output rows are too few`);
  }
  const program = new TensorCoreAttentionProgram(a.batch, a.tokens, a.numHeads, a.headDim, a.tcLayout, 'packedF16', a.rowsPad);
  return (args.backend as WebGPUBackendLike).runWebGPUProgram(program, [planes, planes], 'int32', attentionUniforms(a.tokens, a.tokens, a.numHeads, layout));
}

export const tensorCoreSelfAttentionConfig: tf.KernelConfig = {
  kernelName: TC_SELF_ATTENTION,
  backendName: 'webgpu',
  kernelFunc: tensorCoreSelfAttentionWebGPU as tf.KernelFunc,
};
