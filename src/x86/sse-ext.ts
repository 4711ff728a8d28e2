// Owns: the SSE3, SSSE3 and SSE4.1/4.2 instructions that are not plain lane loops of sse-int.ts: SSE3
// horizontal/alternating float arithmetic and duplicating moves; SSSE3 PSHUFB, PALIGNR, PHADD*/PHSUB*,
// PMADDUBSW, PMULHRSW, PSIGN*, PABS*; SSE4.1 blends, min/max and multiplies, PTEST, PMOVSX/ZX, PEXTR*/
// PINSR*, EXTRACTPS/INSERTPS, ROUNDxx, DPPS/DPPD, MPSADBW, PHMINPOSUW, PACKUSDW, PCMPEQQ, MOVNTDQA; SSE4.2
// PCMPGTQ, PCMPxSTRx and CRC32.
// Must not: keep state outside CpuCore or write a destination before its exception checks complete.
// Spec: Intel SDM Vol. 2 instruction pages for each mnemonic; Vol. 2B 4.1 (PCMPxSTRx: aggregation,
// polarity, output selection).

import type { CpuCore, Handler } from "./core.js";
import { type Insn, OpKind } from "./insn.js";
import { FLAG_CF, FLAG_OF, FLAG_SF, FLAG_ZF, FLAGS_STATUS } from "./opcode-table.js";
import { LA, LB, LR, load, load01, raiseMx, simdCheck, sseCheck, store, store0 } from "./simd-access.js";
import { FOp, op32, op64, sf } from "./softfloat.js";
import { packusdw } from "./sse-int.js";

function beginFp(c: CpuCore): void {
  sf.flags = 0;
  sf.mxcsr = c.mxcsr;
}

// ---------------------------------------------------------------- SSE3

function horiz(double: boolean, sub: boolean): Handler {
  return (c, d) => {
    sseCheck(c);
    load01(c, d, true);
    beginFp(c);
    const op = sub ? FOp.Sub : FOp.Add;
    const a = LA.i32;
    const b = LB.i32;
    const r = LR.i32;
    if (double) {
      r[0] = op64(op, a[0]!, a[1]!, a[2]!, a[3]!);
      r[1] = sf.hi;
      r[2] = op64(op, b[0]!, b[1]!, b[2]!, b[3]!);
      r[3] = sf.hi;
    } else {
      r[0] = op32(op, a[0]!, a[1]!);
      r[1] = op32(op, a[2]!, a[3]!);
      r[2] = op32(op, b[0]!, b[1]!);
      r[3] = op32(op, b[2]!, b[3]!);
    }
    raiseMx(c, sf.flags);
    store0(c, d);
  };
}

function addsub(double: boolean): Handler {
  return (c, d) => {
    sseCheck(c);
    load01(c, d, true);
    beginFp(c);
    const a = LA.i32;
    const b = LB.i32;
    const r = LR.i32;
    if (double) {
      r[0] = op64(FOp.Sub, a[0]!, a[1]!, b[0]!, b[1]!);
      r[1] = sf.hi;
      r[2] = op64(FOp.Add, a[2]!, a[3]!, b[2]!, b[3]!);
      r[3] = sf.hi;
    } else for (let i = 0; i < 4; i++) r[i] = op32(i & 1 ? FOp.Add : FOp.Sub, a[i]!, b[i]!);
    raiseMx(c, sf.flags);
    store0(c, d);
  };
}

/** MOVDDUP (kind 0), MOVSLDUP (1), MOVSHDUP (2). */
function dup(kind: number): Handler {
  return (c, d) => {
    sseCheck(c);
    load(c, d, d.k1, d.r1, kind === 0 ? 8 : 16, LB, kind !== 0);
    const b = LB.i32;
    const r = LR.i32;
    if (kind === 0) {
      r[0] = r[2] = b[0]!;
      r[1] = r[3] = b[1]!;
    } else {
      const o = kind === 1 ? 0 : 1;
      r[0] = r[1] = b[o]!;
      r[2] = r[3] = b[o + 2]!;
    }
    store0(c, d);
  };
}

// ---------------------------------------------------------------- SSSE3

/** Integer lane op over slots 0/1 with MMX (8 bytes) or XMM (16 bytes) width. */
function op2(fn: (n: number) => void): Handler {
  return (c: CpuCore, d: Insn) => {
    simdCheck(c, d);
    load01(c, d, true);
    const n = d.k0 === OpKind.Mmx ? 8 : 16;
    fn(n);
    store(c, d, d.k0, d.r0, n, LR, false);
  };
}

