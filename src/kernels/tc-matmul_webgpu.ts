/**
 * Tensor-core matmul on f16 operands (the `--precision mixed` linear layers and convolutions).
 *
 * 1. PackF16Program copies an f32 matrix [rows, cols] into zero-padded f16 [rowsPad, colsPad] (an int32 tensor of
 *    half pairs). Weights are packed once and cached (./tc-matmul.ts); the activations of large products once per
 *    call, while small products read them as f32 and convert while staging (a dispatch fewer: host time), and 3×3
 *    convolutions read the 3×3 neighbourhoods of an f16 copy of their image (implicit GEMM, `MatMulASource`). Two
 *    producers write the packed A themselves instead: the LayerNorm before a linear layer (LayerNormPackF16Program,
 *    ./layer-norm_webgpu.ts) and a product whose output feeds the next one (`output` 'packedF16': the MLP's fc1 for
 *    fc2).
 * 2. TensorCoreMatMulProgram: per 32-deep slice all invocations copy the block's A [BM × 32] and B [32 × BN] as
 *    16-byte units (packed operands: int32 vec4s of 8 halves) into one half of a double-buffered workgroup tile of
 *    vec4<u32>s — one store per unit; subgroup-matrix loads read the tile as f16 with offsets and strides in vec4s —
 *    the next slice's units are loaded into registers while this slice multiplies, one barrier per slice, and each
 *    subgroup multiplies its tiles with subgroup matrices loaded from workgroup memory. Slice depth (16/32/64) and
 *    buffering (one buffer, two barriers per slice) are layout knobs (`TensorCoreMatMulLayout`).
 * 3. Split K (`splitK`, for products with too few blocks to fill the GPU): workgroup z of a block covers its share of
 *    the slices and stores its raw accumulators straight into plane z of a partials tensor; SplitKReduceProgram sums
 *    the planes and runs bias and epilogue. ViT-L at 518² (proj and fc2: 88 blocks of 128×128 → 264 workgroups):
 *    those 48 products 5.8 → 3.5 ms per frame with the reduction (replayed profiles, H100 lease 9B → H200 lease 10B).
 *
 * Why this shape (H100, scripts/tc-ceiling.mjs, test/kernels/kernel-timing.ts): subgroup-matrix multiplies reach
 * ~600 TFLOP/s with operands in registers; loading the operands straight from storage ran at 2–22 TFLOP/s on the
 * model's shapes, staging f32 operands as f16 at 2–12, this f16 staging at 5–52. Session 7 measured again, with
 * Dawn's robustness off: operands from storage (both, or B only) made L 26–28% and Full 35% slower; 16-byte tile
 * stores instead of eight f16 stores per unit gave L −5 to −8%, Full −3% (with the attention's K/V staging likewise);
 * `kernel-timing.js --matmul-ablate` leaves one stage out at a time (bench/README.md).
 *
 * Edges: A is padded to whole 16-row tiles and K to whole 32-deep slices (zeros add nothing); loads clamp rows of A
 * and columns of B to the padded size, and the epilogue writes only rows < M and columns < N. The accumulators leave
 * through a per-subgroup 16×16 f32 scratch in workgroup memory so that bias, GELU, ReLU and LayerScale + residual run
 * on plain values, four columns per invocation.
 */
import { ConfigError } from '../errors.js';
import { ERF_VEC4_WGSL } from './elementwise_webgpu.js';
import { layerNormDispatch, layerNormLanesKey, layerNormPackF16Code } from './layer-norm_webgpu.js';
import { foldedDispatch, type WebGPUProgram } from './program.js';
import { convBlock, matMulBigBlock, matMulBlock, matMulSplit, matMulSubgroups, matMulWaves, type ConvBlock, type MatMulBigBlock, type MatMulBlock, type MatMulEpilogueSync, type MatMulSplit, type MatMulSubgroups, type MatMulWaves, type EpilogueIo, type EpilogueScratch, type TileElement } from './mode.js';

/** WGSL header shared by the tensor-core programs (hoisted above tfjs' header by src/backend/webgpu.ts). */
export const TENSOR_CORE_DIRECTIVES = `
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
`;

/** What runs on C after the bias: nothing, exact GELU, ReLU, or `residual + γ·C` (DINOv2's LayerScale residual). */
export type MatMulEpilogue = 'none' | 'gelu' | 'relu' | 'scaleAdd' | 'add';

/**
 * Where A's rows come from: the packed f16 copy, the f32 matrix itself (converted while staging), or the 3×3
 * neighbourhoods of an NHWC image with zero padding 1 and stride 1 or 2 (implicit GEMM: row = output pixel, column = (ky, kx, c),
 * the order of a [3, 3, Cin, Cout] filter reshaped to [9·Cin, Cout]; Cin a multiple of 8, so that each 16-byte unit
 * lies in one tap — its tap is found per unit, so a slice may straddle two, and units past the 9 taps of the padded K
 * are zero) read from an f16 copy of the image (packed as a [pixels, Cin] matrix: 8 channels per 16-byte load, where
 * reading the f32 image gave 4 — H100 lease 10C, ViT-L at 518²: 20.4 → 18.8 ms per frame).
 */
export type MatMulASource = 'packed' | 'f32' | 'conv3x3';

/** A grid shape: rows × columns (of subgroups in a workgroup, or of 16×16 tiles in a subgroup). */
export interface Grid2 {
  rows: number;
  cols: number;
}

/** Depth of a staged slice: K is padded to a multiple of it. */
export const SLICE_K = 32;

export interface TensorCoreMatMulLayout {
  /** Subgroups per workgroup (rows × cols). */
  subgroups: Grid2;
  /** 16×16 tiles per subgroup (rows × cols). */
  tiles: Grid2;
  /**
   * Read A as f32 and convert it while staging, instead of from an f16 copy packed by a dispatch of its own: one
   * dispatch fewer per product (host time, which bounds the small models), more bytes and conversions on the GPU.
   */
  convertA?: boolean;
  /**
   * Depth of a staged slice (default SLICE_K = 32): 64 halves the barriers per K and doubles the multiply-accumulates
   * that cover each slice's global loads (the last slice is zero-filled where K is padded only to SLICE_K); 16 halves
   * the tiles' workgroup memory instead.
   */
  sliceK?: 16 | 32 | 64;
  /**
   * Workgroup tiles per operand: 2 (default) double-buffers them — the next slice is stored into the other buffer,
   * one barrier per slice; 1 halves their workgroup memory (what lets a 64-deep 128×128 block fit Dawn's 48 KiB)
   * at two barriers per slice.
   */
  buffers?: 1 | 2;
  /**
   * Split K over this many workgroups per block (≥ 2; default 1): each writes its partial sums of C to a buffer of
   * its own ([splits, rows, columns] f32) and SplitKReduceProgram adds them and runs the epilogue. For products whose
   * blocks alone would leave most multiprocessors idle (ViT-L's 1370×1024 products at 518²: 88 blocks of 128×128).
   */
  splitK?: number;
  /**
   * How each subgroup orders its accumulators' round trips through the epilogue's scratch (its own 16×16 region,
   * which no other subgroup touches): 'workgroup' by two workgroupBarriers per tile, every subgroup of the workgroup
   * waiting for the slowest at each; 'subgroup' by the subgroup's program order alone, as the tensor-core
   * attention orders its scratch (`SUBGROUP_SCRATCH_SYNC`); FLASHDEPTH_TC_MATMUL_EPILOGUE_SYNC gives it to layouts
   * that do not name it.
   */
  epilogueSync?: MatMulEpilogueSync;
  /**
   * With a residual in the epilogue ('scaleAdd', 'add'): each invocation loads its residual values of all the
   * subgroup's tiles (two vec4s per tile) before the first tile's round trip, so that the loads' latencies overlap
   * instead of one being exposed per tile (the default since session 25); FLASHDEPTH_TC_MATMUL_RESIDUAL_PREFETCH
   * gives it to layouts that do not name it.
   */
  residualPrefetch?: boolean;
  /**
   * Slices whose global loads are in flight while a slice multiplies (double-buffered layouts only): 1 (default)
   * loads slice s + 1 into registers while slice s multiplies, which covers one slice's multiplies of load latency;
   * 2 loads slice s + 2 into a second set of registers (16–32 more per invocation), covering two (H100 lease 21C: no
   * product's GPU time changed). FLASHDEPTH_TC_MATMUL_LOAD_AHEAD gives it to layouts that do not name it.
   */
  loadAhead?: 1 | 2;
  /**
   * The element type of the staged operand tiles in workgroup memory, in which subgroup-matrix loads count their
   * offsets and strides: 'vec4' (default: vec4<u32>, 8 halves, one 16-byte store per staged unit) or 'u32' (2 halves;
   * a unit stored as four words). H100 lease 22B (scripts/tc-ceiling.mjs --forms, 8 subgroups of 2×4 tiles, rows padded
   * to 72 halves): multiplies fed from vec4<u32> tiles ran at 262 TFLOP/s, from u32 or f16 tiles at ~600. In the
   * models no product's GPU time changed with u32 tiles (lease 23A, Full profiles). FLASHDEPTH_TC_TILE_ELEMENT gives
   * it to layouts that do not name it.
   */
  tileElement?: TileElement;
  /**
   * The epilogue's per-subgroup scratch for one 16×16 accumulator tile: 'f32' (default: floats, rows of 16, each
   * invocation reading its four columns as four floats) or 'vec4' (vec4<f32>s, rows of 20 floats, one vec4 read per
   * four columns; 256 bytes more per subgroup). H100 lease 22B (scripts/tc-ceiling.mjs --forms), an accumulator's
   * store and reload: 284 TFLOP/s of multiplies through f32 or vec4<f32> rows of 20 floats, 164 through f32 rows of
   * 24, 374 through vec4<f32> rows of 24 (too large here); rows of 16 floats were not probed. In the models (lease
   * 23A, Full profiles, with u32 tiles) no product's GPU time changed. FLASHDEPTH_TC_MATMUL_SCRATCH gives it to
   * layouts that do not name it, where it fits.
   */
  epilogueScratch?: EpilogueScratch;
  /**
   * How the epilogue reads bias, γ and residual and writes C, four columns per unit (where N is a multiple of 4):
   * 'vec4' (default since session 25: one vec4 read per input, one 16-byte f32 or 8-byte f16 store) or 'scalar'
   * (sessions 5–24: four single-float reads per input, four 4-byte stores, or two for halves). Split-K partials and
   * column tails always take single floats. FLASHDEPTH_TC_MATMUL_EPILOGUE_IO gives it to layouts that do not name it.
   */
  epilogueIo?: EpilogueIo;
}

