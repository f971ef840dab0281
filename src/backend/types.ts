/** What backend selection reports, and the one error kind its initialisers use to say "not here". */
export const BACKEND_NAMES = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
export type ConcreteBackendName = Exclude<BackendName, 'auto'>;

/** A backend `auto` tried and passed over, with one short reason. */
export interface SkippedBackend {
  name: ConcreteBackendName;
  reason: string;
}

export interface BackendInfo {
  name: ConcreteBackendName;
  /** The device in words: adapter name for webgpu, thread count for wasm. */
  device: string;
  /** Optional capabilities that are on (e.g. `simd`, `threads`, `shader-f16`, `subgroups`). */
  features: string[];
  /** Backends `auto` tried first, in order; empty for a named backend. */
  skipped: SkippedBackend[];
  /** wasm: XNNPACK threads actually running. */
  threads?: number;
  /** webgpu: the device limits we requested (the adapter's maxima). */
  limits?: Record<string, number>;
}

/** What an initialiser returns; selectBackend adds `skipped`. */
export type InitializedBackend = Omit<BackendInfo, 'skipped'>;

/** Thrown by an initialiser when its backend cannot run here; `reason` is short enough for the backend line. */
export class BackendUnavailable extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'BackendUnavailable';
  }
}

/** First line of an error's message, for reasons that must fit on the backend line. */
export function shortReason(err: unknown, max = 120): string {
  const text = err instanceof Error ? err.message : String(err);
  const line = text.split('\n').find((l) => l.trim() !== '')?.trim() ?? 'unknown error';
  return line.length > max ? line.slice(0, max - 1) + '…' : line;
}

/** True when a dynamic import failed because the package is absent (not because it broke while loading). */
export function isModuleNotFound(err: unknown, specifier: string): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && shortReason(err, 10_000).includes(specifier);
}
