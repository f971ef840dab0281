/**
 * Host-side costs of tfjs-backend-webgpu (4.22) that dominate small models, trimmed without changing what runs on the
 * GPU. Measured with `node --cpu-prof` on FlashDepth-S at 518² on the H100 (scripts/cpuprofile-top.mjs): a frame's
 * ~200 dispatches took ~23 ms of host time, of which ~11% was `GPUDevice.createBuffer` for uploads and ~25% the
 * per-dispatch recording.
 *
 * - Uploads: tfjs copies every tensor with host values (each frame's input, and every scalar a model op makes from a
 *   JS number) through a freshly created mapped staging buffer that is destroyed after the copy. `queue.writeBuffer`
 *   into the pooled destination buffer does the same through Dawn's internal staging ring. Safe for the same reason
 *   tfjs' own uniform writes are: a buffer in the pool is referenced by no unsubmitted command (tfjs defers the
 *   release of buffers used by the open command encoder to its next submit), and writeBuffer is ordered on the queue
 *   after every command submitted before it.
 * - `pipeline.getBindGroupLayout(0)` is called for every dispatch; each call crosses into Dawn and makes a new
 *   wrapper. The layout of a pipeline never changes, so it is looked up once.
 */
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import * as tf from '@tensorflow/tfjs-core';

/** Replaces the backend's upload of host values with a queue.writeBuffer into a pooled buffer. */
export function useQueueWriteUploads(backend: WebGPUBackend): void {
  const original = backend.uploadToGPU.bind(backend);
  backend.uploadToGPU = (dataId: tf.DataId): void => {
    const data = backend.tensorMap.get(dataId);
    const values = data.values as tf.TypedArray | null | undefined;
    const elements = tf.util.sizeFromShape(data.shape);
    const plain = data.dtype === 'float32' || data.dtype === 'int32' || data.dtype === 'bool';
    if (data.resource != null || values == null || !plain || elements === 0 || !ArrayBuffer.isView(values) || values.length !== elements) {
      original(dataId);
      return;
    }
    // GPU layout: float32 as f32, int32 and bool as i32 (bool values arrive as bytes).
    const typed = data.dtype === 'float32'
      ? (values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>))
      : (values instanceof Int32Array ? values : Int32Array.from(values as ArrayLike<number>));
    // The usage tfjs gives every tensor buffer, so the pool serves both paths alike.
    const buffer = backend.bufferManager.acquireBuffer(elements * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
    backend.queue.writeBuffer(buffer, 0, typed.buffer, typed.byteOffset, elements * 4);
    data.resource = buffer;
    data.values = null as unknown as tf.BackendValues;
  };
}

/** Makes `getBindGroupLayout` of every compute pipeline the device creates from now on a cached lookup. */
export function memoizeBindGroupLayouts(device: GPUDevice): void {
  const remember = (pipeline: GPUComputePipeline): GPUComputePipeline => {
    const lookup = pipeline.getBindGroupLayout.bind(pipeline);
    const layouts = new Map<number, GPUBindGroupLayout>();
    pipeline.getBindGroupLayout = (index: number) => {
      let layout = layouts.get(index);
      if (!layout) {
        layout = lookup(index);
        layouts.set(index, layout);
      }
      return layout;
    };
    return pipeline;
  };
  const create = device.createComputePipeline.bind(device);
  device.createComputePipeline = (descriptor: GPUComputePipelineDescriptor) => remember(create(descriptor));
  const createAsync = device.createComputePipelineAsync.bind(device);
  device.createComputePipelineAsync = async (descriptor: GPUComputePipelineDescriptor) => remember(await createAsync(descriptor));
}

/** Bind groups created and bind groups served from the cache since the device was wrapped (for tests and benches). */
export interface BindGroupCacheStats {
  created: number;
  reused: number;
}

const MAX_CACHED_BIND_GROUPS = 4096;

/**
 * Caches `createBindGroup` by (layout, bound buffer ranges). tfjs creates a bind group for every dispatch, and Dawn's
 * createBindGroup (validation, descriptor-set allocation and update) was the largest share of the per-dispatch host
 * time. A streamed model repeats the same dispatches on the same pooled buffers frame after frame, so after the first
 * frames almost every bind group is one already made. A bind group only references its buffers: reusing it is valid
 * while they live, and a destroyed buffer (tfjs destroys only staging buffers, which are never bound, and everything
 * on dispose) is never bound again, so its entries merely age out of the bounded, least-recently-used cache.
 * Descriptors with anything but whole-or-ranged buffer bindings (textures, samplers) are passed through.
 */
export function cacheBindGroups(device: GPUDevice): () => BindGroupCacheStats {
  const stats: BindGroupCacheStats = { created: 0, reused: 0 };
  const ids = new WeakMap<object, number>();
  let nextId = 1;
  const idOf = (o: object): number => {
    let id = ids.get(o);
    if (id === undefined) {
      id = nextId++;
      ids.set(o, id);
    }
    return id;
  };
  const cache = new Map<string, GPUBindGroup>();
  const create = device.createBindGroup.bind(device);
  device.createBindGroup = (descriptor: GPUBindGroupDescriptor): GPUBindGroup => {
    let key = `${idOf(descriptor.layout)}`;
    for (const entry of descriptor.entries) {
      const resource = entry.resource as GPUBufferBinding;
      if (typeof resource !== 'object' || resource === null || !('buffer' in resource)) {
        stats.created++;
        return create(descriptor);
      }
      key += `|${entry.binding}:${idOf(resource.buffer)}:${resource.offset ?? 0}:${resource.size ?? -1}`;
    }
    const hit = cache.get(key);
    if (hit) {
      // Re-insert: Map order is the recency order the eviction below relies on.
      cache.delete(key);
      cache.set(key, hit);
      stats.reused++;
      return hit;
    }
    const group = create(descriptor);
    stats.created++;
    cache.set(key, group);
    if (cache.size > MAX_CACHED_BIND_GROUPS) cache.delete(cache.keys().next().value as string);
    return group;
  };
  return () => ({ ...stats });
}
