/**
 * `npm run eval`: the reference's test protocol (spec §7) on its test sets.
 *
 * Model mode: each sequence streams through `FlashDepth.predict` (state reset per sequence) at the dataset's test size
 * (spec §6.3: `base` or `2k`); every prediction is written to `<out>/predictions/<dataset>/<sequence>/<frame>.npy`.
 * Predictions mode: the same files come from a folder instead (ours, or the PyTorch code's), no model runs.
 *
 * Then per sequence, in two passes so that memory stays bounded for 1000-frame sequences:
 *  1. each prediction is resized to its native-size GT (bilinear, align_corners=True) and adds to the least-squares
 *     statistics of the sequence's one (scale, shift);
 *  2. each aligned frame adds to the AbsRel/δ1 sums and contributes its boundary F1 (averaged over frames).
 * Dataset numbers are means over sequences; the report also holds the mean over datasets.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { assertDeviceHealthy, selectBackend, type BackendName } from '../backend/index.js';
import { configHash, loadConfig, type ConfigOverrides, type FlashDepthConfig } from '../config.js';
import { datasetSpec, type DatasetSpec, type FileDatasetName } from '../dataloaders/datasets.js';
import { readRgb } from '../dataloaders/formats/image.js';
import { clip01, resizeCubic } from '../dataloaders/resample.js';
import { indexDataset } from '../dataloaders/scene-index.js';
import { normalizeImageNet, snapToMultipleOf14, type Size } from '../dataloaders/transforms.js';
import type { ResolutionMode, Split } from '../dataloaders/types.js';
import { CheckpointError, checkCount, checkModelSize, ConfigError, InputError, invalidParameterError } from '../errors.js';
import { readNpyFloat32, writeNpy } from '../io/npy.js';
import { applyColormap } from '../infer/colormap.js';
import { configDirFor, createFlashDepth, loadFlashDepthWeights } from '../models/create.js';
import type { FlashDepth } from '../models/flashdepth.js';
import { VARIANTS } from '../models/variants.js';
import { alignmentStats, applyScaleShift, EMPTY_ALIGNMENT_STATS, MAX_DEPTH, mergeAlignmentStats, solveScaleShift, type AlignmentStats } from './align.js';
import { addErrorSums, EMPTY_ERROR_SUMS, frameMetrics, metricsFromSums, resizePrediction, type DepthErrorSums } from './metrics.js';
import { meanOverDatasets, summarizeDataset, writeReport, type DatasetResult, type EvalReport, type SequenceResult } from './report.js';

export interface EvalOptions {
  /** Dataset names (default: the config's `eval.test_datasets`, else the reference's five). */
  datasets?: string[];
  /** Folder holding the dataset folders (default: the config's `dataset.data_root`). */
  dataRoot?: string;
  /** Output folder for metrics.json, sequences.csv, predictions/ and vis/. */
  outDir: string;
  /** Model mode: a variant (`s`, `l`, `full`) or a config folder/file. */
  config?: string;
  overrides?: ConfigOverrides;
  /** Model mode: weights (default: the config's `load`). */
  checkpoint?: string;
  /** Predictions mode: a folder `<dataset>/<sequence>/<frame>.npy` (see `predictionFile`). */
  predictions?: string;
  /** Test sizes of spec §6.3 (default: the config's `eval.test_dataset_resolution`, else `base`). */
  resolution?: ResolutionMode;
  /** Which scenes: `test` (default; Waymo's 30 test segments, all scenes elsewhere) or `val` (the first 8). */
  split?: Exclude<Split, 'train'>;
  /** Evaluate only the first N sequences of each dataset. */
  maxSequences?: number;
  /** Evaluate only the first N frames of each sequence. */
  maxFrames?: number;
  /** Model input size instead of the spec's test size (multiples of 14; for quick runs and tests). */
  inputSize?: Size;
  /** Write `vis/<dataset>/<sequence>/<frame>.png`: aligned prediction | GT, inverse depth, inferno. */
  saveVis?: boolean;
  backend?: BackendName;
  /** Progress: called after each sequence. */
  onSequence?: (result: SequenceResult) => void;
}

export const DEFAULT_TEST_DATASETS: readonly FileDatasetName[] = ['sintel', 'eth3d', 'waymo', 'urbansyn', 'unreal4k'];

/** GT maps kept in memory between the two passes, per sequence; beyond this they are decoded again. */
const GT_CACHE_BYTES = 512 * 1024 * 1024;

interface EvalFrame {
  /** Frame position in the sequence. */
  index: number;
  rgb: string;
  depth: string;
  /** Output and lookup name: the RGB file name without its extension. */
  stem: string;
}

