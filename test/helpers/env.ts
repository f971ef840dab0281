/** Environment switches in tests. */

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
