/**
 * The DPT decoder and output head of Depth Anything V2 / FlashDepth (spec §2.3, §2.4), NHWC throughout.
 *
 * Public API (all methods run inside the caller's tf.tidy):
 *  - `new DPTHead({inChannels, features, outChannels})`: parameters named as the checkpoint's `depth_head.*` keys
 *    (load with `loadWeights(head, source, {prefix: 'depth_head.'})`).
 *  - `decode(taps, ph, pw, onPath?)`: 4 ViT taps [B, ph·pw, D] → path_1 [B, 8·ph, 8·pw, F]. `onPath(index, path)` is
 *    called after each refinenet with the `mamba_in_dpt_layer` index (0 = path_4 … 3 = path_1, spec §1.2) and its
 *    return value replaces that path: the hybrid fusion replaces path_4, the temporal module the tapped path.
 *  - `head(path1, ph, pw)`: → `{headPreRelu, depth}`, each [B, 14·ph, 14·pw].
 *  - `getPath4(taps, ph, pw)`: path_4 only (what the Full model's frozen teacher contributes, spec §2.6 step 3).
 *
 * The ×4/×2 ConvTranspose2d layers (kernel = stride, no padding, so no overlap) are computed as a per-pixel matMul
 * followed by depth-to-space: unlike tf.conv2dTranspose this has wasm kernels *and* gradients for the filter.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ConfigError, ShapeError } from '../errors.js';
import { FlashModule, type FlashModuleArgs } from './module.js';
import { convTransposeNoOverlap, resizeAlignCorners } from './ops.js';
import { FeatureFusionBlock } from './fusion-block.js';
import { Conv2d, fanInUniform, singleInput } from './layers.js';

/** ViT patch size: the head resizes back to 14 pixels per patch. */
const PATCH_SIZE = 14;

export interface ConvTranspose2dOptions extends FlashModuleArgs {
  inChannels: number;
  outChannels: number;
  /** Kernel size, equal to the stride (the only form DPT uses). */
  scale: number;
}

/**
 * nn.ConvTranspose2d(in, out, kernel_size=s, stride=s, padding=0): torch weight (in, out, s, s), ours
 * [s, s, out, in] (the tf.conv2dTranspose filter layout).
 */
export class ConvTranspose2d extends FlashModule {
  static className = 'FlashDepthConvTranspose2d';
  readonly weight: tfl.LayerVariable;
  readonly bias: tfl.LayerVariable;
  private readonly convOptions: Omit<ConvTranspose2dOptions, keyof FlashModuleArgs>;

  constructor(options: ConvTranspose2dOptions) {
    super(options);
    const { inChannels, outChannels, scale } = options;
    this.convOptions = { inChannels, outChannels, scale };
    // PyTorch computes a ConvTranspose's fan-in from weight.size(1) · k · k = out · s².
    const fanIn = outChannels * scale * scale;
    this.weight = this.param('weight', [scale, scale, outChannels, inChannels], 'conv2dTranspose', fanInUniform(fanIn));
    this.bias = this.param('bias', [outChannels], 'same', fanInUniform(fanIn));
  }

  /** x: [B, h, w, in] → [B, s·h, s·w, out]; out[s·y+ky, s·x+kx] = Σ_in x[y, x, in] · W[in, out, ky, kx] + b. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    const { inChannels, scale } = this.convOptions;
    const c = x.shape[3];
    if (c !== inChannels) throw new ShapeError(`${this.name}: expected ${inChannels} input channels (NHWC), received shape [${x.shape.join(', ')}]`);
    return convTransposeNoOverlap(x, this.weight.read() as tf.Tensor4D, this.bias.read(), scale);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(singleInput<tf.Tensor4D>(inputs, this.name)));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.convOptions };
  }
}
tf.serialization.registerClass(ConvTranspose2d);

export interface DPTHeadOptions extends FlashModuleArgs {
  /** ViT embedding dim D (384 for ViT-S, 1024 for ViT-L). */
  inChannels: number;
  /** `dpt_dim`, F (64 for S/Full, 256 for L). */
  features: number;
  /** Channels of the four reassembled maps ([48, 96, 192, 384] for S, [256, 512, 1024, 1024] for L). */
  outChannels: readonly [number, number, number, number];
}

/** `mamba_in_dpt_layer` indexing of the decoder paths: 0 = path_4, 1 = path_3, 2 = path_2, 3 = path_1. */
export type DptPathIndex = 0 | 1 | 2 | 3;

/** Sees (and may replace) each refinenet's output; return the path unchanged to observe only. */
export type PathHook = (index: DptPathIndex, path: tf.Tensor4D) => tf.Tensor4D;

export interface HeadOutput {
  /** output_conv2[2] before its ReLU: [B, H, W]. */
  headPreRelu: tf.Tensor3D;
  /** ReLU'd inverse depth: [B, H, W]. */
  depth: tf.Tensor3D;
}

type Reassemble = (x: tf.Tensor4D) => tf.Tensor4D;

