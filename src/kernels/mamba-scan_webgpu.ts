/**
 * The Mamba2 frame step between in_proj and out_proj (spec §3.2 steps 2–8) in four dispatches, for streaming
 * inference where the ops form costs ~100 tfjs calls per layer for a handful of tokens:
 *
 * - MambaConvProgram: the causal depthwise conv + SiLU of every xBC channel of every token, and
 *   Δ = softplus(dt + dt_bias) as the Triton kernels compute it, into one [B·L, conv_dim + H] buffer. Fully parallel:
 *   computed once here, instead of by every scan workgroup between the steps of its token loop.
 * - MambaScanProgram: one workgroup per (batch, head, group of R state rows); the rows of S are independent (only
 *   y = S·C sums over a row), so a head's P rows are spread over P / R workgroups. Each row is one lane group of G
 *   invocations (a subgroup where the device has fixed-size subgroups; lane g owns state columns n ≡ g mod G, in
 *   registers) running the recurrence S ← exp(Δ·A)·S + Δ·x ⊗ B, y = S·C + D·x straight from the conv buffer, U
 *   tokens per step: the loads of U tokens do not depend on the state, so they are issued together, and the U row
 *   sums (subgroupAdd) overlap. No workgroup memory and no barriers on the subgroup path; without fixed-size
 *   subgroups the row sums go through workgroup memory (two barriers per U tokens). Output: one flat buffer
 *   [B·L·d_inner (y, head-major) | B·H·P·N (final state)].
 *   Measured on the H100 (conv + scan programs against the old scan, one lease; bench/README.md): FlashDepth-L's
 *   841 tokens 1.00–1.04 → 0.84–0.89 ms per layer, Full's 464 tokens 0.53–0.57 → 0.47–0.50 ms, against the previous
 *   form, which staged the conv of 5-token blocks in workgroup memory, recomputed by every workgroup, and summed rows
 *   there. One state row per workgroup (SCAN_ROWS) instead of eight: 0.79 → 0.29 ms (L), 0.43 → 0.17 (Full) in one
 *   lease. Not only the workgroup count (eight rows give L 64 workgroups for 132 multiprocessors): two rows, 256
 *   workgroups, were as slow as eight.
 * - GatedRmsNormProgram: g = y·SiLU(z), g / √(mean(g²) + eps) · weight over all d_inner channels of a token (one
 *   workgroup of 64 per token row), reading y from the flat buffer and z from the in_proj output in place.
 * - CopyRangeProgram: the state part of the flat buffer as its own tensor (tfjs programs have one output).
 *
 * d_inner = H·P, N, d_conv and the lane-group size are compiled in (model and device constants); batch and L come
 * from the shapes.
 */
import { ShapeError } from '../errors.js';
import { mambaChunkTokensOverride } from './mode.js';
import { foldedDispatch, LINEAR_WORKGROUP, type WebGPUProgram } from './program.js';

const CONV_WORKGROUP = 256;
const NORM_WORKGROUP = 64;
const COPY_WORKGROUP = 256;
/** Lanes per state row when the row sums go through workgroup memory. */
const WORKGROUP_REDUCTION_LANES = 32;
/**
 * Tokens per step of the scan loop (at most the lanes of a row). 8 since session 12, with each step's loads issued one
 * step ahead (SCAN_PREFETCH): H100 lease 12A, per layer (`kernel-timing.js --mamba-only`), L's 841 tokens 0.31–0.32
 * → 0.26 ms, Full's 464 0.18 → 0.15, S's 49 0.095 → 0.107; 8 without the prefetch 0.39 (L), 16 with it 0.35.
 */
const SCAN_UNROLL = 8;
/**
 * At most this many B (and C) values per lane in a step (tokens per step × state columns per lane): 8 × 8 on a
 * 32-lane row of N = 256. Rows of fewer lanes hold more columns each, so they take fewer tokens per step (lavapipe's
 * 8-lane subgroups: 2), which keeps the unrolled step — and its compile time — as it was with 4 tokens per step there.
 */
