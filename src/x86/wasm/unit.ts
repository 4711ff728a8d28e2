// Owns: generating the WebAssembly module of one translation unit (a planned code page, plan.ts): one
// function `run(entry, ripBaseLo, ripBaseHi, budget) -> status` whose blocks are dispatched by a
// br_table inside a loop, so direct branches between the unit's blocks stay in wasm; guest registers in
// i64 locals loaded at entry and written back at every exit; lazy flags in locals, produced only where a
// later instruction, exit or fault may see them (forms.ts); memory operands through the module's own
// access functions (mem-helpers.ts), which report faults by return value; every instruction not emitted
// inline through its interpreter handler (import `hc`), with the state it uses written back around it.
// Exits are exact: at a fault the unit reports the faulting instruction's index with registers, flags
// and the retired count as of its start; at any other exit RIP and the count are those the interpreter
// would show. The protocol (wasm/layout.ts X, Status) is in docs/decisions/0005-wasm-tier.md.
// Must not: change semantics (every inline form is the wasm form of its handler: alu.ts, data.ts,
// stack.ts, control.ts, shift.ts, bits.ts, muldiv.ts), or assume anything about the linear address of
// the page (RIP = ripBase + page offset, given at each entry).
// Spec: Intel SDM Vol. 2 (the instructions emitted inline), Vol. 3A 6.5-6.6 (precise exceptions).

import type { Insn } from "../insn.js";
import { OpKind } from "../insn.js";
import { FLAGS_STATUS } from "../opcode-table.js";
import { ModuleBuilder, Op, T } from "./encoder.js";
import { Emitter } from "./emitter.js";
import {
  emitCond,
  emitFlag,
  emitMaterialize,
  Flag,
  type FlagState,
  LZ_ADD,
  LZ_DEC,
  LZ_INC,
  LZ_RESULT,
  LZ_ADC,
  LZ_SBB,
  LZ_SUB,
} from "./flags-emit.js";
import {
  ALU,
  budgetChecks,
  flagLiveness,
  handlerName,
  helperRegisters,
  inlineForms,
  sizeMask,
  successorTable,
  touchedRegisters,
} from "./forms.js";
import { REG_HI, REG_LO, TLB_ENTRIES, X, XCH } from "./layout.js";
import { Bridge, BRIDGE_PARAMS, Status } from "./protocol.js";
import { addSlowPaths, emitHost, emitProbe, LOAD_OPS, type ProbeLocals, STORE_OPS } from "./mem-helpers.js";
import { EndKind, type PlanBlock, type UnitPlan } from "./plan.js";

export { inlineForm } from "./forms.js";
export { Status } from "./protocol.js";

export interface UnitEnv {
  /** Byte offset of the processor's state slot. */
  slot: number;
  /** Pages of the shared memory (the import must declare its exact limits). */
  memPages: number;
}

/** Function indices in a unit module: the two imports, the unit's function, then its slow paths. */
const FN_BRIDGE = 0;
const FN_RUNTIME = 1;
const FN_RUN = 2;
/** Kinds of the runtime's flag function. */
const enum Rt {
  Cond = 0,
  Cf = 1,
  Rflags = 2,
}

/** The statically known producer of the flags (one shape for all: the translator's hot path reads it). */
class Pending {
  constructor(
    readonly op: number,
    readonly size: number,
    readonly cinZero: boolean,
    /** fop/fsz (and fcin when cinZero) already hold this state. */
    public spilled: boolean,
  ) {}
}

/**
 * The buffer the unit function's body is written into, kept from one unit to the next (a unit's body is
 * tens of KiB: a new buffer grown to that size per unit was a large share of emission, zero-filling
 * included). Emission is synchronous; a unit takes the buffer (null while it is in use) and gives it back.
 */
let bodyScratch: Uint8Array | null = new Uint8Array(1 << 16);

function takeBodyScratch(): Uint8Array {
  const b = bodyScratch ?? new Uint8Array(1 << 16);
  bodyScratch = null;
  return b;
}

/**
 * Snippets: byte sequences that depend only on the unit's locals and a small key, emitted once per unit
 * and then copied (UnitWriter.replay): they contain no branch (label depths differ from place to place)
 * and no scratch local (the pools' state differs). Loading and storing each register, the flag locals,
 * and the fixed part of memory accesses (by region, segment and size).
 */
const SN_LOAD_REG = 0;
const SN_STORE_REG = 16;
const SN_LOAD_FLAGS = 32;
const SN_STORE_FLAGS = 33;
const SN_STORE_PROBE = 34;
const SN_LOAD = 50;
const SN_COUNT = SN_LOAD + 2 * 8 * 16;

/** Generates the module of a planned unit. */
export function emitUnit(plan: UnitPlan, env: UnitEnv): Uint8Array {
  return new UnitWriter(plan, env).module();
}

class UnitWriter {
  private readonly m = new ModuleBuilder();
  private readonly e = new Emitter(4, takeBodyScratch());
  private readonly c = this.e;
  private readonly fnLd: number;
  private readonly fnLdw: number;
  private readonly fnSt: number;
  // Locals (parameters 0..3: entry, ripBaseLo, ripBaseHi, budget).
  private readonly budget = 3;
  private readonly ripBase: number;
  private readonly R: number[] = [];
  private readonly n: number;
  private readonly status: number;
  private readonly cur: number;
  private readonly tlbr: number;
  private readonly stopAfter: number;
  private readonly xi: number;
  private readonly xo: number;
  private readonly fop: number;
  private readonly fsz: number;
  private readonly fa: number;
  private readonly fb: number;
  private readonly fr: number;
  private readonly fcin: number;
  private readonly fflags: number;
  private readonly ea: number;
  private readonly la: number;
  private readonly t: number;
  private readonly fsb: number;
  private readonly gsb: number;
  private readonly probeLocals: ProbeLocals;
  /**
   * Snippets by SN_* id: where in this unit's body each was first emitted and its length (-1 until then).
   * The body only grows (a grown buffer keeps offsets), so the first copy is the source of the others.
   */
  private readonly snipAt = new Int32Array(SN_COUNT).fill(-1);
  private readonly snipLen = new Int32Array(SN_COUNT);
  /** The FlagState handed to flags-emit.ts, updated from `pending` before each use (no object per use). */
  private readonly flagView: FlagState;
  private readonly touched: number;
  private readonly live: Int32Array;
  /** Per instruction: 1 when it is emitted inline (forms.ts inlineForm). */
  private readonly inline: Uint8Array;
  private readonly checked: Uint8Array;
  private readonly span: Int32Array;
  private readonly xb: number;
  // Labels: leaving through `exitLabel` writes the register locals back, through `bareExit` not;
  // `offLabel` leaves with RIP = ripBase + xo, `sigLabel` as faulted at the instruction coded in xi.
  private exitLabel = 0;
  private bareExit = 0;
  private offLabel = 0;
  private stopLabel = 0;
  private sigLabel = 0;
  private loopLabel = 0;
  /** Label of the wasm block whose end is the start of unit block i's code (forward branches go there). */
  private blockLabels: number[] = [];
  private pending: Pending | null = null;
  /** Predecessor edges of each block inside the unit, and the flag state known on the edge into it. */
  private readonly preds: Int32Array;
  private readonly edgeState: Array<Pending | null>;
  // The instruction being emitted: its index in the unit, its position in the block, its page offset.
  private idx = 0;
  private k = 0;
  private off = 0;
  private blk = 0;
  /** xi already holds the current instruction's code (set before its first access that may fault). */
  private xiSet = false;
  /** The current instruction loads from memory: a slow-path load from a device may stop the unit after it. */
  private loads = false;

