/**
 * FlashDepth-S, -L and Full, composed from the DINOv2 encoder, the DPT decoder, the Mamba2 temporal module and (Full)
 * the frozen teacher with the hybrid fusion. Parameter keys are exactly the official checkpoint's (spec §4.2):
 * `pretrained.*`, `depth_head.*`, `mamba.*`, `teacher_model.pretrained.*`, `teacher_model.depth_head.*`,
 * `hybrid_fusion.*`.
 *
 * One frame (spec §2): taps = ViT(x); [Full: path_4 ← fusion(path_4, teacher path_4)]; the temporal module replaces
 * the path after refinenet `mamba_in_dpt_layer`; head → ReLU'd inverse depth at the input resolution.
 *
 *  - `forwardFrame(x, states)`: pure and differentiable; the Mamba states go in and come out explicitly.
 *  - `predict(x)`: streaming; the model holds the states between calls until `resetState()` (new video/stream).
 *  - `forwardClip(frames)`: a training clip [B, T, H, W, 3], states from zero, back-propagation through the clip.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, ShapeError } from '../errors.js';
import { freeStalePackedWeights } from '../kernels/index.js';
import type { AttentionOptions } from './attention.js';
import { DinoV2, type DinoV2Debug } from './dinov2.js';
import { DPTHead, type DptPathIndex } from './dpt.js';
import { HybridFusion } from './hybrid.js';
import { FlashModule } from './module.js';
import { resizeAlignCorners } from './ops.js';
import { TemporalMamba, type TemporalStates } from './temporal.js';
import type { DptSpec, ModelSpec, VitSpec } from './variants.js';

export interface FlashDepthOptions {
  /** Largest attention score block materialised at once (elements); see `scaledDotProductAttention`. */
  maxScoreElements?: number;
  name?: string;
}

/** Intermediates a caller may ask `forwardFrame` for (parity tests, debugging). Tensors belong to the caller's scope. */
export interface FlashDepthDebug {
  patchEmbed?: tf.Tensor3D;
  posEmbed?: tf.Tensor3D;
  vitTaps?: tf.Tensor3D[];
  teacherInput?: tf.Tensor4D;
  teacherPatchEmbed?: tf.Tensor3D;
  teacherPosEmbed?: tf.Tensor3D;
  teacherTaps?: tf.Tensor3D[];
  teacherPath4?: tf.Tensor4D;
  studentPath4?: tf.Tensor4D;
  fusedPath4?: tf.Tensor4D;
  temporalIn?: tf.Tensor4D;
  temporalOut?: tf.Tensor4D;
  mambaSeqIn?: tf.Tensor3D;
  mambaSeqOut?: tf.Tensor3D;
  dptOut?: tf.Tensor4D;
}

export interface FrameResult {
  /** ReLU'd inverse depth [B, H, W] at the input resolution. */
  depth: tf.Tensor3D;
  /** The head's last conv before its ReLU [B, H, W]. */
  headPreRelu: tf.Tensor3D;
  /** Mamba states after this frame (empty when the model has no temporal module). */
  states: tf.Tensor4D[];
}

function encoderOptions(vit: VitSpec, maxScoreElements: number | undefined, name: string) {
  if (vit.ffn !== 'mlp') throw new ConfigError(`model.vit_size: ${vit.size} uses a SwiGLU MLP, which is not implemented; expected vits, vitb or vitl`);
  return {
    embedDim: vit.embedDim,
    depth: vit.depth,
    numHeads: vit.numHeads,
    tapIndices: vit.taps,
    patchSize: vit.patchSize,
    mlpRatio: vit.mlpHidden / vit.embedDim,
    posEmbedGrid: vit.posGridSize,
    maxScoreElements,
    name,
  };
}

function dptOptions(vit: VitSpec, dpt: DptSpec, name: string) {
  return { inChannels: vit.embedDim, features: dpt.features, outChannels: dpt.outChannels, name };
}

/** The frozen ViT-L + DPT-L of Full, registered as `teacher_model` (no Mamba; only path_4 is used). */
export class FlashDepthTeacher extends FlashModule {
  static className = 'FlashDepthTeacher';
  readonly pretrained: DinoV2;
  readonly depthHead: DPTHead;

