/**
 * `npm run data -- check <data_root>`: walks each dataset, counts scenes/frames/clips per split, lists missing and
 * unreadable files with their paths, and renders a preview PNG of one training clip (RGB over colour-mapped depth).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import sharp from 'sharp';
import { loadClip } from './clip-loader.js';
import { DATASETS, type FileDatasetName } from './datasets.js';
import { readRgb } from './formats/image.js';
import { indexDataset, type DatasetIndex } from './scene-index.js';
import { SPLITS, type Clip, type Split } from './types.js';

export interface SplitCounts {
  scenes: number;
  frames: number;
  /** Train: one clip per frame with depth (the reference's items); val/test: one clip per scene. */
  clips: number;
}

export interface DatasetCheck {
  dataset: FileDatasetName;
  found: boolean;
  splits: Partial<Record<Split, SplitCounts | { error: string }>>;
  /** Depth files that RGB frames refer to but that do not exist. */
  missing: string[];
  /** Files that exist but failed to decode, with the reason. */
  unreadable: Array<{ file: string; message: string }>;
}

export interface CheckOptions {
  /** Datasets to check (default: every dataset whose folder exists under the root). */
  datasets?: FileDatasetName[];
  /** Where to write the preview PNG of one clip; none when omitted. */
  previewPath?: string;
  /** Decode every frame rather than the first and last of each scene (slow on full datasets). */
  decodeAll?: boolean;
}

export interface CheckReport {
  dataRoot: string;
  datasets: DatasetCheck[];
  previewPath: string | null;
}

async function probe(index: DatasetIndex, decodeAll: boolean, out: DatasetCheck['unreadable']): Promise<void> {
  const spec = DATASETS[index.dataset];
  for (const scene of index.scenes) {
    const frames = decodeAll ? scene.frames : [...new Set([scene.frames[0], scene.frames.at(-1)])].filter((f) => f !== undefined);
    for (const f of frames) {
      try {
        await readRgb(f.rgb);
      } catch (e) {
        out.push({ file: f.rgb, message: (e as Error).message });
        continue;
      }
      if (f.depth === null || !existsSync(f.depth)) continue;
      try {
        await spec.readInvDepth(f.depth, f.rgb);
      } catch (e) {
        out.push({ file: f.depth, message: (e as Error).message });
      }
    }
  }
}

export async function checkDatasets(dataRoot: string, opts: CheckOptions = {}): Promise<CheckReport> {
  const names = opts.datasets ?? (Object.keys(DATASETS) as FileDatasetName[]).filter((n) => existsSync(resolve(dataRoot, DATASETS[n].root)));
  const reports: DatasetCheck[] = [];
  let previewClip: Clip | null = null;
  for (const name of names) {
    const report: DatasetCheck = { dataset: name, found: existsSync(resolve(dataRoot, DATASETS[name].root)), splits: {}, missing: [], unreadable: [] };
    reports.push(report);
    if (!report.found) continue;
    const missing = new Set<string>();
    const probed = new Set<string>();
    for (const split of SPLITS) {
      let index: DatasetIndex;
      try {
        index = indexDataset(dataRoot, name, split);
      } catch (e) {
        report.splits[split] = { error: (e as Error).message };
        continue;
      }
      const frames = index.scenes.reduce((s, x) => s + x.frames.length, 0);
      report.splits[split] = { scenes: index.scenes.length, frames, clips: split === 'train' ? frames : index.scenes.length };
      for (const s of index.scenes) for (const m of s.missingDepth) missing.add(m);
      if (split === 'test') continue;
      // Scenes shared by train and val are decoded once.
      const fresh = { ...index, scenes: index.scenes.filter((s) => !probed.has(s.name)) };
      fresh.scenes.forEach((s) => probed.add(s.name));
      await probe(fresh, opts.decodeAll ?? false, report.unreadable);
      if (split === 'train' && previewClip === null && opts.previewPath !== undefined) previewClip = await previewOf(index);
    }
    report.missing = [...missing].sort();
  }
  let previewPath: string | null = null;
  if (opts.previewPath !== undefined && previewClip !== null) {
    await renderPreview(previewClip, opts.previewPath);
    previewPath = opts.previewPath;
  }
  return { dataRoot, datasets: reports, previewPath };
}

async function previewOf(index: DatasetIndex): Promise<Clip | null> {
  const scene = index.scenes.find((s) => s.frames.length > 0);
  if (scene === undefined) return null;
  const stride = DATASETS[index.dataset].stride;
  const positions = [0, 1, 2, 3, 4].map((k) => Math.min(k * stride, scene.frames.length - 1));
  try {
    return await loadClip({
      dataset: index.dataset, split: 'train', mode: 'base', scene: scene.name, frameIndices: positions, seed: 0,
      files: positions.map((p) => ({ rgb: scene.frames[p]!.rgb, depth: scene.frames[p]!.depth })),
    });
  } catch {
    return null; // the failure is already listed among the unreadable files
  }
}

/** Inferno-like ramp: black → purple → orange → pale yellow. */
const RAMP: Array<[number, number, number]> = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];
function colour(t: number): [number, number, number] {
  const x = Math.min(Math.max(t, 0), 1) * (RAMP.length - 1);
  const i = Math.min(Math.floor(x), RAMP.length - 2);
  const f = x - i;
  const a = RAMP[i]!;
  const b = RAMP[i + 1]!;
  return [0, 1, 2].map((c) => Math.round(a[c]! + f * (b[c]! - a[c]!))) as [number, number, number];
}

/** Writes a PNG with the clip's RGB frames on the top row and their inverse depth (invalid = grey) below. */
export async function renderPreview(clip: Clip, file: string): Promise<void> {
  const { length: T, height: H, width: W } = clip;
  const rows = clip.invDepth === null ? 1 : 2;
  const out = new Uint8Array(rows * H * T * W * 3);
  const stride = T * W * 3;
  let lo = Infinity;
  let hi = -Infinity;
  if (clip.invDepth !== null) for (const v of clip.invDepth) if (v >= 0) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  for (let t = 0; t < T; t++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const p = (t * H + y) * W + x;
        const o = y * stride + (t * W + x) * 3;
        for (let c = 0; c < 3; c++) out[o + c] = Math.round(clip.frames[p * 3 + c]! * 255);
        if (clip.invDepth === null || clip.depthWidth !== W || clip.depthHeight !== H) continue;
        const v = clip.invDepth[p]!;
        const rgb = v < 0 ? [128, 128, 128] : colour(hi > lo ? (v - lo) / (hi - lo) : 0);
        out.set(rgb, (H + y) * stride + (t * W + x) * 3);
      }
    }
  }
  await sharp(Buffer.from(out), { raw: { width: T * W, height: rows * H, channels: 3 } }).png().toFile(file);
}
