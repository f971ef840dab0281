/**
 * The switches that decide which kernels the model uses:
 * - kernel mode: 'fused' (default; our WGSL kernels where the backend is webgpu) or 'stock' (tfjs' own kernels
 *   everywhere); FLASHDEPTH_KERNELS=stock or `setKernelMode('stock')` for before/after benchmarks.
 * - precision: 'fp32' (default) or 'mixed': linear layers, 3×3 and 1×1 convolutions and (where it pays) attention on
 *   tensor cores with f16 operands and f32 accumulation, where the webgpu device offers f16 subgroup matrices;
 *   FLASHDEPTH_PRECISION or `--precision`.
 * - attention scratch sync: how the tensor-core attention orders each subgroup's own workgroup-memory round trips,
 *   'subgroup' (default: by the subgroup's program order) or 'workgroup' (barriers; the fallback if a driver gives
 *   wrong mixed-precision attention); FLASHDEPTH_ATTENTION_SYNC.
 * - attention softmax: how the tensor-core attention's softmax moves a block of scores and P through workgroup
 *   memory, 'vec4' (default since session 18: four adjacent columns per invocation, read as one vec4 from a vec4
 *   scratch, their P written in one 8-byte store), 'packed' (the same, the scores read as four floats) or 'scalar'
 *   (sessions 5–17: four single floats read and four halves written per row share); FLASHDEPTH_ATTENTION_SOFTMAX,
 *   for measurements (tc-attention_webgpu.ts `TensorCoreAttentionLayout.softmax`).
 * - attention masking: which key blocks the tensor-core attention's softmax masks against the sequence's end,
 *   'crossing' (default since session 19: only the one that crosses it) or 'every' (sessions 5–18);
 *   FLASHDEPTH_ATTENTION_MASKING, for measurements.
 * - attention row maxima: 'shuffle' (every block's row maxima by two shuffles per row share) or 'vote' (one subgroup
 *   vote per block on whether any score exceeds its row's running maximum by more than the lazy rescale's margin;
 *   the shuffles only where it does — the same results). 'layout' (default since session 24): each layout's own, the
 *   vote in the 12-subgroup default (H100 leases 24B and 24C, per call: ViT-L at 518² 0.0916 → 0.0847 ms, with spread
 *   banks 0.0830) and the shuffles in the wave-fitted 18-subgroup one (where the vote was slower: the 2K student
 *   1.390 → 1.490 ms); FLASHDEPTH_ATTENTION_ROW_MAX, for measurements.
 * - tensor-core matmul block: the 128×128 block's staging where it fills the GPU, 'double' (default: two 32-deep
 *   buffers per operand, 46 KiB), 'single' (one, 27 KiB) or 'double16' (two 16-deep ones, 29 KiB) — the last two fit
 *   two workgroups on an H100 multiprocessor; FLASHDEPTH_TC_MATMUL_BLOCK, for measurements.
 * - tensor-core matmul split: where a product's grid is short of work, 'few' (default: 128×128 blocks unsplit from
 *   half a wave of them, else 64×64 blocks from a wave of those, K split only below both) or 'fill' (sessions 9–12: K
 *   split until 256 workgroups); FLASHDEPTH_TC_MATMUL_SPLIT, for measurements.
 * - tensor-core matmul waves: 'fit' (default since session 16: unsplit products in 144- or 96-row blocks where those
 *   need fewer whole waves of workgroups for the same rows — the Full teacher's 2171 rows are 17 blocks of 128, 16 of
 *   144; H200 lease 16A, Full 2.4–2.6 ms per frame faster; only where that is predicted at least 10% faster), 'fitAll'
 *   (wherever it is predicted faster at all) or 'off' (128-row blocks); FLASHDEPTH_TC_MATMUL_WAVES.
 * - tensor-core matmul subgroups: how many subgroups share the linear layers' large blocks (128×128, and the
 *   wave-fitted 144 and 96 rows). 'deep' (default since session 18): twice as many, 32 columns wide instead of 64
 *   (single-buffered where double buffers no longer fit), in products at least DEEP_K = 1024 deep — ViT-L's and the
 *   Full teacher's: more warps to hide each one's latency, at more workgroup-memory loads per multiply; H100 lease
 *   18C, Full 50.7–50.8 → 48.3 ms, L 15.2/17.6 → 14.6/17.4, S unchanged. 'many': in every product (the 2K student's
 *   shallow ones too: no better than 'deep' in Full, slower per call). 'wide': 8 or 6 subgroups of 64 columns
 *   everywhere (sessions 5–17); FLASHDEPTH_TC_MATMUL_SUBGROUPS, for measurements.
 * - tensor-core matmul big block: 'off' (default) or '256x128' / '128x256': the linear layers' unsplit products in
 *   blocks of 8 subgroups of 64×64, single-buffered (36.5 KiB), where those need less predicted time in whole waves
 *   (a 4096³ product ran at 221 TFLOP/s in the 256×128 block against 154 in the 128×128 one, H100 lease 18A; but in
 *   Full every product that took them got slower, lease 22A: the teacher's qkv 2.49 → 2.89 ms per frame);
 *   FLASHDEPTH_TC_MATMUL_BIG_BLOCK, for measurements.
 * - tensor-core conv block: 3×3 convolutions to at most 64 channels, where they fill two waves, in blocks as narrow as
 *   their channels ('narrow', default since session 19: 128×32 for the DPT head's 32, 8 subgroups of 16 rows; H100
 *   lease 19B, Full 47.7/47.8 → 47.2/47.3 ms) or in 128×128 blocks ('square', sessions 7–18);
 *   FLASHDEPTH_TC_CONV_BLOCK, for measurements.
 * - tensor-core attention waves: 'fit' (default since session 17: a grid of more than one wave takes workgroups of 288
 *   rows — since session 19 18 subgroups of one query tile, before that 9 of two — where those need no more whole
 *   waves for the same rows: the Full teacher's 2171 queries × 16 heads, 192 workgroups of 192 rows in two waves, 128
 *   in one; the 2K student's 378 in three, 252 in two; H100 lease 19B, per call 0.23 → 0.179 and 1.61 → 1.556 ms) or
 *   'off' (the 192-row default layout everywhere); FLASHDEPTH_ATTENTION_WAVES, for measurements.
 * - attention banks: spread workgroup-memory banks in the wave-fitted layout (16-key stages, since session 20) and the
 *   12-subgroup default (since session 24) ('spread', the default), in the wave-fitted one only ('session23'), or in
 *   neither, the wave-fitted layout in session 19's 32-key stages ('session19'); FLASHDEPTH_ATTENTION_BANKS, for
 *   measurements.
 * - tensor-core attention layout: FLASHDEPTH_ATTENTION_LAYOUT="subgroups,tiles,blockK,kvBuffers,oSplit[,stageK[,pipelined]]
 *   [/option…]" replaces the preferred layout (where it fits and the grid is large enough), for measurements.
 * - matmul epilogue sync: 'subgroup' (default since session 21: each subgroup's scratch round trips ordered by its
 *   program order; H100 lease 21A, Full 44.2/46.0 → 43.8/43.9 ms, L 18.2 both) or 'workgroup' (two barriers per
 *   accumulator tile); FLASHDEPTH_TC_MATMUL_EPILOGUE_SYNC, for measurements.
 * - matmul residual prefetch: 'on' (default since session 25: a subgroup's residual values, of the LayerScale
 *   residual and the ResidualConvUnit's skip, loaded before its first tile's epilogue; H100 lease 21B, Full 43.7/43.1
 *   against 43.4/45.8 ms with single-float accesses, level; lease 25A, with vec4 ones, 3–19% off each residual
 *   product per call) or 'off'; FLASHDEPTH_TC_MATMUL_RESIDUAL_PREFETCH, for measurements.
 * - matmul loads ahead: '1' (default: slice s + 1's global loads in flight while slice s multiplies) or '2' (slice
 *   s + 2's, into a second set of registers; H100 lease 21C, no product's GPU time changed: global-load latency is not
 *   what bounds them); FLASHDEPTH_TC_MATMUL_LOAD_AHEAD, for measurements.
 * - matmul epilogue scratch: 'f32' (default: rows of 16 floats) or 'vec4' (vec4<f32> rows of 20 floats, one vec4
 *   read per invocation and four columns); FLASHDEPTH_TC_MATMUL_SCRATCH, for measurements.
 * - tile element: 'vec4' (default) or 'u32', the element type of the tensor-core kernels' staged operand tiles, in
 *   which their subgroup-matrix loads count offsets and strides; FLASHDEPTH_TC_TILE_ELEMENT, for measurements. H100
 *   lease 23A: neither this nor the vec4 scratch changed any kernel's GPU time in Full.
 * - matmul epilogue I/O: 'vec4' (default since session 25: bias, γ and residual read and C written as one vec4 per
 *   four columns, halves as one 8-byte store; H100 lease 25A, Full 43.4/45.9 → 42.4/42.5/42.3 ms, L 17.7 → 16.7, each
 *   of Full's linear layers 1–8% faster per call) or 'scalar' (one access per float); FLASHDEPTH_TC_MATMUL_EPILOGUE_IO,
 *   for measurements.
 * - fusions: a ResidualConvUnit's outer ReLU and skip inside its convolutions (FLASHDEPTH_RCU_FUSION) and the ViT's
 *   final norm writing only the patch tokens (FLASHDEPTH_PATCH_NORM_FUSION), 'on' by default, 'off' for measurements.
 * - attention branch: 'chained' (default: the qkv product writes the attention's f16 head planes, the attention writes
 *   the projection's f16 operand; three dispatches) or 'separate' (session 11: qkv in f32, packed into head planes,
 *   attention out in f32, packed again for the projection: five); FLASHDEPTH_ATTENTION_BRANCH, for measurements.
 * - Mamba scan chunks: tokens per time chunk of the selective scan (0: the frame in one chunk; see
 *   mamba-scan_webgpu.ts SCAN_CHUNK_TOKENS); FLASHDEPTH_MAMBA_CHUNK_TOKENS, for measurements.
 * - LayerNorm row sums: 'workgroup' (default: one row per workgroup of 64, a tree in workgroup memory) or
 *   'subgroup' (one row per subgroup, subgroupAdd, where the device has fixed-size subgroups);
 *   FLASHDEPTH_LAYER_NORM_SUMS, for measurements.
 *
 * Custom kernels are forward-only, so none is used under a gradient tape (training keeps the stock ops and their
 * gradients). Every call site keeps its plain-tfjs-ops path, which wasm and cpu always take.
 */
