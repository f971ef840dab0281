/**
 * Builds a tiny data root with every dataset in its real layout: a few scenes, a few frames, files in the real
 * formats. Frame n of a scene has ground truth whose metric depth is n + 1 m everywhere except pixel row 0, which holds
 * the dataset's special values (sky / invalid) at known columns, so decoded values are known exactly.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeNpy } from '../../../src/io/npy.js';
import { writeSintelDpt } from '../../../src/dataloaders/formats/sintel-dpt.js';
import { patternRgb, writeExr, writeFloat16Png, writeHdf5, writePng16, writePng8, writeRgb } from './writers.js';

export const W = 24;
export const H = 16;

function ensure(file: string): string {
  mkdirSync(dirname(file), { recursive: true });
  return file;
}

/** depth n + 1 everywhere; row 0 columns 0..3 get `special` values. */
export function frameDepth(n: number, special: number[] = [], w = W, h = H): Float32Array {
  const d = new Float32Array(w * h).fill(n + 1);
  special.forEach((v, i) => { d[i] = v; });
  return d;
}

async function rgb(file: string, n: number, w = W, h = H): Promise<void> {
  await writeRgb(ensure(file), w, h, patternRgb(w, h, n));
}

const pad = (n: number, k: number): string => String(n).padStart(k, '0');

