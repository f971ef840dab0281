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
