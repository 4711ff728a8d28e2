// Owns: WebAssembly code that evaluates x86 status flags and condition codes from the lazy flag state of
// flags.ts (operation, size, operands a/b, result r, carry-in, RFLAGS) held in wasm locals, for a
// statically known operation and size: one flag, a condition code (with direct comparisons for SUB/CMP and
// logic results), or the whole RFLAGS value. The translator uses it where the flag producer is known; the
// runtime module (runtime.ts) dispatches to it on the run-time operation for the general case.
// Must not: differ from flags.ts: every formula here is the wasm form of the matching FlagUnit getter
// (values of sizes 1, 2 and 4 are kept zero-extended in i64 locals, so `a <u b` is the unsigned compare).
// Spec: Intel SDM Vol. 1 3.4.3 (status flags), B.1 (condition codes); flags.ts.

import { Op } from "./encoder.js";
import type { Emitter } from "./emitter.js";

/** flags.ts LazyOp values (a const enum there; repeated as numbers for the generated code). */
export const LZ_NONE = 0;
export const LZ_ADD = 1;
export const LZ_ADC = 2;
export const LZ_SUB = 3;
export const LZ_SBB = 4;
export const LZ_RESULT = 5;
export const LZ_INC = 6;
export const LZ_DEC = 7;

/** Where the lazy state is: locals (i64 a, b, r; i32 cin, flags) and, when static, the op and size. */
export interface FlagState {
  op: number;
  size: number;
  a: number;
  b: number;
  r: number;
  cin: number;
  flags: number;
  /** The carry-in local is known to be 0 (logic results: CF = OF = AF = 0). */
  cinZero?: boolean;
}

export const enum Flag {
  CF = 0,
  PF = 2,
  AF = 4,
  ZF = 6,
  SF = 7,
  OF = 11,
}

function signBit(e: Emitter, size: number): void {
  // Stack: i64 value -> i32 bit (size * 8 - 1).
  e.i64s(size * 8 - 1);
  e.op(Op.I64ShrU);
  e.op(Op.I32WrapI64);
  e.i32(1);
  e.op(Op.I32And);
}

function flagsBit(e: Emitter, s: FlagState, bit: number): void {
  e.get(s.flags);
  if (bit !== 0) {
    e.i32(bit);
    e.op(Op.I32ShrU);
  }
  e.i32(1);
  e.op(Op.I32And);
}

/** Pushes the sign-extended (to 64 bits) value of an i64 local holding a zero-extended size-byte value. */
export function signExtended(e: Emitter, local: number, size: number): void {
  e.get(local);
  if (size === 4) e.op(Op.I64Extend32S);
  else if (size === 2) e.op(Op.I64Extend16S);
  else if (size === 1) e.op(Op.I64Extend8S);
}

/** Pushes one status flag (i32 0 or 1). */
export function emitFlag(e: Emitter, f: Flag, s: FlagState): void {
  if (s.op === LZ_NONE) {
    flagsBit(e, s, f);
    return;
  }
  switch (f) {
    case Flag.CF:
      switch (s.op) {
        case LZ_ADD:
        case LZ_ADC:
          e.get(s.r);
          e.get(s.a);
          e.op(Op.I64LtU);
          if (s.op === LZ_ADC) {
            e.get(s.cin);
            e.get(s.r);
            e.get(s.a);
            e.op(Op.I64Eq);
            e.op(Op.I32And);
            e.op(Op.I32Or);
          }
          return;
        case LZ_SUB:
        case LZ_SBB:
          e.get(s.a);
          e.get(s.b);
          e.op(Op.I64LtU);
          if (s.op === LZ_SBB) {
            e.get(s.cin);
            e.get(s.a);
            e.get(s.b);
            e.op(Op.I64Eq);
            e.op(Op.I32And);
            e.op(Op.I32Or);
          }
          return;
        case LZ_RESULT:
          if (s.cinZero) e.i32(0);
          else {
            e.get(s.cin);
            e.i32(1);
            e.op(Op.I32And);
          }
          return;
        default:
          // INC/DEC: the preserved CF.
          e.get(s.cin);
          return;
      }
    case Flag.ZF:
      e.get(s.r);
      e.op(Op.I64Eqz);
      return;
    case Flag.SF:
      e.get(s.r);
      signBit(e, s.size);
      return;
    case Flag.PF:
      e.get(s.r);
      e.op(Op.I32WrapI64);
      e.i32(0xff);
      e.op(Op.I32And);
      e.op(Op.I32Popcnt);
      e.i32(1);
      e.op(Op.I32And);
      e.i32(1);
      e.op(Op.I32Xor);
      return;
    case Flag.AF:
      if (s.op === LZ_RESULT) {
        if (s.cinZero) e.i32(0);
        else {
          e.get(s.cin);
          e.i32(2);
          e.op(Op.I32ShrU);
          e.i32(1);
          e.op(Op.I32And);
        }
        return;
      }
      e.get(s.a);
      if (s.op === LZ_INC || s.op === LZ_DEC) e.i64s(1);
      else e.get(s.b);
      e.op(Op.I64Xor);
      e.get(s.r);
      e.op(Op.I64Xor);
      e.op(Op.I32WrapI64);
      e.i32(4);
      e.op(Op.I32ShrU);
      e.i32(1);
      e.op(Op.I32And);
      return;
    default:
      // OF
      switch (s.op) {
        case LZ_RESULT:
          if (s.cinZero) e.i32(0);
          else {
            e.get(s.cin);
            e.i32(1);
            e.op(Op.I32ShrU);
            e.i32(1);
            e.op(Op.I32And);
          }
          return;
        case LZ_ADD:
        case LZ_ADC:
          e.get(s.a);
          e.get(s.r);
          e.op(Op.I64Xor);
          e.get(s.b);
          e.get(s.r);
          e.op(Op.I64Xor);
          e.op(Op.I64And);
          break;
        case LZ_SUB:
        case LZ_SBB:
          e.get(s.a);
          e.get(s.b);
          e.op(Op.I64Xor);
          e.get(s.a);
          e.get(s.r);
          e.op(Op.I64Xor);
          e.op(Op.I64And);
          break;
        case LZ_INC:
          e.get(s.a);
          e.i64(-1, -1);
          e.op(Op.I64Xor);
          e.get(s.r);
          e.op(Op.I64And);
          break;
        default:
          e.get(s.r);
          e.i64(-1, -1);
          e.op(Op.I64Xor);
          e.get(s.a);
          e.op(Op.I64And);
          break;
      }
      signBit(e, s.size);
      return;
  }
}

