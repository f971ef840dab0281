import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { expect } from 'chai';
import { ConfigError } from '../../src/errors.js';
import { describeBinary, resolveFfmpeg, resolveFfprobe } from '../../src/media/ffmpeg.js';

describe('media/ffmpeg resolution', function () {
  let root: string;
  let a: string; // a folder with fake ffmpeg and ffprobe
  let b: string; // a folder with a fake ffmpeg only
  let empty: string;

  function fakeExecutable(dir: string, name: string): string {
    const path = join(dir, name);
    writeFileSync(path, '#!/bin/sh\necho fake\n');
    chmodSync(path, 0o755);
    return path;
  }

  before(function () {
    root = mkdtempSync(join(tmpdir(), 'flashdepth-ffmpeg-'));
    for (const d of ['a', 'b', 'empty']) mkdirSync(join(root, d));
    [a, b, empty] = ['a', 'b', 'empty'].map((d) => join(root, d)) as [string, string, string];
    fakeExecutable(a, 'ffmpeg');
    fakeExecutable(a, 'ffprobe');
    fakeExecutable(b, 'ffmpeg');
    writeFileSync(join(root, 'not-executable'), 'x');
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('--ffmpeg wins over FFMPEG_PATH, which wins over the packages and PATH', function () {
    const env = { FFMPEG_PATH: join(b, 'ffmpeg'), PATH: a };
    expect(resolveFfmpeg({ ffmpeg: join(a, 'ffmpeg'), env })).to.deep.equal({ path: join(a, 'ffmpeg'), source: 'flag' });
    expect(resolveFfmpeg({ env })).to.deep.equal({ path: join(b, 'ffmpeg'), source: 'env' });
  });

  it('an explicit path that is missing or not executable is an error naming the flag or variable', function () {
    const missing = join(root, 'missing');
    expect(() => resolveFfmpeg({ env: { FFMPEG_PATH: missing } })).to.throw(ConfigError, `FFMPEG_PATH: ${missing} is not an executable file`);
    expect(() => resolveFfmpeg({ ffmpeg: join(root, 'not-executable'), env: {} })).to.throw(
      ConfigError,
      `--ffmpeg: ${join(root, 'not-executable')} is not an executable file`,
    );
  });

  it('without flag or variable, an npm package binary is used before PATH', function () {
    const found = resolveFfmpeg({ env: { PATH: a } });
    expect(found.source).to.be.oneOf(['ffmpeg-static', '@ffmpeg-installer/ffmpeg']);
    expect(existsSync(found.path)).to.equal(true);
  });

  it('falls back to the first ffmpeg on PATH', function () {
    expect(resolveFfmpeg({ packages: false, env: { PATH: [empty, b, a].join(delimiter) } })).to.deep.equal({ path: join(b, 'ffmpeg'), source: 'PATH' });
  });

  it('finding none is an error that lists what was tried', function () {
    expect(() => resolveFfmpeg({ packages: false, env: { PATH: empty } })).to.throw(
      ConfigError,
      'ffmpeg: not found (tried --ffmpeg, FFMPEG_PATH, ffmpeg-static, @ffmpeg-installer/ffmpeg, PATH); set FFMPEG_PATH to an ffmpeg binary',
    );
  });

  it('ffprobe: FFPROBE_PATH, then beside the resolved ffmpeg, then PATH', function () {
    expect(resolveFfprobe({ env: { FFPROBE_PATH: join(a, 'ffprobe'), FFMPEG_PATH: join(b, 'ffmpeg') } })).to.deep.equal({ path: join(a, 'ffprobe'), source: 'env' });
    expect(resolveFfprobe({ env: { FFMPEG_PATH: join(a, 'ffmpeg') } })).to.deep.equal({ path: join(a, 'ffprobe'), source: 'beside ffmpeg' });
    expect(resolveFfprobe({ packages: false, env: { FFMPEG_PATH: join(b, 'ffmpeg'), PATH: [b, a].join(delimiter) } })).to.deep.equal({
      path: join(a, 'ffprobe'),
      source: 'PATH',
    });
    expect(() => resolveFfprobe({ packages: false, env: { PATH: b } })).to.throw(ConfigError, 'ffprobe: not found');
  });

  it('describes the binary and where it came from', function () {
    expect(describeBinary('ffmpeg', { path: '/x/ffmpeg', source: 'env' })).to.equal('ffmpeg: /x/ffmpeg (from FFMPEG_PATH)');
    expect(describeBinary('ffprobe', { path: '/x/ffprobe', source: 'flag' })).to.equal('ffprobe: /x/ffprobe (from --ffprobe)');
    expect(describeBinary('ffmpeg', { path: '/y', source: '@ffmpeg-installer/ffmpeg' })).to.equal('ffmpeg: /y (from @ffmpeg-installer/ffmpeg)');
  });
});
