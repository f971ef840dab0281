/**
 * Typed errors. Every user-facing failure is one of these, with a one-line message that names the file, flag or
 * key and what was expected. The CLI maps them to exit codes and prints only the message (no stack trace).
 */
export class FlashDepthError extends Error {
  /** Process exit code the CLI uses for this class of error. */
  readonly exitCode: number = 1;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A config file, flag or `key=value` override is wrong. */
export class ConfigError extends FlashDepthError {
  override readonly exitCode = 2;
}

/** A weight file (`.pth`, safetensors) is missing, corrupt, or does not fit the model. */
export class CheckpointError extends FlashDepthError {
  override readonly exitCode = 3;
}

/** A tensor or file has a shape that does not fit. */
export class ShapeError extends FlashDepthError {}

/** A requested backend could not be initialised. */
export class BackendError extends FlashDepthError {
  override readonly exitCode = 4;
}

/** An input (video, image, folder, stream, data file) is missing or unreadable. */
export class InputError extends FlashDepthError {
  override readonly exitCode = 5;
}

/** A feature whose issue has not landed yet. */
export class NotImplementedYetError extends FlashDepthError {
  override readonly exitCode = 64;
}

/** Formats a value for an error message: short, typed, never a whole array. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `[${value.slice(0, 8).map(describeValue).join(', ')}${value.length > 8 ? ', …' : ''}]`;
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? value.slice(0, 77) + '...' : value);
  if (typeof value === 'object') return `an object (${Object.keys(value as object).slice(0, 5).join(', ')})`;
  return `${String(value)} (${typeof value})`;
}

/** sharp-style option error: "Expected positive integer for --frames but received -1 (number)". */
export function invalidParameterError(name: string, expected: string, actual: unknown): ConfigError {
  return new ConfigError(`Expected ${expected} for ${name} but received ${describeValue(actual)}`);
}

/** Throws the option error of `flag` unless `value` is an integer ≥ `min` (a count: of frames, steps, sequences…). */
export function checkCount(flag: string, value: number, min: 0 | 1): void {
  if (!Number.isInteger(value) || value < min) throw invalidParameterError(flag, min === 1 ? 'positive integer' : 'non-negative integer', value);
}

/** Throws the option error of `flag width` / `flag height` unless both are positive multiples of 14 (the ViT patch). */
export function checkModelSize(flag: string, width: number, height: number): void {
  for (const [side, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v <= 0 || v % 14 !== 0) throw invalidParameterError(`${flag} ${side}`, 'a positive multiple of 14', v);
  }
}
