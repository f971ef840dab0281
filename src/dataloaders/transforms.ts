/**
 * Frame pre-processing (spec §2.1) and the OpenCV-equivalent resizes the dataloaders share.
 *
 * Pipeline for one video frame: RGB in [0, 1] → cap the long side (default 2044, truncating int()) with bicubic →
 * clip → snap each side *up* to a multiple of 14 with bicubic → clip → ImageNet mean/std. Output: float32
 * [B, H, W, 3] (NHWC). The model never resizes its output back (§2.1 step 6).
 *
 * Resizes are separable: out = A_h · X · A_wᵀ with 1-D interpolation matrices computed on the JS side, applied with
 * matMul, so they run on every backend and are differentiable. Each matrix is banded (4 taps for cubic), so long
 * sides are processed in blocks of output rows that only multiply the input rows they touch.
 *
 * All functions are pure: tensors in, new tensors out; the caller owns (and disposes) the result. A streaming caller
 * passes a `PreprocessCache` so that the constant tensors (resize matrices, ImageNet statistics) are uploaded once
 * per frame size instead of every frame.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';

/** ImageNet statistics in RGB order (DA-V2's NormalizeImage). */
export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

/** DINOv2 patch size: every model input side must be a multiple of it. */
export const PATCH_MULTIPLE = 14;

/** Long-side cap of the official `RandomDataset` (the fork's stream path with resolution '2k' uses 2048). */
export const DEFAULT_LONG_SIDE_CAP = 2044;

/** Image size in pixels. */
export interface Size {
  height: number;
  width: number;
}

// ---------------------------------------------------------------------------------------------------------------------
// Geometry (pure numbers)

/** numpy's round(): halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * DA-V2's `Resize.constrain_to_multiple_of` with `resize_method='lower_bound'` and the target equal to the current
 * size: round(x/m)·m, or ceil(x/m)·m when rounding went below x. For integer x this is always ceil(x/m)·m
 * (1080 → 1092, never 1078); the reference rule is kept verbatim so non-integer inputs behave the same too.
 */
export function snapToMultipleOf14(x: number, multiple = PATCH_MULTIPLE): number {
  const rounded = roundHalfEven(x / multiple) * multiple;
  return rounded < x ? Math.ceil(x / multiple) * multiple : rounded;
}

/**
 * The long-side cap of `RandomDataset`: when max(H, W) > cap, scale both sides by cap / max(H, W) and truncate with
 * int(), in double precision exactly as Python does (3840×2160 → 2044×1149). Smaller frames are unchanged.
 */
export function capLongSide(size: Size, cap = DEFAULT_LONG_SIDE_CAP): Size {
  const longSide = Math.max(size.height, size.width);
  if (longSide <= cap) return { height: size.height, width: size.width };
  const scale = cap / longSide;
  return { height: Math.trunc(size.height * scale), width: Math.trunc(size.width * scale) };
}

/** The model input size for a frame of `size`: cap, then snap each side up to a multiple of 14 (§2.1 steps 2–3). */
export function modelInputSize(size: Size, cap = DEFAULT_LONG_SIDE_CAP): Size {
  const capped = capLongSide(size, cap);
  return { height: snapToMultipleOf14(capped.height), width: snapToMultipleOf14(capped.width) };
}

// ---------------------------------------------------------------------------------------------------------------------
// 1-D interpolation weights

/**
 * A banded 1-D resampling matrix [outSize, inSize], stored as `taps` (index, weight) pairs per output row: output
 * row i is Σ_k weight[i·taps + k] · input[index[i·taps + k]]. Repeated indices add up.
 */
export interface Interpolation1D {
  outSize: number;
  inSize: number;
  taps: number;
  index: Int32Array;
  weight: Float32Array;
}

function emptyInterpolation(outSize: number, inSize: number, taps: number): Interpolation1D {
  return { outSize, inSize, taps, index: new Int32Array(outSize * taps), weight: new Float32Array(outSize * taps) };
}

/** The dense row-major [outSize, inSize] matrix (for tests and small sizes). */
export function denseMatrix(interp: Interpolation1D): Float32Array {
  const m = new Float32Array(interp.outSize * interp.inSize);
  for (let i = 0; i < interp.outSize; i++) {
    for (let k = 0; k < interp.taps; k++) {
      const t = i * interp.taps + k;
      m[i * interp.inSize + interp.index[t]!] += interp.weight[t]!;
    }
  }
  return m;
}

