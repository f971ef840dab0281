/**
 * Child-process half of test/kernels/kernels.test.ts: on the webgpu backend, runs every custom kernel through its
 * model call site (kernel mode 'fused') and the same call with tfjs' stock ops (kernel mode 'stock') on seeded
 * random inputs, and prints one JSON line per case: {name, maxAbsError, maxAbsRef, leaked, fused}.
 * `fused` says whether the custom kernel really ran (a tfjs profile lists its kernel name).
 * Usage: node dist/test/kernels/kernel-check.js [--mixed-model | --mixed-model-only] [--emulate-subgroup-matrices [--only <name part>] [--mixed-parity] | --replay]
 * (--emulate-subgroup-matrices: only the tensor-core cases, emulated in plain WGSL on a device without subgroup matrices,
 * on the device's own where it has them; exit status 1 and one stderr line naming the cases outside the mixed bound;
 * --replay: only recorded-frame replay against tfjs, S and Full; with --emulate-subgroup-matrices and
 * FLASHDEPTH_PRECISION=mixed, of the tensor-core path)
 */
import * as tf from '@tensorflow/tfjs-core';
import { releaseBackend, selectBackend } from '../../src/backend/index.js';
import { emulateSubgroupMatrices, webgpuBindGroupStats, webgpuCapabilities } from '../../src/backend/webgpu.js';
import { emulateSubgroupMatrices as emulateSubgroupMatrixBuiltins } from '../helpers/subgroup-matrix-emulation.js';
import { flashAttention, mixedMatMul, mixedSelfAttention, mixedSelfAttentionSupports, setKernelMode, setPrecision, tensorCoresAvailable, useFusedKernels, useTensorCores, type KernelMode, type Precision } from '../../src/kernels/index.js';
import { TC_ATTENTION } from '../../src/kernels/tc-attention.js';
import { freeStalePackedWeights, packedB, packedWeight, releasePackedWeights, tensorCoreConv3x3 } from '../../src/kernels/tc-matmul.js';
import { scaledDotProductAttention, selfAttention } from '../../src/models/attention.js';
import { addScaled, conv2d, convTransposeNoOverlap, gelu, layerNorm, layerNormDroppingFirst, linear, mlp, resizeAlignCorners } from '../../src/models/ops.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { float16ToFloat32 } from '../../src/io/half.js';
import { readNpyFloat32 } from '../../src/io/npy.js';
import { openTorchCheckpoint } from '../../src/io/pth.js';
import { mergedSource, prefixedSource, type WeightSource } from '../../src/io/weight-source.js';
import { createFlashDepth, loadFlashDepthWeights } from '../../src/models/create.js';
import type { FlashDepth } from '../../src/models/flashdepth.js';
import { FULL_REDUCED_TEACHER_OVERRIDES } from '../../src/models/variants.js';
import { Mamba2, type Mamba2Options, type ScanForm } from '../../src/models/mamba2.js';
import { setScanReduction, type ScanReduction } from '../../src/kernels/mamba-scan.js';
import { randomizeWeights } from '../../src/models/random-init.js';
import { createDinoV2, type DinoV2 } from '../../src/models/dinov2.js';
import { pinnedBufferCount, RecordedFrame } from '../../src/backend/webgpu-replay.js';
import { StreamingPredictor, type ReplayStats } from '../../src/infer/streaming.js';
import { closeness, FIXTURES_DIR } from '../helpers/fixtures.js';
import { withEnvRestored } from '../helpers/env.js';
import type { WebGPUBackendLike } from '../../src/kernels/program.js';
import { DEFAULT_TC_ATTENTION_LAYOUT, PackHeadsF16Program, packedPlanes, type TensorCoreAttentionLayout } from '../../src/kernels/tc-attention_webgpu.js';
import { MIXED_RELATIVE_BOUND } from './bounds.js';
import { BIG_TC_MATMUL_LAYOUTS, SINGLE_BUFFERED_TC_MATMUL_LAYOUT, narrowConvBlock, SMALL_TC_MATMUL_LAYOUT, tcMatMulWorkgroupBytes, WAVE_FITTED_TC_MATMUL_LAYOUTS, withMoreSubgroups, type TensorCoreMatMulLayout } from '../../src/kernels/tc-matmul_webgpu.js';

export interface KernelCheckResult {
  name: string;
  maxAbsError: number;
  maxAbsRef: number;
  /** Tensors left behind by the fused call. */
  leaked: number;
  /** Names of the custom kernels the fused call dispatched. */
  kernels: string[];
  precision: Precision;
}

/** A mixed-precision case the device could not run (no f16 subgroup matrices). */
export interface KernelCheckSkip {
  name: string;
  skipped: string;
}

interface Case {
  name: string;
  /** 'mixed': tensor-core kernels (f16 operands) against the stock fp32 ops; default fp32. */
  precision?: Precision;
  inputs: () => tf.Tensor[];
  run: (inputs: tf.Tensor[]) => tf.Tensor;
  /** Frees what the case made besides its inputs (a model), after both runs. */
  dispose?: () => void;
}

/**
 * The tensor-core attention kernel itself where it can run (mixed cases; `tcLayout` forces a layout the model would
 * pick only at other sizes), else `stock` (the stock-ops reference run).
 */
