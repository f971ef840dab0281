import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { loadClip } from '../../src/dataloaders/clip-loader.js';
import { indexDataset } from '../../src/dataloaders/scene-index.js';
import { iterateSequences, type SequenceFrame } from '../../src/dataloaders/sequences.js';
import { ConfigError } from '../../src/errors.js';
import { buildTinyTree, H, W } from './helpers/tiny-tree.js';

const root = mkdtempSync(join(tmpdir(), 'seq-'));
const f32 = Math.fround;

async function collect(frames: AsyncIterable<SequenceFrame>): Promise<SequenceFrame[]> {
  const out: SequenceFrame[] = [];
  for await (const f of frames) out.push(f);
  return out;
}

describe('dataloaders/sequences (whole sequences for val/test)', function () {
  this.timeout(60000);
  before(async () => { await buildTinyTree(root); });

  it('sintel val: the first 8 scenes in order, frames in order, RGB at 1022×434, GT at native size', async () => {
    const names: string[] = [];
    let second: SequenceFrame[] = [];
    for await (const seq of iterateSequences(root, 'sintel', 'val', { resolution: 'base' })) {
      names.push(seq.sequence);
      expect(seq.length).to.equal(3);
      const frames = await collect(seq.frames);
      if (seq.sequence === 'scene_1') second = frames;
    }
    expect(names).to.deep.equal(Array.from({ length: 8 }, (_, i) => `scene_${i}`));
    expect(second.map((f) => [f.index, f.frameNumber, f.width, f.height, f.depthWidth, f.depthHeight])).to.deep.equal([
      [0, 1, 1022, 434, W, H], [1, 2, 1022, 434, W, H], [2, 3, 1022, 434, W, H],
    ]);
    // Frame n has depth n m, with 0 → invalid, 2e4 → sky, NaN → invalid in row 0 (tiny-tree.ts).
    const f = second[1]!;
    expect(Array.from(f.invDepth!.subarray(0, 4))).to.deep.equal([-1, 0, -1, f32(1 / 2)]);
    expect(Array.from(f.valid!.subarray(0, 4))).to.deep.equal([0, 1, 0, 1]);
    expect(f.rgbFile).to.equal(join(root, 'sintel/images/training/clean/scene_1/frame_0002.png'));
    // The RGB is exactly what the val clip decoder produces for that frame.
    const s = indexDataset(root, 'sintel', 'val').scenes[1]!;
    const clip = await loadClip({ dataset: 'sintel', split: 'val', mode: 'base', scene: s.name, frameIndices: [1], seed: 0, files: [{ rgb: s.frames[1]!.rgb, depth: s.frames[1]!.depth }] });
    expect(f.rgb).to.deep.equal(clip.frames);
  });

  it('test split: images only, at the 2k size; scene filter, maxFrames and worker threads', async () => {
    const seqs = [];
    for await (const seq of iterateSequences(root, 'urbansyn', 'test', { resolution: '2k', scenes: ['2'], maxFrames: 2, workers: 1 })) {
      seqs.push({ name: seq.sequence, frames: await collect(seq.frames) });
    }
    expect(seqs.map((s) => s.name)).to.deep.equal(['2']);
    expect(seqs[0]!.frames.map((f) => [f.index, f.width, f.height, f.invDepth, f.valid])).to.deep.equal([[0, 2044, 1022, null, null], [1, 2044, 1022, null, null]]);
  });

  it('breaking out early is fine; bad arguments name the option', async () => {
    for await (const seq of iterateSequences(root, 'eth3d', 'val', { resolution: 'base', prefetch: 3 })) {
      for await (const f of seq.frames) {
        expect([f.width, f.height]).to.deep.equal([784, 518]);
        break;
      }
      break;
    }
    const run = async (fn: () => AsyncGenerator<unknown>): Promise<Error> => {
      try {
        for await (const _ of fn()) { /* drain */ }
      } catch (e) {
        return e as Error;
      }
      throw new Error('expected a rejection');
    };
    const e1 = await run(() => iterateSequences(root, 'sintel', 'train', { resolution: 'base' }));
    expect(e1).to.be.instanceOf(ConfigError);
    expect(e1.message).to.equal("Expected 'val' or 'test' (training clips come from CombinedLoader) for split but received \"train\"");
    const e2 = await run(() => iterateSequences(root, 'eth3d', 'val', { resolution: 'base', scenes: ['nope'] }));
    expect(e2.message).to.match(/^Expected scenes of eth3d val \(courtyard, delivery_area\) for scenes but received/);
  });
});
