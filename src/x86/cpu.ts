// Owns: the `Cpu` class implementing the `Processor` contract: the run loop with its instruction budget,
// the decoded-instruction cache (code-cache.ts: per guest-physical page, invalidated through
// GuestMemory.codePages / onCodeWrite), the heat that decides when a page is translated and the entry
// into translated code (wasm/tier.ts, docs/decisions/0005), instruction-boundary event handling (NMI,
// external interrupts with IF and the STI/MOV SS shadow, interrupt-window exits, HLT idling), exit
// completion (RIP advance for RDMSR/WRMSR/CPUID/VMCALL; device accesses complete in place through the
// intercepts, docs/decisions/0004), reset, and the register accessors of the contract.
// Must not: contain instruction semantics (handler modules) or decode bytes itself (decoder.ts).
// Spec: Intel SDM Vol. 3A 6.6-6.9 (interrupt recognition, priorities, STI/MOV SS shadows), 9.1 (reset
// state), Vol. 3C 25.2-25.4 (exit conditions, mirrored by vm-exit.ts); docs/x86-internals.md.

import {
  type GuestMemory,
  PAGE_SHIFT,
  PAGE_SIZE,
  ramPageOf,
  WINDOW_PAGE_MASK,
  WINDOW_PAGE_SHIFT,
} from "../memory/guest-memory.js";
import { CpuCore, type CpuOptions, EXIT, FAULT, type Handler, TLB_SIZE, VPN_SCALE } from "./core.js";
import { After, MAX_RECOMPILES, PLANNED, WasmTier } from "./wasm/tier.js";
import { CodeCache, type CodePage } from "./code-cache.js";
import { decode, DECODE_MORE, DECODE_OK, warmDecoder } from "./decoder.js";
import { deliverEvent, EventKind, SHUTDOWN } from "./exceptions.js";
import { formHandler } from "./fast-forms.js";
import { buildDispatch } from "./handlers.js";
import { Insn } from "./insn.js";
import { ACC_EXEC } from "./paging.js";
import type { InterruptSource } from "../contracts/platform.js";
import type { Processor, Reg, Seg, SegmentState } from "./processor.js";
import { ExitReason } from "./vm-exit.js";

export type { CpuOptions } from "./core.js";

const TWO32 = 0x1_0000_0000;
/** Most guest-physical pages with cached decodes per processor (each costs a 4096-slot array). */
const MAX_CODE_PAGES = 1024;
/** Most decoded instructions cached per processor (about 200 bytes each). */
const MAX_DECODED = 262144;
/** Most translation units alive per processor; beyond that the oldest is dropped. */
const MAX_UNITS = 512;
/** Block starts counted on a code page before it is compiled (CpuOptions.jitThreshold overrides). */
export const DEFAULT_JIT_THRESHOLD = 2000;
const FLAG_IF = 0x200;
const FLAG_TF = 0x100;

/** Every processor sharing a GuestMemory, so a newly cached code page drops all of their write entries. */
const peers = new WeakMap<GuestMemory, Cpu[]>();

export class Cpu extends CpuCore implements Processor {
  interrupts: InterruptSource | null = null;
  private readonly dispatch: Handler[];
  /** Decoded instructions per RAM page (RAM offset >> 12), indexed by page offset. */
  private readonly code = new CodeCache(MAX_CODE_PAGES, MAX_DECODED, (p) => this.onPageDropped(p));
  /** The page RIP is on (its entry in `code`), or null. */
  private curPage: CodePage | null = null;
  /** The next instruction starts a block (see inner()): after a branch, an event, or a RIP set from outside. */
  private blockStart = true;
  /** Shortcut for the page RIP is on: linear page number (low 20 bits, high half), its cache array. */
  private codePg = -1;
  private codePgHi = 0;
  private codeArr: Array<Insn | undefined> | null = null;
  private codeRamPage = 0;
  private readonly fetchBuf = new Uint8Array(16);
  private nmiPending = false;
  /** Exceptions delivered at an instruction that then did not retire (Processor.faults). */
  private faultCount = 0;
  /** Processor is in shutdown (triple fault) until reset. */
  private shutdown = false;
  private exitNextLo = 0;
  private exitNextHi = 0;
  /** Block starts on a page before it is compiled; negative: translation off. */
  private readonly jitThreshold: number;
  /** The WebAssembly translation tier, or null (translation off, or guest memory not WebAssembly-backed). */
  readonly tier: WasmTier | null;

