/** Headerless little-endian float32 maps (ETH3D `ground_truth_depth`), whose size comes from the matching RGB image. */
import { readFileSync } from 'node:fs';
import { InputError } from '../../errors.js';
import type { FloatMap } from './types.js';

export function readRawFloat32(file: string, width: number, height: number): FloatMap {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new InputError(`${file}: cannot read raw float32 depth (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const need = width * height * 4;
  if (buf.length !== need) throw new InputError(`${file}: raw float32 depth holds ${buf.length} bytes, expected ${need} for ${width}×${height}`);
  const data = new Float32Array(width * height);
  new Uint8Array(data.buffer).set(buf);
  return { width, height, data };
}