import * as tf from '@tensorflow/tfjs-core';
import { webgpuCapabilities } from '../backend/webgpu.js';
import { invalidParameterError } from '../errors.js';
import { layerNormLanes } from './layer-norm_webgpu.js';

export const KERNEL_MODES = ['fused', 'stock'] as const;
export type KernelMode = (typeof KERNEL_MODES)[number];
export const PRECISIONS = ['fp32', 'mixed'] as const;
export type Precision = (typeof PRECISIONS)[number];

export const ATTENTION_SYNCS = ['subgroup', 'workgroup'] as const;
export type AttentionSync = (typeof ATTENTION_SYNCS)[number];

export const ATTENTION_SOFTMAXES = ['scalar', 'packed', 'vec4'] as const;
export type AttentionSoftmax = (typeof ATTENTION_SOFTMAXES)[number];

export const ATTENTION_MASKINGS = ['crossing', 'every'] as const;
export type AttentionMasking = (typeof ATTENTION_MASKINGS)[number];

export const ATTENTION_ROW_MAXES = ['shuffle', 'vote'] as const;
export type AttentionRowMax = (typeof ATTENTION_ROW_MAXES)[number];
/** FLASHDEPTH_ATTENTION_ROW_MAX's values: each layout's own, or one form for all. */
export const ATTENTION_ROW_MAX_CHOICES = ['layout', ...ATTENTION_ROW_MAXES] as const;
export type AttentionRowMaxChoice = (typeof ATTENTION_ROW_MAX_CHOICES)[number];

