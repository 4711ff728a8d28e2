// Owns: IEEE 754 binary32/binary64 arithmetic as SSE performs it, on raw bit patterns, with MXCSR semantics:
// the four rounding modes, DAZ/FTZ, NaN propagation (first-source NaN wins, SNaN quieted, default NaN is the
// negative "real indefinite"), and the six exception flags (IE DE ZE OE UE PE) computed exactly. JS doubles
// only round to nearest, so every operation determines the sign of its exact rounding error with error-free
// transformations (TwoSum; Dekker TwoProduct on operands scaled into [1, 2) so no intermediate under- or
// overflows) and steps one ulp in the directed modes. Float32 results are computed in binary64 (exact for *,
// correctly rounded for + - / sqrt, p >= 2q+2) and then rounded once more with an explicit tie correction.
// Tininess is detected after rounding (SDM Vol. 1 4.9.1.5) by the rounded result's magnitude.
// Must not: touch CPU state — callers pass the MXCSR value in and read accumulated flags from `sf.flags`.
// Spec: IEEE 754-2008 4.3 (rounding), 6.2 (NaNs), 7 (exceptions); Intel SDM Vol. 1 4.8.3 (NaN rules,
// Table 4-7), 4.9 (exception conditions), 10.2.3 (MXCSR: RC, DAZ, FTZ), 11.5.2 (SIMD FP exception conditions).

const SC = new DataView(new ArrayBuffer(8));
const TWO32 = 0x1_0000_0000;
const SPLIT = 134217729; // 2^27 + 1

export const F_IE = 0x01;
export const F_DE = 0x02;
export const F_ZE = 0x04;
export const F_OE = 0x08;
export const F_UE = 0x10;
export const F_PE = 0x20;
const UM = 0x800; // MXCSR underflow mask bit
const MIN_NORMAL32 = 1.1754943508222875e-38;
const MIN_NORMAL64 = 2.2250738585072014e-308;
const OM = 0x400; // MXCSR overflow mask bit
const DAZ = 0x40;
const FTZ = 0x8000;

export const QNAN32 = 0xffc00000 | 0;
export const QNAN64_HI = 0xfff80000 | 0;

/** Accumulated flags and the MXCSR in force; `hi` returns the high half of 64-bit bit patterns. */
export const sf = { flags: 0, mxcsr: 0x1f80, hi: 0 };

const mode = (): number => (sf.mxcsr >> 13) & 3; // 0 RN, 1 RD, 2 RU, 3 RZ

// ---------------------------------------------------------------- bit helpers

export function f32(bits: number): number {
  SC.setInt32(0, bits, true);
  return SC.getFloat32(0, true);
}
export function bits32(x: number): number {
  SC.setFloat32(0, x, true);
  return SC.getInt32(0, true);
}
export function f64(lo: number, hi: number): number {
  SC.setInt32(0, lo, true);
  SC.setInt32(4, hi, true);
  return SC.getFloat64(0, true);
}
/** Low half of x's bits; high half in sf.hi. */
export function bits64(x: number): number {
  SC.setFloat64(0, x, true);
  sf.hi = SC.getInt32(4, true);
  return SC.getInt32(0, true);
}
export const isNaN32 = (b: number): boolean => (b & 0x7fffffff) > 0x7f800000;
export const isSNaN32 = (b: number): boolean => isNaN32(b) && (b & 0x400000) === 0;
export const isNaN64 = (lo: number, hi: number): boolean =>
  (hi & 0x7fffffff) > 0x7ff00000 || ((hi & 0x7fffffff) === 0x7ff00000 && lo !== 0);
export const isSNaN64 = (lo: number, hi: number): boolean => isNaN64(lo, hi) && (hi & 0x80000) === 0;
const isDen32 = (b: number): boolean => (b & 0x7f800000) === 0 && (b & 0x7fffff) !== 0;
const isDen64 = (lo: number, hi: number): boolean => (hi & 0x7ff00000) === 0 && ((hi & 0xfffff) | lo) !== 0;

