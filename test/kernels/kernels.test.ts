/**
 * Custom WebGPU kernels against tfjs' stock ops on random inputs, on a software Vulkan device (Mesa lavapipe, fetched
 * by .ci/fetch-lavapipe.sh). The GPU half runs in a child process (test/kernels/kernel-check.ts) so the rest of the
 * suite keeps its wasm backend; it is skipped where lavapipe is absent, except under CI=true.
 * The switch itself (src/kernels/index.ts) is tested here on wasm.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { ConfigError } from '../../src/errors.js';
import { kernelMode, setKernelMode, useFusedKernels, REGISTERED_KERNELS, type KernelMode } from '../../src/kernels/index.js';
import { useTestBackend } from '../helpers/backend.js';
import { REPO_ROOT } from '../helpers/fixtures.js';
import { MIXED_RELATIVE_BOUND } from './bounds.js';
import type { BindGroupCacheResult, KernelCheckResult, KernelCheckSkip, PackCheckResult, ParityResult, FirstUseReplayResult, ReplayCheckResult, UploadCheckResult, WeightPackResult } from './kernel-check.js';

const LAVAPIPE = process.env['FLASHDEPTH_LAVAPIPE'] ?? join(REPO_ROOT, '.cache', 'lavapipe');
const ICD = join(LAVAPIPE, 'usr', 'share', 'vulkan', 'icd.d', 'lvp_icd.json');
const CHECK = join(REPO_ROOT, 'dist', 'test', 'kernels', 'kernel-check.js');

/** fp32 with a different summation order: the bound of expectClose (1e-4) tightened tenfold. */
const RELATIVE_BOUND = 1e-5;

/**
 * The custom kernels a mixed case dispatches: the attention kernel alone; a linear or conv packs its weight (first
 * use) then multiplies; the attention branch also runs the self-attention kernel between its two products; the
 * chained ViT blocks run both, then the final norm (FlashDepthLayerNorm).
 */
function expectedMixedKernels(name: string): string[] {
  if (name.startsWith('mixed attention')) return ['FlashDepthTensorCoreAttention'];
  if (name.startsWith('mixed ViT blocks')) return ['FlashDepthPackF16', 'FlashDepthTensorCoreMatMul', 'FlashDepthTensorCoreSelfAttention', 'FlashDepthLayerNorm'];
  return ['FlashDepthPackF16', 'FlashDepthTensorCoreMatMul', ...(name.startsWith('mixed self-attention') ? ['FlashDepthTensorCoreSelfAttention'] : [])];
}

/** The models issue's parity bound against the PyTorch fixtures. */
const PARITY_BOUND = 1e-4;

/** Mixed precision against the fp32 fixtures: the reference's own bf16-vs-fp32 difference (spec §9). */
const MIXED_PARITY_BOUND = 1e-2;

type CheckLine = KernelCheckResult | KernelCheckSkip | ParityResult | PackCheckResult | UploadCheckResult | BindGroupCacheResult | WeightPackResult | ReplayCheckResult | FirstUseReplayResult;