interface EvalSequence {
  dataset: FileDatasetName;
  name: string;
  frames: EvalFrame[];
}

/** The scenes and frames of a dataset's test (or val) split, with the GT path of every frame. */
export function evalSequences(dataRoot: string, dataset: FileDatasetName, split: Exclude<Split, 'train'>, maxSequences?: number, maxFrames?: number): EvalSequence[] {
  const spec = datasetSpec(dataset);
  const index = indexDataset(dataRoot, dataset, split);
  const scenes = maxSequences === undefined ? index.scenes : index.scenes.slice(0, maxSequences);
  return scenes.map((scene) => {
    const frames = maxFrames === undefined ? scene.frames : scene.frames.slice(0, maxFrames);
    return {
      dataset,
      name: scene.name,
      frames: frames.map((f, i) => ({
        index: i,
        rgb: f.rgb,
        // The test split indexes images only; the GT sits where the val split would find it.
        depth: f.depth ?? join(spec.depthDir(index.root, scene.name), spec.depthName(basename(f.rgb))),
        stem: basename(f.rgb, extname(f.rgb)),
      })),
    };
  });
}

/**
 * The prediction file of a frame in a predictions folder, trying in order: `<dataset>/<sequence>/<stem>.npy` (what
 * this command writes), `<dataset>/<sequence>/frame_<i>.npy` and `<dataset>/<sequence>/depth_npy_files/frame_<i>.npy`
 * (the PyTorch code's names, i = 0-based frame position).
 */
export function predictionFile(root: string, dataset: string, sequence: string, frame: { index: number; stem: string }): string {
  const dir = join(root, dataset, sequence);
  const candidates = [join(dir, `${frame.stem}.npy`), join(dir, `frame_${frame.index}.npy`), join(dir, 'depth_npy_files', `frame_${frame.index}.npy`)];
  const found = candidates.find((c) => existsSync(c));
  if (found === undefined) throw new InputError(`${candidates[0]}: prediction not found (also tried ${candidates.slice(1).join(', ')})`);
  return found;
}

function readPrediction(file: string): tf.Tensor2D {
  const { shape, data } = readNpyFloat32(file);
  const dims = shape.length === 3 && shape[0] === 1 ? shape.slice(1) : shape;
  if (dims.length !== 2) throw new InputError(`${file}: expected an (H, W) or (1, H, W) inverse-depth array, found shape (${shape.join(', ')})`);
  return tf.tensor2d(data, dims as [number, number]);
}

/** The model input of one frame: bicubic to the test size, clipped to [0, 1], ImageNet-normalised; [H, W, 3]. */
async function loadModelInput(rgbFile: string, size: Size): Promise<tf.Tensor3D> {
  const img = await readRgb(rgbFile);
  const unit = new Float32Array(img.data.length);
  for (let i = 0; i < unit.length; i++) unit[i] = img.data[i]! / 255;
  const resized = clip01(resizeCubic({ width: img.width, height: img.height, channels: 3, data: unit }, size));
  return tf.tidy(() => tf.squeeze(normalizeImageNet(tf.tensor4d(resized.data, [1, size.height, size.width, 3])), [0]) as tf.Tensor3D);
}

/** Model input size of a dataset: the override, else spec §6.3's test size, else the native size snapped to 14. */
export function evalInputSize(spec: DatasetSpec, resolution: ResolutionMode, override?: Size): Size {
  const size = override ?? spec.evalSize?.[resolution] ?? spec.nativeSize;
  return { width: snapToMultipleOf14(size.width), height: snapToMultipleOf14(size.height) };
}

class GroundTruth {
  private cache = new Map<number, tf.Tensor2D>();
  private bytes = 0;
  constructor(private readonly spec: DatasetSpec) {}

  /** The frame's GT inverse depth at native size, or null when its file is missing. Caller must not dispose. */
  async get(frame: EvalFrame): Promise<tf.Tensor2D | null> {
    const hit = this.cache.get(frame.index);
    if (hit) return hit;
    if (!existsSync(frame.depth)) return null;
    const map = await this.spec.readInvDepth(frame.depth, frame.rgb);
    const t = tf.tensor2d(map.data, [map.height, map.width]);
    if (this.bytes + map.data.byteLength <= GT_CACHE_BYTES) {
      this.cache.set(frame.index, t);
      this.bytes += map.data.byteLength;
    }
    return t;
  }

  release(t: tf.Tensor2D, frame: EvalFrame): void {
    if (this.cache.get(frame.index) !== t) t.dispose();
  }

  dispose(): void {
    tf.dispose([...this.cache.values()]);
    this.cache.clear();
  }
}

