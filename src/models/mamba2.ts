/**
 * The Mamba2 layer as FlashDepth uses it (spec §3.1–§3.4): ngroups 1, gated RMSNorm (norm_before_gate=False), D per
 * head, no in/out projection bias, conv bias on, dt_limit (0, ∞).
 *
 * Public API
 *  - `new Mamba2({dModel, expand, headdim, dState = 256, dConv = 4, ngroups = 1, chunkSize = 256})`; parameters carry
 *    the PyTorch names `in_proj.weight`, `conv1d.weight`, `conv1d.bias`, `dt_bias`, `A_log`, `D`, `norm.weight`,
 *    `out_proj.weight`.
 *  - `forwardFrame(u [B, L, dModel], state | null, form = 'chunked') → {y, state}`: one frame, pure and
 *    differentiable. The causal conv restarts from zero padding at the frame start; the SSM state [B, H, P, N] is
 *    carried in and out explicitly (null = sequence start). `form: 'recurrent'` runs the per-token reference scan.
 *    Where `useFusedKernels()` (webgpu inference) it runs the custom kernel of src/kernels/mamba-scan.ts instead.
 *  - `step(u_t [B, dModel], state | null) → {y, state}`: Mamba's token step with a rolling conv buffer
 *    [B, conv_dim, d_conv] (what `Mamba2.step` computes; FlashDepth itself never carries the conv across frames).
 *  - `forward(u)` / `apply(u)`: streaming wrapper that keeps the SSM state between calls; `resetState()` starts a
 *    new sequence, `state` reads the held state.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { invalidParameterError, ShapeError } from '../errors.js';
import { fusedMambaScan, mambaScanSupports, useFusedKernels } from '../kernels/index.js';
import { FlashModule, type FlashModuleArgs } from './module.js';
import { linear, silu } from './ops.js';
import { ssdChunked, ssdRecurrent, type ScanInputs } from './ssd.js';

export interface Mamba2Options extends FlashModuleArgs {
  dModel: number;
  expand: number;
  headdim: number;
  /** d_state N (FlashDepth: 256). */
  dState?: number;
  /** Depthwise causal conv width (FlashDepth: 4). */
  dConv?: number;
  /** Only 1 is supported (B and C shared by all heads), as in every FlashDepth config. */
  ngroups?: number;
  /** Tokens per chunk of the chunked scan (the Triton kernels use 256). */
  chunkSize?: number;
}

/** Which scan computes the selective state space recurrence (numerically equivalent). */
export type ScanForm = 'chunked' | 'recurrent';

export interface Mamba2FrameResult {
  /** [B, L, dModel] */
  y: tf.Tensor3D;
  /** SSM state after the last token, [B, nheads, headdim, d_state]. */
  state: tf.Tensor4D;
}

/** State of the token-step form: rolling conv inputs (oldest first, PyTorch layout) and the SSM state. */
export interface Mamba2StepState {
  /** Pre-conv xBC of the last d_conv tokens, [B, conv_dim, d_conv]. */
  conv: tf.Tensor3D;
  /** [B, nheads, headdim, d_state] */
  ssm: tf.Tensor4D;
}

export interface Mamba2StepResult {
  /** [B, dModel] */
  y: tf.Tensor2D;
  state: Mamba2StepState;
}

/** Pre-conv projections of one frame (or one token). */
interface Projections {
  z: tf.Tensor;
  xBC: tf.Tensor;
  dtRaw: tf.Tensor;
}

const SOFTPLUS_THRESHOLD = 20; // above this the Triton kernels return the argument itself
const RMSNORM_EPS = 1e-5;

export class Mamba2 extends FlashModule {
  static className = 'Mamba2';

  readonly dModel: number;
  readonly expand: number;
  readonly headdim: number;
  readonly dState: number;
  readonly dConv: number;
  readonly chunkSize: number;
  readonly dInner: number;
  readonly nheads: number;
  readonly convDim: number;

