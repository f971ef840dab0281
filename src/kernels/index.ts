/**
 * Custom WGSL kernels (flash attention, fused LayerNorm, GELU, LayerScale+residual) and the single switch that
 * decides whether the model uses them.
 *
 * `useFusedKernels()` is true only on the webgpu backend, outside a gradient tape (the kernels are forward-only;
 * training keeps the stock ops and their gradients), and unless switched off with `setKernelMode('stock')` or
 * FLASHDEPTH_KERNELS=stock (for before/after benchmarks in one process or lease). Every call site keeps its
 * plain-tfjs-ops path, which wasm and cpu always take.
 */
import * as tf from '@tensorflow/tfjs-core';
import { invalidParameterError } from '../errors.js';
import './register.js';

export { flashAttention, flashAttentionSupports, type FlashAttentionAttrs } from './flash-attention.js';
export { fusedLayerNorm } from './layer-norm.js';
export { fusedGelu, fusedScaleAdd, vec4Compatible } from './elementwise.js';
export { REGISTERED_KERNELS } from './register.js';

export const KERNEL_MODES = ['fused', 'stock'] as const;
export type KernelMode = (typeof KERNEL_MODES)[number];

let mode: KernelMode | undefined;

function modeFromEnv(): KernelMode {
  const value = process.env['FLASHDEPTH_KERNELS'];
  if (value === undefined || value === '') return 'fused';
  if (!(KERNEL_MODES as readonly string[]).includes(value)) throw invalidParameterError('FLASHDEPTH_KERNELS', `one of ${KERNEL_MODES.join(', ')}`, value);
  return value as KernelMode;
}

/** 'fused' (default; custom kernels where the backend is webgpu) or 'stock' (tfjs' own kernels everywhere). */
export function kernelMode(): KernelMode {
  mode ??= modeFromEnv();
  return mode;
}

export function setKernelMode(next: KernelMode): void {
  if (!(KERNEL_MODES as readonly string[]).includes(next)) throw invalidParameterError('kernel mode', `one of ${KERNEL_MODES.join(', ')}`, next);
  mode = next;
}

/** The one place that picks custom kernels over the plain-ops fallback. */
export function useFusedKernels(): boolean {
  return kernelMode() === 'fused' && tf.getBackend() === 'webgpu' && !tf.engine().isTapeOn();
}
