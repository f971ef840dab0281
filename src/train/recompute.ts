/**
 * Activation recomputation (the reference's `gradient_checkpointing`; tfjs has none). Under a gradient tape, a
 * stateless function of (inputs, parameters) runs as one custom op: the forward keeps only its inputs (its
 * intermediates are freed at once), and the backward runs the function again under a fresh tape to get the gradients
 * of its inputs and parameters. Memory per unit drops from every saved activation to its inputs, at the cost of a
 * second forward. Used for every ViT block (`DinoV2.blockRunner`) and for the DPT decoder's reassemble stages,
 * refinenets and output head (`DPTHead.stageRunner`); the hooks that carry state (Mamba) or fuse the teacher run
 * outside the recomputed units.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DinoBlock, DinoV2 } from '../models/dinov2.js';
import type { DPTHead } from '../models/dpt.js';
import type { FlashModule } from '../models/module.js';

/**
 * `fn(...inputs)`, recomputed in backward when a gradient is being recorded (the plain call otherwise). `fn` must be
 * pure: its result may depend only on `inputs` and on `params` (every variable it reads, which must be listed, or
 * their gradients are lost). Numerically identical to the plain call: the backward re-runs the same kernels.
 */
export function recomputed<I extends tf.Tensor[], T extends tf.Tensor>(fn: (...inputs: I) => T, inputs: I, params: readonly tf.Variable[]): T {
  if (tf.engine().state.gradientDepth === 0) return fn(...inputs);
  const n = inputs.length;
  const run = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const xs = args.slice(0, n) as I;
    const save = args[args.length - 1] as tf.GradSaveFunc;
    // The tidy frees the unit's intermediates now; only the inputs are saved for the backward pass.
    const value = tf.tidy(() => fn(...xs));
    save(xs);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const again = saved as I;
        const engine = tf.engine();
        // The nested gradient call ends by clearing the engine's tape, which the outer backward pass is still using.
        const outerTape = engine.state.activeTape;
        try {
          const { value: y, grads } = engine.gradients(() => fn(...again), [...again, ...params], dy, true);
          y.dispose();
          return grads.map((g, i) => g ?? tf.zerosLike(i < n ? again[i]! : params[i - n]!));
        } finally {
          engine.state.activeTape = outerTape;
        }
      },
    };
  });
  return run(...inputs, ...params) as T;
}

function variablesOf(modules: readonly FlashModule[]): tf.Variable[] {
  return modules.flatMap((m) => m.parameterVariables());
}

/** One ViT block with recomputation when a gradient is being recorded; the plain forward otherwise. */
export function recomputedBlock(block: DinoBlock, x: tf.Tensor3D): tf.Tensor3D {
  return recomputed((input: tf.Tensor3D) => block.forward(input), [x], variablesOf([block]));
}

/** A decoder stage of `modules` (their parameters are the stage's), recomputed in backward. */
export function recomputedStage<I extends tf.Tensor[], T extends tf.Tensor>(fn: (...inputs: I) => T, inputs: I, modules: readonly FlashModule[]): T {
  return recomputed(fn, inputs, variablesOf(modules));
}

/** Turns recomputation on (or off) for every block of a ViT encoder. */
export function setBlockRecompute(encoder: DinoV2, on: boolean): void {
  encoder.blockRunner = on ? recomputedBlock : null;
}

/** Turns recomputation on (or off) for the stateless stages of a DPT decoder (reassembles, refinenets, head). */
export function setDecoderRecompute(head: DPTHead, on: boolean): void {
  head.stageRunner = on ? recomputedStage : null;
}

/** `training.gradient_checkpointing` for a FlashDepth model: ViT blocks and DPT stages (the teacher runs untaped). */
export function setModelRecompute(model: { pretrained: DinoV2; depthHead: DPTHead }, on: boolean): void {
  setBlockRecompute(model.pretrained, on);
  setDecoderRecompute(model.depthHead, on);
}
