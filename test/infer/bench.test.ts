import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { ConfigError } from '../../src/errors.js';
import { formatBenchTable, runBenchmark, type BenchOptions, type BenchResult, type BenchSync } from '../../src/infer/bench.js';
import { runTrainBenchmark } from '../../src/train/bench-train.js';
import { runCliProcess } from '../cli/spawn-cli.js';
import { useTestBackend } from '../helpers/backend.js';
import { REPO_ROOT } from '../helpers/fixtures.js';
import { rejection } from '../helpers/errors.js';

const TINY = join(REPO_ROOT, 'configs', 'tiny');
// At 56 px path_3 is 8×8: the tiny config's 0.1 Mamba pooling would leave no token, 0.25 leaves 2×2.
const POOL_56 = ['model.downsample_mamba=[0.25]'];

/** Runs the tiny inference bench, recording tf.memory().numTensors after every timed frame. */
async function tinyBench(sync: BenchSync, frames = 4): Promise<{ result: BenchResult; counts: number[]; before: number; after: number }> {
  const counts: number[] = [];
  const before = tf.memory().numTensors;
  const options: BenchOptions = { config: TINY, width: 56, height: 56, overrides: POOL_56, frames, warmup: 1, sync, onFrame: () => counts.push(tf.memory().numTensors) };
  const result = await runBenchmark(options);
  return { result, counts, before, after: tf.memory().numTensors };
}

describe('bench: inference (tiny config, wasm)', function () {
  this.timeout(60_000);
  before(() => useTestBackend());

  it('sync end: counts the frames, ms/frame = timed wall / frames, fps = 1000 / ms, enqueue times apart, no tensor kept', async () => {
    const { result: r, counts, before, after } = await tinyBench('end', 5);
    expect(r).to.include({ mode: 'infer', sync: 'end', frames: 5, warmupFrames: 1, width: 56, height: 56, precision: 'fp32' });
    expect(r.msPerFrame.mean).to.be.closeTo(r.timedMs / 5, 1e-9);
    expect(r.msPerFrame.median).to.equal(r.msPerFrame.mean);
    expect(r.fps).to.be.closeTo(1000 / r.msPerFrame.mean, 1e-9);
    expect(r.enqueueMsPerFrame, 'enqueue times').to.not.equal(undefined);
    // Every enqueue happens inside the timed window, which also holds the final readback.
    expect(r.enqueueMsPerFrame!.mean * 5).to.be.at.most(r.timedMs);
    expect(r.firstFrameMs).to.be.above(0);
    // wasm: every frame through tfjs (the first, the memory profile's, the warm-up's none, the 5 timed).
    expect(r.replay).to.deep.equal({ tfjsFrames: 6, recordedFrames: 0, replayedFrames: 0, dispatchesPerFrame: 0, unavailable: 'replay needs the webgpu backend (this is wasm)' });
    expect(r.parameters).to.be.above(0);
    expect(r.peakTensorBytes).to.be.above(0);
    expect(counts, 'numTensors after each timed frame').to.have.length(5);
    // The last frame's depth is kept for the final readback, every earlier one is disposed unread.
    expect(new Set(counts.slice(0, 4)).size, counts.join(',')).to.equal(1);
    expect(counts[4], counts.join(',')).to.equal(counts[0]! + 1);
    expect(after, 'numTensors before/after').to.equal(before);
  });

  it('sync frame: per-frame latency stats in order, fps = 1000 / mean, numTensors flat over frames and unchanged after', async () => {
    const { result: r, counts, before, after } = await tinyBench('frame');
    expect(r).to.include({ mode: 'infer', sync: 'frame', frames: 4 });
    const m = r.msPerFrame;
    expect(m.min).to.be.above(0);
    expect(m.min).to.be.at.most(m.median);
    expect(m.median).to.be.at.most(m.p90);
    expect(m.p90).to.be.at.most(m.max);
    expect(m.mean * 4).to.be.at.most(r.timedMs);
    expect(r.fps).to.be.closeTo(1000 / m.mean, 1e-9);
    expect(r.enqueueMsPerFrame).to.equal(undefined);
    expect(new Set(counts).size, counts.join(',')).to.equal(1);
    expect(after).to.equal(before);
  });

  it('an invalid --sync is a one-line ConfigError naming the flag (library and CLI)', async () => {
    const e = await rejection(runBenchmark({ config: TINY, sync: 'each' as BenchSync }));
    expect(e).to.be.instanceOf(ConfigError);
    expect(e.message).to.equal('Expected end or frame for --sync but received "each"');
    const cli = await runCliProcess(['bench', '--sync', 'each', '--backend', 'wasm']);
    expect(cli.code).to.equal(2);
    expect(cli.stderr.trim()).to.equal('error: Expected end or frame for --sync but received "each"');
  });

  it('flags of the other benchmark are errors, not silently ignored', async () => {
    const withTrain = await runCliProcess(['bench', '--train', '--sync', 'frame']);
    expect([withTrain.code, withTrain.stderr.trim()]).to.deep.equal([2, 'error: --sync: applies to the inference benchmark, not to --train']);
    const noReplay = await runCliProcess(['bench', '--train', '--no-replay']);
    expect([noReplay.code, noReplay.stderr.trim()]).to.deep.equal([2, 'error: --no-replay: applies to the inference benchmark, not to --train']);
    const withoutTrain = await runCliProcess(['bench', '--clip-frames', '3']);
    expect([withoutTrain.code, withoutTrain.stderr.trim()]).to.deep.equal([2, 'error: --clip-frames: applies to the training benchmark; add --train']);
  });
});

