/**
 * Reader for PyTorch checkpoints written by `torch.save` (the zip format of torch ≥ 1.6): `<dir>/data.pkl` holds the
 * pickled object tree, `<dir>/data/<key>` the raw little-endian bytes of each storage. Tensors stay lazy descriptors
 * until `readFloat32`/`readRaw`, which read just that tensor's bytes, so a large checkpoint is never held in memory.
 */
import { CheckpointError } from '../errors.js';
import { DTYPE_BYTES, storedToFloat32 } from './half.js';
import { PickleObject, unpickle, type PickleGlobal, type PickleOpaque, type PickleValue } from './pickle.js';
import type { StoredDtype, TensorInfo, WeightSource } from './weight-source.js';
import { ZipReader, type ZipEntry } from './zip.js';

/** JSON-like view of a checkpoint's non-tensor entries (e.g. `step`). */
export type MetadataValue = null | boolean | number | string | MetadataValue[] | { [key: string]: MetadataValue };

const STORAGE_DTYPES: Record<string, StoredDtype> = {
  FloatStorage: 'float32', HalfStorage: 'float16', BFloat16Storage: 'bfloat16', DoubleStorage: 'float64',
  LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16', CharStorage: 'int8', ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

interface StorageType extends PickleGlobal {
  readonly dtype: StoredDtype;
}

interface StorageRef extends PickleOpaque {
  readonly what: 'storage';
  readonly key: string;
  readonly dtype: StoredDtype;
  readonly numel: number;
}

/** A tensor as described by `_rebuild_tensor_v2`: a strided view into a storage. Nothing is read yet. */
export interface TensorRef extends PickleOpaque {
  readonly what: 'tensor';
  readonly storage: StorageRef;
  /** Offset into the storage, in elements. */
  readonly offset: number;
  readonly shape: number[];
  /** Strides in elements. */
  readonly stride: number[];
}

function isOpaque(v: PickleValue): v is PickleOpaque {
  return typeof v === 'object' && v !== null && (v as PickleOpaque).kind === 'opaque';
}
function isTensorRef(v: PickleValue): v is TensorRef {
  return isOpaque(v) && (v as TensorRef).what === 'tensor';
}

function intList(v: PickleValue): number[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const out: number[] = [];
  for (const x of v) {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) return undefined;
    out.push(x);
  }
  return out;
}

function fn(qualifiedName: string, call: (args: PickleValue[]) => PickleValue): PickleGlobal {
  return { kind: 'global', qualifiedName, call };
}

/** An allow-listed harmless class: calling it only records its arguments. */
function inertClass(qualifiedName: string): PickleGlobal {
  return fn(qualifiedName, (args) => new PickleObject(qualifiedName, args));
}

/** Inert placeholders for types found in training checkpoints beside the weights (hyper-parameters, counters). */
const INERT_CLASSES = [
  'argparse.Namespace',
  'numpy.dtype', 'numpy.ndarray', 'numpy.core.multiarray.scalar', 'numpy._core.multiarray.scalar',
  'numpy.core.multiarray._reconstruct', 'numpy._core.multiarray._reconstruct',
  'torch.Size', 'torch.device', 'torch.float32', 'torch.float16', 'torch.bfloat16', 'torch.float64', 'torch.int64',
  'builtins.set', 'builtins.frozenset', 'builtins.slice', 'builtins.complex',
];

const ALLOWED_SUMMARY = 'allowed: collections.OrderedDict, torch._utils._rebuild_tensor_v2/_rebuild_parameter, torch.*Storage, and inert argparse/numpy scalar types';

/** The allow-list of Python globals a state-dict checkpoint may reference; everything else is refused. */
function torchGlobals(file: string): (module: string, name: string) => PickleGlobal | undefined {
  const table = new Map<string, PickleGlobal>();
  table.set('collections.OrderedDict', fn('collections.OrderedDict', () => new Map()));
  // Python 3 bytes pickled at protocol 2: `_codecs.encode(text, 'latin1')`.
  table.set('_codecs.encode', fn('_codecs.encode', ([text, encoding]) => {
    if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) {
      throw new CheckpointError(`${file}: data.pkl: unsupported _codecs.encode arguments`);
    }
    return new Uint8Array(Buffer.from(text, 'latin1'));
  }));
  const rebuildTensor = (name: string) => fn(name, (args) => {
    const [storage, offset, size, stride] = args;
    const shape = intList(size ?? null);
    const strides = intList(stride ?? null);
    if (!isOpaque(storage ?? null) || (storage as StorageRef).what !== 'storage' || typeof offset !== 'number'
      || shape === undefined || strides === undefined || strides.length !== shape.length) {
      throw new CheckpointError(`${file}: data.pkl: malformed ${name} arguments`);
    }
    const tensor: TensorRef = { kind: 'opaque', what: 'tensor', storage: storage as StorageRef, offset, shape, stride: strides };
    return tensor;
  });
  table.set('torch._utils._rebuild_tensor_v2', rebuildTensor('torch._utils._rebuild_tensor_v2'));
  table.set('torch._utils._rebuild_tensor', rebuildTensor('torch._utils._rebuild_tensor'));
  // A Parameter is its data tensor; requires_grad and hooks do not matter for reading.
  const rebuildParameter = (name: string) => fn(name, ([data]) => {
    if (data === undefined || !isTensorRef(data)) throw new CheckpointError(`${file}: data.pkl: ${name} without a tensor`);
    return data;
  });
  table.set('torch._utils._rebuild_parameter', rebuildParameter('torch._utils._rebuild_parameter'));
  table.set('torch._utils._rebuild_parameter_with_state', rebuildParameter('torch._utils._rebuild_parameter_with_state'));
  for (const [storageName, dtype] of Object.entries(STORAGE_DTYPES)) {
    const g: StorageType = { ...inertClass(`torch.${storageName}`), dtype };
    table.set(`torch.${storageName}`, g);
  }
  for (const name of INERT_CLASSES) table.set(name, inertClass(name));
  return (module, name) => table.get(`${module}.${name}`);
}

