/**
 * Fresh initialisation for training (spec §3.6) of whatever a checkpoint does not provide: the Mamba module in stage 1
 * (DA-V2 has no `mamba.*`) and the hybrid fusion in stage 2. Mamba2: dt_bias = softplus⁻¹(dt) with
 * dt = exp(U(log 1e-3, log 0.1)) ≥ 1e-4, A_log = log U(1, 16), D = 1, norm weights 1; `final_layer.1` zero (so the
 * module starts as the identity residual); hybrid `attention.proj` and `mlp.2` zero; norms 1/0; everything else
 * PyTorch's default Linear/Conv init U(±1/√fan_in). ViT tokens (pos_embed, cls_token) get N(0, 0.02).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { FlashModule, NamedParameter } from '../models/module.js';

/** PyTorch fan_in of a parameter from our layout. */
function fanIn(p: NamedParameter): number {
  const s = p.spec.shape;
  switch (p.spec.layout) {
    case 'linear': return s[0]!; // [in, out]
    case 'conv2d': return s[0]! * s[1]! * s[2]!; // [kh, kw, in, out]
    case 'conv2dTranspose': return s[0]! * s[1]! * s[2]!; // [kh, kw, out, in]: torch's fan_in uses dim 1 (= out)
    case 'depthwiseConv1d': return s[0]!; // [k, C], one input channel per group
    case 'same': return s.slice(1).reduce((a, b) => a * b, 1) || 1;
  }
}

/** The module path of a bias: its sibling weight decides the fan_in (PyTorch's bias bound is 1/√fan_in of the weight). */
function siblingFanIn(params: Map<string, NamedParameter>, key: string): number | null {
  const w = params.get(key.replace(/\.bias$/, '.weight'));
  return w && w.spec.shape.length >= 2 ? fanIn(w) : null;
}

const ZERO_INIT = [/^mamba\.final_layer\.1\./, /^hybrid_fusion\..*\.attention\.proj\./, /^hybrid_fusion\..*\.mlp\.2\./];

function initialValue(p: NamedParameter, params: Map<string, NamedParameter>, seed: number): tf.Tensor {
  const shape = p.spec.shape;
  const key = p.key;
  const last = key.split('.').pop()!;
  const uniform = (lo: number, hi: number) => tf.randomUniform(shape, lo, hi, 'float32', seed);
  if (ZERO_INIT.some((re) => re.test(key)) || last === 'mask_token') return tf.zeros(shape);
  if (last === 'dt_bias') {
    const dt = tf.maximum(tf.exp(uniform(Math.log(1e-3), Math.log(0.1))), 1e-4);
    return tf.add(dt, tf.log(tf.neg(tf.expm1(tf.neg(dt))))); // softplus⁻¹(y) = y + log(−expm1(−y))
  }
  if (last === 'A_log') return tf.log(uniform(1, 16));
  if (last === 'D' || last === 'gamma') return tf.ones(shape);
  if (/norm\d*$|_norm$/.test(key.split('.').slice(-2, -1)[0] ?? '') || /\.norm\.weight$/.test(key)) {
    return last === 'weight' ? tf.ones(shape) : tf.zeros(shape);
  }
  if (last === 'pos_embed' || last === 'cls_token') return tf.mul(tf.randomNormal(shape, 0, 1, 'float32', seed), 0.02);
  const fan = shape.length >= 2 ? fanIn(p) : siblingFanIn(params, key) ?? Math.max(1, shape[0]!);
  const bound = 1 / Math.sqrt(fan);
  return uniform(-bound, bound);
}

/** Initialises every parameter of `model` (or those whose key passes `filter`) for training from scratch. */
export function initTrainingWeights(model: FlashModule, seed = 42, filter: (key: string) => boolean = () => true): void {
  const all = new Map([...model.namedParameters()].map((p) => [p.key, p]));
  let i = 0;
  for (const p of all.values()) {
    i++;
    if (!filter(p.key)) continue;
    const s = seed * 100003 + i;
    tf.tidy(() => {
      p.spec.variable.write(initialValue(p, all, s));
    });
  }
}
