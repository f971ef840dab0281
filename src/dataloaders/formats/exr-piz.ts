/**
 * OpenEXR PIZ decompression (a block of up to 32 scanlines): a bitmap of the 16-bit values present, a Huffman-coded
 * stream of 16-bit words, a 2-D Haar-like wavelet per channel (and per 16-bit half of 32-bit samples), then a lookup
 * table back to the original values. Written from the format's description; checked against files written by the
 * OpenEXR library (test/dataloaders/helpers/make-exr-blobs.cpp).
 */
import { InputError } from '../../errors.js';

/** One channel of the block: samples per line, lines, and 16-bit words per sample (HALF 1, FLOAT/UINT 2). */
export interface PizChannel {
  nx: number;
  ny: number;
  words: number;
}

const USHORT_RANGE = 1 << 16;
const BITMAP_SIZE = USHORT_RANGE >> 3;
const HUF_ENCSIZE = USHORT_RANGE + 1;
const SHORT_ZEROCODE_RUN = 59;
const LONG_ZEROCODE_RUN = 63;
const SHORTEST_LONG_RUN = 2 + LONG_ZEROCODE_RUN - SHORT_ZEROCODE_RUN;
/** Codes up to this many bits are decoded by one table look-up; longer ones bit by bit. */
const FAST_BITS = 16;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

class Corrupt extends Error {}

/** MSB-first bit reader over a byte range, limited to `nBits` bits. */
class BitReader {
  private pos = 0;
  constructor(private readonly bytes: Uint8Array, private readonly start: number, readonly nBits: number) {}
  get consumed(): number { return this.pos; }
  get left(): number { return this.nBits - this.pos; }
  /** The next n (≤ 52) bits without consuming them; bits past the end read as 0. */
  peek(n: number): number {
    let v = 0;
    for (let k = 0; k < n; k++) {
      const p = this.pos + k;
      const bit = p < this.nBits ? (this.bytes[this.start + (p >> 3)]! >> (7 - (p & 7))) & 1 : 0;
      v = v * 2 + bit; // arithmetic, not shifts: codes may exceed 32 bits
    }
    return v;
  }
  /** Peeks 24 bits at once from whole bytes (fast path; bits beyond nBits are not masked). */
  peek24(): number {
    const b = this.start + (this.pos >> 3);
    const s = this.pos & 7;
    const v = ((this.bytes[b] ?? 0) << 24 | (this.bytes[b + 1] ?? 0) << 16 | (this.bytes[b + 2] ?? 0) << 8 | (this.bytes[b + 3] ?? 0)) >>> 0;
    return (v << s) >>> 8;
  }
  /** The bit k places ahead (0 past the end). */
  bitAt(k: number): number {
    const p = this.pos + k;
    return p < this.nBits ? (this.bytes[this.start + (p >> 3)]! >> (7 - (p & 7))) & 1 : 0;
  }
  skip(n: number): void { this.pos += n; }
  read(n: number): number {
    if (this.pos + n > this.nBits) throw new Corrupt('Huffman table runs past its data');
    const v = this.peek(n);
    this.pos += n;
    return v;
  }
}

/** Code lengths of symbols im…iM, packed in 6 bits each with runs of zero lengths. */
function readCodeLengths(r: BitReader, im: number, iM: number): Uint8Array {
  const len = new Uint8Array(HUF_ENCSIZE);
  for (let i = im; i <= iM; i++) {
    const l = r.read(6);
    if (l === LONG_ZEROCODE_RUN) {
      const run = r.read(8) + SHORTEST_LONG_RUN;
      if (i + run > iM + 1) throw new Corrupt('zero run past the table end');
      i += run - 1;
    } else if (l >= SHORT_ZEROCODE_RUN) {
      const run = l - SHORT_ZEROCODE_RUN + 2;
      if (i + run > iM + 1) throw new Corrupt('zero run past the table end');
      i += run - 1;
    } else {
      len[i] = l;
    }
  }
  return len;
}

interface Decoder {
  /** Indexed by the next FAST_BITS bits: symbol << 6 | code length for codes of at most FAST_BITS bits, else −1. */
  fast: Int32Array;
  /** Per length l: first code of that length, number of codes, and where its symbols start in `symbols`. */
  first: Float64Array;
  count: Float64Array;
  offset: Int32Array;
  /** Symbols ordered by (length, symbol): canonical codes of one length are consecutive. */
  symbols: Int32Array;
  maxLen: number;
}

