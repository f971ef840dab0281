/**
 * Random-access reader for zip archives whose entries are STORED (what torch.save writes). Only the central
 * directory is read up front; entry bytes are read on demand with positioned reads, so a multi-GB checkpoint is never
 * held in memory. zip64 (archives or entries over 4 GiB) is supported.
 */
import { closeSync, fstatSync, readSync } from 'node:fs';
import { CheckpointError } from '../errors.js';
import { openWeightFile } from './weight-file.js';

export interface ZipEntry {
  name: string;
  /** 0 = stored; anything else is compressed and cannot be read here. */
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD_SIG = 0x06054b50;
const EOCD64_LOCATOR_SIG = 0x07064b50;
const EOCD64_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const EOCD_MIN = 22;
const MAX_COMMENT = 0xffff;

/** Reads exactly `length` bytes at `position`, or throws a CheckpointError saying the file is truncated. */
export function readExactly(fd: number, file: string, position: number, length: number, what: string): Buffer {
  // Not pooled: callers may keep views of the result, and a pooled slice would alias other reads.
  const buf = Buffer.allocUnsafeSlow(length);
  let done = 0;
  while (done < length) {
    // readSync reads at most ~2 GiB per call; loop for anything larger or a short read.
    const n = readSync(fd, buf, done, Math.min(length - done, 0x40000000), position + done);
    if (n === 0) {
      throw new CheckpointError(`${file}: truncated file: ${what} needs bytes ${position}..${position + length} but the file ends at ${position + done}`);
    }
    done += n;
  }
  return buf;
}

function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`zip64 value ${v} exceeds 2^53`);
  return Number(v);
}

export class ZipReader {
  readonly path: string;
  readonly size: number;
  private readonly fd: number;
  private readonly byName = new Map<string, ZipEntry>();
  private readonly dataOffsets = new Map<string, number>();
  private closed = false;

  /** Opens `path` and parses its central directory; throws CheckpointError if it is not a readable zip. */
  constructor(path: string) {
    this.path = path;
    this.fd = openWeightFile(path);
    try {
      this.size = fstatSync(this.fd).size;
      for (const entry of this.readCentralDirectory()) this.byName.set(entry.name, entry);
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
  }

  /** All entries, in central-directory order. */
  entries(): ZipEntry[] {
    return [...this.byName.values()];
  }

  get(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  /** Reads `length` bytes starting `offset` bytes into the (stored) entry's data. */
  read(entry: ZipEntry, offset = 0, length = entry.size - offset): Buffer {
    if (offset < 0 || length < 0 || offset + length > entry.size) {
      throw new CheckpointError(`${this.path}: zip entry '${entry.name}' holds ${entry.size} bytes, cannot read bytes ${offset}..${offset + length}`);
    }
    return readExactly(this.fd, this.path, this.dataOffset(entry) + offset, length, `zip entry '${entry.name}'`);
  }

  close(): void {
    if (!this.closed) closeSync(this.fd);
    this.closed = true;
  }

  /** Where the entry's bytes start: after its local header, whose extra field (torch's alignment padding) varies. */
  private dataOffset(entry: ZipEntry): number {
    const cached = this.dataOffsets.get(entry.name);
    if (cached !== undefined) return cached;
    if (entry.method !== 0) {
      throw new CheckpointError(`${this.path}: zip entry '${entry.name}' is compressed (method ${entry.method}); torch.save writes stored (uncompressed) entries, so re-save the checkpoint with torch.save`);
    }
    const head = readExactly(this.fd, this.path, entry.localHeaderOffset, 30, `local header of '${entry.name}'`);
    if (head.readUInt32LE(0) !== LOCAL_SIG) {
      throw new CheckpointError(`${this.path}: corrupt zip: no local header for entry '${entry.name}' at byte ${entry.localHeaderOffset}`);
    }
    const start = entry.localHeaderOffset + 30 + head.readUInt16LE(26) + head.readUInt16LE(28);
    if (start + entry.size > this.size) {
      throw new CheckpointError(`${this.path}: truncated file: zip entry '${entry.name}' ends at byte ${start + entry.size} but the file has ${this.size} bytes`);
    }
    this.dataOffsets.set(entry.name, start);
    return start;
  }

  private readCentralDirectory(): ZipEntry[] {
    const file = this.path;
    if (this.size < EOCD_MIN) throw new CheckpointError(`${file}: truncated or not a zip archive (${this.size} bytes)`);
    const tailLen = Math.min(this.size, EOCD_MIN + MAX_COMMENT);
    const tailStart = this.size - tailLen;
    const tail = readExactly(this.fd, file, tailStart, tailLen, 'zip end record');
    let eocd = -1;
    for (let i = tailLen - EOCD_MIN; i >= 0; i--) {
      if (tail.readUInt32LE(i) === EOCD_SIG && i + EOCD_MIN + tail.readUInt16LE(i + 20) <= tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) {
      throw new CheckpointError(`${file}: truncated or corrupt zip archive (no end-of-central-directory record in the last ${tailLen} bytes)`);
    }
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = eocd - 20;
      if (loc < 0 || tail.readUInt32LE(loc) !== EOCD64_LOCATOR_SIG) {
        throw new CheckpointError(`${file}: corrupt zip64 archive (missing zip64 end-of-central-directory locator)`);
      }
      const recOffset = u64(tail, loc + 8);
      const rec = readExactly(this.fd, file, recOffset, 56, 'zip64 end record');
      if (rec.readUInt32LE(0) !== EOCD64_SIG) throw new CheckpointError(`${file}: corrupt zip64 end-of-central-directory record at byte ${recOffset}`);
      count = u64(rec, 32);
      cdSize = u64(rec, 40);
      cdOffset = u64(rec, 48);
    }
    if (cdOffset + cdSize > this.size) {
      throw new CheckpointError(`${file}: truncated or corrupt zip archive (central directory at bytes ${cdOffset}..${cdOffset + cdSize}, file has ${this.size})`);
    }
    const cd = readExactly(this.fd, file, cdOffset, cdSize, 'zip central directory');
    const entries: ZipEntry[] = [];
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL_SIG) {
        throw new CheckpointError(`${file}: corrupt zip central directory (entry ${i} of ${count} at byte ${cdOffset + p})`);
      }
      const method = cd.readUInt16LE(p + 10);
      let compressedSize = cd.readUInt32LE(p + 20);
      let size = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let localHeaderOffset = cd.readUInt32LE(p + 42);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      // zip64 extended information (0x0001) holds, in this order, only the fields saturated at 0xffffffff.
      let x = p + 46 + nameLen;
      const extraEnd = x + extraLen;
      while (x + 4 <= extraEnd) {
        const id = cd.readUInt16LE(x);
        const len = cd.readUInt16LE(x + 2);
        if (id === 0x0001) {
          let q = x + 4;
          if (size === 0xffffffff) { size = u64(cd, q); q += 8; }
          if (compressedSize === 0xffffffff) { compressedSize = u64(cd, q); q += 8; }
          if (localHeaderOffset === 0xffffffff) { localHeaderOffset = u64(cd, q); q += 8; }
        }
        x += 4 + len;
      }
      if (localHeaderOffset + 30 + compressedSize > this.size) {
        throw new CheckpointError(`${file}: truncated file: zip entry '${name}' extends past the end of the file (${this.size} bytes)`);
      }
      entries.push({ name, method, compressedSize, size, localHeaderOffset });
      p = extraEnd + commentLen;
    }
    return entries;
  }
}