const sat16 = (v: number): number => (v > 32767 ? 32767 : v < -32768 ? -32768 : v);

function pshufb(n: number): void {
  for (let i = 0; i < n; i++) {
    const m = LB.u8[i]!;
    LR.u8[i] = m & 0x80 ? 0 : LA.u8[m & (n - 1)]!;
  }
}

/** PHADDW/D, PHSUBW/D, PHADDSW/PHSUBSW: pairs of dest then pairs of source. */
function hInt(es: number, sub: boolean, sat: boolean): (n: number) => void {
  return (n) => {
    const cnt = n / es; // elements per operand
    const half = cnt / 2;
    for (let i = 0; i < half; i++) {
      if (es === 2) {
        const f = (x: number, y: number): number => {
          const v = sub ? x - y : x + y;
          return sat ? sat16(v) : v;
        };
        LR.i16[i] = f(LA.i16[2 * i]!, LA.i16[2 * i + 1]!);
        LR.i16[i + half] = f(LB.i16[2 * i]!, LB.i16[2 * i + 1]!);
      } else {
        LR.i32[i] = sub
          ? (LA.i32[2 * i]! - LA.i32[2 * i + 1]!) | 0
          : (LA.i32[2 * i]! + LA.i32[2 * i + 1]!) | 0;
        LR.i32[i + half] = sub
          ? (LB.i32[2 * i]! - LB.i32[2 * i + 1]!) | 0
          : (LB.i32[2 * i]! + LB.i32[2 * i + 1]!) | 0;
      }
    }
  };
}

function pmaddubsw(n: number): void {
  for (let i = 0; i < n >> 1; i++)
    LR.i16[i] = sat16(LA.u8[2 * i]! * LB.i8[2 * i]! + LA.u8[2 * i + 1]! * LB.i8[2 * i + 1]!);
}

function pmulhrsw(n: number): void {
  for (let i = 0; i < n >> 1; i++) LR.i16[i] = (((LA.i16[i]! * LB.i16[i]!) >> 14) + 1) >> 1;
}

function psign(es: number): (n: number) => void {
  return (n) => {
    for (let i = 0; i < n / es; i++) {
      const b = es === 1 ? LB.i8[i]! : es === 2 ? LB.i16[i]! : LB.i32[i]!;
      const a = es === 1 ? LA.i8[i]! : es === 2 ? LA.i16[i]! : LA.i32[i]!;
      const v = b < 0 ? -a : b === 0 ? 0 : a;
      if (es === 1) LR.i8[i] = v;
      else if (es === 2) LR.i16[i] = v;
      else LR.i32[i] = v | 0;
    }
  };
}

/** PABSB/W/D take only the source (slot 1). */
function pabs(es: number): Handler {
  return (c, d) => {
    simdCheck(c, d);
    const n = d.k0 === OpKind.Mmx ? 8 : 16;
    load(c, d, d.k1, d.r1, n, LB, true);
    for (let i = 0; i < n / es; i++) {
      if (es === 1) LR.u8[i] = Math.abs(LB.i8[i]!);
      else if (es === 2) LR.u16[i] = Math.abs(LB.i16[i]!);
      else LR.i32[i] = Math.abs(LB.i32[i]!) | 0;
    }
    store(c, d, d.k0, d.r0, n, LR, false);
  };
}

function palignr(c: CpuCore, d: Insn): void {
  simdCheck(c, d);
  load01(c, d, true);
  const n = d.k0 === OpKind.Mmx ? 8 : 16;
  const k = d.immLo & 0xff;
  // Concatenation dest:src (src in the low half), shifted right by k bytes.
  for (let i = 0; i < n; i++) {
    const j = i + k;
    LR.u8[i] = j < n ? LB.u8[j]! : j < 2 * n ? LA.u8[j - n]! : 0;
  }
  store(c, d, d.k0, d.r0, n, LR, false);
}

// ---------------------------------------------------------------- SSE4.1

/** PBLENDVB/BLENDVPS/BLENDVPD: the mask is XMM0 (top bit of each element). */
function blendv(es: number): Handler {
  return (c, d) => {
    sseCheck(c);
    load01(c, d, true);
    const x = c.xmm;
    for (let i = 0; i < 16; i++) {
      const e = Math.floor(i / es) * es + es - 1; // top byte of the element
      const m = (x[e >> 2]! >>> ((e & 3) * 8)) & 0x80;
      LR.u8[i] = m ? LB.u8[i]! : LA.u8[i]!;
    }
    store0(c, d);
  };
}

