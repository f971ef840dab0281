/**
 * HybridFusion of FlashDepth (Full): the student's path_4 attends to the frozen ViT-L teacher's path_4
 * (spec §2.6 step 5). Keys under `hybrid_fusion.`: `blocks.{stage}.{b}.{norm1, attention.q, attention.kv,
 * attention.proj, context_norm, norm2, mlp.0, mlp.2, context_proj}`.
 *
 *   x   = flatten(student path_4)                      [B, ph·pw, d]
 *   ctx = blocks.{stage}.0.context_proj(flatten(teacher path_4))   [B, phT·pwT, d]   (projected once)
 *   per block b:  c = context_norm_b(ctx)              (every block normalises the same projected ctx)
 *                 x = x + proj_b(MHA(norm1_b(x)·Wq, c·Wk, c·Wv))   (heads × d/heads, scale 1/√(d/heads), no mask)
 *                 x = x + mlp_b(norm2_b(x))            (Linear → exact GELU → Linear)
 *   fused path_4 = x as a grid                          [B, ph, pw, d]
 *
 * All LayerNorms use eps 1e-5. No positional encoding. `context_proj` exists in every block (checkpoints carry it);
 * only block 0's is used. `attention.proj` and `mlp.2` start at zero, as in the reference, so an untrained fusion
 * is the identity.
 *
 * Public API: `new HybridFusion(options)`, `forward(studentPath4, teacherPath4, stage = 0)` (NHWC in and out; runs
 * inside the caller's tf.tidy), `stagePaths` (which DPT path index each stage fuses). `Linear` and `LayerNorm` are
 * module-private leaves (PyTorch names; `Linear` here supports no-bias and zero-init).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, ShapeError } from '../errors.js';
import { scaledDotProductAttention, type AttentionOptions } from './attention.js';
import { LayerNorm, Linear } from './layers.js';
import { FlashModule, type FlashModuleArgs } from './module.js';

/** nn.LayerNorm eps of every fusion norm (PyTorch's default). */
const FUSION_LN_EPS = 1e-5;


export interface CrossAttentionOptions extends FlashModuleArgs {
  dim: number;
  numHeads: number;
}

/** Cross-attention with `q` (no bias), `kv` (no bias; output columns [0, d) are K, [d, 2d) are V) and `proj`. */
export class CrossAttention extends FlashModule {
  static className = 'FlashDepthCrossAttention';
  readonly q: Linear;
  readonly kv: Linear;
  readonly proj: Linear;

  readonly dim: number;
  readonly numHeads: number;

  constructor(options: CrossAttentionOptions) {
    super(options);
    const dim = (this.dim = options.dim);
    this.numHeads = options.numHeads;
    this.q = this.child('q', new Linear({ inFeatures: dim, outFeatures: dim, bias: false }));
    this.kv = this.child('kv', new Linear({ inFeatures: dim, outFeatures: 2 * dim, bias: false }));
    this.proj = this.child('proj', new Linear({ inFeatures: dim, outFeatures: dim, zeroInit: true }));
  }

  /** x: [B, Lq, d] queries, context: [B, Lk, d] (already normalised) → [B, Lq, d]. */
  forward(x: tf.Tensor3D, context: tf.Tensor3D, attention: AttentionOptions = {}): tf.Tensor3D {
    const [k, v] = tf.split(this.kv.forward(context), 2, 2) as [tf.Tensor3D, tf.Tensor3D]; // [B, Lk, 2d] → 2 × [B, Lk, d]
    const heads = scaledDotProductAttention(this.q.forward(x), k, v, this.numHeads, attention);
    return this.proj.forward(heads);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), dim: this.dim, numHeads: this.numHeads };
  }
}
tf.serialization.registerClass(CrossAttention);

export interface FusionBlockOptions extends FlashModuleArgs {
  dModel: number;
  contextDim: number;
  numHeads: number;
  mlpExpand: number;
}

/** One pre-LN cross-attention block (`blocks.{stage}.{b}`). */
export class FusionBlock extends FlashModule {
  static className = 'FlashDepthFusionBlock';
  readonly norm1: LayerNorm;
  readonly attention: CrossAttention;
  readonly contextNorm: LayerNorm;
  readonly norm2: LayerNorm;
  readonly mlpIn: Linear;
  readonly mlpOut: Linear;
  /** Linear(contextDim → dModel); only block 0 of a stage uses it. */
  readonly contextProj: Linear;
  private readonly blockOptions: Omit<FusionBlockOptions, keyof FlashModuleArgs>;

  constructor(options: FusionBlockOptions) {
    super(options);
    const { dModel, contextDim, numHeads, mlpExpand } = options;
    this.blockOptions = { dModel, contextDim, numHeads, mlpExpand };
    this.norm1 = this.child('norm1', new LayerNorm({ features: dModel, eps: FUSION_LN_EPS }));
    this.attention = this.child('attention', new CrossAttention({ dim: dModel, numHeads }));
    this.contextNorm = this.child('context_norm', new LayerNorm({ features: dModel, eps: FUSION_LN_EPS }));
    this.norm2 = this.child('norm2', new LayerNorm({ features: dModel, eps: FUSION_LN_EPS }));
    this.mlpIn = this.child('mlp.0', new Linear({ inFeatures: dModel, outFeatures: mlpExpand * dModel }));
    this.mlpOut = this.child('mlp.2', new Linear({ inFeatures: mlpExpand * dModel, outFeatures: dModel, zeroInit: true }));
    this.contextProj = this.child('context_proj', new Linear({ inFeatures: contextDim, outFeatures: dModel }));
  }

