/**
 * Loading checkpoint tensors into FlashModule trees, and exporting them back.
 *
 * Every model parameter is looked up by its full PyTorch key; the PyTorch → tfjs layout change declared by the
 * parameter (`ParamLayout`, spec §4.4) is applied here and nowhere else. A strict load requires every parameter
 * present with the right shape and no unexpected keys, and reports all problems in one CheckpointError.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CheckpointError } from '../errors.js';
import type { WeightSource } from '../io/weight-source.js';
import type { FlashModule, NamedParameter, ParamLayout } from './module.js';

export interface LoadOptions {
  /** Prefix prepended to the module's own keys when looking them up in the source (e.g. `teacher_model.`). */
  prefix?: string;
  /** Strict (default): missing, unexpected and mis-shaped keys are an error. Non-strict: they are reported. */
  strict?: boolean;
  /**
   * Source keys under these prefixes are not "unexpected" (e.g. `teacher_model.` when loading only the student, or
   * `mamba.` when loading FlashDepth-L weights into a teacher).
   */
  ignorePrefixes?: string[];
}

export interface LoadReport {
  loaded: string[];
  missing: string[];
  unexpected: string[];
  mismatched: Array<{ key: string; expected: number[]; found: number[] }>;
}

/** The PyTorch shape of a parameter whose tfjs shape is `shape` under `layout`. */
export function torchShape(shape: readonly number[], layout: ParamLayout): number[] {
  switch (layout) {
    case 'same': return [...shape];
    case 'linear': return [shape[1]!, shape[0]!];
    case 'conv2d': return [shape[3]!, shape[2]!, shape[0]!, shape[1]!]; // [kh,kw,in,out] → (out,in,kh,kw)
    case 'conv2dTranspose': return [shape[3]!, shape[2]!, shape[0]!, shape[1]!]; // [kh,kw,out,in] → (in,out,kh,kw)
    case 'depthwiseConv1d': return [shape[1]!, 1, shape[0]!]; // [k, C] → (C, 1, k)
  }
}

/** Converts a PyTorch-layout tensor to our layout. */
export function fromTorchLayout(t: tf.Tensor, layout: ParamLayout): tf.Tensor {
  switch (layout) {
    case 'same': return t;
    case 'linear': return tf.transpose(t, [1, 0]);
    case 'conv2d': case 'conv2dTranspose': return tf.transpose(t, [2, 3, 1, 0]);
    case 'depthwiseConv1d': return tf.transpose(tf.reshape(t, [t.shape[0]!, t.shape[2]!]), [1, 0]);
  }
}

/**
 * One of our tensors in PyTorch layout (for export to `.pth`/safetensors with torch names). Always a new tensor that
 * the caller owns, also for 'same' (so disposing it never disposes a model variable).
 */
export function toTorchLayout(t: tf.Tensor, layout: ParamLayout): tf.Tensor {
  switch (layout) {
    case 'same': return tf.clone(t);
    case 'linear': return tf.transpose(t, [1, 0]);
    case 'conv2d': case 'conv2dTranspose': return tf.transpose(t, [3, 2, 0, 1]);
    case 'depthwiseConv1d': return tf.reshape(tf.transpose(t, [1, 0]), [t.shape[1]!, 1, t.shape[0]!]);
  }
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

function listForError(title: string, items: string[]): string {
  if (items.length === 0) return '';
  const shown = items.slice(0, 12).join(', ');
  return `${title} (${items.length}): ${shown}${items.length > 12 ? `, … ${items.length - 12} more` : ''}`;
}

/**
 * Assigns every parameter of `module` from `source`. Returns what was loaded, missing, unexpected or mismatched;
 * throws one CheckpointError listing all of them when strict.
 */
export function loadWeights(module: FlashModule, source: WeightSource, options: LoadOptions = {}): LoadReport {
  const prefix = options.prefix ?? '';
  const strict = options.strict ?? true;
  const params: NamedParameter[] = [...module.namedParameters()];
  const report: LoadReport = { loaded: [], missing: [], unexpected: [], mismatched: [] };
  const plan: Array<{ p: NamedParameter; key: string }> = [];
  for (const p of params) {
    const key = prefix + p.key;
    if (!source.has(key)) {
      report.missing.push(key);
      continue;
    }
    const expected = torchShape(p.spec.shape, p.spec.layout);
    const found = source.info(key).shape;
    if (!sameShape(expected, found)) {
      report.mismatched.push({ key, expected, found });
      continue;
    }
    plan.push({ p, key });
  }
  const used = new Set(params.map((p) => prefix + p.key));
  const ignore = options.ignorePrefixes ?? [];
  for (const key of source.keys()) {
    if (used.has(key)) continue;
    if (prefix && !key.startsWith(prefix)) continue; // keys of other sub-models in the same file
    if (ignore.some((ip) => key.startsWith(ip))) continue;
    report.unexpected.push(key);
  }
  if (strict && (report.missing.length || report.unexpected.length || report.mismatched.length)) {
    const parts = [
      listForError('missing keys', report.missing),
      listForError('unexpected keys', report.unexpected),
      listForError('shape mismatches', report.mismatched.map((m) => `${m.key} expected (${m.expected.join(', ')}) found (${m.found.join(', ')})`)),
    ].filter((s) => s.length > 0);
    throw new CheckpointError(`${source.path}: checkpoint does not fit the model: ${parts.join('; ')}`);
  }
  for (const { p, key } of plan) {
    const data = source.readFloat32(key);
    tf.tidy(() => {
      const torchT = tf.tensor(data, source.info(key).shape, 'float32');
      p.spec.variable.write(fromTorchLayout(torchT, p.spec.layout));
    });
    report.loaded.push(key);
  }
  return report;
}

/** Every parameter of `module` in PyTorch layout under its PyTorch key (caller disposes the tensors). */
export function exportTorchTensors(module: FlashModule, prefix = ''): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const p of module.namedParameters()) {
    out.set(prefix + p.key, tf.tidy(() => toTorchLayout(p.spec.variable.read(), p.spec.layout)));
  }
  return out;
}
