// Owns: one processor's WebAssembly translation tier: compiling a hot code page into a unit (plan.ts,
// unit.ts), installing its entry points on the decoded instructions, the bounded table of live units
// with eviction of the oldest, running a unit from the run loop (the exchange of flags, RIP and the count
// around the call), and the helpers units import: slow-path memory access and the interpreter's handler
// for every instruction not emitted inline, each reporting a fault or VM exit by return value (the signal
// is kept here and rethrown by the run loop once the unit has written its state back).
// Must not: decide when to compile (cpu.ts counts heat), decode bytes, or let a JavaScript exception cross
// a unit's frames while guest registers are in its locals.
// Spec: docs/decisions/0005-wasm-tier.md; Intel SDM Vol. 3A 6.5-6.6 (precise exceptions).

import type { CodePage } from "../code-cache.js";
import { type CpuCore, CpuSignal, type Handler, Vec } from "../core.js";
import { LazyOp } from "../flags.js";
import type { Insn } from "../insn.js";
import { buildDispatcher } from "./dispatch.js";
import { TLB_TAG, UNIT_MAP, X } from "./layout.js";
import { planUnit, type UnitPlan } from "./plan.js";
import { runtimeFunctions } from "./runtime.js";
import { emitUnit, inlineForm, Status } from "./unit.js";
import { moduleText } from "./wat.js";
import { disassemble } from "../disasm.js";
import { DOUBLE_ZERO } from "../../support/heap-number.js";

const TWO32 = 0x1_0000_0000;
/** Most instructions in one unit (bounds code size and compile time). */
const MAX_UNIT_INSNS = 3000;
/** Recompilations of one page for entry points found after its unit was built. */
export const MAX_RECOMPILES = 8;

/** Insn.unitEntry of an instruction inside a live unit that is not one of its entries. */
export const PLANNED = -2;

type RunFn = (entry: number, ripBaseLo: number, ripBaseHi: number, budget: number) => number;

export class Unit {
  constructor(
    readonly page: CodePage,
    readonly plan: UnitPlan,
    readonly run: RunFn,
    /** Module size in bytes. */
    readonly bytes: number,
    /** Index in the unit table (the page map holds index + 1). */
    readonly index: number,
  ) {}
}

type DispatchFn = (ripLo: number, ripHi: number, budget: number) => number;

/** Counters for benchmarks and the debug tools. */
export interface TierStats {
  units: number;
  /** Background compilations not yet installed or discarded. */
  pending: number;
  /**
   * Main-thread milliseconds spent compiling: planning and emitting (`emitMs`), the engine's compile when
   * synchronous, and installing. `wasmMs`: the engine's compile (synchronous), or the time until a
   * background compile was ready (not main-thread time).
   */
  compileMs: number;
  emitMs: number;
  /** Of `emitMs`, finding the page's entry points and planning (plan.ts); the rest is emission (unit.ts). */
  planMs: number;
  wasmMs: number;
  moduleBytes: number;
  /** Unit calls from the run loop, and instructions they retired. */
  calls: number;
  translated: number;
  /** Instructions run through their handler from a unit (the rest of `translated` ran inline). */
  helperCalls: number;
  /** Units dropped because their page was written, evicted or the table was full. */
  invalidated: number;
  evicted: number;
  /** Entries refused (unit would not fit) and fallbacks to the interpreter at one instruction. */
  interp: number;
  /** Returns to the run loop by unit status (Done, Signal, Interp, -, Branch at the budget, NoEntry). */
  exits: number[];
}

/** What the run loop does after a unit returns (see Cpu.inner). */
export const enum After {
  Continue = 0,
  Interpret = 1,
}

