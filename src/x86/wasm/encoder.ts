// Owns: the WebAssembly binary encoding the translation tier emits at run time: LEB128 integers, value and
// block types, opcodes (the MVP plus sign extension, saturating truncation and bulk memory), a function-body
// writer with one method per instruction shape, and a module builder (types, imports of functions and of a
// shared memory, functions, exports) that produces the bytes `WebAssembly.Module` accepts.
// Must not: know about x86 (the translator decides what to emit), keep state between modules (a caller may
// lend a body its buffer, and module assembly reuses one scratch buffer: both only as scratch space), or
// allocate per emitted instruction.
// Spec: WebAssembly Core Specification 2.0, 5.2 (values: LEB128), 5.3 (types), 5.4 (instructions),
// 5.5 (modules: sections 1-3, 7, 10); threads proposal (shared memory limits flag 0x03).

/** Value types and the empty block type (binary encodings, Core Spec 5.3.1 / 5.4.1). */
export const enum T {
  I32 = 0x7f,
  I64 = 0x7e,
  F32 = 0x7d,
  F64 = 0x7c,
  Void = 0x40,
}

/** Single-byte opcodes (Core Spec 5.4). Prefixed ones (0xFC) are written by `FuncCode.prefixed`. */
export const enum Op {
  Unreachable = 0x00,
  Nop = 0x01,
  Block = 0x02,
  Loop = 0x03,
  If = 0x04,
  Else = 0x05,
  End = 0x0b,
  Br = 0x0c,
  BrIf = 0x0d,
  BrTable = 0x0e,
  Return = 0x0f,
  Call = 0x10,
  CallIndirect = 0x11,
  Drop = 0x1a,
  Select = 0x1b,
  LocalGet = 0x20,
  LocalSet = 0x21,
  LocalTee = 0x22,
  GlobalGet = 0x23,
  GlobalSet = 0x24,
  I32Load = 0x28,
  I64Load = 0x29,
  F32Load = 0x2a,
  F64Load = 0x2b,
  I32Load8S = 0x2c,
  I32Load8U = 0x2d,
  I32Load16S = 0x2e,
  I32Load16U = 0x2f,
  I64Load8S = 0x30,
  I64Load8U = 0x31,
  I64Load16S = 0x32,
  I64Load16U = 0x33,
  I64Load32S = 0x34,
  I64Load32U = 0x35,
  I32Store = 0x36,
  I64Store = 0x37,
  F32Store = 0x38,
  F64Store = 0x39,
  I32Store8 = 0x3a,
  I32Store16 = 0x3b,
  I64Store8 = 0x3c,
  I64Store16 = 0x3d,
  I64Store32 = 0x3e,
  I32Const = 0x41,
  I64Const = 0x42,
  F64Const = 0x44,
  I32Eqz = 0x45,
  I32Eq = 0x46,
  I32Ne = 0x47,
  I32LtS = 0x48,
  I32LtU = 0x49,
  I32GtS = 0x4a,
  I32GtU = 0x4b,
  I32LeS = 0x4c,
  I32LeU = 0x4d,
  I32GeS = 0x4e,
  I32GeU = 0x4f,
  I64Eqz = 0x50,
  I64Eq = 0x51,
  I64Ne = 0x52,
  I64LtS = 0x53,
  I64LtU = 0x54,
  I64GtS = 0x55,
  I64GtU = 0x56,
  I64LeS = 0x57,
  I64LeU = 0x58,
  I64GeS = 0x59,
  I64GeU = 0x5a,
  F64Eq = 0x61,
  F64Ne = 0x62,
  I32Clz = 0x67,
  I32Ctz = 0x68,
  I32Popcnt = 0x69,
  I32Add = 0x6a,
  I32Sub = 0x6b,
  I32Mul = 0x6c,
  I32DivS = 0x6d,
  I32DivU = 0x6e,
  I32RemS = 0x6f,
  I32RemU = 0x70,
  I32And = 0x71,
  I32Or = 0x72,
  I32Xor = 0x73,
  I32Shl = 0x74,
  I32ShrS = 0x75,
  I32ShrU = 0x76,
  I32Rotl = 0x77,
  I32Rotr = 0x78,
  I64Clz = 0x79,
  I64Ctz = 0x7a,
  I64Popcnt = 0x7b,
  I64Add = 0x7c,
  I64Sub = 0x7d,
  I64Mul = 0x7e,
  I64DivS = 0x7f,
  I64DivU = 0x80,
  I64RemS = 0x81,
  I64RemU = 0x82,
  I64And = 0x83,
  I64Or = 0x84,
  I64Xor = 0x85,
  I64Shl = 0x86,
  I64ShrS = 0x87,
  I64ShrU = 0x88,
  I64Rotl = 0x89,
  I64Rotr = 0x8a,
  I32WrapI64 = 0xa7,
  I32TruncF64U = 0xab,
  I64ExtendI32S = 0xac,
  I64ExtendI32U = 0xad,
  F64ConvertI32U = 0xb8,
  F64ConvertI64S = 0xb9,
  F64ConvertI64U = 0xba,
  I64ReinterpretF64 = 0xbd,
  F64ReinterpretI64 = 0xbf,
  I32Extend8S = 0xc0,
  I32Extend16S = 0xc1,
  I64Extend8S = 0xc2,
  I64Extend16S = 0xc3,
  I64Extend32S = 0xc4,
}

