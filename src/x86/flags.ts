// Owns: RFLAGS and lazy evaluation of the six status flags. Arithmetic handlers record (operation, size,
// operands, result) instead of computing CF/PF/AF/ZF/SF/OF; the flags are computed only when something reads
// them (Jcc, SETcc, PUSHF, ADC, ...). This is the base class of the processor state (core.ts).
// Must not: know about registers, memory or instruction decoding.
// Spec: Intel SDM Vol. 1 3.4.3 (EFLAGS status flags), Vol. 1 B.1 (condition codes); the per-instruction flag
// definitions of ADD/ADC/SUB/SBB/CMP/NEG/INC/DEC/AND/OR/XOR/TEST (Vol. 2).

import { FLAG_AF, FLAG_CF, FLAG_OF, FLAG_PF, FLAG_SF, FLAG_ZF, FLAGS_STATUS } from "./opcode-table.js";

/** Which operation produced the pending flags. */
export const enum LazyOp {
  /** All flags are in `flagsReg`. */
  None = 0,
  Add = 1,
  Adc = 2,
  Sub = 3,
  Sbb = 4,
  /** ZF/SF/PF from the result; CF = bit 0, OF = bit 1, AF = bit 2 of `lzCin` (logic ops, shifts, ...). */
  Result = 5,
  /** INC/DEC: like Add/Sub with b = 1, CF preserved in `lzCin`. */
  Inc = 6,
  Dec = 7,
  /** 64-bit IMUL (2/3-operand): CF = OF = the signed product does not fit in 64 bits (computed on demand). */
  Imul64 = 8,
}

/** High 32 bits of the unsigned 32x32 product (int32). */
export function mulhu32(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const mid = ((al * bl) >>> 16) + ((ah * bl) & 0xffff) + ((al * bh) & 0xffff);
  return (ah * bh + ((ah * bl) >>> 16) + ((al * bh) >>> 16) + (mid >>> 16)) | 0;
}

/** Whether the signed 64x64 product of (alo, ahi) and (blo, bhi) with low 64 bits (rlo, rhi) overflows. */
export function imul64Overflows(alo: number, ahi: number, blo: number, bhi: number, rhi: number): boolean {
  // Upper 64 bits of the unsigned 128-bit product, then the signed correction (SDM IMUL; Hacker's Delight 8-3).
  const mid = (mulhu32(alo, blo) >>> 0) + (Math.imul(alo, bhi) >>> 0) + (Math.imul(ahi, blo) >>> 0);
  const carry = Math.floor(mid / 0x100000000);
  let ulo = (Math.imul(ahi, bhi) >>> 0) + (mulhu32(alo, bhi) >>> 0) + (mulhu32(ahi, blo) >>> 0) + carry;
  let uhi = (mulhu32(ahi, bhi) + Math.floor(ulo / 0x100000000)) | 0;
  ulo = (ulo % 0x100000000) | 0;
  if (ahi < 0) {
    uhi = (uhi - bhi - ((ulo ^ SIGN_BIT) < (blo ^ SIGN_BIT) ? 1 : 0)) | 0;
    ulo = (ulo - blo) | 0;
  }
  if (bhi < 0) {
    uhi = (uhi - ahi - ((ulo ^ SIGN_BIT) < (alo ^ SIGN_BIT) ? 1 : 0)) | 0;
    ulo = (ulo - alo) | 0;
  }
  const sign = rhi >> 31;
  return ulo !== sign || uhi !== sign;
}

/**
 * XOR with it maps unsigned 32-bit order onto signed order: a <u b iff (a ^ SIGN_BIT) < (b ^ SIGN_BIT). The
 * comparisons below use it instead of `a >>> 0 < b >>> 0`, whose operands leave int32 for negative inputs:
 * the interpreter allocates them as heap numbers, and V8's optimised code, fed small values early in the
 * boot, deoptimised ("lost precision") at the first one (docs/decisions/0005, Round 5).
 */
