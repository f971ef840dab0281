/**
 * The combined training loader (spec §5.1 data loop): one sampler per dataset, each shuffled per epoch and cut into
 * full batches (drop_last); batch k comes from dataset k mod n (round-robin), so every batch is single-dataset.
 * Clips are decoded on worker threads (or in-process with workers = 0) with `prefetch` batches in flight.
 */
import { InputError, invalidParameterError } from '../errors.js';
import type { ClipRequest } from './clip-loader.js';
import { datasetSpec, type FileDatasetName } from './datasets.js';
import { runClipRequest, type AnyClipRequest } from './requests.js';
import { Rng, type RngState } from './rng.js';
import { clipFrameIndices } from './sampler.js';
import { indexDataset, type DatasetIndex } from './scene-index.js';
import { TRAIN_TARGETS } from './clip-loader.js';
import type { Size } from './transforms.js';
import { ClipWorkerPool } from './worker-pool.js';
import type { Clip, DatasetName, ResolutionMode } from './types.js';

export interface LoaderOptions {
  dataRoot: string;
  datasets: DatasetName[];
  mode: ResolutionMode;
  videoLength?: number;
  batchSize?: number;
  seed?: number;
  /** Decoding threads; 0 decodes in the calling thread. */
  workers?: number;
  /** Batches decoded ahead of the consumer. */
  prefetch?: number;
  /** Skip (and count) clips whose files are missing or unreadable instead of failing. */
  skipBad?: boolean;
  /** `random` dataset: clips per epoch and frame size (default 64 clips at the mode's training size). */
  randomItems?: number;
  randomSize?: Size;
  /** Use the index cache next to the data (default true). */
  indexCache?: boolean;
}

export interface Batch {
  dataset: DatasetName;
  clips: Clip[];
}

/** One dataset's items (scene, frame position), reshuffled every epoch. */
class DatasetSampler {
  private order: number[] = [];
  private cursor = 0;
  epoch = 0;

  constructor(
    readonly name: DatasetName,
    private readonly items: Array<[number, number]>,
    private readonly index: DatasetIndex | null,
    private readonly rng: Rng,
    private readonly opts: Required<Pick<LoaderOptions, 'videoLength' | 'batchSize' | 'mode'>> & { randomSize: Size },
  ) {
    if (items.length < opts.batchSize) throw new InputError(`${name}: ${items.length} training clips, fewer than one batch of ${opts.batchSize}`);
    this.reshuffle();
  }

  get batchesPerEpoch(): number {
    return Math.floor(this.items.length / this.opts.batchSize);
  }

  private reshuffle(): void {
    this.order = this.rng.permutation(this.items.length);
    this.cursor = 0;
  }

  /** The next item's request; a new epoch starts when fewer than a batch of items is left (drop_last). */
  nextRequest(atBatchStart: boolean): AnyClipRequest {
    if (atBatchStart && this.order.length - this.cursor < this.opts.batchSize) {
      this.epoch++;
      this.reshuffle();
    }
    if (this.cursor >= this.order.length) this.reshuffle();
    const [sceneIdx, position] = this.items[this.order[this.cursor++]!]!;
    const { videoLength, mode } = this.opts;
    if (this.index === null) return { dataset: 'random', seed: this.rng.nextUint32(), length: videoLength, size: this.opts.randomSize };
    const scene = this.index.scenes[sceneIdx]!;
    const stride = mode === '2k' ? 2 : datasetSpec(this.index.dataset).stride;
    const positions = clipFrameIndices(position, scene.frames.length, videoLength, stride, this.rng);
    const req: ClipRequest = {
      dataset: this.index.dataset, split: 'train', mode, scene: scene.name, frameIndices: positions, seed: this.rng.nextUint32(),
      files: positions.map((p) => ({ rgb: scene.frames[p]!.rgb, depth: scene.frames[p]!.depth })),
    };
    return req;
  }
}

export class CombinedLoader {
  private readonly samplers: DatasetSampler[];
  private readonly pool: ClipWorkerPool | null;
  private readonly queue: Array<Promise<Batch>> = [];
  private batchCounter = 0;
  private readonly rng: Rng;
  /** Clips skipped under skipBad, with their messages. */
  readonly warnings: string[] = [];

