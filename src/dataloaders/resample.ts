/**
 * OpenCV-equivalent resizes on plain HWC float arrays, for decoding on worker threads without a tfjs backend. The
 * interpolation weights are transforms.ts's (`cubicResizeMatrix`, `areaResizeMatrices`); this file only applies
 * them, keeping each output row's non-zero taps so the cost is proportional to the taps, not the input size.
 */
import { areaResizeMatrices, cubicResizeMatrix, type Size } from './transforms.js';

/** An HWC float image or map (channels = 1 for depth). */
export interface FloatImage {
  width: number;
  height: number;
  channels: number;
  data: Float32Array;
}

interface Taps {
  index: Int32Array;
  weight: Float32Array;
  start: Int32Array; // per output position, offset into index/weight; start[n] = total
}

function sparse(matrix: Float32Array, outSize: number, inSize: number): Taps {
  const idx: number[] = [];
  const w: number[] = [];
  const start = new Int32Array(outSize + 1);
  for (let o = 0; o < outSize; o++) {
    start[o] = idx.length;
    for (let i = 0; i < inSize; i++) {
      const v = matrix[o * inSize + i]!;
      if (v !== 0) { idx.push(i); w.push(v); }
    }
  }
  start[outSize] = idx.length;
  return { index: Int32Array.from(idx), weight: Float32Array.from(w), start };
}

function applySeparable(img: FloatImage, rows: Taps, cols: Taps, out: Size): FloatImage {
  const { width: w1, channels: c } = img;
  // Rows first ([H1, W1, C] → [H2, W1, C]), then columns, accumulating in float32 like OpenCV's float path.
  const tmp = new Float32Array(out.height * w1 * c);
  const rowLen = w1 * c;
  for (let o = 0; o < out.height; o++) {
    const dst = o * rowLen;
    for (let k = rows.start[o]!; k < rows.start[o + 1]!; k++) {
      const src = rows.index[k]! * rowLen;
      const wt = rows.weight[k]!;
      for (let j = 0; j < rowLen; j++) tmp[dst + j] += wt * img.data[src + j]!;
    }
  }
  const res = new Float32Array(out.height * out.width * c);
  for (let y = 0; y < out.height; y++) {
    const srcRow = y * rowLen;
    const dstRow = y * out.width * c;
    for (let o = 0; o < out.width; o++) {
      for (let k = cols.start[o]!; k < cols.start[o + 1]!; k++) {
        const s = srcRow + cols.index[k]! * c;
        const wt = cols.weight[k]!;
        for (let ch = 0; ch < c; ch++) res[dstRow + o * c + ch] += wt * tmp[s + ch]!;
      }
    }
  }
  return { width: out.width, height: out.height, channels: c, data: res };
}

const cache = new Map<string, Taps>();
function cached(key: string, make: () => Taps): Taps {
  let t = cache.get(key);
  if (t === undefined) {
    if (cache.size > 64) cache.clear();
    t = make();
    cache.set(key, t);
  }
  return t;
}

function copy(img: FloatImage): FloatImage {
  return { ...img, data: img.data.slice() };
}

/** `cv2.resize(img, (W, H), interpolation=INTER_CUBIC)`; not clipped (cubic overshoots). */
export function resizeCubic(img: FloatImage, out: Size): FloatImage {
  if (out.width === img.width && out.height === img.height) return copy(img);
  const rows = cached(`c${out.height}/${img.height}`, () => sparse(cubicResizeMatrix(out.height, img.height), out.height, img.height));
  const cols = cached(`c${out.width}/${img.width}`, () => sparse(cubicResizeMatrix(out.width, img.width), out.width, img.width));
  return applySeparable(img, rows, cols, out);
}

/** `cv2.resize(map, (W, H), interpolation=INTER_AREA)`; −1 markers are averaged in, as the reference does. */
export function resizeArea(img: FloatImage, out: Size): FloatImage {
  if (out.width === img.width && out.height === img.height) return copy(img);
  const key = `a${img.height}x${img.width}>${out.height}x${out.width}`;
  const matrices = (): ReturnType<typeof areaResizeMatrices> => areaResizeMatrices({ height: img.height, width: img.width }, out);
  const rows = cached(`${key}r`, () => sparse(matrices().rows, out.height, img.height));
  const cols = cached(`${key}c`, () => sparse(matrices().cols, out.width, img.width));
  return applySeparable(img, rows, cols, out);
}

/** Clamps every value into [0, 1] in place (the reference's np.clip after each bicubic resize). */
export function clip01(img: FloatImage): FloatImage {
  const d = img.data;
  for (let i = 0; i < d.length; i++) d[i] = d[i]! < 0 ? 0 : d[i]! > 1 ? 1 : d[i]!;
  return img;
}

/** The [y, y+height) × [x, x+width) window. */
export function crop(img: FloatImage, y: number, x: number, height: number, width: number): FloatImage {
  if (y < 0 || x < 0 || y + height > img.height || x + width > img.width) {
    throw new RangeError(`crop ${width}×${height} at (${x}, ${y}) does not fit a ${img.width}×${img.height} image`);
  }
  const c = img.channels;
  const data = new Float32Array(height * width * c);
  for (let r = 0; r < height; r++) data.set(img.data.subarray(((y + r) * img.width + x) * c, ((y + r) * img.width + x + width) * c), r * width * c);
  return { width, height, channels: c, data };
}
