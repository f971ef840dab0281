/**
 * Variants as data (style.md §1): the encoder sizes of DINOv2 / Depth Anything V2, the three FlashDepth variants,
 * and `modelSpecFromConfig`, which turns a loaded config into the fully resolved `ModelSpec` the model code builds
 * from. Nothing else in the code base should branch on a variant name.
 */
import type { FlashDepthConfig, VitSize } from '../config.js';
import { ConfigError } from '../errors.js';

// ---------------------------------------------------------------------------------------------------------------------
// Encoder sizes (DA-V2 `model_configs` + `intermediate_layer_idx`, DINOv2 `vit_*` factories)

export interface VitSizeEntry {
  embedDim: number;
  depth: number;
  numHeads: number;
  /** FFN type: vitg uses SwiGLU ("swiglufused"); the others a GELU MLP. */
  ffn: 'mlp' | 'swiglu';
  /** Blocks (0-based) whose outputs feed the DPT. */
  taps: readonly [number, number, number, number];
  /** DPT `features` (FlashDepth's `dpt_dim`). */
  dptFeatures: number;
  /** DPT `out_channels` of the four reassemble stages. */
  dptOutChannels: readonly [number, number, number, number];
}

export const VIT_SIZES: Readonly<Record<VitSize, VitSizeEntry>> = {
  vits: { embedDim: 384, depth: 12, numHeads: 6, ffn: 'mlp', taps: [2, 5, 8, 11], dptFeatures: 64, dptOutChannels: [48, 96, 192, 384] },
  vitb: { embedDim: 768, depth: 12, numHeads: 12, ffn: 'mlp', taps: [2, 5, 8, 11], dptFeatures: 128, dptOutChannels: [96, 192, 384, 768] },
  vitl: { embedDim: 1024, depth: 24, numHeads: 16, ffn: 'mlp', taps: [4, 11, 17, 23], dptFeatures: 256, dptOutChannels: [256, 512, 1024, 1024] },
  vitg: { embedDim: 1536, depth: 40, numHeads: 24, ffn: 'swiglu', taps: [9, 19, 29, 39], dptFeatures: 384, dptOutChannels: [1536, 1536, 1536, 1536] },
};

/** DINOv2 constants shared by every size (spec §2.2). */
export const DINOV2 = {
  patchSize: 14,
  mlpRatio: 4,
  /** `img_size` 518 → a 37×37 stored position grid (1 + 37² = 1370 embeddings). */
  posGridSize: 37,
  layerNormEps: 1e-6,
  /** Added to the target grid before computing the bicubic scale factor. */
  interpolateOffset: 0.1,
} as const;

// ---------------------------------------------------------------------------------------------------------------------
// FlashDepth variants

export type VariantName = 's' | 'l' | 'full';

export interface VariantEntry {
  /** Folder under configs/. */
  configDir: string;
  description: string;
  /** File name of the released checkpoint (Hugging Face `Eyeline-Labs/FlashDepth`). */
  releasedCheckpoint: string;
  /** What training starts from (stage 1: DA-V2 weights; stage 2: the S and L checkpoints). */
  initFrom: string;
}

export const VARIANTS: Readonly<Record<VariantName, VariantEntry>> = {
  s: {
    configDir: 'flashdepth-s',
    description: 'FlashDepth-S: ViT-S encoder, DPT 64, Mamba after refinenet3',
    releasedCheckpoint: 'iter_14001.pth',
    initFrom: 'depth_anything_v2_vits.pth',
  },
  l: {
    configDir: 'flashdepth-l',
    description: 'FlashDepth-L: ViT-L encoder, DPT 256, Mamba after refinenet1',
    releasedCheckpoint: 'iter_10001.pth',
    initFrom: 'depth_anything_v2_vitl.pth',
  },
  full: {
    configDir: 'flashdepth',
    description: 'FlashDepth (Full): ViT-S student + frozen ViT-L teacher at 490 px, fused at path_4',
    releasedCheckpoint: 'iter_43002.pth',
    initFrom: 'FlashDepth-S (student) + FlashDepth-L (teacher) checkpoints',
  },
};

