/**
 * Scene and frame lists of one dataset split (the reference's "pairs"), cached as JSON next to the data and rebuilt
 * when the tree changes (a fingerprint of the scene folders' modification times).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InputError } from '../errors.js';
import { datasetSpec, mtimeOf, type FileDatasetName } from './datasets.js';
import type { Split } from './types.js';

export interface FrameEntry {
  /** Frame number parsed from the file name. */
  n: number;
  /** Absolute RGB path. */
  rgb: string;
  /** Absolute ground-truth path; null in the test split. */
  depth: string | null;
}

export interface SceneEntry {
  name: string;
  frames: FrameEntry[];
  /** Train split: RGB frames left out because their depth file is missing. Val: frames whose depth is missing. */
  missingDepth: string[];
}

export interface DatasetIndex {
  dataset: FileDatasetName;
  split: Split;
  /** Absolute folder of the scenes. */
  root: string;
  scenes: SceneEntry[];
}

export interface IndexOptions {
  /** Read/write the JSON cache next to the data (default true). A read-only tree just skips writing. */
  cache?: boolean;
}

const CACHE_VERSION = 1;

function cacheFile(root: string, split: Split): string {
  return join(root, `.flashdepth-index.${split}.json`);
}

function fingerprint(name: FileDatasetName, root: string, scenes: string[]): string {
  const spec = datasetSpec(name);
  const h = createHash('sha1');
  h.update(`${CACHE_VERSION}|${name}|${mtimeOf(root)}`);
  for (const s of scenes) h.update(`|${s}:${mtimeOf(spec.rgbDir(root, s))}:${mtimeOf(spec.depthDir(root, s))}`);
  return h.digest('hex');
}

function scanScene(name: FileDatasetName, root: string, scene: string, split: Split): SceneEntry | null {
  const spec = datasetSpec(name);
  const rgbDir = spec.rgbDir(root, scene);
  const depthDir = spec.depthDir(root, scene);
  if (!existsSync(rgbDir)) return null;
  if (split === 'train' && !existsSync(depthDir)) return null;
  let files = readdirSync(rgbDir)
    .map((f) => ({ f, n: spec.frameNumber(f) }))
    .filter((x): x is { f: string; n: number } => x.n !== undefined)
    .sort((a, b) => a.n - b.n || (a.f < b.f ? -1 : 1));
  if (spec.maxFrames !== undefined) files = files.slice(0, spec.maxFrames);
  const present = existsSync(depthDir) ? new Set(readdirSync(depthDir)) : new Set<string>();
  const frames: FrameEntry[] = [];
  const missingDepth: string[] = [];
  for (const { f, n } of files) {
    const depthName = spec.depthName(f);
    const has = present.has(depthName);
    if (split !== 'test' && !has) missingDepth.push(join(depthDir, depthName));
    if (split === 'train' && !has) continue;
    frames.push({ n, rgb: join(rgbDir, f), depth: split === 'test' ? null : join(depthDir, depthName) });
  }
  return { name: scene, frames, missingDepth };
}

/** Lists the scenes and frames of a dataset split under `dataRoot`. */
export function indexDataset(dataRoot: string, name: FileDatasetName, split: Split, opts: IndexOptions = {}): DatasetIndex {
  const spec = datasetSpec(name);
  const root = resolve(dataRoot, spec.root);
  if (!existsSync(root)) throw new InputError(`${root}: ${name} not found under data root ${dataRoot} (expected folder ${spec.root})`);
  const sceneNames = spec.splitScenes(spec.listScenes(root), split);
  const useCache = opts.cache ?? true;
  const print = fingerprint(name, root, sceneNames);
  const file = cacheFile(root, split);
  if (useCache && existsSync(file)) {
    try {
      const cached = JSON.parse(readFileSync(file, 'utf8')) as { fingerprint?: string; index?: DatasetIndex };
      if (cached.fingerprint === print && cached.index !== undefined && cached.index.root === root) return cached.index;
    } catch {
      // A corrupt cache is rebuilt below.
    }
  }
  const scenes = sceneNames.map((s) => scanScene(name, root, s, split)).filter((s): s is SceneEntry => s !== null);
  if (scenes.length === 0) throw new InputError(`${root}: no ${split} scenes of ${name} found (expected ${spec.rgbDir('<root>', '<scene>')})`);
  const index: DatasetIndex = { dataset: name, split, root, scenes };
  if (useCache) {
    try {
      const tmp = `${file}.tmp-${process.pid}`;
      writeFileSync(tmp, JSON.stringify({ fingerprint: print, index }));
      renameSync(tmp, file);
    } catch {
      // Read-only data trees work without a cache.
    }
  }
  return index;
}
