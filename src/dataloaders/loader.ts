/**
 * The combined training loader (spec §5.1 data loop): one sampler per dataset, each shuffled per epoch and cut into
 * full batches (drop_last); batch k comes from dataset k mod n (round-robin), so every batch is single-dataset.
 * Clips are decoded on worker threads (or in-process with workers = 0) with `prefetch` batches in flight.
 *
 * Resuming: `loader.state()` is a JSON-serialisable LoaderState for the position after the last batch `next()`
 * returned (not after the prefetched ones); `new CombinedLoader({...sameOptions, resumeFrom: state})` then yields
 * exactly the batches the original loader would have yielded next. Every random choice of a batch is drawn when the
 * batch is planned (synchronously, in order), so the batches do not depend on prefetch depth, workers or timing.
 */
import { ConfigError, InputError, invalidParameterError } from '../errors.js';
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
  /** Continue from a `loader.state()` taken with the same datasets, mode, batch size, clip length and seed. */
  resumeFrom?: LoaderState;
}

/** One dataset's position: its epoch, where it is in the epoch's order, and its generators. */
export interface SamplerState {
  dataset: DatasetName;
  /** Training items (scene, frame) of the dataset; a resumed loader must find the same number. */
  items: number;
  epoch: number;
  cursor: number;
  /** The generator state the current epoch's order was drawn from (the order itself is not stored). */
  shuffleRng: RngState;
  rng: RngState;
}

/** A CombinedLoader's position, JSON-serialisable (plain numbers, strings and arrays). */
export interface LoaderState {
  version: 1;
  /** Batches returned so far. */
  batches: number;
  options: { datasets: DatasetName[]; mode: ResolutionMode; batchSize: number; videoLength: number; seed: number };
  samplers: SamplerState[];
}

const STATE_VERSION = 1;

export interface Batch {
  dataset: DatasetName;
  clips: Clip[];
}

/** One dataset's items (scene, frame position), reshuffled every epoch. */
class DatasetSampler {
  private order: number[] = [];
  private cursor = 0;
  private shuffleState: RngState;
  epoch = 0;

  constructor(
    readonly name: DatasetName,
    private readonly items: Array<[number, number]>,
    private readonly index: DatasetIndex | null,
    private rng: Rng,
    private readonly opts: Required<Pick<LoaderOptions, 'videoLength' | 'batchSize' | 'mode'>> & { randomSize: Size },
  ) {
    if (items.length < opts.batchSize) throw new InputError(`${name}: ${items.length} training clips, fewer than one batch of ${opts.batchSize}`);
    this.shuffleState = rng.state();
    this.reshuffle();
  }

  get batchesPerEpoch(): number {
    return Math.floor(this.items.length / this.opts.batchSize);
  }

  private reshuffle(): void {
    this.shuffleState = this.rng.state();
    this.order = this.rng.permutation(this.items.length);
    this.cursor = 0;
  }

  state(): SamplerState {
    return { dataset: this.name, items: this.items.length, epoch: this.epoch, cursor: this.cursor, shuffleRng: [...this.shuffleState] as unknown as RngState, rng: this.rng.state() };
  }

  /** Restores a saved position: the epoch's order is redrawn from the generator state it was drawn from. */
  restore(s: SamplerState): void {
    if (s.dataset !== this.name || s.items !== this.items.length) {
      throw new ConfigError(`resumeFrom: ${s.dataset} had ${s.items} training clips when the state was saved, ${this.name} has ${this.items.length} now (the data changed)`);
    }
    if (!Number.isInteger(s.cursor) || s.cursor < 0 || s.cursor > this.items.length) throw invalidParameterError(`resumeFrom ${this.name} cursor`, `integer in [0, ${this.items.length}]`, s.cursor);
    this.rng = new Rng(s.shuffleRng);
    this.order = this.rng.permutation(this.items.length);
    this.shuffleState = s.shuffleRng;
    this.rng = new Rng(s.rng);
    this.cursor = s.cursor;
    this.epoch = s.epoch;
  }

  /** The next item's request; a new epoch starts when fewer than a batch of items is left (drop_last). */
  nextRequest(atBatchStart: boolean): AnyClipRequest {
    if (atBatchStart && this.order.length - this.cursor < this.opts.batchSize) {
      this.epoch++;
      this.reshuffle();
    }
    if (this.cursor >= this.order.length) this.reshuffle();
    return this.request(this.items[this.order[this.cursor++]!]!, this.rng);
  }

  /**
   * A stand-in for an unreadable clip (skipBad): a uniformly drawn item, from a generator of its own so that
   * replacements, drawn once decoding has failed, never shift the epoch order or later batches.
   */
  spareRequest(rng: Rng): AnyClipRequest {
    return this.request(this.items[rng.int(0, this.items.length)]!, rng);
  }

  /** Seeds the generator of one batch's replacement clips. */
  spareSeed(): number {
    return this.rng.nextUint32();
  }

  private request([sceneIdx, position]: [number, number], rng: Rng): AnyClipRequest {
    const { videoLength, mode } = this.opts;
    if (this.index === null) return { dataset: 'random', seed: rng.nextUint32(), length: videoLength, size: this.opts.randomSize };
    const scene = this.index.scenes[sceneIdx]!;
    const stride = mode === '2k' ? 2 : datasetSpec(this.index.dataset).stride;
    const positions = clipFrameIndices(position, scene.frames.length, videoLength, stride, rng);
    const req: ClipRequest = {
      dataset: this.index.dataset, split: 'train', mode, scene: scene.name, frameIndices: positions, seed: rng.nextUint32(),
      files: positions.map((p) => ({ rgb: scene.frames[p]!.rgb, depth: scene.frames[p]!.depth })),
    };
    return req;
  }
}