export const SIGN_BIT = -0x80000000;

/** PARITY[b] = PF for a result whose low byte is b (set when the number of 1 bits is even). */
const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let n = 0;
  for (let b = i; b !== 0; b >>= 1) n += b & 1;
  PARITY[i] = n & 1 ? 0 : FLAG_PF;
}

/** Unsigned a < b for 64-bit values as (lo, hi) pairs. */
export function ult64(alo: number, ahi: number, blo: number, bhi: number): boolean {
  return (ahi ^ SIGN_BIT) < (bhi ^ SIGN_BIT) || (ahi === bhi && (alo ^ SIGN_BIT) < (blo ^ SIGN_BIT));
}

/** Mask of an operand size in bytes (1, 2, 4) as a non-negative double. */
export function sizeMask(size: number): number {
  return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
}

export class FlagUnit {
  /** RFLAGS. The status bits are valid only while lazyOp === LazyOp.None. Bit 1 is always set. */
  flagsReg = 2;
  lazyOp: number = LazyOp.None;
  /** Operand size in bytes of the pending operation (1, 2, 4, 8). */
  lzSize = 4;
  /** Operands and result: sizes 1-2 masked to the size, size 4 int32 (hi unused); size 8 (lo, hi) pairs. */
  lzA = 0;
  lzAHi = 0;
  lzB = 0;
  lzBHi = 0;
  lzR = 0;
  lzRHi = 0;
  /**
   * Carry-in for ADC/SBB, preserved CF for INC/DEC (-1: CF is the overflow of the deferred 64-bit IMUL in
   * the df* fields), explicit C/O/A bits for LazyOp.Result.
   */
  lzCin = 0;
  /** Operands of a 64-bit IMUL whose CF an INC/DEC preserves without computing it (see carryForIncDec). */
  dfA = 0;
  dfAHi = 0;
  dfB = 0;
  dfBHi = 0;
  dfRHi = 0;

  /**
   * The CF an INC/DEC must preserve: its value, or -1 when it stays deferred (the expensive 64-bit IMUL
   * overflow is computed only if something reads CF later).
   */
  carryForIncDec(): number {
    const op = this.lazyOp;
    if (op === LazyOp.Imul64) {
      this.dfA = this.lzA;
      this.dfAHi = this.lzAHi;
      this.dfB = this.lzB;
      this.dfBHi = this.lzBHi;
      this.dfRHi = this.lzRHi;
      return -1;
    }
    if ((op === LazyOp.Inc || op === LazyOp.Dec) && this.lzCin < 0) return -1;
    return this.getCF();
  }

  /** Records a 1/2/4-byte operation; a, b, r as `usize` gives them (masked; int32 for size 4). */
  setLazy(op: number, size: number, a: number, b: number, r: number, cin: number): void {
    this.lazyOp = op;
    this.lzSize = size;
    this.lzA = a;
    this.lzB = b;
    this.lzR = r;
    this.lzCin = cin;
  }

  /** Records an 8-byte operation. */
  setLazy64(
    op: number,
    alo: number,
    ahi: number,
    blo: number,
    bhi: number,
    rlo: number,
    rhi: number,
    cin: number,
  ): void {
    this.lazyOp = op;
    this.lzSize = 8;
    this.lzA = alo;
    this.lzAHi = ahi;
    this.lzB = blo;
    this.lzBHi = bhi;
    this.lzR = rlo;
    this.lzRHi = rhi;
    this.lzCin = cin;
  }

  /** Flags from a result only: ZF/SF/PF computed lazily; CF, OF, AF given now (shifts, logic, MUL...). */
  setResultFlags(size: number, rlo: number, rhi: number, cf: number, of: number, af: number): void {
    this.lazyOp = LazyOp.Result;
    this.lzSize = size;
    this.lzR = size >= 4 ? rlo | 0 : rlo & (size === 1 ? 0xff : 0xffff);
    this.lzRHi = rhi;
    this.lzCin = (cf & 1) | ((of & 1) << 1) | ((af & 1) << 2);
  }

