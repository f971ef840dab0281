/**
 * End-to-end parity of the composed FlashDepth models with the PyTorch reference (../shared/fixtures README):
 * every frame streamed with the Mamba state carried, `head_prerelu` and `depth` per frame and every listed
 * intermediate within max|ours − ref| ≤ 1e-4 · max|ref|.
 *
 * Reference (per clip): mamba.start_new_sequence(); for each frame: get_dpt_features → final_head → clip(min=0).
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { preprocessFrames } from '../../src/dataloaders/transforms.js';
import { CheckpointError } from '../../src/errors.js';
import { openTorchCheckpoint } from '../../src/io/pth.js';
import { mergedSource, prefixedSource, type WeightSource } from '../../src/io/weight-source.js';
import { createFlashDepth, loadFlashDepthWeights, saveFlashDepthWeights } from '../../src/models/create.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FlashDepth, FlashDepthDebug } from '../../src/models/flashdepth.js';
import { FULL_REDUCED_TEACHER_OVERRIDES, L_REDUCED_OVERRIDES } from '../../src/models/variants.js';
import { useTestBackend } from '../helpers/backend.js';
import { expectClose, fixture, fixtureTensor } from '../helpers/fixtures.js';

const BOUND = 1e-4;

/** NCHW fixture map → NHWC. */
function nhwc(t: tf.Tensor): tf.Tensor4D {
  return tf.transpose(t, [0, 2, 3, 1]) as tf.Tensor4D;
}

/** Frame i of a (T, 3, H, W) fixture clip as [1, H, W, 3]. */
function frameOf(clip: tf.Tensor, i: number): tf.Tensor4D {
  const [, c, h, w] = clip.shape as [number, number, number, number];
  return nhwc(tf.slice(clip, [i, 0, 0, 0], [1, c, h, w]));
}

function frameMap(maps: tf.Tensor, i: number): tf.Tensor3D {
  const [, h, w] = maps.shape as [number, number, number];
  return tf.slice(maps, [i, 0, 0], [1, h, w]) as tf.Tensor3D;
}

interface CaseResult {
  errors: Record<string, number>;
}

/**
 * Streams all frames of a case through `forwardFrame` with the state carried, checks the per-frame outputs and the
 * intermediates present in the case folder, and returns the relative max errors.
 */
function checkCase(ctx: Mocha.Context, model: FlashDepth, caseDir: string, input: tf.Tensor, intermediates: Array<[keyof FlashDepthDebug, string, 'nhwc' | 'tokens' | 'taps']>): CaseResult {
  const errors: Record<string, number> = {};
  const record = (name: string, ours: tf.Tensor, ref: tf.Tensor) => {
    const c = expectClose(ours, ref, BOUND, `${caseDir}/${name}`);
    errors[name] = c.maxAbsRef > 0 ? c.maxAbsErr / c.maxAbsRef : c.maxAbsErr;
  };
  const headRef = fixtureTensor(ctx, caseDir, 'head_prerelu.npy');
  const depthRef = fixtureTensor(ctx, caseDir, 'depth.npy');
  const frames = input.shape[0]!;
  let states: tf.Tensor4D[] | null = null;
  for (let i = 0; i < frames; i++) {
    const next: tf.Tensor4D[] = tf.tidy(() => {
      const debug: FlashDepthDebug = {};
      const r = model.forwardFrame(frameOf(input, i), states, debug);
      record(`head_prerelu[${i}]`, r.headPreRelu, frameMap(headRef, i));
      record(`depth[${i}]`, r.depth, frameMap(depthRef, i));
      for (const [key, file, kind] of intermediates) {
        const name = file.replace('.npy', '');
        if (!name.endsWith(`_f${i}`)) continue;
        const ref = fixtureTensor(ctx, caseDir, file);
        const ours = debug[key];
        expect(ours, `intermediate ${key}`).to.not.equal(undefined);
        if (kind === 'taps') record(name, tf.concat(ours as tf.Tensor3D[], 0), ref);
        else if (kind === 'nhwc') record(name, ours as tf.Tensor, nhwc(ref));
        else record(name, ours as tf.Tensor, ref);
      }
      return r.states;
    });
    if (states) tf.dispose(states);
    states = next;
  }
  if (states) tf.dispose(states);
  tf.dispose([headRef, depthRef]);
  return { errors };
}

