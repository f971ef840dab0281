import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import sharp from 'sharp';
import { ConfigError } from '../../src/errors.js';
import { readNpy } from '../../src/io/npy.js';
import { applyColormap, colormapLut, finiteRange } from '../../src/infer/colormap.js';
import { DepthWriter, depthToUint16, frameFileName, uniqueOutputDir, type DepthMap, type RunSummary } from '../../src/infer/outputs.js';
import { ProgressReporter } from '../../src/infer/progress.js';
import type { Frame } from '../../src/infer/sources.js';
import { countVideoFrames } from '../../src/media/video.js';

const W = 11; // odd on purpose: the mp4s pad to even sizes
const H = 7;

function depthFrame(i: number): { frame: Frame; depth: DepthMap } {
  const data = new Float32Array(W * H);
  for (let p = 0; p < data.length; p++) data[p] = i * 10 + p * 0.125; // frame i spans [10i, 10i + 9.5]
  const rgb = new Uint8Array(W * H * 3).fill(50 * i);
  return { frame: { index: i, width: W, height: H, rgb, sourceName: 'test' }, depth: { width: W, height: H, data } };
}

async function readRgbPng(file: string): Promise<Uint8Array> {
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  expect(info.channels).to.equal(3);
  return new Uint8Array(data);
}

const RUN = { backend: 'wasm', device: 'cpu (2 threads)', checkpoint: 'checkpoints/flashdepth-s.pth', wallTimeS: 2 };

describe('infer/colormap', function () {
  it('inferno and viridis are matplotlib\'s tables as bytes (floor(255·v)); grey is the identity', function () {
    const inferno = colormapLut('inferno');
    // matplotlib _inferno_data[0] = (0.001462, 0.000466, 0.013866), [255] = (0.988362, 0.998364, 0.644924)
    expect(Array.from(inferno.subarray(0, 3))).to.deep.equal([0, 0, 3]);
    expect(Array.from(inferno.subarray(765))).to.deep.equal([252, 254, 164]);
    // _inferno_data[128] = (0.735683, 0.215906, 0.330245)
    expect(Array.from(inferno.subarray(384, 387))).to.deep.equal([187, 55, 84]);
    const viridis = colormapLut('viridis');
    expect(Array.from(viridis.subarray(0, 3))).to.deep.equal([68, 1, 84]); // (0.267004, 0.004874, 0.329415)
    expect(Array.from(viridis.subarray(765))).to.deep.equal([253, 231, 36]); // (0.993248, 0.906157, 0.143936)
    expect(Array.from(colormapLut('grey').subarray(300, 303))).to.deep.equal([100, 100, 100]);
    const turbo = colormapLut('turbo');
    expect(turbo.length).to.equal(768);
    expect(() => colormapLut('jet' as 'grey')).to.throw(ConfigError, 'Expected one of inferno, turbo, viridis, grey for --colormap but received "jet"');
  });

  it('maps values like matplotlib: index min(255, floor(256·t)), clipped; NaN and a flat range take colour 0', function () {
    const grey = (values: number[], min: number, max: number): number[] =>
      Array.from(applyColormap(values, { min, max }, 'grey')).filter((_, i) => i % 3 === 0);
    expect(grey([0, 0.5, 0.999, 1, 2, -1, NaN], 0, 1)).to.deep.equal([0, 128, 255, 255, 255, 0, 0]);
    expect(grey([3, 3], 3, 3)).to.deep.equal([0, 0]);
    expect(finiteRange([NaN, 2, -Infinity, 5, Infinity])).to.deep.equal({ min: 2, max: 5 });
    expect(finiteRange([NaN])).to.deep.equal({ min: 0, max: 0 });
  });
});

