/** Opening weight files for random-access reads, with the one error message every reader uses. */
import { openSync } from 'node:fs';
import { CheckpointError } from '../errors.js';

/** A read-only file descriptor for `path`; a CheckpointError naming the file and the OS reason otherwise. */
export function openWeightFile(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    throw new CheckpointError(`${path}: cannot open weight file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}
