/** Work items the loader hands to its decoders (in-process or on worker threads): plain, structured-cloneable data. */
import { loadClip, type ClipRequest } from './clip-loader.js';
import { randomClip } from './random-dataset.js';
import { Rng } from './rng.js';
import type { Size } from './transforms.js';
import type { Clip } from './types.js';

export interface RandomClipRequest {
  dataset: 'random';
  seed: number;
  length: number;
  size: Size;
}

export type AnyClipRequest = ClipRequest | RandomClipRequest;

export async function runClipRequest(req: AnyClipRequest): Promise<Clip> {
  if (req.dataset === 'random') return randomClip(new Rng(req.seed), { length: req.length, size: req.size });
  return loadClip(req);
}
