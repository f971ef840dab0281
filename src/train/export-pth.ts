/**
 * Writing the official FlashDepth `.pth` layout so the PyTorch code can load our checkpoints: a file `torch.load`
 * reads as `{'model': OrderedDict(key → tensor), 'step': int}` (spec §4.1), PyTorch keys and layouts.
 *
 * The file is what `torch.save` writes (zip format, torch ≥ 1.6): STORED entries under `<archive>/`, `data.pkl` (pickle
 * protocol 2), one raw little-endian storage per tensor in `data/<n>` aligned to 64 bytes, plus `byteorder`, `version`,
 * `.format_version` and `.storage_alignment`. The pickle uses only the opcodes and globals torch's own protocol-2
 * output uses (PICKLE_OPCODES, PICKLE_GLOBALS), so `torch.load(weights_only=True)` accepts it.
 */
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { CheckpointError } from '../errors.js';
import { openWeights } from '../io/checkpoint.js';
import { DTYPE_BYTES } from '../io/half.js';
import type { StoredDtype } from '../io/weight-source.js';
import { crc32 } from '../io/crc32.js';

const STORAGE_OF: Record<StoredDtype, string> = {
  float32: 'FloatStorage', float16: 'HalfStorage', bfloat16: 'BFloat16Storage', float64: 'DoubleStorage', int64: 'LongStorage',
  int32: 'IntStorage', int16: 'ShortStorage', int8: 'CharStorage', uint8: 'ByteStorage', bool: 'BoolStorage',
};

/** Opcodes the writer emits (a subset of what torch.save's protocol-2 pickler emits). */
export const PICKLE_OPCODES = {
  PROTO: 0x80, STOP: 0x2e, MARK: 0x28, EMPTY_DICT: 0x7d, EMPTY_TUPLE: 0x29, TUPLE: 0x74, TUPLE1: 0x85, TUPLE2: 0x86,
  TUPLE3: 0x87, SETITEMS: 0x75, BINUNICODE: 0x58, BININT: 0x4a, BININT1: 0x4b, BININT2: 0x4d, LONG1: 0x8a,
  NEWFALSE: 0x89, GLOBAL: 0x63, REDUCE: 0x52, BINPERSID: 0x51, BINPUT: 0x71, BINGET: 0x68,
} as const;

/** The only Python globals the pickle references. */
export const PICKLE_GLOBALS: readonly string[] = ['collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', ...Object.values(STORAGE_OF).map((s) => `torch.${s}`)];

export interface PthTensor {
  key: string;
  dtype: StoredDtype;
  /** PyTorch shape. */
  shape: readonly number[];
  /** Contiguous row-major little-endian bytes, read when the tensor is written. */
  bytes: () => Uint8Array;
}

/** Protocol-2 pickle assembly, memoising globals as torch's pickler does. */
class PickleWriter {
  private readonly parts: Buffer[] = [];
  private readonly memo = new Map<string, number>();

  op(code: number): this {
    this.parts.push(Buffer.from([code]));
    return this;
  }

  int(v: number): this {
    if (!Number.isInteger(v) || v < 0) throw new CheckpointError(`pickle: cannot write ${v} as a non-negative integer`);
    if (v < 0x100) this.parts.push(Buffer.from([PICKLE_OPCODES.BININT1, v]));
    else if (v < 0x10000) { const b = Buffer.alloc(3); b[0] = PICKLE_OPCODES.BININT2; b.writeUInt16LE(v, 1); this.parts.push(b); }
    else if (v < 0x80000000) { const b = Buffer.alloc(5); b[0] = PICKLE_OPCODES.BININT; b.writeInt32LE(v, 1); this.parts.push(b); }
    else {
      // LONG1: little-endian two's complement with a sign byte to spare.
      const bytes: number[] = [];
      let n = BigInt(v);
      while (n > 0n) { bytes.push(Number(n & 0xffn)); n >>= 8n; }
      if (bytes[bytes.length - 1]! & 0x80) bytes.push(0);
      this.parts.push(Buffer.from([PICKLE_OPCODES.LONG1, bytes.length, ...bytes]));
    }
    return this;
  }

