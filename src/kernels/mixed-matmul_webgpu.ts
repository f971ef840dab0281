/**
 * C = A·B (+ bias) (then GELU, or residual + γ·C) on tensor cores: `chromium_experimental_subgroup_matrix` with f16
 * operands and f32 accumulation (the `--precision mixed` path).
 *
 * A [M, K] and B [K, N] are f32 in memory. A workgroup of `subgroups.rows × subgroups.cols` subgroups (32
 * invocations each) owns a block of C; per 32-deep k-step all its invocations stage the block's slice of A and of B
 * into workgroup memory as f16 (zero beyond the edges, so no shape needs padding; rows padded by 8 halves against
 * bank conflicts), and each subgroup multiplies its part as `tiles.rows × tiles.cols` tiles of 16×16×16. The
 * accumulators leave through a per-subgroup 16×16 f32 scratch so that the epilogue (bias, activation, LayerScale +
 * residual) runs on plain f32 values with bounds checks.
 *
 * Subgroup-matrix calls need subgroup-uniform offsets; the subgroup's index is localIndex / 32, uniform on devices
 * whose subgroups are 32 consecutive invocations (NVIDIA; `webgpuCapabilities().subgroupMatrix` is only set where the
 * subgroup size is fixed at 32). WGSL's analysis cannot prove that, hence `diagnostic(off, …)`.
 */
import { ERF_VEC4_WGSL } from './elementwise_webgpu.js';
import type { WebGPUProgram } from './program.js';

export const MM_BK = 32;
const PAD = 8;

export type MatMulEpilogue = 'none' | 'gelu' | 'scaleAdd';

/** A grid shape: rows × columns (of subgroups in a workgroup, or of 16×16 tiles in a subgroup). */
export interface Grid2 {
  rows: number;
  cols: number;
}

export interface MatMulTiles {
  subgroups: Grid2;
  tiles: Grid2;
}

/**
 * 128×128 per workgroup of 8 subgroups (4 × 2), each 32×64: the fastest or within 10% of it at every ViT shape
 * measured on the H100 (bench/README.md).
 */
export const DEFAULT_MATMUL_TILES: MatMulTiles = { subgroups: { rows: 4, cols: 2 }, tiles: { rows: 2, cols: 4 } };

/** WGSL header shared by the tensor-core programs (hoisted above tfjs' header by src/backend/webgpu.ts). */
export const TENSOR_CORE_DIRECTIVES = `
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
`;

/**
 * WGSL: all invocations copy a rows×cols block of the f32 matrix `source` (row-major, `rowVec4s` vec4s per row,
 * `rowLimit`×`colLimit` valid) starting at (row0, col0) into the f16 workgroup array `tile` (row stride `stride`),
 * zero beyond the edges.
 */
function stageF16(source: string, tile: string, rows: string, cols: string, stride: string, row0: string, col0: string, rowLimit: string, colLimit: string, rowVec4s: string): string {
  return `for (var i = t; i < ${rows} * ${cols} / 4u; i += THREADS) {
            let r = i / (${cols} / 4u);
            let c = (i % (${cols} / 4u)) * 4u;
            let gr = ${row0} + r;
            let gc = ${col0} + c;
            var v = vec4<f32>(0.0);
            if (gr < ${rowLimit} && gc < ${colLimit}) { v = ${source}[gr * ${rowVec4s} + gc / 4u]; }
            let o = r * ${stride} + c;
            ${tile}[o] = f16(v.x); ${tile}[o + 1u] = f16(v.y); ${tile}[o + 2u] = f16(v.z); ${tile}[o + 3u] = f16(v.w);
          }`;
}