/** PBLENDW/BLENDPS/BLENDPD: mask from imm8 bit per element. */
function blendImm(es: number): Handler {
  return (c, d) => {
    sseCheck(c);
    load01(c, d, true);
    for (let i = 0; i < 16; i++) LR.u8[i] = (d.immLo >> Math.floor(i / es)) & 1 ? LB.u8[i]! : LA.u8[i]!;
    store0(c, d);
  };
}

function lanesMinMax(es: number, signed: boolean, max: boolean): (n: number) => void {
  return () => {
    for (let i = 0; i < 16 / es; i++) {
      const a =
        es === 1
          ? signed
            ? LA.i8[i]!
            : LA.u8[i]!
          : es === 2
            ? LA.u16[i]!
            : signed
              ? LA.i32[i]!
              : LA.u32[i]!;
      const b =
        es === 1
          ? signed
            ? LB.i8[i]!
            : LB.u8[i]!
          : es === 2
            ? LB.u16[i]!
            : signed
              ? LB.i32[i]!
              : LB.u32[i]!;
      const v = max ? (a > b ? a : b) : a < b ? a : b;
      if (es === 1) LR.u8[i] = v;
      else if (es === 2) LR.u16[i] = v;
      else LR.i32[i] = v | 0;
    }
  };
}

function pmulld(): void {
  for (let i = 0; i < 4; i++) LR.i32[i] = Math.imul(LA.i32[i]!, LB.i32[i]!);
}

/** PMULDQ: signed 32x32 -> 64 of dwords 0 and 2. */
function pmuldq(): void {
  for (let i = 0; i < 4; i += 2) {
    const a = LA.i32[i]!;
    const b = LB.i32[i]!;
    const neg = a < 0 !== b < 0 && a !== 0 && b !== 0;
    const ua = Math.abs(a);
    const ub = Math.abs(b);
    const al = ua & 0xffff;
    const ah = Math.floor(ua / 65536);
    const bl = ub & 0xffff;
    const bh = Math.floor(ub / 65536);
    const mid = ah * bl + al * bh;
    const lo0 = al * bl + (mid % 65536) * 65536;
    let lo = lo0 % 0x1_0000_0000;
    let hi = ah * bh + Math.floor(mid / 65536) + Math.floor(lo0 / 0x1_0000_0000);
    if (neg) {
      lo = (~lo + 1) >>> 0;
      hi = ~hi + (lo === 0 ? 1 : 0);
    }
    LR.i32[i] = lo | 0;
    LR.i32[i + 1] = hi | 0;
  }
}

function pcmpq(gt: boolean): (n: number) => void {
  return () => {
    for (let i = 0; i < 4; i += 2) {
      const ah = LA.i32[i + 1]!;
      const bh = LB.i32[i + 1]!;
      const al = LA.u32[i]!;
      const bl = LB.u32[i]!;
      const r = gt ? ah > bh || (ah === bh && al > bl) : ah === bh && al === bl;
      LR.i32[i] = LR.i32[i + 1] = r ? -1 : 0;
    }
  };
}

function ptest(c: CpuCore, d: Insn): void {
  sseCheck(c);
  load01(c, d, true);
  let and = 0;
  let andn = 0;
  for (let i = 0; i < 4; i++) {
    and |= LA.i32[i]! & LB.i32[i]!;
    andn |= ~LA.i32[i]! & LB.i32[i]!;
  }
  c.setStatus(FLAGS_STATUS, (and === 0 ? FLAG_ZF : 0) | (andn === 0 ? FLAG_CF : 0));
}

/** PMOVSX/ZX: `from` source element bytes, `to` result element bytes. */
function pmovx(from: number, to: number, signed: boolean): Handler {
  return (c, d) => {
    sseCheck(c);
    const cnt = 16 / to;
    load(c, d, d.k1, d.r1, cnt * from, LB, false);
    for (let i = 0; i < cnt; i++) {
      let v =
        from === 1
          ? signed
            ? LB.i8[i]!
            : LB.u8[i]!
          : from === 2
            ? signed
              ? LB.i16[i]!
              : LB.u16[i]!
            : signed
              ? LB.i32[i]!
              : LB.u32[i]!;
      if (to === 2) LR.i16[i] = v;
      else if (to === 4) LR.i32[i] = v | 0;
      else {
        LR.i32[2 * i] = v | 0;
        v = v < 0 ? -1 : 0;
        LR.i32[2 * i + 1] = v;
      }
    }
    store0(c, d);
  };
}

