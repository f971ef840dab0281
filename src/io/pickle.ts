/**
 * A Python unpickler that never executes anything. It understands the binary opcodes of protocols 2–5 (what
 * torch.save emits) and builds plain JS values. Every GLOBAL is passed to a caller-supplied resolver, which either
 * returns a pure JS stand-in for an allow-listed name or refuses; no Python callable is ever run, so a hostile pickle
 * (`os.system`, `builtins.eval`, …) can only produce an error.
 */
import { CheckpointError } from '../errors.js';

/** Values an unpickled stream can contain. Tuples and lists are both arrays; dicts are Maps (keys kept as is). */
export type PickleValue =
  | null | boolean | number | bigint | string | Uint8Array
  | PickleValue[]
  | Map<PickleValue, PickleValue>
  | PickleGlobal
  | PickleObject
  | PickleOpaque;

/** A resolved, allow-listed Python global (class or function), given to REDUCE/NEWOBJ as the callee. */
export interface PickleGlobal {
  readonly kind: 'global';
  /** `module.name`, for error messages. */
  readonly qualifiedName: string;
  /** What calling it (REDUCE) or constructing it (NEWOBJ) produces, computed from the arguments only. */
  call(args: PickleValue[]): PickleValue;
}

/**
 * An inert instance of an allow-listed harmless class (e.g. `argparse.Namespace`, a numpy scalar): its constructor
 * arguments and BUILD state are recorded, nothing else happens.
 */
export class PickleObject {
  state: PickleValue = null;
  readonly items: PickleValue[] = [];
  constructor(readonly className: string, readonly args: PickleValue[]) {}
}

/** A value produced by a resolver that the unpickler treats as a black box (e.g. a lazy tensor descriptor). */
export interface PickleOpaque {
  readonly kind: 'opaque';
}

export interface UnpickleOptions {
  /** File (and record) named in error messages. */
  source: string;
  /** Returns the stand-in for `module.name`, or undefined to refuse it. */
  resolveGlobal(module: string, name: string): PickleGlobal | undefined;
  /** Resolves a BINPERSID/PERSID id (torch: a storage reference). */
  persistentLoad?(pid: PickleValue): PickleValue;
  /** Extra words appended to the "not allowed" error, e.g. the list of allowed globals. */
  refusalHint?: string;
}


function isGlobal(v: PickleValue): v is PickleGlobal {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map) && !(v instanceof Uint8Array)
    && !(v instanceof PickleObject) && (v as PickleGlobal).kind === 'global';
}

