// Owns: x87 extended-precision arithmetic on unpacked values (sign, unbiased exponent, 64-bit significand
// as two uint32 words with an explicit integer bit): exact add/sub/mul/div/sqrt on 128-bit intermediate
// significands in 32-bit words (no BigInt: docs/decisions/0001), and one rounding routine that applies the
// precision (24/53/64 bits) and rounding control and the destination's exponent range, producing denormals,
// overflow results and the PE/UE/OE flags plus "rounded up" (FSW.C1). Also the conversions between the 80-bit
// register format, binary32/binary64 memory formats and integers.
// Must not: touch processor state (x87.ts owns the register stack, tags, status word and exceptions).
// Spec: Intel SDM Vol. 1 4.2.2 / 4.8 (extended format, denormals, NaNs, indefinite), 8.1.5 (precision and
// rounding control), 4.9.1 (numeric exception conditions, masked responses), 8.5 (x87 exception handling).

export const X_IE = 0x01;
export const X_DE = 0x02;
export const X_ZE = 0x04;
export const X_OE = 0x08;
export const X_UE = 0x10;
export const X_PE = 0x20;

const TWO32 = 0x1_0000_0000;

/** Operand/result classes. */
export const enum Cls {
  Zero = 0,
  Finite = 1,
  Inf = 2,
  QNaN = 3,
  SNaN = 4,
  /** Unsupported encodings (unnormals, pseudo-NaN/infinity): operate as SNaN-like invalid operands. */
  Bad = 5,
}

/** An unpacked value. For Finite, `hi` has bit 31 set (normalized) and `exp` is unbounded. */
export class Ext {
  sign = 0;
  exp = 0;
  hi = 0;
  lo = 0;
  cls: Cls = Cls.Zero;
  /** The operand was a denormal (for DE). */
  den = false;
  set(o: Ext): this {
    this.sign = o.sign;
    this.exp = o.exp;
    this.hi = o.hi;
    this.lo = o.lo;
    this.cls = o.cls;
    this.den = o.den;
    return this;
  }
}

/** Flags accumulated by the last operation; `up` = the result was rounded away from zero in magnitude (C1). */
export const xf = { flags: 0, up: false };

// ---------------------------------------------------------------- 128-bit significand scratch (m3 = most significant)

const M = [0, 0, 0, 0];

function shl1(a: number[]): void {
  a[3] = ((a[3]! << 1) | (a[2]! >>> 31)) >>> 0;
  a[2] = ((a[2]! << 1) | (a[1]! >>> 31)) >>> 0;
  a[1] = ((a[1]! << 1) | (a[0]! >>> 31)) >>> 0;
  a[0] = (a[0]! << 1) >>> 0;
}

/** Shifts right by n, OR-ing every bit shifted out into bit 0 ("jamming": keeps rounding exact). */
function shrJam(a: number[], n: number): void {
  if (n <= 0) return;
  if (n >= 128) {
    const any = (a[0]! | a[1]! | a[2]! | a[3]!) !== 0;
    a[0] = any ? 1 : 0;
    a[1] = a[2] = a[3] = 0;
    return;
  }
  let sticky = 0;
  while (n >= 32) {
    sticky |= a[0]!;
    a[0] = a[1]!;
    a[1] = a[2]!;
    a[2] = a[3]!;
    a[3] = 0;
    n -= 32;
  }
  if (n > 0) {
    sticky |= a[0]! & ((1 << n) - 1);
    a[0] = ((a[0]! >>> n) | (a[1]! << (32 - n))) >>> 0;
    a[1] = ((a[1]! >>> n) | (a[2]! << (32 - n))) >>> 0;
    a[2] = ((a[2]! >>> n) | (a[3]! << (32 - n))) >>> 0;
    a[3] = a[3]! >>> n;
  }
  if (sticky !== 0) a[0] = (a[0]! | 1) >>> 0;
}

function isZero(a: number[]): boolean {
  return (a[0]! | a[1]! | a[2]! | a[3]!) === 0;
}