function tcOr(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, numHeads: number, headDim: number, offsets: [number, number, number], stock: () => tf.Tensor, tcLayout?: TensorCoreAttentionLayout): tf.Tensor {
  if (!useTensorCores()) return stock();
  const attrs = { numHeads, headDim, scale: 1 / Math.sqrt(headDim), qOffset: offsets[0], kOffset: offsets[1], vOffset: offsets[2], ...(tcLayout ? { tcLayout } : {}) };
  return tf.engine().runKernel(TC_ATTENTION, { q, k, v }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/**
 * A packed qkv of 2 heads of 64, [2, 197, 384], std `std` scaled 0.2 → 1.5 along the tokens: the logits' row maxima
 * rise block after block.
 */
function risingQkv(std: number): tf.Tensor {
  return tf.mul(normal([2, 197, 3 * 128], std), tf.reshape(tf.linspace(0.2, 1.5, 197), [1, 197, 1]));
}

/** Self-attention of such a qkv: the tensor-core kernel (with `tcLayout` if given) in mixed cases, else the stock ops. */
function twoHeadAttention(qkv: tf.Tensor, tcLayout?: TensorCoreAttentionLayout): tf.Tensor {
  return tcOr(qkv, qkv, qkv, 2, 64, [0, 128, 256], () => selfAttention(qkv as tf.Tensor3D, 2), tcLayout);
}

/** The tensor-core matmul (+ bias, optional LayerScale residual) in a forced layout where it can run, else the stock ops. */
function tcMatMulOr(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, layout: TensorCoreMatMulLayout, residual?: { x: tf.Tensor; gamma: tf.Tensor }): tf.Tensor {
  if (!useTensorCores()) return linear(x, w, b, residual ? { residual } : {});
  return mixedMatMul(x as tf.Tensor2D, w as tf.Tensor2D, { bias: b, layout, ...(residual ? { residual } : {}) });
}

/**
 * proj(attention(qkv(LN(x)))) (+ residual): mixedSelfAttention in mixed cases (it must take the shape: the case fails
 * otherwise), else the stock ops.
 */
function attentionBranch(x: tf.Tensor, numHeads: number, qkv: { weight: tf.Tensor; bias: tf.Tensor }, proj: { weight: tf.Tensor; bias: tf.Tensor },
  norm?: { weight: tf.Tensor; bias: tf.Tensor; eps: number }, residual?: { x: tf.Tensor; gamma: tf.Tensor }): tf.Tensor {
  if (!useTensorCores()) return linear(selfAttention(linear(x, qkv.weight, qkv.bias, norm ? { layerNorm: norm } : {}) as tf.Tensor3D, numHeads), proj.weight, proj.bias, residual ? { residual } : {});
  const [b, n, d] = x.shape as [number, number, number];
  if (!mixedSelfAttentionSupports(b, n, d, numHeads)) throw new Error(`mixedSelfAttention does not take [${x.shape.join(', ')}] in ${numHeads} heads`);
  return mixedSelfAttention(x as tf.Tensor3D, { qkv: qkv as { weight: tf.Tensor2D; bias: tf.Tensor }, proj: proj as { weight: tf.Tensor2D; bias: tf.Tensor }, numHeads, ...(norm ? { layerNorm: norm } : {}), ...(residual ? { residual } : {}) });
}

/**
 * A 3-block DINOv2 of width 128 (2 heads of 64) with random weights, made on first use, and its tapped outputs (blocks
 * 1 and 2, after the final norm) for a 210×224 image (241 tokens): in mixed precision each block hands the next its
 * norm1 input packed (DinoV2.getIntermediateLayers → DinoBlock.forwardChained); fc2 (K 512, 2 row blocks) is split
 * over K, so its reduction writes the next block's norm1 packed, while the unsplit projection's norm2 is packed by a
 * LayerNorm dispatch in the same kernel call.
 */
let chainVit: DinoV2 | null = null;
function chainedVitImage(): tf.Tensor {
  chainVit = createDinoV2('vits', { embedDim: 128, depth: 3, numHeads: 2, tapIndices: [1, 2] });
  randomizeWeights(chainVit, 11);
  // The position embedding interpolated to the 15×16 grid is cached by the model (with its matrices): made here, not by a run.
  chainVit.interpolatedPosEmbed(15, 16);
  return normal([1, 210, 224, 3]);
}

/** `run` with the LayerNorm kernels summing each row over one subgroup (FLASHDEPTH_LAYER_NORM_SUMS=subgroup). */
function subgroupRowSums<T>(run: () => T): T {
  return withEnvRestored('FLASHDEPTH_LAYER_NORM_SUMS', () => {
    process.env['FLASHDEPTH_LAYER_NORM_SUMS'] = 'subgroup';
    return run();
  });
}

let seed = 1;
const normal = (shape: number[], std = 1) => tf.randomNormal(shape, 0, std, 'float32', seed++);

/** DEFAULT_TC_ATTENTION_LAYOUT's form in 4 subgroups instead of 12 (lavapipe's 32 KiB of workgroup memory). */
const DEFAULT_FORM_IN_4_SUBGROUPS: TensorCoreAttentionLayout = { ...DEFAULT_TC_ATTENTION_LAYOUT, subgroups: 4 };

const CASES: Case[] = [
  {
    // ViT-S self-attention from a packed qkv: 6 heads of 64, N not a multiple of the 64-row/32-key blocks.
    name: 'flash attention, packed qkv, B=1 N=300 C=384 (6×64)',
    inputs: () => [normal([1, 300, 3 * 384])],
    run: ([qkv]) => selfAttention(qkv as tf.Tensor3D, 6),
  },
  {
    // The 128-row × 16-key block shape that large problems get (flashBlocksFor), forced on a small one.
    name: 'flash attention, packed qkv, B=1 N=300 C=384 (6×64), 128×16 blocks',
    inputs: () => [normal([1, 300, 3 * 384])],
    run: ([qkv]) => (useFusedKernels()
      ? flashAttention(qkv as tf.Tensor3D, qkv as tf.Tensor3D, qkv as tf.Tensor3D, { numHeads: 6, headDim: 64, scale: 0.125, qOffset: 0, kOffset: 384, vOffset: 768, blocks: { q: 128, k: 16 } })
      : selfAttention(qkv as tf.Tensor3D, 6)),
  },
  {
    // Large logits: the online softmax must rescale without overflow.
    name: 'flash attention, packed qkv, B=2 N=97 C=128 (2×64), logits ×8',
    inputs: () => [normal([2, 97, 3 * 128], 4)],
    run: ([qkv]) => selfAttention(qkv as tf.Tensor3D, 2),
  },
  {
    // Hybrid cross-attention: separate q and k/v, Lq ≠ Lk, head dim 32.
    name: 'flash attention, cross, B=2 Lq=77 Lk=45 C=64 (2×32)',
    inputs: () => [normal([2, 77, 64]), normal([2, 45, 64]), normal([2, 45, 64])],
    run: ([q, k, v]) => scaledDotProductAttention(q!, k!, v!, 2),
  },
  {
    name: 'flash attention, cross, B=1 Lq=5 Lk=1 C=16 (1×16), explicit scale',
    inputs: () => [normal([1, 5, 16]), normal([1, 1, 16]), normal([1, 1, 16])],
    run: ([q, k, v]) => scaledDotProductAttention(q!, k!, v!, 1, { scale: 0.3 }),
  },
  {
    name: 'layerNorm, [1, 257, 384], eps 1e-6',
    inputs: () => [tf.add(normal([1, 257, 384], 2), 3), normal([384]), normal([384])],
    run: ([x, w, b]) => layerNorm(x!, w!, b!, 1e-6),
  },
  {
    name: 'layerNorm, [3, 50, 1024], eps 1e-6',
    inputs: () => [normal([3, 50, 1024]), normal([1024]), normal([1024])],
    run: ([x, w, b]) => layerNorm(x!, w!, b!, 1e-6),
  },
  {
    name: 'layerNorm, [70000, 6] (rows fold into y), eps 1e-5',
    inputs: () => [normal([70000, 6]), normal([6]), normal([6])],
    run: ([x, w, b]) => layerNorm(x!, w!, b!, 1e-5),
  },
  {
    name: 'layerNorm, [2, 9, 100] (C not a multiple of 64), eps 1e-5',
    inputs: () => [normal([2, 9, 100]), normal([100]), normal([100])],
    run: ([x, w, b]) => layerNorm(x!, w!, b!, 1e-5),
  },
  {
    name: 'gelu, [1, 300, 1536]',
    inputs: () => [normal([1, 300, 1536], 3)],
    run: ([x]) => gelu(x!),
  },
  {
    // 2^24 + 2^20 vec4-elements … more than 65 535·64 vec4s: the dispatch folds into y.
    name: 'gelu, [4400, 4096] (dispatch folds into y)',
    inputs: () => [normal([4400, 4096])],
    run: ([x]) => gelu(x!),
  },
  {
    name: 'addScaled (LayerScale + residual), [2, 300, 384]',
    inputs: () => [normal([2, 300, 384]), normal([2, 300, 384]), normal([384])],
    run: ([x, y, g]) => addScaled(x!, y!, g!),
  },
  {
    // Up-sampling by a non-integer factor, two images.
    name: 'resize align-corners, [2, 13, 17, 8] → 30×41',
    inputs: () => [normal([2, 13, 17, 8])],
    run: ([x]) => resizeAlignCorners(x as tf.Tensor4D, 30, 41),
  },
  {
    // Down-sampling, and a one-pixel-high output (no align-corners adjustment on that side).
    name: 'resize align-corners, [1, 37, 37, 12] → 19×19 and → 1×5',
    inputs: () => [normal([1, 37, 37, 12])],
    run: ([x]) => tf.concat([tf.reshape(resizeAlignCorners(x as tf.Tensor4D, 19, 19), [-1]), tf.reshape(resizeAlignCorners(x as tf.Tensor4D, 1, 5), [-1])]),
  },
  {
    // The DPT's ×4 path size at 518² (87 616 workgroups: the dispatch folds into y).
    name: 'resize align-corners, [1, 74, 74, 256] → 296×296 (dispatch folds into y)',
    inputs: () => [normal([1, 74, 74, 256])],
    run: ([x]) => resizeAlignCorners(x as tf.Tensor4D, 296, 296),
  },
  {
    // ViT-S MLP fc1 at 518²: 1370 tokens (not a multiple of the 128-row tile), bias and GELU in the epilogue.
    name: 'mixed linear + bias + gelu, [1370, 384] · [384, 1536]',
    precision: 'mixed',
    inputs: () => [normal([1, 1370, 384]), normal([384, 1536], 0.05), normal([1536])],
    run: ([x, w, b]) => linear(x!, w!, b!, { activation: 'gelu' }),
  },
  {
    name: 'mixed linear + bias + LayerScale residual, [2, 300, 384] · [384, 384]',
    precision: 'mixed',
    inputs: () => [normal([2, 300, 384]), normal([384, 384], 0.05), normal([384]), normal([2, 300, 384]), normal([384])],
    run: ([x, w, b, r, g]) => linear(x!, w!, b!, { residual: { x: r!, gamma: g! } }),
  },
  {
    // No bias, K not a multiple of the 32-deep k-tile, N not a multiple of 16.
    name: 'mixed linear, no bias, [77, 52] · [52, 20]',
    precision: 'mixed',
    inputs: () => [normal([77, 52]), normal([52, 20])],
    run: ([x, w]) => linear(x!, w!),
  },
  {
    // 3×3 conv as an implicit GEMM: odd image sides (zero padding at every edge), bias and ReLU in the epilogue.
    name: 'mixed conv 3×3 + bias + relu, [1, 37, 45, 64] → 48',
    precision: 'mixed',
    inputs: () => [normal([1, 37, 45, 64]), normal([3, 3, 64, 48], 0.05), normal([48])],
    run: ([x, w, b]) => conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b!, 1, 1, { activation: 'relu' }),
  },
  {
    // Two images (rows of the product cross image boundaries), no bias, Cout not a multiple of 16.
    name: 'mixed conv 3×3, no bias, [2, 20, 23, 32] → 36',
    precision: 'mixed',
    inputs: () => [normal([2, 20, 23, 32]), normal([3, 3, 32, 36], 0.05)],
    run: ([x, w]) => conv2d(x as tf.Tensor4D, w as tf.Tensor4D, undefined, 1, 1),
  },
  {
    // Stride 2 (the ViT-L/Full reassemble's down-sampling): odd sides, so the last output row and column read a
    // padded edge; two images.
    name: 'mixed conv 3×3 stride 2 + bias, [2, 19, 13, 32] → 40',
    precision: 'mixed',
    inputs: () => [normal([2, 19, 13, 32]), normal([3, 3, 32, 40], 0.05), normal([40])],
    run: ([x, w, b]) => conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b!, 2, 1),
  },
  {
    name: 'mixed conv 1×1 + bias, [1, 30, 30, 96] → 256',
    precision: 'mixed',
    inputs: () => [normal([1, 30, 30, 96]), normal([1, 1, 96, 256], 0.05), normal([256])],
    run: ([x, w, b]) => conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b!, 1, 0),
  },
  {
    // The DPT's ×4 up-sampling: the filter [4, 4, out, in] packed transposed (K = 64 input channels, N = 16·40 = 640).
    name: 'mixed conv-transpose ×4 + bias, [1, 9, 11, 64] → 40',
    precision: 'mixed',
    inputs: () => [normal([1, 9, 11, 64]), normal([4, 4, 40, 64], 0.05), normal([40])],
    run: ([x, w, b]) => convTransposeNoOverlap(x as tf.Tensor4D, w as tf.Tensor4D, b!, 4),
  },
  {
    // Tensor-core attention: N = 300 is neither a multiple of the 128 query rows of a workgroup nor of the 32-key block.
    name: 'mixed attention, packed qkv, B=1 N=300 C=384 (6×64)',
    precision: 'mixed',
    inputs: () => [normal([1, 300, 3 * 384])],
    run: ([qkv]) => tcOr(qkv!, qkv!, qkv!, 6, 64, [0, 384, 768], () => selfAttention(qkv as tf.Tensor3D, 6)),
  },
  {
    // Large logits (std ≈ 25 at the end): maxima rise block after block, so the lazy rescale (threshold 8 in log2
    // units) must trigger. (With std-4 inputs, logits of std ≈ 100, f16 rounding of q and k alone costs 5.5e-3.)
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), logits ×4, rising',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => twoHeadAttention(qkv!),
  },
  {
    // The other layout: 1 tile per subgroup, 16-key blocks (13 blocks, the last one 5 keys wide), rising logits.
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), 1 tile per subgroup, 16-key blocks',
    precision: 'mixed',
    inputs: () => [risingQkv(3)],
    run: ([qkv]) => twoHeadAttention(qkv!, { subgroups: 4, tiles: 1, blockK: 16 }),
  },
  {
    name: 'mixed attention, cross, B=2 Lq=77 Lk=45 C=64 (2×32)',
    precision: 'mixed',
    inputs: () => [normal([2, 77, 64]), normal([2, 45, 64]), normal([2, 45, 64])],
    run: ([q, k, v]) => tcOr(q!, k!, v!, 2, 32, [0, 0, 0], () => scaledDotProductAttention(q!, k!, v!, 2)),
  },
  // Cases added later come last, so that the inputs (seeded in order) of the cases above stay as they were.
  {
    // DINOv2's pre-norm: the LayerNorm runs in the dispatch that packs A (rows past 1370 and columns past K zero).
    name: 'mixed LayerNorm + linear + bias + gelu, [1370, 384] · [384, 1536]',
    precision: 'mixed',
    inputs: () => [normal([1, 1370, 384], 2), normal([384]), normal([384]), normal([384, 1536], 0.05), normal([1536])],
    run: ([x, g, be, w, b]) => linear(x!, w!, b!, { layerNorm: { weight: g!, bias: be!, eps: 1e-6 }, activation: 'gelu' }),
  },
  {
    // K = 52 (26 half pairs of 32 padded ones per row), 77 rows of 80 padded.
    name: 'mixed LayerNorm + linear, no bias, [77, 52] · [52, 20]',
    precision: 'mixed',
    inputs: () => [normal([77, 52]), normal([52]), normal([52]), normal([52, 20])],
    run: ([x, g, be, w]) => linear(x!, w!, undefined, { layerNorm: { weight: g!, bias: be!, eps: 1e-5 } }),
  },
  {
    // DINOv2's MLP branch: LayerNorm → fc1 + GELU, written as fc2's packed f16 operand → fc2 + LayerScale residual.
    name: 'mixed MLP (LayerNorm, fc1 + GELU → f16 → fc2 + LayerScale residual), [2, 300, 384] → 1536 → 384',
    precision: 'mixed',
    inputs: () => [normal([2, 300, 384], 2), normal([384]), normal([384]), normal([384, 1536], 0.05), normal([1536]), normal([1536, 384], 0.05), normal([384]), normal([2, 300, 384]), normal([384])],
    run: ([x, g, be, w1, b1, w2, b2, r, ls]) => mlp(x!, { fc1: { weight: w1!, bias: b1! }, fc2: { weight: w2!, bias: b2! } },
      { layerNorm: { weight: g!, bias: be!, eps: 1e-6 }, residual: { x: r!, gamma: ls! } }),
  },
  {
    // 77 rows (80 padded, the padded rows of the hidden operand never written), hidden 64, N = 20; no norm, no residual.
    name: 'mixed MLP, [77, 52] → 64 → 20',
    precision: 'mixed',
    inputs: () => [normal([77, 52]), normal([52, 64], 0.1), normal([64]), normal([64, 20], 0.1), normal([20])],
    run: ([x, w1, b1, w2, b2]) => mlp(x!, { fc1: { weight: w1!, bias: b1! }, fc2: { weight: w2!, bias: b2! } }),
  },
  {
    // 8 subgroups (session 10's default count on the H100) with one K/V buffer, 16-key blocks and the accumulators'
    // round trips in column halves: every staging knob off its default, in 29 KiB (software Vulkan allows 32); rising
    // logits.
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), 8 subgroups, 1 K/V buffer, O in halves',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => twoHeadAttention(qkv!, { subgroups: 8, tiles: 1, blockK: 16, kvBuffers: 1, oSplit: 2 }),
  },
  {
    // 64-deep slices, one buffer: K = 96 is padded to 96, so the second slice is half zeros past K.
    name: 'mixed matMul, 64-deep slices, one buffer, [200, 96] · [96, 72] + bias',
    precision: 'mixed',
    inputs: () => [normal([200, 96]), normal([96, 72], 0.1), normal([72])],
    run: ([x, w, b]) => tcMatMulOr(x!, w!, b!, { ...SMALL_TC_MATMUL_LAYOUT, sliceK: 64, buffers: 1 }),
  },
  {
    name: 'mixed matMul, 16-deep slices, [130, 160] · [160, 200] + bias',
    precision: 'mixed',
    inputs: () => [normal([130, 160]), normal([160, 200], 0.1), normal([200])],
    run: ([x, w, b]) => tcMatMulOr(x!, w!, b!, { ...SMALL_TC_MATMUL_LAYOUT, sliceK: 16 }),
  },
  {
    // Split K: 12 slices over 3 workgroups per block, partials summed by the reduction with bias and LayerScale
    // residual; 150 rows (160 padded, one 128-row block short).
    name: 'mixed matMul, K split in 3, [150, 384] · [384, 128] + bias + LayerScale residual',
    precision: 'mixed',
    inputs: () => [normal([150, 384]), normal([384, 128], 0.05), normal([128]), normal([150, 128]), normal([128])],
    run: ([x, w, b, r, g]) => tcMatMulOr(x!, w!, b!, { ...SINGLE_BUFFERED_TC_MATMUL_LAYOUT, splitK: 3 }, { x: r!, gamma: g! }),
  },
  {
    // FLASHDEPTH_TC_MATMUL_WAVES=fit's 144-row block (3 × 2 subgroups of 3 × 4 tiles; one buffer, for software
    // Vulkan's 32 KiB): 576 A units and 512 B units per slice over 192 invocations (the B share not whole); 300 rows
    // (3 blocks, the last 12 rows), 160 columns (the second block 32 wide).
    name: 'mixed matMul, 144-row blocks (6 subgroups of 48×64), [300, 256] · [256, 160] + bias + LayerScale residual',
    precision: 'mixed',
    inputs: () => [normal([300, 256]), normal([256, 160], 0.05), normal([160]), normal([300, 160]), normal([160])],
    run: ([x, w, b, r, g]) => tcMatMulOr(x!, w!, b!, { ...WAVE_FITTED_TC_MATMUL_LAYOUTS[0]!, buffers: 1 }, { x: r!, gamma: g! }),
  },
  {
    // FLASHDEPTH_TC_MATMUL_SUBGROUPS=many's form of the 144-row block: 3 × 4 subgroups of 3 × 2 tiles (48×32), one
    // buffer (32 512 bytes: it just fits software Vulkan's 32 KiB); 384 invocations share 576 A and 512 B units per
    // slice; 300 rows, 160 columns (the second block 32 wide: two of its four subgroup columns past N).
    name: 'mixed matMul, 144-row blocks (12 subgroups of 48×32), [300, 256] · [256, 160] + bias + LayerScale residual',
    precision: 'mixed',
    inputs: () => [normal([300, 256]), normal([256, 160], 0.05), normal([160]), normal([300, 160]), normal([160])],
    run: ([x, w, b, r, g]) => tcMatMulOr(x!, w!, b!, withMoreSubgroups(WAVE_FITTED_TC_MATMUL_LAYOUTS[0]!, 32768), { x: r!, gamma: g! }),
  },
  {
    // Its 96-row block (3 × 2 subgroups of 2 × 4 tiles): 250 rows in 3 blocks (the last 58), K = 96 in 3 slices.
    name: 'mixed matMul, 96-row blocks (6 subgroups of 32×64), [250, 96] · [96, 136] + bias',
    precision: 'mixed',
    inputs: () => [normal([250, 96]), normal([96, 136], 0.1), normal([136])],
    run: ([x, w, b]) => tcMatMulOr(x!, w!, b!, { ...WAVE_FITTED_TC_MATMUL_LAYOUTS[1]!, buffers: 1 }),
  },
  {
    // fc1 (100 rows, 2 blocks of 128 columns, K = 512) takes split K by itself: its reduction runs GELU and writes
    // fc2's packed f16 operand.
    name: 'mixed MLP, fc1 split by the default layout, [100, 512] → 256 → 64',
    precision: 'mixed',
    inputs: () => [normal([100, 512]), normal([512, 256], 0.05), normal([256]), normal([256, 64], 0.05), normal([64])],
    run: ([x, w1, b1, w2, b2]) => mlp(x!, { fc1: { weight: w1!, bias: b1! }, fc2: { weight: w2!, bias: b2! } }),
  },
  {
    // Cout = 32 (the DPT head's output_conv2): one column of 128-wide blocks, three quarters padding.
    name: 'mixed conv 3×3 + bias + relu, [1, 37, 45, 64] → 32',
    precision: 'mixed',
    inputs: () => [normal([1, 37, 45, 64]), normal([3, 3, 64, 32], 0.05), normal([32])],
    run: ([x, w, b]) => conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b!, 1, 1, { activation: 'relu' }),
  },
  {
    // The same in the narrow 128×32 block, 8 subgroups of one 16-row tile pair each (FLASHDEPTH_TC_CONV_BLOCK=narrow,
    // the default where a grid fills two waves; this one does not), single-buffered here: double-buffered it needs 33
    // KiB, over software Vulkan's 32.
    name: 'mixed conv 3×3 + bias + relu, [1, 37, 45, 64] → 32, narrow block',
    precision: 'mixed',
    inputs: () => [normal([1, 37, 45, 64]), normal([3, 3, 64, 32], 0.05), normal([32])],
    run: ([x, w, b]) => useTensorCores()
      ? tensorCoreConv3x3(x as tf.Tensor4D, w as tf.Tensor4D, b!, true, 1, { ...narrowConvBlock(32), buffers: 1 })
      : conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b!, 1, 1, { activation: 'relu' }),
  },
  {
    // The narrow block as the models run it, double-buffered: 16 channels (128×16, 31 KiB) fit software Vulkan's 32.
    name: 'mixed conv 3×3 + bias + relu, [1, 37, 45, 64] → 16, narrow block double-buffered',
    precision: 'mixed',
    inputs: () => [normal([1, 37, 45, 64]), normal([3, 3, 64, 16], 0.05), normal([16])],
    run: ([x, w, b]) => useTensorCores()
      ? tensorCoreConv3x3(x as tf.Tensor4D, w as tf.Tensor4D, b!, true, 1, narrowConvBlock(16))
      : conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b!, 1, 1, { activation: 'relu' }),
  },
  {
    // Implicit GEMM with K split in 5 (36 slices: 8 each, the last 4), two images.
    name: 'mixed conv 3×3 + bias, K split in 5, [2, 9, 11, 128] → 64',
    precision: 'mixed',
    inputs: () => [normal([2, 9, 11, 128]), normal([3, 3, 128, 64], 0.05), normal([64])],
    run: ([x, w, b]) => useTensorCores()
      ? tensorCoreConv3x3(x as tf.Tensor4D, w as tf.Tensor4D, b!, false, 1, { ...SINGLE_BUFFERED_TC_MATMUL_LAYOUT, splitK: 5 })
      : conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b!, 1, 1),
  },
  {
    // The fallback that orders each subgroup's scratch round trips with workgroup barriers and decides the rescale
    // for the whole workgroup (the default relies on the subgroup's program order); rising logits.
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), scratch ordered by workgroup barriers',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => twoHeadAttention(qkv!, { subgroups: 4, tiles: 1, blockK: 32, kvBuffers: 1, oSplit: 2, scratchSync: 'workgroup' }),
  },
  {
    // Cin = 48 (ViT-S's DPT at its finest level): 16-byte units of 8 channels, taps straddling the 32-deep slices, K =
    // 432 padded to 448 (the last units past the 9 taps).
    name: 'mixed conv 3×3 + bias, Cin 48, [1, 21, 26, 48] → 64',
    precision: 'mixed',
    inputs: () => [normal([1, 21, 26, 48]), normal([3, 3, 48, 64], 0.05), normal([64])],
    run: ([x, w, b]) => conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b!, 1, 1),
  },
  {
    // The depth head's output_conv2[2]: 32 channels → 1, bias (its ReLU is applied after headPreRelu).
    name: 'pointwise conv 1×1 + bias, [2, 19, 23, 32] → 1',
    inputs: () => [normal([2, 19, 23, 32]), normal([1, 1, 32, 1], 0.2), normal([1])],
    run: ([x, w, b]) => conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b!),
  },
  {
    name: 'pointwise conv 1×1 + bias + relu, [1, 7, 9, 12] → 3',
    inputs: () => [normal([1, 7, 9, 12]), normal([1, 1, 12, 3], 0.3), normal([3])],
    run: ([x, w, b]) => conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b!, 1, 0, { activation: 'relu' }),
  },
  {
    // The default layout's staging on 4 subgroups (26 KiB): 64 keys per barrier in one buffer, scored in four 16-key
    // blocks (stageK) — the last stage (keys 192–255 of 197) runs one block and skips three — and the accumulators'
    // round trips in 16-column quarters; rising logits.
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), 64-key stages of 16-key blocks, O in quarters',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => twoHeadAttention(qkv!, { subgroups: 4, tiles: 1, blockK: 16, stageK: 64, kvBuffers: 1, oSplit: 4 }),
  },
  {
    // DINOv2's attention branch with f16 between its three dispatches (session 12): the qkv product writes packed
    // token rows, the attention reads Q, K, V from them (batch 1's rows start at 250, mid-block) and writes the
    // projection's packed operand; keys past 250 in the last block are the next sequence's rows or unwritten padding.
    name: 'mixed self-attention branch (LayerNorm → qkv → f16 → attention → f16 → proj + LayerScale residual), [2, 250, 128] (2×64)',
    precision: 'mixed',
    inputs: () => [normal([2, 250, 128], 2), normal([128]), normal([128]), normal([128, 384], 0.15), normal([384]), normal([128, 128], 0.1), normal([128]), normal([2, 250, 128]), normal([128])],
    run: ([x, g, be, wq, bq, wp, bp, r, ls]) => attentionBranch(x!, 2, { weight: wq!, bias: bq! }, { weight: wp!, bias: bp! }, { weight: g!, bias: be!, eps: 1e-6 }, { x: r!, gamma: ls! }),
  },
  {
    // The stage's four 16-key blocks unrolled, each block's scores issued beside the previous one's P·V; 197 keys: the
    // last stage (192–255) has three blocks past the keys, scored as masked zeros. Rising logits (rescales).
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), 64-key stages pipelined',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => twoHeadAttention(qkv!, { subgroups: 4, tiles: 1, blockK: 16, stageK: 64, kvBuffers: 1, oSplit: 4, pipelined: true }),
  },
  {
    name: 'mixed ViT blocks chained (fc2\'s split-K reduction writes the next block\'s norm1 packed; the unsplit projection\'s norm2 packed in its call), 3 blocks of [1, 241, 128] (2×64)',
    precision: 'mixed',
    inputs: () => [chainedVitImage()],
    run: ([image]) => tf.concat(chainVit!.getIntermediateLayers(image as tf.Tensor4D), 1),
    dispose: () => {
      chainVit?.dispose();
      chainVit = null;
    },
  },
  {
    // Heads of 32, no norm, no residual, 100 rows (112 packed): with 32-key stages the last one reads keys 96–127,
    // past the packed rows (clamped and masked).
    name: 'mixed self-attention branch, [1, 100, 64] (2×32)',
    precision: 'mixed',
    inputs: () => [normal([1, 100, 64]), normal([64, 192], 0.2), normal([192]), normal([64, 64], 0.1), normal([64])],
    run: ([x, wq, bq, wp, bp]) => attentionBranch(x!, 2, { weight: wq!, bias: bq! }, { weight: wp!, bias: bp! }),
  },
  {
    // Two query tiles per subgroup (each K/V matrix from workgroup memory serves 32 rows) with 32-key stages of 16-key
    // blocks in one buffer: 128 rows per workgroup of 4 subgroups, 197 keys (the last stage one block); rising logits.
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), 2 tiles per subgroup, 32-key stages',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => twoHeadAttention(qkv!, { subgroups: 4, tiles: 2, blockK: 16, stageK: 32, kvBuffers: 1, oSplit: 4 }),
  },
  {
    // FLASHDEPTH_ATTENTION_WAVES=fit's form (9 subgroups of 2 tiles, 32-key stages: 45 KiB, beyond software Vulkan)
    // in 3 subgroups: an odd count, 96 rows per workgroup (197 queries: 3 workgroups, the last 5 rows), the stage's 512
    // K/V units over 96 invocations (5⅓ each: the last share guarded).
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), 3 subgroups of 2 tiles, 32-key stages',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => twoHeadAttention(qkv!, { subgroups: 3, tiles: 2, blockK: 16, stageK: 32, kvBuffers: 1, oSplit: 4 }),
  },
  {
    // Three query tiles per subgroup (each K/V matrix from workgroup memory serves 48 rows; the lease's 6,3,16,1,4,32
    // in 2 subgroups): 96 rows per workgroup (197 queries: the last workgroup's second subgroup past them), 32-key stages.
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), 2 subgroups of 3 tiles, 32-key stages',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => twoHeadAttention(qkv!, { subgroups: 2, tiles: 3, blockK: 16, stageK: 32, kvBuffers: 1, oSplit: 4 }),
  },
  {
    // Every block's scores masked against lk (FLASHDEPTH_ATTENTION_MASKING=every, sessions 5–18; the other cases take
    // the default, only the block that crosses lk): the default's staging, rising logits (rescales).
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), 64-key stages of 16-key blocks, every block masked',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => twoHeadAttention(qkv!, { subgroups: 4, tiles: 1, blockK: 16, stageK: 64, kvBuffers: 1, oSplit: 4, masking: 'every' }),
  },
  {
    // The softmax of sessions 5–17 (FLASHDEPTH_ATTENTION_SOFTMAX=scalar; the other cases take the default, vec4s):
    // columns quad + 4i one float at a time, each P one f16 store; the default's staging (64-key stages of 16-key
    // blocks, O in quarters); rising logits (rescales).
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), 64-key stages of 16-key blocks, softmax scalar',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => twoHeadAttention(qkv!, { subgroups: 4, tiles: 1, blockK: 16, stageK: 64, kvBuffers: 1, oSplit: 4, softmax: 'scalar' }),
  },
  {
    // The same with the scores read as single floats (FLASHDEPTH_ATTENTION_SOFTMAX=packed), 32-key blocks (two vec4s
    // per row share; the last block of 197 keys masked from column 5) and the accumulators' round trips whole (16
    // vec4s per row, four per invocation).
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), 32-key blocks, O whole, softmax packed',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => twoHeadAttention(qkv!, { subgroups: 4, tiles: 1, blockK: 32, kvBuffers: 1, oSplit: 1, softmax: 'packed' }),
  },
  {
    // The chained branch with the scalar softmax (the other branch cases write the projection's operand from vec4s).
    // Inputs of std 1: with no LayerNorm before qkv, std 2 gave logits large enough that the f16 rounding of q and k
    // alone came to 4.3e-3–5.6e-3 of max|ref| depending on the seed (the cases' seeds follow their order).
    name: 'mixed self-attention branch, softmax scalar, [2, 250, 128] (2×64)',
    precision: 'mixed',
    inputs: () => [normal([2, 250, 128]), normal([128, 384], 0.15), normal([384]), normal([128, 128], 0.1), normal([128])],
    run: ([x, wq, bq, wp, bp]) => withEnvRestored('FLASHDEPTH_ATTENTION_SOFTMAX', () => {
      process.env['FLASHDEPTH_ATTENTION_SOFTMAX'] = 'scalar';
      return attentionBranch(x!, 2, { weight: wq!, bias: bq! }, { weight: wp!, bias: bp! });
    }),
  },
  // The LayerNorm kernels with each row summed over one subgroup (lavapipe's 8 lanes: 8 rows per workgroup), the
  // plain LayerNorm, its packing form and the split-K reduction's: row counts that leave a workgroup's rows unfilled.
  {
    name: 'layerNorm, [2, 131, 384], rows summed by subgroups, eps 1e-6',
    inputs: () => [tf.add(normal([2, 131, 384], 2), 3), normal([384]), normal([384])],
    run: ([x, w, b]) => subgroupRowSums(() => layerNorm(x!, w!, b!, 1e-6)),
  },
  {
    name: 'layerNorm, [2, 9, 100] (C not a multiple of the lanes), rows summed by subgroups, eps 1e-5',
    inputs: () => [normal([2, 9, 100]), normal([100]), normal([100])],
    run: ([x, w, b]) => subgroupRowSums(() => layerNorm(x!, w!, b!, 1e-5)),
  },
  {
    name: 'mixed LayerNorm + linear, no bias, [77, 52] · [52, 20], rows summed by subgroups',
    precision: 'mixed',
    inputs: () => [normal([77, 52]), normal([52]), normal([52]), normal([52, 20])],
    run: ([x, g, be, w]) => subgroupRowSums(() => linear(x!, w!, undefined, { layerNorm: { weight: g!, bias: be!, eps: 1e-5 } })),
  },
  {
    name: 'mixed ViT blocks chained, rows of the LayerNorms summed by subgroups, 3 blocks of [1, 241, 128] (2×64)',
    precision: 'mixed',
    inputs: () => [chainedVitImage()],
    run: ([image]) => subgroupRowSums(() => tf.concat(chainVit!.getIntermediateLayers(image as tf.Tensor4D), 1)),
    dispose: () => {
      chainVit?.dispose();
      chainVit = null;
    },
  },
  // Last in the list, so that the cases above keep their seeds. The spread banks' row orders (softmaxRowOrder) with
  // dense P rows and P's exponentials in f16, then with padded P rows in 32-key blocks; rising logits (rescales).
  {
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), 32-key stages of 16-key blocks, spread banks, dense P, exp2 in f16',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => twoHeadAttention(qkv!, { subgroups: 4, tiles: 1, blockK: 16, stageK: 32, kvBuffers: 1, oSplit: 4, spreadBanks: true, denseP: true, exp2F16: true }),
  },
  {
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), 32-key blocks, spread banks',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => twoHeadAttention(qkv!, { subgroups: 4, tiles: 1, blockK: 32, kvBuffers: 1, oSplit: 4, spreadBanks: true }),
  },
  {
    // A ResidualConvUnit's second half in one product: ReLU of the input while packing it to f16, the skip added in
    // the epilogue (the narrow block, double-buffered as the models run it).
    name: 'mixed conv 3×3 + bias of ReLU(x) + residual, [1, 37, 45, 16] → 16, narrow block',
    precision: 'mixed',
    inputs: () => [normal([1, 37, 45, 16]), normal([3, 3, 16, 16], 0.1), normal([16]), normal([1, 37, 45, 16])],
    run: ([x, w, b, r]) => useTensorCores()
      ? tensorCoreConv3x3(x as tf.Tensor4D, w as tf.Tensor4D, b!, false, 1, narrowConvBlock(16), { reluInput: true, residual: r as tf.Tensor4D })
      : conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b!, 1, 1, { reluInput: true, residual: r as tf.Tensor4D }),
  },
  {
    // The epilogue's scratch ordered by each subgroup's program order (FLASHDEPTH_TC_MATMUL_EPILOGUE_SYNC=subgroup):
    // a barrier under the emulation, so this checks the generated code, not the ordering (only the card does).
    name: 'mixed matMul, epilogue ordered by subgroups, [300, 256] · [256, 160] + bias + LayerScale residual',
    precision: 'mixed',
    inputs: () => [normal([300, 256]), normal([256, 160], 0.1), normal([160]), normal([300, 160]), normal([160], 0.5)],
    run: ([x, w, b, r, g]) => tcMatMulOr(x!, w!, b!, { ...SMALL_TC_MATMUL_LAYOUT, epilogueSync: 'subgroup' }, { x: r!, gamma: g! }),
  },
  // The ViT's final norm of its patch tokens: each sequence's first token (CLS) left out in the same dispatch.
  {
    name: 'layerNorm of the tokens after each sequence\'s first, [2, 131, 384] → [2, 130, 384], eps 1e-6',
    inputs: () => [tf.add(normal([2, 131, 384], 2), 3), normal([384]), normal([384])],
    run: ([x, w, b]) => layerNormDroppingFirst(x as tf.Tensor3D, w!, b!, 1e-6),
  },
  {
    name: 'layerNorm of the tokens after each sequence\'s first, [3, 9, 100] → [3, 8, 100], rows summed by subgroups, eps 1e-5',
    inputs: () => [normal([3, 9, 100]), normal([100]), normal([100])],
    run: ([x, w, b]) => subgroupRowSums(() => layerNormDroppingFirst(x as tf.Tensor3D, w!, b!, 1e-5)),
  },
  {
    // Two workgroup barriers per accumulator tile (FLASHDEPTH_TC_MATMUL_EPILOGUE_SYNC=workgroup, the default until
    // session 21).
    name: 'mixed matMul, epilogue ordered by workgroup barriers, [300, 256] · [256, 160] + bias + LayerScale residual',
    precision: 'mixed',
    inputs: () => [normal([300, 256]), normal([256, 160], 0.1), normal([160]), normal([300, 160]), normal([160], 0.5)],
    run: ([x, w, b, r, g]) => tcMatMulOr(x!, w!, b!, { ...SMALL_TC_MATMUL_LAYOUT, epilogueSync: 'workgroup' }, { x: r!, gamma: g! }),
  },
  {
    // The residual loaded before the tiles' round trips (FLASHDEPTH_TC_MATMUL_RESIDUAL_PREFETCH=on); 300 rows and 136
    // columns, so that the last tiles of both are partly outside C (their units there load and write nothing).
    name: 'mixed matMul, residual prefetched, [300, 256] · [256, 136] + bias + LayerScale residual',
    precision: 'mixed',
    inputs: () => [normal([300, 256]), normal([256, 136], 0.1), normal([136]), normal([300, 136]), normal([136], 0.5)],
    run: ([x, w, b, r, g]) => tcMatMulOr(x!, w!, b!, { ...SMALL_TC_MATMUL_LAYOUT, residualPrefetch: true }, { x: r!, gamma: g! }),
  },
  {
    name: 'mixed conv 3×3 + bias of ReLU(x) + residual, [1, 37, 45, 16] → 16, narrow block, residual prefetched',
    precision: 'mixed',
    inputs: () => [normal([1, 37, 45, 16]), normal([3, 3, 16, 16], 0.1), normal([16]), normal([1, 37, 45, 16])],
    run: ([x, w, b, r]) => useTensorCores()
      ? tensorCoreConv3x3(x as tf.Tensor4D, w as tf.Tensor4D, b!, false, 1, { ...narrowConvBlock(16), residualPrefetch: true }, { reluInput: true, residual: r as tf.Tensor4D })
      : conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b!, 1, 1, { reluInput: true, residual: r as tf.Tensor4D }),
  },
  // Global loads two slices ahead of the multiplies (FLASHDEPTH_TC_MATMUL_LOAD_AHEAD=2): odd and even slice counts,
  // one slice, a split K whose last split has fewer slices, and a convolution's neighbourhoods.
  {
    name: 'mixed matMul, loads two slices ahead, 5 slices, [130, 160] · [160, 200] + bias',
    precision: 'mixed',
    inputs: () => [normal([130, 160]), normal([160, 200], 0.1), normal([200])],
    run: ([x, w, b]) => tcMatMulOr(x!, w!, b!, { ...SMALL_TC_MATMUL_LAYOUT, loadAhead: 2 }),
  },
  {
    name: 'mixed matMul, loads two slices ahead, one slice, [77, 24] · [24, 20] + bias',
    precision: 'mixed',
    inputs: () => [normal([77, 24]), normal([24, 20], 0.2), normal([20])],
    run: ([x, w, b]) => tcMatMulOr(x!, w!, b!, { ...SMALL_TC_MATMUL_LAYOUT, loadAhead: 2 }),
  },
  {
    name: 'mixed matMul, loads two slices ahead, K split in 3 (4, 4 and 3 slices), [150, 352] · [352, 128] + bias + LayerScale residual',
    precision: 'mixed',
    inputs: () => [normal([150, 352]), normal([352, 128], 0.1), normal([128]), normal([150, 128]), normal([128], 0.5)],
    run: ([x, w, b, r, g]) => tcMatMulOr(x!, w!, b!, { ...SMALL_TC_MATMUL_LAYOUT, splitK: 3, loadAhead: 2 }, { x: r!, gamma: g! }),
  },
  {
    name: 'mixed conv 3×3 + bias + relu, [1, 37, 45, 64] → 16, narrow block, loads two slices ahead',
    precision: 'mixed',
    inputs: () => [normal([1, 37, 45, 64]), normal([3, 3, 64, 16], 0.1), normal([16])],
    run: ([x, w, b]) => useTensorCores()
      ? tensorCoreConv3x3(x as tf.Tensor4D, w as tf.Tensor4D, b!, true, 1, { ...narrowConvBlock(16), loadAhead: 2 })
      : conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b!, 1, 1, { activation: 'relu' }),
  },
  // FLASHDEPTH_TC_MATMUL_BIG_BLOCK's blocks (8 subgroups of 64×64): as the model takes them where they fit (36.5 KiB),
  // else in 16-deep slices (24.3 KiB: lavapipe's 32 KiB); rows and columns past C in the last blocks.
  {
    name: 'mixed matMul, big block 256×128, [300, 256] · [256, 160] + bias + LayerScale residual',
    precision: 'mixed',
    inputs: () => [normal([300, 256]), normal([256, 160], 0.1), normal([160]), normal([300, 160]), normal([160], 0.5)],
    run: ([x, w, b, r, g]) => tcMatMulOr(x!, w!, b!, bigBlockThatFits('256x128'), { x: r!, gamma: g! }),
  },
  {
    name: 'mixed matMul, big block 128×256, [270, 96] · [96, 264] + bias',
    precision: 'mixed',
    inputs: () => [normal([270, 96]), normal([96, 264], 0.1), normal([264])],
    run: ([x, w, b]) => tcMatMulOr(x!, w!, b!, bigBlockThatFits('128x256')),
  },
  // FLASHDEPTH_TC_TILE_ELEMENT=u32: the staged tiles as u32 words (subgroup-matrix offsets and strides in words): the
  // matmul's packed and converted A, its loads two slices ahead, a convolution, and the attention's K/V and P tiles
  // (vec4 softmax with spread banks; packed softmax with P's exponentials in f16).
  {
    name: 'mixed matMul, u32 tiles, [300, 256] · [256, 160] + bias + LayerScale residual',
    precision: 'mixed',
    inputs: () => [normal([300, 256]), normal([256, 160], 0.1), normal([160]), normal([300, 160]), normal([160], 0.5)],
    run: ([x, w, b, r, g]) => tcMatMulOr(x!, w!, b!, { ...SMALL_TC_MATMUL_LAYOUT, tileElement: 'u32' }, { x: r!, gamma: g! }),
  },
  {
    name: 'mixed linear, u32 tiles, A converted while staging, [77, 52] · [52, 20] + bias',
    precision: 'mixed',
    inputs: () => [normal([77, 52]), normal([52, 20], 0.2), normal([20])],
    run: ([x, w, b]) => tcMatMulOr(x!, w!, b!, { ...SMALL_TC_MATMUL_LAYOUT, convertA: true, tileElement: 'u32' }),
  },
  {
    name: 'mixed matMul, u32 tiles, loads two slices ahead, 5 slices, [130, 160] · [160, 200] + bias',
    precision: 'mixed',
    inputs: () => [normal([130, 160]), normal([160, 200], 0.1), normal([200])],
    run: ([x, w, b]) => tcMatMulOr(x!, w!, b!, { ...SMALL_TC_MATMUL_LAYOUT, loadAhead: 2, tileElement: 'u32' }),
  },
  {
    name: 'mixed conv 3×3 + bias + relu, [1, 37, 45, 64] → 16, narrow block, u32 tiles',
    precision: 'mixed',
    inputs: () => [normal([1, 37, 45, 64]), normal([3, 3, 64, 16], 0.1), normal([16])],
    run: ([x, w, b]) => useTensorCores()
      ? tensorCoreConv3x3(x as tf.Tensor4D, w as tf.Tensor4D, b!, true, 1, { ...narrowConvBlock(16), tileElement: 'u32' })
      : conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b!, 1, 1, { activation: 'relu' }),
  },
  {
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), u32 tiles, 32-key stages of 16-key blocks, spread banks',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => twoHeadAttention(qkv!, { subgroups: 4, tiles: 1, blockK: 16, stageK: 32, kvBuffers: 1, oSplit: 4, spreadBanks: true, tileElement: 'u32' }),
  },
  {
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), u32 tiles, 32-key blocks, softmax packed, exp2 in f16',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => twoHeadAttention(qkv!, { subgroups: 4, tiles: 1, blockK: 32, kvBuffers: 1, oSplit: 4, softmax: 'packed', exp2F16: true, tileElement: 'u32' }),
  },
  // FLASHDEPTH_TC_MATMUL_SCRATCH=vec4: the epilogue's scratch as vec4<f32> rows of 20 floats (the last tiles of rows
  // and columns partly outside C), with u32 tiles as the models would take both.
  {
    name: 'mixed matMul, vec4 epilogue scratch, u32 tiles, [300, 256] · [256, 136] + bias + LayerScale residual',
    precision: 'mixed',
    inputs: () => [normal([300, 256]), normal([256, 136], 0.1), normal([136]), normal([300, 136]), normal([136], 0.5)],
    run: ([x, w, b, r, g]) => tcMatMulOr(x!, w!, b!, { ...SMALL_TC_MATMUL_LAYOUT, epilogueScratch: 'vec4', tileElement: 'u32' }, { x: r!, gamma: g! }),
  },
  {
    name: 'mixed conv 3×3 + bias of ReLU(x) + residual, [1, 37, 45, 16] → 16, narrow block single-buffered, vec4 epilogue scratch',
    precision: 'mixed',
    inputs: () => [normal([1, 37, 45, 16]), normal([3, 3, 16, 16], 0.1), normal([16]), normal([1, 37, 45, 16])],
    run: ([x, w, b, r]) => useTensorCores()
      ? tensorCoreConv3x3(x as tf.Tensor4D, w as tf.Tensor4D, b!, false, 1, { ...narrowConvBlock(16), buffers: 1, epilogueScratch: 'vec4' }, { reluInput: true, residual: r as tf.Tensor4D })
      : conv2d(x as tf.Tensor4D, w as tf.Tensor4D, b!, 1, 1, { reluInput: true, residual: r as tf.Tensor4D }),
  },
  // FLASHDEPTH_ATTENTION_ROW_MAX=vote: the shuffles for the row maxima only in blocks a subgroup vote sends through
  // them (rising logits, so both branches run on a GPU; the emulation's vote is always true). The same values as the
  // shuffles in every block, to the rounding of l's update: each case returns the vote's output plus 1000 times its
  // difference from the same layout's with shuffles, so a difference beyond a few millionths of max|ref| fails it.
  {
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), row maxima by vote, 16-key stages, spread banks',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => sameAsShuffles(qkv!, { subgroups: 4, tiles: 1, blockK: 16, stageK: 16, kvBuffers: 1, oSplit: 4, spreadBanks: true }),
  },
  {
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), row maxima by vote, 2 subgroups of 3 tiles, 32-key stages, softmax scalar',
    precision: 'mixed',
    inputs: () => [risingQkv(3)],
    run: ([qkv]) => sameAsShuffles(qkv!, { subgroups: 2, tiles: 3, blockK: 16, stageK: 32, kvBuffers: 1, oSplit: 4, softmax: 'scalar' }),
  },
  {
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), row maxima by vote, 32-key blocks, softmax packed, exp2 in f16',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => sameAsShuffles(qkv!, { subgroups: 4, tiles: 1, blockK: 32, kvBuffers: 1, oSplit: 4, softmax: 'packed', exp2F16: true }),
  },
  // The 12-subgroup default's form since session 24 (64-key stages of 16-key blocks, spread banks, row maxima by vote)
  // in 4 subgroups, which fit lavapipe's 32 KiB: ViT-L's heads of 64 and Full's 2-head cross-attention's of 32.
  {
    name: 'mixed attention, packed qkv, B=2 N=197 C=128 (2×64), 64-key stages of 16-key blocks, spread banks, row maxima by vote',
    precision: 'mixed',
    inputs: () => [risingQkv(2)],
    run: ([qkv]) => twoHeadAttention(qkv!, DEFAULT_FORM_IN_4_SUBGROUPS),
  },
  {
    name: 'mixed attention, cross, B=2 Lq=77 Lk=45 C=64 (2×32), 64-key stages of 16-key blocks, spread banks, row maxima by vote',
    precision: 'mixed',
    inputs: () => [normal([2, 77, 64]), normal([2, 45, 64]), normal([2, 45, 64])],
    run: ([q, k, v]) => tcOr(q!, k!, v!, 2, 32, [0, 0, 0], () => scaledDotProductAttention(q!, k!, v!, 2), DEFAULT_FORM_IN_4_SUBGROUPS),
  },
  // Sessions 5–24's epilogue: global reads and stores one float at a time (FLASHDEPTH_TC_MATMUL_EPILOGUE_IO=scalar)
  // and each tile's residual read as it is written (FLASHDEPTH_TC_MATMUL_RESIDUAL_PREFETCH=off; every other case takes
  // the vec4 and prefetch defaults of session 25), in a block whose last tiles are partly outside C.
  {
    name: 'mixed matMul, epilogue I/O by single floats, residual not prefetched, [300, 256] · [256, 136] + bias + LayerScale residual',
    precision: 'mixed',
    inputs: () => [normal([300, 256]), normal([256, 136], 0.1), normal([136]), normal([300, 136]), normal([136], 0.5)],
    run: ([x, w, b, r, g]) => tcMatMulOr(x!, w!, b!, { ...SMALL_TC_MATMUL_LAYOUT, epilogueIo: 'scalar', residualPrefetch: false }, { x: r!, gamma: g! }),
  },
];

