/** Stacks a batch of clips into tensors: frames [B, T, H, W, 3] and inverse depth [B, T, H, W]. */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';
import type { Clip } from './types.js';

export function clipsToTensors(clips: Clip[]): { frames: tf.Tensor5D; invDepth: tf.Tensor4D | null } {
  const first = clips[0];
  if (first === undefined) throw new ShapeError('clipsToTensors: empty batch');
  const { length: T, height: H, width: W, depthHeight: dh, depthWidth: dw } = first;
  for (const c of clips) {
    if (c.length !== T || c.height !== H || c.width !== W || c.depthHeight !== dh || c.depthWidth !== dw) {
      throw new ShapeError(`clipsToTensors: clip ${c.meta.dataset}/${c.meta.scene} is ${c.length}×${c.height}×${c.width}, expected ${T}×${H}×${W}`);
    }
  }
  const frames = new Float32Array(clips.length * T * H * W * 3);
  clips.forEach((c, b) => frames.set(c.frames, b * T * H * W * 3));
  const withDepth = clips.every((c) => c.invDepth !== null);
  let invDepth: tf.Tensor4D | null = null;
  if (withDepth) {
    const d = new Float32Array(clips.length * T * dh * dw);
    clips.forEach((c, b) => d.set(c.invDepth!, b * T * dh * dw));
    invDepth = tf.tensor4d(d, [clips.length, T, dh, dw]);
  }
  return { frames: tf.tensor5d(frames, [clips.length, T, H, W, 3]), invDepth };
}
