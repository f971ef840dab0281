/**
 * `FlashDepthTensorCoreMatMul` (A f32 — packed to f16 per call (optionally layer-normalised on the way), converted
 * while staging, or an image packed to f16 and read as 3×3 neighbourhoods — times B pre-packed f16 → C f32 on
 * subgroup matrices, with K split over several workgroups and a reduction dispatch where the layout says so,
 * ./tc-matmul_webgpu.ts) and
 * `FlashDepthPackF16`, which packs a weight once; `packedWeight` caches the packed copy per weight's data. Forward
 * only; `mixedMatMul` and `conv2d` (src/models/ops.ts) route here under `--precision mixed`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';
import type { MatMulEpilogue } from './tc-matmul_webgpu.js';
import { planeSegments, type PackedPlanes } from './tc-attention_webgpu.js';
import { LayerNormPackF16Program, layerNormPackUniforms } from './layer-norm_webgpu.js';
import { selfAttentionPlanes, TC_SELF_ATTENTION, tensorCoreAttentionSupports, tensorCoreSelfAttentionLayout, type TensorCoreSelfAttentionAttrs } from './tc-attention.js';
import type { WebGPUBackendLike } from './program.js';
import { webgpuCapabilities } from '../backend/webgpu.js';
import { layerNormRowLanes, matMulEpilogueIo, matMulEpilogueScratch, matMulEpilogueSync, matMulLoadAhead, matMulResidualPrefetch, tileElement } from './mode.js';
import {
  SLICE_K, SplitKReduceLayerNormProgram, SplitKReduceProgram, TensorCoreMatMulProgram, PackF16Program, checkTcMatMulLayout, epilogueInputs, packF16Uniforms, packedShape, splitKReduceUniforms, tcMatMulUniforms,
  tcMatMulWorkgroupBytes, tensorCoreConvLayout, tensorCoreMatMulLayout, type MatMulASource, type TensorCoreMatMulLayout, type PackedShape,
} from './tc-matmul_webgpu.js';

export const PACK_F16 = 'FlashDepthPackF16';

/** How a qkv product writes head planes (TensorCoreMatMulProgram's 'headPlanes' store). */
export interface HeadPlanesStore {
  planes: PackedPlanes;
  /** Tokens per sequence (rows of C per sequence), heads and their size. */
  tokens: number;
  heads: number;
  headDim: number;
  /** Q's factor: the score scale times log2 e (the attention's softmax is in base 2). */
  qScale: number;
}
export const TC_MATMUL = 'FlashDepthTensorCoreMatMul';

/** Layouts use at most 4×4 tiles per subgroup: operands are padded to at least 64 rows (A) and columns (B). */
const MIN_PACKED = 64;

/** The packed shape of A [m, k] or of B [k, n]. */
export function packedA(m: number, k: number): PackedShape {
  return packedShape(m, k, 16, SLICE_K, MIN_PACKED);
}
export function packedB(k: number, n: number): PackedShape {
  return packedShape(k, n, SLICE_K, 16, 0, MIN_PACKED);
}

function packF16WebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const transposed = (args.attrs as { transposed?: boolean } | undefined)?.transposed === true;
  const [k, n] = (transposed ? [...x.shape].reverse() : x.shape) as [number, number];
  const shape = packedB(k, n);
  return (args.backend as WebGPUBackendLike).runWebGPUProgram(new PackF16Program(shape, transposed), [x], 'int32', packF16Uniforms(shape));
}

/** The image a conv3x3 product reads its rows from (NHWC), and its output's size. */
export interface Conv3x3Image {
  h: number;
  w: number;
  cin: number;
  stride: number;
  oh: number;
  ow: number;
  /** ReLU of the image, applied while packing it to f16 (a ResidualConvUnit's outer ReLU). */
  reluInput?: boolean;
}

function tensorCoreMatMulWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo | tf.TensorInfo[] {
  const { a, b16, bias, residual, gamma, lnGamma, lnBeta, outLnGamma, outLnBeta } = args.inputs as Record<string, tf.TensorInfo | undefined>;
  const attrs = args.attrs as unknown as {
    n: number; epilogue: MatMulEpilogue; layout?: TensorCoreMatMulLayout | null; conv?: Conv3x3Image | null; layerNormEps?: number | null;
    /** `a` is already the packed f16 operand (a previous product's packed output) of this many rows and columns. */
    packedA?: { m: number; k: number } | null;
    /** Write C as the packed f16 A operand of a following product (int32 half pairs). */
    packOutput?: boolean;
    /** Write C (a qkv product: [q | k | v] columns, head-major) as the f16 head planes of a tensor-core attention. */
    headPlanes?: HeadPlanesStore | null;
    /**
     * Also return LayerNorm(C) (outLnGamma, outLnBeta, this eps) as the packed f16 A operand of a following product:
     * computed in the split-K reduction where K is split, else by a LayerNorm packing over C (f32 output only).
     */
    normalizeOutputEps?: number | null;
  };
  const backend = args.backend as WebGPUBackendLike;
  const conv = attrs.conv ?? undefined;
  // A conv's rows are the image's pixels and its columns the 3×3 taps × channels.
  const prepacked = attrs.packedA ?? null;
  const [m, k] = conv ? [a!.shape[0]! * conv.oh * conv.ow, 9 * conv.cin] : prepacked ? [prepacked.m, prepacked.k] : a!.shape as [number, number];
  const { n, epilogue } = attrs;
  const aShape = packedA(m, k);
  const bShape = packedB(k, n);
  const limitBytes = webgpuCapabilities().maxWorkgroupStorageBytes;
  if (attrs.layout) checkTcMatMulLayout(attrs.layout, limitBytes);
  const chosen = attrs.layout ?? (conv ? tensorCoreConvLayout(m, n, k, limitBytes) : tensorCoreMatMulLayout(m, n, k, limitBytes));
  // FLASHDEPTH_TC_MATMUL_EPILOGUE_SYNC, _RESIDUAL_PREFETCH, _LOAD_AHEAD, _EPILOGUE_IO and FLASHDEPTH_TC_TILE_ELEMENT
  // apply to every layout that does not name its own, and FLASHDEPTH_TC_MATMUL_SCRATCH where its larger scratch still
  // fits.
  const layout: TensorCoreMatMulLayout = {
    ...chosen,
    epilogueSync: chosen.epilogueSync ?? matMulEpilogueSync(),
    residualPrefetch: chosen.residualPrefetch ?? matMulResidualPrefetch() === 'on',
    loadAhead: chosen.loadAhead ?? matMulLoadAhead(),
    tileElement: chosen.tileElement ?? tileElement(),
    epilogueIo: chosen.epilogueIo ?? matMulEpilogueIo(),
  };
  if (!chosen.epilogueScratch && matMulEpilogueScratch() === 'vec4' && tcMatMulWorkgroupBytes({ ...layout, epilogueScratch: 'vec4' }) <= limitBytes) layout.epilogueScratch = 'vec4';
  // With a LayerNorm prologue A is always packed, by the LayerNorm itself.
  const layerNormEps = attrs.layerNormEps ?? null;
  // A conv's image is packed to f16 as a [pixels, Cin] matrix (no column padding: Cin is a multiple of 8).
  const aSource: MatMulASource = conv ? 'conv3x3' : layout.convertA && layerNormEps === null && !prepacked ? 'f32' : 'packed';
  const imageShape = conv ? packedShape(a!.shape[0]! * conv.h * conv.w, conv.cin, 16, CONV_CHANNEL_MULTIPLE) : undefined;
  const a16 = imageShape ? backend.runWebGPUProgram(new PackF16Program(imageShape, false, conv!.reluInput === true), [a!], 'int32', packF16Uniforms(imageShape))
    : aSource !== 'packed' || prepacked ? undefined
    : layerNormEps !== null
      ? backend.runWebGPUProgram(new LayerNormPackF16Program(aShape, layerNormRowLanes()), [a!, lnGamma!, lnBeta!], 'int32', layerNormPackUniforms(layerNormEps, m))
      : backend.runWebGPUProgram(new PackF16Program(aShape), [a!], 'int32', packF16Uniforms(aShape));
  try {
    const packOutput = attrs.packOutput === true;
    const output = packOutput ? 'packedF16' : 'f32';
    const operands = [a16 ?? a!, b16!];
    const epilogueTensors = { Bias: bias, Residual: residual, Gamma: gamma };
    const extras = epilogueInputs(bias !== undefined, epilogue).map((name) => epilogueTensors[name]!);
    const uniforms = tcMatMulUniforms(m, n, k, aShape, bShape, layout, conv);
    const planes = attrs.headPlanes ?? null;
    if (planes) {
      const p = planes.planes;
      const { kHalves, vHalves } = planeSegments(p);
      const program = new TensorCoreMatMulProgram(m, n, aShape, bias !== undefined, epilogue, layout, aSource, 'headPlanes', p.totalUnits * 4);
      return backend.runWebGPUProgram(program, [...operands, ...extras], 'int32', [...uniforms,
        ...[planes.tokens, planes.heads, planes.headDim, p.lqPad, p.lkPad, kHalves, vHalves].map((v) => ({ type: 'uint32' as const, data: [v] })),
        { type: 'float32', data: [planes.qScale] }]);
    }
    const normalizeEps = attrs.normalizeOutputEps ?? null;
    if (normalizeEps !== null && packOutput) throw new Error('tensorCoreMatMul: a normalised output is written beside C in f32, not packed');
    // LN(C) is the packed A operand of a product with C's rows and columns.
    const normalized = packedA(m, n);
    if ((layout.splitK ?? 1) <= 1) {
      const program = new TensorCoreMatMulProgram(m, n, aShape, bias !== undefined, epilogue, layout, aSource, output);
      const c = backend.runWebGPUProgram(program, [...operands, ...extras], packOutput ? 'int32' : 'float32', uniforms);
      if (normalizeEps === null) return c;
      return [c, backend.runWebGPUProgram(new LayerNormPackF16Program(normalized, layerNormRowLanes()), [c, outLnGamma!, outLnBeta!], 'int32', layerNormPackUniforms(normalizeEps, m))];
    }
    // Split K: the splits' partial sums, then their sum with the epilogue.
    const partialProgram = new TensorCoreMatMulProgram(m, n, aShape, false, 'none', layout, aSource, 'partials');
    const partials = backend.runWebGPUProgram(partialProgram, operands, 'float32', uniforms);
    try {
      const reduceUniforms = splitKReduceUniforms(m, n, partialProgram.outputShape);
      if (normalizeEps !== null) {
        // The normalised rows are the program's second output, bound as a writable input (tfjs programs have one).
        const packedNorm = backend.makeTensorInfo([normalized.rowsPad, normalized.colsPad / 2], 'int32');
        const c = backend.runWebGPUProgram(new SplitKReduceLayerNormProgram(normalized, bias !== undefined, epilogue, layerNormRowLanes()),
          [partials, ...extras, outLnGamma!, outLnBeta!, packedNorm], 'float32',
          [...reduceUniforms, { type: 'uint32', data: [normalized.rowsPad] }, { type: 'float32', data: [normalizeEps] }]);
        return [c, packedNorm];
      }
      return backend.runWebGPUProgram(new SplitKReduceProgram(m, n, aShape.rowsPad, bias !== undefined, epilogue, output, layout.epilogueIo), [partials, ...extras],
        packOutput ? 'int32' : 'float32', reduceUniforms);
    } finally {
      backend.disposeData(partials.dataId);
    }
  } finally {
    if (a16) backend.disposeData(a16.dataId);
  }
}

