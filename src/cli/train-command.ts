/**
 * `npm run train -- --config configs/flashdepth-s [--load dav2.pth] [key=value …]` (stage 1) and
 * `npm run distill -- --config configs/flashdepth --load <S ckpt> --teacher <L ckpt>` (stage 2).
 * Flags become one options object for `runTraining` (src/train/run.ts); `--synthetic` trains on generated clips, so a
 * GPU timing run needs no dataset: it prints s/step, clips/s and peak memory at the end.
 */
import { invalidParameterError } from '../errors.js';
import { log } from '../log.js';

export interface TrainCommandOptions {
  stage: 'train' | 'distill';
  config: string;
  overrides?: string[];
  set?: string[];
  load?: string;
  teacher?: string;
  backend: string;
  synthetic: boolean;
  size?: string;
  maxSteps?: number;
  out?: string;
  keepLast: number;
  clipGradNorm?: number;
  resume: boolean;
  valBatches: number;
  valSequences?: number;
  valFrames?: number;
  valSize?: string;
}

function parseSize(text: string, flag = '--size'): { width: number; height: number } {
  const m = /^(\d+)x(\d+)$/i.exec(text.trim());
  if (!m || Number(m[1]) % 14 !== 0 || Number(m[2]) % 14 !== 0) throw invalidParameterError(flag, 'WIDTHxHEIGHT, multiples of 14, such as 518x518', text);
  return { width: Number(m[1]), height: Number(m[2]) };
}

export async function runTrainCommand(o: TrainCommandOptions): Promise<void> {
  if (o.maxSteps !== undefined && !(Number.isInteger(o.maxSteps) && o.maxSteps > 0)) throw invalidParameterError('--max-steps', 'positive integer', o.maxSteps);
  const size = o.size ? parseSize(o.size) : undefined;
  const valSize = o.valSize ? parseSize(o.valSize, '--val-size') : undefined;
  const { selectBackend, releaseBackend } = await import('../backend/index.js');
  const { runTraining } = await import('../train/run.js');
  const backend = await selectBackend(o.backend as Parameters<typeof selectBackend>[0]);
  try {
    const r = await runTraining({
      stage: o.stage,
      config: o.config,
      overrides: [...(o.overrides ?? []), ...(o.set ?? [])],
      load: o.load,
      teacher: o.teacher,
      synthetic: o.synthetic,
      size,
      maxSteps: o.maxSteps,
      runDir: o.out,
      keepLast: o.keepLast,
      clipGradNorm: o.clipGradNorm ?? null,
      resume: o.resume,
      valBatches: o.valBatches,
      valSequences: o.valSequences,
      valFrames: o.valFrames,
      valSize,
    });
    const mib = (r.peakBytes / 2 ** 20).toFixed(0);
    log.info(`done: steps ${r.startStep}→${r.endStep} on ${backend.name} (${backend.device}): ${r.secondsPerStep.toFixed(3)} s/step, ${r.clipsPerSecond.toFixed(3)} clips/s, peak memory ${mib} MiB (excluding the first step); log ${r.runDir}/train_log.jsonl, plot ${r.runDir}/train_plot.html`);
  } finally {
    releaseBackend();
  }
}
