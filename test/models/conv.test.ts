import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { conv2d, conv2dIm2col, MAX_CONV_OUTPUT_PIXELS } from '../../src/models/ops.js';
import { useTestBackend } from '../helpers/backend.js';
import { expectClose } from '../helpers/fixtures.js';

/** The old formulation: a separate pad op, a 'valid' conv, the bias, then a separate ReLU. */
function reference(x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor, stride: number, padding: number, relu: boolean): tf.Tensor4D {
  const y = tf.add(tf.conv2d(tf.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]]), w, stride, 'valid'), b) as tf.Tensor4D;
  return relu ? tf.relu(y) : y;
}

/** Kernels run by `f` (outside any tape), in order, one entry per call (tf.profile also lists `…__op` wrappers). */
async function kernelsOf(f: () => tf.Tensor): Promise<string[]> {
  const info = await tf.profile(() => tf.tidy(f));
  tf.dispose(info.result);
  return info.kernels.map((k) => k.name).filter((name) => !name.endsWith('__op'));
}

describe('models/ops conv2d: padding and ReLU inside the conv kernel', () => {
  before(() => useTestBackend());

  it('pads with zeros exactly as PyTorch: a top-left-tap filter shifts the image down-right by the padding', () => {
    tf.tidy(() => {
      const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1]);
      const w = tf.tensor4d([1, 0, 0, 0, 0, 0, 0, 0, 0], [3, 3, 1, 1]); // out[i, j] = x[s·i − 1, s·j − 1]
      expect(Array.from(conv2d(x, w, tf.tensor1d([0]), 1, 1).dataSync())).to.deep.equal([0, 0, 0, 0, 1, 2, 0, 4, 5]);
      expect(Array.from(conv2d(x, w, tf.tensor1d([0]), 2, 1).dataSync())).to.deep.equal([0, 0, 0, 5]);
      // Bias −3 then ReLU: max(x[i−1, j−1] − 3, 0).
      expect(Array.from(conv2d(x, w, tf.tensor1d([-3]), 1, 1, { activation: 'relu' }).dataSync())).to.deep.equal([0, 0, 0, 0, 0, 0, 0, 1, 2]);
    });
  });

  it('equals pad + valid conv (+ ReLU) for 3×3 stride 1 and 2, 1×1 and 4×4 stride 2, with and without ReLU', () => {
    tf.tidy(() => {
      const x = tf.randomNormal([2, 9, 11, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
      const b = tf.tensor1d([0.5, -1, 2, 0.25]);
      for (const [k, stride, padding] of [[3, 1, 1], [3, 2, 1], [1, 1, 0], [4, 2, 0], [3, 1, 2]] as const) {
        const w = tf.randomNormal([k, k, 3, 4], 0, 1, 'float32', 10 + k) as tf.Tensor4D;
        for (const relu of [false, true]) {
          const what = `k${k} s${stride} p${padding}${relu ? ' relu' : ''}`;
          const ours = conv2d(x, w, b, stride, padding, relu ? { activation: 'relu' } : {});
          const ref = reference(x, w, b, stride, padding, relu);
          expect(ours.shape, what).to.deep.equal(ref.shape);
          expectClose(ours, ref, 1e-6, what);
        }
      }
    });
  });

  it('ReLU of the input and a residual on the output (a ResidualConvUnit): the ops they stand for; a residual with a ReLU is an error', () => {
    tf.tidy(() => {
      const x = tf.tensor4d([-1, 2, -3, 4, 5, -6, 7, -8, 9], [1, 3, 3, 1]);
      const w = tf.tensor4d([0, 0, 0, 0, 1, 0, 0, 0, 0], [3, 3, 1, 1]); // the centre tap: out = in
      const skip = tf.tensor4d([10, 20, 30, 40, 50, 60, 70, 80, 90], [1, 3, 3, 1]);
      // relu(x) + 1 (bias) + skip
      expect(Array.from(conv2d(x, w, tf.tensor1d([1]), 1, 1, { reluInput: true, residual: skip }).dataSync())).to.deep.equal([11, 23, 31, 45, 56, 61, 78, 81, 100]);
      expect(Array.from(conv2d(x, w, tf.tensor1d([1]), 1, 1, { reluInput: true, activation: 'relu' }).dataSync())).to.deep.equal([1, 3, 1, 5, 6, 1, 8, 1, 10]);
      expect(() => conv2d(x, w, tf.tensor1d([1]), 1, 1, { activation: 'relu', residual: skip })).to.throw('conv2d: a residual is added to a linear output only (no activation)');
    });
  });

  it('runs a padded 3×3 conv with bias and ReLU as one FusedConv2D kernel (no PadV2, no Relu)', async () => {
    const x = tf.randomNormal([1, 8, 8, 4], 0, 1, 'float32', 2) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 4, 4], 0, 1, 'float32', 3) as tf.Tensor4D;
    const b = tf.tensor1d([0.1, 0.2, 0.3, 0.4]);
    expect(await kernelsOf(() => conv2d(x, w, b, 1, 1, { activation: 'relu' }))).to.deep.equal(['FusedConv2D']);
    expect(await kernelsOf(() => conv2d(x, w, b, 2, 1))).to.deep.equal(['FusedConv2D']);
    tf.dispose([x, w, b]);
  });

  it('banded outputs: each band gets its own rows of zero padding, no pad op, equal to one conv (stride 1 and 2, ReLU)', async () => {
    const width = 1030;
    const height = 2 * Math.ceil(MAX_CONV_OUTPUT_PIXELS / (width / 2)) + 7; // banded at stride 2 too
    const x = tf.randomNormal([1, height, width, 2], 0, 1, 'float32', 4) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 2, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const b = tf.tensor1d([0.5, -1, 0.25]);
    const before = tf.memory().numTensors;
    for (const stride of [1, 2]) {
      tf.tidy(() => {
        const ours = conv2d(x, w, b, stride, 1, { activation: 'relu' });
        const ref = reference(x, w, b, stride, 1, true);
        expect(ours.shape).to.deep.equal(ref.shape);
        expectClose(ours, ref, 1e-6, `banded conv stride ${stride}`);
      });
      const kernels = await kernelsOf(() => conv2d(x, w, b, stride, 1, { activation: 'relu' }));
      expect(kernels.filter((k) => k === 'FusedConv2D').length, `bands at stride ${stride}`).to.be.greaterThan(1);
      expect(kernels.filter((k) => k === 'PadV2' || k === 'Relu'), `stride ${stride}`).to.deep.equal([]);
    }
    expect(tf.memory().numTensors).to.equal(before);
    tf.dispose([x, w, b]);
  });

  it('under a gradient tape, input, filter and bias gradients of conv+ReLU equal those of pad + im2col + ReLU', () => {
    const x = tf.randomNormal([1, 7, 6, 2], 0, 1, 'float32', 6) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 2, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
    const bias = tf.tensor1d([0.1, 0.2, -0.3]);
    const before = tf.memory().numTensors;
    for (const stride of [1, 2]) {
      const r = tf.randomNormal(stride === 1 ? [1, 7, 6, 3] : [1, 4, 3, 3], 0, 1, 'float32', 8);
      const loss = (y: tf.Tensor) => tf.sum(tf.mul(y, r)) as tf.Scalar;
      const ours = tf.grads((a: tf.Tensor, f: tf.Tensor, c: tf.Tensor) =>
        loss(conv2d(a as tf.Tensor4D, f as tf.Tensor4D, c, stride, 1, { activation: 'relu' })))([x, w, bias]);
      // im2col has gradients on every backend, so it is the reference wherever the test runs.
      const ref = tf.grads((a: tf.Tensor, f: tf.Tensor, c: tf.Tensor) =>
        loss(tf.relu(conv2dIm2col(tf.pad(a as tf.Tensor4D, [[0, 0], [1, 1], [1, 1], [0, 0]]), f as tf.Tensor4D, c, stride))))([x, w, bias]);
      for (const [i, name] of ['x', 'filter', 'bias'].entries()) expectClose(ours[i]!, ref[i]!, 1e-5, `d/d${name} stride ${stride}`);
      // The ReLU mattered: some outputs were negative, so the gradient differs from the linear conv's.
      const linear = tf.grads((c: tf.Tensor) => loss(conv2d(x, w, c, stride, 1)))([bias]);
      expect(tf.tidy(() => tf.max(tf.abs(tf.sub(linear[0]!, ours[2]!))).dataSync()[0]!)).to.be.greaterThan(1e-3);
      tf.dispose([r, ...ours, ...ref, ...linear]);
    }
    expect(tf.memory().numTensors).to.equal(before);
    tf.dispose([x, w, bias]);
  });
});
