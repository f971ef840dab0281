/**
 * FlashDepth's temporal module (spec §2.5): the Mamba2 stack that sits inside the DPT and carries state across frames.
 *
 *   F [B, h, w, C] ─ adaptive_avg_pool2d → (int(0.1·h), int(0.1·w)) ─ raster flatten → s₀ [B, L, C]
 *     → 4 × MambaBlock (x + Mamba2(LN1(x)); x + MLP(LN2(x))), each with its own SSM state carried from frame to frame
 *     → reshape → bilinear up-sample (align_corners=True) to (h, w) → F + Linear(GELU(up))
 *
 * Public API (checkpoint keys under the caller's prefix `mamba.`: `blocks.0.{j}.*`, `final_layer.1.*`)
 *  - `new TemporalMamba({dModel, expand, headdim, ...})`
 *  - `forward(feature NHWC, states | null) → {output, states, seqIn, seqOut}`: one frame, pure and differentiable;
 *    `states` holds one SSM state per block (null = start of a sequence).
 *  - `forwardSequence(seq [B, L, C], states | null) → {seqOut, states}`: the 4 blocks alone.
 *  - `forwardStreaming(feature)` / `apply(feature)`: keeps the states between calls; `resetState()` at a new video.
 *  - `adaptivePoolMatrices(h, w, h', w')` + `adaptiveAvgPoolSequence(x, matrices)`: adaptive_avg_pool2d with PyTorch's
 *    bins as two averaging matMuls, NHWC in, raster-flattened tokens out.
 *  - `clearCache()`: frees the pooling matrices the module keeps per feature-map size (also done by `resetState()`),
 *    so that a steady-state frame uploads nothing.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { invalidParameterError, ShapeError } from '../errors.js';
import { Mamba2, type ScanForm } from './mamba2.js';
import { FlashModule, type FlashModuleArgs } from './module.js';
import { gelu, layerNorm, linear, resizeAlignCorners } from './ops.js';

const LAYER_NORM_EPS = 1e-5;

export interface MambaBlockOptions extends FlashModuleArgs {
  dModel: number;
  expand: number;
  headdim: number;
  dState?: number;
  dConv?: number;
  chunkSize?: number;
  /** MLP hidden width = mlpRatio · dModel (FlashDepth: 4). */
  mlpRatio?: number;
}

export interface MambaBlockResult {
  /** [B, L, C] */
  x: tf.Tensor3D;
  /** SSM state of this block's Mamba2 after the frame. */
  state: tf.Tensor4D;
}

/** One pre-LN block: x + Mamba2(LN1(x)), then x + MLP(LN2(x)) with MLP = Linear → GELU(exact) → Linear. */
export class MambaBlock extends FlashModule {
  static className = 'MambaBlock';

  readonly mamba: Mamba2;
  private readonly norm1Weight: tfl.LayerVariable;
  private readonly norm1Bias: tfl.LayerVariable;
  private readonly norm2Weight: tfl.LayerVariable;
  private readonly norm2Bias: tfl.LayerVariable;
  private readonly fc1Weight: tfl.LayerVariable;
  private readonly fc1Bias: tfl.LayerVariable;
  private readonly fc2Weight: tfl.LayerVariable;
  private readonly fc2Bias: tfl.LayerVariable;
  private readonly options: MambaBlockOptions;

  constructor(options: MambaBlockOptions) {
    super(options);
    this.options = options;
    const c = options.dModel;
    const hidden = (options.mlpRatio ?? 4) * c;
    const { dModel, expand, headdim, dState, dConv, chunkSize } = options;
    this.norm1Weight = this.param('norm1.weight', [c], 'same');
    this.norm1Bias = this.param('norm1.bias', [c], 'same');
    this.mamba = this.child('mamba', new Mamba2({ dModel, expand, headdim, dState, dConv, chunkSize }));
    this.norm2Weight = this.param('norm2.weight', [c], 'same');
    this.norm2Bias = this.param('norm2.bias', [c], 'same');
    this.fc1Weight = this.param('mlp.0.weight', [c, hidden], 'linear');
    this.fc1Bias = this.param('mlp.0.bias', [hidden], 'same');
    this.fc2Weight = this.param('mlp.2.weight', [hidden, c], 'linear');
    this.fc2Bias = this.param('mlp.2.bias', [c], 'same');
  }

