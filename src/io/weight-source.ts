/**
 * A read-only, lazily-read collection of named tensors: what a `.pth` checkpoint or a safetensors file offers.
 * The model weight loader (`src/models/weights.ts`) only talks to this interface.
 */

/** Element types found in checkpoints. Values are always handed out as float32 (or int) arrays. */
export type StoredDtype = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export interface TensorInfo {
  /** Shape in the file's own (PyTorch) layout. */
  shape: number[];
  /** Element type as stored in the file. */
  dtype: StoredDtype;
}

export interface WeightSource {
  /** The file this reads from (for error messages). */
  readonly path: string;
  /** Tensor names, in file order. */
  keys(): string[];
  has(key: string): boolean;
  /** Shape and dtype without reading data; throws CheckpointError naming the key if absent. */
  info(key: string): TensorInfo;
  /**
   * Reads one tensor as a contiguous row-major Float32Array (float16/bfloat16/float64/ints converted; strided views
   * materialised). Throws CheckpointError naming the file and key on any problem.
   */
  readFloat32(key: string): Float32Array;
  /** Releases file handles. */
  close(): void;
}

/**
 * A view of `source` whose keys get `prefix` prepended; keys for which `exclude` returns true (tested on the
 * source's own key) are hidden. Used to place one checkpoint under a sub-model, e.g. FlashDepth-L's
 * `pretrained.*`/`depth_head.*` as Full's `teacher_model.*`.
 */
export function prefixedSource(source: WeightSource, prefix: string, exclude: (key: string) => boolean = () => false): WeightSource {
  const keys = source.keys().filter((k) => !exclude(k));
  const visible = new Set(keys);
  const inner = (key: string): string | undefined => {
    if (!key.startsWith(prefix)) return undefined;
    const k = key.slice(prefix.length);
    return visible.has(k) ? k : undefined;
  };
  const sourceKey = (key: string): string => {
    const k = inner(key);
    if (k === undefined) return key.slice(prefix.length); // let the source raise its own "missing key" error
    return k;
  };
  return {
    path: source.path,
    keys: () => keys.map((k) => prefix + k),
    has: (key) => inner(key) !== undefined,
    info: (key) => source.info(sourceKey(key)),
    readFloat32: (key) => source.readFloat32(sourceKey(key)),
    close: () => source.close(),
  };
}

/** Several sources seen as one; a key present in more than one is an error naming both files. */
export function mergedSource(sources: readonly WeightSource[]): WeightSource {
  const owner = new Map<string, WeightSource>();
  for (const s of sources) {
    for (const k of s.keys()) {
      const prev = owner.get(k);
      if (prev) throw new Error(`key ${k} is in both ${prev.path} and ${s.path}`);
      owner.set(k, s);
    }
  }
  const find = (key: string): WeightSource => owner.get(key) ?? sources[0]!;
  return {
    path: sources.map((s) => s.path).join(' + '),
    keys: () => [...owner.keys()],
    has: (key) => owner.has(key),
    info: (key) => find(key).info(key),
    readFloat32: (key) => find(key).readFloat32(key),
    close: () => sources.forEach((s) => s.close()),
  };
}
