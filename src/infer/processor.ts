/**
 * FlashDepthProcessor: the library API for streaming depth, usable without the CLI.
 *
 *   const processor = await FlashDepthProcessor.create({ config: 's', checkpoint: 'checkpoints/flashdepth-s.pth' });
 *   const { depth, width, height } = await processor.process({ rgb, width: 640, height: 360 }); // pushed frames
 *   for await (const r of processor.run('examples/example.mp4')) use(r.depth);                 // any input
 *   processor.dispose();
 *
 * The fork's processor got two things wrong that this one does not (spec §8.3): it reset the Mamba state on every
 * frame (here the state is carried until `reset()`, or until `run()` starts its next sequence), and it built Full
 * without its teacher (here the checkpoint loads strictly into the model the config describes, teacher included).
 *
 * A pushed frame whose size differs from the sequence's first frame is resized to the first size (bicubic) and the
 * state is carried on, the same rule as the frame sources (sources.ts): the Mamba state belongs to one feature-map
 * size. Call `reset()` first to start a new sequence at the new size instead.
 */
import * as tf from '@tensorflow/tfjs-core';
import { assertDeviceHealthy, selectBackend, type BackendInfo, type BackendName } from '../backend/index.js';
import { applyPrecision, precisionMode, type Precision } from '../kernels/mode.js';
import { configName, loadConfig, type ConfigOverrides, type FlashDepthConfig } from '../config.js';
import { ShapeError } from '../errors.js';
import { configDirFor, createFlashDepth, loadFlashDepthWeights } from '../models/create.js';
import type { FlashDepth } from '../models/flashdepth.js';
import { DEFAULT_LONG_SIDE_CAP, modelInputSize, PreprocessCache, preprocessFrames, resizeImage, toUnitRgb, type Size } from '../dataloaders/transforms.js';
import { resolveCheckpoint, type ResolvedCheckpoint } from './checkpoints.js';
import { randomizeWeights } from '../models/random-init.js';
import { openSources, type Frame, type FrameSource, type SourceOptions } from './sources.js';
import { StreamingPredictor, type ReplayStats } from './streaming.js';

export interface ProcessorOptions {
  /** A variant (`s`, `l`, `full`) or a config folder / .yaml file (default `full`: FlashDepth with its teacher). */
  config?: string;
  /** Config overrides (`key.sub=value`), applied after the config file. */
  overrides?: ConfigOverrides;
  /**
   * Weights (.pth or .safetensors). Default: the config's `load`, else the newest `iter_*.pth` in the config folder,
   * else `checkpoints/<variant>.pth` (resolveCheckpoint); a missing file is a CheckpointError saying how to get it.
   */
  checkpoint?: string;
  /** Random weights instead of a checkpoint: for timing and smoke runs only (the depth is meaningless). */
  randomWeights?: boolean;
  /** Where downloaded weights live (default `checkpoints`). */
  checkpointsDir?: string;
  /** Compute backend (default `auto`). */
  backend?: BackendName;
  /** wasm threads. */
  threads?: number;
  /** 'mixed': linear layers, convolutions and attention (where faster) on tensor cores (webgpu with f16 subgroup matrices; else fp32). */
  precision?: Precision;
  /** Long side cap before snapping to multiples of 14 (default 2044, the reference's; null: no cap). */
  longSideCap?: number | null;
  /** Largest attention score block materialised at once (elements). */
  maxScoreElements?: number;
  /**
   * On webgpu, replay a sequence's 3rd frame, recorded, for its later frames (src/infer/streaming.ts): the
   * same depths without tfjs' per-op host cost. Default true.
   */
  replay?: boolean;
  /** Called for things worth a log line (a frame resized mid-stream). */
  onWarning?: (message: string) => void;
}

/** RGB pixels, row-major, interleaved: bytes 0…255 or floats in [0, 1]. Grey (1) and RGBA (4, alpha ignored) too. */
export interface RgbFrame {
  rgb: Uint8Array | Uint8ClampedArray | Float32Array;
  width: number;
  height: number;
  /** Values per pixel (default 3). */
  channels?: 1 | 3 | 4;
}

