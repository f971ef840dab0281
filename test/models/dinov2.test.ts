/**
 * DINOv2 encoder: PyTorch parity on the shared fixtures (spec §2.2), pos-embed interpolation, key names, errors, leaks.
 *
 * Reference (fixtures/README.md): DA-V2's `DINOv2` on an H100 in fp32, weights = the fp16 values of the .pth files;
 *   patch_embed = model.pretrained.patch_embed(x); pos_embed_interp = model.pretrained.interpolate_pos_encoding(...);
 *   vit_taps = torch.cat(model.pretrained.get_intermediate_layers(x, taps), 0)   # norm applied, cls dropped
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { ConfigError, ShapeError } from '../../src/errors.js';
import { openTorchCheckpoint } from '../../src/io/pth.js';
import { createDinoV2, DinoV2, type DinoV2Debug, type DinoV2Options } from '../../src/models/dinov2.js';
import { bicubicMatrix, needsInterpolation } from '../../src/models/pos-embed.js';
import { loadWeights, torchShape } from '../../src/models/weights.js';
import { useTestBackend } from '../helpers/backend.js';
import { withEnvRestored } from '../helpers/env.js';
import { expectClose, fixture, fixtureTensor, REPO_ROOT } from '../helpers/fixtures.js';

/** The reduced ViT-L of l_reduced_model.pth (= the Full teacher of full/): embed 128, 8 blocks, 2 heads. */
const L_REDUCED: Partial<DinoV2Options> = { embedDim: 128, depth: 8, numHeads: 2, tapIndices: [1, 3, 5, 7] };

/** Frame `index` of a (T, 3, H, W) NCHW array → NHWC [1, H, W, 3]. */
function frameNHWC(clip: tf.Tensor, index: number): tf.Tensor4D {
  const [, c, h, w] = clip.shape as [number, number, number, number];
  return tf.transpose(tf.slice(clip, [index, 0, 0, 0], [1, c, h, w]), [0, 2, 3, 1]) as tf.Tensor4D;
}

function loadVit(ctx: Mocha.Context, weightsFile: string, vit: DinoV2): DinoV2 {
  const source = openTorchCheckpoint(fixture(ctx, weightsFile));
  try {
    const report = loadWeights(vit, source, { prefix: 'pretrained.' });
    expect(report.loaded.length).to.equal(5 + 14 * vit.depth + 2);
  } finally {
    source.close();
  }
  return vit;
}

interface ParityCase {
  title: string;
  weights: string;
  arch: 'vits' | 'vitl';
  overrides: Partial<DinoV2Options>;
  /** Fixture path parts of the input, and whether it is the (T,3,H,W) clip (frame 0 taken) or a (1,3,H,W) frame. */
  input: string[];
  /** Fixture folder and file-name prefix of the expected intermediates. */
  dir: string;
  prefix: string;
}

const CASES: ParityCase[] = [
  { title: 's (ViT-S, 126×224)', weights: 's_model.pth', arch: 'vits', overrides: {}, input: ['inputs', 'clip_126x224.npy'], dir: 's', prefix: '' },
  { title: 'l_reduced (reduced ViT-L, 126×224)', weights: 'l_reduced_model.pth', arch: 'vitl', overrides: L_REDUCED, input: ['inputs', 'clip_126x224.npy'], dir: 'l_reduced', prefix: '' },
  { title: 'full teacher (reduced ViT-L, 98×168)', weights: 'l_reduced_model.pth', arch: 'vitl', overrides: L_REDUCED, input: ['full', 'teacher_input_f0.npy'], dir: 'full', prefix: 'teacher_' },
];

