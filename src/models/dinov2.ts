/**
 * The DINOv2 ViT encoder of Depth Anything V2 / FlashDepth (spec §2.2), with PyTorch parameter names
 * (`pretrained.` is the caller's load prefix: `loadWeights(vit, source, { prefix: 'pretrained.' })`).
 *
 * Public API:
 *  - `new DinoV2(options)` or `createDinoV2('vits' | 'vitl', overrides)`; sizes come from `VIT_SIZES` (variants.ts).
 *  - `getIntermediateLayers(x)`: x is the normalised image, NHWC [B, H, W, 3] with H, W multiples of 14 →
 *    one [B, (H/14)·(W/14), D] tensor per tapped block, after the final `norm`, CLS dropped (raster order).
 *    Pass a `DinoV2Debug` record to also receive the `patch_embed` output and the interpolated position embedding.
 *  - `patchEmbed(x)` → [B, N, D]; `interpolatedPosEmbed(ph, pw)` → [1, 1 + N, D].
 *  - `clearCache()` frees the cached pos-embed interpolation matrices (also done by `dispose()`).
 *
 * All compute methods work inside the caller's tf.tidy and are differentiable with wasm kernels and gradients
 * (the patch embedding is a patchify-matMul rather than a strided conv, so its weight gets a gradient on wasm).
 * Each block runs in its own tidy so that at 2K inputs only one block's intermediates are alive at a time.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { invalidParameterError, ShapeError } from '../errors.js';
import { DEFAULT_MAX_SCORE_ELEMENTS, selfAttention } from './attention.js';
import {
  mixedMlpChain, mixedMlpSupports, mixedSelfAttention, mixedSelfAttentionChain, mixedSelfAttentionSupports, tidyRows, useTensorCores, type LayerNormParams, type NormalizedRows,
} from '../kernels/index.js';
import { LayerNorm, Linear, singleInput } from './layers.js';
import { FlashModule, type FlashModuleArgs } from './module.js';
import { linear, mlp, type LinearFusion } from './ops.js';
import { PosEmbedInterpolator } from './pos-embed.js';
import { VIT_SIZES } from './variants.js';
import type { VitSize } from '../config.js';

/** DINOv2's LayerNorm eps (`partial(nn.LayerNorm, eps=1e-6)`), for the blocks and the final norm. */
export const DINOV2_LN_EPS = 1e-6;

const weightInit = () => tfl.initializers.truncatedNormal({ stddev: 0.02 });
const ones = () => tfl.initializers.ones();

/** DINOv2 LayerScale: x·γ per channel. */
export class LayerScale extends FlashModule {
  static className = 'FlashDepth>LayerScale';
  static override fromConfig<T extends tf.serialization.Serializable>(cls: tf.serialization.SerializableConstructor<T>, c: tf.serialization.ConfigDict): T {
    return new cls(c['dim'], { name: c['name'], trainable: c['trainable'] });
  }
  readonly gamma: tfl.LayerVariable;

  constructor(readonly dim: number, args: FlashModuleArgs = {}) {
    super(args);
    this.gamma = this.param('gamma', [dim], 'same', ones());
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.mul(x, this.gamma.read());
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(singleInput(inputs, this.name)));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), dim: this.dim };
  }
}

/** The Conv2d(3 → D, k = s = patchSize) of `patch_embed.proj`; weight stored [k, k, 3, D]. */
export class PatchProjection extends FlashModule {
  static className = 'FlashDepth>PatchProjection';
  static override fromConfig<T extends tf.serialization.Serializable>(cls: tf.serialization.SerializableConstructor<T>, c: tf.serialization.ConfigDict): T {
    return new cls(c['patchSize'], c['inChans'], c['embedDim'], { name: c['name'], trainable: c['trainable'] });
  }
  readonly weight: tfl.LayerVariable;
  readonly bias: tfl.LayerVariable;

  constructor(readonly patchSize: number, readonly inChans: number, readonly embedDim: number, args: FlashModuleArgs = {}) {
    super(args);
    this.weight = this.param('weight', [patchSize, patchSize, inChans, embedDim], 'conv2d', weightInit());
    this.bias = this.param('bias', [embedDim], 'same');
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), patchSize: this.patchSize, inChans: this.inChans, embedDim: this.embedDim };
  }
}