  forward(x: tf.Tensor3D, state: tf.Tensor4D | null, form: ScanForm = 'chunked'): MambaBlockResult {
    const mixed = this.mamba.forwardFrame(layerNorm(x, this.norm1Weight.read(), this.norm1Bias.read(), LAYER_NORM_EPS) as tf.Tensor3D, state, form);
    const x1 = tf.add(x, mixed.y);
    const h = linear(layerNorm(x1, this.norm2Weight.read(), this.norm2Bias.read(), LAYER_NORM_EPS), this.fc1Weight.read(), this.fc1Bias.read(), { activation: 'gelu' });
    const x2 = tf.add(x1, linear(h, this.fc2Weight.read(), this.fc2Bias.read()));
    return { x: x2 as tf.Tensor3D, state: mixed.state };
  }

  override getConfig(): tf.serialization.ConfigDict {
    const { name: _name, trainable: _trainable, ...rest } = this.options;
    return { ...super.getConfig(), ...rest };
  }
}
tf.serialization.registerClass(MambaBlock);

export interface TemporalMambaOptions extends MambaBlockOptions {
  /** Number of MambaBlocks (FlashDepth: 4). */
  numBlocks?: number;
  /** Pooled grid = (int(h·f), int(w·f)) (config `downsample_mamba`, FlashDepth: 0.1). */
  downsampleFactor?: number;
}

/** Per-block SSM states, one [B, nheads, headdim, d_state] tensor per MambaBlock; null at sequence start. */
export type TemporalStates = tf.Tensor4D[] | null;

export interface TemporalResult {
  /** F + Linear(GELU(up(x))), [B, h, w, C]. */
  output: tf.Tensor4D;
  /** New per-block SSM states (hand them to the next frame). */
  states: tf.Tensor4D[];
  /** Pooled token sequence entering the blocks, [B, L, C] (fixture `mamba_seq_in`). */
  seqIn: tf.Tensor3D;
  /** Output of the last block, [B, L, C] (fixture `mamba_seq_out`). */
  seqOut: tf.Tensor3D;
}

export class TemporalMamba extends FlashModule {
  static className = 'TemporalMamba';

  readonly blocks: MambaBlock[];
  readonly downsampleFactor: number;
  private readonly finalWeight: tfl.LayerVariable;
  private readonly finalBias: tfl.LayerVariable;
  private readonly options: TemporalMambaOptions;
  private heldStates: tf.Tensor4D[] | null = null;
  /** Pooling matrices per feature-map size `${h}x${w}`: built on the first frame of that size, reused after. */
  private readonly poolCache = new Map<string, PoolMatrices>();

  constructor(options: TemporalMambaOptions) {
    super(options);
    const numBlocks = options.numBlocks ?? 4;
    const factor = options.downsampleFactor ?? 0.1;
    if (!Number.isInteger(numBlocks) || numBlocks <= 0) throw invalidParameterError('TemporalMamba numBlocks', 'positive integer', numBlocks);
    if (!(factor > 0 && factor <= 1)) throw invalidParameterError('TemporalMamba downsampleFactor', 'number in (0, 1]', factor);
    this.options = options;
    this.downsampleFactor = factor;
    const { dModel, expand, headdim, dState, dConv, chunkSize, mlpRatio } = options;
    this.blocks = [];
    for (let j = 0; j < numBlocks; j++) {
      this.blocks.push(this.child(`blocks.0.${j}`, new MambaBlock({ dModel, expand, headdim, dState, dConv, chunkSize, mlpRatio })));
    }
    this.finalWeight = this.param('final_layer.1.weight', [options.dModel, options.dModel], 'linear');
    this.finalBias = this.param('final_layer.1.bias', [options.dModel], 'same');
  }

