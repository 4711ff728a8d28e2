// Owns: the x87 FPU instructions as Linux and glibc use them: the register stack (TOP, tags, stack fault
// handling), FSW/FCW and the masked/unmasked exception protocol (#MF at the next waiting instruction),
// loads/stores of m32/m64/m80 reals and m16/m32/m64 integers (FISTTP too), constants, the arithmetic group
// in all its encodings (ST(0)/ST(i), reversed, popping, memory real and integer forms), compares (FCOM*,
// FUCOM*, FCOMI*, FTST, FXAM), FCHS/FABS/FSQRT/FRNDINT/FSCALE/FXCH/FFREE/FINCSTP/FDECSTP/FCMOVcc, and the
// environment/state images (FNSTENV/FLDENV, FNSAVE/FRSTOR in 16/32-bit layouts), plus FNSTSW/FNSTCW/FLDCW,
// FNCLEX, FNINIT, FWAIT, FNOP.
// Must not: do arithmetic itself (x87-arith.ts) or hold state outside CpuCore.fpu.
// Spec: Intel SDM Vol. 1 ch. 8 (x87 FPU: 8.1 state, 8.1.3 condition codes, 8.1.7 tag word, 8.1.10 pointers,
// 8.5 exceptions incl. 8.5.1.1 stack overflow/underflow), Vol. 1 Fig. 8-9..8-12 (FSTENV/FSAVE layouts),
// Vol. 2 instruction pages FADD..FYL2X, Table 3-48 style condition-code tables for FCOM/FXAM.

import { CR0_EM, CR0_NE, CR0_TS, type CpuCore, type Handler, Vec } from "./core.js";
import type { Insn } from "./insn.js";
import { FLAG_CF, FLAG_PF, FLAG_ZF, FLAGS_STATUS } from "./opcode-table.js";
import {
  addFinite,
  Cls,
  constant,
  divFinite,
  Ext,
  fromF32,
  fromF64,
  fromInt,
  indefinite,
  lastWasTiny,
  mulFinite,
  outHi,
  pack80,
  R,
  roundExt,
  sqrtFinite,
  toFloat,
  toInt,
  unpack80,
  X_DE,
  X_IE,
  X_PE,
  X_ZE,
  xf,
} from "./x87-arith.js";

const SW_SF = 0x40;
const SW_ES = 0x80;
const SW_C0 = 0x100;
const SW_C1 = 0x200;
const SW_C2 = 0x400;
const SW_C3 = 0x4000;
const SW_B = 0x8000;
const SW_CC = SW_C0 | SW_C1 | SW_C2 | SW_C3;

const M80 = new DataView(new ArrayBuffer(10));
const A = new Ext();
const B = new Ext();
const T = new Ext();

// ---------------------------------------------------------------- availability and bookkeeping

/** #NM on CR0.EM/TS; #MF for a pending unmasked exception (waiting instructions, CR0.NE). */
function fpCheck(c: CpuCore, waiting: boolean): void {
  if (c.cr0 & (CR0_EM | CR0_TS)) c.fault(Vec.NM);
  // Without CR0.NE the error is reported through FERR#/IGNNE# (an external interrupt we do not model).
  if (waiting && c.fpu.fsw & SW_ES && c.cr0 & CR0_NE) c.fault(Vec.MF);
}

/** Records FOP, FIP/FCS and FDP/FDS for a non-control instruction (SDM 8.1.8-8.1.9). */
function note(c: CpuCore, d: Insn): void {
  const f = c.fpu;
  f.fop = ((d.opcode & 7) << 8) | (d.modrm & 0xff);
  f.fipLo = c.curRipLo;
  f.fipHi = c.curRipHi;
  f.fcs = c.segSel[1]!;
  if (d.hasMem) {
    f.fdpLo = c.eaLo;
    f.fdpHi = c.eaHi;
    f.fds = c.segSel[d.seg]!;
  }
}

function begin(c: CpuCore, d: Insn): void {
  fpCheck(c, true);
  note(c, d);
  xf.flags = 0;
  xf.up = false;
}

const top = (c: CpuCore): number => (c.fpu.fsw >> 11) & 7;
const phys = (c: CpuCore, i: number): number => (top(c) + i) & 7;
const isEmpty = (c: CpuCore, i: number): boolean => !(c.fpu.ftw & (1 << phys(c, i)));
const pc = (c: CpuCore): number => [24, 64, 53, 64][(c.fpu.fcw >> 8) & 3]!; // 01 is reserved: treat as 64
const rc = (c: CpuCore): number => (c.fpu.fcw >> 10) & 3;

function readSt(c: CpuCore, i: number, x: Ext): void {
  unpack80(c.fpu.regView, phys(c, i) * 10, x);
}

function writeSt(c: CpuCore, i: number, x: Ext): void {
  const p = phys(c, i);
  pack80(c.fpu.regView, p * 10, x);
  c.fpu.ftw |= 1 << p;
}

function pop(c: CpuCore): void {
  const f = c.fpu;
  f.ftw &= ~(1 << top(c));
  f.fsw = (f.fsw & ~0x3800) | (((top(c) + 1) & 7) << 11);
}

function setTop(c: CpuCore, t: number): void {
  c.fpu.fsw = (c.fpu.fsw & ~0x3800) | ((t & 7) << 11);
}