/** Normalizes M so bit 127 is set; returns the shift applied (positive = left). M nonzero. */
function normalize(): number {
  let s = 0;
  while (M[3] === 0) {
    M[3] = M[2]!;
    M[2] = M[1]!;
    M[1] = M[0]!;
    M[0] = 0;
    s += 32;
  }
  while (!(M[3]! & 0x80000000)) {
    shl1(M);
    s++;
  }
  return s;
}

// ---------------------------------------------------------------- rounding

/** Result of `roundM`: sign, unbiased exponent of the integer bit, significand; denormal => exp = emin, hi bit 31 clear. */
export const R = new Ext();

/**
 * Rounds sign * M / 2^127 * 2^e (M normalized, bit 127 set) to `p` significant bits with rounding control
 * `rc` (0 RN, 1 RD, 2 RU, 3 RZ) and exponent range [emin, emax], into R. Tininess is detected after rounding.
 */
export function roundM(sign: number, e: number, p: number, rc: number, emin: number, emax: number): void {
  let denorm = false;
  if (e < emin) {
    shrJam(M, emin - e);
    e = emin;
    denorm = true;
  }
  // Kept bits: the top p bits of M (p <= 64: within M[3], M[2]). Round bit and sticky below them.
  let round: number;
  let sticky: boolean;
  let kh = M[3]!;
  let kl = M[2]!;
  if (p > 32) {
    const sh = 64 - p; // bits of M[2] below the kept ones
    if (sh === 0) {
      round = M[1]! >>> 31;
      sticky = (M[1]! & 0x7fffffff) !== 0 || M[0] !== 0;
    } else {
      round = (kl >>> (sh - 1)) & 1;
      sticky = (kl & ((1 << (sh - 1)) - 1)) !== 0 || M[1] !== 0 || M[0] !== 0;
      kl = (kl & ~((1 << sh) - 1)) >>> 0;
    }
  } else if (p === 32) {
    round = kl >>> 31;
    sticky = (kl & 0x7fffffff) !== 0 || M[1] !== 0 || M[0] !== 0;
    kl = 0;
  } else {
    const sh = 32 - p;
    round = (kh >>> (sh - 1)) & 1;
    sticky = (kh & ((1 << (sh - 1)) - 1)) !== 0 || kl !== 0 || M[1] !== 0 || M[0] !== 0;
    kh = (kh & ~((1 << sh) - 1)) >>> 0;
    kl = 0;
  }
  const inexact = round !== 0 || sticky;
  let inc = false;
  if (inexact) {
    if (rc === 0) {
      const lsb = p > 32 ? (kl >>> (64 - p)) & 1 : (kh >>> (32 - p)) & 1;
      inc = round !== 0 && (sticky || lsb !== 0);
    } else if (rc === 1) inc = sign !== 0;
    else if (rc === 2) inc = sign === 0;
  }
  if (inc) {
    if (p > 32) {
      const s = kl + 2 ** (64 - p);
      kl = s % TWO32;
      if (s >= TWO32) kh = (kh + 1) % TWO32;
    } else kh += 2 ** (32 - p);
    if (kh >= TWO32 || (kh === 0 && kl === 0)) {
      // Carry out of the top: significand becomes 1.000... with the exponent one higher.
      kh = 0x80000000;
      kl = 0;
      e++;
    } else if (denorm && kh >= 0x80000000) {
      denorm = false; // rounded up into the normal range
    }
  }
  xf.up = inc;
  if (denorm && !(kh & 0x80000000)) {
    if (inexact) xf.flags |= X_UE | X_PE;
    else if (kh !== 0 || kl !== 0) xf.flags |= 0; // exact denormal: no flags when masked
  } else if (inexact) xf.flags |= X_PE;
  if (e > emax) {
    xf.flags |= X_OE | X_PE;
    const toInf = rc === 0 || (rc === 2 && sign === 0) || (rc === 1 && sign !== 0);
    R.sign = sign;
    if (toInf) {
      R.cls = Cls.Inf;
      xf.up = true;
    } else {
      R.cls = Cls.Finite;
      R.exp = emax;
      R.hi = p > 32 ? 0xffffffff : (0xffffffff << (32 - p)) >>> 0;
      R.lo = p > 32 ? (p === 64 ? 0xffffffff : (0xffffffff << (64 - p)) >>> 0) : 0;
      xf.up = false;
    }
    return;
  }
  R.sign = sign;
  R.exp = e;
  R.hi = kh >>> 0;
  R.lo = kl >>> 0;
  R.cls = kh === 0 && kl === 0 ? Cls.Zero : Cls.Finite;
}