/**
 * The tensor-core attention in `layout` with row maxima by vote, plus 1000 times its difference from the same layout
 * with shuffles (the stock ops where tensor cores are not used): within the bound only where the two agree.
 */
function sameAsShuffles(qkv: tf.Tensor, layout: TensorCoreAttentionLayout): tf.Tensor {
  return tf.tidy(() => {
    const voted = twoHeadAttention(qkv, { ...layout, rowMax: 'vote' });
    const shuffled = twoHeadAttention(qkv, layout);
    return tf.add(voted, tf.mul(tf.sub(voted, shuffled), 1000));
  });
}

/** A big matmul block as the model takes it where the device's workgroup memory allows, else in 16-deep slices. */
function bigBlockThatFits(shape: keyof typeof BIG_TC_MATMUL_LAYOUTS): TensorCoreMatMulLayout {
  const layout = BIG_TC_MATMUL_LAYOUTS[shape];
  return tcMatMulWorkgroupBytes(layout) <= webgpuCapabilities().maxWorkgroupStorageBytes ? layout : { ...layout, sliceK: 16 };
}

/** Mamba2 layers with random weights of realistic magnitude (A_log in [0, log 16], dt_bias ±0.1), one per config. */
const mambaLayers = new Map<string, Mamba2>();
function mambaLayer(options: Mamba2Options): Mamba2 {
  const key = JSON.stringify(options);
  let layer = mambaLayers.get(key);
  if (!layer) {
    layer = new Mamba2(options);
    randomizeWeights(layer, 7);
    mambaLayers.set(key, layer);
  }
  return layer;
}

