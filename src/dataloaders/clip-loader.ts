/**
 * Decoding one clip request into a Clip: RGB + ground truth per frame, then the geometry of spec §6.3 — train `base`
 * (resize factor, cover-resize, centred 518² crop), train `2k` (up-scale if needed, random 1918×1078 crop), val
 * (straight resize, GT at native size) and test (images only). Bicubic for images (clipped to [0, 1]), INTER_AREA
 * for depth. Requests are plain data, so worker threads can run this.
 */
import { InputError } from '../errors.js';
import { datasetSpec, type FileDatasetName } from './datasets.js';
import { readRgb } from './formats/image.js';
import { clip01, crop, resizeArea, resizeCubic, type FloatImage } from './resample.js';
import { Rng } from './rng.js';
import { snapToMultipleOf14, type Size } from './transforms.js';
import type { Clip, ResolutionMode, Split } from './types.js';

/** Train targets per resolution mode: size and crop. */
export const TRAIN_TARGETS: Record<ResolutionMode, { size: Size; crop: 'center' | 'random' }> = {
  base: { size: { width: 518, height: 518 }, crop: 'center' },
  '2k': { size: { width: 1918, height: 1078 }, crop: 'random' },
};

export interface ClipRequest {
  dataset: FileDatasetName;
  split: Split;
  mode: ResolutionMode;
  scene: string;
  frameIndices: number[];
  /** RGB and depth (null for test) paths, in clip order. */
  files: Array<{ rgb: string; depth: string | null }>;
  /** Seeds the random crops of this clip. */
  seed: number;
}

async function decodeRgb(file: string): Promise<FloatImage> {
  const img = await readRgb(file);
  const data = new Float32Array(img.data.length);
  for (let i = 0; i < data.length; i++) data[i] = img.data[i]! / 255;
  return { width: img.width, height: img.height, channels: 3, data };
}

const trunc = Math.trunc;

interface FrameOut {
  image: FloatImage;
  depth: FloatImage | null;
  crop: [number, number, number, number] | null;
  source: Size;
}

/** DA-V2's final Resize: each side up to a multiple of 14 (bicubic, clipped); depth follows with INTER_AREA. */
function snapTo14(image: FloatImage): FloatImage {
  const size = { width: snapToMultipleOf14(image.width), height: snapToMultipleOf14(image.height) };
  return size.width === image.width && size.height === image.height ? image : clip01(resizeCubic(image, size));
}

function trainGeometry(image: FloatImage, depth: FloatImage, req: ClipRequest, rng: Rng): FrameOut {
  const spec = datasetSpec(req.dataset);
  const target = TRAIN_TARGETS[req.mode];
  const factor = req.mode === 'base' ? spec.baseResizeFactor : 1;
  let h = trunc(image.height * factor);
  let w = trunc(image.width * factor);
  let img = clip01(resizeCubic(image, { width: w, height: h }));
  let dep = resizeArea(depth, { width: w, height: h });
  const { width: tw, height: th } = target.size;
  const scale = Math.max(th / h, tw / w);
  let y: number;
  let x: number;
  if (target.crop === 'center') {
    h = trunc(h * scale);
    w = trunc(w * scale);
    img = clip01(resizeCubic(img, { width: w, height: h }));
    dep = resizeArea(dep, { width: w, height: h });
    y = Math.floor((h - th) / 2);
    x = Math.floor((w - tw) / 2);
  } else {
    if (scale > 1) {
      h = trunc(h * scale);
      w = trunc(w * scale);
      img = clip01(resizeCubic(img, { width: w, height: h }));
      dep = resizeArea(dep, { width: w, height: h });
    }
    // numpy randint(0, max(1, max+1)), y drawn before x, a fresh draw per frame as in the reference.
    y = rng.int(0, Math.max(1, h - th + 1));
    x = rng.int(0, Math.max(1, w - tw + 1));
  }
  // numpy slicing clamps a window that runs past the edge.
  const ch = Math.min(th, h - y);
  const cw = Math.min(tw, w - x);
  img = snapTo14(crop(img, y, x, ch, cw));
  dep = resizeArea(crop(dep, y, x, ch, cw), { width: img.width, height: img.height });
  return { image: img, depth: dep, crop: [y, x, ch, cw], source: { width: image.width, height: image.height } };
}

function evalGeometry(image: FloatImage, req: ClipRequest): FloatImage {
  const spec = datasetSpec(req.dataset);
  const size = spec.evalSize?.[req.mode] ?? spec.nativeSize;
  return snapTo14(clip01(resizeCubic(image, size)));
}

async function loadFrame(req: ClipRequest, k: number, rng: Rng): Promise<FrameOut> {
  const spec = datasetSpec(req.dataset);
  const { rgb, depth: depthFile } = req.files[k]!;
  const image = await decodeRgb(rgb);
  const source = { width: image.width, height: image.height };
  if (req.split === 'test') return { image: evalGeometry(image, req), depth: null, crop: null, source };
  if (depthFile === null) throw new InputError(`${rgb}: no ground-truth file for this ${req.split} frame`);
  const gt = await spec.readInvDepth(depthFile, rgb);
  if (gt.width !== image.width || gt.height !== image.height) {
    throw new InputError(`${depthFile}: depth map is ${gt.width}×${gt.height}, expected ${image.width}×${image.height} (the size of its RGB frame)`);
  }
  const depth: FloatImage = { width: gt.width, height: gt.height, channels: 1, data: gt.data };
  if (req.split === 'val') return { image: evalGeometry(image, req), depth, crop: null, source };
  return trainGeometry(image, depth, req, rng);
}

/** Decodes every frame of a request and stacks them into a Clip. */
export async function loadClip(req: ClipRequest): Promise<Clip> {
  const rng = new Rng(req.seed);
  const frames: FrameOut[] = [];
  // Sequential on purpose: the random crops draw in frame order, and parallelism comes from the worker pool.
  for (let k = 0; k < req.files.length; k++) frames.push(await loadFrame(req, k, rng));
  const first = frames[0]!;
  const { width, height } = first.image;
  const T = frames.length;
  const pixels = new Float32Array(T * height * width * 3);
  const dw = first.depth?.width ?? 0;
  const dh = first.depth?.height ?? 0;
  const invDepth = first.depth === null ? null : new Float32Array(T * dh * dw);
  frames.forEach((f, t) => {
    if (f.image.width !== width || f.image.height !== height || (f.depth !== null && (f.depth.width !== dw || f.depth.height !== dh))) {
      throw new InputError(`${req.files[t]!.rgb}: frame size ${f.image.width}×${f.image.height} differs from the clip's first frame ${width}×${height}`);
    }
    pixels.set(f.image.data, t * height * width * 3);
    if (invDepth !== null && f.depth !== null) invDepth.set(f.depth.data, t * dh * dw);
  });
  return {
    frames: pixels, invDepth, length: T, height, width, depthHeight: dh, depthWidth: dw,
    meta: {
      dataset: req.dataset, split: req.split, scene: req.scene, frameIndices: req.frameIndices,
      files: req.files.map((f) => f.rgb), sourceSize: first.source, crops: req.split === 'train' ? frames.map((f) => f.crop!) : null,
    },
  };
}
