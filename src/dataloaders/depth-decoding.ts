/**
 * Per-dataset raw values → inverse depth in 1/m (spec §6.1). Invalid = −1, sky = 0. Pure functions over whole maps,
 * so the rules are testable on hand-made arrays. Beyond the reference, any value that would come out non-finite
 * (e.g. a zero depth where the reference divides by it) is marked invalid: never a silently wrong depth.
 */

const INVALID = -1;

function finiteOrInvalid(v: number): number {
  return Number.isFinite(v) ? v : INVALID;
}

/** MVS-Synth: depth/10 ("≈ metres"); inf = sky → 0. */
export function mvsSynthInvDepth(raw: Float32Array): Float32Array {
  return raw.map((v) => (v === Infinity ? 0 : v > 0 ? finiteOrInvalid(1 / (v / 10)) : INVALID));
}

/** Spring: inverse depth = disparity / (fx · 0.065 m); NaN/inf → −1. Takes the already-subsampled disparity. */
export const SPRING_BASELINE_M = 0.065;
export function springInvDepth(disparity: Float32Array, fx: number): Float32Array {
  return disparity.map((d) => finiteOrInvalid(d / (fx * SPRING_BASELINE_M)));
}

/** TartanAir: invalid (inf, NaN, ≤ 0) → −1; inv = 1/d; inv < 0.001 (sky, ~10 km) → 0. */
export function tartanAirInvDepth(depth: Float32Array): Float32Array {
  return depth.map((d) => {
    if (!(d > 0) || d === Infinity) return INVALID;
    const inv = Math.fround(1 / d);
    return inv < 0.001 ? 0 : inv;
  });
}

/** PointOdyssey: d = v/65535·1000 m; v = 0 → −1; d < 0.01 m → 100; else 1/d. */
export function pointOdysseyInvDepth(values: Uint16Array): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const d = Math.fround(Math.fround(values[i]! / 65535) * 1000);
    out[i] = values[i] === 0 ? INVALID : d < 0.01 ? 100 : 1 / d;
  }
  return out;
}

/** DynamicReplica: invalid (inf, NaN, ≤ 0) → −1; inv = 1/d. */
export function dynamicReplicaInvDepth(depth: Float32Array): Float32Array {
  return depth.map((d) => (d > 0 && d !== Infinity ? 1 / d : INVALID));
}

/** Sintel: invalid (inf, NaN, < 1e-5, incl. 0) → −1; d > 1e4 → 0 (sky); inv = 1/d. */
export function sintelInvDepth(depth: Float32Array): Float32Array {
  return depth.map((d) => (!(d >= 1e-5) || d === Infinity ? INVALID : d > 1e4 ? 0 : 1 / d));
}

/**
 * Waymo: sparse (N, 3) rows [x, y, depth] scattered into a height×width map initialised to −1 (x, y truncated to
 * integers, out-of-range points dropped, later points overwrite earlier ones); inv = 1/d where d > 0, else −1.
 */
export function waymoInvDepth(points: Float32Array, count: number, width: number, height: number): Float32Array {
  const depth = new Float32Array(width * height).fill(INVALID);
  for (let i = 0; i < count; i++) {
    const x = Math.trunc(points[i * 3]!);
    const y = Math.trunc(points[i * 3 + 1]!);
    if (x >= 0 && x < width && y >= 0 && y < height) depth[y * width + x] = points[i * 3 + 2]!;
  }
  return depth.map((d) => (d > 0 ? finiteOrInvalid(1 / d) : INVALID));
}

/** ETH3D: inf (no ground truth) → −1; inv = 1/d. */
export function eth3dInvDepth(depth: Float32Array): Float32Array {
  return depth.map((d) => (d > 0 && d !== Infinity ? 1 / d : INVALID));
}

/** UrbanSyn: EXR value × 1e5 = metres; segmentation class 10 = sky → 0; inv = 1/d. */
export const URBANSYN_SKY_CLASS = 10;
export function urbanSynInvDepth(raw: Float32Array, labels: Uint16Array): Float32Array {
  const out = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const d = Math.fround(raw[i]! * 1e5);
    out[i] = labels[i] === URBANSYN_SKY_CLASS ? 0 : d > 0 ? finiteOrInvalid(1 / d) : INVALID;
  }
  return out;
}

/** Unreal4K: disparity used as inverse depth (scale-free); inf, NaN, < 0 → −1. */
export function unreal4kInvDepth(disparity: Float32Array): Float32Array {
  return disparity.map((d) => (d >= 0 && d !== Infinity ? d : INVALID));
}
