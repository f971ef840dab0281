import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { loadConfig } from '../../src/config.js';
import { createFlashDepth } from '../../src/models/create.js';
import type { FlashDepth } from '../../src/models/flashdepth.js';
import { Mamba2 } from '../../src/models/mamba2.js';
import type { FlashModule } from '../../src/models/module.js';
import { randomizeWeights } from '../../src/models/random-init.js';
import { setBlockRecompute } from '../../src/train/recompute.js';
import { useTestBackend } from '../helpers/backend.js';
import { expectClose, REPO_ROOT } from '../helpers/fixtures.js';

function variableOf(module: FlashModule, key: string): tf.Variable {
  const p = [...module.namedParameters()].find((q) => q.key === key);
  if (!p) throw new Error(`no parameter ${key}`);
  return p.spec.variable.read() as tf.Variable;
}

/**
 * Directional derivative along a random direction d: backprop's Σ g·d against the central difference
 * (f(θ + εd) − f(θ − εd)) / 2ε. fp32, so ε is chosen to balance truncation (ε²) against rounding (1e-7·|f|/ε).
 */
function directionalCheck(f: () => tf.Scalar, v: tf.Variable, direction: number | 'largest', eps: number): { analytic: number; numeric: number } {
  const original = tf.clone(v);
  const { value, grads } = tf.variableGrads(f, [v]);
  let d: tf.Tensor;
  if (direction === 'largest') {
    // One element: the one with the largest gradient (fewest ReLU kinks crossed for a clear signal).
    const g = grads[v.name]!.dataSync();
    let idx = 0;
    for (let i = 1; i < g.length; i++) if (Math.abs(g[i]!) > Math.abs(g[idx]!)) idx = i;
    const oneHot = new Float32Array(v.size);
    oneHot[idx] = 1;
    d = tf.tensor(oneHot, v.shape);
  } else {
    d = tf.randomNormal(v.shape, 0, 1, 'float32', direction);
  }
  const analytic = tf.tidy(() => tf.sum(tf.mul(grads[v.name]!, d)).dataSync()[0]!);
  tf.dispose([value, ...Object.values(grads)]);
  const at = (sign: number) => {
    tf.tidy(() => v.assign(tf.add(original, tf.mul(d, sign * eps))));
    return tf.tidy(() => f().dataSync()[0]!);
  };
  const numeric = (at(1) - at(-1)) / (2 * eps);
  v.assign(original);
  tf.dispose([d, original]);
  return { analytic, numeric };
}

describe('train: gradients against finite differences; recomputation equals plain backprop', () => {
  before(() => useTestBackend());

  it('Mamba2 layer: every parameter, back-propagated through the state carried over two frames', () => {
    const m = new Mamba2({ dModel: 8, expand: 2, headdim: 4, dState: 6, chunkSize: 5, name: 'mamba_gradcheck' });
    randomizeWeights(m, 3);
    const u0 = tf.randomNormal([1, 5, 8], 0, 1, 'float32', 11) as tf.Tensor3D;
    const u1 = tf.randomNormal([1, 5, 8], 0, 1, 'float32', 12) as tf.Tensor3D;
    const r = tf.randomNormal([2, 1, 5, 8], 0, 1, 'float32', 13);
    const f = () => tf.tidy(() => {
      const a = m.forwardFrame(u0, null);
      const b = m.forwardFrame(u1, a.state);
      return tf.sum(tf.mul(tf.stack([a.y, b.y]), r)) as tf.Scalar;
    });
    const keys = [...m.namedParameters()].map((p) => p.key);
    expect(keys).to.include.members(['in_proj.weight', 'conv1d.weight', 'conv1d.bias', 'dt_bias', 'A_log', 'D', 'norm.weight', 'out_proj.weight']);
    keys.forEach((key, i) => {
      const { analytic, numeric } = directionalCheck(f, variableOf(m, key), 100 + i, 1e-3);
      expect(analytic, `${key}: backprop ${analytic} vs finite difference ${numeric}`).to.be.closeTo(numeric, 5e-3 * Math.max(1, Math.abs(numeric)));
    });
    m.disposeParameters();
    tf.dispose([u0, u1, r]);
  });

  describe('tiny FlashDepth (configs/tiny, 70×70, 2 frames)', () => {
    let model: FlashDepth;
    let frames: tf.Tensor5D;
    let r: tf.Tensor;
    before(() => {
      model = createFlashDepth(loadConfig(join(REPO_ROOT, 'configs', 'tiny')));
      randomizeWeights(model, 5);
      frames = tf.randomNormal([1, 2, 70, 70, 3], 0, 1, 'float32', 21) as tf.Tensor5D;
      r = tf.randomNormal([1, 2, 70, 70], 0, 1, 'float32', 22);
    });
    after(() => {
      model.dispose();
      tf.dispose([frames, r]);
    });
    // The DPT's ReLUs put kinks in f, and f is fp32: one-element differences with ε = 3e-3 agree to about 1% (a wrong
    // gradient is off by far more; wasm's im2col conv gradients also equal the cpu backend's native kernels).
    const f = () => tf.tidy(() => tf.sum(tf.mul(model.forwardClip(frames), r)) as tf.Scalar);

    for (const key of [
      'pretrained.blocks.1.attn.qkv.weight',
      'pretrained.pos_embed',
      'depth_head.resize_layers.0.weight',
      'depth_head.scratch.refinenet2.resConfUnit2.conv1.weight',
      'mamba.blocks.0.0.mamba.in_proj.weight',
      'mamba.blocks.0.0.mamba.A_log',
      'mamba.final_layer.1.weight',
    ]) {
      it(`d loss / d ${key}`, () => {
        const { analytic, numeric } = directionalCheck(f, variableOf(model, key), 'largest', 3e-3);
        expect(analytic, `backprop ${analytic} vs finite difference ${numeric}`).to.be.closeTo(numeric, 3e-2 * Math.max(1, Math.abs(numeric)));
      });
    }

    it('recomputed ViT blocks (tf.customGrad) give the same loss and gradients as plain backprop, without leaks', () => {
      const vars = model.trainableParameters();
      const run = () => tf.variableGrads(f, vars);
      const before = tf.memory().numTensors;
      const plain = run();
      setBlockRecompute(model.pretrained, true);
      let recomputed: ReturnType<typeof run>;
      try {
        recomputed = run();
      } finally {
        setBlockRecompute(model.pretrained, false);
      }
      expectClose(recomputed.value, plain.value, 1e-6, 'loss');
      const names = Object.keys(plain.grads);
      expect(Object.keys(recomputed.grads).sort()).to.deep.equal(names.sort());
      expect(names).to.include(variableOf(model, 'pretrained.blocks.1.attn.qkv.weight').name);
      expect(names).to.include(variableOf(model, 'pretrained.blocks.0.ls1.gamma').name);
      for (const n of names) expectClose(recomputed.grads[n]!, plain.grads[n]!, 1e-5, n);
      tf.dispose([plain.value, recomputed.value, ...Object.values(plain.grads), ...Object.values(recomputed.grads)]);
      expect(tf.memory().numTensors).to.equal(before);
    });
  });
});