  private readonly inProj: tfl.LayerVariable;
  private readonly convWeight: tfl.LayerVariable;
  private readonly convBias: tfl.LayerVariable;
  private readonly dtBias: tfl.LayerVariable;
  private readonly aLog: tfl.LayerVariable;
  private readonly dSkip: tfl.LayerVariable;
  private readonly normWeight: tfl.LayerVariable;
  private readonly outProj: tfl.LayerVariable;
  private heldState: tf.Tensor4D | null = null;

  constructor(options: Mamba2Options) {
    super(options);
    const { dModel, expand, headdim, dState = 256, dConv = 4, ngroups = 1, chunkSize = 256 } = options;
    for (const [name, v] of [['dModel', dModel], ['expand', expand], ['headdim', headdim], ['dState', dState], ['dConv', dConv], ['chunkSize', chunkSize]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw invalidParameterError(`Mamba2 ${name}`, 'positive integer', v);
    }
    if (ngroups !== 1) throw invalidParameterError('Mamba2 ngroups', '1 (the only value FlashDepth uses)', ngroups);
    const dInner = expand * dModel;
    if (dInner % headdim !== 0) throw invalidParameterError('Mamba2 headdim', `a divisor of d_inner = ${dInner}`, headdim);
    this.dModel = dModel;
    this.expand = expand;
    this.headdim = headdim;
    this.dState = dState;
    this.dConv = dConv;
    this.chunkSize = chunkSize;
    this.dInner = dInner;
    this.nheads = dInner / headdim;
    this.convDim = dInner + 2 * dState;

    this.inProj = this.param('in_proj.weight', [dModel, 2 * dInner + 2 * dState + this.nheads], 'linear');
    this.convWeight = this.param('conv1d.weight', [dConv, this.convDim], 'depthwiseConv1d');
    this.convBias = this.param('conv1d.bias', [this.convDim], 'same');
    this.dtBias = this.param('dt_bias', [this.nheads], 'same');
    this.aLog = this.param('A_log', [this.nheads], 'same');
    this.dSkip = this.param('D', [this.nheads], 'same');
    this.normWeight = this.param('norm.weight', [dInner], 'same');
    this.outProj = this.param('out_proj.weight', [dInner, dModel], 'linear');
  }

  /** One frame (spec §3.2): the conv starts from zeros, the SSM state continues from `state` (null = zeros). */
  forwardFrame(u: tf.Tensor3D, state: tf.Tensor4D | null, form: ScanForm = 'chunked'): Mamba2FrameResult {
    this.checkInput('forwardFrame', 'u', u.shape, [u.shape[0], u.shape[1], this.dModel]);
    const batch = u.shape[0];
    const length = u.shape[1];
    if (state) this.checkInput('forwardFrame', 'state', state.shape, this.ssmStateShape(batch));
    if (length > 0 && useFusedKernels() && mambaScanSupports(this.headdim, this.dState)) return this.forwardFrameFused(u, state);
    const { z, xBC, dtRaw } = this.project(u);
    const xBCc = silu(this.causalConv(xBC as tf.Tensor3D));
    const scanIn = this.scanInputs(xBCc, dtRaw, [batch, length], state);
    const scan = form === 'chunked' ? ssdChunked(scanIn, this.chunkSize) : ssdRecurrent(scanIn);
    const y = this.finish(scan.y, scanIn.x, z, [batch, length]);
    return { y: y as tf.Tensor3D, state: scan.state };
  }

  /**
   * forwardFrame on webgpu inference: in_proj, one custom kernel of 4 dispatches for conv … gated RMSNorm (a per-token
   * recurrence, whatever `form` says), out_proj; the ops form issues ~100 tfjs calls for the same few tokens.
   */
  private forwardFrameFused(u: tf.Tensor3D, state: tf.Tensor4D | null): Mamba2FrameResult {
    const zxbcdt = linear(u, this.inProj.read()) as tf.Tensor3D;
    const weights = {
      convWeight: this.convWeight.read(), convBias: this.convBias.read(), dtBias: this.dtBias.read(),
      aLog: this.aLog.read(), dSkip: this.dSkip.read(), normWeight: this.normWeight.read(),
    };
    const scan = fusedMambaScan(zxbcdt, weights, state, { headdim: this.headdim, dState: this.dState, eps: RMSNORM_EPS });
    return { y: linear(scan.y, this.outProj.read()) as tf.Tensor3D, state: scan.state };
  }

  /**
   * One token with Mamba's rolling conv buffer (`Mamba2.step`): the conv sees the previous d_conv − 1 tokens even
   * across calls. Reference for the `y_step` fixtures; FlashDepth streaming uses `forwardFrame`.
   */
  step(u: tf.Tensor2D, state: Mamba2StepState | null): Mamba2StepResult {
    const batch = u.shape[0];
    this.checkInput('step', 'u', u.shape, [batch, this.dModel]);
    if (state) {
      this.checkInput('step', 'state.conv', state.conv.shape, [batch, this.convDim, this.dConv]);
      this.checkInput('step', 'state.ssm', state.ssm.shape, this.ssmStateShape(batch));
    }
    const { z, xBC, dtRaw } = this.project(u);
    const convPrev = state ? state.conv : tf.zeros([batch, this.convDim, this.dConv]);
    // roll left by one and append the new token: [B, conv_dim, d_conv]
    const conv = tf.concat([tf.slice(convPrev, [0, 0, 1], [batch, this.convDim, this.dConv - 1]), tf.expandDims(xBC, 2)], 2) as tf.Tensor3D;
    const taps = tf.transpose(this.convWeight.read(), [1, 0]); // [d_conv, conv_dim] -> [conv_dim, d_conv]
    const xBCc = silu(tf.add(tf.sum(tf.mul(conv, taps), 2), this.convBias.read()));
    const scanIn = this.scanInputs(tf.expandDims(xBCc, 1), tf.expandDims(dtRaw, 1), [batch, 1], state ? state.ssm : null);
    const scan = ssdRecurrent(scanIn);
    const y = this.finish(scan.y, scanIn.x, tf.expandDims(z, 1), [batch, 1]);
    return { y: tf.reshape(y, [batch, this.dModel]), state: { conv, ssm: scan.state } };
  }

  /**
   * Streaming: runs one frame from the held SSM state and keeps the new state (outside any tidy) for the next call.
   * The previous state is disposed. Not for training (use `forwardFrame`, which keeps the graph explicit).
   */
  forward(u: tf.Tensor3D): tf.Tensor3D {
    const { y, state } = this.forwardFrame(u, this.heldState);
    const previous = this.heldState;
    this.heldState = tf.keep(state);
    if (previous && previous !== state) previous.dispose();
    return y;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const u = Array.isArray(inputs) ? inputs[0]! : inputs;
    return this.forward(u as tf.Tensor3D);
  }

  /** The held SSM state (null at sequence start). Owned by the layer: do not dispose. */
  get state(): tf.Tensor4D | null {
    return this.heldState;
  }

  /** Starts a new sequence: the next `forward` runs from a zero state. */
  resetState(): void {
    this.heldState?.dispose();
    this.heldState = null;
  }

  /** Shape of the SSM state for a batch. */
  ssmStateShape(batch: number): [number, number, number, number] {
    return [batch, this.nheads, this.headdim, this.dState];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      dModel: this.dModel, expand: this.expand, headdim: this.headdim, dState: this.dState, dConv: this.dConv, ngroups: 1, chunkSize: this.chunkSize,
    };
  }

