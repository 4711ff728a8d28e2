// Owns: the SSE/SSE2 (XMM) and MMX integer instructions and the SIMD data movement that string and memory
// functions use: MOVAPS/MOVUPS/MOVDQA/MOVDQU/MOVSS/MOVSD/MOVQ/MOVD/MOVLPx/MOVHPx/MOVHLPS/MOVLHPS/MOVNTxx/
// MASKMOVDQU, logic, compares, mask extraction, min/max, add/sub (wrapping and saturating), multiplies,
// averages, PSADBW, shuffles, unpacks, packs, shifts, PINSRW/PEXTRW, EMMS. Lanes are little-endian.
// Must not: touch MXCSR flags (no integer SIMD instruction raises SIMD floating-point exceptions) or keep
// state outside CpuCore.
// Spec: Intel SDM Vol. 2B/2C instruction pages (PADDB..PXOR, PUNPCK*, PACK*, PSHUF*, PS*L/R*), Vol. 1 9.6
// (MMX saturation), 11.4 (SSE2 128-bit integer instructions).

import type { CpuCore, Handler } from "./core.js";
import { type Insn, OpKind } from "./insn.js";
import {
  LA,
  LB,
  LR,
  type Lanes,
  load,
  load01,
  mmxCheck,
  simdCheck,
  sseCheck,
  store,
  store0,
} from "./simd-access.js";

/** Applies a lane operation (result in LR over n bytes) to slots 0 and 1; n = 8 for MMX, 16 for XMM. */
function op2(fn: (n: number) => void): Handler {
  return (c: CpuCore, d: Insn) => {
    simdCheck(c, d);
    load01(c, d, true);
    const n = d.k0 === OpKind.Mmx ? 8 : 16;
    fn(n);
    store(c, d, d.k0, d.r0, n, LR, false);
  };
}

const sat8 = (v: number): number => (v > 127 ? 127 : v < -128 ? -128 : v);
const satU8 = (v: number): number => (v > 255 ? 255 : v < 0 ? 0 : v);
const sat16 = (v: number): number => (v > 32767 ? 32767 : v < -32768 ? -32768 : v);
const satU16 = (v: number): number => (v > 65535 ? 65535 : v < 0 ? 0 : v);

function lanes8(f: (a: number, b: number) => number, signed: boolean): (n: number) => void {
  return (n) => {
    const a = signed ? LA.i8 : LA.u8;
    const b = signed ? LB.i8 : LB.u8;
    for (let i = 0; i < n; i++) LR.u8[i] = f(a[i]!, b[i]!);
  };
}
function lanes16(f: (a: number, b: number) => number, signed: boolean): (n: number) => void {
  return (n) => {
    const a = signed ? LA.i16 : LA.u16;
    const b = signed ? LB.i16 : LB.u16;
    for (let i = 0; i < n >> 1; i++) LR.u16[i] = f(a[i]!, b[i]!);
  };
}
function lanes32(f: (a: number, b: number) => number): (n: number) => void {
  return (n) => {
    for (let i = 0; i < n >> 2; i++) LR.i32[i] = f(LA.i32[i]!, LB.i32[i]!);
  };
}

function addq(n: number, sub: boolean): void {
  const a = LA.i32;
  const b = LB.i32;
  for (let i = 0; i < n >> 2; i += 2) {
    const bl = sub ? ~b[i]! : b[i]!;
    const bh = sub ? ~b[i + 1]! : b[i + 1]!;
    const s = (a[i]! >>> 0) + (bl >>> 0) + (sub ? 1 : 0);
    LR.i32[i] = s | 0;
    LR.i32[i + 1] = (a[i + 1]! + bh + (s >= 0x1_0000_0000 ? 1 : 0)) | 0;
  }
}

