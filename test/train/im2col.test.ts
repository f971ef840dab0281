import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { conv2d, conv2dIm2col } from '../../src/models/ops.js';
import { useTestBackend } from '../helpers/backend.js';
import { expectClose } from '../helpers/fixtures.js';

describe('train: im2col convolution (conv filter gradients on wasm)', () => {
  before(() => useTestBackend());

  it('equals the fused conv for 3×3 stride 1 and 2, and 1×1', () => {
    tf.tidy(() => {
      const x = tf.randomNormal([2, 9, 11, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
      const b = tf.tensor1d([0.5, -1, 2, 0.25]);
      for (const [k, stride, pad] of [[3, 1, 1], [3, 2, 1], [1, 1, 0], [4, 2, 0]] as const) {
        const w = tf.randomNormal([k, k, 3, 4], 0, 1, 'float32', 10 + k) as tf.Tensor4D;
        const padded = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) as tf.Tensor4D;
        const ours = conv2dIm2col(padded, w, b, stride);
        const ref = tf.add(tf.conv2d(padded, w, stride, 'valid'), b);
        expect(ours.shape, `k${k} s${stride}`).to.deep.equal(ref.shape);
        expectClose(ours, ref, 1e-6, `k${k} s${stride}`);
      }
    });
  });

  it('conv2d takes the im2col path under a gradient tape on wasm: filter gradients match finite differences', () => {
    const x = tf.randomNormal([1, 7, 6, 2], 0, 1, 'float32', 3) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 2, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
    const bias = tf.tensor1d([0.1, 0.2, -0.3]);
    const r = tf.randomNormal([1, 4, 3, 3], 0, 1, 'float32', 5); // stride-2 output of a 7×6 map padded by 1
    const f = (filter: tf.Tensor4D, b: tf.Tensor) => tf.sum(tf.mul(conv2d(x, filter, b, 2, 1), r)) as tf.Scalar;
    const [gw, gb] = tf.grads((filter: tf.Tensor, b: tf.Tensor) => f(filter as tf.Tensor4D, b))([w, bias]);
    const wData = w.arraySync() as number[][][][];
    const gwData = gw!.arraySync() as number[][][][];
    const eps = 1e-2; // f is linear in the filter, so central differences are exact up to rounding
    for (const [i, j, c, o] of [[0, 0, 0, 0], [1, 2, 1, 2], [2, 1, 0, 1], [2, 2, 1, 0]] as const) {
      const shifted = (delta: number) => {
        const copy = structuredClone(wData);
        copy[i]![j]![c]![o]! += delta;
        return tf.tidy(() => f(tf.tensor4d(copy), bias).dataSync()[0]!);
      };
      const fd = (shifted(eps) - shifted(-eps)) / (2 * eps);
      expect(gwData[i]![j]![c]![o]!, `dF/dw[${i},${j},${c},${o}]`).to.be.closeTo(fd, 1e-3 * Math.max(1, Math.abs(fd)));
    }
    // dF/dbias_o = Σ r[..., o]
    expectClose(gb!, tf.sum(r, [0, 1, 2]), 1e-5, 'bias gradient');
    tf.dispose([x, w, bias, r, gw!, gb!]);
  });
});