const f32 = Math.fround;
/** OpenCV's cubic-convolution coefficient. */
const CUBIC_A = -0.75;

/** Clamps a source index to the image (OpenCV's replicated border). */
function clampIndex(j: number, size: number): number {
  return Math.min(Math.max(j, 0), size - 1);
}

/**
 * OpenCV `cv::resize` INTER_CUBIC along one axis: src = (dst + 0.5)·scale − 0.5 rounded to float32, 4 taps at
 * floor(src)−1 … floor(src)+2 clamped to the border (replicate), coefficients from OpenCV's `interpolateCubic` in
 * float32 (the last one is 1 − the others). No antialiasing when shrinking.
 */
export function cubicInterpolation(outSize: number, inSize: number): Interpolation1D {
  const interp = emptyInterpolation(outSize, inSize, 4);
  // cv::resize computes inv_scale = out/in and then scale = 1/inv_scale, both in double.
  const scale = 1 / (outSize / inSize);
  for (let i = 0; i < outSize; i++) {
    const src = f32((i + 0.5) * scale - 0.5);
    const base = Math.floor(src);
    const x = f32(src - base);
    const x1 = f32(x + 1);
    const y = f32(1 - x);
    const c0 = f32(f32(f32(f32(CUBIC_A * x1) - 5 * CUBIC_A) * x1 + 8 * CUBIC_A) * x1 - 4 * CUBIC_A);
    const c1 = f32(f32(f32(f32((CUBIC_A + 2) * x) - (CUBIC_A + 3)) * x) * x + 1);
    const c2 = f32(f32(f32(f32((CUBIC_A + 2) * y) - (CUBIC_A + 3)) * y) * y + 1);
    const c3 = f32(f32(f32(1 - c0) - c1) - c2);
    const coeffs = [c0, c1, c2, c3];
    for (let k = 0; k < 4; k++) {
      interp.index[i * 4 + k] = clampIndex(base - 1 + k, inSize);
      interp.weight[i * 4 + k] = coeffs[k]!;
    }
  }
  return interp;
}

/**
 * OpenCV INTER_AREA along one axis when shrinking (`computeResizeAreaTab`): each output cell averages the input
 * cells it covers, weighted by the covered fraction.
 */
function areaShrinkInterpolation(outSize: number, inSize: number): Interpolation1D {
  const scale = 1 / (outSize / inSize);
  const interp = emptyInterpolation(outSize, inSize, Math.ceil(scale) + 2);
  for (let dx = 0; dx < outSize; dx++) {
    let k = dx * interp.taps;
    const add = (j: number, w: number): void => {
      interp.index[k] = j;
      interp.weight[k] = f32(w);
      k++;
    };
    const fsx1 = dx * scale;
    const fsx2 = fsx1 + scale;
    const cellWidth = Math.min(scale, inSize - fsx1);
    const sx2 = Math.min(Math.floor(fsx2), inSize - 1);
    const sx1 = Math.min(Math.ceil(fsx1), sx2);
    if (sx1 - fsx1 > 1e-3) add(sx1 - 1, (sx1 - fsx1) / cellWidth);
    for (let sx = sx1; sx < sx2; sx++) add(sx, 1 / cellWidth);
    if (fsx2 - sx2 > 1e-3) add(sx2, Math.min(Math.min(fsx2 - sx2, 1), cellWidth) / cellWidth);
    // Unused taps keep weight 0; point them at the last real index so each row's span stays tight.
    const last = k > dx * interp.taps ? interp.index[k - 1]! : 0;
    for (; k < (dx + 1) * interp.taps; k++) interp.index[k] = last;
  }
  return interp;
}

/**
 * OpenCV INTER_AREA along one axis when the image is enlarged in either direction: a linear interpolation whose
 * fractional offset comes from the pixel-area overlap (cv::resize's `area_mode` branch), clamped at the borders.
 */
function areaLinearInterpolation(outSize: number, inSize: number): Interpolation1D {
  const interp = emptyInterpolation(outSize, inSize, 2);
  const invScale = outSize / inSize;
  const scale = 1 / invScale;
  for (let dx = 0; dx < outSize; dx++) {
    const sx = Math.floor(dx * scale);
    let fx = f32(dx + 1 - (sx + 1) * invScale);
    fx = fx <= 0 ? 0 : f32(fx - Math.floor(fx));
    interp.index[dx * 2] = clampIndex(sx, inSize);
    interp.weight[dx * 2] = f32(1 - fx);
    interp.index[dx * 2 + 1] = clampIndex(sx + 1, inSize);
    interp.weight[dx * 2 + 1] = fx;
  }
  return interp;
}

