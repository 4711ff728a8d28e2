// Owns: what the translator knows about instruction forms before it emits anything: which forms are
// emitted inline (the rest call their interpreter handler), which registers a unit touches and which a
// handler call must synchronise, where each block of a unit can go, and which status flags are live after
// each instruction (a fault, exit or helper call counts as a use of all of them, so state at a fault is
// exact).
// Must not: emit code (unit.ts) or decide semantics: the forms listed here are those unit.ts implements
// with exactly the interpreter handler's behaviour.
// Spec: Intel SDM Vol. 1 3.4.3 (flags), Vol. 2 (the instructions listed); opcode-table.ts (r:/w: flags).

import { aluHandlers } from "../alu.js";
import { bitHandlers } from "../bits.js";
import { dataHandlers } from "../data.js";
import type { Insn } from "../insn.js";
import { OpKind, PFX_LOCK } from "../insn.js";
import { muldivHandlers } from "../muldiv.js";
import { FLAGS_STATUS, type OpcodeEntry } from "../opcode-table.js";
import { shiftHandlers } from "../shift.js";
import { sseExtHandlers } from "../sse-ext.js";
import { sseFloatHandlers } from "../sse-float.js";
import { sseIntHandlers } from "../sse-int.js";
import { x87Handlers } from "../x87.js";
import { LZ_ADC, LZ_ADD, LZ_RESULT, LZ_SBB, LZ_SUB } from "./flags-emit.js";
import { EndKind, type UnitPlan } from "./plan.js";

export const ALU: Record<string, { op: number; write: boolean; logic: boolean }> = {
  add: { op: LZ_ADD, write: true, logic: false },
  adc: { op: LZ_ADC, write: true, logic: false },
  sub: { op: LZ_SUB, write: true, logic: false },
  sbb: { op: LZ_SBB, write: true, logic: false },
  cmp: { op: LZ_SUB, write: false, logic: false },
  and: { op: LZ_RESULT, write: true, logic: true },
  or: { op: LZ_RESULT, write: true, logic: true },
  xor: { op: LZ_RESULT, write: true, logic: true },
  test: { op: LZ_RESULT, write: false, logic: true },
};

/**
 * Handler names as the engine's internalized strings. The opcode table's names are cut out of its row text
 * (not internalized), so every `===` against a literal and every `switch` case was a full string compare
 * (a builtin call each: the translator's single largest cost in its per-unit passes); internalized, they
 * are pointer compares. Property keys are internalized, which is how one is obtained. Cached in a slot per
 * `Insn.op` (a map keyed by the name cost a string hash per question), valid for the entry it was made for
 * (the table grows as instruction sets are added: nothing is computed for it ahead).
 */
const OP_SLOTS = 4096;
const namedEntry = new Array<OpcodeEntry | null>(OP_SLOTS).fill(null);
const entryName = new Array<string>(OP_SLOTS).fill("");

export function handlerName(d: Insn): string {
  const e = d.entry!;
  const op = d.op;
  if (op < 0 || op >= OP_SLOTS) return e.handler;
  if (namedEntry[op] !== e) {
    namedEntry[op] = e;
    entryName[op] = Object.keys({ [e.handler]: 0 })[0]!;
  }
  return entryName[op]!;
}

export function sizeMask(size: number): [number, number] {
  return size === 8 ? [-1, -1] : size === 4 ? [-1, 0] : size === 2 ? [0xffff, 0] : [0xff, 0];
}

function isOperand(k: number): boolean {
  return k === OpKind.Reg || k === OpKind.RegHigh || k === OpKind.Mem || k === OpKind.Imm;
}

