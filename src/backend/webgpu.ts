/**
 * WebGPU through Dawn (the `webgpu` npm package). We create the device ourselves instead of letting tfjs do it: tfjs
 * asks for default-ish limits and never for shader-f16 or subgroups, and a tensor larger than
 * maxStorageBufferBindingSize then silently reads back as zeros (tfjs-notes §4.2). So: request the adapter's maxima
 * and the features our kernels can use, then register tfjs' WebGPUBackend around that device.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../errors.js';
import { log } from '../log.js';
import { BackendUnavailable, shortReason, type InitializedBackend } from './types.js';
import { cacheBindGroups, memoizeBindGroupLayouts, useQueueWriteUploads, type BindGroupCacheStats } from './webgpu-host.js';

/** Instance toggles: the experimental features (subgroup matrices) and f16 on NVIDIA's Vulkan driver. */
const DAWN_FEATURES = ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'];
/**
 * Dropped by default: Tint's robustness transform, which clamps every index into storage and workgroup memory. WebGPU
 * gives an out-of-range access no defined value (any in-bounds value or zero), so a correct kernel never depends on
 * the clamps; they exist so that untrusted web pages cannot read outside their buffers, and this process runs only
 * tfjs' and our own shaders. They cost 23–31% of FlashDepth-L's and Full's frame on the H100 (bench/README.md), where
 * they sit in every workgroup-memory access of the tensor-core kernels. ONNX Runtime's WebGPU provider drops them too.
 */
const ROBUSTNESS_OFF = 'disable_robustness';
/**
 * Disabled: Dawn rounds every timestamp query down to a multiple of 2^16 ns (65.5 µs) so that web pages cannot time
 * cache side channels. That made `bench --profile` useless per dispatch (sessions 8–11: most of a frame's ~450
 * dispatches read 0 or 65.5 µs; only sums over many were meaningful). This process runs only our own shaders.
 */
const DISABLED_DAWN_FEATURES = ['timestamp_quantization'];

/** Requested when the adapter offers them. */
export const WANTED_FEATURES = ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix', 'timestamp-query'] as const;

/** The limits tfjs copies from the adapter, plus a few our own kernels need; all requested at the adapter's maximum. */
export const MAX_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeInvocationsPerWorkgroup',
  'maxStorageBuffersPerShaderStage',
] as const;

/** What our own WGSL kernels may use on the current webgpu device (src/kernels picks programs from it). */
export interface WebGPUCapabilities {
  /** `shader-f16` was granted: f16 arithmetic and storage in WGSL. */
  f16: boolean;
  /** `subgroups` was granted and every subgroup has this many invocations (0: unknown or varying). */
  subgroupSize: number;
  /** A tensor-core tile shape for f16 operands with f32 accumulation (`chromium-experimental-subgroup-matrix`). */
  subgroupMatrix: { m: number; n: number; k: number } | null;
  maxWorkgroupStorageBytes: number;
}

const NO_CAPABILITIES: WebGPUCapabilities = { f16: false, subgroupMatrix: null, subgroupSize: 0, maxWorkgroupStorageBytes: 16384 };
let capabilities: WebGPUCapabilities = NO_CAPABILITIES;

let bindGroupStats: (() => BindGroupCacheStats) | null = null;

/** Bind groups created and served from the cache on the current webgpu device (null before initWebGPU). */
export function webgpuBindGroupStats(): BindGroupCacheStats | null {
  return bindGroupStats ? bindGroupStats() : null;
}

/** The capabilities of the device behind the registered webgpu backend (none before initWebGPU or after release). */
export function webgpuCapabilities(): WebGPUCapabilities {
  return capabilities;
}

interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

function readCapabilities(adapter: GPUAdapter, features: readonly string[], limits: Record<string, number>): WebGPUCapabilities {
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number; subgroupMatrixConfigs?: SubgroupMatrixConfig[] };
  const f16 = features.includes('shader-f16');
  const fixedSize = info.subgroupMinSize !== undefined && info.subgroupMinSize === info.subgroupMaxSize ? info.subgroupMinSize : 0;
  const subgroupSize = features.includes('subgroups') ? fixedSize : 0;
  // Our tensor-core kernels are written for 16×16×16 tiles of f16 → f32 and subgroups of 32 (NVIDIA's layout).
  const square = (info.subgroupMatrixConfigs ?? []).find((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === 16 && c.N === 16 && c.K === 16);
  const subgroupMatrix = f16 && subgroupSize === 32 && features.includes('chromium-experimental-subgroup-matrix') && square ? { m: 16, n: 16, k: 16 } : null;
  return { f16, subgroupSize, subgroupMatrix, maxWorkgroupStorageBytes: limits['maxComputeWorkgroupStorageSize'] ?? 16384 };
}

/**
 * WGSL requires `enable` and `diagnostic` directives before any declaration, but tfjs puts its own header before a
 * program's code. Our kernels write their directives at the top of their code; this moves them to the front.
 */
