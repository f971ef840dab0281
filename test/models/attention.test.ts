/** Budgeted multi-head attention: exact values, chunked == unchunked, bounded peak memory, no leaks. */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { ShapeError } from '../../src/errors.js';
import { queryBlockRows, scaledDotProductAttention } from '../../src/models/attention.js';
import { useTestBackend } from '../helpers/backend.js';
import { expectClose } from '../helpers/fixtures.js';

/** Plain-JS softmax(q·kᵀ·scale)·v with heads as contiguous channel groups (the reference layout). */
function naiveAttention(q: Float32Array, k: Float32Array, v: Float32Array, b: number, lq: number, lk: number, c: number, heads: number): Float32Array {
  const dh = c / heads;
  const scale = 1 / Math.sqrt(dh);
  const out = new Float32Array(b * lq * c);
  for (let n = 0; n < b; n++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < lq; i++) {
        const scores = new Float64Array(lk);
        for (let j = 0; j < lk; j++) {
          let s = 0;
          for (let d = 0; d < dh; d++) s += q[(n * lq + i) * c + h * dh + d]! * k[(n * lk + j) * c + h * dh + d]!;
          scores[j] = s * scale;
        }
        const max = Math.max(...scores);
        let sum = 0;
        for (let j = 0; j < lk; j++) sum += (scores[j] = Math.exp(scores[j]! - max));
        for (let d = 0; d < dh; d++) {
          let acc = 0;
          for (let j = 0; j < lk; j++) acc += scores[j]! * v[(n * lk + j) * c + h * dh + d]!;
          out[(n * lq + i) * c + h * dh + d] = acc / sum;
        }
      }
    }
  }
  return out;
}