  constructor(
    private readonly plan: UnitPlan,
    private readonly env: UnitEnv,
  ) {
    const m = this.m;
    m.importMemory("x", "mem", env.memPages, env.memPages, true);
    m.importFunc("x", "h", BRIDGE_PARAMS, [T.I32]);
    m.importFunc("rt", "f", [T.I32, T.I32, T.I32, T.I32, T.I64, T.I64, T.I64, T.I32, T.I32], [T.I32]);
    // The unit's function comes next, then the slow paths (mem-helpers.ts).
    this.fnLd = FN_RUN + 1;
    this.fnLdw = FN_RUN + 2;
    this.fnSt = FN_RUN + 3;
    const c = this.c;
    this.ripBase = c.locals(1, T.I64);
    this.touched = touchedRegisters(plan);
    for (let r = 0; r < 16; r++) this.R.push(this.touched & (1 << r) ? c.locals(1, T.I64) : -1);
    this.n = c.locals(1, T.I32);
    this.status = c.locals(1, T.I32);
    this.cur = c.locals(1, T.I32);
    this.tlbr = c.locals(1, T.I32);
    this.stopAfter = c.locals(1, T.I32);
    this.xi = c.locals(1, T.I32);
    this.xo = c.locals(1, T.I32);
    this.fop = c.locals(1, T.I32);
    this.fsz = c.locals(1, T.I32);
    this.fcin = c.locals(1, T.I32);
    this.fflags = c.locals(1, T.I32);
    this.fa = c.locals(1, T.I64);
    this.fb = c.locals(1, T.I64);
    this.fr = c.locals(1, T.I64);
    this.ea = c.locals(1, T.I64);
    this.la = c.locals(1, T.I64);
    this.fsb = c.locals(1, T.I64);
    this.gsb = c.locals(1, T.I64);
    this.t = c.locals(1, T.I32);
    this.probeLocals = { la: this.la, t: this.t, tlbr: this.tlbr };
    this.flagView = {
      op: 0,
      size: 0,
      a: this.fa,
      b: this.fb,
      r: this.fr,
      cin: this.fcin,
      flags: this.fflags,
      cinZero: false,
    };
    const succ = successorTable(plan);
    const budget = budgetChecks(plan, succ);
    this.checked = budget.checked;
    this.span = budget.span;
    this.inline = inlineForms(plan);
    this.live = flagLiveness(plan, budget.checked, succ, this.inline);
    this.preds = new Int32Array(plan.blocks.length);
    this.edgeState = new Array<Pending | null>(plan.blocks.length).fill(null);
    for (let k = 0; k < succ.length; k++) if (succ[k]! >= 0) this.preds[succ[k]!]!++;
    this.xb = env.slot + XCH;
  }

  module(): Uint8Array {
    this.prologue();
    const e = this.e;
    this.bareExit = e.block();
    this.exitLabel = e.block();
    this.offLabel = e.block();
    this.stopLabel = e.block();
    this.sigLabel = e.block();
    this.loopLabel = e.loop();
    const nb = this.plan.blocks.length;
    this.blockLabels = new Array<number>(nb);
    for (let i = nb - 1; i >= 0; i--) this.blockLabels[i] = e.block();
    e.get(this.cur);
    // Default (no such block): straight to the exit, with the status still Internal.
    e.brTableSeq(nb, nb + 4);
    for (let i = 0; i < nb; i++) {
      e.end();
      this.block(i);
    }
    e.end(); // loop: the last block always leaves explicitly
    e.end(); // sig: the instruction coded in xi faulted
    e.get(this.n);
    e.get(this.xi);
    e.i32(16);
    e.op(Op.I32ShrU);
    e.op(Op.I32Add);
    e.set(this.n);
    e.i32(0);
    e.get(this.xi);
    e.i32(0xffff);
    e.op(Op.I32And);
    e.mem(Op.I32Store, 2, this.xAddr(X.Index));
    e.i32(Status.Signal);
    e.set(this.status);
    e.br(this.exitLabel);
    e.end(); // stop: the instruction coded in xi retired; RIP = ripBase + xo
    e.get(this.n);
    e.get(this.xi);
    e.i32(16);
    e.op(Op.I32ShrU);
    e.op(Op.I32Add);
    e.i32(1);
    e.op(Op.I32Add);
    e.set(this.n);
    e.i32(Status.Done);
    e.set(this.status);
    e.end(); // off: RIP = ripBase + xo
    e.i32(0);
    e.get(this.ripBase);
    e.get(this.xo);
    e.op(Op.I64ExtendI32S);
    e.op(Op.I64Add);
    e.mem(Op.I64Store, 3, this.xAddr(X.RipLo));
    e.end(); // exit
    this.storeRegisters(this.touched);
    e.end(); // bare exit
    this.storeFlags();
    e.i32(0);
    e.get(this.n);
    e.mem(Op.I32Store, 2, this.xAddr(X.Count));
    e.get(this.status);
    this.m.exportFunc("run", this.m.addFunc([T.I32, T.I32, T.I32, T.I32], [T.I32], this.e));
    addSlowPaths(this.m, FN_BRIDGE, this.env.slot);
    const bytes = this.m.finish();
    bodyScratch = this.e.buf;
    return bytes;
  }

  // ------------------------------------------------------------------ state at entry and exit

  private xAddr(slot: number): number {
    return this.xb + slot * 4;
  }

  private prologue(): void {
    const e = this.e;
    this.entrySearch();
    e.get(1);
    e.op(Op.I64ExtendI32U);
    e.get(2);
    e.op(Op.I64ExtendI32U);
    e.i64s(32);
    e.op(Op.I64Shl);
    e.op(Op.I64Or);
    e.set(this.ripBase);
    this.loadRegisters(this.touched);
    this.loadFlags();
    e.i32(0);
    e.mem(Op.I32Load, 2, this.xAddr(X.Tlbu));
    e.set(this.tlbr);
    for (const [l, lo] of [
      [this.fsb, X.FsLo],
      [this.gsb, X.GsLo],
    ] as const) {
      e.i32(0);
      e.mem(Op.I64Load, 3, this.xAddr(lo));
      e.set(l);
    }
    e.i32(Status.Internal);
    e.set(this.status);
  }

  /**
   * cur = the block whose start is the page offset in parameter 0, found by a binary search over the
   * entry blocks; an offset that is no entry returns NoEntry before any state is touched.
   */
  private entrySearch(): void {
    const e = this.e;
    const entries: Array<[number, number]> = [];
    this.plan.blocks.forEach((b, i) => {
      if (b.entry) entries.push([b.start, i]);
    });
    const search = (lo: number, hi: number): void => {
      if (hi - lo <= 2) {
        for (let k = lo; k < hi; k++) {
          const [off, i] = entries[k]!;
          e.get(0);
          e.i32(off);
          e.op(Op.I32Eq);
          e.if_();
          e.i32(i);
          e.set(this.cur);
          e.else_();
        }
        e.i32(Status.NoEntry);
        e.op(Op.Return);
        for (let k = lo; k < hi; k++) e.end();
        return;
      }
      const mid = (lo + hi) >> 1;
      e.get(0);
      e.i32(entries[mid]![0]);
      e.op(Op.I32LtU);
      e.if_();
      search(lo, mid);
      e.else_();
      search(mid, hi);
      e.end();
    };
    search(0, entries.length);
  }

  private loadRegisters(set: number): void {
    const e = this.e;
    const base = this.env.slot;
    for (let r = 0; r < 16; r++) {
      const l = this.R[r]!;
      if (l < 0 || (set & (1 << r)) === 0 || this.replay(SN_LOAD_REG + r)) continue;
      const from = e.len;
      e.i32(0);
      e.mem(Op.I64Load32U, 2, base + REG_LO + 4 * r);
      e.i32(0);
      e.mem(Op.I64Load32U, 2, base + REG_HI + 4 * r);
      e.i64s(32);
      e.op(Op.I64Shl);
      e.op(Op.I64Or);
      e.set(l);
      this.record(SN_LOAD_REG + r, from);
    }
  }

  private storeRegisters(set: number): void {
    const e = this.e;
    const base = this.env.slot;
    for (let r = 0; r < 16; r++) {
      const l = this.R[r]!;
      if (l < 0 || (set & (1 << r)) === 0 || this.replay(SN_STORE_REG + r)) continue;
      const from = e.len;
      e.i32(0);
      e.get(l);
      e.mem(Op.I64Store32, 2, base + REG_LO + 4 * r);
      e.i32(0);
      e.get(l);
      e.i64s(32);
      e.op(Op.I64ShrU);
      e.mem(Op.I64Store32, 2, base + REG_HI + 4 * r);
      this.record(SN_STORE_REG + r, from);
    }
  }

