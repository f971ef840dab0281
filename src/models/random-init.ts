/**
 * Random weights of realistic magnitude, for timing and smoke runs without a checkpoint (`npm run bench`,
 * `npm run infer -- --random-weights`). Not the reference's training initialisation (spec §3.6): never zeros, which
 * can run faster than real data and hide indexing bugs.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { FlashModule } from './module.js';

/** Random weights of realistic magnitude: norms/scales near 1, others ~U(±√(3/fan_in)). */
export function randomizeWeights(model: FlashModule, seed = 1): void {
  let s = seed;
  for (const p of model.namedParameters()) {
    const shape = p.spec.shape;
    const last = p.key.split('.').pop() ?? '';
    tf.tidy(() => {
      const u = tf.randomUniform(shape, -1, 1, 'float32', s++);
      let v: tf.Tensor;
      if (shape.length >= 2) {
        const fanIn = shape.slice(0, -1).reduce((a, b) => a * b, 1);
        v = tf.mul(u, Math.sqrt(3 / fanIn));
      } else if (last === 'gamma' || /norm/.test(p.key) && last === 'weight') {
        v = tf.add(1, tf.mul(u, 0.1));
      } else if (last === 'A_log') {
        v = tf.mul(tf.add(u, 1), Math.log(16) / 2);
      } else {
        v = tf.mul(u, 0.1);
      }
      p.spec.variable.write(v);
    });
  }
}

