/**
 * Validation during training on the real val splits (`dataset.val_datasets`, spec §7's metrics): each val sequence
 * streams through `FlashDepth.predict` with its state reset at the sequence start, exactly as inference and `eval`
 * run it, and is scored with the eval module (one scale/shift per sequence, then AbsRel, δ1 and boundary F1).
 * Sequences and frames are capped (training-time validation must stay cheap); dataset numbers are means over its
 * sequences, logged as `<dataset>/<metric>` so the JSONL and the plot keep one series per dataset.
 */
import * as tf from '@tensorflow/tfjs-core';
import { assertDeviceHealthy } from '../backend/index.js';
import { datasetSpec, type FileDatasetName } from '../dataloaders/datasets.js';
import { indexDataset } from '../dataloaders/scene-index.js';
import { iterateSequences, type SequenceFrame } from '../dataloaders/sequences.js';
import { normalizeImageNet, type Size } from '../dataloaders/transforms.js';
import type { ResolutionMode } from '../dataloaders/types.js';
import { checkCount, checkModelSize, ConfigError } from '../errors.js';
import { computeDepthMetrics, resizePrediction } from '../eval/metrics.js';
import type { FlashDepth } from '../models/flashdepth.js';

/** Defaults of `--val-sequences` / `--val-frames`: a validation costs at most 2 × 8 frames per dataset. */
export const DEFAULT_VAL_SEQUENCES = 2;
export const DEFAULT_VAL_FRAMES = 8;

export interface SequenceValidationOptions {
  dataRoot: string;
  datasets: readonly FileDatasetName[];
  /** `dataset.resolution`: picks each dataset's val image size (spec §6.3). */
  resolution: ResolutionMode;
  /** First N sequences of each dataset's val split. */
  maxSequences: number;
  /** First N frames of each sequence. */
  maxFrames: number;
  /** Model input size instead of the dataset's val size (multiples of 14; quick runs and tests). */
  inputSize?: Size;
}

/**
 * The file datasets of `dataset.val_datasets` (`random` has no val split and is skipped). Throws a ConfigError for
 * an unknown name.
 */
export function realValDatasets(names: readonly string[]): FileDatasetName[] {
  const out: FileDatasetName[] = [];
  for (const n of names) {
    if (n === 'random') continue;
    try {
      out.push(datasetSpec(n).name);
    } catch {
      throw new ConfigError(`dataset.val_datasets: unknown dataset ${JSON.stringify(n)}`);
    }
  }
  return out;
}

/**
 * Checks the options and that every val dataset has a val split on disk, so a missing folder stops the run before
 * training starts (the InputError names the dataset and the folder expected).
 */
export function checkSequenceValidation(o: SequenceValidationOptions): void {
  for (const [flag, v] of [['--val-sequences', o.maxSequences], ['--val-frames', o.maxFrames]] as const) checkCount(flag, v, 1);
  if (o.inputSize) checkModelSize('--val-size', o.inputSize.width, o.inputSize.height);
  for (const d of o.datasets) indexDataset(o.dataRoot, d, 'val');
}

interface SequenceScore {
  absRel: number;
  delta1: number;
  boundaryF1: number;
}

/** One sequence: streamed prediction per frame, resized to its GT, then the eval metrics on the [T, H, W] stack. */
async function scoreSequence(model: FlashDepth, frames: AsyncIterable<SequenceFrame>, label: string, inputSize?: Size): Promise<SequenceScore | null> {
  const preds: tf.Tensor2D[] = [];
  const gts: tf.Tensor2D[] = [];
  model.resetState();
  try {
    for await (const f of frames) {
      if (f.invDepth === null) continue;
      const invDepth = f.invDepth;
      const input = tf.tidy(() => {
        let x = tf.tensor4d(f.rgb, [1, f.height, f.width, 3]);
        if (inputSize && (inputSize.width !== f.width || inputSize.height !== f.height)) {
          x = tf.image.resizeBilinear(x, [inputSize.height, inputSize.width], true);
        }
        return normalizeImageNet(x);
      });
      // Outside any tidy: predict keeps the Mamba state it returns for the next frame.
      const raw = model.predict(input);
      input.dispose();
      preds.push(resizePrediction(raw, f.depthHeight, f.depthWidth));
      raw.dispose();
      gts.push(tf.tensor2d(invDepth, [f.depthHeight, f.depthWidth]));
    }
    if (preds.length === 0) return null;
    const [p, g] = tf.tidy(() => [tf.stack(preds), tf.stack(gts)]);
    try {
      const m = await computeDepthMetrics(p!, g!);
      assertDeviceHealthy(`validation of ${label}`);
      return { absRel: m.absRel, delta1: m.delta1, boundaryF1: m.boundaryF1 };
    } finally {
      tf.dispose([p!, g!]);
    }
  } finally {
    tf.dispose([...preds, ...gts]);
    model.resetState();
  }
}

/**
 * Streams the capped val sequences of each dataset through the model (no gradients) and returns
 * `{ '<dataset>/absRel', '<dataset>/delta1', '<dataset>/boundaryF1' }` per dataset, the
 * metrics averaged over the dataset's scored sequences (sequences without valid GT pixels are left out).
 */
export async function validateSequences(model: FlashDepth, o: SequenceValidationOptions): Promise<Record<string, number>> {
  const metrics: Record<string, number> = {};
  for (const dataset of o.datasets) {
    const scores: SequenceScore[] = [];
    let seen = 0;
    for await (const seq of iterateSequences(o.dataRoot, dataset, 'val', { resolution: o.resolution, maxFrames: o.maxFrames })) {
      if (seen++ >= o.maxSequences) break;
      const s = await scoreSequence(model, seq.frames, `${dataset}/${seq.sequence}`, o.inputSize);
      if (s !== null && Number.isFinite(s.absRel)) scores.push(s);
    }
    const mean = (k: keyof SequenceScore): number => (scores.length > 0 ? scores.reduce((a, s) => a + s[k], 0) / scores.length : NaN);
    metrics[`${dataset}/absRel`] = mean('absRel');
    metrics[`${dataset}/delta1`] = mean('delta1');
    metrics[`${dataset}/boundaryF1`] = mean('boundaryF1');
  }
  return metrics;
}
