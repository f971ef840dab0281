/**
 * Loader throughput on a synthetic tree at native sizes (not a test): 10 frames of mvs-synth (1920×1080 PNG + ZIP
 * EXR) and tartanair (640×480 PNG + .npy), `base` mode, batch 4 × 5 frames.
 *   node dist/test/dataloaders/helpers/bench-throughput.js <dataset[,dataset]> <workers> [batches] [dataRoot]
 */
import { existsSync, mkdirSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CombinedLoader } from '../../../src/dataloaders/loader.js';
import type { DatasetName } from '../../../src/dataloaders/types.js';
import { writeNpy } from '../../../src/io/npy.js';
import { writeExr, writeRgb } from './writers.js';

const ensure = (f: string): string => { mkdirSync(dirname(f), { recursive: true }); return f; };
const pad = (n: number, k: number): string => String(n).padStart(k, '0');

function noise(w: number, h: number, s: number): Uint8Array {
  const d = new Uint8Array(w * h * 3);
  for (let i = 0; i < d.length; i++) d[i] = ((i * 7 + s * 13) ^ (i >> 9)) & 255;
  return d;
}

async function buildTree(root: string): Promise<void> {
  for (let n = 0; n < 10; n++) {
    await writeRgb(ensure(join(root, 'mvs-synth/GTAV_1080/0000/images', `${pad(n, 4)}.png`)), 1920, 1080, noise(1920, 1080, n));
    const d = Float32Array.from({ length: 1920 * 1080 }, (_, i) => 50 + (i % 1920) * 0.1 + Math.floor(i / 1920) * 0.05);
    writeExr(ensure(join(root, 'mvs-synth/GTAV_1080/0000/depths', `${pad(n, 4)}.exr`)), 1920, 1080, { Y: d }, { compression: 'ZIP' });
    await writeRgb(ensure(join(root, 'tartanair/env/Easy/P000/image_left', `${pad(n, 6)}_left.png`)), 640, 480, noise(640, 480, n));
    writeNpy(ensure(join(root, 'tartanair/env/Easy/P000/depth_left', `${pad(n, 6)}_left_depth.npy`)), new Float32Array(640 * 480).fill(3 + n), [480, 640]);
  }
}

const [names = 'mvs-synth', workers = '0', batches = '6', root = join(tmpdir(), 'flashdepth-loader-bench')] = process.argv.slice(2);
if (!existsSync(root)) await buildTree(root);
const loader = new CombinedLoader({ dataRoot: root, datasets: names.split(',') as DatasetName[], mode: 'base', batchSize: 4, videoLength: 5, workers: Number(workers), prefetch: 2, seed: 1 });
await loader.next(); // warm-up: index, resize tables, worker start
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < Number(batches); i++) await loader.next();
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
await loader.close();
console.log(JSON.stringify({
  datasets: names, workers: Number(workers), batches: Number(batches), batchesPerSecond: +(Number(batches) / seconds).toFixed(3),
  cpuSecondsPerBatch: +((cpu.user + cpu.system) / 1e6 / Number(batches)).toFixed(2), loadAverage: loadavg().map((x) => +x.toFixed(2)),
}));
