/**
 * Attention on tensor cores (`--precision mixed`): softmax(q·kᵀ·scale)·v with f16 operands and f32 accumulation, in
 * two dispatches.
 *
 * 1. PackHeadsF16Program copies q, k and v (f32 token rows, heads at channel offsets as for FlashAttentionProgram)
 *    into one buffer of f16 head planes [B, H, Lpad, Dh] — Q first (pre-multiplied by scale·log2 e), then K, then V —
 *    with rows past L zero. The buffer is an int32 tensor holding two halves per element: tfjs has no f16 dtype, and
 *    integer stores keep the bits exactly. In a ViT block (`mixedSelfAttention`, session 12) the qkv product's
 *    epilogue writes these planes itself (tc-matmul_webgpu.ts, the 'headPlanes' store; rows past L unwritten), and
 *    the attention writes its output as the projection's packed f16 operand: no packing dispatch on either side.
 * 2. TensorCoreAttentionProgram binds that buffer twice: as `array<f16>` (src/backend/webgpu.ts `retypeBindings`),
 *    from which each subgroup loads its Q tiles once, and as int32 vec4s, from which all invocations copy each key
 *    block's K and V rows into workgroup memory (16-byte units), where the subgroup matrices for Kᵀ and V are loaded.
 *    Loading those straight from storage capped the kernel near 5–13 TFLOP/s on the H100 (session 3), and at 20–34
 *    for the 2K student even with this program's 2–3 query tiles per subgroup (session 5); staged, 47.
 *
 * A workgroup of `subgroups` subgroups covers `subgroups · tiles · 16` query rows of one (batch, head); each subgroup
 * owns `tiles` tiles of 16 rows and keeps their Q matrices and f32 accumulators O in registers. Keys are staged in
 * workgroup memory STAGE_K at a time (`stageK`, a multiple of BLOCK_K), double-buffered (or, `kvBuffers: 1`, in one
 * buffer at a second barrier): while a stage is multiplied, each invocation already holds its share of the next
 * stage's 16-byte units in registers, and writes them into the other buffer after its last use. Each subgroup scores
 * a stage BLOCK_K keys at a time, with no barrier between those blocks. Every Kᵀ and V matrix loaded from workgroup
 * memory serves all of a subgroup's tiles. Per block
 * a subgroup computes its tiles' 16×BLOCK_K scores on tensor cores and stores them to its own scratch; each
 * invocation takes two rows of each tile (the four invocations of a row share it) and four adjacent columns of each
 * 16 (one vec4 read; `softmax`), row maxima over the four by shuffles, and writes P = exp2(s − m) as packed f16 (one
 * 8-byte store per four), which the tensor cores then multiply by V into O.
 *
 * Online softmax with a lazy rescale (FlashAttention-4's trick): m is only raised when a block's row maximum exceeds it
 * by more than 8 (log2 units), so P ≤ 2⁸ stays well inside f16 and the normalisation by l (accumulated with the same
 * m) is still exact. Only then do the accumulators make a round trip through workgroup memory to be scaled by
 * exp2(m_old − m_new) — subgroup matrices cannot be scaled per row in registers. After the first block this is rare,
 * and each subgroup decides it for itself (subgroupAny).
 *
 * Those round trips (scores → softmax → P → P·V, the rescale, the output) go through workgroup memory only the
 * subgroup itself touches, so by default (`scratchSync: 'subgroup'`, session 11) nothing but the subgroup's program
 * order orders them: the key block's hand-over is the only barrier. Sessions 5–10 put a workgroup barrier at each
 * (three per block, eight subgroups waiting for the slowest at every one), as `scratchSync: 'workgroup'` still does.
 *
 * Subgroup-matrix calls need subgroup-uniform operands: the subgroup index is localIndex / 32, uniform where subgroups
 * are 32 consecutive invocations (`webgpuCapabilities().subgroupMatrix` is only set there); `rescale` comes from
 * subgroupAny. Barriers stay workgroup-uniform (the key loop has the same trip count in every subgroup; only the work
 * between barriers is conditional).
 */
import { SUBGROUP_SCRATCH_SYNC, TENSOR_CORE_DIRECTIVES } from './tc-matmul_webgpu.js';
import { foldedDispatch, type WebGPUProgram } from './program.js';
import type { AttentionMasking, AttentionRowMax, AttentionSoftmax, AttentionSync, TileElement } from './mode.js';

/**
 * Where TensorCoreAttentionProgram writes its output: f32 token rows [batch, lq, heads·Dh], or the packed f16 token
 * rows [rowsPad, heads·Dh / 2] (int32 half pairs) a following projection reads as its A operand.
 */
export type AttentionOutput = 'f32' | 'packedF16';

/** Query rows per subgroup-matrix tile, and the unit in which query rows are padded. */
export const TC_ROWS = 16;

