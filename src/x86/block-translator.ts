// Owns: basic-block translation — turning a run of decoded instructions (one guest page, one code mode) into a
// generated JavaScript function that executes them back to back, and the rules for where a block must end.
// The block calls the same handlers as the interpreter (with the decoded records as closure constants, so
// each call site is monomorphic and V8 can inline it), except for the commonest integer forms, which are
// emitted inline. See docs/decisions/0003-block-translation.md.
// Must not: decode bytes (decoder.ts), keep caches (cpu.ts owns the block cache and its invalidation), or
// change instruction semantics: a translated block must leave exactly the state the interpreter would.
// Spec: Intel SDM Vol. 3A 6.5-6.6 (precise exceptions: state at the faulting instruction), 8.1.3
// (self-modifying code: a write to code takes effect for the next instruction fetched).

import { aluHandlers } from "./alu.js";
import { bitHandlers } from "./bits.js";
import type { CpuCore, Handler } from "./core.js";
import { dataHandlers } from "./data.js";
import { type Insn, PFX_LOCK } from "./insn.js";
import { muldivHandlers } from "./muldiv.js";
import { shiftHandlers } from "./shift.js";
import { sseExtHandlers } from "./sse-ext.js";
import { sseFloatHandlers } from "./sse-float.js";
import { sseIntHandlers } from "./sse-int.js";
import { x87Handlers } from "./x87.js";

/** Most instructions in one block (bounds the generated source and the budget overshoot check). */
export const MAX_BLOCK_INSNS = 64;

/**
 * Executes a block: `rl` is the low half of RIP at entry (the block's first instruction), `n0` the run
 * loop's retired count at entry. On return RIP and the count describe the point where the block stopped.
 */
export type BlockFn = (c: CpuCore, rl: number, n0: number) => void;

export class Block {
  constructor(
    readonly fn: BlockFn,
    /** Number of instructions. */
    readonly n: number,
    /** Byte offset of each instruction from the block start (for precise fault state). */
    readonly offs: Int32Array,
    /** Byte offset of the last instruction (its start must be inside the CS limit at entry). */
    readonly lastOff: number,
    /** Length of the block in bytes. */
    readonly bytes: number,
  ) {}

  /** Instructions retired before the one at byte offset `off` (the faulting/exiting one). */
  indexOf(off: number): number {
    for (let i = 0; i < this.n; i++) if (this.offs[i] === off) return i;
    return 0;
  }
}

/**
 * Handlers that never change RIP, the processor mode, paging, RFLAGS.IF/TF, the interrupt shadow or the
 * retired count, and never read RIP or the count: such instructions may sit anywhere in a block. Any other
 * instruction ends its block (it runs last, with RIP and the count exact, and the run loop re-checks events
 * after it). Faults and exits are fine anywhere: they are thrown, and the run loop recovers the position.
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
]);

/** Straight-line handlers that write memory without a ModRM memory operand (stack pushes). */
const IMPLICIT_WRITES = new Set<string>(["push", "pusha", "pushf", "pushSeg", "enter"]);

/** Whether the instruction may continue a block (false: it must be the block's last instruction). */
export function isStraight(d: Insn): boolean {
  const e = d.entry;
  return e !== null && STRAIGHT.has(e.handler);
}

/** Generates the block function for instructions `ds` (consecutive, starting at the block start). */
export function translateBlock(ds: readonly Insn[], handlers: readonly Handler[], mode: number): Block {
  const n = ds.length;
  const offs = new Int32Array(n);
  // RIP values inside a block never wrap: the entry check (cpu.ts) refuses a block whose addresses would.
  const rip = (off: number): string => (mode === 0 ? `(rl + ${off}) & 0xffff` : `(rl + ${off}) | 0`);
  const src: string[] = [];
  let off = 0;
  for (let k = 0; k < n; k++) {
    const d = ds[k]!;
    offs[k] = off;
    const next = off + d.len;
    const last = k === n - 1;
    const straight = isStraight(d);
    src.push(`c.curRipLo = (rl + ${off}) | 0;`);
    if (!straight) {
      // The instruction may branch, exit or read RIP/the count: give it the interpreter's exact state.
      src.push(`c.ripLo = ${rip(next)};`, `c.count = n0 + ${k};`);
    } else if (d.ripRel) src.push(`c.ripLo = ${rip(next)};`);
    const inline = straight ? inlineForm(d, k) : null;
    if (inline !== null) src.push(inline);
    else {
      if (d.hasMem) src.push(`c.computeEA(d${k});`);
      src.push(`h${k}(c, d${k});`);
    }
    if (!straight) {
      src.push(`c.count = n0 + ${k + 1};`);
      break;
    }
    if (last) src.push(`c.ripLo = ${rip(next)};`, `c.count = n0 + ${k + 1};`);
    else if (inline === null && (d.hasMem || IMPLICIT_WRITES.has(d.entry!.handler))) {
      // A store may have hit code (this block's page included: the cache drop sets c.stop) or MMIO (a
      // posted exit sets c.attn): stop after this instruction, as the interpreter would look.
      src.push(`if ((c.attn | c.stop) !== 0) { c.ripLo = ${rip(next)}; c.count = n0 + ${k + 1}; return; }`);
    }
    off = next;
  }
  const names: string[] = [];
  for (let k = 0; k < n; k++) names.push(`h${k} = H[${k}]`, `d${k} = D[${k}]`);
  const body =
    `"use strict";\nconst ${names.join(", ")};\n` +
    `return function block(c, rl, n0) {\n${src.join("\n")}\n};`;
  const factory = new Function("H", "D", body) as (h: readonly Handler[], d: readonly Insn[]) => BlockFn;
  return new Block(
    factory(
      ds.map((d) => handlers[d.op]!),
      ds,
    ),
    n,
    offs,
    offs[n - 1]!,
    offs[n - 1]! + ds[n - 1]!.len,
  );
}

/**
 * Inline JavaScript for the commonest register-only forms, or null to call the handler. Only forms whose
 * result and flags are trivially the handler's are emitted; everything else goes through the handler.
 */
function inlineForm(d: Insn, _k: number): string | null {
  if (d.prefixes & PFX_LOCK) return null;
  return null;
}