  private flagSlots(): ReadonlyArray<readonly [number, number, boolean]> {
    return [
      [this.fop, X.FOp, false],
      [this.fsz, X.FSize, false],
      [this.fa, X.FaLo, true],
      [this.fb, X.FbLo, true],
      [this.fr, X.FrLo, true],
      [this.fcin, X.FCin, false],
      [this.fflags, X.Flags, false],
    ];
  }

  private loadFlags(): void {
    this.pending = null;
    if (this.replay(SN_LOAD_FLAGS)) return;
    const e = this.e;
    const from = e.len;
    for (const [l, s, wide] of this.flagSlots()) {
      e.i32(0);
      e.mem(wide ? Op.I64Load : Op.I32Load, wide ? 3 : 2, this.xAddr(s));
      e.set(l);
    }
    this.record(SN_LOAD_FLAGS, from);
  }

  private storeFlags(): void {
    if (this.replay(SN_STORE_FLAGS)) return;
    const e = this.e;
    const from = e.len;
    for (const [l, s, wide] of this.flagSlots()) {
      e.i32(0);
      e.get(l);
      e.mem(wide ? Op.I64Store : Op.I32Store, wide ? 3 : 2, this.xAddr(s));
    }
    this.record(SN_STORE_FLAGS, from);
  }

  /**
   * Copies snippet `id` (see SN_*) if this unit has emitted it before; `opens`: labels it leaves open
   * (the copy does not go through block/if_, so the depth is advanced here).
   */
  private replay(id: number, opens = 0): boolean {
    const at = this.snipAt[id]!;
    if (at < 0) return false;
    this.e.repeat(at, this.snipLen[id]!);
    this.e.depth += opens;
    return true;
  }

  /** Makes the bytes emitted since `from` snippet `id`. */
  private record(id: number, from: number): void {
    this.snipAt[id] = from;
    this.snipLen[id] = this.e.len - from;
  }

  /**
   * Makes the flag locals canonical (op and size in fop/fsz) where the producer was known statically.
   * `straightLine`: this code runs whenever the code after it does, so later spills may be skipped (a
   * spill on a path that leaves, inside an `if`, must not count for the path that goes on).
   */
  private spillFlags(straightLine = false): void {
    const p = this.pending;
    if (p === null || p.spilled) return;
    if (straightLine) p.spilled = true;
    const e = this.e;
    e.i32(p.op);
    e.set(this.fop);
    e.i32(p.size);
    e.set(this.fsz);
    if (p.cinZero) {
      e.i32(0);
      e.set(this.fcin);
    }
  }

  private flagState(): FlagState {
    const p = this.pending!;
    const f = this.flagView;
    f.op = p.op;
    f.size = p.size;
    f.cinZero = p.cinZero;
    return f;
  }

  private pushStateArgs(): void {
    const e = this.e;
    for (const l of [this.fop, this.fsz, this.fa, this.fb, this.fr, this.fcin, this.fflags]) e.get(l);
  }

  /** Pushes whether condition cc holds. */
  private cond(cc: number): void {
    if (this.pending !== null) {
      emitCond(this.e, cc, this.flagState());
      return;
    }
    this.runtime(Rt.Cond, cc);
  }

  /** Pushes CF (0 or 1). */
  private carry(): void {
    if (this.pending !== null) {
      emitFlag(this.e, Flag.CF, this.flagState());
      return;
    }
    this.runtime(Rt.Cf, 0);
  }

  /** Pushes ZF (0 or 1). */
  private zeroFlag(): void {
    const e = this.e;
    if (this.pending !== null) {
      emitFlag(e, Flag.ZF, this.flagState());
      return;
    }
    this.runtime(Rt.Rflags, 0);
    e.i32(6);
    e.op(Op.I32ShrU);
    e.i32(1);
    e.op(Op.I32And);
  }

  /** Materializes the flags into fflags (op None), e.g. before changing some of them. */
  private materialize(): void {
    const e = this.e;
    if (this.pending !== null) emitMaterialize(e, this.flagState());
    else this.runtime(Rt.Rflags, 0);
    e.set(this.fflags);
    e.i32(0);
    e.set(this.fop);
    this.pending = null;
  }

  /** Calls the runtime's flag function `kind` (cond with cc, cf, rflags) on the flag locals. */
  private runtime(kind: Rt, cc: number): void {
    const e = this.e;
    e.i32(kind);
    e.i32(cc);
    this.pushStateArgs();
    e.call(FN_RUNTIME);
  }

  private liveFlags(): boolean {
    return (this.live[this.idx]! & FLAGS_STATUS) !== 0;
  }

  // ------------------------------------------------------------------ exits

  private addN(v: number): void {
    if (v === 0) return;
    const e = this.e;
    e.get(this.n);
    e.i32(v);
    e.op(Op.I32Add);
    e.set(this.n);
  }

  /** Leaves with RIP = ripBase + off after `retired` more instructions retired. */
  private exitAt(off: number, retired: number, status: Status): void {
    const e = this.e;
    this.addN(retired);
    this.spillFlags();
    e.i32(off);
    e.set(this.xo);
    e.i32(status);
    e.set(this.status);
    e.br(this.offLabel);
  }

  /** Leaves with RIP from an i64 local after `retired` more instructions retired. */
  private exitToLocal(v: number, retired: number, afterAccess = false): void {
    const e = this.e;
    this.addN(retired);
    this.spillFlags();
    e.i32(0);
    e.get(v);
    e.mem(Op.I64Store, 3, this.xAddr(X.RipLo));
    e.i32(Status.Branch);
    e.set(this.status);
    if (afterAccess) {
      // A slow-path access reached a device or a store hit code: the run loop must look (Done, not Branch).
      e.get(this.stopAfter);
      e.if_();
      e.i32(Status.Done);
      e.set(this.status);
      e.end();
    }
    e.br(this.exitLabel);
  }

  /** Before the current instruction's first access or check that may fault: xi = its code. */
  private faultPoint(): void {
    this.spillFlags(true);
    if (this.xiSet) return;
    const e = this.e;
    e.i32(this.idx | (this.k << 16));
    e.set(this.xi);
    this.xiSet = true;
  }

  /** Continues at page offset `off` after `retired` more instructions: a block of the unit, or an exit. */
  private transfer(off: number, retired: number, fallsIntoNext: boolean): void {
    const j = this.plan.byStart.get(off);
    if (j === undefined) {
      this.exitAt(off, retired, Status.Branch);
      return;
    }
    this.addN(retired);
    this.spillFlags();
    // A block only this edge reaches starts with this edge's static flag knowledge (see block()).
    if (j > this.blk) {
      const p = this.pending;
      this.edgeState[j] = p === null ? null : new Pending(p.op, p.size, p.cinZero, p.spilled);
    }
    if (fallsIntoNext && j === this.blk + 1) return;
    const e = this.e;
    if (j > this.blk) {
      // Forward: the end of block j's wasm block is where its code starts (no dispatch).
      e.br(this.blockLabels[j]!);
      return;
    }
    e.i32(j);
    e.set(this.cur);
    e.br(this.loopLabel);
  }

  // ------------------------------------------------------------------ blocks

