import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { runCliProcess } from '../cli/spawn-cli.js';

describe('train: CLI (npm run train / distill / convert --to pth)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'flashdepth-train-cli-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('train --synthetic runs, checkpoints, logs JSONL and a plot, prints s/step, clips/s and peak memory; convert exports .pth', async () => {
    const r = await runCliProcess(['train', '--config', 'configs/tiny', '--synthetic', '--size', '70x70', '--max-steps', '2', '--out', dir, '--backend', 'wasm', 'training.lr.vit=0']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.match(/step 2\/2 loss \d+\.\d+ \| lr dpt 1\.00e-3 mamba 1\.00e-3 \|/);
    expect(r.stderr).to.match(/done: steps 0→2 on wasm .*: \d+\.\d+ s\/step, \d+\.\d+ clips\/s, peak memory \d+ MiB/);
    expect(existsSync(join(dir, 'iter_2.json'))).to.equal(true);
    const lines = readFileSync(join(dir, 'train_log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; lr: Record<string, number> });
    expect(lines.map((l) => l.step)).to.deep.equal([0, 1]);
    expect(Object.keys(lines[0]!.lr)).to.deep.equal(['dpt', 'mamba']);
    expect(readFileSync(join(dir, 'train_plot.html'), 'utf8')).to.contain('<polyline');
    const c = await runCliProcess(['convert', join(dir, 'iter_2.safetensors'), join(dir, 'out.pth')]);
    expect(c.code, c.stderr).to.equal(0);
    expect(c.stderr).to.contain(`wrote ${join(dir, 'out.pth')}: 145 tensors in the official .pth layout, step 2`);
  });

  it('distill without the checkpoints it needs fails with the flags named (exit 2)', async () => {
    const r = await runCliProcess(['distill', '--config', 'configs/flashdepth', '--out', dir, '--backend', 'cpu']);
    expect(r.code).to.equal(2);
    expect(r.stderr.trim().split('\n').at(-1)).to.equal(
      'error: distill: needs --load <FlashDepth-S checkpoint> and --teacher <FlashDepth-L checkpoint> (or --synthetic for a timing run from fresh weights)',
    );
  });
});