export const ATTENTION_BANKS = ['spread', 'session23', 'session19'] as const;
export type AttentionBanks = (typeof ATTENTION_BANKS)[number];

export const MATMUL_EPILOGUE_SYNCS = ['workgroup', 'subgroup'] as const;
export type MatMulEpilogueSync = (typeof MATMUL_EPILOGUE_SYNCS)[number];

export const MATMUL_LOADS_AHEAD = ['1', '2'] as const;

export const EPILOGUE_SCRATCHES = ['f32', 'vec4'] as const;
export type EpilogueScratch = (typeof EPILOGUE_SCRATCHES)[number];

export const EPILOGUE_IOS = ['vec4', 'scalar'] as const;
export type EpilogueIo = (typeof EPILOGUE_IOS)[number];

export const TILE_ELEMENTS = ['vec4', 'u32'] as const;
export type TileElement = (typeof TILE_ELEMENTS)[number];

export const ON_OFF = ['on', 'off'] as const;
export type OnOff = (typeof ON_OFF)[number];

export const ATTENTION_BRANCHES = ['chained', 'separate'] as const;
export type AttentionBranch = (typeof ATTENTION_BRANCHES)[number];

export const MATMUL_BLOCKS = ['double', 'single', 'double16'] as const;
export type MatMulBlock = (typeof MATMUL_BLOCKS)[number];

