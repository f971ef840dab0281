/** `npm run bench -- --config s|l|full|<dir> [--resolution WxH] [--frames 100] [--warmup 5] [--backend …] [--json out.json]`. */
import { writeFileSync } from 'node:fs';
import type { BackendName } from '../backend/types.js';
import type { Precision } from '../kernels/mode.js';
import { invalidParameterError } from '../errors.js';
import { log } from '../log.js';

export interface BenchCommandOptions {
  config: string[];
  resolution?: string;
  frames: number;
  warmup: number;
  backend: string;
  checkpoint?: string;
  json?: string;
  set?: string[];
  profile?: boolean;
  precision?: string;
}

function parseResolution(text: string): { width: number; height: number } {
  const m = /^(\d+)x(\d+)$/i.exec(text.trim());
  if (!m) throw invalidParameterError('--resolution', 'WIDTHxHEIGHT such as 518x518 or 2044x1148', text);
  return { width: Number(m[1]), height: Number(m[2]) };
}

export async function runBench(options: BenchCommandOptions): Promise<void> {
  const size = options.resolution ? parseResolution(options.resolution) : {};
  const { runBenchmark, formatBenchTable, formatKernelTable } = await import('../infer/bench.js');
  const { releaseBackend } = await import('../backend/index.js');
  const results = [];
  try {
    for (const config of options.config) {
      log.info(`bench ${config}: ${options.warmup} warm-up + ${options.frames} timed frames`);
      const r = await runBenchmark({
        config,
        overrides: options.set ?? [],
        ...size,
        frames: options.frames,
        warmup: options.warmup,
        backend: options.backend as BackendName,
        checkpoint: options.checkpoint,
        profile: options.profile,
        precision: options.precision as Precision | undefined,
        onFrame: (i, ms) => {
          if ((i + 1) % 25 === 0) log.info(`  frame ${i + 1}/${options.frames}: ${ms.toFixed(1)} ms`);
        },
      });
      results.push(r);
    }
  } finally {
    releaseBackend();
  }
  for (const r of results) if (r.kernels) console.log(formatKernelTable(r));
  console.log(formatBenchTable(results));
  if (options.json) {
    writeFileSync(options.json, JSON.stringify(results, null, 2) + '\n');
    log.info(`wrote ${options.json}`);
  }
}
