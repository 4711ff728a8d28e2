// Owns: integer arithmetic and logic handlers: ADD/OR/ADC/SBB/AND/SUB/XOR/CMP in every form, INC/DEC,
// NEG/NOT/TEST, and the decimal-adjust instructions (DAA/DAS/AAA/AAS/AAM/AAD).
// Must not: compute flags eagerly where the lazy form exists (flags.ts), or touch memory except through the
// operand helpers of core.ts.
// Spec: Intel SDM Vol. 2A/2B ADD, ADC, AND, CMP, DEC, INC, NEG, NOT, OR, SBB, SUB, TEST, XOR, DAA, DAS, AAA,
// AAS, AAM, AAD (operation and "Flags Affected").

import { type CpuCore, type Handler, Vec } from "./core.js";
import { LazyOp } from "./flags.js";
import { type Insn, OpKind } from "./insn.js";
import { FLAG_AF, FLAG_CF, FLAG_SF, FLAG_ZF, FLAGS_STATUS } from "./opcode-table.js";

const TWO32 = 0x1_0000_0000;

/**
 * Value at an operand size of 1, 2 or 4 bytes: sizes 1 and 2 masked (non-negative), size 4 as an int32.
 * (Int32 rather than unsigned so values stay small integers in V8: no heap numbers on the hot path.)
 */
export function usize(v: number, size: number): number {
  return size === 4 ? v | 0 : v & (size === 1 ? 0xff : 0xffff);
}

const enum Alu {
  Add,
  Or,
  Adc,
  Sbb,
  And,
  Sub,
  Xor,
  Cmp,
  Test,
}

/** Fast path: 32-bit register destination with a register or immediate source (the common forms). */
function binop32(c: CpuCore, d: Insn, op: Alu): void {
  const dst = d.r0;
  const a = c.rlo[dst]!;
  const b = d.k1 === OpKind.Reg ? c.rlo[d.r1]! : d.immLo;
  let r: number;
  switch (op) {
    case Alu.Add:
      r = (a + b) | 0;
      c.setLazy(LazyOp.Add, 4, a, b, r, 0);
      break;
    case Alu.Sub:
      r = (a - b) | 0;
      c.setLazy(LazyOp.Sub, 4, a, b, r, 0);
      break;
    case Alu.Cmp:
      c.setLazy(LazyOp.Sub, 4, a, b, (a - b) | 0, 0);
      return;
    case Alu.And:
      r = a & b;
      c.setResultFlags(4, r, 0, 0, 0, 0);
      break;
    case Alu.Test:
      c.setResultFlags(4, a & b, 0, 0, 0, 0);
      return;
    case Alu.Or:
      r = a | b;
      c.setResultFlags(4, r, 0, 0, 0, 0);
      break;
    case Alu.Xor:
      r = a ^ b;
      c.setResultFlags(4, r, 0, 0, 0, 0);
      break;
    case Alu.Adc: {
      const cin = c.getCF();
      r = (a + b + cin) | 0;
      c.setLazy(LazyOp.Adc, 4, a, b, r, cin);
      break;
    }
    default: {
      const cin = c.getCF();
      r = (a - b - cin) | 0;
      c.setLazy(LazyOp.Sbb, 4, a, b, r, cin);
      break;
    }
  }
  c.rlo[dst] = r;
  c.rhi[dst] = 0;
}

/** Fast path: 64-bit register destination with a register or immediate source. */
function binop64(c: CpuCore, d: Insn, op: Alu): void {
  const dst = d.r0;
  const a = c.rlo[dst]!;
  const ah = c.rhi[dst]!;
  let b: number;
  let bh: number;
  if (d.k1 === OpKind.Reg) {
    b = c.rlo[d.r1]!;
    bh = c.rhi[d.r1]!;
  } else {
    b = d.immLo;
    bh = d.immHi;
  }
  let rl: number;
  let rh: number;
  switch (op) {
    case Alu.Add: {
      rl = (a + b) | 0;
      rh = (ah + bh + (rl >>> 0 < a >>> 0 ? 1 : 0)) | 0;
      c.setLazy64(LazyOp.Add, a, ah, b, bh, rl, rh, 0);
      break;
    }
    case Alu.Sub:
    case Alu.Cmp: {
      rl = (a - b) | 0;
      rh = (ah - bh - (a >>> 0 < b >>> 0 ? 1 : 0)) | 0;
      c.setLazy64(LazyOp.Sub, a, ah, b, bh, rl, rh, 0);
      if (op === Alu.Cmp) return;
      break;
    }
    case Alu.And:
    case Alu.Test:
      rl = a & b;
      rh = ah & bh;
      c.setResultFlags(8, rl, rh, 0, 0, 0);
      if (op === Alu.Test) return;
      break;
    case Alu.Or:
      rl = a | b;
      rh = ah | bh;
      c.setResultFlags(8, rl, rh, 0, 0, 0);
      break;
    case Alu.Xor:
      rl = a ^ b;
      rh = ah ^ bh;
      c.setResultFlags(8, rl, rh, 0, 0, 0);
      break;
    default:
      binop(c, d, op, true);
      return;
  }
  c.rlo[dst] = rl;
  c.rhi[dst] = rh;
}