export const MATMUL_SPLITS = ['few', 'fill'] as const;
export type MatMulSplit = (typeof MATMUL_SPLITS)[number];

export const MATMUL_WAVES = ['off', 'fit', 'fitAll'] as const;
export type MatMulWaves = (typeof MATMUL_WAVES)[number];

export const CONV_BLOCKS = ['square', 'narrow'] as const;
export type ConvBlock = (typeof CONV_BLOCKS)[number];
export const MATMUL_BIG_BLOCKS = ['off', '256x128', '128x256'] as const;
export type MatMulBigBlock = (typeof MATMUL_BIG_BLOCKS)[number];

export const MATMUL_SUBGROUPS = ['wide', 'many', 'deep'] as const;
export type MatMulSubgroups = (typeof MATMUL_SUBGROUPS)[number];

export const ATTENTION_WAVES = ['off', 'fit'] as const;
export type AttentionWaves = (typeof ATTENTION_WAVES)[number];

export const LAYER_NORM_SUMS = ['workgroup', 'subgroup'] as const;
export type LayerNormSums = (typeof LAYER_NORM_SUMS)[number];

let mode: KernelMode | undefined;
let precision: Precision | undefined;

/** `value` if it is one of `choices`, else a one-line error naming `what`. */
function oneOf<T extends string>(what: string, choices: readonly T[], value: string): T {
  if (!(choices as readonly string[]).includes(value)) throw invalidParameterError(what, `one of ${choices.join(', ')}`, value);
  return value as T;
}

function fromEnv<T extends string>(name: string, choices: readonly T[], fallback: T): T {
  const value = process.env[name];
  return value === undefined || value === '' ? fallback : oneOf(name, choices, value);
}

/** 'fused' (default; custom kernels where the backend is webgpu) or 'stock' (tfjs' own kernels everywhere). */
export function kernelMode(): KernelMode {
  mode ??= fromEnv('FLASHDEPTH_KERNELS', KERNEL_MODES, 'fused');
  return mode;
}

export function setKernelMode(next: KernelMode): void {
  mode = oneOf('kernel mode', KERNEL_MODES, next);
}

/** 'fp32' (default) or 'mixed' (f16 tensor-core operands, f32 accumulation; webgpu with subgroup matrices only). */
export function precisionMode(): Precision {
  precision ??= fromEnv('FLASHDEPTH_PRECISION', PRECISIONS, 'fp32');
  return precision;
}

export function setPrecision(next: Precision): void {
  precision = oneOf('--precision', PRECISIONS, next);
}

/** FLASHDEPTH_ATTENTION_SYNC (default 'subgroup'): `scratchSync` of the tensor-core attention layouts the kernels choose. */
export function attentionScratchSync(): AttentionSync {
  return fromEnv('FLASHDEPTH_ATTENTION_SYNC', ATTENTION_SYNCS, 'subgroup');
}

