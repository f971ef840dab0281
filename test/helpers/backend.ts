/** Tests run on wasm (the CPU path CI uses) unless FLASHDEPTH_TEST_BACKEND says otherwise. */
import { selectBackend, type BackendName } from '../../src/backend/index.js';

let ready: Promise<unknown> | undefined;

export function useTestBackend(): Promise<unknown> {
  ready ??= selectBackend((process.env['FLASHDEPTH_TEST_BACKEND'] as BackendName | undefined) ?? 'wasm');
  return ready;
}