/**
 * Commits exception flags: unmasked ones set ES and B (the fault comes at the next waiting instruction).
 * Returns false when an unmasked IE/ZE/DE means the destination must not be written.
 */
function commit(c: CpuCore, flags: number, tinyExact = false): boolean {
  const f = c.fpu;
  const masks = f.fcw & 0x3f;
  // An exact tiny result signals underflow only when underflow is unmasked (SDM 4.9.1.5).
  if (tinyExact && !(masks & 0x10)) flags |= 0x10;
  f.fsw |= flags & 0x3f;
  if (flags & ~masks & 0x3f) f.fsw |= SW_ES | SW_B;
  return !(flags & ~masks & (X_IE | X_ZE | X_DE));
}

/** Stack underflow (reading an empty register): IE + SF, C1 = 0. Returns whether the masked response applies. */
function underflow(c: CpuCore): boolean {
  c.fpu.fsw = (c.fpu.fsw & ~SW_C1) | SW_SF;
  return commit(c, X_IE);
}

/** Pushes x (stack overflow if ST(7) is in use: IE + SF + C1, masked response pushes the indefinite). */
function push(c: CpuCore, x: Ext): boolean {
  const t = (top(c) - 1) & 7;
  if (c.fpu.ftw & (1 << t)) {
    c.fpu.fsw |= SW_SF | SW_C1;
    if (!commit(c, X_IE)) return false;
    indefinite(T);
    x = T;
  } else c.fpu.fsw &= ~SW_C1;
  setTop(c, t);
  writeSt(c, 0, x);
  return true;
}

function setC1(c: CpuCore, up: boolean): void {
  c.fpu.fsw = (c.fpu.fsw & ~SW_C1) | (up ? SW_C1 : 0);
}

// ---------------------------------------------------------------- operand sources

/** Memory real/integer operand of d into x by the escape byte and ModRM.reg (D8 m32fp, DC m64fp, DA m32int, DE m16int). */
function loadMemOperand(c: CpuCore, d: Insn, x: Ext): void {
  switch (d.opcode) {
    case 0xd8:
      fromF32(c.readMem(d.seg, c.eaLo, c.eaHi, 4), x);
      break;
    case 0xdc: {
      const lo = c.readMem(d.seg, c.eaLo, c.eaHi, 8);
      fromF64(lo, c.hi, x);
      break;
    }
    case 0xda: {
      const v = c.readMem(d.seg, c.eaLo, c.eaHi, 4);
      fromInt(v, v >> 31, x);
      break;
    }
    default: {
      const v = (c.readMem(d.seg, c.eaLo, c.eaHi, 2) << 16) >> 16;
      fromInt(v, v >> 31, x);
    }
  }
}

// ---------------------------------------------------------------- arithmetic core

const enum Op {
  Add = 0,
  Mul = 1,
  Sub = 4,
  SubR = 5,
  Div = 6,
  DivR = 7,
}

/** Computes a op b into R (or a special) with NaN rules; returns the flags. Operands already unpacked. */
function arith(op: number, a: Ext, b: Ext, c: CpuCore): void {
  if (op === Op.SubR || op === Op.DivR) {
    const t = a;
    a = b;
    b = t;
    op = op === Op.SubR ? Op.Sub : Op.Div;
  }
  const ac = a.cls;
  const bc = b.cls;
  if (ac === Cls.Bad || bc === Cls.Bad) {
    xf.flags |= X_IE;
    indefinite(R);
    return;
  }
  if (ac >= Cls.QNaN || bc >= Cls.QNaN) {
    nanResult(a, b);
    return;
  }
  if ((ac === Cls.Finite && a.den) || (bc === Cls.Finite && b.den)) xf.flags |= X_DE;
  const p = pc(c);
  const r = rc(c);
  const sub = op === Op.Sub;
  switch (op) {
    case Op.Add:
    case Op.Sub: {
      const bs = sub ? b.sign ^ 1 : b.sign;
      if (ac === Cls.Inf || bc === Cls.Inf) {
        if (ac === Cls.Inf && bc === Cls.Inf && a.sign !== bs) {
          xf.flags |= X_IE;
          indefinite(R);
          return;
        }
        R.set(ac === Cls.Inf ? a : b).sign = ac === Cls.Inf ? a.sign : bs;
        R.cls = Cls.Inf;
        return;
      }
      if (ac === Cls.Zero && bc === Cls.Zero) {
        R.set(a);
        R.sign = a.sign === bs ? a.sign : r === 1 ? 1 : 0;
        return;
      }
      if (ac === Cls.Zero || bc === Cls.Zero) {
        // x + 0 = x, rounded to the precision control.
        const x = ac === Cls.Zero ? b : a;
        const s = ac === Cls.Zero ? bs : a.sign;
        T.set(x).sign = s;
        roundExt(T, T.exp, p, r);
        return;
      }
      addFinite(a, b, sub, p, r);
      return;
    }
    case Op.Mul: {
      const s = a.sign ^ b.sign;
      if (ac === Cls.Inf || bc === Cls.Inf) {
        if (ac === Cls.Zero || bc === Cls.Zero) {
          xf.flags |= X_IE;
          indefinite(R);
          return;
        }
        R.cls = Cls.Inf;
        R.sign = s;
        return;
      }
      if (ac === Cls.Zero || bc === Cls.Zero) {
        R.cls = Cls.Zero;
        R.sign = s;
        R.hi = R.lo = 0;
        return;
      }
      mulFinite(a, b, p, r);
      return;
    }
    default: {
      const s = a.sign ^ b.sign;
      if ((ac === Cls.Inf && bc === Cls.Inf) || (ac === Cls.Zero && bc === Cls.Zero)) {
        xf.flags |= X_IE;
        indefinite(R);
        return;
      }
      if (ac === Cls.Inf || bc === Cls.Zero) {
        if (bc === Cls.Zero && ac !== Cls.Inf) xf.flags = (xf.flags & ~X_DE) | X_ZE;
        R.cls = Cls.Inf;
        R.sign = s;
        return;
      }
      if (ac === Cls.Zero || bc === Cls.Inf) {
        R.cls = Cls.Zero;
        R.sign = s;
        R.hi = R.lo = 0;
        return;
      }
      divFinite(a, b, p, r);
    }
  }
}

