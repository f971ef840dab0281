import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import sharp from 'sharp';
import { readRgb } from '../../src/dataloaders/formats/image.js';
import { FlashDepthProcessor } from '../../src/infer/processor.js';
import { readNpy, readNpyHeader } from '../../src/io/npy.js';
import { countVideoFrames, probeVideo } from '../../src/media/video.js';
import { useTestBackend } from '../helpers/backend.js';
import { fixture, REPO_ROOT } from '../helpers/fixtures.js';
import { lavfi } from '../media/lavfi.js';
import { CLI, runCliProcess } from './spawn-cli.js';
import { maxAbsDiff, syntheticFrame } from '../helpers/frames.js';


async function writeFrames(dir: string, count: number, shift: number, width = 112, height = 64): Promise<void> {
  mkdirSync(dir, { recursive: true });
  // frame2 < frame10: natural order, not string order.
  for (let t = 0; t < count; t++) {
    const f = syntheticFrame(width, height, t + shift);
    await sharp(f.rgb, { raw: { width, height, channels: 3 } }).png().toFile(join(dir, `frame${t * 4 + 2}.png`));
  }
}

function npyFiles(dir: string): string[] {
  return readdirSync(join(dir, 'depth_npy')).sort();
}

function depthAt(dir: string, file: string): Float32Array {
  return readNpy(join(dir, 'depth_npy', file)).data as Float32Array;
}


