/**
 * The Mamba2 selective scan (SSD), ngroups = 1, in two numerically equivalent forms:
 *
 *  - `ssdChunked`   spec §3.4: chunks of `chunkSize` tokens, each a few batched matmuls with the masked decay matrix
 *                   exp(cs_t − cs_s), plus the inter-chunk carry. Differentiable; the form used for inference/training.
 *  - `ssdRecurrent` spec §3.3: one state update per token, S ← exp(Δ·A)·S + Δ·x⊗B, y = S·C. The reference in tests.
 *
 * Both take the post-conv, post-softplus quantities and return y *without* the D·x skip (the caller adds it), and the
 * final state (the one handed to the next frame). Shapes: B = batch, L = tokens, H = heads, P = headdim, N = d_state.
 * Pure functions: call them inside the caller's tf.tidy; they dispose nothing they did not create.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface ScanInputs {
  /** x: [B, L, H, P], head-major channels of the conv output. */
  x: tf.Tensor4D;
  /** Δ = softplus(dt + dt_bias): [B, L, H]. */
  dt: tf.Tensor3D;
  /** A = −exp(A_log): [H]. */
  A: tf.Tensor1D;
  /** B: [B, L, N], shared by all heads (ngroups = 1). */
  B: tf.Tensor3D;
  /** C: [B, L, N], shared by all heads. */
  C: tf.Tensor3D;
  /** SSM state carried in, [B, H, P, N]; null means zeros (sequence start). */
  initialState: tf.Tensor4D | null;
}

export interface ScanOutput {
  /** [B, L, H, P], without the D·x term. */
  y: tf.Tensor4D;
  /** Final SSM state [B, H, P, N]. */
  state: tf.Tensor4D;
}

/** Chunked SSD scan (spec §3.4). Chunk boundaries only change the floating-point order, not the result. */
export function ssdChunked(inputs: ScanInputs, chunkSize: number): ScanOutput {
  const [batch, length, heads, headdim] = inputs.x.shape;
  const dState = inputs.B.shape[2];
  let state = inputs.initialState;
  const ys: tf.Tensor4D[] = [];
  for (let start = 0; start < length; start += chunkSize) {
    const q = Math.min(chunkSize, length - start);
    const x = tf.slice(inputs.x, [0, start, 0, 0], [batch, q, heads, headdim]);
    const dt = tf.slice(inputs.dt, [0, start, 0], [batch, q, heads]);
    const Bc = tf.slice(inputs.B, [0, start, 0], [batch, q, dState]);
    const Cc = tf.slice(inputs.C, [0, start, 0], [batch, q, dState]);
    const out = ssdChunk(x, dt, inputs.A, Bc, Cc, state);
    ys.push(out.y);
    state = out.state;
  }
  const y = ys.length === 1 ? ys[0]! : tf.concat(ys, 1);
  // L = 0 leaves the carried state untouched (a fresh zero state if none was given).
  return { y, state: state ?? tf.zeros([batch, heads, headdim, dState]) };
}

/**
 * The [q, q] causal mask (1 on and below the diagonal), built on the host: one upload instead of the ~10 kernels of
 * tf.linalg.bandPart, for every chunk of every Mamba layer of every frame.
 */
function lowerTriangle(q: number): tf.Tensor2D {
  const m = new Float32Array(q * q);
  for (let t = 0; t < q; t++) m.fill(1, t * q, t * q + t + 1);
  return tf.tensor2d(m, [q, q]);
}