/** A planned batch: its requests and a generator for replacements, drawn in order when the batch is queued. */
interface PlannedBatch {
  sampler: DatasetSampler;
  requests: AnyClipRequest[];
  spare: Rng;
}

export class CombinedLoader {
  private readonly samplers: DatasetSampler[];
  private readonly pool: ClipWorkerPool | null;
  private readonly queue: Array<{ batch: Promise<Batch>; after: LoaderState }> = [];
  private batchCounter = 0;
  private readonly rng: Rng;
  private readonly batchSize: number;
  private readonly videoLength: number;
  /** The position after the last batch returned by next(). */
  private current: LoaderState;
  /** Clips skipped under skipBad, with their messages. */
  readonly warnings: string[] = [];

  constructor(private readonly opts: LoaderOptions) {
    const videoLength = opts.videoLength ?? 5;
    const batchSize = opts.batchSize ?? 4;
    for (const [k, v] of [['videoLength', videoLength], ['batchSize', batchSize]] as const) {
      if (!Number.isInteger(v) || v < 1) throw invalidParameterError(k, 'positive integer', v);
    }
    if (opts.datasets.length === 0) throw invalidParameterError('datasets', 'at least one dataset name', opts.datasets);
    this.batchSize = batchSize;
    this.videoLength = videoLength;
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
    if (opts.resumeFrom !== undefined) this.restore(opts.resumeFrom);
    this.current = this.snapshot();
    const workers = opts.workers ?? 0;
    this.pool = workers > 0 ? new ClipWorkerPool(workers) : null;
  }

  private optionsKey(): LoaderState['options'] {
    return { datasets: [...this.opts.datasets], mode: this.opts.mode, batchSize: this.batchSize, videoLength: this.videoLength, seed: this.opts.seed ?? 42 };
  }

  private restore(state: LoaderState): void {
    if (state.version !== STATE_VERSION) throw invalidParameterError('resumeFrom.version', String(STATE_VERSION), state.version);
    const want = this.optionsKey();
    for (const key of Object.keys(want) as Array<keyof LoaderState['options']>) {
      const a = JSON.stringify(state.options[key]);
      const b = JSON.stringify(want[key]);
      if (a !== b) throw new ConfigError(`resumeFrom: the loader state was saved with ${key} = ${a}, this loader has ${key} = ${b}`);
    }
    if (!Number.isInteger(state.batches) || state.batches < 0) throw invalidParameterError('resumeFrom.batches', 'non-negative integer', state.batches);
    this.samplers.forEach((s, i) => s.restore(state.samplers[i]!));
    this.batchCounter = state.batches;
  }

  private snapshot(): LoaderState {
    return { version: STATE_VERSION, batches: this.batchCounter, options: this.optionsKey(), samplers: this.samplers.map((s) => s.state()) };
  }

  /**
   * The position after the last batch returned by next(), as plain JSON data; pass it as `resumeFrom` to continue
   * with exactly the batches this loader would return next.
   */
  state(): LoaderState {
    return JSON.parse(JSON.stringify(this.current)) as LoaderState;
  }

  /** Batches in one pass over every dataset's epoch, round-robin (the longest dataset decides). */
  get batchesPerEpoch(): number {
    return Math.max(...this.samplers.map((s) => s.batchesPerEpoch)) * this.samplers.length;
  }

  /** The next batch (batches keep coming; each dataset reshuffles when its epoch ends). */
  async next(): Promise<Batch> {
    const depth = Math.max(1, this.opts.prefetch ?? 2);
    while (this.queue.length < depth) this.queue.push(this.enqueue());
    const { batch, after } = this.queue.shift()!;
    this.queue.push(this.enqueue());
    const b = await batch;
    // Callers that overlap next() calls may see batches resolve out of order; the position only moves forward.
    if (after.batches > this.current.batches) this.current = after;
    return b;
  }

  /** Plans the next batch now (all its random draws) and starts decoding it. */
  private enqueue(): { batch: Promise<Batch>; after: LoaderState } {
    const sampler = this.samplers[this.batchCounter++ % this.samplers.length]!;
    const requests = Array.from({ length: this.batchSize }, (_, i) => sampler.nextRequest(i === 0));
    const planned: PlannedBatch = { sampler, requests, spare: new Rng(sampler.spareSeed()) };
    const batch = this.makeBatch(planned);
    // The consumer sees the rejection when it reaches this batch; until then it must not count as unhandled.
    batch.catch(() => undefined);
    return { batch, after: this.snapshot() };
  }

  private decode(req: AnyClipRequest): Promise<Clip> {
    return this.pool !== null ? this.pool.run(req) : runClipRequest(req);
  }

  private async makeBatch({ sampler, requests, spare }: PlannedBatch): Promise<Batch> {
    const results = await Promise.allSettled(requests.map((r) => this.decode(r)));
    const clips: Clip[] = [];
    let attempts = 0;
    for (const r of results) {
      if (r.status === 'fulfilled') { clips.push(r.value); continue; }
      this.handleFailure(r.reason);
    }
    // Replacements for skipped clips come from the same dataset so the batch stays full and single-dataset.
    while (clips.length < this.batchSize) {
      if (++attempts > 10 * this.batchSize) throw new InputError(`${sampler.name}: too many unreadable clips in a row (${this.warnings.length} skipped so far; last: ${this.warnings.at(-1)})`);
      try {
        clips.push(await this.decode(sampler.spareRequest(spare)));
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

  /** The loader's seed generator (per-dataset generators are forked from it at construction); see state() to resume. */
  rngState(): RngState {
    return this.rng.state();
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.queue.map((q) => q.batch));
    this.queue.length = 0;
    await this.pool?.close();
  }
}