describe('infer/outputs', function () {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'flashdepth-outputs-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('never reuses an output folder: name, name_1, name_2', function () {
    const root = join(dir, 'result');
    expect([uniqueOutputDir('clip', root), uniqueOutputDir('clip', root), uniqueOutputDir('clip', root)])
      .to.deep.equal([join(root, 'clip'), join(root, 'clip_1'), join(root, 'clip_2')]);
    expect(uniqueOutputDir('rtsp cam/1', root)).to.equal(join(root, 'rtsp_cam_1'));
    expect([frameFileName(7, 'npy'), frameFileName(1234567, 'png')]).to.deep.equal(['000007.npy', '1234567.png']);
  });

  it('png16 uses a fixed scale: round(depth · scale), clipped to [0, 65535]', function () {
    expect(Array.from(depthToUint16(new Float32Array([0, 1.5, 1.4921875, -3, 2000, NaN]), 64))).to.deep.equal([0, 96, 96, 0, 65535, 0]);
  });

  it('writes npy, png16, colour PNGs, both mp4s and summary.json with per-video normalisation', async function () {
    const out = join(dir, 'video-norm');
    const writer = new DepthWriter({ dir: out, npy: true, png16: true, colorPng: true, depthMp4: true, sideBySideMp4: true, fps: 10 });
    const frames = [0, 1, 2].map(depthFrame);
    for (const { frame, depth } of frames) await writer.write(frame, depth);
    // Colour outputs wait for the video's range; the raw outputs are already there.
    expect(readdirSync(join(out, 'depth_color'))).to.deep.equal([]);
    expect(readdirSync(join(out, 'depth_npy'))).to.deep.equal(['000000.npy', '000001.npy', '000002.npy']);
    const summary: RunSummary = await writer.finish(RUN);
    expect(await writer.finish(RUN)).to.equal(summary);

    const npy = readNpy(join(out, 'depth_npy', '000001.npy'));
    expect([npy.dtype, npy.shape]).to.deep.equal(['float32', [H, W]]);
    expect(Array.from(npy.data as Float32Array)).to.deep.equal(Array.from(frames[1]!.depth.data));

    const { data, info } = await sharp(join(out, 'depth_png16', '000002.png')).toColourspace('grey16').raw({ depth: 'ushort' })
      .toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).to.deep.equal([W, H, 1]);
    const png16 = new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
    expect(Array.from(png16.subarray(0, 3))).to.deep.equal([1280, 1288, 1296]); // (20 + 0.125·p) · 64

    // Range over the video is [0, 29.5]: frame 0's first pixel is the first colour, frame 2's last the last one.
    const inferno = colormapLut('inferno');
    const first = await readRgbPng(join(out, 'depth_color', '000000.png'));
    const last = await readRgbPng(join(out, 'depth_color', '000002.png'));
    expect(Array.from(first.subarray(0, 3))).to.deep.equal(Array.from(inferno.subarray(0, 3)));
    expect(Array.from(last.subarray(last.length - 3))).to.deep.equal(Array.from(inferno.subarray(765)));

    expect(await countVideoFrames(join(out, 'depth.mp4'))).to.equal(3);
    expect(await countVideoFrames(join(out, 'side_by_side.mp4'))).to.equal(3);
    expect(readdirSync(out).filter((f) => f.startsWith('.'))).to.deep.equal([]); // spools removed

    const saved = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as RunSummary;
    expect(saved).to.deep.include({
      frames: 3, width: W, height: H, inputWidth: W, inputHeight: H, backend: 'wasm', device: 'cpu (2 threads)',
      checkpoint: 'checkpoints/flashdepth-s.pth', wallTimeS: 2, fps: 1.5, colormap: 'inferno', normalization: 'video',
      colorRange: { min: 0, max: 29.5 }, png16Scale: 64,
      outputs: ['depth.mp4', 'depth_color/', 'depth_npy/', 'depth_png16/', 'side_by_side.mp4', 'summary.json'],
    });
  });

  it('per-frame normalisation writes colour frames at once; without npy the video pass reads a spool', async function () {
    const perFrame = join(dir, 'frame-norm');
    const w1 = new DepthWriter({ dir: perFrame, npy: false, colorPng: true, depthMp4: false, normalization: 'frame', colormap: 'grey' });
    const { frame, depth } = depthFrame(2);
    await w1.write(frame, depth);
    const png = await readRgbPng(join(perFrame, 'depth_color', '000000.png'));
    expect([png[0], png[png.length - 1]]).to.deep.equal([0, 255]); // its own min and max
    await w1.finish(RUN);

    const spooled = join(dir, 'spooled');
    const w2 = new DepthWriter({ dir: spooled, npy: false, colorPng: true, depthMp4: false, colormap: 'grey' });
    for (const i of [0, 1]) await w2.write(depthFrame(i).frame, depthFrame(i).depth);
    expect(existsSync(join(spooled, '.depth.spool'))).to.equal(true);
    const s = await w2.finish({ ...RUN, interrupted: true });
    expect(existsSync(join(spooled, '.depth.spool'))).to.equal(false);
    expect(s.colorRange).to.deep.equal({ min: 0, max: 19.5 });
    const second = await readRgbPng(join(spooled, 'depth_color', '000001.png'));
    expect(second[second.length - 1]).to.equal(255);
    expect(s.outputs).to.deep.equal(['depth_color/', 'summary.json']);
  });

  it('rejects bad options and a depth size change mid-sequence', async function () {
    expect(() => new DepthWriter({ dir: join(dir, 'x'), png16Scale: 0 })).to.throw(ConfigError, 'for --png16-scale');
    const w = new DepthWriter({ dir: join(dir, 'sizes'), depthMp4: false });
    await w.write(depthFrame(0).frame, depthFrame(0).depth);
    const small = { width: 2, height: 2, data: new Float32Array(4) };
    const e = await w.write(depthFrame(1).frame, small).then(() => undefined, (x: unknown) => x as Error);
    expect(e?.message).to.equal(`test frame 1: depth is 2×2, the sequence started at ${W}×${H}`);
    await w.finish(RUN);
  });
});

describe('infer/progress', function () {
  it('non-TTY: a plain line every interval with frames, FPS and ETA', function () {
    let t = 0;
    const lines: string[] = [];
    const p = new ProgressReporter({ total: 10, label: 'clip', intervalS: 1, now: () => t, stream: { write: (s: string) => lines.push(s) } });
    t = 500;
    p.tick();
    t = 1000;
    p.tick();
    t = 2000;
    p.tick(2);
    p.done();
    expect(lines).to.deep.equal([
      'clip 2/10 frames  2.00 fps  1s elapsed  ETA 4s\n',
      'clip 4/10 frames  2.00 fps  2s elapsed  ETA 3s\n',
      'clip 4/10 frames  2.00 fps  2s elapsed  ETA 3s\n',
    ]);
  });
});