  constructor(memory: GuestMemory, options: CpuOptions = {}) {
    super(memory, options);
    this.jitThreshold = options.jitThreshold ?? DEFAULT_JIT_THRESHOLD;
    this.tier =
      this.jitThreshold >= 0 && WasmTier.available(this)
        ? new WasmTier(this, MAX_UNITS, options.backgroundCompile === true)
        : null;
    this.dispatch = buildDispatch();
    warmDecoder(this.cpuid);
    const list = peers.get(memory);
    if (list === undefined) peers.set(memory, [this]);
    else list.push(this);
    const prev = memory.onCodeWrite;
    memory.onCodeWrite = (page: number): void => {
      this.dropCodePage(page);
      prev?.(page);
    };
    this.reset();
  }

  get retired(): number {
    return this.retiredCount;
  }

  get faults(): number {
    return this.faultCount;
  }

  /** Translation units compiled since construction (tests and benchmarks look at it). */
  get translatedBlocks(): number {
    return this.tier?.stats.units ?? 0;
  }

  /** The translation tier's counters (benchmarks and the debug tools), or null without a tier. */
  tierStats(): Record<string, number> | null {
    if (this.tier === null) return null;
    const { exits, ...counts } = this.tier.stats;
    const out: Record<string, number> = { ...counts, codeEvictions: this.code.evictions };
    ["Done", "Signal", "Interp", "Internal", "Branch", "NoEntry"].forEach(
      (k, i) => (out[`exit${k}`] = exits[i]!),
    );
    return out;
  }

  // =============================== decode cache ===============================

  override codeCacheReset(): void {
    this.codePg = -1;
    this.codeArr = null;
    // Mode, paging or code changed: a running block must not continue with instructions decoded before.
    this.stop = 1;
  }

  private dropCodePage(page: number): void {
    this.stop = 1;
    this.code.drop(page);
  }

  /** A page left the decode cache (written, evicted or flushed): forget every shortcut into it. */
  private onPageDropped(p: CodePage): void {
    if (p.unit !== null || p.pending !== null) this.tier?.drop(p, true);
    if (p === this.curPage) {
      this.curPage = null;
      this.codeCacheReset();
    }
  }

  /** Drops every cached decode (e.g. after the runner rewrote guest memory wholesale). */
  flushDecodeCache(): void {
    this.clearCodeCache();
  }

  private clearCodeCache(): void {
    this.code.clear();
    this.codeCacheReset();
  }

  /** Translates the code page of linear (lo, hi) for execution; returns its RAM offset. */
  private codePage(lo: number, hi: number): number {
    // Translate the address itself, not the page base: a fault's CR2 is the faulting linear address.
    const t = this.translate(lo, hi, ACC_EXEC, this.cpl === 3);
    const off = t < 0 ? t : t - (lo & 0xfff);
    if (off < 0) {
      // Executing from a non-RAM address is refused by the partition (no instruction bytes to fetch).
      this.exit.gpa = this.mmioGpaLast;
      this.exit.isWrite = false;
      this.exit.size = 1;
      this.exitNow(ExitReason.AccessViolation);
    }
    return off;
  }

  /** The RAM offset of the page holding linear (lo, hi) for execution: the TLB, else a walk. */
  private execPage(lo: number, hi: number): number {
    const vpn = hi * VPN_SCALE + (lo >>> 12);
    const slot = this.tlbUser + 2 * TLB_SIZE + ((lo >>> 12) & (TLB_SIZE - 1));
    return this.tlbTag[slot] === vpn ? this.tlbOff[slot]! : this.codePage(lo, hi);
  }