const MAMBA_S: Mamba2Options = { dModel: 64, expand: 4, headdim: 32 }; // 8 heads of 32, N = 256 (FlashDepth-S)
const MAMBA_L: Mamba2Options = { dModel: 256, expand: 2, headdim: 64 }; // 8 heads of 64, N = 256 (FlashDepth-L)

/**
 * Mamba2.forwardFrame (FlashDepthMambaScan between in_proj and out_proj) against the ops path in `reference` form
 * (the kernel ignores the form), one case for the output y and one for the new state. Long frames are checked
 * against the per-token ops recurrence: the chunked form takes exp(cs_t − cs_s) of cumulative sums that reach ~−400
 * at L = 37, which leaves it 8e-6·max|y| from a float64 recurrence where the kernel is within 7e-7 (measured on
 * lavapipe), too close to the bound to test the kernel. L = 37 spans several token blocks and ends in a partial one.
 * Own seeds, so cases added above leave these be.
 */
function mambaCases(label: string, options: Mamba2Options, batch: number, length: number, carried: boolean, reference: ScanForm, seed: number, reduction: ScanReduction = 'auto',
  chunkTokens = 0): Case[] {
  const layer = () => mambaLayer(options);
  const inputs = () => [
    tf.randomNormal([batch, length, options.dModel], 0, 1, 'float32', seed),
    ...(carried ? [tf.randomNormal(layer().ssmStateShape(batch), 0, 2, 'float32', seed + 1)] : []),
  ];
  const frame = ([u, state]: tf.Tensor[]) => {
    setScanReduction(reduction);
    try {
      return withEnvRestored('FLASHDEPTH_MAMBA_CHUNK_TOKENS', () => {
        process.env['FLASHDEPTH_MAMBA_CHUNK_TOKENS'] = String(chunkTokens);
        return layer().forwardFrame(u as tf.Tensor3D, (state ?? null) as tf.Tensor4D | null, reference);
      });
    } finally {
      setScanReduction('auto');
    }
  };
  const sums = reduction === 'workgroup' ? ', row sums in workgroup memory' : '';
  const chunks = chunkTokens > 0 ? `, time chunks of ≤ ${chunkTokens} tokens` : '';
  const name = `mamba ${label}, B=${batch} L=${length}, ${carried ? 'carried state' : 'zero state'}${sums}${chunks}, vs ${reference} ops`;
  return [
    { name: `${name}: y`, inputs, run: (t) => frame(t).y },
    { name: `${name}: new state`, inputs, run: (t) => frame(t).state },
  ];
}

