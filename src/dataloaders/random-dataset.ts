/**
 * The `random` dataset: synthetic clips for smoke tests, no files needed. Each clip is a textured ground plane whose
 * inverse depth falls linearly with height, a sky band on top (inverse depth 0), a square that moves across the frames
 * in front of it, and a small invalid (−1) patch in the bottom-right corner. Fully determined by the seed.
 */
import type { Rng } from './rng.js';
import type { Size } from './transforms.js';
import type { Clip } from './types.js';

export interface RandomClipOptions {
  length: number;
  size: Size;
}

export function randomClip(rng: Rng, { length, size }: RandomClipOptions): Clip {
  const { width: W, height: H } = size;
  const frames = new Float32Array(length * H * W * 3);
  const invDepth = new Float32Array(length * H * W);
  const base = [rng.next(), rng.next(), rng.next()];
  const sky = Math.floor(H * (0.1 + 0.2 * rng.next()));
  const side = Math.max(2, Math.floor(Math.min(H, W) * (0.2 + 0.2 * rng.next())));
  const y0 = sky + Math.floor((H - sky - side) * rng.next());
  const speed = 1 + Math.floor(3 * rng.next());
  const near = 0.5 + rng.next(); // 1/m of the square
  for (let t = 0; t < length; t++) {
    const x0 = (t * speed) % Math.max(1, W - side);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const p = (t * H + y) * W + x;
        const inSquare = y >= y0 && y < y0 + side && x >= x0 && x < x0 + side;
        let inv: number;
        if (inSquare) inv = near;
        else if (y < sky) inv = 0;
        else inv = 0.02 + 0.3 * ((y - sky) / Math.max(1, H - sky));
        if (x >= W - 2 && y >= H - 2) inv = -1;
        invDepth[p] = inv;
        const shade = inSquare ? 0.9 : y < sky ? 0.7 : 0.2 + 0.6 * (((x >> 3) + (y >> 3)) & 1);
        for (let c = 0; c < 3; c++) frames[p * 3 + c] = Math.min(1, Math.max(0, shade * (0.5 + 0.5 * base[c]!)));
      }
    }
  }
  return {
    frames, invDepth, length, height: H, width: W, depthHeight: H, depthWidth: W,
    meta: { dataset: 'random', split: 'train', scene: 'random', frameIndices: Array.from({ length }, (_, i) => i), files: [], sourceSize: { ...size }, crops: null },
  };
}
