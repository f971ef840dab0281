import { expect } from 'chai';
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits, storedToFloat32 } from '../../src/io/half.js';

describe('io/half', () => {
  it('decodes float16 bit patterns (IEEE 754 binary16)', () => {
    const bits = Uint16Array.from([0x3c00, 0xc000, 0x3555, 0x7bff, 0x0001, 0x0400, 0x8000, 0x7c00, 0xfc00, 0x7e00]);
    const v = Array.from(float16ToFloat32(bits));
    expect(v.slice(0, 9)).to.deep.equal([1, -2, 0.333251953125, 65504, 2 ** -24, 2 ** -14, -0, Infinity, -Infinity]);
    expect(Object.is(v[6], -0)).to.equal(true);
    expect(v[9]).to.be.NaN;
  });

  it('round-trips every non-NaN float16 bit pattern through float32 exactly', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const back = float32ToFloat16Bits(float16ToFloat32(all));
    let mismatches = 0;
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN ? (back[h]! & 0x7c00) !== 0x7c00 || (back[h]! & 0x3ff) === 0 : back[h] !== h) mismatches++;
    }
    expect(mismatches).to.equal(0);
  });

  it('rounds float32 to float16 to nearest even, overflowing to infinity', () => {
    const v = Float32Array.from([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65519, 65520, 1e6, 2 ** -25, 3 * 2 ** -25, 2 ** -26, -0]);
    expect(Array.from(float32ToFloat16Bits(v))).to.deep.equal([0x3c00, 0x3c02, 0x7bff, 0x7c00, 0x7c00, 0x0000, 0x0002, 0x0000, 0x8000]);
  });

  it('converts bfloat16 both ways, rounding to nearest even', () => {
    expect(Array.from(bfloat16ToFloat32(Uint16Array.from([0x3f80, 0xc040, 0x4049, 0x7f80])))).to.deep.equal([1, -3, 3.140625, Infinity]);
    const v = Float32Array.from([1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.14159265, -0]);
    expect(Array.from(float32ToBfloat16Bits(v))).to.deep.equal([0x3f80, 0x3f82, 0x4049, 0x8000]);
    expect(float32ToBfloat16Bits(Float32Array.from([NaN]))[0]! & 0x7fff).to.be.greaterThan(0x7f80);
  });

  it('decodes stored bytes of every dtype, including unaligned ones', () => {
    const le = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    expect(Array.from(storedToFloat32('float64', le(Float64Array.from([0.5, -1e10]))))).to.deep.equal([0.5, -1e10]);
    expect(Array.from(storedToFloat32('int64', le(BigInt64Array.from([-3n, 1n << 40n]))))).to.deep.equal([-3, 2 ** 40]);
    expect(Array.from(storedToFloat32('int32', le(Int32Array.from([-7, 9]))))).to.deep.equal([-7, 9]);
    expect(Array.from(storedToFloat32('int8', Uint8Array.from([0xff, 5])))).to.deep.equal([-1, 5]);
    expect(Array.from(storedToFloat32('bool', Uint8Array.from([1, 0])))).to.deep.equal([1, 0]);
    const shifted = new Uint8Array(9);
    shifted.set(le(Float32Array.from([1.5, -2])), 1);
    expect(Array.from(storedToFloat32('float32', shifted.subarray(1)))).to.deep.equal([1.5, -2]);
  });
});