describe('bench --train: training steps (tiny config, wasm)', function () {
  this.timeout(60_000);
  before(() => useTestBackend());

  it('times 2 optimiser steps at 56×56: finite s/step, clips/s = 1 / median, finite losses, temp folder removed, no tensor left', async () => {
    const before = tf.memory().numTensors;
    const seen: number[] = [];
    const r = await runTrainBenchmark({ config: TINY, overrides: POOL_56, width: 56, height: 56, clipFrames: 2, steps: 2, warmup: 1, onStep: (i) => seen.push(i) });
    expect(tf.memory().numTensors).to.equal(before);
    expect(r).to.include({ mode: 'train', width: 56, height: 56, clipFrames: 2, batchSize: 1, steps: 2, warmupSteps: 1 });
    expect(seen).to.deep.equal([0, 1]);
    const s = r.secondsPerStep;
    expect(Number.isFinite(s.median) && s.median > 0, `s/step ${s.median}`).to.equal(true);
    expect(s.min).to.be.at.most(s.median);
    expect(s.median).to.be.at.most(s.max);
    expect(r.clipsPerSecond).to.be.closeTo(1 / s.median, 1e-9);
    expect(r.firstStepSeconds).to.be.above(0);
    expect(r.losses).to.have.length(3);
    for (const l of r.losses) expect(Number.isFinite(l), `loss ${l}`).to.equal(true);
    expect(r.peakBytes).to.be.above(0);
    expect(r.runDir).to.match(/flashdepth-bench-train-/);
    expect(existsSync(r.runDir), r.runDir).to.equal(false);

    const table = formatBenchTable([r]).split('\n');
    expect(table[0]).to.match(/^config\s+size\s+clip\s+backend\s+device\s+s\/step \(median\)\s+clips\/s\s+first step s\s+peak memory MiB$/);
    expect(table[2]).to.match(new RegExp(`^${TINY.replace(/[/\\\\.]/g, '\\$&')}\\s+56×56\\s+1×2\\s+`));
  });

  it('an invalid --clip-frames is a one-line ConfigError naming the flag', async () => {
    const e = await rejection(runTrainBenchmark({ config: TINY, clipFrames: 0 }));
    expect(e).to.be.instanceOf(ConfigError);
    expect(e.message).to.equal('Expected positive integer for --clip-frames but received 0 (number)');
  });
});