/** NaN operands: SNaN -> IE; the result is the NaN with the larger significand (QNaN preferred), quieted. */
function nanResult(a: Ext, b: Ext): void {
  const an = a.cls >= Cls.QNaN;
  const bn = b.cls >= Cls.QNaN;
  if (a.cls === Cls.SNaN || b.cls === Cls.SNaN) xf.flags |= X_IE;
  let pick: Ext;
  if (an && bn) {
    if (a.cls === Cls.QNaN && b.cls === Cls.SNaN) pick = a;
    else if (b.cls === Cls.QNaN && a.cls === Cls.SNaN) pick = b;
    else pick = a.hi > b.hi || (a.hi === b.hi && a.lo >= b.lo) ? a : b;
  } else pick = an ? a : b;
  R.set(pick);
  R.cls = Cls.QNaN;
  R.hi = (R.hi | 0x40000000) >>> 0;
}

/** Writes R to ST(i) after committing flags (C1 = rounded up). Returns whether it was written. */
function finish(c: CpuCore, i: number): boolean {
  const tiny = R.cls === Cls.Finite && lastWasTiny() && !(xf.flags & X_PE);
  if (!commit(c, xf.flags, tiny)) return false;
  setC1(c, xf.up);
  writeSt(c, i, R);
  return true;
}

/** D8/DC/DA/DE memory forms: ST(0) = ST(0) op mem (op from ModRM.reg; 2/3 are FCOM/FCOMP). */
function fArithMem(c: CpuCore, d: Insn): void {
  begin(c, d);
  const ext = (d.modrm >> 3) & 7;
  loadMemOperand(c, d, B);
  if (isEmpty(c, 0)) {
    if (underflow(c)) {
      indefinite(R);
      if (ext === 2 || ext === 3) setCompare(c, 3);
      else writeSt(c, 0, R);
    }
    if (ext === 3) pop(c);
    return;
  }
  readSt(c, 0, A);
  if (ext === 2 || ext === 3) {
    compare(c, A, B, true, false);
    if (ext === 3) pop(c);
    return;
  }
  arith(ext, A, B, c);
  finish(c, 0);
}

/** D8 reg: ST(0) = ST(0) op ST(i); DC reg: ST(i) = ST(i) op ST(0) (SUB/SUBR and DIV/DIVR swapped); DE: and pop. */
function fArithReg(c: CpuCore, d: Insn): void {
  begin(c, d);
  const ext = (d.modrm >> 3) & 7;
  const i = d.modrm & 7;
  const toSti = d.opcode !== 0xd8;
  if (isEmpty(c, 0) || isEmpty(c, i)) {
    if (underflow(c)) {
      indefinite(R);
      writeSt(c, toSti ? i : 0, R);
    }
    if (d.opcode === 0xde) pop(c);
    return;
  }
  readSt(c, 0, A);
  readSt(c, i, B);
  if (toSti) {
    // Destination ST(i) (DC/DE): E0+i is FSUBR ST(i),ST(0) = ST(0) - ST(i), E8+i FSUB = ST(i) - ST(0),
    // F0+i FDIVR = ST(0) / ST(i), F8+i FDIV = ST(i) / ST(0) (SDM FSUB/FDIV opcode tables).
    const op = ext === 4 ? Op.SubR : ext === 5 ? Op.Sub : ext === 6 ? Op.DivR : ext === 7 ? Op.Div : ext;
    arith(op, B, A, c);
    if (finish(c, i) && d.opcode === 0xde) pop(c);
    return;
  }
  arith(ext, A, B, c);
  finish(c, 0);
}

// ---------------------------------------------------------------- compares

/** Sets C3 C2 C0 from an ordering: 0 >, 1 <, 2 =, 3 unordered. */
function setCompare(c: CpuCore, ord: number): void {
  const cc = ord === 0 ? 0 : ord === 1 ? SW_C0 : ord === 2 ? SW_C3 : SW_C3 | SW_C2 | SW_C0;
  c.fpu.fsw = (c.fpu.fsw & ~SW_CC) | cc;
}

