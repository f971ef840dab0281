/**
 * OpenEXR reader for single-part scanline files (what MVS-Synth and UrbanSyn depth maps are): channel types HALF,
 * FLOAT and UINT; compressions NONE, RLE, ZIPS, ZIP, PIZ and PXR24. The lossy B44/B44A/DWAA/DWAB, tiled, deep and
 * multi-part files fail with an InputError that names the file and what it holds. (Which compression the two
 * datasets' files use is not documented: OpenCV, OpenEXR and Unreal write ZIP or PIZ by default.)
 */
import { readFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import { InputError } from '../../errors.js';
import { pizDecompress } from './exr-piz.js';
import { pxr24Decompress } from './exr-pxr24.js';
import { float16ToFloat32 } from '../../io/half.js';
import type { FloatMap } from './types.js';

export const EXR_COMPRESSIONS = ['NONE', 'RLE', 'ZIPS', 'ZIP', 'PIZ', 'PXR24', 'B44', 'B44A', 'DWAA', 'DWAB'] as const;
export type ExrCompression = (typeof EXR_COMPRESSIONS)[number];
const SUPPORTED: ReadonlySet<ExrCompression> = new Set(['NONE', 'RLE', 'ZIPS', 'ZIP', 'PIZ', 'PXR24']);
const LINES_PER_BLOCK: Record<ExrCompression, number> = {
  NONE: 1, RLE: 1, ZIPS: 1, ZIP: 16, PIZ: 32, PXR24: 16, B44: 32, B44A: 32, DWAA: 32, DWAB: 256,
};

/** EXR pixel types, by their code in the file. */
export const EXR_PIXEL_TYPES = ['UINT', 'HALF', 'FLOAT'] as const;
export type ExrPixelType = (typeof EXR_PIXEL_TYPES)[number];
const BYTES_PER_SAMPLE: Record<ExrPixelType, number> = { UINT: 4, HALF: 2, FLOAT: 4 };

export interface ExrChannel {
  name: string;
  type: ExrPixelType;
}

export interface ExrImage {
  width: number;
  height: number;
  compression: ExrCompression;
  /** Channels in file order (alphabetical), each decoded to float32, row-major. */
  channels: Map<string, Float32Array>;
}

const MAGIC = 20000630;
const FLAG_TILED = 0x200;
const FLAG_DEEP = 0x800;
const FLAG_MULTIPART = 0x1000;

class Cursor {
  pos = 0;
  constructor(readonly buf: Buffer, readonly file: string) {}
  need(n: number): void {
    if (this.pos + n > this.buf.length) throw new InputError(`${this.file}: truncated EXR (needs ${this.pos + n} bytes, file has ${this.buf.length})`);
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new InputError(`${this.file}: truncated EXR header`);
    const s = this.buf.toString('latin1', this.pos, end);
    this.pos = end + 1;
    return s;
  }
  i32(): number { this.need(4); const v = this.buf.readInt32LE(this.pos); this.pos += 4; return v; }
  u8(): number { this.need(1); return this.buf[this.pos++]!; }
  u64(): number { this.need(8); const v = Number(this.buf.readBigUInt64LE(this.pos)); this.pos += 8; return v; }
}

interface ExrHeader {
  channels: ExrChannel[];
  compression: ExrCompression;
  xMin: number; yMin: number; xMax: number; yMax: number;
}

function parseHeader(c: Cursor): ExrHeader {
  const file = c.file;
  if (c.buf.length < 8 || c.buf.readInt32LE(0) !== MAGIC) throw new InputError(`${file}: not an OpenEXR file (bad magic number)`);
  const version = c.buf.readInt32LE(4);
  if (version & FLAG_MULTIPART) throw new InputError(`${file}: multi-part EXR files are not supported`);
  if (version & FLAG_DEEP) throw new InputError(`${file}: deep EXR files are not supported`);
  if (version & FLAG_TILED) throw new InputError(`${file}: tiled EXR files are not supported (scanline only)`);
  c.pos = 8;
  let channels: ExrChannel[] | undefined;
  let compression: ExrCompression | undefined;
  let box: number[] | undefined;
  for (;;) {
    const name = c.cstring();
    if (name === '') break;
    c.cstring(); // attribute type name
    const size = c.i32();
    c.need(size);
    const start = c.pos;
    if (name === 'channels') {
      channels = [];
      for (;;) {
        const ch = c.cstring();
        if (ch === '') break;
        const code = c.i32();
        c.pos += 4; // pLinear + reserved
        const xs = c.i32();
        const ys = c.i32();
        const type = EXR_PIXEL_TYPES[code];
        if (type === undefined) throw new InputError(`${file}: channel ${ch} has unknown EXR pixel type ${code}`);
        if (xs !== 1 || ys !== 1) throw new InputError(`${file}: channel ${ch} is subsampled (${xs}×${ys}); only full-resolution channels are supported`);
        channels.push({ name: ch, type });
      }
    } else if (name === 'compression') {
      const code = c.u8();
      compression = EXR_COMPRESSIONS[code];
      if (compression === undefined) throw new InputError(`${file}: unknown EXR compression code ${code}`);
    } else if (name === 'dataWindow') {
      box = [c.i32(), c.i32(), c.i32(), c.i32()];
    }
    c.pos = start + size;
  }
  if (channels === undefined || compression === undefined || box === undefined) {
    throw new InputError(`${file}: EXR header lacks ${channels === undefined ? 'channels' : compression === undefined ? 'compression' : 'dataWindow'}`);
  }
  const [xMin, yMin, xMax, yMax] = box as [number, number, number, number];
  if (xMax < xMin || yMax < yMin) throw new InputError(`${file}: empty EXR data window`);
  return { channels, compression, xMin, yMin, xMax, yMax };
}

/** Undoes the byte predictor and the two-half interleave that ZIP and RLE apply before compressing. */
function unpredictAndInterleave(t: Uint8Array): Uint8Array {
  for (let i = 1; i < t.length; i++) t[i] = (t[i - 1]! + t[i]! - 128) & 0xff;
  const out = new Uint8Array(t.length);
  const half = (t.length + 1) >> 1;
  for (let i = 0, a = 0, b = half; i < t.length; i++) out[i] = i & 1 ? t[b++]! : t[a++]!;
  return out;
}

function rleDecode(src: Buffer, expected: number, file: string): Uint8Array {
  const out = new Uint8Array(expected);
  let i = 0;
  let o = 0;
  while (i < src.length) {
    const l = (src[i++]! << 24) >> 24;
    if (l < 0) {
      const n = -l;
      if (o + n > expected || i + n > src.length) throw new InputError(`${file}: corrupt RLE block in EXR`);
      out.set(src.subarray(i, i + n), o);
      i += n;
      o += n;
    } else {
      const n = l + 1;
      if (o + n > expected || i >= src.length) throw new InputError(`${file}: corrupt RLE block in EXR`);
      out.fill(src[i++]!, o, o + n);
      o += n;
    }
  }
  if (o !== expected) throw new InputError(`${file}: corrupt RLE block in EXR (${o} of ${expected} bytes)`);
  return out;
}

function decompress(packed: Buffer, expected: number, compression: ExrCompression, file: string, channels: ExrChannel[], width: number, lines: number): Uint8Array {
  // Every OpenEXR compressor stores a block raw when compressing would not make it smaller.
  if (compression === 'NONE' || packed.length >= expected) {
    if (packed.length !== expected) throw new InputError(`${file}: EXR block holds ${packed.length} bytes, expected ${expected}`);
    return packed;
  }
  if (compression === 'RLE') return unpredictAndInterleave(rleDecode(packed, expected, file));
  if (compression === 'PIZ') {
    return pizDecompress(packed, channels.map((ch) => ({ nx: width, ny: lines, words: BYTES_PER_SAMPLE[ch.type] / 2 })), file);
  }
  if (compression === 'PXR24') return pxr24Decompress(packed, channels.map((ch) => ch.type), width, lines, file);
  let raw: Buffer;
  try {
    raw = inflateSync(packed);
  } catch (e) {
    throw new InputError(`${file}: corrupt ZIP block in EXR (${(e as Error).message})`);
  }
  if (raw.length !== expected) throw new InputError(`${file}: EXR ZIP block inflates to ${raw.length} bytes, expected ${expected}`);
  return unpredictAndInterleave(new Uint8Array(raw));
}

/** Reads every channel of a scanline OpenEXR file. */
export function readExr(file: string): ExrImage {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new InputError(`${file}: cannot read EXR file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const c = new Cursor(buf, file);
  const h = parseHeader(c);
  if (!SUPPORTED.has(h.compression)) {
    throw new InputError(`${file}: unsupported EXR compression ${h.compression} (supported: ${[...SUPPORTED].join(', ')})`);
  }
  const width = h.xMax - h.xMin + 1;
  const height = h.yMax - h.yMin + 1;
  const lpb = LINES_PER_BLOCK[h.compression];
  const nBlocks = Math.ceil(height / lpb);
  const offsets: number[] = [];
  for (let i = 0; i < nBlocks; i++) offsets.push(c.u64());

  const planes = h.channels.map((ch) => ({ ch, raw: new Uint8Array(width * height * BYTES_PER_SAMPLE[ch.type]) }));
  const lineBytes = h.channels.reduce((s, ch) => s + width * BYTES_PER_SAMPLE[ch.type], 0);
  for (const offset of offsets) {
    c.pos = offset;
    const y = c.i32() - h.yMin;
    const size = c.i32();
    c.need(size);
    if (y < 0 || y >= height || y % lpb !== 0) throw new InputError(`${file}: EXR block at byte ${offset} starts at invalid line ${y + h.yMin}`);
    const lines = Math.min(lpb, height - y);
    const block = decompress(buf.subarray(c.pos, c.pos + size), lines * lineBytes, h.compression, file, h.channels, width, lines);
    let p = 0;
    for (let l = 0; l < lines; l++) {
      for (const { ch, raw } of planes) {
        const n = width * BYTES_PER_SAMPLE[ch.type];
        raw.set(block.subarray(p, p + n), (y + l) * n);
        p += n;
      }
    }
  }
  const channels = new Map<string, Float32Array>();
  for (const { ch, raw } of planes) {
    const ab = raw.buffer;
    if (ch.type === 'HALF') channels.set(ch.name, float16ToFloat32(new Uint16Array(ab)));
    else if (ch.type === 'FLOAT') channels.set(ch.name, new Float32Array(ab));
    else channels.set(ch.name, Float32Array.from(new Uint32Array(ab)));
  }
  return { width, height, compression: h.compression, channels };
}

/**
 * Reads an EXR depth map the way `cv2.imread(path, cv2.IMREAD_ANYDEPTH)` does: the Y channel if present, else the
 * grey value 0.299·R + 0.587·G + 0.114·B, else the file's only channel.
 */
export function readExrDepth(file: string): FloatMap {
  const img = readExr(file);
  const { width, height, channels } = img;
  const y = channels.get('Y');
  if (y !== undefined) return { width, height, data: y };
  const r = channels.get('R');
  const g = channels.get('G');
  const b = channels.get('B');
  if (r !== undefined && g !== undefined && b !== undefined) {
    const data = new Float32Array(width * height);
    for (let i = 0; i < data.length; i++) {
      const rv = r[i]!;
      // Equal channels (a grey depth map stored as RGB) are taken as is, free of weighting round-off.
      data[i] = rv === g[i] && rv === b[i] ? rv : 0.299 * rv + 0.587 * g[i]! + 0.114 * b[i]!;
    }
    return { width, height, data };
  }
  if (channels.size === 1) return { width, height, data: [...channels.values()][0]! };
  throw new InputError(`${file}: EXR depth map needs a Y channel, R/G/B channels or a single channel; found ${[...channels.keys()].join(', ')}`);
}
