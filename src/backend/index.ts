/**
 * The only module that picks and initialises a tfjs backend. (Minimal first version: wasm and cpu; the full
 * `auto|tensorflow|webgpu|wasm|cpu` selection with its log line lands with the foundation issue.)
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '../errors.js';

export type BackendName = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';

export interface BackendInfo {
  name: Exclude<BackendName, 'auto'>;
  device: string;
}

export async function selectBackend(name: BackendName): Promise<BackendInfo> {
  if (name === 'wasm') {
    await import('@tensorflow/tfjs-backend-wasm');
    if (!(await tf.setBackend('wasm'))) throw new BackendError('--backend wasm: the wasm backend failed to initialise');
    return { name: 'wasm', device: 'wasm (1 thread, SIMD)' };
  }
  if (name === 'cpu') {
    await import('@tensorflow/tfjs-backend-cpu');
    if (!(await tf.setBackend('cpu'))) throw new BackendError('--backend cpu: the cpu backend failed to initialise');
    return { name: 'cpu', device: 'cpu (JavaScript)' };
  }
  throw new BackendError(`--backend ${name}: not available yet`);
}
