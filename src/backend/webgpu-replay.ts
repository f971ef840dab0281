/**
 * Recorded-frame replay on the webgpu backend: one streamed frame is run through tfjs once while its GPU commands are
 * recorded, and later frames re-encode that command list directly (pipelines, bind groups, dispatch sizes, copies)
 * without going through tfjs at all. A streamed model runs the same dispatches on the same shapes every frame; tfjs'
 * host cost is ~60 µs per dispatch (kernel selection, shape bookkeeping, uniforms, bind groups), which bounds
 * FlashDepth-S and -L on the H100, while re-encoding a recorded dispatch costs a few µs.
 *
 * Why a replay is exact:
 * - **Same buffers.** Every buffer the recorded commands bind or copy is pinned: tfjs' buffer pool never hands it out
 *   again while the recording lives, even after the tensor that owned it is disposed (`PinnedBuffers`).
 * - **GPU-only reuse inside the frame is kept.** tfjs recycles a freed intermediate's buffer for a later op of the same
 *   frame; the replay issues the commands in the recorded order, so such aliasing means the same thing again.
 * - **Host writes are not reused.** Uniforms and uploaded constants are written from the host once, at recording time
 *   (`queue.writeBuffer`). A pooled buffer could be written twice within a frame, or first by a GPU command, and the
 *   replay would then see only its last contents; so while recording, every host-written buffer is a fresh one,
 *   pinned at once. A host write into any other buffer aborts the recording (`ReplayUnsupported`).
 * - **Inputs and carried state.** The frame's inputs are written into their recorded buffers before the commands. A
 *   carried tensor (the Mamba state) is read by the frame from its recorded "before" buffer and written to its "after"
 *   buffer; each replay first copies after → before, so the model's held state (the "after" tensors) stays current.
 * - **Outputs** are copied into fresh tensors, so that the next replay cannot overwrite what the caller holds.
 *
 * Not recordable (the recording throws `ReplayUnsupported` and nothing is replayed): reading a tensor back, kernel
 * timing (timestamp queries), textures, bind groups other than tfjs' one per dispatch.
 */
import * as tf from '@tensorflow/tfjs-core';
import { FlashDepthError } from '../errors.js';

/** A frame cannot be recorded or replayed here (the caller runs it through tfjs instead). */
export class ReplayUnsupported extends FlashDepthError {}

/** The members of tfjs-backend-webgpu 4.22's BufferManager the pinning uses (private in its typings). */
interface BufferPool {
  acquireBuffer(size: number, usage: number, mappedAtCreation?: boolean, reuse?: boolean): GPUBuffer;
  releaseBuffer(buffer: GPUBuffer, reuse?: boolean): void;
  freeBuffers: Map<string, GPUBuffer[]>;
  numFreeBuffers: number;
}

interface TensorDataLike {
  resource?: unknown;
  values?: unknown;
  dtype: tf.DataType;
  shape: number[];
}

/** The members of tfjs-backend-webgpu 4.22's WebGPUBackend the recording uses (several private in its typings). */
interface BackendInternals {
  device: GPUDevice;
  queue: GPUQueue;
  bufferManager: BufferPool;
  tensorMap: { get(dataId: tf.DataId): TensorDataLike | undefined };
  commandEncoder: GPUCommandEncoder | null;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  uploadToGPU(dataId: tf.DataId): void;
  makeUniforms(uniforms: unknown): GPUBufferBinding;
  tensorToBinding(tensor: tf.TensorInfo | null): unknown;
  makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  recordAndSubmit(program: object, ...rest: unknown[]): void;
}

const INTERNAL_METHODS = ['ensureCommandEncoderReady', 'endComputePassEncoder', 'submitQueue', 'uploadToGPU', 'makeUniforms', 'tensorToBinding', 'makeTensorInfo', 'recordAndSubmit'] as const;

/** The current backend's internals, or why replay is not possible on it. */
function webgpuInternals(): BackendInternals {
  if (tf.getBackend() !== 'webgpu') throw new ReplayUnsupported(`frame replay needs the webgpu backend (current: ${tf.getBackend()})`);
  const b = tf.backend() as unknown as Partial<BackendInternals>;
  const pool = b.bufferManager as Partial<BufferPool> | undefined;
  const missing = INTERNAL_METHODS.filter((m) => typeof b[m] !== 'function');
  if (missing.length > 0 || !b.device || !b.tensorMap || !pool || !(pool.freeBuffers instanceof Map) || typeof pool.releaseBuffer !== 'function') {
    throw new ReplayUnsupported(`frame replay: this tfjs-backend-webgpu lacks the internals of 4.22 it relies on (${missing.join(', ') || 'bufferManager'})`);
  }
  return b as BackendInternals;
}

