/**
 * Attention on tensor cores (`--precision mixed`): softmax(q·kᵀ·scale)·v with f16 operands and f32 accumulation, in
 * two dispatches.
 *
 * 1. PackHeadsF16Program copies q, k and v (f32 token rows, heads at channel offsets as for FlashAttentionProgram)
 *    into one buffer of f16 head planes [B, H, Lpad, Dh] — Q first (pre-multiplied by scale·log2 e), then K, then V —
 *    with rows past L zero. The buffer is an int32 tensor holding two halves per element: tfjs has no f16 dtype, and
 *    integer stores keep the bits exactly.
 * 2. TensorCoreAttentionProgram binds that buffer twice: as `array<f16>` (src/backend/webgpu.ts `retypeBindings`),
 *    from which each subgroup loads its Q tiles once, and as int32 vec4s, from which all invocations copy each key
 *    block's K and V rows into workgroup memory (16-byte units), where the subgroup matrices for Kᵀ and V are loaded.
 *    Loading those straight from storage (the previous version) capped the kernel near 5–13 TFLOP/s on the H100;
 *    staged, 9–23 (kernel-timing.ts, bench/README.md).
 *
 * One subgroup (32 invocations) owns 16 query rows and a share of the keys: a workgroup holds `subgroups / splits`
 * query tiles of one (batch, head), each worked on by `splits` subgroups that take every splits-th key block and merge
 * their partial softmax sums at the end (more parallelism for short sequences; layout below). Per block of BLOCK_K
 * keys a subgroup computes the 16×BLOCK_K scores on tensor cores, stores them to its own workgroup scratch, and each
 * invocation (row = lane/2, every other column) takes row maxima and writes P = exp2(s − m) as f16, which the tensor
 * cores then multiply by V into the f32 accumulators O.
 *
 * Online softmax with a lazy rescale (FlashAttention-4's trick): m is only raised when a block's row maximum exceeds it
 * by more than 8 (log2 units), so P ≤ 2⁸ stays well inside f16 and the normalisation by l (accumulated with the same
 * m) is still exact. Only then do the accumulators make a round trip through workgroup memory to be scaled by
 * exp2(m_old − m_new) — subgroup matrices cannot be scaled per row in registers. After the first block this is rare.
 *
 * Subgroup-matrix calls need subgroup-uniform operands: the subgroup index is localIndex / 32, uniform where subgroups
 * are 32 consecutive invocations (`webgpuCapabilities().subgroupMatrix` is only set there); `rescale` comes from
 * subgroupAny. Barriers stay workgroup-uniform (the key loop has the same trip count in every subgroup; only the work
 * between barriers is conditional).
 */
import { TENSOR_CORE_DIRECTIVES } from './tc-matmul_webgpu.js';
import { foldedDispatch, type WebGPUProgram } from './program.js';

/** Query rows per subgroup (one subgroup-matrix tile) and query-row padding of the packed planes. */
export const TC_ROWS = 16;

/** Shape of a tensor-core attention workgroup. */
export interface TensorCoreAttentionLayout {
  /** Subgroups per workgroup: subgroups / splits tiles of 16 query rows. */
  subgroups: number;
  /** Keys per block (a multiple of 16). */
  blockK: number;
  /**
   * Subgroups sharing one query tile, each taking every splits-th key block; their partial softmax sums are merged at
   * the end (flash-decoding's split-K, inside one workgroup). More parallelism for short sequences.
   */
  splits: number;
}

export const DEFAULT_TC_ATTENTION_LAYOUT: TensorCoreAttentionLayout = { subgroups: 4, blockK: 32, splits: 1 };

/** Halves of padding per staged K/V row (16 bytes: rows start in different banks). */
const KV_PAD = 8;

/** Workgroup memory a layout needs for head size `headDim`, in bytes. */
export function tcAttentionWorkgroupBytes(layout: TensorCoreAttentionLayout, headDim: number): number {
  const perSubgroup = TC_ROWS * ((layout.blockK + 4) * 4 + (headDim + 4) * 4 + (layout.blockK + 8) * 2) + 2 * TC_ROWS * 4;
  const staged = layout.splits * 2 * layout.blockK * (headDim + KV_PAD) * 2;
  return layout.subgroups * perSubgroup + staged;
}

