/**
 * LayerNorm over the last axis in one dispatch (the plain-ops form is ~8: moments' mean, sub, square, mean, then
 * add eps, rsqrt, sub, mul, mul, add). Workgroups of 64 invocations; each keeps its share of a row in registers, so
 * the row is read once. Two-pass statistics as tf.moments: mean, then mean((x − mean)²).
 * A row's sums run over the whole workgroup (a tree in workgroup memory: seven barriers per sum, one row per
 * workgroup) or, where the device has fixed-size subgroups and `lanes` is that size, over one subgroup (subgroupAdd,
 * no barriers: 64 / lanes rows per workgroup).
 * C is compiled in (a model constant: a handful of pipelines); rows come from the shape. Rows fold into y past 65 535.
 */
import { foldedDispatch, LINEAR_WORKGROUP, type WebGPUProgram } from './program.js';
import type { PackedShape } from './tc-matmul_webgpu.js';

const WORKGROUP = 64;

/**
 * Invocations that share one row: 0 (the whole workgroup) or a fixed subgroup size that divides the workgroup. Any
 * other subgroup size falls back to the workgroup (0).
 */
export function layerNormLanes(subgroupSize: number): number {
  return subgroupSize > 0 && WORKGROUP % subgroupSize === 0 ? subgroupSize : 0;
}

/** The invocations that sum one row: `lanes` (layerNormLanes), or the whole workgroup where it is 0. */
function rowInvocations(lanes: number): number {
  return lanes > 0 ? lanes : WORKGROUP;
}

/** The workgroups for `rows` rows with `lanes` invocations per row. */
export function layerNormDispatch(rows: number, lanes: number): [number, number, number] {
  return foldedDispatch(Math.ceil(rows / (WORKGROUP / rowInvocations(lanes))));
}

/** The shader-key suffix of a row reduction: '' for the workgroup tree (the keys of earlier sessions), else `_sg<lanes>`. */
export function layerNormLanesKey(lanes: number): string {
  return lanes > 0 ? `_sg${lanes}` : '';
}

/**
 * WGSL of a row's sums: `LANES` (invocations per row), `rowIndex()` (this invocation's row: past the last one in the
 * y-folded tail), `laneIndex()` (its place in the row) and `rowSum(value)` (the sum of one value per lane of the row;
 * every invocation calls it: workgroup barriers or subgroupAdd stay in uniform control flow).
 */