/** Tininess of the last roundM result that was exact: the x87 reports UE for exact denormals only unmasked. */
export function lastWasTiny(): boolean {
  return R.cls === Cls.Finite && !(R.hi & 0x80000000);
}

// ---------------------------------------------------------------- formats

export const EXT_EMIN = -16382;
export const EXT_EMAX = 16383;

/** Unpacks an 80-bit value (bytes at `off` in `b`) into x. */
export function unpack80(v: DataView, off: number, x: Ext): void {
  const lo = v.getUint32(off, true);
  const hi = v.getUint32(off + 4, true);
  const se = v.getUint16(off + 8, true);
  x.sign = se >> 15;
  const be = se & 0x7fff;
  x.den = false;
  if (be === 0x7fff) {
    x.exp = 0;
    x.hi = hi;
    x.lo = lo;
    if (!(hi & 0x80000000)) x.cls = Cls.Bad;
    else if ((hi & 0x7fffffff) === 0 && lo === 0) x.cls = Cls.Inf;
    else x.cls = hi & 0x40000000 ? Cls.QNaN : Cls.SNaN;
    return;
  }
  if (be !== 0 && !(hi & 0x80000000)) {
    x.cls = Cls.Bad; // unnormal
    x.hi = hi;
    x.lo = lo;
    x.exp = be - 16383;
    return;
  }
  if (hi === 0 && lo === 0) {
    x.cls = Cls.Zero;
    x.exp = 0;
    x.hi = x.lo = 0;
    return;
  }
  x.cls = Cls.Finite;
  x.den = be === 0;
  let e = (be === 0 ? 1 : be) - 16383;
  let h = hi;
  let l = lo;
  while (!(h & 0x80000000)) {
    h = ((h << 1) | (l >>> 31)) >>> 0;
    l = (l << 1) >>> 0;
    e--;
  }
  x.exp = e;
  x.hi = h;
  x.lo = l;
}

/** Packs x (as produced by roundM with the extended range, or a special) into 80 bits at off. */
export function pack80(v: DataView, off: number, x: Ext): void {
  let be: number;
  let hi = x.hi;
  let lo = x.lo;
  switch (x.cls) {
    case Cls.Zero:
      be = 0;
      hi = lo = 0;
      break;
    case Cls.Inf:
      be = 0x7fff;
      hi = 0x80000000;
      lo = 0;
      break;
    case Cls.QNaN:
    case Cls.SNaN:
    case Cls.Bad:
      be = 0x7fff;
      break;
    default:
      if (x.exp < EXT_EMIN && hi & 0x80000000) {
        // A normalized denormal (unpacked from memory/registers): shift back to the denormal encoding (exact).
        const n = EXT_EMIN - x.exp;
        if (n >= 32) {
          lo = hi >>> (n - 32);
          hi = 0;
        } else {
          lo = ((lo >>> n) | (hi << (32 - n))) >>> 0;
          hi = hi >>> n;
        }
        be = 0;
      } else if (!(hi & 0x80000000))
        be = 0; // denormal (exp == EXT_EMIN)
      else be = x.exp + 16383;
  }
  v.setUint32(off, lo >>> 0, true);
  v.setUint32(off + 4, hi >>> 0, true);
  v.setUint16(off + 8, (x.sign << 15) | be, true);
}

/** The default QNaN ("real indefinite"): negative, quiet, significand C000000000000000. */
export function indefinite(x: Ext): void {
  x.sign = 1;
  x.cls = Cls.QNaN;
  x.exp = 0;
  x.hi = 0xc0000000;
  x.lo = 0;
}

