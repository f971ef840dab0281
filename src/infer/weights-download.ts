/**
 * Published weights and downloading them: the one table of names, URLs and file names, and a downloader with
 * resume (HTTP Range on a `.part` file), size and sha256 checks, an atomic rename into place, and progress.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointError, invalidParameterError } from '../errors.js';

export const WEIGHT_NAMES = ['flashdepth', 'flashdepth-l', 'flashdepth-s', 'dav2-vits', 'dav2-vitl'] as const;
export type WeightName = (typeof WEIGHT_NAMES)[number];

export interface PublishedWeights {
  url: string;
  /** File name under `checkpoints/` (gitignored there). */
  file: string;
  description: string;
  /** Exact byte size, when known; checked after download. */
  bytes?: number;
  /** Hex sha256, when known; checked after download. */
  sha256?: string;
  /** The config folder these weights belong to (FlashDepth variants). */
  configDir?: string;
}

const FLASHDEPTH_HF = 'https://huggingface.co/Eyeline-Labs/FlashDepth/resolve/main';
const DAV2_HF = 'https://huggingface.co/depth-anything';

/**
 * Every downloadable file. FlashDepth checkpoints are the released iter_*.pth of each variant (spec §1.1); the
 * Depth Anything V2 files are the stage-1 initialisations (spec §4.3). Sizes and hashes are not pinned yet
 * (the files were never fetched from this machine); add them here once known.
 */
export const PUBLISHED_WEIGHTS: Readonly<Record<WeightName, PublishedWeights>> = {
  'flashdepth': {
    url: `${FLASHDEPTH_HF}/flashdepth/iter_43002.pth`, file: 'flashdepth.pth', configDir: 'configs/flashdepth',
    description: 'FlashDepth (Full): ViT-S student + ViT-L teacher, iter_43002',
  },
  'flashdepth-l': {
    url: `${FLASHDEPTH_HF}/flashdepth-l/iter_10001.pth`, file: 'flashdepth-l.pth', configDir: 'configs/flashdepth-l',
    description: 'FlashDepth-L: ViT-L, iter_10001',
  },
  'flashdepth-s': {
    url: `${FLASHDEPTH_HF}/flashdepth-s/iter_14001.pth`, file: 'flashdepth-s.pth', configDir: 'configs/flashdepth-s',
    description: 'FlashDepth-S: ViT-S, iter_14001',
  },
  'dav2-vits': {
    url: `${DAV2_HF}/Depth-Anything-V2-Small/resolve/main/depth_anything_v2_vits.pth`, file: 'depth_anything_v2_vits.pth',
    description: 'Depth Anything V2 Small (init for FlashDepth-S)',
  },
  'dav2-vitl': {
    url: `${DAV2_HF}/Depth-Anything-V2-Large/resolve/main/depth_anything_v2_vitl.pth`, file: 'depth_anything_v2_vitl.pth',
    description: 'Depth Anything V2 Large (init for FlashDepth-L)',
  },
};

export function isWeightName(name: string): name is WeightName {
  return (WEIGHT_NAMES as readonly string[]).includes(name);
}

/** The table entry for a name; ConfigError listing the valid names otherwise. */
export function publishedWeights(name: string): PublishedWeights {
  if (!isWeightName(name)) throw invalidParameterError('weights name', `one of ${WEIGHT_NAMES.join(', ')}`, name);
  return PUBLISHED_WEIGHTS[name];
}

/** The command that downloads a name, as error messages quote it. */
export function downloadCommand(name: WeightName): string {
  return `npm run weights -- download ${name}`;
}

export interface DownloadProgress {
  /** Bytes on disk so far, including a resumed part. */
  received: number;
  total?: number;
  resumedFrom: number;
}

export interface DownloadOptions {
  /** Folder to put the file in (default `checkpoints`). */
  dir?: string;
  /** Override the table's URL (mirrors, tests). */
  url?: string;
  /** Override or add the expected sha256 / size. */
  sha256?: string;
  bytes?: number;
  /** Download again even when the file exists. */
  force?: boolean;
  onProgress?: (p: DownloadProgress) => void;
  /** fetch implementation (default the global one). */
  fetch?: typeof fetch;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  sha256: string;
  /** False when the file was already there (nothing downloaded). */
  downloaded: boolean;
  resumedFrom: number;
}