/**
 * The row and column interpolations of OpenCV INTER_AREA for `input` → `output`. OpenCV averages areas only when
 * neither side grows; otherwise both axes use the area-weighted linear rule.
 */
export function areaInterpolations(input: Size, output: Size): { rows: Interpolation1D; cols: Interpolation1D } {
  const shrink = input.height >= output.height && input.width >= output.width;
  const make = shrink ? areaShrinkInterpolation : areaLinearInterpolation;
  return { rows: make(output.height, input.height), cols: make(output.width, input.width) };
}

/** `cubicInterpolation` as a dense row-major [outSize, inSize] matrix. */
export function cubicResizeMatrix(outSize: number, inSize: number): Float32Array {
  return denseMatrix(cubicInterpolation(outSize, inSize));
}

/** `areaInterpolations` as dense row-major matrices ([H2, H1] and [W2, W1]). */
export function areaResizeMatrices(input: Size, output: Size): { rows: Float32Array; cols: Float32Array } {
  const { rows, cols } = areaInterpolations(input, output);
  return { rows: denseMatrix(rows), cols: denseMatrix(cols) };
}

// ---------------------------------------------------------------------------------------------------------------------
// Constant tensors kept between frames

/**
 * The constant tensors of preprocessing (interpolation matrices, ImageNet statistics, the 1/255 scale), kept between
 * the frames of a stream: without it each frame uploads them again. Keyed by what they depend on (kind and sizes).
 */
export class PreprocessCache {
  private readonly tensors = new Map<string, tf.Tensor>();

  /** The tensor stored under `key`, built and kept on first use (safe inside the caller's tidy). */
  get<T extends tf.Tensor>(key: string, build: () => T): T {
    let t = this.tensors.get(key);
    if (!t) {
      t = tf.keep(build());
      this.tensors.set(key, t);
    }
    return t as T;
  }

  /** Number of kept tensors. */
  get size(): number {
    return this.tensors.size;
  }

  /** Frees every kept tensor (they are rebuilt on demand). */
  dispose(): void {
    tf.dispose([...this.tensors.values()]);
    this.tensors.clear();
  }
}

/** A constant from `cache` under `key`, or a fresh one when there is no cache. */
function constant<T extends tf.Tensor>(cache: PreprocessCache | undefined, key: string, build: () => T): T {
  return cache ? cache.get(key, build) : build();
}

// ---------------------------------------------------------------------------------------------------------------------
// Applying separable interpolations to NHWC tensors

/** Output rows per block; a block multiplies only the input rows its taps reach. */
const BLOCK_ROWS = 128;

/**
 * Applies a 1-D interpolation along the leading axis of x [inSize, N] → [outSize, N], block by block, so the cost is
 * proportional to the number of taps rather than to inSize.
 */
function applyAlongFirstAxis(x: tf.Tensor2D, interp: Interpolation1D, cacheKey?: { cache: PreprocessCache; key: string }): tf.Tensor2D {
  const { outSize, taps, index, weight } = interp;
  const blocks: tf.Tensor2D[] = [];
  for (let r0 = 0; r0 < outSize; r0 += BLOCK_ROWS) {
    const r1 = Math.min(r0 + BLOCK_ROWS, outSize);
    let first = Infinity;
    let last = -Infinity;
    for (let t = r0 * taps; t < r1 * taps; t++) {
      first = Math.min(first, index[t]!);
      last = Math.max(last, index[t]!);
    }
    const span = last - first + 1;
    const buildBlock = () => {
      const block = new Float32Array((r1 - r0) * span);
      for (let r = r0; r < r1; r++) {
        for (let k = 0; k < taps; k++) block[(r - r0) * span + index[r * taps + k]! - first] += weight[r * taps + k]!;
      }
      return tf.tensor2d(block, [r1 - r0, span]);
    };
    const matrix = constant(cacheKey?.cache, `${cacheKey?.key} block ${r0}`, buildBlock);
    const rowsIn = span === x.shape[0] ? x : tf.slice(x, [first, 0], [span, -1]);
    blocks.push(tf.matMul(matrix, rowsIn));
  }
  return blocks.length === 1 ? blocks[0]! : tf.concat(blocks, 0);
}