function binop(c: CpuCore, d: Insn, op: Alu, generic = false): void {
  const size = d.s0;
  if (!generic && d.k0 === OpKind.Reg && (d.k1 === OpKind.Reg || d.k1 === OpKind.Imm)) {
    if (size === 4) {
      binop32(c, d, op);
      return;
    }
    if (size === 8) {
      binop64(c, d, op);
      return;
    }
  }
  const a = c.rd0(d);
  const ah = c.hi;
  const b = c.rd1(d);
  const bh = c.hi;
  if (size !== 8) {
    const ua = usize(a, size);
    const ub = usize(b, size);
    let r: number;
    switch (op) {
      case Alu.Add:
        r = usize(ua + ub, size);
        c.setLazy(LazyOp.Add, size, ua, ub, r, 0);
        break;
      case Alu.Adc: {
        const cin = c.getCF();
        r = usize(ua + ub + cin, size);
        c.setLazy(LazyOp.Adc, size, ua, ub, r, cin);
        break;
      }
      case Alu.Sub:
      case Alu.Cmp:
        r = usize(ua - ub, size);
        c.setLazy(LazyOp.Sub, size, ua, ub, r, 0);
        if (op === Alu.Cmp) return;
        break;
      case Alu.Sbb: {
        const cin = c.getCF();
        r = usize(ua - ub - cin, size);
        c.setLazy(LazyOp.Sbb, size, ua, ub, r, cin);
        break;
      }
      case Alu.And:
      case Alu.Test:
        r = usize(ua & ub, size);
        c.setResultFlags(size, r, 0, 0, 0, 0);
        if (op === Alu.Test) return;
        break;
      case Alu.Or:
        r = usize(ua | ub, size);
        c.setResultFlags(size, r, 0, 0, 0, 0);
        break;
      default:
        r = usize(ua ^ ub, size);
        c.setResultFlags(size, r, 0, 0, 0, 0);
        break;
    }
    c.wr0(d, r, 0);
    return;
  }
  let rl: number;
  let rh: number;
  switch (op) {
    case Alu.Add:
    case Alu.Adc: {
      const cin = op === Alu.Adc ? c.getCF() : 0;
      const s = (a >>> 0) + (b >>> 0) + cin;
      rl = s | 0;
      rh = (ah + bh + (s >= TWO32 ? 1 : 0)) | 0;
      c.setLazy64(op === Alu.Add ? LazyOp.Add : LazyOp.Adc, a, ah, b, bh, rl, rh, cin);
      break;
    }
    case Alu.Sub:
    case Alu.Cmp:
    case Alu.Sbb: {
      const cin = op === Alu.Sbb ? c.getCF() : 0;
      const s = (a >>> 0) - (b >>> 0) - cin;
      rl = s | 0;
      rh = (ah - bh - (s < 0 ? 1 : 0)) | 0;
      c.setLazy64(op === Alu.Sbb ? LazyOp.Sbb : LazyOp.Sub, a, ah, b, bh, rl, rh, cin);
      if (op === Alu.Cmp) return;
      break;
    }
    case Alu.And:
    case Alu.Test:
      rl = a & b;
      rh = ah & bh;
      c.setResultFlags(8, rl, rh, 0, 0, 0);
      if (op === Alu.Test) return;
      break;
    case Alu.Or:
      rl = a | b;
      rh = ah | bh;
      c.setResultFlags(8, rl, rh, 0, 0, 0);
      break;
    default:
      rl = a ^ b;
      rh = ah ^ bh;
      c.setResultFlags(8, rl, rh, 0, 0, 0);
      break;
  }
  c.wr0(d, rl, rh);
}

function incdec(c: CpuCore, d: Insn, dec: boolean): void {
  const size = d.s0;
  const cf = c.carryForIncDec();
  if (d.k0 === OpKind.Reg && size >= 4) {
    const a = c.rlo[d.r0]!;
    const r = (dec ? a - 1 : a + 1) | 0;
    if (size === 4) {
      c.setLazy(dec ? LazyOp.Dec : LazyOp.Inc, 4, a, 1, r, cf);
      c.rhi[d.r0] = 0;
    } else {
      const ah = c.rhi[d.r0]!;
      // Carry/borrow into the high half when the low half wraps.
      const rh = dec ? (a === 0 ? (ah - 1) | 0 : ah) : r === 0 ? (ah + 1) | 0 : ah;
      c.setLazy64(dec ? LazyOp.Dec : LazyOp.Inc, a, ah, 1, 0, r, rh, cf);
      c.rhi[d.r0] = rh;
    }
    c.rlo[d.r0] = r;
    return;
  }
  const a = c.rd0(d);
  if (size === 8) {
    const ah = c.hi;
    const s = (a >>> 0) + (dec ? -1 : 1);
    const rl = s | 0;
    const rh = (ah + (s >= TWO32 ? 1 : s < 0 ? -1 : 0)) | 0;
    c.setLazy64(dec ? LazyOp.Dec : LazyOp.Inc, a, ah, 1, 0, rl, rh, cf);
    c.wr0(d, rl, rh);
    return;
  }
  const ua = usize(a, size);
  const r = usize(dec ? ua - 1 : ua + 1, size);
  c.setLazy(dec ? LazyOp.Dec : LazyOp.Inc, size, ua, 1, r, cf);
  c.wr0(d, r, 0);
}