describe('cli infer', function () {
  this.timeout(300_000);
  let dir: string;
  let checkpoint: string;
  let processor: FlashDepthProcessor;
  const sArgs = (): string[] => ['--config', 'configs/flashdepth-s', '--checkpoint', checkpoint, '--backend', 'wasm'];

  before(async function () {
    checkpoint = fixture(this, 's_model.pth');
    dir = mkdtempSync(join(tmpdir(), 'flashdepth-infer-'));
    await writeFrames(join(dir, 'clipA'), 3, 0);
    await writeFrames(join(dir, 'clipB'), 3, 7);
    await useTestBackend();
    processor = await FlashDepthProcessor.create({ config: 's', checkpoint, backend: 'wasm' });
  });
  after(() => {
    processor?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The library's depth for the PNG frames of a folder, as one sequence. */
  async function libraryDepths(folder: string): Promise<Float32Array[]> {
    processor.reset();
    const out: Float32Array[] = [];
    for (const f of readdirSync(folder).sort((a, b) => Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0]))) {
      const img = await readRgb(join(folder, f));
      out.push((await processor.process({ rgb: img.data, width: img.width, height: img.height })).depth);
    }
    return out;
  }

  it('a folder of PNG frames: one float32 H×W .npy per frame in frame order, equal to FlashDepthProcessor', async function () {
    const out = join(dir, 'out-a');
    const r = await runCliProcess(['infer', join(dir, 'clipA'), ...sArgs(), '--out', out, '--no-depth-mp4', '--no-side-by-side']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.equal('');
    expect(npyFiles(out)).to.deep.equal(['000000.npy', '000001.npy', '000002.npy']);
    const lib = await libraryDepths(join(dir, 'clipA'));
    for (const [i, file] of npyFiles(out).entries()) {
      expect(readNpyHeader(join(out, 'depth_npy', file))).to.deep.equal({ dtype: 'float32', shape: [70, 112] });
      expect(maxAbsDiff(depthAt(out, file), lib[i]!), file).to.be.at.most(1e-6);
    }
    expect(readdirSync(out).sort()).to.deep.equal(['depth_npy', 'summary.json']);
  });

  it('--random-weights runs without a checkpoint (timing/smoke runs) and says so in summary.json', async function () {
    const out = join(dir, 'out-random');
    const r = await runCliProcess(['infer', join(dir, 'clipA'), '--config', 'configs/flashdepth-s', '--random-weights', '--backend', 'wasm', '--max-frames', '1', '--out', out, '--no-depth-mp4', '--no-side-by-side', '--precision', 'mixed']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.include('checkpoint random weights, precision fp32');
    // --precision mixed on wasm: one warning, then fp32.
    expect(r.stderr).to.include('--precision mixed needs webgpu with f16 subgroup matrices (tensor cores); the wasm backend has none, running fp32');
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { checkpoint: string; frames: number };
    expect(summary.checkpoint).to.equal('random weights');
    expect(summary.frames).to.equal(1);
    // Random weights of realistic magnitude: a non-trivial depth map, unlike the all-zero weights of a fresh model.
    const depth = depthAt(out, '000000.npy');
    expect(depth.some((v) => v !== depth[0])).to.equal(true);
  });

  it('two inputs: one folder each; the state is carried within a sequence and reset at the second one', async function () {
    const out = join(dir, 'out-ab');
    const r = await runCliProcess(['infer', join(dir, 'clipA'), join(dir, 'clipB'), ...sArgs(), '--out', out, '--no-depth-mp4', '--no-side-by-side']);
    expect(r.code, r.stderr).to.equal(0);
    expect(readdirSync(out).sort()).to.deep.equal(['clipA', 'clipB']);
    const libB = await libraryDepths(join(dir, 'clipB'));
    for (let i = 0; i < 3; i++) expect(maxAbsDiff(depthAt(join(out, 'clipB'), npyFiles(join(out, 'clipB'))[i]!), libB[i]!)).to.be.at.most(1e-6);
    // Frame 2 of B run from a fresh state differs from the CLI's frame 2: the state was carried from B's frame 0.
    processor.reset();
    const img = await readRgb(join(dir, 'clipB', 'frame10.png'));
    const fresh = await processor.process({ rgb: img.data, width: img.width, height: img.height });
    expect(maxAbsDiff(depthAt(join(out, 'clipB'), '000002.npy'), fresh.depth)).to.be.greaterThan(1e-3);
    // Run again with the same --out: a new folder, nothing overwritten.
    const again = await runCliProcess(['infer', join(dir, 'clipA'), ...sArgs(), '--out', join(out, 'clipA'), '--max-frames', '1', '--no-depth-mp4', '--no-side-by-side']);
    expect(again.code, again.stderr).to.equal(0);
    expect(npyFiles(join(out, 'clipA_1'))).to.deep.equal(['000000.npy']);
    expect(npyFiles(join(out, 'clipA'))).to.have.length(3);
  });

  it('an mp4 end to end: every output with its count, size and dtype, and summary.json', async function () {
    const video = lavfi('testsrc=s=112x64:r=10', 4, join(dir, 'test.mp4'));
    const out = join(dir, 'out-mp4');
    const r = await runCliProcess(['infer', video, ...sArgs(), '--out', out, '--png16', '--color-png', '--colormap', 'turbo']);
    expect(r.code, r.stderr).to.equal(0);
    expect(readdirSync(out).sort()).to.deep.equal(['depth.mp4', 'depth_color', 'depth_npy', 'depth_png16', 'side_by_side.mp4', 'summary.json']);
    const names = ['000000', '000001', '000002', '000003'];
    expect(npyFiles(out)).to.deep.equal(names.map((n) => `${n}.npy`));
    for (const n of names) expect(readNpyHeader(join(out, 'depth_npy', `${n}.npy`))).to.deep.equal({ dtype: 'float32', shape: [70, 112] });
    for (const [sub, channels, depth] of [['depth_png16', 1, 'ushort'], ['depth_color', 3, 'uchar']] as const) {
      expect(readdirSync(join(out, sub)).sort()).to.deep.equal(names.map((n) => `${n}.png`));
      for (const n of names) {
        const m = await sharp(join(out, sub, `${n}.png`)).metadata();
        expect([m.width, m.height, m.channels, m.depth], `${sub}/${n}`).to.deep.equal([112, 70, channels, depth]);
      }
    }
    for (const [file, width] of [['depth.mp4', 112], ['side_by_side.mp4', 224]] as const) {
      const info = await probeVideo({ location: join(out, file), kind: 'file' });
      expect([info.width, info.height, info.codec], file).to.deep.equal([width, 70, 'h264']);
      expect(await countVideoFrames(join(out, file)), file).to.equal(4);
      expect(info.fps, file).to.equal(10);
    }
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Record<string, unknown>;
    expect(summary).to.include({ frames: 4, width: 112, height: 70, inputWidth: 112, inputHeight: 64, backend: 'wasm', checkpoint,
      variant: 'flashdepth-s', source: video, interrupted: false, colormap: 'turbo', normalization: 'video', png16Scale: 64 });
    expect(summary['device']).to.be.a('string').and.not.equal('');
    expect(summary['fps']).to.be.a('number').and.greaterThan(0);
    expect(summary['wallTimeS']).to.be.a('number').and.greaterThan(0);
    expect(summary['outputs']).to.deep.equal(['depth.mp4', 'depth_color/', 'depth_npy/', 'depth_png16/', 'side_by_side.mp4', 'summary.json']);
  });

  it('Ctrl-C (SIGINT) stops after the current frame with every output finalised, exit code 130', async function () {
    const video = lavfi('testsrc=s=112x64:r=10', 60, join(dir, 'long.mp4'));
    const out = join(dir, 'out-sigint');
    const child = spawn(process.execPath, [CLI, 'infer', video, ...sArgs(), '--out', out], { cwd: REPO_ROOT, env: { ...process.env, NO_COLOR: '1' } });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((res) => child.once('close', (code) => res(code)));
    for (let i = 0; i < 600 && !(existsSync(join(out, 'depth_npy')) && readdirSync(join(out, 'depth_npy')).length >= 2); i++) {
      await new Promise((res) => setTimeout(res, 100));
    }
    child.kill('SIGINT');
    const code = await exited;
    expect(code, stderr).to.equal(130);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { frames: number; interrupted: boolean };
    expect(summary.interrupted).to.equal(true);
    expect(summary.frames).to.be.within(2, 59);
    expect(npyFiles(out)).to.have.length(summary.frames);
    expect(await countVideoFrames(join(out, 'depth.mp4'))).to.equal(summary.frames);
    expect(await countVideoFrames(join(out, 'side_by_side.mp4'))).to.equal(summary.frames);
    expect(stderr.trimEnd().split('\n').pop()).to.equal(`error: interrupted after ${summary.frames} frames; the outputs written so far are complete in ${out}`);
  });

  describe('bad input: one line, no stack, non-zero exit, no output folder', function () {
    it('a missing file', async function () {
      const missing = join(dir, 'nope.mp4');
      const r = await runCliProcess(['infer', missing, ...sArgs(), '--out', join(dir, 'out-bad1')]);
      expect([r.code, r.stderr]).to.deep.equal([5, `error: ${missing}: no such file or folder\n`]);
      expect(existsSync(join(dir, 'out-bad1'))).to.equal(false);
    });

    it('a file that is not a video', async function () {
      const text = join(dir, 'notes.mp4');
      writeFileSync(text, 'this is not a video\n');
      const r = await runCliProcess(['infer', text, ...sArgs(), '--out', join(dir, 'out-bad2')]);
      expect(r.code).to.equal(5);
      expect(r.stderr).to.match(new RegExp(`^error: ${text.replace(/[.]/g, '\\.')}: not a video \\(ffmpeg: [^\\n]+\\)\\n$`));
      expect(existsSync(join(dir, 'out-bad2'))).to.equal(false);
    });

    it('no input at all', async function () {
      const r = await runCliProcess(['infer', ...sArgs()]);
      expect([r.code, r.stderr]).to.deep.equal([5, 'error: no input given (expected a video, image folder, glob, stream URL or /dev/videoN)\n']);
    });

    it('a bad flag value', async function () {
      const r = await runCliProcess(['infer', join(dir, 'clipA'), ...sArgs(), '--max-frames', '0']);
      expect([r.code, r.stderr]).to.deep.equal([2, 'error: Expected positive integer for --max-frames but received 0 (number)\n']);
    });

    it('no checkpoint: the resolver says which file is expected where and how to get it', async function () {
      const config = join(dir, 'configs', 'flashdepth-s');
      mkdirSync(config, { recursive: true });
      copyFileSync(join(REPO_ROOT, 'configs', 'flashdepth-s', 'config.yaml'), join(config, 'config.yaml'));
      if (existsSync(join(REPO_ROOT, 'checkpoints', 'flashdepth-s.pth'))) this.skip();
      const r = await runCliProcess(['infer', join(dir, 'clipA'), '--config', config, '--backend', 'wasm', '--out', join(dir, 'out-bad3')]);
      expect([r.code, r.stderr]).to.deep.equal([3, `error: no checkpoint for flashdepth-s: expected ${join(config, 'iter_*.pth')} or checkpoints/flashdepth-s.pth; get it with \`npm run weights -- download flashdepth-s\`\n`]);
    });
  });

  it('--help lists every option with its default', async function () {
    const r = await runCliProcess(['infer', '--help']);
    expect(r.code).to.equal(0);
    for (const flag of ['--config', '--checkpoint', '--backend', '--max-frames', '--target-fps', '--long-side', '--out', '--npy', '--png16',
      '--color-png', '--depth-mp4', '--side-by-side', '--colormap', '--normalize']) expect(r.stdout, flag).to.include(flag);
    for (const text of ['[default: "configs/flashdepth"]', '[default: 2044]', '[choices: "inferno", "turbo", "viridis", "grey"] [default: "inferno"]',
      '[choices: "video", "frame"] [default: "video"]']) expect(r.stdout.replace(/\s+/g, ' '), text).to.include(text);
  });
});
