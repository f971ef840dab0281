/**
 * The precision switch and the plumbing of the tensor-core path that can be checked without a GPU: the WGSL
 * directive hoisting our kernels rely on, the fp32 fallback of `--precision mixed` on backends without tensor cores,
 * and the linear-layer epilogues (GELU, LayerScale residual) on the ops path.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import { hoistDirectives } from '../../src/backend/webgpu.js';
import { applyPrecision, precisionMode, setPrecision, useTensorCores } from '../../src/kernels/index.js';
import { addScaled, gelu, linear } from '../../src/models/ops.js';
import { useTestBackend } from '../helpers/backend.js';
import { ConfigError } from '../../src/errors.js';

describe('kernel mode and precision', () => {
  before(useTestBackend);
  afterEach(() => setPrecision('fp32'));

  it('hoists enable and diagnostic directives above the tfjs header, once each', () => {
    const code = 'struct Uniforms { x : f32 };\nvar<private> a : u32;\n  enable f16;\nenable subgroups;\n  enable f16;\ndiagnostic(off, derivative_uniformity);\nfn main() {}\n';
    const out = hoistDirectives(code);
    const lines = out.split('\n');
    expect(lines.slice(0, 3)).to.deep.equal(['enable f16;', 'enable subgroups;', 'diagnostic(off, derivative_uniformity);']);
    expect(out.match(/enable f16;/g)).to.have.length(1);
    expect(out).to.contain('struct Uniforms { x : f32 };\nvar<private> a : u32;');
    expect(out).to.contain('fn main() {}');
    expect(hoistDirectives('fn main() {}')).to.equal('fn main() {}');
  });

  it('--precision mixed falls back to fp32 with a reason where the backend has no tensor cores', () => {
    const r = applyPrecision('mixed');
    expect(r.precision).to.equal('fp32');
    expect(r.note).to.match(/--precision mixed needs webgpu with f16 subgroup matrices \(tensor cores\); the wasm backend has none, running fp32/);
    expect(precisionMode()).to.equal('mixed'); // the request is kept; the kernels check availability per call
    expect(useTensorCores()).to.equal(false);
    expect(applyPrecision('fp32')).to.deep.equal({ precision: 'fp32' });
  });

  it('rejects an unknown precision naming the flag and the choices', () => {
    expect(() => setPrecision('bf16' as 'fp32')).to.throw(ConfigError, /^Expected one of fp32, mixed for --precision but received "bf16"$/);
  });

  it('linear epilogues on the ops path equal the separate ops', async () => {
    const x = tf.randomNormal([2, 5, 8], 0, 1, 'float32', 1);
    const w = tf.randomNormal([8, 12], 0, 0.5, 'float32', 2);
    const b = tf.randomNormal([12], 0, 1, 'float32', 3);
    const r = tf.randomNormal([2, 5, 12], 0, 1, 'float32', 4);
    const g = tf.randomNormal([12], 0, 1, 'float32', 5);
    const before = tf.memory().numTensors;
    const pairs = tf.tidy(() => [
      [linear(x, w, b, { activation: 'gelu' }), gelu(linear(x, w, b))],
      [linear(x, w, b, { residual: { x: r, gamma: g } }), addScaled(r, linear(x, w, b), g)],
    ]);
    for (const [fused, separate] of pairs) {
      expect(fused!.shape).to.deep.equal([2, 5, 12]);
      const [a, e] = [await fused!.data(), await separate!.data()];
      expect(Array.from(a)).to.deep.equal(Array.from(e));
      expect(Math.max(...Array.from(a).map(Math.abs))).to.be.greaterThan(0.1);
    }
    tf.dispose(pairs.flat());
    expect(tf.memory().numTensors).to.equal(before);
    tf.dispose([x, w, b, r, g]);
  });
});