/** `patch_embed`: non-overlapping patches → tokens, raster order, no norm. */
export class PatchEmbed extends FlashModule {
  static className = 'FlashDepth>PatchEmbed';
  static override fromConfig<T extends tf.serialization.Serializable>(cls: tf.serialization.SerializableConstructor<T>, c: tf.serialization.ConfigDict): T {
    return new cls(c['patchSize'], c['embedDim'], { name: c['name'], trainable: c['trainable'] });
  }
  readonly proj: PatchProjection;

  constructor(readonly patchSize: number, readonly embedDim: number, args: FlashModuleArgs = {}) {
    super(args);
    this.proj = this.child('proj', new PatchProjection(patchSize, 3, embedDim));
  }

  /** [B, H, W, C] (H, W multiples of the patch size) → [B, (H/p)·(W/p), D]. */
  forward(x: tf.Tensor4D): tf.Tensor3D {
    const [b, h, w, c] = x.shape;
    const p = this.patchSize;
    const ph = h / p;
    const pw = w / p;
    // A stride-p conv with a p×p kernel is a matMul over patches: [B, ph, p, pw, p, C] → [B, ph, pw, p, p, C],
    // whose last three axes match the [kh, kw, in] order of the stored filter.
    const patches = tf.transpose(tf.reshape(x, [b, ph, p, pw, p, c]), [0, 1, 3, 2, 4, 5]);
    const flat = tf.reshape(patches, [b * ph * pw, p * p * c]);
    const filter = tf.reshape(this.proj.weight.read(), [p * p * c, this.embedDim]);
    const tokens = linear(flat, filter, this.proj.bias.read());
    return tf.reshape(tokens, [b, ph * pw, this.embedDim]);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(singleInput(inputs, this.name) as tf.Tensor4D));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), patchSize: this.patchSize, embedDim: this.embedDim };
  }
}

/** `attn`: fused qkv projection (columns [q | k | v], each head-major), softmax attention, output projection. */
export class DinoAttention extends FlashModule {
  static className = 'FlashDepth>DinoAttention';
  static override fromConfig<T extends tf.serialization.Serializable>(cls: tf.serialization.SerializableConstructor<T>, c: tf.serialization.ConfigDict): T {
    return new cls(c['dim'], c['numHeads'], c['maxScoreElements'], { name: c['name'], trainable: c['trainable'] });
  }
  readonly qkv: Linear;
  readonly proj: Linear;

  constructor(readonly dim: number, readonly numHeads: number, readonly maxScoreElements: number, args: FlashModuleArgs = {}) {
    super(args);
    this.qkv = this.child('qkv', new Linear({ inFeatures: dim, outFeatures: 3 * dim, weightInit: weightInit() }));
    this.proj = this.child('proj', new Linear({ inFeatures: dim, outFeatures: dim, weightInit: weightInit() }));
  }

  /**
   * [B, N, D] → [B, N, D]; with `residual`, residual.x + γ·attn(x) (fused into the projection where possible); with
   * `norm`, attn(norm(x)) (fused into the qkv layer's input packing where possible).
   */
  forward(x: tf.Tensor3D, residual?: LinearFusion['residual'], norm?: LinearFusion['layerNorm']): tf.Tensor3D {
    const [batch, tokens] = x.shape;
    if (useTensorCores() && x.shape[2] === this.dim && mixedSelfAttentionSupports(batch, tokens, this.dim, this.numHeads)) {
      // qkv, attention and projection with f16 between them: no packing dispatches, no f32 qkv (mixedSelfAttention).
      return mixedSelfAttention(x, { qkv: this.qkv.params(), proj: this.proj.params(), numHeads: this.numHeads, layerNorm: norm, residual });
    }
    const attended = selfAttention(this.qkv.forward(x, { layerNorm: norm }), this.numHeads, { maxScoreElements: this.maxScoreElements });
    return this.proj.forward(attended, { residual }) as tf.Tensor3D;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(singleInput(inputs, this.name) as tf.Tensor3D));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), dim: this.dim, numHeads: this.numHeads, maxScoreElements: this.maxScoreElements };
  }
}

/** `mlp`: fc1 → exact GELU → fc2. */
export class DinoMlp extends FlashModule {
  static className = 'FlashDepth>DinoMlp';
  static override fromConfig<T extends tf.serialization.Serializable>(cls: tf.serialization.SerializableConstructor<T>, c: tf.serialization.ConfigDict): T {
    return new cls(c['dim'], c['hiddenDim'], { name: c['name'], trainable: c['trainable'] });
  }
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(readonly dim: number, readonly hiddenDim: number, args: FlashModuleArgs = {}) {
    super(args);
    this.fc1 = this.child('fc1', new Linear({ inFeatures: dim, outFeatures: hiddenDim, weightInit: weightInit() }));
    this.fc2 = this.child('fc2', new Linear({ inFeatures: hiddenDim, outFeatures: dim, weightInit: weightInit() }));
  }

