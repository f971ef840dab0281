/**
 * `mixedMatMul`: the linear-layer op of `--precision mixed` (f16 operands on tensor cores, f32 accumulation), with
 * its shape checks and epilogue choice, over the kernel of ./tc-matmul.ts. Forward only; callers use it only where
 * `useTensorCores()` says so.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';
import { tensorCoreMatMul, tensorCoreMlp, tensorCoreMlpSupports, tensorCoreSelfAttention, tensorCoreSelfAttentionSupports, tidyRows, type LayerNormParams, type NormalizedRows } from './tc-matmul.js';
import type { MatMulEpilogue, TensorCoreMatMulLayout } from './tc-matmul_webgpu.js';
import { attentionBranch } from './mode.js';

/** A LayerScale residual `x + gamma·y` after a product: x [M, N] (any shape of M·N elements), gamma [N]. */
type Residual = { x: tf.Tensor; gamma: tf.Tensor };

export interface MixedMatMulOptions {
  bias?: tf.Tensor;
  /** Applied after the bias: exact GELU or ReLU, or `residual + gamma·y` (DINOv2's LayerScale residual). */
  activation?: 'gelu' | 'relu';
  residual?: Residual;
  /** b is stored as [N, K] (tf.matMul's transposeB): packed transposed once, like any weight. */
  transposeB?: boolean;
  /** Workgroup layout (tuning; default `tensorCoreMatMulLayout`). */
  layout?: TensorCoreMatMulLayout;
  /** LayerNorm of a's rows (weight, bias [K]) before the product, in the dispatch that packs a to f16. */
  layerNorm?: LayerNormParams;
}

/** Whether the kernel takes these sizes: rows of A and B are packed from vec4s. */
export function mixedMatMulSupports(inFeatures: number, outFeatures: number): boolean {
  return inFeatures % 4 === 0 && outFeatures % 4 === 0;
}

/** Whether a LayerNorm before ([K]) and a residual after ([M, N], gamma [N]) fit a product [M, K] → [M, N]. */
function fusionFits(m: number, k: number, n: number, layerNorm: LayerNormParams | undefined, residual: Residual | undefined): boolean {
  return layerNormFits(layerNorm, k) && (residual === undefined || (residual.gamma.size === n && residual.x.size === m * n));
}

function layerNormFits(layerNorm: LayerNormParams | undefined, features: number): boolean {
  return layerNorm === undefined || (layerNorm.weight.size === features && layerNorm.bias.size === features);
}

/**
 * A branch's LayerNorms beyond its first product's prologue: its input's LayerNorm already applied and packed by the
 * product before it, and the LayerNorm after it to apply (in the split-K reduction of its last product, where K is
 * split) and return packed for the product after it (NormalizedRows). A ViT block chains them (DinoBlock).
 */
export interface BranchNorms {
  /** LN(input) as a packed f16 A operand [rows, features] (a previous branch's NormalizedRows.packedNorm); replaces `layerNorm`. */
  packedNorm?: tf.Tensor;
  /** The LayerNorm ([N]) after the branch, whose packed output is returned. */
  normalizeOutput?: LayerNormParams;
}

/** The kernel's residual inputs: x as [M, N], gamma. */
function residualInputs(residual: Residual | undefined, m: number, n: number): { residual?: tf.Tensor; gamma?: tf.Tensor } {
  return residual ? { residual: tf.reshape(residual.x, [m, n]), gamma: residual.gamma } : {};
}

/**
 * a [M, K] (optionally layer-normalised first) · b [K, N] (or bᵀ with b [N, K], `transposeB`) (+ bias [N]) then the
 * optional epilogue → [M, N], with f16 operands and f32 accumulation.
 */
