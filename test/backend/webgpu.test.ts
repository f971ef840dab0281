/**
 * WebGPU smoke test on a software Vulkan device (Mesa lavapipe, fetched by .ci/fetch-lavapipe.sh). Runs in a child
 * process so the rest of the suite keeps its backend. Skipped where lavapipe is absent, except under CI=true.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { REPO_ROOT } from '../helpers/fixtures.js';
import { runCliProcess } from '../cli/spawn-cli.js';
import { dawnToggles } from '../../src/backend/webgpu.js';

const LAVAPIPE = process.env['FLASHDEPTH_LAVAPIPE'] ?? join(REPO_ROOT, '.cache', 'lavapipe');
const ICD = join(LAVAPIPE, 'usr', 'share', 'vulkan', 'icd.d', 'lvp_icd.json');

function lavapipeEnv(ctx: Mocha.Context): NodeJS.ProcessEnv {
  if (!existsSync(ICD)) {
    if (process.env['CI'] === 'true') throw new Error(`missing ${ICD} (CI=true: run .ci/fetch-lavapipe.sh first)`);
    ctx.skip();
  }
  const lib = join(LAVAPIPE, 'usr', 'lib', 'x86_64-linux-gnu');
  return { VK_ICD_FILENAMES: ICD, LD_LIBRARY_PATH: [lib, process.env['LD_LIBRARY_PATH']].filter(Boolean).join(':'), XDG_RUNTIME_DIR: '/tmp' };
}

describe('backend: webgpu Dawn toggles', function () {
  it('drops the robustness clamps unless FLASHDEPTH_WEBGPU_ROBUSTNESS=on, appends FLASHDEPTH_DAWN_FEATURES, and never quantizes timestamps', function () {
    const unquantized = 'disable-dawn-features=timestamp_quantization';
    expect(dawnToggles({})).to.deep.equal(['enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,disable_robustness', unquantized]);
    expect(dawnToggles({ FLASHDEPTH_WEBGPU_ROBUSTNESS: 'on' })).to.deep.equal(['enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia', unquantized]);
    expect(dawnToggles({ FLASHDEPTH_WEBGPU_ROBUSTNESS: ' OFF ', FLASHDEPTH_DAWN_FEATURES: 'skip_validation, disable_robustness' }))
      .to.deep.equal(['enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,disable_robustness,skip_validation', unquantized]);
    expect(() => dawnToggles({ FLASHDEPTH_WEBGPU_ROBUSTNESS: 'yes' })).to.throw('FLASHDEPTH_WEBGPU_ROBUSTNESS must be "on" or "off", got "yes"');
  });
});

describe('backend: webgpu on lavapipe', function () {
  it('--backend webgpu: the adapter at its maximum limits, the features offered, a correct matmul, and the process exits', async function () {
    const { code, stdout, stderr } = await runCliProcess(['backend', '--backend', 'webgpu'], lavapipeEnv(this));
    expect(code, stderr).to.equal(0);
    const lines = stderr.split('\n').filter((l) => l.startsWith('backend: '));
    expect(lines).to.have.length(1);
    // lavapipe's maxStorageBufferBindingSize is 128 MiB (tfjs' default request would be the same here; on NVIDIA it is 2 GiB).
    expect(lines[0]).to.match(/^backend: webgpu \[llvmpipe.*, max binding 128 MiB; features shader-f16, subgroups, timestamp-query\]$/);
    expect(stdout).to.match(/^op check: 64×64 matmul on webgpu: max \|tf − js\| = \d\.\d\de-\d+ \(ok\)\n/);
  });

  it('FLASHDEPTH_WEBGPU_ROBUSTNESS=on: the clamps back and the same correct matmul; a bad value is a one-line error', async function () {
    const env = lavapipeEnv(this);
    const on = await runCliProcess(['backend', '--backend', 'webgpu'], { ...env, FLASHDEPTH_WEBGPU_ROBUSTNESS: 'on' });
    expect(on.code, on.stderr).to.equal(0);
    expect(on.stdout).to.match(/^op check: 64×64 matmul on webgpu: max \|tf − js\| = \d\.\d\de-\d+ \(ok\)\n/);
    const bad = await runCliProcess(['backend', '--backend', 'webgpu'], { ...env, FLASHDEPTH_WEBGPU_ROBUSTNESS: 'maybe' });
    expect(bad.code).to.equal(2);
    expect(bad.stderr.trim()).to.equal('error: FLASHDEPTH_WEBGPU_ROBUSTNESS must be "on" or "off", got "maybe"');
  });

  it('auto picks webgpu when a Vulkan device exists, skipping only tensorflow', async function () {
    const { code, stderr } = await runCliProcess(['backend'], lavapipeEnv(this));
    expect(code, stderr).to.equal(0);
    const line = stderr.split('\n').find((l) => l.startsWith('backend: '));
    expect(line).to.match(/^backend: webgpu \[llvmpipe.*\]; skipped tensorflow: not installed \(@tensorflow\/tfjs-node-gpu, @tensorflow\/tfjs-node\)$/);
  });
});

describe('bench on lavapipe: frame replay', function () {
  this.timeout(240_000);

  it('--warmup 1: the warm-up goes on until replay has recorded its frame, so every timed frame replays', async function () {
    const env = lavapipeEnv(this);
    const dir = mkdtempSync(join(tmpdir(), 'fd-bench-'));
    try {
      const json = join(dir, 'bench.json');
      // The tiny config at 56 px; its Mamba pools path_3's 8×8 by 0.25 (0.1 would leave no token).
      const { code, stderr } = await runCliProcess(['bench', '--config', join(REPO_ROOT, 'configs', 'tiny'), '--set', 'model.downsample_mamba=[0.25]',
        '--resolution', '56x56', '--backend', 'webgpu', '--frames', '3', '--warmup', '1', '--json', json], env);
      expect(code, stderr).to.equal(0);
      // Frame 0, then the memory profile's tfjs frame (the state is no longer the predictor's: its count restarts),
      // 2 tfjs frames and the recorded one.
      expect(stderr).to.include('bench: warm-up extended to 4 frames, so that the frame replay records is not timed');
      const [result] = JSON.parse(readFileSync(json, 'utf8')) as [{ warmupFrames: number; frames: number; replay: Record<string, unknown> }];
      expect(result.warmupFrames).to.equal(4);
      expect(result.replay).to.include({ tfjsFrames: 3, recordedFrames: 1, replayedFrames: 3, unavailable: null });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
