/**
 * The leaf layers every FlashDepth module builds from, named as PyTorch's: nn.Linear, nn.LayerNorm, nn.Conv2d.
 * Weights are stored in tfjs layout (Linear [in, out], Conv [kh, kw, in, out]); `src/models/weights.ts` converts.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ShapeError } from '../errors.js';
import { FlashModule, type FlashModuleArgs, type Initializer } from './module.js';
import { conv2d, layerNorm, layerNormDroppingFirst, linear, type ConvEpilogue, type LinearFusion } from './ops.js';
import type { LayerNormParams } from '../kernels/index.js';

/** PyTorch's default Conv/Linear init, U(±1/√fan_in), so a freshly built module computes something non-trivial. */
export function fanInUniform(fanIn: number): Initializer {
  const bound = 1 / Math.sqrt(fanIn);
  return tfl.initializers.randomUniform({ minval: -bound, maxval: bound });
}

/** Unwraps the single input of a one-input block's `call()`. */
export function singleInput<T extends tf.Tensor>(inputs: tf.Tensor | tf.Tensor[], what: string): T {
  const list = Array.isArray(inputs) ? inputs : [inputs];
  if (list.length !== 1) throw new ShapeError(`${what}: expected 1 input tensor, received ${list.length}`);
  return list[0] as T;
}

export interface Conv2dOptions extends FlashModuleArgs {
  inChannels: number;
  outChannels: number;
  kernelSize: number;
  stride?: number;
  /** Symmetric zero padding on both spatial axes (PyTorch `padding=`). */
  padding?: number;
  /** Default true. */
  bias?: boolean;
}

/** nn.Conv2d: parameters `weight` (torch (out, in, kh, kw), ours [kh, kw, in, out]) and optionally `bias`. */
export class Conv2d extends FlashModule {
  static className = 'FlashDepthConv2d';
  readonly weight: tfl.LayerVariable;
  readonly bias: tfl.LayerVariable | undefined;
  private readonly convOptions: Required<Omit<Conv2dOptions, keyof FlashModuleArgs>>;

  constructor(options: Conv2dOptions) {
    super(options);
    const { inChannels, outChannels, kernelSize, stride = 1, padding = 0, bias = true } = options;
    this.convOptions = { inChannels, outChannels, kernelSize, stride, padding, bias };
    const fanIn = inChannels * kernelSize * kernelSize;
    this.weight = this.param('weight', [kernelSize, kernelSize, inChannels, outChannels], 'conv2d', fanInUniform(fanIn));
    this.bias = bias ? this.param('bias', [outChannels], 'same', fanInUniform(fanIn)) : undefined;
  }

  /** x: [B, H, W, in] → [B, H', W', out], then the optional epilogue (a ReLU) inside the same conv kernel. */
  forward(x: tf.Tensor4D, epilogue?: ConvEpilogue): tf.Tensor4D {
    const { inChannels, stride, padding } = this.convOptions;
    if (x.shape[3] !== inChannels) {
      throw new ShapeError(`${this.name}: expected ${inChannels} input channels (NHWC), received shape [${x.shape.join(', ')}]`);
    }
    return conv2d(x, this.weight.read() as tf.Tensor4D, this.bias?.read(), stride, padding, epilogue);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(singleInput<tf.Tensor4D>(inputs, this.name)));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.convOptions };
  }
}
tf.serialization.registerClass(Conv2d);

export interface LinearOptions extends FlashModuleArgs {
  inFeatures: number;
  outFeatures: number;
  /** Default true. */
  bias?: boolean;
  /** Zero-initialise the weight and bias (reference `zero_init`); default: U(±1/√in). */
  zeroInit?: boolean;
  /** Weight initialiser (overrides the default U(±1/√in), e.g. DINOv2's truncated normal 0.02). */
  weightInit?: Initializer;
}

/** nn.Linear: `weight` (torch (out, in), ours [in, out]) and optionally `bias`. Acts on the last axis. */
export class Linear extends FlashModule {
  static className = 'FlashDepthLinear';
  readonly weight: tfl.LayerVariable;
  readonly bias: tfl.LayerVariable | undefined;
  private readonly linearOptions: Required<Omit<LinearOptions, keyof FlashModuleArgs | 'weightInit'>>;

  constructor(options: LinearOptions) {
    super(options);
    const { inFeatures, outFeatures, bias = true, zeroInit = false } = options;
    this.linearOptions = { inFeatures, outFeatures, bias, zeroInit };
    const init = zeroInit ? tfl.initializers.zeros() : fanInUniform(inFeatures);
    this.weight = this.param('weight', [inFeatures, outFeatures], 'linear', zeroInit ? init : (options.weightInit ?? init));
    this.bias = bias ? this.param('bias', [outFeatures], 'same', init) : undefined;
  }

  /** The weight [in, out] and bias as tensors (the ops that take a layer's parameters: mlp, the tensor-core branches). */
  params(): { weight: tf.Tensor2D; bias?: tf.Tensor } {
    return { weight: this.weight.read() as tf.Tensor2D, bias: this.bias?.read() };
  }

  /** x·W + b with the optional LayerNorm before and epilogue after (fused into its kernels under `--precision mixed`). */
  forward<T extends tf.Tensor>(x: T, fusion?: LinearFusion): T {
    const inFeatures = this.linearOptions.inFeatures;
    if (x.shape[x.shape.length - 1] !== inFeatures) {
      throw new ShapeError(`${this.name}: expected ${inFeatures} features on the last axis, received shape [${x.shape.join(', ')}]`);
    }
    return linear(x, this.weight.read(), this.bias?.read(), fusion) as T;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(singleInput(inputs, this.name)));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.linearOptions };
  }
}
tf.serialization.registerClass(Linear);

export interface LayerNormOptions extends FlashModuleArgs {
  features: number;
  /** Always explicit: PyTorch modules differ (DINOv2 1e-6, Mamba/fusion 1e-5) and tfjs defaults to 1e-3. */
  eps: number;
}

/** nn.LayerNorm over the last axis: `weight`, `bias`. */
export class LayerNorm extends FlashModule {
  static className = 'FlashDepthLayerNorm';
  readonly weight: tfl.LayerVariable;
  readonly bias: tfl.LayerVariable;
  readonly eps: number;

  constructor(options: LayerNormOptions) {
    super(options);
    this.eps = options.eps;
    this.weight = this.param('weight', [options.features], 'same', tfl.initializers.ones());
    this.bias = this.param('bias', [options.features], 'same', tfl.initializers.zeros());
  }

  forward<T extends tf.Tensor>(x: T): T {
    return layerNorm(x, this.weight.read(), this.bias.read(), this.eps) as T;
  }

  /** This norm of tokens 1… of each sequence of x [B, T, C] (a ViT's patch tokens): [B, T − 1, C]. */
  forwardDroppingFirst(x: tf.Tensor3D): tf.Tensor3D {
    return layerNormDroppingFirst(x, this.weight.read(), this.bias.read(), this.eps);
  }

  /** This norm as a linear layer's prologue (`Linear.forward(x, { layerNorm })` computes linear(norm(x))). */
  asPrologue(): LayerNormParams {
    return { weight: this.weight.read(), bias: this.bias.read(), eps: this.eps };
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(singleInput(inputs, this.name)));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), features: this.weight.shape[0]!, eps: this.eps };
  }
}
tf.serialization.registerClass(LayerNorm);