function logic(kind: number): (n: number) => void {
  return (n) => {
    for (let i = 0; i < n >> 2; i++) {
      const a = LA.i32[i]!;
      const b = LB.i32[i]!;
      LR.i32[i] = kind === 0 ? a & b : kind === 1 ? ~a & b : kind === 2 ? a | b : a ^ b;
    }
  };
}

/** PUNPCKL/H: interleave the low (or high) halves of dest and source at element size `es` bytes. */
function unpack(es: number, high: boolean): (n: number) => void {
  return (n) => {
    const half = n >> 1;
    const off = high ? half : 0;
    for (let k = 0; k < half / es; k++) {
      for (let j = 0; j < es; j++) {
        LR.u8[2 * k * es + j] = LA.u8[off + k * es + j]!;
        LR.u8[(2 * k + 1) * es + j] = LB.u8[off + k * es + j]!;
      }
    }
  };
}

function packsswb(n: number): void {
  const h = n >> 1; // words per source
  for (let i = 0; i < h; i++) {
    LR.i8[i] = sat8(LA.i16[i]!);
    LR.i8[i + h] = sat8(LB.i16[i]!);
  }
}
function packuswb(n: number): void {
  const h = n >> 1;
  for (let i = 0; i < h; i++) {
    LR.u8[i] = satU8(LA.i16[i]!);
    LR.u8[i + h] = satU8(LB.i16[i]!);
  }
}
function packssdw(n: number): void {
  const q = n >> 2;
  for (let i = 0; i < q; i++) {
    LR.i16[i] = sat16(LA.i32[i]!);
    LR.i16[i + q] = sat16(LB.i32[i]!);
  }
}
/** PACKUSDW (SSE4.1): signed dwords to unsigned-saturated words. */
export function packusdw(n: number): void {
  const q = n >> 2;
  for (let i = 0; i < q; i++) {
    LR.u16[i] = satU16(LA.i32[i]!);
    LR.u16[i + q] = satU16(LB.i32[i]!);
  }
}

function pmaddwd(n: number): void {
  for (let i = 0; i < n >> 2; i++) {
    const p = LA.i16[2 * i]! * LB.i16[2 * i]! + LA.i16[2 * i + 1]! * LB.i16[2 * i + 1]!;
    LR.i32[i] = p | 0; // only -32768*-32768*2 overflows, and wraps to 0x80000000 as on hardware
  }
}

function pmuludq(n: number): void {
  for (let i = 0; i < n >> 2; i += 2) {
    const a = LA.u32[i]!;
    const b = LB.u32[i]!;
    // 32x32 -> 64 in 16-bit pieces so every partial product is exact in a double.
    const al = a & 0xffff;
    const ah = a >>> 16;
    const bl = b & 0xffff;
    const bh = b >>> 16;
    const ll = al * bl;
    const mid = ah * bl + al * bh; // < 2^33
    const lo = ll + (mid % 65536) * 65536;
    LR.i32[i] = (lo % 0x1_0000_0000) | 0;
    LR.i32[i + 1] = (ah * bh + Math.floor(mid / 65536) + Math.floor(lo / 0x1_0000_0000)) | 0;
  }
}

function psadbw(n: number): void {
  for (let g = 0; g < n; g += 8) {
    let s = 0;
    for (let i = g; i < g + 8; i++) s += Math.abs(LA.u8[i]! - LB.u8[i]!);
    LR.i32[g >> 2] = s;
    LR.i32[(g >> 2) + 1] = 0;
  }
}

/** Shift count from a register/memory operand: the whole 64-bit low quadword (SDM PSLLW "COUNT"). */
function countFrom(l: Lanes): number {
  return l.i32[1] !== 0 || l.u32[0]! > 255 ? 255 : l.u32[0]!;
}

