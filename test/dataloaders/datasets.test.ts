import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { loadClip, type ClipRequest } from '../../src/dataloaders/clip-loader.js';
import { DATASETS, type FileDatasetName } from '../../src/dataloaders/datasets.js';
import { Rng } from '../../src/dataloaders/rng.js';
import { clipFrameIndices } from '../../src/dataloaders/sampler.js';
import { indexDataset } from '../../src/dataloaders/scene-index.js';
import type { ResolutionMode, Split } from '../../src/dataloaders/types.js';
import { writeNpy } from '../../src/io/npy.js';
import { ConfigError, InputError } from '../../src/errors.js';
import { buildTinyTree, H, W } from './helpers/tiny-tree.js';
import { rejection } from '../helpers/errors.js';

const root = mkdtempSync(join(tmpdir(), 'tree-'));

async function gt(name: FileDatasetName, split: Split, scene = 0, frame = 0): Promise<Float32Array> {
  const f = indexDataset(root, name, split).scenes[scene]!.frames[frame]!;
  return (await DATASETS[name].readInvDepth(f.depth!, f.rgb)).data;
}

function request(name: FileDatasetName, split: Split, mode: ResolutionMode, positions: number[], scene = 0, seed = 1): ClipRequest {
  const s = indexDataset(root, name, split).scenes[scene]!;
  return {
    dataset: name, split, mode, scene: s.name, frameIndices: positions, seed,
    files: positions.map((p) => ({ rgb: s.frames[p]!.rgb, depth: s.frames[p]!.depth })),
  };
}

const f32 = Math.fround;

