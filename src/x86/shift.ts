// Owns: shift and rotate handlers: SHL/SAL, SHR, SAR, ROL, ROR, RCL, RCR (count 1, CL, imm8; masked to 5
// or 6 bits) and the double-precision shifts SHLD/SHRD; plus the 64-bit shift helpers on (lo, hi) pairs.
// Must not: change flags when the masked count is 0 (architectural rule).
// Spec: Intel SDM Vol. 2B SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR, SHLD, SHRD (operation and flags, including the
// count-of-1 OF definition).

import { usize } from "./alu.js";
import type { CpuCore, Handler } from "./core.js";
import { type Insn, OpKind } from "./insn.js";
import { FLAG_CF, FLAG_OF } from "./opcode-table.js";

/** High half of the last 64-bit helper result. */
export let hi64 = 0;

export function shl64(lo: number, hi: number, n: number): number {
  if (n === 0) {
    hi64 = hi;
    return lo;
  }
  if (n < 32) {
    hi64 = (hi << n) | (lo >>> (32 - n));
    return lo << n;
  }
  hi64 = n < 64 ? lo << (n - 32) : 0;
  return 0;
}

export function shr64(lo: number, hi: number, n: number): number {
  if (n === 0) {
    hi64 = hi;
    return lo;
  }
  if (n < 32) {
    hi64 = hi >>> n;
    return (lo >>> n) | (hi << (32 - n));
  }
  hi64 = 0;
  return n < 64 ? hi >>> (n - 32) : 0;
}

export function sar64(lo: number, hi: number, n: number): number {
  if (n === 0) {
    hi64 = hi;
    return lo;
  }
  if (n < 32) {
    hi64 = hi >> n;
    return (lo >>> n) | (hi << (32 - n));
  }
  hi64 = hi >> 31;
  return hi >> (n - 32);
}

/** Bit i (0..63) of a (lo, hi) pair. */
function bit64(lo: number, hi: number, i: number): number {
  return i < 32 ? (lo >>> i) & 1 : (hi >>> (i - 32)) & 1;
}

function count(c: CpuCore, d: Insn): number {
  return c.rd1(d) & (d.s0 === 8 ? 63 : 31);
}

/**
 * A masked count of 0 changes no flags and no value, but the destination is still an operand: memory is
 * read with write intent (faults are raised) and a 32-bit register is written, zero-extending it (SDM
 * Vol. 1 3.4.1.1; observed on hardware).
 */
function countZero(c: CpuCore, d: Insn): void {
  const a = c.rd0(d);
  if (d.k0 === OpKind.Reg && d.s0 === 4) c.setGpr(d.r0, 4, a, 0);
}

const enum Sh {
  Shl,
  Shr,
  Sar,
}

function shift(c: CpuCore, d: Insn, kind: Sh): void {
  const size = d.s0;
  const n = count(c, d);
  if (n === 0) {
    countZero(c, d);
    return;
  }
  const a = c.rd0(d);
  const ah = c.hi;
  if (size === 8) {
    let rl: number;
    let rh: number;
    let cf: number;
    let of: number;
    if (kind === Sh.Shl) {
      cf = bit64(a, ah, 64 - n);
      rl = shl64(a, ah, n);
      rh = hi64;
      of = (rh >>> 31) ^ cf;
    } else if (kind === Sh.Shr) {
      cf = bit64(a, ah, n - 1);
      rl = shr64(a, ah, n);
      rh = hi64;
      of = ah >>> 31;
    } else {
      cf = bit64(a, ah, n - 1);
      rl = sar64(a, ah, n);
      rh = hi64;
      of = 0;
    }
    c.wr0(d, rl, rh);
    c.setResultFlags(8, rl, rh, cf, of, 0);
    return;
  }
  const bits = size * 8;
  const ua = usize(a, size);
  let r: number;
  let cf: number;
  let of: number;
  if (kind === Sh.Shl) {
    cf = n <= bits ? (ua >>> (bits - n)) & 1 : 0;
    r = usize(n < 32 ? ua << n : 0, size);
    of = ((r >>> (bits - 1)) & 1) ^ cf;
  } else if (kind === Sh.Shr) {
    cf = (ua >>> (n - 1)) & 1;
    r = ua >>> n;
    of = (ua >>> (bits - 1)) & 1;
  } else {
    const sa = (ua << (32 - bits)) >> (32 - bits);
    cf = (sa >> Math.min(n - 1, 31)) & 1;
    r = usize(sa >> Math.min(n, 31), size);
    of = 0;
  }
  c.wr0(d, r, 0);
  c.setResultFlags(size, r, 0, cf, of, 0);
}

