// Owns: basic-block translation — turning a run of decoded instructions (one guest page, one code mode)
// into a generated JavaScript function that executes them back to back, and the rules for where a block
// must end.
// The block calls the same handlers as the interpreter (with the decoded records as closure constants, so
// each call site is monomorphic and V8 can inline it), except for the commonest integer forms, which are
// emitted inline. See docs/decisions/0003-block-translation.md.
// Must not: decode bytes (decoder.ts), keep caches (cpu.ts owns the block cache and its invalidation), or
// change instruction semantics: a translated block must leave exactly the state the interpreter would.
// Spec: Intel SDM Vol. 3A 6.5-6.6 (precise exceptions: state at the faulting instruction), 8.1.3
// (self-modifying code: a write to code takes effect for the next instruction fetched).

import { aluHandlers } from "./alu.js";
import { bitHandlers } from "./bits.js";
import { type CpuCore, type Handler, TLB_SIZE } from "./core.js";
import { dataHandlers } from "./data.js";
import { LazyOp } from "./flags.js";
import { type Insn, OpKind, PFX_LOCK } from "./insn.js";
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
 * loop's retired count at entry, `lim` the count the block must not pass (the run's budget). On return RIP
 * and the count describe the point where the block stopped. A block ending in a conditional jump back to
 * its own start loops inside the function while the budget allows a whole further pass.
 */