/** Canonical code assignment: longer codes get the numerically smaller values, as OpenEXR assigns them. */
function buildDecoder(len: Uint8Array, im: number, iM: number): Decoder {
  const count = new Float64Array(59);
  for (let i = im; i <= iM; i++) count[len[i]!]!++;
  count[0] = 0;
  const first = new Float64Array(59);
  let c = 0;
  let maxLen = 0;
  for (let l = 58; l > 0; l--) {
    if (count[l]! > 0 && maxLen === 0) maxLen = l;
    first[l] = c;
    c = Math.floor((c + count[l]!) / 2);
  }
  if (maxLen > 52) throw new Corrupt('invalid code length table');
  const offset = new Int32Array(60);
  for (let l = 1; l <= 58; l++) offset[l + 1] = offset[l]! + count[l]!;
  const symbols = new Int32Array(offset[59]!);
  const fill = offset.slice();
  const fast = new Int32Array(1 << FAST_BITS).fill(-1);
  for (let s = im; s <= iM; s++) {
    const l = len[s]!;
    if (l === 0) continue;
    const k = fill[l]!++;
    symbols[k] = s;
    const code = first[l]! + (k - offset[l]!);
    if (code >= 2 ** l) throw new Corrupt('invalid code length table');
    if (l <= FAST_BITS) {
      const shift = FAST_BITS - l;
      const base = code * (1 << shift);
      fast.fill((s << 6) | l, base, base + (1 << shift));
    }
  }
  return { fast, first, count, offset, symbols, maxLen };
}

/** Huffman-decodes `out.length` 16-bit words (symbol iM means "repeat the previous word n times", n in 8 bits). */
function hufDecode(bytes: Uint8Array, start: number, size: number, out: Uint16Array): void {
  if (size === 0) {
    if (out.length !== 0) throw new Corrupt('empty Huffman stream');
    return;
  }
  if (size < 20) throw new Corrupt('Huffman header truncated');
  const dv = new DataView(bytes.buffer, bytes.byteOffset + start, size);
  const im = dv.getUint32(0, true);
  const iM = dv.getUint32(4, true);
  const nBits = dv.getUint32(12, true);
  if (im >= HUF_ENCSIZE || iM >= HUF_ENCSIZE || im > iM) throw new Corrupt(`bad Huffman symbol range ${im}…${iM}`);
  const table = new BitReader(bytes, start + 20, 8 * (size - 20));
  const len = readCodeLengths(table, im, iM);
  const dataStart = start + 20 + Math.ceil(table.consumed / 8);
  if (nBits > 8 * (start + size - dataStart)) throw new Corrupt('Huffman data shorter than its bit count');
  const { fast, first, count, offset, symbols, maxLen } = buildDecoder(len, im, iM);
  const r = new BitReader(bytes, dataStart, nBits);
  const rlc = iM;
  const n = out.length;
  let o = 0;
  while (r.left > 0) {
    let sym: number;
    let l: number;
    const entry = fast[r.peek24() >>> (24 - FAST_BITS)]!;
    if (entry >= 0) {
      sym = entry >>> 6;
      l = entry & 63;
    } else {
      // A longer code: extend bit by bit until the value falls in the code range of its length.
      sym = -1;
      l = FAST_BITS;
      let code = r.peek(FAST_BITS);
      while (++l <= maxLen && l <= r.left) {
        code = code * 2 + r.bitAt(l - 1);
        const k = code - first[l]!;
        if (k >= 0 && k < count[l]!) { sym = symbols[offset[l]! + k]!; break; }
      }
      if (sym < 0) throw new Corrupt('invalid Huffman code');
    }
    if (l > r.left) throw new Corrupt('Huffman code runs past the data');
    r.skip(l);
    if (sym === rlc) {
      if (r.left < 8) throw new Corrupt('run length runs past the data');
      const run = r.read(8);
      if (o === 0) throw new Corrupt('run before any value');
      if (o + run > n) throw new Corrupt('more data than the block holds');
      out.fill(out[o - 1]!, o, o + run);
      o += run;
    } else {
      if (o >= n) throw new Corrupt('more data than the block holds');
      out[o++] = sym;
    }
  }
  if (o !== n) throw new Corrupt(`Huffman stream holds ${o} of ${n} values`);
}

/**
 * Inverse of one wavelet step, (l, h) → (a, b) written to d[pa], d[pb]: 14-bit form in signed 16-bit arithmetic, or
 * the modular 16-bit form when the block uses more than 2^14 distinct words.
 */
function wdec(d: Uint16Array, l: number, h: number, pa: number, pb: number, w14: boolean): void {
  if (w14) {
    const hs = (h << 16) >> 16;
    const ai = ((l << 16) >> 16) + (hs & 1) + (hs >> 1);
    d[pa] = ai;
    d[pb] = ai - hs;
  } else {
    const bb = (l - (h >> 1)) & 0xffff;
    d[pa] = h + bb - 0x8000;
    d[pb] = bb;
  }
}

/**
 * Inverse 2-D wavelet, in place, over an nx × ny grid of words at `base` with steps ox (x) and oy (y), coarse levels
 * first; odd trailing columns and rows are 1-D steps.
 */