describe('models/attention', () => {
  before(async () => {
    await useTestBackend();
  });

  it('computes a hand-checked single-head example', () => {
    // scores = [1, 0] → softmax = [e, 1]/(e+1); out = (e·[1, 2] + [3, 4])/(e+1)
    const out = tf.tidy(() => scaledDotProductAttention(
      tf.tensor3d([[[1, 0]]]), tf.tensor3d([[[1, 0], [0, 1]]]), tf.tensor3d([[[1, 2], [3, 4]]]), 1, { scale: 1 },
    ).dataSync());
    const e = Math.E;
    expect(out[0]).to.be.closeTo((e + 3) / (e + 1), 1e-6);
    expect(out[1]).to.be.closeTo((2 * e + 4) / (e + 1), 1e-6);
  });

  it('chooses query blocks that respect the score budget', () => {
    expect(queryBlockRows(11973, 11973, 2 ** 25)).to.equal(2802); // 2802·11973 = 33.5 M ≤ 2^25 scores per head block
    expect(queryBlockRows(37, 29, 29 * 4)).to.equal(4);
    expect(queryBlockRows(100, 100, 1)).to.equal(1);
    expect(queryBlockRows(100, 100, 1e9)).to.equal(100);
  });

  it('gives the same result chunked (tiny budgets) as unchunked, and as a plain-JS reference', () => {
    const [b, lq, lk, c, heads] = [2, 37, 29, 24, 3];
    tf.tidy(() => {
      const q = tf.randomNormal([b, lq, c], 0, 2, 'float32', 11);
      const k = tf.randomNormal([b, lk, c], 0, 2, 'float32', 12);
      const v = tf.randomNormal([b, lk, c], 0, 1, 'float32', 13);
      const reference = naiveAttention(q.dataSync() as Float32Array, k.dataSync() as Float32Array, v.dataSync() as Float32Array, b, lq, lk, c, heads);
      const whole = scaledDotProductAttention(q, k, v, heads);
      expectClose(whole.dataSync() as Float32Array, reference, 1e-5, 'unchunked vs JS reference');
      for (const budget of [lk * 4, lk * 10, 1]) { // 10, 4 and 37 query blocks per head
        const chunked = scaledDotProductAttention(q, k, v, heads, { maxScoreElements: budget });
        expect(chunked.shape).to.deep.equal([b, lq, c]);
        expectClose(chunked, whole, 1e-6, `budget ${budget}`);
      }
      // The GPU path (all heads in one batched matMul per block), chunked and not.
      for (const budget of [undefined, b * heads * lk * 5]) {
        const batched = scaledDotProductAttention(q, k, v, heads, { batchedHeads: true, maxScoreElements: budget });
        expectClose(batched, whole, 1e-6, `batched heads, budget ${budget}`);
      }
    });
  });

  it('keeps the peak memory near one block of scores', async () => {
    const [lq, c, heads] = [1024, 32, 4];
    const q = tf.randomNormal([1, lq, c], 0, 1, 'float32', 1);
    const headScoreBytes = lq * lq * 4; // 4 MiB: one head's full score matrix
    // tf.profile returns the engine's one shared profile object (read it before the next profile); its peakBytes is
    // the engine-wide total, so subtract what was allocated before.
    const peakBytes = async (maxScoreElements?: number) => {
      const before = tf.memory().numBytes;
      const profile = await tf.profile(() => tf.tidy(() => { scaledDotProductAttention(q, q, q, heads, { maxScoreElements }).dataSync(); }));
      return profile.peakBytes - before;
    };
    const whole = await peakBytes();
    const chunked = await peakBytes(lq * 32); // 32 blocks of 32 query rows per head
    q.dispose();
    expect(whole, 'unchunked holds one head\'s full score matrix').to.be.at.least(headScoreBytes);
    // One block's scores and softmax are 2 × 128 KiB on top of ~0.6 MiB of inputs, head views and outputs; keeping
    // every block of a head alive (no per-block tidy) would reach 8 MiB.
    expect(chunked, 'chunked').to.be.below(headScoreBytes / 2);
  });

  it('is differentiable on wasm (chunked), matching a finite difference', () => {
    tf.tidy(() => {
      const q = tf.randomNormal([1, 6, 8], 0, 1, 'float32', 21);
      const k = tf.randomNormal([1, 5, 8], 0, 1, 'float32', 22);
      const v = tf.randomNormal([1, 5, 8], 0, 1, 'float32', 23);
      const w = tf.randomNormal([1, 6, 8], 0, 1, 'float32', 24);
      const loss = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => tf.sum(tf.mul(scaledDotProductAttention(qq, kk, vv, 2, { maxScoreElements: 10 }), w));
      const [gq, gk, gv] = tf.grads((qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => loss(qq, kk, vv))([q, k, v]);
      const eps = 1e-2;
      const bump = (t: tf.Tensor, index: number, delta: number) => tf.add(t, tf.mul(tf.reshape(tf.oneHot([index], t.size), t.shape), delta));
      for (const [name, g, arg] of [['q', gq!, 0], ['k', gk!, 1], ['v', gv!, 2]] as const) {
        const index = 13;
        const args = [q, k, v];
        const plus = [...args]; plus[arg] = bump(args[arg]!, index, eps);
        const minus = [...args]; minus[arg] = bump(args[arg]!, index, -eps);
        const numeric = (loss(plus[0]!, plus[1]!, plus[2]!).dataSync()[0]! - loss(minus[0]!, minus[1]!, minus[2]!).dataSync()[0]!) / (2 * eps);
        expect(g.dataSync()[index], `d loss / d ${name}[${index}]`).to.be.closeTo(numeric, 2e-3);
      }
    });
  });

  it('names the shapes in errors', () => {
    tf.tidy(() => {
      expect(() => scaledDotProductAttention(tf.zeros([1, 4, 6]), tf.zeros([1, 5, 6]), tf.zeros([1, 5, 6]), 4)).to.throw(ShapeError,
        'attention: 6 channels do not split into 4 heads');
      expect(() => scaledDotProductAttention(tf.zeros([1, 4, 6]), tf.zeros([1, 5, 6]), tf.zeros([1, 4, 6]), 2)).to.throw(ShapeError,
        'attention: expected q [B, Lq, C], k and v [B, Lk, C], got [1, 4, 6], [1, 5, 6], [1, 4, 6]');
    });
  });

  it('does not leak tensors', () => {
    const q = tf.randomNormal([1, 20, 16], 0, 1, 'float32', 3);
    const start = tf.memory().numTensors;
    tf.dispose(scaledDotProductAttention(q, q, q, 2, { maxScoreElements: 20 * 3 }));
    tf.dispose(scaledDotProductAttention(q, q, q, 2));
    expect(tf.memory().numTensors).to.equal(start);
    q.dispose();
  });
});
