/**
 * NumPy `.npy` files (format versions 1.0–3.0): reading whole arrays and writing float32/uint16/etc. arrays.
 * Used for the parity fixtures, `--save-depth-npy` outputs and Waymo's sparse depth arrays.
 */
import { closeSync, openSync, readFileSync, readSync, renameSync, writeFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import { float16ToFloat32 } from './half.js';

export type NpyDtype = 'float32' | 'float64' | 'float16' | 'int32' | 'int64' | 'uint8' | 'uint16' | 'int16' | 'bool';

export type NpyData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array | Int16Array;

export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  /** Values in C (row-major) order. float16 arrays are returned as their raw Uint16Array bits. */
  data: NpyData;
}

const DESCR_TO_DTYPE: Record<string, NpyDtype> = {
  '<f4': 'float32', '<f8': 'float64', '<f2': 'float16', '<i4': 'int32', '<i8': 'int64', '|u1': 'uint8',
  '<u1': 'uint8', '|b1': 'bool', '<u2': 'uint16', '<i2': 'int16',
};
const DTYPE_TO_DESCR: Record<NpyDtype, string> = {
  float32: '<f4', float64: '<f8', float16: '<f2', int32: '<i4', int64: '<i8', uint8: '|u1', bool: '|b1',
  uint16: '<u2', int16: '<i2',
};
const BYTES: Record<NpyDtype, number> = {
  float32: 4, float64: 8, float16: 2, int32: 4, int64: 8, uint8: 1, bool: 1, uint16: 2, int16: 2,
};

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

interface NpyHeader {
  dtype: NpyDtype;
  shape: number[];
  dataOffset: number;
}

function parseHeader(file: string, head: Buffer): NpyHeader {
  if (head.length < 10 || !head.subarray(0, 6).equals(MAGIC)) {
    throw new InputError(`${file}: not a .npy file (missing the \\x93NUMPY magic)`);
  }
  const major = head[6]!;
  const headerLen = major === 1 ? head.readUInt16LE(8) : head.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  if (head.length < start + headerLen) throw new InputError(`${file}: truncated .npy header`);
  const text = head.subarray(start, start + headerLen).toString('latin1');
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(text)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new InputError(`${file}: malformed .npy header ${JSON.stringify(text.trim())}`);
  }
  const dtype = DESCR_TO_DTYPE[descr];
  if (dtype === undefined) {
    throw new InputError(`${file}: unsupported .npy dtype '${descr}' (supported: ${Object.keys(DESCR_TO_DTYPE).join(', ')})`);
  }
  if (fortran === 'True') throw new InputError(`${file}: Fortran-ordered .npy arrays are not supported`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  return { dtype, shape, dataOffset: start + headerLen };
}

function typedView(dtype: NpyDtype, bytes: Buffer, count: number): NpyData {
  // Copy into a fresh aligned buffer: the file buffer's offset is not necessarily aligned to the element size.
  const copy = new ArrayBuffer(count * BYTES[dtype]);
  new Uint8Array(copy).set(bytes.subarray(0, count * BYTES[dtype]));
  switch (dtype) {
    case 'float32': return new Float32Array(copy);
    case 'float64': return new Float64Array(copy);
    case 'float16': case 'uint16': return new Uint16Array(copy);
    case 'int16': return new Int16Array(copy);
    case 'int32': return new Int32Array(copy);
    case 'int64': return new BigInt64Array(copy);
    case 'uint8': case 'bool': return new Uint8Array(copy);
  }
}

/** Reads a whole `.npy` file. */
export function readNpy(file: string): NpyArray {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new InputError(`${file}: cannot read .npy file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const { dtype, shape, dataOffset } = parseHeader(file, buf);
  const count = shape.reduce((a, b) => a * b, 1);
  const need = count * BYTES[dtype];
  if (buf.length - dataOffset < need) {
    throw new InputError(`${file}: truncated .npy data (expected ${need} bytes for shape (${shape.join(', ')}) ${dtype}, found ${buf.length - dataOffset})`);
  }
  return { dtype, shape, data: typedView(dtype, buf.subarray(dataOffset), count) };
}

/** Reads only the dtype and shape of a `.npy` file. */
export function readNpyHeader(file: string): { dtype: NpyDtype; shape: number[] } {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(4096);
    const n = readSync(fd, head, 0, head.length, 0);
    const { dtype, shape } = parseHeader(file, head.subarray(0, n));
    return { dtype, shape };
  } finally {
    closeSync(fd);
  }
}

/** Reads a `.npy` file as float32 (float64/float16/integers converted). */
export function readNpyFloat32(file: string): { shape: number[]; data: Float32Array } {
  const arr = readNpy(file);
  if (arr.data instanceof Float32Array) return { shape: arr.shape, data: arr.data };
  if (arr.dtype === 'float16') return { shape: arr.shape, data: float16ToFloat32(arr.data as Uint16Array) };
  if (arr.data instanceof BigInt64Array) return { shape: arr.shape, data: Float32Array.from(arr.data, (v) => Number(v)) };
  return { shape: arr.shape, data: Float32Array.from(arr.data as ArrayLike<number>) };
}

function dtypeOf(data: NpyData): NpyDtype {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Uint16Array) return 'uint16';
  if (data instanceof Int16Array) return 'int16';
  return 'uint8';
}

/** Encodes an array as `.npy` bytes (format 1.0, C order). */
export function encodeNpy(data: NpyData, shape: readonly number[], dtype: NpyDtype = dtypeOf(data)): Buffer {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new RangeError(`encodeNpy: shape (${shape.join(', ')}) holds ${count} values but the data has ${data.length}`);
  }
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${DTYPE_TO_DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Pad so that magic(6) + version(2) + len(2) + header + '\n' is a multiple of 64.
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  MAGIC.copy(pre, 0);
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

/** Writes a `.npy` file atomically (temp file, then rename), so an interrupted run never leaves half a file. */
export function writeNpy(file: string, data: NpyData, shape: readonly number[], dtype?: NpyDtype): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, encodeNpy(data, shape, dtype));
  renameSync(tmp, file);
}
