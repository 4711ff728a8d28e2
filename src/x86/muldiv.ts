// Owns: MUL, IMUL (one-, two- and three-operand forms), DIV and IDIV at every size, with #DE on division by
// zero or quotient overflow, and the 32x32->64 / 64x64->128 multiply and 128/64 divide helpers on 32-bit
// limbs (no BigInt: docs/decisions/0001).
// Must not: use floating-point shortcuts that lose precision above 2^53.
// Spec: Intel SDM Vol. 2A DIV, IDIV, IMUL; Vol. 2B MUL (operation, flags: CF=OF set when the upper half is
// significant; SF/ZF/AF/PF undefined).

import { type CpuCore, type Handler, Vec } from "./core.js";
import { LazyOp, mulhu32 } from "./flags.js";
import { type Insn, OpKind } from "./insn.js";

/** Result limbs of the last helper call: r[0] least significant. */
const r = new Float64Array(4);

/** Unsigned 32x32 -> 64: low in r[0], high in r[1] (unsigned doubles). */
function mulu32(a: number, b: number): void {
  a >>>= 0;
  b >>>= 0;
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const ll = al * bl;
  const lh = al * bh;
  const hl = ah * bl;
  const hh = ah * bh;
  const mid = Math.floor(ll / 65536) + (lh % 65536) + (hl % 65536);
  r[0] = ((mid % 65536) * 65536 + (ll % 65536)) >>> 0;
  r[1] = hh + Math.floor(lh / 65536) + Math.floor(hl / 65536) + Math.floor(mid / 65536);
}

/** Unsigned 64x64 -> 128 into r[0..3] (each a uint32 as a double). */
function mulu64(alo: number, ahi: number, blo: number, bhi: number): void {
  mulu32(alo, blo);
  const p0 = r[0]!;
  const c0 = r[1]!;
  mulu32(alo, bhi);
  const x0 = r[0]!;
  const x1 = r[1]!;
  mulu32(ahi, blo);
  const y0 = r[0]!;
  const y1 = r[1]!;
  mulu32(ahi, bhi);
  const z0 = r[0]!;
  const z1 = r[1]!;
  let t = c0 + x0 + y0;
  r[0] = p0;
  r[1] = t % 0x100000000;
  t = x1 + y1 + z0 + Math.floor(t / 0x100000000);
  r[2] = t % 0x100000000;
  r[3] = (z1 + Math.floor(t / 0x100000000)) % 0x100000000;
}

/** Two's-complement negation of the 128-bit value in r. */
function neg128(): void {
  let carry = 1;
  for (let i = 0; i < 4; i++) {
    const t = (~r[i]! >>> 0) + carry;
    r[i] = t % 0x100000000;
    carry = t >= 0x100000000 ? 1 : 0;
  }
}

function mul(c: CpuCore, d: Insn): void {
  const size = d.s0;
  const src = c.rd0(d);
  const sh = c.hi;
  let upper: number;
  if (size === 1) {
    const v = (c.rlo[0]! & 0xff) * src;
    c.setGpr(0, 2, v, 0);
    upper = v >> 8;
  } else if (size === 2) {
    const v = (c.rlo[0]! & 0xffff) * src;
    c.setGpr(0, 2, v, 0);
    c.setGpr(2, 2, v >>> 16, 0);
    upper = v >>> 16;
  } else if (size === 4) {
    mulu32(c.rlo[0]!, src);
    c.setGpr(0, 4, r[0]!, 0);
    c.setGpr(2, 4, r[1]!, 0);
    upper = r[1]!;
  } else {
    mulu64(c.rlo[0]!, c.rhi[0]!, src, sh);
    c.setGpr(0, 8, r[0]!, r[1]!);
    c.setGpr(2, 8, r[2]!, r[3]!);
    upper = r[2]! + r[3]!;
  }
  const f = upper !== 0 ? 1 : 0;
  c.setResultFlags(size, c.rlo[0]!, c.rhi[0]!, f, f, 0);
}

