/**
 * Pure tensor math shared by the model modules: tensors in, tensors out, no state, no backend calls.
 * Layout is NHWC for images and [B, L, C] for token sequences. Call these inside the caller's tf.tidy.
 */
import * as tf from '@tensorflow/tfjs-core';
// The core ops' gradients are registered as a side effect of loading tfjs-layers (its Node bundle carries
// tfjs-core's register_all_gradients, which cannot be imported on its own under Node ESM).
import '@tensorflow/tfjs-layers';
import { ShapeError } from '../errors.js';
import {
  fusedGelu, fusedLayerNorm, fusedLayerNormDroppingFirst, fusedPointwiseConv, fusedResizeAlignCorners, fusedScaleAdd, mixedMatMul, mixedMatMulSupports, mixedMlp, mixedMlpSupports, patchNormFusion, pointwiseConvSupports, rcuFusion, tensorCoreConv3x3, tensorCoreConvSupports, useFusedKernels, useTensorCores, vec4Compatible,
  type LayerNormParams,
} from '../kernels/index.js';

/**
 * What may precede (a LayerNorm of x) or follow (GELU, a LayerScale residual) a linear layer inside its kernels
 * (tensor-core path: the LayerNorm in the dispatch that packs x to f16, the rest in the product's epilogue) or as
 * separate ops (elsewhere).
 */
export interface LinearFusion {
  /** LayerNorm of x over its last axis (weight, bias [in]) before the product: `linear(layerNorm(x), …)`. */
  layerNorm?: LayerNormParams;
  /** Exact GELU of the output. */
  activation?: 'gelu';
  /** `residual.x + residual.gamma·y`: a LayerScale residual (DINOv2's `x + ls(f(x))`). */
  residual?: { x: tf.Tensor; gamma: tf.Tensor };
}

/** y = x·W + b with W in [in, out] layout (a PyTorch Linear weight, transposed at load time), with `fusion`. */
export function linear(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor, fusion: LinearFusion = {}): tf.Tensor {
  const inDim = x.shape[x.shape.length - 1]!;
  const outDim = weight.shape[1]!;
  const lead = x.shape.slice(0, -1);
  if (useTensorCores() && mixedMatMulSupports(inDim, outDim)) {
    // The product on tensor cores with bias, GELU or the LayerScale residual applied on the way out, and the
    // LayerNorm (if any) in the dispatch that packs x.
    const x2 = tf.reshape(x, [-1, inDim]) as tf.Tensor2D;
    return tf.reshape(mixedMatMul(x2, weight as tf.Tensor2D, { bias, ...fusion }), [...lead, outDim]);
  }
  const { layerNorm: norm, ...epilogue } = fusion;
  const x2 = tf.reshape(norm ? layerNorm(x, norm.weight, norm.bias, norm.eps) : x, [-1, inDim]) as tf.Tensor2D;
  // The fused form adds the bias inside the matMul kernel: one dispatch instead of two on GPU backends.
  let y = tf.reshape(tf.fused.matMul({ a: x2, b: weight as tf.Tensor2D, bias }), [...lead, outDim]);
  if (epilogue.activation === 'gelu') y = gelu(y);
  if (epilogue.residual) y = addScaled(epilogue.residual.x, y, epilogue.residual.gamma);
  return y;
}

/** The two layers of an MLP: weights in [in, out] layout. */
export interface MlpWeights {
  fc1: { weight: tf.Tensor; bias?: tf.Tensor };
  fc2: { weight: tf.Tensor; bias?: tf.Tensor };
}

/**
 * fc2(GELU(fc1(x))) with `fusion`'s LayerNorm before fc1 and residual after fc2. On tensor cores the hidden
 * activations stay f16 between the two products (no f32 copy, no packing dispatch); elsewhere two `linear`s.
 */
export function mlp(x: tf.Tensor, weights: MlpWeights, fusion: Pick<LinearFusion, 'layerNorm' | 'residual'> = {}): tf.Tensor {
  const inDim = x.shape[x.shape.length - 1]!;
  const hidden = weights.fc1.weight.shape[1]!;
  const outDim = weights.fc2.weight.shape[1]!;
  if (useTensorCores() && mixedMlpSupports(inDim, hidden, outDim)) {
    const x2 = tf.reshape(x, [-1, inDim]) as tf.Tensor2D;
    const y = mixedMlp(x2, {
      fc1: { weight: weights.fc1.weight as tf.Tensor2D, bias: weights.fc1.bias },
      fc2: { weight: weights.fc2.weight as tf.Tensor2D, bias: weights.fc2.bias },
      ...fusion,
    });
    return tf.reshape(y, [...x.shape.slice(0, -1), outDim]);
  }
  const h = linear(x, weights.fc1.weight, weights.fc1.bias, { activation: 'gelu', layerNorm: fusion.layerNorm });
  return linear(h, weights.fc2.weight, weights.fc2.bias, { residual: fusion.residual });
}

