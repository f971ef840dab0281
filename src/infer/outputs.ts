/**
 * Writing inference results, one frame at a time, so an interrupted run leaves valid files:
 *
 *   <dir>/depth_npy/000000.npy …   float32 (H, W): the raw model output (inverse depth, ReLU'd), written atomically
 *   <dir>/depth_png16/000000.png … 16-bit grey PNG at a FIXED scale: value = round(depth · png16Scale), clipped to
 *                                  [0, 65535]; depth = value / png16Scale (default scale 64: 0…1023.98 in steps of
 *                                  1/64; the model outputs ≈100/m, so anything farther than ≈10 cm fits). Fixed,
 *                                  not per-video, so every PNG is final the moment it is written and comparable
 *                                  across frames and runs. The scale is recorded in summary.json.
 *   <dir>/depth_color/000000.png … colour-mapped depth (inferno by default)
 *   <dir>/depth.mp4                 colour-mapped depth video (H.264, yuv420p)
 *   <dir>/side_by_side.mp4          RGB frame | colour-mapped depth
 *   <dir>/summary.json              frames, resolution, backend, device, checkpoint, FPS, wall time, outputs
 *
 * Colour normalisation (`normalization`):
 *   'video' (default, as the reference): min/max over the whole video. Streaming cannot know them before the last
 *           frame, so the running min/max is tracked while frames arrive and the colour outputs (PNGs and both mp4s)
 *           are rendered in a second pass at finish(), reading the depth back from depth_npy/ (or from a raw spool
 *           file in the output folder when npy output is off; the RGB for side_by_side is spooled the same way).
 *           finish() on Ctrl-C renders the frames done so far. Not for unbounded live streams.
 *   'frame': each frame by its own min/max, written immediately (the fork's stream mode).
 *   {min, max}: a fixed range, written immediately.
 */
