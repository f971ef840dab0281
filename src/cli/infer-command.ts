/** `npm run infer -- <input…> [options]`: see src/infer/run.ts for what it writes where. */
import type { BackendName } from '../backend/index.js';
import type { Precision } from '../kernels/mode.js';
import type { ColormapName } from '../infer/colormap.js';
import { log } from '../log.js';

export interface InferCommandOptions {
  inputs?: string[];
  config: string;
  checkpoint?: string;
  randomWeights: boolean;
  backend: string;
  precision?: string;
  replay?: boolean;
  maxFrames?: number;
  targetFps?: number;
  longSide: number;
  out?: string;
  npy: boolean;
  png16: boolean;
  colorPng: boolean;
  depthMp4: boolean;
  sideBySide: boolean;
  colormap: string;
  normalize: string;
}

export async function runInfer(options: InferCommandOptions): Promise<void> {
  const { runInference } = await import('../infer/run.js');
  const { releaseBackend } = await import('../backend/index.js');
  // First Ctrl-C: stop after the current frame and finalise the outputs; a second one quits at once.
  const stop = new AbortController();
  const onSigint = (): void => {
    if (stop.signal.aborted) process.exit(130);
    log.warn('stopping after this frame (Ctrl-C again to quit at once)');
    stop.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    await runInference({
      inputs: options.inputs ?? [],
      config: options.config,
      ...(options.checkpoint !== undefined ? { checkpoint: options.checkpoint } : {}),
      randomWeights: options.randomWeights,
      backend: options.backend as BackendName,
      ...(options.precision !== undefined ? { precision: options.precision as Precision } : {}),
      ...(options.replay !== undefined ? { replay: options.replay } : {}),
      ...(options.maxFrames !== undefined ? { maxFrames: options.maxFrames } : {}),
      ...(options.targetFps !== undefined ? { targetFps: options.targetFps } : {}),
      longSide: options.longSide,
      ...(options.out !== undefined ? { out: options.out } : {}),
      npy: options.npy,
      png16: options.png16,
      colorPng: options.colorPng,
      depthMp4: options.depthMp4,
      sideBySideMp4: options.sideBySide,
      colormap: options.colormap as ColormapName,
      normalize: options.normalize as 'video' | 'frame',
      signal: stop.signal,
    });
  } finally {
    process.off('SIGINT', onSigint);
    releaseBackend();
  }
}