/** FLASHDEPTH_ATTENTION_SOFTMAX (default 'vec4'): `softmax` of the tensor-core attention layouts the kernels choose. */
export function attentionSoftmax(): AttentionSoftmax {
  return fromEnv('FLASHDEPTH_ATTENTION_SOFTMAX', ATTENTION_SOFTMAXES, 'vec4');
}

/** FLASHDEPTH_ATTENTION_MASKING (default 'crossing'): `masking` of the tensor-core attention layouts the kernels choose. */
export function attentionMasking(): AttentionMasking {
  return fromEnv('FLASHDEPTH_ATTENTION_MASKING', ATTENTION_MASKINGS, 'crossing');
}

/**
 * FLASHDEPTH_ATTENTION_ROW_MAX (default 'layout': each chosen layout's own `rowMax`, the vote in the 12-subgroup
 * default and the shuffles in the wave-fitted one); 'shuffle' or 'vote' gives every chosen layout that form.
 */
export function attentionRowMax(): AttentionRowMaxChoice {
  return fromEnv('FLASHDEPTH_ATTENTION_ROW_MAX', ATTENTION_ROW_MAX_CHOICES, 'layout');
}

/**
 * FLASHDEPTH_ATTENTION_BANKS (default 'spread'): the tensor-core attention's layouts with spread workgroup-memory banks
 * (`spreadBanks`: the wave-fitted one since session 20, in 16-key stages, and the 12-subgroup default since session
 * 24); 'session23': the default without them (sessions 20–23); 'session19': neither, the wave-fitted layout in
 * session 19's 32-key stages.
 */
export function attentionBanks(): AttentionBanks {
  return fromEnv('FLASHDEPTH_ATTENTION_BANKS', ATTENTION_BANKS, 'spread');
}

/**
 * The fields FLASHDEPTH_ATTENTION_LAYOUT sets: the numbers in order, then the options after '/' (the scratch sync
 * comes from FLASHDEPTH_ATTENTION_SYNC; softmax and masking from their variables unless an option names them).
 */
export interface AttentionLayoutOverride {
  subgroups: number;
  tiles: number;
  blockK: number;
  kvBuffers: 1 | 2;
  oSplit: 1 | 2 | 4;
  stageK?: number;
  pipelined?: boolean;
  masking?: AttentionMasking;
  softmax?: AttentionSoftmax;
  spreadBanks?: boolean;
  denseP?: boolean;
  exp2F16?: boolean;
  tileElement?: TileElement;
  rowMax?: AttentionRowMax;
}

/** The options an attention layout may carry after its numbers ("18,1,16,1,4,32/spread/exp16"), and what each sets. */
const ATTENTION_LAYOUT_OPTIONS: Record<string, Partial<AttentionLayoutOverride>> = {
  every: { masking: 'every' },
  scalar: { softmax: 'scalar' },
  packed: { softmax: 'packed' },
  spread: { spreadBanks: true },
  dense: { denseP: true },
  exp16: { exp2F16: true },
  u32: { tileElement: 'u32' },
  vote: { rowMax: 'vote' },
};

/**
 * FLASHDEPTH_ATTENTION_LAYOUT ("12,1,16,2,2", with a sixth field, stageK, and a seventh, pipelined: 0 or 1), or null
 * when unset; anything else is a one-line error naming the variable and the form expected.
 */
export function attentionLayoutOverride(): AttentionLayoutOverride | null {
  const raw = process.env['FLASHDEPTH_ATTENTION_LAYOUT'];
  if (raw === undefined || raw.trim() === '') return null;
  return parseAttentionLayout(raw, 'FLASHDEPTH_ATTENTION_LAYOUT');
}

/**
 * One attention layout written as FLASHDEPTH_ATTENTION_LAYOUT takes it ("subgroups,tiles,blockK,kvBuffers,oSplit[,stageK
 * [,pipelined]][/option…]", options from ATTENTION_LAYOUT_OPTIONS); anything else is a one-line error naming `source`
 * (the variable or flag it came from).
 */