/** LayerNorm over the last axis with an explicit eps (DINOv2: 1e-6; Mamba blocks and fusion: 1e-5). */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor {
  if (useFusedKernels()) return fusedLayerNorm(x, weight, bias, eps); // one WGSL dispatch instead of ~8
  const axis = x.shape.length - 1;
  const { mean, variance } = tf.moments(x, axis, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), weight), bias);
}

/**
 * layerNorm of tokens 1… of each sequence of x [B, T, C] (a ViT's patch tokens; its CLS token left out): [B, T − 1, C].
 * One dispatch on the fused path (FLASHDEPTH_PATCH_NORM_FUSION=off: the norm of every token, then a slice);
 * elsewhere the slice, then the norm (per token, so the same as norm, then slice).
 */
export function layerNormDroppingFirst(x: tf.Tensor3D, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor3D {
  const [b, t, c] = x.shape;
  if (useFusedKernels()) {
    if (patchNormFusion() === 'on') return fusedLayerNormDroppingFirst(x, weight, bias, eps);
    return tf.slice(fusedLayerNorm(x, weight, bias, eps), [0, 1, 0], [b, t - 1, c]) as tf.Tensor3D;
  }
  return layerNorm(tf.slice(x, [0, 1, 0], [b, t - 1, c]), weight, bias, eps) as tf.Tensor3D;
}

/** Exact (erf) GELU, as torch.nn.GELU() with approximate='none'. */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (useFusedKernels() && vec4Compatible(x.shape[x.shape.length - 1]!)) return fusedGelu(x); // 1 dispatch instead of 5
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

/** x + y·gamma with gamma over the last axis: a residual add after a LayerScale (DINOv2's `x + ls1(attn(x))`). */
export function addScaled(x: tf.Tensor, y: tf.Tensor, gamma: tf.Tensor): tf.Tensor {
  if (useFusedKernels() && vec4Compatible(x.shape[x.shape.length - 1]!)) return fusedScaleAdd(x, y, gamma); // 1 dispatch instead of 2
  return tf.add(x, tf.mul(y, gamma));
}

/** SiLU / swish: x·sigmoid(x). */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/**
 * Largest number of output pixels one conv2d call produces. tfjs-webgpu's conv kernels put all output pixels on the
 * x dispatch axis and cannot fold it when it passes 65 535 workgroups (at 2044×1148 the head's 3×3 convs do), so
 * larger outputs are computed in bands of rows. Each band reads its own input rows (with the kernel's halo), so the
 * result is exactly the unbanded convolution.
 */
export const MAX_CONV_OUTPUT_PIXELS = 2 ** 19;

/** What the conv kernel may apply around the convolution in the same dispatch. */
export interface ConvEpilogue {
  /** ReLU of the biased output (PyTorch's `conv → nn.ReLU`). */
  activation?: 'relu';
  /** ReLU of the input first (a ResidualConvUnit's outer ReLU; on tensor cores, inside the image's f16 packing). */
  reluInput?: boolean;
  /** Added to the (linear) output, the output's shape (a ResidualConvUnit's skip; on tensor cores, in the epilogue). */
  residual?: tf.Tensor4D;
}

/**
 * 2-D convolution, NHWC input, [kh, kw, in, out] filter, with PyTorch's explicit symmetric zero padding
 * (TF 'same' pads asymmetrically for stride 2, which differs from PyTorch's padding=1). The padding, bias and
 * activation run inside the conv kernel: one dispatch, no separate pad op; on tensor cores (3×3) so do `reluInput`
 * and `residual` unless FLASHDEPTH_RCU_FUSION=off; elsewhere they are ops of their own.
 */
export function conv2d(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor | undefined,
  stride = 1,
  padding = 0,
  epilogue: ConvEpilogue = {},
): tf.Tensor4D {
  const activation = epilogue.activation ?? 'linear';
  const { reluInput = false, residual } = epilogue;
  if (residual && activation !== 'linear') throw new ShapeError('conv2d: a residual is added to a linear output only (no activation)');
  const [kh, kw, cin, cout] = filter.shape;
  if ((reluInput || residual) && useTensorCores() && tensorCoreConvSupports(kh, kw, stride, padding, cin, cout) && rcuFusion() === 'on') {
    return tensorCoreConv3x3(x, filter, bias, activation === 'relu', stride, undefined, { reluInput, ...(residual ? { residual } : {}) });
  }
  const y = convUnfused(reluInput ? tf.relu(x) : x, filter, bias, stride, padding, activation);
  return residual ? tf.add(y, residual) : y;
}

/** conv2d without `reluInput` and `residual`. */
function convUnfused(x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor | undefined, stride: number, padding: number, activation: 'relu' | 'linear'): tf.Tensor4D {
  if (useTensorCores()) {
    // --precision mixed: 3×3 convs as implicit GEMMs and 1×1 convs as plain products on tensor cores.
    const [kh, kw, cin, cout] = filter.shape;
    if (tensorCoreConvSupports(kh, kw, stride, padding, cin, cout)) return tensorCoreConv3x3(x, filter, bias, activation === 'relu', stride);
    if (kh === 1 && kw === 1 && stride === 1 && padding === 0 && mixedMatMulSupports(cin, cout)) {
      const [b, h, w] = x.shape;
      const y = mixedMatMul(tf.reshape(x, [b * h * w, cin]) as tf.Tensor2D, tf.reshape(filter, [cin, cout]) as tf.Tensor2D, { bias, ...(activation === 'relu' ? { activation: 'relu' as const } : {}) });
      return tf.reshape(y, [b, h, w, cout]) as tf.Tensor4D;
    }
  }
  if (useFusedKernels()) {
    // A 1×1 conv to ≤ 4 channels (the depth head's last): one dispatch, where tfjs' matMul needs bands at 2K.
    const [kh, kw, cin, cout] = filter.shape;
    if (kh === 1 && kw === 1 && stride === 1 && padding === 0 && pointwiseConvSupports(cin, cout)) return fusedPointwiseConv(x, filter, bias, activation === 'relu');
  }
  if (useIm2colConv()) {
    const padded = padding > 0 ? tf.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]]) : x;
    const y = conv2dIm2col(padded, filter, bias, stride);
    return activation === 'relu' ? tf.relu(y) : y;
  }
  const [b, h, w, c] = x.shape;
  const [kh, kw] = filter.shape;
  const outH = Math.floor((h + 2 * padding - kh) / stride) + 1;
  const outW = Math.floor((w + 2 * padding - kw) / stride) + 1;
  const bandRows = Math.max(1, Math.floor(MAX_CONV_OUTPUT_PIXELS / outW));
  const band = (input: tf.Tensor4D, top: number, bottom: number) =>
    tf.fused.conv2d({ x: input, filter, strides: stride, pad: convPadding(top, bottom, padding), bias, activation });
  if (outH <= bandRows) return band(x, padding, padding);
  const bands: tf.Tensor4D[] = [];
  for (let r0 = 0; r0 < outH; r0 += bandRows) {
    const rows = Math.min(bandRows, outH - r0);
    // Output rows r0..r0+rows-1 read padded rows r0·s .. (r0+rows-1)·s + kh - 1, i.e. input rows shifted up by
    // `padding`; the part of that window outside the input becomes this band's own top/bottom zero padding.
    const first = r0 * stride - padding;
    const last = (r0 + rows - 1) * stride - padding + kh - 1;
    const start = Math.max(0, first);
    const end = Math.min(h - 1, last);
    bands.push(band(tf.slice(x, [0, start, 0, 0], [b, end - start + 1, w, c]), start - first, last - end));
  }
  return tf.concat(bands, 1);
}

