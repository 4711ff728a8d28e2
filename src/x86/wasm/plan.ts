// Owns: planning a translation unit: from the entry points seen on one guest-physical code page (64-bit
// code), the instructions reachable by falling through and by direct branches inside the page, split into
// basic blocks at every leader (entry, branch target, return address, instruction after an exit), each
// block with the way it ends. Every block start is an entry point of the unit.
// Must not: decode bytes itself (the caller's `at` decodes through the decode cache) or emit code.
// Spec: Intel SDM Vol. 2 Jcc, JMP, CALL, RET (relative targets: next RIP + displacement).

import type { Insn } from "../insn.js";
import type { OpcodeEntry } from "../opcode-table.js";
import { aluHandlers } from "../alu.js";
import { bitHandlers } from "../bits.js";
import { dataHandlers } from "../data.js";
import { muldivHandlers } from "../muldiv.js";
import { shiftHandlers } from "../shift.js";
import { sseExtHandlers } from "../sse-ext.js";
import { sseFloatHandlers } from "../sse-float.js";
import { sseIntHandlers } from "../sse-int.js";
import { x87Handlers } from "../x87.js";

/**
 * Handlers that never change RIP, the processor mode, paging, RFLAGS.IF/TF, the interrupt shadow or the
 * retired count, and never read RIP or the count: a unit may go on after calling one. After any other
 * instruction's handler the unit leaves (it runs with RIP and the count exact, and the run loop looks at
 * events after it). Faults and exits are fine anywhere: units report them.
 */
const STRAIGHT = new Set<string>([
  ...Object.keys(aluHandlers),
  ...Object.keys(bitHandlers),
  ...Object.keys(dataHandlers),
  ...Object.keys(muldivHandlers),
  ...Object.keys(shiftHandlers),
  ...Object.keys(sseIntHandlers),
  ...Object.keys(sseFloatHandlers),
  ...Object.keys(sseExtHandlers),
  ...Object.keys(x87Handlers),
  "push",
  "pop",
  "pusha",
  "popa",
  "pushf",
  "pushSeg",
  "enter",
  "leave",
  "nop",
  "nop0",
  "clc",
  "stc",
  "cmc",
  "cld",
  "std",
  // CLI only masks interrupts: nothing becomes deliverable, so the run loop need not look (cpu.ts inner()
  // goes on after it too). MOV r/m, Sreg only reads a selector.
  "cli",
  "movFromSreg",
]);

/**
 * String instructions without port I/O: a REP form may stop after a chunk with RIP back on itself; the
 * unit goes on after one unless its handler moved RIP (tier.ts checks after the call).
 */
const RESTARTABLE = new Set<string>(["movs", "stos", "lods", "cmps", "scas"]);

/** Whether a unit may go on after d (false: d must end its block, and the unit leaves after it). */
export function isStraight(d: Insn): boolean {
  return d.entry !== null && (classOf(d) & STRAIGHT_BIT) !== 0;
}

const STRAIGHT_BIT = 0x10;

/**
 * Per handler name (STRAIGHT_BIT when the unit may go on after it, and in the low bits the EndKind of its
 * 64-bit operand size form, Jcc..CallInd, else 0), decided once per opcode table row: planning asks for
 * every instruction of every unit, and a string switch plus two set lookups per question showed in the
 * profile (as did a map keyed by the name: a string hash each time).
 */
function handlerClass(h: string): number {
  let c = STRAIGHT.has(h) || RESTARTABLE.has(h) ? STRAIGHT_BIT : 0;
  switch (h) {
    case "jcc":
      c |= EndKind.Jcc;
      break;
    case "jmp":
      c |= EndKind.Jmp;
      break;
    case "call":
      c |= EndKind.Call;
      break;
    case "ret":
      c |= EndKind.Ret;
      break;
    case "jmpAbs":
      c |= EndKind.JmpInd;
      break;
    case "callAbs":
      c |= EndKind.CallInd;
      break;
    default:
      break;
  }
  return c;
}

/** handlerClass by `Insn.op` slot, valid for the entry it was computed for (as forms.ts handlerName). */
const OP_SLOTS = 4096;
const classedEntry = new Array<OpcodeEntry | null>(OP_SLOTS).fill(null);
const entryClass = new Uint8Array(OP_SLOTS);

function classOf(d: Insn): number {
  const e = d.entry!;
  const op = d.op;
  if (op < 0 || op >= OP_SLOTS) return handlerClass(e.handler);
  if (classedEntry[op] !== e) {
    classedEntry[op] = e;
    entryClass[op] = handlerClass(e.handler);
  }
  return entryClass[op]!;
}

/** How a block's last instruction leaves it. */
export const enum EndKind {
  /** The last instruction is straight: execution continues at `end` (another block, or an exit). */
  Fall = 0,
  /** Jcc rel (64-bit operand size): taken target and fall-through. */
  Jcc = 1,
  /** JMP rel. */
  Jmp = 2,
  /** CALL rel: push the return address, continue at the target. */
  Call = 3,
  /** RET / RET imm16. */
  Ret = 4,
  /** JMP r/m64. */
  JmpInd = 5,
  /** CALL r/m64. */
  CallInd = 6,
  /** Any other instruction that may change RIP, the mode or event state: its handler runs, then the unit exits. */
  Terminal = 7,
}