export function parseAttentionLayout(raw: string, source: string): AttentionLayoutOverride {
  const [numbers, ...optionNames] = raw.split('/').map((part) => part.trim());
  const unknown = optionNames.find((name) => !Object.hasOwn(ATTENTION_LAYOUT_OPTIONS, name));
  if (unknown !== undefined) {
    throw invalidParameterError(source, `a layout whose options after '/' are among ${Object.keys(ATTENTION_LAYOUT_OPTIONS).join(', ')}`, raw);
  }
  const options = Object.assign({}, ...optionNames.map((name) => ATTENTION_LAYOUT_OPTIONS[name])) as Partial<AttentionLayoutOverride>;
  const fields = numbers!.split(',').map((f) => Number(f.trim()));
  const [subgroups, tiles, blockK, kvBuffers, oSplit, stageK, pipelined] = fields as [number, number, number, number, number, number | undefined, number | undefined];
  if (fields.length < 5 || fields.length > 7 || !fields.every((f, i) => Number.isInteger(f) && (f > 0 || i === 6)) || (kvBuffers !== 1 && kvBuffers !== 2) || ![1, 2, 4].includes(oSplit)
    || blockK % 16 !== 0 || (stageK ?? blockK) % blockK !== 0 || (pipelined !== undefined && pipelined !== 0 && pipelined !== 1)) {
    throw invalidParameterError(source, '"subgroups,tiles,blockK,kvBuffers,oSplit[,stageK[,pipelined]]" (whole numbers; blockK a multiple of 16, kvBuffers 1 or 2, oSplit 1, 2 or 4, stageK a multiple of blockK, pipelined 0 or 1)', raw);
  }
  return { subgroups, tiles, blockK, kvBuffers, oSplit: oSplit as 1 | 2 | 4, ...(stageK !== undefined ? { stageK } : {}), ...(pipelined === 1 ? { pipelined: true } : {}), ...options };
}

/** FLASHDEPTH_ATTENTION_BRANCH (default 'chained'): how a ViT attention branch's three steps hand over on tensor cores. */
export function attentionBranch(): AttentionBranch {
  return fromEnv('FLASHDEPTH_ATTENTION_BRANCH', ATTENTION_BRANCHES, 'chained');
}

/** FLASHDEPTH_TC_MATMUL_BLOCK (default 'double'): the staging of the tensor-core matmul's 128×128 block. */
export function matMulBlock(): MatMulBlock {
  return fromEnv('FLASHDEPTH_TC_MATMUL_BLOCK', MATMUL_BLOCKS, 'double');
}

/** FLASHDEPTH_TC_MATMUL_SPLIT (default 'few'): when the tensor-core matmul splits K over workgroups. */
export function matMulSplit(): MatMulSplit {
  return fromEnv('FLASHDEPTH_TC_MATMUL_SPLIT', MATMUL_SPLITS, 'few');
}

/** FLASHDEPTH_TC_MATMUL_WAVES (default 'fit'): whether unsplit tensor-core products fit their blocks' rows to waves. */
export function matMulWaves(): MatMulWaves {
  return fromEnv('FLASHDEPTH_TC_MATMUL_WAVES', MATMUL_WAVES, 'fit');
}

/**
 * FLASHDEPTH_TC_MATMUL_EPILOGUE_SYNC (default 'subgroup' since session 21): how the tensor-core matmul orders each
 * subgroup's round trips of its accumulators through the epilogue's scratch (`epilogueSync` of its layout).
 */
export function matMulEpilogueSync(): MatMulEpilogueSync {
  return fromEnv('FLASHDEPTH_TC_MATMUL_EPILOGUE_SYNC', MATMUL_EPILOGUE_SYNCS, 'subgroup');
}

