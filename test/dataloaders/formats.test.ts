import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { readExr, readExrDepth } from '../../src/dataloaders/formats/exr.js';
import { readHdf5Dataset } from '../../src/dataloaders/formats/hdf5.js';
import { imageSize, readFloat16Png, readLabelPng, readPng16, readRgb } from '../../src/dataloaders/formats/image.js';
import { readPfm, writePfm } from '../../src/dataloaders/formats/pfm.js';
import { readRawFloat32 } from '../../src/dataloaders/formats/raw-float.js';
import { readSintelDpt, writeSintelDpt } from '../../src/dataloaders/formats/sintel-dpt.js';
import { InputError } from '../../src/errors.js';
import { patternRgb, writeExr, writeFloat16Png, writeHdf5, writePng16, writePng8, writeRgb } from './helpers/writers.js';
import { rejection } from '../helpers/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'fmt-'));

/** 37×21 map (odd sizes exercise partial ZIP blocks and odd-length interleaves): value = 1 + x/4 + y·8, sky = inf. */
function depthValues(w = 37, h = 21): Float32Array {
  const d = new Float32Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) d[y * w + x] = y === 0 && x < 3 ? Infinity : 1 + x / 4 + y * 8;
  return d;
}

describe('dataloaders/formats', () => {
  for (const compression of ['NONE', 'ZIPS', 'ZIP'] as const) {
    for (const type of ['FLOAT', 'HALF'] as const) {
      it(`EXR ${compression} ${type}: decodes every channel exactly`, () => {
        const f = join(dir, `d_${compression}_${type}.exr`);
        const y = depthValues();
        writeExr(f, 37, 21, { Y: y, A: new Float32Array(37 * 21).fill(0.5) }, { compression, type });
        const img = readExr(f);
        expect([img.width, img.height, img.compression]).to.deep.equal([37, 21, compression]);
        expect([...img.channels.keys()]).to.deep.equal(['A', 'Y']);
        // All test values are exact in float16 (≤ 11 significant bits).
        expect(Array.from(img.channels.get('Y')!)).to.deep.equal(Array.from(y));
        expect(img.channels.get('A')![100]).to.equal(0.5);
      });
    }
  }

  it('EXR depth: RGB grey maps keep their value; coloured maps use OpenCV grey weights', () => {
    const f = join(dir, 'rgb.exr');
    const r = new Float32Array([10, 1, Infinity, 4]);
    const g = new Float32Array([10, 0, Infinity, 4]);
    const b = new Float32Array([10, 0, Infinity, 4]);
    writeExr(f, 2, 2, { R: r, G: g, B: b }, { compression: 'ZIP' });
    const d = readExrDepth(f);
    expect(Array.from(d.data)).to.deep.equal([10, Math.fround(0.299), Infinity, 4]);
  });

  it('EXR: truncation and garbage name the file (unsupported compressions: exr.test.ts)', () => {
    const full = join(dir, 'full.exr');
    writeExr(full, 37, 21, { Y: depthValues() }, { compression: 'ZIP' });
    const cut = join(dir, 'cut.exr');
    const bytes = readFileSync(full);
    writeFileSync(cut, bytes.subarray(0, bytes.length - 40));
    expect(() => readExr(cut)).to.throw(InputError, new RegExp(`^${cut.replace(/[.]/g, '\\.')}: truncated EXR`));
    const junk = join(dir, 'junk.exr');
    writeFileSync(junk, 'not an exr at all');
    expect(() => readExr(junk)).to.throw(InputError, `${junk}: not an OpenEXR file (bad magic number)`);
    expect(() => readExr(join(dir, 'none.exr'))).to.throw(InputError, /none\.exr: cannot read EXR file \(ENOENT\)/);
  });

  it('Sintel .dpt and PFM round-trip; a bad tag names the file', () => {
    const map = { width: 3, height: 2, data: new Float32Array([1, 2, 3, 4.5, 0, 1e5]) };
    const dpt = join(dir, 'a.dpt');
    writeSintelDpt(dpt, map);
    expect(readSintelDpt(dpt)).to.deep.equal(map);
    writeFileSync(dpt, Buffer.alloc(20));
    expect(() => readSintelDpt(dpt)).to.throw(InputError, `${dpt}: not a Sintel .dpt file (tag is not 202021.25)`);
    const pfm = join(dir, 'a.pfm');
    writePfm(pfm, map);
    expect(readPfm(pfm)).to.deep.equal(map);
    // Rows are stored bottom-up: the first stored float is the last row's first pixel.
    expect(readFileSync(pfm).readFloatLE(readFileSync(pfm).length - 24)).to.equal(4.5);
  });

  it('ETH3D raw float32: exact values; a wrong size names the file and both sizes', () => {
    const f = join(dir, 'DSC_0001.JPG');
    writeFileSync(f, Buffer.from(new Float32Array([1, Infinity, 2.5, 8]).buffer));
    expect(Array.from(readRawFloat32(f, 2, 2).data)).to.deep.equal([1, Infinity, 2.5, 8]);
    expect(() => readRawFloat32(f, 3, 2)).to.throw(InputError, `${f}: raw float32 depth holds 16 bytes, expected 24 for 3×2`);
  });

  it('HDF5 (Spring .dsp5): reads the disparity dataset; a missing key lists the keys', async () => {
    const f = join(dir, 'disp1_left_0001.dsp5');
    await writeHdf5(f, 'disparity', [2, 3], new Float32Array([1, 2, NaN, 4, 5, Infinity]));
    const d = await readHdf5Dataset(f, 'disparity');
    expect(d.shape).to.deep.equal([2, 3]);
    expect(Array.from(d.data)).to.deep.equal([1, 2, NaN, 4, 5, Infinity]);
    const e = await rejection(readHdf5Dataset(f, 'depth'));
    expect(e).to.be.instanceOf(InputError);
    expect(e.message).to.equal(`${f}: no HDF5 dataset 'depth' (found: disparity)`);
    const bad = join(dir, 'bad.dsp5');
    writeFileSync(bad, 'garbage');
    expect((await rejection(readHdf5Dataset(bad, 'disparity'))).message).to.equal(`${bad}: not an HDF5 file (no HDF5 signature)`);
  });

  it('16-bit PNG, float16 PNG and label PNG decode exactly', async () => {
    const f = join(dir, 'depth_00000.png');
    await writePng16(f, 3, 1, new Uint16Array([0, 1234, 65535]));
    expect(Array.from((await readPng16(f)).data)).to.deep.equal([0, 1234, 65535]);
    const h = join(dir, 'x.geometric.png');
    await writeFloat16Png(h, 4, 1, new Float32Array([0.5, 2.25, 0, Infinity]));
    expect(Array.from((await readFloat16Png(h)).data)).to.deep.equal([0.5, 2.25, 0, Infinity]);
    const l = join(dir, 'ss_1.png');
    await writePng8(l, 2, 2, new Uint8Array([10, 3, 0, 10]));
    expect(Array.from((await readLabelPng(l)).data)).to.deep.equal([10, 3, 0, 10]);
    const rgb = join(dir, 'rgb8.png');
    await writeRgb(rgb, 2, 1, new Uint8Array([1, 2, 3, 4, 5, 6]));
    const e = await rejection(readPng16(rgb));
    expect(e.message).to.equal(`${rgb}: cannot decode 16-bit PNG (expected a single-channel PNG, found 3 channels)`);
  });

  it('RGB PNG decodes exactly; JPEG decodes to within JPEG error; size without decoding', async () => {
    const px = patternRgb(16, 8);
    const png = join(dir, 'frame.png');
    await writeRgb(png, 16, 8, px);
    const a = await readRgb(png);
    expect([a.width, a.height]).to.deep.equal([16, 8]);
    expect(Array.from(a.data)).to.deep.equal(Array.from(px));
    const flat = new Uint8Array(16 * 8 * 3).fill(200);
    const jpg = join(dir, 'frame.jpg');
    await writeRgb(jpg, 16, 8, flat);
    const b = await readRgb(jpg);
    expect(Math.max(...Array.from(b.data, (v) => Math.abs(v - 200)))).to.be.at.most(2);
    expect(await imageSize(jpg)).to.deep.equal({ width: 16, height: 8 });
    const e = await rejection(readRgb(join(dir, 'missing.png')));
    expect(e).to.be.instanceOf(InputError);
    expect(e.message).to.match(/missing\.png: cannot decode RGB image/);
  });
});