function expectImage(x: tf.Tensor, what: string): tf.Tensor4D {
  if (x.rank === 3) return tf.expandDims(x, 0);
  if (x.rank !== 4) throw new ShapeError(`${what}: expected an image [H, W, C] or a batch [B, H, W, C] but got shape [${x.shape.join(', ')}]`);
  return x as tf.Tensor4D;
}

/** Where `applySeparable` keeps its matrices: `key` names the interpolation kind (e.g. `cubic`). */
export interface SeparableCache {
  cache: PreprocessCache;
  key: string;
}

/**
 * Separable resize of NHWC images: out[b] = rows · x[b] · colsᵀ with `rows` [H2, H1] and `cols` [W2, W1]; null
 * leaves that axis unchanged. With `cached`, the matrices are taken from (or put in) the cache.
 */
export function applySeparable(x: tf.Tensor4D, rows: Interpolation1D | null, cols: Interpolation1D | null, cached?: SeparableCache): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h1, w1, c] = x.shape;
    let y: tf.Tensor4D = x;
    let h = h1;
    if (rows !== null) {
      // [B, H1, W1, C] -> [H1, B·W1·C] -> [H2, B·W1·C] -> [B, H2, W1, C]
      const t = tf.reshape(tf.transpose(y, [1, 0, 2, 3]), [h1, b * w1 * c]) as tf.Tensor2D;
      const r = applyAlongFirstAxis(t, rows, cached && { cache: cached.cache, key: `${cached.key} ${h1}→${rows.outSize}` });
      y = tf.transpose(tf.reshape(r, [rows.outSize, b, w1, c]), [1, 0, 2, 3]);
      h = rows.outSize;
    }
    if (cols !== null) {
      // [B, H, W1, C] -> [W1, B·H·C] -> [W2, B·H·C] -> [B, H, W2, C]
      const t = tf.reshape(tf.transpose(y, [2, 0, 1, 3]), [w1, b * h * c]) as tf.Tensor2D;
      const r = applyAlongFirstAxis(t, cols, cached && { cache: cached.cache, key: `${cached.key} ${w1}→${cols.outSize}` });
      y = tf.transpose(tf.reshape(r, [cols.outSize, b, h, c]), [1, 2, 0, 3]);
    }
    return y === x ? tf.clone(x) : y;
  });
}

/**
 * OpenCV `cv2.resize(img, (W, H), interpolation=INTER_CUBIC)` on float images: A = −0.75, half-pixel centres,
 * replicated border, no antialias. Input [H, W, C] or [B, H, W, C]; output [B, H2, W2, C]. Not clipped: cubic
 * overshoots, and the pipeline clips afterwards as the reference does. A same-size axis is an exact copy.
 * The weights equal cv2's float64 path (what the reference loader runs, its images being /255.0 doubles) to 1e-16;
 * cv2's float32 path rounds differently, by up to 2e-5 on white noise and 5e-7 on smooth images.
 */
export function bicubicResize(x: tf.Tensor, output: Size, cache?: PreprocessCache): tf.Tensor4D {
  return tf.tidy(() => {
    const img = expectImage(x, 'bicubicResize');
    const [, h1, w1] = img.shape;
    const rows = output.height === h1 ? null : cubicInterpolation(output.height, h1);
    const cols = output.width === w1 ? null : cubicInterpolation(output.width, w1);
    return applySeparable(img, rows, cols, cache && { cache, key: 'cubic' });
  });
}

/**
 * OpenCV `cv2.resize(map, (W, H), interpolation=INTER_AREA)`, used for depth maps. Invalid markers (e.g. −1) are
 * averaged into their neighbours exactly like the reference does (spec §6.3). Input [H, W], [H, W, C] or
 * [B, H, W, C]; output keeps the input rank.
 */
export function areaResize(x: tf.Tensor, output: Size): tf.Tensor {
  return tf.tidy(() => {
    const rank = x.rank;
    const img = rank === 2 ? tf.expandDims(tf.expandDims(x, 0), -1) as tf.Tensor4D : expectImage(x, 'areaResize');
    const [, h1, w1] = img.shape;
    if (h1 === output.height && w1 === output.width) return tf.clone(x);
    const { rows, cols } = areaInterpolations({ height: h1, width: w1 }, output);
    // A same-size axis is the identity under both INTER_AREA rules.
    const y = applySeparable(img, h1 === output.height ? null : rows, w1 === output.width ? null : cols);
    if (rank === 2) return tf.reshape(y, [output.height, output.width]);
    if (rank === 3) return tf.squeeze(y, [0]);
    return y;
  });
}

