import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { readExr, readExrDepth } from '../../src/dataloaders/formats/exr.js';
import { InputError } from '../../src/errors.js';
import { mixedB44, mixedPiz, mixedPxr24, mixedRle, mixedZip, rampPiz } from './helpers/exr-blobs.js';
import { float32ToHalfBits } from './helpers/writers.js';

const dir = mkdtempSync(join(tmpdir(), 'exr-'));

function save(name: string, bytes: Buffer): string {
  const f = join(dir, name);
  writeFileSync(f, bytes);
  return f;
}

/** The values make-exr-blobs.cpp wrote into the mixed_* files. */
function mixedExpected(w: number, h: number): { A: number[]; ID: number[]; Y: number[] } {
  const A: number[] = [];
  const ID: number[] = [];
  const Y: number[] = [];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      A.push((x + y) / 8);
      ID.push(1000 * y + x);
      Y.push(y === 0 && x < 3 ? Infinity : 1 + x / 4 + 8 * y);
    }
  }
  return { A, ID, Y };
}

describe('dataloaders/formats/exr (files written by the OpenEXR library)', () => {
  const cases = [['PIZ', mixedPiz, 34], ['PXR24', mixedPxr24, 21], ['RLE', mixedRle, 5], ['ZIP', mixedZip, 21]] as const;
  for (const [compression, blob, height] of cases) {
    it(`${compression}: HALF, UINT and FLOAT channels decode exactly`, () => {
      const img = readExr(save(`mixed_${compression}.exr`, blob));
      expect([img.width, img.height, img.compression]).to.deep.equal([37, height, compression]);
      expect([...img.channels.keys()]).to.deep.equal(['A', 'ID', 'Y']);
      const want = mixedExpected(37, height);
      expect(Array.from(img.channels.get('A')!)).to.deep.equal(want.A);
      expect(Array.from(img.channels.get('ID')!)).to.deep.equal(want.ID);
      expect(Array.from(img.channels.get('Y')!)).to.deep.equal(want.Y);
      // readExrDepth takes Y, as cv2.IMREAD_ANYDEPTH does.
      expect(readExrDepth(join(dir, `mixed_${compression}.exr`)).data[40]).to.equal(1 + 3 / 4 + 8);
    });
  }

  it('PIZ with more than 2^14 distinct words (16-bit wavelet) reproduces every bit pattern', () => {
    const img = readExr(save('ramp_piz.exr', rampPiz));
    expect([img.width, img.height]).to.deep.equal([600, 32]);
    const z = img.channels.get('Z')!;
    let mismatches = 0;
    for (let k = 0; k < z.length; k++) {
      // NaN has no unique float32 → half mapping; compare NaN-ness there, bits elsewhere.
      const v = z[k]!;
      const isNanBits = (k & 0x7c00) === 0x7c00 && (k & 0x3ff) !== 0;
      if (isNanBits ? !Number.isNaN(v) : float32ToHalfBits(v) !== k) mismatches++;
    }
    expect(mismatches).to.equal(0);
  });

  it('a corrupt PIZ block names the file; B44 is reported as unsupported', () => {
    const bytes = Buffer.from(mixedPiz);
    // The first block's data starts at byte 338 (offset table at 314, block header y and size): min and max bitmap
    // byte, the bitmap, the Huffman length, then the Huffman header whose bit count (at +12) we make too large.
    const block = Number(bytes.readBigUInt64LE(314)) + 8;
    const huffman = block + 4 + bytes.readUInt16LE(block + 2) - bytes.readUInt16LE(block) + 1 + 4;
    bytes.writeUInt32LE(1e6, huffman + 12);
    const bad = save('bad_piz.exr', bytes);
    expect(() => readExr(bad)).to.throw(InputError, `${bad}: corrupt PIZ block in EXR (Huffman data shorter than its bit count)`);
    const b44 = save('b44.exr', mixedB44);
    expect(() => readExr(b44)).to.throw(InputError, `${b44}: unsupported EXR compression B44 (supported: NONE, RLE, ZIPS, ZIP, PIZ, PXR24)`);
  });
});
