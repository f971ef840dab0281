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
import { ShapeError } from '../errors.js';
import { Conv2d, singleInput } from './layers.js';
import { FlashModule, type FlashModuleArgs } from './module.js';
import { resizeAlignCorners } from './ops.js';


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
    // The skip needs the un-activated x, so the outer ReLU is conv1's input's, not x's: on tensor cores it runs while
    // conv1 packs its image to f16, the inner one in conv1's epilogue, and the skip in conv2's (elsewhere, and with
    // FLASHDEPTH_RCU_FUSION=off, ops of their own: conv2d).
    return this.conv2.forward(this.conv1.forward(x, { reluInput: true, activation: 'relu' }), { residual: x });
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
