/**
 * Which checkpoint inference loads. Order: an explicit `load` (config key or --load), then the newest `iter_*.pth`
 * in the config folder (the reference's rule: highest iteration number), then `checkpoints/<variant>.safetensors`
 * (converted) and `checkpoints/<variant>.pth` (where `npm run weights -- download <variant>` puts it).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { CheckpointError } from '../errors.js';
import { downloadCommand, isWeightName, PUBLISHED_WEIGHTS, type WeightName } from './weights-download.js';

export interface CheckpointQuery {
  /** The config folder (config_dir); its basename names the variant unless `variant` is given. */
  configDir: string;
  /** An explicit checkpoint path: used as is, and must exist. */
  load?: string | null;
  /** Folder of downloaded/converted weights (default `checkpoints`). */
  checkpointsDir?: string;
  variant?: string;
}

export type CheckpointOrigin = 'load' | 'config dir' | 'checkpoints';

export interface ResolvedCheckpoint {
  path: string;
  origin: CheckpointOrigin;
  /** Training step from an `iter_<n>.pth` name. */
  iteration?: number;
}

const ITER_FILE = /^iter_(\d+)\.pth$/;

/** The `iter_<n>.pth` in a folder with the largest n (not the newest mtime: copies and downloads reset those). */
export function latestIterCheckpoint(dir: string): { path: string; iteration: number } | undefined {
  let best: { path: string; iteration: number } | undefined;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    const m = ITER_FILE.exec(entry);
    if (!m) continue;
    const iteration = Number(m[1]);
    const path = join(dir, entry);
    if (!statSync(path).isFile()) continue;
    if (!best || iteration > best.iteration) best = { path, iteration };
  }
  return best;
}

export function resolveCheckpoint(query: CheckpointQuery): ResolvedCheckpoint {
  if (query.load) {
    if (!existsSync(query.load)) throw new CheckpointError(`${query.load}: checkpoint not found (from load / --load)`);
    const m = ITER_FILE.exec(basename(query.load));
    return { path: query.load, origin: 'load', ...(m ? { iteration: Number(m[1]) } : {}) };
  }
  const iter = latestIterCheckpoint(query.configDir);
  if (iter) return { path: iter.path, origin: 'config dir', iteration: iter.iteration };
  const variant = query.variant ?? basename(resolve(query.configDir));
  const checkpointsDir = query.checkpointsDir ?? 'checkpoints';
  const published = isWeightName(variant) ? PUBLISHED_WEIGHTS[variant] : undefined;
  const stem = published ? published.file.replace(/\.pth$/, '') : variant;
  for (const file of [`${stem}.safetensors`, `${stem}.pth`]) {
    const path = join(checkpointsDir, file);
    if (existsSync(path)) return { path, origin: 'checkpoints' };
  }
  const expected = `${join(query.configDir, 'iter_*.pth')} or ${join(checkpointsDir, `${stem}.pth`)}`;
  const hint = published ? `; get it with \`${downloadCommand(variant as WeightName)}\`` : '; pass --load <file>';
  throw new CheckpointError(`no checkpoint for ${variant}: expected ${expected}${hint}`);
}