/** Side by side: aligned prediction | GT, both inverse depth on the GT's range. Invalid GT pixels are black. */
async function writeVis(file: string, aligned: tf.Tensor2D, gt: tf.Tensor2D): Promise<void> {
  const [h, w] = gt.shape;
  const g = await gt.data();
  let max = 0;
  for (let i = 0; i < g.length; i++) if (g[i]! > max && Number.isFinite(g[i]!)) max = g[i]!;
  const range = { min: 0, max: max > 0 ? max : 1 };
  const left = applyColormap(await aligned.data(), range);
  const right = applyColormap(g, range);
  const rgb = new Uint8Array(h * w * 2 * 3);
  for (let y = 0; y < h; y++) {
    rgb.set(left.subarray(y * w * 3, (y + 1) * w * 3), y * 2 * w * 3);
    rgb.set(right.subarray(y * w * 3, (y + 1) * w * 3), (y * 2 + 1) * w * 3);
    for (let x = 0; x < w; x++) if (!(g[y * w + x]! >= 0)) rgb.fill(0, (y * 2 + 1) * w * 3 + x * 3, (y * 2 + 1) * w * 3 + x * 3 + 3);
  }
  mkdirSync(join(file, '..'), { recursive: true });
  await sharp(rgb, { raw: { width: 2 * w, height: h, channels: 3 } }).png().toFile(file);
}

interface SequenceContext {
  model: FlashDepth | null;
  inputSize: Size;
  predictionsRoot: string;
  outDir: string;
  saveVis: boolean;
}

async function evaluateSequence(seq: EvalSequence, ctx: SequenceContext): Promise<SequenceResult> {
  const spec = datasetSpec(seq.dataset);
  const gt = new GroundTruth(spec);
  const predDir = join(ctx.predictionsRoot, seq.dataset, seq.name);
  const files = new Map<number, string>();
  let stats: AlignmentStats = { ...EMPTY_ALIGNMENT_STATS };
  let modelSeconds = 0;
  let framesWithoutGt = 0;
  try {
    // Pass 1: predictions (streamed through the model, or read) and the alignment statistics.
    if (ctx.model) {
      ctx.model.resetState();
      mkdirSync(predDir, { recursive: true });
    }
    for (const frame of seq.frames) {
      let pred: tf.Tensor2D;
      if (ctx.model) {
        const input = await loadModelInput(frame.rgb, ctx.inputSize);
        const t0 = performance.now();
        pred = ctx.model.predict(input) as tf.Tensor2D;
        const data = (await pred.data()) as Float32Array;
        assertDeviceHealthy(`${seq.dataset}/${seq.name} frame ${frame.index}`);
        modelSeconds += (performance.now() - t0) / 1000;
        input.dispose();
        const file = join(predDir, `${frame.stem}.npy`);
        writeNpy(file, data, pred.shape);
        files.set(frame.index, file);
      } else {
        const file = predictionFile(ctx.predictionsRoot, seq.dataset, seq.name, frame);
        files.set(frame.index, file);
        pred = readPrediction(file);
      }
      const g = await gt.get(frame);
      if (g === null) {
        framesWithoutGt++;
        pred.dispose();
        continue;
      }
      const resized = resizePrediction(pred, g.shape[0], g.shape[1]);
      try {
        stats = mergeAlignmentStats(stats, await alignmentStats(resized, g, MAX_DEPTH));
      } finally {
        tf.dispose([pred, resized]);
        gt.release(g, frame);
      }
    }
    const alignment = solveScaleShift(stats);

    // Pass 2: aligned metrics per frame.
    let sums: DepthErrorSums = { ...EMPTY_ERROR_SUMS };
    let f1Sum = 0;
    let frames = 0;
    for (const frame of seq.frames) {
      const g = await gt.get(frame);
      if (g === null) continue;
      const aligned = tf.tidy(() => {
        const pred = readPrediction(files.get(frame.index)!);
        return applyScaleShift(resizePrediction(pred, g.shape[0], g.shape[1]), alignment) as tf.Tensor2D;
      });
      try {
        const m = await frameMetrics(aligned, g, MAX_DEPTH);
        sums = addErrorSums(sums, m.sums);
        f1Sum += m.boundaryF1;
        frames++;
        if (ctx.saveVis) await writeVis(join(ctx.outDir, 'vis', seq.dataset, seq.name, `${frame.stem}.png`), aligned, g);
      } finally {
        aligned.dispose();
        gt.release(g, frame);
      }
    }
    const { absRel, delta1 } = metricsFromSums(sums);
    return {
      dataset: seq.dataset, sequence: seq.name, frames, absRel, delta1, boundaryF1: frames > 0 ? f1Sum / frames : NaN,
      scale: alignment.scale, shift: alignment.shift, validPixels: sums.validCount,
      fps: ctx.model && modelSeconds > 0 ? seq.frames.length / modelSeconds : null, framesWithoutGt,
    };
  } finally {
    gt.dispose();
  }
}

