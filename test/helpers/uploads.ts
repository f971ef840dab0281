/**
 * Counts tensors made from host data while a function runs: every tf.tensor(...) and every number operand
 * (`tf.mul(x, 0.5)`) reaches the backend as a `write` with values, which on webgpu is a fresh staging buffer and copy.
 * Kernel outputs are written without values and are not counted.
 */
import * as tf from '@tensorflow/tfjs-core';

interface Writable {
  write(values: unknown, shape: number[], dtype: tf.DataType): unknown;
}

/** Runs `fn` and returns its result with the number of host uploads it caused (as shapes, e.g. `3x32`, `scalar`). */
export function countUploads<T>(fn: () => T): { result: T; uploads: string[] } {
  const backend = tf.backend() as unknown as Writable;
  const hadOwn = Object.hasOwn(backend, 'write');
  const original = backend.write;
  const uploads: string[] = [];
  backend.write = function (this: Writable, values: unknown, shape: number[], dtype: tf.DataType) {
    if (values != null) uploads.push(shape.length === 0 ? 'scalar' : shape.join('x'));
    return original.call(this, values, shape, dtype);
  };
  try {
    return { result: fn(), uploads };
  } finally {
    if (hadOwn) backend.write = original;
    else delete (backend as Partial<Writable>).write;
  }
}
