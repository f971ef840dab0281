/**
 * Multi-threaded tfjs wasm in Node (tfjs-notes §2.1). tfjs-backend-wasm 4.22 turns threads off in Node
 * (tensorflow/tfjs#3830) because it hands Emscripten `blob:` URLs for the pthread worker, which Node's worker_threads
 * rejects. This shim writes the worker and the module factory to temp files and maps those blob URLs to them for the
 * duration of backend initialisation. It depends on package internals: pinned to the tfjs version below, and a test
 * checks that the threads really run.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';

export const SHIMMED_TFJS_VERSION = '4.22.0';
const INIT_TIMEOUT_MS = 30_000;

const require = createRequire(import.meta.url);

interface WorkerModule {
  wasmWorkerContents: string;
}

interface NodeWorkerLike {
  unref(): void;
}

interface PThreadPool {
  unusedWorkers: NodeWorkerLike[];
  runningWorkers: NodeWorkerLike[];
  allocateUnusedWorker(): void;
}

let files: { dir: string; worker: string; mainScript: string } | undefined;

/** Writes the two temp files once per process and removes them at exit. */
function shimFiles(): { dir: string; worker: string; mainScript: string } {
  if (files) return files;
  const dir = mkdtempSync(join(os.tmpdir(), 'flashdepth-wasm-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const factory = require('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js') as () => unknown;
  const { wasmWorkerContents } = require('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js') as WorkerModule;
  const mainScript = join(dir, 'threaded-simd.cjs');
  const worker = join(dir, 'threaded-simd.worker.cjs');
  writeFileSync(mainScript, `var WasmBackendModuleThreadedSimd = ${factory.toString()};\n`);
  // The worker is handed the factory as a Blob and loads it with importScripts(blob URL): point that at the file.
  // The newline escaping matches what tfjs does before making its own Blob of the same text.
  const redirect = `\n;{const load = global.importScripts; global.importScripts = (f) => load(String(f).startsWith('blob:') ? ${JSON.stringify(mainScript)} : f);}\n`;
  writeFileSync(worker, wasmWorkerContents.replace(/\n/g, '\\n') + redirect);
  files = { dir, worker, mainScript };
  return files;
}

/**
 * Runs `init` (which must call tf.setBackend('wasm')) with the threaded build enabled for `threads` threads.
 * The C++ side caps threads at min(8, logical cores / 2), so os.cpus() is widened for that moment.
 */
export async function withThreadShim<T>(threads: number, init: () => Promise<T>): Promise<T> {
  const { worker, dir } = shimFiles();
  const createObjectURL = URL.createObjectURL;
  const cpus = os.cpus;
  URL.createObjectURL = (obj: Blob) => (obj instanceof Blob && obj.type === 'application/javascript' ? worker : createObjectURL.call(URL, obj));
  os.cpus = () => {
    const list = cpus();
    while (list.length > 0 && list.length < 2 * threads) list.push(list[0]!);
    return list;
  };
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  // A failing pthread worker surfaces as an uncaught exception that Emscripten's own handler rethrows (a crash), or
  // as an init that never settles; turn both into a rejection so the caller can fall back to one thread. After a
  // failure, the failed attempt's other workers may still report errors: those (their stacks name our temp folder)
  // are dropped, anything else is rethrown as usual.
  const guard = !process.hasUncaughtExceptionCaptureCallback();
  let failed = false;
  let timer: NodeJS.Timeout | undefined;
  const failure = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from the pthread workers in ${INIT_TIMEOUT_MS / 1000} s`)), INIT_TIMEOUT_MS);
    if (!guard) return;
    process.setUncaughtExceptionCaptureCallback((err) => {
      if (!failed) {
        failed = true;
        reject(err instanceof Error ? err : new Error(String(err)));
      } else if (!String((err as Error | null)?.stack).includes(dir)) {
        process.setUncaughtExceptionCaptureCallback(null);
        process.nextTick(() => {
          throw err;
        });
      }
    });
  });
  try {
    return await Promise.race([init(), failure]);
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    clearTimeout(timer);
    if (guard && !failed) process.setUncaughtExceptionCaptureCallback(null);
    URL.createObjectURL = createObjectURL;
    os.cpus = cpus;
  }
}

/** The pthread workers would keep Node alive after the work is done; let the process exit without them. */
export function unrefWorkers(pool: PThreadPool | undefined): void {
  if (!pool) return;
  for (const w of [...pool.unusedWorkers, ...pool.runningWorkers]) w.unref();
  const allocate = pool.allocateUnusedWorker.bind(pool);
  pool.allocateUnusedWorker = () => {
    allocate();
    pool.unusedWorkers[pool.unusedWorkers.length - 1]?.unref();
  };
}

export type { PThreadPool };