  private block(i: number): void {
    const b = this.plan.blocks[i]!;
    const e = this.e;
    this.blk = i;
    // Flags arrive canonical, except in a block the run loop cannot enter and one earlier edge reaches.
    const known = !b.entry && this.preds[i] === 1 ? (this.edgeState[i] ?? null) : null;
    this.pending = known === null ? null : new Pending(known.op, known.size, known.cinZero, true);
    const len = b.insns.length;
    if (this.checked[i] === 1) {
      // Budget: all that may run before the next check must fit (the run loop never retires more).
      e.get(this.n);
      e.i32(this.span[i]!);
      e.op(Op.I32Add);
      e.get(this.budget);
      e.op(Op.I32GtU);
      e.if_();
      this.exitAt(b.start, 0, Status.Done);
      e.end();
    }
    const last = len - 1;
    for (let k = 0; k < len; k++) {
      const d = b.insns[k]!;
      this.idx = b.first + k;
      this.k = k;
      this.off = b.offs[k]!;
      this.xiSet = false;
      this.loads = false;
      if (d.page2 >= 0) this.straddleGuard(d);
      if (k === last && b.kind !== EndKind.Fall) {
        this.terminator(b, d);
        return;
      }
      this.insn(d);
    }
    this.transfer(b.end, len, true);
  }

  /**
   * Before an instruction straddling into the next page: it is the cached decode only while the next
   * linear page maps (execute TLB entry) to the same RAM page and its bytes there are unchanged;
   * otherwise the interpreter runs it (and decodes it again).
   */
  private straddleGuard(d: Insn): void {
    const e = this.e;
    const tail = d.tail!;
    const next = e.tmp64();
    e.get(this.ripBase);
    e.i64s(4096);
    e.op(Op.I64Add);
    e.set(next);
    e.get(next);
    e.i64s(12);
    e.op(Op.I64ShrU);
    e.op(Op.I32WrapI64);
    e.i32(511);
    e.op(Op.I32And);
    e.i32(3);
    e.op(Op.I32Shl);
    e.get(this.tlbr);
    e.op(Op.I32Add);
    e.tee(this.t);
    e.mem(Op.F64Load, 3, 2 * 512 * 8);
    e.get(next);
    e.i64s(12);
    e.op(Op.I64ShrS);
    e.op(Op.F64ConvertI64S);
    e.op(Op.F64Ne);
    e.if_(T.I32);
    e.i32(1);
    e.else_();
    // The page's RAM offset, then its first bytes against the tail's.
    e.get(this.t);
    e.mem(Op.F64Load, 3, TLB_ENTRIES * 8 + 2 * 512 * 8);
    e.op(Op.I32TruncF64U);
    e.i32(d.page2 * 4096);
    e.op(Op.I32Ne);
    for (let at = 0; at < tail.length; at += 8) {
      const n = Math.min(8, tail.length - at);
      let lo = 0;
      let hi = 0;
      for (let i = 0; i < n; i++) {
        if (i < 4) lo |= tail[at + i]! << (8 * i);
        else hi |= tail[at + i]! << (8 * (i - 4));
      }
      e.i32(d.page2 * 4096 + at);
      e.mem(Op.I64Load, 0, 0);
      if (n < 8) {
        e.i64(n >= 4 ? -1 : (1 << (8 * n)) - 1, n > 4 ? (1 << (8 * (n - 4))) - 1 : 0);
        e.op(Op.I64And);
      }
      e.i64(lo, hi);
      e.op(Op.I64Ne);
      e.op(Op.I32Or);
    }
    e.end();
    e.if_();
    this.interpHere();
    e.end();
    e.free64l(next);
  }

  private terminator(b: PlanBlock, d: Insn): void {
    const len = b.insns.length;
    const e = this.e;
    const next = b.end;
    switch (b.kind) {
      case EndKind.Jcc: {
        const t = next + d.immLo;
        this.cond(d.opcode & 15);
        e.if_();
        this.branchTo(t, len);
        e.end();
        this.transfer(next, len, true);
        return;
      }
      case EndKind.Jmp:
        this.branchTo(next + d.immLo, len);
        return;
      case EndKind.Call: {
        const t = next + d.immLo;
        if (t < 0 || t >= 4096) this.checkCanonicalConst(t);
        e.get(this.ripBase);
        e.i64s(next);
        e.op(Op.I64Add);
        this.push();
        // A push into code or MMIO through the slow path: leave at the target.
        this.spillFlags(true);
        e.get(this.stopAfter);
        e.if_();
        this.exitAt(t, len, Status.Done);
        e.end();
        this.branchTo(t, len, false);
        return;
      }
      case EndKind.Ret: {
        const v = e.tmp64();
        e.get(this.R[4]!);
        e.set(this.la);
        this.memLoad(2, 8, false);
        e.set(v);
        this.checkCanonical(v);
        this.addRsp(8 + (d.k0 === OpKind.Imm ? d.immLo & 0xffff : 0));
        this.exitToLocal(v, len, true);
        e.free64l(v);
        return;
      }
      case EndKind.JmpInd:
      case EndKind.CallInd: {
        const v = e.tmp64();
        if (d.hasMem) this.computeEA(d);
        this.load(d, d.k0, d.r0, 8, false);
        e.set(v);
        this.checkCanonical(v);
        if (b.kind === EndKind.CallInd) {
          e.get(this.ripBase);
          e.i64s(next);
          e.op(Op.I64Add);
          this.push();
        }
        this.exitToLocal(v, len, true);
        e.free64l(v);
        return;
      }
      default:
        this.helperCall(d, true);
        return;
    }
  }

  /** A direct branch to page offset t (maybe outside the page) retiring `retired` instructions. */
  private branchTo(t: number, retired: number, checkTarget = true): void {
    if (t >= 0 && t < 4096) {
      this.transfer(t, retired, false);
      return;
    }
    if (checkTarget) this.checkCanonicalConst(t);
    this.exitAt(t, retired, Status.Branch);
  }

  /** Leaves to the interpreter at the current instruction unless the i64 local holds a canonical address. */
  private checkCanonical(v: number): void {
    const e = this.e;
    e.get(v);
    e.i64s(16);
    e.op(Op.I64Shl);
    e.i64s(16);
    e.op(Op.I64ShrS);
    e.get(v);
    e.op(Op.I64Ne);
    e.if_();
    this.interpHere();
    e.end();
  }

  /** Leaves with RIP = this instruction, for the interpreter to run (and fault on). */
  private interpHere(): void {
    const e = this.e;
    this.addN(this.k);
    this.spillFlags();
    e.i32(0);
    e.get(this.ripBase);
    e.i64s(this.off);
    e.op(Op.I64Add);
    e.mem(Op.I64Store, 3, this.xAddr(X.RipLo));
    e.i32(Status.Interp);
    e.set(this.status);
    e.br(this.exitLabel);
  }

  private checkCanonicalConst(t: number): void {
    const e = this.e;
    const v = e.tmp64();
    e.get(this.ripBase);
    e.i64s(t);
    e.op(Op.I64Add);
    e.set(v);
    this.checkCanonical(v);
    e.free64l(v);
  }

  // ------------------------------------------------------------------ instructions