  /** x: [B, Lq, d]; context: the *projected*, un-normalised teacher tokens [B, Lk, d]. */
  forward(x: tf.Tensor3D, context: tf.Tensor3D, attention: AttentionOptions = {}): tf.Tensor3D {
    const c = this.contextNorm.forward(context);
    const attended = tf.add(x, this.attention.forward(this.norm1.forward(x), c, attention));
    return tf.add(attended, this.mlpOut.forward(this.mlpIn.forward(this.norm2.forward(attended), { activation: 'gelu' })));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.blockOptions };
  }
}
tf.serialization.registerClass(FusionBlock);

export interface HybridFusionOptions extends FlashModuleArgs {
  /** Student feature width (student dpt_dim); default 64. */
  dModel?: number;
  /** Teacher feature width (teacher dpt_dim); default 256. */
  contextDim?: number;
  /** Blocks per stage; default 4. */
  numBlocks?: number;
  /** Default 2 (head dim 32). */
  numHeads?: number;
  /** MLP hidden = mlpExpand · dModel; default 2. */
  mlpExpand?: number;
  /** DPT path indices (0 = path_4 … 3 = path_1) that are not fused; default [1, 2, 3]. One stage per remaining index. */
  layersToSkip?: readonly number[];
  /** Passed to scaledDotProductAttention (query chunking budget). */
  attention?: AttentionOptions;
}

type ResolvedHybridOptions = Required<Omit<HybridFusionOptions, keyof FlashModuleArgs | 'attention'>>;

/** `hybrid_fusion`: one list of FusionBlocks per fused DPT path. */
export class HybridFusion extends FlashModule {
  static className = 'FlashDepthHybridFusion';
  /** blocks[stage][b]. */
  readonly blocks: FusionBlock[][];
  /** The DPT path index (spec §1.2) fused by each stage, in stage order. */
  readonly stagePaths: number[];
  private readonly fusionOptions: ResolvedHybridOptions;
  private readonly attentionOptions: AttentionOptions;

  constructor(options: HybridFusionOptions = {}) {
    super(options);
    const resolved: ResolvedHybridOptions = {
      dModel: options.dModel ?? 64,
      contextDim: options.contextDim ?? 256,
      numBlocks: options.numBlocks ?? 4,
      numHeads: options.numHeads ?? 2,
      mlpExpand: options.mlpExpand ?? 2,
      layersToSkip: [...(options.layersToSkip ?? [1, 2, 3])],
    };
    for (const key of ['dModel', 'contextDim', 'numBlocks', 'numHeads', 'mlpExpand'] as const) {
      const v = resolved[key];
      if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`HybridFusion: expected a positive integer for ${key} but received ${String(v)}`);
    }
    if (resolved.dModel % resolved.numHeads !== 0) {
      throw new ConfigError(`HybridFusion: dModel ${resolved.dModel} does not split into ${resolved.numHeads} heads`);
    }
    const bad = resolved.layersToSkip.filter((i) => ![0, 1, 2, 3].includes(i));
    if (bad.length > 0) throw new ConfigError(`HybridFusion: layersToSkip entries must be DPT path indices 0..3 but received ${bad.join(', ')}`);
    this.fusionOptions = resolved;
    this.attentionOptions = options.attention ?? {};
    this.stagePaths = [0, 1, 2, 3].filter((i) => !resolved.layersToSkip.includes(i));
    const { dModel, contextDim, numHeads, mlpExpand } = resolved;
    this.blocks = this.stagePaths.map((_, stage) =>
      Array.from({ length: resolved.numBlocks }, (_unused, b) =>
        this.child(`blocks.${stage}.${b}`, new FusionBlock({ dModel, contextDim, numHeads, mlpExpand }))));
  }

  /**
   * studentPath: [B, ph, pw, dModel]; teacherPath: [B, phT, pwT, contextDim] → fused [B, ph, pw, dModel].
   * `stage` indexes `stagePaths` (stage 0 fuses path_4 with the default layersToSkip).
   */
  forward(studentPath: tf.Tensor4D, teacherPath: tf.Tensor4D, stage = 0): tf.Tensor4D {
    const { dModel, contextDim } = this.fusionOptions;
    const blocks = this.blocks[stage];
    if (blocks === undefined) throw new ConfigError(`HybridFusion: stage ${stage} does not exist (${this.blocks.length} stage(s), fusing paths [${this.stagePaths.join(', ')}])`);
    const [b, ph, pw, d] = studentPath.shape;
    const [bT, phT, pwT, dT] = teacherPath.shape;
    if (d !== dModel) throw new ShapeError(`HybridFusion: student path has shape [${studentPath.shape.join(', ')}], expected ${dModel} channels (NHWC)`);
    if (dT !== contextDim) throw new ShapeError(`HybridFusion: teacher path has shape [${teacherPath.shape.join(', ')}], expected ${contextDim} channels (NHWC)`);
    if (bT !== b) throw new ShapeError(`HybridFusion: batch sizes differ: student ${b}, teacher ${bT}`);

    let x = tf.reshape(studentPath, [b, ph * pw, d]) as tf.Tensor3D; // [B, ph, pw, d] → [B, ph·pw, d] raster order
    const teacherTokens = tf.reshape(teacherPath, [b, phT * pwT, dT]) as tf.Tensor3D; // [B, phT·pwT, contextDim]
    const context = blocks[0]!.contextProj.forward(teacherTokens); // [B, phT·pwT, d]
    for (const block of blocks) x = block.forward(x, context, this.attentionOptions);
    return tf.reshape(x, [b, ph, pw, d]); // [B, ph·pw, d] → [B, ph, pw, d]
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.fusionOptions, layersToSkip: [...this.fusionOptions.layersToSkip] };
  }
}
tf.serialization.registerClass(HybridFusion);