export class WasmTier {
  readonly stats: TierStats = {
    units: 0,
    compileMs: DOUBLE_ZERO,
    pending: 0,
    emitMs: DOUBLE_ZERO,
    planMs: DOUBLE_ZERO,
    wasmMs: DOUBLE_ZERO,
    moduleBytes: 0,
    calls: 0,
    translated: 0,
    helperCalls: 0,
    invalidated: 0,
    evicted: 0,
    interp: 0,
    exits: [0, 0, 0, 0, 0, 0],
  };
  private readonly imports: WebAssembly.Imports;
  private readonly xch: Int32Array;
  private readonly memPages: number;
  /** Pages with a live unit, oldest first. */
  private readonly live = new Set<CodePage>();
  /** The count at the dispatcher's entry (the helpers add the chain's count from the exchange area). */
  private countAtEntry = 0;
  private signal: CpuSignal | null = null;
  /** Units by table index; the table holds their `run` functions for the dispatcher. */
  private readonly byIndex: Array<Unit | null>;
  private readonly freeIndex: number[] = [];
  private readonly table: WebAssembly.Table;
  /** The processor's page map in the shared memory: RAM page -> 1 + table index of its unit, or 0. */
  private readonly pageMap: Uint16Array;
  private readonly dispatch: DispatchFn;

  constructor(
    private readonly c: CpuCore,
    private readonly maxUnits: number,
    /** Compile with `WebAssembly.instantiate` (the engine's background threads) instead of synchronously. */
    private readonly background = false,
  ) {
    const mem = c.mem.wasmMemory!;
    this.memPages = mem.buffer.byteLength / 0x10000;
    this.xch = c.xch;
    this.table = new WebAssembly.Table({ element: "anyfunc", initial: maxUnits, maximum: maxUnits });
    this.byIndex = new Array<Unit | null>(maxUnits).fill(null);
    for (let i = maxUnits - 1; i >= 0; i--) this.freeIndex.push(i);
    this.pageMap = new Uint16Array(mem.buffer, c.stateSlot + UNIT_MAP, c.mem.size >>> 12);
    const rt = runtimeFunctions();
    const x = this.xch;
    const js = {
      // Linear-address accessors: in 64-bit mode readMem/writeMem are the stack segment's canonical
      // check (#SS) plus these (the unit adds the FS/GS base itself).
      rd: (seg: number, lo: number, hi: number, size: number): number => {
        try {
          if (seg === 2 && (hi << 16) >> 16 !== hi) c.fault(Vec.SS, 0);
          x[X.ValLo] = c.readLin(lo, hi, size);
          x[X.ValHi] = size === 8 ? c.hi : 0;
          // A device read sets attn: the unit stops after the instruction so events are looked at.
          return c.attn !== 0 ? 1 : 0;
        } catch (e) {
          return this.caught(e);
        }
      },
      rdw: (seg: number, lo: number, hi: number, size: number): number => {
        try {
          if (seg === 2 && (hi << 16) >> 16 !== hi) c.fault(Vec.SS, 0);
          x[X.ValLo] = c.readLinRmw(lo, hi, size);
          x[X.ValHi] = size === 8 ? c.hi : 0;
          return c.attn !== 0 ? 1 : 0;
        } catch (e) {
          return this.caught(e);
        }
      },
      wr: (seg: number, lo: number, hi: number, size: number, vlo: number, vhi: number): number => {
        try {
          if (seg === 2 && (hi << 16) >> 16 !== hi) c.fault(Vec.SS, 0);
          c.writeLin(lo, hi, size, vlo, vhi);
          return (c.attn | c.stop) !== 0 ? 1 : 0;
        } catch (e) {
          return this.caught(e);
        }
      },
      hc: (idx: number, count: number): number => this.helper(idx, count),
    };
    const disp = new WebAssembly.Instance(
      new WebAssembly.Module(buildDispatcher(c.stateSlot, this.memPages, maxUnits)),
      { x: { mem, tab: this.table }, js },
    );
    this.dispatch = disp.exports.dispatch as unknown as DispatchFn;
    // Units import two functions: the bridge to the helpers above and the runtime's flag function.
    const bridge = disp.exports.h as (...args: never[]) => unknown;
    this.imports = { x: { mem, h: bridge }, rt: { f: rt.f } };
  }

  /** Whether processor c can use the tier (its memory is WebAssembly-backed and it has a state slot). */
  static available(c: CpuCore): boolean {
    return c.stateSlot >= 0 && c.mem.wasmMemory !== null;
  }