/** Shape of a tensor-core attention workgroup. */
export interface TensorCoreAttentionLayout {
  /** Subgroups per workgroup; all of them share each staged key block. */
  subgroups: number;
  /** Query tiles (16 rows each) per subgroup: each K/V matrix loaded from workgroup memory serves all of them. */
  tiles: number;
  /** Keys per block of scores and softmax (a multiple of 16). */
  blockK: number;
  /**
   * Keys staged in workgroup memory per hand-over (a multiple of blockK; default blockK): with more, each subgroup
   * runs stageK / blockK blocks between barriers, so fewer barriers line the subgroups up in the same phase.
   */
  stageK?: number;
  /**
   * Buffers of staged K/V: 2 (default) lets the next block be stored while this one is multiplied (3 barriers per
   * block); 1 halves their workgroup memory at one barrier more.
   */
  kvBuffers?: 1 | 2;
  /**
   * Column groups of the accumulators' round trips through the scratch (rescale, output): 2 halves the scratch an
   * accumulator tile needs, 4 quarters it (down to the scores' share with 16-key blocks), at 2 or 4 times the syncs
   * of those rare trips. Less workgroup memory, more resident workgroups: the H100's Vulkan driver gives a
   * multiprocessor 64 KiB of it (1 KiB reserved per workgroup), so workgroups of ≤ 31 KiB run two at a time; or room
   * for deeper stages. Where it does not divide the head's 16-column tiles, the largest count that does is used.
   */
  oSplit?: 1 | 2 | 4;
  /**
   * How a subgroup orders its own round trips through workgroup memory (scores → softmax → P, the accumulators'
   * rescale and output), which no other subgroup touches. 'subgroup' (default): by program order alone — a subgroup's
   * invocations run its straight-line code together (its subgroup-matrix calls require that), so its stores are seen
   * by its later loads; the only barrier per key block is the one that hands the next staged K/V block over, and each
   * subgroup decides its rare rescale alone (subgroupAny). 'workgroup': a workgroupBarrier at each of those points and
   * the rescale decided for the whole workgroup (three barriers per block; sessions 5–10): the fallback for a driver
   * where the first gives wrong results.
   */
  scratchSync?: AttentionSync;
  /**
   * With stages of several blocks: the blocks of a stage unrolled, and each block's scores (its Kᵀ loads and products)
   * issued beside the previous block's P·V, in one stretch of straight-line code the compiler can interleave — the
   * runtime block loop, its exit test and the rescale branch otherwise order them one after the other. Blocks of the
   * last stage past the keys are scored too (staged as zeros, masked). Default off (not yet timed on a GPU).
   */
  pipelined?: boolean;
  /**
   * How the softmax moves a block through the subgroup's workgroup memory. 'vec4' (default since session 18): each
   * invocation takes four adjacent columns, read as one vec4 from a scratch of vec4<f32>s (the scores' subgroup-matrix store
   * and the accumulators' round trips count offsets in vec4s), and writes their P as one 8-byte store of packed
   * halves (P tile of vec2<u32>s): a quarter of the load and store instructions per block, one f32→f16 pack per two
   * values. Rows pair up as r and r + 4 within each 8-lane phase of a 16-byte load, so with the scratch's row stride
   * ≡ 4 (mod 8) floats the reads stay conflict-free. H100 lease 18A, GPU time per call against 'scalar': the 2K
   * student 1.688 → 1.647 ms, the Full teacher (9 × 2 tiles) 0.219 → 0.206, ViT-L at 518² 0.097 → 0.094. 'packed':
   * the same with the scores read as four single floats (a scratch of f32s; as fast on the H100), for a driver that
   * refuses subgroup-matrix stores into vec4<f32> arrays. 'scalar' (sessions 5–17): invocation (r8, quad) reads
   * columns quad + 4i of its rows one float at a time (conflict-free) and writes each P as one half.
   */
  softmax?: AttentionSoftmax;
  /**
   * Which blocks' scores the softmax masks against lk. 'crossing' (default since session 19): only the block that
   * crosses it, every other one through a branch without the compare and select per score; 'every' (sessions 5–18):
   * all of them.
   */
  masking?: AttentionMasking;
  /**
   * Workgroup-memory banks spread for the vec4 softmax's three accesses per block: score rows of blockK + 8 floats
   * (≡ 8 mod 32 words: the scores' subgroup-matrix stores, two f32 per invocation over four rows per half-subgroup, hit
   * every bank once, where rows of blockK + 4 put two rows on the same banks), and the softmax's rows dealt to its lanes
   * in the order `softmaxRowOrder` finds, under which its vec4 score reads (8-lane phases) and 8-byte P stores
   * (16-lane phases) are conflict-free too. Default off (session 18's rows of blockK + 4 and lanes on rows r, r + 4).
   */
  spreadBanks?: boolean;
  /**
   * P rows of blockK halves with no padding (default: blockK + 8), so that 18 subgroups with spread banks still fit
   * 48 KiB; their reload as a subgroup matrix then meets two rows per bank.
   */
  denseP?: boolean;
  /** P = exp2(s − m) evaluated in f16 (two per special-function op on NVIDIA) instead of f32. Default off. */
  exp2F16?: boolean;
  /**
   * The element type of the staged K/V tile and (with the vec4 or packed softmax) of the P tile, in which the
   * subgroup-matrix loads of Kᵀ, V and P count offsets and strides: 'vec4' (default: vec4<u32> K/V units stored in one
   * 16-byte store, vec2<u32> P quads) or 'u32' (words; H100 lease 22B, plain WGSL: multiplies fed from vec4<u32> tiles
   * 262 TFLOP/s, from u32 ones ~600; lease 23A, in this kernel: the 2K student 1.399 ms per call with vec4 tiles,
   * 1.401 with u32 ones). FLASHDEPTH_TC_TILE_ELEMENT gives it to the layouts the kernel chooses.
   */
  tileElement?: TileElement;
  /**
   * How the softmax finds a block's row maxima, which only matter where they raise a row's running maximum m (by more
   * than 8, the lazy rescale's margin). 'shuffle' (default): every block, two shuffles per row share. 'vote': each
   * invocation compares its own scores with m + 8, one subgroupAny per block says whether any does, and only then
   * does the subgroup take the shuffles (and the rescale's own vote); otherwise P = exp2(s − m) with m unchanged.
   * The same values either way; after the first blocks the vote is almost always false, so a block's softmax loses
   * four shuffles and two exponentials per tile from its chain of dependent steps. Faster in 12 subgroups, slower in
   * 18 (H100 leases 24B and 24C; DEFAULT_TC_ATTENTION_LAYOUT). FLASHDEPTH_ATTENTION_ROW_MAX=shuffle|vote gives one form
   * to every layout the kernel chooses.
   */
  rowMax?: AttentionRowMax;
}

/**
 * 12 subgroups of 1 query tile (192 rows per workgroup), 16-key blocks, 64 keys staged per barrier in one K/V buffer,
 * accumulators through the scratch in 16-column quarters (42 KiB, 45 with spread banks; one workgroup per H100
 * multiprocessor, 12 warps).
 * Between two barriers each subgroup scores four blocks on its own, so the 12 warps no longer run each block's phases
 * (products, softmax through workgroup memory, P·V) in lockstep. H100 lease 12A, GPU time per call
 * (`kernel-timing.js --attention-only`) against session 11's layout (SESSION11_TC_ATTENTION_LAYOUT): the 2K student
 * 1.75 → 1.55 ms (126 → 142 TFLOP/s), the Full teacher 0.253 → 0.235, ViT-L at 518² 0.28 → 0.17; 32-key stages
 * double-buffered: 1.72, 0.254, 0.19. Since session 24 with spread banks (score rows of 24 floats: 45 KiB) and the row
 * maxima by vote: H100 lease 24C, per call, ViT-L at 518² 0.0916 → 0.0830 ms (spread alone 0.0853, the vote alone
 * 0.0847), and in Full (every attention in this layout) the four 2-head cross-attentions 0.363 → 0.301 ms per frame.
 * SESSION12_TC_ATTENTION_LAYOUT is the layout without them (FLASHDEPTH_ATTENTION_BANKS=session23 with
 * FLASHDEPTH_ATTENTION_ROW_MAX=shuffle).
 */
export const DEFAULT_TC_ATTENTION_LAYOUT: TensorCoreAttentionLayout = { subgroups: 12, tiles: 1, blockK: 16, stageK: 64, kvBuffers: 1, oSplit: 4, spreadBanks: true, rowMax: 'vote' };

/** Session 12's default (to session 23): DEFAULT_TC_ATTENTION_LAYOUT with session 18's banks and the shuffles. */
export const SESSION12_TC_ATTENTION_LAYOUT: TensorCoreAttentionLayout = { subgroups: 12, tiles: 1, blockK: 16, stageK: 64, kvBuffers: 1, oSplit: 4 };