/** Inverse depth (the model's ReLU'd output, ≈100/metres) at the processed resolution, row-major. */
export interface DepthResult {
  depth: Float32Array;
  width: number;
  height: number;
}

/** One result of `run()`: the depth plus the frame and sequence it came from. */
export interface SequenceDepth extends DepthResult {
  frame: Frame;
  source: FrameSource;
  /** 0-based position of the source among the inputs. */
  sequence: number;
}

/** What a processor runs: for logs and summary.json. */
export interface ProcessorInfo {
  /** Config folder name (`flashdepth-s`). */
  variant: string;
  configDir: string;
  checkpoint: string;
  backend: BackendInfo;
  /** The precision that runs ('mixed' falls back to 'fp32' without tensor cores). */
  precision: Precision;
  longSideCap: number | null;
}

export class FlashDepthProcessor {
  /** The first frame's size in the current sequence; later frames are resized to it. */
  private sequenceSize: Size | undefined;
  private disposed = false;
  /** Resize matrices and normalisation constants of the current sequence's frame size (uploaded once, not per frame). */
  private readonly preprocessCache = new PreprocessCache();
  private readonly predictor: StreamingPredictor;

  private constructor(
    readonly model: FlashDepth,
    readonly config: FlashDepthConfig,
    readonly info: ProcessorInfo,
    private readonly onWarning: ((message: string) => void) | undefined,
    replay: boolean,
  ) {
    this.predictor = new StreamingPredictor(model, { replay, onReplayUnavailable: (reason) => onWarning?.(`${reason}; every frame runs through tfjs`) });
  }

  /** Selects the backend, builds the model from the config and loads the checkpoint (strict: every key). */
  static async create(options: ProcessorOptions = {}): Promise<FlashDepthProcessor> {
    const configDir = configDirFor(options.config ?? 'full');
    const config = loadConfig(configDir, options.overrides ?? []);
    const checkpoint: ResolvedCheckpoint | null = options.randomWeights ? null : resolveCheckpoint({
      configDir: config.config_dir ?? configDir,
      load: options.checkpoint ?? config.load,
      ...(options.checkpointsDir ? { checkpointsDir: options.checkpointsDir } : {}),
    });
    const backend = await selectBackend(options.backend ?? 'auto', options.threads !== undefined ? { threads: options.threads } : {});
    const { precision, note } = applyPrecision(options.precision ?? precisionMode());
    if (note) options.onWarning?.(note);
    const model = createFlashDepth(config, options.maxScoreElements !== undefined ? { maxScoreElements: options.maxScoreElements } : {});
    try {
      if (checkpoint) loadFlashDepthWeights(model, checkpoint.path, { strict: true });
      else randomizeWeights(model);
    } catch (e) {
      model.dispose();
      throw e;
    }
    const longSideCap = options.longSideCap === undefined ? DEFAULT_LONG_SIDE_CAP : options.longSideCap;
    const info: ProcessorInfo = { variant: configName(config), configDir: config.config_dir ?? configDir, checkpoint: checkpoint?.path ?? 'random weights', backend, precision, longSideCap };
    return new FlashDepthProcessor(model, config, info, options.onWarning, options.replay ?? true);
  }

  /** The model input (and depth) size for frames of `size`: long-side cap, then each side up to a multiple of 14. */
  outputSize(size: Size): Size {
    return this.info.longSideCap === null ? modelInputSize(size, Infinity) : modelInputSize(size, this.info.longSideCap);
  }