/** Whether d is emitted inline (the rest goes through its handler). */
export function inlineForm(d: Insn): boolean {
  const e = d.entry;
  if (e === null) return false;
  // LOCK: only memory destinations decode with it; one processor runs one instruction at a time, so the
  // locked forms are the plain ones (as for the interpreter's handlers).
  if (d.prefixes & PFX_LOCK && d.k0 !== OpKind.Mem) return false;
  const h = handlerName(d);
  const k0 = d.k0;
  const k1 = d.k1;
  switch (h) {
    case "mov":
      if (k0 === OpKind.Mem) return k1 === OpKind.Reg || k1 === OpKind.RegHigh || k1 === OpKind.Imm;
      return (k0 === OpKind.Reg || k0 === OpKind.RegHigh) && isOperand(k1);
    case "movzx":
    case "movsx":
      return k0 === OpKind.Reg && (k1 === OpKind.Reg || k1 === OpKind.RegHigh || k1 === OpKind.Mem);
    case "lea":
      return k0 === OpKind.Reg;
    case "add":
    case "adc":
    case "sub":
    case "sbb":
    case "cmp":
    case "and":
    case "or":
    case "xor":
    case "test":
      return isOperand(k0) && k0 !== OpKind.Imm && isOperand(k1) && !(k0 === OpKind.Mem && k1 === OpKind.Mem);
    case "inc":
    case "dec":
    case "neg":
    case "not":
      return k0 === OpKind.Reg || k0 === OpKind.RegHigh || k0 === OpKind.Mem;
    case "push":
      return d.osize === 8 && (k0 === OpKind.Reg || k0 === OpKind.Imm || k0 === OpKind.Mem);
    case "pop":
      return d.osize === 8 && k0 === OpKind.Reg;
    case "setcc":
      return k0 === OpKind.Reg || k0 === OpKind.RegHigh || k0 === OpKind.Mem;
    case "cmovcc":
      return k0 === OpKind.Reg && (k1 === OpKind.Reg || k1 === OpKind.Mem);
    case "xchg":
      return d.s0 >= 4 && (k0 === OpKind.Reg || k0 === OpKind.Mem) && k1 === OpKind.Reg;
    case "cmpxchg":
    case "xadd":
      return (k0 === OpKind.Reg || k0 === OpKind.Mem) && k1 === OpKind.Reg;
    case "cbw":
    case "cwd":
      return d.osize >= 4;
    case "nop":
      return true;
    case "imul":
      return (
        (d.s0 === 4 || d.s0 === 8) &&
        k0 === OpKind.Reg &&
        (k1 === OpKind.Reg || k1 === OpKind.Mem) &&
        (d.k2 === OpKind.None || d.k2 === OpKind.Imm)
      );
    case "shl":
    case "shr":
    case "sar":
      // Byte and word shifts by a constant below the operand's width (xz's range decoder shifts its 16-bit
      // probabilities by 5, tens of millions of times in a compressed kernel's decompressor); counts of
      // the width or more (masked to 5 bits, not to the width) and CL counts stay with the handler.
      if (d.s0 === 1 || d.s0 === 2) {
        const n = d.immLo & 31;
        return (
          (k0 === OpKind.Reg || k0 === OpKind.RegHigh || k0 === OpKind.Mem) &&
          k1 === OpKind.Imm &&
          n >= 1 &&
          n < d.s0 * 8
        );
      }
      return (
        (d.s0 === 4 || d.s0 === 8) &&
        (k0 === OpKind.Reg || k0 === OpKind.Mem) &&
        (k1 === OpKind.Imm || (k1 === OpKind.Reg && d.r1 === 1))
      );
    case "rol":
    case "ror":
      return (
        (d.s0 === 4 || d.s0 === 8) &&
        (k0 === OpKind.Reg || k0 === OpKind.Mem) &&
        (k1 === OpKind.Imm || (k1 === OpKind.Reg && d.r1 === 1))
      );
    case "bt":
    case "bts":
    case "btr":
    case "btc":
      return (d.s0 === 4 || d.s0 === 8) && k0 === OpKind.Reg && (k1 === OpKind.Imm || k1 === OpKind.Reg);
    default:
      return false;
  }
}

/**
 * Handlers whose only general-purpose registers are their operands' (slots, base, index) and RAX, RCX,
 * RDX: around their calls a unit writes back and reloads just those (every other handler: all).
 */
const OPERAND_REGS_ONLY = new Set<string>(
  [
    aluHandlers,
    bitHandlers,
    dataHandlers,
    muldivHandlers,
    shiftHandlers,
    sseIntHandlers,
    sseFloatHandlers,
    sseExtHandlers,
    x87Handlers,
  ].flatMap((g) => Object.keys(g)),
);
OPERAND_REGS_ONLY.delete("cmpxchg8b");
OPERAND_REGS_ONLY.delete("xlat");

/** The registers a helper call for d must write back before and reload after (a bit mask). */
export function helperRegisters(d: Insn, touched: number): number {
  if (!OPERAND_REGS_ONLY.has(handlerName(d))) return touched;
  let m = 0b111;
  const reg = (k: number, r: number): void => {
    if (k === OpKind.Reg || k === OpKind.RegHigh) m |= 1 << r;
  };
  reg(d.k0, d.r0);
  reg(d.k1, d.r1);
  reg(d.k2, d.r2);
  if (d.hasMem) {
    if (d.base >= 0) m |= 1 << d.base;
    if (d.index >= 0) m |= 1 << d.index;
  }
  return m & touched;
}

/** h: from handlerName (so these are pointer compares). */
function isShift(h: string): boolean {
  return h === "shl" || h === "shr" || h === "sar" || h === "rol" || h === "ror";
}

/** Whether a shift or rotate may leave the flags unchanged (a count that can be 0 after masking). */
function mayKeepFlags(d: Insn): boolean {
  return d.k1 !== OpKind.Imm || (d.immLo & (d.s0 === 8 ? 63 : 31)) === 0;
}

/**
 * Instructions that can neither fault nor exit (no memory access, no helper): their flags may be dead.
 * `inline`: inlineForm(d), computed once per unit by the caller.
 */
function quiet(d: Insn, inline: boolean): boolean {
  if (!inline) return false;
  const h = handlerName(d);
  if (h === "push" || h === "pop") return false;
  return !d.hasMem || h === "lea" || h === "nop";
}