export const VARIANT_NAMES = Object.keys(VARIANTS) as VariantName[];

/** The variant for a CLI name (`s`, `l`, `full`); unknown names fail with the choices listed. */
export function variantByName(name: string): VariantEntry {
  if (!Object.hasOwn(VARIANTS, name)) {
    throw new ConfigError(`unknown variant ${JSON.stringify(name)}; expected one of ${VARIANT_NAMES.join(', ')}`);
  }
  return VARIANTS[name as VariantName];
}

// ---------------------------------------------------------------------------------------------------------------------
// Mamba2 sizing (spec §1.1, §3.1)

/** Mamba2 settings that `MambaModel` hard-codes; `d_state` is 256 whatever `model.mamba_d_state` says. */
export const MAMBA2 = {
  dState: 256,
  ngroups: 1,
  chunkSize: 256,
  /** MambaBlock norm1/norm2 and the gated RMSNorm. */
  layerNormEps: 1e-5,
  rmsNormEps: 1e-5,
  /** MambaBlock MLP hidden = 4·d_model. */
  mlpRatio: 4,
} as const;

/** `MambaModel`'s rule: dpt_dim 64 (ViT-S) → expand 4, headdim 32; otherwise expand 2, headdim 64. */
export function mambaExpandHeaddim(dModel: number): { expand: number; headdim: number } {
  return dModel === 64 ? { expand: 4, headdim: 32 } : { expand: 2, headdim: 64 };
}

// ---------------------------------------------------------------------------------------------------------------------
// Resolved model spec

export interface VitSpec {
  size: VitSize;
  embedDim: number;
  depth: number;
  numHeads: number;
  headDim: number;
  mlpHidden: number;
  ffn: 'mlp' | 'swiglu';
  patchSize: number;
  taps: [number, number, number, number];
  posGridSize: number;
  layerNormEps: number;
}

export interface DptSpec {
  /** `features` / `dpt_dim` F. */
  features: number;
  outChannels: [number, number, number, number];
}

export interface MambaSpec {
  dModel: number;
  numLayers: number;
  /** DPT stages (0 = path_4 … 3 = path_1) after which the module runs; one pooling factor each. */
  inDptLayer: number[];
  downsample: number[];
  dState: number;
  dConv: number;
  expand: number;
  headdim: number;
  dInner: number;
  nheads: number;
  ngroups: number;
  convDim: number;
  chunkSize: number;
  layerNormEps: number;
  mlpHidden: number;
}

export interface FusionSpec {
  /** The student's `dpt_dim`. */
  dModel: number;
  /** The teacher's `dpt_dim`, projected by `context_proj`. */
  contextDim: number;
  numBlocks: number;
  numHeads: number;
  mlpExpand: number;
  layerNormEps: number;
  layersToSkip: number[];
  /** Path indices that are fused (0 = path_4): those in 0..3 not skipped. */
  fusedPaths: number[];
}

export interface HybridSpec {
  teacher: { vit: VitSpec; dpt: DptSpec };
  /** Teacher input height when the frame is taller. */
  teacherResolution: number;
  fusion: FusionSpec;
}

export interface ModelSpec {
  vit: VitSpec;
  dpt: DptSpec;
  /** null when `model.use_mamba` is false. */
  mamba: MambaSpec | null;
  /** null unless `hybrid_configs.use_hybrid`. */
  hybrid: HybridSpec | null;
}

interface ArchOverrides {
  embedDim: number | null;
  depth: number | null;
  numHeads: number | null;
  taps: number[] | null;
  outChannels: number[] | null;
}

function four(values: readonly number[], key: string): [number, number, number, number] {
  if (values.length !== 4) throw new ConfigError(`${key}: expected 4 values but got ${values.length} ([${values.join(', ')}])`);
  return [values[0]!, values[1]!, values[2]!, values[3]!];
}

function positive(value: number, key: string): number {
  if (!(value > 0)) throw new ConfigError(`${key}: expected a positive integer but got ${value}`);
  return value;
}

