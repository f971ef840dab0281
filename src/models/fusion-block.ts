/**
 * Convolution building blocks of the DPT decoder (spec §2.3), NHWC throughout.
 *
 *  - `Conv2d`: a PyTorch nn.Conv2d (weight `[kh, kw, in, out]`, optional bias) with symmetric zero padding.
 *  - `ResidualConvUnit` (`resConfUnit1/2`): RCU(x) = conv2(ReLU(conv1(ReLU(x)))) + x, 3×3 convs with bias, no BN.
 *  - `FeatureFusionBlock` (`scratch.refinenet{1..4}`): out = a [+ RCU₁(b)] → RCU₂ → bilinear resize
 *    (align_corners=True) to `size`, or ×2 without one → 1×1 `out_conv`.
 *
 * All `forward` methods run inside the caller's tf.tidy and return new tensors.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ShapeError } from '../errors.js';
import { FlashModule, type FlashModuleArgs, type Initializer } from './module.js';
import { conv2d, resizeAlignCorners } from './ops.js';

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

  /** x: [B, H, W, in] → [B, H', W', out]. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    const { inChannels, stride, padding } = this.convOptions;
    if (x.shape[3] !== inChannels) {
      throw new ShapeError(`${this.name}: expected ${inChannels} input channels (NHWC), received shape [${x.shape.join(', ')}]`);
    }
    return conv2d(x, this.weight.read() as tf.Tensor4D, this.bias?.read(), stride, padding);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(singleInput<tf.Tensor4D>(inputs, this.name)));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.convOptions };
  }
}
tf.serialization.registerClass(Conv2d);

/** Options of the blocks that only need the feature width F (`dpt_dim`). */
export interface FeaturesOptions extends FlashModuleArgs {
  features: number;
}

/** Spatial size of a feature map as [height, width]. */
export type Size2D = readonly [number, number];

/** resConfUnit: conv2(ReLU(conv1(ReLU(x)))) + x; the ReLU is not in-place, so the skip sees the un-activated x. */
export class ResidualConvUnit extends FlashModule {
  static className = 'FlashDepthResidualConvUnit';
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;

  readonly features: number;

  constructor(options: FeaturesOptions) {
    super(options);
    const features = (this.features = options.features);
    this.conv1 = this.child('conv1', new Conv2d({ inChannels: features, outChannels: features, kernelSize: 3, padding: 1 }));
    this.conv2 = this.child('conv2', new Conv2d({ inChannels: features, outChannels: features, kernelSize: 3, padding: 1 }));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    const out = this.conv2.forward(tf.relu(this.conv1.forward(tf.relu(x))));
    return tf.add(out, x);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(singleInput<tf.Tensor4D>(inputs, this.name)));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), features: this.features };
  }
}
tf.serialization.registerClass(ResidualConvUnit);

/**
 * DPT FeatureFusionBlock (refinenet). `resConfUnit1` always exists (checkpoints carry it even for refinenet4,
 * which never receives a skip input), so a strict load finds every key.
 */
export class FeatureFusionBlock extends FlashModule {
  static className = 'FlashDepthFeatureFusionBlock';
  readonly resConfUnit1: ResidualConvUnit;
  readonly resConfUnit2: ResidualConvUnit;
  readonly outConv: Conv2d;

  readonly features: number;

  constructor(options: FeaturesOptions) {
    super(options);
    const features = (this.features = options.features);
    this.outConv = this.child('out_conv', new Conv2d({ inChannels: features, outChannels: features, kernelSize: 1 }));
    this.resConfUnit1 = this.child('resConfUnit1', new ResidualConvUnit({ features }));
    this.resConfUnit2 = this.child('resConfUnit2', new ResidualConvUnit({ features }));
  }

  /**
   * path: [B, h, w, F]; skip (the layer_k_rn map at the same size), if given, is added after RCU₁.
   * size: output [height, width]; omitted → ×2 (PyTorch scale_factor=2 with align_corners=True gives exactly 2n).
   */
  forward(path: tf.Tensor4D, skip?: tf.Tensor4D, size?: Size2D): tf.Tensor4D {
    let output = path;
    if (skip !== undefined) {
      if (skip.shape[1] !== path.shape[1] || skip.shape[2] !== path.shape[2]) {
        throw new ShapeError(`${this.name}: skip input [${skip.shape.join(', ')}] does not match path [${path.shape.join(', ')}]`);
      }
      output = tf.add(output, this.resConfUnit1.forward(skip));
    }
    output = this.resConfUnit2.forward(output);
    const [height, width] = size ?? [2 * path.shape[1], 2 * path.shape[2]];
    output = resizeAlignCorners(output, height, width);
    return this.outConv.forward(output);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    return tf.tidy(() => this.forward(list[0] as tf.Tensor4D, list[1] as tf.Tensor4D | undefined));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), features: this.features };
  }
}
tf.serialization.registerClass(FeatureFusionBlock);
