/**
 * Streaming inference with recorded-frame replay (src/backend/webgpu-replay.ts): the first frames of a sequence run
 * through tfjs (they compile shaders and fill the model's caches), the next one is recorded, and every later frame
 * replays that recording — the same GPU work without tfjs' per-dispatch host cost. Off the webgpu backend, with replay
 * off, or where a frame cannot be recorded, every frame is a plain `model.predict`. The depths are identical either
 * way (test/kernels/kernel-check.ts checks it on a software Vulkan device).
 *
 * The recording is dropped, and the warm-up starts over, whenever what it recorded no longer holds: a new sequence
 * (`reset`, or the model's state replaced by a direct `model.predict`), another frame size or dtype, or another kernel
 * mode or precision.
 */
import * as tf from '@tensorflow/tfjs-core';
import { RecordedFrame, ReplayUnsupported, type DispatchTime } from '../backend/webgpu-replay.js';
import { kernelMode, precisionMode } from '../kernels/mode.js';
import type { FlashDepth } from '../models/flashdepth.js';

/** Frames of a sequence that run through tfjs before one is recorded: frame 0 has no state, frame 1 is the first with one. */
export const REPLAY_WARMUP_FRAMES = 2;

export interface StreamingPredictorOptions {
  /** Replay recorded frames where the backend is webgpu (default true). */
  replay?: boolean;
  /** Called once if replay turns out to be impossible here (the predictor then runs every frame through tfjs). */
  onReplayUnavailable?: (reason: string) => void;
}

/** How the predictor has run the frames so far. */
export interface ReplayStats {
  /** Frames run through tfjs (warm-up, and everything when replay is off or unavailable). */
  tfjsFrames: number;
  /** Frames recorded (each also ran, through tfjs). */
  recordedFrames: number;
  /** Frames replayed. */
  replayedFrames: number;
  /** Dispatches of the current recording (0 without one). */
  dispatchesPerFrame: number;
  /** Why replay is off here, or null. */
  unavailable: string | null;
}

export class StreamingPredictor {
  private recording: RecordedFrame | null = null;
  private recordedKey = '';
  /** Frames run since the sequence (or the frame size) began, while the model's state was only ever ours. */
  private streak = 0;
  private lastStates: readonly tf.Tensor[] | null = null;
  private lastShape = '';
  private unavailable: string | null;
  private readonly counts = { tfjsFrames: 0, recordedFrames: 0, replayedFrames: 0 };

  constructor(readonly model: FlashDepth, private readonly options: StreamingPredictorOptions = {}) {
    this.unavailable = options.replay === false ? 'replay is off' : null;
  }

  /**
   * Depth of the next frame of the sequence (as `FlashDepth.predict`: [H, W, 3] → [H, W], [1, H, W, 3] → [1, H, W];
   * normalised input). The caller owns the returned tensor; the frame stays the caller's.
   */
  predict(frame: tf.Tensor): tf.Tensor {
    const shape = `${frame.dtype}[${frame.shape.join(',')}]`;
    const states = this.model.states ?? [];
    const key = `${kernelMode()}/${precisionMode()}/${shape}`;
    if (this.recording) {
      if (this.recordedKey === key && this.recording.matches([frame], states)) {
        this.counts.replayedFrames++;
        return this.recording.replay([frame])[0]!;
      }
      this.dropRecording();
    }
    const continues = shape === this.lastShape && (this.lastStates === null ? states.length === 0 : sameTensors(states, this.lastStates));
    this.streak = continues ? this.streak + 1 : 1;
    this.lastShape = shape;
    if (this.unavailable === null && tf.getBackend() !== 'webgpu') this.unavailable = `replay needs the webgpu backend (this is ${tf.getBackend()})`;
    if (this.unavailable === null && this.streak > REPLAY_WARMUP_FRAMES) {
      let recorded: ReturnType<typeof RecordedFrame.record> | null = null;
      try {
        recorded = RecordedFrame.record({ inputs: [frame], carried: () => this.model.states ?? [], run: () => [this.model.predict(frame)] });
      } catch (e) {
        if (!(e instanceof ReplayUnsupported)) throw e;
        // The frame was interrupted before predict finished: the model's state is still the one before it.
        this.markUnavailable(e.message);
      }
      if (recorded) {
        this.lastStates = this.model.states ?? [];
        if (recorded.frame === null) {
          this.markUnavailable(recorded.reason);
          this.counts.tfjsFrames++;
        } else {
          this.recording = recorded.frame;
          this.recordedKey = key;
          this.counts.recordedFrames++;
        }
        return recorded.outputs[0]!;
      }
    }
    this.counts.tfjsFrames++;
    const depth = this.model.predict(frame);
    this.lastStates = this.model.states ?? [];
    return depth;
  }

  /**
   * GPU time of each dispatch of the current recording, replayed `frames` times back to back on `frame` (the state
   * advances as with `predict`); null without a recording that fits `frame`. See RecordedFrame.timeDispatches.
   */
  async timeDispatches(frame: tf.Tensor, frames = 5): Promise<{ dispatches: DispatchTime[]; frameMs: number } | null> {
    if (!this.recording?.matches([frame], this.model.states ?? [])) return null;
    const timing = await this.recording.timeDispatches([frame], frames);
    this.counts.replayedFrames += frames;
    return timing;
  }

  /** Starts a new sequence: zero Mamba state; the next frames warm up and record again. */
  reset(): void {
    this.dropRecording();
    this.model.resetState();
    this.streak = 0;
    this.lastStates = null;
    this.lastShape = '';
  }

  get stats(): ReplayStats {
    return { ...this.counts, dispatchesPerFrame: this.recording?.dispatches ?? 0, unavailable: this.unavailable };
  }

  /** Frees the recording (its buffers return to tfjs' pool). The model stays the caller's. */
  dispose(): void {
    this.dropRecording();
  }

  private markUnavailable(reason: string): void {
    this.unavailable = reason;
    this.options.onReplayUnavailable?.(reason);
  }

  private dropRecording(): void {
    this.recording?.dispose();
    this.recording = null;
    this.streak = 0;
  }
}

function sameTensors(a: readonly tf.Tensor[], b: readonly tf.Tensor[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}
