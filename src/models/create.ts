/**
 * Building FlashDepth models from the config files, and loading checkpoints into them.
 *
 *   const model = createFlashDepth('s');                        // configs/flashdepth-s/config.yaml
 *   loadFlashDepthWeights(model, 'checkpoints/iter_14001.pth');  // official .pth, DA-V2 .pth or our safetensors
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type ConfigOverrides, type FlashDepthConfig } from '../config.js';
import { ConfigError } from '../errors.js';
import { openWeights } from '../io/checkpoint.js';
import type { WeightSource } from '../io/weight-source.js';
import { FlashDepth, type FlashDepthOptions } from './flashdepth.js';
import { modelSpecFromConfig, VARIANTS, type VariantName } from './variants.js';
import * as tf from '@tensorflow/tfjs-core';
import { writeSafetensors } from '../io/safetensors.js';
import { loadWeights, toTorchLayout, torchShape, type LoadReport } from './weights.js';

/** The package root (where configs/ lives), whether running from src via tsc output or installed. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The config folder of a variant shipped with the package (`configs/flashdepth-s`, …). */
export function variantConfigDir(variant: VariantName): string {
  return join(PACKAGE_ROOT, 'configs', VARIANTS[variant].configDir);
}

export interface CreateFlashDepthOptions extends FlashDepthOptions {
  /** Config overrides (`key.sub=value` strings or an object), applied after the variant's config file. */
  overrides?: ConfigOverrides;
}

/** The config folder of a variant name (`s`, `l`, `full`); anything else is taken as a config folder or file. */
export function configDirFor(variantOrConfig: string): string {
  return Object.hasOwn(VARIANTS, variantOrConfig) ? variantConfigDir(variantOrConfig as VariantName) : variantOrConfig;
}

/** A model of a variant (`s`, `l`, `full`), a config folder/file, or an already loaded config. Weights are zero. */
export function createFlashDepth(variantOrConfig: VariantName | string | FlashDepthConfig, options: CreateFlashDepthOptions = {}): FlashDepth {
  let config: FlashDepthConfig;
  if (typeof variantOrConfig === 'string') {
    const dir = configDirFor(variantOrConfig);
    if (!existsSync(dir)) {
      throw new ConfigError(`--config ${variantOrConfig}: no such config folder or file; expected one of ${Object.keys(VARIANTS).join(', ')} or a folder holding config.yaml`);
    }
    config = loadConfig(dir, options.overrides ?? []);
  } else {
    config = variantOrConfig;
  }
  return new FlashDepth(modelSpecFromConfig(config), options);
}

export interface LoadFlashDepthOptions {
  /**
   * Strict (default): every model parameter present with its shape, no unexpected key. Non-strict is for
   * initialising from Depth Anything V2 (no `mamba.*`) and similar partial sources; the report says what was skipped.
   */
  strict?: boolean;
}

/** Loads a checkpoint file (or an open WeightSource) into the model; returns what was loaded and skipped. */
export function loadFlashDepthWeights(model: FlashDepth, checkpoint: string | WeightSource, options: LoadFlashDepthOptions = {}): LoadReport {
  const source = typeof checkpoint === 'string' ? openWeights(checkpoint) : checkpoint;
  try {
    return loadWeights(model, source, { strict: options.strict ?? true });
  } finally {
    if (typeof checkpoint === 'string') source.close();
  }
}

/**
 * Saves every parameter as float32 safetensors under its PyTorch key and in PyTorch layout (the same names and shapes
 * as the official checkpoint), so the file loads back with `loadFlashDepthWeights` and converts to `.pth`. The write
 * is atomic.
 */
export async function saveFlashDepthWeights(model: FlashDepth, path: string, metadata: Record<string, string> = {}): Promise<void> {
  const tensors = [];
  for (const p of model.namedParameters()) {
    const t = tf.tidy(() => toTorchLayout(p.spec.variable.read(), p.spec.layout));
    // Asynchronous readback: WebGPU in Node has no synchronous one (dataSync needs a browser canvas).
    const data = (await t.data()) as Float32Array;
    t.dispose();
    tensors.push({ key: p.key, shape: torchShape(p.spec.shape, p.spec.layout), dtype: 'float32' as const, data });
  }
  writeSafetensors(path, tensors, { format: 'pt', ...metadata });
}
