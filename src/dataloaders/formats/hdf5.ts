/** HDF5 datasets through h5wasm (Spring's `.dsp5` disparity files). */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import h5wasm from 'h5wasm/node';
import type { File as H5File } from 'h5wasm/node';
import { InputError } from '../../errors.js';

export interface Hdf5Array {
  shape: number[];
  data: Float32Array;
}

const SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The superblock signature sits at byte 0, 512, 1024, 2048, …; h5wasm itself only logs on garbage input. */
function hasHdf5Signature(file: string): boolean {
  const size = statSync(file).size;
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(8);
    for (let at = 0; at + 8 <= size; at = at === 0 ? 512 : at * 2) {
      if (readSync(fd, b, 0, 8, at) === 8 && b.equals(SIGNATURE)) return true;
    }
    return false;
  } finally {
    closeSync(fd);
  }
}

/** Reads one numeric dataset of an HDF5 file as float32. */
export async function readHdf5Dataset(file: string, key: string): Promise<Hdf5Array> {
  if (!existsSync(file)) throw new InputError(`${file}: HDF5 file not found`);
  if (!hasHdf5Signature(file)) throw new InputError(`${file}: not an HDF5 file (no HDF5 signature)`);
  await h5wasm.ready;
  let f: H5File;
  try {
    f = new h5wasm.File(file, 'r');
  } catch (e) {
    throw new InputError(`${file}: cannot open HDF5 file (${e instanceof Error ? e.message : String(e)})`);
  }
  try {
    const entity = f.get(key);
    if (!(entity instanceof h5wasm.Dataset)) {
      throw new InputError(`${file}: no HDF5 dataset '${key}' (found: ${f.keys().join(', ') || 'nothing'})`);
    }
    const shape = entity.shape ?? [];
    let value: unknown;
    try {
      value = entity.value;
    } catch (e) {
      throw new InputError(`${file}: cannot read HDF5 dataset '${key}' (${e instanceof Error ? e.message : String(e)})`);
    }
    const n = shape.reduce((a, b) => a * b, 1);
    if (value instanceof Float32Array) return { shape, data: value };
    if (
      (value instanceof Float64Array || value instanceof Int32Array || value instanceof Uint32Array || value instanceof Int16Array ||
        value instanceof Uint16Array || value instanceof Int8Array || value instanceof Uint8Array) && value.length === n
    ) {
      return { shape, data: Float32Array.from(value) };
    }
    throw new InputError(`${file}: HDF5 dataset '${key}' is not a numeric array`);
  } finally {
    f.close();
  }
}