export const packF16Config: tf.KernelConfig = { kernelName: PACK_F16, backendName: 'webgpu', kernelFunc: packF16WebGPU as tf.KernelFunc };
export const tensorCoreMatMulConfig: tf.KernelConfig = { kernelName: TC_MATMUL, backendName: 'webgpu', kernelFunc: tensorCoreMatMulWebGPU as tf.KernelFunc };

/**
 * Packed f16 copies of weights, made on first use and kept (outside any tidy) while the weight's data lives. Keyed
 * by the data, not the tensor object: a reshaped view of a weight (the patch embedding's filter) shares its data, and
 * loading new values into a variable gives it new data. Copies whose data was freed since are dropped whenever a new
 * copy is made, or all at once by releasePackedWeights.
 */
const packed = new Map<tf.DataId, { shape: string; copy: tf.Tensor }>();

function dataAlive(dataId: tf.DataId): boolean {
  return tf.engine().state.tensorInfo.has(dataId);
}

/** The f16 copy of `weight` [K, N] — or, `transposed`, of the [K, N] weight stored as [N, K] — packed as B. */
export function packedWeight(weight: tf.Tensor2D, transposed = false): tf.Tensor {
  const shape = weight.shape.join('x') + (transposed ? 'T' : '');
  const hit = packed.get(weight.dataId);
  if (hit?.shape === shape) return hit.copy;
  hit?.copy.dispose();
  freeStalePackedWeights();
  const copy = tf.keep(tf.engine().runKernel(PACK_F16, { x: weight }, { transposed } as unknown as tf.NamedAttrMap) as tf.Tensor);
  packed.set(weight.dataId, { shape, copy });
  return copy;
}