/**
 * Session 11's default: 12 subgroups, 16-key blocks double-buffered, accumulators in halves (45 KiB). Possible once
 * each subgroup orders its own scratch (`scratchSync: 'subgroup'`): with a barrier at every round trip, 12 warps
 * waited on each other three times per block. H100 lease 11A, per call, against session 10's 8 subgroups of 32-key
 * blocks: the 2K student 2.44 → 2.00 ms, the Full teacher 0.73 → 0.48, ViT-L at 518² 0.64 → 0.40.
 */
export const SESSION11_TC_ATTENTION_LAYOUT: TensorCoreAttentionLayout = { subgroups: 12, tiles: 1, blockK: 16, kvBuffers: 2, oSplit: 2 };

/** Session 10's default: 8 subgroups of 1 tile (128 rows), 32-key blocks (47 KiB). */
export const EIGHT_SUBGROUP_TC_ATTENTION_LAYOUT: TensorCoreAttentionLayout = { subgroups: 8, tiles: 1, blockK: 32, kvBuffers: 2, oSplit: 2 };

/** Halves of padding per staged K/V row and per P row (16 bytes: rows start in different banks). */
const KV_PAD = 8;
/** Floats of padding per score / accumulator scratch row (16 bytes). */
const F32_PAD = 4;

/** Floats per score row in the scratch. */
function scoreRowFloats(layout: TensorCoreAttentionLayout): number {
  return layout.blockK + (layout.spreadBanks ? 8 : F32_PAD);
}

/** Halves per P row. */
function pRowHalves(layout: TensorCoreAttentionLayout): number {
  return layout.blockK + (layout.denseP ? 0 : KV_PAD);
}

/**
 * Workgroup-memory wavefronts of one subgroup's accesses, on 32 banks of 4 bytes: `access(lane)` gives the first
 * word a lane touches and `words` how many it touches (1, 2 or 4: 32-, 64- or 128-bit accesses, served in phases of
 * 32, 16 or 8 lanes); each phase costs the most distinct words any one bank holds.
 */
export function bankWavefronts(words: 1 | 2 | 4, access: (lane: number) => number): number {
  const phase = 32 / words;
  let total = 0;
  for (let first = 0; first < 32; first += phase) {
    const perBank = new Map<number, Set<number>>();
    for (let lane = first; lane < first + phase; lane++) {
      for (let w = 0; w < words; w++) {
        const word = access(lane) + w;
        const bank = word % 32;
        if (!perBank.has(bank)) perBank.set(bank, new Set());
        perBank.get(bank)!.add(word);
      }
    }
    total += Math.max(...[...perBank.values()].map((set) => set.size));
  }
  return total;
}

/** softmaxRowOrder's orders by score and P row strides (searched once per pair). */
const rowOrders = new Map<string, number[]>();

/**
 * The softmax's rows of a tile half dealt to its lanes: lanes 4i…4i + 3 take row order[i] (its four vec4 columns).
 * Without spread banks, session 18's order (rows r and r + 4 in each 8-lane phase); with them, the first order (of
 * the 8! permutations) whose vec4 score reads and 8-byte P stores cost the fewest wavefronts.
 */
export function softmaxRowOrder(layout: TensorCoreAttentionLayout): number[] {
  if (!layout.spreadBanks) return [0, 4, 1, 5, 2, 6, 3, 7];
  const key = `${scoreRowFloats(layout)}_${pRowHalves(layout)}`;
  const cached = rowOrders.get(key);
  if (cached) return cached;
  const ss = scoreRowFloats(layout);
  const psWords = pRowHalves(layout) / 2;
  const cost = (order: number[]) => bankWavefronts(4, (lane) => order[lane >> 2]! * ss + 4 * (lane & 3))
    + bankWavefronts(2, (lane) => order[lane >> 2]! * psWords + 2 * (lane & 3));
  let best: number[] = [0, 1, 2, 3, 4, 5, 6, 7];
  let bestCost = cost(best);
  // One wavefront per phase (4 of the reads, 2 of the stores) is the least any order can cost.
  const floor = 4 + 2;
  const permute = (prefix: number[], rest: number[]): void => {
    if (bestCost === floor) return;
    if (rest.length === 0) {
      const c = cost(prefix);
      if (c < bestCost) { best = prefix; bestCost = c; }
      return;
    }
    for (const r of rest) permute([...prefix, r], rest.filter((x) => x !== r));
  };
  permute([], [0, 1, 2, 3, 4, 5, 6, 7]);
  rowOrders.set(key, best);
  return best;
}

/** Keys staged per barrier: `stageK`, or one block. */
export function stageKeys(layout: TensorCoreAttentionLayout): number {
  return layout.stageK ?? layout.blockK;
}

/** Whether a layout runs its stages' blocks pipelined: asked for, and more than one block per stage. */
export function pipelinedBlocks(layout: TensorCoreAttentionLayout): boolean {
  return layout.pipelined === true && stageKeys(layout) > layout.blockK;
}

/** Column groups of the accumulators' round trips: `oSplit`, or the largest count below it that divides Dh / 16. */
function accumulatorGroups(layout: TensorCoreAttentionLayout, headDim: number): number {
  let groups = layout.oSplit ?? 1;
  while ((headDim / 16) % groups !== 0) groups--;
  return groups;
}

/** Floats of one subgroup's scratch: the scores of its tiles, or (reused) one 16-row accumulator tile. */
function scratchFloats(layout: TensorCoreAttentionLayout, headDim: number): number {
  return Math.max(layout.tiles * TC_ROWS * scoreRowFloats(layout), TC_ROWS * (headDim / accumulatorGroups(layout, headDim) + F32_PAD));
}

/** Workgroup memory a layout needs for head size `headDim`, in bytes. */
export function tcAttentionWorkgroupBytes(layout: TensorCoreAttentionLayout, headDim: number): number {
  const kv = (layout.kvBuffers ?? 2) * 2 * stageKeys(layout) * (headDim + KV_PAD) * 2; // K and V per buffer
  const scratch = layout.subgroups * scratchFloats(layout, headDim) * 4;
  const p = layout.subgroups * layout.tiles * TC_ROWS * pRowHalves(layout) * 2;
  return kv + scratch + p + (layout.scratchSync === 'workgroup' ? layout.subgroups * 4 : 0);
}

/** Query rows one workgroup covers. */
export function tcRowsPerWorkgroup(layout: TensorCoreAttentionLayout): number {
  return TC_ROWS * layout.subgroups * layout.tiles;
}

/** Rows of a packed head plane: L rounded up so that every key block and query tile lies inside the plane. */
export function paddedRows(rows: number, multiple: number): number {
  return Math.ceil(rows / multiple) * multiple;
}

