import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import sharp from 'sharp';
import { preprocessFrames, rgbPixelsToTensor } from '../../src/dataloaders/transforms.js';
import { ShapeError } from '../../src/errors.js';
import { FlashDepthProcessor, type DepthResult, type RgbFrame } from '../../src/infer/processor.js';
import type { TemporalStates } from '../../src/models/temporal.js';
import { useTestBackend } from '../helpers/backend.js';
import { closeness, expectClose, fixture, fixtureTensor } from '../helpers/fixtures.js';
import { maxAbsDiff, syntheticFrame } from '../helpers/frames.js';


describe('infer/processor (FlashDepthProcessor)', function () {
  this.timeout(300_000);
  let processor: FlashDepthProcessor;
  const W = 112;
  const H = 64; // snapped up to 70
  const frames = [0, 1, 2].map((t) => syntheticFrame(W, H, t));

  before(async function () {
    await useTestBackend();
    processor = await FlashDepthProcessor.create({ config: 's', checkpoint: fixture(this, 's_model.pth'), backend: 'wasm' });
  });
  after(() => processor?.dispose());

  /** The model called directly, with the states passed explicitly: frame i from `states`. */
  function direct(frame: RgbFrame, states: TemporalStates): { depth: Float32Array; states: tf.Tensor4D[] } {
    const r = tf.tidy(() => {
      const x = preprocessFrames(rgbPixelsToTensor(frame.rgb, { height: frame.height, width: frame.width }));
      const out = processor.model.forwardFrame(x, states);
      return { depth: out.depth, states: out.states };
    });
    const depth = r.depth.dataSync() as Float32Array;
    r.depth.dispose();
    return { depth, states: r.states };
  }

  it('knows what it runs: FlashDepth-S from configs/flashdepth-s, the given checkpoint, wasm', function () {
    expect(processor.info.variant).to.equal('flashdepth-s');
    expect(processor.info.checkpoint).to.equal(fixture(this, 's_model.pth'));
    expect(processor.info.backend.name).to.equal('wasm');
    expect(processor.info.longSideCap).to.equal(2044);
    expect(processor.outputSize({ width: 1920, height: 1080 })).to.deep.equal({ width: 1932, height: 1092 });
    expect(processor.outputSize({ width: 3840, height: 2160 })).to.deep.equal({ width: 2044, height: 1162 });
  });

  it('s_nonmult fixture: raw RGB in [0, 1] (tensor and Float32Array) matches the reference depth of both frames', async function () {
    const raw = fixtureTensor(this, 'inputs', 'nonmult_171x310_rgb.npy'); // (2, 171, 310, 3)
    const ref = fixtureTensor(this, 's_nonmult', 'depth.npy'); // (2, 182, 322)
    processor.reset();
    const f0 = tf.slice(raw, [0, 0, 0, 0], [1, 171, 310, 3]);
    const r0 = await processor.process(f0); // a tensor [1, H, W, 3] in [0, 1]
    const rgb1 = tf.slice(raw, [1, 0, 0, 0], [1, 171, 310, 3]).dataSync() as Float32Array;
    const r1 = await processor.process({ rgb: rgb1, width: 310, height: 171 }); // interleaved floats
    expect([r0.width, r0.height, r1.width, r1.height]).to.deep.equal([322, 182, 322, 182]);
    const refData = ref.dataSync() as Float32Array;
    const n = 182 * 322;
    const e0 = expectClose(r0.depth, refData.subarray(0, n), 1e-4, 's_nonmult depth f0');
    const e1 = expectClose(r1.depth, refData.subarray(n, 2 * n), 1e-4, 's_nonmult depth f1');
    console.log(`      s_nonmult depth: max abs err f0 ${e0.maxAbsErr.toExponential(2)}, f1 ${e1.maxAbsErr.toExponential(2)} (peak ${e1.maxAbsRef.toFixed(3)})`);
    expect(f0.isDisposed, 'the caller keeps its tensor').to.equal(false);
    tf.dispose([raw, ref, f0]);
  });

  it('process() on raw uint8 RGB carries the state: equal to direct forwardFrame calls, frame 2 ≠ a fresh-state frame 2', async function () {
    processor.reset();
    const ours: DepthResult[] = [];
    for (const f of frames) ours.push(await processor.process(f));
    expect(ours.map((r) => [r.width, r.height])).to.deep.equal([[112, 70], [112, 70], [112, 70]]);
    let states: TemporalStates = null;
    for (const [i, f] of frames.entries()) {
      const r = direct(f, states);
      if (states) tf.dispose(states);
      states = r.states;
      expect(maxAbsDiff(ours[i]!.depth, r.depth), `frame ${i}`).to.equal(0);
    }
    if (states) tf.dispose(states);
    const fresh = direct(frames[2]!, null);
    tf.dispose(fresh.states);
    const c = closeness(ours[2]!.depth, fresh.depth);
    expect(c.maxAbsErr, 'state carried into frame 2').to.be.greaterThan(1e-3 * c.maxAbsRef);
  });

  it('reset() starts a new sequence: the first frame again gives the first result exactly', async function () {
    processor.reset();
    const a = await processor.process(frames[0]!);
    await processor.process(frames[1]!);
    processor.reset();
    const b = await processor.process(frames[0]!);
    expect(maxAbsDiff(a.depth, b.depth)).to.equal(0);
  });

  it('no tensor leak: numTensors is constant across frames (state held, inputs and outputs freed)', async function () {
    processor.reset();
    await processor.process(frames[0]!);
    const before = tf.memory().numTensors;
    for (const f of [...frames, ...frames]) await processor.process(f);
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('grey (1 channel) and RGBA (4, alpha ignored) frames equal their RGB equivalents', async function () {
    const rgb = frames[0]!.rgb as Uint8Array;
    const grey = new Uint8Array(W * H).map((_, i) => rgb[3 * i]!);
    const greyAsRgb = new Uint8Array(W * H * 3).map((_, i) => grey[Math.floor(i / 3)]!);
    const rgba = new Uint8Array(W * H * 4).map((_, i) => (i % 4 === 3 ? 17 : rgb[Math.floor(i / 4) * 3 + (i % 4)]!));
    processor.reset();
    const g = await processor.process({ rgb: grey, width: W, height: H, channels: 1 });
    processor.reset();
    const g3 = await processor.process({ rgb: greyAsRgb, width: W, height: H });
    processor.reset();
    const a = await processor.process({ rgb: rgba, width: W, height: H, channels: 4 });
    processor.reset();
    const a3 = await processor.process(frames[0]!);
    expect(maxAbsDiff(g.depth, g3.depth)).to.equal(0);
    expect(maxAbsDiff(a.depth, a3.depth)).to.equal(0);
  });

  it('a wrongly sized buffer is a one-line ShapeError', async function () {
    const err = await processor.process({ rgb: new Uint8Array(10), width: 4, height: 2 }).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(ShapeError);
    expect((err as Error).message).to.equal('frame: expected 4×2×3 = 24 values but received 10');
  });

  it('a frame of another size mid-sequence is resized to the first size (warning), the state carries on', async function () {
    const warnings: string[] = [];
    const p = await FlashDepthProcessor.create({ config: 's', checkpoint: fixture(this, 's_model.pth'), backend: 'wasm', onWarning: (m) => warnings.push(m) });
    try {
      await p.process(frames[0]!);
      const r = await p.process(syntheticFrame(140, 84, 1));
      expect([r.width, r.height]).to.deep.equal([112, 70]);
      expect(warnings).to.deep.equal(['frame of 140×84 differs from the sequence\'s first frame; resized to 112×64']);
      p.reset();
      const fresh = await p.process(syntheticFrame(140, 84, 1));
      expect([fresh.width, fresh.height]).to.deep.equal([140, 84]);
    } finally {
      p.dispose();
    }
    expect(() => p.reset()).to.throw('FlashDepthProcessor: used after dispose()');
  });

  describe('run()', function () {
    let dir: string;
    before(async function () {
      dir = mkdtempSync(join(tmpdir(), 'flashdepth-processor-'));
      for (const [name, shift] of [['a', 0], ['b', 5]] as const) {
        mkdirSync(join(dir, name));
        for (let t = 0; t < 3; t++) {
          const f = syntheticFrame(W, H, t + shift);
          await sharp(f.rgb, { raw: { width: W, height: H, channels: 3 } }).png().toFile(join(dir, name, `frame${t + 1}.png`));
        }
      }
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('streams every sequence with the state reset at each start only; equal to pushing the same frames', async function () {
      const results = [];
      for await (const r of processor.run([join(dir, 'a'), join(dir, 'b')])) results.push(r);
      expect(results.map((r) => [r.sequence, r.source.name, r.frame.index])).to.deep.equal(
        [[0, 'a', 0], [0, 'a', 1], [0, 'a', 2], [1, 'b', 0], [1, 'b', 1], [1, 'b', 2]]);
      for (const seq of [0, 1]) {
        processor.reset();
        for (let t = 0; t < 3; t++) {
          const pushed = await processor.process(syntheticFrame(W, H, t + 5 * seq));
          expect(maxAbsDiff(results[3 * seq + t]!.depth, pushed.depth), `sequence ${seq} frame ${t}`).to.equal(0);
        }
      }
    });

    it('breaking out of run() stops early; max-frames is passed to the sources', async function () {
      let n = 0;
      for await (const r of processor.run(join(dir, 'a'), { maxFrames: 2 })) {
        expect(r.frame.index).to.equal(n++);
      }
      expect(n).to.equal(2);
      for await (const _ of processor.run(join(dir, 'b'))) break;
    });
  });
});
