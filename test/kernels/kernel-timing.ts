/**
 * GPU-host exploration tool (not part of `npm test`): times the stock fp32 matMul against the tensor-core matMul in
 * several workgroup layouts, and the fp32 flash-attention kernel in several block shapes against the tensor-core
 * attention in several layouts, and the Mamba2 frame step (FlashDepthMambaScan, its four dispatches; its scan program
 * alone by tokens per step and rows per workgroup) at the model's shapes; JSON lines.
 * Usage: node dist/test/kernels/kernel-timing.js [--attention-only | --matmul-only | --mamba-only | --matmul-ablate | --matmul-epilogue | --matmul-sweep | --occupancy]
 * (matmul and attention rows: wall time per call `ms`, and `gpuMs`, GPU time per call from replayed back-to-back
 * calls — the one to trust below ~1 ms per call.)
 * (`--matmul-ablate`: the tensor-core matmul with one stage left out at a time, to place its time; `--matmul-epilogue`:
 * the Full model's linear layers with their epilogues, whole, without the epilogue, with one slice; `--matmul-sweep`:
 * its layouts and slice knobs on the model's shapes, GPU time from timestamp queries, output compared with the
 * default layout's; `--occupancy`: GPU time against the number of workgroups, whose steps show how many workgroups
 * of the matmul and attention share a multiprocessor.)
 */
import * as tf from '@tensorflow/tfjs-core';
import { releaseBackend, selectBackend } from '../../src/backend/index.js';
import { mixedMatMul, setPrecision, tensorCoresAvailable } from '../../src/kernels/index.js';
import { linear } from '../../src/models/ops.js';
import { flashAttention } from '../../src/kernels/flash-attention.js';
import {
  DEFAULT_TC_MATMUL_LAYOUT, PackF16Program, TensorCoreMatMulProgram, packF16Uniforms, tcMatMulUniforms,
  tcMatMulBlocks, tcMatMulWorkgroupBytes, tensorCoreMatMulLayout, WAVE_FITTED_TC_MATMUL_LAYOUTS, withMoreSubgroups, type MatMulEpilogue, type PackedShape, type TensorCoreMatMulLayout,
} from '../../src/kernels/tc-matmul_webgpu.js';
import { TC_MATMUL, packedA, packedB, packedWeight } from '../../src/kernels/tc-matmul.js';
import { TC_ATTENTION } from '../../src/kernels/tc-attention.js';
import { tcAttentionWorkgroupBytes, type TensorCoreAttentionLayout } from '../../src/kernels/tc-attention_webgpu.js';
import { matMulEpilogueIo, parseAttentionLayout } from '../../src/kernels/mode.js';
import { emulateSubgroupMatrices, webgpuCapabilities } from '../../src/backend/webgpu.js';
import { emulateSubgroupMatrices as emulateSubgroupMatrixBuiltins } from '../helpers/subgroup-matrix-emulation.js';
import { fusedMambaScan, runMambaScan, type WebGPUBackendWithDispose } from '../../src/kernels/mamba-scan.js';
import { MambaConvProgram, scanLanes } from '../../src/kernels/mamba-scan_webgpu.js';
import type { WebGPUBackendLike } from '../../src/kernels/program.js';
import { RecordedFrame, ReplayUnsupported } from '../../src/backend/webgpu-replay.js';

async function timeIt(run: () => tf.Tensor, reps: number): Promise<number> {
  const warm = run();
  await warm.data();
  warm.dispose();
  const t0 = performance.now();
  let last: tf.Tensor | undefined;
  for (let i = 0; i < reps; i++) {
    last?.dispose();
    last = run();
  }
  // One element read back: the queue drains in order, and a large download would be timed with the kernel.
  const first = tf.slice(tf.reshape(last!, [-1]), 0, 1);
  await first.data();
  tf.dispose([first, last!]);
  return (performance.now() - t0) / reps;
}

/**
 * The tensor-core matmul with one stage left out or cut short, to place its time without hardware counters
 * (HOPPER.md: time variants that leave a stage out, take differences). Results are wrong by design; each rewrite
 * keeps the code and makes it skip at run time (a uniform no dispatch sets), so the compiler cannot drop more.
 */
const ABLATIONS = {
  base: [],
  noGlobalLoads: [['if (more) {\n            k8 =', 'if (more && uniforms.stride == 7u) {\n            k8 =']],
  noStaging: [['if (more) {\n            buf =', 'if (more && uniforms.stride == 7u) {\n            buf =']],
  noLoadsNoStaging: [['if (more) {\n            k8 =', 'if (more && uniforms.stride == 7u) {\n            k8 ='], ['if (more) {\n            buf =', 'if (more && uniforms.stride == 7u) {\n            buf =']],
  noMma: [[/acc(\d)_(\d) = subgroupMatrixMultiplyAccumulate\([^;]*;/g, '']],
  noLoopBarrier: [[/(\n          \}\n)          workgroupBarrier\(\);\n        \}/, '$1        }']],
  oneSlice: [[/let slices = uniforms\.kp \/ (\d+)u;/, 'let slices = select(uniforms.kp / $1u, 1u, uniforms.stride == 1u);']],
} as const satisfies Record<string, readonly (readonly [string | RegExp, string])[]>;