  constructor(vit: VitSpec, dpt: DptSpec, maxScoreElements?: number) {
    super({ name: 'teacher_model', trainable: false });
    this.pretrained = this.child('pretrained', new DinoV2(encoderOptions(vit, maxScoreElements, 'teacher_pretrained')));
    this.depthHead = this.child('depth_head', new DPTHead(dptOptions(vit, dpt, 'teacher_depth_head')));
    this.setTrainable(false);
  }

  /** Teacher path_4 [B, phT, pwT, F_T] of an already resized, normalised frame. */
  path4(x: tf.Tensor4D, debug?: FlashDepthDebug): tf.Tensor4D {
    const vitDebug: DinoV2Debug = {};
    const taps = this.pretrained.getIntermediateLayers(x, debug ? vitDebug : undefined);
    const [ph, pw] = this.pretrained.patchGrid(x.shape);
    const path4 = this.depthHead.getPath4(taps, ph, pw);
    if (debug) {
      debug.teacherPatchEmbed = vitDebug.patchEmbed;
      debug.teacherPosEmbed = vitDebug.posEmbed;
      debug.teacherTaps = taps;
      debug.teacherPath4 = path4;
    }
    return path4;
  }
}

/**
 * Teacher input size (spec §2.6 step 1): frames taller than `teacherResolution` are resized to that height and a width
 * floored to a multiple of 14; others are used as they are.
 */
export function teacherInputSize(height: number, width: number, teacherResolution: number): [number, number] {
  if (height <= teacherResolution) return [height, width];
  const mainW = Math.floor(Math.floor((teacherResolution / height) * width) / 14) * 14;
  return [teacherResolution, mainW];
}

export class FlashDepth extends FlashModule {
  static className = 'FlashDepth';
  readonly spec: ModelSpec;
  readonly pretrained: DinoV2;
  readonly depthHead: DPTHead;
  readonly mamba: TemporalMamba | null;
  readonly teacher: FlashDepthTeacher | null;
  readonly hybridFusion: HybridFusion | null;
  /** The DPT path index (0 = path_4 … 3 = path_1) after which the temporal module runs. */
  readonly mambaPathIndex: DptPathIndex | null;
  private heldStates: tf.Tensor4D[] | null = null;

  constructor(spec: ModelSpec, options: FlashDepthOptions = {}) {
    super({ name: options.name ?? 'flashdepth' });
    this.spec = spec;
    const budget = options.maxScoreElements;
    this.pretrained = this.child('pretrained', new DinoV2(encoderOptions(spec.vit, budget, 'pretrained')));
    this.depthHead = this.child('depth_head', new DPTHead(dptOptions(spec.vit, spec.dpt, 'depth_head')));
    if (spec.mamba) {
      if (spec.mamba.inDptLayer.length !== 1) {
        // The checkpoint layout `mamba.blocks.0.*` holds one insertion point; every released config has one.
        throw new ConfigError(`model.mamba_in_dpt_layer: exactly one insertion point is supported but got [${spec.mamba.inDptLayer.join(', ')}]`);
      }
      this.mambaPathIndex = spec.mamba.inDptLayer[0] as DptPathIndex;
      this.mamba = this.child('mamba', new TemporalMamba({
        dModel: spec.mamba.dModel,
        expand: spec.mamba.expand,
        headdim: spec.mamba.headdim,
        dState: spec.mamba.dState,
        dConv: spec.mamba.dConv,
        chunkSize: spec.mamba.chunkSize,
        mlpRatio: spec.mamba.mlpHidden / spec.mamba.dModel,
        numBlocks: spec.mamba.numLayers,
        downsampleFactor: spec.mamba.downsample[0],
        name: 'mamba',
      }));
    } else {
      this.mambaPathIndex = null;
      this.mamba = null;
    }
    if (spec.hybrid) {
      this.teacher = this.child('teacher_model', new FlashDepthTeacher(spec.hybrid.teacher.vit, spec.hybrid.teacher.dpt, budget));
      const attention: AttentionOptions = budget === undefined ? {} : { maxScoreElements: budget };
      this.hybridFusion = this.child('hybrid_fusion', new HybridFusion({
        dModel: spec.hybrid.fusion.dModel,
        contextDim: spec.hybrid.fusion.contextDim,
        numBlocks: spec.hybrid.fusion.numBlocks,
        numHeads: spec.hybrid.fusion.numHeads,
        mlpExpand: spec.hybrid.fusion.mlpExpand,
        layersToSkip: spec.hybrid.fusion.layersToSkip,
        attention,
        name: 'hybrid_fusion',
      }));
    } else {
      this.teacher = null;
      this.hybridFusion = null;
    }
  }