const SCAN_STEP_VALUES = 64;
/** Fewest lanes of a fixed-size subgroup the scan sums a row over with subgroupAdd. */
const MIN_SUBGROUP_LANES = 4;
/** Above this the Triton softplus returns its argument. */
const SOFTPLUS_THRESHOLD = 20;

/** Measurement knobs of the scan (defaults: SCAN_UNROLL tokens per step, SCAN_ROWS rows). */
export interface ScanTuning {
  /** Tokens per step of the loop (at most the lanes per row). */
  unroll: number;
  /** State rows per workgroup (a divisor of the head size). */
  rows: number;
  /** Issue each step's loads one step ahead (default SCAN_PREFETCH). */
  prefetch: boolean;
  /** Tokens per time chunk (see scanChunks; 0: the whole frame in one chunk, the default SCAN_CHUNK_TOKENS). */
  chunkTokens: number;
}

/**
 * Tokens per time chunk of the scan (0: none). With chunks, a frame's tokens are cut into `chunks` runs scanned side
 * by side (spec §3.4's chunked form with the recurrence inside each chunk): MambaChunkStateProgram scans every chunk
 * but the last from a zero state and keeps its end state and total log-decay Σ Δ·A; MambaScanProgram then starts each
 * chunk from the carried state composed with those of the chunks before it (S ← exp(Σ Δ·A)·S + S_chunk) and scans it
 * again, writing y. Twice the state updates (the first pass without C, y or row sums), spread over `chunks` times as
 * many workgroups: a frame's scan is one warp per state row walking every token, with a few warps per multiprocessor.
 */
export const SCAN_CHUNK_TOKENS = 0;

/** How a frame of `length` tokens is cut: `chunks` runs of `chunkLength` tokens (a multiple of `unroll`; the last shorter). */
export function scanChunks(length: number, chunkTokens: number, unroll: number): { chunks: number; chunkLength: number } {
  if (!(chunkTokens > 0) || length <= chunkTokens) return { chunks: 1, chunkLength: Math.ceil(length / unroll) * unroll };
  const wanted = Math.ceil(length / chunkTokens);
  const chunkLength = Math.ceil(Math.ceil(length / wanted) / unroll) * unroll;
  return { chunks: Math.ceil(length / chunkLength), chunkLength };
}

/**
 * State rows per workgroup by default: one (a workgroup is one lane group). Measured on the H100 (kernel-timing
 * --mamba-only, one lease): L's 841 tokens 0.79 ms with 8 rows per workgroup, 0.84 with 2, 0.29 with 1; Full's 464
 * tokens 0.43 → 0.17; S's 49 tokens 0.088 → 0.051.
 */
export const SCAN_ROWS = 1;

/**
 * Loads one step ahead by default (session 12): the scan of one row is a single warp walking the tokens, and without
 * it every step waited for its own loads (L2 latency) before its first update. With 4 tokens per step it made no
 * difference (lease 12A: L 0.31 vs 0.32 ms); with 8 it is what makes 8 pay (see SCAN_UNROLL).
 */
export const SCAN_PREFETCH = true;

/**
 * How the scan sums each state row: `subgroupSize` lanes per row with subgroupAdd where the device has fixed-size
 * subgroups of 4–32 invocations (0: none, or not fixed), else 32 lanes per row summed in workgroup memory.
 */
export function scanLanes(subgroupSize: number): { lanes: number; subgroupReduce: boolean } {
  const usable = subgroupSize >= MIN_SUBGROUP_LANES && subgroupSize <= 32 && (subgroupSize & (subgroupSize - 1)) === 0;
  return usable ? { lanes: subgroupSize, subgroupReduce: true } : { lanes: WORKGROUP_REDUCTION_LANES, subgroupReduce: false };
}

export interface MambaScanDims {
  batch: number;
  length: number;
  heads: number;
  headdim: number;
  dState: number;
  dConv: number;
  /** Whether a carried-in SSM state is bound (input `State`); without it the scan starts from zeros. */
  hasState: boolean;
}

