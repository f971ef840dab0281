/** Training clip sampling (spec §6.2): which frames of a scene make the clip of item (scene, position i). */
import type { Rng } from './rng.js';

/**
 * Frame positions of a `length`-frame clip anchored at position `i` of a scene with `sceneLength` usable frames.
 * Forward [i, i+(T−1)s] or backward [i−(T−1)s, i] (p = 0.5 when both fit); when neither fits, the frames from i to
 * the scene end followed by the ones before i, truncated or padded with the last index.
 */
export function clipFrameIndices(i: number, sceneLength: number, length: number, stride: number, rng: Rng): number[] {
  const span = (length - 1) * stride;
  const forward = (): number[] => Array.from({ length }, (_, k) => i + k * stride);
  const backward = (): number[] => Array.from({ length }, (_, k) => i - span + k * stride);
  const canForward = i + span <= sceneLength - 1;
  const canBackward = i >= span;
  // The reference draws only when both fit (torch.rand(1) > 0.5 → forward).
  if (canForward && canBackward) return rng.next() > 0.5 ? forward() : backward();
  if (canForward) return forward();
  if (canBackward) return backward();
  const out: number[] = [];
  for (let k = i; k < sceneLength; k += stride) out.push(k);
  const needed = Math.max(length - Math.ceil((sceneLength - i) / stride), 0);
  // Earlier frames are appended after the forward ones; positions before the scene start are dropped (the reference
  // would index into the previous scene there).
  for (let k = i - needed * stride; k < i; k += stride) if (k >= 0) out.push(k);
  out.length = Math.min(out.length, length);
  while (out.length < length) out.push(out[out.length - 1]!);
  return out;
}