/** Submits whatever tfjs has recorded but not submitted, so that work issued outside tfjs comes after it. */
function flushBackend(b: BackendInternals): void {
  b.endComputePassEncoder();
  if (b.commandEncoder) b.submitQueue();
}

function poolKey(buffer: GPUBuffer): string {
  return `${buffer.size}_${buffer.usage}`; // BufferManager's key
}

/**
 * Buffers kept out of tfjs' pool while a recording uses them. tfjs' `releaseBuffer` is wrapped once per backend: a
 * pinned buffer released by tfjs (its tensor disposed) is held instead of pooled; a pinned buffer already in the free
 * lists is taken out of them. When its last pin goes, the buffer returns to the pool.
 */
class PinnedBuffers {
  private readonly counts = new Map<GPUBuffer, number>();
  /** Released by tfjs while pinned: still in the pool's used lists. */
  private readonly heldOnRelease = new Set<GPUBuffer>();
  /** Taken out of the free lists: in neither list. */
  private readonly parked = new Set<GPUBuffer>();
  private readonly release: (buffer: GPUBuffer, reuse?: boolean) => void;

  constructor(private readonly pool: BufferPool) {
    this.release = pool.releaseBuffer.bind(pool);
    pool.releaseBuffer = (buffer: GPUBuffer, reuse?: boolean): void => {
      if (this.counts.has(buffer)) this.heldOnRelease.add(buffer);
      else this.release(buffer, reuse);
    };
  }

  pin(buffers: Iterable<GPUBuffer>): void {
    const added = new Set<GPUBuffer>();
    for (const b of buffers) {
      this.counts.set(b, (this.counts.get(b) ?? 0) + 1);
      added.add(b);
    }
    for (const list of this.pool.freeBuffers.values()) {
      for (let i = list.length - 1; i >= 0; i--) {
        const b = list[i]!;
        if (!added.has(b)) continue;
        list.splice(i, 1);
        this.pool.numFreeBuffers--;
        this.parked.add(b);
      }
    }
  }

  unpin(buffers: Iterable<GPUBuffer>): void {
    for (const b of buffers) {
      const n = (this.counts.get(b) ?? 0) - 1;
      if (n > 0) {
        this.counts.set(b, n);
        continue;
      }
      this.counts.delete(b);
      if (this.heldOnRelease.delete(b)) {
        this.release(b, true);
      } else if (this.parked.delete(b)) {
        const key = poolKey(b);
        if (!this.pool.freeBuffers.has(key)) this.pool.freeBuffers.set(key, []);
        this.pool.freeBuffers.get(key)!.push(b);
        this.pool.numFreeBuffers++;
      }
    }
  }

  get size(): number {
    return this.counts.size;
  }
}

const pinsByPool = new WeakMap<BufferPool, PinnedBuffers>();

function pinsOf(b: BackendInternals): PinnedBuffers {
  let pins = pinsByPool.get(b.bufferManager);
  if (!pins) {
    pins = new PinnedBuffers(b.bufferManager);
    pinsByPool.set(b.bufferManager, pins);
  }
  return pins;
}

type RecordedCommand =
  | { kind: 'dispatch'; pipeline: GPUComputePipeline; bindGroup: GPUBindGroup; x: number; y: number; z: number; program: string; outputShape: number[] }
  | { kind: 'copy'; src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; size: number };

/** Replaces members of `target`; running the functions pushed onto `undo` puts the previous ones back. */
function patch<T extends object>(target: T, replacements: Partial<T>, undo: Array<() => void>): void {
  for (const key of Object.keys(replacements) as Array<keyof T>) {
    const own = Object.prototype.hasOwnProperty.call(target, key);
    const previous = target[key];
    target[key] = replacements[key] as T[keyof T];
    undo.push(() => {
      if (own) target[key] = previous;
      else delete target[key];
    });
  }
}

