/**
 * Streaming-inference benchmark, like the reference's `eval.dummy_timing`: random frames of a fixed size go through
 * `predict` with the Mamba state carried; warm-up frames (shader compilation, pos-embed cache) are timed separately;
 * each timed frame ends with `await depth.data()`, i.e. the GPU queue is drained and the depth is on the host, as a
 * real application needs it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { performance } from 'node:perf_hooks';
import { assertDeviceHealthy, selectBackend, type BackendName } from '../backend/index.js';
import type { BackendInfo } from '../backend/types.js';
import { configHash, loadConfig, type ConfigOverrides } from '../config.js';
import { invalidParameterError } from '../errors.js';
import { applyPrecision, precisionMode, type Precision } from '../kernels/index.js';
import { log } from '../log.js';
import { createFlashDepth, loadFlashDepthWeights, variantConfigDir } from '../models/create.js';
import { randomizeWeights } from '../models/random-init.js';
import { VARIANTS, type VariantName } from '../models/variants.js';

export interface BenchOptions {
  /** A variant (`s`, `l`, `full`) or a config folder/file. */
  config: string;
  overrides?: ConfigOverrides;
  /** Frame size (multiples of 14). Default: 518×518 for S and L, 2044×1148 for Full (the reference's sizes). */
  width?: number;
  height?: number;
  frames?: number;
  warmup?: number;
  backend?: BackendName;
  /** Weights to load; default: random weights of realistic magnitude (never zeros, which can time differently). */
  checkpoint?: string;
  maxScoreElements?: number;
  /** 'mixed': tensor-core matmuls and attention (f16 operands, f32 accumulation) where the device has them. */
  precision?: Precision;
  /** Also time every kernel of one frame (GPU timestamp queries on webgpu) and report the most expensive. */
  profile?: boolean;
  /** Called after each timed frame (progress). */
  onFrame?: (index: number, ms: number) => void;
}