function runKernelCheck(args: string[] = [], timeoutMs = 150_000): Promise<CheckLine[]> {
  const lib = join(LAVAPIPE, 'usr', 'lib', 'x86_64-linux-gnu');
  const env: NodeJS.ProcessEnv = { ...process.env, VK_ICD_FILENAMES: ICD, LD_LIBRARY_PATH: [lib, process.env['LD_LIBRARY_PATH']].filter(Boolean).join(':'), XDG_RUNTIME_DIR: '/tmp', NO_COLOR: '1' };
  delete env['FLASHDEPTH_KERNELS'];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CHECK, ...args], { cwd: REPO_ROOT, env, timeout: timeoutMs, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kernel-check failed: ${err.message}\n${stderr}`));
      else resolve(stdout.trim().split('\n').map((line) => JSON.parse(line) as CheckLine));
    });
  });
}

describe('kernels: custom WebGPU kernels vs stock tfjs ops on lavapipe', function () {
  this.timeout(180_000);
  let results: KernelCheckResult[] = [];
  let parity: ParityResult[] = [];
  let mixed: KernelCheckResult[] = [];
  let mixedSkipped: KernelCheckSkip[] = [];
  let pack: PackCheckResult[] = [];
  let uploads: UploadCheckResult[] = [];
  let bindGroups: BindGroupCacheResult[] = [];
  let weightPacks: WeightPackResult[] = [];

  before(async function () {
    if (!existsSync(ICD)) {
      if (process.env['CI'] === 'true') throw new Error(`missing ${ICD} (CI=true: run .ci/fetch-lavapipe.sh first)`);
      this.skip();
    }
    const lines = await runKernelCheck();
    results = lines.filter((r): r is KernelCheckResult => 'maxAbsError' in r && r.precision === 'fp32');
    mixed = lines.filter((r): r is KernelCheckResult => 'maxAbsError' in r && r.precision === 'mixed');
    mixedSkipped = lines.filter((r): r is KernelCheckSkip => 'skipped' in r);
    parity = lines.filter((r): r is ParityResult => 'relError' in r);
    pack = lines.filter((r): r is PackCheckResult => 'packError' in r && r.name.startsWith('f16 head planes'));
    uploads = lines.filter((r): r is UploadCheckResult => 'uploadMismatches' in r);
    bindGroups = lines.filter((r): r is BindGroupCacheResult => r.name === 'bind group cache');
    weightPacks = lines.filter((r): r is WeightPackResult => r.name === 'f16 weight pack and cache');
  });

  const family = (prefix: string, kernel: string) => {
    it(`${prefix}: every case runs ${kernel}, matches the stock ops within ${RELATIVE_BOUND}·max|ref| and leaks nothing`, () => {
      const cases = results.filter((r) => r.name.startsWith(prefix));
      expect(cases.length, `cases named "${prefix}…"`).to.be.greaterThan(0);
      for (const r of cases) {
        expect(r.kernels, r.name).to.deep.equal([kernel]);
        expect(r.maxAbsError, r.name).to.be.at.most(RELATIVE_BOUND * r.maxAbsRef);
        expect(r.maxAbsRef, r.name).to.be.greaterThan(0);
        expect(r.leaked, r.name).to.equal(0);
      }
    });
  };
  family('flash attention', 'FlashDepthFlashAttention');
  family('layerNorm', 'FlashDepthLayerNorm');
  family('gelu', 'FlashDepthGelu');
  family('addScaled', 'FlashDepthScaleAdd');
  family('resize', 'FlashDepthResizeAlignCorners');
  family('mamba', 'FlashDepthMambaScan');
  family('pointwise conv', 'FlashDepthPointwiseConv');

  it(`mixed precision: each of the 43 tensor-core matmul/conv, 23 attention, 3 attention-branch and 2 chained-ViT cases matches the fp32 stock ops within ${MIXED_RELATIVE_BOUND}·max|ref|, or is skipped because the device has no subgroup matrices`, () => {
    expect(mixed.length + mixedSkipped.length).to.equal(71);
    for (const s of mixedSkipped) expect(s.skipped, s.name).to.match(/no f16 subgroup matrices/);
    for (const r of mixed) {
      expect(r.kernels, r.name).to.deep.equal(expectedMixedKernels(r.name));
      expect(r.maxAbsError, r.name).to.be.at.most(MIXED_RELATIVE_BOUND * r.maxAbsRef);
      expect(r.leaked, r.name).to.equal(0);
    }
  });

  it('packs a weight into zero-padded f16 once, reuses the copy for the same data, repacks after new values, frees stale copies and a disposed weight\'s copy', () => {
    expect(weightPacks, 'weight pack line').to.have.length(1);
    const w = weightPacks[0]!;
    expect(w.halves, w.name).to.equal(64 * 64); // [52, 20] padded to whole 32-deep slices and at least 64 columns
    expect(w.maxAbsRef, w.name).to.be.greaterThan(1);
    expect(w.packError, w.name).to.be.at.most(2 ** -11 * w.maxAbsRef);
    expect(w.nonzeroPadding, w.name).to.equal(0);
    expect([w.reused, w.viewReused, w.repackedAfterAssign, w.staleFreed, w.freedWithWeight], w.name).to.deep.equal([true, true, true, true, true]);
    expect(w.leaked, w.name).to.equal(0);
  });

  it('packs q, k, v into f16 head planes: every half within f16 rounding (2^-11 relative) of its source, padding rows zero, nothing leaked', () => {
    expect(pack, 'pack check line').to.have.length(1);
    const p = pack[0]!;
    expect(p.halves, p.name).to.equal(3 * 2 * 3 * 128 * 32); // Q, K, V planes of 2×3 heads, 70 rows padded to 128
    expect(p.maxAbsRef, p.name).to.be.greaterThan(1);
    expect(p.packError, p.name).to.be.at.most(2 ** -11 * p.maxAbsRef);
    expect(p.leaked, p.name).to.equal(0);
  });

  it('uploads host values (queue writes into pooled buffers) exactly: float32, int32 and bool', () => {
    expect(uploads).to.have.length(1);
    expect(uploads[0]!.checked).to.equal(1001 + 257 + 99);
    expect(uploads[0]!.uploadMismatches).to.equal(0);
  });

  it('serves repeated dispatches from the bind-group cache (every case above ran with it, within its bound)', () => {
    expect(bindGroups).to.have.length(1);
    const { created, reused } = bindGroups[0]!;
    expect(created).to.be.greaterThan(0);
    // The parity cases stream 3 frames of two models in two kernel modes: later frames repeat earlier dispatches.
    expect(reused).to.be.greaterThan(parity.length > 0 ? 500 : 0);
  });

  it('checks all 35 cases', () => {
    expect(results.map((r) => r.name)).to.have.length(35);
  });

  it(`FlashDepth-S and Full (reduced) fixtures on webgpu: head_prerelu within ${PARITY_BOUND}·max|ref| of PyTorch with the kernels, as without`, function () {
    if (parity.length === 0) {
      if (process.env['CI'] === 'true') throw new Error('missing parity fixtures (CI=true: a missing fixture is a failure)');
      this.skip();
    }
    expect(parity).to.have.length(2);
    for (const p of parity) {
      expect(p.kernels, p.name).to.deep.equal(['FlashDepthFlashAttention', 'FlashDepthGelu', 'FlashDepthLayerNorm', 'FlashDepthMambaScan', 'FlashDepthPointwiseConv', 'FlashDepthResizeAlignCorners', 'FlashDepthScaleAdd']);
      expect(p.relError.fused, `${p.name} (fused)`).to.be.at.most(PARITY_BOUND);
      expect(p.relError.stock, `${p.name} (stock)`).to.be.at.most(PARITY_BOUND);
      console.log(`      ${p.name}: rel error fused ${p.relError.fused.toExponential(2)}, stock ${p.relError.stock.toExponential(2)}`);
    }
  });
});

describe('kernels: tensor-core programs with subgroup matrices emulated in plain WGSL, on lavapipe', function () {
  // Lavapipe has no subgroup matrices: test/helpers/subgroup-matrix-emulation.ts stands in for them (each invocation
  // computes whole 16×16 products), so the tensor-core matmul, conv and attention programs — their indexing, padding,
  // masking, staging and barriers — are checked against the fp32 stock ops here too, not only on the GPU host.
  // One kernel-check run of every case (5.5 min on an idle 2-core machine in session 18, 41 cases and the parity).
  this.timeout(960_000);
  let emulated: Array<KernelCheckResult | KernelCheckSkip> = [];
  let mixedParity: ParityResult[] = [];

  before(async function () {
    if (!existsSync(ICD)) {
      if (process.env['CI'] === 'true') throw new Error(`missing ${ICD} (CI=true: run .ci/fetch-lavapipe.sh first)`);
      this.skip();
    }
    const lines = await runKernelCheck(['--emulate-subgroup-matrices', '--mixed-parity'], 900_000);
    emulated = lines.filter((r): r is KernelCheckResult | KernelCheckSkip => !('relError' in r)) as Array<KernelCheckResult | KernelCheckSkip>;
    mixedParity = lines.filter((r): r is ParityResult => 'relError' in r);
  });

  it(`FlashDepth-S fixture in mixed precision (the attention branch chained in f16): within ${MIXED_PARITY_BOUND}·max|ref| of PyTorch fp32`, function () {
    if (mixedParity.length === 0) {
      if (process.env['CI'] === 'true') throw new Error('missing parity fixtures (CI=true: a missing fixture is a failure)');
      this.skip();
    }
    const p = mixedParity[0]!;
    expect(p.kernels, p.name).to.include.members(['FlashDepthTensorCoreSelfAttention', 'FlashDepthTensorCoreMatMul']);
    expect(p.kernels, p.name).to.not.include('FlashDepthTensorCoreAttention');
    expect(p.relError.fused, p.name).to.be.at.most(MIXED_PARITY_BOUND);
    expect(p.relError.stock, p.name).to.be.at.most(PARITY_BOUND);
  });

  it(`runs each of the 43 matmul/conv, 23 attention, 3 attention-branch and 2 chained-ViT cases and matches the fp32 stock ops within ${MIXED_RELATIVE_BOUND}·max|ref|, leaking nothing`, () => {
    expect(emulated.map((r) => r.name)).to.have.length(71);
    for (const r of emulated) {
      expect('maxAbsError' in r, `${r.name} ran`).to.equal(true);
      const c = r as KernelCheckResult;
      expect(c.kernels, c.name).to.deep.equal(expectedMixedKernels(c.name));
      expect(c.maxAbsRef, c.name).to.be.greaterThan(0);
      expect(c.maxAbsError, c.name).to.be.at.most(MIXED_RELATIVE_BOUND * c.maxAbsRef);
      expect(c.leaked, c.name).to.equal(0);
    }
  });
});

describe('kernels: recorded-frame replay vs tfjs, on lavapipe', function () {
  // src/infer/streaming.ts: after 2 warm-up frames a frame is recorded and the later ones replay its GPU commands
  // without tfjs. Each depth must be the one the same model gives frame by frame through tfjs; a replay that skipped
  // the Mamba state copy, or reused a uniform buffer, is off by O(1) from the first replayed frame.
  this.timeout(300_000);
  let replays: ReplayCheckResult[] = [];
  let firstUse: FirstUseReplayResult | undefined;

  before(async function () {
    if (!existsSync(ICD)) {
      if (process.env['CI'] === 'true') throw new Error(`missing ${ICD} (CI=true: run .ci/fetch-lavapipe.sh first)`);
      this.skip();
    }
    const lines = (await runKernelCheck(['--replay'], 280_000)) as (ReplayCheckResult | FirstUseReplayResult)[];
    replays = lines.filter((r): r is ReplayCheckResult => 'stats' in r);
    firstUse = lines.find((r): r is FirstUseReplayResult => !('stats' in r));
  });

  it(`FlashDepth-S (also with the Mamba scan in time chunks) and Full: 2 tfjs frames, 1 recorded, the rest replayed, depths within ${PARITY_BOUND}·max|ref| of tfjs`, () => {
    expect(replays.map((r) => r.name)).to.deep.equal(['frame replay FlashDepth-S (random weights)', 'frame replay FlashDepth-S, Mamba scan in time chunks (random weights)',
      'frame replay FlashDepth-Full (reduced teacher) (random weights)']);
    for (const r of replays) {
      expect(r.stats, r.name).to.include({ tfjsFrames: 2, recordedFrames: 1, replayedFrames: r.frames - 3, unavailable: null });
      expect(r.stats.dispatchesPerFrame, r.name).to.be.greaterThan(100);
      expect(r.maxAbsRef, r.name).to.be.greaterThan(0);
      expect(r.maxAbsDiff, r.name).to.be.at.most(PARITY_BOUND * r.maxAbsRef);
    }
  });

  it('a reset and another frame size record again (and replay), with the same depths as tfjs', () => {
    for (const r of replays) {
      expect(r.recordedAfterResize, r.name).to.equal(2);
      expect(r.replayedAfterResize, r.name).to.equal(r.frames - 3 + 1);
      expect(r.maxAbsDiffAfterResize, r.name).to.be.at.most(PARITY_BOUND * r.maxAbsRef);
    }
  });

  it('a tensor first uploaded while a frame records goes back to the pool when disposed after it, and the frame computed with it', () => {
    expect(firstUse?.name).to.equal('frame replay: a tensor first uploaded while recording, disposed after');
    expect(firstUse!.error).to.equal(null);
    expect(firstUse!.maxAbsErr).to.equal(0);
    expect(firstUse!.leakedTensors).to.equal(0);
  });

  it('leaves no tensor and no pinned buffer once the predictor is disposed', () => {
    for (const r of replays) {
      expect(r.leakedTensors, r.name).to.equal(0);
      expect(r.pinnedAfterDispose, r.name).to.equal(0);
    }
  });
});

describe('kernels: the switch', () => {
  let saved: KernelMode;
  before(async () => {
    await useTestBackend();
    saved = kernelMode();
  });
  after(() => setKernelMode(saved));

  it('registers the custom kernels and never uses them off webgpu', () => {
    expect(REGISTERED_KERNELS).to.deep.equal(['FlashDepthFlashAttention', 'FlashDepthLayerNorm', 'FlashDepthGelu', 'FlashDepthScaleAdd', 'FlashDepthMambaScan', 'FlashDepthTensorCoreAttention', 'FlashDepthPackF16', 'FlashDepthTensorCoreMatMul', 'FlashDepthResizeAlignCorners', 'FlashDepthPointwiseConv', 'FlashDepthTensorCoreSelfAttention']);
    setKernelMode('fused');
    expect(useFusedKernels()).to.equal(false); // the test backend is wasm (or cpu)
  });

  it('rejects an unknown mode with the valid choices', () => {
    expect(() => setKernelMode('fast' as KernelMode)).to.throw(ConfigError, 'Expected one of fused, stock for kernel mode but received "fast"');
  });
});
