/**
 * LayerNorm over the last axis in one dispatch (the plain-ops form is ~8: moments' mean, sub, square, mean, then
 * add eps, rsqrt, sub, mul, mul, add). One workgroup of 64 threads per row; each thread keeps its ⌈C/64⌉ values in
 * registers, so the row is read once. Two-pass statistics as tf.moments: mean, then mean((x − mean)²).
 * C is compiled in (a model constant: a handful of pipelines); rows come from the shape. Rows fold into y past 65 535.
 */
import { foldedDispatch, LINEAR_WORKGROUP, type WebGPUProgram } from './program.js';
import type { PackedShape } from './tc-matmul_webgpu.js';

const WORKGROUP = 64;

/** WGSL: the sum of one value per invocation over the workgroup (tree in workgroup memory; every invocation calls it). */
const WORKGROUP_SUM_WGSL = `
      var<workgroup> partial : array<f32, ${WORKGROUP}>;

      fn workgroupSum(value : f32) -> f32 {
        let tid = i32(localIndex);
        partial[tid] = value;
        workgroupBarrier();
        for (var stride = ${WORKGROUP} / 2; stride > 0; stride = stride / 2) {
          if (tid < stride) { partial[tid] = partial[tid] + partial[tid + stride]; }
          workgroupBarrier();
        }
        let total = partial[0];
        workgroupBarrier();
        return total;
      }`;

export class LayerNormProgram implements WebGPUProgram {
  variableNames = ['X', 'Gamma', 'Beta'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0], y: [1] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  uniforms = 'eps : f32,';
  private readonly cols: number;

  constructor(rows: number, cols: number) {
    this.cols = cols;
    this.outputShape = [rows, cols];
    this.dispatch = foldedDispatch(rows);
    this.shaderKey = `layerNorm_${cols}`;
  }

  getUserCode(): string {
    const perThread = Math.ceil(this.cols / WORKGROUP);
    return `
      const WG : i32 = ${WORKGROUP};
      const C : i32 = ${this.cols};
      const PER : i32 = ${perThread};
      ${WORKGROUP_SUM_WGSL}

      fn main() {
        let rows = uniforms.xShape.x;
        let row = ${LINEAR_WORKGROUP};
        // Workgroups past the last row (y-folding) compute row rows-1 again but write nothing: barriers stay uniform.
        let base = min(row, rows - 1) * C;
        let tid = i32(localIndex);
        var v : array<f32, ${perThread}>;
        var sum = 0.0;
        for (var i = 0; i < PER; i++) {
          let c = tid + i * WG;
          v[i] = select(0.0, X[base + min(c, C - 1)], c < C);
          sum = sum + v[i];
        }
        let mean = workgroupSum(sum) / f32(C);
        var squares = 0.0;
        for (var i = 0; i < PER; i++) {
          let c = tid + i * WG;
          let centered = select(0.0, v[i] - mean, c < C);
          squares = squares + centered * centered;
        }
        let invStd = inverseSqrt(workgroupSum(squares) / f32(C) + uniforms.eps);
        if (row < rows) {
          for (var i = 0; i < PER; i++) {
            let c = tid + i * WG;
            if (c < C) { result[base + c] = (v[i] - mean) * invStd * Gamma[c] + Beta[c]; }
          }
        }
      }
    `;
  }
}

/**
 * WGSL of a LayerNorm whose rows are written as the packed f16 A operand of the tensor-core matmul (an int32 tensor
 * of half pairs, [rowsPad, colsPad] zero-padded, as PackF16Program writes it) into `target`: one workgroup of 64 per
 * padded row; each invocation keeps the column pairs it writes in registers. The program supplies
 * `fn loadPair(r : i32, c : i32, live : bool) -> vec2<f32>`, columns c and c + 1 of row r (live: a real element of a
 * real row, not the padding or a y-folded repeat), and the WGSL expressions of the valid and the padded row counts.
 * Rows past the valid ones are written as zeros. C even (the matmul takes multiples of 4).
 */
