/**
 * Training-step benchmark (`npm run bench -- --train`): full optimiser steps (forward over a clip with the Mamba state
 * carried, backward, AdamW) of the real training loop, `train()`, on synthetic clips, batch 1. Like the reference's
 * training config (clip length, resolution, gradient checkpointing) except for the batch size. The run folder the loop
 * writes its log and final checkpoint to is temporary and removed afterwards.
 *
 * A step's time is the wall time between the ends of consecutive steps, so work a step leaves queued on the device
 * (the optimiser update) is counted in the next one; the loop's own per-step reading starts after that.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { selectBackend, type BackendName } from '../backend/index.js';
import type { BackendInfo } from '../backend/types.js';
import { configHash, type ConfigOverrides } from '../config.js';
import { TRAIN_TARGETS } from '../dataloaders/clip-loader.js';
import { checkCount, checkModelSize } from '../errors.js';
import { loadBenchConfig, timeStats, type TimeStats } from '../infer/bench.js';
import { createFlashDepth } from '../models/create.js';
import { createBatchSource } from './data.js';
import { initTrainingWeights } from './init.js';
import { train } from './loop.js';

export interface TrainBenchOptions {
  /** A variant (`s`, `l`, `full`) or a config folder/file; `full` times stage 2 (distillation, frozen teacher). */
  config: string;
  overrides?: ConfigOverrides;
  /** Clip frame size (multiples of 14). Default: the training size of `dataset.resolution` (518², or 1918×1078 for 2k). */
  width?: number;
  height?: number;
  /** Frames per clip (default 5, the reference's `dataset.video_length`). */
  clipFrames?: number;
  /** Timed optimiser steps (default 10). */
  steps?: number;
  /** Untimed steps first (default 2): kernel compilation, optimiser state creation. */
  warmup?: number;
  backend?: BackendName;
  /** Called after each timed step (progress). */
  onStep?: (index: number, seconds: number) => void;
}

export interface TrainBenchResult {
  mode: 'train';
  config: string;
  configHash: string;
  variant: string;
  backend: BackendInfo;
  width: number;
  height: number;
  batchSize: number;
  clipFrames: number;
  /** training.gradient_checkpointing of the config (ViT activations recomputed in backward). */
  gradientCheckpointing: boolean;
  parameters: number;
  warmupSteps: number;
  /** Wall time of the first step (compilation included). */
  firstStepSeconds: number;
  steps: number;
  secondsPerStep: TimeStats;
  /** batchSize / secondsPerStep.median. */
  clipsPerSecond: number;
  /** Largest tfjs memory at the end of a forward pass (GPU buffers allocated on webgpu); weights and optimiser state included. */
  peakBytes: number;
  hostRssBytes: number;
  /** Loss of every step, warm-up included (finite unless training diverged). */
  losses: number[];
  /** The temporary run folder (already removed). */
  runDir: string;
}

/** Runs the training benchmark (selects the backend itself). */
export async function runTrainBenchmark(options: TrainBenchOptions): Promise<TrainBenchResult> {
  const steps = options.steps ?? 10;
  const warmup = options.warmup ?? 2;
  const clipFrames = options.clipFrames ?? 5;
  checkCount('--frames', steps, 1);
  checkCount('--warmup', warmup, 0);
  checkCount('--clip-frames', clipFrames, 1);
  const backend = await selectBackend(options.backend ?? 'auto');
  const { config, configDir, variant } = loadBenchConfig(options.config, options.overrides ?? []);
  const size = TRAIN_TARGETS[config.dataset.resolution].size;
  const width = options.width ?? size.width;
  const height = options.height ?? size.height;
  checkModelSize('--resolution', width, height);
  const totalSteps = warmup + steps;
  config.dataset.video_length = clipFrames;
  Object.assign(config.training, {
    batch_size: 1, gradient_accumulation: 1, workers: 0, wandb: false, start_with_val: false, val_freq: 0,
    save_freq: totalSteps + 1, // no checkpoint inside the timed steps (the loop still writes one at the end)
  });

  const runDir = mkdtempSync(join(tmpdir(), 'flashdepth-bench-train-'));
  const model = createFlashDepth(config);
  try {
    initTrainingWeights(model, config.training.seed);
    const stepSeconds: number[] = [];
    let firstStepSeconds = 0;
    let lastEnd = 0;
    const result = await train({
      model,
      config,
      runDir,
      makeData: (resumeAt) => createBatchSource(config, { synthetic: true, size: { width, height }, resumeAt }),
      maxSteps: totalSteps,
      keepLast: 1,
      resume: false,
      console: false,
      onStep: (r) => {
        const now = performance.now();
        const seconds = r.step === 0 ? r.secondsPerStep : (now - lastEnd) / 1000;
        lastEnd = now;
        if (r.step === 0) firstStepSeconds = seconds;
        if (r.step < warmup) return;
        stepSeconds.push(seconds);
        options.onStep?.(r.step - warmup, seconds);
      },
    });
    const secondsPerStep = timeStats(stepSeconds);
    return {
      mode: 'train',
      config: configDir,
      configHash: configHash(config),
      variant,
      backend,
      width,
      height,
      batchSize: config.training.batch_size,
      clipFrames,
      gradientCheckpointing: config.training.gradient_checkpointing,
      parameters: model.countParameters(),
      warmupSteps: warmup,
      firstStepSeconds,
      steps,
      secondsPerStep,
      clipsPerSecond: config.training.batch_size / secondsPerStep.median,
      peakBytes: result.peakBytes,
      hostRssBytes: process.memoryUsage().rss,
      losses: result.losses,
      runDir,
    };
  } finally {
    model.dispose();
    rmSync(runDir, { recursive: true, force: true });
  }
}