/** Floats per row of the epilogue's scratch tile, and its elements' floats. */
function scratchForm(layout: TensorCoreMatMulLayout): { rowFloats: number; per: number } {
  return layout.epilogueScratch === 'vec4' ? { rowFloats: 20, per: 4 } : { rowFloats: 16, per: 1 };
}

/**
 * The call a program emits where a subgroup's own workgroup-memory round trip needs ordering by the subgroup's
 * program order alone (the attention's `scratchSync: 'subgroup'`, the matmul's `epilogueSync: 'subgroup'`): a
 * function that does nothing on a device with subgroup matrices; the plain-WGSL emulation (whose "subgroup" of 32
 * invocations spans several of lavapipe's) turns each call into a workgroupBarrier.
 */
export const SUBGROUP_SCRATCH_SYNC = 'subgroupScratchSync';

/**
 * 8 subgroups of 32×64: a 128×128 block (46 KiB of workgroup memory: one workgroup per multiprocessor on the H100,
 * where Vulkan gives a multiprocessor 64 KiB of it — `kernel-timing.js --occupancy`). Session 8 tried 4 subgroups of
 * 64×64 (42 KiB) and, single-buffered (23 KiB, two workgroups per multiprocessor), 4 × 64×64 and 4 × 32×32: faster in
 * some isolated-kernel timings, but not in the models (whole-model A/B, same lease: the 4 × 64×64 block made L
 * 25.6 → 33.4 ms and Full 77 → 90; the single-buffered ones were within noise of this layout).
 */
export const DEFAULT_TC_MATMUL_LAYOUT: TensorCoreMatMulLayout = { subgroups: { rows: 4, cols: 2 }, tiles: { rows: 2, cols: 4 } };
/** 4 subgroups of 32×32: a 64×64 block, for grids that 128×128 blocks would leave short of work. */
export const SMALL_TC_MATMUL_LAYOUT: TensorCoreMatMulLayout = { subgroups: { rows: 2, cols: 2 }, tiles: { rows: 2, cols: 2 } };

/**
 * The narrow block of a 3×3 convolution to at most 64 channels: the 128 rows of the usual block in 8 subgroups of 16
 * rows each, only as wide as N (128×32 for the DPT head's 32 channels, where the 128×128 block multiplies three
 * quarters padding; 34–38 KiB double-buffered). A's loads — which bound these products — are spread over as many
 * invocations as before.
 */
export function narrowConvBlock(n: number): TensorCoreMatMulLayout {
  return { subgroups: { rows: 8, cols: 1 }, tiles: { rows: 1, cols: Math.ceil(n / 16) } };
}

/**
 * FLASHDEPTH_TC_CONV_BLOCK=narrow's layout (the default since session 19) for an M×N convolution product, or null
 * where the usual choice stays: more than 64 channels, over `limitBytes`, or under two waves of blocks (small grids
 * keep the square logic's 64×64 blocks and K splits). H100 lease 19B: Full 47.7/47.8 → 47.2/47.3 ms per frame (the
 * student's DPT and head at 2K: 32- and 64-channel convolutions of 47 888 to 2 346 512 rows).
 */
export function narrowConvLayout(m: number, n: number, limitBytes: number): TensorCoreMatMulLayout | null {
  if (n > 64) return null;
  const layout = narrowConvBlock(n);
  return tcMatMulWorkgroupBytes(layout) <= limitBytes && tcMatMulBlocks(m, n, layout) >= TARGET_WORKGROUPS ? layout : null;
}

/**
 * The layout of a 3×3 convolution's M×N×K product: the narrow block where `narrowConvLayout` gives one (with
 * FLASHDEPTH_TC_CONV_BLOCK=narrow, the default), else tensorCoreMatMulLayout's with 128-row blocks (no wave fitting)
 * in 8 subgroups of 64 columns: loading A (neighbourhoods of the image) bounds these products, which fewer subgroups
 * do more slowly (and more, single-buffered, were not measured on them).
 */
export function tensorCoreConvLayout(m: number, n: number, k: number, limitBytes: number, block: ConvBlock = convBlock()): TensorCoreMatMulLayout {
  return (block === 'narrow' ? narrowConvLayout(m, n, limitBytes) : null) ?? tensorCoreMatMulLayout(m, n, k, limitBytes, matMulBlock(), matMulSplit(), 'off', 'wide', 'off');
}

/** Products smaller than this (multiply-adds) convert A while staging: below it the host's time per dispatch dominates. */
export const CONVERT_A_BELOW = 2 ** 30;

/** Workgroups a dispatch should have at least: two waves on the H100's 132 multiprocessors at one workgroup each. */
const TARGET_WORKGROUPS = 256;
/** Fewest 32-deep slices a split-K workgroup gets: below it the prologue and the partials' round trip dominate. */
const MIN_SLICES_PER_SPLIT = 8;

/** Rows × columns of a layout's block. */
export function tcMatMulBlock(layout: TensorCoreMatMulLayout): Grid2 {
  return { rows: 16 * layout.tiles.rows * layout.subgroups.rows, cols: 16 * layout.tiles.cols * layout.subgroups.cols };
}

/** Workgroups one split of a product takes with `layout`: blocks of C. */
export function tcMatMulBlocks(m: number, n: number, layout: TensorCoreMatMulLayout): number {
  const block = tcMatMulBlock(layout);
  return Math.ceil(m / block.rows) * Math.ceil(n / block.cols);
}

/**
 * The layout of an m×k·k×n product:
 * - 128×128 blocks where they make at least TARGET_WORKGROUPS workgroups;
 * - else the same blocks with K split so that they do (each split at least MIN_SLICES_PER_SPLIT slices deep; N a
 *   multiple of 4 for the reduction's vec4s) — with `split` 'few' (default) only where neither a quarter of
 *   TARGET_WORKGROUPS of those blocks (half a wave) nor half of it of 64×64 blocks (a wave) exist: otherwise those
 *   blocks unsplit. H100 lease 13A, GPU time per call (`kernel-timing.js --matmul-only`), split → unsplit: ViT-L fc2
 *   at 518² (88 blocks) 0.38 → 0.29 ms, the Full teacher's proj (136) 0.094 → 0.070 and fc2 0.34 → 0.29; ViT-S fc2
 *   at 518² (33 blocks; 132 of 64×64) 0.052 → 0.033 in 64×64 blocks;
 * - else 64×64 blocks;
 * - an unsplit 128×128 block replaced by a 144- or 96-row one where that takes fewer whole waves
 *   (FLASHDEPTH_TC_MATMUL_WAVES=fit, the default: `waveFittedLayout`; 'fitAll' wherever it takes less time at all);
 * - with `subgroups` 'many' (FLASHDEPTH_TC_MATMUL_SUBGROUPS), that large or fitted block in twice the subgroups
 *   (`withMoreSubgroups`); with 'deep', only where K ≥ DEEP_K.
 * - with `big` (FLASHDEPTH_TC_MATMUL_BIG_BLOCK) '256x128' or '128x256', an unsplit large block replaced by that block
 *   of 8 subgroups of 64×64 where `bigBlockLayout` predicts it faster.
 * Where the device's workgroup memory (`limitBytes`) is short of the large block's 46 KiB (software Vulkan: 32 KiB),
 * the large block single-buffered (27 KiB) — before, such a device failed to create the pipeline of any large product.
 * (3×3 convolutions take `tensorCoreConvLayout`.) Blocks as narrow as N for the DPT head's 32- and 64-channel
 * convolutions in 4 subgroups of one column were slower on
 * the H100 than 128×128 blocks that mostly multiply padding (lease 10A: Full's 2K head conv to 32 channels 2.36 →
 * 5.77 ms): those products are bound by loading A (3×3 neighbourhoods, then of the f32 image), which 4 subgroups do
 * at half the rate of 8.
 */