function neg(c: CpuCore, d: Insn): void {
  const size = d.s0;
  const a = c.rd0(d);
  if (size === 8) {
    const ah = c.hi;
    const s = 0 - (a >>> 0);
    const rl = s | 0;
    const rh = (0 - ah - (s < 0 ? 1 : 0)) | 0;
    c.setLazy64(LazyOp.Sub, 0, 0, a, ah, rl, rh, 0);
    c.wr0(d, rl, rh);
    return;
  }
  const ua = usize(a, size);
  const r = usize(-ua, size);
  c.setLazy(LazyOp.Sub, size, 0, ua, r, 0);
  c.wr0(d, r, 0);
}

function not(c: CpuCore, d: Insn): void {
  const a = c.rd0(d);
  c.wr0(d, ~a, ~c.hi);
}

// ---- decimal adjust (16/32-bit modes only; the table marks them no64) ----

function setSZP(c: CpuCore, al: number, cf: number, af: number, of = 0): void {
  c.setResultFlags(1, al, 0, cf, of, af);
}

function daa(c: CpuCore): void {
  const oldAl = c.rlo[0]! & 0xff;
  const oldCf = c.getCF();
  let al = oldAl;
  let cf = 0;
  let af = 0;
  if ((al & 0xf) > 9 || c.getAF()) {
    al += 6;
    cf = oldCf | (al > 0xff ? 1 : 0);
    af = 1;
  }
  if (oldAl > 0x99 || oldCf) {
    al += 0x60;
    cf = 1;
  }
  al &= 0xff;
  c.setGpr(0, 1, al, 0);
  setSZP(c, al, cf, af);
}

function das(c: CpuCore): void {
  const oldAl = c.rlo[0]! & 0xff;
  const oldCf = c.getCF();
  let al = oldAl;
  let cf = 0;
  let af = 0;
  if ((al & 0xf) > 9 || c.getAF()) {
    cf = oldCf | (al < 6 ? 1 : 0);
    al -= 6;
    af = 1;
  }
  if (oldAl > 0x99 || oldCf) {
    al -= 0x60;
    cf = 1;
  }
  al &= 0xff;
  c.setGpr(0, 1, al, 0);
  setSZP(c, al, cf, af);
}

function aaaAas(c: CpuCore, sub: boolean): void {
  let ax = c.rlo[0]! & 0xffff;
  let f = 0;
  if ((ax & 0xf) > 9 || c.getAF()) {
    if (sub) ax = ((ax - 6) & 0xff) | ((((ax >> 8) - 1) & 0xff) << 8);
    else ax = (ax + 0x106) & 0xffff;
    f = FLAG_AF | FLAG_CF;
  }
  ax &= 0xff0f;
  c.setGpr(0, 2, ax, 0);
  c.setStatus(FLAGS_STATUS, f | (ax & 0xff ? 0 : FLAG_ZF) | (ax & 0x80 ? FLAG_SF : 0));
}

function aam(c: CpuCore, d: Insn): void {
  const base = d.immLo & 0xff;
  if (base === 0) c.fault(Vec.DE);
  const al0 = c.rlo[0]! & 0xff;
  const ah = Math.floor(al0 / base);
  const al = al0 % base;
  c.setGpr(0, 2, (ah << 8) | al, 0);
  setSZP(c, al, 0, 0);
}

function aad(c: CpuCore, d: Insn): void {
  const base = d.immLo & 0xff;
  const ax = c.rlo[0]! & 0xffff;
  const al = ((ax & 0xff) + (ax >> 8) * base) & 0xff;
  c.setGpr(0, 2, al, 0);
  setSZP(c, al, 0, 0);
}

export const aluHandlers: Record<string, Handler> = {
  add: (c, d) => binop(c, d, Alu.Add),
  or: (c, d) => binop(c, d, Alu.Or),
  adc: (c, d) => binop(c, d, Alu.Adc),
  sbb: (c, d) => binop(c, d, Alu.Sbb),
  and: (c, d) => binop(c, d, Alu.And),
  sub: (c, d) => binop(c, d, Alu.Sub),
  xor: (c, d) => binop(c, d, Alu.Xor),
  cmp: (c, d) => binop(c, d, Alu.Cmp),
  test: (c, d) => binop(c, d, Alu.Test),
  inc: (c, d) => incdec(c, d, false),
  dec: (c, d) => incdec(c, d, true),
  neg,
  not,
  daa,
  das,
  aaa: (c) => aaaAas(c, false),
  aas: (c) => aaaAas(c, true),
  aam,
  aad,
};
