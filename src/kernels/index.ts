/**
 * Custom WGSL kernels (flash attention, fused LayerNorm, GELU, LayerScale+residual; tensor-core matmul and attention
 * for `--precision mixed`) and the switches that decide whether the model uses them (./mode.ts).
 */
import './register.js';

export { flashAttention, flashAttentionSupports, type FlashAttentionAttrs } from './flash-attention.js';
export { fusedLayerNorm, fusedLayerNormDroppingFirst } from './layer-norm.js';
export { fusedResizeAlignCorners } from './resize.js';
export { fusedPointwiseConv, pointwiseConvSupports } from './pointwise-conv.js';
export { fusedGelu, fusedScaleAdd, vec4Compatible } from './elementwise.js';
export { fusedMambaScan, mambaScanSupports, type MambaScanAttrs, type MambaScanResult, type MambaScanWeights } from './mamba-scan.js';
export {
  mixedMatMul, mixedMatMulSupports, mixedMlp, mixedMlpChain, mixedMlpSupports, mixedSelfAttention, mixedSelfAttentionChain, mixedSelfAttentionSupports,
  type BranchNorms, type MixedMatMulOptions, type MixedMlpOptions, type MixedSelfAttentionOptions,
} from './mixed-matmul.js';
export { tensorCoreAttentionLayout, tensorCoreAttentionSupports } from './tc-attention.js';
export { freeStalePackedWeights, tensorCoreConv3x3, tensorCoreConvSupports, tidyRows, type LayerNormParams, type NormalizedRows } from './tc-matmul.js';
export { REGISTERED_KERNELS } from './register.js';
export {
  KERNEL_MODES, PRECISIONS, kernelMode, setKernelMode, precisionMode, setPrecision, applyPrecision, useFusedKernels, tensorCoresAvailable, useTensorCores, rcuFusion, patchNormFusion,
  type KernelMode, type Precision,
} from './mode.js';