/** A command encoder that records what tfjs encodes into it (and passes everything on). */
function recordingEncoder(real: GPUCommandEncoder, commands: RecordedCommand[], used: Set<GPUBuffer>, program: () => { name: string; outputShape: number[] }): GPUCommandEncoder {
  const unsupported = (what: string) => () => {
    throw new ReplayUnsupported(`frame replay: tfjs used ${what} while a frame was recorded`);
  };
  const encoder = {
    beginComputePass(descriptor?: GPUComputePassDescriptor): GPUComputePassEncoder {
      if (descriptor?.timestampWrites) throw new ReplayUnsupported('frame replay: kernel timing (timestamp queries) is on while a frame is recorded');
      const pass = real.beginComputePass(descriptor);
      let pipeline: GPUComputePipeline | null = null;
      let bindGroup: GPUBindGroup | null = null;
      return {
        setPipeline(p: GPUComputePipeline) {
          pipeline = p;
          pass.setPipeline(p);
        },
        setBindGroup(index: number, group: GPUBindGroup | null, ...rest: unknown[]) {
          if (index !== 0 || rest.length > 0 || group === null) throw new ReplayUnsupported('frame replay: a bind group other than one per dispatch at index 0');
          bindGroup = group;
          pass.setBindGroup(index, group);
        },
        dispatchWorkgroups(x: number, y = 1, z = 1) {
          pass.dispatchWorkgroups(x, y, z);
          const { name, outputShape } = program();
          commands.push({ kind: 'dispatch', pipeline: pipeline!, bindGroup: bindGroup!, x, y, z, program: name, outputShape });
        },
        end() {
          pass.end();
        },
        dispatchWorkgroupsIndirect: unsupported('an indirect dispatch'),
      } as unknown as GPUComputePassEncoder;
    },
    copyBufferToBuffer(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
      if (dst.usage & GPUBufferUsage.MAP_READ) throw new ReplayUnsupported('frame replay: a tensor was read back while a frame was recorded');
      real.copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
      commands.push({ kind: 'copy', src, srcOffset, dst, dstOffset, size });
      used.add(src);
      used.add(dst);
    },
    finish(descriptor?: GPUCommandBufferDescriptor): GPUCommandBuffer {
      return real.finish(descriptor);
    },
    copyBufferToTexture: unsupported('a texture copy'),
    copyTextureToBuffer: unsupported('a texture copy'),
    resolveQuerySet: unsupported('a query set'),
    clearBuffer: unsupported('clearBuffer'),
  };
  return encoder as unknown as GPUCommandEncoder;
}

function gpuBuffer(b: BackendInternals, t: tf.TensorInfo, what: string): GPUBuffer {
  const resource = b.tensorMap.get(t.dataId)?.resource;
  if (!(resource instanceof GPUBuffer)) throw new ReplayUnsupported(`frame replay: ${what} is not in a GPU buffer`);
  return resource;
}

/** GPU time of one recorded dispatch (`RecordedFrame.timeDispatches`). */
export interface DispatchTime {
  /** The tfjs program class that issued it (ours are named in src/kernels). */
  program: string;
  /** The program's output shape (a packed f16 operand: int32 elements of two halves). */
  outputShape: number[];
  workgroups: [number, number, number];
  ms: number;
}

/** What `RecordedFrame.record` runs and how its tensors relate from frame to frame. */
export interface FrameRecordingSpec {
  /** The frame's inputs: their buffers get the next frame's values before each replay. */
  inputs: readonly tf.Tensor[];
  /**
   * The recurrent tensors, read before the frame (what it reads) and after it (what it wrote, kept by the caller's
   * model as its state): equal in number, shape and dtype.
   */
  carried: () => readonly tf.Tensor[];
  /** Runs the frame through tfjs and returns its outputs (the recording keeps them; the caller gets copies). */
  run: () => tf.Tensor[];
}

interface OutputSlot {
  buffer: GPUBuffer;
  shape: number[];
  dtype: tf.DataType;
  bytes: number;
}

/** One recorded frame of a streamed model, replayable while the model's carried tensors are the ones it wrote. */
export class RecordedFrame {
  private disposed = false;

  private constructor(
    private readonly backend: BackendInternals,
    private readonly commands: readonly RecordedCommand[],
    private readonly pinned: readonly GPUBuffer[],
    private readonly inputs: ReadonlyArray<{ buffer: GPUBuffer; shape: number[]; dtype: tf.DataType }>,
    private readonly carriedBefore: readonly GPUBuffer[],
    private readonly carriedAfter: readonly tf.Tensor[],
    /** The carried tensors' buffers, fixed while `matches` holds (a live tensor keeps its buffer). */
    private readonly carriedAfterBuffers: readonly GPUBuffer[],
    private readonly outputs: readonly OutputSlot[],
    private readonly outputTensors: readonly tf.Tensor[],
  ) {}