const MAMBA_CASES: Case[] = [
  ...mambaCases('S (8×32, N 256)', MAMBA_S, 2, 37, true, 'recurrent', 9001),
  ...mambaCases('S (8×32, N 256)', MAMBA_S, 2, 9, false, 'chunked', 9011),
  ...mambaCases('L (8×64, N 256)', MAMBA_L, 1, 13, true, 'chunked', 9021),
  ...mambaCases('L (8×64, N 256)', MAMBA_L, 2, 22, true, 'recurrent', 9031, 'workgroup'),
  // Chunked scans (MambaChunkStateProgram first): several chunks, the last one partial, with and without a carried
  // state, with both row sums.
  ...mambaCases('S (8×32, N 256)', MAMBA_S, 2, 37, true, 'recurrent', 9041, 'auto', 8),
  ...mambaCases('S (8×32, N 256)', MAMBA_S, 2, 9, false, 'chunked', 9051, 'auto', 4),
  ...mambaCases('L (8×64, N 256)', MAMBA_L, 2, 22, true, 'recurrent', 9061, 'workgroup', 8),
];

async function runCase(c: Case): Promise<KernelCheckResult | KernelCheckSkip> {
  const precision = c.precision ?? 'fp32';
  if (precision === 'mixed' && !tensorCoresAvailable()) return { name: c.name, skipped: 'no f16 subgroup matrices (tensor cores) on this device' };
  const inputs = c.inputs();
  const runIn = async (mode: KernelMode) => {
    setKernelMode(mode);
    setPrecision(mode === 'fused' ? precision : 'fp32');
    const before = tf.memory().numTensors;
    let out: tf.Tensor | undefined;
    let profile: Awaited<ReturnType<typeof tf.profile>>;
    try {
      profile = await tf.profile(() => {
        out = tf.tidy(() => c.run(inputs));
        return out;
      });
    } catch (profiled) {
      // tfjs' profiler swallows a kernel's own error and fails on the missing outputs ("reading 'map'"), and leaves
      // the engine profiling: stop that and run the case unprofiled for the real error (an explicit layout over the
      // device's workgroup memory names its bytes).
      (tf.engine() as unknown as { state: { profiling: boolean } }).state.profiling = false;
      tf.tidy(() => c.run(inputs));
      throw profiled;
    }
    const values = await out!.data();
    out!.dispose();
    // Weights' f16 copies are cached on purpose (tc-matmul.ts); freeing them must leave nothing behind.
    releasePackedWeights();
    return { values, leaked: tf.memory().numTensors - before, kernels: profile.kernelNames.filter((n) => n.startsWith('FlashDepth')) };
  };
  const fused = await runIn('fused');
  const stock = await runIn('stock');
  tf.dispose(inputs);
  c.dispose?.();
  const { maxAbsErr: maxAbsError, maxAbsRef } = closeness(fused.values as Float32Array, stock.values as Float32Array);
  return { name: c.name, maxAbsError, maxAbsRef, leaked: fused.leaked, kernels: fused.kernels, precision };
}