/** A binary32 source after DAZ (denormal -> signed zero) or with DE raised. */
export function in32(b: number, de = true): number {
  if (!isDen32(b)) return f32(b);
  if (sf.mxcsr & DAZ) return b < 0 ? -0 : 0;
  if (de) sf.flags |= F_DE;
  return f32(b);
}
export function in64(lo: number, hi: number, de = true): number {
  if (!isDen64(lo, hi)) return f64(lo, hi);
  if (sf.mxcsr & DAZ) return hi < 0 ? -0 : 0;
  if (de) sf.flags |= F_DE;
  return f64(lo, hi);
}

function nextUp32(r: number): number {
  if (r === Infinity || Number.isNaN(r)) return r;
  if (r === 0) return f32(1);
  const b = bits32(r);
  return f32(r > 0 ? b + 1 : b - 1);
}
function nextDown32(r: number): number {
  return -nextUp32(-r);
}
function nextUp64(r: number): number {
  if (r === Infinity || Number.isNaN(r)) return r;
  if (r === 0) return Number.MIN_VALUE;
  let lo = bits64(r);
  let hi = sf.hi;
  if (r > 0) {
    lo = (lo + 1) | 0;
    if (lo === 0) hi++;
  } else {
    if (lo === 0) hi--;
    lo = (lo - 1) | 0;
  }
  return f64(lo, hi);
}
function nextDown64(r: number): number {
  return -nextUp64(-r);
}

// ---------------------------------------------------------------- error-free transformations

let tpLo = 0;
/** Dekker's TwoProduct for |a|, |b| in [1, 4): returns fl(a*b), exact error in tpLo. */
function twoProd(a: number, b: number): number {
  const p = a * b;
  let t = SPLIT * a;
  const ah = t - (t - a);
  const al = a - ah;
  t = SPLIT * b;
  const bh = t - (t - b);
  const bl = b - bh;
  tpLo = al * bl - (p - ah * bh - al * bh - ah * bl);
  return p;
}

/** x = m * 2^e with |m| in [1, 2); returns m, e in `scExp`. x finite, nonzero. */
let scExp = 0;
function frexp(x: number): number {
  let e = 0;
  let m = Math.abs(x);
  if (m < 2.2250738585072014e-308) {
    m *= 18446744073709551616; // 2^64
    e = -64;
  }
  SC.setFloat64(0, m, true);
  const hi = SC.getInt32(4, true);
  const ex = ((hi >>> 20) & 0x7ff) - 1023;
  SC.setInt32(4, (hi & 0x800fffff) | (1023 << 20), true);
  scExp = e + ex;
  return SC.getFloat64(0, true);
}
/** x * 2^k for any k (scales in steps so intermediate powers stay representable). */
function ldexp(x: number, k: number): number {
  while (k > 1000) {
    x *= 2 ** 1000;
    k -= 1000;
  }
  while (k < -1000) {
    x *= 2 ** -1000;
    k += 1000;
  }
  return x * 2 ** k;
}

/** sign(a*b - p) for the RN product p (finite, a, b finite nonzero). */
function mulErrSign(a: number, b: number, p: number): number {
  if (p === 0) return Math.sign(a) * Math.sign(b);
  const ma = frexp(a);
  const ea = scExp;
  const mb = frexp(b);
  const eb = scExp;
  const ps = ldexp(Math.abs(p), -(ea + eb));
  const h = twoProd(ma, mb);
  return Math.sign(p) * Math.sign(h - ps + tpLo);
}
/** sign(a/b - q) for the RN quotient q (finite; a, b finite nonzero). */
function divErrSign(a: number, b: number, q: number): number {
  if (q === 0) return Math.sign(a) * Math.sign(b);
  const ma = frexp(a);
  const ea = scExp;
  const mb = frexp(b);
  const eb = scExp;
  const qs = ldexp(Math.abs(q), eb - ea);
  const h = twoProd(qs, mb);
  return Math.sign(q) * Math.sign(ma - h - tpLo);
}
/** sign(sqrt(a) - r) for the RN root r of a > 0. */
function sqrtErrSign(a: number, r: number): number {
  let m = frexp(a);
  let e = scExp;
  if (e & 1) {
    m *= 2;
    e -= 1;
  }
  const rs = ldexp(r, -(e / 2));
  const h = twoProd(rs, rs);
  return Math.sign(m - h - tpLo);
}

// ---------------------------------------------------------------- rounding to the destination format