  private fetch(): Insn {
    let lo = this.ripLo;
    let hi = this.ripHi;
    if (!this.long64) {
      if (this.segCheck & 2 && lo >>> 0 > this.segLimit[1]!) this.gp(0);
      lo = (this.segBaseLo[1]! + lo) | 0;
      hi = 0;
    }
    let arr = this.codeArr;
    if (lo >>> 12 !== this.codePg || hi !== this.codePgHi || arr === null) arr = this.switchCodePage(lo, hi);
    const d = arr[lo & 0xfff];
    if (d !== undefined && d.mode === this.codeMode) return d;
    return this.decodeAt(lo, hi, lo & 0xfff, arr);
  }

  /** Marks a RAM page as holding decoded code, so writes to it reach onCodeWrite (every peer's TLB too). */
  private markCode(ramPage: number): void {
    if (this.mem.codePages[ramPage] !== 0) return;
    this.mem.codePages[ramPage] = 1;
    for (const p of peers.get(this.mem) ?? []) p.dropWriteEntries(ramPage * 4096);
  }

  /** Makes the page holding linear (lo, hi) the current code page (translating it for execution). */
  private switchCodePage(lo: number, hi: number): Array<Insn | undefined> {
    // An int (not a division result) keeps codeRamPage, decode offsets and Insn.len small-integer fields.
    const ramPage = ramPageOf(this.execPage(lo, hi));
    // Bounded (oldest pages evicted), so a guest jumping all over memory cannot grow it without limit.
    // Page marks in GuestMemory.codePages stay set after an eviction (another processor may still cache
    // the page); a stale mark only sends that page's writes through the slow path until the next write.
    // (get() first: open() returns a fresh result object, and this runs at every change of code page.)
    let page = this.code.get(ramPage);
    if (page === undefined) {
      page = this.code.open(ramPage).page;
      this.markCode(ramPage);
    }
    this.curPage = page;
    this.codeArr = page.insns;
    this.codePg = lo >>> 12;
    this.codePgHi = hi;
    this.codeRamPage = ramPage;
    return page.insns;
  }

  /**
   * Decodes at page offset `po` of the current code page, in the RAM window holding it: the position is a
   * small integer below 2^30 for any guest size, so Insn.len and RIP stay integer fields (decision 0002).
   */
  private decodeInPage(po: number, avail: number, d: Insn): number {
    const page = this.codeRamPage;
    const at = ((page & WINDOW_PAGE_MASK) << PAGE_SHIFT) + po;
    return decode(this.mem.byteWindows[page >> WINDOW_PAGE_SHIFT]!, at, avail, this.codeMode, this.cpuid, d);
  }

  private decodeAt(lo: number, hi: number, po: number, arr: Array<Insn | undefined>): Insn {
    const page = this.curPage!;
    const base = this.codeRamPage * PAGE_SIZE;
    const d = new Insn();
    const avail = Math.min(15, 4096 - po);
    let r = this.decodeInPage(po, avail, d);
    if (r === DECODE_OK) {
      this.prepare(d);
      arr[po] = d;
      this.code.noteDecoded(page);
      return d;
    }
    if (r === DECODE_MORE) {
      // The instruction straddles a page: it is cached with its first page (whose writes drop it) and
      // reused while the next linear page still maps to the same page with the same bytes there. (The
      // next page is not marked as code: it is often data, written all the time.)
      const s = (lo >>> 0) + avail;
      const nlo = s | 0;
      const nhi = this.long64 ? (hi + (s >= TWO32 ? 1 : 0)) | 0 : 0;
      const next = this.execPage(nlo, nhi);
      const page2 = ramPageOf(next);
      // The cached page shortcut is left pointing at the first page; the next fetch recomputes it.
      const cached = this.code.straddleAt(page, po);
      if (cached !== undefined && cached.mode === this.codeMode && cached.page2 === page2) {
        const t = cached.tail!;
        let same = true;
        for (let i = 0; i < t.length; i++) if (this.dv.getUint8(next + i) !== t[i]) same = false;
        if (same) return cached;
      }
      const buf = this.fetchBuf;
      for (let i = 0; i < avail; i++) buf[i] = this.dv.getUint8(base + po + i);
      for (let i = avail; i < 15; i++) buf[i] = this.dv.getUint8(next + i - avail);
      const sd = new Insn();
      r = decode(buf, 0, 15, this.codeMode, this.cpuid, sd);
      if (r === DECODE_OK) {
        sd.page2 = page2;
        sd.tail = buf.slice(avail, sd.len);
        this.prepare(sd);
        this.code.addStraddle(page, po, sd);
        return sd;
      }
    }
    return this.fault(r);
  }