/**
 * The conv's `pad` argument for `top`/`bottom` rows and `side` columns of zeros. No padding stays 'valid': webgpu runs
 * 1×1 'valid' convs as a plain matMul, which an explicit all-zero padding would lose.
 */
function convPadding(top: number, bottom: number, side: number): 'valid' | number | tf.backend_util.ExplicitPadding {
  if (top === 0 && bottom === 0 && side === 0) return 'valid';
  if (top === side && bottom === side) return side;
  return [[0, 0], [top, bottom], [side, side], [0, 0]];
}

/**
 * True while a gradient is being recorded on wasm or cpu: wasm has no Conv2DBackpropFilter (tfjs-notes §2.2), so
 * training there uses the im2col form, whose ops all have wasm gradients. Inference keeps the fused conv kernel.
 */
function useIm2colConv(): boolean {
  if (tf.engine().state.gradientDepth === 0) return false;
  const backend = tf.getBackend();
  return backend === 'wasm' || backend === 'cpu';
}

/**
 * ConvTranspose2d with kernel = stride = s and no padding (the DPT's ×4/×2 up-sampling: no overlap) of NHWC `x` with
 * the filter as stored, `weight` [s, s, out, in]: out[s·y+ky, s·x+kx] = Σ_in x[y, x, in] · W[ky, kx, out, in] + b,
 * one per-pixel product [B·h·w, in] · [in, s·s·out] (on tensor cores under `--precision mixed`, the filter packed
 * transposed once; elsewhere tf.matMul with transposeB: no per-frame transpose of the filter).
 */
