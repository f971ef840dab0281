/** The types every dataset reader, sampler and loader shares. */
import type { Size } from './transforms.js';

export const DATASET_NAMES = [
  'mvs-synth', 'spring', 'tartanair', 'pointodyssey', 'dynamicreplica', 'sintel', 'waymo', 'eth3d', 'urbansyn', 'unreal4k', 'random',
] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];

export const SPLITS = ['train', 'val', 'test'] as const;
export type Split = (typeof SPLITS)[number];

/** `dataset.resolution`: stage-1 518² centre crops or stage-2 1918×1078 random crops (spec §6.3). */
export type ResolutionMode = 'base' | '2k';

export interface ClipMeta {
  dataset: DatasetName;
  split: Split;
  scene: string;
  /** Frame positions inside the scene's frame list, in clip order. */
  frameIndices: number[];
  /** RGB files of the frames, in clip order. */
  files: string[];
  /** Size of the decoded source frames. */
  sourceSize: Size;
  /** Per frame, the crop window in the resized image ([y, x, height, width]); null when not cropped. */
  crops: Array<[number, number, number, number]> | null;
}

/**
 * A clip of T frames. frames: RGB float32 in [0, 1], [T, H, W, 3] row-major. invDepth: inverse depth in 1/m,
 * [T, Hd, Wd] (train: the frame size; val: native GT size), invalid = −1, sky = 0; null for the test split.
 */
export interface Clip {
  frames: Float32Array;
  invDepth: Float32Array | null;
  length: number;
  height: number;
  width: number;
  depthHeight: number;
  depthWidth: number;
  meta: ClipMeta;
}