function order(a: Ext, b: Ext): number {
  if (a.cls >= Cls.QNaN || b.cls >= Cls.QNaN) return 3;
  const va = value(a);
  const vb = value(b);
  if (va === vb) {
    if (a.cls !== Cls.Finite || b.cls !== Cls.Finite) return 2;
    if (a.exp === b.exp && a.hi === b.hi && a.lo === b.lo) return 2;
  }
  // Exact ordering: sign, then exponent, then significand.
  const sa = a.cls === Cls.Zero ? 0 : a.sign ? -1 : 1;
  const sb = b.cls === Cls.Zero ? 0 : b.sign ? -1 : 1;
  if (sa !== sb) return sa > sb ? 0 : 1;
  if (sa === 0) return 2;
  const mag = magCmp(a, b);
  if (mag === 0) return 2;
  return mag > 0 === sa > 0 ? 0 : 1;
}

function magCmp(a: Ext, b: Ext): number {
  if (a.cls === Cls.Inf || b.cls === Cls.Inf) return a.cls === b.cls ? 0 : a.cls === Cls.Inf ? 1 : -1;
  if (a.exp !== b.exp) return a.exp > b.exp ? 1 : -1;
  if (a.hi !== b.hi) return a.hi > b.hi ? 1 : -1;
  if (a.lo !== b.lo) return a.lo > b.lo ? 1 : -1;
  return 0;
}

/** A rough double for equality shortcuts only (never for results). */
function value(x: Ext): number {
  if (x.cls === Cls.Zero) return 0;
  if (x.cls === Cls.Inf) return x.sign ? -Infinity : Infinity;
  return NaN;
}

/** FCOM-style compare; `signalQnan`: FCOM (any NaN -> IE) vs FUCOM (SNaN only). Sets C3 C2 C0 or EFLAGS. */
function compare(c: CpuCore, a: Ext, b: Ext, signalQnan: boolean, eflags: boolean): void {
  let fl = 0;
  if (a.cls === Cls.Bad || b.cls === Cls.Bad || a.cls === Cls.SNaN || b.cls === Cls.SNaN) fl |= X_IE;
  else if (signalQnan && (a.cls === Cls.QNaN || b.cls === Cls.QNaN)) fl |= X_IE;
  else if ((a.cls === Cls.Finite && a.den) || (b.cls === Cls.Finite && b.den)) fl |= X_DE;
  const ord = a.cls === Cls.Bad || b.cls === Cls.Bad ? 3 : order(a, b);
  if (!commit(c, fl)) return;
  c.fpu.fsw &= ~SW_C1;
  if (eflags) {
    const f = ord === 0 ? 0 : ord === 1 ? FLAG_CF : ord === 2 ? FLAG_ZF : FLAG_ZF | FLAG_PF | FLAG_CF;
    c.setStatus(FLAGS_STATUS, f);
  } else setCompare(c, ord);
}

/** FCOM/FCOMP/FUCOM/FUCOMP ST(i) (D8 D0/D8, DD E0/E8), FCOMPP (DE D9), FUCOMPP (DA E9). */
function fcomReg(signalQnan: boolean, pops: number): Handler {
  return (c, d) => {
    begin(c, d);
    const i = d.modrm & 7;
    if (isEmpty(c, 0) || isEmpty(c, i)) {
      if (underflow(c)) setCompare(c, 3);
    } else {
      readSt(c, 0, A);
      readSt(c, i, B);
      compare(c, A, B, signalQnan, false);
    }
    for (let k = 0; k < pops; k++) pop(c);
  };
}

/** FCOMI/FUCOMI(P) (DB F0/E8, DF F0/E8): EFLAGS ZF PF CF. */
function fcomi(signalQnan: boolean, pops: boolean): Handler {
  return (c, d) => {
    begin(c, d);
    const i = d.modrm & 7;
    if (isEmpty(c, 0) || isEmpty(c, i)) {
      if (underflow(c)) c.setStatus(FLAGS_STATUS, FLAG_ZF | FLAG_PF | FLAG_CF);
    } else {
      readSt(c, 0, A);
      readSt(c, i, B);
      compare(c, A, B, signalQnan, true);
    }
    if (pops) pop(c);
  };
}

function ftst(c: CpuCore, d: Insn): void {
  begin(c, d);
  if (isEmpty(c, 0)) {
    if (underflow(c)) setCompare(c, 3);
    return;
  }
  readSt(c, 0, A);
  B.cls = Cls.Zero;
  B.sign = 0;
  compare(c, A, B, true, false);
}

/** FXAM: class in C3 C2 C0, sign in C1 (SDM FXAM table); empty registers report 101. */
function fxam(c: CpuCore, d: Insn): void {
  begin(c, d);
  const f = c.fpu;
  let cc: number;
  if (isEmpty(c, 0)) {
    cc = SW_C3 | SW_C0;
    readSt(c, 0, A);
  } else {
    readSt(c, 0, A);
    switch (A.cls) {
      case Cls.Bad:
        cc = 0;
        break;
      case Cls.QNaN:
      case Cls.SNaN:
        cc = SW_C0;
        break;
      case Cls.Inf:
        cc = SW_C2 | SW_C0;
        break;
      case Cls.Zero:
        cc = SW_C3;
        break;
      default:
        cc = A.den ? SW_C3 | SW_C2 : SW_C2;
    }
  }
  f.fsw = (f.fsw & ~SW_CC) | cc | (A.sign ? SW_C1 : 0);
}

// ---------------------------------------------------------------- loads and stores