  /** in_proj, split in this order: z | xBC | dt (spec §3.2 step 1). Works on [..., dModel]. */
  private project(u: tf.Tensor): Projections {
    const zxbcdt = linear(u, this.inProj.read());
    const [z, xBC, dtRaw] = tf.split(zxbcdt, [this.dInner, this.convDim, this.nheads], -1) as [tf.Tensor, tf.Tensor, tf.Tensor];
    return { z, xBC, dtRaw };
  }

  /** Depthwise causal conv over one frame, zero left-padding: 4 shifted multiply-adds (no conv kernel, so it trains on wasm). */
  private causalConv(xBC: tf.Tensor3D): tf.Tensor3D {
    const [batch, length, channels] = xBC.shape;
    const padded = tf.pad(xBC, [[0, 0], [this.dConv - 1, 0], [0, 0]]);
    const w = this.convWeight.read();
    let out: tf.Tensor = this.convBias.read();
    for (let k = 0; k < this.dConv; k++) {
      const shifted = tf.slice(padded, [0, k, 0], [batch, length, channels]);
      out = tf.add(out, tf.mul(shifted, tf.slice(w, [k, 0], [1, channels])));
    }
    return out as tf.Tensor3D;
  }

  /** Splits the activated conv output into x, B, C and computes Δ and A (spec §3.2 steps 3–5). */
  private scanInputs(xBCc: tf.Tensor, dtRaw: tf.Tensor, [batch, length]: [number, number], state: tf.Tensor4D | null): ScanInputs {
    const [x, B, C] = tf.split(xBCc, [this.dInner, this.dState, this.dState], -1) as [tf.Tensor, tf.Tensor3D, tf.Tensor3D];
    return {
      x: tf.reshape(x, [batch, length, this.nheads, this.headdim]) as tf.Tensor4D, // channel = h·P + p
      dt: softplusLikeTriton(tf.add(dtRaw, this.dtBias.read())) as tf.Tensor3D,
      A: tf.neg(tf.exp(this.aLog.read())) as tf.Tensor1D,
      B,
      C,
      initialState: state,
    };
  }

