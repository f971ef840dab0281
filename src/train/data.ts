/**
 * Training batches as tensors: the combined loader (real datasets, or the synthetic `random` dataset with no files)
 * wrapped so the loop gets normalised frames [B, T, H, W, 3] and inverse depth [B, T, H, W], and a position it can
 * store in a checkpoint and resume from.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { FlashDepthConfig } from '../config.js';
import { ConfigError } from '../errors.js';
import { clipsToTensors } from '../dataloaders/batch-tensors.js';
import { CombinedLoader, type LoaderState } from '../dataloaders/loader.js';
import { normalizeImageNet, type Size } from '../dataloaders/transforms.js';
import { DATASET_NAMES, type DatasetName } from '../dataloaders/types.js';

export interface TrainBatch {
  /** ImageNet-normalised frames [B, T, H, W, 3]. */
  frames: tf.Tensor5D;
  /** Inverse depth in 1/m [B, T, H, W]; −1 invalid, 0 sky. */
  invDepth: tf.Tensor4D;
  dataset: string;
}

/** Where a data source stands: enough to produce exactly the same following batches. */
export interface DataPosition {
  /** Batches handed out so far. */
  batches: number;
  /** The combined loader's exact resume state (absent in sources that are replayed by skipping `batches`). */
  loader?: LoaderState;
}

export interface BatchSource {
  next(): Promise<TrainBatch>;
  position(): DataPosition;
  close(): Promise<void>;
}

export interface DataOptions {
  /** Train on the synthetic `random` dataset (no files needed) instead of `dataset.train_datasets`. */
  synthetic?: boolean;
  /** Frame size of synthetic clips (default: the mode's training size, 518² or 1918×1078). */
  size?: Size;
  /** Clips in the synthetic dataset's epoch. */
  syntheticItems?: number;
  /** Resume at this position. */
  resumeAt?: DataPosition | null;
}

/** ImageNet normalisation of a [B, T, H, W, 3] clip batch in [0, 1]. */
export function normalizeClipFrames(frames: tf.Tensor5D): tf.Tensor5D {
  return tf.tidy(() => {
    const [b, t, h, w] = frames.shape;
    return tf.reshape(normalizeImageNet(tf.reshape(frames, [b * t, h, w, 3]) as tf.Tensor4D), [b, t, h, w, 3]) as tf.Tensor5D;
  });
}

function datasetNames(names: readonly string[], key: string): DatasetName[] {
  for (const n of names) {
    if (!(DATASET_NAMES as readonly string[]).includes(n)) throw new ConfigError(`${key}: unknown dataset ${JSON.stringify(n)}; expected names from ${DATASET_NAMES.join(', ')}`);
  }
  return names as DatasetName[];
}

/**
 * The loader of a training config. Resuming restores the loader's own state (sampler orders, cursors, RNGs), so the
 * following batches are exactly those the interrupted run would have seen; a position without loader state (an older
 * checkpoint) is replayed from the seed by skipping the batches already used.
 */
export async function createBatchSource(config: FlashDepthConfig, options: DataOptions = {}): Promise<BatchSource> {
  const synthetic = options.synthetic === true || config.dataset.train_datasets.every((d) => d === 'random');
  const datasets: DatasetName[] = synthetic ? ['random'] : datasetNames(config.dataset.train_datasets, 'dataset.train_datasets');
  if (!synthetic && !config.dataset.data_root) {
    throw new ConfigError('dataset.data_root: not set; pass dataset.data_root=/path/to/data or --synthetic to train on synthetic clips');
  }
  const loader = new CombinedLoader({
    dataRoot: config.dataset.data_root ?? '',
    datasets,
    mode: config.dataset.resolution,
    videoLength: config.dataset.video_length,
    batchSize: config.training.batch_size,
    seed: config.training.seed,
    workers: synthetic ? 0 : config.training.workers,
    randomItems: options.syntheticItems ?? 64,
    randomSize: options.size,
    ...(options.resumeAt?.loader ? { resumeFrom: options.resumeAt.loader } : {}),
  });
  let batches = options.resumeAt?.loader ? options.resumeAt.batches : 0;
  const skip = options.resumeAt?.batches ?? 0;
  for (; batches < skip; batches++) await loader.next();
  return {
    async next() {
      const batch = await loader.next();
      batches++;
      const { frames, invDepth } = clipsToTensors(batch.clips);
      if (invDepth === null) {
        frames.dispose();
        throw new ConfigError(`${batch.dataset}: training clips have no depth`);
      }
      const normalised = normalizeClipFrames(frames);
      frames.dispose();
      return { frames: normalised, invDepth, dataset: batch.dataset };
    },
    position: () => ({ batches, loader: loader.state() }),
    close: () => loader.close(),
  };
}