function fldMem(c: CpuCore, d: Insn): void {
  begin(c, d);
  const ext = (d.modrm >> 3) & 7;
  let fl = 0;
  if (d.opcode === 0xd9) fromF32(c.readMem(d.seg, c.eaLo, c.eaHi, 4), T);
  else if (d.opcode === 0xdd) {
    const lo = c.readMem(d.seg, c.eaLo, c.eaHi, 8);
    fromF64(lo, c.hi, T);
  } else if (ext === 5 && d.opcode === 0xdb) {
    // m80: loaded verbatim (no DE, SNaN not signalled).
    const v = M80;
    v.setInt32(0, c.readMem(d.seg, c.eaLo, c.eaHi, 4), true);
    const s2 = (c.eaLo >>> 0) + 4;
    v.setInt32(4, c.readMem(d.seg, s2 | 0, (c.eaHi + (s2 >= 0x1_0000_0000 ? 1 : 0)) | 0, 4), true);
    const s3 = (c.eaLo >>> 0) + 8;
    v.setUint16(8, c.readMem(d.seg, s3 | 0, (c.eaHi + (s3 >= 0x1_0000_0000 ? 1 : 0)) | 0, 2), true);
    unpack80(v, 0, T);
    push(c, T);
    return;
  }
  if (T.cls === Cls.SNaN) {
    fl |= X_IE;
    T.cls = Cls.QNaN;
    T.hi = (T.hi | 0x40000000) >>> 0;
  } else if (T.cls === Cls.Finite && T.den) fl |= X_DE;
  if (!commit(c, fl)) return;
  push(c, T);
}

/** FILD m16/m32/m64 (DF /0, DB /0, DF /5). */
function fild(c: CpuCore, d: Insn): void {
  begin(c, d);
  const ext = (d.modrm >> 3) & 7;
  if (d.opcode === 0xdf && ext === 5) {
    const lo = c.readMem(d.seg, c.eaLo, c.eaHi, 8);
    fromInt(lo, c.hi, T);
  } else if (d.opcode === 0xdb) {
    const v = c.readMem(d.seg, c.eaLo, c.eaHi, 4);
    fromInt(v, v >> 31, T);
  } else {
    const v = (c.readMem(d.seg, c.eaLo, c.eaHi, 2) << 16) >> 16;
    fromInt(v, v >> 31, T);
  }
  push(c, T);
}

/** FLD ST(i). */
function fldReg(c: CpuCore, d: Insn): void {
  begin(c, d);
  const i = d.modrm & 7;
  if (isEmpty(c, i)) {
    if (!underflow(c)) return;
    indefinite(T);
  } else readSt(c, i, T);
  push(c, T);
}

/** FST/FSTP m32/m64/m80 (D9 /2 /3, DD /2 /3, DB /7). */
function fstMem(c: CpuCore, d: Insn): void {
  begin(c, d);
  const ext = (d.modrm >> 3) & 7;
  const pops = ext === 3 || ext === 7;
  if (isEmpty(c, 0)) {
    if (!underflow(c)) return;
    indefinite(A);
  } else readSt(c, 0, A);
  if (d.opcode === 0xdb) {
    const v = M80;
    pack80(v, 0, A);
    // Write the high part first so a fault on the second page happens before any byte is stored.
    const s3 = (c.eaLo >>> 0) + 8;
    c.writeMem(d.seg, s3 | 0, (c.eaHi + (s3 >= 0x1_0000_0000 ? 1 : 0)) | 0, 2, v.getUint16(8, true), 0);
    c.writeMem(d.seg, c.eaLo, c.eaHi, 8, v.getInt32(0, true), v.getInt32(4, true));
  } else {
    const dbl = d.opcode === 0xdd;
    // Stores never report DE for a denormal register (only loads and arithmetic do).
    let fl = 0;
    if (A.cls === Cls.SNaN || A.cls === Cls.Bad) fl |= X_IE;
    xf.flags = 0;
    xf.up = false;
    let lo: number;
    if (A.cls === Cls.Bad) {
      indefinite(T);
      lo = toFloat(T, dbl, 0);
    } else lo = toFloat(A, dbl, rc(c));
    const hi = outHi;
    fl |= xf.flags;
    const tiny = !(fl & X_PE) && A.cls === Cls.Finite && lastWasTiny();
    if (!commit(c, fl, tiny)) return;
    setC1(c, xf.up);
    c.writeMem(d.seg, c.eaLo, c.eaHi, dbl ? 8 : 4, lo, hi);
  }
  if (pops) pop(c);
}

/** FST/FSTP ST(i) (DD D0/D8). */
function fstReg(c: CpuCore, d: Insn): void {
  begin(c, d);
  const i = d.modrm & 7;
  const pops = ((d.modrm >> 3) & 7) === 3;
  if (isEmpty(c, 0)) {
    if (!underflow(c)) return;
    indefinite(T);
  } else readSt(c, 0, T);
  c.fpu.fsw &= ~SW_C1;
  writeSt(c, i, T);
  if (pops) pop(c);
}