/** Uniform values of PackHeadsF16Program, in vec4 units of the sources and of the packed planes. */
export interface PackedPlanes {
  /** Padded rows of the Q planes and of the K/V planes. */
  lqPad: number;
  lkPad: number;
  /** Vec4 units (4 halves) of all Q planes, of all K planes; V has as many as K. */
  qUnits: number;
  kUnits: number;
  totalUnits: number;
}

export function packedPlanes(batch: number, lq: number, lk: number, numHeads: number, headDim: number, qRowMultiple: number, blockK: number): PackedPlanes {
  const lqPad = paddedRows(lq, qRowMultiple);
  const lkPad = paddedRows(lk, blockK);
  const perRow = headDim / 4;
  const qUnits = batch * numHeads * lqPad * perRow;
  const kUnits = batch * numHeads * lkPad * perRow;
  return { lqPad, lkPad, qUnits, kUnits, totalUnits: qUnits + 2 * kUnits };
}

/** Where K's and V's planes start in the packed buffer, in halves (Q's start at 0). */
export function planeSegments(planes: PackedPlanes): { kHalves: number; vHalves: number } {
  return { kHalves: planes.qUnits * 4, vHalves: (planes.qUnits + planes.kUnits) * 4 };
}

/** TensorCoreAttentionProgram's uniforms for `lq` queries and `lk` keys of `heads` heads in `planes`. */
export function attentionUniforms(lq: number, lk: number, heads: number, planes: PackedPlanes): { type: 'uint32'; data: number[] }[] {
  const { kHalves, vHalves } = planeSegments(planes);
  return [lq, lk, planes.lqPad, planes.lkPad, heads, kHalves, vHalves].map((v) => ({ type: 'uint32' as const, data: [v] }));
}

export class PackHeadsF16Program implements WebGPUProgram {
  variableNames = ['Q', 'K', 'V'];
  variableComponents = [4, 4, 4];
  outputComponent = 2;
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  uniforms = 'qOffset : i32, kOffset : i32, vOffset : i32, scaleLog2e : f32, heads : i32, lqPad : i32, lkPad : i32, qUnits : i32, kUnits : i32, totalUnits : i32,';
  private readonly dh4: number;

  constructor(planes: PackedPlanes, headDim: number) {
    this.dh4 = headDim / 4;
    // Two int32 elements (four halves) per vec4 unit.
    this.outputShape = [planes.totalUnits * 2];
    this.dispatch = foldedDispatch(Math.ceil(planes.totalUnits / 256));
    this.shaderKey = `packHeadsF16_${headDim}`;
  }

  getUserCode(): string {
    return `
      const DH4 : i32 = ${this.dh4};

      fn pack(v : vec4<f32>) -> vec2<i32> {
        return vec2<i32>(bitcast<i32>(pack2x16float(v.xy)), bitcast<i32>(pack2x16float(v.zw)));
      }

      fn main(u : i32) {
        if (u >= uniforms.totalUnits) { return; }
        var unit = u;
        var rows = uniforms.lqPad;
        var valid = uniforms.qShape.y;
        var segment = 0;
        if (u >= uniforms.qUnits) {
          segment = 1 + (u - uniforms.qUnits) / uniforms.kUnits;
          unit = (u - uniforms.qUnits) % uniforms.kUnits;
          rows = uniforms.lkPad;
          valid = uniforms.kShape.y;
        }
        let d = unit % DH4;
        let row = (unit / DH4) % rows;
        let plane = unit / (DH4 * rows);
        let head = plane % uniforms.heads;
        let batch = plane / uniforms.heads;
        var v = vec4<f32>(0.0);
        if (row < valid) {
          if (segment == 0) {
            v = Q[(batch * valid + row) * (uniforms.qShape.z / 4) + uniforms.qOffset + head * DH4 + d] * uniforms.scaleLog2e;
          } else if (segment == 1) {
            v = K[(batch * valid + row) * (uniforms.kShape.z / 4) + uniforms.kOffset + head * DH4 + d];
          } else {
            v = V[(batch * valid + row) * (uniforms.vShape.z / 4) + uniforms.vOffset + head * DH4 + d];
          }
        }
        result[u] = pack(v);
      }
    `;
  }
}

export class TensorCoreAttentionProgram implements WebGPUProgram {
  /** P: the packed planes as f16 (subgroup-matrix loads of Q); P4: the same buffer as int32 vec4s (K/V staging). */
  variableNames = ['P', 'P4'];
  variableComponents = [1, 4];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [1], y: [2], z: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  /** Plane offsets and sizes in halves; lq/lk the valid rows. */
  uniforms = 'lq : u32, lk : u32, lqPad : u32, lkPad : u32, heads : u32, kSegment : u32, vSegment : u32,';
  private readonly headDim: number;
  private readonly layout: TensorCoreAttentionLayout;
  private readonly packedOutput: boolean;

  /**
   * P holds head planes (`packedPlanes`: PackHeadsF16Program's, or a qkv product's 'headPlanes' store, whose rows
   * past lq and lk are left unwritten: keys past lk are staged as zeros, and rows past lq never written out).
   * `output` 'packedF16': token rows of `rowsPad` (≥ batch·lq; rows past it unwritten).
   */
  constructor(batch: number, lq: number, numHeads: number, headDim: number, layout: TensorCoreAttentionLayout = DEFAULT_TC_ATTENTION_LAYOUT,
    output: AttentionOutput = 'f32', rowsPad = 0) {
    this.headDim = headDim;
    this.layout = layout;
    this.packedOutput = output === 'packedF16';
    this.workgroupSize = [32 * layout.subgroups, 1, 1];
    this.outputShape = this.packedOutput ? [rowsPad, (numHeads * headDim) / 2] : [batch, lq, numHeads * headDim];
    this.dispatch = [Math.ceil(lq / tcRowsPerWorkgroup(layout)), numHeads, batch];
    this.shaderKey = `tcAttention_${headDim}_${layout.subgroups}_${layout.tiles}_${layout.blockK}${layout.kvBuffers === 1 ? '_kv1' : ''}${(layout.oSplit ?? 1) > 1 ? `_o${layout.oSplit}` : ''}${layout.scratchSync === 'workgroup' ? '_wgsync' : ''}${stageKeys(layout) !== layout.blockK ? `_s${stageKeys(layout)}` : ''}${pipelinedBlocks(layout) ? '_pipe' : ''}${(layout.softmax ?? 'vec4') !== 'vec4' ? `_${layout.softmax}` : ''}${(layout.masking ?? 'crossing') !== 'crossing' ? '_maskEvery' : ''}${layout.spreadBanks ? '_spread' : ''}${layout.denseP ? '_denseP' : ''}${layout.exp2F16 ? '_exp16' : ''}${layout.tileElement === 'u32' ? '_u32tiles' : ''}${layout.rowMax === 'vote' ? '_vote' : ''}${this.packedOutput ? '_packedOut' : ''}`;
  }