/** binary32 bits -> x (exact). */
export function fromF32(b: number, x: Ext): void {
  x.sign = b >>> 31;
  const be = (b >>> 23) & 0xff;
  const f = b & 0x7fffff;
  x.den = false;
  if (be === 0xff) {
    x.hi = (0x80000000 | (f << 8)) >>> 0;
    x.lo = 0;
    x.cls = f === 0 ? Cls.Inf : f & 0x400000 ? Cls.QNaN : Cls.SNaN;
    return;
  }
  if (be === 0 && f === 0) {
    x.cls = Cls.Zero;
    x.hi = x.lo = 0;
    return;
  }
  let e = (be === 0 ? 1 : be) - 127;
  let h = ((be === 0 ? 0 : 0x80000000) | (f << 8)) >>> 0;
  x.den = be === 0;
  while (!(h & 0x80000000)) {
    h = (h << 1) >>> 0;
    e--;
  }
  x.cls = Cls.Finite;
  x.exp = e;
  x.hi = h;
  x.lo = 0;
}

/** binary64 (lo, hi) -> x (exact). */
export function fromF64(lo: number, hi: number, x: Ext): void {
  x.sign = hi >>> 31;
  const be = (hi >>> 20) & 0x7ff;
  const fh = hi & 0xfffff;
  x.den = false;
  const sh = ((fh << 11) | (lo >>> 21)) >>> 0;
  const sl = (lo << 11) >>> 0;
  if (be === 0x7ff) {
    x.hi = (0x80000000 | sh) >>> 0;
    x.lo = sl;
    x.cls = (fh | lo) === 0 ? Cls.Inf : fh & 0x80000 ? Cls.QNaN : Cls.SNaN;
    return;
  }
  if (be === 0 && (fh | lo) === 0) {
    x.cls = Cls.Zero;
    x.hi = x.lo = 0;
    return;
  }
  let e = (be === 0 ? 1 : be) - 1023;
  let h = ((be === 0 ? 0 : 0x80000000) | sh) >>> 0;
  let l = sl;
  x.den = be === 0;
  while (!(h & 0x80000000)) {
    h = ((h << 1) | (l >>> 31)) >>> 0;
    l = (l << 1) >>> 0;
    e--;
  }
  x.cls = Cls.Finite;
  x.exp = e;
  x.hi = h;
  x.lo = l;
}

/** Rounds finite x to binary32/binary64 (rc), returning bits (binary64: low word, high word in `outHi`). */
export let outHi = 0;
export function toFloat(x: Ext, double: boolean, rc: number): number {
  const bias = double ? 1023 : 127;
  switch (x.cls) {
    case Cls.Zero:
      outHi = x.sign << 31;
      return double ? 0 : x.sign << 31;
    case Cls.Inf:
      outHi = ((x.sign << 31) | 0x7ff00000) >>> 0;
      return double ? 0 : ((x.sign << 31) | 0x7f800000) >>> 0;
    case Cls.QNaN:
    case Cls.SNaN:
    case Cls.Bad: {
      // Quieted, payload truncated (SDM 4.8.3.7).
      if (double) {
        outHi = ((x.sign << 31) | 0x7ff80000 | ((x.hi >>> 11) & 0x7ffff)) >>> 0;
        return ((x.hi << 21) | (x.lo >>> 11)) >>> 0;
      }
      return ((x.sign << 31) | 0x7fc00000 | ((x.hi >>> 8) & 0x3fffff)) >>> 0;
    }
    default:
      break;
  }
  M[3] = x.hi;
  M[2] = x.lo;
  M[1] = M[0] = 0;
  const p = double ? 53 : 24;
  roundM(x.sign, x.exp, p, rc, 1 - bias, bias);
  if (R.cls === Cls.Inf) return toFloat(R, double, rc);
  if (R.cls === Cls.Zero) {
    outHi = R.sign << 31;
    return double ? 0 : R.sign << 31;
  }
  const be = R.hi & 0x80000000 ? R.exp + bias : 0;
  if (double) {
    const fh = (R.hi >>> 11) & 0xfffff;
    outHi = ((R.sign << 31) | (be << 20) | fh) >>> 0;
    return ((R.hi << 21) | (R.lo >>> 11)) >>> 0;
  }
  return ((R.sign << 31) | (be << 23) | ((R.hi >>> 8) & 0x7fffff)) >>> 0;
}

