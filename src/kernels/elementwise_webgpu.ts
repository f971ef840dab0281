/**
 * Elementwise programs that replace chains of stock ops with one dispatch each, on vec4s (callers check that the
 * last axis is a multiple of 4):
 * - GeluProgram: exact GELU 0.5·x·(1 + erf(x/√2)) (stock: mul, erf, add, mul, mul = 5 dispatches). erf is the
 *   Abramowitz–Stegun 7.1.26 form with tfjs' own constants, so it matches tf.erf.
 * - ScaleAddProgram: x + y·γ with γ over the last axis, DINOv2's `x + ls(f(x))` (stock: mul, add = 2 dispatches).
 */
import { foldedDispatch, type WebGPUProgram } from './program.js';

const WORKGROUP = 64;

// tfjs-core backend_util.ERF_* (Abramowitz & Stegun 7.1.26).
const ERF = { p: 0.3275911, a1: 0.254829592, a2: -0.284496736, a3: 1.421413741, a4: -1.453152027, a5: 1.061405429 };

const f = (n: number) => n.toFixed(9);

/** WGSL `erfVec4(a)`: the erf of GeluProgram, shared with the GELU epilogue of the tensor-core matmul. */
export const ERF_VEC4_WGSL = `
      fn erfVec4(a : vec4<f32>) -> vec4<f32> {
        let absA = abs(a);
        let t = 1.0 / (1.0 + ${f(ERF.p)} * absA);
        let poly = ((((${f(ERF.a5)} * t + ${f(ERF.a4)}) * t + ${f(ERF.a3)}) * t + ${f(ERF.a2)}) * t + ${f(ERF.a1)}) * t;
        return sign(a) * (1.0 - poly * exp(-absA * absA));
      }`;

abstract class FlatVec4Program implements WebGPUProgram {
  abstract variableNames: string[];
  abstract shaderKey: string;
  outputComponent = 4;
  outputShape: number[];
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  size = true;

  constructor(shape: number[]) {
    this.outputShape = shape;
    const vec4s = shape.reduce((a, b) => a * b, 1) / 4;
    this.dispatch = foldedDispatch(Math.ceil(vec4s / WORKGROUP));
  }

  abstract getUserCode(): string;
}

export class GeluProgram extends FlatVec4Program {
  variableNames = ['X'];
  shaderKey = 'flashdepthGelu';

  getUserCode(): string {
    return `
      ${ERF_VEC4_WGSL}
      fn main(index : i32) {
        if (index < uniforms.size) {
          let x = X[index];
          result[index] = 0.5 * x * (1.0 + erfVec4(x * ${Math.SQRT1_2.toFixed(9)}));
        }
      }
    `;
  }
}

export class ScaleAddProgram extends FlatVec4Program {
  variableNames = ['X', 'Y', 'Gamma'];
  shaderKey = 'flashdepthScaleAdd';

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let cols4 = uniforms.gammaShape / 4;
          result[index] = X[index] + Y[index] * Gamma[index % cols4];
        }
      }
    `;
  }
}