  /**
   * WGSL: staging of one key block — each invocation's 16-byte units into registers, and from them into a buffer.
   * Keys past lk are staged as zeros: a plane's rows there may be a product's unwritten padding, and a masked key's
   * P = 0 times a NaN in V would still be NaN.
   */
  private stagingCode(): { declare: string; load: string; store: string } {
    const dh = this.headDim;
    const { subgroups } = this.layout;
    const stageK = stageKeys(this.layout);
    const threads = 32 * subgroups;
    const rowUnits = dh / 8;
    const units = 2 * stageK * rowUnits;
    const per = Math.ceil(units / threads);
    const guard = (p: number, body: string) => ((p + 1) * threads <= units ? body : `if (localIndex + ${p * threads}u < ${units}u) { ${body} }`);
    const declare: string[] = [];
    const load: string[] = [];
    const store: string[] = [];
    for (let p = 0; p < per; p++) {
      // Unit u → K or V, key row r of the block, 8-half column c8: its source (in units, block 0) and destination.
      declare.push(`let u${p} = min(localIndex + ${p * threads}u, ${units - 1}u);`,
        `let key${p} = (u${p} / ${rowUnits}u) % STAGE_K;`,
        `let src${p} = select(kBase, vBase, u${p} >= ${stageK * rowUnits}u) / 8u + key${p} * ${rowUnits}u + u${p} % ${rowUnits}u;`,
        `let dst${p} = select(0u, STAGE_K * KS, u${p} >= ${stageK * rowUnits}u) + key${p} * KS + (u${p} % ${rowUnits}u) * 8u;`,
        `var w${p} = vec4<i32>();`);
      load.push(guard(p, `w${p} = select(vec4<i32>(), P4[src${p} + kUnit0], kKey0 + key${p} < lk);`));
      // kvTile holds the halves as vec4<u32>s (one 16-byte store per unit; offsets are in halves, multiples of 8) or
      // as u32 words (four stores).
      store.push(guard(p, this.layout.tileElement === 'u32'
        ? `{ let e = (kvAt + dst${p}) / 2u; let v = bitcast<vec4<u32>>(w${p}); kvTile[e] = v.x; kvTile[e + 1u] = v.y; kvTile[e + 2u] = v.z; kvTile[e + 3u] = v.w; }`
        : `kvTile[(kvAt + dst${p}) / 8u] = bitcast<vec4<u32>>(w${p});`));
    }
    return { declare: declare.join('\n        '), load: load.join('\n          '), store: store.join('\n          ') };
  }