describe('dataloaders/datasets (tiny trees in the real layouts)', function () {
  this.timeout(60000);
  before(async () => { await buildTinyTree(root); });

  it('splits and scene filters follow spec §6.1', () => {
    const scenes = (n: FileDatasetName, s: Split): string[] => indexDataset(root, n, s).scenes.map((x) => x.name);
    expect(scenes('mvs-synth', 'train')).to.deep.equal(['0000', '0001']);
    expect(scenes('mvs-synth', 'val')).to.deep.equal(['0118', '0119']);
    expect(scenes('spring', 'train')).to.deep.equal(['0001', '0002', '0004']);
    expect(scenes('spring', 'val')).to.deep.equal(['0004']);
    expect(scenes('sintel', 'val')).to.deep.equal(Array.from({ length: 8 }, (_, i) => `scene_${i}`));
    expect(scenes('sintel', 'test')).to.have.length(9);
    expect(scenes('tartanair', 'train')).to.deep.equal(['abandonedfactory/Easy/P000', 'abandonedfactory/Hard/P000']);
    expect(scenes('pointodyssey', 'train')).to.deep.equal(['kg']);
    expect(scenes('dynamicreplica', 'train')).to.deep.equal(['aaa111-1_obj_source_left']);
    expect(scenes('dynamicreplica', 'test')).to.deep.equal(['009850-3_obj_source_left', 'aaa111-1_obj_source_left']);
    expect(scenes('waymo', 'val')).to.deep.equal(['segment-1', 'segment-2']);
    expect(() => indexDataset(root, 'waymo', 'test')).to.throw(InputError, /no test scenes of waymo found/);
    expect(() => indexDataset(root, 'kitti' as FileDatasetName, 'train')).to.throw(ConfigError, /Unknown dataset "kitti" \(expected one of: mvs-synth, spring/);
  });

  it('train frames need a depth file; missing ones are listed with their paths', () => {
    const idx = indexDataset(root, 'mvs-synth', 'train');
    expect(idx.scenes.map((s) => s.frames.map((f) => f.n))).to.deep.equal([[0, 1, 2, 3, 4, 5], [0, 1, 3, 4, 5]]);
    expect(idx.scenes[1]!.missingDepth).to.deep.equal([join(root, 'mvs-synth/GTAV_1080/0001/depths/0002.exr')]);
    expect(indexDataset(root, 'unreal4k', 'test').scenes[0]!.frames[0]!.depth).to.equal(null);
  });

  it('the index cache is written next to the data and rebuilt when the tree changes', () => {
    const cache = join(root, 'unrealstereo4k/.flashdepth-index.train.json');
    expect(indexDataset(root, 'unreal4k', 'train').scenes[0]!.frames).to.have.length(3);
    expect(JSON.parse(readFileSync(cache, 'utf8')).index.scenes[0].frames).to.have.length(3);
    const dir = join(root, 'unrealstereo4k/00000');
    copyFileSync(join(dir, 'Image0/00002.png'), join(dir, 'Image0/00003.png'));
    copyFileSync(join(dir, 'Disp0/00002.npy'), join(dir, 'Disp0/00003.npy'));
    expect(indexDataset(root, 'unreal4k', 'train').scenes[0]!.frames.map((f) => f.n)).to.deep.equal([0, 1, 2, 3]);
  });

  it('decodes inverse depth, invalid (−1) and sky (0) per dataset', async () => {
    const px = (a: Float32Array, n: number): number[] => Array.from(a.subarray(0, n));
    expect(px(await gt('mvs-synth', 'train', 0, 2), 5)).to.deep.equal([0, f32(1 / 3), f32(1 / 3), f32(1 / 3), f32(1 / 3)]);
    // spring frame 3 (fx 650): disparity fx·0.065/3 → 1/3; NaN at (0, 0) → −1; the inf column is subsampled away.
    const spring = await gt('spring', 'train', 0, 2);
    expect(spring[0]).to.equal(-1);
    expect(spring[1]).to.be.closeTo(1 / 3, 1e-6);
    expect(spring.length).to.equal(W * H);
    expect(px(await gt('sintel', 'val', 0, 1), 4)).to.deep.equal([-1, 0, -1, f32(1 / 2)]);
    expect(px(await gt('tartanair', 'train', 0, 3), 4)).to.deep.equal([-1, -1, 0, f32(1 / 4)]);
    const po = await gt('pointodyssey', 'train', 0, 1);
    expect(po[0]).to.equal(-1);
    expect(po[1]).to.be.closeTo(65.535, 1e-3);
    expect(po[2]).to.be.closeTo(1 / ((131 / 65535) * 1000), 1e-6); // v = round(2/1000 · 65535) = 131
    expect(px(await gt('dynamicreplica', 'train', 0, 4), 3)).to.deep.equal([-1, -1, f32(1 / 5)]);
    expect(px(await gt('eth3d', 'val', 1, 1), 2)).to.deep.equal([-1, f32(1 / 2)]);
    const waymo = await gt('waymo', 'val');
    expect(waymo.length).to.equal(1920 * 1280);
    expect([waymo[3 * 1920 + 5], waymo[1279 * 1920 + 1919], waymo[0], waymo[1]]).to.deep.equal([f32(1 / 8), 0.25, -1, -1]);
    expect(Array.from(waymo).filter((v) => v !== -1)).to.have.length(2);
    expect(px(await gt('urbansyn', 'val', 1, 2), 2)).to.deep.equal([0, f32(1 / f32(2 ** -15 * 1e5))]);
    expect(px(await gt('unreal4k', 'train', 0, 2), 4)).to.deep.equal([-1, -1, -1, 3]);
  });

  it('clip sampling: forward, backward, random choice and the fallback', () => {
    const rng = new Rng(0);
    expect(clipFrameIndices(0, 10, 5, 2, rng)).to.deep.equal([0, 2, 4, 6, 8]);
    expect(clipFrameIndices(9, 10, 5, 2, rng)).to.deep.equal([1, 3, 5, 7, 9]);
    const fixed = (v: number): Rng => ({ next: () => v }) as unknown as Rng;
    expect(clipFrameIndices(4, 10, 5, 1, fixed(0.9))).to.deep.equal([4, 5, 6, 7, 8]);
    expect(clipFrameIndices(4, 10, 5, 1, fixed(0.1))).to.deep.equal([0, 1, 2, 3, 4]);
    expect(clipFrameIndices(3, 6, 5, 2, rng)).to.deep.equal([3, 5, 1, 1, 1]);
    expect(clipFrameIndices(2, 4, 5, 1, rng)).to.deep.equal([2, 3, 0, 1, 1]);
  });

  it('train base: 0.5 pre-scale, cover resize, centred 518² crop; depth follows frame order', async () => {
    // 24×16 → ×0.5 → 12×8 → ×64.75 → 777×518 → crop x = (777 − 518) // 2 = 129.
    const clip = await loadClip(request('mvs-synth', 'train', 'base', [1, 2, 3, 4, 5]));
    expect([clip.length, clip.height, clip.width, clip.depthHeight, clip.depthWidth]).to.deep.equal([5, 518, 518, 518, 518]);
    expect(clip.meta.crops).to.deep.equal(Array(5).fill([0, 129, 518, 518]));
    for (let t = 0; t < 5; t++) {
      const frame = clip.invDepth!.subarray(t * 518 * 518, (t + 1) * 518 * 518);
      expect(frame.reduce((m, v) => Math.max(m, Math.abs(v - 1 / (t + 2))), 0)).to.be.below(1e-6);
    }
    expect(clip.frames.every((v) => v >= 0 && v <= 1)).to.equal(true);
  });

  it('train 2k: up-scale to cover 1918×1078, seeded random crops per frame', async () => {
    // 24×16 → ×79.92 → 1918×1278: y ∈ [0, 200], x = 0.
    const a = await loadClip(request('tartanair', 'train', '2k', [0, 2]));
    const b = await loadClip(request('tartanair', 'train', '2k', [0, 2]));
    expect([a.height, a.width]).to.deep.equal([1078, 1918]);
    expect(a.meta.crops).to.deep.equal(b.meta.crops);
    for (const [y, x, h, w] of a.meta.crops!) expect([y >= 0 && y <= 200, x, h, w]).to.deep.equal([true, 0, 1078, 1918]);
    const c = await loadClip(request('tartanair', 'train', '2k', [0, 2], 0, 99));
    expect(c.meta.crops).to.not.deep.equal(a.meta.crops);
  });

  it('val keeps GT at native size and resizes images to the eval size; test has images only', async () => {
    const val = await loadClip(request('sintel', 'val', 'base', [0, 1, 2]));
    expect([val.height, val.width, val.depthHeight, val.depthWidth]).to.deep.equal([434, 1022, H, W]);
    expect(Array.from(val.invDepth!.subarray(W * H, W * H + 4))).to.deep.equal([-1, 0, -1, f32(1 / 2)]);
    const test = await loadClip(request('unreal4k', 'test', '2k', [0, 1]));
    expect([test.height, test.width, test.invDepth]).to.deep.equal([1148, 2044, null]);
    // Datasets without an eval size keep their declared native size, snapped up to a multiple of 14 (1080 → 1092, 1920 → 1932).
    const mvs = await loadClip(request('mvs-synth', 'val', 'base', [0]));
    expect([mvs.height, mvs.width]).to.deep.equal([1092, 1932]);
  });

  it('bad data: missing, truncated and wrong-sized depth files fail with the file named', async () => {
    const req = request('mvs-synth', 'train', 'base', [0]);
    const missing = { ...req, files: [{ rgb: req.files[0]!.rgb, depth: join(root, 'nope.exr') }] };
    const e1 = await rejection(loadClip(missing));
    expect(e1).to.be.instanceOf(InputError);
    expect(e1.message).to.equal(`${join(root, 'nope.exr')}: cannot read EXR file (ENOENT)`);
    const cut = join(root, 'cut.exr');
    const bytes = readFileSync(req.files[0]!.depth!);
    writeFileSync(cut, bytes.subarray(0, bytes.length - 30));
    const e2 = await rejection(loadClip({ ...req, files: [{ rgb: req.files[0]!.rgb, depth: cut }] }));
    expect(e2.message).to.match(new RegExp(`^${cut}: truncated EXR`));
    const small = join(root, 'small_left_depth.npy');
    writeNpy(small, new Float32Array(10 * H), [H, 10]);
    const t = request('tartanair', 'train', 'base', [0]);
    const e3 = await rejection(loadClip({ ...t, files: [{ rgb: t.files[0]!.rgb, depth: small }] }));
    expect(e3.message).to.equal(`${small}: depth map is 10×16, expected 24×16 (the size of its RGB frame)`);
  });
});