/** Signed product of a and b at `size` into r (as a 128-bit two's-complement value for size 8). */
function mulsSized(a: number, ah: number, b: number, bh: number, size: number): void {
  if (size < 4) {
    const sa = size === 1 ? (a << 24) >> 24 : (a << 16) >> 16;
    const sb = size === 1 ? (b << 24) >> 24 : (b << 16) >> 16;
    const v = sa * sb;
    r[0] = v >>> 0;
    r[1] = v < 0 ? 0xffffffff : 0;
    return;
  }
  if (size === 4) {
    const neg = (a | 0) < 0 !== (b | 0) < 0;
    mulu32(Math.abs(a | 0), Math.abs(b | 0));
    r[2] = 0;
    r[3] = 0;
    if (neg) {
      neg128();
    }
    return;
  }
  const na = ah < 0;
  const nb = bh < 0;
  let alo = a;
  let ahi = ah;
  let blo = b;
  let bhi = bh;
  if (na) {
    alo = -a | 0;
    ahi = (~ah + (alo === 0 ? 1 : 0)) | 0;
  }
  if (nb) {
    blo = -b | 0;
    bhi = (~bh + (blo === 0 ? 1 : 0)) | 0;
  }
  mulu64(alo, ahi, blo, bhi);
  if (na !== nb) neg128();
}

function imul1(c: CpuCore, d: Insn): void {
  const size = d.s0;
  const src = c.rd0(d);
  const sh = c.hi;
  const acc = c.getGpr(0, size);
  const acch = c.hi;
  mulsSized(acc, acch, src, sh, size);
  let of: number;
  if (size === 1) {
    const v = r[0]! & 0xffff;
    c.setGpr(0, 2, v, 0);
    of = (((v << 24) >> 24) & 0xffff) !== v ? 1 : 0;
  } else if (size === 2) {
    const v = r[0]! | 0;
    c.setGpr(0, 2, v, 0);
    c.setGpr(2, 2, v >>> 16, 0);
    of = (v << 16) >> 16 !== v ? 1 : 0;
  } else if (size === 4) {
    c.setGpr(0, 4, r[0]!, 0);
    c.setGpr(2, 4, r[1]!, 0);
    of = (r[1]! | 0) !== (r[0]! | 0) >> 31 ? 1 : 0;
  } else {
    c.setGpr(0, 8, r[0]!, r[1]!);
    c.setGpr(2, 8, r[2]!, r[3]!);
    const s = (r[1]! | 0) >> 31;
    of = (r[2]! | 0) !== s || (r[3]! | 0) !== s ? 1 : 0;
  }
  c.setResultFlags(size, c.rlo[0]!, c.rhi[0]!, of, of, 0);
}

/** IMUL r, r/m and IMUL r, r/m, imm: truncated product; CF=OF when it does not fit. */
function imul(c: CpuCore, d: Insn): void {
  const size = d.s0;
  let a: number;
  let ah: number;
  let b: number;
  let bh: number;
  if (d.k1 === OpKind.Reg && (d.k2 === OpKind.None || d.k2 === OpKind.Imm) && size >= 4) {
    // Register forms (IMUL r, r and IMUL r, r, imm) read the register file directly.
    if (d.k2 === OpKind.None) {
      a = c.rlo[d.r0]!;
      ah = c.rhi[d.r0]!;
      b = c.rlo[d.r1]!;
      bh = c.rhi[d.r1]!;
    } else {
      a = c.rlo[d.r1]!;
      ah = c.rhi[d.r1]!;
      b = d.immLo;
      bh = d.immHi;
    }
  } else if (d.k2 !== 0) {
    a = c.rd1(d);
    ah = c.hi;
    b = c.rd2(d);
    bh = c.hi;
  } else {
    a = c.rd0(d);
    ah = c.hi;
    b = c.rd1(d);
    bh = c.hi;
  }
  if (size === 4) {
    const lo = Math.imul(a, b);
    const of = (a | 0) * (b | 0) !== lo ? 1 : 0; // exact test: a double product near 2^31 is exact
    c.setGpr(d.r0, 4, lo, 0);
    c.setResultFlags(4, lo, 0, of, of, 0);
    return;
  }
  if (size === 8) {
    // Low 64 bits directly; CF/OF (does the signed product fit?) only if someone reads them.
    const lo = Math.imul(a, b);
    const hi = (mulhu32(a, b) + Math.imul(a, bh) + Math.imul(ah, b)) | 0;
    c.setGpr(d.r0, 8, lo, hi);
    c.setLazy64(LazyOp.Imul64, a, ah, b, bh, lo, hi, 0);
    return;
  }
  mulsSized(a, ah, b, bh, size);
  let of: number;
  let lo: number;
  let hi = 0;
  if (size === 2) {
    const v = r[0]! | 0;
    lo = v & 0xffff;
    of = (v << 16) >> 16 !== v ? 1 : 0;
  } else if (size === 4) {
    lo = r[0]! | 0;
    of = (r[1]! | 0) !== lo >> 31 ? 1 : 0;
  } else {
    lo = r[0]! | 0;
    hi = r[1]! | 0;
    const s = hi >> 31;
    of = (r[2]! | 0) !== s || (r[3]! | 0) !== s ? 1 : 0;
  }
  c.setGpr(d.r0, size, lo, hi);
  c.setResultFlags(size, lo, hi, of, of, 0);
}