/** PackHeadsF16Program against a host-side packing of the same inputs (halves decoded on the host). */
export interface PackCheckResult {
  name: string;
  /** max|decoded − f32 source| over all packed halves (padding rows included, expected zero). */
  packError: number;
  maxAbsRef: number;
  halves: number;
  leaked: number;
}

/**
 * Packs q (scaled), k and v of a fused qkv [B, N, 3C] into f16 head planes and compares every half with the f32
 * source: rows past N must be zero, the rest within f16 rounding (2⁻¹¹ relative). Runs anywhere (no f16 needed to pack).
 */
async function packCheck(batch: number, tokens: number, numHeads: number, headDim: number): Promise<PackCheckResult> {
  const c = numHeads * headDim;
  const qkv = normal([batch, tokens, 3 * c], 3);
  const scale = 0.125;
  const planes = packedPlanes(batch, tokens, tokens, numHeads, headDim, 64, 64);
  const before = tf.memory().numTensors;
  const backend = tf.backend() as unknown as WebGPUBackendLike;
  const uniforms = [0, c / 4, (2 * c) / 4].map((o) => ({ type: 'int32' as const, data: [o] }));
  const info = backend.runWebGPUProgram(new PackHeadsF16Program(planes, headDim), [qkv, qkv, qkv], 'int32', [
    ...uniforms, { type: 'float32', data: [scale * Math.LOG2E] }, ...[numHeads, planes.lqPad, planes.lkPad, planes.qUnits, planes.kUnits, planes.totalUnits].map((v) => ({ type: 'int32' as const, data: [v] })),
  ]);
  const packedTensor = tf.engine().makeTensorFromTensorInfo(info);
  const words = (await packedTensor.data()) as Int32Array;
  packedTensor.dispose();
  const leaked = tf.memory().numTensors - before;
  const source = (await qkv.data()) as Float32Array;
  qkv.dispose();
  const halves = float16ToFloat32(new Uint16Array(words.buffer, words.byteOffset, words.length * 2));
  let packError = 0;
  let maxAbsRef = 0;
  const segments = [{ part: 0, rows: planes.lqPad, factor: scale * Math.LOG2E, start: 0 }, { part: 1, rows: planes.lkPad, factor: 1, start: planes.qUnits * 4 }, { part: 2, rows: planes.lkPad, factor: 1, start: (planes.qUnits + planes.kUnits) * 4 }];
  for (const seg of segments) {
    for (let b = 0; b < batch; b++) for (let h = 0; h < numHeads; h++) for (let r = 0; r < seg.rows; r++) for (let d = 0; d < headDim; d++) {
      const expected = r < tokens ? source[(b * tokens + r) * 3 * c + seg.part * c + h * headDim + d]! * seg.factor : 0;
      const got = halves[seg.start + ((b * numHeads + h) * seg.rows + r) * headDim + d]!;
      packError = Math.max(packError, Math.abs(got - expected));
      maxAbsRef = Math.max(maxAbsRef, Math.abs(expected));
    }
  }
  return { name: `f16 head planes (pack), B=${batch} N=${tokens} ${numHeads}×${headDim}`, packError, maxAbsRef, halves: halves.length, leaked };
}

