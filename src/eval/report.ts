/** Evaluation results: their types, the per-dataset means, the printed tables, the CSV and the JSON report. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DepthMetrics } from './metrics.js';

/** One sequence's metrics (`frames` counts the frames with ground truth that entered them) and where they came from. */
export interface SequenceResult extends DepthMetrics {
  dataset: string;
  sequence: string;
  /** Model frames per second (predict + read-back), null when evaluating saved predictions. */
  fps: number | null;
  /** Frames whose ground-truth file is missing: streamed through the model but left out of the metrics. */
  framesWithoutGt: number;
}

export interface DatasetResult {
  dataset: string;
  sequences: number;
  frames: number;
  /** Means over sequences (the reference averages per sequence, then per dataset). */
  absRel: number;
  delta1: number;
  boundaryF1: number;
  fps: number | null;
}

export interface EvalReport {
  mode: 'model' | 'predictions';
  /** Model mode: the config (variant or folder), its hash and the checkpoint. Predictions mode: the folder. */
  source: Record<string, string>;
  backend: string;
  split: string;
  resolution: string;
  /** Model input size override (WxH), if one was given. */
  inputSize: string | null;
  datasets: DatasetResult[];
  sequences: SequenceResult[];
  /** Means over datasets. */
  mean: { absRel: number; delta1: number; boundaryF1: number };
}

const mean = (xs: readonly number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

/** Per-dataset means over its sequences. FPS is frames over total model time, so long sequences weigh more. */
export function summarizeDataset(dataset: string, sequences: readonly SequenceResult[]): DatasetResult {
  const timed = sequences.filter((s) => s.fps !== null && s.fps > 0);
  const frames = sequences.reduce((a, s) => a + s.frames + s.framesWithoutGt, 0);
  const seconds = timed.reduce((a, s) => a + (s.frames + s.framesWithoutGt) / s.fps!, 0);
  return {
    dataset,
    sequences: sequences.length,
    frames: sequences.reduce((a, s) => a + s.frames, 0),
    absRel: mean(sequences.map((s) => s.absRel)),
    delta1: mean(sequences.map((s) => s.delta1)),
    boundaryF1: mean(sequences.map((s) => s.boundaryF1)),
    fps: timed.length > 0 && seconds > 0 ? frames / seconds : null,
  };
}

export function meanOverDatasets(datasets: readonly DatasetResult[]): EvalReport['mean'] {
  return { absRel: mean(datasets.map((d) => d.absRel)), delta1: mean(datasets.map((d) => d.delta1)), boundaryF1: mean(datasets.map((d) => d.boundaryF1)) };
}

const fmt = (x: number | null, digits = 4): string => (x === null ? '-' : Number.isNaN(x) ? 'nan' : x.toFixed(digits));

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** One dataset's table: a row per sequence, then the dataset mean. */
export function formatDatasetTable(result: DatasetResult, sequences: readonly SequenceResult[]): string {
  const rows = sequences.map((s) => [s.sequence, fmt(s.absRel), fmt(s.delta1), fmt(s.boundaryF1), String(s.frames), fmt(s.fps, 2)]);
  rows.push([`mean (${result.sequences} seq)`, fmt(result.absRel), fmt(result.delta1), fmt(result.boundaryF1), String(result.frames), fmt(result.fps, 2)]);
  return `${result.dataset}\n${table(['sequence', 'AbsRel', 'δ1', 'F1', 'frames', 'FPS'], rows)}`;
}

/** The summary: a row per dataset and the mean over datasets. */
export function formatSummaryTable(report: EvalReport): string {
  const rows = report.datasets.map((d) => [d.dataset, fmt(d.absRel), fmt(d.delta1), fmt(d.boundaryF1), String(d.frames), fmt(d.fps, 2)]);
  rows.push(['mean', fmt(report.mean.absRel), fmt(report.mean.delta1), fmt(report.mean.boundaryF1), String(report.datasets.reduce((a, d) => a + d.frames, 0)), '']);
  return table(['dataset', 'AbsRel', 'δ1', 'F1', 'frames', 'FPS'], rows);
}

const CSV_COLUMNS = ['dataset', 'sequence', 'frames', 'abs_rel', 'delta1', 'boundary_f1', 'scale', 'shift', 'valid_pixels', 'fps', 'frames_without_gt'] as const;

function csvCell(v: string | number | null): string {
  const s = v === null ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One row per sequence, full precision. */
export function sequencesCsv(sequences: readonly SequenceResult[]): string {
  const rows = sequences.map((s) => [s.dataset, s.sequence, s.frames, s.absRel, s.delta1, s.boundaryF1, s.scale, s.shift, s.validPixels, s.fps, s.framesWithoutGt].map(csvCell).join(','));
  return [CSV_COLUMNS.join(','), ...rows].join('\n') + '\n';
}

/** Writes `metrics.json` (the whole report) and `sequences.csv` into the output folder; returns their paths. */
export function writeReport(outDir: string, report: EvalReport): { json: string; csv: string } {
  const json = join(outDir, 'metrics.json');
  const csv = join(outDir, 'sequences.csv');
  // NaN is not JSON: an undefined metric (no valid pixel) is written as null.
  writeFileSync(json, JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
  writeFileSync(csv, sequencesCsv(report.sequences));
  return { json, csv };
}