/** Signed integer (lo, hi as a two's complement 64-bit value) -> x (exact). */
export function fromInt(lo: number, hi: number, x: Ext): void {
  x.den = false;
  x.sign = hi < 0 ? 1 : 0;
  let h = hi >>> 0;
  let l = lo >>> 0;
  if (x.sign) {
    l = (~l + 1) >>> 0;
    h = (~h + (l === 0 ? 1 : 0)) >>> 0;
  }
  if (h === 0 && l === 0) {
    x.cls = Cls.Zero;
    x.hi = x.lo = 0;
    return;
  }
  let e = 63;
  while (!(h & 0x80000000)) {
    h = ((h << 1) | (l >>> 31)) >>> 0;
    l = (l << 1) >>> 0;
    e--;
  }
  x.cls = Cls.Finite;
  x.exp = e;
  x.hi = h;
  x.lo = l;
}

/**
 * Rounds x to an integer (rc, or toward zero when rc = 3) and returns it as a 64-bit two's complement
 * value (low word; high in outHi) when it fits in `bits`; otherwise returns null-like NaN (caller stores the
 * integer indefinite with IE). PE set when inexact.
 */
export function toInt(x: Ext, bits: number, rc: number): number {
  if (x.cls === Cls.Zero) {
    outHi = 0;
    return 0;
  }
  if (x.cls !== Cls.Finite) return NaN;
  if (x.exp >= 64) return NaN;
  // Fixed point: integer part = sig >> (63 - exp).
  M[3] = x.hi;
  M[2] = x.lo;
  M[1] = M[0] = 0;
  const sh = 63 - x.exp;
  // Shift right by sh (with jamming) so the integer sits in M[3]:M[2]; bits below are round/sticky.
  shrJam(M, sh);
  let ih = M[3]!;
  let il = M[2]!;
  const round = M[1]! >>> 31;
  const sticky = (M[1]! & 0x7fffffff) !== 0 || M[0] !== 0;
  const inexact = round !== 0 || sticky;
  let inc = false;
  if (inexact) {
    if (rc === 0) inc = round !== 0 && (sticky || (il & 1) !== 0);
    else if (rc === 1) inc = x.sign !== 0;
    else if (rc === 2) inc = x.sign === 0;
  }
  if (inc) {
    il = (il + 1) >>> 0;
    if (il === 0) ih = (ih + 1) >>> 0;
    if (ih === 0 && il === 0) return NaN;
  }
  // Range: magnitude <= 2^(bits-1) - 1, or exactly 2^(bits-1) when negative.
  const limHi = bits === 64 ? 0x80000000 : 0;
  const limLo = bits === 64 ? 0 : 2 ** (bits - 1);
  const mag = ih * TWO32 + il; // only compared, precision loss above 2^53 does not matter for the bound test
  const lim = limHi * TWO32 + limLo;
  if (bits === 64) {
    if (ih > 0x80000000 || (ih === 0x80000000 && (il !== 0 || x.sign === 0))) return NaN;
  } else if (mag > lim || (mag === lim && x.sign === 0)) return NaN;
  if (inexact) xf.flags |= X_PE;
  xf.up = inc;
  if (x.sign) {
    il = (~il + 1) >>> 0;
    ih = (~ih + (il === 0 ? 1 : 0)) >>> 0;
  }
  outHi = ih | 0;
  return il | 0;
}

// ---------------------------------------------------------------- arithmetic on finite, nonzero values

