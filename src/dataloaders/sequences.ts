/**
 * Whole-sequence iteration for validation and test (spec §6.3, §7): scene by scene in the dataset's split order,
 * every frame in order, so a streaming model can carry its state through a scene.
 *
 *   for await (const seq of iterateSequences(dataRoot, 'sintel', 'val', { resolution: 'base' })) {
 *     state = reset();
 *     for await (const f of seq.frames) { ... f.rgb (f.height × f.width × 3), f.invDepth (f.depthHeight × f.depthWidth) ... }
 *   }
 *
 * - `rgb`: float32 RGB in [0, 1], HWC, resized (bicubic, clipped) straight to the dataset's val/test size for the
 *   resolution (eth3d/waymo 784×518 | 1918×1274, sintel 1022×434, urbansyn 1036×518 | 2044×1022, unreal4k
 *   924×518 | 2044×1148); datasets without one keep their native size, rounded up to a multiple of 14.
 *   Not ImageNet-normalised (the model's preprocessing does that).
 * - `invDepth`: ground truth at its native size, inverse depth in 1/m, −1 invalid, 0 sky; `valid` = invDepth ≥ 0
 *   (sky counts as valid, as in the reference metrics). Both null in the test split.
 * - Frames are decoded ahead (`prefetch`, default 2) in-process or on `workers` threads, in order.
 * Breaking out of either loop stops decoding and ends the worker threads.
 */
import { invalidParameterError } from '../errors.js';
import type { ClipRequest } from './clip-loader.js';
import type { FileDatasetName } from './datasets.js';
import { runClipRequest } from './requests.js';
import { indexDataset, type SceneEntry } from './scene-index.js';
import type { Clip, ResolutionMode, Split } from './types.js';
import { ClipWorkerPool } from './worker-pool.js';

export interface SequenceFrame {
  /** Position of the frame in its sequence, from 0. */
  index: number;
  /** Frame number from the file name. */
  frameNumber: number;
  rgbFile: string;
  depthFile: string | null;
  width: number;
  height: number;
  /** [height, width, 3] float32 in [0, 1]. */
  rgb: Float32Array;
  depthWidth: number;
  depthHeight: number;
  /** [depthHeight, depthWidth] inverse depth (1/m); null in the test split. */
  invDepth: Float32Array | null;
  /** 1 where invDepth ≥ 0; null in the test split. */
  valid: Uint8Array | null;
}

export interface Sequence {
  dataset: FileDatasetName;
  split: Split;
  /** Scene name (relative path under the dataset root). */
  sequence: string;
  /** Number of frames. */
  length: number;
  frames: AsyncIterable<SequenceFrame>;
}

export interface SequenceOptions {
  /** `dataset.resolution` / `eval.test_dataset_resolution`: picks the val/test image size. */
  resolution: ResolutionMode;
  /** Only these scenes (names as in Sequence.sequence), in split order. */
  scenes?: string[];
  /** Only the first N frames of each scene. */
  maxFrames?: number;
  /** Frames decoded ahead of the consumer (default 2). */
  prefetch?: number;
  /** Decoding threads (default 0: in-process). */
  workers?: number;
  /** Use the index cache next to the data (default true). */
  indexCache?: boolean;
}

function frameRequest(dataset: FileDatasetName, split: Split, resolution: ResolutionMode, scene: SceneEntry, k: number): ClipRequest {
  const f = scene.frames[k]!;
  return { dataset, split, mode: resolution, scene: scene.name, frameIndices: [k], files: [{ rgb: f.rgb, depth: f.depth }], seed: 0 };
}

function toFrame(clip: Clip, scene: SceneEntry, k: number): SequenceFrame {
  const f = scene.frames[k]!;
  const invDepth = clip.invDepth;
  let valid: Uint8Array | null = null;
  if (invDepth !== null) {
    valid = new Uint8Array(invDepth.length);
    for (let i = 0; i < invDepth.length; i++) valid[i] = invDepth[i]! >= 0 ? 1 : 0;
  }
  return {
    index: k, frameNumber: f.n, rgbFile: f.rgb, depthFile: f.depth, width: clip.width, height: clip.height, rgb: clip.frames,
    depthWidth: clip.depthWidth, depthHeight: clip.depthHeight, invDepth, valid,
  };
}

/** Yields the sequences (scenes) of a val/test split, each with its frames in order. See the file comment. */
export async function* iterateSequences(dataRoot: string, dataset: FileDatasetName, split: Split, opts: SequenceOptions): AsyncGenerator<Sequence> {
  if (split !== 'val' && split !== 'test') throw invalidParameterError('split', "'val' or 'test' (training clips come from CombinedLoader)", split);
  const prefetch = Math.max(1, opts.prefetch ?? 2);
  const index = indexDataset(dataRoot, dataset, split, { cache: opts.indexCache ?? true });
  let scenes = index.scenes;
  if (opts.scenes !== undefined) {
    const known = new Set(scenes.map((s) => s.name));
    const unknown = opts.scenes.filter((s) => !known.has(s));
    if (unknown.length > 0) throw invalidParameterError('scenes', `scenes of ${dataset} ${split} (${[...known].join(', ')})`, unknown);
    const wanted = new Set(opts.scenes);
    scenes = scenes.filter((s) => wanted.has(s.name));
  }
  const pool = (opts.workers ?? 0) > 0 ? new ClipWorkerPool(opts.workers!) : null;
  const decode = (req: ClipRequest): Promise<Clip> => (pool !== null ? pool.run(req) : runClipRequest(req));
  try {
    for (const scene of scenes) {
      const length = Math.min(scene.frames.length, opts.maxFrames ?? Infinity);
      async function* frames(): AsyncGenerator<SequenceFrame> {
        const inFlight: Array<Promise<Clip>> = [];
        let next = 0;
        const fill = (): void => {
          while (inFlight.length < prefetch && next < length) {
            const p = decode(frameRequest(dataset, split, opts.resolution, scene, next++));
            p.catch(() => undefined); // surfaced when the consumer reaches this frame
            inFlight.push(p);
          }
        };
        for (let k = 0; k < length; k++) {
          fill();
          const clip = await inFlight.shift()!;
          fill();
          yield toFrame(clip, scene, k);
        }
      }
      yield { dataset, split, sequence: scene.name, length, frames: frames() };
    }
  } finally {
    await pool?.close();
  }
}
