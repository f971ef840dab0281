/**
 * The library side of `npm run train` (stage 1) and `npm run distill` (stage 2): build the model from the config,
 * initialise it (fresh init, then the pretrained checkpoints of spec §4.3 unless a run checkpoint is resumed), and
 * run the loop. The CLI handler only parses flags and calls `runTraining`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { loadConfig, type ConfigOverrides, type FlashDepthConfig } from '../config.js';
import { CheckpointError, ConfigError } from '../errors.js';
import { openWeights } from '../io/checkpoint.js';
import { prefixedSource } from '../io/weight-source.js';
import { createFlashDepth } from '../models/create.js';
import type { FlashDepth } from '../models/flashdepth.js';
import { loadWeights, type LoadReport } from '../models/weights.js';
import type { Size } from '../dataloaders/transforms.js';
import { log } from '../log.js';
import { latestCheckpoint } from './checkpoint.js';
import { createBatchSource } from './data.js';
import { initTrainingWeights } from './init.js';
import { train, type TrainResult } from './loop.js';
import { checkSequenceValidation, DEFAULT_VAL_FRAMES, DEFAULT_VAL_SEQUENCES, realValDatasets, validateSequences, type SequenceValidationOptions } from './validate.js';

export type TrainStage = 'train' | 'distill';

export interface RunTrainingOptions {
  stage: TrainStage;
  /** Config folder or file. */
  config: string;
  overrides?: ConfigOverrides;
  /** Stage 1: DA-V2 (or FlashDepth) weights; stage 2: the FlashDepth-S checkpoint for the student. Overrides `load`. */
  load?: string;
  /** Stage 2: the FlashDepth-L checkpoint for the teacher. Overrides `hybrid_configs.teacher_model_path`. */
  teacher?: string;
  /** Train on synthetic clips (no dataset on disk). */
  synthetic?: boolean;
  /** Synthetic clip size (default: the training size of `dataset.resolution`). */
  size?: Size;
  maxSteps?: number;
  /** Run folder (default: the config folder, as the reference). */
  runDir?: string;
  keepLast?: number;
  clipGradNorm?: number | null;
  resume?: boolean;
  valBatches?: number;
  /** Real-data validation: first N sequences of each `dataset.val_datasets` (default 2). */
  valSequences?: number;
  /** Real-data validation: first N frames of each sequence (default 8). */
  valFrames?: number;
  /** Real-data validation: model input size instead of each dataset's val size (multiples of 14). */
  valSize?: Size;
  console?: boolean;
}

/**
 * Validation on the val splits of `dataset.val_datasets` for a run that is not --synthetic (null when there is none
 * to run); checked here so that a missing dataset stops the run before any training.
 */
function sequenceValidation(config: FlashDepthConfig, options: RunTrainingOptions): SequenceValidationOptions | null {
  const t = config.training;
  if (options.synthetic === true || !(t.val_freq > 0 || t.start_with_val)) return null;
  const datasets = realValDatasets(config.dataset.val_datasets);
  if (datasets.length === 0) return null;
  if (!config.dataset.data_root) {
    throw new ConfigError(`dataset.data_root: not set; validation reads dataset.val_datasets (${datasets.join(', ')}) from it; pass dataset.data_root=/path/to/data or --synthetic`);
  }
  const o: SequenceValidationOptions = {
    dataRoot: config.dataset.data_root, datasets, resolution: config.dataset.resolution,
    maxSequences: options.valSequences ?? DEFAULT_VAL_SEQUENCES, maxFrames: options.valFrames ?? DEFAULT_VAL_FRAMES,
    ...(options.valSize ? { inputSize: options.valSize } : {}),
  };
  checkSequenceValidation(o);
  return o;
}

export interface RunTrainingResult extends TrainResult {
  runDir: string;
  /** What the pretrained loads did (empty when resumed). */
  loads: Array<{ what: string; path: string; report: LoadReport }>;
  /** Mean seconds per step, excluding the first (warm-up / shader compilation). */
  secondsPerStep: number;
  clipsPerSecond: number;
}