export interface PlanBlock {
  /** Page offset of the first instruction. */
  start: number;
  insns: Insn[];
  /** Page offset of each instruction. */
  offs: number[];
  /** Page offset after the last instruction. */
  end: number;
  kind: EndKind;
  /** Index of the block's first instruction in the unit's instruction table. */
  first: number;
  /**
   * The run loop may enter the unit here: a root (a block start the interpreter saw), a return address or
   * the instruction after a terminal one. Other blocks are reached only from the unit's own branches.
   */
  entry: boolean;
}

export interface UnitPlan {
  blocks: PlanBlock[];
  /** Block index by start offset. */
  byStart: Map<number, number>;
  /** Every instruction of the unit, block by block (the index helpers and exits report). */
  insns: Insn[];
  offs: number[];
  /** Per instruction: 1 when the unit may go on after it (forms.ts isStraight). */
  straight: Uint8Array;
}

/** The way instruction d ends a block, or -1 when it is straight (the block may continue after it). */
export function endKind(d: Insn): number {
  const c = classOf(d);
  if (d.osize === 8 && (c & 7) !== 0) return c & 7;
  return (c & STRAIGHT_BIT) !== 0 ? -1 : EndKind.Terminal;
}

/**
 * Plans the unit reachable from `roots` (page offsets). `at(po)` is the decoded 64-bit instruction at page
 * offset po, or null where the unit must stop (an instruction straddling the page end, undecodable bytes:
 * the interpreter runs those and raises their faults). At most `maxInsns` instructions are taken.
 */
export function planUnit(
  roots: Iterable<number>,
  at: (po: number) => Insn | null,
  maxInsns: number,
): UnitPlan {
  // Per page offset, in arrays kept from one plan to the next (planning is synchronous; cleared first, so
  // a throwing `at` leaves nothing behind): bit 1 leader, bit 2 entry; the instruction decoded there.
  const mark = planMarks;
  const seen = planSeen;
  mark.fill(0);
  seen.fill(undefined);
  let nSeen = 0;
  const work: number[] = [];
  for (const r of roots) {
    if (r >= 0 && r < 4096) {
      if ((mark[r]! & LEADER) === 0) work.push(r);
      mark[r]! |= LEADER | ENTRY;
    }
  }
  while (work.length > 0 && nSeen < maxInsns) {
    let po = work.pop()!;
    for (;;) {
      if (seen[po] !== undefined) {
        // Control merges into code walked before: it becomes a block start there.
        if ((mark[po]! & LEADER) === 0) {
          mark[po]! |= LEADER;
          work.push(po);
        }
        break;
      }
      const d = at(po);
      if (d === null) break;
      seen[po] = d;
      nSeen++;
      const next = po + d.len;
      const k = endKind(d);
      if (k < 0) {
        if (next >= 4096 || nSeen >= maxInsns) break;
        po = next;
        continue;
      }
      let t = -1;
      if (k === EndKind.Jcc || k === EndKind.Jmp || k === EndKind.Call) t = next + d.immLo;
      if (t >= 0 && t < 4096 && (mark[t]! & LEADER) === 0) {
        mark[t]! |= LEADER;
        work.push(t);
      }
      if (next < 4096) {
        if (k !== EndKind.Jmp && k !== EndKind.Ret && k !== EndKind.JmpInd && (mark[next]! & LEADER) === 0) {
          mark[next]! |= LEADER;
          work.push(next);
        }
        // After a call (its return) or an instruction run by its handler, the run loop comes back here.
        if (k === EndKind.Call || k === EndKind.CallInd || k === EndKind.Terminal) mark[next]! |= ENTRY;
      }
      break;
    }
  }
  const blocks: PlanBlock[] = [];
  const byStart = new Map<number, number>();
  const insns: Insn[] = [];
  const offs: number[] = [];
  for (let start = 0; start < 4096; start++) {
    const m = mark[start]!;
    if ((m & LEADER) === 0 || seen[start] === undefined) continue;
    const b: PlanBlock = {
      start,
      insns: [],
      offs: [],
      end: start,
      kind: EndKind.Fall,
      first: insns.length,
      entry: (m & ENTRY) !== 0,
    };
    let po = start;
    for (;;) {
      const d = seen[po]!;
      b.insns.push(d);
      b.offs.push(po);
      insns.push(d);
      offs.push(po);
      po += d.len;
      const k = endKind(d);
      if (k >= 0) {
        b.kind = k;
        break;
      }
      if (po >= 4096 || (mark[po]! & LEADER) !== 0 || seen[po] === undefined) break;
    }
    b.end = po;
    byStart.set(start, blocks.length);
    blocks.push(b);
  }
  const straight = new Uint8Array(insns.length);
  for (let i = 0; i < insns.length; i++) straight[i] = isStraight(insns[i]!) ? 1 : 0;
  return { blocks, byStart, insns, offs, straight };
}

const LEADER = 1;
const ENTRY = 2;
const planMarks = new Uint8Array(4096);
const planSeen = new Array<Insn | undefined>(4096).fill(undefined);
