import { mkdtempSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import sharp from 'sharp';
import { checkDatasets } from '../../src/dataloaders/check.js';
import { buildTinyTree } from './helpers/tiny-tree.js';

describe('dataloaders/check', function () {
  this.timeout(60000);
  const root = mkdtempSync(join(tmpdir(), 'check-'));
  before(async () => {
    await buildTinyTree(root);
    // One unreadable depth file (garbage EXR) and one missing depth file.
    writeFileSync(join(root, 'mvs-synth/GTAV_1080/0000/depths/0005.exr'), readFileSync(join(root, 'mvs-synth/GTAV_1080/0000/depths/0005.exr')).subarray(0, 100));
    unlinkSync(join(root, 'spring/train/0002/disp1_left/disp1_left_0006.dsp5'));
  });

  it('counts scenes, frames and clips per split and lists missing and unreadable files', async () => {
    const preview = join(root, 'preview.png');
    const report = await checkDatasets(root, { datasets: ['mvs-synth', 'spring'], previewPath: preview });
    const [mvs, spring] = report.datasets;
    expect(mvs!.splits.train).to.deep.equal({ scenes: 2, frames: 11, clips: 11 });
    expect(mvs!.splits.val).to.deep.equal({ scenes: 2, frames: 12, clips: 2 });
    expect(mvs!.splits.test).to.deep.equal({ scenes: 4, frames: 24, clips: 4 });
    expect(mvs!.missing).to.deep.equal([join(root, 'mvs-synth/GTAV_1080/0001/depths/0002.exr')]);
    const bad = join(root, 'mvs-synth/GTAV_1080/0000/depths/0005.exr');
    expect(mvs!.unreadable).to.deep.equal([{ file: bad, message: `${bad}: truncated EXR header` }]);
    expect(spring!.splits.train).to.deep.equal({ scenes: 3, frames: 17, clips: 17 });
    expect(spring!.missing).to.deep.equal([join(root, 'spring/train/0002/disp1_left/disp1_left_0006.dsp5')]);
    // Preview: 5 frames of 518² side by side, RGB over depth.
    expect(report.previewPath).to.equal(preview);
    const meta = await sharp(preview).metadata();
    expect([meta.width, meta.height]).to.deep.equal([5 * 518, 2 * 518]);
  });
});
