/** Test videos rendered on the fly by ffmpeg's lavfi sources. */
import { spawnSync } from 'node:child_process';
import { resolveFfmpeg } from '../../src/media/ffmpeg.js';

/** Renders a lavfi source to a file: `lavfi('testsrc2=s=64x48:r=10', 5, out)`. */
export function lavfi(source: string, frames: number, out: string, codec: string[] = ['-c:v', 'libx264', '-pix_fmt', 'yuv420p']): string {
  const r = spawnSync(resolveFfmpeg().path, ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', source,
    '-frames:v', String(frames), ...codec, out]);
  if (r.status !== 0) throw new Error(`ffmpeg failed: ${r.stderr.toString()}`);
  return out;
}

