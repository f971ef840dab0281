/**
 * The only module that picks and initialises a tfjs backend. `auto` tries tensorflow (tfjs-node-gpu / tfjs-node),
 * webgpu, wasm, cpu in that order and remembers why it passed over each; a named backend that cannot run is a
 * BackendError, never a silent fallback. Exactly one log line reports the outcome.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendError, FlashDepthError } from '../errors.js';
import { log } from '../log.js';
import { initCpu } from './cpu.js';
import { initTensorflow } from './tensorflow.js';
import {
  BACKEND_NAMES,
  BackendUnavailable,
  shortReason,
  type BackendInfo,
  type BackendName,
  type ConcreteBackendName,
  type InitializedBackend,
  type SkippedBackend,
} from './types.js';
import { initWasm } from './wasm.js';
import { initWebGPU, releaseWebGPU, takeDeviceError } from './webgpu.js';

export { BACKEND_NAMES, type BackendInfo, type BackendName, type ConcreteBackendName, type SkippedBackend };

export interface SelectBackendOptions {
  /** wasm threads (default: $FLASHDEPTH_WASM_THREADS, else every core, at most 8). */
  threads?: number;
  /** Print the backend line through the logger (default true). */
  report?: boolean;
}

/** `auto`'s order. */
export const AUTO_ORDER: readonly ConcreteBackendName[] = ['tensorflow', 'webgpu', 'wasm', 'cpu'];

let active: BackendInfo | undefined;

function init(name: ConcreteBackendName, auto: boolean, options: SelectBackendOptions): Promise<InitializedBackend> {
  switch (name) {
    case 'tensorflow':
      return initTensorflow();
    case 'webgpu':
      return initWebGPU(auto);
    case 'wasm':
      return initWasm(options.threads);
    case 'cpu':
      return initCpu();
  }
}

export async function selectBackend(name: BackendName, options: SelectBackendOptions = {}): Promise<BackendInfo> {
  if (!(BACKEND_NAMES as readonly string[]).includes(name)) {
    throw new BackendError(`--backend ${String(name)}: unknown backend; expected one of ${BACKEND_NAMES.join(', ')}`);
  }
  // Selecting the running backend again (tests, library code after the CLI) keeps it and stays quiet.
  if (active && (name === active.name || name === 'auto') && tf.getBackend() === active.name) return active;

  const candidates = name === 'auto' ? AUTO_ORDER : [name];
  const skipped: SkippedBackend[] = [];
  for (const candidate of candidates) {
    try {
      const ready = await init(candidate, name === 'auto', options);
      active = { ...ready, skipped };
      if (options.report ?? true) log.info(describeBackend(active));
      return active;
    } catch (err) {
      const reason = err instanceof BackendUnavailable ? err.reason : shortReason(err);
      if (name !== 'auto') {
        if (err instanceof FlashDepthError) throw err;
        throw new BackendError(`--backend ${name}: ${reason}`);
      }
      skipped.push({ name: candidate, reason });
    }
  }
  throw new BackendError(`--backend auto: no backend could be initialised (${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')})`);
}

/** The backend line: `backend: wasm [2 threads, SIMD]; skipped tensorflow: <reason>; skipped webgpu: <reason>`. */
export function describeBackend(info: BackendInfo): string {
  const features = info.features.length > 0 && info.name === 'webgpu' ? `; features ${info.features.join(', ')}` : '';
  const skipped = info.skipped.map((s) => `; skipped ${s.name}: ${s.reason}`).join('');
  return `backend: ${info.name} [${info.device}${features}]${skipped}`;
}

/**
 * Throws a BackendError when the GPU reported an error since the last check (out of memory, an invalid buffer): the
 * tensors computed since then are not trustworthy. Call after each frame or step, once its results were read back
 * (the readback is what delivers the error). A no-op on the CPU backends.
 */
export function assertDeviceHealthy(during: string): void {
  const message = takeDeviceError();
  if (message !== null) {
    throw new BackendError(`webgpu: the GPU reported an error during ${during}, so its results are invalid (out of GPU memory? try a smaller batch or resolution): ${message}`);
  }
}

/** The backend selectBackend last initialised, if any. */
export function activeBackend(): BackendInfo | undefined {
  return active;
}

/**
 * Lets the process exit: dawn.node holds it open while its instance is referenced. Call once when all tensor work is
 * done (the CLI does); the backend is unusable afterwards.
 */
export function releaseBackend(): void {
  if (active?.name === 'webgpu') releaseWebGPU();
  active = undefined;
}