  getUserCode(): string {
    const dh = this.headDim;
    const { subgroups, tiles, blockK } = this.layout;
    const kvBuffers = this.layout.kvBuffers ?? 2;
    const oSplit = accumulatorGroups(this.layout, dh);
    const subgroupSync = (this.layout.scratchSync ?? 'subgroup') === 'subgroup';
    // Where a subgroup's stores to its own scratch (or P tile) must be seen by its next loads.
    const sync = subgroupSync ? `${SUBGROUP_SCRATCH_SYNC}();` : 'workgroupBarrier();';
    const dc = dh / 16;
    // The accumulator column tiles of each round trip through the scratch (all of them, or one half at a time).
    const G = [...Array(oSplit).keys()].map((g) => [...Array(dc / oSplit).keys()].map((c) => g * (dc / oSplit) + c));
    const kc = blockK / 16;
    const T = [...Array(tiles).keys()];
    const C = [...Array(dc).keys()];
    const J = [...Array(kc).keys()];
    const H = [0, 1];
    const cols = [...Array(blockK / 4).keys()];
    const left = (ptr: string, offset: string, stride: string) => `subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(${ptr}, ${offset}, ${stride})`;
    // Halves per element of the K/V tile (vec4<u32> or u32), and of the P tile (vec2<u32>, u32, or f16 for the scalar softmax).
    const words = this.layout.tileElement === 'u32';
    const kvPer = words ? 2 : 8;
    const right = (offset: string, colMajor: boolean) => `subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, ${colMajor ? 'col' : 'row'}_major>(&kvTile, (${offset}) / ${kvPer}u, KS / ${kvPer}u)`;
    // Row j·16 of the staged block's K (V), column c·16.
    // Block sb of the stage: rows from sbAt (a multiple of BLOCK_K · KS; 0 where the stage is one block), or from
    // the constant block `sb` of a pipelined stage.
    const subBlocks = stageKeys(this.layout) / blockK;
    const blockAt = (sb?: number) => (sb !== undefined ? ` + ${sb * blockK}u * KS` : subBlocks > 1 ? ' + sbAt' : '');
    const kAt = (j: number, c: number, sb?: number) => `kvAt${blockAt(sb)} + ${j * 16}u * KS + ${c * 16}u`;
    const vAt = (j: number, c: number, sb?: number) => `kvAt + STAGE_K * KS${blockAt(sb)} + ${j * 16}u * KS + ${c * 16}u`;
    const staging = this.stagingCode();
    // 'vec4' / 'packed' softmax: each invocation's four adjacent columns. Scratch offsets and strides count its
    // elements (floats, or vec4s), P tile ones its elements (halves, or vec2<u32>s of four).
    const softmaxForm = this.layout.softmax ?? 'vec4';
    const adjacent = softmaxForm !== 'scalar';
    const vecScratch = softmaxForm === 'vec4';
    const sAt = (floats: string) => (vecScratch ? `(${floats}) / 4u` : floats);
    const sStride = (floats: string) => (vecScratch ? `${floats} / 4u` : floats);
    const pPer = adjacent ? (words ? 2 : 4) : 1;
    const pAt = (halves: string) => (pPer > 1 ? `(${halves}) / ${pPer}u` : halves);
    const pStride = (halves: string) => (pPer > 1 ? `${halves} / ${pPer}u` : halves);
    // Four adjacent P values (a quad at vec2<u32> index q of the P tile) stored as one vec2<u32> or two words.
    const storeQuad = (q: string, pair: string) => (words ? `{ let w = ${pair}; pTile[2u * (${q})] = w.x; pTile[2u * (${q}) + 1u] = w.y; }` : `pTile[${q}] = ${pair};`);
    // Four adjacent floats of the scratch from float `at` (a multiple of 4), and their store.
    const read4 = (at: string) => (vecScratch ? `scratch[(${at}) / 4u]` : `vec4<f32>(${[0, 1, 2, 3].map((c) => `scratch[${at} + ${c}u]`).join(', ')})`);
    const write4 = (at: string, value: string) => (vecScratch ? `scratch[(${at}) / 4u] = ${value};`
      : `{ let w = ${value}; ${['x', 'y', 'z', 'w'].map((c, i) => `scratch[${at} + ${i}u] = w.${c};`).join(' ')} }`);

    // Scores: per 16-key chunk j, S_t = Σ_c Q_tc · K_jcᵀ for every tile t (each Kᵀ matrix, a column-major load of K
    // rows, serves all tiles), stored to the subgroup's scratch. Pipelined: computed into registers (sp…) for block
    // `sb` (a constant) beside the previous block's P·V, stored at the start of their own block.
    const pipelined = pipelinedBlocks(this.layout);
    const computeScores = (sb: number) => J.flatMap((j) => C.flatMap((c) => [
      `{ let kt = ${right(kAt(j, c, sb), true)};`,
      ...T.map((t) => (c === 0 ? `sp${t}_${j} = subgroupMatrixMultiply<f32>(q${t}_0, kt);` : `sp${t}_${j} = subgroupMatrixMultiplyAccumulate(q${t}_${c}, kt, sp${t}_${j});`)),
      '}',
    ]));
    const storeScores = J.flatMap((j) => T.map((t) => `subgroupMatrixStore<row_major>(&scratch, ${sAt(`sBase + ${t * 16}u * SS + ${j * 16}u`)}, sp${t}_${j}, ${sStride('SS')});`));
    const scores: string[] = [];
    for (const j of J) {
      scores.push('{');
      for (const c of C) {
        scores.push(`let kt${c} = ${right(kAt(j, c), true)};`);
        for (const t of T) scores.push(c === 0 ? `var s${t} = subgroupMatrixMultiply<f32>(q${t}_0, kt0);` : `s${t} = subgroupMatrixMultiplyAccumulate(q${t}_${c}, kt${c}, s${t});`);
      }
      for (const t of T) scores.push(`subgroupMatrixStore<row_major>(&scratch, ${sAt(`sBase + ${t * 16}u * SS + ${j * 16}u`)}, s${t}, ${sStride('SS')});`);
      scores.push('}');
    }

    // Softmax: invocation (r8, quad) takes rows r8 and r8 + 8 of every tile, columns quad + 4i (no bank conflicts with
    // 16-byte row padding), or in the adjacent forms columns 4·quad + 16i, read and written four at a time; row
    // maxima over the 4 invocations of a row by two shuffles.
    // Only a block that crosses lk needs its scores masked ('crossing', the default): every other block loads them in
    // a branch without the compare and select per score. Only the loads are in the branch (keysLeft is
    // workgroup-uniform), so the shuffles after it are written once.
    const exp16 = this.layout.exp2F16 === true;
    const vecCols = [...Array(blockK / 16).keys()];
    const loaded = adjacent ? vecCols : cols;
    const rowAt = (t: number, h: number) => `sBase + ${t * 16 + 8 * h}u * SS + r8 * SS + ${adjacent ? '4u * quad' : 'quad'}`;
    const loads = (masked: boolean) => T.flatMap((t) => H.flatMap((h) => loaded.map((i) => {
      const x = `x${t}_${h}_${i}`;
      if (adjacent) {
        const value = read4(`${rowAt(t, h)} + ${16 * i}u`);
        return `${x} = ${masked ? `select(vec4<f32>(MASKED), ${value}, col4 + ${16 * i}u < vec4<u32>(keysLeft))` : value};`;
      }
      const value = `scratch[${rowAt(t, h)} + ${4 * i}u]`;
      return `${x} = ${masked ? `select(MASKED, ${value}, quad + ${4 * i}u < keysLeft)` : value};`;
    })));
    const softmax: string[] = [
      ...T.flatMap((t) => H.flatMap((h) => loaded.map((i) => `var x${t}_${h}_${i} : ${adjacent ? 'vec4<f32>' : 'f32'};`))),
      ...((this.layout.masking ?? 'crossing') === 'every' ? loads(true) : ['if (keysLeft >= BLOCK_K) {', ...loads(false), '} else {', ...loads(true), '}']),
    ];
    // 'vote': a subgroup vote on whether any score exceeds its row's m + 8; only then the shuffles, the raise and the
    // rescale's vote (otherwise m stays, and a block's P is exp2(s − m) as the shuffles would have left it).
    const vote = this.layout.rowMax === 'vote';
    // The largest of an invocation's own scores in row share v.
    const localRowMax = (v: string): string => (adjacent
      ? vecCols.map((i) => `max(max(x${v}_${i}.x, x${v}_${i}.y), max(x${v}_${i}.z, x${v}_${i}.w))`).reduce((x, y) => `max(${x}, ${y})`)
      : cols.map((i) => `x${v}_${i}`).reduce((x, y) => `max(${x}, ${y})`));
    // Per row share: the row maximum over its four invocations, and whether it raises m (a then scales what l and
    // the accumulators hold).
    const raiseRow = (t: number, v: string, bm: string) => [
      `var bm = ${bm};`,
      'bm = max(bm, subgroupShuffleXor(bm, 1u));',
      'bm = max(bm, subgroupShuffleXor(bm, 2u));',
      `let raise = bm > m${v} + 8.0;`,
      `let mNew = select(m${v}, bm, raise);`,
      `a${v} = exp2(m${v} - mNew);`,
      `m${v} = mNew;`,
      `raised${t} = raised${t} || raise;`,
    ];
    const rowsOf = T.flatMap((t) => H.map((h) => [t, h, `${t}_${h}`] as const));
    // Whether each tile's accumulators need the rescale: a second vote.
    const rescaleVotes = T.map((t) => `rescale${t} = subgroupAny(raised${t}) && !first;`);
    if (vote) {
      softmax.push(...rowsOf.map(([, , v]) => `let lm${v} = ${localRowMax(v)};`),
        `let anyOver = subgroupAny(${rowsOf.map(([, , v]) => `lm${v} > m${v} + 8.0`).join(' || ')});`,
        ...T.map((t) => `var rescale${t} = false;`),
        'if (anyOver) {',
        ...rowsOf.flatMap(([t, , v]) => ['{', ...raiseRow(t, v, `lm${v}`), `l${v} = l${v} * a${v};`, '}']),
        ...rescaleVotes,
        '}');
    }
    for (const [t, h, v] of rowsOf) {
      const pRowAt = `pBase + ${t * 16 + 8 * h}u * PS + r8 * PS`;
      const [pStore, rowSum] = adjacent
        ? [vecCols.map((i) => storeQuad(`prow + ${4 * i}u`, exp16 ? `bitcast<vec2<u32>>(p${i})` : `vec2<u32>(pack2x16float(p${i}.xy), pack2x16float(p${i}.zw))`)),
          `dot(${exp16 ? vecCols.map((i) => `vec4<f32>(p${i})`).join(' + ') : vecCols.map((i) => `p${i}`).join(' + ')}, vec4<f32>(1.0))`]
        : [cols.map((i) => (exp16 ? `pTile[prow + ${4 * i}u] = p${i};` : `pTile[prow + ${4 * i}u] = f16(p${i});`)),
          cols.map((i) => (exp16 ? `f32(p${i})` : `p${i}`)).join(' + ')];
      const m = vote ? `m${v}` : 'mNew';
      softmax.push('{',
        ...(vote ? [] : raiseRow(t, v, localRowMax(v))),
        `let prow = ${adjacent ? `(${pRowAt} + 4u * quad) / 4u` : `${pRowAt} + quad`};`,
        ...loaded.map((i) => (exp16 ? `let p${i} = exp2(${adjacent ? 'vec4<f16>' : 'f16'}(x${v}_${i} - ${m}));` : `let p${i} = exp2(x${v}_${i} - ${m});`)),
        ...pStore,
        vote ? `l${v} = l${v} + ${rowSum};` : `l${v} = l${v} * a${v} + ${rowSum};`, '}');
    }
    if (!vote) softmax.push(...rescaleVotes.map((line) => `let ${line}`));

    // Column group g of a tile's accumulators into the subgroup's scratch (rows of OS floats), and back.
    const saveO = (t: number, g: number) => G[g]!.map((c, i) => `subgroupMatrixStore<row_major>(&scratch, ${sAt(`sBase + ${i * 16}u`)}, o${t}_${c}, ${sStride('OS')});`).join(' ');
    const loadO = (t: number, g: number) => G[g]!.map((c, i) => `o${t}_${c} = subgroupMatrixLoad<subgroup_matrix_result<f32, 16, 16>, row_major>(&scratch, ${sAt(`sBase + ${i * 16}u`)}, ${sStride('OS')});`).join(' ');

    // The rare rescale (a row maximum rose by more than 8): the tile's accumulators through the scratch, each row
    // times exp2(m_old − m_new). Entered by the whole subgroup ('subgroup' sync) or the whole workgroup, so the syncs
    // between its steps are in uniform control flow either way.
    const rescale: string[] = [];
    for (const t of T) for (const g of G.keys()) {
      rescale.push(`if (rescale${t}) { ${saveO(t, g)} }`,
        sync,
        `if (rescale${t}) {`);
      for (const h of H) {
        rescale.push(adjacent
          ? `for (var i = quad; i < OW / 4u; i += 4u) { let at = sBase + (r8 + ${8 * h}u) * OS + 4u * i; ${write4('at', `${read4('at')} * a${t}_${h}`)} }`
          : `for (var i = quad; i < OW; i += 4u) { let at = sBase + (r8 + ${8 * h}u) * OS + i; scratch[at] = scratch[at] * a${t}_${h}; }`);
      }
      rescale.push('}', sync,
        `if (rescale${t}) { ${loadO(t, g)} }`,
        sync);
    }

    // O_t += P_t · V_j for every 16-key chunk j (each V matrix serves all tiles); `at` places V's rows (the block's).
    const pvCode = (at: (j: number, c: number) => string) => {
      const pv: string[] = [];
      for (const j of J) {
        pv.push('{');
        for (const t of T) pv.push(`let p${t} = ${left('&pTile', pAt(`pBase + ${t * 16}u * PS + ${j * 16}u`), pStride('PS'))};`);
        for (const c of C) {
          pv.push(`let vt${c} = ${right(at(j, c), false)};`);
          for (const t of T) pv.push(`o${t}_${c} = subgroupMatrixMultiplyAccumulate(p${t}, vt${c}, o${t}_${c});`);
        }
        pv.push('}');
      }
      return pv;
    };
    const pv = pvCode((j, c) => vAt(j, c));

    // Output: each tile's accumulators through the scratch, divided by the row sums.
    // Token rows: as f16 pairs, two adjacent columns per int32.
    const output: string[] = [];
    for (const t of T) for (const g of G.keys()) {
      output.push(saveO(t, g), sync);
      for (const h of H) {
        const at = `sBase + (r8 + ${8 * h}u) * OS`;
        const col0 = `(batch * uniforms.lq + row) * outStride + head * DH + ${g * (dh / oSplit)}u`;
        const store = adjacent
          ? `for (var i = quad; i < OW / 4u; i += 4u) { let o = ${read4(`${at} + 4u * i`)} * inv; ${this.packedOutput
            ? `let to = (${col0}) / 2u + 2u * i; result[to] = bitcast<i32>(pack2x16float(o.xy)); result[to + 1u] = bitcast<i32>(pack2x16float(o.zw));`
            : `let to = ${col0} + 4u * i; result[to] = o.x; result[to + 1u] = o.y; result[to + 2u] = o.z; result[to + 3u] = o.w;`} }`
          : this.packedOutput
            ? `for (var i = quad; i < OW / 2u; i += 4u) { result[(${col0}) / 2u + i] = bitcast<i32>(pack2x16float(vec2<f32>(scratch[${at} + 2u * i], scratch[${at} + 2u * i + 1u]) * inv)); }`
            : `for (var i = quad; i < OW; i += 4u) { result[${col0} + i] = scratch[${at} + i] * inv; }`;
        output.push(`{`, `let row = tileRow0 + ${t * 16 + 8 * h}u + r8;`, `let inv = 1.0 / l${t}_${h};`, `if (row < uniforms.lq) { ${store} }`, '}');
      }
      output.push(sync);
    }

    // 'subgroup': one sync orders the softmax's reads of the scores before the rescale's stores over them and its P
    // stores before P·V's loads; each subgroup takes its own rescale branch.
    // 'workgroup': the subgroups publish whether they need it through workgroupUniformLoad, which is also the barrier
    // before P·V, and the whole workgroup takes the branch when any does.
    const anyRescale = T.map((t) => `rescale${t}`).join(' || ');
    const rescaleBranch = subgroupSync
      ? `${sync}\n          if (${anyRescale}) {\n            ${rescale.join('\n            ')}\n          }`
      : `if (lane == 0u) { needRescale[sg] = select(0u, 1u, ${anyRescale}); }
          let flags = workgroupUniformLoad(&needRescale);
          if (${[...Array(subgroups).keys()].map((i) => `flags[${i}]`).join(' + ')} > 0u) {
            ${rescale.join('\n            ')}
          }`;

    // Pipelined stages: the blocks unrolled; block sb's scores were computed beside block sb − 1's P·V (block 0's
    // first). keysLeft is 0 for a block past the keys (the last stage's), so its scores are all masked.
    const pipelinedStage = pipelined ? [...Array(subBlocks).keys()].map((sb) => `{
          let kb0 = k0 + ${sb * blockK}u;
          let first = ${sb === 0 ? 'it == 0u' : 'false'};
          ${sb === 0 ? computeScores(0).join('\n          ') : ''}
          ${storeScores.join('\n          ')}
          ${sync}
          let keysLeft = select(0u, lk - kb0, kb0 < lk);
          ${T.map((t) => `var raised${t} = false;`).join(' ')}
          ${softmax.join('\n          ')}
          ${rescaleBranch}
          ${pvCode((j, c) => vAt(j, c, sb)).join('\n          ')}
          ${sb + 1 < subBlocks ? computeScores(sb + 1).join('\n          ') : ''}
          }`).join('\n          ') : '';

    // Block 0 into buffer 0; then each iteration loads the next block into registers while this one multiplies, and
    // stores it into the other buffer once every subgroup is past its last use (the loop's closing barrier).
    const loop = `
        var kUnit0 = 0u;
        var kKey0 = 0u;
        var kvAt = 0u;
        ${staging.load}
        ${staging.store}
        workgroupBarrier();
        for (var it = 0u; it < stages; it++) {
          let k0 = it * STAGE_K;
          let more = it + 1u < stages;
          ${kvBuffers === 2 ? 'kvAt = (it % 2u) * 2u * STAGE_K * KS;' : ''}
          if (more) {
            kUnit0 = (k0 + STAGE_K) * ${dh / 8}u;
            kKey0 = k0 + STAGE_K;
            ${staging.load}
          }
          ${pipelined ? pipelinedStage : subBlocks > 1 ? `for (var sb = 0u; sb < ${subBlocks}u; sb++) {
          // Blocks past lk (the last stage's) are skipped: the same for every subgroup, so syncs stay uniform.
          let kb0 = k0 + sb * BLOCK_K;
          if (kb0 >= lk) { break; }
          let sbAt = sb * BLOCK_K * KS;
          let first = it == 0u && sb == 0u;` : `let kb0 = k0;
          let first = it == 0u;`}
          ${pipelined ? '' : `${scores.join('\n          ')}
          ${sync}
          let keysLeft = lk - kb0;
          ${T.map((t) => `var raised${t} = false;`).join(' ')}
          ${softmax.join('\n          ')}
          ${rescaleBranch}
          ${pv.join('\n          ')}
          ${subBlocks > 1 ? '}' : ''}`}
          ${kvBuffers === 2 ? '' : 'workgroupBarrier();'}
          if (more) {
            ${kvBuffers === 2 ? 'kvAt = ((it + 1u) % 2u) * 2u * STAGE_K * KS;' : ''}
            ${staging.store}
          }
          workgroupBarrier();
        }`;
    const perLane = T.flatMap((t) => H.map((h) => `var m${t}_${h} = MASKED; var l${t}_${h} = 0.0; var a${t}_${h} = 1.0;`));
    // The adjacent forms' row of a lane: session 18's expression, or the spread order as eight 4-bit entries.
    const order = softmaxRowOrder(this.layout);
    const rowOfLane = this.layout.spreadBanks
      ? `(${order.reduceRight((word, row) => word * 16 + row, 0)}u >> (4u * (lane / 4u))) & 7u`
      : '(lane / 8u) + 4u * ((lane / 4u) % 2u)';
    // The vote's rows branch on a subgroupAny, which Tint's uniformity analysis takes for non-uniform (it follows the
    // scores into the vote), so the shuffles and the rescale's vote inside the branch need its check off; the branch
    // is subgroup-uniform all the same, being a vote's result.
    return `
      ${TENSOR_CORE_DIRECTIVES}${this.layout.rowMax === 'vote' ? '\n      diagnostic(off, subgroup_uniformity);' : ''}
      // flashdepth:bind P array<f16>
      const DH : u32 = ${dh}u;
      const BLOCK_K : u32 = ${blockK}u;
      const STAGE_K : u32 = ${stageKeys(this.layout)}u;
      const KS : u32 = ${dh + KV_PAD}u;
      const SS : u32 = ${scoreRowFloats(this.layout)}u;
      const OW : u32 = ${dh / oSplit}u;
      const OS : u32 = ${dh / oSplit + F32_PAD}u;
      const PS : u32 = ${pRowHalves(this.layout)}u;
      const SCRATCH : u32 = ${scratchFloats(this.layout, dh)}u;
      const MASKED : f32 = -3.0e38;
      var<workgroup> kvTile : array<${words ? 'u32' : 'vec4<u32>'}, ${(kvBuffers * 2 * stageKeys(this.layout) * (dh + KV_PAD)) / kvPer}>;
      var<workgroup> scratch : array<${vecScratch ? 'vec4<f32>' : 'f32'}, ${(subgroups * scratchFloats(this.layout, dh)) / (vecScratch ? 4 : 1)}>;
      var<workgroup> pTile : array<${adjacent ? (words ? 'u32' : 'vec2<u32>') : 'f16'}, ${(subgroups * tiles * 16 * pRowHalves(this.layout)) / pPer}>;
      ${subgroupSync ? `fn ${SUBGROUP_SCRATCH_SYNC}() {}` : `var<workgroup> needRescale : array<u32, ${subgroups}>;`}

      fn main() {
        let sg = localIndex / 32u;
        let lane = localIndex % 32u;
        // Rows r8 and r8 + 8 of each tile. Adjacent softmax forms pair rows r and r + 4 in each 8-lane phase.
        let r8 = ${adjacent ? rowOfLane : 'lane / 4u'};
        let quad = lane % 4u;
        ${adjacent ? 'let col4 = vec4<u32>(4u * quad) + vec4<u32>(0u, 1u, 2u, 3u);' : ''}
        let head = workgroupId.y;
        let batch = workgroupId.z;
        let tileRow0 = (workgroupId.x * ${subgroups}u + sg) * ${tiles * 16}u;
        let plane = batch * uniforms.heads + head;
        let qBase = (plane * uniforms.lqPad + tileRow0) * DH;
        let kBase = uniforms.kSegment + plane * uniforms.lkPad * DH;
        let vBase = uniforms.vSegment + plane * uniforms.lkPad * DH;
        let sBase = sg * SCRATCH;
        let pBase = sg * ${tiles * 16}u * PS;
        let outStride = uniforms.heads * DH;
        ${T.flatMap((t) => C.map((c) => `let q${t}_${c} = ${left('&P', `qBase + ${t * 16}u * DH + ${c * 16}u`, 'DH')};`)).join('\n        ')}
        ${T.flatMap((t) => C.map((c) => `var o${t}_${c} : subgroup_matrix_result<f32, 16, 16>;`)).join('\n        ')}
        ${pipelined ? T.flatMap((t) => J.map((j) => `var sp${t}_${j} : subgroup_matrix_result<f32, 16, 16>;`)).join('\n        ') : ''}
        ${perLane.join('\n        ')}
        ${staging.declare}
        let lk = uniforms.lk;
        let stages = (lk + STAGE_K - 1u) / STAGE_K;
        ${loop}
        ${T.flatMap((t) => H.map((h) => `l${t}_${h} = l${t}_${h} + subgroupShuffleXor(l${t}_${h}, 1u); l${t}_${h} = l${t}_${h} + subgroupShuffleXor(l${t}_${h}, 2u);`)).join('\n        ')}
        ${output.join('\n        ')}
      }
    `;
  }
}