/** [B·L, conv_dim + H]: SiLU(causal depthwise conv) of the xBC channels, then softplus(dt + dt_bias) per head. */
export class MambaConvProgram implements WebGPUProgram {
  variableNames = ['Zxbcdt', 'ConvWeight', 'ConvBias', 'DtBias'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [CONV_WORKGROUP, 1, 1];
  size = true;
  private readonly dims: MambaScanDims;

  constructor(dims: MambaScanDims) {
    const { batch, length, heads, headdim, dState } = dims;
    this.dims = dims;
    const width = heads * headdim + 2 * dState + heads;
    this.outputShape = [batch * length, width];
    this.dispatch = foldedDispatch(Math.ceil((batch * length * width) / CONV_WORKGROUP));
    this.shaderKey = `mambaConv_${heads}_${headdim}_${dState}_${dims.dConv}`;
  }

  getUserCode(): string {
    const { heads, headdim, dState, dConv } = this.dims;
    const dInner = heads * headdim;
    const convDim = dInner + 2 * dState;
    return `
      const H : i32 = ${heads};
      const K : i32 = ${dConv};
      const DINNER : i32 = ${dInner};
      const CONVDIM : i32 = ${convDim};

      fn softplusTriton(v : f32) -> f32 {
        if (v > ${SOFTPLUS_THRESHOLD.toFixed(1)}) { return v; }
        // log1p(e) without losing e when 1 + e rounds: log(u)·e/(u − 1) (Goldberg 1991, Theorem 4).
        let e = exp(v);
        let u = 1.0 + e;
        if (u == 1.0) { return e; }
        return log(u) * (e / (u - 1.0));
      }

      fn main(index : i32) {
        if (index >= uniforms.size) { return; }
        let L = uniforms.zxbcdtShape.y;
        let width = uniforms.zxbcdtShape.z;
        let row = index / (CONVDIM + H);
        let c = index % (CONVDIM + H);
        // Column DINNER + c of zxbcdt: xBC channel c, or (c ≥ CONVDIM) the dt of head c − CONVDIM.
        if (c >= CONVDIM) {
          result[index] = softplusTriton(Zxbcdt[row * width + DINNER + c] + DtBias[c - CONVDIM]);
          return;
        }
        // Tokens before the frame start are zeros (the conv is not carried across frames, spec §2.5).
        let t = row % L;
        var acc = ConvBias[c];
        for (var k = 0; k < K; k++) {
          let back = K - 1 - k;
          if (t >= back) { acc = acc + ConvWeight[k * CONVDIM + c] * Zxbcdt[(row - back) * width + DINNER + c]; }
        }
        result[index] = acc / (1.0 + exp(-acc));
      }
    `;
  }
}

/** The scan's layout for a frame: lanes per row, row sums, tokens per step, rows per workgroup, time chunks. */
interface ScanShape {
  lanes: number;
  subgroupReduce: boolean;
  unroll: number;
  rows: number;
  prefetch: boolean;
  chunks: number;
  chunkLength: number;
}

function scanShape(dims: MambaScanDims, subgroupSize: number, tuning: Partial<ScanTuning>, owner: string): ScanShape {
  const { lanes, subgroupReduce } = scanLanes(subgroupSize);
  const columnsPerLane = Math.ceil(dims.dState / lanes);
  const unroll = tuning.unroll ?? Math.max(1, Math.min(SCAN_UNROLL, lanes, Math.floor(SCAN_STEP_VALUES / columnsPerLane)));
  const rows = tuning.rows ?? SCAN_ROWS;
  const chunkTokens = tuning.chunkTokens ?? mambaChunkTokensOverride() ?? SCAN_CHUNK_TOKENS;
  // Lane u of each row writes token u of a step: a step cannot have more tokens than a row has lanes.
  if (!(unroll >= 1 && unroll <= lanes && dims.headdim % rows === 0 && chunkTokens >= 0)) {
    throw new ShapeError(`${owner}: tokens per step ${unroll}, state rows per workgroup ${rows} and chunk tokens ${chunkTokens} do not fit `
      + `${lanes} lanes per row and heads of ${dims.headdim} (expected 1 ≤ tokens ≤ lanes, rows dividing the head, chunk tokens ≥ 0)`);
  }
  return { lanes, subgroupReduce, unroll, rows, prefetch: tuning.prefetch ?? SCAN_PREFETCH, ...scanChunks(dims.length, chunkTokens, unroll) };
}

/**
 * WGSL of the scan of one workgroup's state rows over tokens [start, end) (`start`, `end`, `rowBase`, `head`, `p`,
 * `g`, `A` and the state registers s0… defined by the caller). `withOutput`: also y = S·C + D·x per token (row sums,
 * result writes); without it, only the state and the chunk's log-decay `logDecay` (MambaChunkStateProgram).
 */
function scanLoop(dims: MambaScanDims, shape: ScanShape, withOutput: boolean): {
  declarations: string; loop: string; J: number[]; readColumn: (array: string, at: string, j: number) => string; storeState: (at: string, indent: string) => string;
} {
  const { dState } = dims;
  const { lanes: G, unroll: U, rows: R } = shape;
  const wg = R * G;
  const tokens = [...Array(U).keys()];
  // Lane g owns state columns n = g + j·G (j < J), one register each. Where G does not divide N the last columns
  // of some lanes lie past N: their B is read as zero, so they stay zero and add nothing to y.
  const J = [...Array(Math.ceil(dState / G)).keys()];
  const exact = dState % G === 0;
  const column = (j: number) => `g + ${j * G}`;
  // Column j of a lane from array[at + n]: zero past N.
  const readColumn = (array: string, at: string, j: number) => (exact || (j + 1) * G <= dState
    ? `${array}[${at} + ${column(j)}]`
    : `select(0.0, ${array}[${at} + min(${column(j)}, N - 1)], ${column(j)} < N)`);
  // A step's loads: every value of its U tokens (none depends on the state; a token past the end is read clamped and
  // gets Δ = 0, which leaves the state as it is). With `prefetch` they are issued one step ahead, into the variables
  // the next step reads, so that their latency overlaps this step's updates, row sums and stores; without it, at the
  // top of their own step (all U in flight together).
  const loadStep = (base: string, n = '') => tokens.map((u) => [
    `${n}t${u} = ${base} + ${u};`,
    `${n}at${u} = (rowBase + min(${n}t${u}, L - 1)) * W;`,
    `${n}dt${u} = select(0.0, Conv[${n}at${u} + CONVDIM + head], ${n}t${u} < end);`,
    `${n}x${u} = Conv[${n}at${u} + head * P + p];`,
    ...J.map((j) => `${n}b${u}_${j} = ${readColumn('Conv', `${n}at${u} + DINNER`, j)};`),
    ...(withOutput ? J.map((j) => `${n}c${u}_${j} = ${readColumn('Conv', `${n}at${u} + DINNER + N`, j)};`) : []),
  ].join(' ')).join('\n            ');
  const stepNames = tokens.flatMap((u) => [`t${u}`, `at${u}`, `dt${u}`, `x${u}`, ...J.flatMap((j) => [`b${u}_${j}`, ...(withOutput ? [`c${u}_${j}`] : [])])]);
  const isInt = (v: string) => /^a?t\d/.test(v);
  const declareStep = (n: string) => stepNames.map((v) => `var ${n}${v} = ${isInt(v) ? '0' : '0.0'};`).join(' ');
  // The prefetched values of the next step, moved into the current step's variables at its start.
  const takeNext = stepNames.map((v) => `${v} = n${v};`).join(' ');
  const updates = tokens.map((u) => [
    `let decay${u} = exp(dt${u} * A);`,
    `let dx${u} = dt${u} * x${u};`,
    ...J.map((j) => `s${j} = decay${u} * s${j} + dx${u} * b${u}_${j};`),
    ...(withOutput ? [`let acc${u} = ${J.map((j) => `s${j} * c${u}_${j}`).join(' + ')};`] : [`logDecay = logDecay + dt${u} * A;`]),
  ].join(' ')).join('\n            ');
  const out = (u: number, y: string) => `if (g == ${u} && t${u} < end) { result[(rowBase + t${u}) * DINNER + head * P + p] = ${y} + dSkip * x${u}; }`;
  const reduce = !withOutput ? '' : shape.subgroupReduce
    ? [...tokens.map((u) => `let y${u} = subgroupAdd(acc${u});`), ...tokens.map((u) => out(u, `y${u}`))].join('\n            ')
    : [tokens.map((u) => `partial[${u * wg} + tid] = acc${u};`).join(' '), 'workgroupBarrier();',
      ...tokens.map((u) => `if (g == ${u}) { var y = 0.0; for (var k = 0; k < G; k++) { y = y + partial[${u * wg} + r * G + k]; } ${out(u, 'y')} }`),
      'workgroupBarrier();'].join('\n            ');
  const declarations = `
      const H : i32 = ${dims.heads};
      const P : i32 = ${dims.headdim};
      const N : i32 = ${dState};
      const DINNER : i32 = ${dims.heads * dims.headdim};
      const CONVDIM : i32 = ${dims.heads * dims.headdim + 2 * dState};
      const W : i32 = ${dims.heads * dims.headdim + 2 * dState + dims.heads};
      const G : i32 = ${G};
      const U : i32 = ${U};
      ${withOutput && !shape.subgroupReduce ? `var<workgroup> partial : array<f32, ${U * wg}>;` : ''}`;
  const loop = `
        ${declareStep('')}
        ${shape.prefetch ? `${declareStep('n')}
        ${loadStep('start', 'n')}` : ''}
        // chunkLength steps in every chunk (the last one's tokens past L masked): a trip count from uniforms keeps the
        // row sums' subgroupAdd and barriers in uniform control flow (tfjs hands workgroupId over through a private
        // variable, which the uniformity analysis does not trust).
        for (var step = 0; step < uniforms.chunkLength; step += U) {
            let first = start + step;
            ${shape.prefetch ? `${takeNext}
            ${loadStep('first + U', 'n')}` : loadStep('first')}
            ${updates}
            ${reduce}
        }`;
  // The state registers into result[at + n] (columns past N skipped).
  const storeState = (at: string, indent: string) => J.map((j) => (exact ? `result[${at} + ${column(j)}] = s${j};`
    : `if (${column(j)} < N) { result[${at} + ${column(j)}] = s${j}; }`)).join(`\n${indent}`);
  return { declarations, loop, J, readColumn, storeState };
}

/** Where a workgroup's (batch, head, state row, chunk) come from: workgroup ids x = head, y = batch, z = chunk · P/R + row group. */
function scanPrologue(shape: ScanShape): string {
  const rowGroups = `(P / ${shape.rows})`;
  return `
        let head = i32(workgroupId.x);
        let batch = i32(workgroupId.y);
        let batches = uniforms.batches;
        let L = uniforms.length;
        let rowBase = batch * L;
        let tid = i32(localIndex);
        let r = tid / G;
        let g = tid % G;
        let chunk = i32(workgroupId.z) / ${rowGroups};
        let p = (i32(workgroupId.z) % ${rowGroups}) * ${shape.rows} + r;
        let start = chunk * uniforms.chunkLength;
        let end = min(L, start + uniforms.chunkLength);
        let A = -exp(ALog[head]);`;
}

/**
 * The first pass of a chunked scan (see SCAN_CHUNK_TOKENS): every chunk but the last scanned from a zero state.
 * Output, flat: the chunks' end states [B, chunks − 1, H, P, N], then their log-decays Σ Δ·A [B, chunks − 1, H].
 */
export class MambaChunkStateProgram implements WebGPUProgram {
  variableNames = ['Conv', 'ALog'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0], y: [1] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  uniforms = 'batches : i32, length : i32, chunkLength : i32,';
  readonly shape: ScanShape;
  private readonly dims: MambaScanDims;

