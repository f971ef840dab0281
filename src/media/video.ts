/**
 * Video through ffmpeg pipes: probing (by parsing `ffmpeg -i` stderr, so no ffprobe is needed), decoding to raw RGB
 * frames as an async iterable with backpressure (the decoder blocks on a full pipe; the video is never held in
 * memory), and encoding raw RGB frames to H.264 mp4 through stdin with drain handling.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { InputError } from '../errors.js';
import { resolveFfmpeg } from './ffmpeg.js';

/** What `ffmpeg -i` says about the first video stream. Width and height are the displayed (auto-rotated) size. */
export interface VideoInfo {
  width: number;
  height: number;
  /** Frame rate (r_frame_rate, else tbr); undefined when ffmpeg reports none (some live streams). */
  fps?: number;
  durationMs?: number;
  /** Rotation metadata in degrees; ffmpeg applies it when decoding. */
  rotation: number;
  codec: string;
}

/** How ffmpeg opens the input: a file, a network stream, or a V4L2 device. */
export type VideoInputKind = 'file' | 'stream' | 'webcam';

export interface VideoInput {
  /** Path, URL or device, exactly as given to ffmpeg's `-i`. */
  location: string;
  kind: VideoInputKind;
}

export interface FfmpegOptions {
  /** ffmpeg binary; default resolveFfmpeg(). */
  ffmpeg?: string;
}

/** One decoded RGB frame, before it is given a sequence index. */
export interface RawFrame {
  width: number;
  height: number;
  /** H·W·3 bytes, row-major RGB. */
  rgb: Uint8Array;
}

function ffmpegPath(options: FfmpegOptions): string {
  return options.ffmpeg ?? resolveFfmpeg().path;
}

/** Input options that must precede `-i`. */
function inputArgs(input: VideoInput): string[] {
  if (input.kind === 'webcam') return ['-f', 'v4l2', '-i', input.location];
  if (input.kind === 'stream' && /^rtsps?:\/\//i.test(input.location)) return ['-rtsp_transport', 'tcp', '-i', input.location];
  return ['-i', input.location];
}

/** The last non-empty stderr line that says what went wrong, without ffmpeg's `[demuxer @ 0x…]` prefix. */
function lastError(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.replace(/^\[[^\]]*\]\s*/, '').trim()).filter((l) => l.length > 0);
  const useful = lines.filter((l) => !/^(At least one output file must be specified|Conversion failed!|Exiting normally)/.test(l));
  return useful[useful.length - 1] ?? lines[lines.length - 1] ?? 'no message';
}

function parseClock(text: string): number {
  const [h, m, s] = text.split(':').map(Number) as [number, number, number];
  return ((h * 60 + m) * 60 + s) * 1000;
}

/** Parses the `Input #0` block of `ffmpeg -i` stderr; undefined when it lists no video stream. */
export function parseFfmpegInfo(stderr: string): VideoInfo | undefined {
  const lines = stderr.split('\n');
  const at = lines.findIndex((l) => /Stream #\d+:\d+.*: Video: /.test(l));
  if (at < 0) return undefined;
  const line = lines[at]!;
  const video = line.slice(line.indexOf(': Video: ') + 9);
  const size = /(?:^|[ ,])(\d{1,5})x(\d{1,5})(?=[ ,\]]|$)/.exec(video);
  if (!size) return undefined;
  // The stream's own metadata lines follow it until the next Stream line.
  let rotation = 0;
  for (let i = at + 1; i < lines.length && !/Stream #/.test(lines[i]!); i++) {
    const rotate = /rotate\s*:\s*(-?\d+)/.exec(lines[i]!) ?? /rotation of (-?[\d.]+) degrees/.exec(lines[i]!);
    if (rotate) rotation = ((Math.round(Number(rotate[1])) % 360) + 360) % 360;
  }
  const fps = /([\d.]+)(k?) fps/.exec(video) ?? /([\d.]+)(k?) tbr/.exec(video);
  const duration = /Duration: (\d+:\d+:[\d.]+)/.exec(stderr);
  let width = Number(size[1]);
  let height = Number(size[2]);
  if (rotation === 90 || rotation === 270) [width, height] = [height, width];
  const info: VideoInfo = { width, height, rotation, codec: video.split(/[ ,]/)[0] ?? 'unknown' };
  if (fps) info.fps = Number(fps[1]) * (fps[2] === 'k' ? 1000 : 1);
  if (duration) info.durationMs = parseClock(duration[1]!);
  return info;
}

