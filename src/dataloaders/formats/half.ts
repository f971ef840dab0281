/** IEEE 754 binary16 → float32 through a 64 K lookup table (EXR HALF channels, DynamicReplica depth PNGs). */
import { float16BitsToNumber } from '../../io/npy.js';

let table: Float32Array | undefined;

function halfTable(): Float32Array {
  if (table === undefined) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = float16BitsToNumber(h);
  }
  return table;
}

/** Converts an array of float16 bit patterns to float32 values. */
export function halfBitsToFloat32(bits: Uint16Array): Float32Array {
  const lut = halfTable();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = lut[bits[i]!]!;
  return out;
}
