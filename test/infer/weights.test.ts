import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { CheckpointError, ConfigError } from '../../src/errors.js';
import { latestIterCheckpoint, resolveCheckpoint } from '../../src/infer/checkpoints.js';
import { downloadWeights, PUBLISHED_WEIGHTS, WEIGHT_NAMES, type DownloadProgress } from '../../src/infer/weights-download.js';
import { rejection } from '../helpers/errors.js';

describe('infer/checkpoints', function () {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'flashdepth-ckpt-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('takes load first, then the highest iter_*.pth in the config folder, then checkpoints/<variant>.pth', function () {
    const config = join(dir, 'configs', 'flashdepth-s');
    const ckpts = join(dir, 'checkpoints');
    mkdirSync(config, { recursive: true });
    mkdirSync(ckpts);
    const query = { configDir: config, checkpointsDir: ckpts };
    expect(() => resolveCheckpoint(query)).to.throw(CheckpointError,
      `no checkpoint for flashdepth-s: expected ${join(config, 'iter_*.pth')} or ${join(ckpts, 'flashdepth-s.pth')}; get it with \`npm run weights -- download flashdepth-s\``);
    writeFileSync(join(ckpts, 'flashdepth-s.pth'), 'x');
    expect(resolveCheckpoint(query)).to.deep.equal({ path: join(ckpts, 'flashdepth-s.pth'), origin: 'checkpoints' });
    writeFileSync(join(ckpts, 'flashdepth-s.safetensors'), 'x');
    expect(resolveCheckpoint(query).path).to.equal(join(ckpts, 'flashdepth-s.safetensors'));
    for (const n of [999, 14001, 2000]) writeFileSync(join(config, `iter_${n}.pth`), 'x');
    writeFileSync(join(config, 'iter_99999.pth.part'), 'x');
    expect(resolveCheckpoint(query)).to.deep.equal({ path: join(config, 'iter_14001.pth'), origin: 'config dir', iteration: 14001 });
    expect(latestIterCheckpoint(join(dir, 'missing'))).to.equal(undefined);
    expect(resolveCheckpoint({ ...query, load: join(config, 'iter_999.pth') })).to.deep.equal(
      { path: join(config, 'iter_999.pth'), origin: 'load', iteration: 999 });
    const gone = join(dir, 'gone.pth');
    expect(() => resolveCheckpoint({ ...query, load: gone })).to.throw(CheckpointError, `${gone}: checkpoint not found (from load / --load)`);
  });

  it('an unknown variant folder asks for --load', function () {
    const custom = join(dir, 'configs', 'tiny');
    mkdirSync(custom, { recursive: true });
    expect(() => resolveCheckpoint({ configDir: custom, checkpointsDir: join(dir, 'checkpoints') })).to.throw(CheckpointError, '; pass --load <file>');
  });
});

