/**
 * The dataset table (spec §6.1): where each dataset lives under data_root, how its scenes and frames are named and
 * split, its native size, stride and resize factors, and how its ground truth becomes inverse depth.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ConfigError, InputError } from '../errors.js';
import { readNpyFloat32 } from '../io/npy.js';
import * as decode from './depth-decoding.js';
import { readExrDepth } from './formats/exr.js';
import { readHdf5Dataset } from './formats/hdf5.js';
import { imageSize, readFloat16Png, readLabelPng, readPng16 } from './formats/image.js';
import { readRawFloat32 } from './formats/raw-float.js';
import { readSintelDpt } from './formats/sintel-dpt.js';
import type { FloatMap } from './formats/types.js';
import type { Size } from './transforms.js';
import type { DatasetName, ResolutionMode, Split } from './types.js';

export type FileDatasetName = Exclude<DatasetName, 'random'>;

export interface DatasetSpec {
  name: FileDatasetName;
  /** Folder of the scenes, relative to data_root. */
  root: string;
  nativeSize: Size;
  /** Frame stride of training clips in `base` mode (2k mode always uses 2). */
  stride: number;
  /** Stage-1 bicubic/area pre-scale before the 518² centre crop. */
  baseResizeFactor: number;
  /** Val/test image size per resolution mode; null when the reference has none (native size kept). */
  evalSize: Record<ResolutionMode, Size> | null;
  /** Scenes (paths relative to root) in the reference's order, after dataset-wide filters. */
  listScenes(root: string): string[];
  /** The scenes of a split, from the full ordered list. */
  splitScenes(scenes: string[], split: Split): string[];
  rgbDir(root: string, scene: string): string;
  depthDir(root: string, scene: string): string;
  /** The frame number of an RGB file name, or undefined when the file is not a frame. */
  frameNumber(file: string): number | undefined;
  depthName(rgbName: string): string;
  /** Keep only the first N frames of a scene. */
  maxFrames?: number;
  /** Reads the ground truth of one frame as inverse depth (before any resize). */
  readInvDepth(depthFile: string, rgbFile: string): Promise<FloatMap>;
}

function dirs(path: string): string[] {
  if (!existsSync(path)) return [];
  return readdirSync(path, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
}

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const byNumber = (a: string, b: string): number => Number(a) - Number(b) || byName(a, b);
const sortedDirs = (root: string): string[] => dirs(root).sort(byName);
const numberedDirs = (root: string): string[] => dirs(root).filter((d) => /^\d+$/.test(d)).sort(byNumber);

function match(re: RegExp): (file: string) => number | undefined {
  return (file) => {
    const m = re.exec(file);
    return m === null ? undefined : Number(m[1]);
  };
}

const all = (scenes: string[]): string[] => scenes;
const firstEightForVal = (scenes: string[], split: Split): string[] => (split === 'val' ? scenes.slice(0, 8) : scenes);

function checkSize(file: string, map: { width: number; height: number }, expected: Size, what = 'depth map'): void {
  if (map.width !== expected.width || map.height !== expected.height) {
    throw new InputError(`${file}: ${what} is ${map.width}×${map.height}, expected ${expected.width}×${expected.height} (the size of its RGB frame)`);
  }
}

/** RGB frame sizes, read from headers only and cached (every frame of a scene is looked up). */
const sizeCache = new Map<string, Size>();
async function rgbSize(file: string): Promise<Size> {
  let s = sizeCache.get(file);
  if (s === undefined) {
    if (sizeCache.size > 4096) sizeCache.clear();
    s = await imageSize(file);
    sizeCache.set(file, s);
  }
  return s;
}

/** Spring camera intrinsics: one row per frame, fx in column 0. */
const intrinsicsCache = new Map<string, number[][]>();
function springFx(disparityFile: string, frame: number): number {
  const file = join(dirname(dirname(disparityFile)), 'cam_data', 'intrinsics.txt');
  let rows = intrinsicsCache.get(file);
  if (rows === undefined) {
    if (!existsSync(file)) throw new InputError(`${file}: Spring intrinsics not found (needed for ${disparityFile})`);
    rows = readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('#'))
      .map((l) => l.split(/[\s,]+/).map(Number));
    intrinsicsCache.set(file, rows);
  }
  const fx = rows[frame - 1]?.[0];
  if (fx === undefined || !(fx > 0)) throw new InputError(`${file}: no positive fx in row ${frame} (column 1) for ${disparityFile}`);
  return fx;
}