  /**
   * With `residual`: residual.x + γ·mlp(x), fused into fc2 where possible; with `norm`: mlp(norm(x)), likewise into
   * fc1 (see ops.mlp: on tensor cores the hidden activations stay f16 between the two layers).
   */
  forward(x: tf.Tensor, residual?: LinearFusion['residual'], norm?: LinearFusion['layerNorm']): tf.Tensor {
    if (x.shape[x.shape.length - 1] !== this.dim) {
      throw new ShapeError(`${this.name}: expected ${this.dim} features on the last axis, received shape [${x.shape.join(', ')}]`);
    }
    return mlp(x, { fc1: this.fc1.params(), fc2: this.fc2.params() }, { layerNorm: norm, residual });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(singleInput(inputs, this.name)));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), dim: this.dim, hiddenDim: this.hiddenDim };
  }
}

/** `blocks.{i}`: x + γ1·Attn(LN1(x)), then x + γ2·MLP(LN2(x)). */
export class DinoBlock extends FlashModule {
  static className = 'FlashDepth>DinoBlock';
  static override fromConfig<T extends tf.serialization.Serializable>(cls: tf.serialization.SerializableConstructor<T>, c: tf.serialization.ConfigDict): T {
    return new cls(c['dim'], c['numHeads'], c['mlpRatio'], c['maxScoreElements'], { name: c['name'], trainable: c['trainable'] });
  }
  readonly norm1: LayerNorm;
  readonly attn: DinoAttention;
  readonly ls1: LayerScale;
  readonly norm2: LayerNorm;
  readonly mlp: DinoMlp;
  readonly ls2: LayerScale;

  constructor(readonly dim: number, readonly numHeads: number, readonly mlpRatio: number, readonly maxScoreElements: number, args: FlashModuleArgs = {}) {
    super(args);
    this.norm1 = this.child('norm1', new LayerNorm({ features: dim, eps: DINOV2_LN_EPS }));
    this.attn = this.child('attn', new DinoAttention(dim, numHeads, maxScoreElements));
    this.ls1 = this.child('ls1', new LayerScale(dim));
    this.norm2 = this.child('norm2', new LayerNorm({ features: dim, eps: DINOV2_LN_EPS }));
    this.mlp = this.child('mlp', new DinoMlp(dim, dim * mlpRatio));
    this.ls2 = this.child('ls2', new LayerScale(dim));
  }

  /**
   * [B, N, D] → [B, N, D]. The norms run inside the first linear layer of each branch (see LinearFusion), or on
   * tensor cores inside the reduction before it (forwardChained).
   */
  forward(x: tf.Tensor3D): tf.Tensor3D {
    if (this.chainSupports(x.shape[0], x.shape[1])) return tidyRows(() => this.forwardChained(x, null, null)).y;
    const afterAttn = this.attn.forward(x, { x, gamma: this.ls1.gamma.read() }, this.norm1.asPrologue());
    return this.mlp.forward(afterAttn, { x: afterAttn, gamma: this.ls2.gamma.read() }, this.norm2.asPrologue()) as tf.Tensor3D;
  }

  /** Whether forwardChained takes B sequences of N tokens: both branches on tensor cores (`--precision mixed`). */
  chainSupports(batch: number, tokens: number): boolean {
    return useTensorCores() && mixedSelfAttentionSupports(batch, tokens, this.dim, this.numHeads) && mixedMlpSupports(this.dim, this.mlp.hiddenDim, this.dim);
  }

