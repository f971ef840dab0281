/**
 * Streaming-inference benchmark, like the reference's `eval.dummy_timing`: random frames of a fixed size go through
 * `predict` with the Mamba state carried; warm-up frames (shader compilation, pos-embed cache) are timed separately.
 *
 * Two ways to close the timed window (`sync`):
 *  - `end` (default, what the reference measures): each frame is uploaded from a host Float32Array, as the reference
 *    copies each frame from pageable memory inside its loop; predictions are disposed unread and the queue is drained
 *    once, by reading back the last frame's depth. ms/frame = timed wall / frames; single frames are not observed.
 *  - `frame`: the same upload, and each frame ends with its depth read back to the host (a full queue drain and the
 *    map latency), as an application that needs every depth on the host sees it: per-frame latency median / p90.
 */
import * as tf from '@tensorflow/tfjs-core';
import { performance } from 'node:perf_hooks';
import { assertDeviceHealthy, selectBackend, type BackendName } from '../backend/index.js';
import type { BackendInfo } from '../backend/types.js';
import { configHash, loadConfig, type ConfigOverrides, type FlashDepthConfig } from '../config.js';
import { checkCount, checkModelSize, invalidParameterError } from '../errors.js';
import { applyPrecision, precisionMode, type Precision } from '../kernels/index.js';
import { log } from '../log.js';
import { configDirFor, createFlashDepth, loadFlashDepthWeights } from '../models/create.js';
import { randomizeWeights } from '../models/random-init.js';
import { VARIANTS } from '../models/variants.js';
import { REPLAY_WARMUP_FRAMES, StreamingPredictor, type ReplayStats } from './streaming.js';
import type { DispatchTime } from '../backend/webgpu-replay.js';
import type { TrainBenchResult } from '../train/bench-train.js';

export const BENCH_SYNC_MODES = ['end', 'frame'] as const;
/** Where the timed window waits for the device: once at its end (the reference), or after every frame. */
export type BenchSync = (typeof BENCH_SYNC_MODES)[number];

export interface BenchOptions {
  /** A variant (`s`, `l`, `full`) or a config folder/file. */
  config: string;
  overrides?: ConfigOverrides;
  /** Frame size (multiples of 14). Default: 518×518 for S and L, 2044×1148 for Full (the reference's sizes). */
  width?: number;
  height?: number;
  frames?: number;
  warmup?: number;
  /** Default `end`; see the module comment. */
  sync?: BenchSync;
  backend?: BackendName;
  /** Weights to load; default: random weights of realistic magnitude (never zeros, which can time differently). */
  checkpoint?: string;
  maxScoreElements?: number;
  /** 'mixed': tensor-core matmuls and attention (f16 operands, f32 accumulation) where the device has them. */
  precision?: Precision;
  /** Also time every kernel of one frame (GPU timestamp queries on webgpu) and report the most expensive. */
  profile?: boolean;
  /** Replay a recorded frame on webgpu (src/infer/streaming.ts; default true): what `infer` does. */
  replay?: boolean;
  /**
   * Called after each timed frame (progress): `ms` is the frame's latency under `frame`, its host enqueue time (upload
   * and dispatch, not the device's work) under `end`.
   */
  onFrame?: (index: number, ms: number) => void;
}

/** Summary of a list of times. */
export interface TimeStats {
  mean: number;
  median: number;
  p90: number;
  min: number;
  max: number;
}

export interface BenchResult {
  mode: 'infer';
  config: string;
  configHash: string;
  variant: string;
  backend: BackendInfo;
  /** The precision that ran ('mixed' falls back to 'fp32' without tensor cores). */
  precision: Precision;
  sync: BenchSync;
  width: number;
  height: number;
  parameters: number;
  /**
   * Frames run before the timed window: `--warmup`, or more where the predictor had not yet recorded its frame by then
   * (the recording belongs to the warm-up: see runBenchmark).
   */
  warmupFrames: number;
  /** Wall time of the first frame, read back (compilation included). */
  firstFrameMs: number;
  frames: number;
  /** Wall time of the timed window (all timed frames, drained at its end). */
  timedMs: number;
  /**
   * `frame`: per-frame latency (upload, predict, readback). `end`: every field is timedMs / frames, since single frames
   * are not observed.
   */
  msPerFrame: TimeStats;
  /** `end` only: host time per frame to upload the input and enqueue the model (the device may still be busy). */
  enqueueMsPerFrame?: TimeStats;
  /** 1000 / msPerFrame.mean. */
  fps: number;
  /** Peak bytes of live tensors during one frame (tf.profile); weights included. */
  peakTensorBytes: number;
  /** GPU bytes in use after the run (webgpu), or null. */
  gpuBytesInUse: number | null;
  hostRssBytes: number;
  /**
   * How the frames ran: through tfjs, recorded, or replayed (src/infer/streaming.ts); `unavailable` says why replay
   * was off (null when it ran).
   */
  replay: ReplayStats;
  /** With `profile`: per-kernel totals over one frame, most expensive first. */
  kernels?: KernelProfile[];
  /**
   * With `profile`: the profiled frame's time (replay: GPU time from its first dispatch's start to its last one's
   * end; tf.profile: wall time) and the sum of its kernel times.
   */
  profiledFrameMs?: number;
  /** With `profile`: where the kernel times come from (see profileKernels). */
  profileSource?: 'replay' | 'tf.profile';
  /** With `profile` from a replay: every dispatch of the frame in order (JSON only). */
  dispatchTimes?: DispatchTime[];
  kernelTotalMs?: number;
}