  private insn(d: Insn): void {
    if (this.inline[this.idx] === 0) {
      this.helperCall(d, false);
      return;
    }
    const e = this.e;
    const h = handlerName(d);
    if (d.hasMem && h !== "nop") this.computeEA(d);
    let stores = false;
    switch (h) {
      case "mov":
        this.load(d, d.k1, d.r1, d.s0, false);
        stores = this.writeDest(d, d.s0, false);
        break;
      case "movzx":
      case "movsx":
        this.load(d, d.k1, d.r1, d.s1, false);
        if (h === "movsx") this.signExtend(d.s1);
        this.setReg(d.r0, d.s0, false);
        break;
      case "lea":
        e.get(this.ea);
        this.setReg(d.r0, d.s0, false);
        break;
      case "add":
      case "adc":
      case "sub":
      case "sbb":
      case "cmp":
      case "and":
      case "or":
      case "xor":
      case "test":
        stores = this.alu(d, ALU[h]!);
        break;
      case "inc":
      case "dec":
      case "neg":
      case "not":
        stores = this.unary(d, h);
        break;
      case "push":
        this.load(d, d.k0, d.r0, 8, false);
        this.push();
        stores = true;
        break;
      case "pop": {
        e.get(this.R[4]!);
        e.set(this.la);
        this.memLoad(2, 8, false);
        this.addRsp(8);
        e.set(this.R[d.r0]!);
        break;
      }
      case "setcc":
        this.cond(d.opcode & 15);
        e.op(Op.I64ExtendI32U);
        stores = this.writeDest(d, 1, false);
        break;
      case "cmovcc": {
        const v = e.tmp64();
        this.load(d, d.k1, d.r1, d.s0, false);
        e.set(v);
        this.cond(d.opcode & 15);
        e.if_();
        e.get(v);
        this.setReg(d.r0, d.s0, false);
        if (d.s0 === 4) {
          e.else_();
          e.get(this.R[d.r0]!);
          this.setReg(d.r0, 4, false);
        }
        e.end();
        e.free64l(v);
        break;
      }
      case "xchg":
        stores = this.exchange(d);
        break;
      case "cmpxchg":
        stores = this.cmpxchg(d);
        break;
      case "xadd":
        stores = this.xadd(d);
        break;
      case "cbw":
        // CWDE (32): EAX = sign-extended AX; CDQE (64): RAX = sign-extended EAX.
        e.get(this.R[0]!);
        e.op(d.osize === 4 ? Op.I64Extend16S : Op.I64Extend32S);
        this.setReg(0, d.osize, false);
        break;
      case "cwd":
        // CDQ (32): EDX = EAX's sign; CQO (64): RDX = RAX's sign.
        e.get(this.R[0]!);
        if (d.osize === 4) e.op(Op.I64Extend32S);
        e.i64s(63);
        e.op(Op.I64ShrS);
        this.setReg(2, d.osize, false);
        break;
      case "imul":
        this.imul(d);
        break;
      case "shl":
      case "shr":
      case "sar":
      case "rol":
      case "ror":
        stores = this.shift(d, h);
        break;
      case "bt":
      case "bts":
      case "btr":
      case "btc":
        this.bitTest(d, h);
        break;
      default:
        // nop (and PAUSE): nothing.
        break;
    }
    if (stores || this.loads) {
      // A slow-path access reached a device (events are looked at after it) or a store hit code: stop
      // after this instruction, as the interpreter does.
      this.spillFlags(true);
      e.i32(this.off + d.len);
      e.set(this.xo);
      e.get(this.stopAfter);
      e.brIf(this.stopLabel);
    }
  }

  /**
   * Calls the instruction's handler (import `hc`) with the registers it may use and the flags written
   * back. `terminal`: the handler may change RIP, the mode or event state, so the unit leaves after it
   * (its registers are then all in memory).
   */
  private helperCall(d: Insn, terminal: boolean): void {
    const e = this.e;
    const regs = terminal ? this.touched : helperRegisters(d, this.touched);
    this.spillFlags();
    this.pending = null;
    this.storeRegisters(regs);
    this.storeFlags();
    e.i32(Bridge.Hc);
    e.i32(this.idx);
    e.get(this.n);
    e.i32(this.k);
    e.op(Op.I32Add);
    for (let i = 0; i < 4; i++) e.i32(0);
    e.call(FN_BRIDGE);
    const st = e.tmp32();
    e.set(st);
    // REP iterations past the first retire too (X.Extra, 0 after a fault).
    e.get(this.n);
    e.i32(0);
    e.mem(Op.I32Load, 2, this.xAddr(X.Extra));
    e.op(Op.I32Add);
    e.set(this.n);
    e.get(st);
    if (terminal) {
      // 1: retired (the helper stored RIP); 2: faulted. Either way the unit leaves with memory current.
      e.i32(1);
      e.op(Op.I32Eq);
      e.if_();
      this.loadFlags();
      this.addN(this.k + 1);
      e.i32(Status.Done);
      e.set(this.status);
      e.br(this.bareExit);
      e.end();
      this.addN(this.k);
      e.i32(0);
      e.i32(this.idx);
      e.mem(Op.I32Store, 2, this.xAddr(X.Index));
      e.i32(Status.Signal);
      e.set(this.status);
      e.br(this.bareExit);
      e.free32l(st);
      return;
    }
    e.if_();
    e.get(st);
    e.i32(1);
    e.op(Op.I32Eq);
    e.if_();
    // Retired, and the unit must stop (a posted exit or a write to code): RIP is stored.
    this.loadRegisters(regs);
    this.loadFlags();
    this.addN(this.k + 1);
    e.i32(Status.Done);
    e.set(this.status);
    e.br(this.exitLabel);
    e.end();
    // Faulted: nothing of it retired (the handler changed no state).
    e.i32(this.idx | (this.k << 16));
    e.set(this.xi);
    e.br(this.sigLabel);
    e.end();
    e.free32l(st);
    this.loadRegisters(regs);
    this.loadFlags();
  }

  private alu(d: Insn, a: { op: number; write: boolean; logic: boolean }): boolean {
    const e = this.e;
    const size = d.s0;
    const [ml, mh] = sizeMask(size);
    const rmw = a.write && d.k0 === OpKind.Mem;
    const live = this.liveFlags();
    const va = e.tmp64();
    const vb = e.tmp64();
    const vr = e.tmp64();
    this.load(d, d.k0, d.r0, size, rmw);
    e.set(va);
    this.load(d, d.k1, d.r1, size, false);
    e.set(vb);
    let cin = -1;
    if (a.op === LZ_ADC || a.op === LZ_SBB) {
      cin = e.tmp32();
      this.carry();
      e.set(cin);
    }
    e.get(va);
    e.get(vb);
    const h = handlerName(d);
    if (h === "add" || h === "adc" || h === "sub" || h === "sbb" || h === "cmp") {
      const add = h === "add" || h === "adc";
      e.op(add ? Op.I64Add : Op.I64Sub);
      if (cin >= 0) {
        e.get(cin);
        e.op(Op.I64ExtendI32U);
        e.op(add ? Op.I64Add : Op.I64Sub);
      }
    } else e.op(h === "or" ? Op.I64Or : h === "xor" ? Op.I64Xor : Op.I64And);
    if (size !== 8) {
      e.i64(ml, mh);
      e.op(Op.I64And);
    }
    e.set(vr);
    let stores = false;
    if (a.write) {
      e.get(vr);
      stores = this.writeDest(d, size, rmw);
    }
    if (live) {
      if (!a.logic) {
        e.get(va);
        e.set(this.fa);
        e.get(vb);
        e.set(this.fb);
        if (cin >= 0) {
          e.get(cin);
          e.set(this.fcin);
        }
      }
      e.get(vr);
      e.set(this.fr);
      this.pending = new Pending(a.op, size, a.logic || cin < 0, false);
    }
    if (cin >= 0) e.free32l(cin);
    e.free64l(va);
    e.free64l(vb);
    e.free64l(vr);
    return stores;
  }

  private unary(d: Insn, h: string): boolean {
    const e = this.e;
    const size = d.s0;
    const [ml, mh] = sizeMask(size);
    const rmw = d.k0 === OpKind.Mem;
    const live = this.liveFlags() && h !== "not";
    const va = e.tmp64();
    const vr = e.tmp64();
    this.load(d, d.k0, d.r0, size, rmw);
    e.set(va);
    let cf = -1;
    if (live && (h === "inc" || h === "dec")) {
      cf = e.tmp32();
      this.carry();
      e.set(cf);
    }
    if (h === "neg") {
      e.i64s(0);
      e.get(va);
      e.op(Op.I64Sub);
    } else {
      e.get(va);
      if (h === "not") e.i64(-1, -1);
      else e.i64s(1);
      e.op(h === "not" ? Op.I64Xor : h === "inc" ? Op.I64Add : Op.I64Sub);
    }
    if (size !== 8) {
      e.i64(ml, mh);
      e.op(Op.I64And);
    }
    e.tee(vr);
    const stores = this.writeDest(d, size, rmw);
    if (live) {
      if (h === "neg") {
        e.i64s(0);
        e.set(this.fa);
        e.get(va);
        e.set(this.fb);
        this.pending = new Pending(LZ_SUB, size, true, false);
      } else {
        e.get(va);
        e.set(this.fa);
        e.i64s(1);
        e.set(this.fb);
        e.get(cf);
        e.set(this.fcin);
        this.pending = new Pending(h === "inc" ? LZ_INC : LZ_DEC, size, false, false);
      }
      e.get(vr);
      e.set(this.fr);
    }
    if (cf >= 0) e.free32l(cf);
    e.free64l(va);
    e.free64l(vr);
    return stores;
  }