function report(title: string, r: CaseResult): void {
  const worst = Object.entries(r.errors).sort((a, b) => b[1] - a[1]).slice(0, 3);
  console.log(`      ${title}: worst rel errors ${worst.map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')}`);
}

describe('models/flashdepth (end-to-end parity with the PyTorch reference)', function () {
  this.timeout(600_000);
  before(() => useTestBackend());

  describe('FlashDepth-S', () => {
    let model: FlashDepth;
    before(function () {
      model = createFlashDepth('s');
      loadFlashDepthWeights(model, fixture(this, 's_model.pth'));
    });
    after(() => model?.dispose());

    it('has the 305 keys and 25,268,833 parameters of the official checkpoint', () => {
      expect([...model.namedParameters()].length).to.equal(305);
      expect(model.countParameters()).to.equal(25_268_833);
    });

    it('case s: 3 streamed frames and every intermediate match', function () {
      const input = fixtureTensor(this, 'inputs', 'clip_126x224.npy');
      const r = checkCase(this, model, 's', input, [
        ['patchEmbed', 'patch_embed_f0.npy', 'tokens'],
        ['posEmbed', 'pos_embed_interp_f0.npy', 'tokens'],
        ['vitTaps', 'vit_taps_f0.npy', 'taps'],
        ['dptOut', 'dpt_out_f0.npy', 'nhwc'],
        ['temporalIn', 'temporal_in_f0.npy', 'nhwc'],
        ['temporalIn', 'temporal_in_f1.npy', 'nhwc'],
        ['temporalOut', 'temporal_out_f0.npy', 'nhwc'],
        ['temporalOut', 'temporal_out_f1.npy', 'nhwc'],
        ['mambaSeqIn', 'mamba_seq_in_f0.npy', 'tokens'],
        ['mambaSeqIn', 'mamba_seq_in_f1.npy', 'tokens'],
        ['mambaSeqOut', 'mamba_seq_out_f0.npy', 'tokens'],
        ['mambaSeqOut', 'mamba_seq_out_f1.npy', 'tokens'],
      ]);
      input.dispose();
      report('s', r);
    });

    it('case s_nonmult: raw RGB through our preprocessing matches the reference input and depth', function () {
      const raw = fixtureTensor(this, 'inputs', 'nonmult_171x310_rgb.npy'); // (2, 171, 310, 3) in [0, 1]
      const inputRef = fixtureTensor(this, 's_nonmult', 'input.npy'); // (2, 3, 182, 322)
      const input = tf.tidy(() => tf.transpose(preprocessFrames(raw), [0, 3, 1, 2]));
      expectClose(input, inputRef, 1e-5, 's_nonmult/input');
      const r = checkCase(this, model, 's_nonmult', input, [
        ['posEmbed', 'pos_embed_interp_f0.npy', 'tokens'],
        ['mambaSeqIn', 'mamba_seq_in_f0.npy', 'tokens'],
        ['mambaSeqIn', 'mamba_seq_in_f1.npy', 'tokens'],
        ['mambaSeqOut', 'mamba_seq_out_f0.npy', 'tokens'],
        ['mambaSeqOut', 'mamba_seq_out_f1.npy', 'tokens'],
      ]);
      tf.dispose([raw, inputRef, input]);
      report('s_nonmult', r);
    });

    it('streams with predict(): no tensor leak over 10 frames, state carried, resetState() reproduces frame 0', function () {
      const input = fixtureTensor(this, 'inputs', 'clip_126x224.npy');
      const frame = (i: number) => tf.tidy(() => tf.squeeze(frameOf(input, i % 3), [0]));
      model.resetState();
      const f0 = frame(0);
      const first = model.predict(f0);
      const start = tf.memory().numTensors;
      for (let i = 1; i <= 10; i++) {
        const x = frame(i);
        model.predict(x).dispose();
        x.dispose();
      }
      expect(tf.memory().numTensors).to.equal(start);
      // Frame 0 again without a reset differs (the state remembers the 10 frames) …
      const carried = model.predict(f0);
      expect(tf.tidy(() => tf.max(tf.abs(tf.sub(carried, first))).dataSync()[0]!)).to.be.greaterThan(1e-3);
      // … and equals the first run after resetState().
      model.resetState();
      const again = model.predict(f0);
      expect(tf.tidy(() => tf.max(tf.abs(tf.sub(again, first))).dataSync()[0]!)).to.equal(0);
      tf.dispose([input, f0, first, carried, again]);
      model.resetState();
    });

    it('saves its weights as safetensors with the checkpoint names and loads them back exactly', async function () {
      const file = join(mkdtempSync(join(tmpdir(), 'fd-save-')), 's.safetensors');
      const before = tf.memory().numTensors;
      await saveFlashDepthWeights(model, file);
      expect(tf.memory().numTensors).to.equal(before);
      const saved = openSafetensors(file);
      const src = openTorchCheckpoint(fixture(this, 's_model.pth'));
      try {
        expect([...saved.keys()].sort()).to.deep.equal([...src.keys()].sort());
        for (const key of src.keys()) {
          expect(saved.info(key).shape, key).to.deep.equal(src.info(key).shape);
          // float16 fixture values widened to float32 by the loader, written back in PyTorch layout: bit-exact.
          expect(Buffer.from(saved.readFloat32(key).buffer).equals(Buffer.from(src.readFloat32(key).buffer)), key).to.equal(true);
        }
      } finally {
        saved.close();
        src.close();
      }
      const again = createFlashDepth('s');
      try {
        expect(loadFlashDepthWeights(again, file).loaded.length).to.equal(305);
      } finally {
        again.dispose();
      }
    });

    it('a checkpoint with a missing key, an extra key or a wrong shape gives one listing error', function () {
      const src = openTorchCheckpoint(fixture(this, 's_model.pth'));
      // A view of the real checkpoint with some keys hidden, added or re-shaped.
      const edited = (hide: string | null, add: string | null, reshape: [string, number[]] | null): WeightSource => ({
        path: src.path,
        keys: () => [...src.keys().filter((k) => k !== hide), ...(add ? [add] : [])],
        has: (k) => k === add || (k !== hide && src.has(k)),
        info: (k) => (reshape && k === reshape[0] ? { shape: reshape[1], dtype: 'float16' } : src.info(k)),
        readFloat32: (k) => src.readFloat32(k),
        close: () => undefined,
      });
      expect(() => loadFlashDepthWeights(model, edited('mamba.final_layer.1.bias', null, null))).to.throw(CheckpointError, /s_model\.pth: checkpoint does not fit the model: missing keys \(1\): mamba\.final_layer\.1\.bias$/);
      expect(() => loadFlashDepthWeights(model, edited(null, 'pretrained.blocks.12.ls1.gamma', null))).to.throw(CheckpointError, /unexpected keys \(1\): pretrained\.blocks\.12\.ls1\.gamma$/);
      expect(() => loadFlashDepthWeights(model, edited(null, null, ['depth_head.projects.0.weight', [49, 384, 1, 1]]))).to.throw(
        CheckpointError,
        /shape mismatches \(1\): depth_head\.projects\.0\.weight expected \(48, 384, 1, 1\) found \(49, 384, 1, 1\)$/,
      );
      // Non-strict loading (Depth Anything V2 → FlashDepth stage 1) reports instead of throwing.
      const dav2 = edited(null, null, null);
      const onlyEncoder: WeightSource = { ...dav2, keys: () => src.keys().filter((k) => !k.startsWith('mamba.')), has: (k) => !k.startsWith('mamba.') && src.has(k) };
      const rep = loadFlashDepthWeights(model, onlyEncoder, { strict: false });
      expect(rep.missing.length).to.equal(66);
      expect(rep.loaded.length).to.equal(239);
      src.close();
    });
  });

  it('FlashDepth-L (reduced widths): 3 streamed frames and every intermediate match; dispose() frees everything', function () {
    const start = tf.memory().numTensors;
    const model = createFlashDepth('l', { overrides: L_REDUCED_OVERRIDES });
    try {
      loadFlashDepthWeights(model, fixture(this, 'l_reduced_model.pth'));
      expect(model.countParameters()).to.equal(17_212_897);
      const input = fixtureTensor(this, 'inputs', 'clip_126x224.npy');
      const r = checkCase(this, model, 'l_reduced', input, [
        ['patchEmbed', 'patch_embed_f0.npy', 'tokens'],
        ['posEmbed', 'pos_embed_interp_f0.npy', 'tokens'],
        ['vitTaps', 'vit_taps_f0.npy', 'taps'],
        ['dptOut', 'dpt_out_f0.npy', 'nhwc'],
        ['mambaSeqIn', 'mamba_seq_in_f0.npy', 'tokens'],
        ['mambaSeqIn', 'mamba_seq_in_f1.npy', 'tokens'],
        ['mambaSeqOut', 'mamba_seq_out_f0.npy', 'tokens'],
        ['mambaSeqOut', 'mamba_seq_out_f1.npy', 'tokens'],
      ]);
      input.dispose();
      report('l_reduced', r);
    } finally {
      model.dispose();
    }
    // Weights, held state and the cached constants (pos-embed result and matrices, pooling matrices).
    expect(tf.memory().numTensors, 'tensors after dispose()').to.equal(start);
  });

  it('FlashDepth Full (reduced teacher at 98 px): 3 streamed frames and every intermediate match', function () {
    const model = createFlashDepth('full', { overrides: FULL_REDUCED_TEACHER_OVERRIDES });
    // The Full state dict as the fixture README assembles it: S + teacher_model.(L minus mamba) + hybrid_fusion.
    const s = openTorchCheckpoint(fixture(this, 's_model.pth'));
    const l = openTorchCheckpoint(fixture(this, 'l_reduced_model.pth'));
    const extra = openTorchCheckpoint(fixture(this, 'full_extra_model.pth'));
    const source = mergedSource([s, prefixedSource(l, 'teacher_model.', (k) => k.startsWith('mamba.')), extra]);
    try {
      expect(source.keys().length).to.equal(552);
      loadFlashDepthWeights(model, source);
      expect(model.countParameters()).to.equal(38_381_026);
      const input = fixtureTensor(this, 'inputs', 'clip_126x224.npy');
      const r = checkCase(this, model, 'full', input, [
        ['patchEmbed', 'patch_embed_f0.npy', 'tokens'],
        ['posEmbed', 'pos_embed_interp_f0.npy', 'tokens'],
        ['vitTaps', 'vit_taps_f0.npy', 'taps'],
        ['teacherInput', 'teacher_input_f0.npy', 'nhwc'],
        ['teacherPatchEmbed', 'teacher_patch_embed_f0.npy', 'tokens'],
        ['teacherPosEmbed', 'teacher_pos_embed_interp_f0.npy', 'tokens'],
        ['teacherTaps', 'teacher_vit_taps_f0.npy', 'taps'],
        ['teacherPath4', 'teacher_path4_f0.npy', 'nhwc'],
        ['studentPath4', 'student_path4_f0.npy', 'nhwc'],
        ['fusedPath4', 'fused_path4_f0.npy', 'nhwc'],
        ['dptOut', 'dpt_out_f0.npy', 'nhwc'],
        ['temporalIn', 'temporal_in_f0.npy', 'nhwc'],
        ['temporalIn', 'temporal_in_f1.npy', 'nhwc'],
        ['temporalOut', 'temporal_out_f0.npy', 'nhwc'],
        ['temporalOut', 'temporal_out_f1.npy', 'nhwc'],
        ['mambaSeqIn', 'mamba_seq_in_f0.npy', 'tokens'],
        ['mambaSeqIn', 'mamba_seq_in_f1.npy', 'tokens'],
        ['mambaSeqOut', 'mamba_seq_out_f0.npy', 'tokens'],
        ['mambaSeqOut', 'mamba_seq_out_f1.npy', 'tokens'],
      ]);
      // Training computes the frozen teacher before the gradient scope: the same depth as computing it inline.
      tf.tidy(() => {
        const clip = tf.expandDims(tf.transpose(tf.slice(input, [0, 0, 0, 0], [2, 3, 126, 224]), [0, 2, 3, 1]), 0) as tf.Tensor5D;
        const features = model.teacherFeatures(clip);
        expect(features.map((f) => f.shape)).to.deep.equal([[1, 7, 12, 256], [1, 7, 12, 256]]);
        expectClose(model.forwardClip(clip, features), model.forwardClip(clip), 1e-6, 'forwardClip with precomputed teacher features');
      });
      input.dispose();
      report('full', r);
    } finally {
      source.close();
      model.dispose();
    }
  });
});