/** The epilogue's per-tile writes skipped at run time (the accumulators still leave through the scratch). */
const NO_EPILOGUE = [['if (row < uniforms.m && c < uniforms.n) {', 'if (row < uniforms.m && c < uniforms.n && uniforms.stride == 7u) {']] as const;

/** `--matmul-epilogue`'s variants: where a product's time goes between its slices and its fixed cost per block. */
const EPILOGUE_ABLATIONS = {
  base: [],
  noEpilogue: NO_EPILOGUE,
  oneSlice: ABLATIONS.oneSlice,
  oneSliceNoEpilogue: [...ABLATIONS.oneSlice, ...NO_EPILOGUE],
} as const satisfies Record<string, readonly (readonly [string | RegExp, string])[]>;

class AblatedMatMulProgram extends TensorCoreMatMulProgram {
  constructor(private readonly ablation: string, private readonly rewrites: readonly (readonly [string | RegExp, string])[], ...args: ConstructorParameters<typeof TensorCoreMatMulProgram>) {
    super(...args);
    this.shaderKey += `_ablate_${ablation}`;
  }

  override getUserCode(): string {
    let code = super.getUserCode();
    for (const [from, to] of this.rewrites) {
      const next = code.replace(from, to);
      if (next === code) throw new Error(`ablation ${this.ablation}: pattern ${String(from)} not found in the generated WGSL`);
      code = next;
    }
    return code;
  }
}

const layoutName = (l: TensorCoreMatMulLayout): string =>
  `sg${l.subgroups.rows}x${l.subgroups.cols}_t${l.tiles.rows}x${l.tiles.cols}_k${l.sliceK ?? 32}_b${l.buffers ?? 2}${(l.splitK ?? 1) > 1 ? `_split${l.splitK}` : ''}`;

/** One packed product C = A·B (no bias) with `layout`, A and B packed once. */
interface PackedProduct {
  /** The product with `layout`. */
  run: (layout: TensorCoreMatMulLayout) => tf.Tensor;
  /** Any matmul program on the packed operands (the ablations), with its epilogue's inputs and output type. */
  runProgram: (program: TensorCoreMatMulProgram, layout: TensorCoreMatMulLayout, extras?: tf.Tensor[], dtype?: 'float32' | 'int32') => tf.Tensor;
  aShape: PackedShape;
  bShape: PackedShape;
  /** The stock fp32 product. */
  reference: () => tf.Tensor;
  dispose: () => void;
}

function packedProduct(m: number, k: number, n: number): PackedProduct {
  const backend = tf.backend() as unknown as WebGPUBackendLike;
  const x = tf.randomNormal([m, k], 0, 1, 'float32', 1) as tf.Tensor2D;
  const w = tf.randomNormal([k, n], 0, 0.05, 'float32', 2) as tf.Tensor2D;
  const aShape = packedA(m, k);
  const bShape = packedB(k, n);
  const a16 = tf.engine().makeTensorFromTensorInfo(backend.runWebGPUProgram(new PackF16Program(aShape), [x], 'int32', packF16Uniforms(aShape)));
  const b16 = packedWeight(w);
  const runProgram = (program: TensorCoreMatMulProgram, layout: TensorCoreMatMulLayout, extras: tf.Tensor[] = [], dtype: 'float32' | 'int32' = 'float32') =>
    tf.engine().makeTensorFromTensorInfo(backend.runWebGPUProgram(program, [a16, b16, ...extras], dtype, tcMatMulUniforms(m, n, k, aShape, bShape, layout)));
  return {
    // Through the kernel (A already packed): split-K layouts take their reduction dispatch too.
    run: (layout) => tf.engine().runKernel(TC_MATMUL, { a: a16, b16 }, { n, epilogue: 'none', layout, packedA: { m, k } } as unknown as tf.NamedAttrMap) as tf.Tensor,
    runProgram,
    aShape,
    bShape,
    reference: () => tf.matMul(x, w),
    dispose: () => tf.dispose([x, w, a16]),
  };
}

/** Times every ablation of the matmul on one shape (A packed once, outside the timing). */
async function timeAblations(name: string, m: number, k: number, n: number): Promise<void> {
  const product = packedProduct(m, k, n);
  const layout = { ...tensorCoreMatMulLayout(m, n, k, webgpuCapabilities().maxWorkgroupStorageBytes), convertA: false, splitK: 1 };
  const row: Record<string, unknown> = { kind: 'matmul-ablation', name, m, k, n, layout: layoutName(layout) };
  for (const ablation of Object.keys(ABLATIONS) as (keyof typeof ABLATIONS)[]) {
    const run = () => product.runProgram(new AblatedMatMulProgram(ablation, ABLATIONS[ablation], m, n, product.aShape, false, 'none', layout, 'packed'), layout);
    const ms = await timeIt(run, m * n * k > 1e10 ? 20 : 50);
    row[ablation] = { ms: +ms.toFixed(3), tflops: +((2 * m * n * k) / ms / 1e9).toFixed(1) };
  }
  console.log(JSON.stringify(row));
  product.dispose();
}

/**
 * The Full model's linear layers with their own bias, epilogue and output (qkv's head planes as a packed f16 output),
 * in the layout the model takes: GPU time per call (replayed) whole, without the epilogue's per-tile writes, with one
 * slice of K, and both; with the residual prefetched where the epilogue reads one. The differences place a product's
 * time between its slices and its fixed cost per block.
 */