  str(s: string): this {
    const body = Buffer.from(s, 'utf8');
    const head = Buffer.alloc(5);
    head[0] = PICKLE_OPCODES.BINUNICODE;
    head.writeUInt32LE(body.length, 1);
    this.parts.push(head, body);
    return this;
  }

  global(qualified: string): this {
    const seen = this.memo.get(qualified);
    if (seen !== undefined) return this.memoGet(seen);
    const dot = qualified.lastIndexOf('.');
    this.parts.push(Buffer.from([PICKLE_OPCODES.GLOBAL]), Buffer.from(`${qualified.slice(0, dot)}\n${qualified.slice(dot + 1)}\n`, 'latin1'));
    const index = this.memo.size;
    if (index > 0xff) throw new CheckpointError('pickle: too many memoised globals');
    this.memo.set(qualified, index);
    this.parts.push(Buffer.from([PICKLE_OPCODES.BINPUT, index]));
    return this;
  }

  private memoGet(index: number): this {
    this.parts.push(Buffer.from([PICKLE_OPCODES.BINGET, index]));
    return this;
  }

  tuple(items: readonly number[]): this {
    if (items.length === 0) return this.op(PICKLE_OPCODES.EMPTY_TUPLE);
    if (items.length > 3) this.op(PICKLE_OPCODES.MARK);
    for (const i of items) this.int(i);
    return this.op([0, PICKLE_OPCODES.TUPLE1, PICKLE_OPCODES.TUPLE2, PICKLE_OPCODES.TUPLE3][items.length] ?? PICKLE_OPCODES.TUPLE);
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function contiguousStride(shape: readonly number[]): number[] {
  const stride = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) { stride[i] = s; s *= shape[i]!; }
  return stride;
}

/** `data.pkl` of `{'model': OrderedDict(...), 'step': step}`; tensor i lives in storage `data/i`. */
export function stateDictPickle(tensors: readonly PthTensor[], step: number): Buffer {
  const p = new PickleWriter();
  const { PROTO, EMPTY_DICT, MARK, EMPTY_TUPLE, REDUCE, SETITEMS, TUPLE, BINPERSID, NEWFALSE, STOP } = PICKLE_OPCODES;
  p.op(PROTO).op(2).op(EMPTY_DICT).op(MARK);
  p.str('model').global('collections.OrderedDict').op(EMPTY_TUPLE).op(REDUCE);
  if (tensors.length > 0) p.op(MARK);
  tensors.forEach((t, i) => {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    p.str(t.key).global('torch._utils._rebuild_tensor_v2').op(MARK);
    // persistent id ('storage', StorageType, key, location, numel)
    p.op(MARK).str('storage').global(`torch.${STORAGE_OF[t.dtype]}`).str(String(i)).str('cpu').int(numel).op(TUPLE).op(BINPERSID);
    p.int(0).tuple(t.shape).tuple(contiguousStride(t.shape)).op(NEWFALSE);
    p.global('collections.OrderedDict').op(EMPTY_TUPLE).op(REDUCE); // backward_hooks
    p.op(TUPLE).op(REDUCE);
  });
  if (tensors.length > 0) p.op(SETITEMS);
  p.str('step').int(step);
  p.op(SETITEMS).op(STOP);
  return p.bytes();
}

// ---------------------------------------------------------------------------------------------------------------------
// Zip (STORED, 64-byte aligned data, as torch's writer)

const ALIGNMENT = 64;

class ZipWriter {
  private offset = 0;
  private readonly central: Buffer[] = [];
  private count = 0;

  constructor(private readonly fd: number, private readonly path: string) {}

  private write(b: Uint8Array): void {
    let done = 0;
    while (done < b.byteLength) done += writeSync(this.fd, b, done, b.byteLength - done);
    this.offset += b.byteLength;
  }

