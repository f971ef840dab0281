/**
 * The training loop, in nanoGPT's order: set the lr from the pure schedule → checkpoint / validate when due →
 * forward and backward over the gradient-accumulation micro-steps → (optional clipping) → optimiser step → log.
 * Stage 1 and stage 2 differ only in the model: the parameter groups (src/train/param-groups.ts) leave the Full
 * teacher frozen (no gradient, no optimiser state) and add the fusion group.
 *
 * Resuming uses the same path as a fresh start: the newest complete checkpoint in the run folder restores weights,
 * AdamW moments, the step and the data position, so the next loss equals the interrupted run's to float precision.
 */
import * as tf from '@tensorflow/tfjs-core';
import { assertDeviceHealthy } from '../backend/index.js';
import type { FlashDepthConfig } from '../config.js';
import { ConfigError } from '../errors.js';
import { computeDepthMetrics } from '../eval/metrics.js';
import type { FlashDepth } from '../models/flashdepth.js';
import { latestCheckpoint, readCheckpointMeta, restoreCheckpoint, saveCheckpoint } from './checkpoint.js';
import type { BatchSource, DataPosition } from './data.js';
import { depthLoss, parseLossType } from './loss.js';
import { AdamW, clipGradNorm, globalNorm } from './optimizer.js';
import { buildParamGroups } from './param-groups.js';
import { setModelRecompute } from './recompute.js';
import { lrFactor } from './schedule.js';
import { TrainLog, type StepRecord } from './log.js';

export interface TrainOptions {
  model: FlashDepth;
  config: FlashDepthConfig;
  /** Creates the training data, positioned at `resumeAt` (null: from the start). */
  makeData: (resumeAt: DataPosition | null) => Promise<BatchSource>;
  /** Validation data (a fresh source per validation); omitted: no validation. */
  makeValData?: () => Promise<BatchSource>;
  /** Batches per validation. */
  valBatches?: number;
  /** Validation on real data (src/train/validate.ts), run instead of `makeValData` when given: metrics by name. */
  validateModel?: (model: FlashDepth) => Promise<Record<string, number>>;
  /** Where checkpoints, train_log.jsonl and train_plot.html go (the reference: the config folder). */
  runDir: string;
  /** Stop after this many optimiser steps in total (default training.total_iters). */
  maxSteps?: number;
  /** Checkpoints kept (newest first); 0 keeps all. Default 3. */
  keepLast?: number;
  /** Global gradient-norm clipping threshold; null (default, like the reference) = none. */
  clipGradNorm?: number | null;
  /** Resume from the newest checkpoint in runDir when there is one (default true). */
  resume?: boolean;
  /** Recompute ViT block activations in backward (default training.gradient_checkpointing). */
  recompute?: boolean;
  /** Run options stored in checkpoints (input size, synthetic, …): a resumed run must use the same. */
  runInfo?: Record<string, unknown>;
  /** Console progress lines (default true). */
  console?: boolean;
  /** Called after every step (tests, benchmarks). */
  onStep?: (record: StepRecord) => void;
}

export interface TrainResult {
  /** The step training started at (> 0 when resumed). */
  startStep: number;
  /** Optimiser steps done in total at the end. */
  endStep: number;
  /** Loss of each step run by this call, in order. */
  losses: number[];
  /** The checkpoint resumed from, if any. */
  resumedFrom: string | null;
  /** Largest tfjs memory sampled at the end of a forward pass. */
  peakBytes: number;
}

/** Bytes tfjs holds now (on webgpu, the GPU buffers too). */
function memoryBytes(): number {
  const m = tf.memory() as tf.MemoryInfo & { numBytesInGPUAllocated?: number; numBytesInGPU?: number };
  return Math.max(m.numBytes, m.numBytesInGPUAllocated ?? m.numBytesInGPU ?? 0);
}

/** L1 loss and AbsRel/δ1 (scale/shift-aligned per clip, spec §7) on `batches` validation batches. */
export async function validate(model: FlashDepth, data: BatchSource, batches: number): Promise<Record<string, number>> {
  const spec = parseLossType('l1');
  let loss = 0, absRel = 0, delta1 = 0, clips = 0;
  for (let i = 0; i < batches; i++) {
    const batch = await data.next();
    try {
      const pred = tf.tidy(() => model.forwardClip(batch.frames));
      const lossValue = tf.tidy(() => depthLoss(pred, batch.invDepth, spec));
      loss += (await lossValue.data().finally(() => lossValue.dispose()))[0]!; // async: WebGPU in Node has no dataSync
      for (let b = 0; b < pred.shape[0]; b++) {
        const [p, g] = tf.tidy(() => {
          const [, t, h, w] = pred.shape;
          return [tf.reshape(tf.slice(pred, [b, 0, 0, 0], [1, t, h, w]), [t, h, w]), tf.reshape(tf.slice(batch.invDepth, [b, 0, 0, 0], [1, t, h, w]), [t, h, w])];
        });
        const m = await computeDepthMetrics(p, g).finally(() => tf.dispose([p, g]));
        if (Number.isFinite(m.absRel)) { absRel += m.absRel; delta1 += m.delta1; clips++; }
      }
      pred.dispose();
    } finally {
      tf.dispose([batch.frames, batch.invDepth]);
    }
  }
  return { l1: loss / Math.max(1, batches), ...(clips > 0 ? { absRel: absRel / clips, delta1: delta1 / clips } : {}) };
}