  /**
   * forward on tensor cores with each LayerNorm computed where its input is reduced: where the products are split
   * over K, the projection's reduction also writes norm2(x) packed for fc1, and fc2's writes `nextNorm`(y) (the next
   * block's norm1) packed for its qkv, returned as `packedNorm`; `packedNorm1` is this block's norm1(x) so written
   * (null: normalised here). The same values as forward. Only where chainSupports.
   */
  forwardChained(x: tf.Tensor3D, packedNorm1: tf.Tensor | null, nextNorm: LayerNormParams | null): NormalizedRows<tf.Tensor3D> {
    const [b, n, d] = x.shape;
    const norm2 = this.norm2.asPrologue();
    const attn = mixedSelfAttentionChain(x, {
      qkv: this.attn.qkv.params(), proj: this.attn.proj.params(), numHeads: this.numHeads, residual: { x, gamma: this.ls1.gamma.read() },
      ...(packedNorm1 ? { packedNorm: packedNorm1 } : { layerNorm: this.norm1.asPrologue() }), normalizeOutput: norm2,
    });
    const afterAttn = tf.reshape(attn.y, [b * n, d]) as tf.Tensor2D;
    const mlp = mixedMlpChain(afterAttn, {
      fc1: this.mlp.fc1.params(), fc2: this.mlp.fc2.params(), residual: { x: afterAttn, gamma: this.ls2.gamma.read() },
      ...(attn.packedNorm ? { packedNorm: attn.packedNorm } : { layerNorm: norm2 }), ...(nextNorm ? { normalizeOutput: nextNorm } : {}),
    });
    return { y: tf.reshape(mlp.y, [b, n, d]) as tf.Tensor3D, packedNorm: mlp.packedNorm };
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(singleInput(inputs, this.name) as tf.Tensor3D));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), dim: this.dim, numHeads: this.numHeads, mlpRatio: this.mlpRatio, maxScoreElements: this.maxScoreElements };
  }
}

export interface DinoV2Options {
  embedDim: number;
  depth: number;
  numHeads: number;
  /** 0-based indices of the blocks whose outputs are returned (DA-V2's `intermediate_layer_idx`). */
  tapIndices: readonly number[];
  /** Default 14. */
  patchSize?: number;
  /** MLP hidden size = mlpRatio·embedDim; default 4. */
  mlpRatio?: number;
  /** Side of the stored position-embedding grid; default 37 (img_size 518 / 14). */
  posEmbedGrid?: number;
  /** Attention score budget, see `scaledDotProductAttention`; default DEFAULT_MAX_SCORE_ELEMENTS. */
  maxScoreElements?: number;
  name?: string;
  trainable?: boolean;
}

export type DinoV2Arch = VitSize;

/** A DinoV2 of a named size (the VIT_SIZES table); `overrides` change any option (e.g. the reduced ViT-L of the parity fixtures). */
export function createDinoV2(arch: DinoV2Arch, overrides: Partial<DinoV2Options> = {}): DinoV2 {
  if (!Object.hasOwn(VIT_SIZES, arch)) throw invalidParameterError('DinoV2 arch', `one of ${Object.keys(VIT_SIZES).join(', ')}`, arch);
  const { embedDim, depth, numHeads, taps, ffn } = VIT_SIZES[arch];
  if (ffn !== 'mlp') throw invalidParameterError('DinoV2 arch', 'a size with a GELU MLP (vits, vitb, vitl; vitg\'s SwiGLU is not implemented)', arch);
  return new DinoV2({ embedDim, depth, numHeads, tapIndices: taps, ...overrides });
}

/** Optional outputs filled by `getIntermediateLayers` (tensors belong to the caller's tidy scope). */
export interface DinoV2Debug {
  /** `patch_embed` output, [B, N, D]. */
  patchEmbed?: tf.Tensor3D;
  /** The position embedding added to cat(cls, patches), [1, 1 + N, D]. */
  posEmbed?: tf.Tensor3D;
}

/** DINOv2 ViT encoder: `pretrained.*` of a FlashDepth / DA-V2 checkpoint. */
export class DinoV2 extends FlashModule {
  static className = 'FlashDepth>DinoV2';
  readonly embedDim: number;
  readonly depth: number;
  readonly numHeads: number;
  readonly patchSize: number;
  readonly mlpRatio: number;
  readonly posEmbedGrid: number;
  readonly tapIndices: readonly number[];
  readonly maxScoreElements: number;

  readonly clsToken: tfl.LayerVariable;
  readonly posEmbed: tfl.LayerVariable;
  /** Present in every checkpoint (so a strict load finds it) but never used by the forward pass. */
  readonly maskToken: tfl.LayerVariable;
  /**
   * Runs one block in `getIntermediateLayers` instead of `block.forward` when set; training sets it to recompute the
   * block's activations in the backward pass (src/train/recompute.ts) rather than keep them.
   */
  blockRunner: ((block: DinoBlock, x: tf.Tensor3D) => tf.Tensor3D) | null = null;
  readonly patch_embed: PatchEmbed;
  readonly blocks: DinoBlock[];
  readonly norm: LayerNorm;

  private readonly posEmbedInterpolator: PosEmbedInterpolator;