async function timeEpilogues(emulated: boolean): Promise<void> {
  const limit = webgpuCapabilities().maxWorkgroupStorageBytes;
  // Emulated (lavapipe): small shapes, a check that every variant's WGSL compiles and runs, not a timing.
  const shapes: [string, number, number, number, MatMulEpilogue, 'f32' | 'packedF16'][] = emulated
    ? [['small gelu', 200, 96, 192, 'gelu', 'packedF16'], ['small scaleAdd', 200, 96, 192, 'scaleAdd', 'f32']] : [
    ['S qkv 2K', 11973, 384, 1152, 'none', 'packedF16'], ['S proj 2K', 11973, 384, 384, 'scaleAdd', 'f32'],
    ['S fc1 2K', 11973, 384, 1536, 'gelu', 'packedF16'], ['S fc2 2K', 11973, 1536, 384, 'scaleAdd', 'f32'],
    ['T qkv', 2171, 1024, 3072, 'none', 'packedF16'], ['T proj', 2171, 1024, 1024, 'scaleAdd', 'f32'],
    ['T fc1', 2171, 1024, 4096, 'gelu', 'packedF16'], ['T fc2', 2171, 4096, 1024, 'scaleAdd', 'f32'],
  ];
  for (const [name, m, k, n, epilogue, output] of shapes) {
    const product = packedProduct(m, k, n);
    const extras = [tf.randomNormal([n], 0, 1, 'float32', 3), ...(epilogue === 'scaleAdd' ? [tf.randomNormal([m, n], 0, 1, 'float32', 4), tf.randomNormal([n], 0, 0.5, 'float32', 5)] : [])];
    // FLASHDEPTH_TC_MATMUL_EPILOGUE_IO as the models take it (these programs are built here, not by the kernel); the
    // residual prefetch (the models' default) only in its own variant.
    const base: TensorCoreMatMulLayout = { ...tensorCoreMatMulLayout(m, n, k, limit), epilogueSync: 'subgroup', convertA: false, epilogueIo: matMulEpilogueIo(), residualPrefetch: false };
    const variants: [string, TensorCoreMatMulLayout, readonly (readonly [string | RegExp, string])[]][] = Object.entries(EPILOGUE_ABLATIONS)
      .map(([ablation, rewrites]) => [ablation, base, rewrites]);
    if (epilogue === 'scaleAdd') variants.push(['prefetch', { ...base, residualPrefetch: true }, []]);
    // The other epilogue I/O form, and the block FLASHDEPTH_TC_MATMUL_WAVES=fitAll takes where it differs.
    variants.push([base.epilogueIo === 'scalar' ? 'vec4Io' : 'scalarIo', { ...base, epilogueIo: base.epilogueIo === 'scalar' ? 'vec4' : 'scalar' }, []]);
    const fitAll = tensorCoreMatMulLayout(m, n, k, limit, undefined, undefined, 'fitAll');
    if (layoutName(fitAll) !== layoutName(tensorCoreMatMulLayout(m, n, k, limit))) variants.push([`fitAll ${layoutName(fitAll)}`, { ...base, ...fitAll, epilogueSync: 'subgroup', convertA: false }, []]);
    const row: Record<string, unknown> = { kind: 'matmul-epilogue', name, m, k, n, epilogue, output, layout: layoutName(base) };
    for (const [ablation, layout, rewrites] of variants) {
      const program = () => new AblatedMatMulProgram(ablation, rewrites, m, n, product.aShape, true, epilogue, layout, 'packed', output);
      // 48 calls per replay: ~5–20 ms of GPU work, so that the clock stays up between the timed replays.
      const ms = await replayedGpuMs(() => product.runProgram(program(), layout, extras, output === 'f32' ? 'float32' : 'int32'), 48);
      row[ablation] = ms === null ? null : +ms.toFixed(4);
    }
    console.log(JSON.stringify(row));
    tf.dispose(extras);
    product.dispose();
  }
}

/** Milliseconds of untimed replays before `replayedGpuMs` times: enough for the GPU's clock to come up. */
const WARM_MS = 300;

/**
 * GPU milliseconds per call of `run` with the GPU kept busy: `calls` calls recorded as one frame (src/backend/
 * webgpu-replay.ts) and replayed `frames` times back to back, each dispatch between timestamp queries (the median
 * per dispatch over the replays); the sum of a call's dispatches (e.g. the attention's pack and product). Unlike the
 * wall time per call (`timeIt`), which at ViT-L's sizes measures the host and a GPU clocked down between dispatches
 * (session 11: L's attention 0.4–1.1 ms per call there, 0.13 ms in the model's replayed profile). Null where the
 * calls cannot be recorded or the device has no timestamp queries.
 */
async function replayedGpuMs(run: () => tf.Tensor, calls = 8, frames = 5): Promise<number | null> {
  let recorded: ReturnType<typeof RecordedFrame.record>;
  try {
    recorded = RecordedFrame.record({ inputs: [], carried: () => [], run: () => Array.from({ length: calls }, run) });
  } catch (e) {
    if (e instanceof ReplayUnsupported) return null;
    throw e;
  }
  tf.dispose(recorded.outputs);
  if (!recorded.frame) return null;
  try {
    // Untimed replays first, for at least WARM_MS: the GPU idles at 345 MHz and takes a while to clock up. Two
    // replays (sessions 18–21) were not enough: in lease 22A the 2K student's fc1 timed 0.65 ms per call here and
    // 0.14 in the model's profile (lease 17A's sweep saw the same: a row's first variant far slower than later ones).
    const warmStart = performance.now();
    do await recorded.frame.timeDispatches([], 2);
    while (performance.now() - warmStart < WARM_MS);
    const { dispatches } = await recorded.frame.timeDispatches([], frames);
    return dispatches.reduce((sum, d) => sum + d.ms, 0) / calls;
  } catch (e) {
    if (e instanceof ReplayUnsupported) return null;
    throw e;
  } finally {
    recorded.frame.dispose();
  }
}