  add(name: string, data: Uint8Array): void {
    const nameBytes = Buffer.from(name, 'utf8');
    if (this.offset + 30 + nameBytes.length + 4 + ALIGNMENT + data.byteLength > 0xffffffff) {
      throw new CheckpointError(`${this.path}: over 4 GiB; zip64 .pth output is not supported (export in float16 or split the model)`);
    }
    // An extra field ('FB', as torch's writer) pads the local header so the data starts 64-byte aligned.
    const headerEnd = this.offset + 30 + nameBytes.length + 4;
    const pad = (ALIGNMENT - (headerEnd % ALIGNMENT)) % ALIGNMENT;
    const extra = Buffer.alloc(4 + pad);
    extra.writeUInt16LE(0x4246, 0);
    extra.writeUInt16LE(pad, 2);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.byteLength, 18);
    local.writeUInt32LE(data.byteLength, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(extra.length, 28);
    const localOffset = this.offset;
    this.write(local);
    this.write(nameBytes);
    this.write(extra);
    this.write(data);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(0x0800, 8);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(data.byteLength, 20);
    cd.writeUInt32LE(data.byteLength, 24);
    cd.writeUInt16LE(nameBytes.length, 28);
    cd.writeUInt32LE(localOffset, 42);
    this.central.push(cd, nameBytes);
    this.count++;
  }

  finish(): void {
    const start = this.offset;
    for (const b of this.central) this.write(b);
    const size = this.offset - start;
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(this.count, 8);
    end.writeUInt16LE(this.count, 10);
    end.writeUInt32LE(size, 12);
    end.writeUInt32LE(start, 16);
    this.write(end);
  }
}

/** Writes `{'model': tensors, 'step': step}` as a torch.save zip, atomically (temp file, then rename). */
export function writePth(path: string, tensors: readonly PthTensor[], step: number): void {
  const archive = basename(path).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_]/g, '_') || 'archive';
  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number;
  try {
    fd = openSync(tmp, 'w');
  } catch (e) {
    throw new CheckpointError(`${path}: cannot write (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  try {
    const zip = new ZipWriter(fd, path);
    zip.add(`${archive}/data.pkl`, stateDictPickle(tensors, step));
    zip.add(`${archive}/.format_version`, Buffer.from('1'));
    zip.add(`${archive}/.storage_alignment`, Buffer.from(String(ALIGNMENT)));
    zip.add(`${archive}/byteorder`, Buffer.from('little'));
    tensors.forEach((t, i) => {
      const bytes = t.bytes();
      const expected = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
      if (bytes.byteLength !== expected) throw new CheckpointError(`${path}: tensor ${t.key} has ${bytes.byteLength} bytes, expected ${expected} for ${t.dtype} (${t.shape.join(', ')})`);
      zip.add(`${archive}/data/${i}`, bytes);
    });
    zip.add(`${archive}/version`, Buffer.from('3\n'));
    zip.finish();
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try { closeSync(fd); } catch { /* already closed */ }
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Converts a weight file with PyTorch keys and layouts (our training checkpoint `iter_N.safetensors`, or any
 * safetensors/.pth) to the official `.pth` layout. `step` defaults to the file's `step` metadata, else 0.
 */
export function exportPth(input: string, output: string, step?: number): { tensors: number; step: number } {
  const source = openWeights(input);
  try {
    const meta = source.metadata as Record<string, unknown>;
    const fileStep = Number(meta['step'] ?? 0);
    const s = step ?? (Number.isInteger(fileStep) && fileStep >= 0 ? fileStep : 0);
    const tensors: PthTensor[] = source.keys().map((key) => {
      const { shape, dtype } = source.info(key);
      return { key, shape, dtype, bytes: () => source.readRaw(key) };
    });
    writePth(output, tensors, s);
    return { tensors: tensors.length, step: s };
  } finally {
    source.close();
  }
}