  constructor(dims: MambaScanDims, subgroupSize: number, tuning: Partial<ScanTuning> = {}) {
    this.dims = dims;
    this.shape = scanShape(dims, subgroupSize, tuning, 'MambaChunkStateProgram');
    const { batch, heads, headdim, dState } = dims;
    const { chunks, rows, lanes } = this.shape;
    if (chunks < 2) throw new ShapeError(`MambaChunkStateProgram: a frame of ${dims.length} tokens is one chunk (expected at least 2)`);
    this.outputShape = [batch * (chunks - 1) * heads * (headdim * dState + 1)];
    this.workgroupSize = [rows * lanes, 1, 1];
    this.dispatch = [heads, batch, (headdim / rows) * (chunks - 1)];
    this.shaderKey = `mambaChunkState_${heads}_${headdim}_${dState}_${lanes}_${this.shape.unroll}_${rows}${this.shape.prefetch ? '_prefetch' : ''}_chunks${chunks}`;
  }

  getUserCode(): string {
    const { declarations, loop, J, storeState } = scanLoop(this.dims, this.shape, false);
    const chunksLess = this.shape.chunks - 1;
    return `
      ${declarations}

      fn main() {
        ${scanPrologue(this.shape)}
        var logDecay = 0.0;
        ${J.map((j) => `var s${j} = 0.0;`).join('\n        ')}
        ${loop}
        let slot = (batch * ${chunksLess} + chunk) * H + head;
        ${storeState('(slot * P + p) * N', '        ')}
        if (tid == 0 && p == 0) { result[batches * ${chunksLess} * H * P * N + slot] = logDecay; }
      }
    `;
  }
}

export class MambaScanProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0], y: [1] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  uniforms = 'batches : i32, length : i32, chunkLength : i32,';
  /** The layout it runs (`chunks` > 1: MambaChunkStateProgram's output is bound as input `Chunks`). */
  readonly shape: ScanShape;
  private readonly dims: MambaScanDims;

  /** `subgroupSize`: the device's fixed subgroup size, 0 if none (see scanLanes); `tuning`: for measurements. */
  constructor(dims: MambaScanDims, subgroupSize: number, tuning: Partial<ScanTuning> = {}) {
    const { batch, length, heads, headdim, dState, hasState } = dims;
    this.dims = dims;
    this.shape = scanShape(dims, subgroupSize, tuning, 'MambaScanProgram');
    const { lanes, subgroupReduce, unroll, rows, prefetch, chunks } = this.shape;
    this.variableNames = ['Conv', 'ALog', 'DSkip', ...(hasState ? ['State'] : []), ...(chunks > 1 ? ['Chunks'] : [])];
    this.outputShape = [batch * length * heads * headdim + batch * heads * headdim * dState];
    this.workgroupSize = [rows * lanes, 1, 1];
    this.dispatch = [heads, batch, (headdim / rows) * chunks];
    this.shaderKey = `mambaScan_${heads}_${headdim}_${dState}_${hasState}_${lanes}_${subgroupReduce}_${unroll}_${rows}${prefetch ? '_prefetch' : ''}`
      + `${chunks > 1 ? `_chunks${chunks}` : ''}`;
  }

  getUserCode(): string {
    const { hasState } = this.dims;
    const { chunks } = this.shape;
    const { declarations, loop, J, readColumn, storeState } = scanLoop(this.dims, this.shape, true);
    const stateIn = (j: number) => `var s${j} = ${hasState ? readColumn('State', 'stateRow', j) : '0.0'};`;
    // A chunk starts from the carried state composed with the end states of the chunks before it.
    const compose = chunks < 2 ? '' : `
        for (var c = 0; c < chunk; c++) {
          let slot = (batch * ${chunks - 1} + c) * H + head;
          let decay = exp(Chunks[batches * ${chunks - 1} * H * P * N + slot]);
          let at = (slot * P + p) * N;
          ${J.map((j) => `s${j} = decay * s${j} + ${readColumn('Chunks', 'at', j)};`).join('\n          ')}
        }`;
    return `
      ${this.shape.subgroupReduce ? 'enable subgroups;' : ''}
      ${declarations}

      fn main() {
        ${scanPrologue(this.shape)}
        let dSkip = DSkip[head];
        let stateRow = ((batch * H + head) * P + p) * N;
        ${J.map(stateIn).join('\n        ')}
        ${compose}
        ${loop}
        if (chunk == ${chunks - 1}) {
          ${storeState('batches * L * DINNER + stateRow', '          ')}
        }
      }
    `;
  }
}