function rotate(c: CpuCore, d: Insn, left: boolean, throughCarry: boolean): void {
  const size = d.s0;
  const bits = size * 8;
  let n = count(c, d);
  if (n === 0) {
    countZero(c, d);
    return;
  }
  let lo = c.rd0(d);
  let hi = size === 8 ? c.hi : 0;
  if (size < 8) lo = usize(lo, size);
  let cf = c.getCF();
  if (throughCarry) {
    n %= bits + 1;
    for (let i = 0; i < n; i++) {
      if (left) {
        const out = size === 8 ? hi >>> 31 : (lo >>> (bits - 1)) & 1;
        if (size === 8) {
          hi = (hi << 1) | (lo >>> 31);
          lo = (lo << 1) | cf;
        } else lo = usize((lo << 1) | cf, size);
        cf = out;
      } else {
        const out = lo & 1;
        if (size === 8) {
          lo = (lo >>> 1) | (hi << 31);
          hi = (hi >>> 1) | (cf << 31);
        } else lo = (lo >>> 1) | (cf << (bits - 1));
        if (size === 4) lo |= 0;
        cf = out;
      }
    }
  } else {
    const m = n % bits;
    if (m !== 0) {
      if (size === 8) {
        const l1 = left ? shl64(lo, hi, m) : shr64(lo, hi, m);
        const h1 = hi64;
        const l2 = left ? shr64(lo, hi, 64 - m) : shl64(lo, hi, 64 - m);
        const h2 = hi64;
        lo = l1 | l2;
        hi = h1 | h2;
      } else if (left) lo = usize((lo << m) | (lo >>> (bits - m)), size);
      else lo = usize((lo >>> m) | (lo << (bits - m)), size);
    }
    if (left) cf = lo & 1;
    else cf = size === 8 ? hi >>> 31 : (lo >>> (bits - 1)) & 1;
  }
  const msb = size === 8 ? hi >>> 31 : (lo >>> (bits - 1)) & 1;
  const msb2 = size === 8 ? (hi >>> 30) & 1 : (lo >>> (bits - 2)) & 1;
  // OF (defined for count 1): left rotates MSB xor CF; right rotates the two most significant bits' xor.
  let of: number;
  if (left) of = msb ^ cf;
  else of = msb ^ msb2;
  c.wr0(d, lo, hi);
  c.setStatus(FLAG_CF | FLAG_OF, (cf ? FLAG_CF : 0) | (of ? FLAG_OF : 0));
}

function shiftDouble(c: CpuCore, d: Insn, left: boolean): void {
  const size = d.s0;
  const n = (d.k2 === 4 ? d.immLo : c.rlo[1]!) & (size === 8 ? 63 : 31);
  if (n === 0) {
    countZero(c, d);
    return;
  }
  const a = c.rd0(d);
  const ah = c.hi;
  const b = c.rd1(d);
  const bh = c.hi;
  let rl: number;
  let rh = 0;
  let cf: number;
  if (size === 8) {
    if (left) {
      cf = bit64(a, ah, 64 - n);
      const x = shl64(a, ah, n);
      const xh = hi64;
      const y = shr64(b, bh, 64 - n);
      rl = x | y;
      rh = xh | hi64;
    } else {
      cf = bit64(a, ah, n - 1);
      const x = shr64(a, ah, n);
      const xh = hi64;
      const y = shl64(b, bh, 64 - n);
      rl = x | y;
      rh = xh | hi64;
    }
    c.wr0(d, rl, rh);
    c.setResultFlags(8, rl, rh, cf, ((rh ^ ah) >>> 31) & 1, 0);
    return;
  }
  const bits = size * 8;
  const ua = usize(a, size);
  const ub = usize(b, size);
  if (size === 2) {
    // 16-bit: the 32-bit concatenation (and, for counts above 16, the destination again) as real CPUs do.
    const x = left ? ((ua << 16) | ub) >>> 0 : ((ub << 16) | ua) >>> 0;
    const wide = left ? x * 65536 + ua : ua * 0x100000000 + x;
    if (left) {
      const shifted = (wide * Math.pow(2, n)) % Math.pow(2, 48);
      rl = Math.floor(shifted / Math.pow(2, 32)) & 0xffff;
      cf = Math.floor(wide / Math.pow(2, 48 - n)) & 1;
    } else {
      rl = Math.floor(wide / Math.pow(2, n)) & 0xffff;
      cf = Math.floor(wide / Math.pow(2, n - 1)) & 1;
    }
  } else if (left) {
    rl = ((ua << n) | (ub >>> (32 - n))) >>> 0;
    cf = (ua >>> (32 - n)) & 1;
  } else {
    rl = ((ua >>> n) | (ub << (32 - n))) >>> 0;
    cf = (ua >>> (n - 1)) & 1;
  }
  rl = usize(rl, size);
  c.wr0(d, rl, 0);
  c.setResultFlags(size, rl, 0, cf, ((rl ^ ua) >>> (bits - 1)) & 1, 0);
}

export const shiftHandlers: Record<string, Handler> = {
  shl: (c, d) => shift(c, d, Sh.Shl),
  shr: (c, d) => shift(c, d, Sh.Shr),
  sar: (c, d) => shift(c, d, Sh.Sar),
  rol: (c, d) => rotate(c, d, true, false),
  ror: (c, d) => rotate(c, d, false, false),
  rcl: (c, d) => rotate(c, d, true, true),
  rcr: (c, d) => rotate(c, d, false, true),
  shld: (c, d) => shiftDouble(c, d, true),
  shrd: (c, d) => shiftDouble(c, d, false),
};
