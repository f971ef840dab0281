/** Decoded pixel grids shared by the format readers. Row-major, channels last (HWC). */

/** A single-channel float map (depth, disparity, inverse depth). */
export interface FloatMap {
  width: number;
  height: number;
  data: Float32Array;
}

/** An 8-bit RGB image, HWC. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}