describe('infer/weights-download', function () {
  const payload = Buffer.from(Array.from({ length: 50_000 }, (_, i) => (i * 7919) % 251));
  const sha = createHash('sha256').update(payload).digest('hex');
  let server: Server;
  let base: string;
  let dir: string;
  const requests: { path: string; range?: string }[] = [];

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'flashdepth-dl-'));
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const range = req.headers.range;
      requests.push({ path: req.url ?? '', ...(range ? { range } : {}) });
      if (req.url === '/missing.pth') {
        res.writeHead(404).end();
        return;
      }
      // /cut.pth sends half the file, then drops the connection.
      if (req.url === '/cut.pth') {
        res.writeHead(200, { 'Content-Length': payload.length });
        res.write(payload.subarray(0, 20_000), () => setTimeout(() => res.socket?.end(), 20)); // FIN, not RST: the sent bytes arrive
        return;
      }
      const noRange = req.url === '/norange.pth';
      const m = range && !noRange ? /bytes=(\d+)-/.exec(range) : null;
      if (m) {
        const start = Number(m[1]);
        if (start >= payload.length) {
          res.writeHead(416, { 'Content-Range': `bytes */${payload.length}` }).end();
          return;
        }
        res.writeHead(206, { 'Content-Length': payload.length - start, 'Content-Range': `bytes ${start}-${payload.length - 1}/${payload.length}` });
        res.end(payload.subarray(start));
        return;
      }
      res.writeHead(200, { 'Content-Length': payload.length }).end(payload);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async function () {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('one table holds every name, URL and file name', function () {
    expect(Object.keys(PUBLISHED_WEIGHTS)).to.deep.equal([...WEIGHT_NAMES]);
    expect(PUBLISHED_WEIGHTS['flashdepth-s'].url).to.equal('https://huggingface.co/Eyeline-Labs/FlashDepth/resolve/main/flashdepth-s/iter_14001.pth');
    expect(PUBLISHED_WEIGHTS['dav2-vitl'].url).to.equal('https://huggingface.co/depth-anything/Depth-Anything-V2-Large/resolve/main/depth_anything_v2_vitl.pth');
  });

  it('downloads with progress, checks sha256, renames atomically, and skips an existing file', async function () {
    const target = join(dir, 'fresh');
    const seen: DownloadProgress[] = [];
    const r = await downloadWeights('flashdepth-s', { dir: target, url: `${base}/ok.pth`, sha256: sha, onProgress: (p) => seen.push(p) });
    expect(r).to.deep.equal({ path: join(target, 'flashdepth-s.pth'), bytes: payload.length, sha256: sha, downloaded: true, resumedFrom: 0 });
    expect(readFileSync(r.path).equals(payload)).to.equal(true);
    expect(existsSync(`${r.path}.part`)).to.equal(false);
    expect(seen[seen.length - 1]).to.deep.equal({ received: payload.length, total: payload.length, resumedFrom: 0 });
    const again = await downloadWeights('flashdepth-s', { dir: target, url: `${base}/ok.pth` });
    expect([again.downloaded, again.sha256]).to.deep.equal([false, sha]);
  });

  it('resumes a partial file with a Range request after a dropped connection', async function () {
    const target = join(dir, 'resume');
    const e = await rejection(downloadWeights('dav2-vits', { dir: target, url: `${base}/cut.pth` }));
    expect(e).to.be.instanceOf(CheckpointError);
    const part = join(target, 'depth_anything_v2_vits.pth.part');
    expect(e.message).to.match(/^download dav2-vits: (connection lost after \d+ bytes|.* has \d+ bytes, expected 50000)/);
    expect(readFileSync(part).length).to.be.greaterThan(0).and.below(payload.length);
    const partBytes = readFileSync(part).length;
    requests.length = 0;
    const r = await downloadWeights('dav2-vits', { dir: target, url: `${base}/ok.pth`, sha256: sha });
    expect(requests).to.deep.equal([{ path: '/ok.pth', range: `bytes=${partBytes}-` }]);
    expect([r.resumedFrom, r.bytes, r.sha256]).to.deep.equal([partBytes, payload.length, sha]);
    expect(readFileSync(r.path).equals(payload)).to.equal(true);
  });

  it('a complete .part (416) is verified and moved; a server that ignores Range restarts', async function () {
    const t1 = join(dir, 'complete');
    mkdirSync(t1);
    writeFileSync(join(t1, 'flashdepth.pth.part'), payload);
    expect((await downloadWeights('flashdepth', { dir: t1, url: `${base}/ok.pth`, sha256: sha })).resumedFrom).to.equal(payload.length);
    const t2 = join(dir, 'restart');
    mkdirSync(t2);
    writeFileSync(join(t2, 'flashdepth.pth.part'), Buffer.alloc(1000, 9));
    const r = await downloadWeights('flashdepth', { dir: t2, url: `${base}/norange.pth`, sha256: sha });
    expect([r.resumedFrom, readFileSync(r.path).equals(payload)]).to.deep.equal([0, true]);
  });

  it('a bad checksum deletes the part and names both hashes; HTTP errors and offline are one-line CheckpointErrors', async function () {
    const target = join(dir, 'bad');
    const wrong = '0'.repeat(64);
    const e = await rejection(downloadWeights('flashdepth-l', { dir: target, url: `${base}/ok.pth`, sha256: wrong }));
    expect(e).to.be.instanceOf(CheckpointError);
    expect(e.message).to.equal(`download flashdepth-l: sha256 mismatch for ${base}/ok.pth (expected ${wrong}, got ${sha}); the partial file was deleted`);
    expect(existsSync(join(target, 'flashdepth-l.pth.part'))).to.equal(false);
    expect(existsSync(join(target, 'flashdepth-l.pth'))).to.equal(false);

    const e404 = await rejection(downloadWeights('flashdepth-l', { dir: target, url: `${base}/missing.pth` }));
    expect(e404.message).to.equal(`download flashdepth-l: ${base}/missing.pth answered HTTP 404 Not Found; download it by hand and save it as ${join(target, 'flashdepth-l.pth')}`);

    const offline = (() => Promise.reject(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ENOTFOUND' } }))) as unknown as typeof fetch;
    const eOff = await rejection(downloadWeights('flashdepth-l', { dir: target, fetch: offline }));
    expect(eOff.message).to.equal(`download flashdepth-l: cannot reach huggingface.co (ENOTFOUND; offline?); download ${PUBLISHED_WEIGHTS['flashdepth-l'].url} by hand and save it as ${join(target, 'flashdepth-l.pth')}`);

    const eName = await rejection(downloadWeights('flashdepth-xl', { dir: target }));
    expect(eName).to.be.instanceOf(ConfigError);
    expect(eName.message).to.equal('Expected one of flashdepth, flashdepth-l, flashdepth-s, dav2-vits, dav2-vitl for weights name but received "flashdepth-xl"');
  });
});