/**
 * Unsigned divide of the 2*size dividend (n3..n0 limbs, n3:n2 only for size 8) by a divisor; #DE when the
 * quotient overflows. Quotient in q (lo, hi), remainder in rem (lo, hi).
 */
let qLo = 0;
let qHi = 0;
let remLo = 0;
let remHi = 0;

function divu64by32(c: CpuCore, hi: number, lo: number, dv: number): void {
  hi >>>= 0;
  lo >>>= 0;
  dv >>>= 0;
  if (dv === 0 || hi >= dv) c.fault(Vec.DE);
  // Long division in 16-bit chunks: every intermediate stays below 2^48.
  let rem = hi;
  let q = 0;
  for (let s = 16; s >= 0; s -= 16) {
    rem = rem * 65536 + ((lo >>> s) & 0xffff);
    const qd = Math.floor(rem / dv);
    rem -= qd * dv;
    q = q * 65536 + qd;
  }
  qLo = q >>> 0;
  qHi = 0;
  remLo = rem >>> 0;
  remHi = 0;
}

/** 128 / 64 unsigned (n = n3:n2:n1:n0, divisor dh:dl). */
function divu128by64(
  c: CpuCore,
  n3: number,
  n2: number,
  n1: number,
  n0: number,
  dl: number,
  dh: number,
): void {
  n3 >>>= 0;
  n2 >>>= 0;
  dl >>>= 0;
  dh >>>= 0;
  if ((dl | dh) === 0) c.fault(Vec.DE);
  // The high 64 bits must be below the divisor, else the quotient does not fit in 64 bits.
  if (n3 > dh || (n3 === dh && n2 >= dl)) c.fault(Vec.DE);
  let rh = n3;
  let rl = n2;
  let qh = 0;
  let ql = 0;
  let src = n1 >>> 0;
  let srcLo = n0 >>> 0;
  for (let i = 0; i < 64; i++) {
    const top = rh >>> 31;
    rh = ((rh << 1) | (rl >>> 31)) >>> 0;
    rl = ((rl << 1) | (src >>> 31)) >>> 0;
    src = ((src << 1) | (srcLo >>> 31)) >>> 0;
    srcLo = (srcLo << 1) >>> 0;
    qh = ((qh << 1) | (ql >>> 31)) >>> 0;
    ql = (ql << 1) >>> 0;
    if (top || rh > dh || (rh === dh && rl >= dl)) {
      const t = rl - dl;
      rl = t >>> 0;
      rh = (rh - dh - (t < 0 ? 1 : 0)) >>> 0;
      ql = (ql | 1) >>> 0;
    }
  }
  qLo = ql | 0;
  qHi = qh | 0;
  remLo = rl | 0;
  remHi = rh | 0;
}

