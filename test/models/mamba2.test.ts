import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { ConfigError, ShapeError } from '../../src/errors.js';
import { openTorchCheckpoint } from '../../src/io/pth.js';
import { Mamba2, softplusLikeTriton, type Mamba2Options, type Mamba2StepState } from '../../src/models/mamba2.js';
import type { FlashModule } from '../../src/models/module.js';
import { ssdChunked, ssdRecurrent } from '../../src/models/ssd.js';
import { loadWeights, torchShape } from '../../src/models/weights.js';
import { useTestBackend } from '../helpers/backend.js';
import { closeness, expectClose, fixture, fixtureTensor } from '../helpers/fixtures.js';

/** Fills every parameter with seeded values in the ranges of the fixtures' initialisation (fixtures README). */
function randomizeParameters(module: FlashModule, seed: number): void {
  let i = 0;
  for (const { key, spec } of module.namedParameters()) {
    tf.tidy(() => {
      const u = tf.randomUniform(spec.shape, -1, 1, 'float32', seed + i++);
      const local = key.split('.').pop()!;
      let v: tf.Tensor;
      if (key.endsWith('A_log')) v = tf.mul(tf.add(u, 1), Math.log(16) / 2);
      else if (key.endsWith('dt_bias')) v = tf.add(tf.mul(u, 2.3), -4.6);
      else if (key.endsWith('.D') || key === 'D' || key.includes('norm')) v = tf.add(tf.mul(u, local === 'bias' ? 0.1 : 0.2), local === 'bias' ? 0 : 1);
      else if (spec.shape.length >= 2) v = tf.mul(u, Math.sqrt(3 / torchShape(spec.shape, spec.layout).slice(1).reduce((a, b) => a * b, 1)));
      else v = tf.mul(u, 0.1);
      spec.variable.write(v);
    });
  }
}

const S_CONFIG: Mamba2Options = { dModel: 64, expand: 4, headdim: 32 };
const L_CONFIG: Mamba2Options = { dModel: 256, expand: 2, headdim: 64 };
/** A small config for tests on random weights: 2 heads, short chunks so several chunks are exercised. */
const TINY: Mamba2Options = { dModel: 8, expand: 2, headdim: 4, dState: 6, chunkSize: 5 };

const frameSlice = (u: tf.Tensor3D, start: number, length: number) => tf.slice(u, [0, start, 0], [u.shape[0], length, u.shape[2]]);

