/**
 * Position-embedding interpolation cache (src/models/pos-embed.ts): outside a gradient tape the result is computed
 * once per grid and embedding value, under a tape it is recomputed so pos_embed gets its gradient.
 * (Parity of the interpolation itself with PyTorch is in dinov2.test.ts.)
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers'; // registers the core ops' gradients (see src/models/ops.ts)
import { expect } from 'chai';
import { bicubicMatrix, INTERPOLATE_OFFSET, PosEmbedInterpolator } from '../../src/models/pos-embed.js';
import { useTestBackend } from '../helpers/backend.js';
import { closeness } from '../helpers/fixtures.js';
import { countUploads } from '../helpers/uploads.js';

const S = 5; // stored grid side
const D = 3;

/** The interpolation written out with the JS matrices: out[i·pw + j] = Σ_{r,c} R[i,r]·C[j,c]·grid[r·S + c]. */
function reference(values: Float32Array, ph: number, pw: number): Float32Array {
  const rows = bicubicMatrix(ph, S, (ph + INTERPOLATE_OFFSET) / S);
  const cols = bicubicMatrix(pw, S, (pw + INTERPOLATE_OFFSET) / S);
  const out = new Float32Array((1 + ph * pw) * D);
  out.set(values.subarray(0, D));
  for (let i = 0; i < ph; i++) for (let j = 0; j < pw; j++) for (let r = 0; r < S; r++) for (let c = 0; c < S; c++) {
    const w = rows[i * S + r]! * cols[j * S + c]!;
    for (let k = 0; k < D; k++) out[(1 + i * pw + j) * D + k]! += w * values[(1 + r * S + c) * D + k]!;
  }
  return out;
}

describe('models/pos-embed', () => {
  before(() => useTestBackend());

  it('inference: the result is computed once per grid, reused without uploads or new tensors, and follows a changed weight', () => {
    const interp = new PosEmbedInterpolator(S);
    const posEmbed = tf.variable(tf.randomNormal([1, 1 + S * S, D], 0, 1, 'float32', 3));
    const start = tf.memory().numTensors;
    const first = tf.tidy(() => interp.interpolate(posEmbed as tf.Tensor3D, 3, 4));
    expect(tf.memory().numTensors - start, 'two matrices and the result are kept').to.equal(3);
    expect(closeness(first, reference(posEmbed.dataSync() as Float32Array, 3, 4)).maxAbsErr).to.be.below(1e-5);

    const again = countUploads(() => tf.tidy(() => interp.interpolate(posEmbed as tf.Tensor3D, 3, 4)));
    expect(again.result, 'the cached tensor').to.equal(first);
    expect(again.uploads).to.deep.equal([]);
    expect(tf.memory().numTensors - start).to.equal(3);

    // An optimizer step or a checkpoint load assigns new data: the old result is replaced, not kept alongside.
    const next = tf.mul(posEmbed, -2);
    posEmbed.assign(next);
    next.dispose();
    const updated = tf.tidy(() => interp.interpolate(posEmbed as tf.Tensor3D, 3, 4));
    expect(updated).to.not.equal(first);
    expect(first.isDisposed).to.equal(true);
    expect(closeness(updated, reference(posEmbed.dataSync() as Float32Array, 3, 4)).maxAbsErr).to.be.below(1e-5);
    expect(tf.memory().numTensors - start).to.equal(3);

    interp.dispose();
    expect(tf.memory().numTensors).to.equal(start);
    posEmbed.dispose();
  });

  it('under a gradient tape it recomputes from pos_embed: d Σ out / d grid[r, c] = (Σ_i R[i, r]) · (Σ_j C[j, c]), CLS 1', () => {
    const interp = new PosEmbedInterpolator(S);
    const posEmbed = tf.variable(tf.randomNormal([1, 1 + S * S, D], 0, 1, 'float32', 4));
    tf.tidy(() => interp.interpolate(posEmbed as tf.Tensor3D, 3, 4)); // an inference result is cached first
    const rows = bicubicMatrix(3, S, (3 + INTERPOLATE_OFFSET) / S);
    const cols = bicubicMatrix(4, S, (4 + INTERPOLATE_OFFSET) / S);
    const colSum = (m: Float32Array, n: number, k: number) => Array.from({ length: n }, (_, i) => m[i * S + k]!).reduce((a, b) => a + b, 0);
    const expected = new Float32Array((1 + S * S) * D);
    expected.fill(1, 0, D);
    for (let r = 0; r < S; r++) for (let c = 0; c < S; c++) expected.fill(colSum(rows, 3, r) * colSum(cols, 4, c), (1 + r * S + c) * D, (2 + r * S + c) * D);
    tf.tidy(() => {
      const { grads } = tf.variableGrads(() => tf.sum(interp.interpolate(posEmbed as tf.Tensor3D, 3, 4)) as tf.Scalar, [posEmbed]);
      expect(closeness(grads[posEmbed.name]!, expected).maxAbsErr).to.be.below(1e-5);
    });
    interp.dispose();
    posEmbed.dispose();
  });
});