  /** Chooses the handler the interpreter calls for a freshly decoded instruction. */
  private prepare(d: Insn): void {
    d.fn = formHandler(d, d.mode) ?? this.dispatch[d.op]!;
  }

  // =============================== run loop ===============================

  run(budget: number): ExitReason {
    const x = this.exit;
    if (this.shutdown) {
      x.reason = ExitReason.TripleFault;
      return x.reason;
    }
    this.count = 0;
    this.postedExit = false;
    this.attn = this.shadow !== 0 || this.halted ? 1 : 0;
    let reason: ExitReason = ExitReason.BudgetExhausted;
    // Exceptions delivered without retiring an instruction count against the budget too, so a guest whose
    // handler faults forever (e.g. an unmapped handler reached through an IST stack) cannot hang run().
    let faults = 0;
    while (this.count + faults < budget) {
      const ev = this.boundary();
      if (ev >= 0) {
        reason = ev;
        break;
      }
      try {
        // Single-step (RFLAGS.TF at the start of an instruction): one instruction, then a #DB trap.
        const tf = (this.flagsReg & FLAG_TF) !== 0;
        const before = this.count;
        this.inner(tf ? before + 1 : budget - faults);
        if (tf && this.count !== before) {
          this.drLo[6] = this.drLo[6]! | 0x4000; // DR6.BS
          if (!this.deliver(1, EventKind.Exception, false, 0)) {
            reason = ExitReason.TripleFault;
            break;
          }
        }
        if (this.postedExit) {
          reason = x.reason;
          break;
        }
      } catch (e) {
        // (A fault or exit inside a translation unit arrives here with RIP, curRip and the count exact.)
        if (e === FAULT) {
          faults++;
          this.ripLo = this.curRipLo;
          this.ripHi = this.curRipHi;
          if (!this.deliver(this.faultVector, EventKind.Exception, this.faultHasCode, this.faultCode)) {
            reason = ExitReason.TripleFault;
            break;
          }
        } else if (e === EXIT) {
          this.blockStart = true;
          this.exitNextLo = this.ripLo;
          this.exitNextHi = this.ripHi;
          this.ripLo = this.curRipLo;
          this.ripHi = this.curRipHi;
          reason = x.reason;
          break;
        } else throw e;
      }
    }
    this.retiredCount += this.count;
    this.faultCount += faults;
    x.reason = reason;
    return reason;
  }

