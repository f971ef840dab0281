/**
 * The example clip (examples/example.mp4): a small rendered scene made by ffmpeg's lavfi, so it needs no download
 * and no licence beyond ffmpeg's. A sky-blue background, a ground band, and a testsrc2 card sliding across: motion
 * plus a few depth-like layers, 320×180, 4 s at 12 fps, well under 300 KB.
 *
 *   node dist/src/infer/example.js [out.mp4]
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../errors.js';
import { resolveFfmpeg } from '../media/ffmpeg.js';

export interface ExampleClipOptions {
  ffmpeg?: string;
  width?: number;
  height?: number;
  seconds?: number;
  fps?: number;
}

/** ffmpeg arguments that render the clip to `out`. */
export function exampleClipArgs(out: string, options: ExampleClipOptions = {}): string[] {
  const w = options.width ?? 320;
  const h = options.height ?? 180;
  const d = options.seconds ?? 4;
  const fps = options.fps ?? 12;
  const card = `${Math.round(w * 0.35)}x${Math.round(h * 0.45)}`;
  const graph = [
    `color=c=0x87ceeb:s=${w}x${h}:r=${fps}:d=${d}[sky]`,
    `color=c=0x4a6b2f:s=${w}x${Math.round(h * 0.4)}:r=${fps}:d=${d}[ground]`,
    `testsrc2=s=${card}:r=${fps}:d=${d}[card]`,
    `[sky][ground]overlay=x=0:y=${h - Math.round(h * 0.4)}[bg]`,
    `[bg][card]overlay=x='mod(t*${Math.round(w / 3)},${w}+w)-w':y=${Math.round(h * 0.3)}:shortest=1[v]`,
  ].join(';');
  return ['-hide_banner', '-nostdin', '-loglevel', 'error', '-y', '-filter_complex', graph, '-map', '[v]',
    '-c:v', 'libx264', '-preset', 'veryslow', '-crf', '28', '-pix_fmt', 'yuv420p', '-movflags', '+faststart', out];
}

export async function makeExampleClip(out: string, options: ExampleClipOptions = {}): Promise<string> {
  mkdirSync(dirname(out), { recursive: true });
  const child = spawn(options.ffmpeg ?? resolveFfmpeg().path, exampleClipArgs(out, options), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => (stderr += c));
  const code = await new Promise<number | null>((res, rej) => {
    child.once('error', rej);
    child.once('close', res);
  });
  if (code !== 0) throw new InputError(`${out}: ffmpeg could not render the example clip (${stderr.trim().split('\n').pop() ?? `exit ${code}`})`);
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ?? 'examples/example.mp4';
  makeExampleClip(out).then(
    (file) => process.stderr.write(`wrote ${file}\n`),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
