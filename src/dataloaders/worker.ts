/** Worker-thread entry: decodes clip requests so file decoding and resizing overlap the training step. */
import { parentPort } from 'node:worker_threads';
import { runClipRequest, type AnyClipRequest } from './requests.js';

parentPort?.on('message', (msg: { id: number; req: AnyClipRequest }) => {
  runClipRequest(msg.req).then(
    (clip) => {
      const transfer = [clip.frames.buffer as ArrayBuffer];
      if (clip.invDepth !== null) transfer.push(clip.invDepth.buffer as ArrayBuffer);
      parentPort!.postMessage({ id: msg.id, clip }, transfer);
    },
    (e: unknown) => {
      const err = e instanceof Error ? e : new Error(String(e));
      parentPort!.postMessage({ id: msg.id, error: { name: err.name, message: err.message } });
    },
  );
});
