/**
 * LayerNorm over the last axis in one dispatch (the plain-ops form is ~8: moments' mean, sub, square, mean, then
 * add eps, rsqrt, sub, mul, mul, add). One workgroup of 64 threads per row; each thread keeps its ⌈C/64⌉ values in
 * registers, so the row is read once. Two-pass statistics as tf.moments: mean, then mean((x − mean)²).
 * C is compiled in (a model constant: a handful of pipelines); rows come from the shape. Rows fold into y past 65 535.
 */
import { foldedDispatch, LINEAR_WORKGROUP, type WebGPUProgram } from './program.js';

const WORKGROUP = 64;

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
      var<workgroup> partial : array<f32, ${WORKGROUP}>;

      fn workgroupSum(value : f32) -> f32 {
        let tid = i32(localIndex);
        partial[tid] = value;
        workgroupBarrier();
        for (var stride = WG / 2; stride > 0; stride = stride / 2) {
          if (tid < stride) { partial[tid] = partial[tid] + partial[tid + stride]; }
          workgroupBarrier();
        }
        let total = partial[0];
        workgroupBarrier();
        return total;
      }

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