/**
 * Rounds T = s + e (s a double with |e| below half an ulp of s; only the sign of e is used: it decides
 * binary32 ties and exact-vs-inexact when s itself is representable) to binary32 under MXCSR, raising OE/UE/PE. Returns the result's bits.
 */
export function round32(s: number, e: number): number {
  const m = mode();
  let r = Math.fround(s);
  if (!Number.isFinite(r) && Number.isFinite(s)) {
    const f = frexp(s);
    return overflow32(s > 0, m, e !== 0 || Math.fround(f) !== f);
  }
  const diff = s - r;
  let sgn = diff !== 0 ? Math.sign(diff) : Math.sign(e);
  if (m === 0 && diff !== 0 && e !== 0 && Math.sign(e) === Math.sign(diff)) {
    const other = diff > 0 ? nextUp32(r) : nextDown32(r);
    if ((r + other) * 0.5 === s) {
      r = other;
      sgn = -sgn;
    }
  }
  if (sgn !== 0) {
    if (m === 1 && sgn < 0) r = nextDown32(r);
    else if (m === 2 && sgn > 0) r = nextUp32(r);
    else if (m === 3 && ((sgn < 0 && r > 0) || (sgn > 0 && r < 0))) r = sgn < 0 ? nextDown32(r) : nextUp32(r);
  }
  if (!Number.isFinite(r)) {
    sf.flags |= F_OE | F_PE;
    return bits32(r);
  }
  const tiny = Math.abs(r) < MIN_NORMAL32 && !(sf.mxcsr & UM);
  return finishTiny(r, sgn, MIN_NORMAL32, true, tiny && (e !== 0 || Math.fround(frexp(s)) !== frexp(s)));
}

/**
 * Overflow: a masked one delivers infinity or the largest finite value, which is always inexact. An unmasked
 * one leaves the destination alone and reports PE only when the significand itself had to be rounded (the
 * result with an unbounded exponent is inexact), as hardware does (SDM Vol. 1 11.5.2.4, 4.9.1.4).
 */
function overflowFlags(inexact: boolean): void {
  sf.flags |= F_OE | (inexact || sf.mxcsr & OM ? F_PE : 0);
}

function overflow32(pos: boolean, m: number, inexact: boolean): number {
  overflowFlags(inexact);
  const max = 3.4028234663852886e38;
  const toInf = m === 0 || (m === 2 && pos) || (m === 1 && !pos);
  return bits32(pos ? (toInf ? Infinity : max) : toInf ? -Infinity : -max);
}

/**
 * Underflow flags. A masked underflow delivers the denormal (or, with FTZ, zero) result: PE when that is
 * inexact. An unmasked one leaves the destination alone and reports PE only when the result rounded to the
 * full significand with an unbounded exponent is inexact (`unboundedInexact`), as hardware does (SDM Vol. 1
 * 11.5.2.5, 4.9.1.5; the underflow counterpart of overflowFlags).
 */
function finishTiny(
  r: number,
  sgn: number,
  minNormal: number,
  is32: boolean,
  unboundedInexact: boolean,
): number {
  const tiny = (r !== 0 || sgn !== 0) && Math.abs(r) < minNormal;
  if (tiny) {
    if (!(sf.mxcsr & UM)) sf.flags |= F_UE | (unboundedInexact ? F_PE : 0);
    else if (sf.mxcsr & FTZ) {
      sf.flags |= F_UE | F_PE;
      r = r < 0 || Object.is(r, -0) ? -0 : 0;
    } else if (sgn !== 0) sf.flags |= F_UE | F_PE;
  } else if (sgn !== 0) sf.flags |= F_PE;
  return is32 ? bits32(r) : bits64(r);
}

/**
 * Rounds T = s + e to binary64; s = RN(T) already. Returns the low bits, high in sf.hi. `unboundedInexact`:
 * whether T needs more than 53 significant bits (for an unmasked underflow; sums are exact when tiny).
 */
