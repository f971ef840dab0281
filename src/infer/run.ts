/**
 * `npm run infer` as a library function: inputs → FlashDepthProcessor.run → DepthWriter per sequence.
 *
 * Each input sequence (a video, an image folder, a stream) gets its own output folder: `--out` itself when there is
 * one sequence, `<out>/<sequence name>` when there are several, `result/<sequence name>` without `--out`; a taken
 * folder becomes `_1`, `_2`, … (an earlier run is never overwritten). Folders are created at a sequence's first frame,
 * so an input that fails to open leaves nothing behind.
 */
import { basename, dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BackendName } from '../backend/index.js';
import type { Precision } from '../kernels/mode.js';
import { FlashDepthError, invalidParameterError } from '../errors.js';
import { log } from '../log.js';
import { probeVideo } from '../media/video.js';
import { DepthWriter, uniqueOutputDir, type OutputOptions, type RunSummary } from './outputs.js';
import { FlashDepthProcessor } from './processor.js';
import { ProgressReporter } from './progress.js';
import { openSources, type FrameSource } from './sources.js';

/** The outputs chosen per run (see OutputOptions in ./outputs.ts). */
type OutputChoices = Pick<OutputOptions, 'npy' | 'png16' | 'colorPng' | 'depthMp4' | 'sideBySideMp4' | 'colormap'>;

export interface InferOptions extends OutputChoices {
  /** Videos, image folders, globs, stream URLs or /dev/videoN. */
  inputs: readonly string[];
  /** Variant (`s`, `l`, `full`) or config folder (default configs/flashdepth, Full). */
  config?: string;
  checkpoint?: string;
  /** Random weights instead of a checkpoint (timing and smoke runs; the depth is meaningless). */
  randomWeights?: boolean;
  checkpointsDir?: string;
  backend?: BackendName;
  /** 'mixed': tensor-core linear layers, convolutions and attention where the device has them (see FlashDepthProcessor). */
  precision?: Precision;
  /** On webgpu, replay each sequence's 3rd frame, recorded, for its later frames (default true; see FlashDepthProcessor). */
  replay?: boolean;
  maxFrames?: number;
  targetFps?: number;
  /** Long-side cap (default 2044). */
  longSide?: number;
  /** Output folder (see the module comment). */
  out?: string;
  normalize?: 'video' | 'frame';
  /** Aborting stops after the current frame; every output written so far is finalised. */
  signal?: AbortSignal;
  /** Progress bar / log lines (default true). */
  progress?: boolean;
}

/** The run was stopped (Ctrl-C) after writing and finalising what it had; exit code 130 like a shell. */
export class InterruptedError extends FlashDepthError {
  override readonly exitCode = 130;
}