/** Frees the cached copies of weights whose data is gone (a disposed model's); FlashDepth.dispose calls it. */
export function freeStalePackedWeights(): void {
  for (const [dataId, entry] of packed) {
    if (!dataAlive(dataId)) {
      entry.copy.dispose();
      packed.delete(dataId);
    }
  }
}

/** Frees every cached packed weight (they are remade on next use). */
export function releasePackedWeights(): void {
  for (const entry of packed.values()) entry.copy.dispose();
  packed.clear();
}

/** A LayerNorm over the last axis: weight and bias [C], eps. */
export interface LayerNormParams {
  weight: tf.Tensor;
  bias: tf.Tensor;
  eps: number;
}

export interface TensorCoreMatMulInputs {
  a: tf.Tensor2D;
  /** LayerNorm of each row of `a` (over K) before the product, fused into A's packing. */
  layerNorm?: LayerNormParams;
  /** [K, N], or [N, K] with `transposeWeight`. */
  weight: tf.Tensor2D;
  transposeWeight?: boolean;
  bias?: tf.Tensor;
  residual?: tf.Tensor;
  gamma?: tf.Tensor;
}

/**
 * 3×3 convolution, stride 1 or 2, zero padding 1, of NHWC `x` with `filter` [3, 3, Cin, Cout] (+ bias, optional
 * ReLU) as an implicit GEMM on tensor cores; Cin a multiple of 8 and Cout of 4 (`tensorCoreConvSupports`).
 * `layout`: tuning (default `tensorCoreMatMulLayout`).
 */
export function tensorCoreConv3x3(x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor | undefined, relu: boolean, stride = 1, layout?: TensorCoreMatMulLayout,
  fused: TensorCoreConvFusion = {}): tf.Tensor4D {
  const [b, h, w, cin] = x.shape;
  const cout = filter.shape[3];
  // PyTorch's output size for kernel 3, padding 1.
  const oh = Math.floor((h - 1) / stride) + 1;
  const ow = Math.floor((w - 1) / stride) + 1;
  const { residual } = fused;
  if (residual && (relu || residual.shape.join() !== [b, oh, ow, cout].join())) {
    throw new ShapeError(`tensorCoreConv3x3: a residual is added to a linear output of the same shape, got [${residual.shape.join(', ')}] for [${[b, oh, ow, cout].join(', ')}]${relu ? ' with a ReLU' : ''}`);
  }
  const weight = tf.reshape(filter, [9 * cin, cout]) as tf.Tensor2D;
  const extra = { ...(bias ? { bias } : {}), ...(residual ? { residual: tf.reshape(residual, [b * oh * ow, cout]) } : {}) };
  const y = runTensorCoreMatMul(x, weight, extra, residual ? 'add' : relu ? 'relu' : 'none', layout,
    { h, w, cin, stride, oh, ow, ...(fused.reluInput ? { reluInput: true } : {}) });
  return tf.reshape(y, [b, oh, ow, cout]) as tf.Tensor4D;
}

/** What tensorCoreConv3x3 fuses around the convolution besides bias and ReLU. */
export interface TensorCoreConvFusion {
  /** ReLU of the input, inside the f16 packing of the image. */
  reluInput?: boolean;
  /** Added to the (linear) output in the epilogue: the output's shape. */
  residual?: tf.Tensor4D;
}