export function tensorCoreMatMulLayout(m: number, n: number, k: number, limitBytes: number, block: MatMulBlock = matMulBlock(), split: MatMulSplit = matMulSplit(),
  waves: MatMulWaves = matMulWaves(), subgroups: MatMulSubgroups = matMulSubgroups(), big: MatMulBigBlock = matMulBigBlock()): TensorCoreMatMulLayout {
  const chosen = LARGE_BLOCKS[block];
  const large = tcMatMulWorkgroupBytes(chosen) <= limitBytes ? chosen : SINGLE_BUFFERED_TC_MATMUL_LAYOUT;
  const blocks = tcMatMulBlocks(m, n, large);
  const splits = Math.min(Math.ceil(TARGET_WORKGROUPS / blocks), Math.floor(Math.ceil(k / SLICE_K) / MIN_SLICES_PER_SPLIT));
  const splitPays = split === 'fill' || (blocks < TARGET_WORKGROUPS / 4 && tcMatMulBlocks(m, n, SMALL_TC_MATMUL_LAYOUT) < TARGET_WORKGROUPS / 2);
  const layout = blocks >= TARGET_WORKGROUPS ? large
    : splits >= 2 && n % 4 === 0 ? (splitPays ? { ...large, splitK: splits } : blocks >= TARGET_WORKGROUPS / 4 ? large : SMALL_TC_MATMUL_LAYOUT)
    : SMALL_TC_MATMUL_LAYOUT;
  const fitted = layout === large && waves !== 'off' ? waveFittedLayout(m, n, large, limitBytes, waves === 'fitAll' ? 1 : WAVE_FIT_SHARE) : layout;
  const shaped = subgroups === 'many' || (subgroups === 'deep' && k >= DEEP_K) ? withMoreSubgroups(fitted, limitBytes) : fitted;
  const sized = layout === large && big !== 'off' ? bigBlockLayout(m, n, fitted, BIG_TC_MATMUL_LAYOUTS[big], limitBytes) ?? shaped : shaped;
  return m * n * k < CONVERT_A_BELOW ? { ...sized, convertA: true } : sized;
}

/**
 * The blocks of FLASHDEPTH_TC_MATMUL_BIG_BLOCK: 8 subgroups of 64×64 (4×4 tiles), one 32-deep buffer per operand
 * (36.5 KiB of workgroup memory). Per multiply they load half the subgroup matrices from workgroup memory of the
 * 128×128 block's 32×64 subgroups, and per FLOP a quarter fewer operand bytes from L2. H100 lease 18A
 * (`kernel-timing.js --matmul-only`, replayed): a 4096³ product 0.623 ms in 256×128 blocks, 0.895 in 128×128 ones
 * (double-buffered) and 0.849 in 144×128 ones of 12 subgroups (the 'deep' form). On the model's L2-resident operands
 * they bought nothing (lease 22A, Full profiles: the teacher's qkv 2.49 → 2.89 ms per frame, the student's 1.37 →
 * 1.50), so they stay a measurement switch.
 */
export const BIG_TC_MATMUL_LAYOUTS: Record<Exclude<MatMulBigBlock, 'off'>, TensorCoreMatMulLayout> = {
  '256x128': { subgroups: { rows: 4, cols: 2 }, tiles: { rows: 4, cols: 4 }, buffers: 1 },
  '128x256': { subgroups: { rows: 2, cols: 4 }, tiles: { rows: 4, cols: 4 }, buffers: 1 },
};

/** A big block's time per element of C against the 128×128 block's, in steady state (lease 18A's 4096³: 0.623 / 0.895). */
export const BIG_BLOCK_SPEED = 0.7;

/**
 * `big` where it fits `limitBytes` and its whole waves are predicted to take less time than `usual`'s (a big block's
 * time per element BIG_BLOCK_SPEED of the usual one's), else null. The 2K student's qkv (11 972 × 1152): 423 blocks
 * of 256×128 (4 waves) against 756 of 144×128 (6); its fc1 564 (5) against 1128 of 128×128 (9); the Full teacher's
 * qkv (2171 × 3072) 216 (2) against 384 of 144 rows (3). The student's proj and fc2 (384 columns: 141 blocks, a
 * second wave of 9) and the teacher's (72 blocks, half a wave) keep theirs.
 */
export function bigBlockLayout(m: number, n: number, usual: TensorCoreMatMulLayout, big: TensorCoreMatMulLayout, limitBytes: number): TensorCoreMatMulLayout | null {
  if (tcMatMulWorkgroupBytes(big) > limitBytes) return null;
  return tcMatMulWaveCost(m, n, big) * BIG_BLOCK_SPEED < tcMatMulWaveCost(m, n, usual) ? big : null;
}

/** Multiprocessors the wave model assumes: the H100 SXM's and the H200's 132 (WebGPU does not report the count). */
const MULTIPROCESSORS = 132;

/**
 * Whole waves a grid of `workgroups` takes at one workgroup per multiprocessor (the tensor-core matmul's and
 * attention's 38–46 KiB workgroups): a wave that is mostly empty costs as much as a full one.
 */
export function wholeWaves(workgroups: number): number {
  return Math.ceil(workgroups / MULTIPROCESSORS);
}

/** A wave-fitted layout (matmul block or attention workgroup) replaces the usual one only below this share of its predicted time. */
export const WAVE_FIT_SHARE = 0.9;

/**
 * The other block heights FLASHDEPTH_TC_MATMUL_WAVES=fit may take, each subgroup 64 columns wide like the 128×128
 * block's: 144×128 (6 subgroups of 48×64: 45.5 KiB double-buffered) and 96×128 (6 subgroups of 32×64: 38 KiB).
 */
export const WAVE_FITTED_TC_MATMUL_LAYOUTS: readonly TensorCoreMatMulLayout[] = [
  { subgroups: { rows: 3, cols: 2 }, tiles: { rows: 3, cols: 4 } },
  { subgroups: { rows: 3, cols: 2 }, tiles: { rows: 2, cols: 4 } },
];

/**
 * Predicted GPU time of an unsplit product in `layout`, in units of one 16×128 block-row: its whole waves times the
 * size of a block, taking a block's time as proportional to its elements.
 */
export function tcMatMulWaveCost(m: number, n: number, layout: TensorCoreMatMulLayout): number {
  const block = tcMatMulBlock(layout);
  return wholeWaves(tcMatMulBlocks(m, n, layout)) * ((block.rows * block.cols) / (16 * 128));
}

/**
 * The block whose rows fit an unsplit product best into waves: `large` (the 128×128 block), or one of
 * WAVE_FITTED_TC_MATMUL_LAYOUTS with `large`'s staging (single-buffered where double would not fit `limitBytes`)
 * where that is predicted to take at most `share` of its time (WAVE_FIT_SHARE). Until session 25 it had to take
 * less; at most adds the Full teacher's fc1 (4 waves of 144-row blocks against 5 of 128; lease 25A, per call 0.142 →
 * 0.118 ms). FLASHDEPTH_TC_MATMUL_WAVES=fitAll (`share` 1): wherever it takes less time at all, which also moves the
 * 2K student's qkv (6 waves of 144 rows against 7 of 128; 0.094 → 0.099 ms per call, slower). The Full teacher's proj
 * and fc2 (2171 rows, 1024 columns): 17 × 8 = 136 blocks of 128 rows (two waves, the second 4 blocks), 16 × 8 = 128
 * of 144 (one); ViT-L's at 518² (1371 rows): 88 blocks of 128 rows, 120 of 96 (both one wave).
 */
export function waveFittedLayout(m: number, n: number, large: TensorCoreMatMulLayout, limitBytes: number, share = WAVE_FIT_SHARE): TensorCoreMatMulLayout {
  let best: TensorCoreMatMulLayout | null = null;
  let bestCost = Infinity;
  for (const shape of WAVE_FITTED_TC_MATMUL_LAYOUTS) {
    const double: TensorCoreMatMulLayout = { ...large, subgroups: shape.subgroups, tiles: shape.tiles };
    const candidate = tcMatMulWorkgroupBytes(double) <= limitBytes ? double : { ...double, buffers: 1 as const };
    if (tcMatMulWorkgroupBytes(candidate) > limitBytes) continue;
    const cost = tcMatMulWaveCost(m, n, candidate);
    if (cost < bestCost) {
      best = candidate;
      bestCost = cost;
    }
  }
  // The cheapest fitted block (the first on a tie), where it takes at most `share` of the large block's time (for
  // 'fitAll', strictly less).
  const largeCost = tcMatMulWaveCost(m, n, large);
  return best !== null && (share < 1 ? bestCost <= largeCost * share : bestCost < largeCost) ? best : large;
}

/**
 * Depth from which FLASHDEPTH_TC_MATMUL_SUBGROUPS=deep (the default) gives a product twice the subgroups: ViT-L's
 * and the Full teacher's (K = 1024 and 4096), whose blocks got faster in them on the H100 (lease 18A,
 * `kernel-timing.js --matmul-only`: ViT-L's fc1 at 518² 0.36 → 0.29 ms, the teacher's fc2 0.19 → 0.16), not the 2K
 * student's qkv and fc1 (K = 384: 0.35 → 0.68 and 0.58 → 0.77 in that sweep).
 */
