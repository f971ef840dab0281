/**
 * Frame sources for inference: a video file, a folder of images, a glob pattern, a network stream
 * (rtsp/rtmp/http(s)/udp/tcp) or a V4L2 webcam. Each source is one sequence: the caller resets the model's
 * temporal state when a new source starts.
 *
 * A frame whose size differs from the sequence's first frame is resized to the first size (ffmpeg's scale filter for
 * videos and streams, bicubic through sharp for images) rather than starting a new sequence: the Mamba state is
 * tied to one feature-map size, and a stream that changes size mid-way is still one scene.
 */
import { readdirSync, statSync, type Stats } from 'node:fs';
import { basename, extname, join, relative, resolve, sep } from 'node:path';
import sharp from 'sharp';
import { InputError, invalidParameterError } from '../errors.js';
import { readRgb } from '../dataloaders/formats/image.js';
import { decodeVideo, probeVideo, type FfmpegOptions, type RawFrame, type VideoInput } from '../media/video.js';

/** One RGB frame of a sequence. */
export interface Frame {
  /** 0-based position in its sequence (frames dropped by --target-fps are not counted). */
  index: number;
  width: number;
  height: number;
  /** H·W·3 bytes, row-major RGB. */
  rgb: Uint8Array;
  /** Presentation time (files: index / fps; live sources: wall-clock ms since the source opened). */
  timestampMs?: number;
  /** The source's name, also the default output folder name. */
  sourceName: string;
}

export type SourceKind = 'video' | 'images' | 'stream' | 'webcam';

/** One sequence of frames. Iterate it once; breaking out of the loop stops the decoder. */
export interface FrameSource extends AsyncIterable<Frame> {
  name: string;
  kind: SourceKind;
  /** The path, URL, device or glob it reads. */
  location: string;
  /** Live sources (streams, webcams) drop frames to keep up instead of queueing them. */
  live: boolean;
}

export interface SourceOptions extends FfmpegOptions {
  /** Stop each sequence after this many frames. */
  maxFrames?: number;
  /**
   * Frame rate to deliver. Files: ffmpeg's fps filter resamples by timestamp (deterministic). Live sources: frames
   * arriving sooner than 1/targetFps after the last kept one are dropped.
   */
  targetFps?: number;
  /** Live sources: frames held while the consumer is busy; when full the oldest is dropped (default 2). */
  liveQueue?: number;
  /** Live sources: reconnection attempts after a failed open or a dropped connection (default 3). */
  retries?: number;
  /** Live sources: first reconnection delay in ms, doubled each attempt (default 1000). */
  retryDelayMs?: number;
  /** Called when something worth a log line happens (frame resized, frames dropped, reconnecting). */
  onWarning?: (message: string) => void;
}

export const VIDEO_EXTENSIONS = ['.mp4', '.mov', '.mkv', '.webm', '.avi', '.m4v', '.mpg', '.mpeg', '.ts', '.gif'] as const;
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff'] as const;

const STREAM_URL = /^(rtsps?|rtmps?|https?|udp|tcp|srt):\/\//i;
const WEBCAM = /^\/dev\/video\d+$/;
const GLOB_CHARS = /[*?[]/;

function hasExtension(file: string, list: readonly string[]): boolean {
  return list.includes(extname(file).toLowerCase());
}

/**
 * Natural order: digit runs compare as numbers, so frame2 < frame10; ties fall back to plain comparison so the
 * order is total (frame01 vs frame1).
 */
export function naturalCompare(a: string, b: string): number {
  const split = (s: string): string[] => s.match(/\d+|\D+/g) ?? [];
  const pa = split(a);
  const pb = split(b);
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    if (/^\d/.test(x) && /^\d/.test(y)) {
      const d = Number(x) - Number(y);
      if (d !== 0) return d;
    } else if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  if (pa.length !== pb.length) return pa.length - pb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A glob (`*`, `?`, `[abc]`, `**`) as a RegExp over `/`-separated relative paths. */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        // `**/` matches zero or more folders.
        re += pattern[i + 2] === '/' ? '(?:.*/)?' : '.*';
        i += pattern[i + 2] === '/' ? 2 : 1;
      } else {
        re += '[^/]*';
      }
    } else if (c === '?') {
      re += '[^/]';
    } else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) {
        re += '\\[';
      } else {
        re += '[' + pattern.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\') + ']';
        i = end;
      }
    } else {
      re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
    }
  }
  return new RegExp(`^${re}$`);
}

