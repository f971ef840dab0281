/**
 * Activation recomputation for the ViT blocks (the reference's `gradient_checkpointing`; tfjs has none). Under a
 * gradient tape, each block runs as one custom op: the forward keeps only the block's input (its intermediates are
 * freed at once), and the backward runs the block again under a fresh tape to get the gradients of its input and its
 * parameters. Memory per block drops from every activation to one [B, N, D] input, at the cost of a second forward.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DinoBlock, DinoV2 } from '../models/dinov2.js';

/** One block with recomputation when a gradient is being recorded; the plain forward otherwise. */
export function recomputedBlock(block: DinoBlock, x: tf.Tensor3D): tf.Tensor3D {
  if (tf.engine().state.gradientDepth === 0) return block.forward(x);
  const params = [...block.namedParameters()].map((p) => p.spec.variable.read());
  const run = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const input = args[0] as tf.Tensor3D;
    const save = args[args.length - 1] as tf.GradSaveFunc;
    // The tidy frees the block's intermediates now; only the input is saved for the backward pass.
    const value = tf.tidy(() => block.forward(input));
    save([input]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const inp = saved[0] as tf.Tensor3D;
        const engine = tf.engine();
        // The nested gradient call ends by clearing the engine's tape, which the outer backward pass is still using.
        const outerTape = engine.state.activeTape;
        try {
          const { value, grads } = engine.gradients(() => block.forward(inp), [inp, ...params], dy as tf.Tensor3D, true);
          value.dispose();
          return grads.map((g, i) => g ?? tf.zerosLike(i === 0 ? inp : params[i - 1]!));
        } finally {
          engine.state.activeTape = outerTape;
        }
      },
    };
  });
  return run(x, ...params) as tf.Tensor3D;
}

/** Turns recomputation on (or off) for every block of a ViT encoder. */
export function setBlockRecompute(encoder: DinoV2, on: boolean): void {
  encoder.blockRunner = on ? recomputedBlock : null;
}
