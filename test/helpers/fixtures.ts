/**
 * Access to the PyTorch parity fixtures in ../shared/fixtures (or $FLASHDEPTH_FIXTURES).
 * Under CI=true a missing fixture fails the test; elsewhere it skips it.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { readNpyFloat32 } from '../../src/io/npy.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The fixtures folder. */
export const FIXTURES_DIR = process.env['FLASHDEPTH_FIXTURES'] ?? resolve(repoRoot, '..', 'shared', 'fixtures');

/** The repository root (where package.json is). */
export const REPO_ROOT = repoRoot;

/** Path of a fixture file; skips the calling test (or fails it under CI=true) if it is missing. */
export function fixture(ctx: Mocha.Context, ...parts: string[]): string {
  const p = join(FIXTURES_DIR, ...parts);
  if (!existsSync(p)) {
    if (process.env['CI'] === 'true') throw new Error(`missing parity fixture ${p} (CI=true: a missing fixture is a failure)`);
    ctx.skip();
  }
  return p;
}

/** Loads a fixture `.npy` as a float32 tensor. */
export function fixtureTensor(ctx: Mocha.Context, ...parts: string[]): tf.Tensor {
  const { shape, data } = readNpyFloat32(fixture(ctx, ...parts));
  return tf.tensor(data, shape, 'float32');
}

export interface Closeness {
  maxAbsErr: number;
  maxAbsRef: number;
}

/** max|actual − expected| and max|expected|; shapes must match. */
export function closeness(actual: tf.Tensor | Float32Array, expected: tf.Tensor | Float32Array): Closeness {
  if (actual instanceof tf.Tensor && expected instanceof tf.Tensor) {
    expect(actual.shape, 'shape').to.deep.equal(expected.shape);
  }
  const a = actual instanceof tf.Tensor ? actual.dataSync() : actual;
  const e = expected instanceof tf.Tensor ? expected.dataSync() : expected;
  expect(a.length, 'element count').to.equal(e.length);
  let maxAbsErr = 0;
  let maxAbsRef = 0;
  for (let i = 0; i < e.length; i++) {
    const d = Math.abs(a[i]! - e[i]!);
    if (!(d <= maxAbsErr)) maxAbsErr = Number.isNaN(d) ? Infinity : d;
    const r = Math.abs(e[i]!);
    if (r > maxAbsRef) maxAbsRef = r;
  }
  return { maxAbsErr, maxAbsRef };
}

/** Asserts max|actual − expected| ≤ rel · max|expected| (the parity bound of the models issue is rel = 1e-4). */
export function expectClose(actual: tf.Tensor | Float32Array, expected: tf.Tensor | Float32Array, rel = 1e-4, what = 'tensor'): Closeness {
  const c = closeness(actual, expected);
  expect(c.maxAbsErr, `${what}: max|ours − ref| = ${c.maxAbsErr} vs bound ${rel} · ${c.maxAbsRef}`).to.be.at.most(rel * c.maxAbsRef);
  return c;
}