/** Second bytes after the 0xFC prefix (saturating truncation, bulk memory). */
export const enum OpFC {
  I32TruncSatF64U = 3,
  I64TruncSatF64U = 7,
  MemoryCopy = 10,
  MemoryFill = 11,
}

const SECTION_TYPE = 1;
const SECTION_IMPORT = 2;
const SECTION_FUNCTION = 3;
const SECTION_EXPORT = 7;
const SECTION_CODE = 10;
const KIND_FUNC = 0;
const KIND_TABLE = 1;
const KIND_MEMORY = 2;
const FUNCREF = 0x70;

export class WasmEncodeError extends Error {
  override name = "WasmEncodeError";
}

/** A growable byte buffer with the binary format's integer encodings. */
export class Bytes {
  buf: Uint8Array;
  len = 0;

  /** A new buffer of `capacity` bytes, or the given one reused from its start (its contents are scratch). */
  constructor(capacity: number | Uint8Array = 256) {
    this.buf = typeof capacity === "number" ? new Uint8Array(capacity) : capacity;
  }

  protected grow(need: number): void {
    let cap = this.buf.length * 2;
    while (cap < this.len + need) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }

  u8(b: number): void {
    if (this.len >= this.buf.length) this.grow(1);
    this.buf[this.len++] = b;
  }

  /** Unsigned LEB128 of a value in 0..2^32-1. */
  u32(v: number): void {
    if (this.len + 5 > this.buf.length) this.grow(5);
    this.len = putU32(this.buf, this.len, v);
  }

  /** Signed LEB128 of an int32. */
  s32(v: number): void {
    if (this.len + 5 > this.buf.length) this.grow(5);
    this.len = putS32(this.buf, this.len, v);
  }

  /** Signed LEB128 of the 64-bit value (hi:lo), both int32 halves (decision 0001: no BigInt). */
  s64(lo: number, hi: number): void {
    if (this.len + 10 > this.buf.length) this.grow(10);
    this.len = putS64(this.buf, this.len, lo, hi);
  }

  bytes(src: Uint8Array): void {
    if (this.len + src.length > this.buf.length) this.grow(src.length);
    this.buf.set(src, this.len);
    this.len += src.length;
  }

  /** Appends a copy of the n bytes written at `from` (an earlier part of this buffer). */
  repeat(from: number, n: number): void {
    if (this.len + n > this.buf.length) this.grow(n);
    this.buf.copyWithin(this.len, from, from + n);
    this.len += n;
  }

