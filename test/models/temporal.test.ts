import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { ShapeError } from '../../src/errors.js';
import { openTorchCheckpoint } from '../../src/io/pth.js';
import { loadWeights, torchShape } from '../../src/models/weights.js';
import { adaptiveAvgPoolSequence, adaptivePoolMatrices, TemporalMamba, type TemporalMambaOptions } from '../../src/models/temporal.js';
import { useTestBackend } from '../helpers/backend.js';
import { expectClose, fixture, fixtureTensor, REPO_ROOT } from '../helpers/fixtures.js';

const S_TEMPORAL: TemporalMambaOptions = { dModel: 64, expand: 4, headdim: 32 };
const L_TEMPORAL: TemporalMambaOptions = { dModel: 256, expand: 2, headdim: 64 };
const TINY: TemporalMambaOptions = { dModel: 8, expand: 2, headdim: 4, dState: 6, chunkSize: 4 };

const nchwToNhwc = (t: tf.Tensor) => tf.transpose(t, [0, 2, 3, 1]) as tf.Tensor4D;

/** Seeded small random values for every parameter (norm weights near 1, A_log in [0, ln 16], dt_bias near −4.6). */
function randomizeParameters(module: TemporalMamba, seed: number): void {
  let i = 0;
  for (const { key, spec } of module.namedParameters()) {
    tf.tidy(() => {
      const u = tf.randomUniform(spec.shape, -1, 1, 'float32', seed + i++);
      if (key.endsWith('A_log')) spec.variable.write(tf.mul(tf.add(u, 1), Math.log(16) / 2));
      else if (key.endsWith('dt_bias')) spec.variable.write(tf.add(tf.mul(u, 2.3), -4.6));
      else if (key.endsWith('norm1.weight') || key.endsWith('norm2.weight') || key.endsWith('norm.weight') || key.endsWith('.D')) spec.variable.write(tf.add(tf.mul(u, 0.2), 1));
      else if (spec.shape.length === 2) spec.variable.write(tf.mul(u, Math.sqrt(3 / torchShape(spec.shape, spec.layout)[1]!)));
      else spec.variable.write(tf.mul(u, 0.1));
    });
  }
}

