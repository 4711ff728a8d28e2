// Owns: the decoded-instruction record (`Insn`) that the decoder fills and every handler reads, and the
// numeric operand kinds it uses. One record per cached instruction; handlers never allocate.
// Must not: hold architectural state or know about memory; it is a pure description of one instruction.
// Spec: Intel SDM Vol. 2A ch. 2 (instruction format: prefixes, opcode, ModRM, SIB, displacement, immediate).

import type { OpcodeEntry } from "./opcode-table.js";

/** What an operand slot refers to after decoding. */
export const enum OpKind {
  None = 0,
  /** General-purpose register `reg` (0..15) at the slot's size; for size 1 without REX, 4..7 are AH..BH (see RegHigh). */
  Reg = 1,
  /** AH, CH, DH, BH: bits 8..15 of register `reg` (0..3). */
  RegHigh = 2,
  /** Memory at the effective address computed for this instruction (`CpuCore.eaLo/eaHi`, segment `Insn.seg`). */
  Mem = 3,
  /** Immediate: `Insn.immLo/immHi` (already sign- or zero-extended to the slot's size). */
  Imm = 4,
  /** Segment register `reg` (Seg numbering). */
  Sreg = 5,
  /** Control register `reg` (CR0..CR15). */
  Creg = 6,
  /** Debug register `reg` (DR0..DR7). */
  Dreg = 7,
  /** XMM register `reg` (0..15). */
  Xmm = 8,
  /** MMX register `reg` (0..7). */
  Mmx = 9,
  /** A relative branch target: `Insn.immLo/immHi` is the sign-extended displacement from the next RIP. */
  Rel = 10,
  /** A direct far pointer (JMP/CALL ptr16:16/32): offset in immLo, selector in imm2. */
  FarPtr = 11,
}

/** Decoding (code-segment) modes; part of the decode-cache key. */
export const enum CodeMode {
  Bits16 = 0,
  Bits32 = 1,
  Bits64 = 2,
}

/** Prefix bits recorded in `Insn.prefixes`. */
export const PFX_LOCK = 1;
export const PFX_REP = 2; // F3 (REP/REPE)
export const PFX_REPNE = 4; // F2
export const PFX_OPSIZE = 8; // 66 seen
export const PFX_ADSIZE = 16; // 67 seen
export const PFX_REX = 32; // any REX prefix (changes byte-register numbering)
export const PFX_SEG = 64; // explicit segment override

export class Insn {
  /** Table entry this instruction decoded to (mnemonic, operand specs, flags masks, handler name). */
  entry: OpcodeEntry | null = null;
  /** Index of `entry` in OPCODES; the interpreter dispatches on it. */
  op = 0;
  /** Total length in bytes (1..15). */
  len = 0;
  /** CodeMode this was decoded in (a cached record is reused only in the same mode). */
  mode = 0;
  /** Effective operand size in bytes for `v`-typed operands (2, 4 or 8). */
  osize = 4;
  /** Effective address size in bytes (2, 4 or 8). */
  asize = 4;
  prefixes = 0;
  /** REX byte (0 when absent). */
  rex = 0;
  /** Opcode byte (last byte of the opcode proper) — condition codes and +r registers come from it. */
  opcode = 0;
  /** ModRM fields, already extended with REX.R/REX.B (reg/rm); -1 when there is no ModRM. */
  modrm = -1;
  mod = 0;
  reg = 0;
  rm = 0;
  /** Memory operand: base and index GPRs (-1 = none), scale as a shift (0..3), sign-extended displacement. */
  hasMem = false;
  base = -1;
  index = -1;
  scale = 0;
  dispLo = 0;
  dispHi = 0;
  ripRel = false;
  /** Segment of the memory operand and of string sources (default or override, Seg numbering). */
  seg = 3;
  /** Operand slots 0..2: kind (OpKind), register number, size in bytes. */
  k0 = 0;
  r0 = 0;
  s0 = 0;
  k1 = 0;
  r1 = 0;
  s1 = 0;
  k2 = 0;
  r2 = 0;
  s2 = 0;
  /** First immediate or relative displacement (sign/zero-extended to 64 bits as (lo, hi)). */
  immLo = 0;
  immHi = 0;
  /** Second immediate (ENTER's nesting level, far pointer selector). */
  imm2 = 0;
  /**
   * A memory destination (slot 0) is read and then written: the read is translated with write intent, so
   * a read-only or absent page faults with the W bit of the #PF error code set (SDM Vol. 3A 4.7).
   */
  rmw = false;
  /**
   * Translation state (cpu.ts): times a block was looked up here, and the translated block starting at this
   * instruction (a block-translator.ts Block; typed opaquely so this module stays below the translator).
   */
  hits = 0;
  block: object | null = null;
  /**
   * The interpreter's handler for this instruction, chosen when it was decoded (cpu.ts): a variant
   * specialised for its operand form (fast-forms.ts) or the row's generic handler. Typed opaquely (a
   * `Handler` of core.ts) so this module stays below the processor state.
   */
  fn: ((c: never, d: Insn) => void) | null = null;
  /** For an instruction straddling into the next page: the RAM page (offset >> 12) of its tail; else -1. */
  page2 = -1;
  /** For a straddling instruction: its bytes in the next page (compared at every fetch). */
  tail: Uint8Array | null = null;
  /** The block index of this instruction in its page's translation unit (wasm/tier.ts) when it is an entry; -2 inside the unit otherwise; else -1. */
  unitEntry = -1;

  /** Copies every field from another record (used when a page-straddling decode is cached nowhere). */
  copyFrom(o: Insn): void {
    this.entry = o.entry;
    this.op = o.op;
    this.len = o.len;
    this.mode = o.mode;
    this.osize = o.osize;
    this.asize = o.asize;
    this.prefixes = o.prefixes;
    this.rex = o.rex;
    this.opcode = o.opcode;
    this.modrm = o.modrm;
    this.mod = o.mod;
    this.reg = o.reg;
    this.rm = o.rm;
    this.hasMem = o.hasMem;
    this.base = o.base;
    this.index = o.index;
    this.scale = o.scale;
    this.dispLo = o.dispLo;
    this.dispHi = o.dispHi;
    this.ripRel = o.ripRel;
    this.rmw = o.rmw;
    this.seg = o.seg;
    this.k0 = o.k0;
    this.r0 = o.r0;
    this.s0 = o.s0;
    this.k1 = o.k1;
    this.r1 = o.r1;
    this.s1 = o.s1;
    this.k2 = o.k2;
    this.r2 = o.r2;
    this.s2 = o.s2;
    this.immLo = o.immLo;
    this.immHi = o.immHi;
    this.imm2 = o.imm2;
  }
}