  /** A name: its UTF-8 length then bytes (ASCII only here: import and export names are ours). */
  name(s: string): void {
    this.u32(s.length);
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) throw new WasmEncodeError(`non-ASCII name ${JSON.stringify(s)}`);
      this.u8(c);
    }
  }

  /** A vector of bytes prefixed with its length (a section's or a function body's contents). */
  sized(inner: Bytes): void {
    this.u32(inner.len);
    this.bytes(inner.buf.subarray(0, inner.len));
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

// The encoders write at b[at..] (the caller has made room) and return the end: no allocation, no bounds
// checks per byte, and small values (most local indices, depths and constants) take one branch.

function putU32(b: Uint8Array, at: number, v: number): number {
  v >>>= 0;
  while (v >= 0x80) {
    b[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  b[at++] = v;
  return at;
}

function putS32(b: Uint8Array, at: number, v: number): number {
  v |= 0;
  if (v >= -64 && v < 64) {
    b[at++] = v & 0x7f;
    return at;
  }
  for (;;) {
    const x = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (x & 0x40) === 0) || (v === -1 && (x & 0x40) !== 0)) {
      b[at++] = x;
      return at;
    }
    b[at++] = x | 0x80;
  }
}

function putS64(b: Uint8Array, at: number, lo: number, hi: number): number {
  lo |= 0;
  hi |= 0;
  if (hi === lo >> 31 && lo >= -64 && lo < 64) {
    b[at++] = lo & 0x7f;
    return at;
  }
  for (;;) {
    const x = lo & 0x7f;
    // Arithmetic shift of the 64-bit pair right by 7.
    lo = (lo >>> 7) | (hi << 25);
    hi >>= 7;
    const signClear = (x & 0x40) === 0;
    if ((lo === 0 && hi === 0 && signClear) || (lo === -1 && hi === -1 && !signClear)) {
      b[at++] = x;
      return at;
    }
    b[at++] = x | 0x80;
  }
}

/** Bytes of the unsigned LEB128 of v (0..2^32-1). */
function sizeU32(v: number): number {
  v >>>= 0;
  let n = 1;
  while (v >= 0x80) {
    v >>>= 7;
    n++;
  }
  return n;
}

const f64Scratch = new DataView(new ArrayBuffer(8));

/**
 * One function body: locals declared up front, then instructions, ending with `end`. Each instruction is
 * written by one method with one capacity check (the translator calls these tens of thousands of times per
 * unit, first in V8's unoptimised tiers, where every call and allocation shows).
 */
export class FuncCode extends Bytes {
  /** Local declarations after the parameters, as (count, type) runs. */
  private readonly runCounts: number[] = [];
  private readonly runTypes: T[] = [];
  private nextLocal: number;

  /** `buf`: a buffer to write the instructions into (scratch lent by the caller; grown as needed). */
  constructor(
    readonly paramCount: number,
    buf?: Uint8Array,
  ) {
    super(buf ?? 1024);
    this.nextLocal = paramCount;
  }

  /** Declares `count` locals of type t; returns the index of the first. */
  locals(count: number, t: T): number {
    const first = this.nextLocal;
    const n = this.runTypes.length;
    if (n > 0 && this.runTypes[n - 1] === t) this.runCounts[n - 1]! += count;
    else {
      this.runCounts.push(count);
      this.runTypes.push(t);
    }
    this.nextLocal += count;
    return first;
  }

  get localCount(): number {
    return this.nextLocal;
  }

  op(o: Op): void {
    if (this.len >= this.buf.length) this.grow(1);
    this.buf[this.len++] = o;
  }
  prefixed(sub: OpFC): void {
    this.opU32(0xfc, sub);
  }
  i32(v: number): void {
    if (this.len + 6 > this.buf.length) this.grow(6);
    const b = this.buf;
    b[this.len] = Op.I32Const;
    this.len = putS32(b, this.len + 1, v);
  }
  i64(lo: number, hi: number): void {
    if (this.len + 11 > this.buf.length) this.grow(11);
    const b = this.buf;
    b[this.len] = Op.I64Const;
    this.len = putS64(b, this.len + 1, lo, hi);
  }
  f64(v: number): void {
    if (this.len + 9 > this.buf.length) this.grow(9);
    this.buf[this.len++] = Op.F64Const;
    f64Scratch.setFloat64(0, v, true);
    for (let i = 0; i < 8; i++) this.buf[this.len++] = f64Scratch.getUint8(i);
  }
  get(l: number): void {
    this.opU32(Op.LocalGet, l);
  }
  set(l: number): void {
    this.opU32(Op.LocalSet, l);
  }
  tee(l: number): void {
    this.opU32(Op.LocalTee, l);
  }
  /** A load or store with its alignment (log2 bytes) and constant offset (memarg, Core Spec 5.4.6). */
  mem(o: Op, alignLog2: number, offset: number): void {
    if (this.len + 11 > this.buf.length) this.grow(11);
    const b = this.buf;
    b[this.len] = o;
    this.len = putU32(b, putU32(b, this.len + 1, alignLog2), offset);
  }
  block(bt: T = T.Void): void {
    this.op2(Op.Block, bt);
  }
  loop(bt: T = T.Void): void {
    this.op2(Op.Loop, bt);
  }
  if_(bt: T = T.Void): void {
    this.op2(Op.If, bt);
  }
  else_(): void {
    this.op(Op.Else);
  }
  end(): void {
    this.op(Op.End);
  }
  br(depth: number): void {
    this.opU32(Op.Br, depth);
  }
  brIf(depth: number): void {
    this.opU32(Op.BrIf, depth);
  }
  brTable(depths: readonly number[], dflt: number): void {
    this.u8(Op.BrTable);
    this.u32(depths.length);
    for (const d of depths) this.u32(d);
    this.u32(dflt);
  }
  /** br_table with the targets 0, 1, .., n-1 (a dispatch to n nested blocks), then the default. */
  brTableSeq(n: number, dflt: number): void {
    this.u8(Op.BrTable);
    this.u32(n);
    for (let d = 0; d < n; d++) this.u32(d);
    this.u32(dflt);
  }
  call(fn: number): void {
    this.opU32(Op.Call, fn);
  }
  /** call_indirect through table 0 with the given function type index. */
  callIndirect(typeIdx: number): void {
    this.opU32(Op.CallIndirect, typeIdx);
    this.u8(0);
  }

  private opU32(o: number, v: number): void {
    if (this.len + 6 > this.buf.length) this.grow(6);
    const b = this.buf;
    b[this.len] = o;
    this.len = putU32(b, this.len + 1, v);
  }

  private op2(o: number, x: number): void {
    if (this.len + 2 > this.buf.length) this.grow(2);
    const b = this.buf;
    b[this.len] = o;
    b[this.len + 1] = x;
    this.len += 2;
  }

  /** Size of the encoded body: local declarations, instructions and the final `end`. */
  encodedSize(): number {
    const runs = this.runTypes.length;
    let n = sizeU32(runs) + this.len + 1;
    for (let i = 0; i < runs; i++) n += sizeU32(this.runCounts[i]!) + 1;
    return n;
  }

  /** Writes the encoded body (encodedSize() bytes) to out. */
  writeTo(out: Bytes): void {
    const runs = this.runTypes.length;
    out.u32(runs);
    for (let i = 0; i < runs; i++) {
      out.u32(this.runCounts[i]!);
      out.u8(this.runTypes[i]!);
    }
    out.bytes(this.buf.subarray(0, this.len));
    out.u8(Op.End);
  }

  /** The encoded body: local declarations, instructions, and the final `end`. */
  finish(): Bytes {
    const out = new Bytes(this.encodedSize());
    this.writeTo(out);
    return out;
  }
}

interface FuncImport {
  module: string;
  name: string;
  type: number;
}

function sameTypes(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Scratch space for assembling modules (one at a time: assembly is synchronous). */
let moduleScratch: Uint8Array = new Uint8Array(1 << 16);

/** Assembles one module: function types, imports (functions, then one memory), functions and exports. */
export class ModuleBuilder {
  private readonly types: Array<{ params: readonly T[]; results: readonly T[] }> = [];
  private readonly funcImports: FuncImport[] = [];
  private memoryImport: { module: string; name: string; min: number; max: number; shared: boolean } | null =
    null;
  private tableImport: { module: string; name: string; min: number; max: number } | null = null;
  private readonly funcs: Array<{ type: number; body: FuncCode }> = [];
  private readonly exports: Array<{ name: string; func: number }> = [];

  /** The index of the function type (params) -> (results), added once. */
  type(params: readonly T[], results: readonly T[]): number {
    for (let i = 0; i < this.types.length; i++) {
      const t = this.types[i]!;
      if (sameTypes(t.params, params) && sameTypes(t.results, results)) return i;
    }
    this.types.push({ params, results });
    return this.types.length - 1;
  }

  /** Imports a function; returns its function index. All imports must precede defined functions. */
  importFunc(module: string, name: string, params: readonly T[], results: readonly T[]): number {
    if (this.funcs.length > 0) throw new WasmEncodeError("function imports must come before functions");
    this.funcImports.push({ module, name, type: this.type(params, results) });
    return this.funcImports.length - 1;
  }

  /** Imports the memory (64 KiB pages; a shared memory needs a maximum). */
  importMemory(module: string, name: string, minPages: number, maxPages: number, shared: boolean): void {
    this.memoryImport = { module, name, min: minPages, max: maxPages, shared };
  }

  /** Imports table 0, of function references. */
  importTable(module: string, name: string, min: number, max: number): void {
    this.tableImport = { module, name, min, max };
  }

  /**
   * Adds a function defined here; returns its function index (imports count first). The body is encoded
   * when the module is: it must not change until finish().
   */
  addFunc(params: readonly T[], results: readonly T[], body: FuncCode): number {
    this.funcs.push({ type: this.type(params, results), body });
    return this.funcImports.length + this.funcs.length - 1;
  }

  exportFunc(name: string, func: number): void {
    this.exports.push({ name, func });
  }

  finish(): Uint8Array {
    const out = new Bytes(moduleScratch);
    for (const b of [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]) out.u8(b);
    const sec = new Bytes(256);
    const section = (id: number): void => {
      out.u8(id);
      out.sized(sec);
      sec.len = 0;
    };
    sec.u32(this.types.length);
    for (const t of this.types) {
      sec.u8(0x60);
      sec.u32(t.params.length);
      for (const p of t.params) sec.u8(p);
      sec.u32(t.results.length);
      for (const r of t.results) sec.u8(r);
    }
    section(SECTION_TYPE);
    const m = this.memoryImport;
    const tb = this.tableImport;
    const nImports = this.funcImports.length + (m !== null ? 1 : 0) + (tb !== null ? 1 : 0);
    if (nImports > 0) {
      sec.u32(nImports);
      for (const f of this.funcImports) {
        sec.name(f.module);
        sec.name(f.name);
        sec.u8(KIND_FUNC);
        sec.u32(f.type);
      }
      if (tb !== null) {
        sec.name(tb.module);
        sec.name(tb.name);
        sec.u8(KIND_TABLE);
        sec.u8(FUNCREF);
        sec.u8(0x01);
        sec.u32(tb.min);
        sec.u32(tb.max);
      }
      if (m !== null) {
        sec.name(m.module);
        sec.name(m.name);
        sec.u8(KIND_MEMORY);
        sec.u8(m.shared ? 0x03 : 0x01);
        sec.u32(m.min);
        sec.u32(m.max);
      }
      section(SECTION_IMPORT);
    }
    sec.u32(this.funcs.length);
    for (const f of this.funcs) sec.u32(f.type);
    section(SECTION_FUNCTION);
    if (this.exports.length > 0) {
      sec.u32(this.exports.length);
      for (const e of this.exports) {
        sec.name(e.name);
        sec.u8(KIND_FUNC);
        sec.u32(e.func);
      }
      section(SECTION_EXPORT);
    }
    // The code section is written in place: its size is known from the bodies' sizes.
    let size = sizeU32(this.funcs.length);
    const sizes: number[] = [];
    for (const f of this.funcs) {
      const n = f.body.encodedSize();
      sizes.push(n);
      size += sizeU32(n) + n;
    }
    out.u8(SECTION_CODE);
    out.u32(size);
    out.u32(this.funcs.length);
    for (let i = 0; i < this.funcs.length; i++) {
      out.u32(sizes[i]!);
      this.funcs[i]!.body.writeTo(out);
    }
    moduleScratch = out.buf;
    return out.result();
  }
}
