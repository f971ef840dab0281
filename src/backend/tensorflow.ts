/**
 * tfjs-node-gpu / tfjs-node (libtensorflow). Both are optionalDependencies whose install downloads libtensorflow, so
 * they are usually absent: load them only through a guarded dynamic import.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendUnavailable, isModuleNotFound, shortReason, type InitializedBackend } from './types.js';

const PACKAGES = [
  { specifier: '@tensorflow/tfjs-node-gpu', device: 'libtensorflow (tfjs-node-gpu, CUDA)' },
  { specifier: '@tensorflow/tfjs-node', device: 'libtensorflow (tfjs-node, CPU)' },
] as const;

export async function initTensorflow(): Promise<InitializedBackend> {
  const notInstalled: string[] = [];
  const failures: string[] = [];
  for (const { specifier, device } of PACKAGES) {
    try {
      // A string variable, so that tsc does not need the (absent) package's types.
      const name: string = specifier;
      await import(name);
    } catch (err) {
      if (isModuleNotFound(err, specifier)) notInstalled.push(specifier);
      else failures.push(`${specifier} failed to load: ${shortReason(err, 80)}`);
      continue;
    }
    if (await tf.setBackend('tensorflow')) return { name: 'tensorflow', device, features: [] };
    failures.push(`${specifier} loaded but its backend failed to initialise`);
  }
  const reasons = [...failures];
  if (notInstalled.length > 0) reasons.push(`not installed (${notInstalled.join(', ')})`);
  throw new BackendUnavailable(reasons.join('; '));
}