const NETWORK_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ECONNRESET', 'ENETUNREACH', 'EHOSTUNREACH', 'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

function networkCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let depth = 0; depth < 4 && cur; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

async function hashFile(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

/** Total size from `Content-Range: bytes a-b/total` or Content-Length. */
function totalSize(res: Response, offset: number): number | undefined {
  const range = res.headers.get('content-range');
  const total = range ? /\/(\d+)\s*$/.exec(range)?.[1] : undefined;
  if (total) return Number(total);
  const length = res.headers.get('content-length');
  return length ? Number(length) + (res.status === 206 ? offset : 0) : undefined;
}

/**
 * Downloads published weights to `<dir>/<file>`. Bytes go to `<file>.part` first; an existing part is resumed with
 * a Range request (a server that ignores Range restarts it). Size and sha256 are checked before the rename, so the
 * final name only ever holds a complete, verified file. Offline: one CheckpointError saying where to put the file.
 */
export async function downloadWeights(name: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const entry = publishedWeights(name);
  const url = options.url ?? entry.url;
  const expectedSha = (options.sha256 ?? entry.sha256)?.toLowerCase();
  const dir = options.dir ?? 'checkpoints';
  const dest = join(dir, entry.file);
  const part = `${dest}.part`;
  mkdirSync(dir, { recursive: true });
  if (existsSync(dest) && !options.force) {
    const hash = createHash('sha256');
    await hashFile(dest, hash);
    return { path: dest, bytes: statSync(dest).size, sha256: hash.digest('hex'), downloaded: false, resumedFrom: 0 };
  }
  const doFetch = options.fetch ?? fetch;
  let offset = existsSync(part) ? statSync(part).size : 0;
  let res: Response;
  try {
    res = await doFetch(url, { headers: offset > 0 ? { Range: `bytes=${offset}-` } : {}, redirect: 'follow' });
  } catch (e) {
    const code = networkCode(e);
    const why = code ? `cannot reach ${new URL(url).host} (${code}; offline?)` : `request failed (${e instanceof Error ? e.message : String(e)})`;
    throw new CheckpointError(`download ${name}: ${why}; download ${url} by hand and save it as ${dest}`);
  }
  if (res.status === 416 && offset > 0) {
    // The part already holds every byte; verify it below.
    await res.body?.cancel();
  } else if (res.status !== 200 && res.status !== 206) {
    await res.body?.cancel();
    throw new CheckpointError(`download ${name}: ${url} answered HTTP ${res.status} ${res.statusText}; download it by hand and save it as ${dest}`);
  }
  if (res.status === 200 && offset > 0) offset = 0; // the server ignored Range: start over
  const resumedFrom = offset;
  const total = res.status === 416 ? offset : totalSize(res, offset);
  const file = await open(part, res.status === 200 ? 'w' : 'a');
  let received = offset;
  try {
    if (res.status !== 416 && res.body) {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        await file.write(chunk);
        received += chunk.length;
        options.onProgress?.({ received, ...(total !== undefined ? { total } : {}), resumedFrom });
      }
    }
  } catch (e) {
    throw new CheckpointError(`download ${name}: connection lost after ${received} bytes (${e instanceof Error ? e.message : String(e)}); run the same command again to resume`);
  } finally {
    await file.close();
  }
  const bytes = statSync(part).size;
  const expectedBytes = options.bytes ?? entry.bytes ?? total;
  if (expectedBytes !== undefined && bytes !== expectedBytes) {
    if (bytes > expectedBytes) rmSync(part, { force: true });
    throw new CheckpointError(`download ${name}: ${part} has ${bytes} bytes, expected ${expectedBytes}; run the same command again to ${bytes < expectedBytes ? 'resume' : 'restart'}`);
  }
  const hash = createHash('sha256');
  await hashFile(part, hash);
  const sha256 = hash.digest('hex');
  if (expectedSha !== undefined && sha256 !== expectedSha) {
    rmSync(part, { force: true });
    throw new CheckpointError(`download ${name}: sha256 mismatch for ${url} (expected ${expectedSha}, got ${sha256}); the partial file was deleted`);
  }
  renameSync(part, dest);
  return { path: dest, bytes, sha256, downloaded: true, resumedFrom };
}