function resolveEncoder(size: VitSize, patchSize: number, o: ArchOverrides, keyPrefix: string): { vit: VitSpec; dpt: DptSpec } {
  const entry = VIT_SIZES[size];
  const embedDim = positive(o.embedDim ?? entry.embedDim, `${keyPrefix}vit_embed_dim`);
  const depth = positive(o.depth ?? entry.depth, `${keyPrefix}vit_depth`);
  const numHeads = positive(o.numHeads ?? entry.numHeads, `${keyPrefix}vit_num_heads`);
  if (embedDim % numHeads !== 0) {
    throw new ConfigError(`${keyPrefix}vit_num_heads: ${numHeads} heads do not divide the embedding width ${embedDim}`);
  }
  const taps = four(o.taps ?? entry.taps, `${keyPrefix}vit_taps`);
  taps.forEach((t, i) => {
    if (t < 0 || t >= depth || (i > 0 && t <= taps[i - 1]!)) {
      throw new ConfigError(`${keyPrefix}vit_taps: expected 4 increasing block indices in 0..${depth - 1} but got [${taps.join(', ')}]`);
    }
  });
  const outChannels = four(o.outChannels ?? entry.dptOutChannels, `${keyPrefix}dpt_out_channels`);
  outChannels.forEach((c) => positive(c, `${keyPrefix}dpt_out_channels`));
  return {
    vit: {
      size,
      embedDim,
      depth,
      numHeads,
      headDim: embedDim / numHeads,
      mlpHidden: embedDim * DINOV2.mlpRatio,
      ffn: entry.ffn,
      patchSize,
      taps,
      posGridSize: DINOV2.posGridSize,
      layerNormEps: DINOV2.layerNormEps,
    },
    dpt: { features: entry.dptFeatures, outChannels },
  };
}

function resolveMamba(config: FlashDepthConfig, dModel: number): MambaSpec | null {
  const m = config.model;
  if (!m.use_mamba) return null;
  for (const key of ['use_hydra', 'use_transformer_rnn', 'use_xlstm'] as const) {
    if (m[key]) throw new ConfigError(`model.${key}: the ablation temporal modules are not implemented (no released checkpoint uses them); expected false`);
  }
  if (m.mamba_type !== 'add') {
    throw new ConfigError(`model.mamba_type: only "add" is implemented (the pooled Mamba path requires it) but got ${JSON.stringify(m.mamba_type)}`);
  }
  if (m.mamba_in_dpt_layer.length === 0 || m.mamba_in_dpt_layer.some((k) => k < 0 || k > 3)) {
    throw new ConfigError(`model.mamba_in_dpt_layer: expected DPT stage indices in 0..3 (0 = path_4, 3 = path_1) but got [${m.mamba_in_dpt_layer.join(', ')}]`);
  }
  if (m.downsample_mamba.length !== m.mamba_in_dpt_layer.length) {
    throw new ConfigError(
      `model.downsample_mamba: expected one pooling factor per model.mamba_in_dpt_layer entry (${m.mamba_in_dpt_layer.length}) but got ${m.downsample_mamba.length}`,
    );
  }
  if (m.downsample_mamba.some((f) => !(f > 0 && f <= 1))) {
    throw new ConfigError(`model.downsample_mamba: expected factors in (0, 1] but got [${m.downsample_mamba.join(', ')}]`);
  }
  const { expand, headdim } = mambaExpandHeaddim(dModel);
  const dInner = expand * dModel;
  return {
    dModel,
    numLayers: positive(m.num_mamba_layers, 'model.num_mamba_layers'),
    inDptLayer: [...m.mamba_in_dpt_layer],
    downsample: [...m.downsample_mamba],
    dState: MAMBA2.dState,
    dConv: positive(m.mamba_d_conv, 'model.mamba_d_conv'),
    expand,
    headdim,
    dInner,
    nheads: dInner / headdim,
    ngroups: MAMBA2.ngroups,
    convDim: dInner + 2 * MAMBA2.ngroups * MAMBA2.dState,
    chunkSize: MAMBA2.chunkSize,
    layerNormEps: MAMBA2.layerNormEps,
    mlpHidden: MAMBA2.mlpRatio * dModel,
  };
}