  /** Parameters that train (everything except the frozen teacher). */
  trainableParameters(): tf.Variable[] {
    return [...this.namedParameters()].filter((p) => !p.key.startsWith('teacher_model.')).map((p) => p.spec.variable.read() as tf.Variable);
  }

  /**
   * One frame: x is a normalised NHWC batch [B, H, W, 3] with H and W multiples of 14. Pure: the Mamba states are
   * passed in (null at sequence start) and returned. Call inside tf.tidy; differentiable.
   */
  forwardFrame(x: tf.Tensor4D, states: TemporalStates, debug?: FlashDepthDebug, teacherPath4?: tf.Tensor4D): FrameResult {
    const [, height, width, channels] = x.shape;
    if (x.rank !== 4 || channels !== 3 || height % 14 !== 0 || width % 14 !== 0) {
      throw new ShapeError(`FlashDepth: expected a normalised NHWC frame [B, H, W, 3] with H and W multiples of 14 but received [${x.shape.join(', ')}] (use preprocessFrame)`);
    }
    const vitDebug: DinoV2Debug = {};
    const taps = this.pretrained.getIntermediateLayers(x, debug ? vitDebug : undefined);
    const [ph, pw] = this.pretrained.patchGrid(x.shape);
    if (debug) {
      debug.patchEmbed = vitDebug.patchEmbed;
      debug.posEmbed = vitDebug.posEmbed;
      debug.vitTaps = taps;
    }

    if (this.teacher && !teacherPath4) teacherPath4 = this.teacherPath4(x, debug);

    let newStates: tf.Tensor4D[] = [];
    const path1 = this.depthHead.decode(taps, ph, pw, (index, path) => {
      let out = path;
      if (index === 0 && this.hybridFusion && teacherPath4) {
        if (debug) debug.studentPath4 = out;
        out = this.hybridFusion.forward(out, teacherPath4);
        if (debug) debug.fusedPath4 = out;
      }
      if (this.mamba && index === this.mambaPathIndex) {
        const r = this.mamba.forward(out, states);
        if (debug) {
          debug.temporalIn = out;
          debug.temporalOut = r.output;
          debug.mambaSeqIn = r.seqIn;
          debug.mambaSeqOut = r.seqOut;
        }
        newStates = r.states;
        out = r.output;
      }
      return out;
    });
    if (debug) debug.dptOut = path1;
    // Own tidy: at 2K the head's full-resolution intermediates are the largest tensors of the frame.
    const { headPreRelu, depth } = tf.tidy(() => ({ ...this.depthHead.head(path1, ph, pw) }));
    return { depth, headPreRelu, states: newStates };
  }

  /**
   * The frozen teacher's path_4 for a normalised frame (spec §2.6 steps 1 and 3). Training computes it outside the
   * gradient tape (`teacherFeatures`), so the teacher's activations are never kept for a backward pass.
   */
  teacherPath4(x: tf.Tensor4D, debug?: FlashDepthDebug): tf.Tensor4D {
    if (!this.teacher || !this.spec.hybrid) throw new ShapeError('FlashDepth.teacherPath4: this model has no teacher (hybrid_configs.use_hybrid is false)');
    const [, height, width] = x.shape;
    const [th, tw] = teacherInputSize(height, width, this.spec.hybrid.teacherResolution);
    // The reference resizes the *normalised* tensor, bilinear with align_corners=True and no antialias.
    const teacherInput = resizeAlignCorners(x, th, tw);
    if (debug) debug.teacherInput = teacherInput;
    return this.teacher.path4(teacherInput, debug);
  }

