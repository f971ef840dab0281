import { mkdtempSync, rmSync, truncateSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { loadConfig, type FlashDepthConfig } from '../../src/config.js';
import { randomClip } from '../../src/dataloaders/random-dataset.js';
import { Rng } from '../../src/dataloaders/rng.js';
import { CheckpointError } from '../../src/errors.js';
import { createFlashDepth } from '../../src/models/create.js';
import { listCheckpoints } from '../../src/train/checkpoint.js';
import { createBatchSource, normalizeClipFrames, type BatchSource } from '../../src/train/data.js';
import { initTrainingWeights } from '../../src/train/init.js';
import { train, type TrainOptions } from '../../src/train/loop.js';
import { useTestBackend } from '../helpers/backend.js';
import { REPO_ROOT } from '../helpers/fixtures.js';

const SIZE = { width: 70, height: 70 };

function tinyConfig(overrides: string[] = []): FlashDepthConfig {
  return loadConfig(join(REPO_ROOT, 'configs', 'tiny'), overrides);
}

/** The same synthetic clip every batch (for overfitting). */
function fixedClipSource(): BatchSource {
  const clip = randomClip(new Rng(7), { length: 2, size: SIZE });
  let batches = 0;
  return {
    next: async () => {
      batches++;
      const raw = tf.tensor5d(clip.frames, [1, 2, SIZE.height, SIZE.width, 3]);
      const frames = normalizeClipFrames(raw);
      raw.dispose();
      return { frames, invDepth: tf.tensor4d(clip.invDepth!, [1, 2, SIZE.height, SIZE.width]), dataset: 'fixed' };
    },
    position: () => ({ batches }),
    close: async () => undefined,
  };
}

async function runTiny(dir: string, config: FlashDepthConfig, extra: Partial<TrainOptions> = {}) {
  const model = createFlashDepth(config);
  initTrainingWeights(model, config.training.seed);
  try {
    return await train({
      model, config, runDir: dir, console: false,
      makeData: (resumeAt) => createBatchSource(config, { synthetic: true, size: SIZE, resumeAt }),
      ...extra,
    });
  } finally {
    model.dispose();
  }
}

describe('train: loop, checkpoints, resume (tiny config, wasm)', () => {
  let dir: string;
  before(() => useTestBackend());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'flashdepth-train-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('overfits one synthetic clip: the loss falls below 40% of its start within 25 steps, numTensors stays flat', async () => {
    const config = tinyConfig(['training.save_freq=1000']);
    const counts: number[] = [];
    const tensorsBefore = tf.memory().numTensors;
    const r = await runTiny(dir, config, { makeData: async () => fixedClipSource(), maxSteps: 25, onStep: (s) => counts.push(s.numTensors) });
    expect(r.losses).to.have.length(25);
    const start = r.losses[0]!;
    const end = Math.min(...r.losses.slice(-3));
    expect(end, `losses ${r.losses.map((l) => l.toFixed(2)).join(' ')}`).to.be.below(0.4 * start);
    expect(new Set(counts.slice(1)).size, `numTensors per step ${counts.join(',')}`).to.equal(1);
    expect(tf.memory().numTensors).to.equal(tensorsBefore);
  });

  it('resumes after a kill from the newest checkpoint and reproduces the next losses; keeps the last K', async () => {
    const config = tinyConfig(['training.save_freq=2']);
    const reference = await runTiny(join(dir, 'a'), config, { maxSteps: 4 });
    // Interrupted run: killed during step 3 (after the step-2 checkpoint, before any later save).
    const killed = join(dir, 'b');
    let error: unknown;
    try {
      await runTiny(killed, config, {
        maxSteps: 4,
        onStep: (s) => {
          if (s.step === 2) throw new Error('killed');
        },
      });
    } catch (e) {
      error = e;
    }
    expect((error as Error).message).to.equal('killed');
    expect(listCheckpoints(killed)).to.deep.equal([2]);
    const resumed = await runTiny(killed, config, { maxSteps: 4, keepLast: 1 });
    expect(resumed.startStep).to.equal(2);
    expect(resumed.resumedFrom).to.equal(join(killed, 'iter_2.json'));
    expect(resumed.losses).to.have.length(2);
    resumed.losses.forEach((l, i) => expect(l, `step ${i + 2}`).to.be.closeTo(reference.losses[i + 2]!, 1e-6 * reference.losses[i + 2]!));
    expect(listCheckpoints(killed)).to.deep.equal([4]);
    expect(existsSync(join(killed, 'iter_2.safetensors'))).to.equal(false);
  });

  it('gradient accumulation: 2 micro-batches of 1 clip take the same steps as 1 batch of 2 clips', async () => {
    // Synthetic clips all have the same number of valid pixels, so the mean of the two micro-batch means equals the
    // mean over the 2-clip batch. Both runs see clips (1, 2) in step 0 and (3, 4) in step 1.
    const clips = [1, 2, 3, 4].map((seed) => randomClip(new Rng(seed), { length: 2, size: SIZE }));
    const source = (perBatch: number): BatchSource => {
      let next = 0;
      return {
        next: async () => {
          const group = clips.slice(next, next + perBatch);
          next += perBatch;
          const raw = tf.tensor5d(Float32Array.from(group.flatMap((c) => [...c.frames])), [perBatch, 2, SIZE.height, SIZE.width, 3]);
          const frames = normalizeClipFrames(raw);
          raw.dispose();
          return { frames, invDepth: tf.tensor4d(Float32Array.from(group.flatMap((c) => [...c.invDepth!])), [perBatch, 2, SIZE.height, SIZE.width]), dataset: 'fixed' };
        },
        position: () => ({ batches: next }),
        close: async () => undefined,
      };
    };
    const batched = await runTiny(join(dir, 'a'), tinyConfig(['training.save_freq=100']), { maxSteps: 2, makeData: async () => source(2) });
    const accumulated = await runTiny(join(dir, 'b'), tinyConfig(['training.gradient_accumulation=2', 'training.save_freq=100']), { maxSteps: 2, makeData: async () => source(1) });
    accumulated.losses.forEach((l, i) => expect(l, `step ${i}`).to.be.closeTo(batched.losses[i]!, 1e-5 * batched.losses[i]!));
  });

  it('a corrupt checkpoint fails with an error naming the file', async () => {
    const config = tinyConfig(['training.save_freq=1']);
    await runTiny(dir, config, { maxSteps: 1 });
    truncateSync(join(dir, 'iter_1.safetensors'), 100);
    let error: unknown;
    try {
      await runTiny(dir, config, { maxSteps: 2 });
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(CheckpointError);
    expect((error as Error).message).to.match(new RegExp(`^${join(dir, 'iter_1.safetensors').replace(/[.]/g, '\\.')}: corrupt checkpoint file: expected \\d+ bytes`));
    writeFileSync(join(dir, 'iter_1.json'), '{"format": "flashdepth-ts/train-');
    try {
      await runTiny(dir, config, { maxSteps: 2 });
      expect.fail('no error');
    } catch (e) {
      expect((e as Error).message).to.contain(`${join(dir, 'iter_1.json')}: corrupt training checkpoint sidecar`);
    }
  });
});