export async function buildTinyTree(root: string): Promise<void> {
  // mvs-synth: raw EXR depth = 10 × metres; inf = sky. Scene 0001 frame 2 lacks its depth file.
  for (const scene of ['0000', '0001', '0118', '0119']) {
    for (let n = 0; n < 6; n++) {
      const dir = join(root, 'mvs-synth/GTAV_1080', scene);
      await rgb(join(dir, 'images', `${pad(n, 4)}.png`), n);
      if (scene === '0001' && n === 2) continue;
      const d = frameDepth(n, [Infinity]).map((v) => v * 10);
      writeExr(ensure(join(dir, 'depths', `${pad(n, 4)}.exr`)), W, H, { R: d, G: d, B: d }, { compression: n % 2 ? 'ZIP' : 'ZIPS', type: 'FLOAT' });
    }
  }
  // spring: disparity at 2× resolution; fx per frame in cam_data/intrinsics.txt; inv = disp / (fx · 0.065).
  for (const scene of ['0001', '0002', '0004']) {
    const dir = join(root, 'spring/train', scene);
    const fx = [1300, 1040, 650, 1300, 1300, 1300];
    writeFileSync(ensure(join(dir, 'cam_data/intrinsics.txt')), fx.map((f) => `${f} ${f} 960 540`).join('\n') + '\n');
    for (let n = 1; n <= 6; n++) {
      await rgb(join(dir, 'frame_left', `frame_left_${pad(n, 4)}.png`), n);
      // disparity chosen so that inverse depth = 1/n: disp = fx · 0.065 / n; one NaN pixel at (0, 0).
      const disp = new Float32Array(4 * W * H).fill((fx[n - 1]! * 0.065) / n);
      disp[0] = NaN;
      disp[1] = Infinity; // odd column: dropped by the [::2, ::2] subsampling
      await writeHdf5(ensure(join(dir, 'disp1_left', `disp1_left_${pad(n, 4)}.dsp5`)), 'disparity', [2 * H, 2 * W], disp);
    }
  }
  // sintel: .dpt; 0 → invalid, 2e4 → sky. 9 scenes so the val split (first 8) leaves one out.
  for (let s = 0; s < 9; s++) {
    const scene = `scene_${s}`;
    for (let n = 1; n <= 3; n++) {
      await rgb(join(root, 'sintel/images/training/clean', scene, `frame_${pad(n, 4)}.png`), n);
      writeSintelDpt(ensure(join(root, 'sintel/depth/training/depth', scene, `frame_${pad(n, 4)}.dpt`)), { width: W, height: H, data: frameDepth(n - 1, [0, 2e4, NaN]) });
    }
  }
  // tartanair: metres in .npy; an 'amusement' env is skipped; 2e4 m → inverse < 0.001 → sky 0.
  for (const env of ['abandonedfactory', 'amusement']) {
    for (const level of ['Easy', 'Hard']) {
      const dir = join(root, 'tartanair', env, level, 'P000');
      for (let n = 0; n < 5; n++) {
        await rgb(join(dir, 'image_left', `${pad(n, 6)}_left.png`), n);
        writeNpy(ensure(join(dir, 'depth_left', `${pad(n, 6)}_left_depth.npy`)), frameDepth(n, [Infinity, -3, 2e4]), [H, W]);
      }
    }
  }
  // pointodyssey: uint16 v, d = v/65535·1000; only CUT3R scenes. v = 0 → invalid; tiny d → 100.
  for (const scene of ['kg', 'not_selected']) {
    const dir = join(root, 'pointodyssey/train', scene);
    for (let n = 0; n < 5; n++) {
      await rgb(join(dir, 'rgbs', `rgb_${pad(n, 5)}.jpg`), n);
      const v = new Uint16Array(W * H).fill(Math.round(((n + 1) / 1000) * 65535));
      v[0] = 0;
      v[1] = 1;
      await writePng16(ensure(join(dir, 'depths', `depth_${pad(n, 5)}.png`)), W, H, v);
    }
  }
  // dynamicreplica: float16 bits in uint16 PNG; only *_left scenes; the bad scene is not in train.
  for (const scene of ['aaa111-1_obj_source_left', '009850-3_obj_source_left', 'aaa111-1_obj_source_right']) {
    const dir = join(root, 'dynamic_replica/train', scene);
    for (let n = 0; n < 5; n++) {
      await rgb(join(dir, 'images', `${scene}-${pad(n, 4)}.png`), n);
      await writeFloat16Png(ensure(join(dir, 'depths', `${scene}_${pad(n, 4)}.geometric.png`)), W, H, frameDepth(n, [0, Infinity]));
    }
  }
  // eth3d: raw float32 with the JPG's name; inf → invalid.
  for (const scene of ['courtyard', 'delivery_area']) {
    for (const n of [1, 2]) {
      const name = `DSC_${pad(n, 4)}.JPG`;
      await rgb(join(root, 'eth3d', scene, 'images/dslr_images', name), n);
      writeFileSync(ensure(join(root, 'eth3d', scene, 'ground_truth_depth/dslr_images', name)), Buffer.from(frameDepth(n - 1, [Infinity]).buffer));
    }
  }
  // waymo: sparse (N, 3) points on a fixed 1920×1280 grid.
  for (const seg of ['segment-1', 'segment-2']) {
    const dir = join(root, 'waymo/val', seg, 'FRONT');
    for (let n = 0; n < 2; n++) {
      await rgb(join(dir, 'rgb/original', `${n}.jpg`), n, 1920, 1280);
      const pts = new Float32Array([5.7, 3.2, 2, 1919, 1279, 4, 0, 0, -1, 3000, 5, 7, 5, 3, 8]);
      writeNpy(ensure(join(dir, 'depth', `${n}.npy`)), pts, [5, 3]);
    }
  }
  // urbansyn: EXR (HALF) × 1e5 = metres; ss class 10 = sky.
  for (const scene of ['1', '2']) {
    const dir = join(root, 'urbansyn', scene);
    for (let n = 0; n < 3; n++) {
      await rgb(join(dir, 'rgb', `rgb_${n}.png`), n);
      // 0.00003 is not exact in float16; use 2^-15 ≈ 3.05e-5 → 3.0517578125 m.
      const raw = new Float32Array(W * H).fill(2 ** -15);
      writeExr(ensure(join(dir, 'depth', `depth_${n}.exr`)), W, H, { Y: raw }, { compression: 'ZIP', type: 'HALF' });
      const ss = new Uint8Array(W * H).fill(7);
      ss[0] = 10;
      await writePng8(ensure(join(dir, 'ss', `ss_${n}.png`)), W, H, ss);
    }
  }
  // unreal4k: disparity .npy used as inverse depth.
  for (const scene of ['00000']) {
    for (let n = 0; n < 3; n++) {
      await rgb(join(root, 'unrealstereo4k', scene, 'Image0', `${pad(n, 5)}.png`), n);
      writeNpy(ensure(join(root, 'unrealstereo4k', scene, 'Disp0', `${pad(n, 5)}.npy`)), frameDepth(n, [NaN, -2, Infinity]), [H, W]);
    }
  }
}