export class MixedMatMulProgram implements WebGPUProgram {
  variableNames: string[];
  variableComponents: number[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [1], y: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  private readonly hasBias: boolean;
  private readonly epilogue: MatMulEpilogue;
  private readonly layout: MatMulTiles;

  constructor(m: number, n: number, hasBias: boolean, epilogue: MatMulEpilogue, layout: MatMulTiles = DEFAULT_MATMUL_TILES) {
    this.hasBias = hasBias;
    this.epilogue = epilogue;
    this.layout = layout;
    this.variableNames = ['A', 'B', ...(hasBias ? ['Bias'] : []), ...(epilogue === 'scaleAdd' ? ['Residual', 'Gamma'] : [])];
    this.variableComponents = this.variableNames.map((name) => (name === 'A' || name === 'B' ? 4 : 1));
    this.outputShape = [m, n];
    const { subgroups: sg, tiles } = layout;
    this.workgroupSize = [32 * sg.rows * sg.cols, 1, 1];
    this.dispatch = [Math.ceil(n / (16 * tiles.cols * sg.cols)), Math.ceil(m / (16 * tiles.rows * sg.rows)), 1];
    this.shaderKey = `mixedMatMul_${hasBias}_${epilogue}_${sg.rows}x${sg.cols}_${tiles.rows}x${tiles.cols}`;
  }

  getUserCode(): string {
    const { subgroups: sg, tiles } = this.layout;
    const threads = 32 * sg.rows * sg.cols;
    const sgRows = 16 * tiles.rows;
    const sgCols = 16 * tiles.cols;
    const bm = sgRows * sg.rows;
    const bn = sgCols * sg.cols;
    const aStride = MM_BK + PAD;
    const bStride = bn + PAD;
    const acc = (i: number, j: number) => `acc${i}_${j}`;
    const declare: string[] = [];
    const multiply: string[] = [];
    const store: string[] = [];
    for (let i = 0; i < tiles.rows; i++) for (let j = 0; j < tiles.cols; j++) {
      declare.push(`var ${acc(i, j)} : subgroup_matrix_result<f32, 16, 16>;`);
      store.push(`subgroupMatrixStore(&cTile, sg * 256u, ${acc(i, j)}, false, 16u);
        workgroupBarrier();
        writeTile(sg, lane, row0 + sgRow + ${i * 16}u, col0 + sgCol + ${j * 16}u, m, n);
        workgroupBarrier();`);
    }
    for (let i = 0; i < tiles.rows; i++) {
      multiply.push(`let a${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&aTile, (sgRow + ${i * 16}u) * AS + kk, false, AS);`);
    }
    for (let j = 0; j < tiles.cols; j++) {
      multiply.push(`let b${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&bTile, kk * BS + sgCol + ${j * 16}u, false, BS);`);
      for (let i = 0; i < tiles.rows; i++) multiply.push(`${acc(i, j)} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, ${acc(i, j)});`);
    }
    const bias = this.hasBias ? 'v = v + Bias[col];' : '';
    const epilogue = this.epilogue === 'gelu'
      ? `v = 0.5 * v * (1.0 + erfVec4(vec4<f32>(v * ${Math.SQRT1_2.toFixed(9)})).x);`
      : this.epilogue === 'scaleAdd' ? 'v = Residual[row * n + col] + Gamma[col] * v;' : '';
    return `
      ${TENSOR_CORE_DIRECTIVES}
      ${this.epilogue === 'gelu' ? ERF_VEC4_WGSL : ''}
      const BM : u32 = ${bm}u;
      const BN : u32 = ${bn}u;
      const BK : u32 = ${MM_BK}u;
      const AS : u32 = ${aStride}u;
      const BS : u32 = ${bStride}u;
      const THREADS : u32 = ${threads}u;
      var<workgroup> aTile : array<f16, ${bm * aStride}>;
      var<workgroup> bTile : array<f16, ${MM_BK * bStride}>;
      var<workgroup> cTile : array<f32, ${(threads / 32) * 256}>;

      fn writeTile(sg : u32, lane : u32, r0 : u32, c0 : u32, m : u32, n : u32) {
        for (var e = 0u; e < 8u; e++) {
          let idx = lane + e * 32u;
          let row = r0 + idx / 16u;
          let col = c0 + idx % 16u;
          if (row < m && col < n) {
            var v = cTile[sg * 256u + idx];
            ${bias}
            ${epilogue}
            result[row * n + col] = v;
          }
        }
      }

      fn main() {
        let m = u32(uniforms.aShape.x);
        let k = u32(uniforms.aShape.y);
        let n = u32(uniforms.bShape.y);
        let t = localIndex;
        let sg = t / 32u;
        let lane = t % 32u;
        let sgRow = (sg / ${sg.cols}u) * ${sgRows}u;
        let sgCol = (sg % ${sg.cols}u) * ${sgCols}u;
        let row0 = workgroupId.y * BM;
        let col0 = workgroupId.x * BN;
        let k4 = k / 4u;
        let n4 = n / 4u;
        ${declare.join('\n        ')}
        for (var k0 = 0u; k0 < k; k0 += BK) {
          ${stageF16('A', 'aTile', 'BM', 'BK', 'AS', 'row0', 'k0', 'm', 'k', 'k4')}
          ${stageF16('B', 'bTile', 'BK', 'BN', 'BS', 'k0', 'col0', 'k', 'n', 'n4')}
          workgroupBarrier();
          for (var kk = 0u; kk < BK; kk += 16u) {
            ${multiply.join('\n            ')}
          }
          workgroupBarrier();
        }
        ${store.join('\n        ')}
      }
    `;
  }
}
