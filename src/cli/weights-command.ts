/** `npm run weights -- list` and `npm run weights -- download <name> [--dir checkpoints] [--url …]`. */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import { log } from '../log.js';

export interface WeightsCommandOptions {
  action?: string;
  name?: string;
  dir: string;
  url?: string;
  force: boolean;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

export async function runWeights(options: WeightsCommandOptions): Promise<void> {
  const { PUBLISHED_WEIGHTS, WEIGHT_NAMES, downloadWeights, publishedWeights } = await import('../infer/weights-download.js');
  if (options.action === 'list') {
    if (options.name) throw new ConfigError(`weights list takes no name but received ${options.name}`);
    for (const name of WEIGHT_NAMES) {
      const entry = PUBLISHED_WEIGHTS[name];
      const path = join(options.dir, entry.file);
      const state = existsSync(path) ? `present (${mib(statSync(path).size)})` : existsSync(`${path}.part`) ? 'partial download' : 'missing';
      console.log(`${name.padEnd(13)} ${state.padEnd(20)} ${path}  ${entry.description}`);
    }
    return;
  }
  if (!options.name) throw new ConfigError(`weights download: name the weights (one of ${WEIGHT_NAMES.join(', ')})`);
  const entry = publishedWeights(options.name);
  log.info(`downloading ${options.name}: ${options.url ?? entry.url}`);
  let lastReport = Date.now();
  const result = await downloadWeights(options.name, {
    dir: options.dir,
    ...(options.url ? { url: options.url } : {}),
    force: options.force,
    onProgress: (p) => {
      const now = Date.now();
      if (now - lastReport < 2000) return;
      lastReport = now;
      log.info(`  ${mib(p.received)}${p.total ? ` of ${mib(p.total)}` : ''}`);
    },
  });
  const how = result.downloaded ? (result.resumedFrom > 0 ? `downloaded (resumed at ${result.resumedFrom} bytes)` : 'downloaded') : 'already present';
  log.info(`${result.path}: ${how}, ${result.bytes} bytes, sha256 ${result.sha256}`);
}