/** inlineForm of every instruction of the plan (the liveness pass and the translator both ask). */
export function inlineForms(plan: UnitPlan): Uint8Array {
  const out = new Uint8Array(plan.insns.length);
  for (let i = 0; i < out.length; i++) out[i] = inlineForm(plan.insns[i]!) ? 1 : 0;
  return out;
}

/** The general-purpose registers a unit's code may touch (loaded at entry, written back at exits). */
export function touchedRegisters(plan: UnitPlan): number {
  let m = (1 << 0) | (1 << 2) | (1 << 4); // RAX, RDX (CBW/CWD), RSP (stack forms)
  const reg = (k: number, r: number): void => {
    if (k === OpKind.Reg || k === OpKind.RegHigh) m |= 1 << r;
  };
  for (const d of plan.insns) {
    reg(d.k0, d.r0);
    reg(d.k1, d.r1);
    reg(d.k2, d.r2);
    if (d.hasMem) {
      if (d.base >= 0) m |= 1 << d.base;
      if (d.index >= 0) m |= 1 << d.index;
    }
  }
  return m & 0xffff;
}

/**
 * Where a unit checks its budget, and how many instructions it may then retire before the next check:
 * at entries (the run loop may start there) and loop heads (targets of backward branches). A block
 * reached only forward from a check is covered by that check: `span[i]` is the longest run of
 * instructions from the start of checked block i to the next check or exit, so the unit never retires
 * more than its budget (it may stop early; the run loop then interprets up to the budget).
 */
export function budgetChecks(plan: UnitPlan, succ: Int32Array): { checked: Uint8Array; span: Int32Array } {
  const n = plan.blocks.length;
  const checked = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (plan.blocks[i]!.entry) checked[i] = 1;
    for (let k = 2 * i; k < 2 * i + 2; k++) {
      const s = succ[k]!;
      if (s >= 0 && s <= i) checked[s] = 1;
    }
  }
  const span = new Int32Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let longest = 0;
    for (let k = 2 * i; k < 2 * i + 2; k++) {
      const s = succ[k]!;
      if (s > i && checked[s] === 0) longest = Math.max(longest, span[s]!);
    }
    span[i] = plan.blocks[i]!.insns.length + longest;
  }
  return { checked, span };
}

/**
 * Flags live after each instruction. A block that checks the budget starts live in all flags (leaving
 * there, the run loop sees them all), as does any exit; other blocks, reached only from the unit's own
 * earlier blocks, start live in what they read before writing.
 */
export function flagLiveness(
  plan: UnitPlan,
  checked: Uint8Array,
  succ: Int32Array,
  inline: Uint8Array,
): Int32Array {
  const ALL = FLAGS_STATUS;
  const n = plan.blocks.length;
  const after = new Int32Array(plan.insns.length);
  const liveIn = new Int32Array(n);
  // Successors of an unchecked block come later (a backward branch target is checked): one pass from
  // the end sees every unchecked successor's live-in before it is needed.
  for (let i = n - 1; i >= 0; i--) {
    const b = plan.blocks[i]!;
    let live = 0;
    for (let k = 2 * i; k < 2 * i + 2; k++) {
      const s = succ[k]!;
      if (s === NO_SUCCESSOR) continue;
      live |= s < 0 || checked[s] === 1 || s <= i ? ALL : liveIn[s]!;
    }
    for (let k = b.insns.length - 1; k >= 0; k--) {
      const d = b.insns[k]!;
      after[b.first + k] = live;
      const e = d.entry!;
      const w = mayKeepFlags(d) && isShift(handlerName(d)) ? 0 : e.flagsWritten & ALL;
      if (!quiet(d, inline[b.first + k] === 1)) live = ALL;
      else live = (live & ~w) | (e.flagsRead & ALL);
    }
    liveIn[i] = checked[i] === 1 ? ALL : live;
  }
  return after;
}

/** In a successor table: the block has no second successor. */
export const NO_SUCCESSOR = -2;

/**
 * Successor block indexes of every block, two slots per block (block i: 2i, 2i+1): a block index, -1 for
 * any exit from the unit, or NO_SUCCESSOR. Computed once per unit for the passes that walk the graph.
 */
export function successorTable(plan: UnitPlan): Int32Array {
  const n = plan.blocks.length;
  const out = new Int32Array(2 * n).fill(NO_SUCCESSOR);
  for (let i = 0; i < n; i++) {
    const b = plan.blocks[i]!;
    const last = b.insns[b.insns.length - 1]!;
    switch (b.kind) {
      case EndKind.Fall:
        out[2 * i] = plan.byStart.get(b.end) ?? -1;
        break;
      case EndKind.Jcc:
        out[2 * i] = plan.byStart.get(b.end + last.immLo) ?? -1;
        out[2 * i + 1] = plan.byStart.get(b.end) ?? -1;
        break;
      case EndKind.Jmp:
      case EndKind.Call:
        out[2 * i] = plan.byStart.get(b.end + last.immLo) ?? -1;
        break;
      default:
        out[2 * i] = -1;
    }
  }
  return out;
}
