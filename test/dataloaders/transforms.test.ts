import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import {
  areaInterpolations,
  areaResize,
  bicubicResize,
  capLongSide,
  cubicResizeMatrix,
  denseMatrix,
  modelInputSize,
  normalizeImageNet,
  PreprocessCache,
  preprocessFrames,
  rgbPixelsToTensor,
  snapToMultipleOf14,
} from '../../src/dataloaders/transforms.js';
import { ShapeError } from '../../src/errors.js';
import { useTestBackend } from '../helpers/backend.js';
import { closeness, expectClose, fixtureTensor } from '../helpers/fixtures.js';
import { countUploads } from '../helpers/uploads.js';

describe('dataloaders/transforms', () => {
  before(async () => {
    await useTestBackend();
  });

  describe('geometry', () => {
    it('snaps each side up to a multiple of 14 (spec §2.1 examples)', () => {
      expect(modelInputSize({ width: 1920, height: 1080 })).to.deep.equal({ width: 1932, height: 1092 });
      expect(modelInputSize({ width: 3840, height: 2160 })).to.deep.equal({ width: 2044, height: 1162 });
      expect(modelInputSize({ width: 2044, height: 1148 })).to.deep.equal({ width: 2044, height: 1148 });
      expect(modelInputSize({ width: 518, height: 518 })).to.deep.equal({ width: 518, height: 518 });
      expect(modelInputSize({ width: 310, height: 171 })).to.deep.equal({ width: 322, height: 182 });
    });

    it('caps the long side at 2044 with int() truncation (3840×2160 → 2044×1149)', () => {
      expect(capLongSide({ width: 3840, height: 2160 })).to.deep.equal({ width: 2044, height: 1149 });
      expect(capLongSide({ width: 2044, height: 4000 })).to.deep.equal({ width: 1044, height: 2044 });
      expect(capLongSide({ width: 2044, height: 100 })).to.deep.equal({ width: 2044, height: 100 });
      expect(capLongSide({ width: 3000, height: 1000 }, 2048)).to.deep.equal({ width: 2048, height: 682 });
    });

    it("reference rule round(x/14)·14 (ceil if smaller) equals ceil for every integer size", () => {
      for (let x = 1; x <= 5000; x++) expect(snapToMultipleOf14(x), `x=${x}`).to.equal(Math.ceil(x / 14) * 14);
    });
  });

  describe('OpenCV INTER_CUBIC weights', () => {
    it('matches hand-computed cv2 coefficients for a 2× upscale', () => {
      // cv2.resize 4 → 8: dst 0 → src −0.25, floor −1, t 0.75; taps (−2,−1,0,1) clamp to (0,0,0,1).
      // interpolateCubic(0.75), A = −0.75: [−0.03515625, 0.26171875, 0.87890625, −0.10546875] (exact in binary).
      const m = cubicResizeMatrix(8, 4);
      expect(m[0]).to.equal(-0.03515625 + 0.26171875 + 0.87890625);
      expect(m[1]).to.equal(-0.10546875);
      // dst 3 → src 1.25, taps 0..3, t 0.25: the same weights reversed.
      expect(Array.from(m.subarray(12, 16))).to.deep.equal([-0.10546875, 0.87890625, 0.26171875, -0.03515625]);
    });

    it('every row sums to 1 and a same-size resize is the identity', () => {
      const m = cubicResizeMatrix(13, 29);
      for (let i = 0; i < 13; i++) {
        let s = 0;
        for (let j = 0; j < 29; j++) s += m[i * 29 + j]!;
        expect(s).to.be.closeTo(1, 1e-6);
      }
      const id = cubicResizeMatrix(5, 5);
      for (let i = 0; i < 5; i++) for (let j = 0; j < 5; j++) expect(id[i * 5 + j]).to.equal(i === j ? 1 : 0);
    });
  });

  describe('against OpenCV 4.14 cv2.resize (float64 input, as the reference loader passes /255.0 images)', () => {
    /*
     * i, j = np.mgrid[0:5, 0:6]; x = (((i*7 + j*3) % 11) / 10).astype(np.float64)
     * cv2.resize(x, (9, 3), interpolation=cv2.INTER_CUBIC)  # rows shrink, columns grow
     * cv2.resize(x, (4, 3), interpolation=cv2.INTER_AREA)   # non-integer shrink
     * cv2.resize(x, (9, 8), interpolation=cv2.INTER_AREA)   # enlarge
     */
    const x = Array.from({ length: 30 }, (_, k) => (((Math.floor(k / 6) * 7 + (k % 6) * 3) % 11) / 10));
    const CUBIC_3x9 = [0.21655098, 0.40266209, 0.54695006, 0.42446175, 0.64820598, 0.76439261, 0.42330035, 0.24635418, 0.22586158,
      0.27395834, 0.421875, 0.68298611, 0.93159733, 0.5, 0.06840284, 0.3170139, 0.578125, 0.72604167, 0.77413819, 0.75364568,
      0.57669969, 0.2356078, 0.35179408, 0.57553767, 0.45304993, 0.59733791, 0.78344902];
    const AREA_3x4 = [0.38000002, 0.4866667, 0.62000004, 0.28666668, 0.5466667, 0.65333337, 0.34666669, 0.45333336, 0.71333338,
      0.38000002, 0.51333336, 0.62000004];
    const AREA_8x9 = [0.0, 0.15, 0.3, 0.6, 0.75, 0.9, 0.1, 0.25, 0.4, 0.28, 0.43, 0.58, 0.44, 0.59, 0.74, 0.38, 0.31, 0.24, 0.7,
      0.85, 1.0, 0.2, 0.35, 0.5, 0.8, 0.4, 0.0, 0.38, 0.53, 0.68, 0.76, 0.47, 0.18, 0.48, 0.52, 0.56, 0.44, 0.48, 0.52, 0.82, 0.53,
      0.24, 0.32, 0.47, 0.62, 1.0, 0.6, 0.2, 0.5, 0.65, 0.8, 0.0, 0.15, 0.3, 0.76, 0.69, 0.62, 0.26, 0.41, 0.56, 0.42, 0.57, 0.72,
      0.6, 0.75, 0.9, 0.1, 0.25, 0.4, 0.7, 0.85, 1.0];

    const check = (y: tf.Tensor, expected: number[]): void => {
      const got = y.dataSync();
      expect(got.length).to.equal(expected.length);
      expected.forEach((v, k) => expect(got[k], `element ${k}`).to.be.closeTo(v, 1e-6));
      y.dispose();
    };

    it('INTER_CUBIC 5×6 → 3×9', () => {
      const t = tf.tensor4d(x, [1, 5, 6, 1]);
      check(bicubicResize(t, { height: 3, width: 9 }), CUBIC_3x9);
      t.dispose();
    });

    it('INTER_AREA 5×6 → 3×4 and 5×6 → 8×9', () => {
      const t = tf.tensor2d(x, [5, 6]);
      check(areaResize(t, { height: 3, width: 4 }), AREA_3x4);
      check(areaResize(t, { height: 8, width: 9 }), AREA_8x9);
      t.dispose();
    });
  });

  describe('preprocessing parity (fixture s_nonmult)', () => {
    it('reproduces the reference model input from raw 171×310 RGB to within 1e-5·max', function () {
      const raw = fixtureTensor(this, 'inputs', 'nonmult_171x310_rgb.npy'); // [2, 171, 310, 3]
      const refNchw = fixtureTensor(this, 's_nonmult', 'input.npy'); // [2, 3, 182, 322]
      const ref = tf.transpose(refNchw, [0, 2, 3, 1]);
      const ours = preprocessFrames(raw);
      expect(ours.shape).to.deep.equal([2, 182, 322, 3]);
      const c = expectClose(ours, ref, 1e-5, 's_nonmult input');
      console.log(`      s_nonmult preprocessing: max|ours − ref| = ${c.maxAbsErr.toExponential(2)} (max|ref| ${c.maxAbsRef.toFixed(3)})`);
      tf.dispose([raw, refNchw, ref, ours]);
    });
  });

  describe('resizes', () => {
    it('bicubicResize of a constant stays constant, shrinking and enlarging (no antialias ringing)', () => {
      const x = tf.fill([1, 37, 53, 3], 0.25);
      for (const size of [{ height: 14, width: 200 }, { height: 300, width: 20 }]) {
        const y = bicubicResize(x, size);
        expect(y.shape).to.deep.equal([1, size.height, size.width, 3]);
        const { maxAbsErr } = closeness(y, tf.fill(y.shape, 0.25));
        expect(maxAbsErr).to.be.below(1e-6);
        y.dispose();
      }
      x.dispose();
    });

    it('bicubicResize over long sides (blocked matMul) equals the dense matrix product', () => {
      const data = Float32Array.from({ length: 300 * 7 }, (_, i) => Math.sin(i * 0.37) + 0.1 * (i % 5));
      const x = tf.tensor4d(data, [1, 300, 7, 1]);
      const y = bicubicResize(x, { height: 411, width: 7 });
      const dense = tf.matMul(tf.tensor2d(cubicResizeMatrix(411, 300), [411, 300]), tf.tensor2d(data, [300, 7]));
      expectClose(tf.reshape(y, [411, 7]), dense, 1e-6, 'blocked vs dense');
      tf.dispose([x, y, dense]);
    });

    it('areaResize with an integer factor averages blocks; enlarging uses OpenCV area-linear weights', () => {
      // 4×4 → 2×2: each output is the mean of a 2×2 block.
      const x = tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], [4, 4]);
      const y = areaResize(x, { height: 2, width: 2 });
      expect(y.shape).to.deep.equal([2, 2]);
      expect(Array.from(y.dataSync())).to.deep.equal([3.5, 5.5, 11.5, 13.5]);
      // 3 → 2 (scale 1.5): out0 = (x0 + 0.5·x1)/1.5, out1 = (0.5·x1 + x2)/1.5.
      const rows = denseMatrix(areaInterpolations({ height: 3, width: 1 }, { height: 2, width: 1 }).rows);
      expect(Array.from(rows).map((v) => Number(v.toFixed(6)))).to.deep.equal([0.666667, 0.333333, 0, 0, 0.333333, 0.666667]);
      // 2 → 4 (INTER_AREA enlarging, cv2's area_mode linear rule):
      const up = denseMatrix(areaInterpolations({ height: 2, width: 1 }, { height: 4, width: 1 }).rows);
      // dx=0: sx=0, fx=1−2=−1→0 → [1,0]; dx=1: sx=0, fx=2−2=0 → [1,0]; dx=2: sx=1, fx=3−4→0 → [0,1]; dx=3: [0,1].
      expect(Array.from(up)).to.deep.equal([1, 0, 1, 0, 0, 1, 0, 1]);
      tf.dispose([x, y]);
    });
  });

  it('normalizeImageNet and rgbPixelsToTensor compute (x/255 − mean)/std', () => {
    const t = rgbPixelsToTensor(new Uint8Array([255, 0, 51]), { height: 1, width: 1 });
    const n = normalizeImageNet(t);
    const v = Array.from(n.dataSync());
    expect(v[0]).to.be.closeTo((1 - 0.485) / 0.229, 1e-6);
    expect(v[1]).to.be.closeTo((0 - 0.456) / 0.224, 1e-6);
    expect(v[2]).to.be.closeTo((0.2 - 0.406) / 0.225, 1e-6);
    tf.dispose([t, n]);
  });

  it('rejects inputs that are not RGB images with a ShapeError', () => {
    expect(() => preprocessFrames(tf.zeros([4, 4]))).to.throw(ShapeError, 'toUnitRgb: expected an image [H, W, C] or a batch [B, H, W, C] but got shape [4, 4]');
    expect(() => rgbPixelsToTensor(new Uint8Array(5), { height: 1, width: 2 })).to.throw(ShapeError, 'expected 1×2×3 = 6 values but got 5');
  });

  it('with a PreprocessCache, a second frame of the same size uploads only the frame and gives identical values', () => {
    const cache = new PreprocessCache();
    const frame = () => tf.tensor4d(Int32Array.from({ length: 20 * 33 * 3 }, (_, i) => (i * 37) % 256), [1, 20, 33, 3], 'int32');
    const plain = tf.tidy(() => preprocessFrames(frame(), { longSideCap: 24 }));
    const start = tf.memory().numTensors;
    const first = countUploads(() => tf.tidy(() => preprocessFrames(frame(), { longSideCap: 24, cache })));
    // 20×33 → cap 14×24 (rows 20→14, cols 33→24) → snap 14×28 (cols 24→28): 3 matrices, mean, std and the 255.
    expect(cache.size).to.equal(6);
    expect(first.uploads.length).to.equal(7);
    const second = countUploads(() => tf.tidy(() => preprocessFrames(frame(), { longSideCap: 24, cache })));
    expect(second.uploads, 'only the frame itself').to.deep.equal(['1x20x33x3']);
    expect(Array.from(second.result.dataSync())).to.deep.equal(Array.from(plain.dataSync()));
    expect(tf.memory().numTensors - start, 'two outputs and the kept constants').to.equal(2 + 6);
    tf.dispose([plain, first.result, second.result]);
    cache.dispose();
    expect(tf.memory().numTensors).to.equal(start - 1);
  });

  it('does not leak tensors', () => {
    const x = tf.randomUniform([1, 20, 33, 3]);
    const before = tf.memory().numTensors;
    const y = preprocessFrames(x, { longSideCap: 24 });
    expect(y.shape).to.deep.equal([1, 14, 28, 3]); // 20×33 → cap int(14.5)×24 → snap 14×28
    y.dispose();
    tf.dispose(areaResize(x, { height: 7, width: 9 }));
    expect(tf.memory().numTensors).to.equal(before);
    x.dispose();
  });
});