/** FIST/FISTP m16/m32/m64 and FISTTP (truncating): integer indefinite when out of range (masked IE). */
function fist(c: CpuCore, d: Insn): void {
  begin(c, d);
  const ext = (d.modrm >> 3) & 7;
  // DF: m16 (/1 /2 /3) or m64 (/7); DB: m32; DD /1 (FISTTP m64).
  const size = d.opcode === 0xdf ? (ext === 7 ? 8 : 2) : d.opcode === 0xdd ? 8 : 4;
  const bits = size * 8;
  const truncate = ext === 1;
  const pops = ext === 3 || ext === 7 || ext === 1;
  let lo: number;
  let hi = 0;
  if (isEmpty(c, 0)) {
    if (!underflow(c)) return;
    lo = NaN;
  } else {
    readSt(c, 0, A);
    xf.flags = 0;
    xf.up = false;
    lo = toInt(A, bits, truncate ? 3 : rc(c));
    hi = outHi;
  }
  if (Number.isNaN(lo)) {
    if (!isEmpty(c, 0) && !commit(c, X_IE)) return;
    lo = size === 2 ? 0x8000 : size === 4 ? 0x80000000 | 0 : 0;
    hi = size === 8 ? 0x80000000 | 0 : 0;
    c.fpu.fsw &= ~SW_C1;
  } else {
    if (!commit(c, xf.flags)) return;
    setC1(c, xf.up);
  }
  c.writeMem(d.seg, c.eaLo, c.eaHi, size, lo, hi);
  if (pops) pop(c);
}

const CONSTS: ReadonlyArray<[readonly number[], number]> = [
  [[0x80000000, 0, 0, 0], 0], // 1
  [[0xd49a784b, 0xcd1b8afe, 0x492bf6ff, 0x4dafdb4c], 1], // log2(10)
  [[0xb8aa3b29, 0x5c17f0bb, 0xbe87fed0, 0x691d3e88], 0], // log2(e)
  [[0xc90fdaa2, 0x2168c234, 0xc4c6628b, 0x80dc1cd1], 1], // pi
  [[0x9a209a84, 0xfbcff798, 0x8f8959ac, 0x0b7c9178], -2], // log10(2)
  [[0xb17217f7, 0xd1cf79ab, 0xc9e3b398, 0x03f2f6af], -1], // ln(2)
];

/** FLD1, FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2 (D9 E8..ED) and FLDZ (D9 EE). */
function fldConst(c: CpuCore, d: Insn): void {
  begin(c, d);
  const k = d.modrm - 0xe8;
  if (k === 6) {
    T.cls = Cls.Zero;
    T.sign = 0;
    T.hi = T.lo = 0;
  } else {
    const [w, e] = CONSTS[k]!;
    constant(w, e, rc(c));
    T.set(R);
  }
  push(c, T);
}

// ---------------------------------------------------------------- single-operand and stack instructions

function fchsAbs(abs: boolean): Handler {
  return (c, d) => {
    begin(c, d);
    if (isEmpty(c, 0)) {
      if (underflow(c)) {
        indefinite(T);
        writeSt(c, 0, T);
      }
      return;
    }
    const v = c.fpu.regView;
    const o = phys(c, 0) * 10 + 8;
    const se = v.getUint16(o, true);
    v.setUint16(o, abs ? se & 0x7fff : se ^ 0x8000, true);
    c.fpu.fsw &= ~SW_C1;
  };
}

function fsqrt(c: CpuCore, d: Insn): void {
  begin(c, d);
  if (isEmpty(c, 0)) {
    if (underflow(c)) {
      indefinite(T);
      writeSt(c, 0, T);
    }
    return;
  }
  readSt(c, 0, A);
  if (A.cls === Cls.Bad || (A.sign && (A.cls === Cls.Finite || A.cls === Cls.Inf))) {
    xf.flags |= X_IE;
    indefinite(R);
  } else if (A.cls >= Cls.QNaN) nanResult(A, A);
  else if (A.cls === Cls.Zero || A.cls === Cls.Inf) R.set(A);
  else {
    if (A.den) xf.flags |= X_DE;
    sqrtFinite(A, pc(c), rc(c));
  }
  finish(c, 0);
}

/** FRNDINT: round ST(0) to an integer by RC (PE when inexact). */
function frndint(c: CpuCore, d: Insn): void {
  begin(c, d);
  if (isEmpty(c, 0)) {
    if (underflow(c)) {
      indefinite(T);
      writeSt(c, 0, T);
    }
    return;
  }
  readSt(c, 0, A);
  if (A.cls >= Cls.QNaN) {
    nanResult(A, A);
    if (A.cls === Cls.Bad) xf.flags |= X_IE;
  } else if (A.cls !== Cls.Finite || A.exp >= 63) R.set(A);
  else if (A.exp < 0) {
    // |x| < 1: the result is 0 or 1 in magnitude, keeping x's sign.
    if (A.den) xf.flags |= X_DE;
    const lo = toInt(A, 64, rc(c));
    fromInt(lo, outHi, R);
    R.sign = A.sign;
  } else {
    // Rounding to an integer = rounding to exp+1 significant bits.
    roundExt(A, A.exp, A.exp + 1, rc(c));
  }
  finish(c, 0);
}