export interface KernelProfile {
  name: string;
  calls: number;
  ms: number;
}

/** Sums tf.profile's per-kernel times by kernel name. */
export function aggregateKernels(kernels: ReadonlyArray<{ name: string; kernelTimeMs: unknown }>): KernelProfile[] {
  const byName = new Map<string, KernelProfile>();
  for (const k of kernels) {
    const entry = byName.get(k.name) ?? { name: k.name, calls: 0, ms: 0 };
    entry.calls += 1;
    if (typeof k.kernelTimeMs === 'number') entry.ms += k.kernelTimeMs;
    byName.set(k.name, entry);
  }
  return [...byName.values()].sort((a, b) => b.ms - a.ms);
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Mean, median, p90, min and max of a non-empty list. */
export function timeStats(times: readonly number[]): TimeStats {
  const sorted = [...times].sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  return { mean, median: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

function uniformStats(value: number): TimeStats {
  return { mean: value, median: value, p90: value, min: value, max: value };
}

/** A variant name or a config folder/file → the loaded config, its folder and the variant ('custom' for folders). */
export function loadBenchConfig(config: string, overrides: ConfigOverrides = []): { config: FlashDepthConfig; configDir: string; variant: string } {
  const configDir = configDirFor(config);
  return { config: loadConfig(configDir, overrides), configDir, variant: Object.hasOwn(VARIANTS, config) ? config : 'custom' };
}

/** `value` as a sync mode, or the option error of `--sync`. */
export function parseBenchSync(value: unknown): BenchSync {
  if ((BENCH_SYNC_MODES as readonly unknown[]).includes(value)) return value as BenchSync;
  throw invalidParameterError('--sync', BENCH_SYNC_MODES.join(' or '), value);
}

function defaultSize(variant: string): [number, number] {
  return variant === 'full' ? [2044, 1148] : [518, 518];
}

/** Random normal host frames, generated before timing so that generation is never timed (only the upload is). */
async function hostFrames(count: number, height: number, width: number): Promise<Float32Array[]> {
  const frames: Float32Array[] = [];
  for (let i = 0; i < count; i++) {
    const t = tf.randomNormal([height, width, 3], 0, 1, 'float32', 100 + i);
    try {
      frames.push((await t.data()) as Float32Array); // async: WebGPU in Node has no dataSync
    } finally {
      t.dispose();
    }
  }
  return frames;
}

/** Runs the benchmark (selects the backend itself). */
export async function runBenchmark(options: BenchOptions): Promise<BenchResult> {
  const sync = parseBenchSync(options.sync ?? 'end');
  const frames = options.frames ?? 100;
  const warmup = options.warmup ?? 5;
  checkCount('--frames', frames, 1);
  checkCount('--warmup', warmup, 0);
  const backend = await selectBackend(options.backend ?? 'auto');
  const { precision, note } = applyPrecision(options.precision ?? precisionMode());
  if (note) log.warn(note);
  const { config, configDir, variant } = loadBenchConfig(options.config, options.overrides ?? []);
  const [dw, dh] = defaultSize(config.hybrid_configs.use_hybrid ? 'full' : variant);
  const width = options.width ?? dw;
  const height = options.height ?? dh;
  checkModelSize('--resolution', width, height);

  const model = createFlashDepth(config, { maxScoreElements: options.maxScoreElements });
  let predictor: StreamingPredictor | null = null;
  try {
    if (options.checkpoint) loadFlashDepthWeights(model, options.checkpoint);
    else randomizeWeights(model);
    // Three distinct frames on the host, reused round-robin: each frame's upload is timed, its generation is not.
    const inputs = await hostFrames(3, height, width);
    predictor = new StreamingPredictor(model, {
      replay: options.replay ?? true,
      onReplayUnavailable: (reason) => log.warn(`bench: ${reason}; every frame runs through tfjs`),
    });
    /** Frame `i` uploaded (the caller owns it). */
    const frameTensor = (i: number): tf.Tensor => tf.tensor3d(inputs[i % inputs.length]!, [height, width, 3]);
    /** Uploads frame `i` and enqueues it (through `predict`: the streaming predictor, or the model itself); the caller owns the depth. */
    const enqueue = (i: number, predict: (x: tf.Tensor) => tf.Tensor = (x) => predictor!.predict(x)): tf.Tensor => {
      const x = frameTensor(i);
      try {
        return predict(x);
      } finally {
        x.dispose();
      }
    };
    const readBack = async (depth: tf.Tensor, what: string): Promise<void> => {
      try {
        await depth.data();
      } finally {
        depth.dispose();
      }
      assertDeviceHealthy(what);
    };
    const latency = async (i: number): Promise<number> => {
      const t0 = performance.now();
      await readBack(enqueue(i), `benchmark frame ${i}`);
      return performance.now() - t0;
    };
    const firstFrameMs = await latency(0);
    // The memory profile runs a tfjs frame (model.predict: the tensors to observe), before the warm-up frames through
    // the predictor, which then record and replay.
    const direct = (x: tf.Tensor) => model.predict(x);
    const profile = await tf.profile(async () => readBack(enqueue(0, direct), 'benchmark memory profile'));
    // Warm-up frames are read back one by one: the timed window starts with an empty queue (the reference
    // synchronises after its 5th frame).
    for (let i = 1; i < warmup; i++) await latency(i);
    // Replay records one frame once the state has streamed REPLAY_WARMUP_FRAMES frames through tfjs (the memory
    // profile's frame above restarts that count); recording costs 140–420 ms of host time once (L and Full, H200
    // lease 16A), a one-off like the reference's compilation in its warm-up. Until session 16 a `--warmup` under 4 left
    // it in the timed window: with 30 timed L frames, ~5–8 ms per frame too many. So the warm-up goes on until the
    // frame is recorded and the timed frames all replay.
    const asked = Math.max(warmup, 1);
    let warmed = asked;
    while (predictor.stats.recordedFrames === 0 && predictor.stats.unavailable === null && warmed < asked + REPLAY_WARMUP_FRAMES + 2) {
      await latency(warmed);
      warmed++;
    }
    if (warmed > asked) log.info(`bench: warm-up extended to ${warmed} frames, so that the frame replay records is not timed`);

    const times: number[] = [];
    const windowStart = performance.now();
    if (sync === 'frame') {
      for (let i = 0; i < frames; i++) {
        const ms = await latency(i);
        times.push(ms);
        options.onFrame?.(i, ms);
      }
    } else {
      let last: tf.Tensor | null = null;
      for (let i = 0; i < frames; i++) {
        const t0 = performance.now();
        const depth = enqueue(i);
        // Disposing an unread prediction is safe on every backend: webgpu frees its buffer once the queue is done.
        if (i === frames - 1) last = depth;
        else depth.dispose();
        const ms = performance.now() - t0;
        times.push(ms);
        options.onFrame?.(i, ms);
      }
      await readBack(last!, `benchmark frames 0–${frames - 1}`);
    }
    const timedMs = performance.now() - windowStart;
    const msPerFrame = sync === 'frame' ? timeStats(times) : uniformStats(timedMs / frames);
    const kernelReport = options.profile
      ? await profileKernels(predictor, () => frameTensor(1), () => readBack(enqueue(1, direct), 'benchmark kernel profile'))
      : {};
    const mem = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number };
    return {
      mode: 'infer',
      config: configDir,
      configHash: configHash(config),
      variant,
      backend,
      precision,
      sync,
      width,
      height,
      parameters: model.countParameters(),
      warmupFrames: warmed,
      firstFrameMs,
      frames,
      timedMs,
      msPerFrame,
      ...(sync === 'end' ? { enqueueMsPerFrame: timeStats(times) } : {}),
      fps: 1000 / msPerFrame.mean,
      peakTensorBytes: profile.peakBytes,
      gpuBytesInUse: mem.numBytesInGPU ?? null,
      hostRssBytes: process.memoryUsage().rss,
      replay: predictor.stats,
      ...kernelReport,
    };
  } finally {
    predictor?.dispose();
    model.dispose();
  }
}

/**
 * `--profile`: with a recorded frame, the GPU time of each dispatch over 5 back-to-back replays (timestamp queries,
 * the GPU kept busy and its clock up); otherwise tf.profile's kernel times of one tfjs frame (the GPU idles between
 * kernels there, and its clock drops, so the times read high).
 */
async function profileKernels(predictor: StreamingPredictor, makeFrame: () => tf.Tensor, runTfjsFrame: () => Promise<void>):
  Promise<Pick<BenchResult, 'kernels' | 'profiledFrameMs' | 'kernelTotalMs' | 'profileSource' | 'dispatchTimes'>> {
  const x = makeFrame();
  let timing: Awaited<ReturnType<StreamingPredictor['timeDispatches']>>;
  try {
    timing = await predictor.timeDispatches(x);
  } finally {
    x.dispose();
  }
  if (timing) {
    const kernels = aggregateKernels(timing.dispatches.map((d) => ({ name: d.program, kernelTimeMs: d.ms })));
    return { kernels, profiledFrameMs: timing.frameMs, kernelTotalMs: kernels.reduce((a, k) => a + k.ms, 0), profileSource: 'replay', dispatchTimes: timing.dispatches };
  }
  let wall = 0;
  const timed = await tf.profile(async () => {
    const t0 = performance.now();
    await runTfjsFrame();
    wall = performance.now() - t0;
  });
  const kernels = aggregateKernels(timed.kernels);
  return { kernels, profiledFrameMs: wall, kernelTotalMs: kernels.reduce((a, k) => a + k.ms, 0), profileSource: 'tf.profile' };
}

/** The `--profile` table of one result. */
export function formatKernelTable(r: BenchResult, top = 15): string {
  if (!r.kernels) return '';
  const lines = [`kernels of one ${r.variant} frame (${r.width}×${r.height}): ${r.kernels.reduce((a, k) => a + k.calls, 0)} calls, ` +
    (r.profileSource === 'replay'
      ? `${r.kernelTotalMs!.toFixed(1)} ms of kernels in ${r.profiledFrameMs!.toFixed(1)} ms of GPU time (median of 5 replayed frames, one timestamped pass per dispatch)`
      : `${r.kernelTotalMs!.toFixed(1)} ms of kernels in ${r.profiledFrameMs!.toFixed(1)} ms wall (tf.profile: one tfjs frame; the GPU idles between kernels, so they read slow)`)];
  for (const k of r.kernels.slice(0, top)) lines.push(`  ${k.name.padEnd(28)} ${String(k.calls).padStart(5)} calls  ${k.ms.toFixed(2).padStart(9)} ms`);
  return lines.join('\n');
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].map((l) => l.trimEnd()).join('\n');
}

/** "N dispatches" when frames were replayed, else "off". */
function replayLabel(r: ReplayStats): string {
  return r.replayedFrames > 0 ? `${r.dispatchesPerFrame} dispatches` : 'off';
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
const configLabel = (r: { variant: string; config: string }) => (r.variant === 'custom' ? r.config : r.variant);

/** One table row per result, for the console: an inference table and a training table, as the results hold. */
export function formatBenchTable(results: ReadonlyArray<BenchResult | TrainBenchResult>): string {
  const infer = results.filter((r): r is BenchResult => r.mode === 'infer');
  const trainResults = results.filter((r): r is TrainBenchResult => r.mode === 'train');
  const tables: string[] = [];
  if (infer.length > 0) {
    tables.push(table(
      ['config', 'size', 'backend', 'precision', 'device', 'sync', 'replay', 'ms/frame', 'FPS', 'first frame ms', 'peak tensors MiB'],
      infer.map((r) => [
        configLabel(r), `${r.width}×${r.height}`, r.backend.name, r.precision, r.backend.device,
        r.sync === 'end' ? 'end (wall/frames)' : 'frame (median)', replayLabel(r.replay),
        (r.sync === 'end' ? r.msPerFrame.mean : r.msPerFrame.median).toFixed(1), r.fps.toFixed(2), r.firstFrameMs.toFixed(0), mib(r.peakTensorBytes),
      ]),
    ));
  }
  if (trainResults.length > 0) {
    tables.push(table(
      ['config', 'size', 'clip', 'backend', 'device', 's/step (median)', 'clips/s', 'first step s', 'peak memory MiB'],
      trainResults.map((r) => [
        configLabel(r), `${r.width}×${r.height}`, `${r.batchSize}×${r.clipFrames}`, r.backend.name, r.backend.device,
        r.secondsPerStep.median.toFixed(3), r.clipsPerSecond.toFixed(3), r.firstStepSeconds.toFixed(1), mib(r.peakBytes),
      ]),
    ));
  }
  return tables.join('\n\n');
}