function shiftLanes(n: number, es: number, kind: number, count: number): void {
  // kind 0 = logical left, 1 = logical right, 2 = arithmetic right.
  const bits = es * 8;
  for (let i = 0; i < n / es; i++) {
    if (es === 2) {
      const v = LA.u16[i]!;
      LR.u16[i] =
        kind === 2
          ? LA.i16[i]! >> Math.min(count, 15)
          : count >= bits
            ? 0
            : kind === 0
              ? v << count
              : v >>> count;
    } else if (es === 4) {
      const v = LA.i32[i]!;
      LR.i32[i] =
        kind === 2 ? v >> Math.min(count, 31) : count >= bits ? 0 : kind === 0 ? v << count : v >>> count;
    } else {
      let lo = LA.i32[2 * i]!;
      let hi = LA.i32[2 * i + 1]!;
      if (count >= 64) lo = hi = 0;
      else if (count >= 32) {
        if (kind === 0) {
          hi = lo << (count - 32);
          lo = 0;
        } else {
          lo = hi >>> (count - 32);
          hi = 0;
        }
      } else if (count > 0) {
        if (kind === 0) {
          hi = (hi << count) | (lo >>> (32 - count));
          lo <<= count;
        } else {
          lo = (lo >>> count) | (hi << (32 - count));
          hi >>>= count;
        }
      }
      LR.i32[2 * i] = lo;
      LR.i32[2 * i + 1] = hi;
    }
  }
}

/** PSxx by register/memory count: slot 1 holds the count. */
function shiftBy(es: number, kind: number): Handler {
  return (c, d) => {
    simdCheck(c, d);
    load01(c, d, true);
    const n = d.k0 === OpKind.Mmx ? 8 : 16;
    shiftLanes(n, es, kind, countFrom(LB));
    store(c, d, d.k0, d.r0, n, LR, false);
  };
}

/** PSxx by imm8 (group 12/13/14: the register operand is ModRM.rm, slot 0). */
function shiftImm(es: number, kind: number): Handler {
  return (c, d) => {
    simdCheck(c, d);
    load(c, d, d.k0, d.r0, d.s0, LA, false);
    const n = d.k0 === OpKind.Mmx ? 8 : 16;
    shiftLanes(n, es, kind, d.immLo & 0xff);
    store(c, d, d.k0, d.r0, n, LR, false);
  };
}

/** PSLLDQ / PSRLDQ: byte shifts of the whole 128-bit register. */
function byteShift(left: boolean): Handler {
  return (c, d) => {
    sseCheck(c);
    load(c, d, d.k0, d.r0, 16, LA, false);
    const k = Math.min(d.immLo & 0xff, 16);
    for (let i = 0; i < 16; i++) {
      const src = left ? i - k : i + k;
      LR.u8[i] = src >= 0 && src < 16 ? LA.u8[src]! : 0;
    }
    store0(c, d);
  };
}

// ---- moves ----

/** Whole-operand move slot 1 -> slot 0; XMM destinations of a shorter load are zero-extended. */
function mov(align: boolean, zeroUpper: boolean): Handler {
  return (c, d) => {
    simdCheck(c, d);
    load(c, d, d.k1, d.r1, d.s1, LR, align);
    store(c, d, d.k0, d.r0, d.s0, LR, align, zeroUpper);
  };
}

/** MOVSS/MOVSD: register-to-register merges the low element; a load from memory zeroes the rest. */
function movScalar(c: CpuCore, d: Insn): void {
  sseCheck(c);
  load(c, d, d.k1, d.r1, d.s1, LR, false);
  store(c, d, d.k0, d.r0, d.s0, LR, false, d.k1 === OpKind.Mem);
}

/** MOVLPS/MOVLPD/MOVHLPS (load forms): the low quadword of the destination from memory / source high. */
function movLow(c: CpuCore, d: Insn): void {
  sseCheck(c);
  if (d.k1 === OpKind.Xmm) {
    // MOVHLPS
    load(c, d, d.k1, d.r1, 16, LB, false);
    LR.i32[0] = LB.i32[2]!;
    LR.i32[1] = LB.i32[3]!;
  } else load(c, d, d.k1, d.r1, 8, LR, false);
  store(c, d, d.k0, d.r0, 8, LR, false);
}

