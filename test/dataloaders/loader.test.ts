import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { clipsToTensors } from '../../src/dataloaders/batch-tensors.js';
import { CombinedLoader, type LoaderOptions, type LoaderState } from '../../src/dataloaders/loader.js';
import { ConfigError, InputError } from '../../src/errors.js';
import { useTestBackend } from '../helpers/backend.js';
import { buildTinyTree } from './helpers/tiny-tree.js';

const root = mkdtempSync(join(tmpdir(), 'loader-'));
const small = { width: 28, height: 14 };

function checksum(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i += 97) s += a[i]! * ((i % 13) + 1);
  return s;
}

type BatchSummary = { dataset: string; scenes: string[]; frames: number[][]; sums: number[] };

async function take(opts: LoaderOptions, n: number, keepState?: (s: LoaderState) => void): Promise<BatchSummary[]> {
  const loader = new CombinedLoader(opts);
  const out = [];
  try {
    for (let i = 0; i < n; i++) {
      const b = await loader.next();
      out.push({
        dataset: b.dataset, scenes: b.clips.map((c) => c.meta.scene), frames: b.clips.map((c) => c.meta.frameIndices),
        sums: b.clips.map((c) => checksum(c.frames) + checksum(c.invDepth!)),
      });
    }
    keepState?.(loader.state());
  } finally {
    await loader.close();
  }
  return out;
}

describe('dataloaders/loader', function () {
  this.timeout(120000);
  before(async () => {
    await useTestBackend();
    await buildTinyTree(root);
  });

  it('round-robin over datasets, one dataset per batch, reproducible from the seed', async () => {
    const opts: LoaderOptions = { dataRoot: root, datasets: ['random', 'tartanair'], mode: 'base', batchSize: 2, videoLength: 3, seed: 7, randomSize: small };
    const a = await take(opts, 4);
    expect(a.map((b) => b.dataset)).to.deep.equal(['random', 'tartanair', 'random', 'tartanair']);
    // tartanair stride 2, 5 frames per scene, T = 3: the clip of each anchor position 0…4 (spec §6.2 by hand).
    const byAnchor = ['0,2,4', '1,3,3', '2,4,0', '3,1,1', '0,2,4'];
    for (const b of [a[1]!, a[3]!]) for (const f of b.frames) expect(byAnchor).to.include(f.join(','));
    expect(await take(opts, 4)).to.deep.equal(a);
    expect((await take({ ...opts, seed: 8 }, 4)).map((b) => b.sums)).to.not.deep.equal(a.map((b) => b.sums));
  });

  it('resumes from loader.state() with exactly the batches an uninterrupted run yields (across epochs)', async () => {
    // tartanair: 10 training clips → 3 batches of 3 per epoch; 8 batches cross its epoch boundary twice.
    const opts: LoaderOptions = { dataRoot: root, datasets: ['tartanair', 'random'], mode: 'base', batchSize: 3, videoLength: 2, seed: 11, randomSize: small, randomItems: 7, prefetch: 3 };
    const whole = await take(opts, 12);
    let saved: LoaderState | undefined;
    const first = await take(opts, 5, (s) => { saved = s; });
    expect(first).to.deep.equal(whole.slice(0, 5));
    // The state is plain JSON: the position after the 5th batch returned, not after the prefetched ones.
    const state = JSON.parse(JSON.stringify(saved)) as LoaderState;
    expect(state.batches).to.equal(5);
    expect(state.samplers.map((x) => [x.dataset, x.items, x.epoch, x.cursor])).to.deep.equal([['tartanair', 10, 0, 9], ['random', 7, 0, 6]]);
    const rest = await take({ ...opts, prefetch: 1, resumeFrom: state }, 7);
    expect(rest).to.deep.equal(whole.slice(5));
    // A state taken before any batch resumes at the start.
    let initial: LoaderState | undefined;
    await take(opts, 0, (s) => { initial = s; });
    expect(await take({ ...opts, resumeFrom: initial! }, 2)).to.deep.equal(whole.slice(0, 2));
    expect(() => new CombinedLoader({ ...opts, batchSize: 2, resumeFrom: state })).to.throw(ConfigError, 'resumeFrom: the loader state was saved with batchSize = 3, this loader has batchSize = 2');
    const changed = { ...state, samplers: [{ ...state.samplers[0]!, items: 12 }, state.samplers[1]!] };
    expect(() => new CombinedLoader({ ...opts, resumeFrom: changed })).to.throw(ConfigError, 'resumeFrom: tartanair had 12 training clips when the state was saved, tartanair has 10 now (the data changed)');
  });

  it('worker threads decode exactly what the calling thread decodes', async () => {
    const opts: LoaderOptions = { dataRoot: root, datasets: ['mvs-synth', 'random'], mode: 'base', batchSize: 2, videoLength: 2, seed: 3, randomSize: small };
    const inline = await take(opts, 3);
    const threaded = await take({ ...opts, workers: 2, prefetch: 2 }, 3);
    expect(threaded).to.deep.equal(inline);
  });

  it('skipBad counts unreadable clips and keeps batches full; without it the file is named', async () => {
    const bad = mkdtempSync(join(tmpdir(), 'bad-'));
    await buildTinyTree(bad);
    const npy = join(bad, 'tartanair/abandonedfactory/Easy/P000/depth_left/000002_left_depth.npy');
    writeFileSync(npy, readFileSync(npy).subarray(0, 200));
    const opts: LoaderOptions = { dataRoot: bad, datasets: ['tartanair'], mode: 'base', batchSize: 2, videoLength: 2, seed: 1 };
    const loader = new CombinedLoader({ ...opts, skipBad: true });
    for (let i = 0; i < 4; i++) expect((await loader.next()).clips).to.have.length(2);
    await loader.close();
    expect(loader.warnings.length).to.be.greaterThan(0);
    expect(loader.warnings[0]).to.equal(`${npy}: truncated .npy data (expected 1536 bytes for shape (16, 24) float32, found 72)`);
    const strict = new CombinedLoader(opts);
    let error: unknown;
    try {
      for (let i = 0; i < 4; i++) await strict.next();
    } catch (e) {
      error = e;
    }
    await strict.close();
    expect(error).to.be.instanceOf(InputError);
    expect((error as Error).message).to.contain(npy);
  });

  it('clipsToTensors stacks [B, T, H, W, 3] and [B, T, H, W] without leaking tensors', async () => {
    const loader = new CombinedLoader({ dataRoot: root, datasets: ['random'], mode: 'base', batchSize: 2, videoLength: 3, randomSize: small });
    const batch = await loader.next();
    await loader.close();
    const before = tf.memory().numTensors;
    const { frames, invDepth } = clipsToTensors(batch.clips);
    expect(frames.shape).to.deep.equal([2, 3, 14, 28, 3]);
    expect(invDepth!.shape).to.deep.equal([2, 3, 14, 28]);
    // Row 0 of the synthetic clip is sky (0); its bottom-right corner is invalid (−1).
    const d = invDepth!.arraySync();
    expect([d[1]![2]![0]![0], d[1]![2]![13]![27]]).to.deep.equal([0, -1]);
    tf.dispose([frames, invDepth!]);
    expect(tf.memory().numTensors).to.equal(before);
  });
});
