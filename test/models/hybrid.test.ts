/**
 * HybridFusion (src/models/hybrid.ts): key layout, identity at initialisation, an independent per-head reference,
 * and parity with the PyTorch fixtures of case `full` (../shared/fixtures/README.md §3).
 *
 * Reference Python code that produced the fixtures (upstream FlashDepth with hybrid_configs, fp32 on an H100):
 *   path_4_T = teacher_model.depth_head.get_path4(teacher_taps)          # -> full/teacher_path4_f0 (1, 256, 7, 12)
 *   path_4_S = depth_head.scratch.refinenet4(layer_4_rn, size=...)        # -> full/student_path4_f0 (1, 64, 9, 16)
 *   fused = hybrid_fusion(path_4_S, path_4_T)   # blocks.0.{0..3}, context_proj of block 0 -> full/fused_path4_f0
 *   path_3 = refinenet3(fused, layer_3_rn, ...) -> Mamba (temporal_out_f0) -> refinenet2 -> refinenet1
 *                                                                        # -> full/dpt_out_f0 (1, 64, 72, 128)
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, ShapeError } from '../../src/errors.js';
import { openTorchCheckpoint } from '../../src/io/pth.js';
import { DPTHead } from '../../src/models/dpt.js';
import { HybridFusion, type FusionBlock } from '../../src/models/hybrid.js';
import type { FlashModule } from '../../src/models/module.js';
import { gelu } from '../../src/models/ops.js';
import { loadWeights, torchShape } from '../../src/models/weights.js';
import { useTestBackend } from '../helpers/backend.js';
import { closeness, expectClose, fixture, fixtureTensor, REPO_ROOT } from '../helpers/fixtures.js';

const nhwc = (t: tf.Tensor) => tf.transpose(t, [0, 2, 3, 1]) as tf.Tensor4D;

function randomize(module: FlashModule, seed: number, scale = 0.5): void {
  let i = 0;
  for (const p of module.namedParameters()) {
    tf.tidy(() => {
      p.spec.variable.write(tf.randomUniform(p.spec.shape, -scale, scale, 'float32', seed + i++));
    });
  }
}

function parity(what: string, ours: tf.Tensor, ref: tf.Tensor): void {
  const c = closeness(ours, ref);
  console.log(`      ${what}: max|err| ${c.maxAbsErr.toExponential(2)}, max|ref| ${c.maxAbsRef.toFixed(3)}, rel ${(c.maxAbsErr / c.maxAbsRef).toExponential(2)}`);
  expectClose(ours, ref, 1e-4, what);
}

/** LayerNorm written out (biased variance, eps inside the root), independent of ops.layerNorm. */
function refLayerNorm(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
  const d = x.shape[x.shape.length - 1]!;
  const mean = tf.div(tf.sum(x, -1, true), d);
  const centred = tf.sub(x, mean);
  const variance = tf.div(tf.sum(tf.square(centred), -1, true), d);
  return tf.add(tf.mul(tf.div(centred, tf.sqrt(tf.add(variance, eps))), w), b);
}

/** x @ W (torch layout, (out, in)) + b on [L, in] tokens (batch 1 squeezed). */
const torchLinear = (x: tf.Tensor, wTorch: tf.Tensor, b?: tf.Tensor) => {
  const y = tf.matMul(x as tf.Tensor2D, wTorch as tf.Tensor2D, false, true);
  return b ? tf.add(y, b) : y;
};

/**
 * The fusion written from spec §2.6 step 5 with explicit per-head weight slices and a plain softmax, in PyTorch
 * weight layout (read back through the module's torch-layout export), for batch 1.
 */
function referenceFusion(blocks: FusionBlock[], student: tf.Tensor4D, teacher: tf.Tensor4D, numHeads: number): tf.Tensor {
  const [, ph, pw, d] = student.shape;
  const torch = (m: FlashModule, name: string) => {
    const p = [...m.namedParameters()].find((q) => q.key === name)!;
    const v = p.spec.variable.read();
    return p.spec.layout === 'linear' ? tf.transpose(v) : v;
  };
  let x: tf.Tensor = tf.reshape(student, [ph * pw, d]);
  const teacherTokens = tf.reshape(teacher, [teacher.shape[1] * teacher.shape[2], teacher.shape[3]]);
  const ctx = torchLinear(teacherTokens, torch(blocks[0]!, 'context_proj.weight'), torch(blocks[0]!, 'context_proj.bias'));
  const dh = d / numHeads;
  for (const blk of blocks) {
    const c = refLayerNorm(ctx, torch(blk, 'context_norm.weight'), torch(blk, 'context_norm.bias'), 1e-5);
    const q = refLayerNorm(x, torch(blk, 'norm1.weight'), torch(blk, 'norm1.bias'), 1e-5);
    const wq = torch(blk, 'attention.q.weight');
    const wkv = torch(blk, 'attention.kv.weight'); // (2d, d): rows [0, d) = K, [d, 2d) = V
    const heads: tf.Tensor[] = [];
    for (let h = 0; h < numHeads; h++) {
      const qh = torchLinear(q, tf.slice(wq, [h * dh, 0], [dh, d]));
      const kh = torchLinear(c, tf.slice(wkv, [h * dh, 0], [dh, d]));
      const vh = torchLinear(c, tf.slice(wkv, [d + h * dh, 0], [dh, d]));
      const scores = tf.div(tf.matMul(qh as tf.Tensor2D, kh as tf.Tensor2D, false, true), Math.sqrt(dh));
      const e = tf.exp(tf.sub(scores, tf.max(scores, -1, true)));
      heads.push(tf.matMul(tf.div(e, tf.sum(e, -1, true)) as tf.Tensor2D, vh as tf.Tensor2D));
    }
    x = tf.add(x, torchLinear(tf.concat(heads, 1), torch(blk, 'attention.proj.weight'), torch(blk, 'attention.proj.bias')));
    const m = refLayerNorm(x, torch(blk, 'norm2.weight'), torch(blk, 'norm2.bias'), 1e-5);
    const hidden = gelu(torchLinear(m, torch(blk, 'mlp.0.weight'), torch(blk, 'mlp.0.bias')));
    x = tf.add(x, torchLinear(hidden, torch(blk, 'mlp.2.weight'), torch(blk, 'mlp.2.bias')));
  }
  return tf.reshape(x, [1, ph, pw, d]);
}