export const DEEP_K = 1024;

/**
 * `layout`'s block in twice its subgroups, each half as wide (32 columns instead of 64): double-buffered where that
 * fits `limitBytes`, else single-buffered, else `layout` itself (as for a layout whose subgroups are not 64 wide).
 * Twice the warps on a multiprocessor to hide each one's latency (the block's workgroups run one at a time), at
 * more workgroup-memory loads per multiply: lease 17A timed the Full teacher's fc2 (2171 × 4096 × 1024) in 144-row
 * blocks at 0.19 ms per call in 6 subgroups of 48×64 and 0.16 in 12 of 48×32, single-buffered.
 */
export function withMoreSubgroups(layout: TensorCoreMatMulLayout, limitBytes: number): TensorCoreMatMulLayout {
  if (layout.tiles.cols !== 4) return layout;
  const many: TensorCoreMatMulLayout = { ...layout, subgroups: { rows: layout.subgroups.rows, cols: 2 * layout.subgroups.cols }, tiles: { rows: layout.tiles.rows, cols: 2 } };
  if (tcMatMulWorkgroupBytes(many) <= limitBytes) return many;
  const single: TensorCoreMatMulLayout = { ...many, buffers: 1 };
  return tcMatMulWorkgroupBytes(single) <= limitBytes ? single : layout;
}

/**
 * Throws a one-line ConfigError where an explicitly chosen layout (tuning: `mixedMatMul`'s `layout`) cannot run on
 * this device — more workgroup memory than `limitBytes`, or a split count that is not a whole number ≥ 1 — instead of
 * leaving it to a Dawn validation error at pipeline creation.
 */
export function checkTcMatMulLayout(layout: TensorCoreMatMulLayout, limitBytes: number): void {
  const bytes = tcMatMulWorkgroupBytes(layout);
  const name = `${layout.subgroups.rows}×${layout.subgroups.cols} subgroups of ${layout.tiles.rows}×${layout.tiles.cols} tiles`;
  if (bytes > limitBytes) throw new ConfigError(`tensor-core matmul layout (${name}): needs ${bytes} bytes of workgroup memory, the device allows ${limitBytes}`);
  const splits = layout.splitK ?? 1;
  if (!Number.isInteger(splits) || splits < 1) throw new ConfigError(`tensor-core matmul layout (${name}): splitK must be a whole number ≥ 1, got ${splits}`);
}

/** Slices of K one workgroup covers: all of them, or a split's share (the last split may get fewer). */
export function tcMatMulSlicesPerSplit(kPadded: number, layout: TensorCoreMatMulLayout): number {
  const slices = Math.ceil(kPadded / (layout.sliceK ?? SLICE_K));
  return Math.ceil(slices / Math.max(1, layout.splitK ?? 1));
}

/** Splits of K that actually get slices (fewer than asked where K is too shallow for them all). */
export function tcMatMulSplits(kPadded: number, layout: TensorCoreMatMulLayout): number {
  const slices = Math.ceil(kPadded / (layout.sliceK ?? SLICE_K));
  return Math.ceil(slices / tcMatMulSlicesPerSplit(kPadded, layout));
}

/** The 128×128 block with one buffer per operand: 27 KiB of workgroup memory, two barriers per slice. */
export const SINGLE_BUFFERED_TC_MATMUL_LAYOUT: TensorCoreMatMulLayout = { ...DEFAULT_TC_MATMUL_LAYOUT, buffers: 1 };

/** The 128×128 block by FLASHDEPTH_TC_MATMUL_BLOCK (./mode.ts): 46, 27 and 29 KiB of workgroup memory. */
const LARGE_BLOCKS: Record<MatMulBlock, TensorCoreMatMulLayout> = {
  double: DEFAULT_TC_MATMUL_LAYOUT,
  single: SINGLE_BUFFERED_TC_MATMUL_LAYOUT,
  double16: { ...DEFAULT_TC_MATMUL_LAYOUT, sliceK: 16 },
};

const roundUp = (x: number, m: number): number => Math.ceil(x / m) * m;

/** Slices a layout's global loads run ahead of its multiplies: 2 only where asked and double-buffered. */
export function loadsAhead(layout: TensorCoreMatMulLayout): 1 | 2 {
  return layout.loadAhead === 2 && (layout.buffers ?? 2) === 2 ? 2 : 1;
}

/** The shader-key part of the tuning knobs (empty at their defaults, so default keys stay as they were). */
function layoutKeySuffix(layout: TensorCoreMatMulLayout): string {
  const sliceK = layout.sliceK ?? SLICE_K;
  const buffers = layout.buffers ?? 2;
  return `${sliceK !== SLICE_K ? `_k${sliceK}` : ''}${buffers !== 2 ? `_b${buffers}` : ''}${(layout.splitK ?? 1) > 1 ? '_split' : ''}${layout.epilogueSync === 'subgroup' ? '_epiSubgroup' : ''}${layout.residualPrefetch ? '_resPrefetch' : ''}${loadsAhead(layout) === 2 ? '_ahead2' : ''}${layout.tileElement === 'u32' ? '_u32tiles' : ''}${layout.epilogueScratch === 'vec4' ? '_vec4scratch' : ''}`;
}

/** Bytes of workgroup memory the tensor-core matmul takes with `layout` (A and B tiles, the f32 epilogue scratch). */
export function tcMatMulWorkgroupBytes(layout: TensorCoreMatMulLayout): number {
  const sg = layout.subgroups;
  const { rows: bm, cols: bn } = tcMatMulBlock(layout);
  const bk = layout.sliceK ?? SLICE_K;
  const buffers = layout.buffers ?? 2;
  return buffers * (bm * (bk + 8) + bk * (bn + 8)) * 2 + sg.rows * sg.cols * 16 * scratchForm(layout).rowFloats * 4;
}

/** Padded sizes of a packed operand: rows to whole tiles of `rowMultiple`, at least `minRows`; columns likewise. */
export interface PackedShape {
  rows: number;
  cols: number;
  rowsPad: number;
  colsPad: number;
}

export function packedShape(rows: number, cols: number, rowMultiple: number, colMultiple: number, minRows = 0, minCols = 0): PackedShape {
  return { rows, cols, rowsPad: Math.max(roundUp(rows, rowMultiple), minRows), colsPad: Math.max(roundUp(cols, colMultiple), minCols) };
}

/**
 * f32 [rows, cols] (cols a multiple of 4) → f16 [rowsPad, colsPad] as int32 half pairs, zero-padded. `transposed`:
 * the source is stored as [cols, rows] (a weight used transposed, tf.matMul's transposeB), read element by element.
 */
export class PackF16Program implements WebGPUProgram {
  variableNames = ['X'];
  variableComponents: number[];
  outputComponent = 2;
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  uniforms = 'rows : i32, cols4 : i32, colsPad4 : i32, units : i32,';
  private readonly transposed: boolean;
  private readonly relu: boolean;

  /** `relu`: ReLU of X while packing it (a conv's input, ResidualConvUnit's outer ReLU; exact in f16). */
  constructor(shape: PackedShape, transposed = false, relu = false) {
    const units = (shape.rowsPad * shape.colsPad) / 4;
    this.transposed = transposed;
    this.relu = relu;
    this.variableComponents = [transposed ? 1 : 4];
    this.shaderKey = `packF16${transposed ? 'T' : ''}${relu ? '_relu' : ''}`;
    this.outputShape = [units * 2];
    this.dispatch = foldedDispatch(Math.ceil(units / 256));
  }

  getUserCode(): string {
    const read = this.transposed
      ? 'v = vec4<f32>(X[(4 * c) * uniforms.rows + r], X[(4 * c + 1) * uniforms.rows + r], X[(4 * c + 2) * uniforms.rows + r], X[(4 * c + 3) * uniforms.rows + r]);'
      : 'v = X[r * uniforms.cols4 + c];';
    return `
      fn main(u : i32) {
        if (u >= uniforms.units) { return; }
        let r = u / uniforms.colsPad4;
        let c = u % uniforms.colsPad4;
        var v = vec4<f32>(0.0);
        if (r < uniforms.rows && c < uniforms.cols4) { ${read} }
        ${this.relu ? 'v = max(v, vec4<f32>(0.0));' : ''}
        result[u] = vec2<i32>(bitcast<i32>(pack2x16float(v.xy)), bitcast<i32>(pack2x16float(v.zw)));
      }
    `;
  }
}

export function packF16Uniforms(shape: PackedShape): { type: 'int32'; data: number[] }[] {
  return [
    { type: 'int32', data: [shape.rows] },
    { type: 'int32', data: [shape.cols / 4] },
    { type: 'int32', data: [shape.colsPad / 4] },
    { type: 'int32', data: [(shape.rowsPad * shape.colsPad) / 4] },
  ];
}

/**
 * Where C goes: f32 [m, n]; packed f16 [A's padded rows, n] (a following product's A operand); or, for a qkv product,
 * f16 head planes as TensorCoreAttentionProgram reads them (./tc-attention_webgpu.ts `packedPlanes`: Q planes scaled
 * by `qScale`, then K, then V; columns [q | k | v], each head-major; row r = token r % tokens of sequence r / tokens).
 */