/**
 * Runs one stateless decoder stage `fn(...inputs)` whose parameters are those of `modules`; training sets it to
 * recompute the stage in backward instead of keeping its activations (src/train/recompute.ts).
 */
export type StageRunner = <I extends tf.Tensor[], T extends tf.Tensor>(fn: (...inputs: I) => T, inputs: I, modules: readonly FlashModule[]) => T;

/** DPTHead with checkpoint names: projects.*, resize_layers.{0,1,3}, scratch.*. */
export class DPTHead extends FlashModule {
  static className = 'FlashDepthDPTHead';
  readonly projects: Conv2d[];
  /** resize_layers[0..3]; index 2 is nn.Identity (no parameters). */
  private readonly resizeLayers: Reassemble[];
  /** The modules behind resizeLayers (null for the Identity), whose parameters a recomputed stage must list. */
  private readonly resizeModules: Array<FlashModule | null>;
  readonly layerRn: Conv2d[];
  /** scratch.refinenet1..4 at indices 0..3. */
  readonly refinenets: FeatureFusionBlock[];
  readonly outputConv1: Conv2d;
  readonly outputConv2a: Conv2d;
  readonly outputConv2b: Conv2d;
  private readonly headOptions: Omit<DPTHeadOptions, keyof FlashModuleArgs>;
  /** When set, runs each reassemble stage, refinenet and the output head (not the `onPath` hooks); see StageRunner. */
  stageRunner: StageRunner | null = null;

  constructor(options: DPTHeadOptions) {
    super(options);
    const { inChannels, features, outChannels } = options;
    for (const [what, v] of [['inChannels', inChannels], ['features', features], ...outChannels.map((c, i) => [`outChannels[${i}]`, c])] as Array<[string, number]>) {
      if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`DPTHead: expected a positive integer for ${what} but received ${String(v)}`);
    }
    if (outChannels.length !== 4) throw new ConfigError(`DPTHead: expected 4 outChannels but received ${outChannels.length}`);
    if (features % 2 !== 0) throw new ConfigError(`DPTHead: features (dpt_dim) must be even (output_conv1 halves it) but is ${features}`);
    this.headOptions = { inChannels, features, outChannels: [...outChannels] as [number, number, number, number] };