/** Query rows one workgroup covers. */
export function tcRowsPerWorkgroup(layout: TensorCoreAttentionLayout): number {
  return TC_ROWS * (layout.subgroups / layout.splits);
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
  /** P: the packed planes as f16 (subgroup-matrix loads); P4: the same buffer as int32 vec4s (staging copies). */
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

  constructor(batch: number, lq: number, numHeads: number, headDim: number, layout: TensorCoreAttentionLayout = DEFAULT_TC_ATTENTION_LAYOUT) {
    this.headDim = headDim;
    this.layout = layout;
    this.workgroupSize = [32 * layout.subgroups, 1, 1];
    this.outputShape = [batch, lq, numHeads * headDim];
    this.dispatch = [Math.ceil(lq / tcRowsPerWorkgroup(layout)), numHeads, batch];
    this.shaderKey = `tcAttention_${headDim}_${layout.subgroups}_${layout.blockK}_${layout.splits}`;
  }

  getUserCode(): string {
    const dh = this.headDim;
    const { subgroups, blockK, splits } = this.layout;
    const tiles = subgroups / splits;
    const dc = dh / 16;
    const kc = blockK / 16;
    const ss = blockK + 4;
    const os = dh + 4;
    const ps = blockK + 8;
    const left = (ptr: string, offset: string, stride: string) => `subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(${ptr}, ${offset}, false, ${stride})`;
    const ks = dh + KV_PAD;
    const right = (offset: string, colMajor: boolean) => `subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kvTile, ${offset}, ${colMajor}, KS)`;
    const lines: string[] = [];
    const chunks = [...Array(dc).keys()];
    const keyChunks = [...Array(kc).keys()];
    const qLoads = chunks.map((c) => `let q${c} = ${left('&P', `qBase + ${c * 16}u`, 'DH')};`);
    const oDecl = chunks.map((c) => `var o${c} : subgroup_matrix_result<f32, 16, 16>;`);
    // Scores: for each 16-key chunk j, Σ_c Q_c · (K_jc)ᵀ; Kᵀ tiles are column-major loads of K rows.
    for (const j of keyChunks) {
      const kt = (c: number) => right(`kOff + ${j * 16 * ks + c * 16}u`, true);
      lines.push(`{`, `var s = subgroupMatrixMultiply<f32>(q0, ${kt(0)});`);
      for (const c of chunks.slice(1)) lines.push(`s = subgroupMatrixMultiplyAccumulate(q${c}, ${kt(c)}, s);`);
      lines.push(`subgroupMatrixStore(&sScratch, sBase + ${j * 16}u, s, false, SS);`, `}`);
    }
    const scores = lines.join('\n          ');
    const saveO = chunks.map((c) => `subgroupMatrixStore(&oScratch, oBase + ${c * 16}u, o${c}, false, OS);`).join('\n            ');
    const loadO = chunks.map((c) => `o${c} = subgroupMatrixLoad<subgroup_matrix_result<f32, 16, 16>>(&oScratch, oBase + ${c * 16}u, false, OS);`).join('\n            ');
    const pv: string[] = [];
    for (const j of keyChunks) {
      pv.push(`{`, `let p = ${left('&pTile', `pBase + ${j * 16}u`, 'PS')};`);
      const vt = (c: number) => right(`kOff + ${blockK * ks + j * 16 * ks + c * 16}u`, false);
      for (const c of chunks) pv.push(`o${c} = subgroupMatrixMultiplyAccumulate(p, ${vt(c)}, o${c});`);
      pv.push(`}`);
    }
    // Per iteration every split's block: K rows then V rows, KS halves apart, as 8-half units.
    const units = splits * 2 * blockK * (dh / 8);
    const stage = `
          workgroupBarrier();
          for (var u = localIndex; u < ${units}u; u += ${32 * subgroups}u) {
            let blockOf = u / ${2 * blockK * (dh / 8)}u;
            let rem = u % ${2 * blockK * (dh / 8)}u;
            let isV = rem / ${blockK * (dh / 8)}u;
            let r = (rem / ${dh / 8}u) % BLOCK_K;
            let c8 = rem % ${dh / 8}u;
            let key = (it * SPLITS + blockOf) * BLOCK_K + r;
            let w = P4[(select(kBase, vBase, isV == 1u) + key * DH) / 8u + c8];
            let dst = blockOf * ${2 * blockK * ks}u + isV * ${blockK * ks}u + r * KS + c8 * 8u;
            ${[0, 1, 2, 3].map((i) => `{ let h = bitcast<vec2<f16>>(w.${'xyzw'[i]}); kvTile[dst + ${2 * i}u] = h.x; kvTile[dst + ${2 * i + 1}u] = h.y; }`).join('\n            ')}
          }
          workgroupBarrier();`;
    return `
      ${TENSOR_CORE_DIRECTIVES}
      // flashdepth:bind P array<f16>
      const DH : u32 = ${dh}u;
      const KS : u32 = ${ks}u;
      var<workgroup> kvTile : array<f16, ${splits * 2 * blockK * ks}>;
      const BLOCK_K : u32 = ${blockK}u;
      const SPLITS : u32 = ${splits}u;
      const TILES : u32 = ${tiles}u;
      const SS : u32 = ${ss}u;
      const OS : u32 = ${os}u;
      const PS : u32 = ${ps}u;
      const MASKED : f32 = -3.0e38;
      var<workgroup> sScratch : array<f32, ${subgroups * 16 * ss}>;
      var<workgroup> oScratch : array<f32, ${subgroups * 16 * os}>;
      var<workgroup> pTile : array<f16, ${subgroups * 16 * ps}>;
      var<workgroup> rowSum : array<f32, ${subgroups * 16}>;
      var<workgroup> rowMax : array<f32, ${subgroups * 16}>;

      fn main() {
        let sg = localIndex / 32u;
        let lane = localIndex % 32u;
        let tile = sg / SPLITS;
        let split = sg % SPLITS;
        let head = workgroupId.y;
        let batch = workgroupId.z;
        let plane = batch * uniforms.heads + head;
        let tileRow0 = workgroupId.x * TILES * 16u;
        let qBase = (plane * uniforms.lqPad + tileRow0 + tile * 16u) * DH;
        let kBase = uniforms.kSegment + plane * uniforms.lkPad * DH;
        let vBase = uniforms.vSegment + plane * uniforms.lkPad * DH;
        let sBase = sg * 16u * SS;
        let oBase = sg * 16u * OS;
        let pBase = sg * 16u * PS;
        // This invocation's row of the subgroup's 16 and its half of the columns (col = half + 2·i: conflict-light).
        let r = lane / 2u;
        let half = lane % 2u;
        ${qLoads.join('\n        ')}
        ${oDecl.join('\n        ')}
        var m = MASKED;
        var l = 0.0;
        let lk = uniforms.lk;
        // Every subgroup runs the same number of blocks (barriers stay uniform); a split's blocks past the end are all
        // masked and change nothing (the K/V planes are padded to BLOCK_K·SPLITS rows, so their loads stay inside).
        let blocks = (lk + BLOCK_K * SPLITS - 1u) / (BLOCK_K * SPLITS);
        for (var it = 0u; it < blocks; it++) {
          let k0 = (it * SPLITS + split) * BLOCK_K;
          let kOff = split * ${2 * blockK * ks}u;
          ${stage}
          ${scores}
          workgroupBarrier();
          var blockMax = MASKED;
          for (var i = 0u; i < BLOCK_K / 2u; i++) {
            let col = half + 2u * i;
            blockMax = max(blockMax, select(MASKED, sScratch[sBase + r * SS + col], k0 + col < lk));
          }
          blockMax = max(blockMax, subgroupShuffleXor(blockMax, 1u));
          let raise = blockMax > m + 8.0;
          let rescale = subgroupAny(raise);
          let mNew = select(m, blockMax, raise);
          let alpha = exp2(m - mNew);
          m = mNew;
          var sum = 0.0;
          for (var i = 0u; i < BLOCK_K / 2u; i++) {
            let col = half + 2u * i;
            let p = select(0.0, exp2(sScratch[sBase + r * SS + col] - m), k0 + col < lk);
            sum = sum + p;
            pTile[pBase + r * PS + col] = f16(p);
          }
          l = l * alpha + sum;
          if (rescale) {
            ${saveO}
          }
          workgroupBarrier();
          if (rescale) {
            for (var i = 0u; i < DH / 2u; i++) {
              let idx = oBase + r * OS + half + 2u * i;
              oScratch[idx] = oScratch[idx] * alpha;
            }
          }
          workgroupBarrier();
          if (rescale) {
            ${loadO}
          }
          ${pv.join('\n          ')}
        }
        ${saveO}
        l = l + subgroupShuffleXor(l, 1u);
        if (half == 0u) {
          rowSum[sg * 16u + r] = l;
          rowMax[sg * 16u + r] = m;
        }
        workgroupBarrier();
        // Merge the splits of each tile: O = Σ_s 2^(m_s − M)·O_s / Σ_s 2^(m_s − M)·l_s, M = max_s m_s.
        let outStride = uniforms.heads * DH;
        for (var idx = localIndex; idx < TILES * 16u * DH; idx += ${32 * subgroups}u) {
          let t = idx / (16u * DH);
          let rr = (idx / DH) % 16u;
          let c = idx % DH;
          let row = tileRow0 + t * 16u + rr;
          if (row < uniforms.lq) {
            var mMax = MASKED;
            for (var sp = 0u; sp < SPLITS; sp++) { mMax = max(mMax, rowMax[(t * SPLITS + sp) * 16u + rr]); }
            var num = 0.0;
            var den = 0.0;
            for (var sp = 0u; sp < SPLITS; sp++) {
              let part = t * SPLITS + sp;
              let w = exp2(rowMax[part * 16u + rr] - mMax);
              num = num + w * oScratch[part * 16u * OS + rr * OS + c];
              den = den + w * rowSum[part * 16u + rr];
            }
            result[(batch * uniforms.lq + row) * outStride + head * DH + c] = num / den;
          }
        }
      }
    `;
  }
}
