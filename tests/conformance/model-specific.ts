// Owns: the table of behaviours the SDM leaves implementation-specific, model-specific or undefined in the
// forms the host oracles cover — per row the forms, the reference, what Viridian's processor does and the
// exact set of outcomes a host processor may show instead — and the judgement of a host outcome against it,
// for the conformance oracle (tests/conformance) and the instruction-level SIMD oracle
// (src/x86/simd-host.test.ts). docs/x86-internals.md "Model-specific behaviour" records the same decisions.
// Must not: run the host or generate cases, or accept anything outside a row's documented set: a host value
// that is none of the documented alternatives is left as it is, so the comparison still reports it; every
// difference no row covers is reported.
// Spec: per row (`sdm`); Intel SDM Vol. 1 table 4-7 (NaN operands), Vol. 3A 6.5 (a fault reports the
// instruction with the state before it), 6.15 (#AC; like the hosts, the model checks it after the
// canonical-address #GP and before the page walk).

import { FLAG_AC } from "../../src/x86/opcode-table.js";
import { FOp, isNaN32, isNaN64, op32, op64, sf } from "../../src/x86/softfloat.js";
import { compareOutcomes, dataImage, type Outcome } from "./batch.js";
import { CODE_BASE, DATA_BASE, DATA_SIZE, type Case, type Form } from "./generate.js";

/** The emulator, run again on a variant of a case (normalized outcome, or why it could not run). */
export interface Rerun {
  rerun(c: Case): Outcome | string;
}

interface ConformanceRule {
  /** Whether the case exercises the behaviour (decided from the case, never from either outcome). */
  applies(c: Case, f: Form): boolean;
  /** How the emulator's outcome departs from Viridian's documented choice (empty: it follows it). */
  model(c: Case, f: Form, emu: Outcome, env: Rerun): string[];
  /**
   * The host outcome with the part this row leaves open replaced by the emulator's, when the host shows one
   * of the documented alternatives; null when it shows none of them.
   */
  reconcile(c: Case, f: Form, nat: Outcome, emu: Outcome, env: Rerun): Outcome | null;
}

/** Records of simd-host.test.ts: XMM0, XMM1, XMM2 (16 bytes each), RAX, RCX/RDX, MXCSR, RFLAGS (72 bytes). */
interface SimdRule {
  applies(insn: string): boolean;
  /** The host record with the open part replaced by ours when the host shows a documented alternative. */
  reconcile(insn: string, input: Uint8Array, host: Uint8Array, ours: Uint8Array): Uint8Array | null;
}

export interface ModelSpecific {
  /** Short name used in reports. */
  readonly id: string;
  readonly forms: string;
  /** Where the SDM (or, for the other vendor's documented choice, the AMD64 APM) leaves it open. */
  readonly sdm: string;
  /** What Viridian's processor does. */
  readonly model: string;
  /** The outcomes the oracles accept from a host, and nothing else. */
  readonly accepted: string;
  readonly conformance?: ConformanceRule;
  readonly simd?: SimdRule;
}

const M64 = (1n << 64n) - 1n;
const hex = (v: bigint | number): string => v.toString(16);

function canonical(v: bigint): boolean {
  const top = (v & M64) >> 47n;
  return top === 0n || top === 0x1ffffn;
}

function image(c: Case): Uint8Array {
  const out = new Uint8Array(DATA_SIZE);
  dataImage(c, out);
  return out;
}

