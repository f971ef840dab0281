/** Writers for the dataset file formats, used to build tiny dataset trees with known values. */
import { writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import h5wasm from 'h5wasm/node';
import sharp from 'sharp';

const COMPRESSION_CODE = { NONE: 0, RLE: 1, ZIPS: 2, ZIP: 3, PIZ: 4 } as const;
export type WritableCompression = 'NONE' | 'ZIPS' | 'ZIP';

/** float32 → float16 bits (round to nearest even on the mantissa is enough for test values). */
export function float32ToHalfBits(v: number): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = (mant | 0x800000) >> (1 - e);
    return sign | ((m + 0x1000) >> 13);
  }
  return sign | (e << 10) | ((mant + 0x1000) >> 13);
}

function zipEncode(raw: Uint8Array): Buffer {
  const n = raw.length;
  const t = new Uint8Array(n);
  const half = (n + 1) >> 1;
  for (let i = 0, a = 0, b = half; i < n; i++) {
    if (i & 1) t[b++] = raw[i]!;
    else t[a++] = raw[i]!;
  }
  for (let i = n - 1; i > 0; i--) t[i] = (t[i]! - t[i - 1]! + 128) & 0xff;
  return deflateSync(t);
}

export interface ExrWriteOptions {
  compression?: WritableCompression | 'PIZ';
  type?: 'HALF' | 'FLOAT';
}

/** Writes a scanline EXR whose channels (name → row-major values) all have width × height samples. */
export function writeExr(file: string, width: number, height: number, channels: Record<string, Float32Array>, opts: ExrWriteOptions = {}): void {
  const compression = opts.compression ?? 'ZIP';
  const type = opts.type ?? 'FLOAT';
  const names = Object.keys(channels).sort();
  const parts: Buffer[] = [];
  const i32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32LE(v); return b; };
  const f32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeFloatLE(v); return b; };
  const attr = (name: string, t: string, value: Buffer): void => {
    parts.push(Buffer.from(`${name}\0${t}\0`, 'latin1'), i32(value.length), value);
  };
  const head = Buffer.alloc(8);
  head.writeInt32LE(20000630, 0);
  head.writeInt32LE(2, 4);
  parts.push(head);
  const chl: Buffer[] = [];
  for (const n of names) chl.push(Buffer.from(`${n}\0`, 'latin1'), i32(type === 'HALF' ? 1 : 2), Buffer.alloc(4), i32(1), i32(1));
  chl.push(Buffer.alloc(1));
  attr('channels', 'chlist', Buffer.concat(chl));
  attr('compression', 'compression', Buffer.from([COMPRESSION_CODE[compression]]));
  const box = Buffer.concat([i32(0), i32(0), i32(width - 1), i32(height - 1)]);
  attr('dataWindow', 'box2i', box);
  attr('displayWindow', 'box2i', box);
  attr('lineOrder', 'lineOrder', Buffer.from([0]));
  attr('pixelAspectRatio', 'float', f32(1));
  attr('screenWindowCenter', 'v2f', Buffer.concat([f32(0), f32(0)]));
  attr('screenWindowWidth', 'float', f32(1));
  parts.push(Buffer.alloc(1));
  const headerBytes = Buffer.concat(parts);
  const lpb = compression === 'ZIP' ? 16 : compression === 'PIZ' ? 32 : 1;
  const bps = type === 'HALF' ? 2 : 4;
  const blocks: Buffer[] = [];
  for (let y = 0; y < height; y += lpb) {
    const lines = Math.min(lpb, height - y);
    const raw = Buffer.alloc(lines * names.length * width * bps);
    let p = 0;
    for (let l = 0; l < lines; l++) {
      for (const n of names) {
        const src = channels[n]!;
        for (let x = 0; x < width; x++) {
          const v = src[(y + l) * width + x]!;
          if (type === 'HALF') raw.writeUInt16LE(float32ToHalfBits(v), p);
          else raw.writeFloatLE(v, p);
          p += bps;
        }
      }
    }
    let packed: Buffer = raw;
    if (compression === 'ZIP' || compression === 'ZIPS') {
      const z = zipEncode(raw);
      if (z.length < raw.length) packed = z;
    }
    blocks.push(Buffer.concat([i32(y), i32(packed.length), packed]));
  }
  const table = Buffer.alloc(blocks.length * 8);
  let offset = headerBytes.length + table.length;
  blocks.forEach((b, i) => { table.writeBigUInt64LE(BigInt(offset), i * 8); offset += b.length; });
  writeFileSync(file, Buffer.concat([headerBytes, table, ...blocks]));
}

/** Writes an 8-bit RGB PNG or JPEG (by extension) from HWC bytes. */
export async function writeRgb(file: string, width: number, height: number, data: Uint8Array): Promise<void> {
  const img = sharp(Buffer.from(data), { raw: { width, height, channels: 3 } });
  await (/\.jpe?g$/i.test(file) ? img.jpeg({ quality: 100 }) : img.png()).toFile(file);
}

/** An RGB image whose pixel (x, y) is (x·16 + c·7 + y·3) mod 256 per channel c. */
export function patternRgb(width: number, height: number, seed = 0): Uint8Array {
  const d = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) d[(y * width + x) * 3 + c] = (x * 16 + c * 7 + y * 3 + seed * 11) % 256;
  return d;
}

/** Writes a single-channel 16-bit PNG. */
export async function writePng16(file: string, width: number, height: number, data: Uint16Array): Promise<void> {
  await sharp(data, { raw: { width, height, channels: 1 } }).toColourspace('grey16').png().toFile(file);
}

/** Writes an 8-bit single-channel PNG (label maps). */
export async function writePng8(file: string, width: number, height: number, data: Uint8Array): Promise<void> {
  await sharp(Buffer.from(data), { raw: { width, height, channels: 1 } }).png().toFile(file);
}

/** Writes float values as float16 bits in a 16-bit PNG (DynamicReplica's depth format). */
export async function writeFloat16Png(file: string, width: number, height: number, values: Float32Array): Promise<void> {
  await writePng16(file, width, height, Uint16Array.from(values, (v) => float32ToHalfBits(v)));
}

/** Writes one float32 dataset into a fresh HDF5 file (gzip-compressed, chunked, like Spring's .dsp5). */
export async function writeHdf5(file: string, key: string, shape: number[], data: Float32Array): Promise<void> {
  await h5wasm.ready;
  const f = new h5wasm.File(file, 'w');
  try {
    f.create_dataset({ name: key, data, shape, dtype: '<f', compression: 'gzip', chunks: [1, shape[1]!] });
  } finally {
    f.close();
  }
}
