/**
 * Opening any supported weight file by its content, and the library side of `npm run convert`: listing a
 * checkpoint and converting `.pth` to safetensors (the project's own format) tensor by tensor.
 */
import { closeSync, fstatSync, readSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { CheckpointError, invalidParameterError } from '../errors.js';
import { DTYPE_BYTES } from './half.js';
import { TorchCheckpoint } from './pth.js';
import { SafetensorsFile, looksLikeSafetensors, writeSafetensors, type TensorToWrite } from './safetensors.js';
import type { StoredDtype } from './weight-source.js';
import { openWeightFile } from './weight-file.js';

/** A weight file of either supported format. Both expose raw stored bytes (for conversion) and metadata. */
export type WeightFile = TorchCheckpoint | SafetensorsFile;

const ZIP_MAGIC = Buffer.from('PK\x03\x04', 'latin1');
const EMPTY_ZIP_MAGIC = Buffer.from('PK\x05\x06', 'latin1');

/** Why a file that is neither format was rejected, from its first bytes. */
function unrecognised(path: string, head: Buffer, size: number): CheckpointError {
  const expected = 'expected a PyTorch .pth (torch.save zip) or a .safetensors file';
  if (size === 0) return new CheckpointError(`${path}: empty file, ${expected}`);
  if (head[0] === 0x80) {
    return new CheckpointError(`${path}: legacy (pre-1.6, non-zip) torch.save format or a bare pickle; re-save it with torch>=1.6 (torch.save(state_dict, path)) to get the zip format`);
  }
  if (head.length >= 262 && head.toString('latin1', 257, 262) === 'ustar') {
    return new CheckpointError(`${path}: legacy tar-format torch checkpoint (torch < 0.4); re-save it with torch>=1.6`);
  }
  const text = head.subarray(0, Math.min(head.length, 512));
  const printable = text.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127) || b >= 128);
  return new CheckpointError(`${path}: not a recognised weight file${printable ? ' (it looks like a text file)' : ''}; ${expected}`);
}

/** Opens a `.pth` (torch.save zip) or safetensors file, choosing the reader by content, not by extension. */
export function openWeights(path: string): WeightFile {
  const fd = openWeightFile(path);
  let head: Buffer;
  let size: number;
  try {
    size = fstatSync(fd).size;
    head = Buffer.alloc(Math.min(size, 512));
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  const magic = head.subarray(0, 4);
  if (magic.equals(ZIP_MAGIC) || magic.equals(EMPTY_ZIP_MAGIC)) return new TorchCheckpoint(path);
  if (looksLikeSafetensors(head, size)) return new SafetensorsFile(path);
  throw unrecognised(path, head, size);
}

export interface CheckpointTensorInfo {
  key: string;
  /** PyTorch shape. */
  shape: number[];
  dtype: StoredDtype;
}

/** Names, shapes and dtypes of every tensor in a weight file, in file order (reads no tensor data). */
export function listCheckpoint(path: string): CheckpointTensorInfo[] {
  const source = openWeights(path);
  try {
    return source.keys().map((key) => ({ key, ...source.info(key) }));
  } finally {
    source.close();
  }
}

export interface ConvertOptions {
  /**
   * `keep` (default): each tensor keeps its stored dtype, so the conversion is bit-exact. `float32`: floating-point
   * tensors are widened to float32 (integer tensors are kept as they are).
   */
  dtype?: 'keep' | 'float32';
}

export interface ConvertReport {
  tensors: number;
  /** Bytes of tensor data written. */
  bytes: number;
}

const FLOATING: ReadonlySet<StoredDtype> = new Set(['float16', 'bfloat16', 'float64', 'float32']);

/**
 * Converts a weight file (normally `.pth`) to safetensors with the same tensor names, streaming one tensor at a time.
 * The checkpoint's non-tensor entries (e.g. `step`) are kept as JSON in the `source_metadata` metadata field.
 */
export function convertCheckpoint(input: string, output: string, options: ConvertOptions = {}): ConvertReport {
  const mode = options.dtype ?? 'keep';
  if (mode !== 'keep' && mode !== 'float32') {
    throw invalidParameterError('dtype', "'keep' or 'float32'", mode);
  }
  if (resolve(input) === resolve(output)) throw new CheckpointError(`${output}: output would overwrite the input file`);
  const source = openWeights(input);
  try {
    let bytes = 0;
    const tensors: TensorToWrite[] = source.keys().map((key) => {
      const { shape, dtype } = source.info(key);
      const widen = mode === 'float32' && FLOATING.has(dtype);
      const outDtype: StoredDtype = widen ? 'float32' : dtype;
      bytes += shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[outDtype];
      return { key, shape, dtype: outDtype, data: () => (widen ? source.readFloat32(key) : source.readRaw(key)) };
    });
    const metadata: Record<string, string> = { format: 'pt', converted_from: basename(input) };
    const sourceMeta = source.metadata;
    if (Object.keys(sourceMeta).length > 0) metadata['source_metadata'] = JSON.stringify(sourceMeta);
    writeSafetensors(output, tensors, metadata);
    return { tensors: tensors.length, bytes };
  } finally {
    source.close();
  }
}