/** The tensor-core matmul's f16 weight copies (tc-matmul.ts `packedWeight`): values, padding and cache behaviour. */
export interface WeightPackResult {
  name: 'f16 weight pack and cache';
  /** max|decoded − f32 source| over the valid halves, and max|source|. */
  packError: number;
  maxAbsRef: number;
  /** Halves in the packed copy, and those in the padding that are not zero. */
  halves: number;
  nonzeroPadding: number;
  /** The same copy for a second use, and for a reshaped view with the same shape (shared data). */
  reused: boolean;
  viewReused: boolean;
  /** A new copy after the variable got new values, and the stale copy freed when it was made. */
  repackedAfterAssign: boolean;
  staleFreed: boolean;
  /** The copy freed by freeStalePackedWeights once its weight is disposed (what FlashDepth.dispose does). */
  freedWithWeight: boolean;
  /** Tensors left after that. */
  leaked: number;
}

/** Runs anywhere: packing needs no f16 shader support. */
async function weightPackCheck(): Promise<WeightPackResult> {
  const [k, n] = [52, 20];
  const before = tf.memory().numTensors;
  const initial = normal([k, n], 2) as tf.Tensor2D;
  const weight = tf.variable(initial);
  initial.dispose();
  const copy = packedWeight(weight);
  const shape = packedB(k, n);
  const words = (await copy.data()) as Int32Array;
  const halves = float16ToFloat32(new Uint16Array(words.buffer, words.byteOffset, words.length * 2));
  const source = (await weight.data()) as Float32Array;
  let packError = 0;
  let maxAbsRef = 0;
  let nonzeroPadding = 0;
  for (let r = 0; r < shape.rowsPad; r++) for (let c = 0; c < shape.colsPad; c++) {
    const got = halves[r * shape.colsPad + c]!;
    if (r < k && c < n) {
      const expected = source[r * n + c]!;
      packError = Math.max(packError, Math.abs(got - expected));
      maxAbsRef = Math.max(maxAbsRef, Math.abs(expected));
    } else if (got !== 0) {
      nonzeroPadding++;
    }
  }
  const reused = packedWeight(weight) === copy;
  const view = tf.reshape(weight, [k, n]) as tf.Tensor2D;
  const viewReused = packedWeight(view) === copy;
  view.dispose();
  const next = normal([k, n], 2) as tf.Tensor2D;
  weight.assign(next);
  next.dispose();
  const repacked = packedWeight(weight);
  const result: WeightPackResult = {
    name: 'f16 weight pack and cache', packError, maxAbsRef, halves: halves.length, nonzeroPadding, reused, viewReused,
    repackedAfterAssign: repacked !== copy, staleFreed: copy.isDisposed, freedWithWeight: false, leaked: 0,
  };
  weight.dispose();
  freeStalePackedWeights();
  result.freedWithWeight = repacked.isDisposed;
  result.leaked = tf.memory().numTensors - before;
  return result;
}

/** Host values uploaded by the backend (src/backend/webgpu-host.ts queue writes), read back through one op each. */
export interface UploadCheckResult {
  name: string;
  uploadMismatches: number;
  checked: number;
}

async function uploadCheck(): Promise<UploadCheckResult> {
  const floats = Float32Array.from({ length: 1001 }, (_, i) => Math.sin(i) * 1000);
  const ints = Int32Array.from({ length: 257 }, (_, i) => ((i * 7919) % 65521) - 30000);
  const bools = Uint8Array.from({ length: 99 }, (_, i) => (i % 3 === 0 ? 1 : 0));
  const outs = tf.tidy(() => [tf.neg(tf.tensor1d(floats)), tf.neg(tf.tensor1d(ints, 'int32')), tf.cast(tf.tensor1d(bools, 'bool'), 'int32')]);
  const [f, n, b] = await Promise.all(outs.map((t) => t.data()));
  tf.dispose(outs);
  let mismatches = 0;
  floats.forEach((v, i) => { if (f![i] !== -v) mismatches++; });
  ints.forEach((v, i) => { if (n![i] !== -v) mismatches++; });
  bools.forEach((v, i) => { if (b![i] !== v) mismatches++; });
  return { name: 'host uploads (float32, int32, bool)', uploadMismatches: mismatches, checked: floats.length + ints.length + bools.length };
}

export interface BindGroupCacheResult {
  name: 'bind group cache';
  created: number;
  reused: number;
}

export interface ParityResult {
  name: string;
  /** max over frames of max|ours − ref| / max|ref| for head_prerelu, per kernel mode. */
  relError: Record<KernelMode, number>;
  kernels: string[];
}

const fixturePath = (...parts: string[]) => join(FIXTURES_DIR, ...parts);

/**
 * Streams `frames` through the model from a zero state (states carried, as in inference) and returns each frame's
 * head output before the ReLU, plus the custom kernels (FlashDepth*) the frames dispatched.
 */
async function streamHeads(model: FlashDepth, frames: readonly tf.Tensor4D[]): Promise<{ heads: Float32Array[]; kernels: string[] }> {
  const heads: Float32Array[] = [];
  const kernels = new Set<string>();
  let states: tf.Tensor4D[] | null = null;
  for (const frame of frames) {
    let result: { head: tf.Tensor; states: tf.Tensor4D[] } | undefined;
    const profile = await tf.profile(() => {
      result = tf.tidy(() => {
        const out = model.forwardFrame(frame, states);
        return { head: out.headPreRelu, states: out.states };
      });
      return [result.head, ...result.states];
    });
    profile.kernelNames.filter((k) => k.startsWith('FlashDepth')).forEach((k) => kernels.add(k));
    heads.push((await result!.head.data()) as Float32Array);
    result!.head.dispose();
    if (states) tf.dispose(states);
    states = result!.states;
  }
  if (states) tf.dispose(states);
  return { heads, kernels: [...kernels].sort() };
}

/** max over frames of max|ours − ref| / max|ref|. */
function worstRelativeError(ours: readonly Float32Array[], ref: readonly Float32Array[]): number {
  return Math.max(...ref.map((r, i) => {
    const c = closeness(ours[i]!, r);
    return c.maxAbsErr / c.maxAbsRef;
  }));
}

/**
 * A parity fixture case streamed on webgpu in both kernel modes (state carried), head_prerelu compared with the
 * PyTorch reference: the custom kernels inside the real model, against the real bound.
 */
async function runParity(name: string, model: FlashDepth, caseDir: string): Promise<ParityResult> {
  const clip = readNpyFloat32(fixturePath('inputs', 'clip_126x224.npy')); // (T, 3, H, W)
  const ref = readNpyFloat32(fixturePath(caseDir, 'head_prerelu.npy')); // (T, H, W)
  const [count, , h, w] = clip.shape as [number, number, number, number];
  const input = tf.transpose(tf.tensor4d(clip.data, clip.shape as [number, number, number, number]), [0, 2, 3, 1]); // NCHW -> NHWC
  const frames = Array.from({ length: count }, (_, i) => tf.slice(input, [i, 0, 0, 0], [1, h, w, 3]) as tf.Tensor4D);
  const refFrames = frames.map((_, i) => ref.data.subarray(i * h * w, (i + 1) * h * w));
  setKernelMode('fused');
  const fused = await streamHeads(model, frames);
  setKernelMode('stock');
  const stock = await streamHeads(model, frames);
  tf.dispose([input, ...frames]);
  return { name, relError: { fused: worstRelativeError(fused.heads, refFrames), stock: worstRelativeError(stock.heads, refFrames) }, kernels: fused.kernels };
}

/**
 * FlashDepth-S on the parity fixture's clip in mixed precision (every tensor-core path the model routes to, the
 * attention branch included) against the PyTorch fp32 reference: the relative error of its depth, and the kernels.
 */
async function mixedParityCase(): Promise<ParityResult | null> {
  if (!existsSync(fixturePath('s_model.pth'))) return null;
  const s = createFlashDepth('s');
  loadFlashDepthWeights(s, fixturePath('s_model.pth'));
  setPrecision('mixed');
  try {
    const r = await runParity('mixed parity FlashDepth-S, case s (3 frames)', s, 's');
    return r;
  } finally {
    setPrecision('fp32');
    s.dispose();
  }
}

async function parityCases(): Promise<ParityResult[]> {
  if (!existsSync(fixturePath('s_model.pth')) || !existsSync(fixturePath('full_extra_model.pth'))) return [];
  const results: ParityResult[] = [];
  const s = createFlashDepth('s');
  loadFlashDepthWeights(s, fixturePath('s_model.pth'));
  results.push(await runParity('parity FlashDepth-S, case s (3 frames)', s, 's'));
  s.dispose();
  const full = createFlashDepth('full', { overrides: FULL_REDUCED_TEACHER_OVERRIDES });
  const source: WeightSource = mergedSource([
    openTorchCheckpoint(fixturePath('s_model.pth')),
    prefixedSource(openTorchCheckpoint(fixturePath('l_reduced_model.pth')), 'teacher_model.', (k) => k.startsWith('mamba.')),
    openTorchCheckpoint(fixturePath('full_extra_model.pth')),
  ]);
  loadFlashDepthWeights(full, source);
  results.push(await runParity('parity FlashDepth Full (reduced teacher), case full (3 frames)', full, 'full'));
  full.dispose();
  return results;
}