function describeLoad(what: string, path: string, r: LoadReport): string {
  const missing = r.missing.length ? `; ${r.missing.length} keep their fresh init (${[...new Set(r.missing.map((k) => k.split('.').slice(0, 1).join('.')))].join(', ')}.*)` : '';
  const unexpected = r.unexpected.length ? `; ${r.unexpected.length} checkpoint keys unused` : '';
  return `${what}: ${path}: initialised ${r.loaded.length} tensors${missing}${unexpected}`;
}

function noMismatches(path: string, r: LoadReport): void {
  if (r.mismatched.length === 0) return;
  const m = r.mismatched[0]!;
  throw new CheckpointError(`${path}: ${r.mismatched.length} tensors do not fit the model, e.g. ${m.key} expected (${m.expected.join(', ')}) found (${m.found.join(', ')})`);
}

/** Stage-1 init (non-strict, like `load_state_dict(strict=False)`): DA-V2 gives pretrained/depth_head; mamba stays fresh. */
function loadStage1(model: FlashDepth, path: string): LoadReport {
  const source = openWeights(path);
  try {
    const report = loadWeights(model, source, { strict: false });
    noMismatches(path, report);
    if (report.loaded.length === 0) throw new CheckpointError(`${path}: no tensor matches the model (expected pretrained.*, depth_head.* keys)`);
    return report;
  } finally {
    source.close();
  }
}

/** Stage-2 init (spec §4.3): student from FlashDepth-S (pretrained, depth_head, mamba); teacher from FlashDepth-L. */
function loadStage2(model: FlashDepth, studentPath: string, teacherPath: string): Array<{ what: string; path: string; report: LoadReport }> {
  if (!model.teacher) throw new ConfigError('distill: the config has no teacher (hybrid_configs.use_hybrid must be true; use configs/flashdepth)');
  const student = openWeights(studentPath);
  let studentReport: LoadReport;
  try {
    studentReport = loadWeights(model, student, { strict: false });
  } finally {
    student.close();
  }
  noMismatches(studentPath, studentReport);
  const studentKeys = studentReport.loaded.filter((k) => /^(pretrained|depth_head|mamba)\./.test(k));
  if (studentKeys.length === 0) throw new CheckpointError(`${studentPath}: no student tensor (pretrained.*, depth_head.*, mamba.*) fits the model`);
  // FlashDepth-L's pretrained.*/depth_head.* become teacher_model.*; its mamba.* is not used.
  const teacherFile = openWeights(teacherPath);
  const teacherSource = prefixedSource(teacherFile, 'teacher_model.', (k) => !/^(pretrained|depth_head)\./.test(k));
  let teacherReport: LoadReport;
  try {
    teacherReport = loadWeights(model.teacher, teacherSource, { prefix: 'teacher_model.', strict: false });
  } finally {
    teacherSource.close();
  }
  noMismatches(teacherPath, teacherReport);
  const expected = [...model.teacher.namedParameters()].length;
  if (teacherReport.loaded.length !== expected) {
    // The reference asserts that all 407 ViT-L/DPT-L keys overlap.
    throw new CheckpointError(`${teacherPath}: the teacher needs ${expected} tensors (pretrained.*, depth_head.*) but ${teacherReport.loaded.length} fit; missing e.g. ${teacherReport.missing[0] ?? '?'}`);
  }
  return [{ what: 'student', path: studentPath, report: studentReport }, { what: 'teacher', path: teacherPath, report: teacherReport }];
}