export function round64(
  s: number,
  sgn: number,
  overflowed: boolean,
  inexact = true,
  unboundedInexact = sgn !== 0,
): number {
  const m = mode();
  if (overflowed) {
    overflowFlags(inexact);
    const pos = s > 0;
    const toInf = m === 0 || (m === 2 && pos) || (m === 1 && !pos);
    return bits64(pos ? (toInf ? Infinity : Number.MAX_VALUE) : toInf ? -Infinity : -Number.MAX_VALUE);
  }
  let r = s;
  if (sgn !== 0) {
    if (m === 1 && sgn < 0) r = nextDown64(r);
    else if (m === 2 && sgn > 0) r = nextUp64(r);
    else if (m === 3 && ((sgn < 0 && r > 0) || (sgn > 0 && r < 0))) r = sgn < 0 ? nextDown64(r) : nextUp64(r);
  }
  if (!Number.isFinite(r)) {
    sf.flags |= F_OE | F_PE;
    return bits64(r);
  }
  return finishTiny(r, sgn, MIN_NORMAL64, false, unboundedInexact);
}

// ---------------------------------------------------------------- arithmetic

export const enum FOp {
  Add = 0,
  Sub = 1,
  Mul = 2,
  Div = 3,
  Sqrt = 4,
  Min = 5,
  Max = 6,
}

/** Signed zero of an exact-zero sum: same-signed zeros keep their sign, else -0 only in round-down (IEEE 754 6.3). */
function zeroSum(a: number, b: number): number {
  if (a === 0 && Object.is(a, b)) return a; // x + x keeps the sign of zero
  return mode() === 1 ? -0 : 0;
}

