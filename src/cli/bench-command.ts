/**
 * `npm run bench -- --config s|l|full|<dir> [--resolution WxH] [--frames 100] [--warmup 5] [--sync end|frame] [--backend …] [--json out.json]`
 * and `npm run bench -- --train [--config s] [--resolution WxH] [--clip-frames 5] [--frames 10] [--warmup 2]`.
 */
import { writeFileSync } from 'node:fs';
import type { BackendName } from '../backend/types.js';
import type { BenchResult } from '../infer/bench.js';
import type { Precision } from '../kernels/mode.js';
import type { TrainBenchResult } from '../train/bench-train.js';
import { ConfigError, invalidParameterError } from '../errors.js';
import { log } from '../log.js';

export interface BenchCommandOptions {
  config: string[];
  resolution?: string;
  /** Timed frames (inference) or optimiser steps (--train). */
  frames?: number;
  warmup?: number;
  backend: string;
  checkpoint?: string;
  json?: string;
  set?: string[];
  profile?: boolean;
  precision?: string;
  replay?: boolean;
  sync?: string;
  train?: boolean;
  clipFrames?: number;
}

function parseResolution(text: string): { width: number; height: number } {
  const m = /^(\d+)x(\d+)$/i.exec(text.trim());
  if (!m) throw invalidParameterError('--resolution', 'WIDTHxHEIGHT such as 518x518 or 2044x1148', text);
  return { width: Number(m[1]), height: Number(m[2]) };
}

/** Flags that only one of the two benchmarks reads: naming one with the other is an error, not a silent no-op. */
function checkModeFlags(o: BenchCommandOptions): void {
  const inferOnly: Array<[string, unknown]> = [['--sync', o.sync], ['--profile', o.profile || undefined], ['--precision', o.precision], ['--checkpoint', o.checkpoint], ['--no-replay', o.replay === false || undefined]];
  if (o.train) {
    const used = inferOnly.find(([, v]) => v !== undefined);
    if (used) throw new ConfigError(`${used[0]}: applies to the inference benchmark, not to --train`);
  } else if (o.clipFrames !== undefined) {
    throw new ConfigError('--clip-frames: applies to the training benchmark; add --train');
  }
}

export async function runBench(options: BenchCommandOptions): Promise<void> {
  checkModeFlags(options);
  const size = options.resolution ? parseResolution(options.resolution) : {};
  const { runBenchmark, formatBenchTable, formatKernelTable, parseBenchSync } = await import('../infer/bench.js');
  const sync = parseBenchSync(options.sync ?? 'end');
  // Only --train loads the training stack (the dataset readers and their packages): inference benches run without it.
  const runTrainBenchmark = options.train ? (await import('../train/bench-train.js')).runTrainBenchmark : null;
  const { releaseBackend } = await import('../backend/index.js');
  const results: Array<BenchResult | TrainBenchResult> = [];
  try {
    for (const config of options.config) {
      if (runTrainBenchmark) {
        log.info(`bench --train ${config}: ${options.warmup ?? 2} warm-up + ${options.frames ?? 10} timed optimiser steps`);
        results.push(await runTrainBenchmark({
          config,
          overrides: options.set ?? [],
          ...size,
          clipFrames: options.clipFrames,
          steps: options.frames,
          warmup: options.warmup,
          backend: options.backend as BackendName,
          onStep: (i, s) => log.info(`  step ${i + 1}/${options.frames ?? 10}: ${s.toFixed(2)} s`),
        }));
        continue;
      }
      const frames = options.frames ?? 100;
      log.info(`bench ${config}: ${options.warmup ?? 5} warm-up + ${frames} timed frames, sync ${sync}`);
      results.push(await runBenchmark({
        config,
        overrides: options.set ?? [],
        ...size,
        frames,
        warmup: options.warmup,
        sync,
        backend: options.backend as BackendName,
        checkpoint: options.checkpoint,
        profile: options.profile,
        replay: options.replay,
        precision: options.precision as Precision | undefined,
        onFrame: (i, ms) => {
          if (sync === 'frame' && (i + 1) % 25 === 0) log.info(`  frame ${i + 1}/${frames}: ${ms.toFixed(1)} ms`);
        },
      }));
    }
  } finally {
    releaseBackend();
  }
  for (const r of results) if (r.mode === 'infer' && r.kernels) console.log(formatKernelTable(r));
  console.log(formatBenchTable(results));
  if (options.json) {
    writeFileSync(options.json, JSON.stringify(results, null, 2) + '\n');
    log.info(`wrote ${options.json}`);
  }
}