  /**
   * Runs `spec.run()` once through tfjs while recording its GPU commands; returns that frame's outputs (copies, when
   * recorded) and the recording, or null and the reason where the frame ran but cannot be replayed. Throws
   * ReplayUnsupported where tfjs did something unrecordable during the frame: `run` was then interrupted by the throw
   * (whatever it had issued was submitted, and its tidy scopes freed it), so the frame can be run again.
   */
  static record(spec: FrameRecordingSpec): { frame: RecordedFrame; outputs: tf.Tensor[] } | { frame: null; outputs: tf.Tensor[]; reason: string } {
    const b = webgpuInternals();
    const pins = pinsOf(b);
    flushBackend(b);
    for (const t of spec.inputs) b.uploadToGPU(t.dataId);
    const before = spec.carried();
    for (const t of before) b.uploadToGPU(t.dataId);
    const inputs = spec.inputs.map((t, i) => ({ buffer: gpuBuffer(b, t, `input ${i}`), shape: [...t.shape], dtype: t.dtype }));
    const carriedBefore = before.map((t, i) => gpuBuffer(b, t, `carried tensor ${i}`));

    const commands: RecordedCommand[] = [];
    const used = new Set<GPUBuffer>();
    const hostWritten = new Set<GPUBuffer>();
    let hostWriting = 0;
    const undo: Array<() => void> = [];
    const acquire = b.bufferManager.acquireBuffer.bind(b.bufferManager);
    const upload = b.uploadToGPU.bind(b);
    const uniforms = b.makeUniforms.bind(b);
    const binding = b.tensorToBinding.bind(b);
    const write = b.queue.writeBuffer.bind(b.queue);
    const submitProgram = b.recordAndSubmit.bind(b);
    let program = { name: '', outputShape: [] as number[] };
    const hostWrite = <R>(f: () => R): R => {
      hostWriting++;
      try {
        return f();
      } finally {
        hostWriting--;
      }
    };
    let outputs: tf.Tensor[];
    try {
      patch(b.bufferManager, {
        acquireBuffer: (size: number, usage: number, mappedAtCreation = false, reuse = true): GPUBuffer => {
          if (hostWriting === 0) return acquire(size, usage, mappedAtCreation, reuse);
          // A fresh buffer for every host write while recording, pinned at once so that tfjs cannot reuse it. Acquired
          // unpooled, it may be the first of its size and usage (a program or tensor first used while recording):
          // the pool's free list for that key is made here, as a pooled acquire would, for its later release.
          const fresh = acquire(size, usage, mappedAtCreation, false);
          const key = poolKey(fresh);
          if (!b.bufferManager.freeBuffers.has(key)) b.bufferManager.freeBuffers.set(key, []);
          hostWritten.add(fresh);
          pins.pin([fresh]);
          return fresh;
        },
      }, undo);
      patch(b, {
        uploadToGPU: (dataId: tf.DataId) => hostWrite(() => upload(dataId)),
        makeUniforms: (u: unknown) => {
          const bound = hostWrite(() => uniforms(u));
          used.add(bound.buffer);
          return bound;
        },
        tensorToBinding: (t: tf.TensorInfo | null) => {
          const bound = binding(t) as GPUBufferBinding | null;
          if (bound && bound.buffer instanceof GPUBuffer) used.add(bound.buffer);
          else if (bound) throw new ReplayUnsupported('frame replay: a tensor bound as a texture');
          return bound;
        },
        ensureCommandEncoderReady: () => {
          if (!b.commandEncoder) b.commandEncoder = recordingEncoder(b.device.createCommandEncoder(), commands, used, () => program);
        },
        recordAndSubmit: (p: object, ...rest: unknown[]) => {
          program = { name: p.constructor.name, outputShape: [...((p as { outputShape?: number[] }).outputShape ?? [])] };
          submitProgram(p, ...rest);
        },
      }, undo);
      patch(b.queue, {
        writeBuffer: ((buffer: GPUBuffer, ...rest: unknown[]) => {
          if (!hostWritten.has(buffer)) throw new ReplayUnsupported('frame replay: a host write into a pooled buffer while a frame was recorded');
          (write as (...args: unknown[]) => void)(buffer, ...rest);
        }) as GPUQueue['writeBuffer'],
      }, undo);
      outputs = spec.run();
      flushBackend(b);
    } catch (e) {
      // Submit what was issued before the throw, so that tfjs' encoder state stays consistent.
      try {
        flushBackend(b);
      } catch {
        b.commandEncoder = null;
      }
      pins.unpin(hostWritten);
      throw e;
    } finally {
      for (const u of undo.reverse()) u();
    }