function resolveModelConfig(config: string, overrides: ConfigOverrides): { config: FlashDepthConfig; dir: string } {
  const dir = configDirFor(config);
  if (!existsSync(dir)) throw new ConfigError(`--config ${config}: no such config folder or file; expected one of ${Object.keys(VARIANTS).join(', ')} or a folder holding config.yaml`);
  return { config: loadConfig(dir, overrides), dir };
}

function checkDatasets(names: readonly string[]): FileDatasetName[] {
  if (names.length === 0) throw invalidParameterError('--datasets', 'a comma-separated list of datasets', '');
  return names.map((n) => datasetSpec(n).name);
}

/** Runs the evaluation and writes metrics.json and sequences.csv into `outDir`. */
export async function runEvaluation(options: EvalOptions): Promise<EvalReport> {
  if ((options.config === undefined) === (options.predictions === undefined)) {
    throw new ConfigError('eval: give either --config (run a model) or --predictions <folder> (evaluate saved predictions), not both or neither');
  }
  for (const [flag, v] of [['--max-sequences', options.maxSequences], ['--max-frames', options.maxFrames]] as const) {
    if (v !== undefined) checkCount(flag, v, 1);
  }
  if (options.inputSize) checkModelSize('--input-size', options.inputSize.width, options.inputSize.height);
  const resolved = options.config !== undefined ? resolveModelConfig(options.config, options.overrides ?? []) : null;
  const datasets = checkDatasets(options.datasets ?? resolved?.config.eval.test_datasets ?? [...DEFAULT_TEST_DATASETS]);
  const dataRoot = options.dataRoot ?? resolved?.config.dataset.data_root ?? null;
  if (dataRoot === null) throw new ConfigError('eval: no data root; pass --data-root or set dataset.data_root in the config');
  const resolution = options.resolution ?? resolved?.config.eval.test_dataset_resolution ?? 'base';
  const split = options.split ?? 'test';
  if (options.predictions !== undefined && !existsSync(options.predictions)) throw new InputError(`${options.predictions}: predictions folder not found (--predictions)`);

  const backend = await selectBackend(options.backend ?? 'auto');
  mkdirSync(options.outDir, { recursive: true });
  let model: FlashDepth | null = null;
  let source: Record<string, string>;
  if (resolved) {
    const checkpoint = options.checkpoint ?? resolved.config.load;
    if (!checkpoint) throw new CheckpointError(`eval: no checkpoint for ${options.config}; pass --checkpoint <file.pth>`);
    if (!existsSync(checkpoint)) throw new CheckpointError(`${checkpoint}: checkpoint not found (--checkpoint)`);
    model = createFlashDepth(resolved.config);
    loadFlashDepthWeights(model, checkpoint);
    source = { config: options.config!, configDir: resolve(resolved.dir), configHash: configHash(resolved.config), checkpoint: resolve(checkpoint) };
  } else {
    source = { predictions: resolve(options.predictions!) };
  }

  const sequences: SequenceResult[] = [];
  const datasetResults: DatasetResult[] = [];
  try {
    for (const dataset of datasets) {
      const spec = datasetSpec(dataset);
      const ctx: SequenceContext = {
        model,
        inputSize: evalInputSize(spec, resolution, options.inputSize),
        predictionsRoot: options.predictions ?? join(options.outDir, 'predictions'),
        outDir: options.outDir,
        saveVis: options.saveVis ?? false,
      };
      const own: SequenceResult[] = [];
      for (const seq of evalSequences(dataRoot, dataset, split, options.maxSequences, options.maxFrames)) {
        const r = await evaluateSequence(seq, ctx);
        own.push(r);
        options.onSequence?.(r);
      }
      sequences.push(...own);
      datasetResults.push(summarizeDataset(dataset, own));
    }
  } finally {
    model?.dispose();
  }
  const report: EvalReport = {
    mode: model ? 'model' : 'predictions',
    source,
    backend: `${backend.name} [${backend.device}]`,
    split,
    resolution,
    inputSize: options.inputSize ? `${options.inputSize.width}x${options.inputSize.height}` : null,
    datasets: datasetResults,
    sequences,
    mean: meanOverDatasets(datasetResults),
  };
  writeReport(options.outDir, report);
  return report;
}