function div(c: CpuCore, d: Insn): void {
  const size = d.s0;
  const dv = c.rd0(d);
  const dvh = c.hi;
  if (size === 1) {
    const n = c.rlo[0]! & 0xffff;
    if (dv === 0) c.fault(Vec.DE);
    const q = Math.floor(n / dv);
    if (q > 0xff) c.fault(Vec.DE);
    c.setGpr(0, 2, ((n % dv) << 8) | q, 0);
  } else if (size === 2) {
    const n = (c.rlo[2]! & 0xffff) * 65536 + (c.rlo[0]! & 0xffff);
    if (dv === 0) c.fault(Vec.DE);
    const q = Math.floor(n / dv);
    if (q > 0xffff) c.fault(Vec.DE);
    c.setGpr(0, 2, q, 0);
    c.setGpr(2, 2, n % dv, 0);
  } else if (size === 4) {
    divu64by32(c, c.rlo[2]!, c.rlo[0]!, dv);
    c.setGpr(0, 4, qLo, 0);
    c.setGpr(2, 4, remLo, 0);
  } else {
    divu128by64(c, c.rhi[2]!, c.rlo[2]!, c.rhi[0]!, c.rlo[0]!, dv, dvh);
    c.setGpr(0, 8, qLo, qHi);
    c.setGpr(2, 8, remLo, remHi);
  }
  // Flags are undefined after DIV; leave them as computed by nothing (unchanged).
}

function idiv(c: CpuCore, d: Insn): void {
  const size = d.s0;
  const dv = c.rd0(d);
  const dvh = c.hi;
  if (size === 1 || size === 2) {
    const n = size === 1 ? (c.rlo[0]! << 16) >> 16 : ((c.rlo[2]! & 0xffff) << 16) | (c.rlo[0]! & 0xffff);
    const sd = size === 1 ? (dv << 24) >> 24 : (dv << 16) >> 16;
    if (sd === 0) c.fault(Vec.DE);
    const q = Math.trunc(n / sd);
    const rem = n - q * sd;
    const lim = size === 1 ? 0x80 : 0x8000;
    if (q >= lim || q < -lim) c.fault(Vec.DE);
    if (size === 1) c.setGpr(0, 2, ((rem & 0xff) << 8) | (q & 0xff), 0);
    else {
      c.setGpr(0, 2, q, 0);
      c.setGpr(2, 2, rem, 0);
    }
    return;
  }
  if (size === 4) {
    let hi = c.rlo[2]!;
    let lo = c.rlo[0]!;
    const nNeg = hi < 0;
    if (nNeg) {
      lo = -lo | 0;
      hi = (~hi + (lo === 0 ? 1 : 0)) | 0;
    }
    const dNeg = (dv | 0) < 0;
    const ad = Math.abs(dv | 0);
    if (ad === 0) c.fault(Vec.DE);
    if (hi >>> 0 >= ad) c.fault(Vec.DE);
    divu64by32(c, hi, lo, ad);
    const qNeg = nNeg !== dNeg;
    const qa = qLo >>> 0;
    if (qNeg ? qa > 0x80000000 : qa > 0x7fffffff) c.fault(Vec.DE);
    c.setGpr(0, 4, qNeg ? -qa : qa, 0);
    c.setGpr(2, 4, nNeg ? -(remLo >>> 0) : remLo, 0);
    return;
  }
  // 64-bit: negate the 128-bit dividend and the divisor to magnitudes.
  r[0] = c.rlo[0]! >>> 0;
  r[1] = c.rhi[0]! >>> 0;
  r[2] = c.rlo[2]! >>> 0;
  r[3] = c.rhi[2]! >>> 0;
  const nNeg = c.rhi[2]! < 0;
  if (nNeg) neg128();
  const dNeg = dvh < 0;
  let dl = dv;
  let dh = dvh;
  if (dNeg) {
    dl = -dv | 0;
    dh = (~dvh + (dl === 0 ? 1 : 0)) | 0;
  }
  divu128by64(c, r[3]!, r[2]!, r[1]!, r[0]!, dl, dh);
  const qNeg = nNeg !== dNeg;
  // Magnitude limits: 2^63 - 1 for positive, 2^63 for negative quotients.
  const qh = qHi >>> 0;
  if (qh > 0x80000000 || (qh === 0x80000000 && (!qNeg || qLo !== 0))) c.fault(Vec.DE);
  let ql = qLo;
  let qhi = qHi;
  if (qNeg) {
    ql = -qLo | 0;
    qhi = (~qHi + (ql === 0 ? 1 : 0)) | 0;
  }
  let rl = remLo;
  let rh = remHi;
  if (nNeg) {
    rl = -remLo | 0;
    rh = (~remHi + (rl === 0 ? 1 : 0)) | 0;
  }
  c.setGpr(0, 8, ql, qhi);
  c.setGpr(2, 8, rl, rh);
}

export const muldivHandlers: Record<string, Handler> = { mul, imul1, imul, div, idiv };