function leBig(a: Uint8Array): bigint {
  let v = 0n;
  for (let i = a.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(a[i]!);
  return v;
}

/** The `n`-byte memory operand's initial bytes, or null when it is not (wholly) in the data pages. */
function memOperand(c: Case, n: number): Uint8Array | null {
  const o = c.ops.memOff;
  if (c.ops.mod === 3 || o < 0 || o + n > DATA_SIZE) return null;
  return image(c).slice(o, o + n);
}

/** The initial value of the r/m operand (`n` bytes): register or memory; null when it cannot be known. */
function rmValue(c: Case, n: number): bigint | null {
  if (c.ops.mod === 3) return c.regs[c.ops.rm]! & ((1n << BigInt(8 * n)) - 1n);
  const m = memOperand(c, n);
  return m === null ? null : leBig(m);
}

/** The initial 16 bytes of the XMM r/m operand (register or a `n`-byte memory operand, zero-filled). */
function xmmRm(c: Case, n: number): Uint8Array | null {
  if (c.ops.mod === 3) return c.xmm.slice(c.ops.rm * 16, c.ops.rm * 16 + 16);
  const m = memOperand(c, n);
  if (m === null) return null;
  const out = new Uint8Array(16);
  out.set(m);
  return out;
}

const insnAddr = (c: Case): bigint => BigInt(CODE_BASE + c.codeOff);
const fitsPage = (c: Case): boolean => c.codeOff + c.code.length <= 4096;

function clone(o: Outcome): Outcome {
  return { ...o, regs: [...o.regs], xmm: o.xmm.slice(), diffs: new Map(o.diffs) };
}

/** The outcome of a fault at the instruction with nothing changed (SDM Vol. 3A 6.5: faults are restartable). */
function faultAtStart(c: Case, vector: number, err: number): Outcome {
  return {
    vector,
    rip: insnAddr(c),
    err,
    cr2: 0n,
    regs: [...c.regs],
    rflags: c.rflags | 0x202,
    xmm: c.xmm.slice(),
    mxcsr: c.mxcsr,
    diffs: new Map(),
  };
}

const same = (a: Outcome, b: Outcome, c: Case): boolean => compareOutcomes(a, b, c).length === 0;

// ------------------------------------------------------------------------------------------------------
// #AC for 16-byte operands that need no 16-byte alignment

const AC_OPEN = new WeakMap<Case, Outcome | string>();

/** The case run with RFLAGS.AC clear, its outcome's RFLAGS.AC set again (the instruction does not change it). */
function withoutAlignmentCheck(c: Case, env: Rerun): Outcome | string {
  let o = AC_OPEN.get(c);
  if (o === undefined) {
    o = env.rerun({ ...c, rflags: c.rflags & ~FLAG_AC });
    if (typeof o !== "string") o = { ...o, rflags: o.rflags | FLAG_AC };
    AC_OPEN.set(c, o);
  }
  return o;
}

/**
 * The documented outcomes: without #AC (the instruction as if alignment checking were off) and, when the
 * access itself is what ends the instruction that way (it completes, or page-faults on the operand), #AC(0)
 * at the instruction with nothing changed. A #UD/#NM/#GP that precedes the access leaves no room for #AC.
 */
function alignmentOutcomes(
  c: Case,
  addr: bigint,
  env: Rerun,
): { open: Outcome; ac: Outcome | null } | string {
  const open = withoutAlignmentCheck(c, env);
  if (typeof open === "string") return open;
  const onOperand =
    open.vector === 14 && open.rip === insnAddr(c) && open.cr2 >= addr && open.cr2 < addr + 16n;
  return { open, ac: open.vector === -1 || onOperand ? faultAtStart(c, 17, 0) : null };
}

/** The ModRM memory operand's address (null for a register form). */
const modrmAddress = (c: Case): bigint | null => (c.ops.mod >= 0 && c.ops.mod !== 3 ? c.ops.ea : null);

function alignmentCheckRule(
  mnemonics: readonly string[],
  raises: (addr: bigint) => boolean,
  address: (c: Case) => bigint | null = modrmAddress,
): ConformanceRule {
  const set = new Set(mnemonics);
  return {
    applies(c, f) {
      if (f.kind !== "exec" || !set.has(f.entry.mnemonic) || (c.rflags & FLAG_AC) === 0 || !fitsPage(c))
        return false;
      const a = address(c);
      return a !== null && canonical(a) && (a & 15n) !== 0n;
    },
    model(c, _f, emu, env) {
      const addr = address(c)!;
      const alt = alignmentOutcomes(c, addr, env);
      if (typeof alt === "string") return [alt];
      const want = alt.ac !== null && raises(addr) ? alt.ac : alt.open;
      return compareOutcomes(want, emu, c).map((d) => `${d} (model vs emulator)`);
    },
    reconcile(c, _f, nat, emu, env) {
      const alt = alignmentOutcomes(c, address(c)!, env);
      if (typeof alt === "string") return null;
      if (same(nat, alt.open, c) || (alt.ac !== null && same(nat, alt.ac, c))) return emu;
      return null;
    },
  };
}

// ------------------------------------------------------------------------------------------------------
// REP string instructions, 32-bit address size, zero count

/** Which of RCX, RSI, RDI each string instruction uses as count and pointers. */
const STRING_REGS: Record<string, readonly number[]> = {
  movs: [1, 6, 7],
  cmps: [1, 6, 7],
  lods: [1, 6],
  outs: [1, 6],
  stos: [1, 7],
  scas: [1, 7],
  ins: [1, 7],
};
const REG_NAME = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"];

const repZeroCount: ConformanceRule = {
  applies: (c, f) =>
    f.kind === "exec" &&
    STRING_REGS[f.entry.handler] !== undefined &&
    c.ops.rep >= 0 &&
    c.ops.a32 &&
    (c.regs[1]! & 0xffff_ffffn) === 0n,
  model(c, f, emu) {
    return STRING_REGS[f.entry.handler]!.filter((r) => emu.regs[r] !== c.regs[r]).map(
      (r) => `${REG_NAME[r]} ${hex(emu.regs[r]!)} (the model keeps ${hex(c.regs[r]!)})`,
    );
  },
  reconcile(c, f, nat, emu) {
    if (nat.vector !== emu.vector) return null;
    const out = clone(nat);
    for (const r of STRING_REGS[f.entry.handler]!) {
      const v = nat.regs[r]!;
      const init = c.regs[r]!;
      if ((v & 0xffff_ffffn) !== (init & 0xffff_ffffn)) return null;
      if (v >> 32n !== 0n && v !== init) return null;
      out.regs[r] = emu.regs[r]!;
    }
    return out;
  },
};

// ------------------------------------------------------------------------------------------------------
// CALL r/m64 to a non-canonical target

function callTarget(c: Case): bigint | null {
  return rmValue(c, 8);
}

const callNonCanonical: ConformanceRule = {
  applies(c, f) {
    if (f.kind !== "exec" || f.entry.handler !== "callAbs" || !fitsPage(c)) return false;
    const t = callTarget(c);
    return t !== null && !canonical(t);
  },
  model(c, _f, emu) {
    // Viridian probes the push (its faults first), then raises #GP(0) for the target without writing: a
    // fault leaves RSP and the stack as they were.
    if (emu.vector === -1) return [`completed to ${hex(emu.rip)}`];
    const d: string[] = [];
    if (emu.regs[4] !== c.regs[4]) d.push(`rsp ${hex(emu.regs[4]!)} (the model pushes nothing)`);
    if (emu.diffs.size > 0) d.push(`stack written (the model pushes nothing)`);
    return d;
  },
  reconcile(c, _f, nat, emu) {
    if (emu.rip !== insnAddr(c) || emu.vector === -1) return null;
    // The push faults (#SS/#AC/#PF) in the model: the target's #GP(0) is a fault of the same class, which the
    // host may report instead (SDM Vol. 3A 6.9), with nothing pushed.
    if (emu.vector !== 13) return same(nat, faultAtStart(c, 13, 0), c) ? emu : null;
    // The model's #GP(0) means the push itself would succeed. The push may also have happened (SDM CALL
    // "Operation": Push(RIP) precedes RIP := tempRIP): RSP - 8, the slot holding the return address.
    if (emu.err !== 0) return null;
    const slot = (c.regs[4]! - 8n) & M64;
    const off = Number(slot - BigInt(DATA_BASE));
    if (slot < BigInt(DATA_BASE) || off + 8 > DATA_SIZE) return null;
    const pushed = clone(emu);
    pushed.regs[4] = slot;
    const img = image(c);
    let ret = insnAddr(c) + BigInt(c.code.length);
    for (let i = 0; i < 8; i++, ret >>= 8n) {
      const b = Number(ret & 0xffn);
      if (img[off + i] !== b) pushed.diffs.set(off + i, b);
      else pushed.diffs.delete(off + i);
    }
    return same(nat, pushed, c) ? emu : null;
  },
};

// ------------------------------------------------------------------------------------------------------
// CMPS: which of its two element accesses reports its fault

/** A place the DS:rSI element can be read from without a fault. */
const HARMLESS = BigInt(DATA_BASE + 0x800);

const cmpsFaultOrder: ConformanceRule = {
  applies: (c, f) => f.kind === "exec" && f.entry.handler === "cmps" && fitsPage(c),
  model: () => [],
  reconcile(c, _f, nat, emu, env) {
    if (emu.vector === -1 || emu.rip !== insnAddr(c)) return null;
    // The iteration that faulted, run again from its own start with the DS:rSI element made harmless: the
    // ES:rDI element's fault, if it has one, is the other fault the host may report (SDM Vol. 3A 6.9).
    const regs = [...emu.regs];
    regs[6] = HARMLESS;
    const v = env.rerun({ ...c, regs, rflags: emu.rflags & ~0x10000 });
    if (typeof v === "string" || v.vector === -1 || v.rip !== emu.rip) return null;
    if (v.regs[1] !== emu.regs[1] || v.regs[7] !== emu.regs[7]) return null; // it got past that iteration
    const other = { ...emu, vector: v.vector, err: v.err, cr2: v.cr2 };
    return same(nat, other, c) ? emu : null;
  },
};

// ------------------------------------------------------------------------------------------------------
// DPPS / DPPD: which NaN reaches the destination

type Dot = { nans: Set<bigint> } | { value: bigint };

/**
 * The NaNs the dot product may deliver (null when its result is not a NaN): the products follow table 4-7
 * (the quieted first-source NaN, or the default NaN of an invalid product), then each addition of the
 * pseudocode's tree (t0+t1, t2+t3, then their sum) may forward either operand's NaN, and generates the
 * default NaN only when neither operand is a NaN (+inf + -inf).
 */
function dotProductNaNs(
  double: boolean,
  dst: Uint8Array,
  src: Uint8Array,
  imm8: number,
  mxcsr: number,
): Set<bigint> | null {
  const a = new DataView(dst.buffer, dst.byteOffset, 16);
  const b = new DataView(src.buffer, src.byteOffset, 16);
  const saved = { ...sf };
  sf.mxcsr = mxcsr;
  sf.flags = 0;
  try {
    const n = double ? 2 : 4;
    const isNaN = (v: bigint): boolean =>
      double ? isNaN64(Number(v & 0xffff_ffffn) | 0, Number(v >> 32n) | 0) : isNaN32(Number(v) | 0);
    const mul = (i: number): bigint => {
      if (!(imm8 & (0x10 << i))) return 0n;
      if (!double) return BigInt(op32(FOp.Mul, a.getInt32(4 * i, true), b.getInt32(4 * i, true)) >>> 0);
      const lo = op64(
        FOp.Mul,
        a.getInt32(8 * i, true),
        a.getInt32(8 * i + 4, true),
        b.getInt32(8 * i, true),
        b.getInt32(8 * i + 4, true),
      );
      return (BigInt(sf.hi >>> 0) << 32n) | BigInt(lo >>> 0);
    };
    const add = (x: bigint, y: bigint): bigint => {
      if (!double) return BigInt(op32(FOp.Add, Number(x) | 0, Number(y) | 0) >>> 0);
      const lo = op64(
        FOp.Add,
        Number(x & 0xffff_ffffn) | 0,
        Number(x >> 32n) | 0,
        Number(y & 0xffff_ffffn) | 0,
        Number(y >> 32n) | 0,
      );
      return (BigInt(sf.hi >>> 0) << 32n) | BigInt(lo >>> 0);
    };
    const leaf = (v: bigint): Dot => (isNaN(v) ? { nans: new Set([v]) } : { value: v });
    const stage = (x: Dot, y: Dot): Dot => {
      if ("nans" in x || "nans" in y)
        return { nans: new Set([...("nans" in x ? x.nans : []), ...("nans" in y ? y.nans : [])]) };
      return leaf(add(x.value, y.value));
    };
    const t = Array.from({ length: n }, (_, i) => leaf(mul(i)));
    const r = n === 2 ? stage(t[0]!, t[1]!) : stage(stage(t[0]!, t[1]!), stage(t[2]!, t[3]!));
    return "nans" in r ? r.nans : null;
  } finally {
    Object.assign(sf, saved);
  }
}

/**
 * `host` (16 bytes of the destination) with each broadcast lane that holds one of the NaNs the dot product
 * may deliver replaced by ours; null when the result is no NaN, or a lane holds something else.
 */
function reconcileDot(
  double: boolean,
  dst: Uint8Array,
  src: Uint8Array,
  imm8: number,
  mxcsr: number,
  host: Uint8Array,
  ours: Uint8Array,
): Uint8Array | null {
  const nans = dotProductNaNs(double, dst, src, imm8, mxcsr);
  if (nans === null) return null;
  const w = double ? 8 : 4;
  const out = host.slice();
  for (let i = 0; i < 16 / w; i++) {
    if (!(imm8 & (1 << i))) continue;
    if (!nans.has(leBig(host.subarray(i * w, i * w + w)))) return null;
    out.set(ours.subarray(i * w, i * w + w), i * w);
  }
  return out;
}

const dotConformance: ConformanceRule = {
  applies: (c, f) => f.kind === "exec" && (f.entry.mnemonic === "DPPS" || f.entry.mnemonic === "DPPD"),
  model: () => [],
  reconcile(c, f, nat, emu) {
    if (nat.vector !== -1 || emu.vector !== -1) return null;
    const src = xmmRm(c, 16);
    if (src === null) return null;
    const r = c.ops.reg;
    const at = (o: Outcome): Uint8Array => o.xmm.subarray(r * 16, r * 16 + 16);
    const dst = c.xmm.slice(r * 16, r * 16 + 16);
    const lanes = reconcileDot(f.entry.mnemonic === "DPPD", dst, src, c.ops.imm8, c.mxcsr, at(nat), at(emu));
    if (lanes === null) return null;
    const out = clone(nat);
    out.xmm.set(lanes, r * 16);
    return out;
  },
};

const dotSimd: SimdRule = {
  applies: (insn) => /^dpp[sd] xmm0, xmm1, /.test(insn),
  reconcile(insn, input, host, ours) {
    const imm8 = Number(insn.split(",")[2]);
    const mxcsr = new DataView(input.buffer, input.byteOffset + 64, 4).getUint32(0, true);
    const lanes = reconcileDot(
      insn.startsWith("dppd"),
      input.slice(0, 16),
      input.slice(16, 32),
      imm8,
      mxcsr,
      host.subarray(0, 16),
      ours.subarray(0, 16),
    );
    if (lanes === null) return null;
    const out = host.slice();
    out.set(lanes, 0);
    return out;
  },
};

// ------------------------------------------------------------------------------------------------------
// BSF / BSR with a zero source

const bitScanZero: ConformanceRule = {
  applies(c, f) {
    if (f.kind !== "exec" || (f.entry.handler !== "bsf" && f.entry.handler !== "bsr")) return false;
    return rmValue(c, c.ops.osz) === 0n;
  },
  model(c, _f, emu) {
    const r = c.ops.reg;
    return emu.vector === -1 && emu.regs[r] !== c.regs[r]
      ? [`destination ${hex(emu.regs[r]!)} (the model leaves ${hex(c.regs[r]!)})`]
      : [];
  },
  reconcile(c, _f, nat, emu) {
    if (nat.vector !== -1 || emu.vector !== -1) return null;
    const out = clone(nat);
    out.regs[c.ops.reg] = emu.regs[c.ops.reg]!;
    return out;
  },
};

// ------------------------------------------------------------------------------------------------------
// CMPXCHG r/m32 (register destination) whose comparison fails

const cmpxchgFail32: ConformanceRule = {
  applies: (c, f) =>
    f.kind === "exec" &&
    f.entry.handler === "cmpxchg" &&
    f.entry.operands[0] === "Ev" &&
    c.ops.mod === 3 &&
    c.ops.osz === 4 &&
    (c.regs[0]! & 0xffff_ffffn) !== (c.regs[c.ops.rm]! & 0xffff_ffffn),
  model(c, _f, emu) {
    const r = c.ops.rm;
    const want = c.regs[r]! & 0xffff_ffffn;
    return emu.vector === -1 && emu.regs[r] !== want
      ? [`destination ${hex(emu.regs[r]!)} (the model writes it back: ${hex(want)})`]
      : [];
  },
  reconcile(c, _f, nat, emu) {
    if (nat.vector !== -1 || emu.vector !== -1) return null;
    const r = c.ops.rm;
    const v = nat.regs[r]!;
    if (v !== c.regs[r] && v !== (c.regs[r]! & 0xffff_ffffn)) return null;
    const out = clone(nat);
    out.regs[r] = emu.regs[r]!;
    return out;
  },
};

// ------------------------------------------------------------------------------------------------------
// RCPPS / RCPSS / RSQRTPS / RSQRTSS

/** Magnitudes (binary32 bits) between which RCP's result may or may not be flushed as tiny. */
const RCP_NEVER_TINY = 0x7e7fe800; // 1.11111111110100000000000B * 2^125
const RCP_ALWAYS_TINY = 0x7e800c01; // 1.00000000000110000000001B * 2^126

/** Whether `r` is a result the SDM allows for RCP (or RSQRT) of the binary32 `x`. */
export function approxAllowed(rsqrt: boolean, x: number, r: number): boolean {
  x >>>= 0;
  r >>>= 0;
  const sign = (x & 0x80000000) >>> 0;
  const mag = x & 0x7fffffff;
  if (mag > 0x7f800000) return r === (x | 0x400000) >>> 0; // SNaN quieted, QNaN returned
  if (mag < 0x00800000) return r === (sign | 0x7f800000) >>> 0; // zero or denormal (as zero): infinity
  if (rsqrt && sign !== 0) return r === 0xffc00000; // negative: the default NaN
  if (mag === 0x7f800000) return r === sign; // infinity: zero of its sign
  if (!rsqrt && mag >= RCP_ALWAYS_TINY) return r === sign;
  if (!rsqrt && mag > RCP_NEVER_TINY && r === sign) return true;
  if ((r & 0x80000000) >>> 0 !== sign || (r & 0x7f800000) === 0x7f800000 || (r & 0x7f800000) === 0)
    return false;
  const f = (bits: number): number => new Float32Array(new Uint32Array([bits]).buffer)[0]!;
  const exact = rsqrt ? 1 / Math.sqrt(f(x)) : 1 / f(x);
  return Math.abs(f(r) - exact) <= 1.5 * 2 ** -12 * Math.abs(exact);
}

function approxLanes(c: Case, f: Form): { x: number[]; rsqrt: boolean } | null {
  const scalar = f.entry.operands[0]!.endsWith("ss");
  const src = xmmRm(c, scalar ? 4 : 16);
  if (src === null) return null;
  const v = new DataView(src.buffer, src.byteOffset, 16);
  const x = Array.from({ length: scalar ? 1 : 4 }, (_, i) => v.getUint32(4 * i, true));
  return { x, rsqrt: f.entry.handler.startsWith("rsqrt") };
}

const lane = (o: Outcome, reg: number, i: number): number =>
  new DataView(o.xmm.buffer, o.xmm.byteOffset + reg * 16, 16).getUint32(4 * i, true);

const approximation: ConformanceRule = {
  applies: (c, f) => f.kind === "exec" && f.entry.approximate,
  model(c, f, emu) {
    const a = approxLanes(c, f);
    if (emu.vector !== -1 || a === null) return [];
    return a.x
      .map((x, i) => ({ x, i, r: lane(emu, c.ops.reg, i) }))
      .filter(({ x, r }) => !approxAllowed(a.rsqrt, x, r))
      .map(({ x, i, r }) => `lane ${i}: ${hex(r >>> 0)} for ${hex(x >>> 0)} is outside the SDM's bound`);
  },
  reconcile(c, f, nat, emu) {
    const a = approxLanes(c, f);
    if (nat.vector !== -1 || emu.vector !== -1 || a === null) return null;
    const out = clone(nat);
    const v = new DataView(out.xmm.buffer, out.xmm.byteOffset + c.ops.reg * 16, 16);
    for (let i = 0; i < a.x.length; i++) {
      if (!approxAllowed(a.rsqrt, a.x[i]!, lane(nat, c.ops.reg, i))) return null;
      v.setUint32(4 * i, lane(emu, c.ops.reg, i), true);
    }
    return out;
  },
};

// ------------------------------------------------------------------------------------------------------
// The table

export const MODEL_SPECIFIC: readonly ModelSpecific[] = [
  {
    id: "ac-unaligned-move",
    forms: "MOVUPS, MOVUPD, MOVDQU (loads and stores), LDDQU with a memory operand",
    sdm:
      "SDM Vol. 3A 6.15 (Interrupt 17, #AC): for these instructions #AC may or may not be generated when the " +
      "address is not 8-byte aligned; AMD64 APM Vol. 4 (the instructions' #AC rows, MXCSR.MM = 0): #AC for any " +
      "operand not 16-byte aligned",
    model: "#AC(0) when the address is not 8-byte aligned; none when it is",
    accepted:
      "with CR0.AM, RFLAGS.AC, CPL 3 and a canonical address that is not 16-byte aligned: either #AC(0) at the " +
      "instruction with nothing changed (only where the access is what ends the instruction: it completes or " +
      "page-faults on the operand), or exactly the outcome without alignment checking",
    conformance: alignmentCheckRule(["MOVUPS", "MOVUPD", "MOVDQU", "LDDQU"], (ea) => (ea & 7n) !== 0n),
  },
  {
    id: "ac-maskmovdqu",
    forms: "MASKMOVDQU (the 16-byte store at DS:rDI)",
    sdm:
      "SDM Vol. 2B MASKMOVDQU: no alignment needed, exception type 4 (Vol. 2A 2.5 Table 2-21: no #AC), and " +
      "with an all-zero mask exceptions of addressing memory may or may not be signaled; AMD64 APM Vol. 4 " +
      "MASKMOVDQU (#AC row): #AC for an unaligned reference with alignment checking on",
    model: "#AC(0) when rDI is not 8-byte aligned, whatever the mask",
    accepted:
      "as ac-unaligned-move, with rDI as the address: #AC(0) with nothing changed, or the outcome without it",
    conformance: alignmentCheckRule(
      ["MASKMOVDQU"],
      (addr) => (addr & 7n) !== 0n,
      (c) => (c.ops.a32 ? c.regs[7]! & 0xffff_ffffn : c.regs[7]!),
    ),
  },
  {
    id: "ac-sse42-string",
    forms: "PCMPESTRI, PCMPESTRM, PCMPISTRI, PCMPISTRM with a memory operand",
    sdm:
      "SDM Vol. 2B PCMPxSTRx (exception type 4 without its 16-byte alignment #GP; Vol. 2A 2.5 Table 2-21 has " +
      "no #AC); AMD64 APM Vol. 4 (the instructions' #AC rows): #AC for an operand not 16-byte aligned",
    model: "no #AC",
    accepted:
      "as ac-unaligned-move: #AC(0) with nothing changed, or exactly the outcome without alignment checking",
    conformance: alignmentCheckRule(["PCMPESTRI", "PCMPESTRM", "PCMPISTRI", "PCMPISTRM"], () => false),
  },
  {
    id: "rep-a32-zero-count",
    forms: "REP/REPE/REPNE MOVS, CMPS, LODS, STOS, SCAS, INS, OUTS with a 67h prefix and ECX = 0",
    sdm:
      "SDM Vol. 2B REP (Operation: no iteration, no register written, when the count is 0); processors " +
      "differ here: recent Intel ones zero-extend the 32-bit count and pointer registers as a 32-bit write " +
      "would (Vol. 1 3.4.1.1), AMD ones leave them",
    model: "RCX, RSI, RDI unchanged",
    accepted:
      "each of the count and pointer registers the instruction uses either unchanged or with its upper 32 " +
      "bits cleared (low 32 bits unchanged); everything else as the model",
    conformance: repZeroCount,
  },
  {
    id: "call-noncanonical-push",
    forms: "CALL r/m64 (FF /2) whose target is not canonical",
    sdm:
      "SDM Vol. 2A CALL (64-bit mode exceptions: #GP(0) for a non-canonical target; Operation: Push(RIP) " +
      "before RIP := tempRIP), Vol. 3A 6.5 (a fault reports the instruction's own RIP)",
    model:
      "the push's own faults (#SS, #AC, #PF) first, then #GP(0) at the CALL with RSP and the stack unchanged",
    accepted:
      "#GP(0) at the CALL with nothing pushed, or with the return address pushed (RSP - 8, the slot holding " +
      "the address of the next instruction); where the push faults, that fault or #GP(0) with nothing " +
      "pushed (SDM Vol. 3A 6.9: the order of faults within one class is implementation-dependent)",
    conformance: callNonCanonical,
  },
  {
    id: "cmps-fault-order",
    forms: "CMPS (A6, A7; with or without REPE/REPNE) when both element accesses of an iteration fault",
    sdm:
      "SDM Vol. 3A 6.9: the priority among the faults of one class (faults on executing an instruction: #GP, " +
      "#SS, #PF, #AC, ...) is implementation-dependent; CMPS's Operation does not order its two reads",
    model: "the DS:rSI element first (the first source operand), then ES:rDI",
    accepted:
      "at the faulting iteration (registers as the model's), the ES:rDI element's own fault instead (vector, " +
      "error code, CR2); everything else as the model",
    conformance: cmpsFaultOrder,
  },
  {
    id: "dp-nan",
    forms: "DPPS, DPPD",
    sdm:
      "SDM Vol. 2A DPPS/DPPD (Description): table 4-7 NaN forwarding does not cover horizontal prioritization " +
      "of NaNs; which NaN reaches each destination lane is implementation dependent",
    model:
      "the Operation's order (t0+t1, t2+t3, their sum) with table 4-7 in each step: the first operand's NaN",
    accepted:
      "when the result is a NaN, each broadcast lane holds one of the NaNs the pseudocode's steps can forward: " +
      "a product's NaN (table 4-7) or the default NaN an addition generates without NaN operands; all other " +
      "bits, MXCSR included, as the model",
    conformance: dotConformance,
    simd: dotSimd,
  },
  {
    id: "bsf-bsr-zero",
    forms: "BSF, BSR with a zero source",
    sdm: "SDM Vol. 2A BSF/BSR: the destination is undefined when the source is 0 (AMD64 APM Vol. 3: unchanged)",
    model: "the destination register unchanged (all 64 bits); ZF = 1",
    accepted: "any destination value; everything else as the model",
    conformance: bitScanZero,
  },
  {
    id: "cmpxchg32-fail",
    forms: "CMPXCHG r32, r32 (register destination) whose comparison fails",
    sdm:
      "SDM Vol. 2A CMPXCHG: the destination is written back when the comparison fails (a 32-bit write clears " +
      "the upper half, Vol. 1 3.4.1.1); AMD64 APM Vol. 3 CMPXCHG leaves a register destination unwritten",
    model: "the destination written back (upper 32 bits cleared)",
    accepted: "the destination's upper 32 bits cleared or unchanged (low half unchanged)",
    conformance: cmpxchgFail32,
  },
  {
    id: "rcp-rsqrt",
    forms: "RCPPS, RCPSS, RSQRTPS, RSQRTSS",
    sdm:
      "SDM Vol. 2B RCPPS/RCPSS/RSQRTPS/RSQRTSS: |relative error| <= 1.5 * 2^-12; for RCP, inputs between " +
      "1.11111111110100000000000B * 2^125 and 1.00000000000110000000001B * 2^126 in magnitude may or may not " +
      "give a tiny result flushed to 0 (the text's 'greater'/'less' are read so the two bounds are ordered)",
    model:
      "the correctly rounded result truncated to 12 significand bits; a result below the normal range " +
      "flushed to zero",
    accepted:
      "per approximated lane: the exact special results (NaN quieted, 0 or denormal -> infinity, infinity -> " +
      "0, negative RSQRT input -> default NaN, RCP of magnitude >= the upper bound -> 0), 0 in the open " +
      "range, otherwise any value of the right sign within the error bound",
    conformance: approximation,
  },
];

// ------------------------------------------------------------------------------------------------------
// judging

export interface Verdict {
  /** Differences left after the documented alternatives (and the emulator's departures from the model). */
  diffs: string[];
  /** Rows whose documented alternative the host showed (when nothing is left). */
  accepted: string[];
}

/** Judges a host outcome against the emulator's: bit for bit, except what an applicable row documents. */
export function judge(c: Case, f: Form, nat: Outcome, emu: Outcome, env: Rerun): Verdict {
  const rows = MODEL_SPECIFIC.filter((r) => r.conformance?.applies(c, f) === true);
  const diffs: string[] = [];
  for (const r of rows)
    for (const m of r.conformance!.model(c, f, emu, env)) diffs.push(`model ${r.id}: ${m}`);
  let host = nat;
  const accepted: string[] = [];
  if (compareOutcomes(host, emu, c).length > 0) {
    for (const r of rows) {
      const rec = r.conformance!.reconcile(c, f, host, emu, env);
      if (rec !== null && !same(rec, host, c)) {
        accepted.push(r.id);
        host = rec;
      }
    }
  }
  diffs.push(...compareOutcomes(host, emu, c));
  return { diffs, accepted: diffs.length === 0 ? accepted : [] };
}

/** Reconciles a simd-host record: returns the host record to compare with ours, and the rows it used. */
export function judgeSimd(
  insn: string,
  input: Uint8Array,
  host: Uint8Array,
  ours: Uint8Array,
): { host: Uint8Array; accepted: string[] } {
  let h = host;
  const accepted: string[] = [];
  for (const r of MODEL_SPECIFIC) {
    if (r.simd === undefined || !r.simd.applies(insn)) continue;
    const rec = r.simd.reconcile(insn, input, h, ours);
    if (rec !== null && rec.some((b, i) => b !== h[i])) {
      accepted.push(r.id);
      h = rec;
    }
  }
  return { host: h, accepted };
}