  /** XCHG of two registers, or of memory and a register (data.ts xchg: the memory write first). */
  private exchange(d: Insn): boolean {
    const size = d.s0;
    const e = this.e;
    const a = e.tmp64();
    if (d.k0 === OpKind.Reg) {
      e.get(this.R[d.r0]!);
      e.set(a);
      e.get(this.R[d.r1]!);
      this.setReg(d.r0, size, false);
      e.get(a);
      this.setReg(d.r1, size, false);
      e.free64l(a);
      return false;
    }
    // Memory: read it (write intent), store the register there, then load the register.
    this.memLoad(d.seg, size, true);
    e.set(a);
    this.load(d, OpKind.Reg, d.r1, size, false);
    this.memStore(d.seg, size);
    e.get(a);
    this.setReg(d.r1, size, false);
    e.free64l(a);
    return true;
  }

  /** CMPXCHG r/m, r (data.ts cmpxchg): flags of CMP accumulator, destination; the destination is written. */
  private cmpxchg(d: Insn): boolean {
    const e = this.e;
    const size = d.s0;
    const [ml, mh] = sizeMask(size);
    const mem = d.k0 === OpKind.Mem;
    const dst = e.tmp64();
    const acc = e.tmp64();
    const src = e.tmp64();
    this.load(d, d.k0, d.r0, size, mem);
    e.set(dst);
    this.load(d, OpKind.Reg, 0, size, false);
    e.set(acc);
    this.load(d, d.k1, d.r1, size, false);
    e.set(src);
    e.get(acc);
    e.get(dst);
    e.op(Op.I64Eq);
    e.if_(T.I64);
    e.get(src);
    e.else_();
    e.get(dst);
    e.end();
    const stores = this.writeDest(d, size, mem);
    // Not equal: the accumulator loads the destination (after the write, as the handler does).
    e.get(acc);
    e.get(dst);
    e.op(Op.I64Ne);
    e.if_();
    e.get(dst);
    this.setReg(0, size, false);
    e.end();
    if (this.liveFlags()) {
      e.get(acc);
      e.set(this.fa);
      e.get(dst);
      e.set(this.fb);
      e.get(acc);
      e.get(dst);
      e.op(Op.I64Sub);
      if (size !== 8) {
        e.i64(ml, mh);
        e.op(Op.I64And);
      }
      e.set(this.fr);
      this.pending = new Pending(LZ_SUB, size, true, false);
    }
    e.free64l(dst);
    e.free64l(acc);
    e.free64l(src);
    return stores;
  }

  /** XADD r/m, r (data.ts xadd): destination = sum, source register = old destination. */
  private xadd(d: Insn): boolean {
    const e = this.e;
    const size = d.s0;
    const [ml, mh] = sizeMask(size);
    const mem = d.k0 === OpKind.Mem;
    const a = e.tmp64();
    const b = e.tmp64();
    const r = e.tmp64();
    this.load(d, d.k0, d.r0, size, mem);
    e.set(a);
    this.load(d, d.k1, d.r1, size, false);
    e.set(b);
    e.get(a);
    e.get(b);
    e.op(Op.I64Add);
    if (size !== 8) {
      e.i64(ml, mh);
      e.op(Op.I64And);
    }
    e.tee(r);
    let stores = false;
    if (mem) {
      stores = this.writeDest(d, size, true);
      e.get(a);
      this.setReg(d.r1, size, false);
    } else {
      // Both registers: the source gets the old value first, then the destination the sum.
      e.set(r);
      e.get(a);
      this.setReg(d.r1, size, false);
      e.get(r);
      this.setReg(d.r0, size, false);
    }
    if (this.liveFlags()) {
      e.get(a);
      e.set(this.fa);
      e.get(b);
      e.set(this.fb);
      e.get(r);
      e.set(this.fr);
      this.pending = new Pending(LZ_ADD, size, true, false);
    }
    e.free64l(a);
    e.free64l(b);
    e.free64l(r);
    return stores;
  }

  /** IMUL r, r/m and IMUL r, r/m, imm (muldiv.ts imul): CF = OF = the signed product does not fit. */
  private imul(d: Insn): void {
    const e = this.e;
    const size = d.s0;
    const va = e.tmp64();
    const vb = e.tmp64();
    const vr = e.tmp64();
    if (d.k2 === OpKind.Imm) {
      this.load(d, d.k1, d.r1, size, false);
      e.set(va);
      e.i64(d.immLo, d.immHi);
      e.set(vb);
    } else {
      e.get(this.R[d.r0]!);
      e.set(va);
      this.load(d, d.k1, d.r1, size, false);
      e.set(vb);
    }
    if (size === 4) {
      e.get(va);
      e.op(Op.I64Extend32S);
      e.set(va);
      e.get(vb);
      e.op(Op.I64Extend32S);
      e.set(vb);
    }
    e.get(va);
    e.get(vb);
    e.op(Op.I64Mul);
    e.tee(vr);
    this.setReg(d.r0, size, false);
    if (this.liveFlags()) {
      // Overflow: size 4, the exact 64-bit product differs from its low half sign-extended; size 8,
      // dividing the wrapped product by a does not give b back (a = 0 and a = -1 decided directly).
      if (size === 4) {
        e.get(vr);
        e.get(vr);
        e.op(Op.I64Extend32S);
        e.op(Op.I64Ne);
      } else this.signedHigh64Differs(va, vb, vr);
      e.i32(3);
      e.op(Op.I32Mul);
      e.set(this.fcin);
      e.get(vr);
      if (size === 4) {
        e.i64(-1, 0);
        e.op(Op.I64And);
      }
      e.set(this.fr);
      this.pending = new Pending(LZ_RESULT, size, false, false);
    }
    e.free64l(va);
    e.free64l(vb);
    e.free64l(vr);
  }