export type MatMulStore = 'f32' | 'packedF16' | 'headPlanes';

/** Extra uniforms of the 'headPlanes' store, after tcMatMulUniforms'. */
export const HEAD_PLANES_UNIFORMS = 'tokens : u32, heads : u32, headDim : u32, lqPad : u32, lkPad : u32, kHalves : u32, vHalves : u32, qScale : f32,';

/**
 * WGSL statements: bias and epilogue on four columns `v` of C (row `row`, first column `c`, flat index `o`), stored to
 * `result` as f32 or as packed halves. Shared by the product's own epilogue and by the split-K reduction. With
 * `vectorIo` (N a multiple of 4: `c` and `o` then are too) bias, γ and residual are bound as vec4s and `result` as
 * vec4<f32> or vec2<i32> (four halves), so each unit is one 16- or 8-byte access where it was four or two.
 */
function vec4EpilogueCode(hasBias: boolean, epilogue: MatMulEpilogue, output: MatMulStore, vectorIo: boolean, residual = residualVec4(vectorIo)): string {
  const bias = !hasBias ? '' : vectorIo ? 'v = v + Bias[c / 4u];' : 'v = v + vec4<f32>(Bias[c], Bias[c + 1u], Bias[c + 2u], Bias[c + 3u]);';
  const gamma = vectorIo ? 'Gamma[c / 4u]' : 'vec4<f32>(Gamma[c], Gamma[c + 1u], Gamma[c + 2u], Gamma[c + 3u])';
  const apply = epilogue === 'gelu'
    ? `v = 0.5 * v * (1.0 + erfVec4(v * ${Math.SQRT1_2.toFixed(9)}));`
    : epilogue === 'relu' ? 'v = max(v, vec4<f32>(0.0));'
    : epilogue === 'scaleAdd'
      ? `v = ${residual} + ${gamma} * v;`
      : epilogue === 'add' ? `v = ${residual} + v;`
      : '';
  const halves = (at: string, x: string) => vectorIo
    ? `result[(${at}) / 4u] = vec2<i32>(bitcast<i32>(pack2x16float(${x}.xy)), bitcast<i32>(pack2x16float(${x}.zw)));`
    : `let h = (${at}) / 2u; result[h] = bitcast<i32>(pack2x16float(${x}.xy)); result[h + 1u] = bitcast<i32>(pack2x16float(${x}.zw));`;
  // Four columns of one head (Dh a multiple of 4): segment (q, k or v), head, channel; the row's sequence and token.
  const planes = `let width = uniforms.heads * uniforms.headDim;
              let segment = c / width;
              let plane = (row / uniforms.tokens) * uniforms.heads + (c % width) / uniforms.headDim;
              let token = row % uniforms.tokens;
              let channel = c % uniforms.headDim;
              if (segment == 0u) {
                let x = v * uniforms.qScale;
                ${halves('(plane * uniforms.lqPad + token) * uniforms.headDim + channel', 'x')}
              } else {
                ${halves('select(uniforms.kHalves, uniforms.vHalves, segment == 2u) + (plane * uniforms.lkPad + token) * uniforms.headDim + channel', 'v')}
              }`;
  const store = output === 'packedF16' ? halves('row * uniforms.n + c', 'v')
    : output === 'headPlanes' ? planes
    : vectorIo ? 'result[o / 4u] = v;' : 'result[o] = v.x; result[o + 1u] = v.y; result[o + 2u] = v.z; result[o + 3u] = v.w;';
  return `${bias}
              ${apply}
              ${store}`;
}

/** The names the epilogue's extra inputs are bound under. */
export type EpilogueInput = 'Bias' | 'Residual' | 'Gamma';

/** WGSL: the residual's four values at flat index `o` (read where the epilogue needs them), as one vec4 or four floats. */
function residualVec4(vectorIo: boolean): string {
  return vectorIo ? 'Residual[o / 4u]' : 'vec4<f32>(Residual[o], Residual[o + 1u], Residual[o + 2u], Residual[o + 3u])';
}

/** Whether an epilogue adds a residual read from C's own layout. */
function readsResidual(epilogue: MatMulEpilogue): boolean {
  return epilogue === 'scaleAdd' || epilogue === 'add';
}

/** The epilogue's extra inputs, in binding order after the operands (the order callers pass their tensors in). */
export function epilogueInputs(hasBias: boolean, epilogue: MatMulEpilogue): EpilogueInput[] {
  const residual: EpilogueInput[] = epilogue === 'scaleAdd' ? ['Residual', 'Gamma'] : epilogue === 'add' ? ['Residual'] : [];
  return hasBias ? ['Bias', ...residual] : residual;
}