/** A torch.save checkpoint opened for lazy reading. Implements WeightSource; also offers raw bytes for conversion. */
export class TorchCheckpoint implements WeightSource {
  readonly path: string;
  /** Non-tensor entries of the checkpoint (e.g. `step`), by dotted key. */
  readonly metadata: Record<string, MetadataValue> = {};
  private readonly zip: ZipReader;
  private readonly prefix: string;
  private readonly tensors = new Map<string, TensorRef>();

  constructor(path: string) {
    this.path = path;
    this.zip = new ZipReader(path);
    try {
      this.prefix = this.findRecordPrefix();
      const pkl = this.zip.get(`${this.prefix}data.pkl`)!;
      const storageKeys = new Set<string>();
      const root = unpickle(this.zip.read(pkl), {
        source: `${path}: ${pkl.name}`,
        resolveGlobal: torchGlobals(path),
        refusalHint: ALLOWED_SUMMARY,
        persistentLoad: (pid) => this.loadStorage(pid, storageKeys),
      });
      this.collect(root);
    } catch (e) {
      this.zip.close();
      throw e;
    }
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  has(key: string): boolean {
    return this.tensors.has(key);
  }

  info(key: string): TensorInfo {
    const t = this.tensor(key);
    return { shape: [...t.shape], dtype: t.storage.dtype };
  }

  readFloat32(key: string): Float32Array {
    const t = this.tensor(key);
    return storedToFloat32(t.storage.dtype, this.readRaw(key));
  }

  /** The tensor's elements in its stored dtype, contiguous row-major little-endian bytes (strided views gathered). */
  readRaw(key: string): Uint8Array {
    const t = this.tensor(key);
    const size = DTYPE_BYTES[t.storage.dtype];
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel === 0) return new Uint8Array(0);
    // The view touches storage elements [offset, last]; read just that span.
    let last = t.offset;
    for (let d = 0; d < t.shape.length; d++) last += (t.shape[d]! - 1) * t.stride[d]!;
    if (last >= t.storage.numel) {
      throw new CheckpointError(`${this.path}: tensor '${key}' (offset ${t.offset}, shape (${t.shape.join(', ')}), stride (${t.stride.join(', ')})) reaches past its storage of ${t.storage.numel} elements`);
    }
    const span = this.zip.read(this.storageEntry(t.storage), t.offset * size, (last - t.offset + 1) * size);
    if (isContiguous(t.shape, t.stride)) return new Uint8Array(span.buffer, span.byteOffset, span.byteLength);
    return gather(span, t.shape, t.stride, size);
  }

  close(): void {
    this.zip.close();
  }

  private tensor(key: string): TensorRef {
    const t = this.tensors.get(key);
    if (t === undefined) throw new CheckpointError(`${this.path}: no tensor named '${key}' (${this.tensors.size} tensors in the file)`);
    return t;
  }

  private storageEntry(storage: StorageRef): ZipEntry {
    return this.zip.get(`${this.prefix}data/${storage.key}`)!;
  }

