/**
 * Training observability: one console line per step (step, loss, lr per group, s/step, clips/s, ETA, memory), every
 * record appended to `train_log.jsonl`, and `train_plot.html` (an SVG loss/validation curve, self-contained) rewritten
 * as the run goes, so a browser refresh shows progress.
 */
import { appendFileSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { log } from '../log.js';

export interface StepRecord {
  kind: 'train';
  /** The optimiser step just taken (0-based). */
  step: number;
  loss: number;
  lr: Record<string, number>;
  secondsPerStep: number;
  clipsPerSecond: number;
  etaSeconds: number;
  /** tfjs memory sampled at the end of the forward pass, where activations peak. */
  peakBytes: number;
  numTensors: number;
  gradNorm?: number;
  dataset: string;
}

export interface ValRecord {
  kind: 'val';
  step: number;
  metrics: Record<string, number>;
}

export type LogRecord = StepRecord | ValRecord;

function hms(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}:${String(m).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/** The console line of a step. */
export function formatStep(r: StepRecord, totalSteps: number): string {
  const lrs = Object.entries(r.lr).map(([g, v]) => `${g} ${v.toExponential(2)}`).join(' ');
  return `step ${r.step + 1}/${totalSteps} loss ${r.loss.toFixed(5)} | lr ${lrs} | ${r.secondsPerStep.toFixed(2)} s/step ${r.clipsPerSecond.toFixed(2)} clips/s ETA ${hms(r.etaSeconds)} | peak ${(r.peakBytes / 2 ** 20).toFixed(0)} MiB`;
}

function polyline(points: Array<[number, number]>, x: (v: number) => number, y: (v: number) => number, color: string): string {
  if (points.length === 0) return '';
  return `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${points.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(' ')}"/>`;
}

/** A self-contained HTML page with the training loss (and validation metrics) against the step, log-scale y. */
export function plotHtml(records: readonly LogRecord[], title: string): string {
  const train = records.filter((r): r is StepRecord => r.kind === 'train' && r.loss > 0).map((r) => [r.step + 1, r.loss] as [number, number]);
  const vals = records.filter((r): r is ValRecord => r.kind === 'val');
  const valSeries = new Map<string, Array<[number, number]>>();
  for (const v of vals) for (const [k, m] of Object.entries(v.metrics)) if (m > 0) (valSeries.get(k) ?? valSeries.set(k, []).get(k)!).push([v.step, m]);
  const all = [...train, ...[...valSeries.values()].flat()];
  const W = 800, H = 400, P = 50;
  const xs = all.map((p) => p[0]), ys = all.map((p) => Math.log10(p[1]));
  const [x0, x1] = [Math.min(0, ...xs), Math.max(1, ...xs)];
  const [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys) + 1e-9] : [0, 1];
  const sx = (v: number) => P + ((v - x0) / (x1 - x0 || 1)) * (W - 2 * P);
  const sy = (v: number) => H - P - ((Math.log10(v) - y0) / (y1 - y0 || 1)) * (H - 2 * P);
  const colors = ['#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];
  const lines = [polyline(train, sx, sy, '#1f77b4'), ...[...valSeries.values()].map((s, i) => polyline(s, sx, sy, colors[i % colors.length]!))];
  const legend = ['train loss', ...[...valSeries.keys()].map((k) => `val ${k}`)]
    .map((name, i) => `<text x="${P + 10}" y="${P + 15 * (i + 1)}" fill="${i === 0 ? '#1f77b4' : colors[(i - 1) % colors.length]}">${name}</text>`).join('');
  const last = train.at(-1);
  return `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="30"><title>${title}</title></head>
<body style="font-family:sans-serif"><h3>${title}</h3><p>${last ? `step ${last[0]}, loss ${last[1].toPrecision(5)}` : 'no steps yet'} (log-scale y; the page reloads every 30 s)</p>
<svg width="${W}" height="${H}" style="border:1px solid #ccc"><line x1="${P}" y1="${H - P}" x2="${W - P}" y2="${H - P}" stroke="#888"/><line x1="${P}" y1="${P}" x2="${P}" y2="${H - P}" stroke="#888"/>
<text x="${P}" y="${H - P + 20}">${x0}</text><text x="${W - P - 30}" y="${H - P + 20}">${x1}</text><text x="5" y="${P}">${(10 ** y1).toPrecision(3)}</text><text x="5" y="${H - P}">${(10 ** y0).toPrecision(3)}</text>
${lines.join('\n')}${legend}</svg></body></html>`;
}

export class TrainLog {
  readonly jsonlPath: string;
  readonly plotPath: string;
  private readonly records: LogRecord[] = [];

  constructor(readonly dir: string, private readonly title: string, private readonly console = true) {
    mkdirSync(dir, { recursive: true });
    this.jsonlPath = join(dir, 'train_log.jsonl');
    this.plotPath = join(dir, 'train_plot.html');
  }

  record(r: LogRecord, totalSteps: number): void {
    this.records.push(r);
    appendFileSync(this.jsonlPath, JSON.stringify({ ...r, time: new Date().toISOString() }) + '\n');
    if (this.console) {
      if (r.kind === 'train') log.info(formatStep(r, totalSteps));
      else log.info(`val @ step ${r.step}: ${Object.entries(r.metrics).map(([k, v]) => `${k} ${v.toPrecision(5)}`).join(' ')}`);
    }
    const tmp = `${this.plotPath}.tmp`;
    writeFileSync(tmp, plotHtml(this.records, this.title));
    renameSync(tmp, this.plotPath);
  }
}
