/**
 * GPU-host probe (not part of `npm test`): the two tensor-core steps of a flash-attention block, in isolation, against
 * tf.matMul, and the Dawn behaviour that broke our first tensor-core attention: a subgroup-matrix `var` declared without
 * initialiser inside a runtime loop is not zeroed again on later iterations (loop 'var' vs 'init').
 * S = Q·Kᵀ with Q [64, 64] and K [32, 64] staged as f16 (Kᵀ staged transposed, or K staged as is and read
 * column-major), 4 subgroups × 16 rows; and O = P·V with P [64, 32], V [32, 64], O accumulated from a zeroed f32
 * workgroup tile loaded as a result matrix. Prints max|error| per variant.
 * Usage: node dist/test/kernels/tc-probe.js
 */
import * as tf from '@tensorflow/tfjs-core';
import { releaseBackend, selectBackend } from '../../src/backend/index.js';
import { TENSOR_CORE_DIRECTIVES } from '../../src/kernels/tc-matmul_webgpu.js';
import type { WebGPUBackendLike, WebGPUProgram } from '../../src/kernels/program.js';

class QkProgram implements WebGPUProgram {
  variableNames = ['Q', 'K'];
  outputShape = [64, 32];
  shaderKey: string;
  dispatchLayout = { x: [1], y: [0] };
  dispatch: [number, number, number] = [1, 1, 1];
  workgroupSize: [number, number, number] = [128, 1, 1];
  /** loop: 'none' (tiles unrolled), 'var' (runtime loop over the two key tiles, `var s` declared in the body), 'init'
   * (the same loop, s initialised by subgroupMatrixMultiply). */
  constructor(private readonly colMajor: boolean, private readonly loop: 'none' | 'var' | 'init') {
    this.shaderKey = `tcProbeQk_${colMajor}_${loop}`;
  }
  getUserCode(): string {
    const right = (d: number, j: number) => this.colMajor
      ? `subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kt, ${j * 16 * 64 + d * 16}u, true, 64u)`
      : `subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kt, ${d * 16 * 32 + j * 16}u, false, 32u)`;
    const lines: string[] = [];
    for (let d = 0; d < 4; d++) lines.push(`let q${d} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&qt, sg * 16u * 64u + ${d * 16}u, false, 64u);`);
    if (this.loop === 'none') {
      for (let j = 0; j < 2; j++) {
        lines.push('{', 'var s : subgroup_matrix_result<f32, 16, 16>;');
        for (let d = 0; d < 4; d++) lines.push(`s = subgroupMatrixMultiplyAccumulate(q${d}, ${right(d, j)}, s);`);
        lines.push(`subgroupMatrixStore(&st, sg * 16u * 32u + ${j * 16}u, s, false, 32u);`, '}');
      }
    } else {
      // Kᵀ staged [d][key]: tile (d, j) at d·16·32 + j·16, j a runtime loop index.
      const r = (d: number) => `subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kt, ${d * 16 * 32}u + j * 16u, false, 32u)`;
      lines.push('for (var j = 0u; j < 2u; j++) {');
      lines.push(this.loop === 'var' ? 'var s : subgroup_matrix_result<f32, 16, 16>;' : `var s = subgroupMatrixMultiply<f32>(q0, ${r(0)});`);
      for (let d = this.loop === 'var' ? 0 : 1; d < 4; d++) lines.push(`s = subgroupMatrixMultiplyAccumulate(q${d}, ${r(d)}, s);`);
      lines.push('subgroupMatrixStore(&st, sg * 16u * 32u + j * 16u, s, false, 32u);', '}');
    }
    return `
      ${TENSOR_CORE_DIRECTIVES}
      var<workgroup> qt : array<f16, 4096>;
      var<workgroup> kt : array<f16, 2048>;
      var<workgroup> st : array<f32, 2048>;
      fn main() {
        // Reads a uniform so that the auto layout keeps tfjs' uniform binding.
        if (uniforms.outShape.x < 0) { return; }
        let t = localIndex;
        let sg = t / 32u;
        for (var i = t; i < 4096u; i += 128u) { qt[i] = f16(Q[i]); }
        for (var i = t; i < 2048u; i += 128u) {
          let key = i / 64u;
          let d = i % 64u;
          ${this.colMajor ? 'kt[key * 64u + d] = f16(K[i]);' : 'kt[d * 32u + key] = f16(K[i]);'}
        }
        workgroupBarrier();
        ${lines.join('\n        ')}
        workgroupBarrier();
        for (var i = t; i < 2048u; i += 128u) { result[i] = st[i]; }
      }`;
  }
}