  /** Executes instructions until the budget, a posted exit, or a reason to re-check events. */
  private inner(budget: number): void {
    // REP string instructions count each iteration and stop their chunk at the budget (string-ops.ts).
    this.budgetEnd = budget;
    // RFLAGS.IF set or TF changed ends the call (events may be deliverable, single-stepping starts or
    // stops); IF cleared (CLI, POPF) does not: no event becomes deliverable by it.
    let ifWas = this.flagsReg & (FLAG_IF | FLAG_TF);
    const tier = this.tier;
    // The next instruction starts a block (reached by a branch, an event, or where a unit returned):
    // translation heat is counted there. A call that goes on where the previous one stopped after a
    // straight instruction (its budget) does not start a block: that would make an arbitrary point of
    // the code an entry of its page's unit. `interp`: run the next instruction interpreted even if a
    // unit starts there.
    let start = this.blockStart;
    let interp = false;
    for (;;) {
      // The instruction's own RIP first: faults while fetching/decoding (#PF, #GP, #UD) report it.
      const rl = this.ripLo;
      this.curRipLo = rl;
      this.curRipHi = this.ripHi;
      const d = this.fetch();
      if (tier !== null) {
        if (d.unitEntry >= 0 && !interp && this.attn === 0) {
          interp = tier.enter(d, budget - this.count) === After.Interpret;
          start = true;
          if (this.attn !== 0 && this.attnBreak()) break;
          if (this.count >= budget) break;
          const f = this.flagsReg & (FLAG_IF | FLAG_TF);
          if (f !== ifWas) {
            if (f !== (ifWas & ~FLAG_IF)) break;
            ifWas = f;
          }
          continue;
        }
        if (start && !interp) this.heat(d);
        interp = false;
      }
      let next = rl + d.len;
      if (this.codeMode === 2) {
        if (next > 0x7fffffff || (rl < 0 && next >= 0)) {
          // Carry out of the low half (or crossing the sign boundary of the int32 representation).
          const s = (rl >>> 0) + d.len;
          next = s | 0;
          if (s >= TWO32) this.ripHi = (this.ripHi + 1) | 0;
        }
      } else next = this.codeMode === 1 ? next | 0 : next & 0xffff;
      this.ripLo = next;
      if (d.hasMem) this.computeEA(d);
      (d.fn as Handler)(this, d);
      start = this.ripLo !== next;
      const count = ++this.count;
      if (this.attn !== 0 && this.attnBreak()) break;
      if (count >= budget) break;
      const f = this.flagsReg & (FLAG_IF | FLAG_TF);
      if (f !== ifWas) {
        if (f !== (ifWas & ~FLAG_IF)) break;
        ifWas = f;
      }
    }
    this.blockStart = start;
  }

  /**
   * After an instruction (or unit) that left `attn` set: whether inner() must stop so that run() looks at
   * events before the next instruction. It stops for a posted exit, HLT, the end of an interrupt shadow, and
   * any other request (blocking state changed: IRET unblocking NMIs, CR8 lowered, a device read intercept);
   * it runs on only while a shadow still covers the next instruction.
   */
  private attnBreak(): boolean {
    if (this.shadow !== 0 && --this.shadow !== 0 && !this.postedExit && !this.halted) return false;
    if (this.shadow === 0) this.attn = 0;
    return true;
  }

  /**
   * Counts a block start at d (on the current page) for translation, and compiles the page's unit when it
   * is hot: `jitThreshold` block starts outside a unit (after a compilation, starts that are not entries
   * of the unit count towards a recompilation that adds them, a bounded number of times).
   */
  private heat(d: Insn): void {
    const p = this.curPage;
    if (p === null || d.mode !== 2 || p.compiles >= MAX_RECOMPILES || p.pending !== null) return;
    // Inside the page's unit already (the unit stopped before it, or an interrupt returned to it): a
    // resume point, not a block start of the guest's code.
    if (d.unitEntry === PLANNED) return;
    d.hits++;
    if (++p.heat <= this.jitThreshold) return;
    p.heat = 0;
    p.compiles++;
    this.compilePage(p);
  }

  /**
   * Hands a hot page to the tier. Kept out of heat(): a closure there makes V8 allocate a context for its
   * captured variables on every call of heat() (one per interpreted block start), not only when it compiles.
   */
  private compilePage(p: CodePage): void {
    // Only code that has run (and so was decoded) goes into the unit: paths never taken stay with the
    // interpreter until they become hot and a recompilation adds them. A cached instruction straddling
    // into the next page is included (the unit checks its tail before running it).
    const insns = p.insns;
    const code = this.code;
    this.tier!.compile(p, (po) => {
      const x = insns[po] ?? code.straddleAt(p, po);
      return x !== undefined && x.mode === 2 ? x : null;
    });
  }