/** FSCALE: ST(0) * 2^trunc(ST(1)). */
function fscale(c: CpuCore, d: Insn): void {
  begin(c, d);
  if (isEmpty(c, 0) || isEmpty(c, 1)) {
    if (underflow(c)) {
      indefinite(T);
      writeSt(c, 0, T);
    }
    return;
  }
  readSt(c, 0, A);
  readSt(c, 1, B);
  if (A.cls >= Cls.QNaN || B.cls >= Cls.QNaN) {
    if (A.cls === Cls.Bad || B.cls === Cls.Bad) {
      xf.flags |= X_IE;
      indefinite(R);
    } else nanResult(A, B);
  } else if (B.cls === Cls.Inf) {
    if (A.cls === Cls.Finite && A.den) xf.flags |= X_DE;
    // x * 2^+inf = inf (0 -> invalid); x * 2^-inf = 0 (inf -> invalid).
    if ((B.sign === 0 && A.cls === Cls.Zero) || (B.sign === 1 && A.cls === Cls.Inf)) {
      xf.flags |= X_IE;
      indefinite(R);
    } else {
      R.set(A);
      if (A.cls === Cls.Finite) {
        R.cls = B.sign ? Cls.Zero : Cls.Inf;
        R.hi = R.lo = 0;
      }
    }
  } else {
    if ((A.cls === Cls.Finite && A.den) || (B.cls === Cls.Finite && B.den)) xf.flags |= X_DE;
    if (A.cls !== Cls.Finite) {
      R.set(A);
      finish(c, 0);
      return;
    }
    let n = 0;
    if (B.cls === Cls.Finite && B.exp >= 0) {
      // trunc(ST(1)), clamped: beyond +-2^16 the result over/underflows anyway.
      n = B.exp > 20 ? 1 << 20 : Math.floor((B.hi >>> 0) / 2 ** (31 - B.exp));
      if (B.sign) n = -n;
    }
    roundExt(A, A.exp + n, 64, rc(c));
  }
  finish(c, 0);
}

function fxch(c: CpuCore, d: Insn): void {
  begin(c, d);
  const i = d.modrm & 7;
  if (isEmpty(c, 0) || isEmpty(c, i)) {
    if (!underflow(c)) return;
    indefinite(T);
    if (isEmpty(c, 0)) writeSt(c, 0, T);
    if (isEmpty(c, i)) writeSt(c, i, T);
  }
  const v = c.fpu.regs;
  const p0 = phys(c, 0) * 10;
  const pi = phys(c, i) * 10;
  for (let k = 0; k < 10; k++) {
    const t = v[p0 + k]!;
    v[p0 + k] = v[pi + k]!;
    v[pi + k] = t;
  }
  c.fpu.fsw &= ~SW_C1;
}

function ffree(c: CpuCore, d: Insn): void {
  begin(c, d);
  c.fpu.ftw &= ~(1 << phys(c, d.modrm & 7));
}

function fincdec(inc: boolean): Handler {
  return (c, d) => {
    begin(c, d);
    setTop(c, top(c) + (inc ? 1 : -1));
    c.fpu.fsw &= ~SW_C1;
  };
}

/** FCMOVcc: DA C0 B, C8 E, D0 BE, D8 U; DB: the negations. */
function fcmov(c: CpuCore, d: Insn): void {
  begin(c, d);
  const i = d.modrm & 7;
  const k = (d.modrm >> 3) & 3;
  const cond = [c.getCF(), c.getZF(), c.getCF() || c.getZF(), c.getPF()][k]!;
  const take = d.opcode === 0xda ? cond : !cond;
  if (isEmpty(c, 0) || isEmpty(c, i)) {
    if (!underflow(c)) return;
    indefinite(T);
    writeSt(c, 0, T);
    return;
  }
  if (take) {
    readSt(c, i, T);
    writeSt(c, 0, T);
  }
  c.fpu.fsw &= ~SW_C1;
}

function fnop(c: CpuCore, d: Insn): void {
  begin(c, d);
}

// ---------------------------------------------------------------- control instructions (no pending-error check)

function fninit(c: CpuCore): void {
  fpCheck(c, false);
  c.fpu.init();
}

function fnclex(c: CpuCore): void {
  fpCheck(c, false);
  c.fpu.fsw &= ~(0x3f | SW_SF | SW_ES | SW_B);
}

function fldcw(c: CpuCore, d: Insn): void {
  fpCheck(c, true);
  const f = c.fpu;
  f.fcw = (c.rd0(d) & 0x1f3f) | 0x40;
  // Unmasking a pending exception makes it pending for the next waiting instruction.
  if (f.fsw & ~f.fcw & 0x3f) f.fsw |= SW_ES | SW_B;
  else f.fsw &= ~(SW_ES | SW_B);
}

function fnstcw(c: CpuCore, d: Insn): void {
  fpCheck(c, false);
  c.wr0(d, c.fpu.fcw, 0);
}

function fnstsw(c: CpuCore, d: Insn): void {
  fpCheck(c, false);
  c.wr0(d, c.fpu.fsw, 0);
}

/** The full 16-bit tag word derived from the abridged tags and register contents (SDM 8.1.7). */
function fullTag(c: CpuCore): number {
  let t = 0;
  for (let p = 0; p < 8; p++) {
    let tag = 3;
    if (c.fpu.ftw & (1 << p)) {
      unpack80(c.fpu.regView, p * 10, T);
      tag = T.cls === Cls.Zero ? 1 : T.cls === Cls.Finite && !T.den ? 0 : 2;
    }
    t |= tag << (2 * p);
  }
  return t;
}