function wav2Decode(d: Uint16Array, base: number, nx: number, ox: number, ny: number, oy: number, maxValue: number): void {
  const w14 = maxValue < 1 << 14;
  const n = Math.min(nx, ny);
  let p = 1;
  while (p <= n) p <<= 1;
  p >>= 1;
  let p2 = p;
  p >>= 1;
  while (p >= 1) {
    const ey = base + oy * (ny - p2);
    const oy1 = oy * p;
    const oy2 = oy * p2;
    const ox1 = ox * p;
    const ox2 = ox * p2;
    let py = base;
    for (; py <= ey; py += oy2) {
      const ex = py + ox * (nx - p2);
      let px = py;
      for (; px <= ex; px += ox2) {
        const p01 = px + ox1;
        const p10 = px + oy1;
        const p11 = p10 + ox1;
        // Columns first (px,p10 and p01,p11 in place), then rows.
        wdec(d, d[px]!, d[p10]!, px, p10, w14);
        wdec(d, d[p01]!, d[p11]!, p01, p11, w14);
        wdec(d, d[px]!, d[p01]!, px, p01, w14);
        wdec(d, d[p10]!, d[p11]!, p10, p11, w14);
      }
      if (nx & p) {
        const p10 = px + oy1;
        wdec(d, d[px]!, d[p10]!, px, p10, w14);
      }
    }
    if (ny & p) {
      const ex = py + ox * (nx - p2);
      for (let px = py; px <= ex; px += ox2) {
        const p01 = px + ox1;
        wdec(d, d[px]!, d[p01]!, px, p01, w14);
      }
    }
    p2 = p;
    p >>= 1;
  }
}

/**
 * Decompresses one PIZ block into the uncompressed scanline layout (for each line, each channel's samples as
 * little-endian words). `lines` is the block's line count; every channel is full resolution.
 */
export function pizDecompress(packed: Uint8Array, channels: PizChannel[], file: string): Uint8Array {
  try {
    return decompress(packed, channels);
  } catch (e) {
    if (e instanceof Corrupt || e instanceof RangeError) throw new InputError(`${file}: corrupt PIZ block in EXR (${e.message})`);
    throw e;
  }
}

function decompress(packed: Uint8Array, channels: PizChannel[]): Uint8Array {
  const total = channels.reduce((s, c) => s + c.nx * c.ny * c.words, 0);
  if (packed.length < 4) throw new Corrupt('block shorter than its header');
  const dv = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  const minNonZero = dv.getUint16(0, true);
  const maxNonZero = dv.getUint16(2, true);
  if (maxNonZero >= BITMAP_SIZE) throw new Corrupt(`bitmap end ${maxNonZero} out of range`);
  const bitmap = new Uint8Array(BITMAP_SIZE);
  let pos = 4;
  if (minNonZero <= maxNonZero) {
    const n = maxNonZero - minNonZero + 1;
    if (pos + n > packed.length) throw new Corrupt('bitmap runs past the block');
    bitmap.set(packed.subarray(pos, pos + n), minNonZero);
    pos += n;
  }
  // Word 0 is always in the table; the others in increasing order of value.
  const lut = new Uint16Array(USHORT_RANGE);
  let k = 0;
  for (let i = 0; i < USHORT_RANGE; i++) if (i === 0 || bitmap[i >> 3]! & (1 << (i & 7))) lut[k++] = i;
  const maxValue = k - 1;
  if (pos + 4 > packed.length) throw new Corrupt('Huffman length missing');
  const length = dv.getInt32(pos, true);
  pos += 4;
  if (length < 0 || pos + length > packed.length) throw new Corrupt(`Huffman length ${length} runs past the block`);
  const words = new Uint16Array(total);
  hufDecode(packed, pos, length, words);
  let start = 0;
  for (const c of channels) {
    for (let j = 0; j < c.words; j++) wav2Decode(words, start + j, c.nx, c.words, c.ny, c.nx * c.words, maxValue);
    start += c.nx * c.ny * c.words;
  }
  for (let i = 0; i < total; i++) words[i] = lut[words[i]!]!;
  // Channel planes → scanlines: line y holds each channel's row y in turn, as little-endian words.
  const out = new Uint8Array(total * 2);
  const out16 = LITTLE_ENDIAN ? new Uint16Array(out.buffer) : null;
  const ov = new DataView(out.buffer);
  const planeStart: number[] = [];
  start = 0;
  for (const c of channels) { planeStart.push(start); start += c.nx * c.ny * c.words; }
  let o = 0;
  const lines = Math.max(...channels.map((c) => c.ny));
  for (let y = 0; y < lines; y++) {
    channels.forEach((c, ci) => {
      const row = c.nx * c.words;
      const src = planeStart[ci]! + y * row;
      if (out16 !== null) out16.set(words.subarray(src, src + row), o);
      else for (let i = 0; i < row; i++) ov.setUint16(2 * (o + i), words[src + i]!, true);
      o += row;
    });
  }
  return out;
}
