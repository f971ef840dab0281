/**
 * safetensors files (https://github.com/huggingface/safetensors format): u64 little-endian header length, a JSON
 * header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}` padded with spaces to a multiple
 * of 8 bytes, then the raw little-endian tensor bytes. This is the project's own weight format: reading needs no
 * pickle, and each tensor is one positioned read.
 */
import { closeSync, fstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { CheckpointError } from '../errors.js';
import { DTYPE_BYTES, float32ToBfloat16Bits, float32ToFloat16Bits, storedToFloat32 } from './half.js';
import type { StoredDtype, TensorInfo, WeightSource } from './weight-source.js';
import { readExactly } from './zip.js';
import { openWeightFile } from './weight-file.js';

const CODE_OF: Record<StoredDtype, string> = {
  float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64', int64: 'I64', int32: 'I32', int16: 'I16',
  int8: 'I8', uint8: 'U8', bool: 'BOOL',
};
const DTYPE_OF: Record<string, StoredDtype> = Object.fromEntries(
  Object.entries(CODE_OF).map(([dtype, code]) => [code, dtype as StoredDtype]),
);

/** Header JSON larger than this is treated as corrupt (real headers of 1000-tensor models are ~100 KB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

interface Entry {
  dtype: StoredDtype;
  shape: number[];
  /** Absolute file offsets. */
  begin: number;
  end: number;
}

/** Reads the header of a safetensors file; exported so `openWeights` can sniff a file's format cheaply. */
export function looksLikeSafetensors(head: Buffer, fileSize: number): boolean {
  if (head.length < 9) return false;
  const n = head.readBigUInt64LE(0);
  return n >= 2n && n <= BigInt(Math.min(MAX_HEADER_BYTES, fileSize - 8)) && head[8] === 0x7b; // '{'
}

/** A safetensors file opened for lazy reading. */
export class SafetensorsFile implements WeightSource {
  readonly path: string;
  /** The `__metadata__` string map (empty if absent). */
  readonly metadata: Record<string, string> = {};
  private readonly fd: number;
  private readonly entries = new Map<string, Entry>();
  private closed = false;

  constructor(path: string) {
    this.path = path;
    this.fd = openWeightFile(path);
    try {
      this.parseHeader();
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  info(key: string): TensorInfo {
    const e = this.entry(key);
    return { shape: [...e.shape], dtype: e.dtype };
  }

  readFloat32(key: string): Float32Array {
    return storedToFloat32(this.entry(key).dtype, this.readRaw(key));
  }

  /** The tensor's stored bytes (row-major, little-endian, in its stored dtype). */
  readRaw(key: string): Uint8Array {
    const e = this.entry(key);
    return new Uint8Array(readExactly(this.fd, this.path, e.begin, e.end - e.begin, `tensor '${key}'`));
  }

  close(): void {
    if (!this.closed) closeSync(this.fd);
    this.closed = true;
  }

  private entry(key: string): Entry {
    const e = this.entries.get(key);
    if (e === undefined) throw new CheckpointError(`${this.path}: no tensor named '${key}' (${this.entries.size} tensors in the file)`);
    return e;
  }

  private parseHeader(): void {
    const file = this.path;
    const size = fstatSync(this.fd).size;
    if (size < 8) throw new CheckpointError(`${file}: truncated safetensors file (${size} bytes)`);
    const n = readExactly(this.fd, file, 0, 8, 'safetensors header length').readBigUInt64LE(0);
    if (n > BigInt(Math.min(MAX_HEADER_BYTES, size - 8))) {
      throw new CheckpointError(`${file}: corrupt or truncated safetensors file (header length ${n}, file has ${size} bytes)`);
    }
    const headerLen = Number(n);
    let header: unknown;
    try {
      header = JSON.parse(readExactly(this.fd, file, 8, headerLen, 'safetensors header').toString('utf8'));
    } catch (e) {
      if (e instanceof CheckpointError) throw e;
      throw new CheckpointError(`${file}: corrupt safetensors header (not valid JSON)`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) {
      throw new CheckpointError(`${file}: corrupt safetensors header (expected a JSON object)`);
    }
    const dataStart = 8 + headerLen;
    const parsed: Array<[string, Entry]> = [];
    for (const [key, raw] of Object.entries(header as Record<string, unknown>)) {
      if (key === '__metadata__') {
        for (const [mk, mv] of Object.entries((raw ?? {}) as Record<string, unknown>)) this.metadata[mk] = String(mv);
        continue;
      }
      const r = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const dtype = typeof r.dtype === 'string' && Object.hasOwn(DTYPE_OF, r.dtype) ? DTYPE_OF[r.dtype] : undefined;
      if (dtype === undefined) {
        throw new CheckpointError(`${file}: tensor '${key}' has unsupported safetensors dtype ${JSON.stringify(r.dtype)} (supported: ${Object.keys(DTYPE_OF).join(', ')})`);
      }
      const shape = r.shape;
      const offsets = r.data_offsets;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)
        || !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isInteger(d) && d >= 0)) {
        throw new CheckpointError(`${file}: tensor '${key}' has a malformed shape or data_offsets in the safetensors header`);
      }
      const numel = (shape as number[]).reduce((a, b) => a * b, 1);
      const [b, e] = offsets as [number, number];
      if (e - b !== numel * DTYPE_BYTES[dtype]) {
        throw new CheckpointError(`${file}: tensor '${key}' data_offsets [${b}, ${e}] hold ${e - b} bytes, but shape (${(shape as number[]).join(', ')}) ${dtype} needs ${numel * DTYPE_BYTES[dtype]}`);
      }
      if (dataStart + e > size) {
        throw new CheckpointError(`${file}: truncated file: tensor '${key}' ends at byte ${dataStart + e} but the file has ${size} bytes`);
      }
      parsed.push([key, { dtype, shape: shape as number[], begin: dataStart + b, end: dataStart + e }]);
    }
    // File order = data order (writers usually sort the JSON keys alphabetically).
    parsed.sort((x, y) => x[1].begin - y[1].begin);
    for (const [k, e] of parsed) this.entries.set(k, e);
  }
}

