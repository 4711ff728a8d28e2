// Owns: the SSE/SSE2 floating-point instructions: ADD/SUB/MUL/DIV/SQRT/MIN/MAX in PS/PD/SS/SD forms,
// CMPPS/PD/SS/SD (predicates 0-7), COMISS/UCOMISS/COMISD/UCOMISD, the int/float and float/float
// conversions, RCPPS/RCPSS/RSQRTPS/RSQRTSS, the bitwise ANDPS..XORPD family and UNPCKLPx/UNPCKHPx (shared
// with the integer lanes), LDMXCSR/STMXCSR. Results are exact IEEE 754 with MXCSR control (softfloat.ts).
// Must not: write a destination before all exception checks of the instruction are done (an unmasked
// exception leaves the destination unchanged).
// Spec: Intel SDM Vol. 2 instruction pages (ADDPS ... XORPD, CMPPS Table 3-1 predicates, COMISS, CVT*,
// RCPPS/RSQRTPS relative error <= 1.5 * 2^-12), Vol. 1 10.2.3 (MXCSR), 11.5 (SIMD FP exceptions).

import { type CpuCore, type Handler } from "./core.js";
import { type Insn, OpKind } from "./insn.js";
import { FLAG_CF, FLAG_PF, FLAG_ZF, FLAGS_STATUS } from "./opcode-table.js";
import {
  LA,
  LB,
  LR,
  load,
  load01,
  mmxCheck,
  MXCSR_MASK,
  raiseMx,
  sseCheck,
  store,
  store0,
} from "./simd-access.js";
import {
  bits32,
  cvt32to64,
  cvt64to32,
  F_IE,
  FOp,
  in32,
  in64,
  intTo32,
  intTo64,
  isNaN32,
  isNaN64,
  isSNaN32,
  isSNaN64,
  op32,
  op64,
  sf,
  src32,
  src64,
  toInt,
} from "./softfloat.js";

function begin(c: CpuCore): void {
  sf.flags = 0;
  sf.mxcsr = c.mxcsr;
}

/** PS/SS/PD/SD arithmetic: `lanes` 4 or 1 (single) / 2 or 1 (double). */
function arith(op: FOp, double: boolean, scalar: boolean): Handler {
  return (c: CpuCore, d: Insn) => {
    sseCheck(c);
    load01(c, d, !scalar);
    begin(c);
    LR.i32.set(LA.i32);
    if (double) {
      const n = scalar ? 1 : 2;
      for (let i = 0; i < n; i++) {
        LR.i32[2 * i] = op64(op, LA.i32[2 * i]!, LA.i32[2 * i + 1]!, LB.i32[2 * i]!, LB.i32[2 * i + 1]!);
        LR.i32[2 * i + 1] = sf.hi;
      }
    } else {
      const n = scalar ? 1 : 4;
      for (let i = 0; i < n; i++) LR.i32[i] = op32(op, LA.i32[i]!, LB.i32[i]!);
    }
    raiseMx(c, sf.flags);
    store(c, d, d.k0, d.r0, 16, LR, false);
  };
}

/** CMPxx predicate (imm8 & 7) on two lanes already known not to be NaN unless `unordered`. */
function predicate(p: number, a: number, b: number, unordered: boolean): boolean {
  switch (p & 7) {
    case 0:
      return !unordered && a === b;
    case 1:
      return !unordered && a < b;
    case 2:
      return !unordered && a <= b;
    case 3:
      return unordered;
    case 4:
      return unordered || a !== b;
    case 5:
      return unordered || !(a < b);
    case 6:
      return unordered || !(a <= b);
    default:
      return !unordered;
  }
}

/** LT, LE, NLT, NLE signal IE on any NaN; EQ, UNORD, NEQ, ORD only on SNaN (SDM CMPPS Table 3-1). */
const SIGNALS_QNAN = [false, true, true, false, false, true, true, false];

