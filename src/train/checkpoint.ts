/**
 * Training checkpoints: everything needed to continue a run exactly.
 *
 *   iter_{step}.safetensors        model weights, PyTorch keys and layouts (loadable by infer/eval as is)
 *   iter_{step}.optim.safetensors  AdamW moments: exp_avg.<key>, exp_avg_sq.<key>
 *   iter_{step}.json               sidecar: step, per-parameter optimiser step counts, the resolved config, the data
 *                                  loader position, run options, and the byte size + sha256 of both tensor files
 *
 * `step` counts optimiser steps done (the next step to run). Saving is atomic: each file is written to a temporary
 * name and renamed, the sidecar last, so a checkpoint exists only once its sidecar does; a run killed mid-save leaves
 * the previous checkpoint as the newest. Loading checks sizes and hashes and names the file that does not fit.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { FlashDepthConfig } from '../config.js';
import { CheckpointError } from '../errors.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import type { FlashModule } from '../models/module.js';
import { exportTorchTensors, loadWeights } from '../models/weights.js';
import type { AdamW } from './optimizer.js';

export const CHECKPOINT_FORMAT = 'flashdepth-ts/train-checkpoint/1';

interface FileRecord {
  name: string;
  bytes: number;
  sha256: string;
}

export interface CheckpointMeta {
  format: typeof CHECKPOINT_FORMAT;
  /** Optimiser steps done; training continues with this step. */
  step: number;
  optimizer: { steps: Record<string, number>; options: AdamW['options'] };
  config: FlashDepthConfig;
  /** The data source's position (opaque to the checkpoint code). */
  data: unknown;
  /** Run options that decide the next losses (input size, synthetic mode, …). */
  run: Record<string, unknown>;
  files: { weights: FileRecord; optimizer: FileRecord };
  savedAt: string;
}

export interface SaveCheckpointArgs {
  dir: string;
  step: number;
  model: FlashModule;
  optimizer: AdamW;
  config: FlashDepthConfig;
  data: unknown;
  run: Record<string, unknown>;
  /** Keep this many newest checkpoints (older ones are deleted after the save). 0 keeps all. */
  keepLast: number;
}

const NAME = /^iter_(\d+)\.json$/;

export function checkpointPaths(dir: string, step: number): { weights: string; optimizer: string; sidecar: string } {
  return {
    weights: join(dir, `iter_${step}.safetensors`),
    optimizer: join(dir, `iter_${step}.optim.safetensors`),
    sidecar: join(dir, `iter_${step}.json`),
  };
}

function fileRecord(path: string): FileRecord {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(1 << 22);
    let n: number;
    while ((n = readSync(fd, buf, 0, buf.length, null)) > 0) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return { name: basename(path), bytes: statSync(path).size, sha256: hash.digest('hex') };
}

/** Reads every tensor back to the host (asynchronously: WebGPU in Node has no synchronous readback). */
async function tensorsToWrite(tensors: Map<string, tf.Tensor>): Promise<TensorToWrite[]> {
  const out: TensorToWrite[] = [];
  for (const [key, t] of tensors) out.push({ key, shape: t.shape, dtype: 'float32', data: (await t.data()) as Float32Array });
  return out;
}

/** Saves a checkpoint atomically and prunes old ones; returns the sidecar path. */
export async function saveCheckpoint(args: SaveCheckpointArgs): Promise<string> {
  const paths = checkpointPaths(args.dir, args.step);
  const weights = exportTorchTensors(args.model);
  try {
    writeSafetensors(paths.weights, await tensorsToWrite(weights), { format: 'pt', step: String(args.step) });
  } finally {
    tf.dispose([...weights.values()]);
  }
  const state = args.optimizer.state();
  writeSafetensors(paths.optimizer, await tensorsToWrite(state.tensors), { step: String(args.step) });
  const meta: CheckpointMeta = {
    format: CHECKPOINT_FORMAT,
    step: args.step,
    optimizer: { steps: state.steps, options: args.optimizer.options },
    config: args.config,
    data: args.data,
    run: args.run,
    files: { weights: fileRecord(paths.weights), optimizer: fileRecord(paths.optimizer) },
    savedAt: new Date().toISOString(),
  };
  const tmp = `${paths.sidecar}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(meta, null, 1));
  renameSync(tmp, paths.sidecar);
  if (args.keepLast > 0) pruneCheckpoints(args.dir, args.keepLast);
  return paths.sidecar;
}

/** Steps of the complete checkpoints (those with a sidecar) in `dir`, ascending. */
export function listCheckpoints(dir: string): number[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((f) => NAME.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** The sidecar of the newest checkpoint in `dir`, or null. */
export function latestCheckpoint(dir: string): string | null {
  const steps = listCheckpoints(dir);
  return steps.length === 0 ? null : checkpointPaths(dir, steps[steps.length - 1]!).sidecar;
}

/** Deletes all but the newest `keep` checkpoints (sidecar first, so a half-deleted one is never "complete"). */
export function pruneCheckpoints(dir: string, keep: number): void {
  const steps = listCheckpoints(dir);
  for (const step of steps.slice(0, Math.max(0, steps.length - keep))) {
    const p = checkpointPaths(dir, step);
    rmSync(p.sidecar, { force: true });
    rmSync(p.weights, { force: true });
    rmSync(p.optimizer, { force: true });
  }
}

/** Reads and checks a sidecar (and that its tensor files are intact). Throws CheckpointError naming the bad file. */
export function readCheckpointMeta(sidecar: string): CheckpointMeta {
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(readFileSync(sidecar, 'utf8')) as CheckpointMeta;
  } catch (e) {
    throw new CheckpointError(`${sidecar}: corrupt training checkpoint sidecar (${e instanceof Error ? e.message : String(e)}); delete this checkpoint to resume from the previous one`);
  }
  if (meta === null || typeof meta !== 'object' || meta.format !== CHECKPOINT_FORMAT || !Number.isInteger(meta.step) || !meta.files) {
    throw new CheckpointError(`${sidecar}: not a ${CHECKPOINT_FORMAT} sidecar (missing format/step/files)`);
  }
  const dir = join(sidecar, '..');
  for (const rec of [meta.files.weights, meta.files.optimizer]) {
    const path = join(dir, rec.name);
    if (!existsSync(path)) throw new CheckpointError(`${path}: missing; checkpoint ${sidecar} refers to it`);
    const found = fileRecord(path);
    if (found.bytes !== rec.bytes || found.sha256 !== rec.sha256) {
      throw new CheckpointError(`${path}: corrupt checkpoint file: expected ${rec.bytes} bytes with sha256 ${rec.sha256.slice(0, 12)}… but found ${found.bytes} bytes with sha256 ${found.sha256.slice(0, 12)}…; delete iter_${meta.step}.* to resume from the previous checkpoint`);
    }
  }
  return meta;
}

/** Restores model weights (strict) and optimiser state from a checked checkpoint. */
export function restoreCheckpoint(sidecar: string, meta: CheckpointMeta, model: FlashModule, optimizer: AdamW): void {
  const dir = join(sidecar, '..');
  const weights = openSafetensors(join(dir, meta.files.weights.name));
  try {
    loadWeights(model, weights, { strict: true });
  } finally {
    weights.close();
  }
  const moments = openSafetensors(join(dir, meta.files.optimizer.name));
  try {
    optimizer.loadState(meta.optimizer.steps, (name) => {
      if (!moments.has(name)) throw new CheckpointError(`${moments.path}: missing optimiser tensor ${name}`);
      return moments.readFloat32(name);
    }, moments.path);
  } finally {
    moments.close();
  }
}