  getCF(): number {
    switch (this.lazyOp) {
      case LazyOp.None:
        return this.flagsReg & 1;
      case LazyOp.Add:
        if (this.lzSize === 8) return ult64(this.lzR, this.lzRHi, this.lzA, this.lzAHi) ? 1 : 0;
        return (this.lzR ^ SIGN_BIT) < (this.lzA ^ SIGN_BIT) ? 1 : 0;
      case LazyOp.Adc:
        if (this.lzSize === 8) {
          if (ult64(this.lzR, this.lzRHi, this.lzA, this.lzAHi)) return 1;
          return this.lzCin !== 0 && this.lzR === this.lzA && this.lzRHi === this.lzAHi ? 1 : 0;
        }
        return (this.lzR ^ SIGN_BIT) < (this.lzA ^ SIGN_BIT) || (this.lzCin !== 0 && this.lzR === this.lzA)
          ? 1
          : 0;
      case LazyOp.Sub:
        if (this.lzSize === 8) return ult64(this.lzA, this.lzAHi, this.lzB, this.lzBHi) ? 1 : 0;
        return (this.lzA ^ SIGN_BIT) < (this.lzB ^ SIGN_BIT) ? 1 : 0;
      case LazyOp.Sbb:
        if (this.lzSize === 8) {
          if (ult64(this.lzA, this.lzAHi, this.lzB, this.lzBHi)) return 1;
          return this.lzCin !== 0 && this.lzA === this.lzB && this.lzAHi === this.lzBHi ? 1 : 0;
        }
        return (this.lzA ^ SIGN_BIT) < (this.lzB ^ SIGN_BIT) || (this.lzCin !== 0 && this.lzA === this.lzB)
          ? 1
          : 0;
      case LazyOp.Result:
        return this.lzCin & 1;
      case LazyOp.Imul64:
        return imul64Overflows(this.lzA, this.lzAHi, this.lzB, this.lzBHi, this.lzRHi) ? 1 : 0;
      default:
        if (this.lzCin >= 0) return this.lzCin;
        return imul64Overflows(this.dfA, this.dfAHi, this.dfB, this.dfBHi, this.dfRHi) ? 1 : 0;
    }
  }

  getZF(): number {
    if (this.lazyOp === LazyOp.None) return (this.flagsReg >> 6) & 1;
    if (this.lzSize === 8) return (this.lzR | this.lzRHi) === 0 ? 1 : 0;
    return this.lzR === 0 ? 1 : 0;
  }

  getSF(): number {
    if (this.lazyOp === LazyOp.None) return (this.flagsReg >> 7) & 1;
    switch (this.lzSize) {
      case 1:
        return (this.lzR >> 7) & 1;
      case 2:
        return (this.lzR >> 15) & 1;
      case 4:
        return this.lzR >>> 31;
      default:
        return this.lzRHi >>> 31;
    }
  }

  getPF(): number {
    if (this.lazyOp === LazyOp.None) return (this.flagsReg >> 2) & 1;
    return PARITY[this.lzR & 0xff]! >> 2;
  }

  getAF(): number {
    switch (this.lazyOp) {
      case LazyOp.None:
        return (this.flagsReg >> 4) & 1;
      case LazyOp.Result:
        return (this.lzCin >> 2) & 1;
      case LazyOp.Imul64:
        return 0;
      case LazyOp.Inc:
      case LazyOp.Dec:
        return ((this.lzA ^ 1 ^ this.lzR) >> 4) & 1;
      default:
        return ((this.lzA ^ this.lzB ^ this.lzR) >> 4) & 1;
    }
  }