export function convTransposeNoOverlap(x: tf.Tensor4D, weight: tf.Tensor4D, bias: tf.Tensor, s: number): tf.Tensor4D {
  const [b, h, w, inChannels] = x.shape;
  const outChannels = weight.shape[2];
  const perPixel = tf.reshape(weight, [s * s * outChannels, inChannels]) as tf.Tensor2D; // [s·s·out, in]
  const pixels = tf.reshape(x, [b * h * w, inChannels]) as tf.Tensor2D; // [B·h·w, in]
  const product = useTensorCores() && mixedMatMulSupports(inChannels, s * s * outChannels)
    ? mixedMatMul(pixels, perPixel, { transposeB: true })
    : tf.matMul(pixels, perPixel, false, true);
  const blocks = tf.reshape(product, [b, h, w, s, s, outChannels]); // [B, h, w, ky, kx, out]
  const rows = tf.transpose(blocks, [0, 1, 3, 2, 4, 5]); // [B, h, ky, w, kx, out]
  return tf.add(tf.reshape(rows, [b, h * s, w * s, outChannels]), bias) as tf.Tensor4D; // [B, s·h, s·w, out]
}

/**
 * Convolution of an already padded NHWC input as im2col: kh·kw shifted slices concatenated on channels (order
 * (ky, kx, c), matching the [kh, kw, in, out] filter flattened to [kh·kw·in, out]) and one matMul. Stride s takes every
 * s-th window by a reshape to [B, outH, s, outW, s, C] and a slice (stridedSlice has no gradient). Exactly the
 * 'valid' convolution; uses kh·kw times the input's memory, so only training on wasm/cpu takes this path.
 */
export function conv2dIm2col(padded: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor | undefined, stride = 1): tf.Tensor4D {
  const [b, hp, wp, c] = padded.shape;
  const [kh, kw, , co] = filter.shape;
  const outH = Math.floor((hp - kh) / stride) + 1;
  const outW = Math.floor((wp - kw) / stride) + 1;
  // Each tap reads outH·s rows from its offset; pad the far edges so that read stays inside (the extra rows are dropped).
  const extraH = Math.max(0, kh - 1 + outH * stride - hp);
  const extraW = Math.max(0, kw - 1 + outW * stride - wp);
  const x = extraH > 0 || extraW > 0 ? tf.pad(padded, [[0, 0], [0, extraH], [0, extraW], [0, 0]]) : padded;
  const taps: tf.Tensor4D[] = [];
  for (let ky = 0; ky < kh; ky++) {
    for (let kx = 0; kx < kw; kx++) {
      let tap = tf.slice(x, [0, ky, kx, 0], [b, outH * stride, outW * stride, c]);
      if (stride > 1) {
        const split = tf.reshape(tap, [b, outH, stride, outW, stride, c]); // [B, outH·s, outW·s, C] → [B, outH, s, outW, s, C]
        tap = tf.reshape(tf.slice(split, [0, 0, 0, 0, 0, 0], [b, outH, 1, outW, 1, c]), [b, outH, outW, c]);
      }
      taps.push(tap);
    }
  }
  const patches = taps.length === 1 ? taps[0]! : tf.concat(taps, 3); // [B, outH, outW, kh·kw·C]
  const cols = tf.reshape(patches, [b * outH * outW, kh * kw * c]) as tf.Tensor2D;
  let y: tf.Tensor = tf.matMul(cols, tf.reshape(filter, [kh * kw * c, co]) as tf.Tensor2D);
  if (bias) y = tf.add(y, bias);
  return tf.reshape(y, [b, outH, outW, co]) as tf.Tensor4D;
}

/** Bilinear resize of an NHWC map with align_corners=True (every FlashDepth up/down-sampling except the pos-embed). */
export function resizeAlignCorners(x: tf.Tensor4D, height: number, width: number): tf.Tensor4D {
  if (x.shape[1] === height && x.shape[2] === width) return x;
  if (useFusedKernels() && vec4Compatible(x.shape[3])) return fusedResizeAlignCorners(x, height, width); // vec4 loads, not tfjs' scalar ones
  return tf.image.resizeBilinear(x, [height, width], true, false);
}