  /**
   * Teacher path_4 of every frame of a clip [B, T, H, W, 3] (Full only; empty otherwise), computed in its own tidy and
   * kept: call it before a gradient scope and pass the result to `forwardClip`; the caller disposes it.
   */
  teacherFeatures(frames: tf.Tensor5D): tf.Tensor4D[] {
    if (!this.teacher) return [];
    const [b, t, h, w, c] = frames.shape;
    const out: tf.Tensor4D[] = [];
    for (let i = 0; i < t; i++) {
      out.push(tf.tidy(() => this.teacherPath4(tf.reshape(tf.slice(frames, [0, i, 0, 0, 0], [b, 1, h, w, c]), [b, h, w, c]) as tf.Tensor4D)));
    }
    return out;
  }

  /**
   * Streaming inference on one normalised frame ([H, W, 3] or [1, H, W, 3]): returns the inverse depth [H, W] (or
   * [1, H, W]) and keeps the Mamba state for the next call. The caller owns (and disposes) the returned tensor.
   */
  predict(frame: tf.Tensor): tf.Tensor {
    const batched = frame.rank === 3;
    const result = tf.tidy(() => {
      const x = (batched ? tf.expandDims(frame, 0) : frame) as tf.Tensor4D;
      const r = this.forwardFrame(x, this.heldStates);
      return { depth: batched ? tf.squeeze(r.depth, [0]) : r.depth, states: r.states };
    });
    const previous = this.heldStates;
    this.heldStates = result.states.length > 0 ? result.states : null;
    if (previous) tf.dispose(previous);
    return result.depth;
  }

  /** The states `predict` carries (null at sequence start). Owned by the model: do not dispose. */
  get states(): TemporalStates {
    return this.heldStates;
  }

  /** Starts a new sequence: the next `predict` runs from a zero Mamba state. */
  resetState(): void {
    if (this.heldStates) tf.dispose(this.heldStates);
    this.heldStates = null;
  }

  /**
   * A training clip [B, T, H, W, 3] (normalised) → inverse depth [B, T, H, W]: states start at zero and carry across
   * the T frames, so gradients flow through the recurrent state (spec §3.5). Call inside tf.tidy / a gradient scope.
   * For Full, pass `teacherFeatures(frames)` computed before the gradient scope (else the teacher runs inside it).
   */
  forwardClip(frames: tf.Tensor5D, teacherFeatures?: readonly tf.Tensor4D[]): tf.Tensor4D {
    const [b, t, h, w, c] = frames.shape;
    let states: TemporalStates = null;
    const depths: tf.Tensor3D[] = [];
    for (let i = 0; i < t; i++) {
      const x = tf.reshape(tf.slice(frames, [0, i, 0, 0, 0], [b, 1, h, w, c]), [b, h, w, c]) as tf.Tensor4D;
      // One tidy per frame: under a gradient tape it frees the frame's intermediates that the backward pass does not
      // need (the tape keeps what it saved), instead of holding every activation of the clip until the end.
      const prev = states;
      const r = tf.tidy(() => {
        const out = this.forwardFrame(x, prev, undefined, teacherFeatures?.[i]);
        return { depth: out.depth, states: out.states };
      });
      states = r.states.length > 0 ? r.states : null;
      depths.push(r.depth);
    }
    return tf.stack(depths, 1) as tf.Tensor4D;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.predict(Array.isArray(inputs) ? inputs[0]! : inputs);
  }

  /**
   * Frees the weights of the whole tree, their f16 copies (mixed precision), the held state and the cached constants
   * (pos-embed, pooling matrices).
   */
  override dispose(): ReturnType<FlashModule['dispose']> {
    this.resetState();
    this.pretrained.clearCache();
    this.teacher?.pretrained.clearCache();
    this.mamba?.clearCache();
    const numDisposedVariables = [...this.namedParameters()].length;
    this.disposeParameters();
    freeStalePackedWeights(); // the f16 copies --precision mixed made of these weights
    return { refCountAfterDispose: 0, numDisposedVariables };
  }
}
tf.serialization.registerClass(FlashDepthTeacher);
tf.serialization.registerClass(FlashDepth);