/**
 * Input channels of a tensor-core 3×3 convolution are a multiple of this: whole 16-byte units of the f16 image (ViT-S's
 * DPT has 48 at its finest level, which took tfjs' fp32 convolution before session 11: 0.72 ms of a Full frame).
 */
const CONV_CHANNEL_MULTIPLE = 8;

/** Whether tensorCoreConv3x3 takes this convolution. */
export function tensorCoreConvSupports(kernelH: number, kernelW: number, stride: number, padding: number, cin: number, cout: number): boolean {
  return kernelH === 3 && kernelW === 3 && (stride === 1 || stride === 2) && padding === 1 && cin % CONV_CHANNEL_MULTIPLE === 0 && cout % 4 === 0;
}

/** a [M, K] · weight [K, N] (+ bias) then the epilogue, with the weight's cached f16 copy. Shapes checked by the caller. */
export function tensorCoreMatMul(inputs: TensorCoreMatMulInputs, epilogue: MatMulEpilogue, layout?: TensorCoreMatMulLayout): tf.Tensor2D {
  return runTensorCoreMatMul(inputs.a, inputs.weight, inputs, epilogue, layout);
}

/** How a product's A and C connect to the products around it (all optional). */
interface ProductChain {
  /** `a` is already the packed f16 operand (a previous product's packed output) of this many rows and columns. */
  packedA?: { m: number; k: number };
  /** Write C as the packed f16 A operand of a following product. */
  packOutput?: boolean;
  /** Write C as an attention's head planes. */
  headPlanes?: HeadPlanesStore;
}

/**
 * The kernel's inputs and attributes for A (a matrix, or the image of a conv), the weight's cached f16 copy (packed
 * transposed with `extra.transposeWeight`) and the epilogue's inputs.
 */
function matMulCall(a: tf.Tensor, weight: tf.Tensor2D, extra: Pick<TensorCoreMatMulInputs, 'bias' | 'residual' | 'gamma' | 'transposeWeight' | 'layerNorm'>,
  epilogue: MatMulEpilogue, layout?: TensorCoreMatMulLayout, conv?: Conv3x3Image, chain: ProductChain = {}): { named: tf.NamedTensorMap; attrs: Record<string, unknown> } {
  const transposeWeight = extra.transposeWeight ?? false;
  const named: tf.NamedTensorMap = { a, b16: packedWeight(weight, transposeWeight) };
  if (extra.bias) named['bias'] = extra.bias;
  if (extra.residual) named['residual'] = extra.residual;
  if (extra.gamma) named['gamma'] = extra.gamma;
  if (extra.layerNorm) {
    named['lnGamma'] = extra.layerNorm.weight;
    named['lnBeta'] = extra.layerNorm.bias;
  }
  const attrs = {
    n: weight.shape[transposeWeight ? 0 : 1], epilogue, layout: layout ?? null, conv: conv ?? null, layerNormEps: extra.layerNorm?.eps ?? null,
    packedA: chain.packedA ?? null, packOutput: chain.packOutput ?? false, headPlanes: chain.headPlanes ?? null, normalizeOutputEps: null as number | null,
  };
  return { named, attrs };
}

