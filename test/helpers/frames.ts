/** Synthetic frames and comparisons shared by the inference tests. */
import { expect } from 'chai';
import type { RgbFrame } from '../../src/infer/processor.js';

/** Smooth synthetic RGB (drifting sinusoids plus a moving bright square), uint8, so frames differ but stay natural. */
export function syntheticFrame(width: number, height: number, t: number): RgbFrame {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const blob = Math.abs(x - 10 - 12 * t) < 8 && Math.abs(y - height / 2) < 8 ? 90 : 0;
      rgb[i] = Math.min(255, 120 + 80 * Math.sin(x / 9 + t) + blob);
      rgb[i + 1] = Math.min(255, 110 + 70 * Math.cos(y / 7 - 0.5 * t) + blob);
      rgb[i + 2] = Math.min(255, 100 + 60 * Math.sin((x + y) / 13 + 0.3 * t) + blob);
    }
  }
  return { rgb, width, height };
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).to.equal(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