function readNpyMap(file: string, expected: Size): FloatMap {
  const { shape, data } = readNpyFloat32(file);
  const map = { width: shape[1] ?? 0, height: shape[0] ?? 0, data };
  if (shape.length !== 2) throw new InputError(`${file}: expected a 2-D depth array, found shape (${shape.join(', ')})`);
  checkSize(file, map, expected);
  return map;
}

const POINTODYSSEY_SCENES: ReadonlySet<string> = new Set([
  'cnb_dlab_0215_3rd', 'cnb_dlab_0215_ego1', 'cnb_dlab_0225_3rd', 'cnb_dlab_0225_ego1', 'dancing', 'dancingroom0_3rd',
  'footlab_3rd', 'footlab_ego1', 'footlab_ego2', 'girl', 'girl_egocentric', 'human_egocentric', 'human_in_scene',
  'human_in_scene1', 'kg', 'kg_ego1', 'kg_ego2', 'kitchen_gfloor', 'kitchen_gfloor_ego1', 'kitchen_gfloor_ego2',
  'scene_carb_h_tables', 'scene_carb_h_tables_ego1', 'scene_carb_h_tables_ego2', 'scene_j716_3rd', 'scene_j716_ego1',
  'scene_j716_ego2', 'scene_recording_20210910_S05_S06_0_3rd', 'scene_recording_20210910_S05_S06_0_ego2', 'scene1_0129',
  'scene1_0129_ego', 'seminar_h52_3rd', 'seminar_h52_ego1', 'seminar_h52_ego2',
]);

/** The 30 Waymo segments of the test split. */
export const WAYMO_TEST_SEGMENTS: readonly string[] = [
  '12831741023324393102_2673_230_2693_230', '10837554759555844344_6525_000_6545_000', '11450298750351730790_1431_750_1451_750',
  '11434627589960744626_4829_660_4849_660', '14127943473592757944_2068_000_2088_000', '12940710315541930162_2660_000_2680_000',
  '12306251798468767010_560_000_580_000', '11616035176233595745_3548_820_3568_820', '14165166478774180053_1786_000_1806_000',
  '1071392229495085036_1844_790_1864_790', '12374656037744638388_1412_711_1432_711', '13469905891836363794_4429_660_4449_660',
  '1405149198253600237_160_000_180_000', '10289507859301986274_4200_000_4220_000', '12102100359426069856_3931_470_3951_470',
  '14081240615915270380_4399_000_4419_000', '11048712972908676520_545_000_565_000', '13573359675885893802_1985_970_2005_970',
  '10689101165701914459_2072_300_2092_300', '12496433400137459534_120_000_140_000', '11356601648124485814_409_000_429_000',
  '11406166561185637285_1753_750_1773_750', '10868756386479184868_3000_000_3020_000', '1024360143612057520_3580_000_3600_000',
  '13299463771883949918_4240_000_4260_000', '12820461091157089924_5202_916_5222_916', '10203656353524179475_7625_000_7645_000',
  '13178092897340078601_5118_604_5138_604', '12134738431513647889_3118_000_3138_000', '13356997604177841771_3360_000_3380_000',
].map((s) => `segment-${s}`);

const DYNAMICREPLICA_BAD_TRAIN_SCENE = '009850-3_obj_source_left';
const DYNAMICREPLICA_VAL_SCENES = ['a1e031-7_obj_source_left', '1a1407-3_obj_source_left'];
const MVS_SYNTH_VAL_SCENES = ['0118', '0119'];