function ssdChunk(x: tf.Tensor4D, dt: tf.Tensor3D, A: tf.Tensor1D, Bc: tf.Tensor3D, Cc: tf.Tensor3D, stateIn: tf.Tensor4D | null): ScanOutput {
  const [batch, q, heads, headdim] = x.shape;
  const dState = Bc.shape[2];
  const dtT = tf.transpose(dt, [0, 2, 1]) as tf.Tensor3D; // [B, q, H] -> [B, H, q]
  const cs = tf.cumsum(tf.mul(dtT, tf.reshape(A, [1, heads, 1])), 2) as tf.Tensor3D; // [B, H, q], non-increasing
  // Decay exp(cs_t − cs_s) for s ≤ t, 0 above the diagonal; min(·, 0) keeps the masked entries from overflowing.
  const diff = tf.sub(tf.expandDims(cs, 3), tf.expandDims(cs, 2)); // [B, H, q(t), q(s)]
  const causal = lowerTriangle(q);
  const decay = tf.mul(tf.exp(tf.minimum(diff, 0)), causal);
  const CB = tf.expandDims(tf.matMul(Cc, Bc, false, true), 1); // [B, 1, q(t), q(s)]
  const scores = tf.mul(tf.mul(decay, CB), tf.expandDims(dtT, 2)); // [B, H, q, q]
  const xh = tf.transpose(x, [0, 2, 1, 3]); // [B, q, H, P] -> [B, H, q, P]
  let yh = tf.reshape(
    tf.matMul(tf.reshape(scores, [batch * heads, q, q]) as tf.Tensor3D, tf.reshape(xh, [batch * heads, q, headdim]) as tf.Tensor3D),
    [batch, heads, q, headdim],
  ) as tf.Tensor4D;
  const csLast = tf.slice(cs, [0, 0, q - 1], [batch, heads, 1]); // [B, H, 1]
  if (stateIn) {
    // Y_off[t] = exp(cs_t) · (S_before · C_t)
    const SC = tf.matMul(Cc, tf.reshape(stateIn, [batch, heads * headdim, dState]) as tf.Tensor3D, false, true); // [B, q, H·P]
    const SCh = tf.transpose(tf.reshape(SC, [batch, q, heads, headdim]), [0, 2, 1, 3]); // -> [B, H, q, P]
    yh = tf.add(yh, tf.mul(SCh, tf.expandDims(tf.exp(cs), 3)));
  }
  // Chunk state: Σ_s exp(cs_last − cs_s)·Δ_s·x_s ⊗ B_s
  const w = tf.mul(tf.exp(tf.sub(csLast, cs)), dtT); // [B, H, q]
  const xw = tf.reshape(tf.transpose(tf.mul(xh, tf.expandDims(w, 3)), [0, 2, 1, 3]), [batch, q, heads * headdim]) as tf.Tensor3D; // [B, q, H·P]
  let state = tf.reshape(tf.matMul(xw, Bc, true, false), [batch, heads, headdim, dState]) as tf.Tensor4D; // [B, H·P, N] -> [B, H, P, N]
  if (stateIn) state = tf.add(state, tf.mul(stateIn, tf.reshape(tf.exp(csLast), [batch, heads, 1, 1])));
  return { y: tf.transpose(yh, [0, 2, 1, 3]), state }; // [B, H, q, P] -> [B, q, H, P]
}

/**
 * Token-by-token scan (spec §3.3). Each step runs in its own tidy so only the outputs and the running state stay
 * alive; the tape keeps whatever backprop needs, so it stays differentiable.
 */
export function ssdRecurrent(inputs: ScanInputs): ScanOutput {
  const [batch, length, heads, headdim] = inputs.x.shape;
  const dState = inputs.B.shape[2];
  let state: tf.Tensor4D = inputs.initialState ?? tf.zeros([batch, heads, headdim, dState]);
  const ys: tf.Tensor3D[] = [];
  for (let t = 0; t < length; t++) {
    const next = tf.tidy(() => scanToken(inputs, t, state));
    if (state !== inputs.initialState) state.dispose();
    state = next.state;
    ys.push(next.y);
  }
  const y = (length === 0 ? tf.zeros([batch, 0, heads, headdim]) : tf.stack(ys, 1)) as tf.Tensor4D;
  tf.dispose(ys);
  return { y, state };
}

/** One recurrence step for token t: S ← exp(Δ_t·A)·S + Δ_t·x_t ⊗ B_t; y_t = S·C_t. y_t is [B, H, P]. */
function scanToken(inputs: ScanInputs, t: number, state: tf.Tensor4D): { y: tf.Tensor3D; state: tf.Tensor4D } {
  const [batch, , heads, headdim] = inputs.x.shape;
  const dState = inputs.B.shape[2];
  const xt = tf.reshape(tf.slice(inputs.x, [0, t, 0, 0], [batch, 1, heads, headdim]), [batch, heads, headdim]);
  const dtt = tf.reshape(tf.slice(inputs.dt, [0, t, 0], [batch, 1, heads]), [batch, heads]);
  const Bt = tf.reshape(tf.slice(inputs.B, [0, t, 0], [batch, 1, dState]), [batch, 1, 1, dState]);
  const Ct = tf.reshape(tf.slice(inputs.C, [0, t, 0], [batch, 1, dState]), [batch, dState, 1]);
  const dA = tf.reshape(tf.exp(tf.mul(dtt, inputs.A)), [batch, heads, 1, 1]);
  const dBx = tf.mul(tf.expandDims(tf.mul(xt, tf.expandDims(dtt, 2)), 3), Bt); // [B, H, P, N]
  const next = tf.add(tf.mul(state, dA), dBx) as tf.Tensor4D;
  const y = tf.reshape(tf.matMul(tf.reshape(next, [batch, heads * headdim, dState]) as tf.Tensor3D, Ct as tf.Tensor3D), [batch, heads, headdim]);
  return { y: y as tf.Tensor3D, state: next };
}