export function hoistDirectives(code: string): string {
  const directive = /^[ \t]*(?:enable|diagnostic)\b[^;\n]*;[ \t]*$/gm;
  const found = code.match(directive);
  if (!found) return code;
  const unique = [...new Set(found.map((d) => d.trim()))];
  return `${unique.join('\n')}\n${code.replace(directive, '')}`;
}

/**
 * tfjs declares every input as a read-only array of its tensor's dtype. A kernel that keeps f16 data in an int32
 * tensor (two halves per element, see src/kernels/tc-attention_webgpu.ts) retypes the binding with a line
 * `// flashdepth:bind NAME array<T>` in its code, so that subgroup-matrix loads can take a pointer to `array<f16>`; a
 * kernel with a second output (tfjs programs have one) binds it as an input and makes it writable with a line
 * `// flashdepth:writes NAME` (src/kernels/tc-matmul_webgpu.ts, SplitKReduceLayerNormProgram).
 */
export function retypeBindings(code: string): string {
  const marker = /^[ \t]*\/\/ flashdepth:bind (\w+) (array<[^;\n]+>)[ \t]*$/gm;
  let out = code;
  for (const [, name, type] of code.matchAll(marker)) {
    out = out.replace(new RegExp(`(var<storage, read(?:_write)?> ${name}\\s*:\\s*)array<[^;]*>;`), `$1${type};`);
  }
  for (const [, name] of code.matchAll(/^[ \t]*\/\/ flashdepth:writes (\w+)[ \t]*$/gm)) {
    out = out.replace(new RegExp(`var<storage, read> ${name}(\\s*:)`), `var<storage, read_write> ${name}$1`);
  }
  return out;
}

/** Tests only: a last rewrite of every shader (see emulateSubgroupMatrices). */
let shaderTransform: ((code: string) => string) | null = null;

/** Every shader module the device compiles goes through hoistDirectives and retypeBindings. */
function preprocessShaders(device: GPUDevice): void {
  const create = device.createShaderModule.bind(device);
  device.createShaderModule = (descriptor: GPUShaderModuleDescriptor) => {
    const code = retypeBindings(hoistDirectives(descriptor.code));
    return create({ ...descriptor, code: shaderTransform ? shaderTransform(code) : code });
  };
}

/**
 * Tests only: the current webgpu device claims 16×16×16 f16 subgroup matrices, and every shader it compiles from now
 * on goes through `transform` (test/helpers/subgroup-matrix-emulation.ts rewrites the subgroup-matrix builtins into
 * plain WGSL), so that the tensor-core programs run on a software device without them. Undone by releaseWebGPU.
 */
export function emulateSubgroupMatrices(transform: (code: string) => string): void {
  if (!capabilities.f16) throw new Error('emulateSubgroupMatrices: the webgpu device has no shader-f16');
  shaderTransform = transform;
  capabilities = { ...capabilities, subgroupMatrix: { m: 16, n: 16, k: 16 } };
}

/**
 * The `enable-dawn-features=` toggle list for `create`: ours, without `disable_robustness` when
 * FLASHDEPTH_WEBGPU_ROBUSTNESS=on (Dawn's bounds clamps back: the first thing to try when a GPU result looks wrong or
 * the device is lost), plus FLASHDEPTH_DAWN_FEATURES (comma-separated extra Dawn toggles, for measurements); and the
 * `disable-dawn-features=` list (timestamp quantization).
 */
export function dawnToggles(env: NodeJS.ProcessEnv = process.env): string[] {
  const robustness = (env['FLASHDEPTH_WEBGPU_ROBUSTNESS'] ?? 'off').trim().toLowerCase();
  if (robustness !== 'on' && robustness !== 'off') {
    throw new ConfigError(`FLASHDEPTH_WEBGPU_ROBUSTNESS must be "on" or "off", got "${env['FLASHDEPTH_WEBGPU_ROBUSTNESS']}"`);
  }
  const extra = (env['FLASHDEPTH_DAWN_FEATURES'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const features = [...DAWN_FEATURES, ...(robustness === 'off' ? [ROBUSTNESS_OFF] : []), ...extra];
  return [`enable-dawn-features=${[...new Set(features)].join(',')}`, `disable-dawn-features=${DISABLED_DAWN_FEATURES.join(',')}`];
}

interface NavigatorWithGpu {
  gpu?: GPU;
}

/** The Vulkan loader Dawn needs on Linux. Looking first keeps Dawn's own multi-line warning off stderr. */
export function vulkanLoaderFound(env: NodeJS.ProcessEnv = process.env): boolean {
  if (process.platform !== 'linux') return true;
  const lib = 'libvulkan.so.1';
  const triple = process.arch === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';
  const dirs = [...(env['LD_LIBRARY_PATH'] ?? '').split(':').filter(Boolean), `/usr/lib/${triple}`, `/lib/${triple}`, '/usr/lib', '/lib', '/usr/lib64', '/lib64'];
  if (dirs.some((d) => existsSync(join(d, lib)))) return true;
  try {
    return readFileSync('/etc/ld.so.cache').includes(lib);
  } catch {
    return false;
  }
}

function setNavigatorGpu(gpu: GPU | undefined): void {
  const g = globalThis as { navigator?: NavigatorWithGpu };
  if (g.navigator === undefined) {
    if (gpu === undefined) return;
    Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  }
  // dawn.node keeps the process alive while navigator.gpu references its instance; releaseWebGPU() deletes it.
  if (gpu === undefined) delete g.navigator!.gpu;
  else Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, writable: true });
}