/** Sums gradient maps (disposing the inputs). */
function accumulate(into: Map<string, tf.Tensor> | null, grads: Map<string, tf.Tensor>): Map<string, tf.Tensor> {
  if (into === null) return grads;
  for (const [k, g] of grads) {
    const prev = into.get(k);
    if (prev) {
      into.set(k, tf.add(prev, g));
      tf.dispose([prev, g]);
    } else {
      into.set(k, g);
    }
  }
  return into;
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  const { model, config, runDir } = options;
  const t = config.training;
  if (!(t.gradient_accumulation >= 1)) throw new ConfigError(`training.gradient_accumulation: expected a positive integer but received ${t.gradient_accumulation}`);
  if (!(t.save_freq >= 1)) throw new ConfigError(`training.save_freq: expected a positive integer but received ${t.save_freq}`);
  const totalSteps = options.maxSteps ?? t.total_iters;
  const lossSpec = parseLossType(t.loss_type);
  const { groups } = buildParamGroups(model, t.lr);
  if (groups.length === 0) throw new ConfigError('training.lr: every parameter group has lr 0; nothing would train');
  const optimizer = new AdamW(groups);
  const keys = optimizer.keys();
  const variables = optimizer.variables();
  const recompute = options.recompute ?? t.gradient_checkpointing;
  setModelRecompute(model, recompute);
  const trainLog = new TrainLog(runDir, `FlashDepth training: ${runDir}`, options.console ?? true);

  let step = 0;
  let resumedFrom: string | null = null;
  let dataPosition: DataPosition | null = null;
  const latest = options.resume === false ? null : latestCheckpoint(runDir);
  if (latest) {
    const meta = readCheckpointMeta(latest);
    restoreCheckpoint(latest, meta, model, optimizer);
    step = meta.step;
    dataPosition = meta.data as DataPosition;
    resumedFrom = latest;
  }
  const data = await options.makeData(dataPosition);
  const losses: number[] = [];
  let peakBytes = 0;
  const startStep = step;
  const started = Date.now();

  const save = (s: number) => saveCheckpoint({
    dir: runDir, step: s, model, optimizer, config, data: data.position(), run: options.runInfo ?? {}, keepLast: options.keepLast ?? 3,
  });
  const runValidation = async (s: number) => {
    if (options.validateModel) {
      trainLog.record({ kind: 'val', step: s, metrics: await options.validateModel(model) }, totalSteps);
      return;
    }
    if (!options.makeValData) return;
    const valData = await options.makeValData();
    try {
      const metrics = await validate(model, valData, options.valBatches ?? 2);
      trainLog.record({ kind: 'val', step: s, metrics }, totalSteps);
    } finally {
      await valData.close();
    }
  };

  try {
    if (t.start_with_val && step === startStep) await runValidation(step);
    while (step < totalSteps) {
      const factor = lrFactor(step, t.lr.warmup_steps);
      if (step > startStep && step % t.save_freq === 0) await save(step);
      if (step > startStep && t.val_freq > 0 && step % t.val_freq === 0) await runValidation(step);

      const stepStart = Date.now();
      let grads: Map<string, tf.Tensor> | null = null;
      let lossSum = 0;
      let clips = 0;
      let dataset = '';
      for (let micro = 0; micro < t.gradient_accumulation; micro++) {
        const batch = await data.next();
        dataset = batch.dataset;
        clips += batch.frames.shape[0];
        // The frozen teacher runs before the gradient scope: its activations are never kept for a backward pass.
        const teacherFeatures = model.teacherFeatures(batch.frames);
        try {
          const { value, grads: g } = tf.variableGrads(() => {
            const pred = model.forwardClip(batch.frames, teacherFeatures);
            const loss = tf.div(depthLoss(pred, batch.invDepth, lossSpec, step), t.gradient_accumulation) as tf.Scalar;
            peakBytes = Math.max(peakBytes, memoryBytes());
            return loss;
          }, variables);
          lossSum += (await value.data())[0]!; // async readback: WebGPU in Node has no dataSync
          assertDeviceHealthy(`training step ${step + 1}`);
          value.dispose();
          // variableGrads names gradients by variable name; the optimiser keys them by checkpoint key.
          const byKey = new Map<string, tf.Tensor>();
          variables.forEach((v, i) => { if (g[v.name]) byKey.set(keys[i]!, g[v.name]!); });
          grads = accumulate(grads, byKey);
        } finally {
          tf.dispose([batch.frames, batch.invDepth, ...teacherFeatures]);
        }
      }
      let finalGrads = grads ?? new Map<string, tf.Tensor>();
      let gradNorm: number | undefined;
      if (options.clipGradNorm != null) {
        const clipped = await clipGradNorm(finalGrads, options.clipGradNorm);
        tf.dispose([...finalGrads.values()]);
        finalGrads = clipped.grads;
        gradNorm = clipped.norm;
      } else if (config.training.wandb) {
        gradNorm = await globalNorm(finalGrads);
      }
      optimizer.step(finalGrads, factor);
      tf.dispose([...finalGrads.values()]);

      const seconds = (Date.now() - stepStart) / 1000;
      const elapsedPerStep = (Date.now() - started) / 1000 / (step - startStep + 1);
      const record: StepRecord = {
        kind: 'train', step, loss: lossSum, lr: optimizer.groupLrs(factor), secondsPerStep: seconds, clipsPerSecond: clips / seconds,
        etaSeconds: elapsedPerStep * (totalSteps - step - 1), peakBytes, numTensors: tf.memory().numTensors, dataset,
        ...(gradNorm !== undefined ? { gradNorm } : {}),
      };
      losses.push(lossSum);
      trainLog.record(record, totalSteps);
      options.onStep?.(record);
      step++;
    }
    if (step > startStep) await save(step);
  } finally {
    setModelRecompute(model, false);
    optimizer.dispose();
    await data.close();
  }
  return { startStep, endStep: step, losses, resumedFrom, peakBytes };
}