/** MOVHPS/MOVHPD/MOVLHPS (load forms): the high quadword of the destination. */
function movHigh(c: CpuCore, d: Insn): void {
  sseCheck(c);
  load(c, d, d.k1, d.r1, 8, LB, false);
  load(c, d, d.k0, d.r0, 16, LR, false);
  LR.i32[2] = LB.i32[0]!;
  LR.i32[3] = LB.i32[1]!;
  store(c, d, d.k0, d.r0, 16, LR, false);
}

/** MOVHPS/MOVHPD m64, xmm: store the high quadword. */
function movHighStore(c: CpuCore, d: Insn): void {
  sseCheck(c);
  load(c, d, d.k1, d.r1, 16, LB, false);
  LR.i32[0] = LB.i32[2]!;
  LR.i32[1] = LB.i32[3]!;
  store(c, d, d.k0, d.r0, 8, LR, false);
}

/** MOVQ2DQ xmm, mm (zero-extends) and MOVDQ2Q mm, xmm. */
function movq2dq(c: CpuCore, d: Insn): void {
  sseCheck(c);
  mmxCheck(c);
  load(c, d, d.k1, d.r1, 8, LR, false);
  store(c, d, d.k0, d.r0, 8, LR, false, true);
}

/** MASKMOVDQU / MASKMOVQ: bytes whose mask byte has bit 7 set are stored at DS:rDI (segment overridable). */
function maskmov(c: CpuCore, d: Insn): void {
  simdCheck(c, d);
  const n = d.k0 === OpKind.Mmx ? 8 : 16;
  load(c, d, d.k0, d.r0, n, LA, false);
  load(c, d, d.k1, d.r1, n, LB, false);
  const di = c.getGpr(7, d.asize);
  const diHi = d.asize === 8 ? c.hi : 0;
  // Alignment checking treats the store as 8-byte accesses at rDI, whatever the mask selects: #AC(0) when
  // rDI is not 8-byte aligned (a model-specific choice: docs/x86-internals.md "Model-specific behaviour").
  const first = c.linear(d.seg, di, diHi, 1, true);
  c.alignCheck(first, c.hi, 8, c.cpl === 3);
  // Validate every selected byte's address (limits, paging) before the first write.
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < n; i++) {
      if (!(LB.u8[i]! & 0x80)) continue;
      const s = (di >>> 0) + i;
      let lo = s | 0;
      let hi = (diHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0;
      if (d.asize === 4) {
        lo = (di + i) | 0;
        hi = 0;
      } else if (d.asize === 2) {
        lo = (di + i) & 0xffff;
        hi = 0;
      }
      if (pass === 0) c.linear(d.seg, lo, hi, 1, true);
      else c.writeMem(d.seg, lo, hi, 1, LA.u8[i]!, 0);
    }
  }
}

function pmovmskb(c: CpuCore, d: Insn): void {
  simdCheck(c, d);
  const n = d.k1 === OpKind.Mmx ? 8 : 16;
  load(c, d, d.k1, d.r1, n, LB, false);
  let m = 0;
  for (let i = 0; i < n; i++) m |= (LB.u8[i]! >> 7) << i;
  c.setGpr(d.r0, d.s0, m, 0);
}

function movmskps(c: CpuCore, d: Insn): void {
  sseCheck(c);
  load(c, d, d.k1, d.r1, 16, LB, false);
  let m = 0;
  for (let i = 0; i < 4; i++) m |= (LB.u32[i]! >>> 31) << i;
  c.setGpr(d.r0, d.s0, m, 0);
}

function movmskpd(c: CpuCore, d: Insn): void {
  sseCheck(c);
  load(c, d, d.k1, d.r1, 16, LB, false);
  c.setGpr(d.r0, d.s0, (LB.u32[1]! >>> 31) | ((LB.u32[3]! >>> 31) << 1), 0);
}

