/**
 * The Mamba2 frame step between in_proj and out_proj (spec §3.2 steps 2–8) in three dispatches, for streaming
 * inference where the ops form costs ~100 tfjs calls per layer for a handful of tokens:
 *
 * - MambaScanProgram: one workgroup per (batch, head, group of R state rows): the rows of S are independent (only
 *   y = S·C sums over a row), so a head's P rows are spread over P / R workgroups, which keeps the sequential token
 *   loop short per thread and puts P / R times as many multiprocessors to work as one workgroup per head would
 *   (FlashDepth-L: 8 heads of 64 rows, 64 workgroups instead of 8). Per block of T tokens a workgroup stages in workgroup memory the causal depthwise conv + SiLU of its R
 *   x channels and of the shared B and C (recomputed by every workgroup: a few thousand multiply-adds), and
 *   Δ = softplus(dt + dt_bias) as the Triton kernels compute it; then runs the per-token recurrence
 *   S ← exp(Δ·A)·S + Δ·x ⊗ B, y = S·C + D·x. Thread t owns row p0 + t / G of the [P, N] state and columns
 *   n ≡ t mod G (mod G), in registers; the G partial dot products with C go through workgroup memory, summed once per
 *   block. Output: one flat buffer [B·L·d_inner (y, head-major) | B·H·P·N (final state)].
 * - GatedRmsNormProgram: g = y·SiLU(z), g / √(mean(g²) + eps) · weight over all d_inner channels of a token (one
 *   workgroup of 64 per token row), reading y from the flat buffer and z from the in_proj output in place.
 * - CopyRangeProgram: the state part of the flat buffer as its own tensor (tfjs programs have one output).
 *
 * d_inner = H·P, N, d_conv and the block size are compiled in (model constants); batch and L come from the shapes.
 */
import { foldedDispatch, LINEAR_WORKGROUP, type WebGPUProgram } from './program.js';

const SCAN_WORKGROUP = 256;
const NORM_WORKGROUP = 64;
const COPY_WORKGROUP = 256;
/** Workgroup memory the scan may use: WebGPU's guaranteed minimum, so one shader fits every device. */
const SCAN_WORKGROUP_FLOATS = 16384 / 4;
const MAX_BLOCK_TOKENS = 8;
/** Above this the Triton softplus returns its argument. */
const SOFTPLUS_THRESHOLD = 20;

/** State rows per workgroup: 8 where they divide the head (every FlashDepth model), else the whole head. */
export function scanRowsPerGroup(headdim: number): number {
  return headdim % 8 === 0 ? 8 : headdim;
}