describe('models/hybrid', function () {
  before(async () => {
    await useTestBackend();
  });

  it('has exactly the 64 hybrid_fusion keys and shapes of the Full checkpoint, also when rebuilt from getConfig()', function () {
    const p = resolve(REPO_ROOT, '..', 'shared', 'docs', 'flashdepth-keys', 'keys_Full.txt');
    if (!existsSync(p)) this.skip();
    const reference = readFileSync(p, 'utf8').split('\n').filter((l) => l.startsWith('hybrid_fusion.')).map((l) => {
      const [key, shape] = l.split('\t');
      return `${key!.slice('hybrid_fusion.'.length)} ${shape!.replace(',)', ')')}`;
    }).sort();
    const fusion = new HybridFusion();
    try {
      const ours = [...fusion.namedParameters()].map((q) => `${q.key} (${torchShape(q.spec.shape, q.spec.layout).join(', ')})`).sort();
      expect(ours).to.deep.equal(reference);
      expect(fusion.countParameters()).to.equal(199_424);
      expect(fusion.stagePaths).to.deep.equal([0]);
      const copy = HybridFusion.fromConfig(HybridFusion, fusion.getConfig()) as HybridFusion;
      expect(copy.getConfig()['layersToSkip']).to.deep.equal([1, 2, 3]);
      expect(copy.countParameters()).to.equal(199_424);
      copy.disposeParameters();
    } finally {
      fusion.disposeParameters();
    }
  });

  it('is the identity when freshly initialised (attention.proj and mlp.2 start at zero)', () => {
    const fusion = new HybridFusion({ dModel: 8, contextDim: 6, numBlocks: 2, numHeads: 2 });
    tf.tidy(() => {
      const student = tf.randomNormal([1, 3, 4, 8], 0, 1, 'float32', 1) as tf.Tensor4D;
      const teacher = tf.randomNormal([1, 2, 2, 6], 0, 1, 'float32', 2) as tf.Tensor4D;
      expect(closeness(fusion.forward(student, teacher), student).maxAbsErr).to.equal(0);
    });
    fusion.disposeParameters();
  });

  it('matches a per-head reference written from the spec (random weights, 2 blocks, 2 heads)', () => {
    const fusion = new HybridFusion({ dModel: 8, contextDim: 6, numBlocks: 2, numHeads: 2, mlpExpand: 2 });
    randomize(fusion, 300);
    tf.tidy(() => {
      const student = tf.randomNormal([1, 3, 4, 8], 0, 1, 'float32', 3) as tf.Tensor4D;
      const teacher = tf.randomNormal([1, 2, 3, 6], 0, 1, 'float32', 4) as tf.Tensor4D;
      const ours = fusion.forward(student, teacher);
      const ref = referenceFusion(fusion.blocks[0]!, student, teacher, 2);
      expect(ours.shape).to.deep.equal([1, 3, 4, 8]);
      expect(closeness(ours, student).maxAbsErr).to.be.above(0.1);
      expectClose(ours, ref, 1e-5, 'fusion vs per-head reference');
    });
    fusion.disposeParameters();
  });

  it('only block 0 uses context_proj; a skipped or missing stage is a ConfigError; bad widths are ShapeErrors', () => {
    const fusion = new HybridFusion({ dModel: 8, contextDim: 6, numBlocks: 2, numHeads: 2 });
    randomize(fusion, 400);
    tf.tidy(() => {
      const student = tf.randomNormal([1, 2, 2, 8], 0, 1, 'float32', 5) as tf.Tensor4D;
      const teacher = tf.randomNormal([1, 2, 2, 6], 0, 1, 'float32', 6) as tf.Tensor4D;
      const before = fusion.forward(student, teacher);
      fusion.blocks[0]![1]!.contextProj.weight.write(tf.zeros([6, 8]));
      expect(closeness(fusion.forward(student, teacher), before).maxAbsErr).to.equal(0);
      expect(() => fusion.forward(student, teacher, 1)).to.throw(ConfigError, 'HybridFusion: stage 1 does not exist (1 stage(s), fusing paths [0])');
      expect(() => fusion.forward(teacher as tf.Tensor4D, teacher)).to.throw(ShapeError, 'HybridFusion: student path has shape [1, 2, 2, 6], expected 8 channels (NHWC)');
      expect(() => fusion.forward(student, student)).to.throw(ShapeError, 'HybridFusion: teacher path has shape [1, 2, 2, 8], expected 6 channels (NHWC)');
    });
    expect(() => new HybridFusion({ layersToSkip: [1, 4] })).to.throw(ConfigError, 'HybridFusion: layersToSkip entries must be DPT path indices 0..3 but received 4');
    expect(() => new HybridFusion({ dModel: 64, numHeads: 3 })).to.throw(ConfigError, 'HybridFusion: dModel 64 does not split into 3 heads');
    fusion.disposeParameters();
  });

  it('is differentiable on wasm: every used parameter gets a finite, non-zero gradient', () => {
    const fusion = new HybridFusion({ dModel: 8, contextDim: 6, numBlocks: 2, numHeads: 2 });
    randomize(fusion, 500);
    tf.tidy(() => {
      const student = tf.randomNormal([1, 3, 4, 8], 0, 1, 'float32', 7) as tf.Tensor4D;
      const teacher = tf.randomNormal([1, 2, 2, 6], 0, 1, 'float32', 8) as tf.Tensor4D;
      // context_proj of block 1 is unused by design (spec §2.6), so it has no gradient.
      const used = [...fusion.namedParameters()].filter((p) => p.key !== 'blocks.0.1.context_proj.weight' && p.key !== 'blocks.0.1.context_proj.bias');
      const vars = used.map((p) => p.spec.variable.read() as tf.Variable);
      const { grads } = tf.variableGrads(() => tf.sum(tf.square(fusion.forward(student, teacher))), vars);
      for (const [i, p] of used.entries()) {
        const g = grads[vars[i]!.name]!.dataSync();
        expect(g.every(Number.isFinite), p.key).to.equal(true);
        expect(g.some((v) => v !== 0), p.key).to.equal(true);
      }
    });
    fusion.disposeParameters();
  });

  it('leaks no tensors', () => {
    const fusion = new HybridFusion({ dModel: 8, contextDim: 6, numBlocks: 2, numHeads: 2 });
    const student = tf.randomNormal([1, 3, 4, 8]) as tf.Tensor4D;
    const teacher = tf.randomNormal([1, 2, 2, 6]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    tf.dispose(tf.tidy(() => fusion.forward(student, teacher)));
    expect(tf.memory().numTensors).to.equal(before);
    tf.dispose([student, teacher]);
    fusion.disposeParameters();
  });

  describe('parity with PyTorch (case full)', () => {
    it('fuses (student_path4_f0, teacher_path4_f0) → fused_path4_f0; decoding from it with temporal_out_f0 → dpt_out_f0', function () {
      const fusion = new HybridFusion();
      const student = new DPTHead({ inChannels: 384, features: 64, outChannels: [48, 96, 192, 384] });
      const extra = openTorchCheckpoint(fixture(this, 'full_extra_model.pth'));
      const studentSource = openTorchCheckpoint(fixture(this, 's_model.pth'));
      try {
        loadWeights(fusion, extra, { prefix: 'hybrid_fusion.' });
        loadWeights(student, studentSource, { prefix: 'depth_head.' });
        tf.tidy(() => {
          const fused = fusion.forward(
            nhwc(fixtureTensor(this, 'full', 'student_path4_f0.npy')),
            nhwc(fixtureTensor(this, 'full', 'teacher_path4_f0.npy')));
          parity('full fused_path4_f0', fused, nhwc(fixtureTensor(this, 'full', 'fused_path4_f0.npy')));

          const temporalOut = nhwc(fixtureTensor(this, 'full', 'temporal_out_f0.npy'));
          const teacherPath4 = nhwc(fixtureTensor(this, 'full', 'teacher_path4_f0.npy'));
          let path3: tf.Tensor4D | undefined;
          const path1 = student.decode(tf.split(fixtureTensor(this, 'full', 'vit_taps_f0.npy'), 4, 0) as tf.Tensor3D[], 9, 16, (index, path) => {
            if (index === 0) return fusion.forward(path, teacherPath4);
            if (index === 1) {
              path3 = path;
              return temporalOut;
            }
            return path;
          });
          parity('full path_3 (from our fused path_4) vs temporal_in_f0', path3!, nhwc(fixtureTensor(this, 'full', 'temporal_in_f0.npy')));
          parity('full path_1 vs dpt_out_f0', path1, nhwc(fixtureTensor(this, 'full', 'dpt_out_f0.npy')));
        });
      } finally {
        extra.close();
        studentSource.close();
        fusion.disposeParameters();
        student.disposeParameters();
      }
    });
  });
});