function resolveHybrid(config: FlashDepthConfig, studentFeatures: number): HybridSpec | null {
  const h = config.hybrid_configs;
  if (!h.use_hybrid) return null;
  // The reference hard-codes the teacher as ViT-L + DPT-L; the (port) keys only shrink it for tests.
  const teacher = resolveEncoder(
    'vitl',
    config.model.patch_size,
    {
      embedDim: h.teacher_vit_embed_dim,
      depth: h.teacher_vit_depth,
      numHeads: h.teacher_vit_num_heads,
      taps: h.teacher_vit_taps,
      outChannels: h.teacher_dpt_out_channels,
    },
    'hybrid_configs.teacher_',
  );
  if (h.layers_to_skip.some((k) => k < 0 || k > 3)) {
    throw new ConfigError(`hybrid_configs.layers_to_skip: expected path indices in 0..3 but got [${h.layers_to_skip.join(', ')}]`);
  }
  const fusedPaths = [0, 1, 2, 3].filter((k) => !h.layers_to_skip.includes(k));
  if (fusedPaths.join() !== '0') {
    // HybridFusion's context_proj is Linear(256 → d_model) fed the teacher's path_4 only; other paths have no wiring.
    throw new ConfigError(`hybrid_configs.layers_to_skip: only fusing path_4 is implemented (layers_to_skip [1, 2, 3]) but got [${h.layers_to_skip.join(', ')}]`);
  }
  if (studentFeatures % positive(h.num_heads, 'hybrid_configs.num_heads') !== 0) {
    throw new ConfigError(`hybrid_configs.num_heads: ${h.num_heads} heads do not divide the fusion width ${studentFeatures}`);
  }
  return {
    teacher,
    teacherResolution: positive(h.teacher_resolution, 'hybrid_configs.teacher_resolution'),
    fusion: {
      dModel: studentFeatures,
      contextDim: teacher.dpt.features,
      numBlocks: positive(h.num_blocks, 'hybrid_configs.num_blocks'),
      numHeads: h.num_heads,
      mlpExpand: positive(h.mlp_expand, 'hybrid_configs.mlp_expand'),
      layerNormEps: 1e-5,
      layersToSkip: [...h.layers_to_skip],
      fusedPaths,
    },
  };
}

/** The fully resolved architecture of a config: every size the model code needs, checked for consistency. */
export function modelSpecFromConfig(config: FlashDepthConfig): ModelSpec {
  const m = config.model;
  if (m.patch_size !== DINOV2.patchSize) {
    throw new ConfigError(`model.patch_size: the DINOv2 weights need 14 but got ${m.patch_size}`);
  }
  const { vit, dpt } = resolveEncoder(
    m.vit_size,
    m.patch_size,
    { embedDim: m.vit_embed_dim, depth: m.vit_depth, numHeads: m.vit_num_heads, taps: m.vit_taps, outChannels: m.dpt_out_channels },
    'model.',
  );
  return { vit, dpt, mamba: resolveMamba(config, dpt.features), hybrid: resolveHybrid(config, dpt.features) };
}

/**
 * Overrides that shrink FlashDepth-L to the `l_reduced` parity fixture (ViT width 128, 8 blocks, 2 heads; DPT and
 * Mamba unchanged), and the same for the Full fixture's teacher (which also runs at 98 px).
 */
export const L_REDUCED_OVERRIDES: readonly string[] = [
  'model.vit_embed_dim=128',
  'model.vit_depth=8',
  'model.vit_num_heads=2',
  'model.vit_taps=[1,3,5,7]',
  'model.dpt_out_channels=[32,64,128,128]',
];

export const FULL_REDUCED_TEACHER_OVERRIDES: readonly string[] = [
  'hybrid_configs.teacher_vit_embed_dim=128',
  'hybrid_configs.teacher_vit_depth=8',
  'hybrid_configs.teacher_vit_num_heads=2',
  'hybrid_configs.teacher_vit_taps=[1,3,5,7]',
  'hybrid_configs.teacher_dpt_out_channels=[32,64,128,128]',
  'hybrid_configs.teacher_resolution=98',
];