export class TensorCoreMatMulProgram implements WebGPUProgram {
  variableNames: string[];
  variableComponents: number[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[]; y: number[]; z?: number[] } = { x: [1], y: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  /** h, w, cin: the input image of a conv3x3 source; oh, ow: its output; stride (unused otherwise). */
  uniforms = 'm : u32, n : u32, k : u32, mp : u32, np : u32, kp : u32, h : u32, w : u32, cin : u32, oh : u32, ow : u32, stride : u32, slicesPer : u32,';
  private readonly aSource: MatMulASource;
  private readonly hasBias: boolean;
  private readonly epilogue: MatMulEpilogue;
  private readonly layout: TensorCoreMatMulLayout;
  private readonly packedOutput: boolean;
  private readonly partials: boolean;
  private readonly store: MatMulStore;
  /** The epilogue's global reads and writes as whole vec4s of C (`epilogueIo` 'vec4' and N a multiple of 4). */
  private readonly vectorIo: boolean;
  outputComponent?: number;

  /**
   * `output` 'packedF16': C leaves as the packed f16 A operand of a following product ([A's padded rows, N] as int32
   * half pairs; N a multiple of SLICE_K, so no column padding; padded rows are left unwritten — they only reach rows
   * of that product's C that its epilogue never writes). 'partials' (with `layout.splitK`): each split's raw sums,
   * [splits, whole blocks of rows, whole blocks of columns] f32, stored straight from the accumulators; no bias or
   * epilogue (SplitKReduceProgram runs them). 'headPlanes' (no split): C as the f16 head planes of an attention
   * ([planeHalves / 2] int32; `planeHalves` their total; HEAD_PLANES_UNIFORMS follow the common uniforms).
   */
  constructor(m: number, n: number, a: PackedShape, hasBias: boolean, epilogue: MatMulEpilogue, layout: TensorCoreMatMulLayout, aSource: MatMulASource,
    output: MatMulStore | 'partials' = 'f32', planeHalves = 0) {
    if (output === 'packedF16' && n % SLICE_K !== 0) throw new Error(`TensorCoreMatMulProgram: a packed f16 output needs N a multiple of ${SLICE_K}, got ${n}`);
    if (output === 'partials' && (hasBias || epilogue !== 'none')) throw new Error('TensorCoreMatMulProgram: split-K partials take no bias or epilogue (the reduction runs them)');
    if (output === 'headPlanes' && (layout.splitK ?? 1) > 1) throw new Error('TensorCoreMatMulProgram: head planes are written by unsplit products only');
    this.packedOutput = output === 'packedF16' || output === 'headPlanes';
    this.partials = output === 'partials';
    this.store = output === 'partials' ? 'f32' : output;
    if (output === 'headPlanes') this.uniforms += HEAD_PLANES_UNIFORMS;
    this.aSource = aSource;
    this.hasBias = hasBias;
    this.epilogue = epilogue;
    this.layout = layout;
    // Split-K partials leave by subgroup-matrix stores into an f32 array; a column tail needs single floats.
    this.vectorIo = !this.partials && (layout.epilogueIo ?? 'vec4') === 'vec4' && n % 4 === 0;
    if (this.vectorIo) this.outputComponent = this.packedOutput ? 2 : 4;
    // The packed operands come as int32 vec4s (8 halves each), reinterpreted with bitcast.
    this.variableComponents = [4, 4, ...epilogueInputs(hasBias, epilogue).map(() => (this.vectorIo ? 4 : 1))];
    this.variableNames = [aSource === 'f32' ? 'A' : 'A16', 'B16', ...epilogueInputs(hasBias, epilogue)];
    const { subgroups: sg } = layout;
    const block = tcMatMulBlock(layout);
    const rowBlocks = Math.ceil(a.rowsPad / block.rows);
    const colBlocks = Math.ceil(n / block.cols);
    const splits = this.partials ? tcMatMulSplits(a.colsPad, layout) : 1;
    this.outputShape = this.partials ? [splits, rowBlocks * block.rows, colBlocks * block.cols] : output === 'headPlanes' ? [planeHalves / 2] : this.packedOutput ? [a.rowsPad, n / 2] : [m, n];
    if (this.partials) this.dispatchLayout = { x: [2], y: [1], z: [0] };
    this.workgroupSize = [32 * sg.rows * sg.cols, 1, 1];
    this.dispatch = [colBlocks, rowBlocks, splits];
    const outputKey = output === 'headPlanes' ? '_planesOut' : this.packedOutput ? '_packedOut' : this.partials ? '_partials' : '';
    this.shaderKey = `tcMatMul_${hasBias}_${epilogue}_${sg.rows}x${sg.cols}_${layout.tiles.rows}x${layout.tiles.cols}_${aSource}${outputKey}${this.vectorIo ? '_vecIo' : ''}${layoutKeySuffix(layout)}`;
  }

  /** Whether this program loads its residual values before the tiles' round trips (`residualPrefetch`). */
  private prefetchesResidual(): boolean {
    return this.layout.residualPrefetch === true && readsResidual(this.epilogue) && !this.partials;
  }

  /** WGSL: the f32 scratch the accumulators leave through, and the epilogue that writes one 16×16 tile of C. */
  private epilogueCode(): string {
    const { subgroups: sg } = this.layout;
    const { rowFloats, per } = scratchForm(this.layout);
    const vecScratch = per === 4;
    const prefetch = this.prefetchesResidual();
    const body = vec4EpilogueCode(this.hasBias, this.epilogue, this.store, this.vectorIo, prefetch ? 'select(res1, res0, e == 0u)' : undefined);
    const tail = this.packedOutput || this.vectorIo ? '' : `for (var i = 0u; i < uniforms.n - c; i++) {
                let col = c + i;
                var x = ${vecScratch ? 'cTile[s][i]' : 'cTile[s + i]'};
                ${this.hasBias ? 'x = x + Bias[col];' : ''}
                ${this.epilogue === 'gelu' ? `x = 0.5 * x * (1.0 + erfVec4(vec4<f32>(x * ${Math.SQRT1_2.toFixed(9)})).x);` : this.epilogue === 'relu' ? 'x = max(x, 0.0);' : this.epilogue === 'scaleAdd' ? 'x = Residual[o + i] + Gamma[col] * x;' : this.epilogue === 'add' ? 'x = Residual[o + i] + x;' : ''}
                result[o + i] = x;
              }`;
    // Four consecutive columns per invocation and step, so that GELU's erf runs on whole vec4s; columns past n
    // (when n is not a multiple of 4; never with a packed output or vec4 I/O) go through the scalar path.
    return `
      ${this.epilogue === 'gelu' ? ERF_VEC4_WGSL : ''}
      var<workgroup> cTile : array<${vecScratch ? 'vec4<f32>' : 'f32'}, ${(sg.rows * sg.cols * 16 * rowFloats) / per}>;
      ${this.layout.epilogueSync === 'subgroup' ? `fn ${SUBGROUP_SCRATCH_SYNC}() {}` : ''}

      ${prefetch ? `// Unit e of this invocation in a tile at (r0, c0): its residual values, zero outside C or in a column tail
      // (which the scalar path reads itself).
      fn loadResidual(lane : u32, r0 : u32, c0 : u32, e : u32) -> vec4<f32> {
        let unit = lane + e * 32u;
        let row = r0 + unit / 4u;
        let c = c0 + (unit % 4u) * 4u;
        if (row < uniforms.m && c + 4u <= uniforms.n) {
          let o = row * uniforms.n + c;
          return ${residualVec4(this.vectorIo)};
        }
        return vec4<f32>(0.0);
      }` : ''}

      fn writeTile(sg : u32, lane : u32, r0 : u32, c0 : u32${prefetch ? ', res0 : vec4<f32>, res1 : vec4<f32>' : ''}) {
        for (var e = 0u; e < 2u; e++) {
          let unit = lane + e * 32u;
          let row = r0 + unit / 4u;
          let c = c0 + (unit % 4u) * 4u;
          // The unit's four floats in the scratch (in its elements: floats, or the vec4 of a row of ${rowFloats}).
          let s = ${vecScratch ? `sg * ${(16 * rowFloats) / 4}u + (unit / 4u) * ${rowFloats / 4}u + unit % 4u` : 'sg * 256u + unit * 4u'};
          if (row < uniforms.m && c < uniforms.n) {
            var v = ${vecScratch ? 'cTile[s]' : 'vec4<f32>(cTile[s], cTile[s + 1u], cTile[s + 2u], cTile[s + 3u])'};
            let o = row * uniforms.n + c;
            ${this.vectorIo ? body : `if (c + 4u <= uniforms.n) {
              ${body}
            } else {
              ${tail}
            }`}
          }
        }
      }`;
  }

  /**
   * WGSL statements: every accumulator through the scratch to C (rows from rs, columns from cs), or, for split-K
   * partials, straight into this split's plane of the output (whole blocks, so no bounds to check).
   */
  private storeCode(): string {
    const { tiles } = this.layout;
    const { rowFloats, per } = scratchForm(this.layout);
    const sync = this.layout.epilogueSync === 'subgroup' ? `${SUBGROUP_SCRATCH_SYNC}();` : 'workgroupBarrier();';
    const prefetch = this.prefetchesResidual();
    const loads: string[] = [];
    const store: string[] = [];
    for (let i = 0; i < tiles.rows; i++) for (let j = 0; j < tiles.cols; j++) {
      if (prefetch) {
        for (const e of [0, 1]) loads.push(`let res${i}_${j}_${e} = loadResidual(lane, rs + ${i * 16}u, cs + ${j * 16}u, ${e}u);`);
      }
      store.push(this.partials
        ? `subgroupMatrixStore<row_major>(&result, (plane + rs + ${i * 16}u) * partialCols + cs + ${j * 16}u, acc${i}_${j}, partialCols);`
        : `subgroupMatrixStore<row_major>(&cTile, sg * ${(16 * rowFloats) / per}u, acc${i}_${j}, ${rowFloats / per}u);
        ${sync}
        writeTile(sg, lane, rs + ${i * 16}u, cs + ${j * 16}u${prefetch ? `, res${i}_${j}_0, res${i}_${j}_1` : ''});
        ${sync}`);
    }
    const plane = this.partials ? ['let partialCols = u32(uniforms.outShape.z);', 'let plane = workgroupId.z * u32(uniforms.outShape.y);'] : [];
    return [...plane, ...loads, ...store].join('\n        ');
  }

  private declareCode(): string {
    const { tiles } = this.layout;
    const declare: string[] = [];
    for (let i = 0; i < tiles.rows; i++) for (let j = 0; j < tiles.cols; j++) declare.push(`var acc${i}_${j} : subgroup_matrix_result<f32, 16, 16>;`);
    return declare.join('\n        ');
  }

  /**
   * WGSL: the main loop with global loads two slices ahead (`loadAhead` 2), unrolled by two so that each step names
   * its buffer and register sets statically. Entering step s, slice s is in buffer s % 2 and slice s + 1 in register
   * set (s + 1) % 2 (still arriving); step s loads slice s + 2 into set s % 2 (stored to the workgroup tile the step
   * before), multiplies slice s, then stores set (s + 1) % 2 into the other buffer (read by the step before, which
   * the barrier between closed).
   */
  private twoAheadLoop(loads: string[], stores: string[], mma: string[], slice8: number): string {
    const step = (at: string, cur: 0 | 1) => `let cur = ${cur}u;
            if (${at} + 2u < count) {
              k8 = (first + ${at} + 2u) * ${slice8}u;
              ${loads.map((l) => inRegisterSet(l, cur)).join('\n              ')}
            }
            ${mma.join('\n            ')}
            if (${at} + 1u < count) {
              buf = ${1 - cur}u;
              ${stores.map((l) => inRegisterSet(l, (1 - cur) as 0 | 1)).join('\n              ')}
            }
            workgroupBarrier();`;
    return `for (var s = 0u; s < count; s += 2u) {
          {
            ${step('s', 0)}
          }
          if (s + 1u < count) {
            ${step('(s + 1u)', 1)}
          }
        }`;
  }

  getUserCode(): string {
    const { subgroups: sg, tiles } = this.layout;
    const threads = 32 * sg.rows * sg.cols;
    const { rows: bm, cols: bn } = tcMatMulBlock(this.layout);
    const bk = this.layout.sliceK ?? SLICE_K;
    const buffers = this.layout.buffers ?? 2;
    // A slice deeper than K's padding unit may reach past the packed operands' K: those units are zero.
    const partialSlice = bk > SLICE_K;
    const as = bk + 8;
    const bs = bn + 8;
    const convertA = this.aSource === 'f32';
    // A units: 8 halves of the packed copy, or 4 floats of A itself. Each unit is one store into the workgroup tile,
    // whose elements are the units' f16 bits (vec4<u32>: 8 halves, vec2<u32>: 4); subgroup-matrix loads count offsets
    // and strides in those elements (row strides and tile origins are multiples of 8 halves).
    const aWidth = convertA ? 4 : 8;
    // Tile elements: the units themselves (vec4<u32>: 8 halves, vec2<u32>: 4), or u32 words (2 halves) written one by
    // one; `aPer`/`bPer`: halves per element, in which the fragments' offsets and strides are counted.
    const words = this.layout.tileElement === 'u32';
    const aElement = words ? 'u32' : convertA ? 'vec2<u32>' : 'vec4<u32>';
    const aPer = words ? 2 : aWidth;
    const bPer = words ? 2 : 8;
    const tileStore = (tile: string, unitIndex: string, value: string, halves: number) => words
      ? `{ let e = (${unitIndex}) * ${halves / 2}u; let v = ${value}; ${[...Array(halves / 2).keys()].map((i) => `${tile}[e${i ? ` + ${i}u` : ''}] = v[${i}];`).join(' ')} }`
      : `${tile}[${unitIndex}] = ${value};`;
    const aUnits = (bm * bk) / aWidth;
    const bUnits = (bk * bn) / 8;
    const aLoads = Math.ceil(aUnits / threads);
    const bLoads = Math.ceil(bUnits / threads);
    const left = 'subgroup_matrix_left<f16, 16, 16>';
    const right = 'subgroup_matrix_right<f16, 16, 16>';
    const units: string[] = [];
    const loads: string[] = [];
    const stores: string[] = [];
    for (let p = 0; p < aLoads; p++) {
      units.push(`let ua${p} = t + ${p * threads}u;`);
      const perRow = bk / aWidth;
      const at = `${buffers === 2 ? `buf * ${(bm * as) / aWidth}u + ` : ''}(ua${p} / ${perRow}u) * ${as / aWidth}u + ua${p} % ${perRow}u`;
      const halves = `vec2<u32>(pack2x16float(ra${p}.xy), pack2x16float(ra${p}.zw))`;
      if (this.aSource === 'conv3x3') {
        // A unit's output pixel (its row of the block) and 8-channel column stay the same from slice to slice, so the
        // pixel's (image, y·stride − 1, x·stride − 1) are found once, before the loop — four integer divisions by
        // run-time sizes per unit and slice fewer; per slice only the tap (ky, kx) and channel of kc remain. Outside
        // the image the value is zero.
        units.push(`let cpx${p} = min(row0 + ua${p} / ${perRow}u, uniforms.m - 1u);`,
          `let cx${p} = i32((cpx${p} % uniforms.ow) * uniforms.stride) - 1;`,
          `let cy${p} = i32(((cpx${p} / uniforms.ow) % uniforms.oh) * uniforms.stride) - 1;`,
          `let cimg${p} = (cpx${p} / (uniforms.ow * uniforms.oh)) * uniforms.h;`,
          `let cc${p} = (ua${p} % ${perRow}u) * ${aWidth}u;`);
        loads.push(`if (ua${p} < ${aUnits}u) {
          let kc = k8 * 8u + cc${p};
          let tap = kc / uniforms.cin;
          let ky = tap / 3u;
          let yy = cy${p} + i32(ky);
          let xx = cx${p} + i32(tap - 3u * ky);
          let inside = yy >= 0 && yy < i32(uniforms.h) && xx >= 0 && xx < i32(uniforms.w) && tap < 9u;
          let src = (cimg${p} + u32(clamp(yy, 0, i32(uniforms.h) - 1))) * uniforms.w + u32(clamp(xx, 0, i32(uniforms.w) - 1));
          ra${p} = select(vec4<i32>(0), A16[src * (uniforms.cin / 8u) + (kc - tap * uniforms.cin) / 8u], inside);
        }`);
        stores.push(`if (ua${p} < ${aUnits}u) { ${tileStore('aTile', at, `bitcast<vec4<u32>>(ra${p})`, 8)} }`);
      } else if (convertA) {
        loads.push(`if (ua${p} < ${aUnits}u) { let kc = k8 * 8u + (ua${p} % ${perRow}u) * 4u; ra${p} = select(vec4<f32>(0.0), A[min(row0 + ua${p} / ${perRow}u, uniforms.m - 1u) * k4 + min(kc / 4u, k4 - 1u)], kc < uniforms.k); }`);
        stores.push(`if (ua${p} < ${aUnits}u) { ${tileStore('aTile', at, halves, 4)} }`);
      } else if (partialSlice) {
        loads.push(`if (ua${p} < ${aUnits}u) { let kc8 = k8 + ua${p} % ${perRow}u; ra${p} = select(vec4<i32>(0), A16[min(row0 + ua${p} / ${perRow}u, mp - 1u) * kp8 + min(kc8, kp8 - 1u)], kc8 < kp8); }`);
        stores.push(`if (ua${p} < ${aUnits}u) { ${tileStore('aTile', at, `bitcast<vec4<u32>>(ra${p})`, 8)} }`);
      } else {
        loads.push(`if (ua${p} < ${aUnits}u) { ra${p} = A16[min(row0 + ua${p} / ${perRow}u, mp - 1u) * kp8 + k8 + ua${p} % ${perRow}u]; }`);
        stores.push(`if (ua${p} < ${aUnits}u) { ${tileStore('aTile', at, `bitcast<vec4<u32>>(ra${p})`, 8)} }`);
      }
    }
    for (let p = 0; p < bLoads; p++) {
      units.push(`let ub${p} = t + ${p * threads}u;`);
      loads.push(partialSlice
        ? `if (ub${p} < ${bUnits}u) { let kr = k8 * 8u + ub${p} / ${bn / 8}u; rb${p} = select(vec4<i32>(0), B16[min(kr, uniforms.kp - 1u) * np8 + min(col8 + ub${p} % ${bn / 8}u, np8 - 1u)], kr < uniforms.kp); }`
        : `if (ub${p} < ${bUnits}u) { rb${p} = B16[(k8 * 8u + ub${p} / ${bn / 8}u) * np8 + min(col8 + ub${p} % ${bn / 8}u, np8 - 1u)]; }`);
      stores.push(`if (ub${p} < ${bUnits}u) { ${tileStore('bTile', `${buffers === 2 ? `buf * ${(bk * bs) / 8}u + ` : ''}(ub${p} / ${bn / 8}u) * ${bs / 8}u + ub${p} % ${bn / 8}u`, `bitcast<vec4<u32>>(rb${p})`, 8)} }`);
    }
    const regs = [...Array(aLoads).keys()].map((p) => `var ra${p} = vec4<${convertA ? 'f32' : 'i32'}>();`).concat([...Array(bLoads).keys()].map((p) => `var rb${p} = vec4<i32>();`));
    const ahead = loadsAhead(this.layout);
    const mma: string[] = [];
    for (let kk = 0; kk < bk; kk += 16) {
      for (let i = 0; i < tiles.rows; i++) mma.push(`let a${kk}_${i} = subgroupMatrixLoad<${left}, row_major>(&aTile, ${buffers === 2 ? `cur * ${(bm * as) / aPer}u + ` : ''}(sgRow + ${i * 16}u) * ${as / aPer}u + ${kk / aPer}u, ${as / aPer}u);`);
      for (let j = 0; j < tiles.cols; j++) mma.push(`let b${kk}_${j} = subgroupMatrixLoad<${right}, row_major>(&bTile, ${buffers === 2 ? `cur * ${(bk * bs) / bPer}u + ` : ''}${(kk * bs) / bPer}u + sgCol / ${bPer}u + ${(j * 16) / bPer}u, ${bs / bPer}u);`);
      for (let i = 0; i < tiles.rows; i++) for (let j = 0; j < tiles.cols; j++) mma.push(`acc${i}_${j} = subgroupMatrixMultiplyAccumulate(a${kk}_${i}, b${kk}_${j}, acc${i}_${j});`);
    }
    return `
      ${TENSOR_CORE_DIRECTIVES}
      ${this.partials ? '' : this.epilogueCode()}
      var<workgroup> aTile : array<${aElement}, ${(buffers * bm * as) / aPer}>;
      var<workgroup> bTile : array<${words ? 'u32' : 'vec4<u32>'}, ${(buffers * bk * bs) / bPer}>;
      ${this.partials ? 'var<workgroup> splitFirst : u32;' : ''}

      fn main() {
        let mp = uniforms.mp;
        let kp8 = uniforms.kp / 8u;
        let np8 = uniforms.np / 8u;
        let k4 = uniforms.k / 4u;
        let t = localIndex;
        let sg = t / 32u;
        let lane = t % 32u;
        let sgRow = (sg / ${sg.cols}u) * ${16 * tiles.rows}u;
        let sgCol = (sg % ${sg.cols}u) * ${16 * tiles.cols}u;
        let row0 = workgroupId.y * ${bm}u;
        let col8 = workgroupId.x * ${bn / 8}u;
        let rs = row0 + sgRow;
        let cs = col8 * 8u + sgCol;
        // This workgroup's slices: all of them, or its split's share (split z starts at z · slicesPer).
        let slices = ${partialSlice ? `(uniforms.kp + ${bk - 1}u) / ${bk}u` : `uniforms.kp / ${bk}u`};
        ${this.partials ? `// workgroupId is a private copy of the builtin, non-uniform to WGSL's analysis, and the loop holds barriers.
        if (t == 0u) { splitFirst = workgroupId.z * uniforms.slicesPer; }
        let first = workgroupUniformLoad(&splitFirst);
        let count = min(slices, first + uniforms.slicesPer) - first;` : `let first = 0u;
        let count = slices;`}
        ${this.declareCode()}
        ${regs.join('\n        ')}
        ${ahead === 2 ? regs.map((r) => inRegisterSet(r, 1)).join('\n        ') : ''}
        ${units.join('\n        ')}
        var k8 = first * ${bk / 8}u;
        ${buffers === 2 ? 'var buf = 0u;' : ''}
        ${loads.join('\n        ')}
        ${stores.join('\n        ')}
        ${ahead === 2 ? `if (count > 1u) {
          k8 = (first + 1u) * ${bk / 8}u;
          ${loads.map((l) => inRegisterSet(l, 1)).join('\n          ')}
        }` : ''}
        workgroupBarrier();
        ${ahead === 2 ? this.twoAheadLoop(loads, stores, mma, bk / 8) : buffers === 2 ? `for (var s = 0u; s < count; s++) {
          let cur = s % 2u;
          let more = s + 1u < count;
          if (more) {
            k8 = (first + s + 1u) * ${bk / 8}u;
            ${loads.join('\n            ')}
          }
          ${mma.join('\n          ')}
          if (more) {
            buf = 1u - cur;
            ${stores.join('\n            ')}
          }
          workgroupBarrier();
        }` : `for (var s = 0u; s < count; s++) {
          let more = s + 1u < count;
          if (more) {
            k8 = (first + s + 1u) * ${bk / 8}u;
            ${loads.join('\n            ')}
          }
          ${mma.join('\n          ')}
          workgroupBarrier();
          if (more) {
            ${stores.join('\n            ')}
          }
          workgroupBarrier();
        }`}
        ${this.storeCode()}
      }
    `;
  }
}

/** WGSL `code` with its staging registers (ra0…, rb0…) renamed to those of register set `set` (set 0: as written). */
function inRegisterSet(code: string, set: 0 | 1): string {
  return set === 0 ? code : code.replace(/\b(r[ab]\d+)\b/g, `$1_${set}`);
}

/** Uniform values of TensorCoreMatMulProgram, in its `uniforms` order. */
export function tcMatMulUniforms(m: number, n: number, k: number, a: PackedShape, b: PackedShape, layout: TensorCoreMatMulLayout,
  conv?: { h: number; w: number; cin: number; oh: number; ow: number; stride: number }): { type: 'uint32'; data: number[] }[] {
  return [m, n, k, a.rowsPad, b.colsPad, a.colsPad, conv?.h ?? 0, conv?.w ?? 0, conv?.cin ?? 0, conv?.oh ?? 0, conv?.ow ?? 0, conv?.stride ?? 1, tcMatMulSlicesPerSplit(a.colsPad, layout)]
    .map((v) => ({ type: 'uint32' as const, data: [v] }));
}

/**
 * The uniforms both split-K reductions start with: C's m × n, and the partials' shape ([splits, rows, columns], the
 * 'partials' program's output shape).
 */
export function splitKReduceUniforms(m: number, n: number, partialsShape: number[]): { type: 'uint32'; data: number[] }[] {
  return [m, n, ...partialsShape].map((v) => ({ type: 'uint32' as const, data: [v] }));
}

/**
 * The sum of split-K partials ([splits, rows, columns] f32 from TensorCoreMatMulProgram's 'partials' output) for the
 * m×n of C, then bias and epilogue, written as f32 [m, n] or as packed f16 halves; four columns per invocation (N a
 * multiple of 4).
 */
export class SplitKReduceProgram implements WebGPUProgram {
  variableNames: string[];
  variableComponents: number[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  uniforms = 'm : u32, n : u32, splits : u32, partialRows : u32, partialCols : u32,';
  private readonly hasBias: boolean;
  private readonly epilogue: MatMulEpilogue;
  private readonly packedOutput: boolean;
  private readonly vectorIo: boolean;
  outputComponent?: number;

  /**
   * `rowsPad`: the packed output's rows (A's padded rows, as TensorCoreMatMulProgram's 'packedF16'); `epilogueIo`: as
   * the product's layout (`TensorCoreMatMulLayout.epilogueIo`).
   */
  constructor(m: number, n: number, rowsPad: number, hasBias: boolean, epilogue: MatMulEpilogue, output: 'f32' | 'packedF16', epilogueIo: EpilogueIo = 'vec4') {
    if (n % 4 !== 0) throw new Error(`SplitKReduceProgram: N must be a multiple of 4, got ${n}`);
    this.hasBias = hasBias;
    this.epilogue = epilogue;
    this.packedOutput = output === 'packedF16';
    this.vectorIo = epilogueIo === 'vec4';
    if (this.vectorIo) this.outputComponent = this.packedOutput ? 2 : 4;
    this.variableNames = ['Partials', ...epilogueInputs(hasBias, epilogue)];
    this.variableComponents = [4, ...epilogueInputs(hasBias, epilogue).map(() => (this.vectorIo ? 4 : 1))];
    this.outputShape = this.packedOutput ? [rowsPad, n / 2] : [m, n];
    this.dispatch = foldedDispatch(Math.ceil((m * n) / 4 / 256));
    this.shaderKey = `splitKReduce_${hasBias}_${epilogue}${this.packedOutput ? '_packedOut' : ''}${this.vectorIo ? '_vecIo' : ''}`;
  }

  getUserCode(): string {
    return `
      ${this.epilogue === 'gelu' ? ERF_VEC4_WGSL : ''}
      fn main(index : i32) {
        let u = u32(index);
        let n4 = uniforms.n / 4u;
        if (u >= uniforms.m * n4) { return; }
        let row = u / n4;
        let c = (u % n4) * 4u;
        var v = vec4<f32>(0.0);
        for (var z = 0u; z < uniforms.splits; z++) {
          v = v + Partials[((z * uniforms.partialRows + row) * uniforms.partialCols + c) / 4u];
        }
        let o = row * uniforms.n + c;
        ${vec4EpilogueCode(this.hasBias, this.epilogue, this.packedOutput ? 'packedF16' : 'f32', this.vectorIo)}
      }
    `;
  }
}

/**
 * The split-K reduction of a product whose output is followed by a LayerNorm feeding another product (a ViT block's
 * proj before norm2 and fc1, its fc2 before the next block's norm1 and qkv): the partials' sum with bias and epilogue
 * ('none' or 'scaleAdd') written as f32 [m, n] (the residual stream), and, in the same dispatch, its LayerNorm
 * written as the next product's packed f16 A operand [rowsPad, colsPad] into the `Packed` input (made writable by
 * src/backend/webgpu.ts `retypeBindings`: tfjs programs have one output). Replaces SplitKReduceProgram and the
 * LayerNormPackF16Program over its output (H100 lease 12A, ViT-L at 518²: 0.8 + 0.7 ms per frame); its rows laid on
 * workgroups of 64 as that LayerNorm's (`lanes` per row), whose statistics it computes in the same order (the same
 * packed bits).
 */
export class SplitKReduceLayerNormProgram implements WebGPUProgram {
  variableNames: string[];
  variableComponents: number[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0], y: [1] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [64, 1, 1];
  uniforms = 'm : u32, n : u32, splits : u32, partialRows : u32, partialCols : u32, rowsPad : u32, eps : f32,';
  private readonly hasBias: boolean;
  private readonly epilogue: 'none' | 'scaleAdd';
  private readonly packed: PackedShape;
  private readonly lanes: number;