  constructor(options: DinoV2Options) {
    super({ name: options.name, trainable: options.trainable });
    const { embedDim, depth, numHeads } = options;
    this.patchSize = options.patchSize ?? 14;
    this.mlpRatio = options.mlpRatio ?? 4;
    this.posEmbedGrid = options.posEmbedGrid ?? 37;
    this.maxScoreElements = options.maxScoreElements ?? DEFAULT_MAX_SCORE_ELEMENTS;
    validateOptions(options, this.patchSize, this.mlpRatio, this.posEmbedGrid, this.maxScoreElements);
    this.embedDim = embedDim;
    this.depth = depth;
    this.numHeads = numHeads;
    this.tapIndices = [...options.tapIndices];

    const tokenInit = () => tfl.initializers.truncatedNormal({ stddev: 0.02 });
    this.clsToken = this.param('cls_token', [1, 1, embedDim], 'same', tokenInit());
    this.posEmbed = this.param('pos_embed', [1, 1 + this.posEmbedGrid ** 2, embedDim], 'same', tokenInit());
    this.maskToken = this.param('mask_token', [1, embedDim], 'same');
    this.patch_embed = this.child('patch_embed', new PatchEmbed(this.patchSize, embedDim));
    this.blocks = [];
    for (let i = 0; i < depth; i++) {
      this.blocks.push(this.child(`blocks.${i}`, new DinoBlock(embedDim, numHeads, this.mlpRatio, this.maxScoreElements)));
    }
    this.norm = this.child('norm', new LayerNorm({ features: embedDim, eps: DINOV2_LN_EPS }));
    this.posEmbedInterpolator = new PosEmbedInterpolator(this.posEmbedGrid);
  }

  /** Patch grid (rows, cols) of an NHWC input; throws ShapeError unless it is [B, H, W, 3] with H, W multiples of 14. */
  patchGrid(shape: readonly number[]): [number, number] {
    const p = this.patchSize;
    if (shape.length !== 4 || shape[3] !== 3 || shape[1]! % p !== 0 || shape[2]! % p !== 0 || shape[1]! === 0 || shape[2]! === 0) {
      throw new ShapeError(`DinoV2 input: expected a normalised NHWC image [B, H, W, 3] with H and W positive multiples of ${p}, got [${shape.join(', ')}]`);
    }
    return [shape[1]! / p, shape[2]! / p];
  }

  /** `patch_embed(x)`: [B, H, W, 3] → [B, (H/14)·(W/14), D]. */
  patchEmbed(x: tf.Tensor4D): tf.Tensor3D {
    this.patchGrid(x.shape);
    return this.patch_embed.forward(x);
  }

  /** `interpolate_pos_encoding` for a ph×pw patch grid: [1, 1 + ph·pw, D], CLS entry first. */
  interpolatedPosEmbed(ph: number, pw: number): tf.Tensor3D {
    return this.posEmbedInterpolator.interpolate(this.posEmbed.read() as tf.Tensor3D, ph, pw);
  }

  /**
   * The tapped block outputs after the final norm, CLS removed: one [B, ph·pw, D] per entry of `tapIndices`.
   * x: normalised image, NHWC [B, H, W, 3], H and W multiples of 14.
   */
  getIntermediateLayers(x: tf.Tensor4D, debug?: DinoV2Debug): tf.Tensor3D[] {
    const [ph, pw] = this.patchGrid(x.shape);
    const b = x.shape[0];
    const n = ph * pw;
    const patches = this.patch_embed.forward(x);
    const posEmbed = this.interpolatedPosEmbed(ph, pw);
    if (debug) {
      // Clones, so that disposing a debug output never frees the pos_embed variable (used as is on a 37×37 grid).
      debug.patchEmbed = tf.clone(patches);
      debug.posEmbed = tf.clone(posEmbed);
    }
    const cls = tf.tile(this.clsToken.read(), [b, 1, 1]) as tf.Tensor3D;
    let tokens = tf.add(tf.concat([cls, patches], 1), posEmbed) as tf.Tensor3D; // [B, 1 + N, D]

    const lastTap = Math.max(...this.tapIndices);
    const taps = new Map<number, tf.Tensor3D>();
    // On tensor cores each block hands the next its norm1 input already normalised and packed (forwardChained).
    const chained = this.blockRunner === null && this.blocks[0]!.chainSupports(b, 1 + n);
    let packedNorm: tf.Tensor | null = null;
    for (let i = 0; i <= lastTap; i++) {
      const block = this.blocks[i]!;
      const input = tokens;
      if (chained) {
        const next = i < lastTap ? this.blocks[i + 1]!.norm1.asPrologue() : null;
        const inputNorm: tf.Tensor | null = packedNorm;
        const out: NormalizedRows<tf.Tensor3D> = tidyRows(() => block.forwardChained(input, inputNorm, next));
        inputNorm?.dispose();
        tokens = out.y;
        packedNorm = out.packedNorm;
      } else {
        tokens = tf.tidy(() => (this.blockRunner ? this.blockRunner(block, input) : block.forward(input)));
      }
      if (this.tapIndices.includes(i)) taps.set(i, tokens);
    }
    // The final norm of the patch tokens only (the CLS token left out in the same dispatch on the fused path).
    return this.tapIndices.map((i) => this.norm.forwardDroppingFirst(taps.get(i)!));
  }