/** Tokens staged per block: x, B, C, Δ and the partial sums of T tokens fit SCAN_WORKGROUP_FLOATS. 0: does not fit. */
export function scanBlockTokens(headdim: number, dState: number): number {
  const perToken = scanRowsPerGroup(headdim) + 2 * dState + 1 + SCAN_WORKGROUP;
  return Math.min(MAX_BLOCK_TOKENS, Math.floor(SCAN_WORKGROUP_FLOATS / perToken));
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

export class MambaScanProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0], y: [1] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [SCAN_WORKGROUP, 1, 1];
  private readonly dims: MambaScanDims;

  constructor(dims: MambaScanDims) {
    const { batch, length, heads, headdim, dState, dConv, hasState } = dims;
    this.dims = dims;
    this.variableNames = ['Zxbcdt', 'ConvWeight', 'ConvBias', 'DtBias', 'ALog', 'DSkip', ...(hasState ? ['State'] : [])];
    this.outputShape = [batch * length * heads * headdim + batch * heads * headdim * dState];
    this.dispatch = [heads, batch, headdim / scanRowsPerGroup(headdim)];
    this.shaderKey = `mambaScan_${heads}_${headdim}_${dState}_${dConv}_${hasState}`;
  }

  getUserCode(): string {
    const { heads, headdim, dState, dConv, hasState } = this.dims;
    const rows = scanRowsPerGroup(headdim); // R
    const rowThreads = Math.floor(SCAN_WORKGROUP / rows); // G
    const perThread = Math.ceil(dState / rowThreads); // state columns per thread
    const blockTokens = scanBlockTokens(headdim, dState);
    // Column n = g + j·G exists for every j when G divides N; otherwise the last j needs a guard.
    const inRange = dState % rowThreads === 0 ? 'true' : 'n < N';
    return `
      const H : i32 = ${heads};
      const P : i32 = ${headdim};
      const R : i32 = ${rows};
      const N : i32 = ${dState};
      const K : i32 = ${dConv};
      const DINNER : i32 = ${heads * headdim};
      const CONVDIM : i32 = ${heads * headdim + 2 * dState};
      const WG : i32 = ${SCAN_WORKGROUP};
      const G : i32 = ${rowThreads};
      const PER : i32 = ${perThread};
      const T : i32 = ${blockTokens};
      const STAGED : i32 = ${rows + 2 * dState};
      var<workgroup> xs : array<f32, ${blockTokens * rows}>;
      var<workgroup> bs : array<f32, ${blockTokens * dState}>;
      var<workgroup> cs : array<f32, ${blockTokens * dState}>;
      var<workgroup> dts : array<f32, ${blockTokens}>;
      var<workgroup> partial : array<f32, ${blockTokens * SCAN_WORKGROUP}>;

      fn softplusTriton(v : f32) -> f32 {
        if (v > ${SOFTPLUS_THRESHOLD.toFixed(1)}) { return v; }
        // log1p(e) without losing e when 1 + e rounds: log(u)·e/(u − 1) (Goldberg 1991, Theorem 4).
        let e = exp(v);
        let u = 1.0 + e;
        if (u == 1.0) { return e; }
        return log(u) * (e / (u - 1.0));
      }

      fn siluOf(v : f32) -> f32 {
        return v / (1.0 + exp(-v));
      }

      // SiLU(causal depthwise conv) of conv channel c at token t; tokens before the frame start are zeros.
      fn convSilu(rowBase : i32, t : i32, c : i32, width : i32) -> f32 {
        var acc = ConvBias[c];
        for (var k = 0; k < K; k++) {
          let src = t - (K - 1) + k;
          if (src >= 0) { acc = acc + ConvWeight[k * CONVDIM + c] * Zxbcdt[(rowBase + src) * width + DINNER + c]; }
        }
        return siluOf(acc);
      }

      fn main() {
        let head = i32(workgroupId.x);
        let batch = i32(workgroupId.y);
        let batches = uniforms.zxbcdtShape.x;
        let L = uniforms.zxbcdtShape.y;
        let width = uniforms.zxbcdtShape.z;
        let rowBase = batch * L;
        let p0 = i32(workgroupId.z) * R;
        let tid = i32(localIndex);
        // Threads past R·G shadow the group's last row (their partial sums are never read) so every thread reaches the
        // barriers.
        let r = min(tid / G, R - 1);
        let p = p0 + r;
        let g = tid % G;
        let owner = tid < R * G;
        let A = -exp(ALog[head]);
        let dSkip = DSkip[head];
        let stateRow = ((batch * H + head) * P + p) * N;

        var s : array<f32, ${perThread}>;
        for (var j = 0; j < PER; j++) {
          let n = g + j * G;
          ${hasState ? `s[j] = select(0.0, State[stateRow + min(n, N - 1)], ${inRange});` : 's[j] = 0.0;'}
        }

        for (var t0 = 0; t0 < L; t0 += T) {
          for (var i = tid; i < T * STAGED; i += WG) {
            let tt = i / STAGED;
            let c = i % STAGED;
            let t = t0 + tt;
            let channel = select(DINNER + c - R, head * P + p0 + c, c < R);
            let v = select(0.0, convSilu(rowBase, min(t, L - 1), channel, width), t < L);
            if (c < R) {
              xs[tt * R + c] = v;
            } else if (c < R + N) {
              bs[tt * N + c - R] = v;
            } else {
              cs[tt * N + c - R - N] = v;
            }
          }
          if (tid < T) {
            let t = min(t0 + tid, L - 1);
            dts[tid] = softplusTriton(Zxbcdt[(rowBase + t) * width + DINNER + CONVDIM + head] + DtBias[head]);
          }
          workgroupBarrier();

          let steps = min(T, L - t0);
          for (var tt = 0; tt < steps; tt++) {
            let dt = dts[tt];
            let decay = exp(dt * A);
            let dx = dt * xs[tt * R + r];
            var acc = 0.0;
            for (var j = 0; j < PER; j++) {
              let n = g + j * G;
              if (${inRange}) {
                s[j] = decay * s[j] + dx * bs[tt * N + n];
                acc = acc + s[j] * cs[tt * N + n];
              }
            }
            partial[tt * WG + tid] = acc;
          }
          workgroupBarrier();

          for (var i = tid; i < steps * R; i += WG) {
            let tt = i / R;
            let row = i % R;
            var y = 0.0;
            for (var k = 0; k < G; k++) { y = y + partial[tt * WG + row * G + k]; }
            result[(rowBase + t0 + tt) * DINNER + head * P + p0 + row] = y + dSkip * xs[tt * R + row];
          }
          workgroupBarrier();
        }

        if (owner) {
          let stateOut = batches * L * DINNER + stateRow;
          for (var j = 0; j < PER; j++) {
            let n = g + j * G;
            if (${inRange}) { result[stateOut + n] = s[j]; }
          }
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