  /**
   * Instruction-boundary events, in priority order (SDM Vol. 3A 6.9): NMI, maskable interrupt, interrupt
   * window, then HLT idling. Returns an exit reason to stop with, or -1 to continue executing.
   */
  private boundary(): number {
    const canInterrupt = this.shadow === 0;
    if (this.nmiPending && canInterrupt && !this.nmiBlocked) {
      this.nmiPending = false;
      this.nmiBlocked = true;
      this.halted = false;
      if (!this.deliver(2, EventKind.External, false, 0)) return ExitReason.TripleFault;
    } else if (canInterrupt && this.flagsReg & FLAG_IF) {
      const src = this.interrupts;
      if (src !== null && src.hasInterrupt()) {
        const v = src.acknowledge() & 0xff;
        this.halted = false;
        if (!this.deliver(v, EventKind.External, false, 0)) return ExitReason.TripleFault;
      } else if (this.controls.interruptWindowExiting) return ExitReason.InterruptWindow;
    }
    if (this.halted) return ExitReason.Hlt;
    return -1;
  }

  /** Delivers an event; on a triple fault enters shutdown and returns false. */
  private deliver(vector: number, kind: EventKind, hasCode: boolean, code: number): boolean {
    this.blockStart = true;
    try {
      deliverEvent(this, vector, kind, hasCode, code);
      return true;
    } catch (e) {
      // An access-violation exit while reading the IDT or writing the frame cannot be completed by the
      // runner either: shutdown, like a fault there.
      if (e !== SHUTDOWN && e !== EXIT) throw e;
      this.shutdown = true;
      this.exit.reason = ExitReason.TripleFault;
      return false;
    }
  }

  // =============================== completion ===============================

  private retireExited(): void {
    this.ripLo = this.exitNextLo;
    this.ripHi = this.exitNextHi;
    this.retiredCount++;
  }

  completeRdmsr(lo: number, hi: number): void {
    this.setGpr(0, 4, lo, 0);
    this.setGpr(2, 4, hi, 0);
    this.retireExited();
  }

  completeWrmsr(): void {
    this.retireExited();
  }

  completeCpuid(eax: number, ebx: number, ecx: number, edx: number): void {
    this.setGpr(0, 4, eax, 0);
    this.setGpr(3, 4, ebx, 0);
    this.setGpr(1, 4, ecx, 0);
    this.setGpr(2, 4, edx, 0);
    this.retireExited();
  }

  completeVmcall(): void {
    this.retireExited();
  }

  injectException(vector: number, errorCode?: number): void {
    const hasCode = errorCode !== undefined;
    if (!this.deliver(vector & 0xff, EventKind.Exception, hasCode, hasCode ? errorCode : 0)) return;
    this.halted = false;
  }

  raiseNmi(): void {
    this.nmiPending = true;
  }

  // =============================== reset and state access ===============================

  reset(): void {
    this.rlo.fill(0);
    this.rhi.fill(0);
    this.rlo[2] = 0x000306a9; // EDX holds the processor signature after reset (SDM Vol. 3A 9.1.4)
    this.flagsReg = 2;
    this.lazyOp = 0;
    this.cr0 = 0x60000010;
    this.cr2Lo = this.cr2Hi = this.cr3Lo = this.cr3Hi = this.cr4 = this.cr8 = 0;
    this.efer = 0;
    this.drLo.fill(0);
    this.drHi.fill(0);
    this.drLo[6] = 0xffff0ff0 | 0;
    this.drLo[7] = 0x400;
    for (let s = 0; s < 6; s++) this.loadSegCache(s, 0, 0, 0, 0xffff, 0x93);
    this.loadSegCache(1, 0xf000, 0xffff0000 | 0, 0, 0xffff, 0x9b);
    this.ripLo = 0xfff0;
    this.ripHi = 0;
    this.gdtrBaseLo = this.gdtrBaseHi = 0;
    this.gdtrLimit = 0xffff;
    this.idtrBaseLo = this.idtrBaseHi = 0;
    this.idtrLimit = 0xffff;
    this.ldtrSel = 0;
    this.ldtrBaseLo = this.ldtrBaseHi = 0;
    this.ldtrLimit = 0xffff;
    this.ldtrAccess = 0x82;
    this.trSel = 0;
    this.trBaseLo = this.trBaseHi = 0;
    this.trLimit = 0xffff;
    this.trAccess = 0x8b;
    this.xmm.fill(0);
    this.mxcsr = 0x1f80;
    this.fxArea.fill(0);
    this.fpu.reset();
    this.msrStore.clear(); // MTRRs and IA32_MISC_ENABLE return to their power-on values
    this.cpuid.resetControls(); // and so do the CPUID effects of IA32_MISC_ENABLE
    this.halted = false;
    this.shutdown = false;
    this.nmiPending = false;
    this.nmiBlocked = false;
    this.shadow = 0;
    this.postedExit = false;
    this.attn = 0;
    this.flushTlb();
    this.updateMode();
  }