  getOF(): number {
    let x: number;
    let xh: number;
    switch (this.lazyOp) {
      case LazyOp.None:
        return (this.flagsReg >> 11) & 1;
      case LazyOp.Result:
        return (this.lzCin >> 1) & 1;
      case LazyOp.Imul64:
        return imul64Overflows(this.lzA, this.lzAHi, this.lzB, this.lzBHi, this.lzRHi) ? 1 : 0;
      case LazyOp.Add:
      case LazyOp.Adc:
        x = (this.lzA ^ this.lzR) & (this.lzB ^ this.lzR);
        xh = (this.lzAHi ^ this.lzRHi) & (this.lzBHi ^ this.lzRHi);
        break;
      case LazyOp.Sub:
      case LazyOp.Sbb:
        x = (this.lzA ^ this.lzB) & (this.lzA ^ this.lzR);
        xh = (this.lzAHi ^ this.lzBHi) & (this.lzAHi ^ this.lzRHi);
        break;
      case LazyOp.Inc:
        // Overflow iff the result is the smallest negative value of the size.
        x = ~this.lzA & this.lzR;
        xh = ~this.lzAHi & this.lzRHi;
        break;
      default:
        x = this.lzA & ~this.lzR;
        xh = this.lzAHi & ~this.lzRHi;
        break;
    }
    switch (this.lzSize) {
      case 1:
        return (x >> 7) & 1;
      case 2:
        return (x >> 15) & 1;
      case 4:
        return (x >>> 31) & 1;
      default:
        return (xh >>> 31) & 1;
    }
  }

  /** Materializes the lazy flags into flagsReg and returns RFLAGS (low 32 bits). */
  getFlags(): number {
    if (this.lazyOp !== LazyOp.None) {
      const f =
        this.getCF() |
        (this.getPF() << 2) |
        (this.getAF() << 4) |
        (this.getZF() << 6) |
        (this.getSF() << 7) |
        (this.getOF() << 11);
      this.flagsReg = (this.flagsReg & ~FLAGS_STATUS) | f;
      this.lazyOp = LazyOp.None;
    }
    return this.flagsReg;
  }

  /** Replaces the status flags selected by `mask` with those of `bits` (other RFLAGS bits untouched). */
  setStatus(mask: number, bits: number): void {
    this.getFlags();
    this.flagsReg = (this.flagsReg & ~mask) | (bits & mask);
  }

  setCF(v: number): void {
    this.setStatus(FLAG_CF, v ? FLAG_CF : 0);
  }

  /** Evaluates condition code cc (0..15, SDM Vol. 1 B.1). */
  cond(cc: number): boolean {
    let r: number;
    if (this.lazyOp === LazyOp.Sub && this.lzSize === 4) {
      // Fast path for CMP/SUB of 32-bit values (the commonest flag producer before Jcc).
      const a = this.lzA;
      const b = this.lzB;
      switch (cc >> 1) {
        case 1:
          r = (a ^ SIGN_BIT) < (b ^ SIGN_BIT) ? 1 : 0;
          break;
        case 2:
          r = a === b ? 1 : 0;
          break;
        case 3:
          r = (a ^ SIGN_BIT) <= (b ^ SIGN_BIT) ? 1 : 0;
          break;
        case 6:
          r = (a | 0) < (b | 0) ? 1 : 0;
          break;
        case 7:
          r = (a | 0) <= (b | 0) ? 1 : 0;
          break;
        default:
          r = this.condSlow(cc >> 1);
      }
    } else r = this.condSlow(cc >> 1);
    return (r ^ (cc & 1)) !== 0;
  }

  private condSlow(c: number): number {
    switch (c) {
      case 0:
        return this.getOF();
      case 1:
        return this.getCF();
      case 2:
        return this.getZF();
      case 3:
        return this.getCF() | this.getZF();
      case 4:
        return this.getSF();
      case 5:
        return this.getPF();
      case 6:
        return this.getSF() ^ this.getOF();
      default:
        return this.getZF() | (this.getSF() ^ this.getOF());
    }
  }
}

export { FLAG_AF, FLAG_CF, FLAG_OF, FLAG_PF, FLAG_SF, FLAG_ZF };