/**
 * FLASHDEPTH_TC_MATMUL_RESIDUAL_PREFETCH (default 'on' since session 25; level with 'off' in lease 21B, with the
 * epilogue's single-float accesses; with its vec4 ones, lease 25A, per call: the 2K student's proj 0.0705 → 0.0568 ms,
 * its fc2 0.1038 → 0.0961, the Full teacher's proj 0.0397 → 0.0368, fc2 0.1107 → 0.1070): whether a tensor-core product
 * whose epilogue adds a residual loads all of a subgroup's residual values before its first accumulator tile ('on':
 * one memory latency per block) or each tile's as it writes that tile ('off': one per tile, 8 in a 32×64 subgroup).
 */
export function matMulResidualPrefetch(): OnOff {
  return fromEnv('FLASHDEPTH_TC_MATMUL_RESIDUAL_PREFETCH', ON_OFF, 'on');
}

/**
 * FLASHDEPTH_TC_MATMUL_LOAD_AHEAD (default '1'; '2' changed no product's GPU time in lease 21C): how many slices the
 * tensor-core matmul's global loads run ahead of its multiplies in double-buffered layouts (`loadAhead` of its layout).
 */
export function matMulLoadAhead(): 1 | 2 {
  return fromEnv('FLASHDEPTH_TC_MATMUL_LOAD_AHEAD', MATMUL_LOADS_AHEAD, '1') === '2' ? 2 : 1;
}

/**
 * FLASHDEPTH_TC_TILE_ELEMENT (default 'vec4'): the element type of the tensor-core kernels' staged operand tiles in
 * workgroup memory — the matmul's A and B tiles, the attention's K/V and P tiles — that subgroup-matrix loads read:
 * 'vec4' (vec4<u32>s, one 16-byte store per staged unit) or 'u32' (words; H100 lease 22B, plain WGSL: multiplies fed
 * from vec4<u32> tiles 262 TFLOP/s, from u32 ones ~600).
 */
export function tileElement(): TileElement {
  return fromEnv('FLASHDEPTH_TC_TILE_ELEMENT', TILE_ELEMENTS, 'vec4');
}

/**
 * FLASHDEPTH_TC_MATMUL_SCRATCH (default 'f32'): the tensor-core matmul epilogue's scratch, 'f32' (rows of 16 floats)
 * or 'vec4' (vec4<f32>s in rows of 20 floats; where the layout still fits the device's workgroup memory).
 */
export function matMulEpilogueScratch(): EpilogueScratch {
  return fromEnv('FLASHDEPTH_TC_MATMUL_SCRATCH', EPILOGUE_SCRATCHES, 'f32');
}

/**
 * FLASHDEPTH_TC_MATMUL_EPILOGUE_IO (default 'vec4'): the tensor-core matmul epilogue's global reads (bias, γ,
 * residual) and stores of C as one vec4 access per four columns, or 'scalar' (one per float: sessions 5–24).
 */
export function matMulEpilogueIo(): EpilogueIo {
  return fromEnv('FLASHDEPTH_TC_MATMUL_EPILOGUE_IO', EPILOGUE_IOS, 'vec4');
}

/**
 * FLASHDEPTH_RCU_FUSION (default 'on'): whether a DPT ResidualConvUnit hands its outer ReLU and its skip to its
 * convolutions (on tensor cores: conv1's f16 packing and conv2's epilogue) or runs them as ops of their own ('off').
 */
export function rcuFusion(): OnOff {
  return fromEnv('FLASHDEPTH_RCU_FUSION', ON_OFF, 'on');
}

/**
 * FLASHDEPTH_PATCH_NORM_FUSION (default 'on'): whether the ViT's final norm writes only the patch tokens (the fused
 * kernel leaves each CLS token out) or normalises every token and slices the CLS tokens off after it ('off').
 */
export function patchNormFusion(): OnOff {
  return fromEnv('FLASHDEPTH_PATCH_NORM_FUSION', ON_OFF, 'on');
}

/** FLASHDEPTH_TC_CONV_BLOCK (default 'narrow'): the block of 3×3 convolutions to at most 64 channels. */
export function convBlock(): ConvBlock {
  return fromEnv('FLASHDEPTH_TC_CONV_BLOCK', CONV_BLOCKS, 'narrow');
}