    this.projects = outChannels.map((oc, i) => this.child(`projects.${i}`, new Conv2d({ inChannels, outChannels: oc, kernelSize: 1 })));
    const up4 = this.child('resize_layers.0', new ConvTranspose2d({ inChannels: outChannels[0], outChannels: outChannels[0], scale: 4 }));
    const up2 = this.child('resize_layers.1', new ConvTranspose2d({ inChannels: outChannels[1], outChannels: outChannels[1], scale: 2 }));
    // Stride 2 with symmetric padding 1: ceil(n/2) outputs (TF 'same' would pad asymmetrically).
    const down2 = this.child('resize_layers.3', new Conv2d({ inChannels: outChannels[3], outChannels: outChannels[3], kernelSize: 3, stride: 2, padding: 1 }));
    this.resizeLayers = [(x) => up4.forward(x), (x) => up2.forward(x), (x) => x, (x) => down2.forward(x)];
    this.resizeModules = [up4, up2, null, down2];
    this.layerRn = outChannels.map((oc, i) =>
      this.child(`scratch.layer${i + 1}_rn`, new Conv2d({ inChannels: oc, outChannels: features, kernelSize: 3, padding: 1, bias: false })));
    this.refinenets = [1, 2, 3, 4].map((k) => this.child(`scratch.refinenet${k}`, new FeatureFusionBlock({ features })));
    const half = features / 2;
    this.outputConv1 = this.child('scratch.output_conv1', new Conv2d({ inChannels: features, outChannels: half, kernelSize: 3, padding: 1 }));
    this.outputConv2a = this.child('scratch.output_conv2.0', new Conv2d({ inChannels: half, outChannels: 32, kernelSize: 3, padding: 1 }));
    this.outputConv2b = this.child('scratch.output_conv2.2', new Conv2d({ inChannels: 32, outChannels: 1, kernelSize: 1 }));
  }

  get options(): Readonly<Omit<DPTHeadOptions, keyof FlashModuleArgs>> {
    return this.headOptions;
  }

  /**
   * Tap i ([B, ph·pw, D] tokens) → layer_{i+1}: tokens as a grid, projects[i], resize_layers[i]. Sizes: layer_1 at
   * 4·grid, layer_2 at 2·grid, layer_3 at grid, layer_4 at ceil(grid/2).
   */
  reassemble(index: number, tokens: tf.Tensor3D, ph: number, pw: number): tf.Tensor4D {
    const [b, n, d] = tokens.shape;
    if (n !== ph * pw || d !== this.headOptions.inChannels) {
      throw new ShapeError(`DPTHead: tap ${index} has shape [${tokens.shape.join(', ')}], expected [B, ${ph * pw} (= ${ph}×${pw}), ${this.headOptions.inChannels}]`);
    }
    const grid = tf.reshape(tokens, [b, ph, pw, d]) as tf.Tensor4D; // [B, ph·pw, D] → [B, ph, pw, D], raster order
    return this.resizeLayers[index]!(this.projects[index]!.forward(grid));
  }

  /** The four ViT taps → path_1 [B, 8·ph, 8·pw, F]; `onPath` may replace any path (see the file header). */
  decode(taps: readonly tf.Tensor3D[], ph: number, pw: number, onPath?: PathHook): tf.Tensor4D {
    this.checkTaps(taps);
    const hook: PathHook = onPath ?? ((_, path) => path);
    const [layer_1_rn, layer_2_rn, layer_3_rn, layer_4_rn] = taps.map((t, i) =>
      this.stage([t], (tokens) => this.layerRn[i]!.forward(this.reassemble(i, tokens, ph, pw)), this.reassembleModules(i))) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];

    // Each refinenet is one stage; the hooks (fusion, Mamba with its carried state) run between stages, never inside.
    const [refinenet1, refinenet2, refinenet3, refinenet4] = this.refinenets as [FeatureFusionBlock, FeatureFusionBlock, FeatureFusionBlock, FeatureFusionBlock];
    const size3 = spatial(layer_3_rn);
    const size2 = spatial(layer_2_rn);
    const size1 = spatial(layer_1_rn);
    // refinenet4 gets no skip, so its resConfUnit1 is unused: listing it would give it a zero gradient instead of none.
    const path_4 = hook(0, this.stage([layer_4_rn], (l4) => refinenet4.forward(l4, undefined, size3), [refinenet4.resConfUnit2, refinenet4.outConv]));
    const path_3 = hook(1, this.stage([path_4, layer_3_rn], (p, l3) => refinenet3.forward(p, l3, size2), [refinenet3]));
    const path_2 = hook(2, this.stage([path_3, layer_2_rn], (p, l2) => refinenet2.forward(p, l2, size1), [refinenet2]));
    const path_1 = hook(3, this.stage([path_2, layer_1_rn], (p, l1) => refinenet1.forward(p, l1), [refinenet1]));
    return path_1;
  }

  /** path_4 only, from taps 2 and 3 (of the four): projects/resize_layers/layer_rn 3 and 4, then refinenet4. */
  getPath4(taps: readonly tf.Tensor3D[], ph: number, pw: number): tf.Tensor4D {
    this.checkTaps(taps);
    const layer_3_rn = this.layerRn[2]!.forward(this.reassemble(2, taps[2]!, ph, pw));
    const layer_4_rn = this.layerRn[3]!.forward(this.reassemble(3, taps[3]!, ph, pw));
    return this.refinenets[3]!.forward(layer_4_rn, undefined, spatial(layer_3_rn));
  }

  /** Output head: path_1 [B, 8·ph, 8·pw, F] → {headPreRelu, depth}, each [B, 14·ph, 14·pw]. */
  head(path1: tf.Tensor4D, ph: number, pw: number): HeadOutput {
    const headPreRelu = this.stage([path1], (p) => {
      let h = this.outputConv1.forward(p);
      h = resizeAlignCorners(h, ph * PATCH_SIZE, pw * PATCH_SIZE);
      h = this.outputConv2a.forward(h, { activation: 'relu' }); // output_conv2[0] and its ReLU [1] in one kernel
      const out = this.outputConv2b.forward(h); // [B, H, W, 1]
      const [b, height, width] = out.shape;
      return tf.reshape(out, [b, height, width]) as tf.Tensor3D; // [B, H, W, 1] → [B, H, W]
    }, [this.outputConv1, this.outputConv2a, this.outputConv2b]);
    return { headPreRelu, depth: tf.relu(headPreRelu) };
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    throw new ShapeError(`${this.name}: DPTHead needs the patch grid; call decode(taps, ph, pw) and head(path1, ph, pw) instead of apply() (${Array.isArray(inputs) ? inputs.length : 1} input(s))`);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), inChannels: this.headOptions.inChannels, features: this.headOptions.features, outChannels: [...this.headOptions.outChannels] };
  }

  private stage<I extends tf.Tensor[], T extends tf.Tensor>(inputs: I, fn: (...inputs: I) => T, modules: readonly FlashModule[]): T {
    return this.stageRunner ? this.stageRunner(fn, inputs, modules) : fn(...inputs);
  }

  /** projects[i], resize_layers[i] and layer{i+1}_rn: the parameters of reassemble stage i. */
  private reassembleModules(index: number): FlashModule[] {
    const resize = this.resizeModules[index];
    return [this.projects[index]!, ...(resize ? [resize] : []), this.layerRn[index]!];
  }

  private checkTaps(taps: readonly tf.Tensor3D[]): void {
    if (taps.length !== 4) throw new ShapeError(`DPTHead: expected 4 ViT taps but received ${taps.length}`);
  }
}
tf.serialization.registerClass(DPTHead);

function spatial(x: tf.Tensor4D): [number, number] {
  return [x.shape[1], x.shape[2]];
}
