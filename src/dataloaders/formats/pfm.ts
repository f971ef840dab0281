/** Portable Float Map (PFM): `Pf` (grey) or `PF` (RGB), scale < 0 = little-endian, rows stored bottom to top. */
import { readFileSync, writeFileSync } from 'node:fs';
import { InputError } from '../../errors.js';
import type { FloatMap } from './types.js';

/** Reads a PFM file; RGB files return their first channel. */
export function readPfm(file: string): FloatMap {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new InputError(`${file}: cannot read PFM file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  // Header: three whitespace-separated tokens lines, then exactly one whitespace byte before the data.
  const head = /^(P[Ff])\s+(\d+)\s+(\d+)\s+([-+0-9.eE]+)\s/.exec(buf.toString('latin1', 0, Math.min(buf.length, 256)));
  if (head === null) throw new InputError(`${file}: not a PFM file (expected a 'Pf' or 'PF' header)`);
  const channels = head[1] === 'PF' ? 3 : 1;
  const width = Number(head[2]);
  const height = Number(head[3]);
  const littleEndian = Number(head[4]) < 0;
  const offset = head[0].length;
  const need = width * height * channels * 4;
  if (buf.length - offset < need) throw new InputError(`${file}: truncated PFM data (expected ${need} bytes for ${width}×${height}×${channels}, found ${buf.length - offset})`);
  const data = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const srcRow = height - 1 - y;
    for (let x = 0; x < width; x++) {
      const at = offset + ((srcRow * width + x) * channels) * 4;
      data[y * width + x] = littleEndian ? buf.readFloatLE(at) : buf.readFloatBE(at);
    }
  }
  return { width, height, data };
}

/** Writes a single-channel little-endian PFM file. */
export function writePfm(file: string, map: FloatMap): void {
  const header = Buffer.from(`Pf\n${map.width} ${map.height}\n-1.0\n`, 'latin1');
  const body = Buffer.alloc(map.width * map.height * 4);
  for (let y = 0; y < map.height; y++) {
    for (let x = 0; x < map.width; x++) body.writeFloatLE(map.data[y * map.width + x]!, ((map.height - 1 - y) * map.width + x) * 4);
  }
  writeFileSync(file, Buffer.concat([header, body]));
}