/** PEXTRB/W/D/Q and EXTRACTPS into a GPR (zero-extended) or memory. */
function pextr(es: number): Handler {
  return (c, d) => {
    sseCheck(c);
    load(c, d, d.k1, d.r1, 16, LB, false);
    const k = d.immLo & (16 / es - 1);
    if (es === 8) {
      LR.i32[0] = LB.i32[2 * k]!;
      LR.i32[1] = LB.i32[2 * k + 1]!;
    } else {
      LR.i32[0] = es === 1 ? LB.u8[k]! : es === 2 ? LB.u16[k]! : LB.i32[k]!;
      LR.i32[1] = 0;
    }
    if (d.k0 === OpKind.Reg) c.setGpr(d.r0, d.s0 === 8 ? 8 : 4, LR.i32[0]!, LR.i32[1]!);
    else store(c, d, d.k0, d.r0, es, LR, false);
  };
}

function pinsr(es: number): Handler {
  return (c, d) => {
    sseCheck(c);
    const v = c.rd1(d);
    const hi = c.hi;
    load(c, d, d.k0, d.r0, 16, LR, false);
    const k = d.immLo & (16 / es - 1);
    if (es === 1) LR.u8[k] = v;
    else if (es === 4) LR.i32[k] = v;
    else {
      LR.i32[2 * k] = v;
      LR.i32[2 * k + 1] = hi;
    }
    store0(c, d);
  };
}

function insertps(c: CpuCore, d: Insn): void {
  sseCheck(c);
  load(c, d, d.k0, d.r0, 16, LA, false);
  load(c, d, d.k1, d.r1, d.k1 === OpKind.Mem ? 4 : 16, LB, false);
  const imm = d.immLo;
  const src = d.k1 === OpKind.Mem ? LB.i32[0]! : LB.i32[(imm >> 6) & 3]!;
  LR.i32.set(LA.i32);
  LR.i32[(imm >> 4) & 3] = src;
  for (let i = 0; i < 4; i++) if (imm & (1 << i)) LR.i32[i] = 0;
  store0(c, d);
}

/** ROUNDPS/PD/SS/SD: imm8[1:0] mode unless imm8[2] (use MXCSR.RC); imm8[3] suppresses PE. */
function roundx(double: boolean, scalar: boolean): Handler {
  return (c, d) => {
    sseCheck(c);
    load01(c, d, !scalar);
    beginFp(c);
    const imm = d.immLo;
    const saved = c.mxcsr;
    sf.mxcsr = imm & 4 ? saved : (saved & ~0x6000) | ((imm & 3) << 13);
    LR.i32.set(scalar ? LA.i32 : LB.i32);
    const n = scalar ? 1 : double ? 2 : 4;
    for (let i = 0; i < n; i++) {
      if (double) {
        LR.i32[2 * i] = roundInt64(LB.i32[2 * i]!, LB.i32[2 * i + 1]!);
        LR.i32[2 * i + 1] = sf.hi;
      } else LR.i32[i] = roundInt32(LB.i32[i]!);
    }
    if (imm & 8) sf.flags &= ~0x20;
    sf.mxcsr = saved;
    raiseMx(c, sf.flags);
    store0(c, d);
  };
}

const RDV = new DataView(new ArrayBuffer(8));