/** Writes the 14/28-byte environment (16-bit or 32-bit operand size; protected-mode layout) at ea + 0. */
function storeEnv(c: CpuCore, d: Insn): number {
  const f = c.fpu;
  const w = d.osize === 2 ? 2 : 4;
  const vals = [f.fcw, f.fsw, fullTag(c), f.fipLo, (f.fop << 16) | f.fcs, f.fdpLo, f.fds];
  // Check the whole area is writable before storing (the environment is written as one unit).
  c.linear(d.seg, c.eaLo, c.eaHi, w * 7, true);
  for (let k = 0; k < 7; k++) {
    const s = (c.eaLo >>> 0) + k * w;
    const v = w === 2 ? vals[k]! & 0xffff : k < 3 ? vals[k]! & 0xffff : vals[k]!;
    c.writeMem(d.seg, s | 0, (c.eaHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0, w, v, 0);
  }
  return w * 7;
}

function loadEnv(c: CpuCore, d: Insn): number {
  const f = c.fpu;
  const w = d.osize === 2 ? 2 : 4;
  const vals: number[] = [];
  for (let k = 0; k < 7; k++) {
    const s = (c.eaLo >>> 0) + k * w;
    vals.push(c.readMem(d.seg, s | 0, (c.eaHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0, w));
  }
  f.fcw = (vals[0]! & 0x1f3f) | 0x40;
  f.fsw = vals[1]! & 0xffff;
  const tag = vals[2]! & 0xffff;
  f.ftw = 0;
  for (let p = 0; p < 8; p++) if (((tag >> (2 * p)) & 3) !== 3) f.ftw |= 1 << p;
  f.fipLo = vals[3]!;
  f.fipHi = 0;
  f.fcs = vals[4]! & 0xffff;
  f.fop = (vals[4]! >>> 16) & 0x7ff;
  f.fdpLo = vals[5]!;
  f.fdpHi = 0;
  f.fds = vals[6]! & 0xffff;
  if (f.fsw & ~f.fcw & 0x3f) f.fsw |= SW_ES | SW_B;
  else f.fsw &= ~(SW_ES | SW_B);
  return w * 7;
}

function fnstenv(c: CpuCore, d: Insn): void {
  fpCheck(c, false);
  storeEnv(c, d);
  c.fpu.fcw |= 0x3f; // FNSTENV masks all exceptions afterwards
}

function fldenv(c: CpuCore, d: Insn): void {
  fpCheck(c, false);
  loadEnv(c, d);
}

/** FNSAVE: environment then ST(0)..ST(7) as 80-bit values; then FNINIT. */
function fnsave(c: CpuCore, d: Insn): void {
  fpCheck(c, false);
  const n = d.osize === 2 ? 14 : 28;
  c.linear(d.seg, c.eaLo, c.eaHi, n + 80, true);
  storeEnv(c, d);
  for (let i = 0; i < 8; i++) {
    const o = phys(c, i) * 10;
    const v = c.fpu.regView;
    const s = (c.eaLo >>> 0) + n + i * 10;
    const lo = s | 0;
    const hi = (c.eaHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0;
    c.writeMem(d.seg, lo, hi, 8, v.getInt32(o, true), v.getInt32(o + 4, true));
    const s2 = (lo >>> 0) + 8;
    c.writeMem(d.seg, s2 | 0, (hi + (s2 >= 0x1_0000_0000 ? 1 : 0)) | 0, 2, v.getUint16(o + 8, true), 0);
  }
  c.fpu.init();
}

function frstor(c: CpuCore, d: Insn): void {
  fpCheck(c, false);
  const n = d.osize === 2 ? 14 : 28;
  const regs = new DataView(new ArrayBuffer(80));
  for (let i = 0; i < 8; i++) {
    const s = (c.eaLo >>> 0) + n + i * 10;
    const lo = s | 0;
    const hi = (c.eaHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0;
    regs.setInt32(i * 10, c.readMem(d.seg, lo, hi, 8), true);
    regs.setInt32(i * 10 + 4, c.hi, true);
    const s2 = (lo >>> 0) + 8;
    regs.setUint16(i * 10 + 8, c.readMem(d.seg, s2 | 0, (hi + (s2 >= 0x1_0000_0000 ? 1 : 0)) | 0, 2), true);
  }
  loadEnv(c, d);
  for (let i = 0; i < 8; i++) {
    const o = phys(c, i) * 10;
    for (let k = 0; k < 10; k++) c.fpu.regs[o + k] = regs.getUint8(i * 10 + k);
  }
}

export const x87Handlers: Record<string, Handler> = {
  fArithMem,
  fArithReg,
  fcom: fcomReg(true, 0),
  fcomp: fcomReg(true, 1),
  fcompp: fcomReg(true, 2),
  fucom: fcomReg(false, 0),
  fucomp: fcomReg(false, 1),
  fucompp: fcomReg(false, 2),
  fcomi: fcomi(true, false),
  fcomip: fcomi(true, true),
  fucomi: fcomi(false, false),
  fucomip: fcomi(false, true),
  ftst,
  fxam,
  fldMem,
  fild,
  fldReg,
  fstMem,
  fstReg,
  fist,
  fldConst,
  fchs: fchsAbs(false),
  fabs: fchsAbs(true),
  fsqrt,
  frndint,
  fscale,
  fxch,
  ffree,
  fincstp: fincdec(true),
  fdecstp: fincdec(false),
  fcmov,
  fnop,
  fninit,
  fnclex,
  fldcw,
  fnstcw,
  fnstsw,
  fnstenv,
  fldenv,
  fnsave,
  frstor,
};