/** GPU milliseconds per call of `run` (timestamp queries; each dispatch timed alone), after one untimed call. */
async function gpuMs(run: () => tf.Tensor, reps: number): Promise<number> {
  const warm = run();
  await warm.data();
  warm.dispose();
  const timing = await tf.time(() => {
    for (let i = 0; i < reps; i++) run().dispose();
  });
  return (timing.kernelMs as number) / reps;
}

/** Candidate layouts of the sweep: block shape, subgroup tiles, slice depth, buffering (those that fit the device). */
const SWEEP_LAYOUTS: TensorCoreMatMulLayout[] = [
  { subgroups: { rows: 2, cols: 2 }, tiles: { rows: 4, cols: 4 } },
  { subgroups: { rows: 4, cols: 2 }, tiles: { rows: 2, cols: 4 } },
  { subgroups: { rows: 2, cols: 2 }, tiles: { rows: 2, cols: 2 } },
  // ≤ 31 KiB of workgroup memory: two workgroups per multiprocessor (Vulkan's 64 KiB carveout, 1 KiB reserved each).
  { subgroups: { rows: 2, cols: 2 }, tiles: { rows: 4, cols: 4 }, buffers: 1 },
  { subgroups: { rows: 2, cols: 2 }, tiles: { rows: 4, cols: 4 }, sliceK: 16 },
  { subgroups: { rows: 2, cols: 2 }, tiles: { rows: 2, cols: 2 }, buffers: 1 },
  { subgroups: { rows: 2, cols: 2 }, tiles: { rows: 2, cols: 2 }, sliceK: 64, buffers: 1 },
  // 256×128 and 128×256 blocks (8 subgroups of 64×64) in 37–42 KiB.
  { subgroups: { rows: 4, cols: 2 }, tiles: { rows: 4, cols: 4 }, sliceK: 16 },
  { subgroups: { rows: 4, cols: 2 }, tiles: { rows: 4, cols: 4 }, buffers: 1 },
  { subgroups: { rows: 2, cols: 4 }, tiles: { rows: 4, cols: 4 }, sliceK: 16 },
  // K split over 2–6 workgroups per 128×128 block (partials, then a reduction dispatch).
  ...[2, 3, 4, 6].map((splitK) => ({ ...DEFAULT_TC_MATMUL_LAYOUT, splitK })),
];

async function matmulSweep(emulated: boolean): Promise<void> {
  // Emulated (lavapipe): one small shape with a partial last slice, a check of the variants' WGSL, not a timing.
  const shapes: [string, number, number, number][] = emulated ? [['small', 200, 96, 192]] : [
    ['L qkv 518', 1370, 1024, 3072], ['L fc1 518', 1370, 1024, 4096], ['L fc2 518', 1370, 4096, 1024], ['L proj 518', 1370, 1024, 1024],
    ['T fc2 868×490', 2171, 4096, 1024], ['T proj 868×490', 2171, 1024, 1024], ['S fc2 518', 1370, 1536, 384],
    ['DPT-L 3×3 at 74²', 5476, 2304, 256], ['DPT-L 3×3 at 37² from 1024', 1369, 9216, 256], ['DPT-L 3×3 at 19²', 361, 2304, 256],
    ['S fc1 2K', 11972, 384, 1536],
  ];
  const limit = webgpuCapabilities().maxWorkgroupStorageBytes;
  for (const [name, m, k, n] of shapes) {
    const product = packedProduct(m, k, n);
    const row: Record<string, unknown> = { kind: 'matmul-sweep', name, m, k, n, chosen: layoutName(tensorCoreMatMulLayout(m, n, k, webgpuCapabilities().maxWorkgroupStorageBytes)) };
    // Against the stock fp32 product: every layout should be as close as the default one.
    const expected = product.reference();
    const reference = (await expected.data()) as Float32Array;
    expected.dispose();
    let peak = 0;
    for (const v of reference) peak = Math.max(peak, Math.abs(v));
    for (const layout of SWEEP_LAYOUTS) {
      if (tcMatMulWorkgroupBytes(layout) > limit) continue;
      const out = product.run(layout);
      const values = (await out.data()) as Float32Array;
      out.dispose();
      let err = 0;
      for (let i = 0; i < values.length; i++) err = Math.max(err, Math.abs(values[i]! - reference[i]!));
      // Back-to-back dispatches (the GPU kept busy, as in a model's frame): timestamp-query timing leaves it idle
      // between dispatches, and its clock drops (session 8 saw the same kernel at 0.10 and 0.36 ms that way).
      const ms = await timeIt(() => product.run(layout), m * n * k > 1e10 ? 20 : 60);
      row[layoutName(layout)] = { ms: +ms.toFixed(3), tflops: +((2 * m * n * k) / ms / 1e9).toFixed(1), relErr: +(err / peak).toExponential(1) };
    }
    console.log(JSON.stringify(row));
    product.dispose();
  }
}