describe('models/temporal', function () {
  before(async () => {
    await useTestBackend();
  });

  it('has exactly the 66 mamba.* keys and shapes of the FlashDepth-S and -L checkpoints', () => {
    for (const [file, options] of [['keys_S.txt', S_TEMPORAL], ['keys_L.txt', L_TEMPORAL]] as const) {
      const expected = readFileSync(join(REPO_ROOT, '..', 'shared', 'docs', 'flashdepth-keys', file), 'utf8')
        .split('\n').filter((l) => l.startsWith('mamba.'))
        .map((l) => { const [key, shape] = l.split('\t'); return `${key} ${shape!.replace(/[(), ]+/g, ' ').trim()}`; });
      const m = new TemporalMamba(options);
      const ours = [...m.namedParameters()].map((p) => `mamba.${p.key} ${torchShape(p.spec.shape, p.spec.layout).join(' ')}`);
      expect(ours.sort(), file).to.deep.equal(expected.sort());
      expect(ours.length).to.equal(66);
      m.disposeParameters();
    }
  });

  it('adaptive average pooling uses PyTorch bins (overlapping, unequal)', () => {
    // torch.nn.functional.adaptive_avg_pool1d over 5 inputs to 3 outputs averages [0,2), [1,4), [3,5)
    const m = tf.tidy(() => tf.squeeze(adaptivePoolMatrices(1, 5, 1, 3).cols, [0]).arraySync() as number[][]);
    const third = 1 / 3;
    expect(m[0]).to.deep.equal([0.5, 0.5, 0, 0, 0]);
    expect(m[1]!.map((v) => Math.fround(v))).to.deep.equal([0, third, third, third, 0].map(Math.fround));
    expect(m[2]).to.deep.equal([0, 0, 0, 0.5, 0.5]);
    tf.tidy(() => {
      // 2-D: a 3×5 map of values 10·row + col pooled to 1×2 → bins cols [0,3) and [2,5), all rows
      const x = tf.tensor4d(Array.from({ length: 15 }, (_, k) => 10 * Math.floor(k / 5) + (k % 5)), [1, 3, 5, 1]);
      const pooled = Array.from(adaptiveAvgPoolSequence(x, adaptivePoolMatrices(3, 5, 1, 2)).dataSync());
      expect(pooled[0]).to.be.closeTo(11, 1e-5);
      expect(pooled[1]).to.be.closeTo(13, 1e-5);
    });
  });

  it('adaptiveAvgPoolSequence (broadcast matMuls, no transposes) equals per-bin means for a batch of 2', () => {
    const [b, h, w, c, oh, ow] = [2, 7, 11, 3, 3, 4];
    const values = Float32Array.from({ length: b * h * w * c }, (_, k) => Math.sin(k * 0.7) * 5);
    const bin = (i: number, inSize: number, outSize: number) => [Math.floor((i * inSize) / outSize), Math.ceil(((i + 1) * inSize) / outSize)] as const;
    const expected: number[] = [];
    for (let n = 0; n < b; n++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) for (let k = 0; k < c; k++) {
      const [y0, y1] = bin(i, h, oh);
      const [x0, x1] = bin(j, w, ow);
      let sum = 0;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) sum += values[((n * h + y) * w + x) * c + k]!;
      expected.push(sum / ((y1 - y0) * (x1 - x0)));
    }
    tf.tidy(() => {
      const seq = adaptiveAvgPoolSequence(tf.tensor4d(values, [b, h, w, c]), adaptivePoolMatrices(h, w, oh, ow));
      expect(seq.shape).to.deep.equal([b, oh * ow, c]);
      expectClose(seq, tf.tensor3d(expected, [b, oh * ow, c]), 1e-5, 'pooled sequence');
    });
  });

  it('rejects feature maps that pool to an empty grid and wrong channel counts', () => {
    const m = new TemporalMamba(TINY);
    tf.tidy(() => {
      expect(() => m.forward(tf.zeros([1, 9, 20, 8]) as tf.Tensor4D, null))
        .to.throw(ShapeError, 'TemporalMamba.forward: feature map 9×20 pools to an empty 0×2 grid (factor 0.1); it needs at least 10 rows and columns');
      expect(() => m.forward(tf.zeros([1, 20, 20, 4]) as tf.Tensor4D, null))
        .to.throw(ShapeError, 'TemporalMamba.forward: expected an NHWC feature map with 8 channels but received [1, 20, 20, 4]');
    });
    m.disposeParameters();
  });

  it('streaming: states carried, resetState() reproduces frame 0, no tensor leak over 10 frames', () => {
    const m = new TemporalMamba(TINY);
    randomizeParameters(m, 7);
    const frames = Array.from({ length: 10 }, (_, t) => tf.randomNormal([1, 21, 34, 8], 0, 1, 'float32', 50 + t) as tf.Tensor4D);
    const before = tf.memory().numTensors;
    const first = tf.tidy(() => m.forwardStreaming(frames[0]!));
    const second = tf.tidy(() => m.forwardStreaming(frames[1]!));
    const afterTwo = tf.memory().numTensors;
    for (let t = 2; t < 10; t++) tf.dispose(tf.tidy(() => m.forwardStreaming(frames[t]!)));
    expect(tf.memory().numTensors, 'tensors after 10 frames').to.equal(afterTwo);
    expect(m.states!.length).to.equal(4);
    tf.tidy(() => {
      const f0 = m.forward(frames[0]!, null);
      const f1 = m.forward(frames[1]!, f0.states);
      expect(f0.seqIn.shape).to.deep.equal([1, 6, 8]); // int(2.1) × int(3.4) = 2 × 3 tokens
      expectClose(second, f1.output, 1e-6, 'frame 1 from carried states');
      const fresh = m.forward(frames[1]!, null);
      expect(tf.max(tf.abs(tf.sub(fresh.seqOut, f1.seqOut))).dataSync()[0], 'frame 1 depends on frame 0').to.be.greaterThan(1e-3);
    });
    m.resetState();
    const again = tf.tidy(() => m.forwardStreaming(frames[0]!));
    expect(Array.from(again.dataSync())).to.deep.equal(Array.from(first.dataSync()));
    m.resetState();
    tf.dispose([first, second, again]);
    expect(tf.memory().numTensors, 'tensors after reset').to.equal(before);
    tf.dispose(frames);
    m.disposeParameters();
  });

  it('is differentiable through the carried state (frame-1 loss reaches frame-0 input and the Mamba parameters)', () => {
    const m = new TemporalMamba(TINY);
    randomizeParameters(m, 9);
    tf.tidy(() => {
      const f0 = tf.randomNormal([1, 20, 30, 8], 0, 1, 'float32', 90) as tf.Tensor4D;
      const f1 = tf.randomNormal([1, 20, 30, 8], 0, 1, 'float32', 91) as tf.Tensor4D;
      const aLog = [...m.namedParameters()].find((p) => p.key === 'blocks.0.0.mamba.A_log')!.spec.variable.read() as tf.Variable;
      const { value, grads } = tf.variableGrads(() => {
        const r0 = m.forward(f0, null);
        const r1 = m.forward(f1, r0.states);
        return tf.mean(tf.square(r1.output)) as tf.Scalar;
      }, [aLog]);
      const dInput = tf.grad((x: tf.Tensor) => tf.mean(tf.square(m.forward(f1, m.forward(x as tf.Tensor4D, null).states).output)))(f0);
      expect(Number.isFinite(value.dataSync()[0]!)).to.equal(true);
      const gA = grads[aLog.name]!;
      expect(gA.shape).to.deep.equal([4]); // d_inner 16 / headdim 4
      expect(Array.from(gA.dataSync()).every((v) => Number.isFinite(v) && v !== 0), 'dL/dA_log').to.equal(true);
      expect(tf.max(tf.abs(dInput)).dataSync()[0], 'dL(frame 1)/d(frame 0)').to.be.greaterThan(0);
    });
    m.disposeParameters();
  });

  // Reference (fixtures README, case s): FlashDepth.dpt_features_to_mamba on path_3 (1, 64, 18, 32) for frames 0, 1
  // after mamba.start_new_sequence(); s_model.pth weights (float16 values, computed in fp32).
  describe('parity with PyTorch (case s, s_model.pth)', function () {
    let m: TemporalMamba;
    before(function () {
      const weights = fixture(this as unknown as Mocha.Context, 's_model.pth');
      m = new TemporalMamba(S_TEMPORAL);
      const source = openTorchCheckpoint(weights);
      loadWeights(m, source, { prefix: 'mamba.' });
      source.close();
    });
    after(() => m?.disposeParameters());

    // The Full model's student uses the same mamba.* weights (fixtures README, case full).
    for (const kase of ['s', 'full']) it(`${kase}: temporal_in_f{0,1} → mamba_seq_in/out_f{0,1} and temporal_out_f{0,1}, states carried from frame 0 to frame 1`, function () {
      const before = tf.memory().numTensors;
      const cachedBefore = m.cachedSizes;
      let states: tf.Tensor4D[] | null = null;
      for (const f of [0, 1]) {
        const next: tf.Tensor4D[] = tf.tidy(() => {
          const r = m.forward(nchwToNhwc(fixtureTensor(this, kase, `temporal_in_f${f}.npy`)), states);
          const es = expectClose(r.seqIn, fixtureTensor(this, kase, `mamba_seq_in_f${f}.npy`), 1e-4, `seq in f${f}`);
          const eq = expectClose(r.seqOut, fixtureTensor(this, kase, `mamba_seq_out_f${f}.npy`), 1e-4, `seq out f${f}`);
          const eo = expectClose(r.output, nchwToNhwc(fixtureTensor(this, kase, `temporal_out_f${f}.npy`)), 1e-4, `temporal out f${f}`);
          console.log(`      ${kase} f${f}: seq_in ${es.maxAbsErr.toExponential(2)} (peak ${es.maxAbsRef.toFixed(2)}), seq_out ${eq.maxAbsErr.toExponential(2)} (peak ${eq.maxAbsRef.toFixed(2)}), temporal_out ${eo.maxAbsErr.toExponential(2)} (peak ${eo.maxAbsRef.toFixed(2)})`);
          return r.states;
        });
        if (states) tf.dispose(states);
        states = next;
      }
      tf.dispose(states!);
      // The module keeps two pooling matrices per feature size it has seen (both cases share one size).
      expect(tf.memory().numTensors - before, 'kept pooling matrices').to.equal(2 * (m.cachedSizes - cachedBefore));
      expect(m.cachedSizes).to.equal(1);
    });

    it('s_nonmult: mamba_seq_in_f{0,1} → mamba_seq_out_f{0,1} (2×4 tokens)', function () {
      let states: tf.Tensor4D[] | null = null;
      for (const f of [0, 1]) {
        const next: tf.Tensor4D[] = tf.tidy(() => {
          const r = m.forwardSequence(fixtureTensor(this, 's_nonmult', `mamba_seq_in_f${f}.npy`) as tf.Tensor3D, states);
          const e = expectClose(r.seqOut, fixtureTensor(this, 's_nonmult', `mamba_seq_out_f${f}.npy`), 1e-4, `seq out f${f}`);
          console.log(`      s_nonmult f${f}: seq_out ${e.maxAbsErr.toExponential(2)} (peak ${e.maxAbsRef.toFixed(2)})`);
          return r.states;
        });
        if (states) tf.dispose(states);
        states = next;
      }
      tf.dispose(states!);
    });

    it('the streaming wrapper gives the same frame-1 output', function () {
      m.resetState();
      const out = tf.tidy(() => {
        tf.dispose(m.forwardStreaming(nchwToNhwc(fixtureTensor(this, 's', 'temporal_in_f0.npy'))));
        return m.forwardStreaming(nchwToNhwc(fixtureTensor(this, 's', 'temporal_in_f1.npy')));
      });
      tf.tidy(() => {
        expectClose(out, nchwToNhwc(fixtureTensor(this, 's', 'temporal_out_f1.npy')), 1e-4, 'temporal out f1');
      });
      out.dispose();
      m.resetState();
    });
  });

  // Reference (case l_reduced): the 4 MambaBlocks of FlashDepth-L shapes (d_model 256, expand 2, headdim 64) on the
  // pooled 7×12 path_1 sequence, frames 0 and 1.
  it('l_reduced: mamba_seq_in_f{0,1} → mamba_seq_out_f{0,1} with states carried', function () {
    const weights = fixture(this, 'l_reduced_model.pth');
    const m = new TemporalMamba(L_TEMPORAL);
    const source = openTorchCheckpoint(weights);
    loadWeights(m, source, { prefix: 'mamba.' });
    source.close();
    let states: tf.Tensor4D[] | null = null;
    for (const f of [0, 1]) {
      const next: tf.Tensor4D[] = tf.tidy(() => {
        const r = m.forwardSequence(fixtureTensor(this, 'l_reduced', `mamba_seq_in_f${f}.npy`) as tf.Tensor3D, states);
        const e = expectClose(r.seqOut, fixtureTensor(this, 'l_reduced', `mamba_seq_out_f${f}.npy`), 1e-4, `seq out f${f}`);
        console.log(`      l_reduced f${f}: seq_out ${e.maxAbsErr.toExponential(2)} (peak ${e.maxAbsRef.toFixed(2)})`);
        return r.states;
      });
      if (states) tf.dispose(states);
      states = next;
    }
    tf.dispose(states!);
    m.disposeParameters();
  });
});