  constructor(private readonly opts: LoaderOptions) {
    const videoLength = opts.videoLength ?? 5;
    const batchSize = opts.batchSize ?? 4;
    for (const [k, v] of [['videoLength', videoLength], ['batchSize', batchSize]] as const) {
      if (!Number.isInteger(v) || v < 1) throw invalidParameterError(k, 'positive integer', v);
    }
    if (opts.datasets.length === 0) throw invalidParameterError('datasets', 'at least one dataset name', opts.datasets);
    this.rng = new Rng(opts.seed ?? 42);
    const randomSize = opts.randomSize ?? TRAIN_TARGETS[opts.mode].size;
    this.samplers = opts.datasets.map((name) => {
      const rng = this.rng.fork();
      const common = { videoLength, batchSize, mode: opts.mode, randomSize };
      if (name === 'random') {
        const n = opts.randomItems ?? 64;
        return new DatasetSampler(name, Array.from({ length: n }, (_, i) => [0, i] as [number, number]), null, rng, common);
      }
      const index = indexDataset(opts.dataRoot, name as FileDatasetName, 'train', { cache: opts.indexCache ?? true });
      const items = index.scenes.flatMap((s, si) => s.frames.map((_, p) => [si, p] as [number, number]));
      return new DatasetSampler(name, items, index, rng, common);
    });
    const workers = opts.workers ?? 0;
    this.pool = workers > 0 ? new ClipWorkerPool(workers) : null;
  }

  /** Batches in one pass over every dataset's epoch, round-robin (the longest dataset decides). */
  get batchesPerEpoch(): number {
    return Math.max(...this.samplers.map((s) => s.batchesPerEpoch)) * this.samplers.length;
  }

  /** The next batch (batches keep coming; each dataset reshuffles when its epoch ends). */
  next(): Promise<Batch> {
    const depth = Math.max(1, this.opts.prefetch ?? 2);
    while (this.queue.length < depth) this.queue.push(this.enqueue());
    const b = this.queue.shift()!;
    this.queue.push(this.enqueue());
    return b;
  }

  private enqueue(): Promise<Batch> {
    const p = this.makeBatch();
    // The consumer sees the rejection when it reaches this batch; until then it must not count as unhandled.
    p.catch(() => undefined);
    return p;
  }

  private decode(req: AnyClipRequest): Promise<Clip> {
    return this.pool !== null ? this.pool.run(req) : runClipRequest(req);
  }

  private async makeBatch(): Promise<Batch> {
    const sampler = this.samplers[this.batchCounter++ % this.samplers.length]!;
    const batchSize = this.opts.batchSize ?? 4;
    const requests = Array.from({ length: batchSize }, (_, i) => sampler.nextRequest(i === 0));
    const results = await Promise.allSettled(requests.map((r) => this.decode(r)));
    const clips: Clip[] = [];
    let attempts = 0;
    for (const r of results) {
      if (r.status === 'fulfilled') { clips.push(r.value); continue; }
      this.handleFailure(r.reason);
    }
    // Replacements for skipped clips come from the same dataset so the batch stays full and single-dataset.
    while (clips.length < batchSize) {
      if (++attempts > 10 * batchSize) throw new InputError(`${sampler.name}: too many unreadable clips in a row (${this.warnings.length} skipped so far; last: ${this.warnings.at(-1)})`);
      try {
        clips.push(await this.decode(sampler.nextRequest(false)));
      } catch (e) {
        this.handleFailure(e);
      }
    }
    return { dataset: sampler.name, clips };
  }

  private handleFailure(e: unknown): void {
    if (this.opts.skipBad === true && e instanceof InputError) {
      this.warnings.push(e.message);
      return;
    }
    throw e;
  }

  /** Generator state for resuming: the loader's seed RNG (per-dataset RNGs are forked from it at construction). */
  rngState(): RngState {
    return this.rng.state();
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.queue);
    this.queue.length = 0;
    await this.pool?.close();
  }
}