export function mixedMatMul(a: tf.Tensor2D, b: tf.Tensor2D, options: MixedMatMulOptions = {}): tf.Tensor2D {
  const [m, k] = a.shape;
  const { bias, residual, transposeB = false, layerNorm } = options;
  const [bk, n] = transposeB ? [b.shape[1], b.shape[0]] : b.shape;
  if (bk !== k || !mixedMatMulSupports(k, n) || (bias !== undefined && bias.size !== n) || !fusionFits(m, k, n, layerNorm, residual)) {
    throw new ShapeError(`mixedMatMul: expected a [M, K], b [K, N] (${transposeB ? '[N, K] transposed' : 'as stored'}) with K and N multiples of 4, bias/gamma [N] and residual [M, N]; got a [${a.shape.join(', ')}], b [${b.shape.join(', ')}]`
      + `${bias ? `, bias [${bias.shape.join(', ')}]` : ''}${residual ? `, gamma [${residual.gamma.shape.join(', ')}], residual [${residual.x.shape.join(', ')}]` : ''}`
      + `${layerNorm ? `, LayerNorm weight [${layerNorm.weight.shape.join(', ')}] and bias [${layerNorm.bias.shape.join(', ')}] ([K])` : ''}`);
  }
  if (residual && options.activation) throw new ShapeError('mixedMatMul: an activation and a residual cannot be combined');
  const epilogue: MatMulEpilogue = residual ? 'scaleAdd' : options.activation ?? 'none';
  return tensorCoreMatMul({ a, weight: b, transposeWeight: transposeB, bias, layerNorm, ...residualInputs(residual, m, n) }, epilogue, options.layout);
}

export interface MixedMlpOptions {
  fc1: { weight: tf.Tensor2D; bias?: tf.Tensor };
  fc2: { weight: tf.Tensor2D; bias?: tf.Tensor };
  /** LayerNorm of a's rows (weight, bias [K]) before fc1, in the dispatch that packs a to f16. */
  layerNorm?: LayerNormParams;
  /** `residual.x + residual.gamma·y` after fc2. */
  residual?: Residual;
}

/** MixedMlpOptions with the branch's chained LayerNorms. */
export type MixedMlpChainOptions = MixedMlpOptions & BranchNorms;

/** Whether mixedMlp takes these widths (K, hidden, N multiples of 4; hidden also of the 32-deep slice, at least 64). */
export function mixedMlpSupports(inFeatures: number, hidden: number, outFeatures: number): boolean {
  return mixedMatMulSupports(inFeatures, hidden) && mixedMatMulSupports(hidden, outFeatures) && tensorCoreMlpSupports(hidden);
}

/**
 * fc2(GELU(fc1(a))) on tensor cores with the hidden activations kept as f16 between the two products (fc1's epilogue
 * writes fc2's packed operand): a [M, K] → [M, N], optionally layer-normalised first and with a LayerScale residual.
 */
export function mixedMlp(a: tf.Tensor2D, options: MixedMlpOptions): tf.Tensor2D {
  return mixedMlpChain(a, options).y;
}

/** mixedMlp, with LN(a) given packed and/or the LayerNorm after it returned packed (BranchNorms). */
export function mixedMlpChain(a: tf.Tensor2D, options: MixedMlpChainOptions): NormalizedRows {
  const [m, k] = a.shape;
  const { fc1, fc2, layerNorm, residual, packedNorm, normalizeOutput } = options;
  const [k1, hidden] = fc1.weight.shape;
  const [k2, n] = fc2.weight.shape;
  if (k1 !== k || k2 !== hidden || !mixedMlpSupports(k, hidden, n) || (fc1.bias !== undefined && fc1.bias.size !== hidden) || (fc2.bias !== undefined && fc2.bias.size !== n)
    || !fusionFits(m, k, n, layerNorm, residual) || !layerNormFits(normalizeOutput, n)) {
    throw new ShapeError(`mixedMlp: expected a [M, K], fc1 [K, H] + [H], fc2 [H, N] + [N] with K and N multiples of 4 and H of 32 (at least 64), LayerNorm [K], residual [M, N] and gamma [N]; `
      + `got a [${a.shape.join(', ')}], fc1 [${fc1.weight.shape.join(', ')}], fc2 [${fc2.weight.shape.join(', ')}]`);
  }
  return tidyRows(() => tensorCoreMlp({ a, fc1, fc2, layerNorm, packedNorm, normalizeOutput, ...residualInputs(residual, m, n) }));
}