  /** torch writes every record under one top-level folder (the file's stem, or `archive`). */
  private findRecordPrefix(): string {
    const names = this.zip.entries().map((e) => e.name);
    const pkl = names.find((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkl === undefined) {
      throw new CheckpointError(`${this.path}: zip archive without a <dir>/data.pkl record: not a torch.save checkpoint`);
    }
    const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
    const byteorder = this.zip.get(`${prefix}byteorder`);
    if (byteorder !== undefined && this.zip.read(byteorder).toString('latin1').trim() !== 'little') {
      throw new CheckpointError(`${this.path}: storages were written big-endian (${prefix}byteorder); only little-endian checkpoints are supported`);
    }
    if (names.includes(`${prefix}constants.pkl`) || names.some((n) => n.startsWith(`${prefix}code/`))) {
      throw new CheckpointError(`${this.path}: this is a TorchScript archive (torch.jit.save), not a torch.save state_dict checkpoint; save model.state_dict() with torch.save instead`);
    }
    return prefix;
  }

  private loadStorage(pid: PickleValue, seen: Set<string>): StorageRef {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
      throw new CheckpointError(`${this.path}: data.pkl: unsupported persistent id (expected ('storage', type, key, location, numel))`);
    }
    const [, type, key, , numel] = pid;
    const dtype = (type as StorageType | null)?.dtype;
    if (dtype === undefined || typeof key !== 'string' || typeof numel !== 'number') {
      throw new CheckpointError(`${this.path}: data.pkl: malformed storage reference for key ${String(key)}`);
    }
    const name = `${this.prefix}data/${key}`;
    const entry = this.zip.get(name);
    if (entry === undefined) throw new CheckpointError(`${this.path}: missing storage record '${name}' referenced by data.pkl`);
    if (!seen.has(key) && entry.size < numel * DTYPE_BYTES[dtype]) {
      throw new CheckpointError(`${this.path}: storage record '${name}' holds ${entry.size} bytes but ${numel} ${dtype} elements need ${numel * DTYPE_BYTES[dtype]}`);
    }
    seen.add(key);
    return { kind: 'opaque', what: 'storage', key, dtype, numel };
  }

  /** Takes `model` when present (official FlashDepth layout), else the whole dict; flattens nested dicts. */
  private collect(root: PickleValue): void {
    if (!(root instanceof Map)) {
      if (root instanceof PickleObject) {
        throw new CheckpointError(`${this.path}: the checkpoint is a pickled ${root.className} object, not a state_dict; save model.state_dict() instead`);
      }
      throw new CheckpointError(`${this.path}: the checkpoint holds ${describePickle(root)}, expected a dict of tensors (a state_dict)`);
    }
    const model = root.get('model');
    const stateDict = model instanceof Map ? model : root;
    const found = new Map<string, TensorRef>();
    flatten(stateDict, '', found, this.metadata);
    if (stateDict !== root) {
      for (const [k, v] of root) if (k !== 'model') flatten(v, String(k), new Map(), this.metadata);
    }
    const keys = [...found.keys()];
    const strip = keys.length > 0 && keys.every((k) => k.startsWith('module.'));
    for (const [k, v] of found) this.tensors.set(strip ? k.slice('module.'.length) : k, v);
  }
}

function flatten(value: PickleValue, key: string, tensors: Map<string, TensorRef>, metadata: Record<string, MetadataValue>): void {
  if (isTensorRef(value)) {
    tensors.set(key, value);
  } else if (value instanceof Map && [...value.values()].some(holdsTensor)) {
    for (const [k, v] of value) flatten(v, key === '' ? String(k) : `${key}.${String(k)}`, tensors, metadata);
  } else if (key !== '') {
    metadata[key] = toMetadata(value);
  }
}

function holdsTensor(v: PickleValue): boolean {
  return isTensorRef(v) || (v instanceof Map && [...v.values()].some(holdsTensor));
}

function toMetadata(v: PickleValue): MetadataValue {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (v instanceof Uint8Array) return `<${v.length} bytes>`;
  if (Array.isArray(v)) return v.map(toMetadata);
  if (v instanceof Map) {
    const o: { [key: string]: MetadataValue } = {};
    for (const [k, x] of v) o[String(k)] = toMetadata(x);
    return o;
  }
  if (v instanceof PickleObject) return { $class: v.className, args: v.args.map(toMetadata), state: toMetadata(v.state) };
  if (isTensorRef(v)) return `<tensor (${v.shape.join(', ')}) ${v.storage.dtype}>`;
  return `<${v.kind === 'global' ? (v as PickleGlobal).qualifiedName : 'object'}>`;
}

function describePickle(v: PickleValue): string {
  if (Array.isArray(v)) return `a list/tuple of ${v.length} items`;
  if (isTensorRef(v)) return 'a single tensor';
  return `a ${typeof v}`;
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d]! !== 1 && stride[d]! !== expected) return false;
    expected *= shape[d]!;
  }
  return true;
}

/** Copies the elements of a strided view (relative to `span`'s start) into row-major order. */
function gather(span: Uint8Array, shape: number[], stride: number[], size: number): Uint8Array {
  const numel = shape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(numel * size);
  const rank = shape.length;
  const index = new Array<number>(rank).fill(0);
  let src = 0;
  for (let i = 0; i < numel; i++) {
    out.set(span.subarray(src * size, src * size + size), i * size);
    // Odometer increment over the index, keeping the source element offset in step.
    for (let d = rank - 1; d >= 0; d--) {
      index[d]!++;
      src += stride[d]!;
      if (index[d]! < shape[d]!) break;
      src -= stride[d]! * shape[d]!;
      index[d] = 0;
    }
  }
  return out;
}

/** Opens a torch.save checkpoint. Throws CheckpointError naming the file and the problem. */
export function openTorchCheckpoint(path: string): TorchCheckpoint {
  return new TorchCheckpoint(path);
}

