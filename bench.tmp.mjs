import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeExr, writeRgb, patternRgb } from './dist/test/dataloaders/helpers/writers.js';
import { CombinedLoader } from './dist/src/dataloaders/loader.js';
const root = mkdtempSync(join(tmpdir(), 'bench-'));
const W = 1920, H = 1080;
const px = patternRgb(W, H);
const d = new Float32Array(W * H).fill(100);
for (const scene of ['0000', '0001']) {
  mkdirSync(join(root, 'mvs-synth/GTAV_1080', scene, 'images'), { recursive: true });
  mkdirSync(join(root, 'mvs-synth/GTAV_1080', scene, 'depths'), { recursive: true });
  for (let n = 0; n < 8; n++) {
    await writeRgb(join(root, 'mvs-synth/GTAV_1080', scene, 'images', `${n}.png`), W, H, px);
    writeExr(join(root, 'mvs-synth/GTAV_1080', scene, 'depths', `${n}.exr`), W, H, { Y: d }, { compression: 'ZIP' });
  }
}
for (const workers of [0, 2]) {
  const loader = new CombinedLoader({ dataRoot: root, datasets: ['mvs-synth'], mode: 'base', batchSize: 4, videoLength: 5, workers, prefetch: 2 });
  await loader.next();
  const t0 = performance.now();
  const N = 3;
  for (let i = 0; i < N; i++) await loader.next();
  const s = (performance.now() - t0) / 1000;
  console.log(`workers=${workers}: ${(N / s).toFixed(3)} batches/s (${(N * 20 / s).toFixed(1)} frames/s)`);
  await loader.close();
}