function roundMode(x: number): number {
  const m = (sf.mxcsr >> 13) & 3;
  if (m === 1) return Math.floor(x);
  if (m === 2) return Math.ceil(x);
  if (m === 3) return Math.trunc(x);
  const f = Math.floor(x);
  const diff = x - f;
  return diff > 0.5 ? f + 1 : diff < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

function roundInt32(b: number): number {
  if ((b & 0x7fffffff) > 0x7f800000) {
    if (!(b & 0x400000)) sf.flags |= 1;
    return b | 0x400000;
  }
  RDV.setInt32(0, b, true);
  let x = RDV.getFloat32(0, true);
  // DAZ applies; ROUND* never reports DE (SDM ROUNDPS "SIMD Floating-Point Exceptions").
  if ((b & 0x7f800000) === 0 && (b & 0x7fffff) !== 0 && sf.mxcsr & 0x40) x = b < 0 ? -0 : 0;
  const r = roundMode(x);
  if (r !== x) sf.flags |= 0x20;
  RDV.setFloat32(0, r === 0 && (b < 0 || Object.is(x, -0)) ? -0 : r, true);
  return RDV.getInt32(0, true);
}

function roundInt64(lo: number, hi: number): number {
  if ((hi & 0x7fffffff) > 0x7ff00000 || ((hi & 0x7fffffff) === 0x7ff00000 && lo !== 0)) {
    if (!(hi & 0x80000)) sf.flags |= 1;
    sf.hi = hi | 0x80000;
    return lo;
  }
  RDV.setInt32(0, lo, true);
  RDV.setInt32(4, hi, true);
  let x = RDV.getFloat64(0, true);
  if ((hi & 0x7ff00000) === 0 && ((hi & 0xfffff) | lo) !== 0 && sf.mxcsr & 0x40) x = hi < 0 ? -0 : 0;
  const r = roundMode(x);
  if (r !== x) sf.flags |= 0x20;
  RDV.setFloat64(0, r === 0 && (hi < 0 || Object.is(x, -0)) ? -0 : r, true);
  sf.hi = RDV.getInt32(4, true);
  return RDV.getInt32(0, true);
}

/**
 * DPPS/DPPD report the multiply stage's exceptions before the additions run (as on hardware): the products'
 * flags are committed like one SSE operation's (an unmasked one faults there, before the sums can add
 * flags of their own); the additions then report theirs the same way (SDM DPPS/DPPD "SIMD Floating-Point
 * Exceptions": exceptions are detected per stage).
 */
function dpMulStage(c: CpuCore): void {
  raiseMx(c, sf.flags);
  sf.flags = 0;
}

/** DPPS/DPPD: products of the imm8[7:4]-selected lanes summed (in lane order pairs), broadcast by imm8[3:0]. */
function dp(double: boolean): Handler {
  return (c, d) => {
    sseCheck(c);
    load01(c, d, true);
    beginFp(c);
    const imm = d.immLo;
    const a = LA.i32;
    const b = LB.i32;
    if (double) {
      const t: number[] = [];
      for (let i = 0; i < 2; i++) {
        if (imm & (0x10 << i)) {
          t.push(op64(FOp.Mul, a[2 * i]!, a[2 * i + 1]!, b[2 * i]!, b[2 * i + 1]!), sf.hi);
        } else t.push(0, 0);
      }
      dpMulStage(c);
      const sl = op64(FOp.Add, t[0]!, t[1]!, t[2]!, t[3]!);
      const sh = sf.hi;
      for (let i = 0; i < 2; i++) {
        LR.i32[2 * i] = imm & (1 << i) ? sl : 0;
        LR.i32[2 * i + 1] = imm & (1 << i) ? sh : 0;
      }
    } else {
      const t: number[] = [];
      for (let i = 0; i < 4; i++) t.push(imm & (0x10 << i) ? op32(FOp.Mul, a[i]!, b[i]!) : 0);
      dpMulStage(c);
      const s01 = op32(FOp.Add, t[0]!, t[1]!);
      const s23 = op32(FOp.Add, t[2]!, t[3]!);
      const s = op32(FOp.Add, s01, s23);
      for (let i = 0; i < 4; i++) LR.i32[i] = imm & (1 << i) ? s : 0;
    }
    raiseMx(c, sf.flags);
    store0(c, d);
  };
}

function mpsadbw(c: CpuCore, d: Insn): void {
  sseCheck(c);
  load01(c, d, true);
  const imm = d.immLo;
  const aOff = ((imm >> 2) & 1) * 4;
  const bOff = (imm & 3) * 4;
  for (let i = 0; i < 8; i++) {
    let s = 0;
    for (let k = 0; k < 4; k++) s += Math.abs(LA.u8[aOff + i + k]! - LB.u8[bOff + k]!);
    LR.u16[i] = s;
  }
  store0(c, d);
}

function phminposuw(c: CpuCore, d: Insn): void {
  sseCheck(c);
  load(c, d, d.k1, d.r1, 16, LB, true);
  let min = LB.u16[0]!;
  let idx = 0;
  for (let i = 1; i < 8; i++) {
    if (LB.u16[i]! < min) {
      min = LB.u16[i]!;
      idx = i;
    }
  }
  LR.i32.fill(0);
  LR.u16[0] = min;
  LR.u16[1] = idx;
  store0(c, d);
}

// ---------------------------------------------------------------- SSE4.2

/** CRC32 (Castagnoli polynomial, reflected 0x82F63B78) over the source operand's bytes. */
const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    let v = i;
    for (let k = 0; k < 8; k++) v = v & 1 ? (v >>> 1) ^ 0x82f63b78 : v >>> 1;
    t[i] = v;
  }
  return t;
})();