    const after = spec.carried();
    const reason = after.length !== before.length || after.some((t, i) => !tf.util.arraysEqual(t.shape, before[i]!.shape) || t.dtype !== before[i]!.dtype)
      ? 'the carried tensors after the frame do not match those before it'
      : outputs.some((t) => t.dtype !== 'float32' && t.dtype !== 'int32') ? 'outputs must be float32 or int32'
      : [...after, ...outputs].some((t) => !(b.tensorMap.get(t.dataId)?.resource instanceof GPUBuffer)) ? 'an output is not in a GPU buffer'
      : null;
    if (reason !== null) {
      pins.unpin(hostWritten);
      return { frame: null, outputs, reason: `frame replay: ${reason}` };
    }
    const carriedAfter = after.map((t, i) => gpuBuffer(b, t, `carried tensor ${i} after the frame`));
    const slots = outputs.map((t, i) => ({ buffer: gpuBuffer(b, t, `output ${i}`), shape: [...t.shape], dtype: t.dtype, bytes: t.size * 4 }));
    const pinned = [...new Set([...used, ...inputs.map((i) => i.buffer), ...carriedBefore, ...carriedAfter, ...slots.map((s) => s.buffer)])];
    pins.pin(pinned);
    pins.unpin(hostWritten); // their first pin, taken when they were written (the bound ones are in `pinned`)
    const frame = new RecordedFrame(b, commands, pinned, inputs, carriedBefore, after.slice(), carriedAfter, slots, outputs);
    const encoder = b.device.createCommandEncoder();
    const copies = frame.copyOutputs(encoder);
    b.queue.submit([encoder.finish()]);
    return { frame, outputs: copies };
  }

  /** Dispatches one replay encodes. */
  get dispatches(): number {
    return this.commands.filter((c) => c.kind === 'dispatch').length;
  }

  /**
   * Whether a replay would continue from the recording's state: `carried` are the tensors the recorded frame wrote
   * (the model has not been reset or run through tfjs since), and the inputs have the recorded shapes and dtypes.
   */
  matches(inputs: readonly tf.Tensor[], carried: readonly tf.Tensor[]): boolean {
    return !this.disposed
      && carried.length === this.carriedAfter.length && carried.every((t, i) => t === this.carriedAfter[i] && !t.isDisposed)
      && inputs.length === this.inputs.length && inputs.every((t, i) => t.dtype === this.inputs[i]!.dtype && tf.util.arraysEqual(t.shape, this.inputs[i]!.shape));
  }

