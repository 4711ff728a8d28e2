// Owns: the WebAssembly binary encoding the translation tier emits at run time: LEB128 integers, value and
// block types, opcodes (the MVP plus sign extension, saturating truncation and bulk memory), a function-body
// writer with one method per instruction shape, and a module builder (types, imports of functions and of a
// shared memory, functions, exports) that produces the bytes `WebAssembly.Module` accepts.
// Must not: know about x86 (the translator decides what to emit), keep state between modules, or allocate per
// emitted instruction (one growable byte buffer per body).
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

  constructor(capacity = 256) {
    this.buf = new Uint8Array(capacity);
  }

  private grow(need: number): void {
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
    v >>>= 0;
    for (;;) {
      const b = v & 0x7f;
      v >>>= 7;
      if (v === 0) {
        this.buf[this.len++] = b;
        return;
      }
      this.buf[this.len++] = b | 0x80;
    }
  }

  /** Signed LEB128 of an int32. */
  s32(v: number): void {
    if (this.len + 5 > this.buf.length) this.grow(5);
    v |= 0;
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
        this.buf[this.len++] = b;
        return;
      }
      this.buf[this.len++] = b | 0x80;
    }
  }

  /** Signed LEB128 of the 64-bit value (hi:lo), both int32 halves (decision 0001: no BigInt). */
  s64(lo: number, hi: number): void {
    if (this.len + 10 > this.buf.length) this.grow(10);
    lo |= 0;
    hi |= 0;
    for (;;) {
      const b = lo & 0x7f;
      // Arithmetic shift of the 64-bit pair right by 7.
      lo = (lo >>> 7) | (hi << 25);
      hi >>= 7;
      const signClear = (b & 0x40) === 0;
      if ((lo === 0 && hi === 0 && signClear) || (lo === -1 && hi === -1 && !signClear)) {
        this.buf[this.len++] = b;
        return;
      }
      this.buf[this.len++] = b | 0x80;
    }
  }

  bytes(src: Uint8Array): void {
    if (this.len + src.length > this.buf.length) this.grow(src.length);
    this.buf.set(src, this.len);
    this.len += src.length;
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

/** One function body: locals declared up front, then instructions, ending with `end`. */
export class FuncCode extends Bytes {
  /** Local declarations after the parameters, as (count, type) runs. */
  private readonly localRuns: Array<[number, T]> = [];
  private nextLocal: number;

  constructor(readonly paramCount: number) {
    super(1024);
    this.nextLocal = paramCount;
  }

  /** Declares `count` locals of type t; returns the index of the first. */
  locals(count: number, t: T): number {
    const first = this.nextLocal;
    const last = this.localRuns[this.localRuns.length - 1];
    if (last !== undefined && last[1] === t) last[0] += count;
    else this.localRuns.push([count, t]);
    this.nextLocal += count;
    return first;
  }

  get localCount(): number {
    return this.nextLocal;
  }

  op(o: Op): void {
    this.u8(o);
  }
  prefixed(sub: OpFC): void {
    this.u8(0xfc);
    this.u32(sub);
  }
  i32(v: number): void {
    this.u8(Op.I32Const);
    this.s32(v);
  }
  i64(lo: number, hi: number): void {
    this.u8(Op.I64Const);
    this.s64(lo, hi);
  }
  f64(v: number): void {
    this.u8(Op.F64Const);
    const b = new DataView(new ArrayBuffer(8));
    b.setFloat64(0, v, true);
    for (let i = 0; i < 8; i++) this.u8(b.getUint8(i));
  }
  get(l: number): void {
    this.u8(Op.LocalGet);
    this.u32(l);
  }
  set(l: number): void {
    this.u8(Op.LocalSet);
    this.u32(l);
  }
  tee(l: number): void {
    this.u8(Op.LocalTee);
    this.u32(l);
  }
  /** A load or store with its alignment (log2 bytes) and constant offset (memarg, Core Spec 5.4.6). */
  mem(o: Op, alignLog2: number, offset: number): void {
    this.u8(o);
    this.u32(alignLog2);
    this.u32(offset);
  }
  block(bt: T = T.Void): void {
    this.u8(Op.Block);
    this.u8(bt);
  }
  loop(bt: T = T.Void): void {
    this.u8(Op.Loop);
    this.u8(bt);
  }
  if_(bt: T = T.Void): void {
    this.u8(Op.If);
    this.u8(bt);
  }
  else_(): void {
    this.u8(Op.Else);
  }
  end(): void {
    this.u8(Op.End);
  }
  br(depth: number): void {
    this.u8(Op.Br);
    this.u32(depth);
  }
  brIf(depth: number): void {
    this.u8(Op.BrIf);
    this.u32(depth);
  }
  brTable(depths: readonly number[], dflt: number): void {
    this.u8(Op.BrTable);
    this.u32(depths.length);
    for (const d of depths) this.u32(d);
    this.u32(dflt);
  }
  call(fn: number): void {
    this.u8(Op.Call);
    this.u32(fn);
  }
  /** call_indirect through table 0 with the given function type index. */
  callIndirect(typeIdx: number): void {
    this.u8(Op.CallIndirect);
    this.u32(typeIdx);
    this.u8(0);
  }

  /** The encoded body: local declarations, instructions, and the final `end`. */
  finish(): Bytes {
    const out = new Bytes(this.len + 16 + 4 * this.localRuns.length);
    out.u32(this.localRuns.length);
    for (const [n, t] of this.localRuns) {
      out.u32(n);
      out.u8(t);
    }
    out.bytes(this.buf.subarray(0, this.len));
    out.u8(Op.End);
    return out;
  }
}

interface FuncImport {
  module: string;
  name: string;
  type: number;
}

/** Assembles one module: function types, imports (functions, then one memory), functions and exports. */
export class ModuleBuilder {
  private readonly types: Array<{ params: readonly T[]; results: readonly T[]; key: string }> = [];
  private readonly funcImports: FuncImport[] = [];
  private memoryImport: { module: string; name: string; min: number; max: number; shared: boolean } | null =
    null;
  private tableImport: { module: string; name: string; min: number; max: number } | null = null;
  private readonly funcs: Array<{ type: number; body: Bytes }> = [];
  private readonly exports: Array<{ name: string; func: number }> = [];

  /** The index of the function type (params) -> (results), added once. */
  type(params: readonly T[], results: readonly T[]): number {
    const key = `${params.join(",")}>${results.join(",")}`;
    const i = this.types.findIndex((t) => t.key === key);
    if (i >= 0) return i;
    this.types.push({ params, results, key });
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

  /** Adds a function defined here; returns its function index (imports count first). */
  addFunc(params: readonly T[], results: readonly T[], body: FuncCode): number {
    this.funcs.push({ type: this.type(params, results), body: body.finish() });
    return this.funcImports.length + this.funcs.length - 1;
  }

  exportFunc(name: string, func: number): void {
    this.exports.push({ name, func });
  }

  finish(): Uint8Array {
    const out = new Bytes(4096);
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
    sec.u32(this.funcs.length);
    for (const f of this.funcs) sec.sized(f.body);
    section(SECTION_CODE);
    return out.result();
  }
}