/** The one call of the kernel (see matMulCall). */
function runTensorCoreMatMul(a: tf.Tensor, weight: tf.Tensor2D, extra: Pick<TensorCoreMatMulInputs, 'bias' | 'residual' | 'gamma' | 'transposeWeight' | 'layerNorm'>,
  epilogue: MatMulEpilogue, layout?: TensorCoreMatMulLayout, conv?: Conv3x3Image, chain: ProductChain = {}): tf.Tensor2D {
  const { named, attrs } = matMulCall(a, weight, extra, epilogue, layout, conv, chain);
  return tf.engine().runKernel(TC_MATMUL, named, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

/**
 * Rows y [M, N] of a ViT branch, and, where asked for (`normalizeOutput`), LayerNorm(y) as the packed f16 A operand
 * of the product that follows that LayerNorm (its `packedNorm` input): a split product computes it in its reduction.
 */
export interface NormalizedRows<T extends tf.Tensor = tf.Tensor2D> {
  y: T;
  packedNorm: tf.Tensor | null;
}

/** `f`'s NormalizedRows, with every other tensor it made freed (a tf.tidy, which keeps containers of tensors, not nulls). */
export function tidyRows<T extends tf.Tensor>(f: () => NormalizedRows<T>): NormalizedRows<T> {
  const [y, packedNorm] = tf.tidy(() => {
    const out = f();
    return out.packedNorm ? [out.y, out.packedNorm] : [out.y];
  });
  return { y: y as T, packedNorm: packedNorm ?? null };
}

/** runTensorCoreMatMul with C also normalised by `norm` into a packed A operand (f32 C; see NormalizedRows). */
function runNormalizedMatMul(a: tf.Tensor, weight: tf.Tensor2D, extra: Pick<TensorCoreMatMulInputs, 'bias' | 'residual' | 'gamma'>, epilogue: MatMulEpilogue,
  chain: Pick<ProductChain, 'packedA'>, norm: LayerNormParams | undefined): NormalizedRows {
  if (!norm) return { y: runTensorCoreMatMul(a, weight, extra, epilogue, undefined, undefined, chain), packedNorm: null };
  const { named, attrs } = matMulCall(a, weight, extra, epilogue, undefined, undefined, chain);
  named['outLnGamma'] = norm.weight;
  named['outLnBeta'] = norm.bias;
  attrs['normalizeOutputEps'] = norm.eps;
  const [y, packedNorm] = tf.engine().runKernel(TC_MATMUL, named, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  return { y: y as tf.Tensor2D, packedNorm: packedNorm! };
}

/** What a branch's first product reads: A as f32, optionally layer-normalised, or LN(A) already packed. */
function branchInput(a: tf.Tensor2D, layerNorm: LayerNormParams | undefined, packedNorm: tf.Tensor | undefined): { a: tf.Tensor; layerNorm?: LayerNormParams; chain: ProductChain } {
  if (packedNorm && layerNorm) throw new Error('tensor-core branch: give its input\'s LayerNorm as parameters or as packed rows, not both');
  return packedNorm ? { a: packedNorm, chain: { packedA: { m: a.shape[0], k: a.shape[1] } } } : { a, layerNorm, chain: {} };
}

export interface TensorCoreMlpInputs {
  /** [M, K]. */
  a: tf.Tensor2D;
  /** LayerNorm of a's rows before fc1 (fused into A's packing). */
  layerNorm?: LayerNormParams;
  /** Or that LayerNorm already applied and packed (a previous product's NormalizedRows.packedNorm). */
  packedNorm?: tf.Tensor;
  /** Return LayerNorm(y) packed for the product after it (NormalizedRows). */
  normalizeOutput?: LayerNormParams;
  /** [K, H] and [H], H a multiple of SLICE_K. */
  fc1: { weight: tf.Tensor2D; bias?: tf.Tensor };
  /** [H, N] and [N]. */
  fc2: { weight: tf.Tensor2D; bias?: tf.Tensor };
  /** `residual + gamma·y` after fc2. */
  residual?: tf.Tensor;
  gamma?: tf.Tensor;
}

/** Whether tensorCoreMlp takes a hidden width: fc1's output becomes fc2's packed A without column padding. */
export function tensorCoreMlpSupports(hidden: number): boolean {
  return hidden % SLICE_K === 0 && hidden >= 64;
}

/**
 * fc2(GELU(fc1(a))) (+ LayerScale residual) as two products whose hidden activations stay f16: fc1's epilogue writes
 * them as fc2's packed A operand, so neither their f32 copy nor the packing dispatch exists. Shapes checked by the caller.
 */
export function tensorCoreMlp(inputs: TensorCoreMlpInputs): NormalizedRows {
  const [m] = inputs.a.shape;
  const hidden = inputs.fc1.weight.shape[1];
  const input = branchInput(inputs.a, inputs.layerNorm, inputs.packedNorm);
  return tidyRows(() => {
    const packedHidden = runTensorCoreMatMul(input.a, inputs.fc1.weight, { bias: inputs.fc1.bias, layerNorm: input.layerNorm }, 'gelu', undefined, undefined,
      { ...input.chain, packOutput: true });
    return runNormalizedMatMul(packedHidden, inputs.fc2.weight, { bias: inputs.fc2.bias, residual: inputs.residual, gamma: inputs.gamma },
      inputs.residual ? 'scaleAdd' : 'none', { packedA: { m, k: hidden } }, inputs.normalizeOutput);
  });
}

export interface TensorCoreSelfAttentionInputs {
  /** [B·N, D]: B sequences of N tokens. */
  x: tf.Tensor2D;
  batch: number;
  /** LayerNorm of x's rows before the qkv product (fused into A's packing). */
  layerNorm?: LayerNormParams;
  /** Or that LayerNorm already applied and packed (a previous product's NormalizedRows.packedNorm). */
  packedNorm?: tf.Tensor;
  /** Return LayerNorm(y) packed for the product after it (NormalizedRows). */
  normalizeOutput?: LayerNormParams;
  /** [D, 3D] ([q | k | v], each head-major) and [3D]. */
  qkv: { weight: tf.Tensor2D; bias?: tf.Tensor };
  /** [D, D] and [D]. */
  proj: { weight: tf.Tensor2D; bias?: tf.Tensor };
  numHeads: number;
  scale: number;
  /** `residual + gamma·y` after the projection. */
  residual?: tf.Tensor;
  gamma?: tf.Tensor;
}

/**
 * Whether tensorCoreSelfAttention takes B sequences of N tokens of width D in `numHeads` heads: D a multiple of the
 * 32-deep slice (the projection's packed A has no column padding), a tensor-core attention layout for the head size,
 * and a qkv product that is not split over K (the head-plane store is the unsplit product's epilogue).
 */
export function tensorCoreSelfAttentionSupports(batch: number, tokens: number, dim: number, numHeads: number): boolean {
  const headDim = dim / numHeads;
  return dim % SLICE_K === 0 && Number.isInteger(headDim) && tensorCoreAttentionSupports(headDim)
    && tensorCoreSelfAttentionLayout(batch, tokens, numHeads, headDim) !== null
    && (tensorCoreMatMulLayout(batch * tokens, 3 * dim, dim, webgpuCapabilities().maxWorkgroupStorageBytes).splitK ?? 1) <= 1;
}

/**
 * proj(attention(qkv(LN(x)))) (+ LayerScale residual) as three dispatches with f16 between them: the qkv product's
 * epilogue writes the attention's head planes (Q scaled), the attention writes its output as the projection's packed
 * A operand (./tc-attention.ts). Shapes checked by the caller (tensorCoreSelfAttentionSupports).
 */
export function tensorCoreSelfAttention(inputs: TensorCoreSelfAttentionInputs): NormalizedRows {
  const [m, dim] = inputs.x.shape;
  const { batch, numHeads, scale } = inputs;
  const tokens = m / batch;
  const headDim = dim / numHeads;
  const tcLayout = tensorCoreSelfAttentionLayout(batch, tokens, numHeads, headDim);
  if (!tcLayout) throw new Error(`tensorCoreSelfAttention: ${batch} × ${tokens} tokens of ${numHeads} heads of ${headDim} are not supported (check tensorCoreSelfAttentionSupports first)`);
  const headPlanes: HeadPlanesStore = { planes: selfAttentionPlanes(batch, tokens, numHeads, headDim, tcLayout), tokens, heads: numHeads, headDim, qScale: scale * Math.LOG2E };
  const input = branchInput(inputs.x, inputs.layerNorm, inputs.packedNorm);
  return tidyRows(() => {
    const planes = runTensorCoreMatMul(input.a, inputs.qkv.weight, { bias: inputs.qkv.bias, layerNorm: input.layerNorm }, 'none', undefined, undefined, { ...input.chain, headPlanes });
    const attrs: TensorCoreSelfAttentionAttrs = { batch, tokens, numHeads, headDim, tcLayout, rowsPad: packedA(m, dim).rowsPad };
    const attended = tf.engine().runKernel(TC_SELF_ATTENTION, { planes }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    return runNormalizedMatMul(attended, inputs.proj.weight, { bias: inputs.proj.bias, residual: inputs.residual, gamma: inputs.gamma },
      inputs.residual ? 'scaleAdd' : 'none', { packedA: { m, k: dim } }, inputs.normalizeOutput);
  });
}