class PvProgram implements WebGPUProgram {
  variableNames = ['P', 'V'];
  outputShape = [64, 64];
  shaderKey: string;
  dispatchLayout = { x: [1], y: [0] };
  dispatch: [number, number, number] = [1, 1, 1];
  workgroupSize: [number, number, number] = [128, 1, 1];
  constructor(private readonly loadResult: boolean) {
    this.shaderKey = `tcProbePv_${loadResult}`;
  }
  getUserCode(): string {
    const lines: string[] = [];
    for (let d = 0; d < 4; d++) {
      lines.push('{', this.loadResult
        ? `var o = subgroupMatrixLoad<subgroup_matrix_result<f32, 16, 16>>(&ot, sg * 16u * 64u + ${d * 16}u, false, 64u);`
        : 'var o : subgroup_matrix_result<f32, 16, 16>;');
      for (let j = 0; j < 2; j++) {
        lines.push(`o = subgroupMatrixMultiplyAccumulate(subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&pt, sg * 16u * 32u + ${j * 16}u, false, 32u), subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&vt, ${j * 16 * 64 + d * 16}u, false, 64u), o);`);
      }
      lines.push(`subgroupMatrixStore(&ot, sg * 16u * 64u + ${d * 16}u, o, false, 64u);`, '}');
    }
    return `
      ${TENSOR_CORE_DIRECTIVES}
      var<workgroup> pt : array<f16, 2048>;
      var<workgroup> vt : array<f16, 2048>;
      var<workgroup> ot : array<f32, 4096>;
      fn main() {
        // Reads a uniform so that the auto layout keeps tfjs' uniform binding.
        if (uniforms.outShape.x < 0) { return; }
        let t = localIndex;
        let sg = t / 32u;
        for (var i = t; i < 2048u; i += 128u) { pt[i] = f16(P[i]); vt[i] = f16(V[i]); }
        for (var i = t; i < 4096u; i += 128u) { ot[i] = 0.0; }
        workgroupBarrier();
        ${lines.join('\n        ')}
        workgroupBarrier();
        for (var i = t; i < 4096u; i += 128u) { result[i] = ot[i]; }
      }`;
  }
}

async function maxErr(out: tf.TensorInfo, ref: tf.Tensor): Promise<number> {
  const ours = tf.engine().makeTensorFromTensorInfo(out);
  const [a, b] = [await ours.data(), await ref.data()];
  ours.dispose();
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i]! - b[i]!));
  return e;
}

async function main(): Promise<void> {
  await selectBackend('webgpu');
  const backend = tf.backend() as unknown as WebGPUBackendLike;
  const q = tf.randomNormal([64, 64], 0, 1, 'float32', 1);
  const k = tf.randomNormal([32, 64], 0, 1, 'float32', 2);
  const p = tf.randomUniform([64, 32], 0, 1, 'float32', 3);
  const v = tf.randomNormal([32, 64], 0, 1, 'float32', 4);
  const s = tf.matMul(q, k, false, true);
  const o = tf.matMul(p, v);
  for (const [colMajor, loop] of [[false, 'none'], [true, 'none'], [false, 'var'], [false, 'init']] as const) {
    const out = backend.runWebGPUProgram(new QkProgram(colMajor, loop), [q, k], 'float32');
    console.log(JSON.stringify({ step: 'q·kᵀ', colMajor, loop, maxErr: await maxErr(out, s), maxRef: (await tf.max(tf.abs(s)).data())[0] }));
  }
  for (const loadResult of [false, true]) {
    const out = backend.runWebGPUProgram(new PvProgram(loadResult), [p, v], 'float32');
    console.log(JSON.stringify({ step: 'p·v', loadResult, maxErr: await maxErr(out, o), maxRef: (await tf.max(tf.abs(o)).data())[0] }));
  }
  releaseBackend();
}

await main();
