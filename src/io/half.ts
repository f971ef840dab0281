/**
 * Element types of stored tensors: byte sizes, and conversion of little-endian stored bytes to float32.
 * Node 20 has no Float16Array, so float16 goes through a 64K lookup table and bfloat16 through a shift.
 */
import type { StoredDtype } from './weight-source.js';

/** Bytes per element of each stored dtype. */
export const DTYPE_BYTES: Record<StoredDtype, number> = {
  float32: 4, float16: 2, bfloat16: 2, float64: 8, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

let f16Table: Float32Array | undefined;

/** float16 bits → float32 value for all 65536 bit patterns (built once, 256 KB). */
function float16Table(): Float32Array {
  if (f16Table !== undefined) return f16Table;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) table[h] = sign * frac * 2 ** -24;
    else if (exp === 0x1f) table[h] = frac ? NaN : sign * Infinity;
    else table[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  f16Table = table;
  return table;
}

/** float16 bits to float32 values. */
export function float16ToFloat32(bits: Uint16Array): Float32Array {
  const table = float16Table();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]!]!;
  return out;
}

/** bfloat16 bits to float32 values (exact: bfloat16 is the top half of a float32). */
export function bfloat16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i]! << 16;
  return out;
}

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** float32 to float16 bits, rounding to nearest even (overflow → ±Infinity, NaN kept). */
export function float32ToFloat16Bits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    scratch[0] = values[i]!;
    const x = scratchBits[0]!;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    let e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      // Subnormal half (or zero): shift the implicit 1 into the mantissa, round to nearest even.
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mant |= 0x800000;
      const shift = 14 - e;
      const half = 1 << (shift - 1);
      const rest = mant & ((1 << shift) - 1);
      let m = mant >>> shift;
      if (rest > half || (rest === half && (m & 1))) m++;
      out[i] = sign | m;
      continue;
    }
    let m = mant >>> 13;
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
      m++;
      if (m === 0x400) {
        m = 0;
        e++;
        if (e >= 0x1f) {
          out[i] = sign | 0x7c00;
          continue;
        }
      }
    }
    out[i] = sign | (e << 10) | m;
  }
  return out;
}

/** float32 to bfloat16 bits, rounding to nearest even (NaN kept quiet). */
export function float32ToBfloat16Bits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) {
    const x = bits[i]!;
    if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) {
      out[i] = (x >>> 16) | 0x40;
      continue;
    }
    out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

/**
 * Little-endian stored bytes of `dtype` to float32 values. `bytes` need not be aligned: it is copied once into an
 * aligned buffer when its offset is not a multiple of the element size.
 */
export function storedToFloat32(dtype: StoredDtype, bytes: Uint8Array): Float32Array {
  const size = DTYPE_BYTES[dtype];
  const count = Math.floor(bytes.byteLength / size);
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice(0, count * size);
  const { buffer, byteOffset } = aligned;
  switch (dtype) {
    case 'float32': return new Float32Array(buffer.slice(byteOffset, byteOffset + count * 4));
    case 'float16': return float16ToFloat32(new Uint16Array(buffer, byteOffset, count));
    case 'bfloat16': return bfloat16ToFloat32(new Uint16Array(buffer, byteOffset, count));
    case 'float64': return Float32Array.from(new Float64Array(buffer, byteOffset, count));
    case 'int64': return Float32Array.from(new BigInt64Array(buffer, byteOffset, count), (v) => Number(v));
    case 'int32': return Float32Array.from(new Int32Array(buffer, byteOffset, count));
    case 'int16': return Float32Array.from(new Int16Array(buffer, byteOffset, count));
    case 'int8': return Float32Array.from(new Int8Array(buffer, byteOffset, count));
    case 'uint8': case 'bool': return Float32Array.from(new Uint8Array(buffer, byteOffset, count));
  }
}