  /** Pooled grid size for a feature map of h × w: (int(h·f), int(w·f)), truncating like Python's int(). */
  pooledSize(height: number, width: number): [number, number] {
    return [Math.trunc(height * this.downsampleFactor), Math.trunc(width * this.downsampleFactor)];
  }

  /** One frame (spec §2.5 steps 1–5); pure and differentiable. */
  forward(feature: tf.Tensor4D, states: TemporalStates, form: ScanForm = 'chunked'): TemporalResult {
    const [batch, height, width, channels] = feature.shape;
    if (feature.rank !== 4 || channels !== this.options.dModel) {
      throw new ShapeError(`TemporalMamba.forward: expected an NHWC feature map with ${this.options.dModel} channels but received [${feature.shape.join(', ')}]`);
    }
    const [ph, pw] = this.pooledSize(height, width);
    if (ph < 1 || pw < 1) {
      throw new ShapeError(`TemporalMamba.forward: feature map ${height}×${width} pools to an empty ${ph}×${pw} grid (factor ${this.downsampleFactor}); it needs at least ${Math.ceil(1 / this.downsampleFactor)} rows and columns`);
    }
    const seqIn = adaptiveAvgPoolSequence(feature, this.poolMatrices(height, width, ph, pw)); // [B, L = h'·w', C], raster order
    const { seqOut, states: newStates } = this.forwardSequence(seqIn, states, form);
    const up = resizeAlignCorners(tf.reshape(seqOut, [batch, ph, pw, channels]) as tf.Tensor4D, height, width); // [B, L, C] -> [B, h', w', C] -> [B, h, w, C]
    const output = tf.add(feature, linear(gelu(up), this.finalWeight.read(), this.finalBias.read())) as tf.Tensor4D;
    return { output, states: newStates, seqIn, seqOut };
  }

  /** The blocks alone (spec §2.5 step 3): pooled sequence [B, L, C] in, [B, L, C] out, states carried. */
  forwardSequence(seqIn: tf.Tensor3D, states: TemporalStates, form: ScanForm = 'chunked'): { seqOut: tf.Tensor3D; states: tf.Tensor4D[] } {
    if (states && states.length !== this.blocks.length) {
      throw new ShapeError(`TemporalMamba: expected ${this.blocks.length} block states but received ${states.length}`);
    }
    let x = seqIn;
    const newStates: tf.Tensor4D[] = [];
    this.blocks.forEach((block, j) => {
      const r = block.forward(x, states ? states[j]! : null, form);
      x = r.x;
      newStates.push(r.state);
    });
    return { seqOut: x, states: newStates };
  }

  /**
   * Streaming: runs one frame from the held states and keeps the new ones (outside any tidy); the previous ones are
   * disposed. For training, use `forward` and pass the states explicitly.
   */
  forwardStreaming(feature: tf.Tensor4D): tf.Tensor4D {
    const result = this.forward(feature, this.heldStates);
    const previous = this.heldStates;
    this.heldStates = result.states.map((s) => tf.keep(s));
    if (previous) tf.dispose(previous.filter((s) => !this.heldStates!.includes(s)));
    tf.dispose([result.seqIn, result.seqOut]);
    return result.output;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const feature = Array.isArray(inputs) ? inputs[0]! : inputs;
    return this.forwardStreaming(feature as tf.Tensor4D);
  }

  /** The held per-block states (null at sequence start). Owned by the module: do not dispose. */
  get states(): TemporalStates {
    return this.heldStates;
  }