/** Gated RMSNorm (norm_before_gate = False, one group) of the scan's y, over rows of d_inner channels. */
export class GatedRmsNormProgram implements WebGPUProgram {
  variableNames = ['Scan', 'Zxbcdt', 'NormWeight'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0], y: [1] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [NORM_WORKGROUP, 1, 1];
  uniforms = 'eps : f32,';
  private readonly cols: number;

  constructor(batch: number, length: number, dInner: number) {
    this.cols = dInner;
    this.outputShape = [batch, length, dInner];
    this.dispatch = foldedDispatch(batch * length);
    this.shaderKey = `mambaGatedRmsNorm_${dInner}`;
  }

  getUserCode(): string {
    const perThread = Math.ceil(this.cols / NORM_WORKGROUP);
    return `
      const WG : i32 = ${NORM_WORKGROUP};
      const C : i32 = ${this.cols};
      const PER : i32 = ${perThread};
      var<workgroup> partial : array<f32, ${NORM_WORKGROUP}>;

      fn main() {
        let rows = uniforms.outShape.x * uniforms.outShape.y;
        let row = ${LINEAR_WORKGROUP};
        // Workgroups past the last row (y-folding) compute row rows-1 again but write nothing: barriers stay uniform.
        let r = min(row, rows - 1);
        let zBase = r * uniforms.zxbcdtShape.z;
        let tid = i32(localIndex);
        var gated : array<f32, ${perThread}>;
        var squares = 0.0;
        for (var i = 0; i < PER; i++) {
          let c = min(tid + i * WG, C - 1);
          let z = Zxbcdt[zBase + c];
          let v = select(0.0, Scan[r * C + c] * (z / (1.0 + exp(-z))), tid + i * WG < C);
          gated[i] = v;
          squares = squares + v * v;
        }
        partial[tid] = squares;
        workgroupBarrier();
        for (var stride = WG / 2; stride > 0; stride = stride / 2) {
          if (tid < stride) { partial[tid] = partial[tid] + partial[tid + stride]; }
          workgroupBarrier();
        }
        let scale = inverseSqrt(partial[0] / f32(C) + uniforms.eps);
        if (row < rows) {
          for (var i = 0; i < PER; i++) {
            let c = tid + i * WG;
            if (c < C) { result[r * C + c] = gated[i] * scale * NormWeight[c]; }
          }
        }
      }
    `;
  }
}

/** result = Scan[offset … offset + size): the state part of the scan's flat output. */
export class CopyRangeProgram implements WebGPUProgram {
  variableNames = ['Scan'];
  outputShape: number[];
  shaderKey = 'mambaCopyRange';
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [COPY_WORKGROUP, 1, 1];
  size = true;
  uniforms = 'offset : i32,';

  constructor(shape: number[]) {
    this.outputShape = shape;
    this.dispatch = foldedDispatch(Math.ceil(shape.reduce((a, b) => a * b, 1) / COPY_WORKGROUP));
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) { result[index] = Scan[index + uniforms.offset]; }
      }
    `;
  }
}