export function layerNormPackF16Code(shape: PackedShape, target: string, rows: string, rowsPad: string): string {
  const pairs = shape.colsPad / 2;
  const perThread = Math.ceil(pairs / WORKGROUP);
  return `
      const WG : i32 = ${WORKGROUP};
      const C : i32 = ${shape.cols};
      const PAIRS : i32 = ${pairs};
      const PER : i32 = ${perThread};
      ${WORKGROUP_SUM_WGSL}

      fn main() {
        let rows = ${rows};
        let rowsPad = ${rowsPad};
        let row = ${LINEAR_WORKGROUP};
        // Workgroups past the padded rows (y-folding) normalise a valid row again but write nothing; rows past the
        // valid ones are written as zeros. Barriers stay uniform.
        let r = min(row, rows - 1);
        let tid = i32(localIndex);
        var v : array<vec2<f32>, ${perThread}>;
        var sum = 0.0;
        for (var i = 0; i < PER; i++) {
          let c = 2 * (tid + i * WG);
          v[i] = select(vec2<f32>(0.0), loadPair(r, min(c, C - 2), c < C && row < rows), c < C);
          sum = sum + v[i].x + v[i].y;
        }
        let mean = workgroupSum(sum) / f32(C);
        var squares = 0.0;
        for (var i = 0; i < PER; i++) {
          let c = 2 * (tid + i * WG);
          let centered = select(vec2<f32>(0.0), v[i] - mean, c < C);
          squares = squares + dot(centered, centered);
        }
        let invStd = inverseSqrt(workgroupSum(squares) / f32(C) + uniforms.eps);
        if (row < rowsPad) {
          for (var i = 0; i < PER; i++) {
            let q = tid + i * WG;
            let c = 2 * q;
            if (q < PAIRS) {
              var y = vec2<f32>(0.0);
              if (c < C && row < rows) {
                y = (v[i] - mean) * invStd * vec2<f32>(LnGamma[c], LnGamma[c + 1]) + vec2<f32>(LnBeta[c], LnBeta[c + 1]);
              }
              ${target}[row * PAIRS + q] = bitcast<i32>(pack2x16float(y));
            }
          }
        }
      }
    `;
}

/** LayerNormPackF16Program's uniforms: eps, and the rows of X. */
export function layerNormPackUniforms(eps: number, rows: number): [{ type: 'float32'; data: number[] }, { type: 'int32'; data: number[] }] {
  return [{ type: 'float32', data: [eps] }, { type: 'int32', data: [rows] }];
}

/**
 * LayerNorm of X [rows, C] written straight into the packed f16 operand of the tensor-core matmul: the LayerNorm
 * before a linear layer and the packing of its input in one dispatch, without the f32 normalised copy.
 */
export class LayerNormPackF16Program implements WebGPUProgram {
  variableNames = ['X', 'LnGamma', 'LnBeta'];
  outputShape: number[];
  shaderKey: string;
  // Two axes, so that tfjs calls main() without a flat index (the rows are the workgroups).
  dispatchLayout = { x: [0], y: [1] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  uniforms = 'eps : f32, rows : i32,';
  private readonly shape: PackedShape;

  constructor(shape: PackedShape) {
    this.shape = shape;
    this.outputShape = [shape.rowsPad, shape.colsPad / 2];
    this.dispatch = foldedDispatch(shape.rowsPad);
    this.shaderKey = `layerNormPackF16_${shape.cols}_${shape.colsPad}`;
  }

  getUserCode(): string {
    // The padded row count comes from the output shape: tfjs keys pipelines on shaderKey and ranks, not sizes.
    return `
      fn loadPair(r : i32, c : i32, live : bool) -> vec2<f32> {
        return vec2<f32>(X[r * C + c], X[r * C + c + 1]);
      }
      ${layerNormPackF16Code(this.shape, 'result', 'uniforms.rows', 'uniforms.outShape.x')}`;
  }
}
