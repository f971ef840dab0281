/** Environment switches in tests. */

/** Runs `body` (which may set or delete process.env[name]) and puts the variable back as it was, also on a throw. */
export function withEnvRestored<T>(name: string, body: () => T): T {
  const saved = process.env[name];
  try {
    return body();
  } finally {
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  }
}