/** Pushes whether condition code cc (0..15) holds (i32 0 or 1). */
export function emitCond(e: Emitter, cc: number, s: FlagState): void {
  const c = cc >> 1;
  const sub = s.op === LZ_SUB;
  const logic = s.op === LZ_RESULT && s.cinZero === true;
  if (sub && (c === 1 || c === 2 || c === 3 || c === 6 || c === 7)) {
    if (c === 6 || c === 7) {
      signExtended(e, s.a, s.size);
      signExtended(e, s.b, s.size);
      e.op(c === 6 ? Op.I64LtS : Op.I64LeS);
    } else {
      e.get(s.a);
      e.get(s.b);
      e.op(c === 1 ? Op.I64LtU : c === 2 ? Op.I64Eq : Op.I64LeU);
    }
  } else if (logic && c !== 5) {
    switch (c) {
      case 0:
      case 1:
        e.i32(0);
        break;
      case 2:
      case 3:
        e.get(s.r);
        e.op(Op.I64Eqz);
        break;
      case 4:
      case 6:
        emitFlag(e, Flag.SF, s);
        break;
      default:
        // LE: ZF | SF, i.e. the result as a signed value <= 0.
        signExtended(e, s.r, s.size);
        e.i64s(0);
        e.op(Op.I64LeS);
        break;
    }
  } else {
    switch (c) {
      case 0:
        emitFlag(e, Flag.OF, s);
        break;
      case 1:
        emitFlag(e, Flag.CF, s);
        break;
      case 2:
        emitFlag(e, Flag.ZF, s);
        break;
      case 3:
        emitFlag(e, Flag.CF, s);
        emitFlag(e, Flag.ZF, s);
        e.op(Op.I32Or);
        break;
      case 4:
        emitFlag(e, Flag.SF, s);
        break;
      case 5:
        emitFlag(e, Flag.PF, s);
        break;
      case 6:
        emitFlag(e, Flag.SF, s);
        emitFlag(e, Flag.OF, s);
        e.op(Op.I32Xor);
        break;
      default:
        emitFlag(e, Flag.SF, s);
        emitFlag(e, Flag.OF, s);
        e.op(Op.I32Xor);
        emitFlag(e, Flag.ZF, s);
        e.op(Op.I32Or);
        break;
    }
  }
  if (cc & 1) e.op(Op.I32Eqz);
}

/** Pushes RFLAGS with the status flags computed from the state (FlagUnit.getFlags). */
export function emitMaterialize(e: Emitter, s: FlagState): void {
  e.get(s.flags);
  if (s.op === LZ_NONE) return;
  e.i32(~0x8d5);
  e.op(Op.I32And);
  for (const f of [Flag.CF, Flag.PF, Flag.AF, Flag.ZF, Flag.SF, Flag.OF]) {
    emitFlag(e, f, s);
    if (f !== 0) {
      e.i32(f);
      e.op(Op.I32Shl);
    }
    e.op(Op.I32Or);
  }
}