/** Frame rate and frame count of a file video, for the mp4 outputs and the progress ETA. */
async function videoTiming(source: FrameSource, options: InferOptions): Promise<{ fps?: number; total?: number }> {
  if (source.kind !== 'video' || source.live) return options.maxFrames ? { total: options.maxFrames } : {};
  const info = await probeVideo({ location: source.location, kind: /^[a-z]+:\/\//i.test(source.location) ? 'stream' : 'file' });
  const fps = options.targetFps ?? info.fps;
  let total = fps && info.durationMs ? Math.round((info.durationMs / 1000) * fps) : undefined;
  if (options.maxFrames !== undefined) total = Math.min(total ?? options.maxFrames, options.maxFrames);
  return { ...(fps ? { fps } : {}), ...(total !== undefined ? { total } : {}) };
}

function outputDir(source: FrameSource, options: InferOptions, sequences: number): string {
  if (!options.out) return uniqueOutputDir(source.name, 'result');
  if (sequences > 1) return uniqueOutputDir(source.name, options.out);
  return uniqueOutputDir(basename(options.out), dirname(options.out));
}

function checkOptions(options: InferOptions): void {
  if (options.longSide !== undefined && !(Number.isInteger(options.longSide) && options.longSide >= 14)) {
    throw invalidParameterError('--long-side', 'integer >= 14', options.longSide);
  }
  const outputs = [options.npy ?? true, options.png16, options.colorPng, options.depthMp4 ?? true, options.sideBySideMp4];
  if (!outputs.some(Boolean)) throw invalidParameterError('outputs', 'at least one of --npy, --png16, --color-png, --depth-mp4, --side-by-side', 'none');
}

/**
 * Runs inference over every input and writes the outputs; returns one summary per sequence. Throws
 * InterruptedError (after finalising the outputs) when `signal` aborts.
 */
export async function runInference(options: InferOptions): Promise<RunSummary[]> {
  checkOptions(options);
  const warn = (m: string): void => log.warn(m);
  const sourceOptions = {
    ...(options.maxFrames !== undefined ? { maxFrames: options.maxFrames } : {}),
    ...(options.targetFps !== undefined ? { targetFps: options.targetFps } : {}),
    onWarning: warn,
  };
  // Inputs are opened and videos probed before the model loads, so a bad input fails at once.
  const sources = openSources(options.inputs, sourceOptions);
  const timings = [];
  for (const source of sources) timings.push(await videoTiming(source, options));

  const processor = await FlashDepthProcessor.create({
    config: options.config ?? 'configs/flashdepth',
    ...(options.checkpoint !== undefined ? { checkpoint: options.checkpoint } : {}),
    ...(options.checkpointsDir !== undefined ? { checkpointsDir: options.checkpointsDir } : {}),
    ...(options.randomWeights ? { randomWeights: true } : {}),
    backend: options.backend ?? 'auto',
    ...(options.precision !== undefined ? { precision: options.precision } : {}),
    replay: options.replay ?? true,
    longSideCap: options.longSide ?? 2044,
    onWarning: warn,
  });
  const { info } = processor;
  log.info(`model: ${info.variant} (${info.configDir}), checkpoint ${info.checkpoint}, precision ${info.precision}`);
  // Wall time of a sequence runs from the end of the previous frame (or the start) to the end of its last frame, so
  // it includes decoding, the first (warm-up) frame and the writes: what a user waits for.
  let lastFrameEnd = performance.now();
  const summaries: RunSummary[] = [];
  const dirs: string[] = [];
  let current: { writer: DepthWriter; progress: ProgressReporter | undefined; start: number; sequence: number; source: FrameSource } | undefined;
  const finishCurrent = async (interrupted: boolean): Promise<void> => {
    if (!current) return;
    const { writer, progress, start, source } = current;
    current = undefined;
    progress?.done();
    const wallTimeS = (lastFrameEnd - start) / 1000;
    const summary = await writer.finish({
      backend: info.backend.name, device: info.backend.device, checkpoint: info.checkpoint, variant: info.variant,
      source: source.location, wallTimeS, interrupted,
    });
    summaries.push(summary);
    dirs.push(writer.dir);
    log.info(`${source.name}: ${summary.frames} frames at ${summary.width}×${summary.height}, ${summary.fps.toFixed(2)} fps → ${writer.dir}`);
  };

  let interrupted = false;
  try {
    for await (const result of processor.run(sources)) {
      if (current?.sequence !== result.sequence) {
        const finishing = performance.now();
        await finishCurrent(false);
        const start = lastFrameEnd + (performance.now() - finishing);
        const timing = timings[result.sequence] ?? {};
        const dir = outputDir(result.source, options, sources.length);
        const writer = new DepthWriter({
          dir, npy: options.npy ?? true, png16: options.png16 ?? false, colorPng: options.colorPng ?? false,
          depthMp4: options.depthMp4 ?? true, sideBySideMp4: options.sideBySideMp4 ?? false,
          colormap: options.colormap ?? 'inferno', normalization: options.normalize ?? 'video', fps: timing.fps ?? 24,
        });
        const progress = options.progress === false ? undefined
          : new ProgressReporter({ label: result.source.name, ...(timing.total !== undefined ? { total: timing.total } : {}) });
        current = { writer, progress, start, sequence: result.sequence, source: result.source };
      }
      await current!.writer.write(result.frame, { width: result.width, height: result.height, data: result.depth });
      current!.progress?.tick();
      lastFrameEnd = performance.now();
      if (options.signal?.aborted) {
        interrupted = true;
        break;
      }
    }
  } finally {
    // Also after an error: the frames written so far stay valid (mp4s finalised, summary.json written).
    await finishCurrent(interrupted || options.signal?.aborted === true).catch((e: unknown) => log.warn(`finishing outputs: ${e instanceof Error ? e.message : String(e)}`));
    processor.dispose();
  }
  if (interrupted) {
    const frames = summaries.reduce((n, s) => n + s.frames, 0);
    throw new InterruptedError(`interrupted after ${frames} frames; the outputs written so far are complete in ${dirs.join(', ') || '(nothing written)'}`);
  }
  return summaries;
}
