/** A small pool of decoding worker threads; jobs go to the least-loaded worker. */
import { Worker } from 'node:worker_threads';
import { BackendError, ConfigError, FlashDepthError, InputError, ShapeError } from '../errors.js';
import type { AnyClipRequest } from './requests.js';
import type { Clip } from './types.js';

const ERRORS: Record<string, new (m: string) => Error> = { InputError, ConfigError, ShapeError, BackendError, FlashDepthError };

interface Pending { resolve: (c: Clip) => void; reject: (e: Error) => void; worker: number }

export class ClipWorkerPool {
  private readonly workers: Worker[];
  private readonly load: number[];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  constructor(size: number) {
    this.workers = Array.from({ length: size }, (_, w) => {
      const worker = new Worker(new URL('./worker.js', import.meta.url));
      worker.on('message', (msg: { id: number; clip?: Clip; error?: { name: string; message: string } }) => {
        const p = this.pending.get(msg.id);
        if (p === undefined) return;
        this.pending.delete(msg.id);
        this.load[w]!--;
        if (msg.error !== undefined) p.reject(new (ERRORS[msg.error.name] ?? Error)(msg.error.message));
        else p.resolve(msg.clip!);
      });
      worker.on('error', (e) => {
        for (const [id, p] of this.pending) if (p.worker === w) { this.pending.delete(id); p.reject(e); }
      });
      return worker;
    });
    this.load = this.workers.map(() => 0);
  }

  run(req: AnyClipRequest): Promise<Clip> {
    const w = this.load.indexOf(Math.min(...this.load));
    this.load[w]!++;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker: w });
      this.workers[w]!.postMessage({ id, req });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
