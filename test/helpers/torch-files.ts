/**
 * Builders for hand-made torch.save-style files in tests, without python or torch: a minimal STORED zip writer
 * (optionally zip64) and a pickle assembler that emits the same opcodes torch.save's protocol-2 pickler does.
 */
import { writeFileSync } from 'node:fs';
import { crc32 } from '../../src/io/crc32.js';

export interface ZipRecord {
  name: string;
  data: Uint8Array;
  /** Compression method written in the headers (the bytes stay as given); 0 = stored. */
  method?: number;
}

/** Zip bytes with the given records (STORED, no alignment padding). `zip64` writes zip64 end records and extras. */
export function buildZip(records: ZipRecord[], options: { zip64?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const r of records) {
    const name = Buffer.from(r.name, 'utf8');
    const crc = crc32(r.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(r.method ?? 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(r.data.length, 18);
    local.writeUInt32LE(r.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    parts.push(local, name, Buffer.from(r.data));
    const extra = Buffer.alloc(options.zip64 ? 28 : 0);
    if (options.zip64) {
      extra.writeUInt16LE(0x0001, 0);
      extra.writeUInt16LE(24, 2);
      extra.writeBigUInt64LE(BigInt(r.data.length), 4);
      extra.writeBigUInt64LE(BigInt(r.data.length), 12);
      extra.writeBigUInt64LE(BigInt(offset), 20);
    }
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(45, 4);
    cd.writeUInt16LE(45, 6);
    cd.writeUInt16LE(r.method ?? 0, 10);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(options.zip64 ? 0xffffffff : r.data.length, 20);
    cd.writeUInt32LE(options.zip64 ? 0xffffffff : r.data.length, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt16LE(extra.length, 30);
    cd.writeUInt32LE(options.zip64 ? 0xffffffff : offset, 42);
    central.push(cd, name, extra);
    offset += 30 + name.length + r.data.length;
  }
  const cdBytes = Buffer.concat(central);
  const tail: Buffer[] = [];
  if (options.zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeUInt16LE(45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(records.length), 24);
    rec.writeBigUInt64LE(BigInt(records.length), 32);
    rec.writeBigUInt64LE(BigInt(cdBytes.length), 40);
    rec.writeBigUInt64LE(BigInt(offset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(offset + cdBytes.length), 8);
    loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(options.zip64 ? 0xffff : records.length, 8);
  eocd.writeUInt16LE(options.zip64 ? 0xffff : records.length, 10);
  eocd.writeUInt32LE(options.zip64 ? 0xffffffff : cdBytes.length, 12);
  eocd.writeUInt32LE(options.zip64 ? 0xffffffff : offset, 16);
  return Buffer.concat([...parts, cdBytes, ...tail, eocd]);
}

/** Assembles pickle opcodes by hand (protocol 2 plus a few protocol 4 ones). */
export class PickleBuilder {
  private readonly out: number[] = [];

  private op(...bytes: number[]): this {
    this.out.push(...bytes);
    return this;
  }
  private u32(n: number): number[] {
    return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
  }

  proto(version = 2): this { return this.op(0x80, version); }
  frame(length: number): this { return this.op(0x95, ...this.u32(length), 0, 0, 0, 0); }
  mark(): this { return this.op(0x28); }
  stop(): this { return this.op(0x2e); }
  emptyDict(): this { return this.op(0x7d); }
  emptyList(): this { return this.op(0x5d); }
  emptyTuple(): this { return this.op(0x29); }
  tuple(): this { return this.op(0x74); }
  tuple1(): this { return this.op(0x85); }
  tuple2(): this { return this.op(0x86); }
  tuple3(): this { return this.op(0x87); }
  setitem(): this { return this.op(0x73); }
  setitems(): this { return this.op(0x75); }
  appends(): this { return this.op(0x65); }
  reduce(): this { return this.op(0x52); }
  build(): this { return this.op(0x62); }
  binpersid(): this { return this.op(0x51); }
  none(): this { return this.op(0x4e); }
  bool(v: boolean): this { return this.op(v ? 0x88 : 0x89); }
  memoize(): this { return this.op(0x94); }
  put(i: number): this { return this.op(0x71, i); }
  get(i: number): this { return this.op(0x68, i); }
  raw(...bytes: number[]): this { return this.op(...bytes); }

  /** BININT1 / BININT2 / BININT, as Python's pickler picks them. */
  int(n: number): this {
    if (n >= 0 && n < 256) return this.op(0x4b, n);
    if (n >= 0 && n < 65536) return this.op(0x4d, n & 0xff, n >> 8);
    return this.op(0x4a, ...this.u32(n));
  }
  /** LONG1 with a little-endian two's-complement body. */
  long1(body: number[]): this { return this.op(0x8a, body.length, ...body); }
  float(v: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v, 0);
    return this.op(0x47, ...b);
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.op(0x58, ...this.u32(b.length), ...b);
  }
  shortStr(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.op(0x8c, b.length, ...b);
  }
  global(module: string, name: string): this {
    return this.op(0x63, ...Buffer.from(`${module}\n${name}\n`, 'utf8'));
  }

  /** `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` exactly as torch.save pickles it. */
  tensor(storageType: string, key: string, numel: number, offset: number, shape: number[], stride: number[]): this {
    this.global('torch._utils', '_rebuild_tensor_v2').mark();
    this.mark().str('storage').global('torch', storageType).str(key).str('cpu').int(numel).tuple().binpersid();
    this.int(offset);
    this.mark();
    for (const d of shape) this.int(d);
    this.tuple();
    this.mark();
    for (const s of stride) this.int(s);
    this.tuple();
    this.bool(false).global('collections', 'OrderedDict').emptyTuple().reduce();
    return this.tuple().reduce();
  }

  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

export interface TorchFileSpec {
  /** The pickled object tree (ends with STOP). */
  pickle: Uint8Array;
  /** Storage bytes by key (`data/<key>`). */
  storages: Record<string, Uint8Array>;
  /** Record folder (torch uses the file stem). */
  folder?: string;
  /** Extra records, e.g. to mimic a TorchScript archive. */
  extra?: ZipRecord[];
  zip64?: boolean;
}

/** Writes a torch.save-layout zip: data.pkl, byteorder, data/<key>…, version. */
export function writeTorchFile(path: string, spec: TorchFileSpec): Buffer {
  const folder = spec.folder ?? 'archive';
  const records: ZipRecord[] = [
    { name: `${folder}/data.pkl`, data: spec.pickle },
    { name: `${folder}/byteorder`, data: Buffer.from('little') },
    ...Object.entries(spec.storages).map(([k, data]) => ({ name: `${folder}/data/${k}`, data })),
    { name: `${folder}/version`, data: Buffer.from('3\n') },
    ...(spec.extra ?? []),
  ];
  const bytes = buildZip(records, { zip64: spec.zip64 });
  writeFileSync(path, bytes);
  return bytes;
}

/** Little-endian bytes of a typed array. */
export function bytesOf(a: Float32Array | Uint16Array | Float64Array | BigInt64Array): Uint8Array {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}