  private caught(e: unknown): number {
    if (!(e instanceof CpuSignal)) throw e;
    this.signal = e;
    return 2;
  }

  /** The signal a unit stopped with (Status.Signal), to be rethrown by the run loop. */
  takeSignal(): CpuSignal {
    const s = this.signal!;
    this.signal = null;
    return s;
  }

  // ------------------------------------------------------------------ units

  /**
   * Compiles `page` (the current code page, 64-bit code) from the block starts seen on it; `at(po)`
   * decodes through the decode cache. Returns false when there is nothing to compile.
   */
  compile(page: CodePage, at: (po: number) => Insn | null): boolean {
    const t0 = performance.now();
    const roots: number[] = [];
    const insns = page.insns;
    for (let po = 0; po < 4096; po++) {
      const d = insns[po];
      if (d !== undefined && d.hits > 0 && d.mode === 2) roots.push(po);
    }
    // Instructions straddling into the next page are kept apart (code-cache.ts), by 4096 - offset.
    page.straddle?.forEach((d, i) => {
      if (d !== undefined && d.hits > 0 && d.mode === 2) roots.push(4096 - i);
    });
    if (roots.length === 0) return false;
    const plan = planUnit(roots, at, MAX_UNIT_INSNS);
    if (plan.blocks.length === 0) return false;
    this.stats.planMs += performance.now() - t0;
    const bytes = emitUnit(plan, { slot: this.c.stateSlot, memPages: this.memPages });
    const t1 = performance.now();
    this.stats.emitMs += t1 - t0;
    this.stats.compileMs += t1 - t0;
    if (this.background) {
      // The interpreter goes on; the unit is installed when the engine is done, unless its page was
      // dropped meanwhile (a write, an eviction: `drop` clears `pending`, so the token no longer matches).
      const token = {};
      page.pending = token;
      this.stats.pending++;
      WebAssembly.instantiate(bytes, this.imports).then(
        ({ instance }) => {
          this.stats.pending--;
          this.stats.wasmMs += performance.now() - t1;
          if (page.pending !== token) return;
          page.pending = null;
          this.install(page, plan, instance, bytes.length);
        },
        (e: unknown) => {
          this.stats.pending--;
          if (page.pending === token) page.pending = null;
          // A module our encoder made that the engine refuses is a bug: make it loud, as a sync compile would.
          queueMicrotask(() => {
            throw e;
          });
        },
      );
      return true;
    }
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), this.imports);
    this.stats.wasmMs += performance.now() - t1;
    this.stats.compileMs += performance.now() - t1;
    this.install(page, plan, inst, bytes.length);
    return true;
  }

  /** Makes a compiled unit the page's (replacing an older one), evicting the oldest unit when the table is full. */
  private install(page: CodePage, plan: UnitPlan, inst: WebAssembly.Instance, size: number): void {
    const t0 = performance.now();
    this.drop(page, false);
    if (this.freeIndex.length === 0) {
      const oldest = this.live.values().next().value as CodePage;
      this.drop(oldest, false);
      this.stats.evicted++;
    }
    const index = this.freeIndex.pop()!;
    const run = inst.exports.run as unknown as RunFn;
    const u = new Unit(page, plan, run, size, index);
    page.unit = u;
    this.live.add(page);
    this.byIndex[index] = u;
    this.table.set(index, run);
    this.pageMap[page.ramPage] = index + 1;
    // Instructions inside a block of the unit are marked (PLANNED): the run loop arriving at one (after
    // the unit stopped in the middle of the block, or an interrupt returned there) does not count it as
    // a block start, so such resume points do not become entries of the next compilation. Entries split
    // blocks, and every entry costs the code around it (a budget check, flags kept for the exit there).
    // A block start that is no entry yet still counts (a loop head where the unit stopped for its budget).
    for (let i = 0; i < plan.blocks.length; i++) {
      const b = plan.blocks[i]!;
      for (let k = 1; k < b.insns.length; k++) b.insns[k]!.unitEntry = PLANNED;
      if (b.entry) b.insns[0]!.unitEntry = i;
    }
    const s = this.stats;
    s.units++;
    s.moduleBytes += size;
    s.compileMs += performance.now() - t0;
  }

  /** Forgets page's unit (its page was written or evicted: `counted`; or it is being replaced). */
  drop(page: CodePage, counted: boolean): void {
    page.pending = null;
    const u = page.unit as Unit | null;
    if (u === null) return;
    for (const d of u.plan.insns) d.unitEntry = -1;
    page.unit = null;
    this.live.delete(page);
    this.pageMap[page.ramPage] = 0;
    this.table.set(u.index, null);
    this.byIndex[u.index] = null;
    this.freeIndex.push(u.index);
    if (counted) this.stats.invalidated++;
  }

  // ------------------------------------------------------------------ running

  /**
   * Runs translated code from RIP (instruction d, an entry of its page's unit) with at most `left`
   * instructions: the dispatcher goes from unit to unit while they only branch. On return the processor's
   * RIP, flags and `count` are exact; a fault or exit inside is rethrown (after RIP and the count are set
   * as the interpreter leaves them). Returns what the run loop must do next.
   */
  enter(d: Insn, left: number): After {
    const c = this.c;
    const x = this.xch;
    this.storeFlags();
    x[X.Tlbu] = c.stateSlot + TLB_TAG + c.tlbUser * 8;
    x[X.FsLo] = c.segBaseLo[4]!;
    x[X.FsHi] = c.segBaseHi[4]!;
    x[X.GsLo] = c.segBaseLo[5]!;
    x[X.GsHi] = c.segBaseHi[5]!;
    this.countAtEntry = c.count;
    c.stop = 0;
    const st = this.dispatch(c.ripLo, c.ripHi, left);
    this.loadFlags();
    const n = x[X.Count]!;
    c.count = this.countAtEntry + n;
    const s = this.stats;
    s.calls++;
    s.translated += n;
    s.exits[st & 7]!++;
    switch (st) {
      case Status.Done:
      case Status.Branch:
      case Status.NoEntry:
        c.ripLo = x[X.RipLo]!;
        c.ripHi = x[X.RipHi]!;
        if (n === 0) {
          s.interp++;
          return After.Interpret;
        }
        return After.Continue;
      case Status.Interp:
        c.ripLo = x[X.RipLo]!;
        c.ripHi = x[X.RipHi]!;
        s.interp++;
        return After.Interpret;
      case Status.Signal: {
        this.setRipAt(this.byIndex[x[X.Unit]! - 1]!, x[X.Index]!, x[X.BaseLo]!, x[X.BaseHi]!);
        throw this.takeSignal();
      }
      default:
        throw new Error(`translation unit returned status ${st} (entry ${d.unitEntry})`);
    }
  }

  /** RIP of instruction idx of u into curRip, and of the instruction after it into RIP. */
  private setRipAt(u: Unit, idx: number, rbLo: number, rbHi: number): void {
    const c = this.c;
    const off = u.plan.offs[idx]!;
    const d = u.plan.insns[idx]!;
    c.curRipLo = rbLo + off;
    c.curRipHi = rbHi;
    const s = (rbLo >>> 0) + off + d.len;
    c.ripLo = s | 0;
    c.ripHi = s >= TWO32 ? (rbHi + 1) | 0 : rbHi;
  }

  /** Import `hc`: runs instruction idx of the current unit through its handler. */
  private helper(idx: number, count: number): number {
    const c = this.c;
    const x = this.xch;
    const u = this.byIndex[x[X.Unit]! - 1]!;
    const d = u.plan.insns[idx]!;
    this.stats.helperCalls++;
    this.loadFlags();
    this.setRipAt(u, idx, x[X.BaseLo]!, x[X.BaseHi]!);
    const next = c.ripLo;
    const before = this.countAtEntry + x[X.Chain]! + count;
    c.count = before;
    x[X.Extra] = 0;
    try {
      if (d.hasMem) c.computeEA(d);
      (d.fn as Handler)(c, d);
    } catch (e) {
      this.storeFlags();
      return this.caught(e);
    }
    // Iterations of a REP string instruction past its first: the unit adds them to its count. Its budget
    // checks then hold at loop heads; on a forward path (at most MAX_UNIT_INSNS to the next check) it
    // stops instead when so many would pass the run loop's budget.
    const more = c.count - before;
    x[X.Extra] = more;
    this.storeFlags();
    if (
      u.plan.straight[idx] === 0 ||
      (c.attn | c.stop) !== 0 ||
      c.ripLo !== next ||
      (more !== 0 && c.count + MAX_UNIT_INSNS > c.budgetEnd)
    ) {
      const x = this.xch;
      x[X.RipLo] = c.ripLo;
      x[X.RipHi] = c.ripHi;
      return 1;
    }
    return 0;
  }

  // ------------------------------------------------------------------ lazy flags <-> exchange area

  /** FlagUnit -> exchange area (the forms units understand: sizes < 8 zero-extended, no deferred CF). */
  private storeFlags(): void {
    const c = this.c;
    const op = c.lazyOp;
    if (op === LazyOp.Imul64 || ((op === LazyOp.Inc || op === LazyOp.Dec) && c.lzCin < 0)) c.getFlags();
    const x = this.xch;
    const wide = c.lzSize === 8;
    x[X.FOp] = c.lazyOp;
    x[X.FSize] = c.lzSize;
    x[X.FaLo] = c.lzA;
    x[X.FaHi] = wide ? c.lzAHi : 0;
    x[X.FbLo] = c.lzB;
    x[X.FbHi] = wide ? c.lzBHi : 0;
    x[X.FrLo] = c.lzR;
    x[X.FrHi] = wide ? c.lzRHi : 0;
    x[X.FCin] = c.lzCin;
    x[X.Flags] = c.flagsReg;
  }

  private loadFlags(): void {
    const c = this.c;
    const x = this.xch;
    c.lazyOp = x[X.FOp]!;
    c.lzSize = x[X.FSize]!;
    c.lzA = x[X.FaLo]!;
    c.lzAHi = x[X.FaHi]!;
    c.lzB = x[X.FbLo]!;
    c.lzBHi = x[X.FbHi]!;
    c.lzR = x[X.FrLo]!;
    c.lzRHi = x[X.FrHi]!;
    c.lzCin = x[X.FCin]!;
    c.flagsReg = x[X.Flags]!;
  }

  /**
   * The live unit of RAM page `ramPage` for people debugging it (docs/x86-internals.md): each instruction
   * with its index (the number `hc`, faults and X.Index use), page offset, `entry` where the run loop may
   * enter the unit, whether it is inline or a handler call, and its disassembly; then the module as WebAssembly text (emitted again from the plan:
   * emission is deterministic). Null when the page has no unit.
   */
  unitListing(ramPage: number): string | null {
    const i = this.pageMap[ramPage]!;
    const u = i === 0 ? null : this.byIndex[i - 1]!;
    if (u === null) return null;
    const lines = [`unit of RAM page 0x${ramPage.toString(16)}: ${u.plan.insns.length} instructions`];
    u.plan.insns.forEach((d, k) => {
      const off = u.plan.offs[k]!;
      const form = inlineForm(d) ? "inline" : "handler";
      const entry = d.unitEntry >= 0 ? "entry " : "";
      lines.push(
        `  #${k} +0x${off.toString(16).padStart(3, "0")} ${entry}${form.padEnd(7)} ${disassemble(d, off + d.len)}`,
      );
    });
    lines.push(moduleText(emitUnit(u.plan, { slot: this.c.stateSlot, memPages: this.memPages })));
    return lines.join("\n");
  }

  /** Share of the instructions of unit code emitted inline, by static count (for the debug tools). */
  static inlineShare(plan: UnitPlan): number {
    let n = 0;
    for (const d of plan.insns) if (inlineForm(d)) n++;
    return plan.insns.length === 0 ? 0 : n / plan.insns.length;
  }
}
