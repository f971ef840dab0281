import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { loadConfig } from '../../src/config.js';
import { createFlashDepth } from '../../src/models/create.js';
import type { StageRunner } from '../../src/models/dpt.js';
import type { FlashDepth } from '../../src/models/flashdepth.js';
import { randomizeWeights } from '../../src/models/random-init.js';
import { recomputed, recomputedStage, setBlockRecompute, setDecoderRecompute, setModelRecompute } from '../../src/train/recompute.js';
import { useTestBackend } from '../helpers/backend.js';
import { expectClose, REPO_ROOT } from '../helpers/fixtures.js';

type Grads = { value: tf.Scalar; grads: tf.NamedTensorMap };

function expectSameGrads(ours: Grads, ref: Grads): void {
  expectClose(ours.value, ref.value, 1e-6, 'loss');
  const names = Object.keys(ref.grads);
  expect(Object.keys(ours.grads).sort()).to.deep.equal([...names].sort());
  for (const n of names) expectClose(ours.grads[n]!, ref.grads[n]!, 1e-5, n);
}

function disposeGrads(...gs: Grads[]): void {
  for (const g of gs) tf.dispose([g.value, ...Object.values(g.grads)]);
}

describe('train: activation recomputation (tf.customGrad) for ViT blocks and DPT stages', () => {
  before(() => useTestBackend());

  describe('recomputed(fn, inputs, params)', () => {
    it('matches plain backprop for inputs and parameters (an unused parameter gets a zero gradient), without leaks', () => {
      const x = tf.variable(tf.tensor2d([[1, -2], [3, 0.5]]), true, 'recompute_x');
      const w = tf.variable(tf.tensor2d([[0.5, -1], [2, 1]]), true, 'recompute_w');
      const unused = tf.variable(tf.tensor1d([7, 8]), true, 'recompute_unused');
      const before = tf.memory().numTensors;
      // f = Σ relu(x·w)²: x·w = [[-3.5, -3], [2.5, -2.5]] → relu = [[0, 0], [2.5, 0]] → 6.25.
      const body = (a: tf.Tensor2D) => tf.sum(tf.square(tf.relu(tf.matMul(a, w)))) as tf.Scalar;
      const plain = tf.variableGrads(() => body(x), [x, w, unused]);
      const ours = tf.variableGrads(() => recomputed(body, [x as tf.Tensor2D], [w, unused]), [x, w, unused]);
      expect(ours.value.dataSync()[0]).to.be.closeTo(6.25, 1e-6);
      // dL/d(xw) = 2·relu(xw) = [[0, 0], [5, 0]]; d/dx = that·wᵀ → row 1 = 5·w[:, 0]ᵀ = [2.5, 10].
      expect(Array.from(ours.grads['recompute_x']!.dataSync())).to.deep.equal([0, 0, 2.5, 10]);
      // d/dw = xᵀ·(2·relu): only column 0 gets 5·x[1, :]ᵀ = [15, 2.5].
      expect(Array.from(ours.grads['recompute_w']!.dataSync())).to.deep.equal([15, 0, 2.5, 0]);
      expect(Array.from(ours.grads['recompute_unused']!.dataSync())).to.deep.equal([0, 0]);
      expectClose(ours.value, plain.value, 1e-6, 'value');
      for (const n of Object.keys(plain.grads)) expectClose(ours.grads[n]!, plain.grads[n]!, 1e-6, n);
      disposeGrads(plain, ours);
      expect(tf.memory().numTensors).to.equal(before);
      tf.dispose([x, w, unused]);
    });

    it('is the plain call (no custom op) when no gradient is recorded', () => {
      const x = tf.tensor1d([1, 2, 3]);
      const y = recomputed((a: tf.Tensor1D) => tf.mul(a, 2), [x], []);
      expect(Array.from(y.dataSync())).to.deep.equal([2, 4, 6]);
      tf.dispose([x, y]);
    });
  });

  // The hooks between stages: the hybrid fusion at path_4 (Full) and Mamba with its carried state at path_1.
  const variants: Array<[string, string[]]> = [
    ['Full (fusion at path_4, Mamba at path_3)', [
      'hybrid_configs.use_hybrid=true', 'hybrid_configs.teacher_vit_embed_dim=32', 'hybrid_configs.teacher_vit_depth=4',
      'hybrid_configs.teacher_vit_num_heads=2', 'hybrid_configs.teacher_vit_taps=[0,1,2,3]', 'hybrid_configs.teacher_dpt_out_channels=[8,16,16,32]',
    ]],
    ['S with Mamba after refinenet1 (path_1)', ['model.mamba_in_dpt_layer=[3]']],
  ];
  for (const [label, overrides] of variants) {
    it(`tiny ${label}: loss and gradients with recomputation equal plain backprop (70×70, 2 frames), no leaks`, () => {
      const model = createFlashDepth(loadConfig(join(REPO_ROOT, 'configs', 'tiny'), overrides));
      randomizeWeights(model, 6);
      const frames = tf.randomNormal([1, 2, 70, 70, 3], 0, 1, 'float32', 41) as tf.Tensor5D;
      const r = tf.randomNormal([1, 2, 70, 70], 0, 1, 'float32', 42);
      const teacher = model.teacherFeatures(frames);
      const vars = model.trainableParameters();
      const f = () => tf.tidy(() => tf.sum(tf.mul(model.forwardClip(frames, teacher), r)) as tf.Scalar);
      tf.dispose(f());
      const before = tf.memory().numTensors;
      const plain = tf.variableGrads(f, vars);
      setModelRecompute(model, true);
      let ours: Grads;
      try {
        ours = tf.variableGrads(f, vars);
      } finally {
        setModelRecompute(model, false);
      }
      if (model.hybridFusion) expect(Object.keys(plain.grads)).to.include(model.hybridFusion.parameterVariables()[0]!.name);
      expectSameGrads(ours, plain);
      disposeGrads(plain, ours);
      expect(tf.memory().numTensors).to.equal(before);
      tf.dispose([frames, r, ...teacher]);
      model.dispose();
    });
  }

  describe('tiny FlashDepth (configs/tiny, Mamba after refinenet3)', () => {
    let model: FlashDepth;
    before(() => {
      model = createFlashDepth(loadConfig(join(REPO_ROOT, 'configs', 'tiny')));
      randomizeWeights(model, 5);
    });
    after(() => {
      setModelRecompute(model, false);
      model.dispose();
    });

    const lossOf = (frames: tf.Tensor5D, r: tf.Tensor) => () => tf.tidy(() => tf.sum(tf.mul(model.forwardClip(frames), r)) as tf.Scalar);

    it('loss and every gradient with recomputed ViT blocks + DPT stages equal plain backprop (70×70, 2 frames), no leaks', () => {
      const frames = tf.randomNormal([1, 2, 70, 70, 3], 0, 1, 'float32', 31) as tf.Tensor5D;
      const r = tf.randomNormal([1, 2, 70, 70], 0, 1, 'float32', 32);
      const vars = model.trainableParameters();
      const f = lossOf(frames, r);
      tf.dispose(f()); // the encoder caches its pos-embed interpolation per input size on the first call
      const before = tf.memory().numTensors;
      const plain = tf.variableGrads(f, vars);

      // Count the stages that actually went through the recomputing runner: 4 reassembles + 4 refinenets + head.
      let stages = 0;
      const counting: StageRunner = (fn, inputs, modules) => {
        stages++;
        return recomputedStage(fn, inputs, modules);
      };
      setModelRecompute(model, true);
      model.depthHead.stageRunner = counting;
      let decoderOnly: Grads;
      let both: Grads;
      try {
        both = tf.variableGrads(f, vars);
        expect(stages).to.equal(2 * 9);
        setModelRecompute(model, false);
        setDecoderRecompute(model.depthHead, true);
        decoderOnly = tf.variableGrads(f, vars);
      } finally {
        setModelRecompute(model, false);
      }
      // Plain backprop gives no gradient to unused parameters (mask_token, refinenet4.resConfUnit1); nor may we.
      expect(Object.keys(plain.grads)).to.have.length(vars.length - 5);
      expectSameGrads(both, plain);
      expectSameGrads(decoderOnly, plain);
      disposeGrads(plain, both, decoderOnly);
      expect(tf.memory().numTensors).to.equal(before);
      tf.dispose([frames, r]);
    });

    it('leaves the forward unchanged: inference with recomputation on gives bit-identical depth', () => {
      const frames = tf.randomNormal([1, 2, 70, 70, 3], 0, 1, 'float32', 33) as tf.Tensor5D;
      const plain = tf.tidy(() => model.forwardClip(frames));
      setModelRecompute(model, true);
      let ours: tf.Tensor;
      try {
        ours = tf.tidy(() => model.forwardClip(frames));
      } finally {
        setModelRecompute(model, false);
      }
      expect(Array.from(ours.dataSync())).to.deep.equal(Array.from(plain.dataSync()));
      tf.dispose([frames, plain, ours]);
    });

    it('holds fewer bytes at the end of the forward under a gradient tape (280×280, 2 frames)', () => {
      const frames = tf.randomNormal([1, 2, 280, 280, 3], 0, 1, 'float32', 34) as tf.Tensor5D;
      const r = tf.randomNormal([1, 2, 280, 280], 0, 1, 'float32', 35);
      const vars = model.trainableParameters();
      const forwardBytes = (blocks: boolean, decoder: boolean): number => {
        setBlockRecompute(model.pretrained, blocks);
        setDecoderRecompute(model.depthHead, decoder);
        let bytes = 0;
        try {
          const base = tf.memory().numBytes;
          const g = tf.variableGrads(() => {
            const loss = lossOf(frames, r)();
            bytes = tf.memory().numBytes - base;
            return loss;
          }, vars);
          disposeGrads(g);
        } finally {
          setModelRecompute(model, false);
        }
        return bytes;
      };
      const plainBytes = forwardBytes(false, false);
      const blocksOnly = forwardBytes(true, false);
      const recomputedBytes = forwardBytes(true, true);
      const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
      console.log(`      live bytes at the end of the forward: plain ${mb(plainBytes)}, ViT blocks recomputed ${mb(blocksOnly)}, ViT + DPT recomputed ${mb(recomputedBytes)}`);
      expect(recomputedBytes).to.be.lessThan(blocksOnly);
      expect(blocksOnly).to.be.lessThan(plainBytes);
      tf.dispose([frames, r]);
    });
  });
});
