/**
 * Which ffmpeg (and ffprobe) binary to run. Order: `--ffmpeg` flag, `FFMPEG_PATH`, the optional `ffmpeg-static`
 * (its install downloads the binary, so it is often absent), `@ffmpeg-installer/ffmpeg` (ships the binary inside the
 * npm package), then `ffmpeg` on PATH. An explicit flag or variable that points nowhere is an error, not a fallback.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import { ConfigError } from '../errors.js';

export type BinarySource = 'flag' | 'env' | 'ffmpeg-static' | '@ffmpeg-installer/ffmpeg' | 'beside ffmpeg' | 'PATH';

export interface ResolvedBinary {
  path: string;
  source: BinarySource;
}

export interface ResolveFfmpegOptions {
  /** The `--ffmpeg` flag. */
  ffmpeg?: string;
  /** The `--ffprobe` flag. */
  ffprobe?: string;
  /** Environment to read FFMPEG_PATH / FFPROBE_PATH / PATH from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Consider the npm packages (ffmpeg-static, @ffmpeg-installer/ffmpeg); false = explicit choices and PATH only. */
  packages?: boolean;
}

const require = createRequire(import.meta.url);
const EXE = process.platform === 'win32' ? '.exe' : '';

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** An explicit choice must exist and be executable. */
function explicit(path: string, what: string, source: 'flag' | 'env'): ResolvedBinary {
  if (!isExecutableFile(path)) throw new ConfigError(`${what}: ${path} is not an executable file`);
  return { path, source };
}

function onPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name + EXE);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/** Guarded load of a package that exports a binary path (ffmpeg-static: the string; @ffmpeg-installer: `.path`). */
function packageBinary(specifier: string): string | undefined {
  let exported: unknown;
  try {
    exported = require(specifier);
  } catch {
    // Not installed, or (@ffmpeg-installer) it throws a string when its platform package is missing.
    return undefined;
  }
  const path = typeof exported === 'string' ? exported : (exported as { path?: unknown } | null)?.path;
  return typeof path === 'string' && isExecutableFile(path) ? path : undefined;
}

const PACKAGES = ['ffmpeg-static', '@ffmpeg-installer/ffmpeg'] as const;

export function resolveFfmpeg(options: ResolveFfmpegOptions = {}): ResolvedBinary {
  const env = options.env ?? process.env;
  if (options.ffmpeg) return explicit(options.ffmpeg, '--ffmpeg', 'flag');
  const fromEnv = env['FFMPEG_PATH'];
  if (fromEnv) return explicit(fromEnv, 'FFMPEG_PATH', 'env');
  if (options.packages ?? true) {
    for (const specifier of PACKAGES) {
      const path = packageBinary(specifier);
      if (path) return { path, source: specifier };
    }
  }
  const path = onPath('ffmpeg', env);
  if (path) return { path, source: 'PATH' };
  throw new ConfigError(
    'ffmpeg: not found (tried --ffmpeg, FFMPEG_PATH, ffmpeg-static, @ffmpeg-installer/ffmpeg, PATH); set FFMPEG_PATH to an ffmpeg binary',
  );
}

/** ffprobe: `--ffprobe`, `FFPROBE_PATH`, the ffprobe beside the resolved ffmpeg, then PATH. */
export function resolveFfprobe(options: ResolveFfmpegOptions = {}): ResolvedBinary {
  const env = options.env ?? process.env;
  if (options.ffprobe) return explicit(options.ffprobe, '--ffprobe', 'flag');
  const fromEnv = env['FFPROBE_PATH'];
  if (fromEnv) return explicit(fromEnv, 'FFPROBE_PATH', 'env');
  let ffmpeg: ResolvedBinary | undefined;
  try {
    ffmpeg = resolveFfmpeg(options);
  } catch {
    ffmpeg = undefined;
  }
  if (ffmpeg) {
    const beside = join(dirname(ffmpeg.path), 'ffprobe' + EXE);
    if (isExecutableFile(beside)) return { path: beside, source: 'beside ffmpeg' };
  }
  const path = onPath('ffprobe', env);
  if (path) return { path, source: 'PATH' };
  throw new ConfigError('ffprobe: not found (tried --ffprobe, FFPROBE_PATH, beside ffmpeg, PATH); set FFPROBE_PATH to an ffprobe binary');
}

/** `ffmpeg: /path/to/ffmpeg (from @ffmpeg-installer/ffmpeg)`, for logs and reports. */
export function describeBinary(name: 'ffmpeg' | 'ffprobe', binary: ResolvedBinary): string {
  const from = binary.source === 'flag' ? `--${name}` : binary.source === 'env' ? `${name.toUpperCase()}_PATH` : binary.source;
  return `${name}: ${binary.path} (from ${from})`;
}