function describeAdapter(info: GPUAdapterInfo): string {
  // NVIDIA's Vulkan driver puts the card in `device` (nvidia-h100-80gb-hbm3) and the driver version in `description`.
  const parts = [info.device, info.description].filter((s, i, all) => s && all.indexOf(s) === i);
  const name = parts.length > 0 ? parts.join(', ') : info.vendor || 'unknown adapter';
  const extra = [info.vendor, info.architecture].filter((s) => s && !name.toLowerCase().includes(s.toLowerCase()));
  return extra.length > 0 ? `${name} (${extra.join(', ')})` : name;
}

function gib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1).replace(/\.0$/, '')} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
}

/** `checkVulkan`: in auto mode, skip without touching Dawn when no Vulkan loader exists. */
export async function initWebGPU(checkVulkan: boolean): Promise<InitializedBackend> {
  if (checkVulkan && !vulkanLoaderFound()) throw new BackendUnavailable('no Vulkan loader (libvulkan.so.1 not found)');
  let dawn: typeof import('webgpu');
  try {
    dawn = await import('webgpu');
  } catch (err) {
    throw new BackendUnavailable(`the webgpu package failed to load: ${shortReason(err, 80)}`);
  }
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create(dawnToggles());
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    const hint = process.platform === 'linux' && !vulkanLoaderFound() ? ' (libvulkan.so.1 not found)' : '';
    throw new BackendUnavailable(`no WebGPU adapter${hint}`);
  }
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  for (const key of MAX_LIMITS) {
    const value = (adapter.limits as unknown as Record<string, number | undefined>)[key];
    if (typeof value === 'number') requiredLimits[key] = value;
  }
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  } catch (err) {
    throw new BackendUnavailable(`requestDevice failed: ${shortReason(err, 80)}`);
  }
  reportUncapturedErrors(device);
  preprocessShaders(device);

  // tfjs checks navigator.gpu when it constructs the backend; register our factory in place of its own.
  setNavigatorGpu(gpu);
  const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  memoizeBindGroupLayouts(device);
  // FLASHDEPTH_BIND_GROUP_CACHE=off: tfjs' own one-bind-group-per-dispatch (before/after measurements, debugging).
  bindGroupStats = process.env['FLASHDEPTH_BIND_GROUP_CACHE'] === 'off' ? null : cacheBindGroups(device);
  tf.registerBackend('webgpu', () => {
    const backend = new WebGPUBackend(device, adapter.info);
    useQueueWriteUploads(backend);
    return backend;
  });
  let ok = false;
  try {
    ok = await tf.setBackend('webgpu');
  } finally {
    if (!ok) releaseWebGPU();
  }
  if (!ok) throw new BackendUnavailable('the tfjs webgpu backend failed to initialise');
  capabilities = readCapabilities(adapter, requiredFeatures, requiredLimits);
  const batch = Number(process.env['FLASHDEPTH_SUBMIT_BATCH'] ?? '');
  if (Number.isInteger(batch) && batch > 0) tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', batch);
  const binding = requiredLimits['maxStorageBufferBindingSize'];
  const device_ = describeAdapter(adapter.info) + (binding !== undefined ? `, max binding ${gib(binding)}` : '');
  return { name: 'webgpu', device: device_, features: [...requiredFeatures], limits: requiredLimits };
}

let pendingDeviceError: string | null = null;

/** Records a GPU error for `takeDeviceError` (the device's uncaptured-error listener; tests call it directly). */
export function recordDeviceError(message: string): void {
  pendingDeviceError ??= message;
}

/** The first GPU error since the last call (then cleared), or null. */
export function takeDeviceError(): string | null {
  const message = pendingDeviceError;
  pendingDeviceError = null;
  return message;
}

/**
 * Dawn validation and out-of-memory errors (an oversized binding, a buffer that could not be allocated) otherwise only
 * show up as zeros or garbage in the results: they are logged once each and kept for `assertDeviceHealthy`.
 */
function reportUncapturedErrors(device: GPUDevice): void {
  const seen = new Set<string>();
  device.addEventListener('uncapturederror', (event) => {
    const message = shortReason((event as GPUUncapturedErrorEvent).error.message, 300);
    if (!seen.has(message)) log.warn(`webgpu: ${message}`);
    seen.add(message);
    recordDeviceError(message);
  });
}

/** Drops tfjs' webgpu backend and the Dawn instance so the process can exit. */
export function releaseWebGPU(): void {
  if (tf.findBackend('webgpu')) tf.removeBackend('webgpu');
  capabilities = NO_CAPABILITIES;
  shaderTransform = null;
  bindGroupStats = null;
  setNavigatorGpu(undefined);
}