/** Parses a pickle stream into a value. Throws CheckpointError (naming `options.source`) on anything it refuses. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): PickleValue {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const src = options.source;
  const stack: PickleValue[] = [];
  // MARK positions are kept beside the stack, not on it.
  const marks: number[] = [];
  const memo = new Map<number, PickleValue>();
  let pos = 0;

  const fail = (what: string): never => {
    throw new CheckpointError(`${src}: ${what}`);
  };
  const need = (n: number): void => {
    if (n < 0 || pos + n > buf.length) fail(`truncated pickle (needs ${n} more bytes at offset ${pos}, has ${buf.length - pos})`);
  };
  const u8 = (): number => { need(1); return buf[pos++]!; };
  const u16 = (): number => { need(2); const v = buf.readUInt16LE(pos); pos += 2; return v; };
  const u32 = (): number => { need(4); const v = buf.readUInt32LE(pos); pos += 4; return v; };
  const i32 = (): number => { need(4); const v = buf.readInt32LE(pos); pos += 4; return v; };
  const u64 = (): number => {
    need(8);
    const v = buf.readBigUInt64LE(pos);
    pos += 8;
    if (v > BigInt(buf.length)) fail(`pickle length ${v} exceeds the stream size`);
    return Number(v);
  };
  const take = (n: number): Buffer => { need(n); const b = buf.subarray(pos, pos + n); pos += n; return b; };
  const line = (): string => {
    const end = buf.indexOf(0x0a, pos);
    if (end < 0) fail(`truncated pickle (unterminated text argument at offset ${pos})`);
    const s = buf.toString('utf8', pos, end);
    pos = end + 1;
    return s;
  };
  const pop = (): PickleValue => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1]!)) fail(`malformed pickle (stack underflow at offset ${pos})`);
    return stack.pop()!;
  };
  const top = (): PickleValue => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1]!)) fail(`malformed pickle (empty stack at offset ${pos})`);
    return stack[stack.length - 1]!;
  };
  const popMark = (): PickleValue[] => {
    const m = marks.pop();
    if (m === undefined) return fail(`malformed pickle (no MARK at offset ${pos})`);
    return stack.splice(m);
  };
  const longFromBytes = (b: Buffer): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const resolve = (module: string, name: string): PickleGlobal => {
    const g = options.resolveGlobal(module, name);
    if (g === undefined) {
      fail(`refusing to load: the pickle references the Python global '${module}.${name}', which is not an allowed checkpoint type${options.refusalHint ? ` (${options.refusalHint})` : ''}`);
    }
    return g!;
  };
  const callee = (v: PickleValue, op: string): PickleGlobal => {
    if (!isGlobal(v)) return fail(`malformed pickle (${op} on a non-callable value at offset ${pos})`);
    return v;
  };
  const setItems = (target: PickleValue, kv: PickleValue[]): void => {
    if (kv.length % 2 !== 0) fail(`malformed pickle (odd number of SETITEMS values at offset ${pos})`);
    if (target instanceof Map) {
      for (let i = 0; i < kv.length; i += 2) target.set(kv[i]!, kv[i + 1]!);
    } else if (target instanceof PickleObject) {
      target.items.push(...kv);
    } else {
      fail(`malformed pickle (SETITEM on a non-dict at offset ${pos})`);
    }
  };
  const append = (target: PickleValue, values: PickleValue[]): void => {
    if (Array.isArray(target)) target.push(...values);
    else if (target instanceof PickleObject) target.items.push(...values);
    else fail(`malformed pickle (APPEND on a non-list at offset ${pos})`);
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: take(8); break; // FRAME: framing is only a read-ahead hint
      case 0x2e: { // STOP
        const result = pop();
        return result;
      }
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(longFromBytes(take(u8()))); break; // LONG1
      case 0x8b: { const n = i32(); if (n < 0) fail(`malformed pickle (negative LONG4 length at offset ${at})`); stack.push(longFromBytes(take(n))); break; }
      case 0x47: { need(8); stack.push(buf.readDoubleBE(pos)); pos += 8; break; } // BINFLOAT
      case 0x58: { const n = u32(); stack.push(take(n).toString('utf8')); break; } // BINUNICODE
      case 0x8c: { const n = u8(); stack.push(take(n).toString('utf8')); break; } // SHORT_BINUNICODE
      case 0x8d: { const n = u64(); stack.push(take(n).toString('utf8')); break; } // BINUNICODE8
      case 0x54: { const n = i32(); stack.push(take(n).toString('latin1')); break; } // BINSTRING (py2 str)
      case 0x55: { const n = u8(); stack.push(take(n).toString('latin1')); break; } // SHORT_BINSTRING
      case 0x42: { const n = u32(); stack.push(new Uint8Array(take(n))); break; } // BINBYTES
      case 0x43: { const n = u8(); stack.push(new Uint8Array(take(n))); break; } // SHORT_BINBYTES
      case 0x8e: case 0x96: { const n = u64(); stack.push(new Uint8Array(take(n))); break; } // BINBYTES8, BYTEARRAY8
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x8f: stack.push([]); break; // EMPTY_SET (sets become arrays)
      case 0x90: { const items = popMark(); append(top(), items); break; } // ADDITEMS
      case 0x91: { const items = popMark(); stack.push(items); break; } // FROZENSET
      case 0x74: case 0x6c: { const items = popMark(); stack.push(items); break; } // TUPLE, LIST
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x64: { const kv = popMark(); const d = new Map<PickleValue, PickleValue>(); setItems(d, kv); stack.push(d); break; } // DICT
      case 0x61: { const v = pop(); append(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); append(top(), items); break; } // APPENDS
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const kv = popMark(); setItems(top(), kv); break; } // SETITEMS
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: { // BINGET, LONG_BINGET
        const idx = op === 0x68 ? u8() : u32();
        const v = memo.get(idx);
        if (v === undefined) fail(`malformed pickle (memo ${idx} read before it was written, offset ${at})`);
        stack.push(v!);
        break;
      }
      case 0x63: { const module = line(); const name = line(); stack.push(resolve(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail(`malformed pickle (STACK_GLOBAL without strings at offset ${at})`);
        stack.push(resolve(module as string, name as string));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const fn = callee(pop(), 'REDUCE');
        if (!Array.isArray(args)) fail(`malformed pickle (REDUCE arguments are not a tuple at offset ${at})`);
        stack.push(fn.call(args as PickleValue[]));
        break;
      }
      case 0x81: { // NEWOBJ
        const args = pop();
        const cls = callee(pop(), 'NEWOBJ');
        stack.push(cls.call(Array.isArray(args) ? args : []));
        break;
      }
      case 0x92: { // NEWOBJ_EX
        pop(); // kwargs
        const args = pop();
        const cls = callee(pop(), 'NEWOBJ_EX');
        stack.push(cls.call(Array.isArray(args) ? args : []));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const target = top();
        if (target instanceof PickleObject) target.state = state;
        // Other targets (an OrderedDict's `_metadata`, a resolver's opaque value) carry nothing we use.
        else if (target === null || typeof target !== 'object') fail(`malformed pickle (BUILD on a ${typeof target} at offset ${at})`);
        break;
      }
      case 0x51: case 0x50: { // BINPERSID, PERSID
        const pid = op === 0x51 ? pop() : line();
        if (options.persistentLoad === undefined) fail(`unsupported pickle: persistent id at offset ${at}`);
        stack.push(options.persistentLoad!(pid));
        break;
      }
      default:
        fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} at offset ${at} (only binary protocols 2–5 are read)`);
    }
  }
}