export async function runTraining(options: RunTrainingOptions): Promise<RunTrainingResult> {
  const config: FlashDepthConfig = loadConfig(options.config, options.overrides ?? []);
  if (options.load) config.load = options.load;
  if (options.teacher) config.hybrid_configs.teacher_model_path = options.teacher;
  if (options.stage === 'train' && config.hybrid_configs.use_hybrid) {
    throw new ConfigError(`train: ${options.config} is a hybrid (Full) config; stage 2 runs with \`distill\``);
  }
  if (options.stage === 'distill' && !config.hybrid_configs.use_hybrid) {
    throw new ConfigError(`distill: ${options.config} has hybrid_configs.use_hybrid false; stage 2 needs the Full config (configs/flashdepth)`);
  }
  const runDir = options.runDir ?? config.config_dir ?? '.';
  const resuming = options.resume !== false && latestCheckpoint(runDir) !== null;
  const stage2Checkpoints = Boolean(config.load && config.hybrid_configs.teacher_model_path);
  // A synthetic distill run without checkpoints is a timing/smoke run: every weight, teacher included, starts fresh.
  const freshStage2 = !resuming && options.stage === 'distill' && !stage2Checkpoints && options.synthetic === true;
  if (!resuming && options.stage === 'distill' && !stage2Checkpoints && !freshStage2) {
    throw new ConfigError('distill: needs --load <FlashDepth-S checkpoint> and --teacher <FlashDepth-L checkpoint> (or --synthetic for a timing run from fresh weights)');
  }
  const valSequences = sequenceValidation(config, options);
  const model = createFlashDepth(config);
  const loads: RunTrainingResult['loads'] = [];
  try {
    // The teacher is always loaded whole (or resumed), so its 300M-parameter fresh init would be wasted work.
    initTrainingWeights(model, config.training.seed, (key) => freshStage2 || !key.startsWith('teacher_model.'));
    if (resuming) {
      log.info(`resuming from ${latestCheckpoint(runDir)} (pretrained weights are not loaded again)`);
    } else if (options.stage === 'train') {
      if (config.load) loads.push({ what: 'pretrained', path: config.load, report: loadStage1(model, config.load) });
      else log.warn('train: no --load checkpoint; every weight starts from the fresh initialisation');
    } else if (freshStage2) {
      log.warn('distill: --synthetic without --load/--teacher: student and teacher start from fresh weights (a timing run)');
    } else {
      loads.push(...loadStage2(model, config.load!, config.hybrid_configs.teacher_model_path!));
    }
    for (const l of loads) log.info(describeLoad(l.what, l.path, l.report));
    log.info(`training ${options.stage === 'train' ? 'stage 1' : 'stage 2 (distill)'} on ${tf.getBackend()}: ${model.countParameters().toLocaleString('en-US')} parameters, run folder ${runDir}`);

    const synthetic = options.synthetic === true;
    const runInfo = { stage: options.stage, synthetic, size: options.size ?? null };
    const stepTimes: number[] = [];
    let clips = 0;
    const result = await train({
      model,
      config,
      runDir,
      makeData: (resumeAt) => createBatchSource(config, { synthetic, size: options.size, resumeAt }),
      makeValData: synthetic || config.dataset.train_datasets.every((d) => d === 'random')
        ? () => createBatchSource({ ...config, training: { ...config.training, seed: config.training.seed + 1 } }, { synthetic: true, size: options.size })
        : undefined,
      valBatches: options.valBatches,
      ...(valSequences ? { validateModel: (m: FlashDepth) => validateSequences(m, valSequences) } : {}),
      maxSteps: options.maxSteps,
      keepLast: options.keepLast,
      clipGradNorm: options.clipGradNorm ?? null,
      resume: options.resume,
      runInfo,
      console: options.console,
      onStep: (r) => {
        stepTimes.push(r.secondsPerStep);
        clips += r.clipsPerSecond * r.secondsPerStep;
      },
    });
    const timed = stepTimes.length > 1 ? stepTimes.slice(1) : stepTimes;
    const secondsPerStep = timed.reduce((a, b) => a + b, 0) / Math.max(1, timed.length);
    const clipsPerStep = clips / Math.max(1, stepTimes.length);
    return { ...result, runDir, loads, secondsPerStep, clipsPerSecond: clipsPerStep / secondsPerStep };
  } finally {
    model.dispose();
  }
}
