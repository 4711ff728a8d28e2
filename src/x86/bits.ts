// Owns: bit-test and bit-scan handlers: BT/BTS/BTR/BTC (register and immediate offsets, including the
// signed bit-string addressing of memory operands), BSF/BSR, POPCNT, LZCNT, TZCNT.
// Must not: modify ZF for BT* (Intel leaves it unchanged) or the destination of BSF/BSR on a zero source.
// Spec: Intel SDM Vol. 2A BT, BTC, BTR, BTS, BSF, BSR, LZCNT, POPCNT, TZCNT.

import { type CpuCore, type Handler } from "./core.js";
import { type Insn, OpKind } from "./insn.js";
import { FLAG_CF, FLAG_ZF, FLAGS_STATUS } from "./opcode-table.js";

const enum BitOp {
  Test,
  Set,
  Reset,
  Complement,
}

function bitOp(c: CpuCore, d: Insn, op: BitOp): void {
  const size = d.s0;
  const bits = size * 8;
  let off = c.rd1(d);
  const offHi = c.hi;
  let lo: number;
  let hi = 0;
  if (d.k0 === OpKind.Mem && d.k1 !== OpKind.Imm) {
    // Register bit offset into a memory bit string: signed, may address outside the operand.
    let byteOffLo: number;
    let byteOffHi: number;
    if (size === 8) {
      // (offHi:off) >> 6 << 3 (arithmetic) as a byte displacement.
      byteOffLo = ((off >>> 6) | (offHi << 26)) << 3;
      byteOffHi = ((offHi >> 6) << 3) | (((off >>> 6) | (offHi << 26)) >>> 29);
    } else {
      const so = size === 2 ? (off << 16) >> 16 : off | 0;
      const words = Math.floor(so / bits);
      byteOffLo = (words * size) | 0;
      byteOffHi = byteOffLo >> 31;
    }
    const s = (c.eaLo >>> 0) + (byteOffLo >>> 0);
    let eaLo = s | 0;
    let eaHi = (c.eaHi + byteOffHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0;
    if (d.asize === 4) eaHi = 0;
    else if (d.asize === 2) {
      eaLo &= 0xffff;
      eaHi = 0;
    }
    c.eaLo = eaLo;
    c.eaHi = eaHi;
  }
  off &= bits - 1;
  lo = c.rd0(d);
  if (size === 8) hi = c.hi;
  let cf: number;
  if (off < 32) {
    cf = (lo >>> off) & 1;
    if (op === BitOp.Set) lo |= 1 << off;
    else if (op === BitOp.Reset) lo &= ~(1 << off);
    else if (op === BitOp.Complement) lo ^= 1 << off;
  } else {
    const o = off - 32;
    cf = (hi >>> o) & 1;
    if (op === BitOp.Set) hi |= 1 << o;
    else if (op === BitOp.Reset) hi &= ~(1 << o);
    else if (op === BitOp.Complement) hi ^= 1 << o;
  }
  // CF = the bit; OF/SF/AF/PF undefined (cleared here), ZF unchanged.
  c.setStatus(FLAGS_STATUS & ~FLAG_ZF, cf ? FLAG_CF : 0);
  if (op !== BitOp.Test) c.wr0(d, lo, hi);
}

function clz32(v: number): number {
  return Math.clz32(v);
}

function ctz32(v: number): number {
  return v === 0 ? 32 : 31 - Math.clz32(v & -v);
}

function bsf(c: CpuCore, d: Insn): void {
  const lo = c.rd1(d);
  const hi = d.s1 === 8 ? c.hi : 0;
  const v = d.s1 === 2 ? lo & 0xffff : lo;
  if (v === 0 && hi === 0) {
    c.setStatus(FLAGS_STATUS, FLAG_ZF);
    return;
  }
  const idx = v !== 0 ? ctz32(v) : 32 + ctz32(hi);
  c.setGpr(d.r0, d.s0, idx, 0);
  c.setStatus(FLAGS_STATUS, 0);
}

function bsr(c: CpuCore, d: Insn): void {
  const lo = c.rd1(d);
  const hi = d.s1 === 8 ? c.hi : 0;
  const v = d.s1 === 2 ? lo & 0xffff : lo;
  if (v === 0 && hi === 0) {
    c.setStatus(FLAGS_STATUS, FLAG_ZF);
    return;
  }
  const idx = hi !== 0 ? 63 - clz32(hi) : 31 - clz32(v);
  c.setGpr(d.r0, d.s0, idx, 0);
  c.setStatus(FLAGS_STATUS, 0);
}

function popcount32(v: number): number {
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

function popcnt(c: CpuCore, d: Insn): void {
  const lo = c.rd1(d);
  const hi = d.s1 === 8 ? c.hi : 0;
  const v = d.s1 === 2 ? lo & 0xffff : lo;
  const n = popcount32(v) + popcount32(hi);
  c.setGpr(d.r0, d.s0, n, 0);
  c.setStatus(FLAGS_STATUS, n === 0 ? FLAG_ZF : 0);
}

function lzcnt(c: CpuCore, d: Insn): void {
  const size = d.s1;
  const lo = c.rd1(d);
  const hi = size === 8 ? c.hi : 0;
  let n: number;
  if (size === 8) n = hi !== 0 ? clz32(hi) : 32 + clz32(lo);
  else if (size === 4) n = clz32(lo);
  else n = clz32(lo & 0xffff) - 16;
  c.setGpr(d.r0, d.s0, n, 0);
  c.setStatus(FLAGS_STATUS, (n === size * 8 ? FLAG_CF : 0) | (n === 0 ? FLAG_ZF : 0));
}

function tzcnt(c: CpuCore, d: Insn): void {
  const size = d.s1;
  const lo = c.rd1(d);
  const hi = size === 8 ? c.hi : 0;
  let n: number;
  if (size === 8) n = lo !== 0 ? ctz32(lo) : 32 + ctz32(hi);
  else if (size === 4) n = ctz32(lo);
  else n = Math.min(ctz32(lo & 0xffff), 16);
  c.setGpr(d.r0, d.s0, n, 0);
  c.setStatus(FLAGS_STATUS, (n === size * 8 ? FLAG_CF : 0) | (n === 0 ? FLAG_ZF : 0));
}

export const bitHandlers: Record<string, Handler> = {
  bt: (c, d) => bitOp(c, d, BitOp.Test),
  bts: (c, d) => bitOp(c, d, BitOp.Set),
  btr: (c, d) => bitOp(c, d, BitOp.Reset),
  btc: (c, d) => bitOp(c, d, BitOp.Complement),
  bsf,
  bsr,
  popcnt,
  lzcnt,
  tzcnt,
};