  /** Layers-API entry: the same as `getIntermediateLayers`. */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    return tf.tidy(() => this.getIntermediateLayers(singleInput(inputs, this.name) as tf.Tensor4D));
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape[] {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    const h = shape[1];
    const w = shape[2];
    const n = h == null || w == null ? null : (h / this.patchSize) * (w / this.patchSize);
    return this.tapIndices.map(() => [shape[0] ?? null, n, this.embedDim]);
  }

  /** Frees the cached pos-embed interpolation matrices (they are rebuilt on demand). */
  clearCache(): void {
    this.posEmbedInterpolator.dispose();
  }

  /** Number of patch grids whose interpolation matrices are cached. */
  get cachedGrids(): number {
    return this.posEmbedInterpolator.cachedGrids;
  }

  /** Frees the cache and the weights (also for a module that was never `apply`'d through the Layers API). */
  override dispose(): ReturnType<tfl.layers.Layer['dispose']> {
    this.clearCache();
    if (this._refCount === null) {
      const numDisposedVariables = this.weights.length;
      this.disposeParameters();
      this._refCount = 0;
      return { refCountAfterDispose: 0, numDisposedVariables };
    }
    return super.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      embedDim: this.embedDim,
      depth: this.depth,
      numHeads: this.numHeads,
      tapIndices: [...this.tapIndices],
      patchSize: this.patchSize,
      mlpRatio: this.mlpRatio,
      posEmbedGrid: this.posEmbedGrid,
      maxScoreElements: this.maxScoreElements,
    };
  }

  static override fromConfig<T extends tf.serialization.Serializable>(cls: tf.serialization.SerializableConstructor<T>, config: tf.serialization.ConfigDict): T {
    return new cls(config as unknown as DinoV2Options);
  }
}

function validateOptions(o: DinoV2Options, patchSize: number, mlpRatio: number, grid: number, budget: number): void {
  const positiveInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v > 0;
  if (!positiveInt(o.embedDim)) throw invalidParameterError('DinoV2 embedDim', 'positive integer', o.embedDim);
  if (!positiveInt(o.depth)) throw invalidParameterError('DinoV2 depth', 'positive integer', o.depth);
  if (!positiveInt(o.numHeads) || o.embedDim % o.numHeads !== 0) {
    throw invalidParameterError('DinoV2 numHeads', `positive integer dividing embedDim ${o.embedDim}`, o.numHeads);
  }
  if (!positiveInt(patchSize)) throw invalidParameterError('DinoV2 patchSize', 'positive integer', patchSize);
  if (!positiveInt(mlpRatio)) throw invalidParameterError('DinoV2 mlpRatio', 'positive integer', mlpRatio);
  if (!positiveInt(grid)) throw invalidParameterError('DinoV2 posEmbedGrid', 'positive integer', grid);
  if (!positiveInt(budget)) throw invalidParameterError('DinoV2 maxScoreElements', 'positive integer', budget);
  const taps = o.tapIndices;
  const validTaps = Array.isArray(taps) && taps.length > 0 && taps.every((t, i) => Number.isInteger(t) && t >= 0 && t < o.depth && (i === 0 || t > taps[i - 1]!));
  if (!validTaps) throw invalidParameterError('DinoV2 tapIndices', `a non-empty increasing list of block indices in [0, ${o.depth - 1}]`, taps);
}


for (const cls of [Linear, LayerNorm, LayerScale, PatchProjection, PatchEmbed, DinoAttention, DinoMlp, DinoBlock, DinoV2]) {
  tf.serialization.registerClass(cls);
}