  /** Starts a new sequence (video): the next frame runs from zero states (and may come at a new size). */
  resetState(): void {
    if (this.heldStates) tf.dispose(this.heldStates);
    this.heldStates = null;
    this.clearCache();
  }

  /** Frees the cached pooling matrices (rebuilt on demand). */
  clearCache(): void {
    for (const { rows, cols } of this.poolCache.values()) tf.dispose([rows, cols]);
    this.poolCache.clear();
  }

  /** Number of feature-map sizes whose pooling matrices are cached (2 kept tensors each). */
  get cachedSizes(): number {
    return this.poolCache.size;
  }

  private poolMatrices(height: number, width: number, outHeight: number, outWidth: number): PoolMatrices {
    const key = `${height}x${width}`;
    let entry = this.poolCache.get(key);
    if (!entry) {
      // Kept so that the first frame's tidy (or a training step's) does not dispose the cache with the frame.
      const { rows, cols } = adaptivePoolMatrices(height, width, outHeight, outWidth);
      entry = { rows: tf.keep(rows), cols: tf.keep(cols) };
      this.poolCache.set(key, entry);
    }
    return entry;
  }

  override getConfig(): tf.serialization.ConfigDict {
    const { name: _name, trainable: _trainable, ...rest } = this.options;
    return { ...super.getConfig(), ...rest };
  }
}
tf.serialization.registerClass(TemporalMamba);

/**
 * PyTorch adaptive average pooling along one axis as a row-major [outSize, inSize] matrix: output i averages inputs
 * [floor(i·in/out), ceil((i+1)·in/out)) (bins may overlap and differ in size).
 */
function adaptiveAvgPoolWeights(inSize: number, outSize: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  for (let i = 0; i < outSize; i++) {
    const start = Math.floor((i * inSize) / outSize);
    const end = Math.ceil(((i + 1) * inSize) / outSize);
    for (let k = start; k < end; k++) m[i * inSize + k] = 1 / (end - start);
  }
  return m;
}

/** The pooling matrices of one feature-map size, with a leading batch axis of 1 that matMul broadcasts. */
export interface PoolMatrices {
  /** [1, h', h]: pools rows. */
  rows: tf.Tensor3D;
  /** [1, w', w]: pools columns. */
  cols: tf.Tensor3D;
}

/** The row and column matrices of adaptive_avg_pool2d from h × w to h' × w'. */
export function adaptivePoolMatrices(height: number, width: number, outHeight: number, outWidth: number): PoolMatrices {
  return {
    rows: tf.tensor3d(adaptiveAvgPoolWeights(height, outHeight), [1, outHeight, height]),
    cols: tf.tensor3d(adaptiveAvgPoolWeights(width, outWidth), [1, outWidth, width]),
  };
}

/**
 * adaptive_avg_pool2d of an NHWC map, raster-flattened: [B, h, w, C] → [B, h'·w', C]. Two broadcast matMuls and
 * reshapes only (no transposes), differentiable on every backend.
 */
export function adaptiveAvgPoolSequence(x: tf.Tensor4D, { rows, cols }: PoolMatrices): tf.Tensor3D {
  const [batch, height, width, channels] = x.shape;
  const outHeight = rows.shape[1];
  const outWidth = cols.shape[1];
  // width: [B, h, w, C] -> [B·h, w, C]; [1, w', w] · [B·h, w, C] -> [B·h, w', C]
  const pooledW = tf.matMul(cols, tf.reshape(x, [batch * height, width, channels]) as tf.Tensor3D);
  // height: [B·h, w', C] -> [B, h, w'·C]; [1, h', h] · [B, h, w'·C] -> [B, h', w'·C]
  const pooled = tf.matMul(rows, tf.reshape(pooledW, [batch, height, outWidth * channels]) as tf.Tensor3D);
  return tf.reshape(pooled, [batch, outHeight * outWidth, channels]) as tf.Tensor3D; // [B, h', w'·C] -> [B, h'·w', C]
}

