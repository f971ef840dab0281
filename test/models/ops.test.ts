import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { conv2d, layerNorm, layerNormDroppingFirst, MAX_CONV_OUTPUT_PIXELS } from '../../src/models/ops.js';
import { useTestBackend } from '../helpers/backend.js';
import { expectClose } from '../helpers/fixtures.js';

describe('models/ops', () => {
  before(() => useTestBackend());

  it('layerNormDroppingFirst is the norm of every sequence\'s tokens but its first, exactly as norm then slice', () => {
    tf.tidy(() => {
      const x = tf.randomNormal([2, 5, 12], 1, 2, 'float32', 7) as tf.Tensor3D;
      const w = tf.randomNormal([12], 1, 0.5, 'float32', 8);
      const b = tf.randomNormal([12], 0, 0.5, 'float32', 9);
      const y = layerNormDroppingFirst(x, w, b, 1e-6);
      expect(y.shape).to.deep.equal([2, 4, 12]);
      expect(Array.from(y.dataSync())).to.deep.equal(Array.from(tf.slice(layerNorm(x, w, b, 1e-6), [0, 1, 0], [2, 4, 12]).dataSync()));
    });
  });

  it('conv2d computes outputs larger than one dispatch in row bands, exactly as one conv', () => {
    tf.tidy(() => {
      // 3×3 pad 1 (the head) and 3×3 stride 2 pad 1 (resize_layers.3) on a map of more than MAX_CONV_OUTPUT_PIXELS.
      const width = 1030;
      const height = 2 * Math.ceil(MAX_CONV_OUTPUT_PIXELS / (width / 2)) + 7; // banded at stride 2 too
      const x = tf.randomNormal([1, height, width, 2], 0, 1, 'float32', 1) as tf.Tensor4D;
      const w = tf.randomNormal([3, 3, 2, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
      const b = tf.tensor1d([0.5, -1, 2]);
      for (const stride of [1, 2]) {
        const ours = conv2d(x, w, b, stride, 1);
        const ref = tf.add(tf.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), w, stride, 'valid'), b);
        expect(ours.shape).to.deep.equal(ref.shape);
        expectClose(ours, ref, 1e-6, `conv stride ${stride}`);
      }
    });
  });
});