const spec = (s: DatasetSpec): DatasetSpec => s;

export const DATASETS: Readonly<Record<FileDatasetName, DatasetSpec>> = {
  'mvs-synth': spec({
    name: 'mvs-synth', root: 'mvs-synth/GTAV_1080', nativeSize: { width: 1920, height: 1080 }, stride: 1, baseResizeFactor: 0.5, evalSize: null,
    listScenes: numberedDirs,
    splitScenes: (s, split) => split === 'train' ? s.filter((x) => !MVS_SYNTH_VAL_SCENES.includes(x)) : split === 'val' ? s.filter((x) => MVS_SYNTH_VAL_SCENES.includes(x)) : s,
    rgbDir: (r, s) => join(r, s, 'images'), depthDir: (r, s) => join(r, s, 'depths'),
    frameNumber: match(/^(\d+)\.png$/), depthName: (f) => f.replace(/\.png$/, '.exr'),
    async readInvDepth(depthFile, rgbFile) {
      const raw = readExrDepth(depthFile);
      checkSize(depthFile, raw, await rgbSize(rgbFile));
      return { ...raw, data: decode.mvsSynthInvDepth(raw.data) };
    },
  }),
  spring: spec({
    name: 'spring', root: 'spring/train', nativeSize: { width: 1920, height: 1080 }, stride: 2, baseResizeFactor: 0.5, evalSize: null,
    listScenes: sortedDirs,
    splitScenes: (s, split) => (split === 'val' ? s.filter((_, i) => i % 3 === 2) : s),
    rgbDir: (r, s) => join(r, s, 'frame_left'), depthDir: (r, s) => join(r, s, 'disp1_left'),
    frameNumber: match(/^frame_left_(\d+)\.png$/), depthName: (f) => f.replace('frame_left_', 'disp1_left_').replace(/\.png$/, '.dsp5'),
    async readInvDepth(depthFile, rgbFile) {
      const { shape, data } = await readHdf5Dataset(depthFile, 'disparity');
      const size = await rgbSize(rgbFile);
      // Disparity is stored at twice the frame resolution (2160×3840 for 1080p); [::2, ::2] brings it to the frame.
      if (shape.length !== 2 || shape[0] !== 2 * size.height || shape[1] !== 2 * size.width) {
        throw new InputError(`${depthFile}: disparity is (${shape.join(', ')}), expected (${2 * size.height}, ${2 * size.width}) = twice its RGB frame`);
      }
      const half = new Float32Array(size.width * size.height);
      for (let y = 0; y < size.height; y++) for (let x = 0; x < size.width; x++) half[y * size.width + x] = data[2 * y * shape[1] + 2 * x]!;
      const frame = Number(/disp1_left_(\d+)\.dsp5$/.exec(depthFile)?.[1]);
      return { ...size, data: decode.springInvDepth(half, springFx(depthFile, frame)) };
    },
  }),
  tartanair: spec({
    name: 'tartanair', root: 'tartanair', nativeSize: { width: 640, height: 480 }, stride: 2, baseResizeFactor: 1, evalSize: null,
    listScenes: (root) => dirs(root).filter((env) => !env.includes('amusement'))
      .flatMap((env) => ['Easy', 'Hard'].flatMap((level) => dirs(join(root, env, level)).map((p) => `${env}/${level}/${p}`))).sort(byName),
    splitScenes: all,
    rgbDir: (r, s) => join(r, s, 'image_left'), depthDir: (r, s) => join(r, s, 'depth_left'),
    frameNumber: match(/^(\d+)_left\.png$/), depthName: (f) => f.replace(/_left\.png$/, '_left_depth.npy'),
    async readInvDepth(depthFile, rgbFile) {
      const map = readNpyMap(depthFile, await rgbSize(rgbFile));
      return { ...map, data: decode.tartanAirInvDepth(map.data) };
    },
  }),
  pointodyssey: spec({
    name: 'pointodyssey', root: 'pointodyssey/train', nativeSize: { width: 960, height: 540 }, stride: 2, baseResizeFactor: 1, evalSize: null,
    listScenes: (root) => sortedDirs(root).filter((s) => POINTODYSSEY_SCENES.has(s)),
    splitScenes: all,
    rgbDir: (r, s) => join(r, s, 'rgbs'), depthDir: (r, s) => join(r, s, 'depths'),
    frameNumber: match(/^rgb_(\d+)\.jpg$/), depthName: (f) => f.replace(/^rgb_/, 'depth_').replace(/\.jpg$/, '.png'),
    async readInvDepth(depthFile, rgbFile) {
      const png = await readPng16(depthFile);
      checkSize(depthFile, png, await rgbSize(rgbFile));
      return { width: png.width, height: png.height, data: decode.pointOdysseyInvDepth(png.data) };
    },
  }),
  dynamicreplica: spec({
    name: 'dynamicreplica', root: 'dynamic_replica/train', nativeSize: { width: 1280, height: 720 }, stride: 2, baseResizeFactor: 0.75, evalSize: null,
    listScenes: (root) => sortedDirs(root).filter((s) => s.includes('_left')),
    splitScenes: (s, split) => split === 'train' ? s.filter((x) => x !== DYNAMICREPLICA_BAD_TRAIN_SCENE) : split === 'val' ? s.filter((x) => DYNAMICREPLICA_VAL_SCENES.includes(x)) : s,
    rgbDir: (r, s) => join(r, s, 'images'), depthDir: (r, s) => join(r, s, 'depths'),
    frameNumber: match(/_left-(\d+)\.png$/), depthName: (f) => f.replace('_left-', '_left_').replace(/\.png$/, '.geometric.png'),
    async readInvDepth(depthFile, rgbFile) {
      const map = await readFloat16Png(depthFile);
      checkSize(depthFile, map, await rgbSize(rgbFile));
      return { ...map, data: decode.dynamicReplicaInvDepth(map.data) };
    },
  }),
  sintel: spec({
    name: 'sintel', root: 'sintel/images/training/clean', nativeSize: { width: 1024, height: 436 }, stride: 1, baseResizeFactor: 1,
    evalSize: { base: { width: 1022, height: 434 }, '2k': { width: 1022, height: 434 } },
    listScenes: sortedDirs, splitScenes: firstEightForVal,
    rgbDir: (r, s) => join(r, s), depthDir: (r, s) => join(r, '..', '..', '..', 'depth', 'training', 'depth', s),
    frameNumber: match(/^frame_(\d+)\.png$/), depthName: (f) => f.replace(/\.png$/, '.dpt'),
    async readInvDepth(depthFile, rgbFile) {
      const map = readSintelDpt(depthFile);
      checkSize(depthFile, map, await rgbSize(rgbFile));
      return { ...map, data: decode.sintelInvDepth(map.data) };
    },
  }),
  waymo: spec({
    name: 'waymo', root: 'waymo/val', nativeSize: { width: 1920, height: 1280 }, stride: 1, baseResizeFactor: 1,
    evalSize: { base: { width: 784, height: 518 }, '2k': { width: 1918, height: 1274 } },
    listScenes: sortedDirs,
    splitScenes: (s, split) => split === 'val' ? s.slice(0, 8) : split === 'test' ? s.filter((x) => WAYMO_TEST_SEGMENTS.includes(x)) : s,
    rgbDir: (r, s) => join(r, s, 'FRONT', 'rgb', 'original'), depthDir: (r, s) => join(r, s, 'FRONT', 'depth'),
    frameNumber: match(/^(\d+)\.jpg$/), depthName: (f) => f.replace(/\.jpg$/, '.npy'),
    async readInvDepth(depthFile, rgbFile) {
      const { shape, data } = readNpyFloat32(depthFile);
      if (shape.length !== 2 || shape[1] !== 3) throw new InputError(`${depthFile}: expected sparse (N, 3) [x, y, depth] points, found shape (${shape.join(', ')})`);
      // The reference scatters into a fixed 1280×1920 map: the frame must have that size.
      const size = DATASETS.waymo.nativeSize;
      checkSize(rgbFile, await rgbSize(rgbFile), size, 'RGB frame (Waymo depth points index a fixed grid)');
      return { ...size, data: decode.waymoInvDepth(data, shape[0]!, size.width, size.height) };
    },
  }),
  eth3d: spec({
    name: 'eth3d', root: 'eth3d', nativeSize: { width: 6048, height: 4032 }, stride: 1, baseResizeFactor: 1,
    evalSize: { base: { width: 784, height: 518 }, '2k': { width: 1918, height: 1274 } },
    listScenes: sortedDirs, splitScenes: firstEightForVal,
    rgbDir: (r, s) => join(r, s, 'images', 'dslr_images'), depthDir: (r, s) => join(r, s, 'ground_truth_depth', 'dslr_images'),
    frameNumber: match(/^DSC_(\d+)\.JPG$/), depthName: (f) => f,
    async readInvDepth(depthFile, rgbFile) {
      const size = await rgbSize(rgbFile);
      const map = readRawFloat32(depthFile, size.width, size.height);
      return { ...map, data: decode.eth3dInvDepth(map.data) };
    },
  }),
  urbansyn: spec({
    name: 'urbansyn', root: 'urbansyn', nativeSize: { width: 2048, height: 1024 }, stride: 1, baseResizeFactor: 1,
    evalSize: { base: { width: 1036, height: 518 }, '2k': { width: 2044, height: 1022 } },
    listScenes: numberedDirs, splitScenes: all, maxFrames: 1000,
    rgbDir: (r, s) => join(r, s, 'rgb'), depthDir: (r, s) => join(r, s, 'depth'),
    frameNumber: match(/^rgb_(\d+)\.png$/), depthName: (f) => f.replace(/^rgb_/, 'depth_').replace(/\.png$/, '.exr'),
    async readInvDepth(depthFile, rgbFile) {
      const raw = readExrDepth(depthFile);
      checkSize(depthFile, raw, await rgbSize(rgbFile));
      const ssFile = join(dirname(dirname(depthFile)), 'ss', basename(depthFile).replace(/^depth_/, 'ss_').replace(/\.exr$/, '.png'));
      if (!existsSync(ssFile)) throw new InputError(`${ssFile}: UrbanSyn sky mask not found (needed for ${depthFile})`);
      const ss = await readLabelPng(ssFile);
      checkSize(ssFile, ss, raw, 'segmentation mask');
      return { ...raw, data: decode.urbanSynInvDepth(raw.data, ss.data) };
    },
  }),
  unreal4k: spec({
    name: 'unreal4k', root: 'unrealstereo4k', nativeSize: { width: 3840, height: 2160 }, stride: 2, baseResizeFactor: 1,
    evalSize: { base: { width: 924, height: 518 }, '2k': { width: 2044, height: 1148 } },
    listScenes: sortedDirs, splitScenes: all,
    rgbDir: (r, s) => join(r, s, 'Image0'), depthDir: (r, s) => join(r, s, 'Disp0'),
    frameNumber: match(/^(\d+)\.png$/), depthName: (f) => f.replace(/\.png$/, '.npy'),
    async readInvDepth(depthFile, rgbFile) {
      const map = readNpyMap(depthFile, await rgbSize(rgbFile));
      return { ...map, data: decode.unreal4kInvDepth(map.data) };
    },
  }),
};

/** The dataset spec of a name; unknown names fail with the valid choices listed. */
export function datasetSpec(name: string): DatasetSpec {
  const s = (DATASETS as Record<string, DatasetSpec | undefined>)[name];
  if (s === undefined) throw new ConfigError(`Unknown dataset "${name}" (expected one of: ${Object.keys(DATASETS).join(', ')}, random)`);
  return s;
}

/** mtime of a path, or 0 when it does not exist. */
export function mtimeOf(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}