export interface BenchResult {
  config: string;
  configHash: string;
  variant: string;
  backend: BackendInfo;
  /** The precision that ran ('mixed' falls back to 'fp32' without tensor cores). */
  precision: Precision;
  width: number;
  height: number;
  parameters: number;
  warmupFrames: number;
  /** Wall time of the first frame (compilation included). */
  firstFrameMs: number;
  frames: number;
  msPerFrame: { mean: number; median: number; p90: number; min: number; max: number };
  fps: number;
  /** Peak bytes of live tensors during one frame (tf.profile); weights included. */
  peakTensorBytes: number;
  /** GPU bytes in use after the run (webgpu), or null. */
  gpuBytesInUse: number | null;
  hostRssBytes: number;
  /** With `profile`: per-kernel totals over one frame, most expensive first. */
  kernels?: KernelProfile[];
  /** With `profile`: wall time of the profiled frame and the sum of its kernel times. */
  profiledFrameMs?: number;
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

function defaultSize(variant: string): [number, number] {
  return variant === 'full' ? [2044, 1148] : [518, 518];
}

/** Runs the benchmark (selects the backend itself). */
export async function runBenchmark(options: BenchOptions): Promise<BenchResult> {
  const backend = await selectBackend(options.backend ?? 'auto');
  const { precision, note } = applyPrecision(options.precision ?? precisionMode());
  if (note) log.warn(note);
  const variant = Object.hasOwn(VARIANTS, options.config) ? options.config : 'custom';
  const configDir = variant === 'custom' ? options.config : variantConfigDir(variant as VariantName);
  const config = loadConfig(configDir, options.overrides ?? []);
  const [dw, dh] = defaultSize(config.hybrid_configs.use_hybrid ? 'full' : variant);
  const width = options.width ?? dw;
  const height = options.height ?? dh;
  for (const [flag, v] of [['--resolution width', width], ['--resolution height', height]] as const) {
    if (!Number.isInteger(v) || v <= 0 || v % 14 !== 0) throw invalidParameterError(flag, 'a positive multiple of 14', v);
  }
  const frames = options.frames ?? 100;
  const warmup = options.warmup ?? 5;
  if (!Number.isInteger(frames) || frames < 1) throw invalidParameterError('--frames', 'positive integer', frames);
  if (!Number.isInteger(warmup) || warmup < 0) throw invalidParameterError('--warmup', 'non-negative integer', warmup);

  const model = createFlashDepth(config, { maxScoreElements: options.maxScoreElements });
  try {
    if (options.checkpoint) loadFlashDepthWeights(model, options.checkpoint);
    else randomizeWeights(model);
    // A few distinct random frames, reused round-robin, so input upload is part of the timing but generation is not.
    const inputs = [0, 1, 2].map((i) => tf.randomNormal([height, width, 3], 0, 1, 'float32', 100 + i));
    const runFrame = async (i: number): Promise<number> => {
      const t0 = performance.now();
      const depth = model.predict(inputs[i % inputs.length]!);
      await depth.data();
      depth.dispose();
      assertDeviceHealthy(`benchmark frame ${i}`);
      return performance.now() - t0;
    };
    const firstFrameMs = await runFrame(0);
    for (let i = 1; i < warmup; i++) await runFrame(i);
    const profile = await tf.profile(async () => {
      const d = model.predict(inputs[0]!);
      await d.data();
      d.dispose();
    });
    let kernelReport: Pick<BenchResult, 'kernels' | 'profiledFrameMs' | 'kernelTotalMs'> = {};
    if (options.profile) {
      let wall = 0;
      const timed = await tf.profile(async () => {
        const t0 = performance.now();
        const d = model.predict(inputs[1 % inputs.length]!);
        await d.data();
        wall = performance.now() - t0;
        d.dispose();
      });
      const kernels = aggregateKernels(timed.kernels);
      kernelReport = { kernels, profiledFrameMs: wall, kernelTotalMs: kernels.reduce((a, k) => a + k.ms, 0) };
    }
    const times: number[] = [];
    for (let i = 0; i < frames; i++) {
      const ms = await runFrame(i);
      times.push(ms);
      options.onFrame?.(i, ms);
    }
    tf.dispose(inputs);
    const sorted = [...times].sort((a, b) => a - b);
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    const mem = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number };
    return {
      config: configDir,
      configHash: configHash(config),
      variant,
      backend,
      precision,
      width,
      height,
      parameters: model.countParameters(),
      warmupFrames: warmup,
      firstFrameMs,
      frames,
      msPerFrame: { mean, median: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), min: sorted[0]!, max: sorted[sorted.length - 1]! },
      fps: 1000 / mean,
      peakTensorBytes: profile.peakBytes,
      gpuBytesInUse: mem.numBytesInGPU ?? null,
      hostRssBytes: process.memoryUsage().rss,
      ...kernelReport,
    };
  } finally {
    model.dispose();
  }
}

/** The `--profile` table of one result. */
export function formatKernelTable(r: BenchResult, top = 15): string {
  if (!r.kernels) return '';
  const lines = [`kernels of one ${r.variant} frame (${r.width}×${r.height}): ${r.kernels.reduce((a, k) => a + k.calls, 0)} calls, ` +
    `${r.kernelTotalMs!.toFixed(1)} ms of kernels in ${r.profiledFrameMs!.toFixed(1)} ms wall (profiling adds overhead)`];
  for (const k of r.kernels.slice(0, top)) lines.push(`  ${k.name.padEnd(28)} ${String(k.calls).padStart(5)} calls  ${k.ms.toFixed(2).padStart(9)} ms`);
  return lines.join('\n');
}

/** One table row per result, for the console. */
export function formatBenchTable(results: readonly BenchResult[]): string {
  const header = ['config', 'size', 'backend', 'precision', 'device', 'ms/frame (median)', 'FPS', 'first frame ms', 'peak tensors MiB'];
  const rows = results.map((r) => [
    r.variant === 'custom' ? r.config : r.variant,
    `${r.width}×${r.height}`,
    r.backend.name,
    r.precision,
    r.backend.device,
    r.msPerFrame.median.toFixed(1),
    r.fps.toFixed(2),
    r.firstFrameMs.toFixed(0),
    (r.peakTensorBytes / 2 ** 20).toFixed(0),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
