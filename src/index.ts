/**
 * The library API of flashdepth-ts. Everything the CLI does is available here:
 *
 *   import { FlashDepthProcessor } from 'flashdepth-ts';
 *   const p = await FlashDepthProcessor.create({ config: 'configs/flashdepth-s', checkpoint: 'checkpoints/flashdepth-s.pth' });
 */
export { selectBackend, releaseBackend } from './backend/index.js';
export type { BackendInfo, BackendName } from './backend/types.js';
export { applyPrecision, setPrecision, setKernelMode, tensorCoresAvailable, type Precision, type KernelMode } from './kernels/mode.js';
export { loadConfig, applyOverrides, configHash, type FlashDepthConfig, type ConfigOverrides } from './config.js';
export * from './errors.js';
export { openWeights, convertCheckpoint, listCheckpoint } from './io/checkpoint.js';
export { openTorchCheckpoint } from './io/pth.js';
export { openSafetensors, writeSafetensors } from './io/safetensors.js';
export { readNpy, writeNpy } from './io/npy.js';
export type { WeightSource } from './io/weight-source.js';
export { prefixedSource, mergedSource } from './io/weight-source.js';
export { createFlashDepth, loadFlashDepthWeights, saveFlashDepthWeights, variantConfigDir } from './models/create.js';
export { FlashDepth, type FrameResult, type FlashDepthDebug } from './models/flashdepth.js';
export { modelSpecFromConfig, VARIANTS, type VariantName, type ModelSpec } from './models/variants.js';
export { preprocessFrames } from './dataloaders/transforms.js';
export { iterateSequences } from './dataloaders/sequences.js';
export { CombinedLoader } from './dataloaders/loader.js';
export { checkDatasets } from './dataloaders/check.js';
export { FlashDepthProcessor } from './infer/processor.js';
export { StreamingPredictor, REPLAY_WARMUP_FRAMES, type ReplayStats, type StreamingPredictorOptions } from './infer/streaming.js';
export { runInference, InterruptedError } from './infer/run.js';
export { runBenchmark } from './infer/bench.js';