  /**
   * One frame of the current sequence: RGB pixels, or a tensor [H, W, 3] / [1, H, W, 3] (int32 0…255 or float in
   * [0, 1]; not normalised). The Mamba state carries over from the previous call. The tensor stays the caller's.
   */
  async process(frame: RgbFrame | tf.Tensor): Promise<DepthResult> {
    this.checkAlive();
    const input = frame instanceof tf.Tensor ? frame : pixelsToTensor(frame);
    let x: tf.Tensor4D;
    try {
      x = tf.tidy(() => {
        let img = toUnitRgb(input, this.preprocessCache);
        const [, height, width] = img.shape;
        this.sequenceSize ??= { height, width };
        const first = this.sequenceSize;
        if (height !== first.height || width !== first.width) {
          this.onWarning?.(`frame of ${width}×${height} differs from the sequence's first frame; resized to ${first.width}×${first.height}`);
          img = resizeImage(img, first);
        }
        return preprocessFrames(img, { longSideCap: this.info.longSideCap, cache: this.preprocessCache });
      });
    } finally {
      if (input !== frame) input.dispose();
    }
    const depth = this.predictor.predict(x);
    x.dispose();
    try {
      const [, height, width] = depth.shape as [number, number, number];
      const data = (await depth.data()) as Float32Array;
      assertDeviceHealthy('a frame');
      return { depth: data, width, height };
    } finally {
      depth.dispose();
    }
  }

  /**
   * Depth for every frame of the inputs (anything openSources takes, or sources already opened). Each source is one
   * sequence: the state resets at its first frame only. Breaking out of the loop stops the decoder.
   */
  async *run(input: string | readonly string[] | FrameSource | readonly FrameSource[], options: SourceOptions = {}): AsyncGenerator<SequenceDepth> {
    this.checkAlive();
    const sources = openRunSources(input, { ...(this.onWarning ? { onWarning: this.onWarning } : {}), ...options });
    for (const [sequence, source] of sources.entries()) {
      this.reset();
      for await (const frame of source) {
        const result = await this.process(frame);
        yield { ...result, frame, source, sequence };
      }
    }
  }

  /** Starts a new sequence: zero Mamba state, and the next frame's size becomes the sequence's size. */
  reset(): void {
    this.checkAlive();
    this.predictor.reset();
    this.sequenceSize = undefined;
    this.preprocessCache.dispose(); // the next sequence may have another size
  }

  /** How the frames so far ran: through tfjs, recorded, or replayed. */
  get replayStats(): ReplayStats {
    return this.predictor.stats;
  }

  /** Frees the weights and the state. The backend stays selected (releaseBackend() ends it). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.preprocessCache.dispose();
    this.predictor.dispose();
    this.model.dispose();
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error('FlashDepthProcessor: used after dispose()');
  }
}

function isFrameSource(x: unknown): x is FrameSource {
  return typeof x === 'object' && x !== null && Symbol.asyncIterator in x;
}

function openRunSources(input: string | readonly string[] | FrameSource | readonly FrameSource[], options: SourceOptions): FrameSource[] {
  if (isFrameSource(input)) return [input];
  if (typeof input === 'string') return openSources(input, options);
  if (input.every(isFrameSource)) return [...(input as readonly FrameSource[])];
  return openSources(input as readonly string[], options);
}

/**
 * Interleaved pixels → [1, H, W, 3]: int32 0…255 for bytes, float32 for floats (toUnitRgb scales bytes); grey is
 * repeated to RGB, alpha dropped.
 */
function pixelsToTensor(frame: RgbFrame): tf.Tensor4D {
  const { rgb, width, height } = frame;
  const channels = frame.channels ?? 3;
  if (![1, 3, 4].includes(channels)) throw new ShapeError(`frame: expected 1, 3 or 4 channels but received ${String(channels)}`);
  if (!(Number.isInteger(width) && width > 0 && Number.isInteger(height) && height > 0)) {
    throw new ShapeError(`frame: expected positive integer width and height but received ${width}×${height}`);
  }
  if (rgb.length !== width * height * channels) {
    throw new ShapeError(`frame: expected ${width}×${height}×${channels} = ${width * height * channels} values but received ${rgb.length}`);
  }
  const upload = () => rgb instanceof Float32Array ? tf.tensor4d(rgb, [1, height, width, channels]) : tf.tensor4d(Int32Array.from(rgb), [1, height, width, channels], 'int32');
  if (channels === 3) return upload();
  return tf.tidy(() => {
    const values = upload();
    return (channels === 1 ? tf.tile(values, [1, 1, 1, 3]) : tf.slice(values, [0, 0, 0, 0], [1, height, width, 3])) as tf.Tensor4D;
  });
}