import { closeSync, existsSync, mkdirSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import sharp from 'sharp';
import { InputError, invalidParameterError } from '../errors.js';
import { readNpyFloat32, writeNpy } from '../io/npy.js';
import { Mp4Writer } from '../media/video.js';
import { applyColormap, colormapLut, finiteRange, unionRange, type ColormapName, type ValueRange } from './colormap.js';
import type { Frame } from './sources.js';

/** A depth map at the model's output resolution, row-major. */
export interface DepthMap {
  width: number;
  height: number;
  data: Float32Array;
}

export type Normalization = 'video' | 'frame' | ValueRange;

export interface OutputOptions {
  /** Output folder (see uniqueOutputDir); created if missing. */
  dir: string;
  npy?: boolean;
  png16?: boolean;
  colorPng?: boolean;
  depthMp4?: boolean;
  sideBySideMp4?: boolean;
  colormap?: ColormapName;
  normalization?: Normalization;
  /** depth → uint16 factor for depth_png16 (default 64). */
  png16Scale?: number;
  /** Frame rate of the mp4s (default 24, the reference's). */
  fps?: number;
  ffmpeg?: string;
}

/** What the caller knows about the run, for summary.json. */
export interface RunInfo {
  backend: string;
  device: string;
  checkpoint: string;
  /** Seconds from the first to the last frame, measured by the caller. */
  wallTimeS: number;
  /** Frames per second of the model loop as the caller measures it (e.g. after warm-up); default frames / wall time. */
  fps?: number;
  variant?: string;
  source?: string;
  interrupted?: boolean;
  [key: string]: unknown;
}

export interface RunSummary extends RunInfo {
  frames: number;
  /** Depth (model output) size. */
  width: number;
  height: number;
  /** Input frame size. */
  inputWidth: number;
  inputHeight: number;
  fps: number;
  colormap: ColormapName;
  normalization: 'video' | 'frame' | 'fixed';
  /** The range the colour outputs used ('video'/'fixed'); per-frame ranges are not listed. */
  colorRange?: ValueRange;
  /** Finite min/max of all depth values written. */
  depthRange?: ValueRange;
  png16Scale?: number;
  outputs: string[];
}

export const DEFAULT_PNG16_SCALE = 64;

/** Frame file name: zero-padded to 6 digits so names sort in frame order (wider past 999999, still sortable). */
export function frameFileName(index: number, ext: string): string {
  return `${String(index).padStart(6, '0')}.${ext}`;
}

/**
 * `<root>/<name>`, or `<name>_1`, `<name>_2`, … when taken: an earlier run is never overwritten. The folder is
 * created here (mkdir without `recursive` on the last part fails when it exists, so two runs cannot share one).
 */
export function uniqueOutputDir(name: string, root = 'result'): string {
  const safe = name.replace(/[^A-Za-z0-9._-]+/g, '_') || 'output';
  mkdirSync(root, { recursive: true });
  for (let n = 0; ; n++) {
    const dir = join(root, n === 0 ? safe : `${safe}_${n}`);
    try {
      mkdirSync(dir);
      return dir;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/** Depth to uint16 at a fixed scale, rounded and clipped; NaN becomes 0. */
export function depthToUint16(data: Float32Array, scale: number): Uint16Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = Math.round(data[i]! * scale);
    out[i] = v > 65535 ? 65535 : v > 0 ? v : 0;
  }
  return out;
}

async function writePng16(file: string, depth: DepthMap, scale: number): Promise<void> {
  // sharp needs the Uint16Array itself (a Buffer view is read as 8-bit) and grey16 to keep 16 bits (tfjs-notes §6.3).
  await sharp(depthToUint16(depth.data, scale), { raw: { width: depth.width, height: depth.height, channels: 1 } })
    .toColourspace('grey16').png().toFile(file);
}

async function writeRgbPng(file: string, rgb: Uint8Array, width: number, height: number): Promise<void> {
  await sharp(rgb, { raw: { width, height, channels: 3 } }).png().toFile(file);
}

/** RGB resized to the depth size (bicubic), so side by side shows both at the model's resolution like the reference. */
async function rgbAtSize(frame: Frame, width: number, height: number): Promise<Uint8Array> {
  if (frame.width === width && frame.height === height) return frame.rgb;
  const out = await sharp(frame.rgb, { raw: { width: frame.width, height: frame.height, channels: 3 } })
    .resize(width, height, { fit: 'fill', kernel: 'cubic' }).raw().toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

function sideBySide(left: Uint8Array, right: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * 2 * height * 3);
  const row = width * 3;
  for (let y = 0; y < height; y++) {
    out.set(left.subarray(y * row, (y + 1) * row), y * 2 * row);
    out.set(right.subarray(y * row, (y + 1) * row), y * 2 * row + row);
  }
  return out;
}

/** A file of equally sized raw records (frames), appended and read back by index. */
class Spool {
  private readonly fd: number;
  private count = 0;
  constructor(readonly file: string, readonly recordBytes: number) {
    this.fd = openSync(file, 'w+');
  }
  append(bytes: Uint8Array): void {
    writeSync(this.fd, bytes, 0, bytes.length, this.count * this.recordBytes);
    this.count++;
  }
  read(index: number): Buffer {
    const buf = Buffer.alloc(this.recordBytes);
    readSync(this.fd, buf, 0, this.recordBytes, index * this.recordBytes);
    return buf;
  }
  remove(): void {
    closeSync(this.fd);
    rmSync(this.file, { force: true });
  }
}

function checkOutputOptions(o: OutputOptions): void {
  if (o.png16Scale !== undefined && !(o.png16Scale > 0 && Number.isFinite(o.png16Scale))) {
    throw invalidParameterError('--png16-scale', 'positive number', o.png16Scale);
  }
  if (o.fps !== undefined && !(o.fps > 0 && Number.isFinite(o.fps))) throw invalidParameterError('--fps', 'positive number', o.fps);
  if (o.colormap !== undefined) colormapLut(o.colormap);
  const n = o.normalization;
  if (typeof n === 'object' && !(Number.isFinite(n.min) && Number.isFinite(n.max) && n.max >= n.min)) {
    throw invalidParameterError('--normalization', 'video, frame or a range with min <= max', `${n.min}..${n.max}`);
  }
  if (typeof n === 'string' && n !== 'video' && n !== 'frame') {
    throw invalidParameterError('--normalization', 'video, frame or a range with min <= max', n);
  }
}

/**
 * Writes every enabled output for one sequence. Call write() per frame, then finish() once (also on Ctrl-C, and
 * after an error, so the mp4s are finalised).
 */
export class DepthWriter {
  readonly dir: string;
  private readonly options: Required<Omit<OutputOptions, 'ffmpeg' | 'normalization'>> & { normalization: Normalization; ffmpeg?: string };
  private frames = 0;
  private size: { width: number; height: number; inputWidth: number; inputHeight: number } | undefined;
  private depthRange: ValueRange | undefined;
  private depthMp4: Mp4Writer | undefined;
  private sideMp4: Mp4Writer | undefined;
  private depthSpool: Spool | undefined;
  private rgbSpool: Spool | undefined;
  private finished: Promise<RunSummary> | undefined;
  private readonly written = new Set<string>();

  constructor(options: OutputOptions) {
    checkOutputOptions(options);
    this.dir = options.dir;
    this.options = {
      dir: options.dir, npy: options.npy ?? true, png16: options.png16 ?? false, colorPng: options.colorPng ?? false,
      depthMp4: options.depthMp4 ?? true, sideBySideMp4: options.sideBySideMp4 ?? false, colormap: options.colormap ?? 'inferno',
      normalization: options.normalization ?? 'video', png16Scale: options.png16Scale ?? DEFAULT_PNG16_SCALE, fps: options.fps ?? 24,
      ...(options.ffmpeg ? { ffmpeg: options.ffmpeg } : {}),
    };
    mkdirSync(this.dir, { recursive: true });
    for (const [on, sub] of [[this.options.npy, 'depth_npy'], [this.options.png16, 'depth_png16'], [this.options.colorPng, 'depth_color']] as const) {
      if (on) mkdirSync(join(this.dir, sub), { recursive: true });
    }
  }

  private get deferred(): boolean {
    return this.options.normalization === 'video' && (this.options.colorPng || this.options.depthMp4 || this.options.sideBySideMp4);
  }

  get framesWritten(): number {
    return this.frames;
  }

  async write(frame: Frame, depth: DepthMap): Promise<void> {
    if (this.finished) throw new Error(`${this.dir}: write after finish`);
    if (depth.data.length !== depth.width * depth.height) {
      throw new RangeError(`depth map has ${depth.data.length} values, expected ${depth.width}×${depth.height}`);
    }
    this.size ??= { width: depth.width, height: depth.height, inputWidth: frame.width, inputHeight: frame.height };
    if (depth.width !== this.size.width || depth.height !== this.size.height) {
      throw new InputError(`${frame.sourceName} frame ${frame.index}: depth is ${depth.width}×${depth.height}, the sequence started at ${this.size.width}×${this.size.height}`);
    }
    const index = this.frames;
    const o = this.options;
    const frameRange = finiteRange(depth.data);
    this.depthRange = unionRange(this.depthRange, frameRange);
    if (o.npy) {
      writeNpy(join(this.dir, 'depth_npy', frameFileName(index, 'npy')), depth.data, [depth.height, depth.width], 'float32');
      this.written.add('depth_npy/');
    }
    if (o.png16) {
      await writePng16(join(this.dir, 'depth_png16', frameFileName(index, 'png')), depth, o.png16Scale);
      this.written.add('depth_png16/');
    }
    if (this.deferred) {
      if (!o.npy) {
        this.depthSpool ??= new Spool(join(this.dir, '.depth.spool'), depth.data.byteLength);
        this.depthSpool.append(new Uint8Array(depth.data.buffer, depth.data.byteOffset, depth.data.byteLength));
      }
      if (o.sideBySideMp4) {
        const rgb = await rgbAtSize(frame, depth.width, depth.height);
        this.rgbSpool ??= new Spool(join(this.dir, '.rgb.spool'), rgb.length);
        this.rgbSpool.append(rgb);
      }
    } else {
      const range = o.normalization === 'frame' ? frameRange : (o.normalization as ValueRange);
      await this.renderColour(index, depth, range, () => rgbAtSize(frame, depth.width, depth.height));
    }
    this.frames++;
  }

  private async renderColour(index: number, depth: DepthMap, range: ValueRange, rgb: () => Promise<Uint8Array>): Promise<void> {
    const o = this.options;
    const { width, height } = depth;
    const colour = applyColormap(depth.data, range, o.colormap);
    if (o.colorPng) {
      await writeRgbPng(join(this.dir, 'depth_color', frameFileName(index, 'png')), colour, width, height);
      this.written.add('depth_color/');
    }
    const ffmpeg = o.ffmpeg ? { ffmpeg: o.ffmpeg } : {};
    if (o.depthMp4) {
      this.depthMp4 ??= new Mp4Writer(join(this.dir, 'depth.mp4'), { width, height, fps: o.fps, ...ffmpeg });
      await this.depthMp4.write(colour);
    }
    if (o.sideBySideMp4) {
      this.sideMp4 ??= new Mp4Writer(join(this.dir, 'side_by_side.mp4'), { width: 2 * width, height, fps: o.fps, ...ffmpeg });
      await this.sideMp4.write(sideBySide(await rgb(), colour, width, height));
    }
  }

  /**
   * Renders deferred colour outputs, closes the encoders and writes summary.json. Idempotent: a second call (e.g.
   * from a SIGINT handler racing the normal end) returns the same summary.
   */
  finish(run: RunInfo): Promise<RunSummary> {
    this.finished ??= this.finishOnce(run);
    return this.finished;
  }

  private async finishOnce(run: RunInfo): Promise<RunSummary> {
    const o = this.options;
    let failure: unknown;
    try {
      if (this.deferred && this.frames > 0 && this.size) {
        const range = this.depthRange ?? { min: 0, max: 0 };
        const { width, height } = this.size;
        for (let i = 0; i < this.frames; i++) {
          const data = o.npy
            ? readNpyFloat32(join(this.dir, 'depth_npy', frameFileName(i, 'npy'))).data
            : new Float32Array(new Uint8Array(this.depthSpool!.read(i)).buffer);
          const rgbSpool = this.rgbSpool;
          await this.renderColour(i, { width, height, data }, range, async () => new Uint8Array(rgbSpool!.read(i)));
        }
      }
    } catch (e) {
      failure = e;
    }
    // Encoders are closed even after a failure, so what was written stays a playable file.
    for (const writer of [this.depthMp4, this.sideMp4]) {
      if (!writer) continue;
      try {
        await writer.close();
        this.written.add(basename(writer.file));
      } catch (e) {
        failure ??= e;
      }
    }
    this.depthSpool?.remove();
    this.rgbSpool?.remove();
    const frames = this.frames;
    const size = this.size ?? { width: 0, height: 0, inputWidth: 0, inputHeight: 0 };
    const normalization = typeof o.normalization === 'object' ? 'fixed' : o.normalization;
    const summary: RunSummary = {
      ...run,
      frames,
      ...size,
      fps: run.fps ?? (run.wallTimeS > 0 ? frames / run.wallTimeS : 0),
      colormap: o.colormap,
      normalization,
      outputs: [...this.written, 'summary.json'].sort(),
    };
    if (normalization === 'video' && this.depthRange) summary.colorRange = this.depthRange;
    if (typeof o.normalization === 'object') summary.colorRange = o.normalization;
    if (this.depthRange) summary.depthRange = this.depthRange;
    if (o.png16) summary.png16Scale = o.png16Scale;
    writeFileSync(join(this.dir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
    if (failure !== undefined) throw failure;
    return summary;
  }
}

/** True when `dir` holds the outputs of a finished run (summary.json is written last). */
export function isFinishedRun(dir: string): boolean {
  return existsSync(join(dir, 'summary.json'));
}
