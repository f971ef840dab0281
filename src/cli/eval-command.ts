/**
 * `npm run eval -- --config … --checkpoint … --datasets sintel,eth3d,waymo,urbansyn,unreal4k [--data-root …]
 * [--resolution base|2k] [--max-sequences N] [--save-vis]`, or `--predictions <folder>` instead of a model.
 */
import type { BackendName } from '../backend/types.js';
import { invalidParameterError } from '../errors.js';
import { log } from '../log.js';

export interface EvalCommandOptions {
  config?: string;
  checkpoint?: string;
  predictions?: string;
  datasets?: string;
  dataRoot?: string;
  resolution?: string;
  split?: string;
  maxSequences?: number;
  maxFrames?: number;
  inputSize?: string;
  out: string;
  saveVis: boolean;
  backend: string;
  set?: string[];
}

function parseSize(text: string): { width: number; height: number } {
  const m = /^(\d+)x(\d+)$/i.exec(text.trim());
  if (!m) throw invalidParameterError('--input-size', 'WIDTHxHEIGHT such as 224x126', text);
  return { width: Number(m[1]), height: Number(m[2]) };
}

export async function runEvalCommand(options: EvalCommandOptions): Promise<void> {
  const { runEvaluation } = await import('../eval/run.js');
  const { formatDatasetTable, formatSummaryTable } = await import('../eval/report.js');
  const { releaseBackend } = await import('../backend/index.js');
  try {
    const report = await runEvaluation({
      config: options.config,
      checkpoint: options.checkpoint,
      predictions: options.predictions,
      overrides: options.set ?? [],
      datasets: options.datasets?.split(',').map((s) => s.trim()).filter((s) => s.length > 0),
      dataRoot: options.dataRoot,
      resolution: options.resolution as 'base' | '2k' | undefined,
      split: options.split as 'test' | 'val' | undefined,
      maxSequences: options.maxSequences,
      maxFrames: options.maxFrames,
      inputSize: options.inputSize ? parseSize(options.inputSize) : undefined,
      outDir: options.out,
      saveVis: options.saveVis,
      backend: options.backend as BackendName,
      onSequence: (r) => log.info(`${r.dataset}/${r.sequence}: ${r.frames} frames, AbsRel ${r.absRel.toFixed(4)}, δ1 ${r.delta1.toFixed(4)}, F1 ${r.boundaryF1.toFixed(4)}`),
    });
    for (const d of report.datasets) {
      console.log(formatDatasetTable(d, report.sequences.filter((s) => s.dataset === d.dataset)) + '\n');
    }
    console.log(formatSummaryTable(report));
    log.info(`wrote ${options.out}/metrics.json and ${options.out}/sequences.csv (${report.backend}, split ${report.split}, resolution ${report.resolution})`);
  } finally {
    releaseBackend();
  }
}
