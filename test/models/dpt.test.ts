/**
 * DPT decoder and head (src/models/dpt.ts, src/models/fusion-block.ts): layout, hand-computed values, and parity
 * against the PyTorch fixtures of ../shared/fixtures (README there describes every file).
 *
 * Reference Python code that produced the fixtures (official FlashDepth, fp32 on an H100; see fixtures/README.md):
 *   taps = model.pretrained.get_intermediate_layers(x, [2, 5, 8, 11])         # -> s/vit_taps_f0 (4, 144, 384)
 *   # DPTHead.forward inside FlashDepth.get_dpt_features, Mamba after refinenet3 (mamba_in_dpt_layer [1]):
 *   path_3 = scratch.refinenet3(path_4, layer_3_rn, size=layer_2_rn.shape[2:])  # -> temporal_in_f0 (1, 64, 18, 32)
 *   path_3 = dpt_features_to_mamba(path_3)                                     # -> temporal_out_f0
 *   path_1 = refinenet1(refinenet2(path_3, layer_2_rn, ...), layer_1_rn)      # -> dpt_out_f0 (1, 64, 72, 128)
 *   h = final_head(path_1): output_conv1 -> interpolate(ph*14, pw*14) -> output_conv2[0..2]  # -> head_prerelu
 *   depth = relu(h)                                                            # -> depth
 * Full: teacher_model.depth_head.get_path4(teacher taps) -> full/teacher_path4_f0 (1, 256, 7, 12).
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ShapeError } from '../../src/errors.js';
import { openTorchCheckpoint } from '../../src/io/pth.js';
import { ConvTranspose2d, DPTHead, type DPTHeadOptions, type DptPathIndex } from '../../src/models/dpt.js';
import { ResidualConvUnit } from '../../src/models/fusion-block.js';
import { Conv2d } from '../../src/models/layers.js';
import type { FlashModule } from '../../src/models/module.js';
import { loadWeights, torchShape } from '../../src/models/weights.js';
import { useTestBackend } from '../helpers/backend.js';
import { withEnvRestored } from '../helpers/env.js';
import { closeness, expectClose, fixture, fixtureTensor, REPO_ROOT } from '../helpers/fixtures.js';

const S_DPT: DPTHeadOptions = { inChannels: 384, features: 64, outChannels: [48, 96, 192, 384] };
const L_REDUCED_DPT: DPTHeadOptions = { inChannels: 128, features: 256, outChannels: [32, 64, 128, 128] };
const L_DPT: DPTHeadOptions = { inChannels: 1024, features: 256, outChannels: [256, 512, 1024, 1024] };
const TINY_DPT: DPTHeadOptions = { inChannels: 8, features: 4, outChannels: [3, 5, 6, 7] };

/** NCHW fixture map → NHWC. */
const nhwc = (t: tf.Tensor) => tf.transpose(t, [0, 2, 3, 1]) as tf.Tensor4D;

/** (4, N, D) fixture taps → 4 × [1, N, D]. */
const splitTaps = (t: tf.Tensor) => tf.split(t, 4, 0) as tf.Tensor3D[];

/** Frame `f` of a (T, H, W) fixture as [1, H, W]. */
const frame = (t: tf.Tensor, f: number) => tf.slice(t, [f, 0, 0], [1, -1, -1]) as tf.Tensor3D;

/** Every parameter set to U(±scale) from a fixed seed (fresh modules already are random; this makes runs repeatable). */
function randomize(module: FlashModule, seed: number, scale = 0.3): void {
  let i = 0;
  for (const p of module.namedParameters()) {
    tf.tidy(() => {
      p.spec.variable.write(tf.randomUniform(p.spec.shape, -scale, scale, 'float32', seed + i++));
    });
  }
}

/** `key\t(shape)\tdtype` lines of ../shared/docs/flashdepth-keys/<file> under `prefix`, as "key (shape)". */
function referenceKeys(ctx: Mocha.Context, file: string, prefix: string): string[] {
  const p = resolve(REPO_ROOT, '..', 'shared', 'docs', 'flashdepth-keys', file);
  if (!existsSync(p)) ctx.skip();
  return readFileSync(p, 'utf8').split('\n').filter((l) => l.startsWith(prefix)).map((l) => {
    const [key, shape] = l.split('\t');
    return `${key!.slice(prefix.length)} ${shape!.replace(',)', ')')}`;
  }).sort();
}

function ourKeys(module: FlashModule): string[] {
  return [...module.namedParameters()].map((p) => `${p.key} (${torchShape(p.spec.shape, p.spec.layout).join(', ')})`).sort();
}

