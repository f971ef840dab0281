/** MPI-Sintel `.dpt` depth: float32 tag 202021.25, int32 width, int32 height, then width·height float32 (little-endian). */
import { readFileSync, writeFileSync } from 'node:fs';
import { InputError } from '../../errors.js';
import type { FloatMap } from './types.js';

export const SINTEL_TAG = 202021.25;
const MAX_SIDE = 100000;

export function readSintelDpt(file: string): FloatMap {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new InputError(`${file}: cannot read Sintel .dpt file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (buf.length < 12 || buf.readFloatLE(0) !== SINTEL_TAG) throw new InputError(`${file}: not a Sintel .dpt file (tag is not ${SINTEL_TAG})`);
  const width = buf.readInt32LE(4);
  const height = buf.readInt32LE(8);
  if (width <= 0 || height <= 0 || width > MAX_SIDE || height > MAX_SIDE) throw new InputError(`${file}: implausible .dpt size ${width}×${height}`);
  const need = width * height * 4;
  if (buf.length - 12 < need) throw new InputError(`${file}: truncated .dpt data (expected ${need} bytes for ${width}×${height}, found ${buf.length - 12})`);
  const data = new Float32Array(width * height);
  new Uint8Array(data.buffer).set(buf.subarray(12, 12 + need));
  return { width, height, data };
}

export function writeSintelDpt(file: string, map: FloatMap): void {
  const head = Buffer.alloc(12);
  head.writeFloatLE(SINTEL_TAG, 0);
  head.writeInt32LE(map.width, 4);
  head.writeInt32LE(map.height, 8);
  writeFileSync(file, Buffer.concat([head, Buffer.from(map.data.buffer, map.data.byteOffset, map.data.byteLength)]));
}
