/**
 * The wasm backend (XNNPACK, SIMD): the default CPU path. With more than one core it runs multi-threaded through the
 * shim in wasm-threads.ts; if that fails it falls back to one thread and says why on the backend line.
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, invalidParameterError } from '../errors.js';
import { BackendUnavailable, shortReason, type InitializedBackend } from './types.js';
import { SHIMMED_TFJS_VERSION, unrefWorkers, withThreadShim, type PThreadPool } from './wasm-threads.js';

export const WASM_THREADS_ENV = 'FLASHDEPTH_WASM_THREADS';
const MAX_THREADS = 8;

/** Threads to ask for: the option, else $FLASHDEPTH_WASM_THREADS, else every core (at most 8). */
export function wantedWasmThreads(requested?: number, env: NodeJS.ProcessEnv = process.env): number {
  if (requested !== undefined) {
    if (!Number.isInteger(requested) || requested < 1) throw invalidParameterError('--threads', 'positive integer', requested);
    return Math.min(requested, MAX_THREADS);
  }
  const fromEnv = env[WASM_THREADS_ENV];
  if (fromEnv !== undefined && fromEnv !== '') {
    const n = Number(fromEnv);
    if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${WASM_THREADS_ENV}=${fromEnv}: expected a positive integer`);
    return Math.min(n, MAX_THREADS);
  }
  return Math.min(os.availableParallelism(), MAX_THREADS);
}

export async function initWasm(requestedThreads?: number): Promise<InitializedBackend> {
  const threads = wantedWasmThreads(requestedThreads);
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  let note = '';
  if (threads > 1 && !simd) note = 'threads off: no wasm SIMD';
  else if (threads > 1 && tf.version_core !== SHIMMED_TFJS_VERSION) note = `threads off: shim is for tfjs ${SHIMMED_TFJS_VERSION}, found ${tf.version_core}`;
  else if (threads > 1) {
    try {
      wasm.setThreadsCount(threads);
      const ok = await withThreadShim(threads, () => tf.setBackend('wasm'));
      if (!ok) throw new Error('threaded wasm failed to initialise');
      unrefWorkers((tf.backend() as unknown as { wasm: { PThread?: PThreadPool } }).wasm.PThread);
      const running = wasm.getThreadsCount();
      return { name: 'wasm', device: `${running} threads, SIMD`, features: ['simd', ...(running > 1 ? ['threads'] : [])], threads: running };
    } catch (err) {
      note = `thread shim failed: ${shortReason(err, 80)}`;
    }
  }
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  wasm.setThreadsCount(1);
  if (!(await tf.setBackend('wasm'))) throw new BackendUnavailable('the wasm backend failed to initialise');
  const device = ['1 thread', simd ? 'SIMD' : 'no SIMD', ...(note ? [note] : [])].join(', ');
  return { name: 'wasm', device, features: simd ? ['simd'] : [], threads: 1 };
}