// ---------------------------------------------------------------------------------------------------------------------
// Pixel values

/**
 * RGB pixels → float32 in [0, 1]: int32 tensors (decoded uint8) are divided by 255, float tensors are taken to be in
 * [0, 1] already. Shape [H, W, 3] or [B, H, W, 3] → [B, H, W, 3].
 */
export function toUnitRgb(x: tf.Tensor, cache?: PreprocessCache): tf.Tensor4D {
  return tf.tidy(() => {
    const img = expectImage(x, 'toUnitRgb');
    if (img.shape[3] !== 3) throw new ShapeError(`toUnitRgb: expected 3 RGB channels but got shape [${img.shape.join(', ')}]`);
    return img.dtype === 'float32' ? tf.clone(img) : tf.div(tf.cast(img, 'float32'), constant(cache, '255', () => tf.scalar(255)));
  });
}

/** Interleaved RGB bytes or floats (HWC, as decoders give them) → a [1, H, W, 3] float32 tensor in [0, 1]. */
export function rgbPixelsToTensor(pixels: Uint8Array | Uint8ClampedArray | Float32Array, size: Size): tf.Tensor4D {
  const expected = size.height * size.width * 3;
  if (pixels.length !== expected) {
    throw new ShapeError(`rgbPixelsToTensor: expected ${size.height}×${size.width}×3 = ${expected} values but got ${pixels.length}`);
  }
  if (pixels instanceof Float32Array) return tf.tensor4d(pixels, [1, size.height, size.width, 3], 'float32');
  return tf.tidy(() => tf.div(tf.cast(tf.tensor4d(Int32Array.from(pixels), [1, size.height, size.width, 3], 'int32'), 'float32'), 255));
}

/** (x − mean) / std per RGB channel, ImageNet statistics. */
export function normalizeImageNet(x: tf.Tensor4D, cache?: PreprocessCache): tf.Tensor4D {
  return tf.tidy(() => {
    const mean = constant(cache, 'imagenet mean', () => tf.tensor1d([...IMAGENET_MEAN]));
    const std = constant(cache, 'imagenet std', () => tf.tensor1d([...IMAGENET_STD]));
    return tf.div(tf.sub(x, mean), std);
  });
}

/** Inverse of `normalizeImageNet`, for showing model inputs (the reference's saved frames forget this). */
export function denormalizeImageNet(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.add(tf.mul(x, tf.tensor1d([...IMAGENET_STD])), tf.tensor1d([...IMAGENET_MEAN])));
}

/** Bicubic resize followed by clip to [0, 1], the reference's resize step everywhere in its image loaders. */
export function resizeImage(x: tf.Tensor, output: Size, cache?: PreprocessCache): tf.Tensor4D {
  return tf.tidy(() => tf.clipByValue(bicubicResize(x, output, cache), 0, 1));
}

// ---------------------------------------------------------------------------------------------------------------------
// The whole pipeline

export interface PreprocessOptions {
  /** Long-side cap in pixels (default 2044; `null` disables it, as for dataset images that are already sized). */
  longSideCap?: number | null;
  /** Keeps the constant tensors between calls (streaming); the caller disposes it. */
  cache?: PreprocessCache;
}

/**
 * Video frame(s) → model input (spec §2.1): RGB [H, W, 3] or [B, H, W, 3], uint8-valued int32 or float in [0, 1] →
 * normalised float32 [B, H2, W2, 3] with H2, W2 multiples of 14.
 */
export function preprocessFrames(x: tf.Tensor, options: PreprocessOptions = {}): tf.Tensor4D {
  const cap = options.longSideCap === undefined ? DEFAULT_LONG_SIDE_CAP : options.longSideCap;
  const cache = options.cache;
  return tf.tidy(() => {
    let img = toUnitRgb(x, cache);
    const [, h0, w0] = img.shape;
    if (cap !== null) {
      const capped = capLongSide({ height: h0, width: w0 }, cap);
      if (capped.height !== h0 || capped.width !== w0) img = resizeImage(img, capped, cache);
    }
    const [, h1, w1] = img.shape;
    const snapped = { height: snapToMultipleOf14(h1), width: snapToMultipleOf14(w1) };
    // The reference clips after the snap resize even when it is a no-op (cv2.resize copies same-size images).
    img = resizeImage(img, snapped, cache);
    return normalizeImageNet(img, cache);
  });
}