function cmp(double: boolean, scalar: boolean): Handler {
  return (c, d) => {
    sseCheck(c);
    load01(c, d, !scalar);
    begin(c);
    const p = d.immLo & 7;
    LR.i32.set(LA.i32);
    const n = double ? (scalar ? 1 : 2) : scalar ? 1 : 4;
    for (let i = 0; i < n; i++) {
      let res: boolean;
      if (double) {
        const al = LA.i32[2 * i]!;
        const ah = LA.i32[2 * i + 1]!;
        const bl = LB.i32[2 * i]!;
        const bh = LB.i32[2 * i + 1]!;
        const un = isNaN64(al, ah) || isNaN64(bl, bh);
        if (un) {
          if (SIGNALS_QNAN[p] || isSNaN64(al, ah) || isSNaN64(bl, bh)) sf.flags |= F_IE;
          res = predicate(p, 0, 0, true);
        } else res = predicate(p, in64(al, ah), in64(bl, bh), false);
        LR.i32[2 * i] = LR.i32[2 * i + 1] = res ? -1 : 0;
      } else {
        const a = LA.i32[i]!;
        const b = LB.i32[i]!;
        const un = isNaN32(a) || isNaN32(b);
        if (un) {
          if (SIGNALS_QNAN[p] || isSNaN32(a) || isSNaN32(b)) sf.flags |= F_IE;
          res = predicate(p, 0, 0, true);
        } else res = predicate(p, in32(a), in32(b), false);
        LR.i32[i] = res ? -1 : 0;
      }
    }
    raiseMx(c, sf.flags);
    store(c, d, d.k0, d.r0, 16, LR, false);
  };
}

/** COMIS*: IE on any NaN; UCOMIS*: IE on SNaN only. ZF PF CF = 111 unordered, 000 >, 001 <, 100 =. */
function comis(double: boolean, signalQnan: boolean): Handler {
  return (c, d) => {
    sseCheck(c);
    load01(c, d, false);
    begin(c);
    let un: boolean;
    let a = 0;
    let b = 0;
    if (double) {
      const al = LA.i32[0]!;
      const ah = LA.i32[1]!;
      const bl = LB.i32[0]!;
      const bh = LB.i32[1]!;
      un = isNaN64(al, ah) || isNaN64(bl, bh);
      if (un) {
        if (signalQnan || isSNaN64(al, ah) || isSNaN64(bl, bh)) sf.flags |= F_IE;
      } else {
        a = in64(al, ah);
        b = in64(bl, bh);
      }
    } else {
      un = isNaN32(LA.i32[0]!) || isNaN32(LB.i32[0]!);
      if (un) {
        if (signalQnan || isSNaN32(LA.i32[0]!) || isSNaN32(LB.i32[0]!)) sf.flags |= F_IE;
      } else {
        a = in32(LA.i32[0]!);
        b = in32(LB.i32[0]!);
      }
    }
    raiseMx(c, sf.flags);
    const f = un ? FLAG_ZF | FLAG_PF | FLAG_CF : a > b ? 0 : a < b ? FLAG_CF : FLAG_ZF;
    c.setStatus(FLAGS_STATUS, f);
  };
}

// ---- conversions ----

/** CVTSI2SS / CVTSI2SD: integer (32 or 64 bits by REX.W) into the low lane; the rest of dest kept. */
function cvtsi2s(double: boolean): Handler {
  return (c, d) => {
    sseCheck(c);
    const lo = c.rd1(d);
    const hi = d.s1 === 8 ? c.hi : 0;
    begin(c);
    load(c, d, d.k0, d.r0, 16, LR, false);
    if (double) {
      LR.i32[0] = intTo64(lo, hi, d.s1 === 8);
      LR.i32[1] = sf.hi;
    } else LR.i32[0] = intTo32(lo, hi, d.s1 === 8);
    raiseMx(c, sf.flags);
    store0(c, d);
  };
}

/** CVT(T)SS2SI / CVT(T)SD2SI: into a 32- or 64-bit GPR. */
function cvts2si(double: boolean, truncate: boolean): Handler {
  return (c, d) => {
    sseCheck(c);
    load(c, d, d.k1, d.r1, double ? 8 : 4, LB, false);
    begin(c);
    const x = double ? src64(LB.i32[0]!, LB.i32[1]!) : src32(LB.i32[0]!);
    const lo = toInt(x, d.s0 === 8, truncate);
    const hi = sf.hi;
    raiseMx(c, sf.flags);
    c.setGpr(d.r0, d.s0, lo, hi);
  };
}

