/** The pure-JavaScript backend: slow (about 0.6 GFLOP/s) but everywhere; the reference in tests. */
import * as tf from '@tensorflow/tfjs-core';
import { BackendUnavailable, type InitializedBackend } from './types.js';

export async function initCpu(): Promise<InitializedBackend> {
  await import('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend('cpu'))) throw new BackendUnavailable('the cpu backend failed to initialise');
  silenceNodeBanner();
  return { name: 'cpu', device: 'JavaScript, 1 thread', features: [] };
}

/**
 * The cpu backend prints a multi-line "install tfjs-node" advertisement on its first tensor, which would break the
 * one-line backend report; make that first tensor here with tfjs warnings muted for just that moment.
 */
function silenceNodeBanner(): void {
  const env = tf.env();
  const prod = env.getBool('PROD');
  env.set('PROD', true);
  try {
    tf.dispose(tf.scalar(0));
  } finally {
    env.set('PROD', prod);
  }
}
