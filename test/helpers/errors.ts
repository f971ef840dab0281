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

/** The error `p` rejects with (fails the test if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}
