import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { InputError } from '../../src/errors.js';
import { resolveFfmpeg } from '../../src/media/ffmpeg.js';
import { countVideoFrames, decodeVideo, Mp4Writer, parseFfmpegInfo, probeVideo } from '../../src/media/video.js';
import { lavfi } from './lavfi.js';

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('media/video', function () {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'flashdepth-video-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('probes size and frame rate from ffmpeg -i, without ffprobe', async function () {
    const file = lavfi('testsrc2=s=64x48:r=10', 5, join(dir, 'probe.mp4'));
    const info = await probeVideo({ location: file, kind: 'file' });
    expect(info).to.include({ width: 64, height: 48, fps: 10, rotation: 0, codec: 'h264', durationMs: 500 });
  });

  it('swaps width and height for 90° rotation metadata', function () {
    const stderr = [
      "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'phone.mp4':",
      '  Duration: 00:00:02.50, start: 0.000000, bitrate: 1000 kb/s',
      '    Stream #0:0(und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709), 1920x1080, 900 kb/s, 29.97 fps, 29.97 tbr, 90k tbn (default)',
      '    Metadata:',
      '      rotate          : 90',
      '    Stream #0:1(und): Audio: aac (LC), 48000 Hz, stereo',
    ].join('\n');
    expect(parseFfmpegInfo(stderr)).to.deep.equal({ width: 1080, height: 1920, rotation: 90, codec: 'h264', fps: 29.97, durationMs: 2500 });
  });

  it('decodes every frame at the probed size, and a solid colour within codec tolerance', async function () {
    const file = lavfi('color=c=0xC81E64:s=64x48:r=10', 4, join(dir, 'solid.mp4'));
    const frames = await collect(decodeVideo({ location: file, kind: 'file' }, { width: 64, height: 48 }));
    expect(frames).to.have.length(4);
    for (const f of frames) {
      expect(f.rgb.length).to.equal(64 * 48 * 3);
      // yuv420p round trip of (200, 30, 100): within 4 levels per channel.
      for (const [i, want] of [[0, 200], [1, 30], [2, 100]] as const) {
        expect(Math.abs(f.rgb[3 * 1000 + i]! - want), `channel ${i}`).to.be.at.most(4);
      }
    }
  });

  it('lossless input decodes exactly (rgb24 in ffv1)', async function () {
    const file = lavfi('color=c=0x0A141E:s=16x8:r=5,format=rgb24', 2, join(dir, 'exact.mkv'), ['-c:v', 'ffv1', '-pix_fmt', 'bgr0']);
    const frames = await collect(decodeVideo({ location: file, kind: 'file' }, { width: 16, height: 8 }));
    expect(frames).to.have.length(2);
    expect(Array.from(frames[1]!.rgb.subarray(0, 6))).to.deep.equal([10, 20, 30, 10, 20, 30]);
  });

  it('stops ffmpeg when the consumer breaks early, and honours maxFrames', async function () {
    const file = lavfi('testsrc2=s=64x48:r=10', 10, join(dir, 'ten.mp4'));
    let n = 0;
    for await (const _ of decodeVideo({ location: file, kind: 'file' }, { width: 64, height: 48 })) if (++n === 2) break;
    expect(n).to.equal(2);
    const three = await collect(decodeVideo({ location: file, kind: 'file' }, { width: 32, height: 24, maxFrames: 3 }));
    expect(three.map((f) => [f.width, f.height, f.rgb.length])).to.deep.equal([[32, 24, 2304], [32, 24, 2304], [32, 24, 2304]]);
  });

  it('errors name the file: missing, not a video, no video stream', async function () {
    const missing = join(dir, 'missing.mp4');
    const text = join(dir, 'text.mp4');
    writeFileSync(text, 'hello, not a video\n');
    const audio = join(dir, 'audio.m4a');
    spawnSync(resolveFfmpeg().path, ['-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine', '-t', '0.2', audio]);
    const cases: [string, string][] = [
      [missing, `${missing}: no such file`],
      [text, `${text}: not a video (ffmpeg: ${text}: Invalid data found when processing input)`],
      [audio, `${audio}: not a video (it has no video stream)`],
    ];
    for (const [file, message] of cases) {
      const e = await probeVideo({ location: file, kind: 'file' }).then(() => undefined, (x: unknown) => x);
      expect(e).to.be.instanceOf(InputError);
      expect((e as Error).message).to.equal(message);
    }
  });

  it('Mp4Writer encodes odd sizes (padded to even) and finalises a playable file', async function () {
    const out = join(dir, 'odd.mp4');
    const w = new Mp4Writer(out, { width: 63, height: 47, fps: 10 });
    const rgb = new Uint8Array(63 * 47 * 3).fill(128);
    for (let i = 0; i < 7; i++) await w.write(rgb);
    await w.close();
    await w.close(); // idempotent
    expect(await countVideoFrames(out)).to.equal(7);
    expect(await probeVideo({ location: out, kind: 'file' })).to.include({ width: 64, height: 48, fps: 10 });
    const e = await w.write(rgb.subarray(1)).then(() => undefined, (x: unknown) => x);
    expect(e).to.be.instanceOf(RangeError);
  });
});