describe('models/dinov2', () => {
  before(async () => {
    await useTestBackend();
  });

  describe('pos-embed interpolation (PyTorch bicubic, scale_factor (n+0.1)/37)', () => {
    // Reference values: Python, float64, the spec §2.2 formula
    //   sc = 37/(n+0.1); src = (i+0.5)*sc - 0.5; f = floor(src); t = src - f; A = -0.75
    //   taps f-1..f+2 clamped to [0, 36] with weights c2(t+1), c1(t), c1(1-t), c2(2-t)
    const rowOf = (m: Float32Array, i: number) => Array.from(m.subarray(i * 37, (i + 1) * 37));
    const expectRow = (row: number[], nonZero: Record<number, number>) => {
      row.forEach((v, j) => expect(v, `column ${j}`).to.be.closeTo(nonZero[j] ?? 0, 2e-6));
    };

    it('matches hand-computed rows for a 9-row grid', () => {
      const m = bicubicMatrix(9, 37, 9.1 / 37);
      expectRow(rowOf(m, 0), { 0: -0.0871879938983855, 1: 0.5501179965126048, 2: 0.6365668845404081, 3: -0.09949688715462779 });
      expectRow(rowOf(m, 8), { 33: -0.04001584621754395, 34: 0.992056861596319, 35: 0.05053310338375694, 36: -0.002574118762532329 });
    });

    it('clamps taps at both borders when upsampling (40 rows)', () => {
      const m = bicubicMatrix(40, 37, 40.1 / 37);
      expectRow(rowOf(m, 0), { 0: 1.026792214311424, 1: -0.026792214311423646 });
      expectRow(rowOf(m, 39), { 34: -0.00204040719170262, 35: 0.0443313165220085, 36: 0.957709090669694 });
    });

    it('is the identity at scale factor 1 and every row sums to 1', () => {
      const id = bicubicMatrix(37, 37, 1);
      for (let i = 0; i < 37; i++) expectRow(rowOf(id, i), { [i]: 1 });
      const m = bicubicMatrix(82, 37, 82.1 / 37);
      for (let i = 0; i < 82; i++) expect(rowOf(m, i).reduce((a, b) => a + b, 0)).to.be.closeTo(1, 1e-6);
    });

    it('skips interpolation only for the exact 37×37 grid', () => {
      expect(needsInterpolation(37, 37, 37)).to.equal(false);
      expect(needsInterpolation(37, 38, 37)).to.equal(true);
      expect(needsInterpolation(38, 37, 37)).to.equal(true);
      expect(needsInterpolation(1, 1369, 37)).to.equal(true);
    });
  });

  for (const c of CASES) {
    describe(`parity: ${c.title}`, () => {
      let vit: DinoV2;
      before(function () {
        vit = loadVit(this, c.weights, createDinoV2(c.arch, c.overrides));
      });
      after(() => vit?.dispose());

      it('patch_embed, pos_embed_interp and vit_taps of frame 0 match PyTorch', function () {
        const file = (name: string) => [c.dir, `${c.prefix}${name}_f0.npy`];
        tf.tidy(() => {
          const raw = fixtureTensor(this, ...c.input);
          const x = frameNHWC(raw, 0);
          const debug: DinoV2Debug = {};
          const taps = vit.getIntermediateLayers(x, debug);
          const results = {
            patch_embed: expectClose(debug.patchEmbed!, fixtureTensor(this, ...file('patch_embed')), 1e-4, 'patch_embed'),
            pos_embed_interp: expectClose(debug.posEmbed!, fixtureTensor(this, ...file('pos_embed_interp')), 1e-4, 'pos_embed_interp'),
            vit_taps: expectClose(tf.concat(taps, 0), fixtureTensor(this, ...file('vit_taps')), 1e-4, 'vit_taps'),
          };
          for (const [name, r] of Object.entries(results)) {
            console.log(`      ${c.dir}/${c.prefix}${name}_f0: max|err| ${r.maxAbsErr.toExponential(2)} (max|ref| ${r.maxAbsRef.toFixed(3)}, rel ${(r.maxAbsErr / r.maxAbsRef).toExponential(2)})`);
          }
          // Every token normalised, then the CLS tokens sliced off (FLASHDEPTH_PATCH_NORM_FUSION=off): the same taps.
          withEnvRestored('FLASHDEPTH_PATCH_NORM_FUSION', () => {
            process.env['FLASHDEPTH_PATCH_NORM_FUSION'] = 'off';
            expect(Array.from(tf.concat(vit.getIntermediateLayers(x), 0).dataSync())).to.deep.equal(Array.from(tf.concat(taps, 0).dataSync()));
          });
        });
      });
    });
  }

  it('matches PyTorch with a tiny attention budget (21 query blocks per head)', function () {
    const vit = loadVit(this, 'l_reduced_model.pth', createDinoV2('vitl', { ...L_REDUCED, maxScoreElements: 145 * 7 }));
    try {
      tf.tidy(() => {
        const taps = vit.getIntermediateLayers(frameNHWC(fixtureTensor(this, 'inputs', 'clip_126x224.npy'), 0));
        const r = expectClose(tf.concat(taps, 0), fixtureTensor(this, 'l_reduced', 'vit_taps_f0.npy'), 1e-4, 'vit_taps (chunked)');
        console.log(`      l_reduced/vit_taps_f0 with 7-row attention blocks: max|err| ${r.maxAbsErr.toExponential(2)}`);
      });
    } finally {
      vit.dispose();
    }
  });

  describe('ViT-S weights (s_model.pth)', () => {
    let vit: DinoV2;
    before(function () {
      vit = loadVit(this, 's_model.pth', createDinoV2('vits'));
    });
    after(() => vit?.dispose());

    it('interpolates the 13×23 grid of s_nonmult (182×322) like PyTorch', function () {
      tf.tidy(() => {
        const ref = fixtureTensor(this, 's_nonmult', 'pos_embed_interp_f0.npy');
        const r = expectClose(vit.interpolatedPosEmbed(13, 23), ref, 1e-4, 'pos_embed_interp 13×23');
        console.log(`      s_nonmult/pos_embed_interp_f0: max|err| ${r.maxAbsErr.toExponential(2)} (max|ref| ${r.maxAbsRef.toFixed(3)})`);
        // The frame itself patchifies to that grid.
        const input = frameNHWC(fixtureTensor(this, 's_nonmult', 'input.npy'), 0);
        expect(vit.patchGrid(input.shape)).to.deep.equal([13, 23]);
      });
    });

    it('uses pos_embed unchanged at 518×518 (and runs ViT-S there)', () => {
      tf.tidy(() => {
        const x = tf.randomNormal([1, 518, 518, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
        const debug: DinoV2Debug = {};
        const cachedBefore = vit.cachedGrids;
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        const taps = vit.getIntermediateLayers(x, debug);
        taps.forEach((t) => t.dataSync());
        const wallMs = performance.now() - t0;
        const cpuMs = (process.cpuUsage(cpu0).user + process.cpuUsage(cpu0).system) / 1000;
        console.log(`      ViT-S 518×518 forward (${tf.getBackend()}): ${wallMs.toFixed(0)} ms wall, ${cpuMs.toFixed(0)} ms CPU`);
        expect(taps.map((t) => t.shape)).to.deep.equal([[1, 1369, 384], [1, 1369, 384], [1, 1369, 384], [1, 1369, 384]]);
        const stored = vit.posEmbed.read().dataSync();
        const used = debug.posEmbed!.dataSync();
        expect(used.length).to.equal(stored.length);
        expect(used.every((v, i) => v === stored[i])).to.equal(true);
        expect(vit.cachedGrids, 'no interpolation matrices for 37×37').to.equal(cachedBefore);
      });
    });
  });

  describe('structure and errors', () => {
    it('has exactly the pretrained.* keys and shapes of the FlashDepth-S checkpoint', () => {
      const listed = readFileSync(join(REPO_ROOT, '..', 'shared', 'docs', 'flashdepth-keys', 'keys_S.txt'), 'utf8')
        .split('\n').filter((l) => l.startsWith('pretrained.'))
        .map((l) => { const [key, shape] = l.split('\t'); return `${key} ${shape!.replace(/[(),]/g, ' ').trim().split(/\s+/).join('x')}`; });
      const vit = createDinoV2('vits');
      try {
        const ours = [...vit.namedParameters('pretrained.')].map((p) => `${p.key} ${torchShape(p.spec.shape, p.spec.layout).join('x')}`);
        expect(ours.slice().sort()).to.deep.equal(listed.slice().sort());
        expect(vit.countParameters()).to.equal(22_056_576);
      } finally {
        vit.dispose();
      }
    });

    it('rejects inputs that are not NHWC multiples of 14', () => {
      const vit = createDinoV2('vitl', { ...L_REDUCED, depth: 2, tapIndices: [0, 1] });
      try {
        const x = tf.zeros([1, 126, 225, 3]) as tf.Tensor4D;
        expect(() => vit.getIntermediateLayers(x)).to.throw(ShapeError,
          'DinoV2 input: expected a normalised NHWC image [B, H, W, 3] with H and W positive multiples of 14, got [1, 126, 225, 3]');
        const nchw = tf.zeros([1, 3, 126, 224]) as tf.Tensor4D;
        expect(() => vit.getIntermediateLayers(nchw)).to.throw(ShapeError, 'got [1, 3, 126, 224]');
        tf.dispose([x, nchw]);
      } finally {
        vit.dispose();
      }
    });

    it('rejects invalid options with the option named', () => {
      expect(() => new DinoV2({ embedDim: 128, depth: 2, numHeads: 3, tapIndices: [1] })).to.throw(ConfigError,
        'Expected positive integer dividing embedDim 128 for DinoV2 numHeads but received 3 (number)');
      expect(() => new DinoV2({ embedDim: 128, depth: 2, numHeads: 2, tapIndices: [1, 2] })).to.throw(ConfigError,
        'Expected a non-empty increasing list of block indices in [0, 1] for DinoV2 tapIndices but received [1 (number), 2 (number)]');
    });
  });

  describe('training', () => {
    it('has a gradient on wasm for every parameter except the unused mask_token', () => {
      const vit = createDinoV2('vitl', { embedDim: 16, depth: 2, numHeads: 2, tapIndices: [0, 1], maxScoreElements: 8 });
      try {
        const params = [...vit.namedParameters()].filter((p) => p.key !== 'mask_token');
        tf.tidy(() => {
          const x = tf.randomNormal([1, 28, 42, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
          const { grads } = tf.variableGrads(() => tf.sum(tf.square(tf.concat(vit.getIntermediateLayers(x), 0))) as tf.Scalar,
            params.map((p) => p.spec.variable.read() as tf.Variable));
          const byName = new Map(params.map((p) => [(p.spec.variable.read() as tf.Variable).name, p.key]));
          expect(Object.keys(grads).map((n) => byName.get(n)).sort()).to.deep.equal(params.map((p) => p.key).sort());
          for (const [name, g] of Object.entries(grads)) {
            const norm = tf.norm(g).dataSync()[0]!;
            expect(Number.isFinite(norm) && norm > 0, `gradient of ${byName.get(name)}`).to.equal(true);
          }
        });
      } finally {
        vit.dispose();
      }
    });
  });

  describe('memory', () => {
    it('keeps numTensors stable across calls; the pos-embed cache holds 3 tensors per grid (2 matrices, the result) until cleared', () => {
      const vit = createDinoV2('vitl', { ...L_REDUCED, embedDim: 64, depth: 3, tapIndices: [0, 2] });
      try {
        const x = tf.randomNormal([2, 42, 56, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
        const forward = () => tf.tidy(() => { tf.concat(vit.getIntermediateLayers(x, {}), 0).dataSync(); });
        const start = tf.memory().numTensors;
        forward();
        expect(tf.memory().numTensors - start, 'first call caches the 3×4 grid matrices and result').to.equal(3);
        expect(vit.cachedGrids).to.equal(1);
        forward();
        forward();
        expect(tf.memory().numTensors - start).to.equal(3);
        vit.clearCache();
        expect(tf.memory().numTensors).to.equal(start);
        expect(vit.cachedGrids).to.equal(0);
        x.dispose();
      } finally {
        vit.dispose();
      }
    });

    it('dispose() frees the weights and the cache', () => {
      const start = tf.memory().numTensors;
      const vit = createDinoV2('vitl', { ...L_REDUCED, embedDim: 32, depth: 1, tapIndices: [0] });
      tf.tidy(() => { vit.getIntermediateLayers(tf.zeros([1, 28, 42, 3]) as tf.Tensor4D); });
      expect(tf.memory().numTensors).to.be.greaterThan(start);
      vit.dispose();
      expect(tf.memory().numTensors).to.equal(start);
    });
  });
});