/** The packed and scalar float/float and int32/float conversions, one handler per form. */
function cvt(kind: string): Handler {
  return (c, d) => {
    sseCheck(c);
    const scalar = kind === "ss2sd" || kind === "sd2ss";
    // Sources narrower than 16 bytes (CVTPS2PD m64, CVTDQ2PD m64) are not alignment-checked.
    const srcSize = kind === "ps2pd" || kind === "dq2pd" ? 8 : scalar ? d.s1 : 16;
    load(c, d, d.k1, d.r1, srcSize, LB, srcSize === 16);
    begin(c);
    const b = LB.i32;
    const r = LR.i32;
    if (scalar) load(c, d, d.k0, d.r0, 16, LR, false);
    else r.fill(0);
    switch (kind) {
      case "ss2sd":
        r[0] = cvt32to64(b[0]!);
        r[1] = sf.hi;
        break;
      case "sd2ss":
        r[0] = cvt64to32(b[0]!, b[1]!);
        break;
      case "ps2pd": {
        const x0 = b[0]!;
        const x1 = b[1]!;
        r[0] = cvt32to64(x0);
        r[1] = sf.hi;
        r[2] = cvt32to64(x1);
        r[3] = sf.hi;
        break;
      }
      case "pd2ps":
        r[0] = cvt64to32(b[0]!, b[1]!);
        r[1] = cvt64to32(b[2]!, b[3]!);
        break;
      case "dq2ps":
        for (let i = 0; i < 4; i++) r[i] = intTo32(b[i]!, 0, false);
        break;
      case "dq2pd": {
        const x0 = b[0]!;
        const x1 = b[1]!;
        r[0] = intTo64(x0, 0, false);
        r[1] = sf.hi;
        r[2] = intTo64(x1, 0, false);
        r[3] = sf.hi;
        break;
      }
      case "ps2dq":
      case "tps2dq":
        for (let i = 0; i < 4; i++) r[i] = toInt(src32(b[i]!), false, kind === "tps2dq");
        break;
      default: {
        // pd2dq, tpd2dq: two results in the low quadword, upper quadword zeroed.
        const t = kind === "tpd2dq";
        r[0] = toInt(src64(b[0]!, b[1]!), false, t);
        r[1] = toInt(src64(b[2]!, b[3]!), false, t);
      }
    }
    raiseMx(c, sf.flags);
    store(c, d, d.k0, d.r0, 16, LR, false);
  };
}

/**
 * RCPPS/RCPSS/RSQRTPS/RSQRTSS. The SDM fixes only the error bound (|rel err| <= 1.5 * 2^-12) and Intel's
 * lookup tables are not published, so we return the correctly rounded reciprocal (root) truncated to 12
 * significant bits (within the bound; its special cases — signed zeros to signed infinities, infinities to
 * zeros, negative to QNaN for RSQRT, NaNs quieted — match the SDM). These rows carry `approx` in the table
 * so conformance tests compare them by the bound, not bit-exactly. They raise no MXCSR flags.
 */
function approx(rsqrt: boolean, scalar: boolean): Handler {
  return (c, d) => {
    sseCheck(c);
    load01(c, d, !scalar);
    LR.i32.set(LA.i32);
    const n = scalar ? 1 : 4;
    for (let i = 0; i < n; i++) {
      const b = LB.i32[i]!;
      if (isNaN32(b)) {
        LR.i32[i] = b | 0x400000;
        continue;
      }
      // Denormal inputs behave as zeros for these instructions (SDM RCPSS: "denormal ... treated as 0").
      const den = (b & 0x7f800000) === 0;
      const x = den ? (b < 0 ? -0 : 0) : in32(b, false);
      let y: number;
      if (rsqrt) y = x < 0 ? NaN : 1 / Math.sqrt(x);
      else y = 1 / x;
      if (Number.isNaN(y)) {
        LR.i32[i] = 0xffc00000 | 0;
        continue;
      }
      let yb = bits32(Math.fround(y));
      // Results below the normal range flush to signed zero (the hardware produces no denormals here).
      if ((yb & 0x7f800000) === 0) yb &= 0x80000000;
      else if ((yb & 0x7f800000) !== 0x7f800000) yb &= ~0x7ff;
      LR.i32[i] = yb;
    }
    store(c, d, d.k0, d.r0, 16, LR, false);
  };
}

/**
 * The MMX<->XMM conversions: CVTPI2PS/CVTPI2PD (two int32 from mm/m64), CVT(T)PS2PI (two binary32 from
 * xmm/m64) and CVT(T)PD2PI (two binary64 from xmm/m128) into mm. An MMX register operand switches the x87
 * unit to MMX state; a memory source does not (SDM CVTPI2PS "Operation" notes).
 */