export interface MixedSelfAttentionOptions {
  /** [D, 3D] (columns [q | k | v], each head-major) + [3D]. */
  qkv: { weight: tf.Tensor2D; bias?: tf.Tensor };
  /** [D, D] + [D]. */
  proj: { weight: tf.Tensor2D; bias?: tf.Tensor };
  numHeads: number;
  /** Score scale; default 1/√(D / numHeads). */
  scale?: number;
  /** LayerNorm of x's rows (weight, bias [D]) before the qkv product, in the dispatch that packs x to f16. */
  layerNorm?: LayerNormParams;
  /** `residual.x + residual.gamma·y` after the projection. */
  residual?: Residual;
}

/** MixedSelfAttentionOptions with the branch's chained LayerNorms. */
export type MixedSelfAttentionChainOptions = MixedSelfAttentionOptions & BranchNorms;

/**
 * Whether mixedSelfAttention takes B sequences of N tokens of width D in `numHeads` heads (see
 * tensorCoreSelfAttentionSupports); never with FLASHDEPTH_ATTENTION_BRANCH=separate.
 */
export function mixedSelfAttentionSupports(batch: number, tokens: number, dim: number, numHeads: number): boolean {
  return attentionBranch() === 'chained' && tensorCoreSelfAttentionSupports(batch, tokens, dim, numHeads);
}

/**
 * A ViT attention branch on tensor cores: proj(softmax(q·kᵀ·scale)·v) with q, k, v from qkv(x) (optionally
 * layer-normalised first; + LayerScale residual), x [B, N, D] → [B, N, D]; qkv's output and the attention's stay f16
 * between the three dispatches.
 */
export function mixedSelfAttention(x: tf.Tensor3D, options: MixedSelfAttentionOptions): tf.Tensor3D {
  return mixedSelfAttentionChain(x, options).y;
}

/** mixedSelfAttention, with LN(x) given packed and/or the LayerNorm after it returned packed (BranchNorms). */
export function mixedSelfAttentionChain(x: tf.Tensor3D, options: MixedSelfAttentionChainOptions): NormalizedRows<tf.Tensor3D> {
  const [b, n, d] = x.shape;
  const { qkv, proj, numHeads, layerNorm, residual, packedNorm, normalizeOutput } = options;
  if (qkv.weight.shape[0] !== d || qkv.weight.shape[1] !== 3 * d || proj.weight.shape[0] !== d || proj.weight.shape[1] !== d
    || (qkv.bias !== undefined && qkv.bias.size !== 3 * d) || (proj.bias !== undefined && proj.bias.size !== d)
    || !mixedSelfAttentionSupports(b, n, d, numHeads) || !fusionFits(b * n, d, d, layerNorm, residual) || !layerNormFits(normalizeOutput, d)) {
    throw new ShapeError(`mixedSelfAttention: expected x [B, N, D] with D a multiple of 32 in ${numHeads} heads of a multiple of 16 (at most 64), qkv [D, 3D] + [3D], proj [D, D] + [D], LayerNorm [D], residual [B, N, D] and gamma [D]; `
      + `got x [${x.shape.join(', ')}], qkv [${qkv.weight.shape.join(', ')}], proj [${proj.weight.shape.join(', ')}]`);
  }
  return tidyRows(() => {
    const out = tensorCoreSelfAttention({
      x: tf.reshape(x, [b * n, d]) as tf.Tensor2D, batch: b, layerNorm, packedNorm, normalizeOutput, qkv, proj, numHeads, scale: options.scale ?? 1 / Math.sqrt(d / numHeads),
      ...residualInputs(residual, b * n, d),
    });
    return { y: tf.reshape(out.y, [b, n, d]) as tf.Tensor3D, packedNorm: out.packedNorm };
  });
}