/** a + b (sub: a - b) for finite nonzero a, b into R via roundM; an exact zero result gets `zeroSign`. */
export function addFinite(a: Ext, b: Ext, sub: boolean, p: number, rc: number): void {
  const bs = sub ? b.sign ^ 1 : b.sign;
  let big = a;
  let small = b;
  let bigSign = a.sign;
  let smallSign = bs;
  if (b.exp > a.exp || (b.exp === a.exp && (b.hi > a.hi || (b.hi === a.hi && b.lo > a.lo)))) {
    big = b;
    small = a;
    bigSign = bs;
    smallSign = a.sign;
  }
  // Both significands at bits 126..63 (one bit of headroom for a carry).
  const S = [0, 0, 0, 0];
  M[3] = big.hi >>> 1;
  M[2] = ((big.hi << 31) | (big.lo >>> 1)) >>> 0;
  M[1] = (big.lo << 31) >>> 0;
  M[0] = 0;
  S[3] = small.hi >>> 1;
  S[2] = ((small.hi << 31) | (small.lo >>> 1)) >>> 0;
  S[1] = (small.lo << 31) >>> 0;
  S[0] = 0;
  shrJam(S, big.exp - small.exp);
  if (bigSign === smallSign) {
    let c = 0;
    for (let i = 0; i < 4; i++) {
      const s = M[i]! + S[i]! + c;
      M[i] = s % TWO32;
      c = s >= TWO32 ? 1 : 0;
    }
  } else {
    let br = 0;
    for (let i = 0; i < 4; i++) {
      let s = M[i]! - S[i]! - br;
      br = s < 0 ? 1 : 0;
      if (s < 0) s += TWO32;
      M[i] = s;
    }
  }
  if (isZero(M)) {
    R.cls = Cls.Zero;
    R.sign = rc === 1 ? 1 : 0;
    R.hi = R.lo = 0;
    xf.up = false;
    return;
  }
  const n = normalize();
  roundM(bigSign, big.exp + 1 - n, p, rc, EXT_EMIN, EXT_EMAX);
}

/** a * b for finite nonzero values. */
export function mulFinite(a: Ext, b: Ext, p: number, rc: number, emin = EXT_EMIN, emax = EXT_EMAX): void {
  // 64x64 -> 128 with 16-bit limbs (every partial product and column sum is exact in a double).
  const A = [a.lo & 0xffff, a.lo >>> 16, a.hi & 0xffff, a.hi >>> 16];
  const B = [b.lo & 0xffff, b.lo >>> 16, b.hi & 0xffff, b.hi >>> 16];
  const P = [0, 0, 0, 0, 0, 0, 0, 0];
  for (let i = 0; i < 4; i++) {
    let carry = 0;
    for (let j = 0; j < 4; j++) {
      const t = P[i + j]! + A[i]! * B[j]! + carry;
      P[i + j] = t % 65536;
      carry = Math.floor(t / 65536);
    }
    P[i + 4] = P[i + 4]! + carry;
  }
  for (let k = 0; k < 4; k++) M[k] = (P[2 * k]! + P[2 * k + 1]! * 65536) >>> 0;
  const n = normalize(); // 0 or 1
  roundM(a.sign ^ b.sign, a.exp + b.exp + 1 - n, p, rc, emin, emax);
}

/** Compares 65-bit-ish values held as [hi (<= 2^33, double), lo (uint32)]. */
function geq(rh: number, rl: number, bh: number, bl: number): boolean {
  return rh > bh || (rh === bh && rl >= bl);
}

/** a / b for finite nonzero values. */
export function divFinite(a: Ext, b: Ext, p: number, rc: number): void {
  let rh = a.hi;
  let rl = a.lo;
  let e = a.exp - b.exp;
  if (!geq(rh, rl, b.hi, b.lo)) {
    // a's significand < b's: take one more bit of the dividend (remainder up to 2^65, held as doubles).
    rh = rh * 2 + (rl >>> 31);
    rl = (rl << 1) >>> 0;
    e--;
  }
  // 67 quotient bits: integer bit + 66 fraction bits, then sticky from the remainder.
  const q = [0, 0, 0]; // q[0] = top 32 bits, q[1] = next 32, q[2] = last 3 bits at the top
  for (let i = 0; i < 67; i++) {
    let bit = 0;
    if (geq(rh, rl, b.hi, b.lo)) {
      bit = 1;
      let l = rl - b.lo;
      let h = rh - b.hi;
      if (l < 0) {
        l += TWO32;
        h -= 1;
      }
      rl = l;
      rh = h;
    }
    const w = i >> 5;
    q[w] = q[w]! | (bit << (31 - (i & 31)));
    rh = rh * 2 + (rl >>> 31);
    rl = (rl << 1) >>> 0;
  }
  M[3] = q[0]! >>> 0;
  M[2] = q[1]! >>> 0;
  M[1] = q[2]! >>> 0;
  M[0] = rh !== 0 || rl !== 0 ? 1 : 0;
  roundM(a.sign ^ b.sign, e, p, rc, EXT_EMIN, EXT_EMAX);
}

