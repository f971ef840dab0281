import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { buildTinyTree } from '../dataloaders/helpers/tiny-tree.js';
import { runCliProcess } from './spawn-cli.js';

describe('cli: npm run data -- check', function () {
  this.timeout(120_000);
  const root = mkdtempSync(join(tmpdir(), 'data-cli-'));
  before(() => buildTinyTree(root));

  it('prints per-split counts, writes the preview and exits 0 on a clean tree', async () => {
    const preview = join(root, 'preview.png');
    const r = await runCliProcess(['data', 'check', root, '--datasets', 'sintel,spring', '--preview', preview]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^dataset\s+split\s+scenes\s+frames\s+clips$/m);
    expect(r.stdout).to.match(/^sintel\s+val\s+8\s+24\s+8$/m);
    expect(r.stdout).to.match(/^spring\s+train\s+3\s+18\s+18$/m);
    expect(existsSync(preview)).to.equal(true);
  });

  it('lists missing and truncated depth files with their paths and exits non-zero', async () => {
    const bad = join(root, 'mvs-synth/GTAV_1080/0000/depths/0005.exr');
    writeFileSync(bad, readFileSync(bad).subarray(0, 100));
    const r = await runCliProcess(['data', 'check', root, '--datasets', 'mvs-synth']);
    expect(r.code).to.equal(5);
    expect(r.stderr).to.include(`mvs-synth: unreadable ${bad}: ${bad}: truncated EXR header`);
    // The tiny tree also lacks one depth file on purpose.
    expect(r.stderr).to.include(`mvs-synth: missing ${join(root, 'mvs-synth/GTAV_1080/0001/depths/0002.exr')}`);
    expect(r.stderr).to.match(/error: .*: 2 missing or unreadable file\(s\), listed above/);
  });

  it('rejects an unknown dataset name with the choices', async () => {
    const r = await runCliProcess(['data', 'check', root, '--datasets', 'kitti']);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/error: --datasets: unknown dataset "kitti"; expected some of mvs-synth, spring/);
  });
});
