/**
 * AdamW exactly as `torch.optim.AdamW(groups, betas=(0.9, 0.95))` with its defaults (spec §5.2): eps 1e-8 and
 * decoupled weight decay 0.01 on every parameter (biases, norms, A_log, D and dt_bias included), per-group learning
 * rates scaled by the schedule's factor. tfjs has no AdamW; this follows torch's single-tensor update order:
 *
 *   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
 *   p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
 *
 * Like torch, a parameter whose gradient is absent in a step (unused by the forward pass) is skipped entirely: no
 * decay, no moment update, its step count does not advance. Moments are created lazily at a parameter's first step.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CheckpointError, ConfigError } from '../errors.js';
import type { GroupName, ParamGroup, TrainParam } from './param-groups.js';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/** The reference's settings: betas (0.9, 0.95), torch defaults eps 1e-8 and weight_decay 0.01. */
export const REFERENCE_ADAMW: Required<AdamWOptions> = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.01 };

interface Slot {
  m: tf.Variable;
  v: tf.Variable;
  step: number;
}

/** The optimiser state as plain data, for checkpoints: moments by `exp_avg.<key>` / `exp_avg_sq.<key>`. */
export interface AdamWState {
  steps: Record<string, number>;
  tensors: Map<string, tf.Tensor>;
}

/** A non-trainable variable holding `init`'s values; `init` is disposed (a variable shares, not copies, its data). */
function variableFrom(init: tf.Tensor): tf.Variable {
  const v = tf.variable(init, false);
  init.dispose();
  return v;
}

const zeroVariable = (like: tf.Tensor) => variableFrom(tf.zerosLike(like));

export class AdamW {
  readonly options: Required<AdamWOptions>;
  private readonly groups: ParamGroup[];
  private readonly slots = new Map<string, Slot>();
  private readonly paramByKey = new Map<string, { param: TrainParam; group: ParamGroup }>();

  constructor(groups: ParamGroup[], options: AdamWOptions = {}) {
    this.options = { ...REFERENCE_ADAMW, ...options };
    const { beta1, beta2, eps, weightDecay } = this.options;
    if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) throw new ConfigError(`AdamW: betas must be in [0, 1) but received (${beta1}, ${beta2})`);
    if (!(eps >= 0) || !(weightDecay >= 0)) throw new ConfigError(`AdamW: eps and weight_decay must be ≥ 0 but received ${eps}, ${weightDecay}`);
    this.groups = groups;
    for (const group of groups) for (const param of group.params) this.paramByKey.set(param.key, { param, group });
  }

  /** Every parameter the optimiser updates, in group order (the list to differentiate against). */
  variables(): tf.Variable[] {
    return this.groups.flatMap((g) => g.params.map((p) => p.variable));
  }

  /** Keys of the parameters, aligned with `variables()`. */
  keys(): string[] {
    return this.groups.flatMap((g) => g.params.map((p) => p.key));
  }

  /** The learning rate each group uses at this schedule factor. */
  groupLrs(factor: number): Record<GroupName, number> {
    return Object.fromEntries(this.groups.map((g) => [g.name, g.lr * factor])) as Record<GroupName, number>;
  }

  /**
   * One update. `grads` maps parameter keys to gradients (a key that is absent is skipped, as a None grad in torch);
   * `factor` is the schedule's lr factor for this step. The gradients are not disposed.
   */
  step(grads: ReadonlyMap<string, tf.Tensor>, factor: number): void {
    const { beta1, beta2, eps, weightDecay } = this.options;
    for (const [key, grad] of grads) {
      const entry = this.paramByKey.get(key);
      if (!entry) throw new ConfigError(`AdamW: gradient for ${key}, which is not in any trained parameter group`);
      const { param, group } = entry;
      let slot = this.slots.get(key);
      if (!slot) {
        slot = { m: zeroVariable(param.variable), v: zeroVariable(param.variable), step: 0 };
        this.slots.set(key, slot);
      }
      slot.step += 1;
      const lr = group.lr * factor;
      const biasCorrection1 = 1 - beta1 ** slot.step;
      const biasCorrection2Sqrt = Math.sqrt(1 - beta2 ** slot.step);
      const stepSize = lr / biasCorrection1;
      const s = slot;
      tf.tidy(() => {
        const decayed = tf.mul(param.variable, 1 - lr * weightDecay);
        const m = tf.add(tf.mul(s.m, beta1), tf.mul(grad, 1 - beta1));
        const v = tf.add(tf.mul(s.v, beta2), tf.mul(tf.square(grad), 1 - beta2));
        const denom = tf.add(tf.div(tf.sqrt(v), biasCorrection2Sqrt), eps);
        s.m.assign(m);
        s.v.assign(v);
        param.variable.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), stepSize)));
      });
    }
  }

  /** The state for a checkpoint. The tensors are the optimiser's own variables: read them, do not dispose them. */
  state(): AdamWState {
    const steps: Record<string, number> = {};
    const tensors = new Map<string, tf.Tensor>();
    for (const [key, slot] of this.slots) {
      steps[key] = slot.step;
      tensors.set(`exp_avg.${key}`, slot.m);
      tensors.set(`exp_avg_sq.${key}`, slot.v);
    }
    return { steps, tensors };
  }

  /** Restores `state()` output (from a checkpoint): `read(name)` returns a moment's values. */
  loadState(steps: Record<string, number>, read: (name: string) => Float32Array, origin: string): void {
    this.disposeSlots();
    for (const [key, step] of Object.entries(steps)) {
      const entry = this.paramByKey.get(key);
      if (!entry) throw new CheckpointError(`${origin}: optimiser state for ${key}, which this run does not train (changed lr or model?)`);
      const shape = entry.param.variable.shape;
      const size = entry.param.variable.size;
      const load = (name: string) => {
        const data = read(name);
        if (data.length !== size) throw new CheckpointError(`${origin}: ${name} has ${data.length} values, expected ${size} for shape [${shape.join(', ')}]`);
        return variableFrom(tf.tensor(data, shape, 'float32'));
      };
      this.slots.set(key, { m: load(`exp_avg.${key}`), v: load(`exp_avg_sq.${key}`), step });
    }
  }

  private disposeSlots(): void {
    for (const s of this.slots.values()) tf.dispose([s.m, s.v]);
    this.slots.clear();
  }

  dispose(): void {
    this.disposeSlots();
  }
}

/**
 * torch.nn.utils.clip_grad_norm_: scales every gradient by min(1, maxNorm / (‖g‖₂ + 1e-6)) over all of them together.
 * Returns the new gradients (the caller disposes both) and the norm before clipping.
 */
export async function clipGradNorm(grads: ReadonlyMap<string, tf.Tensor>, maxNorm: number): Promise<{ grads: Map<string, tf.Tensor>; norm: number }> {
  const norm = await globalNorm(grads);
  const coef = Math.min(1, maxNorm / (norm + 1e-6));
  const out = new Map<string, tf.Tensor>();
  for (const [k, g] of grads) out.set(k, tf.mul(g, coef));
  return { grads: out, norm };
}

/** ‖g‖₂ over all gradients together. */
export async function globalNorm(grads: ReadonlyMap<string, tf.Tensor>): Promise<number> {
  if (grads.size === 0) return 0;
  const sq = tf.tidy(() => tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))));
  // Asynchronous readback: WebGPU in Node has no synchronous one (dataSync needs a browser canvas).
  const value = Math.sqrt((await sq.data())[0]!);
  sq.dispose();
  return value;
}