/** Opens a safetensors file. Throws CheckpointError naming the file and the problem. */
export function openSafetensors(path: string): SafetensorsFile {
  return new SafetensorsFile(path);
}

/** Data of one tensor to write. A function is called only when that tensor is written (streaming). */
export type TensorData = Float32Array | Uint16Array | Uint8Array;

export interface TensorToWrite {
  key: string;
  /** PyTorch (row-major) shape. */
  shape: readonly number[];
  dtype: StoredDtype;
  /**
   * float32: Float32Array values. float16/bfloat16: Uint16Array bits, or Float32Array values (rounded to nearest
   * even). Any dtype: Uint8Array of the raw little-endian bytes.
   */
  data: TensorData | (() => TensorData);
}

function encode(file: string, t: TensorToWrite, data: TensorData): Uint8Array {
  const numel = t.shape.reduce((a, b) => a * b, 1);
  let bytes: Uint8Array;
  if (data instanceof Uint8Array) {
    bytes = data;
  } else if (data instanceof Float32Array && t.dtype === 'float32') {
    bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } else if (data instanceof Float32Array && (t.dtype === 'float16' || t.dtype === 'bfloat16')) {
    const bits = t.dtype === 'float16' ? float32ToFloat16Bits(data) : float32ToBfloat16Bits(data);
    bytes = new Uint8Array(bits.buffer);
  } else if (data instanceof Uint16Array && (t.dtype === 'float16' || t.dtype === 'bfloat16')) {
    bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } else {
    throw new CheckpointError(`${file}: tensor '${t.key}': cannot write ${data.constructor.name} data as ${t.dtype} (give a Uint8Array of raw bytes)`);
  }
  if (bytes.byteLength !== numel * DTYPE_BYTES[t.dtype]) {
    throw new CheckpointError(`${file}: tensor '${t.key}': shape (${t.shape.join(', ')}) ${t.dtype} needs ${numel * DTYPE_BYTES[t.dtype]} bytes but the data has ${bytes.byteLength}`);
  }
  return bytes;
}

/** Builds the padded header bytes (length prefix included) for tensors written in the given order. */
function headerBytes(tensors: readonly TensorToWrite[], metadata: Record<string, string> | undefined): Buffer {
  const fields: Array<[string, unknown]> = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) fields.push(['__metadata__', metadata]);
  let offset = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    fields.push([t.key, { dtype: CODE_OF[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + n] }]);
    offset += n;
  }
  // fromEntries defines own properties, so even a key like '__proto__' is written as a plain field.
  let json = JSON.stringify(Object.fromEntries(fields));
  // Pad so the data starts 8-byte aligned, as the reference implementation does.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const body = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + body.length);
  out.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(out, 8);
  return out;
}

/**
 * Writes a safetensors file atomically (temp file + rename). Tensors are written one at a time in the given order;
 * give `data` as a function to keep only one tensor in memory. Duplicate keys are an error.
 */
export function writeSafetensors(path: string, tensors: Iterable<TensorToWrite>, metadata?: Record<string, string>): void {
  const list = [...tensors];
  const seen = new Set<string>();
  for (const t of list) {
    if (seen.has(t.key)) throw new CheckpointError(`${path}: duplicate tensor name '${t.key}'`);
    if (t.key === '__metadata__') throw new CheckpointError(`${path}: '__metadata__' is reserved and cannot name a tensor`);
    seen.add(t.key);
  }
  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number;
  try {
    fd = openSync(tmp, 'w');
  } catch (e) {
    throw new CheckpointError(`${path}: cannot write weight file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  try {
    writeAll(fd, headerBytes(list, metadata));
    for (const t of list) writeAll(fd, encode(path, t, typeof t.data === 'function' ? t.data() : t.data));
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try { closeSync(fd); } catch { /* already closed */ }
    rmSync(tmp, { force: true });
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`${path}: cannot write weight file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done);
}