function cvtpi(kind: string): Handler {
  return (c, d) => {
    sseCheck(c);
    const mmxOperand = d.k0 === OpKind.Mmx || d.k1 === OpKind.Mmx;
    if (mmxOperand) mmxCheck(c);
    const pd = kind === "pd2pi" || kind === "tpd2pi";
    load(c, d, d.k1, d.r1, pd ? 16 : 8, LB, pd);
    begin(c);
    const b = LB.i32;
    const r = LR.i32;
    if (kind === "pi2ps") {
      load(c, d, d.k0, d.r0, 16, LR, false);
      r[0] = intTo32(b[0]!, 0, false);
      r[1] = intTo32(b[1]!, 0, false);
    } else if (kind === "pi2pd") {
      const x0 = b[0]!;
      const x1 = b[1]!;
      r[0] = intTo64(x0, 0, false);
      r[1] = sf.hi;
      r[2] = intTo64(x1, 0, false);
      r[3] = sf.hi;
    } else if (pd) {
      const t = kind === "tpd2pi";
      r[0] = toInt(src64(b[0]!, b[1]!), false, t);
      r[1] = toInt(src64(b[2]!, b[3]!), false, t);
    } else {
      const t = kind === "tps2pi";
      r[0] = toInt(src32(b[0]!), false, t);
      r[1] = toInt(src32(b[1]!), false, t);
    }
    raiseMx(c, sf.flags);
    store(c, d, d.k0, d.r0, d.k0 === OpKind.Mmx ? 8 : 16, LR, false);
  };
}

function ldmxcsr(c: CpuCore, d: Insn): void {
  sseCheck(c);
  const v = c.rd0(d);
  if (v & ~MXCSR_MASK) c.gp(0);
  c.mxcsr = v;
}

function stmxcsr(c: CpuCore, d: Insn): void {
  sseCheck(c);
  c.wr0(d, c.mxcsr, 0);
}

export const sseFloatHandlers: Record<string, Handler> = {
  addps: arith(FOp.Add, false, false),
  addss: arith(FOp.Add, false, true),
  addpd: arith(FOp.Add, true, false),
  addsd: arith(FOp.Add, true, true),
  subps: arith(FOp.Sub, false, false),
  subss: arith(FOp.Sub, false, true),
  subpd: arith(FOp.Sub, true, false),
  subsd: arith(FOp.Sub, true, true),
  mulps: arith(FOp.Mul, false, false),
  mulss: arith(FOp.Mul, false, true),
  mulpd: arith(FOp.Mul, true, false),
  mulsd: arith(FOp.Mul, true, true),
  divps: arith(FOp.Div, false, false),
  divss: arith(FOp.Div, false, true),
  divpd: arith(FOp.Div, true, false),
  divsd: arith(FOp.Div, true, true),
  sqrtps: arith(FOp.Sqrt, false, false),
  sqrtss: arith(FOp.Sqrt, false, true),
  sqrtpd: arith(FOp.Sqrt, true, false),
  sqrtsd: arith(FOp.Sqrt, true, true),
  minps: arith(FOp.Min, false, false),
  minss: arith(FOp.Min, false, true),
  minpd: arith(FOp.Min, true, false),
  minsd: arith(FOp.Min, true, true),
  maxps: arith(FOp.Max, false, false),
  maxss: arith(FOp.Max, false, true),
  maxpd: arith(FOp.Max, true, false),
  maxsd: arith(FOp.Max, true, true),
  cmpps: cmp(false, false),
  cmpss: cmp(false, true),
  cmppd: cmp(true, false),
  cmpsd: cmp(true, true),
  comiss: comis(false, true),
  ucomiss: comis(false, false),
  comisd: comis(true, true),
  ucomisd: comis(true, false),
  cvtsi2ss: cvtsi2s(false),
  cvtsi2sd: cvtsi2s(true),
  cvtss2si: cvts2si(false, false),
  cvttss2si: cvts2si(false, true),
  cvtsd2si: cvts2si(true, false),
  cvttsd2si: cvts2si(true, true),
  cvtss2sd: cvt("ss2sd"),
  cvtsd2ss: cvt("sd2ss"),
  cvtps2pd: cvt("ps2pd"),
  cvtpd2ps: cvt("pd2ps"),
  cvtdq2ps: cvt("dq2ps"),
  cvtdq2pd: cvt("dq2pd"),
  cvtps2dq: cvt("ps2dq"),
  cvttps2dq: cvt("tps2dq"),
  cvtpd2dq: cvt("pd2dq"),
  cvttpd2dq: cvt("tpd2dq"),
  rcpps: approx(false, false),
  rcpss: approx(false, true),
  rsqrtps: approx(true, false),
  rsqrtss: approx(true, true),
  cvtpi2ps: cvtpi("pi2ps"),
  cvtpi2pd: cvtpi("pi2pd"),
  cvtps2pi: cvtpi("ps2pi"),
  cvttps2pi: cvtpi("tps2pi"),
  cvtpd2pi: cvtpi("pd2pi"),
  cvttpd2pi: cvtpi("tpd2pi"),
  ldmxcsr,
  stmxcsr,
};
