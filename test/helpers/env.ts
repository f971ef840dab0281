/** Environment switches in tests. */
import { expect } from 'chai';

/**
 * Runs `body` (which may set or delete process.env[name]) and puts the variable back as it was, also on a throw; for
 * a body that returns a promise, once that settles.
 */
export function withEnvRestored<T>(name: string, body: () => T): T {
  const saved = process.env[name];
  const restore = (): void => {
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  };
  let result: T;
  try {
    result = body();
  } catch (e) {
    restore();
    throw e;
  }
  if (result instanceof Promise) return result.finally(restore) as T;
  restore();
  return result;
}

/**
 * The checks every environment switch's reader gets: `unset` with `name` deleted, `reading` with it set to `value`,
 * and with it set to `bad` the one-line error naming the variable, its `choices` and the value.
 */
export function expectSwitch<T>(name: string, read: () => T, unset: T, [value, reading]: [string, T], bad: string, choices: string): void {
  withEnvRestored(name, () => {
    delete process.env[name];
    expect(read()).to.equal(unset);
    process.env[name] = value;
    expect(read()).to.equal(reading);
    process.env[name] = bad;
    expect(() => read()).to.throw(`Expected one of ${choices} for ${name} but received "${bad}"`);
  });
}
