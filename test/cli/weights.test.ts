import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { runCliProcess } from './spawn-cli.js';

describe('cli weights', function () {
  const payload = Buffer.from(Array.from({ length: 30_000 }, (_, i) => (i * 31) % 253));
  const sha = createHash('sha256').update(payload).digest('hex');
  let server: Server;
  let base: string;
  let dir: string;

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'flashdepth-weights-cli-'));
    server = createServer((req, res) => {
      if (req.url === '/flashdepth-s.pth') res.writeHead(200, { 'Content-Length': payload.length }).end(payload);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async function () {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('download <name> --url: fetches into --dir, reports size and sha256', async function () {
    const r = await runCliProcess(['weights', 'download', 'flashdepth-s', '--dir', dir, '--url', `${base}/flashdepth-s.pth`]);
    expect(r.code, r.stderr).to.equal(0);
    const file = join(dir, 'flashdepth-s.pth');
    expect(readFileSync(file).equals(payload)).to.equal(true);
    expect(existsSync(`${file}.part`)).to.equal(false);
    expect(r.stderr).to.equal(`downloading flashdepth-s: ${base}/flashdepth-s.pth\n${file}: downloaded, ${payload.length} bytes, sha256 ${sha}\n`);
    const again = await runCliProcess(['weights', 'download', 'flashdepth-s', '--dir', dir, '--url', `${base}/flashdepth-s.pth`]);
    expect(again.stderr.split('\n')[1]).to.equal(`${file}: already present, ${payload.length} bytes, sha256 ${sha}`);
  });

  it('list: every known name, present or missing, with its file and description', async function () {
    writeFileSync(join(dir, 'depth_anything_v2_vitl.pth.part'), 'x');
    const r = await runCliProcess(['weights', 'list', '--dir', dir]);
    expect(r.code, r.stderr).to.equal(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.map((l) => l.split(/\s+/).slice(0, 2).join(' '))).to.deep.equal([
      'flashdepth missing', 'flashdepth-l missing', 'flashdepth-s present', 'dav2-vits missing', 'dav2-vitl partial']);
    expect(lines[2]).to.include('present (0.0 MiB)').and.include(join(dir, 'flashdepth-s.pth')).and.include('FlashDepth-S: ViT-S, iter_14001');
  });

  it('offline (nothing listening): one line naming the URL and where to put the file by hand, exit 3', async function () {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const url = `http://127.0.0.1:${port}/flashdepth.pth`;
    const r = await runCliProcess(['weights', 'download', 'flashdepth', '--dir', dir, '--url', url]);
    expect(r.code).to.equal(3);
    expect(r.stderr).to.equal(`downloading flashdepth: ${url}\nerror: download flashdepth: cannot reach 127.0.0.1:${port} (ECONNREFUSED; offline?); download ${url} by hand and save it as ${join(dir, 'flashdepth.pth')}\n`);
  });

  it('an HTTP error and an unknown name are one-line errors', async function () {
    const r404 = await runCliProcess(['weights', 'download', 'dav2-vits', '--dir', dir, '--url', `${base}/gone.pth`]);
    expect(r404.code).to.equal(3);
    expect(r404.stderr.split('\n')[1]).to.equal(`error: download dav2-vits: ${base}/gone.pth answered HTTP 404 Not Found; download it by hand and save it as ${join(dir, 'depth_anything_v2_vits.pth')}`);
    const unknown = await runCliProcess(['weights', 'download', 'flashdepth-xl', '--dir', dir]);
    expect([unknown.code, unknown.stderr]).to.deep.equal([2,
      'error: Expected one of flashdepth, flashdepth-l, flashdepth-s, dav2-vits, dav2-vitl for weights name but received "flashdepth-xl"\n']);
    const none = await runCliProcess(['weights', 'download', '--dir', dir]);
    expect([none.code, none.stderr]).to.deep.equal([2,
      'error: weights download: name the weights (one of flashdepth, flashdepth-l, flashdepth-s, dav2-vits, dav2-vitl)\n']);
  });
});
