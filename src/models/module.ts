/**
 * The base of every FlashDepth building block.
 *
 * Each block is a `tf.layers.Layer` (so it serializes and shows up in tfjs tooling) that additionally
 *  - names its parameters exactly as the PyTorch state dict does (`qkv.weight`, `ls1.gamma`), and
 *  - registers its children under their PyTorch attribute names (`blocks.3`, `scratch.refinenet1`).
 * `namedParameters()` then yields the full checkpoint key of every parameter (`pretrained.blocks.3.attn.qkv.weight`),
 * which makes weight loading a lookup (see `src/models/weights.ts`).
 *
 * Parameters are stored in tfjs layout (Linear as [in, out], Conv as [kh, kw, in, out]); the PyTorch → tfjs layout
 * change of each parameter is declared where it is created (`ParamLayout`) and applied only by the weight loader.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

/** How a parameter is laid out in the PyTorch checkpoint relative to our tfjs tensor (spec §4.4). */
export type ParamLayout =
  /** Same layout (biases, norms, gammas, pos_embed, Mamba vectors). */
  | 'same'
  /** nn.Linear weight: torch (out, in) → ours [in, out]. */
  | 'linear'
  /** nn.Conv2d weight: torch (out, in, kh, kw) → ours [kh, kw, in, out]. */
  | 'conv2d'
  /** nn.ConvTranspose2d weight: torch (in, out, kh, kw) → ours [kh, kw, out, in] (tf.conv2dTranspose filter). */
  | 'conv2dTranspose'
  /** Depthwise nn.Conv1d weight: torch (channels, 1, k) → ours [k, channels]. */
  | 'depthwiseConv1d';

export type Initializer = ReturnType<typeof tfl.initializers.zeros>;

export interface ParamSpec {
  /** Local PyTorch name, e.g. `weight`, `gamma`, `A_log`. */
  name: string;
  /** Shape in our (tfjs) layout. */
  shape: number[];
  layout: ParamLayout;
  variable: tfl.LayerVariable;
}

export interface NamedParameter {
  /** Full PyTorch state-dict key, e.g. `pretrained.blocks.0.attn.qkv.weight`. */
  key: string;
  spec: ParamSpec;
  /** The module that owns the parameter. */
  owner: FlashModule;
}

export interface FlashModuleArgs {
  name?: string;
  trainable?: boolean;
}

/** A tfjs Layer with PyTorch-named parameters and children. */
export abstract class FlashModule extends tfl.layers.Layer {
  private readonly paramSpecs: ParamSpec[] = [];
  private readonly childModules: Array<[string, FlashModule]> = [];

  constructor(args: FlashModuleArgs = {}) {
    super({ name: args.name, trainable: args.trainable ?? true });
    // Weights are created eagerly in the constructor; there is nothing left for build() to infer.
    this.built = true;
  }

  /** Creates a parameter named as in PyTorch (`localName`), in tfjs layout. */
  protected param(localName: string, shape: number[], layout: ParamLayout, initializer: Initializer = tfl.initializers.zeros()): tfl.LayerVariable {
    const variable = this.addWeight(localName, shape, 'float32', initializer, undefined, true);
    this.paramSpecs.push({ name: localName, shape, layout, variable });
    return variable;
  }

  /** Registers a child module under its PyTorch attribute path (may contain dots, e.g. `scratch.layer1_rn`). */
  protected child<M extends FlashModule>(attribute: string, module: M): M {
    this.childModules.push([attribute, module]);
    return module;
  }

  /** Every parameter of this module and its children, with full PyTorch keys, in creation order. */
  *namedParameters(prefix = ''): Generator<NamedParameter> {
    for (const spec of this.paramSpecs) yield { key: prefix + spec.name, spec, owner: this };
    for (const [attr, mod] of this.childModules) yield* mod.namedParameters(`${prefix}${attr}.`);
  }

  /** Direct children with their attribute names. */
  children(): ReadonlyArray<readonly [string, FlashModule]> {
    return this.childModules;
  }

  /** All trainable variables of this module tree (for optimisers). */
  parameterVariables(): tf.Variable[] {
    return [...this.namedParameters()].map((p) => p.spec.variable.read() as tf.Variable);
  }

  /** Number of scalar parameters in this module tree. */
  countParameters(): number {
    let n = 0;
    for (const p of this.namedParameters()) n += p.spec.shape.reduce((a, b) => a * b, 1);
    return n;
  }

  /** Freezes or unfreezes the whole tree (frozen parameters get no gradients and no optimiser state). */
  setTrainable(trainable: boolean): void {
    this.trainable = trainable;
    for (const [, mod] of this.childModules) mod.setTrainable(trainable);
  }

  /** Disposes the variables of this module and its children. */
  disposeParameters(): void {
    for (const p of this.namedParameters()) p.spec.variable.dispose();
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig() };
  }
}

/** Reads a parameter's current value (no copy). */
export function value(v: tfl.LayerVariable): tf.Tensor {
  return v.read();
}