// ---- shuffles ----

function pshufd(c: CpuCore, d: Insn): void {
  sseCheck(c);
  load(c, d, d.k1, d.r1, 16, LB, true);
  const imm = d.immLo;
  for (let i = 0; i < 4; i++) LR.i32[i] = LB.i32[(imm >> (2 * i)) & 3]!;
  store0(c, d);
}

function pshufHalf(high: boolean): Handler {
  return (c, d) => {
    sseCheck(c);
    load(c, d, d.k1, d.r1, 16, LB, true);
    const imm = d.immLo;
    const o = high ? 4 : 0;
    LR.i32.set(LB.i32);
    for (let i = 0; i < 4; i++) LR.u16[o + i] = LB.u16[o + ((imm >> (2 * i)) & 3)]!;
    store0(c, d);
  };
}

function pshufw(c: CpuCore, d: Insn): void {
  mmxCheck(c);
  load(c, d, d.k1, d.r1, 8, LB, false);
  const imm = d.immLo;
  for (let i = 0; i < 4; i++) LR.u16[i] = LB.u16[(imm >> (2 * i)) & 3]!;
  store(c, d, d.k0, d.r0, 8, LR, false);
}

function shufps(c: CpuCore, d: Insn): void {
  sseCheck(c);
  load01(c, d, true);
  const imm = d.immLo;
  LR.i32[0] = LA.i32[imm & 3]!;
  LR.i32[1] = LA.i32[(imm >> 2) & 3]!;
  LR.i32[2] = LB.i32[(imm >> 4) & 3]!;
  LR.i32[3] = LB.i32[(imm >> 6) & 3]!;
  store0(c, d);
}

function shufpd(c: CpuCore, d: Insn): void {
  sseCheck(c);
  load01(c, d, true);
  const imm = d.immLo;
  const a = (imm & 1) * 2;
  const b = ((imm >> 1) & 1) * 2;
  LR.i32[0] = LA.i32[a]!;
  LR.i32[1] = LA.i32[a + 1]!;
  LR.i32[2] = LB.i32[b]!;
  LR.i32[3] = LB.i32[b + 1]!;
  store0(c, d);
}

function pinsrw(c: CpuCore, d: Insn): void {
  simdCheck(c, d);
  const n = d.k0 === OpKind.Mmx ? 8 : 16;
  const v = c.rd1(d) & 0xffff;
  load(c, d, d.k0, d.r0, n, LR, false);
  LR.u16[d.immLo & (n === 8 ? 3 : 7)] = v;
  store(c, d, d.k0, d.r0, n, LR, false);
}

function pextrw(c: CpuCore, d: Insn): void {
  simdCheck(c, d);
  const n = d.k1 === OpKind.Mmx ? 8 : 16;
  load(c, d, d.k1, d.r1, n, LB, false);
  c.setGpr(d.r0, d.s0, LB.u16[d.immLo & (n === 8 ? 3 : 7)]!, 0);
}

function emms(c: CpuCore): void {
  if (c.cr0 & 4) c.ud();
  if (c.cr0 & 8) c.fault(7);
  c.fpu.ftw = 0;
}