  /**
   * The next frame: `inputs` (shapes and dtypes as recorded; host values are written directly, GPU tensors copied)
   * go through the recorded commands; returns fresh output tensors the caller owns. Check `matches` first.
   */
  replay(inputs: readonly tf.Tensor[]): tf.Tensor[] {
    const encoder = this.beginFrame(inputs);
    let pass: GPUComputePassEncoder | null = null;
    for (const c of this.commands) {
      if (c.kind === 'dispatch') {
        pass ??= encoder.beginComputePass();
        pass.setPipeline(c.pipeline);
        pass.setBindGroup(0, c.bindGroup);
        pass.dispatchWorkgroups(c.x, c.y, c.z);
      } else {
        pass?.end();
        pass = null;
        encoder.copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.size);
      }
    }
    pass?.end();
    const outputs = this.copyOutputs(encoder);
    this.backend.queue.submit([encoder.finish()]);
    return outputs;
  }

  /**
   * GPU time of every recorded dispatch: `frames` replays of `inputs` back to back (the carried state advances as in
   * any replay), each dispatch in its own compute pass between two timestamp queries. The GPU never waits for the
   * host in between, so its clock stays where a streamed model keeps it — unlike timing one tfjs kernel at a time.
   * Per dispatch, the median over the frames. Needs the `timestamp-query` feature.
   */
  async timeDispatches(inputs: readonly tf.Tensor[], frames: number): Promise<{ dispatches: DispatchTime[]; frameMs: number }> {
    const b = this.backend;
    if (!b.device.features.has('timestamp-query')) throw new ReplayUnsupported('frame replay: timing dispatches needs the timestamp-query feature');
    const dispatches = this.commands.filter((c): c is Extract<RecordedCommand, { kind: 'dispatch' }> => c.kind === 'dispatch');
    const count = 2 * dispatches.length;
    const querySet = b.device.createQuerySet({ type: 'timestamp', count });
    const resolved = b.device.createBuffer({ size: count * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const readable = Array.from({ length: frames }, () => b.device.createBuffer({ size: count * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }));
    try {
      for (const target of readable) {
        const encoder = this.beginFrame(inputs);
        let q = 0;
        for (const c of this.commands) {
          if (c.kind === 'dispatch') {
            const pass = encoder.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: q, endOfPassWriteIndex: q + 1 } });
            q += 2;
            pass.setPipeline(c.pipeline);
            pass.setBindGroup(0, c.bindGroup);
            pass.dispatchWorkgroups(c.x, c.y, c.z);
            pass.end();
          } else {
            encoder.copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.size);
          }
        }
        encoder.resolveQuerySet(querySet, 0, count, resolved, 0);
        encoder.copyBufferToBuffer(resolved, 0, target, 0, count * 8);
        b.queue.submit([encoder.finish()]);
      }
      const stamps: BigUint64Array[] = [];
      for (const target of readable) {
        await target.mapAsync(GPUMapMode.READ);
        stamps.push(new BigUint64Array(target.getMappedRange().slice(0)));
        target.unmap();
      }
      const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
      const ms = (t: BigUint64Array, i: number, j: number) => Number(t[j]! - t[i]!) / 1e6;
      return {
        dispatches: dispatches.map((c, i) => ({ program: c.program, outputShape: c.outputShape, workgroups: [c.x, c.y, c.z], ms: median(stamps.map((t) => ms(t, 2 * i, 2 * i + 1))) })),
        frameMs: median(stamps.map((t) => ms(t, 0, count - 1))),
      };
    } finally {
      querySet.destroy();
      resolved.destroy();
      for (const r of readable) r.destroy();
    }
  }

  /** A command encoder holding this frame's input writes and carried-state copies (tfjs' pending work submitted first). */
  private beginFrame(inputs: readonly tf.Tensor[]): GPUCommandEncoder {
    if (this.disposed) throw new Error('RecordedFrame: replay after dispose()');
    if (!this.matches(inputs, this.carriedAfter)) throw new ReplayUnsupported('frame replay: the inputs differ from the recorded frame\'s in shape or dtype');
    const b = this.backend;
    flushBackend(b);
    const encoder = b.device.createCommandEncoder();
    inputs.forEach((t, i) => {
      const slot = this.inputs[i]!;
      const data = b.tensorMap.get(t.dataId)!;
      const bytes = t.size * 4;
      if (data.resource == null && (data.values instanceof Float32Array || data.values instanceof Int32Array) && data.values.length === t.size) {
        // Host values not yet uploaded: straight into the recorded buffer (queue-ordered before this frame's commands).
        b.queue.writeBuffer(slot.buffer, 0, data.values.buffer, data.values.byteOffset, bytes);
      } else {
        b.uploadToGPU(t.dataId);
        flushBackend(b);
        encoder.copyBufferToBuffer(gpuBuffer(b, t, `input ${i}`), 0, slot.buffer, 0, bytes);
      }
    });
    this.carriedAfterBuffers.forEach((from, i) => {
      const to = this.carriedBefore[i]!;
      if (from !== to) encoder.copyBufferToBuffer(from, 0, to, 0, this.carriedAfter[i]!.size * 4);
    });
    return encoder;
  }

  /** Fresh tensors holding copies of the output buffers, the copies encoded into `encoder` (the caller submits it). */
  private copyOutputs(encoder: GPUCommandEncoder): tf.Tensor[] {
    const b = this.backend;
    return this.outputs.map((slot) => {
      const buffer = b.bufferManager.acquireBuffer(slot.bytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
      encoder.copyBufferToBuffer(slot.buffer, 0, buffer, 0, slot.bytes);
      const info = b.makeTensorInfo(slot.shape, slot.dtype);
      b.tensorMap.get(info.dataId)!.resource = buffer;
      return tf.engine().makeTensorFromTensorInfo(info);
    });
  }

  /** Unpins the buffers (they return to tfjs' pool) and frees the recorded outputs. The carried tensors stay the model's. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    tf.dispose([...this.outputTensors]);
    pinsOf(this.backend).unpin(this.pinned);
  }
}

/** Buffers currently pinned by recordings on the webgpu backend (0 elsewhere): for tests and leak checks. */
export function pinnedBufferCount(): number {
  if (tf.getBackend() !== 'webgpu') return 0;
  const pool = (tf.backend() as unknown as Partial<BackendInternals>).bufferManager;
  return pool ? (pinsByPool.get(pool)?.size ?? 0) : 0;
}