/** sqrt(a) for finite positive a (restoring binary square root of the significand, 65+ root bits + sticky). */
export function sqrtFinite(a: Ext, p: number, rc: number): void {
  // a = sig * 2^(E-63), sig in [2^63, 2^64). Radicand N = sig * 2^(64+s) with s chosen so that E-127-s is even:
  // then sqrt(a) = sqrt(N) * 2^((E-127-s)/2), and sqrt(N) has 65-66 integer bits.
  const E = a.exp;
  const s = (E & 1) !== 0 ? 2 : 3;
  const N = [0, 0, (a.lo << s) >>> 0, ((a.hi << s) | (a.lo >>> (32 - s))) >>> 0, a.hi >>> (32 - s)];
  const r = [0, 0, 0];
  const rem = [0, 0, 0];
  const t = [0, 0, 0];
  for (let i = 158; i >= 0; i -= 2) {
    const two = (N[i >> 5]! >>> (i & 31)) & 3;
    rem[2] = ((rem[2]! << 2) | (rem[1]! >>> 30)) >>> 0;
    rem[1] = ((rem[1]! << 2) | (rem[0]! >>> 30)) >>> 0;
    rem[0] = ((rem[0]! << 2) | two) >>> 0;
    t[2] = ((r[2]! << 2) | (r[1]! >>> 30)) >>> 0;
    t[1] = ((r[1]! << 2) | (r[0]! >>> 30)) >>> 0;
    t[0] = ((r[0]! << 2) | 1) >>> 0;
    const ge =
      rem[2]! > t[2]! || (rem[2] === t[2] && (rem[1]! > t[1]! || (rem[1] === t[1] && rem[0]! >= t[0]!)));
    r[2] = ((r[2]! << 1) | (r[1]! >>> 31)) >>> 0;
    r[1] = ((r[1]! << 1) | (r[0]! >>> 31)) >>> 0;
    r[0] = ((r[0]! << 1) | (ge ? 1 : 0)) >>> 0;
    if (ge) {
      let br = 0;
      for (let k = 0; k < 3; k++) {
        let d = rem[k]! - t[k]! - br;
        br = d < 0 ? 1 : 0;
        if (d < 0) d += TWO32;
        rem[k] = d;
      }
    }
  }
  // M = r * 2^32 (+ sticky): M/2^127 = r * 2^-95; after normalizing by n bits, e makes the value right.
  M[3] = r[2]!;
  M[2] = r[1]!;
  M[1] = r[0]!;
  M[0] = (rem[0]! | rem[1]! | rem[2]!) !== 0 ? 1 : 0;
  const n = normalize();
  roundM(0, (E - 127 - s) / 2 + 95 - n, p, rc, EXT_EMIN, EXT_EMAX);
}

/** Loads a 128-bit significand constant (words most significant first) rounded to 64 bits by rc into R. */
export function constant(w: readonly number[], e: number, rc: number): void {
  M[3] = w[0]!;
  M[2] = w[1]!;
  M[1] = w[2]!;
  M[0] = w[3]!;
  const f = xf.flags;
  roundM(0, e, 64, rc, EXT_EMIN, EXT_EMAX);
  xf.flags = f; // constants never signal precision
}

/** Rounds finite x to `p` bits in the extended range (FLD of a wider value, FSCALE, FRNDINT's re-pack). */
export function roundExt(x: Ext, e: number, p: number, rc: number): void {
  M[3] = x.hi;
  M[2] = x.lo;
  M[1] = M[0] = 0;
  roundM(x.sign, e, p, rc, EXT_EMIN, EXT_EMAX);
}
