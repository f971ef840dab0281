import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import sharp from 'sharp';
import { ConfigError, InputError } from '../../src/errors.js';
import { DropOldestQueue, expandGlob, globToRegExp, naturalCompare, openSources, type Frame } from '../../src/infer/sources.js';
import { lavfi } from '../media/lavfi.js';
import { rejection } from '../helpers/errors.js';

async function collect(it: AsyncIterable<Frame>): Promise<Frame[]> {
  const out: Frame[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** A solid PNG: `channels` 1 (grey), 3 (RGB) or 4 (RGBA). */
async function png(file: string, width: number, height: number, pixel: number[]): Promise<string> {
  const data = new Uint8Array(width * height * pixel.length);
  for (let i = 0; i < width * height; i++) data.set(pixel, i * pixel.length);
  await sharp(data, { raw: { width, height, channels: pixel.length as 1 | 3 | 4 } }).png().toFile(file);
  return file;
}

describe('infer/sources', function () {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'flashdepth-sources-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('natural sort: frame2 < frame10, numbers compared as numbers', function () {
    const names = ['frame10.png', 'frame2.png', 'frame1.png', 'frame01.png', 'a.png', 'frame100.png', 'frame9b.png', 'frame9a.png'];
    expect([...names].sort(naturalCompare)).to.deep.equal(
      ['a.png', 'frame01.png', 'frame1.png', 'frame2.png', 'frame9a.png', 'frame9b.png', 'frame10.png', 'frame100.png']);
  });

  it('glob patterns: *, ?, [..] and **', function () {
    expect(globToRegExp('*.png').test('a.png')).to.equal(true);
    expect(globToRegExp('*.png').test('sub/a.png')).to.equal(false);
    expect(globToRegExp('**/*.png').test('sub/deeper/a.png')).to.equal(true);
    expect(globToRegExp('**/*.png').test('a.png')).to.equal(true);
    expect(globToRegExp('f?[0-9].jpg').test('fx7.jpg')).to.equal(true);
    expect(globToRegExp('f?[0-9].jpg').test('fx7.jpeg')).to.equal(false);
    const g = join(dir, 'glob');
    mkdirSync(join(g, 'sub'), { recursive: true });
    for (const f of ['b10.png', 'b9.png', 'c.txt', 'sub/b1.png']) writeFileSync(join(g, f), '');
    expect(expandGlob(join(g, 'b*.png'))).to.deep.equal([join(g, 'b9.png'), join(g, 'b10.png')]);
    expect(expandGlob(join(g, '**', 'b*.png'))).to.deep.equal([join(g, 'b9.png'), join(g, 'b10.png'), join(g, 'sub', 'b1.png')]);
  });

  it('an image folder is one sequence in natural order, with exact pixels; grey and alpha become RGB', async function () {
    const f = join(dir, 'frames');
    mkdirSync(f);
    await png(join(f, 'frame10.png'), 8, 6, [10, 20, 30]);
    await png(join(f, 'frame2.png'), 8, 6, [40, 50, 60, 128]); // RGBA: alpha is dropped, like cv2.imread
    await png(join(f, 'frame1.png'), 8, 6, [77]); // grey
    writeFileSync(join(f, 'notes.txt'), 'ignored');
    const sources = openSources(f);
    expect(sources.map((s) => [s.name, s.kind, s.live])).to.deep.equal([['frames', 'images', false]]);
    const frames = await collect(sources[0]!);
    expect(frames.map((x) => [x.index, x.width, x.height, x.sourceName, x.rgb.length])).to.deep.equal(
      [[0, 8, 6, 'frames', 144], [1, 8, 6, 'frames', 144], [2, 8, 6, 'frames', 144]]);
    expect(frames.map((x) => Array.from(x.rgb.subarray(141, 144)))).to.deep.equal([[77, 77, 77], [40, 50, 60], [10, 20, 30]]);
  });

  it('images of another size are resized to the first frame size; maxFrames stops the sequence', async function () {
    const f = join(dir, 'sizes');
    mkdirSync(f);
    await png(join(f, '1.png'), 8, 6, [1, 2, 3]);
    await png(join(f, '2.png'), 16, 12, [200, 100, 0]);
    await png(join(f, '3.png'), 8, 6, [9, 9, 9]);
    const warnings: string[] = [];
    const frames = await collect(openSources(f, { maxFrames: 2, onWarning: (w) => warnings.push(w) })[0]!);
    expect(frames.map((x) => [x.width, x.height])).to.deep.equal([[8, 6], [8, 6]]);
    expect(Array.from(frames[1]!.rgb.subarray(0, 3))).to.deep.equal([200, 100, 0]);
    expect(warnings).to.deep.equal([`${join(f, '2.png')}: 16×12 differs from the first frame; resized to 8×6`]);
  });

  it('a glob of images is one sequence named after its folder', async function () {
    const frames = await collect(openSources(join(dir, 'frames', 'frame*.png'))[0]!);
    expect(frames.map((x) => [x.sourceName, x.rgb[0]])).to.deep.equal([['frames', 77], ['frames', 40], ['frames', 10]]);
  });

  it('a video file: frame count, size, timestamps, maxFrames and targetFps', async function () {
    const file = lavfi('testsrc2=s=64x48:r=10', 10, join(dir, 'clip.mp4'));
    const [source] = openSources(file);
    expect([source!.name, source!.kind]).to.deep.equal(['clip', 'video']);
    const all = await collect(source!);
    expect(all.map((x) => x.index)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(all.every((x) => x.width === 64 && x.height === 48 && x.rgb.length === 64 * 48 * 3)).to.equal(true);
    expect(all.slice(0, 3).map((x) => x.timestampMs)).to.deep.equal([0, 100, 200]);
    expect((await collect(openSources(file, { maxFrames: 3 })[0]!)).length).to.equal(3);
    const half = await collect(openSources(file, { targetFps: 5 })[0]!);
    expect(half.length).to.equal(5);
    expect(half.map((x) => x.timestampMs)).to.deep.equal([0, 200, 400, 600, 800]);
  });

  it('a folder of videos gives one sequence per video, in natural order', async function () {
    const f = join(dir, 'videos');
    mkdirSync(f);
    lavfi('testsrc2=s=32x24:r=10', 2, join(f, 'v10.mp4'));
    lavfi('testsrc2=s=32x24:r=10', 3, join(f, 'v2.mp4'));
    const sources = openSources(f);
    expect(sources.map((s) => s.name)).to.deep.equal(['v2', 'v10']);
    expect((await collect(sources[0]!)).length).to.equal(3);
  });

  it('clear InputErrors: missing input, empty folder, unreadable image, not a video', async function () {
    const missing = join(dir, 'nope.mp4');
    expect(() => openSources(missing)).to.throw(InputError, `${missing}: no such file or folder`);
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect(() => openSources(empty)).to.throw(InputError, `${empty}: the folder has no images`);
    expect(() => openSources(join(dir, 'nothing-*.png'))).to.throw(InputError, 'the pattern matches no images');
    const bad = join(dir, 'bad');
    mkdirSync(bad);
    writeFileSync(join(bad, '0.png'), 'not a png');
    const e1 = await rejection(collect(openSources(bad)[0]!));
    expect(e1).to.be.instanceOf(InputError);
    expect(e1.message).to.match(new RegExp(`^${join(bad, '0.png')}: cannot decode RGB image`));
    const text = join(dir, 'text.mov');
    writeFileSync(text, 'plain text');
    const e2 = await rejection(collect(openSources(text)[0]!));
    expect(e2).to.be.instanceOf(InputError);
    expect(e2.message).to.match(new RegExp(`^${text}: not a video`));
  });

  it('rejects bad options with the flag named', function () {
    expect(() => openSources(dir, { maxFrames: 0 })).to.throw(ConfigError, 'Expected positive integer for --max-frames but received 0 (number)');
    expect(() => openSources(dir, { targetFps: -1 })).to.throw(ConfigError, 'Expected positive number for --target-fps');
  });

  it('DropOldestQueue keeps the newest items and never grows past its capacity', async function () {
    const q = new DropOldestQueue<number>(2);
    for (let i = 0; i < 5; i++) q.push(i);
    expect([q.size, q.dropped]).to.deep.equal([2, 3]);
    expect((await q.next()).value).to.equal(3);
    expect((await q.next()).value).to.equal(4);
    const waiting = q.next();
    q.push(7);
    expect((await waiting).value).to.equal(7);
    const failing = q.next();
    q.end(new InputError('gone'));
    expect((await rejection(failing)).message).to.equal('gone');
  });

  it('a live stream that cannot be opened is retried with backoff, then a clear InputError', async function () {
    const url = 'rtsp://127.0.0.1:9/none';
    const warnings: string[] = [];
    const [source] = openSources(url, { retries: 2, retryDelayMs: 5, onWarning: (w) => warnings.push(w) });
    expect([source!.kind, source!.live, source!.name]).to.deep.equal(['stream', true, '127.0.0.1_9_none']);
    const e = await rejection(collect(source!));
    expect(e).to.be.instanceOf(InputError);
    expect(e.message).to.match(/^rtsp:\/\/127\.0\.0\.1:9\/none: cannot read the stream after 3 attempts \(last: /);
    expect(warnings.map((w) => /reconnecting in (\d+) ms \(attempt (\d) of 2\)/.exec(w)?.slice(1))).to.deep.equal([['5', '1'], ['10', '2']]);
  });

  it('a live HTTP stream: probed, decoded through the bounded queue, stopped by maxFrames', async function () {
    const ts = readFileSync(lavfi('testsrc2=s=48x32:r=10', 20, join(dir, 'live.ts'), ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-f', 'mpegts']));
    const server = createServer((_req, res) => res.writeHead(200, { 'Content-Type': 'video/mp2t' }).end(ts));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/live`;
      const [source] = openSources(url, { maxFrames: 3, liveQueue: 64 });
      expect([source!.kind, source!.live]).to.deep.equal(['stream', true]);
      const frames = await collect(source!);
      expect(frames.map((f) => [f.index, f.width, f.height, f.rgb.length])).to.deep.equal([[0, 48, 32, 4608], [1, 48, 32, 4608], [2, 48, 32, 4608]]);
      expect(frames.every((f) => typeof f.timestampMs === 'number')).to.equal(true);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