function crc32(c: CpuCore, d: Insn): void {
  const size = d.s1;
  let v = c.rd1(d);
  const hi = c.hi;
  let crc = c.rlo[d.r0]!;
  for (let i = 0; i < size; i++) {
    const byte = i < 4 ? (v >>> (8 * i)) & 0xff : (hi >>> (8 * (i - 4))) & 0xff;
    crc = (crc >>> 8) ^ CRC_TABLE[(crc ^ byte) & 0xff]!;
  }
  v = crc;
  c.setGpr(d.r0, 4, v, 0); // the destination is r32 (zero-extended) or r64 with the upper half zeroed
  if (d.s0 === 8) c.rhi[d.r0] = 0;
}

/**
 * PCMPESTRI/PCMPESTRM/PCMPISTRI/PCMPISTRM (SDM Vol. 2B 4.1): element format imm8[1:0], aggregation
 * imm8[3:2] (equal any, ranges, equal each, equal ordered), polarity imm8[5:4], output imm8[6].
 */
function pcmpstr(explicit: boolean, mask: boolean): Handler {
  return (c, d) => {
    sseCheck(c);
    load01(c, d, false);
    const imm = d.immLo & 0xff;
    const words = (imm & 1) !== 0;
    const signed = (imm & 2) !== 0;
    const n = words ? 8 : 16;
    const el = (l: typeof LA, i: number): number =>
      words ? (signed ? l.i16[i]! : l.u16[i]!) : signed ? l.i8[i]! : l.u8[i]!;
    let la: number;
    let lb: number;
    if (explicit) {
      // Lengths are |EAX| and |EDX| (|RAX|, |RDX| with REX.W), saturated to the element count.
      const len = (r: number): number => {
        if (!(d.rex & 8)) return Math.min(n, Math.abs(c.rlo[r]! | 0));
        const hi = c.rhi[r]!;
        const lo = c.rlo[r]! >>> 0;
        if (hi === 0) return Math.min(n, lo);
        if (hi === -1 && lo !== 0) return Math.min(n, 0x1_0000_0000 - lo);
        return n;
      };
      la = len(0);
      lb = len(2);
    } else {
      la = n;
      lb = n;
      for (let i = 0; i < n; i++)
        if (el(LA, i) === 0) {
          la = i;
          break;
        }
      for (let i = 0; i < n; i++)
        if (el(LB, i) === 0) {
          lb = i;
          break;
        }
    }
    const agg = (imm >> 2) & 3;
    let res = 0;
    for (let j = 0; j < n; j++) {
      let bit = 0;
      if (agg === 0) {
        // equal any: is B[j] in A?
        if (j < lb) for (let i = 0; i < la; i++) if (el(LA, i) === el(LB, j)) bit = 1;
      } else if (agg === 1) {
        // ranges: A holds [lo, hi] pairs
        if (j < lb)
          for (let i = 0; i + 1 < la; i += 2)
            if (el(LA, i) <= el(LB, j) && el(LB, j) <= el(LA, i + 1)) bit = 1;
      } else if (agg === 2) {
        // equal each
        const va = j < la;
        const vb = j < lb;
        bit = va && vb ? (el(LA, j) === el(LB, j) ? 1 : 0) : !va && !vb ? 1 : 0;
      } else {
        // equal ordered: does A occur in B at position j?
        bit = 1;
        for (let i = 0; i < la && bit; i++) {
          const k = j + i;
          if (k >= n) break;
          if (k >= lb) bit = 0;
          else if (el(LA, i) !== el(LB, k)) bit = 0;
        }
      }
      res |= bit << j;
    }
    const pol = (imm >> 4) & 3;
    const all = (1 << n) - 1;
    let r2 = res;
    if (pol === 1) r2 = ~res & all;
    else if (pol === 3) r2 = (res ^ ((1 << lb) - 1)) & all;
    let fl = 0;
    if (r2 !== 0) fl |= FLAG_CF;
    if (lb < n) fl |= FLAG_ZF;
    if (la < n) fl |= FLAG_SF;
    if (r2 & 1) fl |= FLAG_OF;
    if (mask) {
      if (imm & 0x40) {
        for (let i = 0; i < n; i++) {
          const v = (r2 >> i) & 1 ? -1 : 0;
          if (words) LR.i16[i] = v;
          else LR.i8[i] = v;
        }
      } else {
        LR.i32.fill(0);
        LR.i32[0] = r2;
      }
      store(c, d, OpKind.Xmm, 0, 16, LR, false);
    } else {
      let idx = n;
      if (r2 !== 0) {
        if (imm & 0x40) idx = 31 - Math.clz32(r2);
        else idx = 31 - Math.clz32(r2 & -r2);
      }
      c.setGpr(1, 4, idx, 0);
    }
    c.setStatus(FLAGS_STATUS, fl);
  };
}

