/** `npm run data -- check <data_root> [--datasets a,b] [--preview preview.png] [--decode-all] [--json report.json]`. */
import { writeFileSync } from 'node:fs';
import { ConfigError, InputError } from '../errors.js';
import { log } from '../log.js';

export interface DataCheckOptions {
  dataRoot: string;
  datasets?: string;
  preview?: string;
  decodeAll: boolean;
  json?: string;
}

export async function runDataCheck(options: DataCheckOptions): Promise<void> {
  const { checkDatasets } = await import('../dataloaders/check.js');
  const { DATASETS } = await import('../dataloaders/datasets.js');
  type Name = keyof typeof DATASETS;
  const names = options.datasets?.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  for (const n of names ?? []) {
    if (!Object.hasOwn(DATASETS, n)) throw new ConfigError(`--datasets: unknown dataset ${JSON.stringify(n)}; expected some of ${Object.keys(DATASETS).join(', ')}`);
  }
  const report = await checkDatasets(options.dataRoot, { datasets: names as Name[] | undefined, previewPath: options.preview, decodeAll: options.decodeAll });
  const found = report.datasets.filter((d) => d.found);
  if (found.length === 0) throw new InputError(`${options.dataRoot}: no dataset folder found (expected some of ${Object.keys(DATASETS).join(', ')})`);
  const rows: string[][] = [['dataset', 'split', 'scenes', 'frames', 'clips']];
  for (const d of report.datasets) {
    if (!d.found) {
      rows.push([d.dataset, '-', 'not found', '', '']);
      continue;
    }
    for (const [split, c] of Object.entries(d.splits)) {
      if (c && 'error' in c) rows.push([d.dataset, split, `error: ${c.error}`, '', '']);
      else if (c) rows.push([d.dataset, split, String(c.scenes), String(c.frames), String(c.clips)]);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  let problems = 0;
  for (const d of report.datasets) {
    for (const m of d.missing) log.warn(`${d.dataset}: missing ${m}`);
    for (const u of d.unreadable) log.warn(`${d.dataset}: unreadable ${u.file}: ${u.message}`);
    problems += d.missing.length + d.unreadable.length;
  }
  if (report.previewPath) log.info(`preview: ${report.previewPath}`);
  if (options.json) writeFileSync(options.json, JSON.stringify(report, null, 2) + '\n');
  if (problems > 0) throw new InputError(`${options.dataRoot}: ${problems} missing or unreadable file(s), listed above`);
}