  /**
   * `packed`: the normalised rows' packed shape (A's of the next product: m rows, n columns, padded); `lanes`:
   * invocations per row (layer-norm_webgpu.ts layerNormLanes).
   */
  constructor(packed: PackedShape, hasBias: boolean, epilogue: MatMulEpilogue, lanes = 0) {
    if (epilogue !== 'none' && epilogue !== 'scaleAdd') throw new Error(`SplitKReduceLayerNormProgram: epilogue 'none' or 'scaleAdd', got '${epilogue}'`);
    if (packed.cols % 2 !== 0) throw new Error(`SplitKReduceLayerNormProgram: N must be even, got ${packed.cols}`);
    this.hasBias = hasBias;
    this.epilogue = epilogue;
    this.packed = packed;
    this.lanes = lanes;
    const extras = epilogueInputs(hasBias, epilogue);
    this.variableNames = ['Partials', ...extras, 'LnGamma', 'LnBeta', 'Packed'];
    this.variableComponents = [2, ...extras.map(() => 1), 1, 1, 1];
    this.outputShape = [packed.rows, packed.cols];
    this.dispatch = layerNormDispatch(packed.rowsPad, lanes);
    this.shaderKey = `splitKReduceLayerNorm_${hasBias}_${epilogue}_${packed.cols}_${packed.colsPad}${layerNormLanesKey(lanes)}`;
  }

  getUserCode(): string {
    return `
      // flashdepth:writes Packed
      fn loadPair(r : i32, c : i32, live : bool) -> vec2<f32> {
        let row = u32(r);
        let col = u32(c);
        var v = vec2<f32>(0.0);
        for (var z = 0u; z < uniforms.splits; z++) {
          v = v + Partials[((z * uniforms.partialRows + row) * uniforms.partialCols + col) / 2u];
        }
        let o = row * uniforms.n + col;
        ${this.hasBias ? 'v = v + vec2<f32>(Bias[col], Bias[col + 1u]);' : ''}
        ${this.epilogue === 'scaleAdd' ? 'v = vec2<f32>(Residual[o], Residual[o + 1u]) + vec2<f32>(Gamma[col], Gamma[col + 1u]) * v;' : ''}
        if (live) { result[o] = v.x; result[o + 1u] = v.y; }
        return v;
      }
      ${layerNormPackF16Code(this.packed, 'Packed', 'i32(uniforms.m)', 'i32(uniforms.rowsPad)', this.lanes)}`;
  }
}