  /**
   * Pushes whether the signed 128-bit product of i64 locals a and b has a high half other than the sign
   * of its low half r (the 64-bit IMUL overflow), from four 32x32-bit partial products.
   */
  private signedHigh64Differs(a: number, b: number, r: number): void {
    const e = this.e;
    const lo = (v: number): void => {
      e.get(v);
      e.i64(-1, 0);
      e.op(Op.I64And);
    };
    const hi = (v: number): void => {
      e.get(v);
      e.i64s(32);
      e.op(Op.I64ShrU);
    };
    const lh = e.tmp64();
    const hl = e.tmp64();
    // lh = lo(a) * hi(b), hl = hi(a) * lo(b)
    lo(a);
    hi(b);
    e.op(Op.I64Mul);
    e.set(lh);
    hi(a);
    lo(b);
    e.op(Op.I64Mul);
    e.set(hl);
    // unsigned high half = hi(a)*hi(b) + hi(lh) + hi(hl) + hi(hi(lo(a)*lo(b)) + lo(lh) + lo(hl))
    hi(a);
    hi(b);
    e.op(Op.I64Mul);
    hi(lh);
    e.op(Op.I64Add);
    hi(hl);
    e.op(Op.I64Add);
    lo(a);
    lo(b);
    e.op(Op.I64Mul);
    e.i64s(32);
    e.op(Op.I64ShrU);
    lo(lh);
    e.op(Op.I64Add);
    lo(hl);
    e.op(Op.I64Add);
    e.i64s(32);
    e.op(Op.I64ShrU);
    e.op(Op.I64Add);
    // signed: minus b when a < 0, minus a when b < 0
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const) {
      e.get(x);
      e.i64s(63);
      e.op(Op.I64ShrS);
      e.get(y);
      e.op(Op.I64And);
      e.op(Op.I64Sub);
    }
    e.get(r);
    e.i64s(63);
    e.op(Op.I64ShrS);
    e.op(Op.I64Ne);
    e.free64l(lh);
    e.free64l(hl);
  }

  /**
   * SHL/SHR/SAR/ROL/ROR of a 32/64-bit register or memory operand by an immediate or CL (shift.ts): a
   * masked count of 0 changes no flags (the destination is still read, and written for a 32-bit
   * register, which zero-extends it). Byte and word SHL/SHR/SAR come here only with a constant count
   * from 1 to the width less 1 (forms.ts), where masking by the width and by 31 agree.
   */
  private shift(d: Insn, h: string): boolean {
    const e = this.e;
    const size = d.s0;
    const bits = size * 8;
    const [ml, mh] = sizeMask(size);
    const rmw = d.k0 === OpKind.Mem;
    const live = this.liveFlags();
    const va = e.tmp64();
    const vr = e.tmp64();
    const n = e.tmp64();
    const cf = e.tmp32();
    const of = e.tmp32();
    this.load(d, d.k0, d.r0, size, rmw);
    e.set(va);
    const constCount = d.k1 === OpKind.Imm;
    const cnt = d.immLo & (bits - 1);
    if (constCount) e.i64s(cnt);
    else {
      e.get(this.R[1]!);
      e.i64s(bits - 1);
      e.op(Op.I64And);
    }
    e.set(n);
    const rotate = h === "rol" || h === "ror";
    // Rotates change CF and OF only. When the flags' producer is known and the count is a nonzero
    // constant, the state becomes a Result (flags.ts setResultFlags): SF/ZF/PF stay those of the result
    // already in fr, AF is taken from the producer now, CF/OF from the rotate. Otherwise all flags are made
    // concrete first (a parity and adjust computation, or a runtime call).
    const p = this.pending;
    const asResult =
      live && rotate && constCount && cnt !== 0 && p !== null && p.op >= LZ_ADD && p.op <= LZ_DEC;
    const af = asResult ? e.tmp32() : -1;
    if (asResult) {
      emitFlag(e, Flag.AF, this.flagState());
      e.set(af);
    } else if (live) {
      this.spillFlags();
      if (rotate && (!constCount || cnt !== 0)) this.materialize();
    }
    if (!constCount) {
      e.get(n);
      e.op(Op.I64Eqz);
      e.if_();
      // Count 0: a 32-bit register is zero-extended; memory was read (with write intent) and stays.
      if (!rmw) {
        e.get(va);
        this.writeDest(d, size, false);
      }
      e.else_();
    }
    let stores = false;
    if (constCount && cnt === 0) {
      if (!rmw) {
        e.get(va);
        this.writeDest(d, size, false);
      }
    } else {
      const sign = (v: number): void => {
        e.get(v);
        e.i64s(bits - 1);
        e.op(Op.I64ShrU);
        e.op(Op.I32WrapI64);
        e.i32(1);
        e.op(Op.I32And);
      };
      const bitAt = (v: number, pos: () => void): void => {
        e.get(v);
        pos();
        e.op(Op.I64ShrU);
        e.op(Op.I32WrapI64);
        e.i32(1);
        e.op(Op.I32And);
      };
      const nMinus1 = (): void => {
        e.get(n);
        e.i64s(1);
        e.op(Op.I64Sub);
      };
      switch (h) {
        case "shl":
          if (live) {
            bitAt(va, () => {
              e.i64s(bits);
              e.get(n);
              e.op(Op.I64Sub);
            });
            e.set(cf);
          }
          e.get(va);
          e.get(n);
          e.op(Op.I64Shl);
          break;
        case "shr":
          if (live) {
            bitAt(va, nMinus1);
            e.set(cf);
            sign(va);
            e.set(of);
          }
          e.get(va);
          e.get(n);
          e.op(Op.I64ShrU);
          break;
        case "sar": {
          const sa = e.tmp64();
          e.get(va);
          if (size !== 8) e.op(size === 4 ? Op.I64Extend32S : size === 2 ? Op.I64Extend16S : Op.I64Extend8S);
          e.set(sa);
          if (live) {
            bitAt(sa, nMinus1);
            e.set(cf);
            e.i32(0);
            e.set(of);
          }
          e.get(sa);
          e.get(n);
          e.op(Op.I64ShrS);
          e.free64l(sa);
          break;
        }
        default: {
          // Rotate within the operand size (the count is below the size in bits after masking).
          const left = h === "rol";
          e.get(va);
          if (size === 8) {
            e.get(n);
            e.op(left ? Op.I64Rotl : Op.I64Rotr);
          } else {
            e.op(Op.I32WrapI64);
            e.get(n);
            e.op(Op.I32WrapI64);
            e.op(left ? Op.I32Rotl : Op.I32Rotr);
            e.op(Op.I64ExtendI32U);
          }
          break;
        }
      }
      if (size !== 8) {
        e.i64(ml, mh);
        e.op(Op.I64And);
      }
      e.tee(vr);
      stores = this.writeDest(d, size, rmw);
      if (live) {
        if (rotate) {
          // CF: the bit rotated in (left: bit 0; right: the MSB); OF: MSB ^ CF (left), MSB ^ MSB-1 (right).
          if (h === "rol") {
            e.get(vr);
            e.op(Op.I32WrapI64);
            e.i32(1);
            e.op(Op.I32And);
            e.set(cf);
            sign(vr);
            e.get(cf);
            e.op(Op.I32Xor);
            e.set(of);
          } else {
            sign(vr);
            e.set(cf);
            e.get(vr);
            e.i64s(bits - 2);
            e.op(Op.I64ShrU);
            e.op(Op.I32WrapI64);
            e.get(cf);
            e.op(Op.I32Xor);
            e.i32(1);
            e.op(Op.I32And);
            e.set(of);
          }
          if (asResult) {
            e.get(cf);
            e.get(of);
            e.i32(1);
            e.op(Op.I32Shl);
            e.op(Op.I32Or);
            e.get(af);
            e.i32(2);
            e.op(Op.I32Shl);
            e.op(Op.I32Or);
            e.set(this.fcin);
          } else {
            e.get(this.fflags);
            e.i32(~0x801);
            e.op(Op.I32And);
            e.get(cf);
            e.op(Op.I32Or);
            e.get(of);
            e.i32(11);
            e.op(Op.I32Shl);
            e.op(Op.I32Or);
            e.set(this.fflags);
          }
        } else {
          if (h === "shl") {
            sign(vr);
            e.get(cf);
            e.op(Op.I32Xor);
            e.set(of);
          }
          e.i32(LZ_RESULT);
          e.set(this.fop);
          e.i32(size);
          e.set(this.fsz);
          e.get(vr);
          e.set(this.fr);
          e.get(cf);
          e.get(of);
          e.i32(1);
          e.op(Op.I32Shl);
          e.op(Op.I32Or);
          e.set(this.fcin);
        }
      }
    }
    if (!constCount) e.end();
    if (asResult) {
      this.pending = new Pending(LZ_RESULT, p.size, false, false);
      e.free32l(af);
    } else if (live) this.pending = null;
    e.free64l(va);
    e.free64l(vr);
    e.free64l(n);
    e.free32l(cf);
    e.free32l(of);
    return stores;
  }

  /** BT/BTS/BTR/BTC of a 32/64-bit register (bits.ts bitOp): CF = the bit, OF/SF/AF/PF cleared, ZF kept. */
  private bitTest(d: Insn, h: string): void {
    const e = this.e;
    const size = d.s0;
    const bit = e.tmp64();
    this.load(d, d.k1, d.r1, size, false);
    e.i64s(size * 8 - 1);
    e.op(Op.I64And);
    e.set(bit);
    if (this.liveFlags()) {
      const zf = e.tmp32();
      this.zeroFlag();
      e.set(zf);
      e.get(this.fflags);
      e.i32(~0x8d5);
      e.op(Op.I32And);
      e.get(zf);
      e.i32(6);
      e.op(Op.I32Shl);
      e.op(Op.I32Or);
      e.get(this.R[d.r0]!);
      e.get(bit);
      e.op(Op.I64ShrU);
      e.op(Op.I32WrapI64);
      e.i32(1);
      e.op(Op.I32And);
      e.op(Op.I32Or);
      e.set(this.fflags);
      e.i32(0);
      e.set(this.fop);
      this.pending = null;
      e.free32l(zf);
    }
    if (h !== "bt") {
      e.get(this.R[d.r0]!);
      e.i64s(1);
      e.get(bit);
      e.op(Op.I64Shl);
      if (h === "btr") {
        e.i64(-1, -1);
        e.op(Op.I64Xor);
        e.op(Op.I64And);
      } else e.op(h === "bts" ? Op.I64Or : Op.I64Xor);
      this.setReg(d.r0, size, false);
    }
    e.free64l(bit);
  }

  /** Sign-extends the i64 on the stack from `size` bytes to 64 bits. */
  private signExtend(size: number): void {
    const e = this.e;
    if (size === 1) e.op(Op.I64Extend8S);
    else if (size === 2) e.op(Op.I64Extend16S);
    else if (size === 4) e.op(Op.I64Extend32S);
  }

  // ------------------------------------------------------------------ operands

  /**
   * Writes register r at `size` from the i64 on the stack (32-bit writes zero-extend, 8/16-bit writes
   * merge; `high`: AH..BH).
   */
  private setReg(r: number, size: number, high: boolean): void {
    const e = this.e;
    const R = this.R[r]!;
    if (high) {
      e.i64s(0xff);
      e.op(Op.I64And);
      e.i64s(8);
      e.op(Op.I64Shl);
      e.get(R);
      e.i64(~0xff00, -1);
      e.op(Op.I64And);
      e.op(Op.I64Or);
      e.set(R);
    } else if (size === 8) e.set(R);
    else if (size === 4) {
      e.i64(-1, 0);
      e.op(Op.I64And);
      e.set(R);
    } else {
      const m = size === 2 ? 0xffff : 0xff;
      e.i64s(m);
      e.op(Op.I64And);
      e.get(R);
      e.i64(~m, -1);
      e.op(Op.I64And);
      e.op(Op.I64Or);
      e.set(R);
    }
  }

  /** Pushes operand (kind, reg) at `size`, zero-extended to i64 (memory: at the computed address). */
  private load(d: Insn, kind: number, reg: number, size: number, rmw: boolean): void {
    const e = this.e;
    switch (kind) {
      case OpKind.Reg:
        e.get(this.R[reg]!);
        if (size !== 8) {
          const [ml, mh] = sizeMask(size);
          e.i64(ml, mh);
          e.op(Op.I64And);
        }
        return;
      case OpKind.RegHigh:
        e.get(this.R[reg]!);
        e.i64s(8);
        e.op(Op.I64ShrU);
        e.i64s(0xff);
        e.op(Op.I64And);
        return;
      case OpKind.Imm: {
        if (size === 8) e.i64(d.immLo, d.immHi);
        else {
          const [ml] = sizeMask(size);
          e.i64(d.immLo & ml, 0);
        }
        return;
      }
      default:
        this.memLoad(d.seg, size, rmw);
    }
  }

  /** Writes the i64 on the stack to operand slot 0 of d; returns whether a slow-path store may stop the unit. */
  private writeDest(d: Insn, size: number, rmw: boolean): boolean {
    if (d.k0 === OpKind.Reg) this.setReg(d.r0, size, false);
    else if (d.k0 === OpKind.RegHigh) this.setReg(d.r0, 1, true);
    else {
      this.memStore(d.seg, size);
      void rmw;
      return true;
    }
    return false;
  }

  /** Computes the effective address (offset) of d's memory operand into `ea`. */
  private computeEA(d: Insn): void {
    const e = this.e;
    // Terms pushed so far: each after the first is added to the sum (no closure: this runs per access).
    let terms = 0;
    if (d.ripRel) {
      e.get(this.ripBase);
      e.i64s(this.off + d.len);
      e.op(Op.I64Add);
      terms++;
    }
    if (d.base >= 0) {
      e.get(this.R[d.base]!);
      if (terms++ > 0) e.op(Op.I64Add);
    }
    if (d.index >= 0) {
      e.get(this.R[d.index]!);
      if (d.scale !== 0) {
        e.i64s(d.scale);
        e.op(Op.I64Shl);
      }
      if (terms++ > 0) e.op(Op.I64Add);
    }
    if (terms === 0 || d.dispLo !== 0 || d.dispHi !== 0) {
      e.i64(d.dispLo, d.dispHi);
      if (terms++ > 0) e.op(Op.I64Add);
    }
    if (d.asize === 4) {
      e.i64(-1, 0);
      e.op(Op.I64And);
    }
    e.tee(this.ea);
    if (d.seg === 4 || d.seg === 5) {
      e.get(d.seg === 4 ? this.fsb : this.gsb);
      e.op(Op.I64Add);
    }
    e.set(this.la);
  }

  /** [] -> [value]: a load of `size` bytes at linear address `la`; a fault leaves as this instruction's. */
  private memLoad(seg: number, size: number, rmw: boolean): void {
    const e = this.e;
    const region = rmw ? 1 : 0;
    this.faultPoint();
    // Up to the slow path's call, the code depends only on the access's kind: a snippet that leaves the
    // probe's `if` open.
    const id = seg >= 0 && seg < 8 && size >= 0 && size < 16 ? SN_LOAD + (region * 8 + seg) * 16 + size : -1;
    if (id < 0 || !this.replay(id, 1)) {
      const from = e.len;
      emitProbe(e, this.probeLocals, region, size);
      e.if_(T.I64);
      emitHost(e, this.probeLocals, region);
      e.mem(LOAD_OPS[size]!, 0, 0);
      e.else_();
      e.get(this.la);
      e.i32(seg | (size << 4));
      e.call(rmw ? this.fnLdw : this.fnLd);
      if (id >= 0) this.record(id, from);
    }
    this.slowStatus();
    e.end();
    this.loads = true;
  }

  /**
   * [status] -> []: after a slow-path access, leaves as this instruction's fault on 2; 1 (a device was
   * reached, or code written) makes `stopAfter` 1, which the instruction's end (or exit) acts on.
   */
  private slowStatus(): void {
    const e = this.e;
    const st = e.tmp32();
    e.tee(st);
    e.i32(1);
    e.op(Op.I32GtU);
    e.brIf(this.sigLabel);
    e.get(st);
    e.get(this.stopAfter);
    e.op(Op.I32Or);
    e.set(this.stopAfter);
    e.free32l(st);
  }

  /** [value] -> []: a store at `la`; `stopAfter` becomes 1 when the unit must stop after this instruction. */
  private memStore(seg: number, size: number): void {
    const e = this.e;
    this.faultPoint();
    const v = e.tmp64();
    e.set(v);
    // The probe and the RAM address depend only on the size: a snippet that leaves the probe's `if` open.
    const id = size >= 0 && size < 16 ? SN_STORE_PROBE + size : -1;
    if (id < 0 || !this.replay(id, 1)) {
      const from = e.len;
      emitProbe(e, this.probeLocals, 1, size);
      e.if_();
      emitHost(e, this.probeLocals, 1);
      if (id >= 0) this.record(id, from);
    }
    e.get(v);
    e.mem(STORE_OPS[size]!, 0, 0);
    e.else_();
    e.get(this.la);
    e.i32(seg | (size << 4));
    e.get(v);
    e.call(this.fnSt);
    this.slowStatus();
    e.end();
    e.free64l(v);
  }

  // ------------------------------------------------------------------ stack (64-bit: SS has no base)

  /** PUSH of the i64 on the stack: the store first (it may fault), then RSP. */
  private push(): void {
    const e = this.e;
    e.get(this.R[4]!);
    e.i64s(8);
    e.op(Op.I64Sub);
    e.set(this.la);
    this.memStore(2, 8);
    e.get(this.R[4]!);
    e.i64s(8);
    e.op(Op.I64Sub);
    e.set(this.R[4]!);
  }

  private addRsp(n: number): void {
    const e = this.e;
    e.get(this.R[4]!);
    e.i64s(n);
    e.op(Op.I64Add);
    e.set(this.R[4]!);
  }
}