/**
 * GPU time against workgroup count (132·j, j = 1…6; K and the per-workgroup work fixed): where the time steps up,
 * a new wave of workgroups started, so the step width is how many share the H100's 132 multiprocessors.
 */
async function occupancy(): Promise<void> {
  for (const layout of [SWEEP_LAYOUTS[1]!, SWEEP_LAYOUTS[0]!, SWEEP_LAYOUTS[3]!, SWEEP_LAYOUTS[2]!, SWEEP_LAYOUTS[5]!]) {
    const bm = 16 * layout.tiles.rows * layout.subgroups.rows;
    const bn = 16 * layout.tiles.cols * layout.subgroups.cols;
    const row: Record<string, unknown> = { kind: 'occupancy-matmul', layout: layoutName(layout), bytes: tcMatMulWorkgroupBytes(layout) };
    for (const j of [1, 2, 3, 4, 6, 8]) {
      const product = packedProduct(132 * bm, 4096, j * bn);
      row[`wg${132 * j}`] = +(await gpuMs(() => product.run(layout), 5)).toFixed(3);
      product.dispose();
    }
    console.log(JSON.stringify(row));
  }
  // Attention: 128 query rows per workgroup (4 subgroups × 2 tiles), 22 row blocks × heads = 132·j workgroups, keys
  // fixed at the 2K student's 11 972.
  const lk = 11972;
  const row: Record<string, unknown> = { kind: 'occupancy-attention', lk };
  for (const j of [1, 2, 3, 4, 6]) {
    const heads = 6 * j;
    const c = heads * 64;
    const q = tf.randomNormal([1, 22 * 128, c], 0, 1, 'float32', 4) as tf.Tensor3D;
    const kv = tf.randomNormal([1, lk, c], 0, 1, 'float32', 5) as tf.Tensor3D;
    const tcLayout = { subgroups: 4, tiles: 2, blockK: 32 };
    const attrs = { numHeads: heads, headDim: 64, scale: 0.125, qOffset: 0, kOffset: 0, vOffset: 0, tcLayout } as unknown as tf.NamedAttrMap;
    row[`wg${132 * j}`] = +(await gpuMs(() => tf.engine().runKernel(TC_ATTENTION, { q, k: kv, v: kv }, attrs) as tf.Tensor, 3)).toFixed(3);
    tf.dispose([q, kv]);
  }
  console.log(JSON.stringify(row));
}