/** Collects a child's stderr, keeping only the tail (a full, undrained stderr pipe would stall ffmpeg). */
function collectStderr(child: ChildProcess, keep = 16384): () => string {
  let text = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    text = (text + chunk).slice(-keep);
  });
  return () => text;
}

/** Exit code (or signal) of a child, resolved once it has exited and its pipes closed. */
function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }));
  });
}

/** Runs `ffmpeg -i <input>` and parses what it prints; InputError naming the input when it is no video. */
export async function probeVideo(input: VideoInput, options: FfmpegOptions & { timeoutMs?: number } = {}): Promise<VideoInfo> {
  const child = spawn(ffmpegPath(options), ['-hide_banner', '-nostdin', ...inputArgs(input)], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr = collectStderr(child, 65536);
  // A stalled stream or camera can keep ffmpeg waiting forever; files are read at once.
  const timeoutMs = options.timeoutMs ?? (input.kind === 'file' ? undefined : 15000);
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const { signal } = await exited(child);
  clearTimeout(timer);
  const text = stderr();
  if (signal === 'SIGKILL' && timeoutMs !== undefined && !parseFfmpegInfo(text)) {
    throw new InputError(`${input.location}: no answer within ${timeoutMs} ms`);
  }
  const info = parseFfmpegInfo(text);
  if (info) return info;
  if (/No such file or directory/.test(text)) throw new InputError(`${input.location}: no such file`);
  if (/Stream #\d+:\d+/.test(text)) throw new InputError(`${input.location}: not a video (it has no video stream)`);
  throw new InputError(`${input.location}: not a video (ffmpeg: ${lastError(text)})`);
}

export interface DecodeOptions extends FfmpegOptions {
  /** Output size. Every frame is scaled to it, so a mid-stream size change cannot break the frame slicing. */
  width: number;
  height: number;
  /** Resample to this rate with ffmpeg's fps filter (drops or repeats frames by timestamp). */
  fps?: number;
  /** Stop after this many frames. */
  maxFrames?: number;
  /** Kills ffmpeg at once, even while it waits for a stalled network stream; the iteration then just ends. */
  signal?: AbortSignal;
}

/**
 * Decodes to raw RGB frames. Reading the pipe with `for await` gives backpressure: ffmpeg blocks when the consumer
 * is slow, so memory holds at most one frame plus the pipe buffer. Stopping early (break/return) kills ffmpeg.
 * Throws InputError when ffmpeg fails; a decode that ends cleanly with no frames yields nothing (the caller decides).
 */
export async function* decodeVideo(input: VideoInput, options: DecodeOptions): AsyncGenerator<RawFrame> {
  const { width, height } = options;
  const filters = [...(options.fps ? [`fps=${options.fps}`] : []), `scale=${width}:${height}`];
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', ...inputArgs(input), '-an', '-sn', '-vf', filters.join(','),
    ...(options.maxFrames !== undefined ? ['-frames:v', String(options.maxFrames)] : []),
    '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'];
  // detached: Ctrl-C in a terminal then reaches only Node, which stops the decoder itself (no spurious failure).
  const child = spawn(ffmpegPath(options), args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const stderr = collectStderr(child);
  const done = exited(child);
  const kill = (): void => void child.kill('SIGKILL');
  options.signal?.addEventListener('abort', kill, { once: true });
  const frameBytes = width * height * 3;
  let frame = new Uint8Array(frameBytes);
  let filled = 0;
  let finished = false;
  try {
    for await (const chunk of child.stdout! as AsyncIterable<Buffer>) {
      let offset = 0;
      while (offset < chunk.length) {
        const n = Math.min(frameBytes - filled, chunk.length - offset);
        frame.set(chunk.subarray(offset, offset + n), filled);
        filled += n;
        offset += n;
        if (filled === frameBytes) {
          yield { width, height, rgb: frame };
          frame = new Uint8Array(frameBytes);
          filled = 0;
        }
      }
    }
    const { code, signal } = await done;
    finished = true;
    if (code !== 0 && !options.signal?.aborted) {
      throw new InputError(`${input.location}: ffmpeg failed while decoding (${signal ?? `exit code ${code}`}: ${lastError(stderr())})`);
    }
  } finally {
    options.signal?.removeEventListener('abort', kill);
    if (!finished) {
      child.kill('SIGKILL');
      await done.catch(() => undefined);
    }
  }
}

export interface EncodeOptions extends FfmpegOptions {
  width: number;
  height: number;
  fps: number;
  /** x264 constant rate factor (default 18: visually lossless). */
  crf?: number;
}

/**
 * Writes RGB frames to an H.264 mp4 (libx264, yuv420p, odd sizes padded to even) through ffmpeg's stdin.
 * `close()` ends stdin and waits for ffmpeg to finalise the file (the moov atom), so a file is valid after close
 * even when the run was interrupted; call it from the SIGINT handler.
 */
export class Mp4Writer {
  readonly file: string;
  readonly width: number;
  readonly height: number;
  private readonly child: ChildProcess;
  private readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly stderr: () => string;
  private framesWritten = 0;
  private closed: Promise<void> | undefined;

  constructor(file: string, options: EncodeOptions) {
    this.file = file;
    this.width = options.width;
    this.height = options.height;
    const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-y',
      '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${options.width}x${options.height}`, '-r', String(options.fps), '-i', 'pipe:0',
      '-vf', 'pad=ceil(iw/2)*2:ceil(ih/2)*2', '-c:v', 'libx264', '-preset', 'medium', '-crf', String(options.crf ?? 18),
      '-pix_fmt', 'yuv420p', '-movflags', '+faststart', file];
    // -nostdin is about the terminal; frames still come through pipe:0. detached keeps Ctrl-C from killing the
    // encoder before close() has flushed the last frames.
    this.child = spawn(ffmpegPath(options), args, { stdio: ['pipe', 'ignore', 'pipe'], detached: true });
    this.stderr = collectStderr(this.child);
    this.done = exited(this.child);
    // A write after ffmpeg died raises EPIPE on stdin; write()/close() report ffmpeg's own message instead.
    this.child.stdin!.on('error', () => undefined);
  }

  get frames(): number {
    return this.framesWritten;
  }

  async write(rgb: Uint8Array): Promise<void> {
    const expected = this.width * this.height * 3;
    if (rgb.length !== expected) {
      throw new RangeError(`${this.file}: frame has ${rgb.length} bytes, expected ${this.width}×${this.height}×3 = ${expected}`);
    }
    if (this.closed) throw new Error(`${this.file}: write after close`);
    const stdin = this.child.stdin!;
    if (this.child.exitCode !== null || stdin.destroyed) await this.failure();
    this.framesWritten++;
    if (!stdin.write(rgb)) {
      await Promise.race([once(stdin, 'drain'), this.done.then(() => this.failure())]);
    }
  }

  private async failure(): Promise<never> {
    const { code, signal } = await this.done;
    throw new InputError(`${this.file}: ffmpeg encoder stopped (${signal ?? `exit code ${code}`}: ${lastError(this.stderr())})`);
  }

  /** Ends the stream and waits for ffmpeg to finish the file. Safe to call more than once. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.child.stdin!.end();
      const { code, signal } = await this.done;
      if (code !== 0) {
        throw new InputError(`${this.file}: ffmpeg encoder failed (${signal ?? `exit code ${code}`}: ${lastError(this.stderr())})`);
      }
    })();
    return this.closed;
  }
}

/** Counts the decodable video frames of a file (decodes everything; for tests and checks, not for big files). */
export async function countVideoFrames(file: string, options: FfmpegOptions = {}): Promise<number> {
  const child = spawn(ffmpegPath(options), ['-hide_banner', '-nostdin', '-i', file, '-map', '0:v:0', '-f', 'null', '-'],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr = collectStderr(child, 65536);
  const { code } = await exited(child);
  if (code !== 0) throw new InputError(`${file}: cannot decode (${lastError(stderr())})`);
  const matches = [...stderr().matchAll(/frame=\s*(\d+)/g)];
  return matches.length > 0 ? Number(matches[matches.length - 1]![1]) : 0;
}