/** A DPTHead with a case's `depth_head.*` weights (strict load). */
function loadedHead(ctx: Mocha.Context, options: DPTHeadOptions, pth: string): DPTHead {
  const source = openTorchCheckpoint(fixture(ctx, pth));
  try {
    const head = new DPTHead(options);
    loadWeights(head, source, { prefix: 'depth_head.' });
    return head;
  } finally {
    source.close();
  }
}

/** Logs a parity number so the report can quote it, then asserts the 1e-4 relative bound. */
function parity(what: string, ours: tf.Tensor, ref: tf.Tensor): void {
  const c = closeness(ours, ref);
  console.log(`      ${what}: max|err| ${c.maxAbsErr.toExponential(2)}, max|ref| ${c.maxAbsRef.toFixed(3)}, rel ${(c.maxAbsErr / c.maxAbsRef).toExponential(2)}`);
  expectClose(ours, ref, 1e-4, what);
}

describe('models/dpt', function () {
  before(async () => {
    await useTestBackend();
  });

  describe('layers', () => {
    it('ConvTranspose2d as matMul + depth-to-space equals tf.conv2dTranspose (k = s = 4 and 2)', () => {
      for (const scale of [4, 2]) {
        const up = new ConvTranspose2d({ inChannels: 5, outChannels: 3, scale });
        randomize(up, 10 + scale);
        tf.tidy(() => {
          const x = tf.randomNormal([2, 3, 4, 5], 0, 1, 'float32', 7) as tf.Tensor4D;
          const ours = up.forward(x);
          const ref = tf.add(tf.conv2dTranspose(x, up.weight.read() as tf.Tensor4D, [2, 3 * scale, 4 * scale, 3], scale, 'valid'), up.bias.read());
          expect(ours.shape).to.deep.equal([2, 3 * scale, 4 * scale, 3]);
          expect(closeness(ours, ref).maxAbsErr).to.be.below(1e-5);
        });
        up.disposeParameters();
      }
    });

    it('ConvTranspose2d has weight and bias gradients on wasm: d Σy / dW[ky,kx,o,i] = Σ x[..., i], d Σy / db = B·h·w·s²', () => {
      const up = new ConvTranspose2d({ inChannels: 3, outChannels: 2, scale: 2 });
      tf.tidy(() => {
        const x = tf.randomNormal([2, 3, 4, 3], 0, 1, 'float32', 9) as tf.Tensor4D;
        const w = up.weight.read() as tf.Variable;
        const b = up.bias.read() as tf.Variable;
        const { grads } = tf.variableGrads(() => tf.sum(up.forward(x)), [w, b]);
        const perInput = tf.sum(x, [0, 1, 2]); // [in]
        expect(closeness(grads[w.name]!, tf.broadcastTo(perInput, [2, 2, 2, 3])).maxAbsErr).to.be.below(1e-5);
        expect(Array.from(grads[b.name]!.dataSync())).to.deep.equal([96, 96]);
      });
      up.disposeParameters();
    });

    it('resize_layers.3 pads symmetrically: ones through a 3×3/stride-2/pad-1 all-ones conv on 5×5 give 4-6-4 / 6-9-6', () => {
      const conv = new Conv2d({ inChannels: 1, outChannels: 1, kernelSize: 3, stride: 2, padding: 1 });
      tf.tidy(() => {
        conv.weight.write(tf.ones([3, 3, 1, 1]));
        conv.bias!.write(tf.zeros([1]));
        const y = conv.forward(tf.ones([1, 5, 5, 1]));
        expect(y.shape).to.deep.equal([1, 3, 3, 1]);
        expect(Array.from(y.dataSync())).to.deep.equal([4, 6, 4, 6, 9, 6, 4, 6, 4]);
      });
      conv.disposeParameters();
    });

    it('ResidualConvUnit adds the un-activated input (ReLU not in place)', () => {
      // 1 channel, centre taps only: RCU(x) = 3·relu(2·relu(x) − 1) + 0.5 + x → x = −1: −0.5; x = 2: 11.5.
      const rcu = new ResidualConvUnit({ features: 1 });
      tf.tidy(() => {
        const centre = (v: number) => tf.pad(tf.fill([1, 1, 1, 1], v), [[1, 1], [1, 1], [0, 0], [0, 0]]);
        rcu.conv1.weight.write(centre(2));
        rcu.conv1.bias!.write(tf.tensor1d([-1]));
        rcu.conv2.weight.write(centre(3));
        rcu.conv2.bias!.write(tf.tensor1d([0.5]));
        const y = rcu.forward(tf.tensor4d([-1, 2], [1, 1, 2, 1]));
        expect(Array.from(y.dataSync())).to.deep.equal([-0.5, 11.5]);
        // The same with the ReLU and the skip as ops of their own (FLASHDEPTH_RCU_FUSION=off).
        withEnvRestored('FLASHDEPTH_RCU_FUSION', () => {
          process.env['FLASHDEPTH_RCU_FUSION'] = 'off';
          expect(Array.from(rcu.forward(tf.tensor4d([-1, 2], [1, 1, 2, 1])).dataSync())).to.deep.equal([-0.5, 11.5]);
        });
      });
      rcu.disposeParameters();
    });
  });

  describe('DPTHead structure', () => {
    it('has exactly the 64 depth_head keys and shapes of FlashDepth-S, also when rebuilt from getConfig()', function () {
      const head = new DPTHead(S_DPT);
      try {
        expect(ourKeys(head)).to.deep.equal(referenceKeys(this, 'keys_S.txt', 'depth_head.'));
        expect(head.countParameters()).to.equal(2_728_513);
        const copy = DPTHead.fromConfig(DPTHead, head.getConfig()) as DPTHead;
        expect(ourKeys(copy)).to.deep.equal(ourKeys(head));
        copy.disposeParameters();
      } finally {
        head.disposeParameters();
      }
    });

    it('has exactly the depth_head keys and shapes of FlashDepth-L', function () {
      const head = new DPTHead(L_DPT);
      try {
        expect(ourKeys(head)).to.deep.equal(referenceKeys(this, 'keys_L.txt', 'depth_head.'));
        expect(head.countParameters()).to.equal(30_947_009);
      } finally {
        head.disposeParameters();
      }
    });

    it('on an odd 5×7 grid: layer_4 is ceil(n/2), paths at 1/2/4/8× grid, depth at 14× grid, hooks see 0..3, getPath4 = hooked path_4', () => {
      const head = new DPTHead(TINY_DPT);
      randomize(head, 100);
      tf.tidy(() => {
        const taps = [0, 1, 2, 3].map((i) => tf.randomNormal([2, 35, 8], 0, 1, 'float32', i) as tf.Tensor3D);
        expect(head.reassemble(3, taps[3]!, 5, 7).shape).to.deep.equal([2, 3, 4, 7]);
        expect(head.reassemble(0, taps[0]!, 5, 7).shape).to.deep.equal([2, 20, 28, 3]);
        const seen: Array<[DptPathIndex, number[]]> = [];
        const path1 = head.decode(taps, 5, 7, (index, path) => {
          seen.push([index, path.shape]);
          return path;
        });
        expect(seen).to.deep.equal([[0, [2, 5, 7, 4]], [1, [2, 10, 14, 4]], [2, [2, 20, 28, 4]], [3, [2, 40, 56, 4]]]);
        expect(path1.shape).to.deep.equal([2, 40, 56, 4]);
        const { headPreRelu, depth } = head.head(path1, 5, 7);
        expect(headPreRelu.shape).to.deep.equal([2, 70, 98]);
        expect(Array.from(depth.dataSync())).to.deep.equal(Array.from(tf.relu(headPreRelu).dataSync()));
        const path4 = head.getPath4(taps, 5, 7);
        let hooked: tf.Tensor | undefined;
        head.decode(taps, 5, 7, (i, p) => { if (i === 0) hooked = p; return p; });
        expect(closeness(path4, hooked!).maxAbsErr).to.equal(0);
      });
      head.disposeParameters();
    });

    it('a path replaced by the hook is what the next refinenet receives', () => {
      const head = new DPTHead(TINY_DPT);
      randomize(head, 200);
      tf.tidy(() => {
        const taps = [0, 1, 2, 3].map((i) => tf.randomNormal([1, 12, 8], 0, 1, 'float32', 10 + i) as tf.Tensor3D);
        const a = head.decode(taps, 3, 4, (i, p) => (i === 1 ? tf.zerosLike(p) : p));
        const b = head.decode(taps, 3, 4, (i, p) => (i === 1 ? tf.onesLike(p) : p));
        const c = head.decode(taps, 3, 4, (i, p) => (i === 1 ? tf.zerosLike(p) : p));
        expect(closeness(a, b).maxAbsErr).to.be.above(1e-3);
        expect(closeness(a, c).maxAbsErr).to.equal(0);
      });
      head.disposeParameters();
    });

    it('rejects taps of the wrong count or shape with a ShapeError naming the tap', () => {
      const head = new DPTHead(TINY_DPT);
      tf.tidy(() => {
        const taps = [0, 1, 2, 3].map(() => tf.zeros([1, 12, 8]) as tf.Tensor3D);
        expect(() => head.decode(taps.slice(0, 3), 3, 4)).to.throw(ShapeError, 'DPTHead: expected 4 ViT taps but received 3');
        expect(() => head.decode(taps, 4, 4)).to.throw(ShapeError, 'DPTHead: tap 0 has shape [1, 12, 8], expected [B, 16 (= 4×4), 8]');
      });
      head.disposeParameters();
    });

    it('decode + head leak no tensors', () => {
      const head = new DPTHead(TINY_DPT);
      const taps = [0, 1, 2, 3].map((i) => tf.randomNormal([1, 12, 8], 0, 1, 'float32', i) as tf.Tensor3D);
      const before = tf.memory().numTensors;
      const depth = tf.tidy(() => head.head(head.decode(taps, 3, 4), 3, 4).depth);
      expect(tf.memory().numTensors).to.equal(before + 1);
      tf.dispose(depth);
      tf.dispose(tf.tidy(() => head.getPath4(taps, 3, 4)));
      expect(tf.memory().numTensors).to.equal(before);
      tf.dispose(taps);
      head.disposeParameters();
    });
  });

  describe('parity with PyTorch', function () {
    it('case s: taps → path_3 = temporal_in_f0; temporal_out_f0 → path_1 = dpt_out_f0; → head_prerelu, depth (frame 0)', function () {
      const head = loadedHead(this, S_DPT, 's_model.pth');
      try {
        tf.tidy(() => {
          const taps = splitTaps(fixtureTensor(this, 's', 'vit_taps_f0.npy'));
          const temporalOut = nhwc(fixtureTensor(this, 's', 'temporal_out_f0.npy'));
          let path3: tf.Tensor4D | undefined;
          const path1 = head.decode(taps, 9, 16, (index, path) => {
            if (index !== 1) return path;
            path3 = path;
            return temporalOut;
          });
          parity('s path_3 vs temporal_in_f0', path3!, nhwc(fixtureTensor(this, 's', 'temporal_in_f0.npy')));
          parity('s path_1 vs dpt_out_f0', path1, nhwc(fixtureTensor(this, 's', 'dpt_out_f0.npy')));
          const { headPreRelu, depth } = head.head(nhwc(fixtureTensor(this, 's', 'dpt_out_f0.npy')), 9, 16);
          parity('s head_prerelu f0', headPreRelu, frame(fixtureTensor(this, 's', 'head_prerelu.npy'), 0));
          parity('s depth f0', depth, frame(fixtureTensor(this, 's', 'depth.npy'), 0));
        });
      } finally {
        head.disposeParameters();
      }
    });

    it('case l_reduced: dpt_out_f0 → head_prerelu, depth (frame 0)', function () {
      const head = loadedHead(this, L_REDUCED_DPT, 'l_reduced_model.pth');
      try {
        tf.tidy(() => {
          const { headPreRelu, depth } = head.head(nhwc(fixtureTensor(this, 'l_reduced', 'dpt_out_f0.npy')), 9, 16);
          parity('l_reduced head_prerelu f0', headPreRelu, frame(fixtureTensor(this, 'l_reduced', 'head_prerelu.npy'), 0));
          parity('l_reduced depth f0', depth, frame(fixtureTensor(this, 'l_reduced', 'depth.npy'), 0));
        });
      } finally {
        head.disposeParameters();
      }
    });

    it('case full: teacher taps → getPath4 = teacher_path4_f0; student taps → path_4 = student_path4_f0', function () {
      const teacher = loadedHead(this, L_REDUCED_DPT, 'l_reduced_model.pth');
      const student = loadedHead(this, S_DPT, 's_model.pth');
      try {
        tf.tidy(() => {
          const teacherPath4 = teacher.getPath4(splitTaps(fixtureTensor(this, 'full', 'teacher_vit_taps_f0.npy')), 7, 12);
          parity('full teacher_path4_f0', teacherPath4, nhwc(fixtureTensor(this, 'full', 'teacher_path4_f0.npy')));
          const studentPath4 = student.getPath4(splitTaps(fixtureTensor(this, 'full', 'vit_taps_f0.npy')), 9, 16);
          parity('full student_path4_f0', studentPath4, nhwc(fixtureTensor(this, 'full', 'student_path4_f0.npy')));
        });
      } finally {
        teacher.disposeParameters();
        student.disposeParameters();
      }
    });
  });
});