function rowReductionCode(lanes: number): string {
  const declareLanes = `const LANES : i32 = ${rowInvocations(lanes)};`;
  if (lanes > 0) {
    return `
      enable subgroups;
      ${declareLanes}

      fn rowIndex() -> i32 { return ${LINEAR_WORKGROUP} * ${WORKGROUP / lanes} + i32(localIndex) / LANES; }
      fn laneIndex() -> i32 { return i32(localIndex) % LANES; }
      fn rowSum(value : f32) -> f32 { return subgroupAdd(value); }`;
  }
  return `
      ${declareLanes}
      var<workgroup> partial : array<f32, ${WORKGROUP}>;

      fn rowIndex() -> i32 { return ${LINEAR_WORKGROUP}; }
      fn laneIndex() -> i32 { return i32(localIndex); }
      fn rowSum(value : f32) -> f32 {
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
}

export class LayerNormProgram implements WebGPUProgram {
  variableNames = ['X', 'Gamma', 'Beta'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0], y: [1] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  uniforms = 'eps : f32,';
  private readonly cols: number;
  private readonly lanes: number;
  private readonly dropFirst: boolean;

  /**
   * `lanes`: invocations per row (layerNormLanes: 0, the workgroup, or the device's fixed subgroup size).
   * `tokens` (> 1): X's rows are sequences of that many tokens and the first of each is left out of the output (a
   * ViT's CLS token: the output is the patch tokens', [rows / tokens · (tokens − 1), cols]); the `tokens` uniform
   * follows `eps`.
   */
  constructor(rows: number, cols: number, lanes = 0, tokens = 0) {
    this.cols = cols;
    this.lanes = lanes;
    this.dropFirst = tokens > 1;
    const outRows = this.dropFirst ? (rows / tokens) * (tokens - 1) : rows;
    if (this.dropFirst) this.uniforms += ' tokens : i32,';
    this.outputShape = [outRows, cols];
    this.dispatch = layerNormDispatch(outRows, lanes);
    this.shaderKey = `layerNorm_${cols}${layerNormLanesKey(lanes)}${this.dropFirst ? '_dropFirst' : ''}`;
  }

  getUserCode(): string {
    const perThread = Math.ceil(this.cols / rowInvocations(this.lanes));
    return `
      const C : i32 = ${this.cols};
      const PER : i32 = ${perThread};
      ${rowReductionCode(this.lanes)}

      fn main() {
        let rows = uniforms.outShape.x;
        let row = rowIndex();
        // Rows past the last one (y-folding, a workgroup's spare rows) compute row rows-1 again but write nothing:
        // barriers stay uniform.
        let outRow = min(row, rows - 1);
        ${this.dropFirst ? 'let base = (outRow + outRow / (uniforms.tokens - 1) + 1) * C; // output row r: token r % (tokens − 1) + 1 of sequence r / (tokens − 1)' : 'let base = outRow * C;'}
        let tid = laneIndex();
        var v : array<f32, ${perThread}>;
        var sum = 0.0;
        for (var i = 0; i < PER; i++) {
          let c = tid + i * LANES;
          v[i] = select(0.0, X[base + min(c, C - 1)], c < C);
          sum = sum + v[i];
        }
        let mean = rowSum(sum) / f32(C);
        var squares = 0.0;
        for (var i = 0; i < PER; i++) {
          let c = tid + i * LANES;
          let centered = select(0.0, v[i] - mean, c < C);
          squares = squares + centered * centered;
        }
        let invStd = inverseSqrt(rowSum(squares) / f32(C) + uniforms.eps);
        if (row < rows) {
          for (var i = 0; i < PER; i++) {
            let c = tid + i * LANES;
            if (c < C) { result[outRow * C + c] = (v[i] - mean) * invStd * Gamma[c] + Beta[c]; }
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
export function layerNormPackF16Code(shape: PackedShape, target: string, rows: string, rowsPad: string, lanes: number): string {
  const pairs = shape.colsPad / 2;
  const perThread = Math.ceil(pairs / rowInvocations(lanes));
  return `
      const C : i32 = ${shape.cols};
      const PAIRS : i32 = ${pairs};
      const PER : i32 = ${perThread};
      ${rowReductionCode(lanes)}

      fn main() {
        let rows = ${rows};
        let rowsPad = ${rowsPad};
        let row = rowIndex();
        // Rows past the padded ones (y-folding, a workgroup's spare rows) normalise a valid row again but write
        // nothing; rows past the valid ones are written as zeros. Barriers stay uniform.
        let r = min(row, rows - 1);
        let tid = laneIndex();
        var v : array<vec2<f32>, ${perThread}>;
        var sum = 0.0;
        for (var i = 0; i < PER; i++) {
          let c = 2 * (tid + i * LANES);
          v[i] = select(vec2<f32>(0.0), loadPair(r, min(c, C - 2), c < C && row < rows), c < C);
          sum = sum + v[i].x + v[i].y;
        }
        let mean = rowSum(sum) / f32(C);
        var squares = 0.0;
        for (var i = 0; i < PER; i++) {
          let c = 2 * (tid + i * LANES);
          let centered = select(vec2<f32>(0.0), v[i] - mean, c < C);
          squares = squares + dot(centered, centered);
        }
        let invStd = inverseSqrt(rowSum(squares) / f32(C) + uniforms.eps);
        if (row < rowsPad) {
          for (var i = 0; i < PER; i++) {
            let q = tid + i * LANES;
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
  private readonly lanes: number;

  /** `lanes`: invocations per row (layerNormLanes). */
  constructor(shape: PackedShape, lanes = 0) {
    this.shape = shape;
    this.lanes = lanes;
    this.outputShape = [shape.rowsPad, shape.colsPad / 2];
    this.dispatch = layerNormDispatch(shape.rowsPad, lanes);
    this.shaderKey = `layerNormPackF16_${shape.cols}_${shape.colsPad}${layerNormLanesKey(lanes)}`;
  }

  getUserCode(): string {
    // The padded row count comes from the output shape: tfjs keys pipelines on shaderKey and ranks, not sizes.
    return `
      fn loadPair(r : i32, c : i32, live : bool) -> vec2<f32> {
        return vec2<f32>(X[r * C + c], X[r * C + c + 1]);
      }
      ${layerNormPackF16Code(this.shape, 'result', 'uniforms.rows', 'uniforms.outShape.x', this.lanes)}`;
  }
}
