/** Test helpers for error assertions. */
import { expect } from 'chai';
import { CheckpointError } from '../../src/errors.js';

/** The message of the CheckpointError `fn` throws (fails the test if it throws nothing or something else). */
export function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(CheckpointError);
    return (e as Error).message;
  }
  throw new Error('expected a CheckpointError');
}