/** One binary32 lane: returns the result bits. */
export function op32(op: FOp, ab: number, bb: number): number {
  if (op === FOp.Min || op === FOp.Max) {
    if (isNaN32(ab) || isNaN32(bb)) {
      sf.flags |= F_IE;
      // The second operand is returned as is, except that DAZ still zeroes a denormal one (no DE).
      return isDen32(bb) && sf.mxcsr & DAZ ? bb & 0x80000000 : bb;
    }
    const a = in32(ab);
    const b = in32(bb);
    const pick = op === FOp.Min ? a < b : a > b;
    return pick ? bits32(a) : bits32(b);
  }
  const unary = op === FOp.Sqrt;
  if (isNaN32(bb) || (!unary && isNaN32(ab))) {
    if (isSNaN32(bb) || (!unary && isSNaN32(ab))) sf.flags |= F_IE;
    return !unary && isNaN32(ab) ? ab | 0x400000 : bb | 0x400000;
  }
  if (unary && bb < 0 && (bb & 0x7fffffff) !== 0 && !(isDen32(bb) && sf.mxcsr & DAZ)) {
    // Invalid (square root of a negative number) takes precedence over the denormal-operand flag.
    sf.flags |= F_IE;
    return QNAN32;
  }
  const before = sf.flags;
  const b = in32(bb);
  if (unary) {
    if (b < 0) {
      sf.flags |= F_IE;
      return QNAN32;
    }
    if (b === 0 || b === Infinity) return bits32(b);
    const s = Math.sqrt(b);
    return round32(s, sqrtErrSign(b, s));
  }
  const a = in32(ab);
  switch (op) {
    case FOp.Add:
    case FOp.Sub: {
      const bv = op === FOp.Sub ? -b : b;
      if (Math.abs(a) === Infinity && Math.abs(bv) === Infinity && a !== bv) {
        sf.flags |= F_IE;
        return QNAN32;
      }
      const s = a + bv;
      if (s === 0) return bits32(zeroSum(a, bv));
      if (!Number.isFinite(s)) return bits32(s); // an infinite operand: exact
      const t = s - a;
      const e = a - (s - t) + (bv - t);
      return round32(s, e);
    }
    case FOp.Mul: {
      if ((a === 0 && Math.abs(b) === Infinity) || (b === 0 && Math.abs(a) === Infinity)) {
        sf.flags |= F_IE;
        return QNAN32;
      }
      const p = a * b;
      return Number.isFinite(a) && Number.isFinite(b) ? round32(p, 0) : bits32(p);
    }
    default: {
      if ((a === 0 && b === 0) || (Math.abs(a) === Infinity && Math.abs(b) === Infinity)) {
        sf.flags |= F_IE;
        return QNAN32;
      }
      // Observed on hardware: x/0 reports only ZE (or nothing for inf/0), even for a denormal dividend.
      if (b === 0) {
        sf.flags = before | (Number.isFinite(a) ? F_ZE : 0);
        return bits32(a / b);
      }
      const s = a / b;
      if (a === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return bits32(s);
      return round32(s, divErrSign(a, b, s));
    }
  }
}

/** One binary64 lane (a and b as (lo, hi) bit pairs): returns the low bits, high bits in sf.hi. */
export function op64(op: FOp, alo: number, ahi: number, blo: number, bhi: number): number {
  if (op === FOp.Min || op === FOp.Max) {
    if (isNaN64(alo, ahi) || isNaN64(blo, bhi)) {
      sf.flags |= F_IE;
      if (isDen64(blo, bhi) && sf.mxcsr & DAZ) {
        sf.hi = bhi & 0x80000000;
        return 0;
      }
      sf.hi = bhi;
      return blo;
    }
    const a = in64(alo, ahi);
    const b = in64(blo, bhi);
    const pick = op === FOp.Min ? a < b : a > b;
    return bits64(pick ? a : b);
  }
  const unary = op === FOp.Sqrt;
  if (isNaN64(blo, bhi) || (!unary && isNaN64(alo, ahi))) {
    if (isSNaN64(blo, bhi) || (!unary && isSNaN64(alo, ahi))) sf.flags |= F_IE;
    if (!unary && isNaN64(alo, ahi)) {
      sf.hi = ahi | 0x80000;
      return alo;
    }
    sf.hi = bhi | 0x80000;
    return blo;
  }
  if (unary && bhi < 0 && ((bhi & 0x7fffffff) | blo) !== 0 && !(isDen64(blo, bhi) && sf.mxcsr & DAZ)) {
    return qnan64();
  }
  const before = sf.flags;
  const b = in64(blo, bhi);
  if (unary) {
    if (b < 0) return qnan64();
    if (b === 0 || b === Infinity) return bits64(b);
    const r = Math.sqrt(b);
    return round64(r, sqrtErrSign(b, r), false);
  }
  const a = in64(alo, ahi);
  switch (op) {
    case FOp.Add:
    case FOp.Sub: {
      const bv = op === FOp.Sub ? -b : b;
      if (Math.abs(a) === Infinity && Math.abs(bv) === Infinity && a !== bv) return qnan64();
      const s = a + bv;
      if (s === 0) return bits64(zeroSum(a, bv));
      if (!Number.isFinite(a) || !Number.isFinite(bv)) return bits64(s);
      if (!Number.isFinite(s)) {
        // Halved operands add without overflow; the halved sum is exact iff the true sum's significand is.
        const ha = a * 0.5;
        const hb = bv * 0.5;
        const hs = ha + hb;
        const ht = hs - ha;
        return round64(s, 0, true, ha - (hs - ht) + (hb - ht) !== 0);
      }
      const t = s - a;
      const e = a - (s - t) + (bv - t);
      return round64(s, Math.sign(e), false);
    }
    case FOp.Mul: {
      if ((a === 0 && Math.abs(b) === Infinity) || (b === 0 && Math.abs(a) === Infinity)) return qnan64();
      const p = a * b;
      if (a === 0 || b === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return bits64(p);
      if (!Number.isFinite(p)) {
        twoProd(frexp(a), frexp(b));
        return round64(p, 0, true, tpLo !== 0);
      }
      if (Math.abs(p) >= MIN_NORMAL64 || sf.mxcsr & UM) return round64(p, mulErrSign(a, b, p), false);
      // A tiny product with underflow unmasked: PE depends on the product's full significand.
      twoProd(frexp(a), frexp(b));
      const inexact = tpLo !== 0;
      return round64(p, mulErrSign(a, b, p), false, true, inexact);
    }
    default: {
      if ((a === 0 && b === 0) || (Math.abs(a) === Infinity && Math.abs(b) === Infinity)) return qnan64();
      const q = a / b;
      if (b === 0) {
        sf.flags = before | (Number.isFinite(a) ? F_ZE : 0);
        return bits64(q);
      }
      if (a === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return bits64(q);
      if (!Number.isFinite(q)) {
        const ma = frexp(a);
        const mb = frexp(b);
        const h = twoProd(ma / mb, mb);
        return round64(q, 0, true, h !== ma || tpLo !== 0);
      }
      if (Math.abs(q) >= MIN_NORMAL64 || sf.mxcsr & UM) return round64(q, divErrSign(a, b, q), false);
      // A tiny quotient with underflow unmasked: PE depends on the quotient's full significand.
      const ma = frexp(a);
      const mb = frexp(b);
      const inexact = twoProd(ma / mb, mb) !== ma || tpLo !== 0;
      return round64(q, divErrSign(a, b, q), false, true, inexact);
    }
  }
}

function qnan64(): number {
  sf.flags |= F_IE;
  sf.hi = QNAN64_HI;
  return 0;
}

// ---------------------------------------------------------------- conversions

/** Integer (exact value hi*2^32 + lo, signed when `signed64`, else the int32 lo) to binary32 bits. */
export function intTo32(lo: number, hi: number, is64: boolean): number {
  if (!is64) return round32(lo, 0);
  const h = hi * TWO32;
  const l = lo >>> 0;
  const s = h + l;
  const t = s - h;
  const e = h - (s - t) + (l - t);
  return round32(s, e);
}
/** Integer to binary64 (low bits returned, high in sf.hi). */
export function intTo64(lo: number, hi: number, is64: boolean): number {
  if (!is64) return bits64(lo);
  const h = hi * TWO32;
  const l = lo >>> 0;
  const s = h + l;
  const t = s - h;
  const e = h - (s - t) + (l - t);
  return round64(s, Math.sign(e), false);
}

/** Rounds a finite double to an integer value by MXCSR.RC, or toward zero when `truncate`. */
function roundInt(x: number, truncate: boolean): number {
  const m = truncate ? 3 : mode();
  if (m === 3) return Math.trunc(x);
  if (m === 1) return Math.floor(x);
  if (m === 2) return Math.ceil(x);
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Float (already DAZ-processed value x, or NaN) to a signed integer of 32 or 64 bits; out of range and NaN
 * give the integer indefinite (0x80000000 / 0x8000000000000000) with IE, inexact gives PE. Low half
 * returned, high half in sf.hi.
 */
export function toInt(x: number, is64: boolean, truncate: boolean): number {
  if (Number.isNaN(x) || !Number.isFinite(x)) return indefinite(is64);
  const r = roundInt(x, truncate);
  if (is64 ? r < -(2 ** 63) || r >= 2 ** 63 : r < -(2 ** 31) || r > 2 ** 31 - 1) return indefinite(is64);
  if (r !== x) sf.flags |= F_PE;
  const hi = Math.floor(r / TWO32);
  sf.hi = is64 ? hi | 0 : 0;
  return (r - hi * TWO32) | 0;
}
function indefinite(is64: boolean): number {
  sf.flags |= F_IE;
  if (is64) {
    sf.hi = 0x80000000 | 0;
    return 0;
  }
  sf.hi = 0;
  return 0x80000000 | 0;
}

/** binary32 bits -> binary64 (exact; SNaN quieted with IE). */
export function cvt32to64(b: number): number {
  if (isNaN32(b)) {
    if (isSNaN32(b)) sf.flags |= F_IE;
    // Payload moves to the top of the wider significand (SDM Vol. 1 4.8.3.7).
    sf.hi = (b & 0x80000000) | 0x7ff80000 | ((b & 0x3fffff) >>> 3);
    return (b & 7) << 29;
  }
  return bits64(in32(b));
}
/** binary64 (lo, hi) -> binary32 bits under MXCSR. */
export function cvt64to32(lo: number, hi: number): number {
  if (isNaN64(lo, hi)) {
    if (isSNaN64(lo, hi)) sf.flags |= F_IE;
    return (hi & 0x80000000) | 0x7fc00000 | ((hi & 0x7ffff) << 3) | (lo >>> 29);
  }
  const x = in64(lo, hi);
  if (!Number.isFinite(x) || x === 0) return bits32(x);
  return round32(x, 0);
}

/** Source value of a binary32 lane for integer conversion (DAZ applies; no DE for these). */
export function src32(b: number): number {
  return isNaN32(b) ? NaN : in32(b, false);
}
export function src64(lo: number, hi: number): number {
  return isNaN64(lo, hi) ? NaN : in64(lo, hi, false);
}