export interface ReplayCheckResult {
  name: string;
  frames: number;
  /** The predictor's counts after the first sequence (5 frames of one size). */
  stats: ReplayStats;
  /** max over frames of max|replayed − tfjs| and of max|tfjs| (the same model, reset, run frame by frame). */
  maxAbsDiff: number;
  maxAbsRef: number;
  /** After a reset and a second sequence of another size: recordings made in all, frames replayed in all. */
  recordedAfterResize: number;
  replayedAfterResize: number;
  /** The second sequence against tfjs, as maxAbsDiff. */
  maxAbsDiffAfterResize: number;
  /** Tensors and pinned buffers left once the predictor is disposed and the model reset. */
  leakedTensors: number;
  pinnedAfterDispose: number;
}

export interface FirstUseReplayResult {
  name: string;
  /** The recorded frame's output: 3·x (x: (i mod 13) − 6). */
  maxAbsErr: number;
  /** The error disposing the input after the recording threw, if it did. */
  error: string | null;
  leakedTensors: number;
}

/**
 * A tensor first uploaded to the GPU while a frame records (a host write: a fresh, unpooled buffer, of a size no
 * earlier buffer had), disposed after the recording: tfjs' pool must take its buffer back (before session 22 this
 * threw, its size having no free list). What `kernel-timing.js`'s replayed timings of new programs meet.
 */
async function firstUseReplayCheck(): Promise<FirstUseReplayResult> {
  const before = tf.memory().numTensors;
  const values = Float32Array.from({ length: 4099 }, (_, i) => (i % 13) - 6);
  const x = tf.tensor1d(values);
  let maxAbsErr = Infinity;
  let error: string | null = null;
  try {
    const recorded = RecordedFrame.record({ inputs: [], carried: () => [], run: () => [tf.mul(x, 3)] });
    const out = (await recorded.outputs[0]!.data()) as Float32Array;
    maxAbsErr = Math.max(...Array.from(values, (v, i) => Math.abs(out[i]! - 3 * v)));
    tf.dispose(recorded.outputs);
    recorded.frame?.dispose();
    x.dispose();
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  }
  return { name: 'frame replay: a tensor first uploaded while recording, disposed after', maxAbsErr, error, leakedTensors: tf.memory().numTensors - before };
}

/** Streams `frames` through `predict` from a zero state; returns each depth. */
async function streamDepths(predict: (x: tf.Tensor) => tf.Tensor, frames: readonly tf.Tensor[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const x of frames) {
    const depth = predict(x);
    out.push((await depth.data()) as Float32Array);
    depth.dispose();
  }
  return out;
}

/** max over frames of `closeness`: the largest |ours − ref| and the largest |ref|. */
function worstCloseness(ours: readonly Float32Array[], ref: readonly Float32Array[]): { maxAbsErr: number; maxAbsRef: number } {
  const c = ref.map((r, i) => closeness(ours[i]!, r));
  return { maxAbsErr: Math.max(...c.map((x) => x.maxAbsErr)), maxAbsRef: Math.max(...c.map((x) => x.maxAbsRef)) };
}

/** Tokens per time chunk of the Mamba scan in the chunked replay check: the 70×112 frames' 160 tokens in 3 chunks. */
const REPLAY_SCAN_CHUNK_TOKENS = 64;

/**
 * Recorded-frame replay (src/infer/streaming.ts) against the same model run frame by frame through tfjs, with our
 * kernels: 5 frames (2 warm-up, 1 recorded, 2 replayed), then a reset and 4 frames of another size (recorded again).
 * 's-chunked': S with its Mamba pooling nothing (downsample_mamba 1: 160 and 192 tokens, where the released 0.1 gives
 * these small frames 1 or 2) and the scan in time chunks (FLASHDEPTH_MAMBA_CHUNK_TOKENS), so the chunk-state
 * dispatches are recorded and replayed too.
 */
async function replayCheck(variant: 's' | 's-chunked' | 'full'): Promise<ReplayCheckResult> {
  const chunked = variant === 's-chunked';
  const model = variant === 'full' ? createFlashDepth('full', { overrides: FULL_REDUCED_TEACHER_OVERRIDES })
    : createFlashDepth('s', chunked ? { overrides: ['model.downsample_mamba=[1.0]'] } : {});
  return withEnvRestored('FLASHDEPTH_MAMBA_CHUNK_TOKENS', () => {
    if (chunked) process.env['FLASHDEPTH_MAMBA_CHUNK_TOKENS'] = String(REPLAY_SCAN_CHUNK_TOKENS);
    return replayCheckOf(model, variant === 'full' ? 'Full (reduced teacher)' : chunked ? 'S, Mamba scan in time chunks' : 'S');
  });
}

async function replayCheckOf(model: FlashDepth, label: string): Promise<ReplayCheckResult> {
  randomizeWeights(model, 11);
  setKernelMode('fused');
  const clip = (count: number, h: number, w: number, seed: number) =>
    Array.from({ length: count }, (_, i) => tf.randomNormal([h, w, 3], 0, 1, 'float32', seed + i) as tf.Tensor3D);
  const first = clip(5, 70, 112, 300);
  const second = clip(4, 84, 112, 400);
  const direct = (x: tf.Tensor) => model.predict(x);
  model.resetState();
  const tfjsFirst = await streamDepths(direct, first);
  model.resetState();
  const tfjsSecond = await streamDepths(direct, second);
  model.resetState();
  const tensorsBefore = tf.memory().numTensors;
  const predictor = new StreamingPredictor(model);
  const replayedFirst = await streamDepths((x) => predictor.predict(x), first);
  const stats = predictor.stats;
  predictor.reset();
  const replayedSecond = await streamDepths((x) => predictor.predict(x), second);
  const after = predictor.stats;
  predictor.dispose();
  model.resetState();
  const firstSequence = worstCloseness(replayedFirst, tfjsFirst);
  const result: ReplayCheckResult = {
    name: `frame replay FlashDepth-${label} (random weights)`,
    frames: first.length,
    stats,
    maxAbsDiff: firstSequence.maxAbsErr,
    maxAbsRef: firstSequence.maxAbsRef,
    recordedAfterResize: after.recordedFrames,
    replayedAfterResize: after.replayedFrames,
    maxAbsDiffAfterResize: worstCloseness(replayedSecond, tfjsSecond).maxAbsErr,
    leakedTensors: tf.memory().numTensors - tensorsBefore,
    pinnedAfterDispose: pinnedBufferCount(),
  };
  tf.dispose([...first, ...second]);
  model.dispose();
  return result;
}

export interface MixedModelResult {
  name: string;
  /** max over frames of max|mixed − fp32| / max|fp32| of the depth (head output before ReLU). */
  mixedVsFp32: number;
}

/**
 * The whole model in mixed precision against itself in fp32 (random weights of realistic magnitude, 3 streamed
 * frames at 518×518): the number to hold against the reference's own bf16-vs-fp32 difference (≈1e-2, spec §9).
 */
async function mixedModelCase(variant: 's' | 'l'): Promise<MixedModelResult | null> {
  if (!tensorCoresAvailable()) return null;
  const model = createFlashDepth(variant);
  randomizeWeights(model, 7);
  const frames = [0, 1, 2].map((i) => tf.randomNormal([1, 518, 518, 3], 0, 1, 'float32', 50 + i) as tf.Tensor4D);
  setKernelMode('fused');
  setPrecision('fp32');
  const fp32 = await streamHeads(model, frames);
  setPrecision('mixed');
  const mixed = await streamHeads(model, frames);
  setPrecision('fp32');
  tf.dispose(frames);
  model.dispose();
  const rel = worstRelativeError(mixed.heads, fp32.heads);
  return { name: `mixed model FlashDepth-${variant.toUpperCase()} 518² (random weights, 3 frames) vs fp32`, mixedVsFp32: rel };
}

async function main(): Promise<void> {
  await selectBackend('webgpu');
  if (process.argv.includes('--replay')) {
    // With --emulate-subgroup-matrices (and FLASHDEPTH_PRECISION=mixed), the tensor-core programs are replayed too.
    if (process.argv.includes('--emulate-subgroup-matrices') && !tensorCoresAvailable()) emulateSubgroupMatrices(emulateSubgroupMatrixBuiltins);
    for (const v of ['s', 's-chunked', 'full'] as const) process.stdout.write(JSON.stringify(await replayCheck(v)) + '\n');
    process.stdout.write(JSON.stringify(await firstUseReplayCheck()) + '\n');
    releaseBackend();
    return;
  }
  if (process.argv.includes('--emulate-subgroup-matrices')) {
    // Only the tensor-core cases, with subgroup matrices emulated in plain WGSL where the device has none (lavapipe).
    if (!tensorCoresAvailable()) emulateSubgroupMatrices(emulateSubgroupMatrixBuiltins);
    // --only <text>: just the cases whose name contains it (a quicker check of one kernel family).
    const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] ?? '' : '';
    // On a GPU host the numbers are read from a log: name the cases outside the bound (a shader that did not compile
    // leaves garbage there) on stderr, and exit 1.
    const outside: string[] = [];
    for (const c of CASES.filter((k) => k.precision === 'mixed' && k.name.includes(only))) {
      const r = await runCase(c);
      process.stdout.write(JSON.stringify({ ...r, emulated: true }) + '\n');
      if ('maxAbsError' in r && !(r.maxAbsError <= MIXED_RELATIVE_BOUND * r.maxAbsRef)) outside.push(r.name);
    }
    if (process.argv.includes('--mixed-parity')) process.stdout.write(JSON.stringify({ ...(await mixedParityCase()), emulated: true }) + '\n');
    releaseBackend();
    if (outside.length > 0) {
      process.stderr.write(`error: ${outside.length} tensor-core case(s) outside ${MIXED_RELATIVE_BOUND}·max|ref|: ${outside.join('; ')}\n`);
      process.exitCode = 1;
    }
    return;
  }
  if (process.argv.includes('--mixed-model-only')) {
    // Only the whole models in mixed precision against fp32 (a quick check of a GPU host's tensor-core paths).
    for (const variant of ['s', 'l'] as const) {
      const r = await mixedModelCase(variant);
      if (r) process.stdout.write(JSON.stringify(r) + '\n');
    }
    releaseBackend();
    return;
  }
  for (const c of [...CASES, ...MAMBA_CASES]) process.stdout.write(JSON.stringify(await runCase(c)) + '\n');
  process.stdout.write(JSON.stringify(await packCheck(2, 70, 3, 32)) + '\n');
  process.stdout.write(JSON.stringify(await uploadCheck()) + '\n');
  process.stdout.write(JSON.stringify(await weightPackCheck()) + '\n');
  for (const p of await parityCases()) process.stdout.write(JSON.stringify(p) + '\n');
  // Every case above ran with the bind-group cache on (src/backend/webgpu-host.ts); streamed frames must hit it.
  process.stdout.write(JSON.stringify({ name: 'bind group cache', ...webgpuBindGroupStats() }) + '\n');
  if (process.argv.includes('--mixed-model')) {
    for (const variant of ['s', 'l'] as const) {
      const r = await mixedModelCase(variant);
      if (r) process.stdout.write(JSON.stringify(r) + '\n');
    }
  }
  releaseBackend();
}

await main();