  /** y + D·x, gated RMSNorm with z, out_proj (spec §3.2 steps 7–9). Returns [B, L, dModel]. */
  private finish(yScan: tf.Tensor4D, x: tf.Tensor4D, z: tf.Tensor, [batch, length]: [number, number]): tf.Tensor {
    const withSkip = tf.add(yScan, tf.mul(x, tf.reshape(this.dSkip.read(), [this.nheads, 1])));
    const y = tf.reshape(withSkip, [batch, length, this.dInner]); // [B, L, H, P] -> [B, L, d_inner]
    return linear(gatedRmsNorm(y, z, this.normWeight.read(), RMSNORM_EPS), this.outProj.read());
  }

  private checkInput(method: string, what: string, actual: readonly number[], expected: readonly number[]): void {
    if (actual.length !== expected.length || actual.some((v, i) => v !== expected[i])) {
      throw new ShapeError(`Mamba2.${method}: expected ${what} of shape [${expected.join(', ')}] but received [${actual.join(', ')}]`);
    }
  }
}
tf.serialization.registerClass(Mamba2);

/** softplus as the Mamba Triton kernels compute it: the argument itself above 20, log1p(exp(x)) below. */
export function softplusLikeTriton(x: tf.Tensor): tf.Tensor {
  // A step() mask rather than where(greater()): Greater has no gradient, and the tape would walk into it.
  // min() keeps exp() finite on the unused branch, so its gradient is 0 rather than NaN.
  const above = tf.step(tf.sub(x, SOFTPLUS_THRESHOLD)); // 1 where x > 20, else 0
  const soft = tf.log1p(tf.exp(tf.minimum(x, SOFTPLUS_THRESHOLD)));
  return tf.add(tf.mul(above, x), tf.mul(tf.sub(1, above), soft));
}

/** RMSNorm(y·SiLU(z)) over the last axis, one group, norm_before_gate=False. */
export function gatedRmsNorm(y: tf.Tensor, z: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  const g = tf.mul(y, silu(z));
  const axis = g.shape.length - 1;
  return tf.mul(tf.mul(g, tf.rsqrt(tf.add(tf.mean(tf.square(g), axis, true), eps))), weight);
}