/** Files matching a glob, in natural order. The walk starts at the longest folder prefix without glob characters. */
export function expandGlob(pattern: string): string[] {
  const parts = pattern.split(/[\\/]/);
  const firstGlob = parts.findIndex((p) => GLOB_CHARS.test(p));
  const rootParts = parts.slice(0, firstGlob);
  const root = rootParts.length === 0 ? '.' : rootParts.join('/') || '/';
  const matcher = globToRegExp(parts.slice(firstGlob).join('/'));
  const recursive = parts.slice(firstGlob).length > 1 || pattern.includes('**');
  const found: string[] = [];
  const walk = (dir: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = join(dir, entry);
      let st: Stats;
      try {
        st = statSync(full);
      } catch {
        continue;
      }
      const rel = relative(root, full).split(sep).join('/');
      if (st.isDirectory()) {
        if (recursive) walk(full);
      } else if (matcher.test(rel)) {
        found.push(full);
      }
    }
  };
  walk(root);
  return found.sort(naturalCompare);
}

function fileStats(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function checkOptions(options: SourceOptions): void {
  if (options.maxFrames !== undefined && !(Number.isInteger(options.maxFrames) && options.maxFrames > 0)) {
    throw invalidParameterError('--max-frames', 'positive integer', options.maxFrames);
  }
  if (options.targetFps !== undefined && !(options.targetFps > 0 && Number.isFinite(options.targetFps))) {
    throw invalidParameterError('--target-fps', 'positive number', options.targetFps);
  }
}

/** Output-folder-friendly name for a URL or device: host and path with anything odd replaced by `_`. */
function urlName(url: string): string {
  const stripped = url.replace(/^[a-z]+:\/\//i, '').replace(/^[^@/]*@/, '').replace(/[?#].*$/, '');
  return stripped.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '') || 'stream';
}

function stem(path: string): string {
  return basename(path, extname(path));
}

/** One source per sequence that `input` names. A folder of videos gives one source per video. */
export function openSources(inputs: string | readonly string[], options: SourceOptions = {}): FrameSource[] {
  checkOptions(options);
  const list = typeof inputs === 'string' ? [inputs] : inputs;
  if (list.length === 0) throw new InputError('no input given (expected a video, image folder, glob, stream URL or /dev/videoN)');
  return list.flatMap((input) => sourcesFor(input, options));
}

function sourcesFor(input: string, options: SourceOptions): FrameSource[] {
  if (STREAM_URL.test(input) && !/^https?:\/\/.*\.(mp4|mov|mkv|webm)$/i.test(input)) return [liveSource(input, 'stream', urlName(input), options)];
  if (STREAM_URL.test(input)) return [videoSource({ location: input, kind: 'stream' }, stem(input), options)];
  if (WEBCAM.test(input)) {
    if (!fileStats(input)) throw new InputError(`${input}: no such webcam device`);
    return [liveSource(input, 'webcam', basename(input), options)];
  }
  const st = fileStats(input);
  if (!st && GLOB_CHARS.test(input)) {
    const files = expandGlob(input);
    const images = files.filter((f) => hasExtension(f, IMAGE_EXTENSIONS));
    const videos = files.filter((f) => hasExtension(f, VIDEO_EXTENSIONS));
    if (images.length > 0) return [imageSource(images, input, globName(input), options)];
    if (videos.length > 0) return videos.map((v) => videoSource({ location: v, kind: 'file' }, stem(v), options));
    throw new InputError(`${input}: the pattern matches no images (${IMAGE_EXTENSIONS.join(' ')}) or videos (${VIDEO_EXTENSIONS.join(' ')})`);
  }
  if (!st) throw new InputError(`${input}: no such file or folder`);
  if (st.isDirectory()) {
    const files = readdirSync(input).map((f) => join(input, f)).filter((f) => fileStats(f)?.isFile()).sort(naturalCompare);
    const images = files.filter((f) => hasExtension(f, IMAGE_EXTENSIONS));
    const videos = files.filter((f) => hasExtension(f, VIDEO_EXTENSIONS));
    if (images.length > 0) {
      if (videos.length > 0) options.onWarning?.(`${input}: has images and videos; reading the ${images.length} images as one sequence`);
      return [imageSource(images, input, basename(resolve(input)), options)];
    }
    if (videos.length > 0) return videos.map((v) => videoSource({ location: v, kind: 'file' }, stem(v), options));
    throw new InputError(`${input}: the folder has no images (${IMAGE_EXTENSIONS.join(' ')}) or videos (${VIDEO_EXTENSIONS.join(' ')})`);
  }
  if (hasExtension(input, IMAGE_EXTENSIONS)) return [imageSource([input], input, stem(input), options)];
  // Anything else is handed to ffmpeg, which decides whether it is a video.
  return [videoSource({ location: input, kind: 'file' }, stem(input), options)];
}

function globName(pattern: string): string {
  const fixed = pattern.split(/[\\/]/).filter((p) => p !== '' && p !== '.' && p !== '..' && !GLOB_CHARS.test(p));
  return fixed[fixed.length - 1] ?? 'frames';
}

function videoSource(input: VideoInput, name: string, options: SourceOptions): FrameSource {
  return {
    name, kind: 'video', location: input.location, live: false,
    async *[Symbol.asyncIterator]() {
      const info = await probeVideo(input, options);
      const fps = options.targetFps ?? info.fps;
      let index = 0;
      for await (const raw of decodeVideo(input, { ...withFfmpeg(options), width: info.width, height: info.height,
        ...(options.targetFps ? { fps: options.targetFps } : {}), ...(options.maxFrames ? { maxFrames: options.maxFrames } : {}) })) {
        yield toFrame(raw, index, name, fps ? (index * 1000) / fps : undefined);
        index++;
      }
      if (index === 0) throw new InputError(`${input.location}: no frames could be decoded (zero-frame video)`);
    },
  };
}

function withFfmpeg(options: SourceOptions): FfmpegOptions {
  return options.ffmpeg ? { ffmpeg: options.ffmpeg } : {};
}

function toFrame(raw: RawFrame, index: number, sourceName: string, timestampMs: number | undefined): Frame {
  const frame: Frame = { index, width: raw.width, height: raw.height, rgb: raw.rgb, sourceName };
  if (timestampMs !== undefined) frame.timestampMs = timestampMs;
  return frame;
}

function imageSource(files: readonly string[], location: string, name: string, options: SourceOptions): FrameSource {
  return {
    name, kind: 'images', location, live: false,
    async *[Symbol.asyncIterator]() {
      const limit = Math.min(files.length, options.maxFrames ?? Infinity);
      const fps = options.targetFps;
      let first: { width: number; height: number } | undefined;
      // Decode one image ahead so sharp works while the caller runs the model on the current frame.
      let next = limit > 0 ? readRgb(files[0]!) : undefined;
      for (let i = 0; i < limit; i++) {
        const image = await next!;
        next = i + 1 < limit ? readRgb(files[i + 1]!) : undefined;
        next?.catch(() => undefined); // surfaced when awaited
        first ??= { width: image.width, height: image.height };
        let rgb = image.data;
        if (image.width !== first.width || image.height !== first.height) {
          options.onWarning?.(`${files[i]}: ${image.width}×${image.height} differs from the first frame; resized to ${first.width}×${first.height}`);
          rgb = await resizeRgb(rgb, image.width, image.height, first.width, first.height);
        }
        yield toFrame({ width: first.width, height: first.height, rgb }, i, name, fps ? (i * 1000) / fps : undefined);
      }
    },
  };
}

async function resizeRgb(rgb: Uint8Array, width: number, height: number, toWidth: number, toHeight: number): Promise<Uint8Array> {
  const out = await sharp(rgb, { raw: { width, height, channels: 3 } }).resize(toWidth, toHeight, { fit: 'fill', kernel: 'cubic' })
    .raw().toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/**
 * Keeps the newest frames for a slow consumer: at most `capacity`, dropping the oldest when full, so a live
 * source never queues without bound and the model always works on recent frames.
 */
export class DropOldestQueue<T> {
  private readonly items: T[] = [];
  private waiter: { resolve: (value: IteratorResult<T>) => void; reject: (error: unknown) => void } | undefined;
  private ended = false;
  private failure: unknown;
  /** Items pushed out by newer ones. */
  dropped = 0;

  constructor(readonly capacity: number) {
    if (!(Number.isInteger(capacity) && capacity > 0)) throw invalidParameterError('liveQueue', 'positive integer', capacity);
  }

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    if (this.waiter) {
      const { resolve } = this.waiter;
      this.waiter = undefined;
      resolve({ value: item, done: false });
      return;
    }
    this.items.push(item);
    if (this.items.length > this.capacity) {
      this.items.shift();
      this.dropped++;
    }
  }

  /** No more items; with an error, next() throws it once the queued items are taken. */
  end(error?: unknown): void {
    this.ended = true;
    this.failure = error;
    if (this.waiter) {
      const { resolve, reject } = this.waiter;
      this.waiter = undefined;
      if (error === undefined) resolve({ value: undefined, done: true });
      else reject(error);
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.items.shift()!, done: false });
    if (this.ended) return this.failure === undefined ? Promise.resolve({ value: undefined, done: true }) : Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A live source: ffmpeg is read as fast as it delivers (so no stale frames pile up inside it), frames go into a
 * DropOldestQueue, and the consumer takes the newest. Failed opens and dropped connections are retried with
 * exponential backoff; frames after a reconnection continue the same sequence.
 */
function liveSource(location: string, kind: 'stream' | 'webcam', name: string, options: SourceOptions): FrameSource {
  const input: VideoInput = { location, kind };
  const retries = options.retries ?? 3;
  const baseDelay = options.retryDelayMs ?? 1000;
  return {
    name, kind, location, live: true,
    async *[Symbol.asyncIterator]() {
      const queue = new DropOldestQueue<Frame>(options.liveQueue ?? 2);
      const start = Date.now();
      let stopped = false;
      const abort = new AbortController();
      const pump = async (): Promise<void> => {
        let accepted = 0;
        let lastKept = -Infinity;
        let size: { width: number; height: number } | undefined;
        let attempt = 0;
        let lastError = '';
        while (!stopped) {
          try {
            const info = await probeVideo(input, options);
            size ??= { width: info.width, height: info.height };
            for await (const raw of decodeVideo(input, { ...withFfmpeg(options), ...size, signal: abort.signal })) {
              attempt = 0;
              if (stopped) break;
              const now = Date.now() - start;
              if (options.targetFps && now - lastKept < 1000 / options.targetFps) continue;
              lastKept = now;
              queue.push(toFrame(raw, accepted++, name, now));
              if (options.maxFrames !== undefined && accepted >= options.maxFrames) {
                stopped = true;
                break;
              }
            }
            if (stopped) break;
            lastError = 'the stream ended';
          } catch (e) {
            lastError = e instanceof Error ? e.message : String(e);
          }
          if (stopped) break;
          if (attempt >= retries) {
            queue.end(new InputError(`${location}: cannot read the ${kind} after ${retries + 1} attempts (last: ${lastError})`));
            return;
          }
          const delay = baseDelay * 2 ** attempt;
          attempt++;
          options.onWarning?.(`${location}: ${lastError}; reconnecting in ${delay} ms (attempt ${attempt} of ${retries})`);
          await sleep(delay);
        }
        queue.end();
      };
      const pumping = pump();
      try {
        for (;;) {
          const r = await queue.next();
          if (r.done) break;
          yield r.value;
        }
      } finally {
        stopped = true;
        abort.abort();
        await pumping;
        if (queue.dropped > 0) options.onWarning?.(`${location}: dropped ${queue.dropped} frames to keep up`);
      }
    },
  };
}