export type BlockFn = (c: CpuCore, rl: number, n0: number, lim: number) => void;

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
  let loops = false;
  let off = 0;
  for (let k = 0; k < n; k++) {
    const d = ds[k]!;
    offs[k] = off;
    const next = off + d.len;
    const last = k === n - 1;
    if (!isStraight(d)) {
      // The instruction may branch, exit or read RIP/the count: give it the interpreter's exact state.
      src.push(`c.curRipLo = (rl + ${off}) | 0;`, `c.ripLo = ${rip(next)};`);
      const jcc = inlineJcc(d);
      if (jcc !== null && next + d.immLo === 0 && d.immHi === -1) {
        // A loop closed by this jump: run the next pass here, as the run loop would have (no event is
        // examined between passes there either: only attn, IF/TF changes and the budget stop it).
        loops = true;
        src.push(
          `if (${jcc.cond}) { c.branchRel(${d.immLo}, ${d.immHi}, ${d.osize}); ` +
            `if (c.ripLo === rl && n0 + ${2 * n} <= lim && (c.attn | c.stop) === 0) { n0 += ${n}; c.blockBase = n0; continue; } }`,
        );
        src.push(`c.count = n0 + ${k + 1};`);
      } else if (jcc !== null) {
        src.push(`if (${jcc.cond}) c.branchRel(${d.immLo}, ${d.immHi}, ${d.osize});`);
        src.push(`c.count = n0 + ${k + 1};`);
      } else {
        // The handler may count more than itself (each iteration of a REP string instruction retires).
        src.push(`c.count = n0 + ${k};`);
        if (d.hasMem) src.push(`c.computeEA(d${k});`);
        src.push(`h${k}(c, d${k});`, `c.count++;`);
      }
      break;
    }
    const inline = inlineForm(d, mode);
    // Faults find the instruction by its RIP (Cpu.run): record it unless the form cannot fault.
    if (inline === null || inlineMayFault(d)) src.push(`c.curRipLo = (rl + ${off}) | 0;`);
    if (d.ripRel) src.push(`c.ripLo = ${rip(next)};`);
    if (inline !== null) src.push(inline);
    else {
      if (d.hasMem) src.push(`c.computeEA(d${k});`);
      src.push(`h${k}(c, d${k});`);
    }
    if (last) src.push(`c.ripLo = ${rip(next)};`, `c.count = n0 + ${k + 1};`);
    else if (d.hasMem || IMPLICIT_WRITES.has(d.entry!.handler)) {
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
    `return function block(c, rl, n0, lim) {\n` +
    `const R = c.rlo, RH = c.rhi, TT = c.tlbTag, TO = c.tlbOff, DV = c.dv;\nlet x = 0, o = 0, ea = 0, eh = 0, s = 0, t = 0, th = 0, a = 0, ah = 0, b = 0, bh = 0, r = 0, rh = 0, cf = 0;\n` +
    (loops ? `for (;;) {\n${src.join("\n")}\nreturn;\n}\n};` : `${src.join("\n")}\n};`);
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

// LazyOp values (flags.ts) as emitted into generated code.
const LAZY_ADD: number = LazyOp.Add;
const LAZY_SUB: number = LazyOp.Sub;
const LAZY_INC: number = LazyOp.Inc;
const LAZY_DEC: number = LazyOp.Dec;

/**
 * Code computing the effective address of d's memory operand into locals `ea`/`eh` (as CpuCore.computeEA
 * does, with the displacement and registers resolved at translation time), or null for forms left to
 * computeEA (RIP-relative, 16-bit addressing).
 */
function eaCode(d: Insn): string | null {
  if (d.ripRel || d.asize === 2) return null;
  if (d.asize === 4) {
    let e = `${d.dispLo}`;
    if (d.base >= 0) e += ` + R[${d.base}]`;
    if (d.index >= 0) e += ` + (R[${d.index}] << ${d.scale})`;
    return `ea = (${e}) | 0; eh = 0;`;
  }
  const out = [`ea = ${d.dispLo}; eh = ${d.dispHi};`];
  if (d.base >= 0)
    out.push(
      `s = (ea >>> 0) + (R[${d.base}] >>> 0); ea = s | 0; eh = (eh + RH[${d.base}] + (s >= 4294967296 ? 1 : 0)) | 0;`,
    );
  if (d.index >= 0) {
    const sh = d.scale;
    const ilo = sh === 0 ? `R[${d.index}]` : `(R[${d.index}] << ${sh})`;
    const ihi = sh === 0 ? `RH[${d.index}]` : `((RH[${d.index}] << ${sh}) | (R[${d.index}] >>> ${32 - sh}))`;
    out.push(
      `s = (ea >>> 0) + (${ilo} >>> 0); ea = s | 0; eh = (eh + ${ihi} + (s >= 4294967296 ? 1 : 0)) | 0;`,
    );
  }
  return out.join(" ");
}

/**
 * Code loading `size` bytes at seg:(ea, eh) into t (and th for 8 bytes). In 64-bit mode with a segment
 * without base (ES/CS/SS/DS) the software TLB is probed inline exactly as CpuCore.readLin does; any miss,
 * page crossing or other mode goes through readMem (segment checks, page walk, #AC, MMIO).
 */
function loadCode(mode: number, seg: number, size: number): string {
  const slow = `t = c.readMem(${seg}, ea, eh, ${size});${size === 8 ? " th = c.hi;" : ""}`;
  if (mode !== 2 || seg >= 4) return slow;
  const get =
    size === 1
      ? `t = DV.getUint8(o);`
      : size === 2
        ? `t = DV.getUint16(o, true);`
        : size === 4
          ? `t = DV.getInt32(o, true);`
          : `t = DV.getInt32(o, true); th = DV.getInt32(o + 4, true);`;
  return (
    `if ((ea & 0xfff) <= ${4096 - size} && TT[(x = c.tlbUser + ((ea >>> 12) & ${TLB_SIZE - 1}))] === eh * 1048576 + (ea >>> 12)) ` +
    `{ o = TO[x] + (ea & 0xfff); ${get} } else { ${slow} }`
  );
}

/** Code storing (vl, vh) of `size` bytes at seg:(ea, eh); the inline path mirrors CpuCore.writeLin. */
function storeCode(mode: number, seg: number, size: number, vl: string, vh: string): string {
  const slow = `c.writeMem(${seg}, ea, eh, ${size}, ${vl}, ${vh});`;
  if (mode !== 2 || seg >= 4 || (size !== 4 && size !== 8)) return slow;
  const put =
    size === 4
      ? `DV.setInt32(o, ${vl}, true);`
      : `DV.setInt32(o, ${vl}, true); DV.setInt32(o + 4, ${vh}, true);`;
  return (
    `if ((ea & 0xfff) <= ${4096 - size} && TT[(x = c.tlbUser + ${TLB_SIZE} + ((ea >>> 12) & ${TLB_SIZE - 1}))] === eh * 1048576 + (ea >>> 12)) ` +
    `{ o = TO[x] + (ea & 0xfff); ${put} } else { ${slow} }`
  );
}

/** Whether an inline form can raise a fault or exit (then its RIP must be recorded first). */
function inlineMayFault(d: Insn): boolean {
  return d.hasMem;
}

/**
 * Inline JavaScript for the commonest forms (register MOV/ALU/INC/DEC, 32/64-bit loads and stores), or null
 * to call the handler. Each form does exactly what the handler's own fast path does (alu.ts binop32/binop64
 * and incdec, data.ts mov/movzx), so the flags stay lazy and identical.
 */
function inlineForm(d: Insn, mode: number): string | null {
  if (d.prefixes & PFX_LOCK || d.entry === null) return null;
  const h = d.entry.handler;
  const s = d.s0;
  const regDst = d.k0 === OpKind.Reg && (s === 4 || s === 8);
  const src = d.k1 === OpKind.Reg ? `R[${d.r1}]` : `${d.immLo}`;
  const srcHi = d.k1 === OpKind.Reg ? `RH[${d.r1}]` : `${d.immHi}`;
  const regOrImm = d.k1 === OpKind.Reg || d.k1 === OpKind.Imm;
  const a = d.r0;
  switch (h) {
    case "mov":
      if (regDst && regOrImm)
        return s === 8
          ? `t = ${src}; th = ${srcHi}; R[${a}] = t; RH[${a}] = th;`
          : `R[${a}] = ${src}; RH[${a}] = 0;`;
      if (regDst && d.k1 === OpKind.Mem) {
        const ea = eaCode(d);
        if (ea === null) return null;
        return `${ea} ${loadCode(mode, d.seg, s)} R[${a}] = t; RH[${a}] = ${s === 8 ? "th" : "0"};`;
      }
      if (d.k0 === OpKind.Mem && d.k1 === OpKind.Reg && (s === 4 || s === 8)) {
        const ea = eaCode(d);
        if (ea === null) return null;
        return `${ea} ${storeCode(mode, d.seg, s, `R[${d.r1}]`, `RH[${d.r1}]`)}`;
      }
      return null;
    case "movzx":
      if (regDst && d.k1 === OpKind.Mem) {
        const ea = eaCode(d);
        if (ea === null) return null;
        return `${ea} ${loadCode(mode, d.seg, d.s1)} R[${a}] = t; RH[${a}] = 0;`;
      }
      return null;
    case "add":
    case "sub":
    case "cmp":
    case "and":
    case "or":
    case "xor":
    case "test": {
      if (!regDst || !regOrImm) return null;
      const write = h !== "cmp" && h !== "test";
      if (s === 4) {
        let r: string;
        let flags: string;
        if (h === "add" || h === "sub" || h === "cmp") {
          r = h === "add" ? `(a + b) | 0` : `(a - b) | 0`;
          flags = `c.setLazy(${h === "add" ? LAZY_ADD : LAZY_SUB}, 4, a, b, r, 0);`;
        } else {
          r = h === "or" ? `a | b` : h === "xor" ? `a ^ b` : `a & b`;
          flags = `c.setResultFlags(4, r, 0, 0, 0, 0);`;
        }
        return `a = R[${a}]; b = ${src}; r = ${r}; ${flags}${write ? ` R[${a}] = r; RH[${a}] = 0;` : ""}`;
      }
      let body: string;
      if (h === "add")
        body = `r = (a + b) | 0; rh = (ah + bh + (r >>> 0 < a >>> 0 ? 1 : 0)) | 0; c.setLazy64(${LAZY_ADD}, a, ah, b, bh, r, rh, 0);`;
      else if (h === "sub" || h === "cmp")
        body = `r = (a - b) | 0; rh = (ah - bh - (a >>> 0 < b >>> 0 ? 1 : 0)) | 0; c.setLazy64(${LAZY_SUB}, a, ah, b, bh, r, rh, 0);`;
      else {
        const o = h === "or" ? "|" : h === "xor" ? "^" : "&";
        body = `r = a ${o} b; rh = ah ${o} bh; c.setResultFlags(8, r, rh, 0, 0, 0);`;
      }
      return (
        `a = R[${a}]; ah = RH[${a}]; b = ${src}; bh = ${srcHi}; ${body}` +
        (write ? ` R[${a}] = r; RH[${a}] = rh;` : "")
      );
    }
    case "inc":
    case "dec": {
      if (!regDst) return null;
      const dec = h === "dec";
      const r = dec ? `(a - 1) | 0` : `(a + 1) | 0`;
      const op = dec ? LAZY_DEC : LAZY_INC;
      if (s === 4)
        return `cf = c.carryForIncDec(); a = R[${a}]; r = ${r}; c.setLazy(${op}, 4, a, 1, r, cf); R[${a}] = r; RH[${a}] = 0;`;
      const rh = dec ? `a === 0 ? (ah - 1) | 0 : ah` : `r === 0 ? (ah + 1) | 0 : ah`;
      return `cf = c.carryForIncDec(); a = R[${a}]; ah = RH[${a}]; r = ${r}; rh = ${rh}; c.setLazy64(${op}, a, ah, 1, 0, r, rh, cf); R[${a}] = r; RH[${a}] = rh;`;
    }
    default:
      return null;
  }
}

/** The condition of a conditional jump ending a block (as control.ts jcc evaluates it), or null. */
function inlineJcc(d: Insn): { cond: string } | null {
  if (d.entry === null || d.entry.handler !== "jcc") return null;
  const cc = d.opcode & 15;
  return { cond: cc >> 1 === 2 ? `((c.getZF() ^ ${cc}) & 1) !== 0` : `c.cond(${cc})` };
}
