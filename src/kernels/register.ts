/**
 * Registers every custom WebGPU kernel with tfjs (a side effect of importing this module). Registration only adds
 * entries to tfjs' kernel registry under the 'webgpu' backend name; nothing runs until a webgpu backend exists.
 */
import * as tf from '@tensorflow/tfjs-core';
import { geluConfig, scaleAddConfig } from './elementwise.js';
import { flashAttentionConfig } from './flash-attention.js';
import { layerNormConfig } from './layer-norm.js';
import { mambaScanConfig } from './mamba-scan.js';
import { tensorCoreAttentionConfig, tensorCoreSelfAttentionConfig } from './tc-attention.js';
import { packF16Config, tensorCoreMatMulConfig } from './tc-matmul.js';
import { pointwiseConvConfig } from './pointwise-conv.js';
import { resizeAlignCornersConfig } from './resize.js';

const KERNEL_CONFIGS: readonly tf.KernelConfig[] = [flashAttentionConfig, layerNormConfig, geluConfig, scaleAddConfig, mambaScanConfig, tensorCoreAttentionConfig,
  packF16Config, tensorCoreMatMulConfig, resizeAlignCornersConfig, pointwiseConvConfig, tensorCoreSelfAttentionConfig];

for (const config of KERNEL_CONFIGS) {
  if (!tf.getKernel(config.kernelName, config.backendName)) tf.registerKernel(config);
}

export const REGISTERED_KERNELS: readonly string[] = KERNEL_CONFIGS.map((c) => c.kernelName);