/**
 * FLASHDEPTH_TC_MATMUL_BIG_BLOCK (default 'off'; Full 1–4 ms slower with either block in lease 22A): whether the
 * tensor-core linear layers may take a block of 8 subgroups of 64×64 (256×128 or 128×256, one 32-deep buffer per
 * operand) where its whole waves are predicted to take less time than the usual block's (`bigBlockLayout`).
 */
export function matMulBigBlock(): MatMulBigBlock {
  return fromEnv('FLASHDEPTH_TC_MATMUL_BIG_BLOCK', MATMUL_BIG_BLOCKS, 'off');
}

/** FLASHDEPTH_TC_MATMUL_SUBGROUPS (default 'deep'): the register tiles of the tensor-core linear layers' large blocks. */
export function matMulSubgroups(): MatMulSubgroups {
  return fromEnv('FLASHDEPTH_TC_MATMUL_SUBGROUPS', MATMUL_SUBGROUPS, 'deep');
}

/** FLASHDEPTH_ATTENTION_WAVES (default 'fit'): whether the tensor-core attention fits its workgroups' rows to waves. */
export function attentionWaves(): AttentionWaves {
  return fromEnv('FLASHDEPTH_ATTENTION_WAVES', ATTENTION_WAVES, 'fit');
}

/** FLASHDEPTH_MAMBA_CHUNK_TOKENS (a whole number ≥ 0), or null when unset: tokens per time chunk of the Mamba scan. */
export function mambaChunkTokensOverride(): number | null {
  const raw = process.env['FLASHDEPTH_MAMBA_CHUNK_TOKENS'];
  if (raw === undefined || raw.trim() === '') return null;
  const value = Number(raw.trim());
  if (!Number.isInteger(value) || value < 0) throw invalidParameterError('FLASHDEPTH_MAMBA_CHUNK_TOKENS', 'a whole number of tokens ≥ 0 (0: no chunks)', raw);
  return value;
}

/** FLASHDEPTH_LAYER_NORM_SUMS (default 'workgroup'): how the LayerNorm kernels sum a row. */
export function layerNormSums(): LayerNormSums {
  return fromEnv('FLASHDEPTH_LAYER_NORM_SUMS', LAYER_NORM_SUMS, 'workgroup');
}

/**
 * Invocations per row of the LayerNorm kernels here: the device's fixed subgroup size under 'subgroup' (where it
 * divides their workgroup of 64), else 0 (the whole workgroup).
 */
export function layerNormRowLanes(): number {
  return layerNormSums() === 'subgroup' ? layerNormLanes(webgpuCapabilities().subgroupSize) : 0;
}

/** The one place that picks custom kernels over the plain-ops fallback. */
export function useFusedKernels(): boolean {
  return kernelMode() === 'fused' && tf.getBackend() === 'webgpu' && !tf.engine().isTapeOn();
}

/** Whether mixed precision can run here: the webgpu device has f16 subgroup matrices (tensor cores). */
export function tensorCoresAvailable(): boolean {
  return tf.getBackend() === 'webgpu' && webgpuCapabilities().subgroupMatrix !== null;
}

/** Custom kernels, mixed precision requested, and tensor cores present. */
export function useTensorCores(): boolean {
  return precisionMode() === 'mixed' && useFusedKernels() && tensorCoresAvailable();
}

/**
 * Sets the precision for a run and returns the one that will really run: 'mixed' falls back to 'fp32' where the
 * backend has no tensor cores (or the custom kernels are off), with the reason for the log.
 */
export function applyPrecision(requested: Precision): { precision: Precision; note?: string } {
  setPrecision(requested);
  if (requested === 'fp32') return { precision: 'fp32' };
  if (kernelMode() === 'stock') return { precision: 'fp32', note: '--precision mixed needs the custom kernels (FLASHDEPTH_KERNELS=stock is set); running fp32' };
  if (!tensorCoresAvailable()) {
    return { precision: 'fp32', note: `--precision mixed needs webgpu with f16 subgroup matrices (tensor cores); the ${tf.getBackend()} backend has none, running fp32` };
  }
  return { precision: 'mixed' };
}