describe('models/mamba2', function () {
  before(async () => {
    await useTestBackend();
  });

  it('names and shapes its parameters like the PyTorch state dict (spec §3.1)', () => {
    const m = new Mamba2(S_CONFIG);
    const params = [...m.namedParameters()].map((p) => [p.key, torchShape(p.spec.shape, p.spec.layout)]);
    expect(params).to.deep.equal([
      ['in_proj.weight', [1032, 64]], ['conv1d.weight', [768, 1, 4]], ['conv1d.bias', [768]], ['dt_bias', [8]],
      ['A_log', [8]], ['D', [8]], ['norm.weight', [256]], ['out_proj.weight', [64, 256]],
    ]);
    expect([m.nheads, m.dInner, m.convDim]).to.deep.equal([8, 256, 768]);
    m.disposeParameters();
  });

  it('rejects unsupported options and wrong shapes with one-line errors', () => {
    expect(() => new Mamba2({ ...S_CONFIG, ngroups: 2 })).to.throw(ConfigError, 'Expected 1 (the only value FlashDepth uses) for Mamba2 ngroups but received 2 (number)');
    expect(() => new Mamba2({ ...S_CONFIG, headdim: 48 })).to.throw(ConfigError, 'Expected a divisor of d_inner = 256 for Mamba2 headdim but received 48 (number)');
    const m = new Mamba2(TINY);
    tf.tidy(() => {
      expect(() => m.forwardFrame(tf.zeros([1, 3, 7]) as tf.Tensor3D, null)).to.throw(ShapeError, 'Mamba2.forwardFrame: expected u of shape [1, 3, 8] but received [1, 3, 7]');
      expect(() => m.forwardFrame(tf.zeros([2, 3, 8]) as tf.Tensor3D, tf.zeros([1, 4, 4, 6]) as tf.Tensor4D))
        .to.throw(ShapeError, 'Mamba2.forwardFrame: expected state of shape [2, 4, 4, 6] but received [1, 4, 4, 6]');
    });
    m.disposeParameters();
  });

  it('softplus follows the Triton kernels (identity above 20)', () => {
    const out = tf.tidy(() => softplusLikeTriton(tf.tensor1d([25, 20.5, 0, -30, 3])).arraySync() as number[]);
    expect(out[0]).to.equal(25);
    expect(out[1]).to.equal(20.5);
    expect(out[2]).to.be.closeTo(Math.LN2, 1e-7);
    expect(out[3]).to.be.closeTo(Math.exp(-30), 1e-13); // log1p(9e-14) is 0 in float32 on wasm, as log(exp(x)+1) in Triton
    expect(out[4]).to.be.closeTo(Math.log1p(Math.exp(3)), 1e-6);
  });

  it('chunked and recurrent scans agree (several chunks, carried state, batch 2)', () => {
    tf.tidy(() => {
      // B=2, L=13 (chunks of 5, 5, 3), H=3, P=4, N=6
      const x = tf.randomNormal([2, 13, 3, 4], 0, 1, 'float32', 1) as tf.Tensor4D;
      const dt = tf.softplus(tf.randomNormal([2, 13, 3], -1, 1, 'float32', 2)) as tf.Tensor3D;
      const A = tf.neg(tf.randomUniform([3], 1, 16, 'float32', 3)) as tf.Tensor1D;
      const B = tf.randomNormal([2, 13, 6], 0, 1, 'float32', 4) as tf.Tensor3D;
      const C = tf.randomNormal([2, 13, 6], 0, 1, 'float32', 5) as tf.Tensor3D;
      const initialState = tf.randomNormal([2, 3, 4, 6], 0, 1, 'float32', 6) as tf.Tensor4D;
      const chunked = ssdChunked({ x, dt, A, B, C, initialState }, 5);
      const recurrent = ssdRecurrent({ x, dt, A, B, C, initialState });
      expectClose(chunked.y, recurrent.y, 1e-5, 'y');
      expectClose(chunked.state, recurrent.state, 1e-5, 'state');
      const oneChunk = ssdChunked({ x, dt, A, B, C, initialState }, 256);
      expectClose(oneChunk.y, recurrent.y, 1e-5, 'y (one chunk)');
    });
  });

  it('chunked and recurrent forms have the same gradients', () => {
    const m = new Mamba2(TINY);
    randomizeParameters(m, 10);
    tf.tidy(() => {
      const u = tf.randomNormal([1, 12, 8], 0, 1, 'float32', 11) as tf.Tensor3D;
      const s0 = tf.randomNormal(m.ssmStateShape(1), 0, 0.5, 'float32', 12) as tf.Tensor4D;
      const lossOf = (form: 'chunked' | 'recurrent') => (uu: tf.Tensor, ss: tf.Tensor) => {
        const r = m.forwardFrame(uu as tf.Tensor3D, ss as tf.Tensor4D, form);
        return tf.add(tf.sum(tf.square(r.y)), tf.sum(r.state)) as tf.Scalar;
      };
      const [gu, gs] = tf.grads(lossOf('chunked'))([u, s0]);
      const [ru, rs] = tf.grads(lossOf('recurrent'))([u, s0]);
      expect(tf.max(tf.abs(gu!)).dataSync()[0]).to.be.greaterThan(0);
      expectClose(gu!, ru!, 1e-4, 'dL/du');
      expectClose(gs!, rs!, 1e-4, 'dL/dstate');
    });
    m.disposeParameters();
  });

  it('batch 2 keeps independent states (each element equals its own batch-1 run)', () => {
    const m = new Mamba2(TINY);
    randomizeParameters(m, 20);
    tf.tidy(() => {
      const u = tf.randomNormal([2, 9, 8], 0, 1, 'float32', 21) as tf.Tensor3D;
      const s0 = tf.randomNormal(m.ssmStateShape(2), 0, 0.5, 'float32', 22) as tf.Tensor4D;
      const both = m.forwardFrame(u, s0);
      for (const b of [0, 1]) {
        const single = m.forwardFrame(tf.slice(u, [b, 0, 0], [1, 9, 8]), tf.slice(s0, [b, 0, 0, 0], [1, ...m.ssmStateShape(1).slice(1)]));
        expectClose(tf.slice(both.y, [b, 0, 0], [1, 9, 8]), single.y, 1e-6, `y[${b}]`);
        expectClose(tf.slice(both.state, [b, 0, 0, 0], [1, 4, 4, 6]), single.state, 1e-6, `state[${b}]`);
      }
    });
    m.disposeParameters();
  });

  it('streaming: state carried across calls, resetState() reproduces frame 0, no tensor leak over 10 frames', () => {
    const m = new Mamba2(TINY);
    randomizeParameters(m, 30);
    const frames = Array.from({ length: 10 }, (_, t) => tf.randomNormal([1, 4, 8], 0, 1, 'float32', 100 + t) as tf.Tensor3D);
    const before = tf.memory().numTensors;
    const first = tf.tidy(() => m.forward(frames[0]!));
    const second = tf.tidy(() => m.forward(frames[1]!));
    const afterTwo = tf.memory().numTensors;
    for (let t = 2; t < 10; t++) tf.dispose(tf.tidy(() => m.forward(frames[t]!)));
    expect(tf.memory().numTensors, 'tensors after 10 frames').to.equal(afterTwo);
    tf.tidy(() => {
      const f0 = m.forwardFrame(frames[0]!, null);
      const f1 = m.forwardFrame(frames[1]!, f0.state);
      expectClose(second, f1.y, 1e-6, 'frame 1 from the carried state');
      expect(closeness(second, m.forwardFrame(frames[1]!, null).y).maxAbsErr, 'frame 1 depends on frame 0').to.be.greaterThan(1e-3);
    });
    m.resetState();
    expect(m.state).to.equal(null);
    const again = tf.tidy(() => m.forward(frames[0]!));
    expect(Array.from(again.dataSync())).to.deep.equal(Array.from(first.dataSync()));
    m.resetState();
    tf.dispose([first, second, again]);
    expect(tf.memory().numTensors, 'tensors after reset').to.equal(before);
    tf.dispose(frames);
    m.disposeParameters();
  });

  for (const [name, config] of [['mamba2_s', S_CONFIG], ['mamba2_l', L_CONFIG]] as const) {
    describe(`parity with the PyTorch Mamba2 (${name})`, function () {
      let m: Mamba2;
      let u: tf.Tensor3D;

      before(function () {
        const weights = fixture(this as unknown as Mocha.Context, name, 'weights.pth');
        m = new Mamba2(config);
        const source = openTorchCheckpoint(weights);
        loadWeights(m, source);
        source.close();
        u = fixtureTensor(this as unknown as Mocha.Context, name, 'input.npy') as tf.Tensor3D;
      });
      after(() => {
        m?.disposeParameters();
        u?.dispose();
      });

      // Reference (fixtures README §4): y_parallel, ssm_state_parallel = Mamba2.forward(u, inference_params=fresh),
      // i.e. the chunked Triton SSD scan (chunk 256) over all L tokens, fp32, TF32 off.
      it('one call over all tokens (chunked form) matches y_parallel and ssm_state_parallel', function () {
        tf.tidy(() => {
          const { y, state } = m.forwardFrame(u, null);
          const ey = expectClose(y, fixtureTensor(this, name, 'y_parallel.npy'), 1e-4, 'y');
          const es = expectClose(state, fixtureTensor(this, name, 'ssm_state_parallel.npy'), 1e-4, 'ssm state');
          console.log(`      ${name} chunked: y max err ${ey.maxAbsErr.toExponential(2)} (peak ${ey.maxAbsRef.toFixed(2)}), state ${es.maxAbsErr.toExponential(2)} (peak ${es.maxAbsRef.toFixed(2)})`);
        });
      });

      it('the recurrent form matches y_parallel too', function () {
        tf.tidy(() => {
          const { y, state } = m.forwardFrame(u, null, 'recurrent');
          const ey = expectClose(y, fixtureTensor(this, name, 'y_parallel.npy'), 1e-4, 'y');
          const es = expectClose(state, fixtureTensor(this, name, 'ssm_state_parallel.npy'), 1e-4, 'ssm state');
          console.log(`      ${name} recurrent: y max err ${ey.maxAbsErr.toExponential(2)}, state ${es.maxAbsErr.toExponential(2)}`);
        });
      });

      // Reference: FlashDepth per-frame mode, one call per 75-token frame, conv restarting, SSM state carried.
      it('per-frame calls of 75 tokens match y_frames and ssm_state_frames', function () {
        tf.tidy(() => {
          const ys: tf.Tensor[] = [];
          let state: tf.Tensor4D | null = null;
          for (let start = 0; start < u.shape[1]; start += 75) {
            const r = m.forwardFrame(frameSlice(u, start, 75), state);
            ys.push(r.y);
            state = r.state;
          }
          const ey = expectClose(tf.concat(ys, 1), fixtureTensor(this, name, 'y_frames.npy'), 1e-4, 'y');
          const es = expectClose(state!, fixtureTensor(this, name, 'ssm_state_frames.npy'), 1e-4, 'ssm state');
          console.log(`      ${name} frames: y max err ${ey.maxAbsErr.toExponential(2)}, state ${es.maxAbsErr.toExponential(2)}`);
        });
      });

      // Reference: Mamba2.step token by token from zero allocate_inference_cache states (rolling conv buffer).
      it('token steps with the rolling conv state match y_step, ssm_state_step and conv_state_step', function () {
        const ys: tf.Tensor2D[] = [];
        let state: Mamba2StepState | null = null;
        for (let t = 0; t < u.shape[1]; t++) {
          const previous: Mamba2StepState | null = state;
          const [y, conv, ssm] = tf.tidy(() => {
            const o = m.step(tf.reshape(frameSlice(u, t, 1), [1, u.shape[2]]) as tf.Tensor2D, previous);
            return [o.y, o.state.conv, o.state.ssm];
          }) as [tf.Tensor2D, tf.Tensor3D, tf.Tensor4D];
          if (previous) tf.dispose([previous.conv, previous.ssm]);
          ys.push(y);
          state = { conv, ssm };
        }
        tf.tidy(() => {
          const ey = expectClose(tf.stack(ys, 1), fixtureTensor(this, name, 'y_step.npy'), 1e-4, 'y');
          const es = expectClose(state!.ssm, fixtureTensor(this, name, 'ssm_state_step.npy'), 1e-4, 'ssm state');
          const ec = expectClose(state!.conv, fixtureTensor(this, name, 'conv_state_step.npy'), 1e-4, 'conv state');
          console.log(`      ${name} step: y max err ${ey.maxAbsErr.toExponential(2)}, state ${es.maxAbsErr.toExponential(2)}, conv ${ec.maxAbsErr.toExponential(2)}`);
        });
        tf.dispose([...ys, state!.conv, state!.ssm]);
      });
    });
  }
});