export const sseExtHandlers: Record<string, Handler> = {
  haddps: horiz(false, false),
  haddpd: horiz(true, false),
  hsubps: horiz(false, true),
  hsubpd: horiz(true, true),
  addsubps: addsub(false),
  addsubpd: addsub(true),
  movddup: dup(0),
  movsldup: dup(1),
  movshdup: dup(2),
  pshufb: op2(pshufb),
  phaddw: op2(hInt(2, false, false)),
  phaddd: op2(hInt(4, false, false)),
  phaddsw: op2(hInt(2, false, true)),
  phsubw: op2(hInt(2, true, false)),
  phsubd: op2(hInt(4, true, false)),
  phsubsw: op2(hInt(2, true, true)),
  pmaddubsw: op2(pmaddubsw),
  pmulhrsw: op2(pmulhrsw),
  psignb: op2(psign(1)),
  psignw: op2(psign(2)),
  psignd: op2(psign(4)),
  pabsb: pabs(1),
  pabsw: pabs(2),
  pabsd: pabs(4),
  palignr,
  pblendvb: blendv(1),
  blendvps: blendv(4),
  blendvpd: blendv(8),
  pblendw: blendImm(2),
  blendps: blendImm(4),
  blendpd: blendImm(8),
  pminsb: op2(lanesMinMax(1, true, false)),
  pmaxsb: op2(lanesMinMax(1, true, true)),
  pminuw: op2(lanesMinMax(2, false, false)),
  pmaxuw: op2(lanesMinMax(2, false, true)),
  pminsd: op2(lanesMinMax(4, true, false)),
  pmaxsd: op2(lanesMinMax(4, true, true)),
  pminud: op2(lanesMinMax(4, false, false)),
  pmaxud: op2(lanesMinMax(4, false, true)),
  pmulld: op2(pmulld),
  pmuldq: op2(pmuldq),
  pcmpeqq: op2(pcmpq(false)),
  pcmpgtq: op2(pcmpq(true)),
  packusdw: op2(packusdw),
  ptest,
  pmovsxbw: pmovx(1, 2, true),
  pmovsxbd: pmovx(1, 4, true),
  pmovsxbq: pmovx(1, 8, true),
  pmovsxwd: pmovx(2, 4, true),
  pmovsxwq: pmovx(2, 8, true),
  pmovsxdq: pmovx(4, 8, true),
  pmovzxbw: pmovx(1, 2, false),
  pmovzxbd: pmovx(1, 4, false),
  pmovzxbq: pmovx(1, 8, false),
  pmovzxwd: pmovx(2, 4, false),
  pmovzxwq: pmovx(2, 8, false),
  pmovzxdq: pmovx(4, 8, false),
  pextrb: pextr(1),
  pextrwMem: pextr(2),
  pextrd: pextr(4),
  pextrq: pextr(8),
  pinsrb: pinsr(1),
  pinsrd: pinsr(4),
  pinsrq: pinsr(8),
  insertps,
  roundps: roundx(false, false),
  roundpd: roundx(true, false),
  roundss: roundx(false, true),
  roundsd: roundx(true, true),
  dpps: dp(false),
  dppd: dp(true),
  mpsadbw,
  phminposuw,
  crc32,
  pcmpestri: pcmpstr(true, false),
  pcmpestrm: pcmpstr(true, true),
  pcmpistri: pcmpstr(false, false),
  pcmpistrm: pcmpstr(false, true),
};