async function main(): Promise<void> {
  await selectBackend('webgpu');
  console.log(JSON.stringify({ tensorCores: tensorCoresAvailable() }));
  console.log(JSON.stringify({ maxWorkgroupStorageBytes: webgpuCapabilities().maxWorkgroupStorageBytes }));
  if (process.argv.includes('--matmul-ablate')) {
    // On a device without subgroup matrices (lavapipe) the ablations still compile and run, emulated: a check of the
    // rewrites, not a timing.
    const emulated = !tensorCoresAvailable();
    if (emulated) emulateSubgroupMatrices(emulateSubgroupMatrixBuiltins);
    for (const [name, m, k, n] of emulated ? [['small', 100, 64, 128]] as const : [['L fc1 518', 1370, 1024, 4096], ['L fc2 518', 1370, 4096, 1024], ['S fc1 2K', 11972, 384, 1536], ['square 4096', 4096, 4096, 4096]] as const) {
      await timeAblations(name, m, k, n);
    }
    releaseBackend();
    return;
  }
  if (process.argv.includes('--matmul-epilogue')) {
    const emulated = !tensorCoresAvailable();
    if (emulated) emulateSubgroupMatrices(emulateSubgroupMatrixBuiltins);
    await timeEpilogues(emulated);
    releaseBackend();
    return;
  }
  if (process.argv.includes('--matmul-sweep') || process.argv.includes('--occupancy')) {
    const emulated = !tensorCoresAvailable();
    if (emulated) emulateSubgroupMatrices(emulateSubgroupMatrixBuiltins);
    if (process.argv.includes('--occupancy') && !emulated) await occupancy();
    if (process.argv.includes('--matmul-sweep')) await matmulSweep(emulated);
    releaseBackend();
    return;
  }
  const only = ['--attention-only', '--matmul-only', '--mamba-only'].find((flag) => process.argv.includes(flag));
  const matmuls: [string, number, number, number][] = only && only !== '--matmul-only' ? [] : [
    ['S fc1 518', 1370, 384, 1536], ['S fc2 518', 1370, 1536, 384], ['S qkv 2K', 11972, 384, 1152], ['S fc1 2K', 11972, 384, 1536],
    ['L fc1 518', 1370, 1024, 4096], ['L fc2 518', 1370, 4096, 1024], ['square 4096', 4096, 4096, 4096],
    // The Full teacher (2171 tokens, 17 row blocks): its proj and fc2 quantise badly into waves of 132 workgroups.
    ['teacher qkv', 2171, 1024, 3072], ['teacher proj', 2171, 1024, 1024], ['teacher fc2', 2171, 4096, 1024],
    // FLASHDEPTH_TC_MATMUL_WAVES=fit's other block heights: ViT-L's proj at 518² (88 blocks of 128 rows, 120 of 96),
    // the 2K student's proj (282 of 128: 3 waves; 252 of 144: 2).
    ['L proj 518', 1371, 1024, 1024], ['S proj 2K', 11973, 384, 384],
  ];
  for (const [name, m, k, n] of matmuls) {
    const x = tf.randomNormal([m, k], 0, 1, 'float32', 1) as tf.Tensor2D;
    const w = tf.randomNormal([k, n], 0, 0.05, 'float32', 2) as tf.Tensor2D;
    const b = tf.randomNormal([n], 0, 1, 'float32', 3);
    const reps = m * n * k > 1e10 ? 10 : 30;
    const row: Record<string, unknown> = { kind: 'matmul', name, m, k, n };
    setPrecision('fp32');
    const ms = await timeIt(() => linear(x, w, b), reps);
    row['fp32'] = { ms: +ms.toFixed(3), tflops: +((2 * m * n * k) / ms / 1e9).toFixed(2) };
    // The layout the model takes (tensorCoreMatMulLayout), the 128×128 block with K split 1–6 (wave quantisation), then
    // other block shapes.
    const chosen = tensorCoreMatMulLayout(m, n, k, webgpuCapabilities().maxWorkgroupStorageBytes);
    const splits = [1, 2, 3, 4, 6].map((splitK) => ({ ...DEFAULT_TC_MATMUL_LAYOUT, splitK })).filter((l) => tcMatMulBlocks(m, n, l) < 2 * 132 || l.splitK === 1);
    const layouts: TensorCoreMatMulLayout[] = [
      chosen,
      ...splits,
      { subgroups: { rows: 2, cols: 2 }, tiles: { rows: 4, cols: 4 } },
      { subgroups: { rows: 2, cols: 2 }, tiles: { rows: 2, cols: 4 } },
      { subgroups: { rows: 4, cols: 2 }, tiles: { rows: 2, cols: 4 } },
      { subgroups: { rows: 2, cols: 2 }, tiles: { rows: 2, cols: 2 } },
      { subgroups: { rows: 2, cols: 4 }, tiles: { rows: 4, cols: 2 } },
      { subgroups: { rows: 4, cols: 2 }, tiles: { rows: 2, cols: 4 }, convertA: true },
      { subgroups: { rows: 2, cols: 2 }, tiles: { rows: 2, cols: 2 }, convertA: true },
      // 256×128 and 128×256 blocks of 8 subgroups of 64×64 (half the workgroup-memory loads per multiply of the
      // default's 32×64), in 16-deep double buffers or one 32-deep buffer to fit 48 KiB: for the large products (the
      // Full teacher's, the 2K student's), whose grids still fill the GPU with half as many blocks.
      { subgroups: { rows: 4, cols: 2 }, tiles: { rows: 4, cols: 4 }, sliceK: 16 },
      { subgroups: { rows: 4, cols: 2 }, tiles: { rows: 4, cols: 4 }, buffers: 1 },
      { subgroups: { rows: 2, cols: 4 }, tiles: { rows: 4, cols: 4 }, sliceK: 16 },
      // Blocks of 144 and 96 rows (WAVE_FITTED_TC_MATMUL_LAYOUTS), and FLASHDEPTH_TC_MATMUL_SUBGROUPS=many's forms of
      // those and of the 128×128 block (twice the subgroups, 32 columns wide; single-buffered where double does not fit).
      ...WAVE_FITTED_TC_MATMUL_LAYOUTS,
      ...[...WAVE_FITTED_TC_MATMUL_LAYOUTS, DEFAULT_TC_MATMUL_LAYOUT].map((layout) => withMoreSubgroups(layout, webgpuCapabilities().maxWorkgroupStorageBytes)),
    ];
    const ref = linear(x, w, b);
    const refValues = await ref.data();
    ref.dispose();
    let refMax = 0;
    for (const v of refValues as Float32Array) refMax = Math.max(refMax, Math.abs(v));
    for (const [i, layout] of layouts.entries()) {
      if (tcMatMulWorkgroupBytes(layout) > webgpuCapabilities().maxWorkgroupStorageBytes) continue;
      const call = () => mixedMatMul(x, w, { bias: b, layout });
      const t = await timeIt(call, reps);
      const gpu = await replayedGpuMs(call, 8);
      const key = `${i === 0 ? 'chosen_' : ''}tc_sg${layout.subgroups.rows}x${layout.subgroups.cols}_t${layout.tiles.rows}x${layout.tiles.cols}${layout.convertA ? '_a32' : ''}${(layout.splitK ?? 1) > 1 ? `_split${layout.splitK}` : ''}${layout.sliceK ? `_k${layout.sliceK}` : ''}${layout.buffers === 1 ? '_b1' : ''}`;
      const out = mixedMatMul(x, w, { bias: b, layout });
      const values = await out.data();
      out.dispose();
      let err = 0;
      for (let i = 0; i < values.length; i++) err = Math.max(err, Math.abs(values[i]! - refValues[i]!));
      row[key] = {
        ms: +t.toFixed(3), tflops: +((2 * m * n * k) / t / 1e9).toFixed(2), relErr: +(err / refMax).toExponential(2),
        ...(gpu !== null ? { gpuMs: +gpu.toFixed(4), gpuTflops: +((2 * m * n * k) / gpu / 1e9).toFixed(1) } : {}),
      };
    }
    console.log(JSON.stringify(row));
    tf.dispose([x, w, b]);
  }
  // FLASHDEPTH_SWEEP_ATTENTION_SHAPES: the attention shapes whose names contain one of its comma-separated parts.
  const shapeFilter = process.env['FLASHDEPTH_SWEEP_ATTENTION_SHAPES']?.split(',').map((part) => part.trim()).filter((part) => part !== '');
  const attentions = (only && only !== '--attention-only' ? [] : [['S 518', 1370, 6], ['L 518', 1370, 16], ['L teacher 868×490', 2170, 16], ['S 2K student', 11972, 6]] as [string, number, number][])
    .filter(([name]) => !shapeFilter || shapeFilter.some((part) => name.includes(part)));
  for (const [name, n, heads] of attentions) {
    const c = heads * 64;
    const qkv = tf.randomNormal([1, n, 3 * c], 0, 1, 'float32', 4) as tf.Tensor3D;
    const row: Record<string, unknown> = { kind: 'attention', name, n, heads };
    const base = { numHeads: heads, headDim: 64, scale: 0.125, qOffset: 0, kOffset: c, vOffset: 2 * c };
    const ref = flashAttention(qkv, qkv, qkv, base);
    const refValues = await ref.data();
    ref.dispose();
    const variants: [string, () => tf.Tensor][] = [['fp32', () => flashAttention(qkv, qkv, qkv, base)]];
    if (tensorCoresAvailable()) {
      // In FLASHDEPTH_ATTENTION_LAYOUT's form: the default (12 subgroups of 1 tile, 64-key stages of 16-key blocks in
      // one buffer, O in quarters), the wave-fitted 18 subgroups of 1 tile with spread banks in 16-key stages (session
      // 20), the same in 32-key stages with dense P rows and session 19's 32-key stages, the default with spread banks,
      // 9 × 2 tiles (session 17), session 11's default, the 64-key stages pipelined, the 64-row layout small grids get;
      // then the softmax of sessions 5–17 ('scalar') and the 'packed' form (single-float score reads) on the default,
      // P's exponentials in f16, 32-key stages double-buffered, 32-key blocks. The longer sweeps of sessions 11–20
      // (2–4 tiles per subgroup, 8–20 subgroups, barrier-ordered scratch) are in bench/README.md.
      // FLASHDEPTH_SWEEP_ATTENTION_LAYOUTS (the same form) replaces all but the default. The default is timed twice (a
      // row's first entry sometimes times slow).
      const defaultSweep = '12,1,16,1,4,64;18,1,16,1,4,16/spread;18,1,16,1,4,32/spread/dense;18,1,16,1,4,32;12,1,16,1,4,64/spread;9,2,16,1,4,32;12,1,16,2,2;'
        + '12,1,16,1,4,64,1;4,1,32,1,2;12,1,16,1,4,64/scalar;12,1,16,1,4,64/packed;18,1,16,1,4,16/spread/exp16;12,1,16,2,4,32;8,1,32,1,4,64';
      const sweepList = process.env['FLASHDEPTH_SWEEP_ATTENTION_LAYOUTS'];
      const entries = sweepList ? ['12,1,16,1,4,64', ...sweepList.split(';')] : defaultSweep.split(';');
      const layouts: TensorCoreAttentionLayout[] = [entries[0]!, ...entries].filter((entry) => entry.trim() !== '')
        .map((entry) => ({ ...parseAttentionLayout(entry, 'FLASHDEPTH_SWEEP_ATTENTION_LAYOUTS'), scratchSync: 'subgroup' as const }));
      const seen = new Map<string, number>();
      for (const tcLayout of layouts) {
        if (tcAttentionWorkgroupBytes(tcLayout, 64) > webgpuCapabilities().maxWorkgroupStorageBytes) continue;
        const attrs = { ...base, tcLayout } as unknown as tf.NamedAttrMap;
        const name = `tc_sg${tcLayout.subgroups}_t${tcLayout.tiles}_k${tcLayout.blockK}_kv${tcLayout.kvBuffers ?? 2}_o${tcLayout.oSplit ?? 1}_${tcLayout.scratchSync === 'workgroup' ? 'wg' : 'sg'}${tcLayout.stageK ? `_s${tcLayout.stageK}` : ''}${tcLayout.pipelined ? '_pipe' : ''}${tcLayout.softmax ? `_${tcLayout.softmax}` : ''}${tcLayout.masking ? `_mask${tcLayout.masking}` : ''}${tcLayout.spreadBanks ? '_spread' : ''}${tcLayout.denseP ? '_dense' : ''}${tcLayout.exp2F16 ? '_exp16' : ''}${tcLayout.tileElement === 'u32' ? '_u32' : ''}${tcLayout.rowMax === 'vote' ? '_vote' : ''}_${tcAttentionWorkgroupBytes(tcLayout, 64)}B`;
        const repeat = seen.get(name) ?? 0;
        seen.set(name, repeat + 1);
        variants.push([repeat ? `${name}_${repeat + 1}` : name, () => tf.engine().runKernel(TC_ATTENTION, { q: qkv, k: qkv, v: qkv }, attrs) as tf.Tensor]);
      }
    }
    for (const [key, run] of variants) {
      const out = run();
      const values = await out.data();
      out.dispose();
      let err = 0;
      let peak = 0;
      let nan = 0;
      for (let i = 0; i < values.length; i++) {
        if (!Number.isFinite(values[i]!)) nan++;
        err = Math.max(err, Math.abs(values[i]! - refValues[i]!));
        peak = Math.max(peak, Math.abs(refValues[i]!));
      }
      const ms = await timeIt(run, n > 5000 ? 10 : 30);
      const gpuMs = await replayedGpuMs(run, n > 5000 ? 4 : 8);
      row[key] = {
        ms: +ms.toFixed(3), tflops: +((4 * n * n * c) / ms / 1e9).toFixed(2), relErr: +(err / peak).toExponential(1), ...(nan ? { nonFinite: nan } : {}),
        // GPU time with the GPU kept busy (replayed), and the TFLOP/s it gives.
        ...(gpuMs !== null ? { gpuMs: +gpuMs.toFixed(4), gpuTflops: +((4 * n * n * c) / gpuMs / 1e9).toFixed(1) } : {}),
      };
    }
    console.log(JSON.stringify(row));
    qkv.dispose();
  }
  // The Mamba2 frame step of one layer with a carried state: 8 heads, N = 256; tokens per frame at the bench sizes.
  const mambas: [string, number, number][] = only && only !== '--mamba-only' ? [] : [['L 518', 841, 64], ['Full 2K', 464, 32], ['S 518', 49, 32]];
  for (const [name, length, headdim] of mambas) {
    const heads = 8;
    const dState = 256;
    const dInner = heads * headdim;
    const convDim = dInner + 2 * dState;
    const zxbcdt = tf.randomNormal([1, length, 2 * dInner + 2 * dState + heads], 0, 1, 'float32', 5) as tf.Tensor3D;
    const weights = {
      convWeight: tf.randomNormal([4, convDim], 0, 0.3, 'float32', 6), convBias: tf.randomNormal([convDim], 0, 0.1, 'float32', 7),
      dtBias: tf.randomNormal([heads], 0, 0.1, 'float32', 8), aLog: tf.randomUniform([heads], 0, 2.7, 'float32', 9),
      dSkip: tf.ones([heads]), normWeight: tf.ones([dInner]),
    };
    const state = tf.randomNormal([1, heads, headdim, dState], 0, 1, 'float32', 10) as tf.Tensor4D;
    const run = () => {
      const { y, state: next } = fusedMambaScan(zxbcdt, weights, state, { headdim, dState, eps: 1e-5 });
      next.dispose();
      return y;
    };
    const row: Record<string, unknown> = { kind: 'mamba', name, length, headdim, dState, subgroupSize: webgpuCapabilities().subgroupSize };
    row['frameStepMs'] = +(await timeIt(run, 30)).toFixed(3);
    // The scan program alone on one conv output, by tokens per step and rows per workgroup, and with the row sums in
    // workgroup memory: where its ~1 µs per token goes (output compared with the default layout's).
    const backend = tf.backend() as unknown as WebGPUBackendWithDispose;
    const dims = { batch: 1, length, heads, headdim, dState, dConv: 4, hasState: true };
    const conv = backend.runWebGPUProgram(new MambaConvProgram(dims), [zxbcdt, weights.convWeight, weights.convBias, weights.dtBias], 'float32');
    const convTensor = tf.engine().makeTensorFromTensorInfo(conv);
    let reference: Float32Array | undefined;
    // [tokens per step, rows per workgroup, subgroup row sums, loads one step ahead, tokens per time chunk]; the first
    // is the default.
    const variants: [number, number, boolean, boolean, number][] = [[8, 1, true, true, 0], [8, 1, true, true, 32], [8, 1, true, true, 64],
      [8, 1, true, true, 128], [8, 1, true, true, 256], [4, 1, true, true, 64], [16, 1, true, true, 64], [8, 1, true, false, 0], [8, 1, false, true, 0],
      [8, 1, false, true, 64]];
    for (const [unroll, rows, subgroupReduce, prefetch, chunkTokens] of variants) {
      const subgroupSize = subgroupReduce ? webgpuCapabilities().subgroupSize : 0;
      if (unroll > scanLanes(subgroupSize).lanes || (chunkTokens > 0 && chunkTokens >= length)) continue;
      const scan = () => tf.engine().makeTensorFromTensorInfo(runMambaScan(backend, dims, subgroupSize, conv, weights.aLog, weights.dSkip, state,
        { unroll, rows, prefetch, chunkTokens }));
      const out = scan();
      const values = (await out.data()) as Float32Array;
      out.dispose();
      reference ??= values;
      let err = 0;
      let peak = 0;
      for (let i = 0; i < values.length; i++) {
        err = Math.max(err, Math.abs(values[i]! - reference[i]!));
        peak = Math.max(peak, Math.abs(reference[i]!));
      }
      row[`scan_u${unroll}_r${rows}${subgroupReduce ? '' : '_workgroupSums'}${prefetch ? '_prefetch' : ''}${chunkTokens ? `_chunk${chunkTokens}` : ''}`] = { ms: +(await timeIt(scan, 30)).toFixed(3), relDiff: +(err / peak).toExponential(1) };
    }
    console.log(JSON.stringify(row));
    tf.dispose([zxbcdt, state, convTensor, ...Object.values(weights)]);
  }
  releaseBackend();
}

await main();
