import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { loadConfig } from '../../src/config.js';
import { createFlashDepth } from '../../src/models/create.js';
import { depthLoss, parseLossType } from '../../src/train/loss.js';
import { AdamW, clipGradNorm } from '../../src/train/optimizer.js';
import { buildParamGroups, type ParamGroup } from '../../src/train/param-groups.js';
import { lrFactor } from '../../src/train/schedule.js';
import { useTestBackend } from '../helpers/backend.js';
import { REPO_ROOT } from '../helpers/fixtures.js';

const close = (actual: ArrayLike<number>, expected: number[], tol = 1e-6) => {
  expect(actual.length).to.equal(expected.length);
  expected.forEach((e, i) => expect(actual[i]!, `element ${i}`).to.be.closeTo(e, tol));
};

describe('train: optimiser, schedule, loss, parameter groups', () => {
  before(() => useTestBackend());

  describe('AdamW (torch.optim.AdamW, betas 0.9/0.95, eps 1e-8, wd 0.01)', () => {
    function oneParam(values: number[], lr: number): { group: ParamGroup; v: tf.Variable } {
      const v = tf.variable(tf.tensor1d(values), true);
      return { v, group: { name: 'dpt', lr, params: [{ key: 'depth_head.w', variable: v }] } };
    }

    it('matches two hand-computed steps (decoupled decay, bias correction)', () => {
      const { v, group } = oneParam([1, -2], 0.1);
      const opt = new AdamW([group]);
      const g = tf.tensor1d([0.5, -1]);
      // Step 1: p·(1 − 0.1·0.01) = [0.999, −1.998]; m = [0.05, −0.1]; v = [0.0125, 0.05]; step size 0.1/0.1 = 1;
      // denom = √v/√0.05 + 1e-8 = [0.5, 1] → p = [0.999 − 0.1, −1.998 + 0.1].
      opt.step(new Map([['depth_head.w', g]]), 1);
      close(v.dataSync(), [0.899, -1.898]);
      // Step 2: decay → [0.898101, −1.896102]; m = [0.095, −0.19]; v = [0.024375, 0.0975]; step size 0.1/0.19;
      // denom = √(v/0.0975) = [0.5, 1] → update = [0.19, −0.19]·(0.1/0.19) = [0.1, −0.1].
      opt.step(new Map([['depth_head.w', g]]), 1);
      close(v.dataSync(), [0.798101, -1.796102]);
      const state = opt.state();
      expect(state.steps).to.deep.equal({ 'depth_head.w': 2 });
      close(state.tensors.get('exp_avg.depth_head.w')!.dataSync(), [0.095, -0.19]);
      close(state.tensors.get('exp_avg_sq.depth_head.w')!.dataSync(), [0.024375, 0.0975]);
      opt.dispose();
      tf.dispose([v, g]);
    });

    it('scales the group lr by the schedule factor, and skips a parameter without a gradient (no decay)', () => {
      const a = oneParam([3], 1e-3);
      const b = tf.variable(tf.tensor1d([5]), true);
      const opt = new AdamW([a.group, { name: 'mamba', lr: 1e-2, params: [{ key: 'mamba.b', variable: b }] }]);
      expect(opt.groupLrs(0.5)).to.deep.equal({ dpt: 5e-4, mamba: 5e-3 });
      const g = tf.tensor1d([-4]);
      opt.step(new Map([['depth_head.w', g]]), 0.5);
      // lr 5e-4: 3·(1 − 5e-6) + 5e-4 (first Adam step moves by lr·sign(g)).
      close(a.v.dataSync(), [3 * (1 - 5e-6) + 5e-4], 1e-6);
      close(b.dataSync(), [5]);
      expect(opt.state().steps).to.deep.equal({ 'depth_head.w': 1 });
      opt.dispose();
      tf.dispose([a.v, b, g]);
    });

    it('clips the global gradient norm like clip_grad_norm_', async () => {
      const grads = new Map<string, tf.Tensor>([['a', tf.tensor1d([3, 0])], ['b', tf.tensor1d([4])]]);
      const { grads: clipped, norm } = await clipGradNorm(grads, 1);
      expect(norm).to.be.closeTo(5, 1e-6);
      close(clipped.get('a')!.dataSync(), [0.6, 0], 1e-6);
      close(clipped.get('b')!.dataSync(), [0.8], 1e-6);
      tf.dispose([...grads.values(), ...clipped.values()]);
    });
  });

  it('lrFactor: linear warm-up from 1e-4 to 1 over warmup_steps, then constant', () => {
    expect(lrFactor(0, 1000)).to.equal(1e-4);
    expect(lrFactor(500, 1000)).to.be.closeTo(1e-4 + (1 - 1e-4) * (500 / 999), 1e-15);
    expect(lrFactor(999, 1000)).to.equal(1);
    expect(lrFactor(1000, 1000)).to.equal(1);
    expect(lrFactor(60000, 1000)).to.equal(1);
    expect(lrFactor(0, 1)).to.equal(1);
  });

  describe('loss (spec §5.3)', () => {
    // pred [1, 2, 2, 2]; gt in 1/m (×100 → [1, 3, invalid, 4] and [0, 1, 2, invalid]).
    const pred = () => tf.tensor4d([1, 2, 3, 4, 0, 0, 1, 1], [1, 2, 2, 2]);
    const gt = () => tf.tensor4d([0.01, 0.03, -1, 0.04, 0, 0.01, 0.02, -1], [1, 2, 2, 2]);

    it('l1: mean |pred − 100·gt| over valid pixels (sky 0 counts): 3/6', () => {
      const loss = tf.tidy(() => depthLoss(pred(), gt(), parseLossType('l1')));
      expect(loss.dataSync()[0]).to.be.closeTo(0.5, 1e-6);
      loss.dispose();
    });

    it('scaleshift: per-frame least squares (s = 13/14, t = 1/2; s = 3/2, t = 1/2), then L1 = 16/42', () => {
      const loss = tf.tidy(() => depthLoss(pred(), gt(), parseLossType('scaleshift')));
      expect(loss.dataSync()[0]).to.be.closeTo(16 / 42, 1e-5);
      loss.dispose();
    });

    it('scaleshift: a constant prediction (det = 0) gets s = t = 0', () => {
      const loss = tf.tidy(() => depthLoss(tf.fill([1, 1, 2, 2], 2) as tf.Tensor4D, tf.tensor4d([0.01, 0.02, 0.03, 0.06], [1, 1, 2, 2]), parseLossType('scaleshift')));
      expect(loss.dataSync()[0]).to.be.closeTo(3, 1e-5);
      loss.dispose();
    });

    it('temporal k1: adds 0.5·L1 of frame differences on stable pixels, only after step 500', () => {
      const p = () => tf.tensor4d([0, 0, 0, 0, 2, 1, 0, 0], [1, 2, 2, 2]);
      const g = () => tf.tensor4d([0.1, 0.2, 0.3, 0.4, 0.11, 0.2, 1.0, 0.41], [1, 2, 2, 2]);
      const spec = parseLossType('l1_temporal_k1');
      expect(spec).to.deep.equal({ base: 'l1', temporalK: 1 });
      const early = tf.tidy(() => depthLoss(p(), g(), spec, 0));
      const late = tf.tidy(() => depthLoss(p(), g(), spec, 501));
      // base: (100 + 169)/8; temporal: pixel 2 changes by 70/65 > 0.2 (dropped); |2−1|, |1−0|, |0−1| → mean 1.
      expect(early.dataSync()[0]).to.be.closeTo(33.625, 1e-4);
      expect(late.dataSync()[0]).to.be.closeTo(33.625 + 0.5, 1e-4);
      tf.dispose([early, late]);
    });

    it('rejects an unknown loss_type with the choices', () => {
      expect(() => parseLossType('l2')).to.throw('training.loss_type: expected "l1", "scaleshift" or a temporal variant like "l1_temporal_k2" but received "l2"');
      expect(() => parseLossType('l1_temporal')).to.throw('without k{K}');
    });
  });

  it('parameter groups: vit/dpt/mamba by prefix with their lrs; lr 0 freezes a group', () => {
    const config = loadConfig(`${REPO_ROOT}/configs/tiny`, ['training.lr.vit=5e-6', 'training.lr.dpt=5e-5', 'training.lr.mamba=1e-4']);
    const model = createFlashDepth(config);
    try {
      const { groups, frozen } = buildParamGroups(model, config.training.lr);
      expect(groups.map((g) => [g.name, g.lr])).to.deep.equal([['vit', 5e-6], ['dpt', 5e-5], ['mamba', 1e-4]]);
      expect(frozen).to.deep.equal([]);
      const total = groups.reduce((n, g) => n + g.params.length, 0);
      expect(total).to.equal([...model.namedParameters()].length);
      expect(groups[0]!.params.every((p) => p.key.startsWith('pretrained.'))).to.equal(true);
      expect(groups[2]!.params.every((p) => p.key.startsWith('mamba.'))).to.equal(true);
      const noVit = buildParamGroups(model, { ...config.training.lr, vit: 0 });
      expect(noVit.groups.map((g) => g.name)).to.deep.equal(['dpt', 'mamba']);
      expect(noVit.frozen.length).to.equal(groups[0]!.params.length);
    } finally {
      model.dispose();
    }
  });
});
