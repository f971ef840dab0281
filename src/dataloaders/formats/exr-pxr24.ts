/**
 * OpenEXR PXR24 decompression (a block of up to 16 scanlines): zlib over per-line, per-channel byte planes of
 * horizontally differenced samples. FLOAT samples were rounded to 24 bits by the encoder (3 planes; lossy), HALF keep
 * 2 planes and UINT 4. Checked against files written by the OpenEXR library.
 */
import { inflateSync } from 'node:zlib';
import { InputError } from '../../errors.js';

export type Pxr24Type = 'UINT' | 'HALF' | 'FLOAT';

const PLANES: Record<Pxr24Type, number> = { UINT: 4, HALF: 2, FLOAT: 3 };
const OUT_BYTES: Record<Pxr24Type, number> = { UINT: 4, HALF: 2, FLOAT: 4 };

/** Decompresses one PXR24 block of `lines` lines into the uncompressed layout (little-endian samples). */
export function pxr24Decompress(packed: Uint8Array, types: Pxr24Type[], width: number, lines: number, file: string): Uint8Array {
  let raw: Buffer;
  try {
    raw = inflateSync(packed);
  } catch (e) {
    throw new InputError(`${file}: corrupt PXR24 block in EXR (${(e as Error).message})`);
  }
  const expected = lines * types.reduce((s, t) => s + width * PLANES[t], 0);
  if (raw.length !== expected) throw new InputError(`${file}: EXR PXR24 block inflates to ${raw.length} bytes, expected ${expected}`);
  const out = new Uint8Array(lines * types.reduce((s, t) => s + width * OUT_BYTES[t], 0));
  const ov = new DataView(out.buffer);
  let i = 0;
  let o = 0;
  for (let y = 0; y < lines; y++) {
    for (const t of types) {
      const planes = PLANES[t];
      // Plane k holds byte k (most significant first) of every sample's difference from its left neighbour.
      let prev = 0;
      for (let x = 0; x < width; x++) {
        let diff = 0;
        for (let k = 0; k < planes; k++) diff = (diff << 8) | raw[i + k * width + x]!;
        if (t === 'FLOAT') diff <<= 8;
        if (t === 'HALF') {
          prev = (prev + diff) & 0xffff;
          ov.setUint16(o, prev, true);
          o += 2;
        } else {
          prev = (prev + diff) >>> 0;
          ov.setUint32(o, prev, true);
          o += 4;
        }
      }
      i += planes * width;
    }
  }
  return out;
}