  getReg(reg: Reg): { lo: number; hi: number } {
    return { lo: this.rlo[reg]!, hi: this.rhi[reg]! };
  }

  setReg(reg: Reg, lo: number, hi: number): void {
    this.rlo[reg] = lo;
    this.rhi[reg] = hi;
  }

  getRip(): { lo: number; hi: number } {
    return { lo: this.ripLo, hi: this.ripHi };
  }

  setRip(lo: number, hi: number): void {
    this.ripLo = lo | 0;
    this.ripHi = hi | 0;
    this.blockStart = true;
  }

  getRflags(): number {
    return this.getFlags();
  }

  setRflags(value: number): void {
    this.lazyOp = 0;
    this.flagsReg = (value & 0x3f7fd5) | 2;
    this.updateMode();
  }

  getSegment(seg: Seg): SegmentState {
    const lo = this.segBaseLo[seg]! >>> 0;
    const hi = this.segBaseHi[seg]!;
    return {
      selector: this.segSel[seg]!,
      base: lo + (hi >>> 0) * TWO32 < Number.MAX_SAFE_INTEGER ? lo + (hi >>> 0) * TWO32 : lo,
      baseHi: hi >>> 0,
      limit: this.segLimit[seg]!,
      access: this.segAccess[seg]!,
    };
  }

  setSegment(seg: Seg, state: SegmentState): void {
    const lo = (state.base % TWO32) | 0;
    const hi = state.baseHi !== undefined ? state.baseHi | 0 : Math.floor(state.base / TWO32) | 0;
    this.loadSegCache(seg, state.selector, lo, hi, state.limit, state.access);
  }

  getControl(which: "cr0" | "cr2" | "cr3" | "cr4" | "cr8" | "efer"): { lo: number; hi: number } {
    switch (which) {
      case "cr0":
        return { lo: this.cr0, hi: 0 };
      case "cr2":
        return { lo: this.cr2Lo, hi: this.cr2Hi };
      case "cr3":
        return { lo: this.cr3Lo, hi: this.cr3Hi };
      case "cr4":
        return { lo: this.cr4, hi: 0 };
      case "cr8":
        return { lo: this.cr8, hi: 0 };
      default:
        return { lo: this.efer, hi: 0 };
    }
  }

  setControl(which: "cr0" | "cr2" | "cr3" | "cr4" | "cr8" | "efer", lo: number, hi: number): void {
    switch (which) {
      case "cr0":
        this.cr0 = lo | 0x10;
        break;
      case "cr2":
        this.cr2Lo = lo;
        this.cr2Hi = hi;
        break;
      case "cr3":
        this.cr3Lo = lo;
        this.cr3Hi = hi;
        break;
      case "cr4":
        this.cr4 = lo;
        break;
      case "cr8":
        this.cr8 = lo & 15;
        break;
      default:
        this.efer = lo;
    }
    this.flushTlb();
    this.updateMode();
  }

  setDescriptorTable(which: "gdtr" | "idtr", base: number, limit: number): void {
    const lo = (base % TWO32) | 0;
    const hi = Math.floor(base / TWO32) | 0;
    if (which === "gdtr") {
      this.gdtrBaseLo = lo;
      this.gdtrBaseHi = hi;
      this.gdtrLimit = limit & 0xffff;
    } else {
      this.idtrBaseLo = lo;
      this.idtrBaseHi = hi;
      this.idtrLimit = limit & 0xffff;
    }
  }
}