export const sseIntHandlers: Record<string, Handler> = {
  paddb: op2(lanes8((a, b) => a + b, false)),
  paddw: op2(lanes16((a, b) => a + b, false)),
  paddd: op2(lanes32((a, b) => (a + b) | 0)),
  paddq: op2((n) => addq(n, false)),
  psubb: op2(lanes8((a, b) => a - b, false)),
  psubw: op2(lanes16((a, b) => a - b, false)),
  psubd: op2(lanes32((a, b) => (a - b) | 0)),
  psubq: op2((n) => addq(n, true)),
  paddsb: op2(lanes8((a, b) => sat8(a + b), true)),
  paddsw: op2(lanes16((a, b) => sat16(a + b), true)),
  paddusb: op2(lanes8((a, b) => satU8(a + b), false)),
  paddusw: op2(lanes16((a, b) => satU16(a + b), false)),
  psubsb: op2(lanes8((a, b) => sat8(a - b), true)),
  psubsw: op2(lanes16((a, b) => sat16(a - b), true)),
  psubusb: op2(lanes8((a, b) => satU8(a - b), false)),
  psubusw: op2(lanes16((a, b) => satU16(a - b), false)),
  pmullw: op2(lanes16((a, b) => Math.imul(a, b), true)),
  pmulhw: op2(lanes16((a, b) => (a * b) >> 16, true)),
  pmulhuw: op2(lanes16((a, b) => (a * b) >>> 16, false)),
  pmuludq: op2(pmuludq),
  pmaddwd: op2(pmaddwd),
  pavgb: op2(lanes8((a, b) => (a + b + 1) >> 1, false)),
  pavgw: op2(lanes16((a, b) => (a + b + 1) >> 1, false)),
  psadbw: op2(psadbw),
  pminub: op2(lanes8((a, b) => Math.min(a, b), false)),
  pmaxub: op2(lanes8((a, b) => Math.max(a, b), false)),
  pminsw: op2(lanes16((a, b) => Math.min(a, b), true)),
  pmaxsw: op2(lanes16((a, b) => Math.max(a, b), true)),
  pcmpeqb: op2(lanes8((a, b) => (a === b ? 0xff : 0), false)),
  pcmpeqw: op2(lanes16((a, b) => (a === b ? 0xffff : 0), false)),
  pcmpeqd: op2(lanes32((a, b) => (a === b ? -1 : 0))),
  pcmpgtb: op2(lanes8((a, b) => (a > b ? 0xff : 0), true)),
  pcmpgtw: op2(lanes16((a, b) => (a > b ? 0xffff : 0), true)),
  pcmpgtd: op2(lanes32((a, b) => (a > b ? -1 : 0))),
  pand: op2(logic(0)),
  pandn: op2(logic(1)),
  por: op2(logic(2)),
  pxor: op2(logic(3)),
  punpcklbw: op2(unpack(1, false)),
  punpcklwd: op2(unpack(2, false)),
  punpckldq: op2(unpack(4, false)),
  punpcklqdq: op2(unpack(8, false)),
  punpckhbw: op2(unpack(1, true)),
  punpckhwd: op2(unpack(2, true)),
  punpckhdq: op2(unpack(4, true)),
  punpckhqdq: op2(unpack(8, true)),
  packsswb: op2(packsswb),
  packssdw: op2(packssdw),
  packuswb: op2(packuswb),
  psrlw: shiftBy(2, 1),
  psrld: shiftBy(4, 1),
  psrlq: shiftBy(8, 1),
  psraw: shiftBy(2, 2),
  psrad: shiftBy(4, 2),
  psllw: shiftBy(2, 0),
  pslld: shiftBy(4, 0),
  psllq: shiftBy(8, 0),
  psrlwImm: shiftImm(2, 1),
  psrldImm: shiftImm(4, 1),
  psrlqImm: shiftImm(8, 1),
  psrawImm: shiftImm(2, 2),
  psradImm: shiftImm(4, 2),
  psllwImm: shiftImm(2, 0),
  pslldImm: shiftImm(4, 0),
  psllqImm: shiftImm(8, 0),
  pslldq: byteShift(true),
  psrldq: byteShift(false),
  movAligned: mov(true, false),
  movUnaligned: mov(false, false),
  movZeroExt: mov(false, true),
  movScalar,
  movLow,
  movHigh,
  movHighStore,
  movq2dq,
  maskmov,
  pmovmskb,
  movmskps,
  movmskpd,
  pshufd,
  pshuflw: pshufHalf(false),
  pshufhw: pshufHalf(true),
  pshufw,
  shufps,
  shufpd,
  pinsrw,
  pextrw,
  emms,
};
