import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { activeBackend, describeBackend, selectBackend, type BackendName } from '../../src/backend/index.js';
import { checkMatmul } from '../../src/backend/check.js';
import { wantedWasmThreads } from '../../src/backend/wasm.js';
import { BackendError, ConfigError } from '../../src/errors.js';
import { useTestBackend } from '../helpers/backend.js';
import { runCliProcess } from '../cli/spawn-cli.js';

const NOT_INSTALLED = 'not installed (@tensorflow/tfjs-node-gpu, @tensorflow/tfjs-node)';

describe('backend', function () {
  describe('the backend line', function () {
    it('names the backend, its device, webgpu features, and each skipped backend with its reason', function () {
      expect(describeBackend({ name: 'cpu', device: 'JavaScript, 1 thread', features: [], skipped: [] })).to.equal('backend: cpu [JavaScript, 1 thread]');
      expect(
        describeBackend({
          name: 'wasm',
          device: '2 threads, SIMD',
          features: ['simd', 'threads'],
          skipped: [
            { name: 'tensorflow', reason: 'not installed' },
            { name: 'webgpu', reason: 'no WebGPU adapter' },
          ],
        }),
      ).to.equal('backend: wasm [2 threads, SIMD]; skipped tensorflow: not installed; skipped webgpu: no WebGPU adapter');
      expect(describeBackend({ name: 'webgpu', device: 'llvmpipe, max binding 128 MiB', features: ['shader-f16', 'subgroups'], skipped: [] })).to.equal(
        'backend: webgpu [llvmpipe, max binding 128 MiB; features shader-f16, subgroups]',
      );
    });

    it('--backend cpu: exactly one line on stderr, and the matmul check passes', async function () {
      const { code, stdout, stderr } = await runCliProcess(['backend', '--backend', 'cpu']);
      expect(code, stderr).to.equal(0);
      expect(stderr).to.equal('backend: cpu [JavaScript, 1 thread]\n');
      expect(stdout).to.match(/^op check: 64×64 matmul on cpu: max \|tf − js\| = \d\.\d\de-\d+ \(ok\)\n/);
    });

    it('--backend wasm: one line with the thread count (threads on wherever there are 2+ cores)', async function () {
      const { code, stdout, stderr } = await runCliProcess(['backend', '--backend', 'wasm'], { FLASHDEPTH_WASM_THREADS: '' });
      expect(code, stderr).to.equal(0);
      const threads = Math.min(availableParallelism(), 8);
      expect(stderr).to.equal(threads > 1 ? `backend: wasm [${threads} threads, SIMD]\n` : 'backend: wasm [1 thread, SIMD]\n');
      expect(stdout).to.match(/^op check: 64×64 matmul on wasm: max \|tf − js\| = \d\.\d\de-\d+ \(ok\)\n/);
    });

    it('--backend wasm --threads 1 runs the single-threaded SIMD build', async function () {
      const { code, stderr } = await runCliProcess(['backend', '--backend', 'wasm', '--threads', '1']);
      expect(code, stderr).to.equal(0);
      expect(stderr).to.equal('backend: wasm [1 thread, SIMD]\n');
    });

    it('--backend wasm falls back to one thread, and says why, when the thread shim fails (here: no temp folder)', async function () {
      if (Math.min(availableParallelism(), 8) < 2) this.skip();
      const { code, stderr } = await runCliProcess(['backend', '--backend', 'wasm'], { FLASHDEPTH_WASM_THREADS: '', TMPDIR: '/nonexistent-flashdepth-tmp' });
      expect(code, stderr).to.equal(0);
      expect(stderr).to.match(/^backend: wasm \[1 thread, SIMD, thread shim failed: ENOENT: no such file or directory, mkdtemp '\/nonexistent-flashdepth-tmp\/.*\]\n$/);
      expect(stderr.split('\n')).to.have.length(2);
    });

    it('a named backend that cannot run is a BackendError naming it and why (exit 4), not a fallback', async function () {
      const { code, stdout, stderr } = await runCliProcess(['backend', '--backend', 'tensorflow']);
      expect(code).to.equal(4);
      expect(stdout).to.equal('');
      expect(stderr).to.equal(`error: --backend tensorflow: ${NOT_INSTALLED}\n`);
    });

    it('auto picks webgpu or wasm here and gives the reason for each backend it skipped', async function () {
      const { code, stderr } = await runCliProcess(['backend', '--backend', 'auto']);
      expect(code, stderr).to.equal(0);
      const lines = stderr.split('\n').filter((l) => l.startsWith('backend: '));
      expect(lines).to.have.length(1);
      const line = lines[0]!;
      expect(line).to.match(/^backend: (webgpu|wasm) \[/);
      expect(line).to.include(`; skipped tensorflow: ${NOT_INSTALLED}`);
      if (line.startsWith('backend: wasm')) expect(line).to.match(/; skipped webgpu: \S.*$/);
    });
  });

  describe('in process', function () {
    before(async function () {
      await useTestBackend();
    });

    it('selectBackend rejects a name it does not know, listing the valid ones', async function () {
      let caught: unknown;
      try {
        await selectBackend('gpu' as BackendName);
      } catch (err) {
        caught = err;
      }
      expect(caught).to.be.instanceOf(BackendError);
      expect((caught as Error).message).to.equal('--backend gpu: unknown backend; expected one of auto, tensorflow, webgpu, wasm, cpu');
    });

    it('re-selecting the running backend returns the same info without re-initialising', async function () {
      const info = activeBackend();
      expect(info, 'useTestBackend selected a backend').to.not.equal(undefined);
      expect(await selectBackend(info!.name, { report: false })).to.equal(info);
      expect(tf.getBackend()).to.equal(info!.name);
    });

    it('the test backend (wasm) really runs the thread shim where there are 2+ cores', function () {
      const info = activeBackend()!;
      if (info.name !== 'wasm') this.skip();
      const expected = wantedWasmThreads(undefined);
      expect(info.threads).to.equal(expected);
      expect(info.features).to.deep.equal(expected > 1 ? ['simd', 'threads'] : ['simd']);
    });

    it('the matmul check matches the JS dot product and leaks no tensors', async function () {
      const before = tf.memory().numTensors;
      const check = await checkMatmul(64);
      expect(tf.memory().numTensors).to.equal(before);
      expect(check.maxAbsError).to.be.at.most(1e-4 * check.maxAbsRef);
      expect(check.maxAbsRef).to.be.greaterThan(1);
    });

    it('wasm thread count: option, then FLASHDEPTH_WASM_THREADS, capped at 8; bad values are ConfigErrors', function () {
      expect(wantedWasmThreads(3, {})).to.equal(3);
      expect(wantedWasmThreads(32, {})).to.equal(8);
      expect(wantedWasmThreads(undefined, { FLASHDEPTH_WASM_THREADS: '2' })).to.equal(2);
      expect(wantedWasmThreads(undefined, {})).to.equal(Math.min(availableParallelism(), 8));
      expect(() => wantedWasmThreads(0, {})).to.throw(ConfigError, 'Expected positive integer for --threads but received 0 (number)');
      expect(() => wantedWasmThreads(undefined, { FLASHDEPTH_WASM_THREADS: 'many' })).to.throw(
        ConfigError,
        'FLASHDEPTH_WASM_THREADS=many: expected a positive integer',
      );
    });
  });
});

describe('backend: GPU error reporting', () => {
  it('turns a recorded device error into one BackendError, then clears it', async () => {
    const { assertDeviceHealthy } = await import('../../src/backend/index.js');
    const { recordDeviceError } = await import('../../src/backend/webgpu.js');
    expect(() => assertDeviceHealthy('frame 3')).to.not.throw();
    recordDeviceError('Invalid Buffer (unlabeled) is invalid due to a previous error');
    recordDeviceError('a second error (only the first is reported)');
    expect(() => assertDeviceHealthy('frame 3')).to.throw(
      /^webgpu: the GPU reported an error during frame 3, so its results are invalid \(out of GPU memory\? try a smaller batch or resolution\): Invalid Buffer \(unlabeled\) is invalid due to a previous error$/,
    );
    expect(() => assertDeviceHealthy('frame 4')).to.not.throw();
  });
});
