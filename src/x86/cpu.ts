// Owns: the `Cpu` class implementing the `Processor` contract: the run loop with its instruction budget,
// the decoded-instruction cache (per guest-physical page, invalidated through GuestMemory.codePages /
// onCodeWrite), the translated-block cache riding on it (hotness, entry conditions, precise fault
// position; docs/decisions/0003), instruction-boundary event handling (NMI, external interrupts with IF
// and the STI/MOV SS shadow, interrupt-window exits, HLT idling), exit completion (RIP advance for
// RDMSR/WRMSR/CPUID/VMCALL; device accesses complete in place through the intercepts, docs/decisions/0004),
// reset, and the register accessors of the contract.
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
import { CpuCore, type CpuOptions, EXIT, FAULT, type Handler, TLB_SIZE } from "./core.js";
import { decode, DECODE_MORE, DECODE_OK } from "./decoder.js";
import { deliverEvent, EventKind, SHUTDOWN } from "./exceptions.js";
import { Block, isStraight, MAX_BLOCK_INSNS, translateBlock } from "./block-translator.js";
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
/** Most translated blocks alive per processor; beyond that every cache is dropped and refilled. */
const MAX_BLOCKS = 8192;
/** Block look-ups at one address before it is translated (CpuOptions.jitThreshold overrides). */
export const DEFAULT_JIT_THRESHOLD = 16;
const FLAG_IF = 0x200;
const FLAG_TF = 0x100;

/** Every processor sharing a GuestMemory, so a newly cached code page drops all of their write entries. */
const peers = new WeakMap<GuestMemory, Cpu[]>();

export class Cpu extends CpuCore implements Processor {
  interrupts: InterruptSource | null = null;
  private readonly dispatch: Handler[];
  /** Decoded instructions per RAM page (RAM offset >> 12), indexed by page offset. */
  private readonly codeCache = new Map<number, Array<Insn | undefined>>();
  /** Shortcut for the page RIP is on: linear page number (low 20 bits, high half), its cache array. */
  private codePg = -1;
  private codePgHi = 0;
  private codeArr: Array<Insn | undefined> | null = null;
  private codeRamPage = 0;
  private decodedCount = 0;
  private readonly straddle = new Insn();
  private readonly fetchBuf = new Uint8Array(16);
  private nmiPending = false;
  /** Exceptions delivered at an instruction that then did not retire (Processor.faults). */
  private faultCount = 0;
  /** Processor is in shutdown (triple fault) until reset. */
  private shutdown = false;
  private exitNextLo = 0;
  private exitNextHi = 0;
  /** Look-ups of a block start before translating it; negative: translation off. */
  private readonly jitThreshold: number;
  private blockCount = 0;
  private translatedTotal = 0;
  /** The block being executed (for the fault/exit position) and its entry RIP (low half). */
  private blk: Block | null = null;
  private blkRl = 0;

  constructor(memory: GuestMemory, options: CpuOptions = {}) {
    super(memory, options);
    this.jitThreshold = options.jitThreshold ?? DEFAULT_JIT_THRESHOLD;
    this.dispatch = buildDispatch();
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

  /** Blocks translated since construction (tests and benchmarks look at it). */
  get translatedBlocks(): number {
    return this.translatedTotal;
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
    this.codeCache.delete(page);
    if (this.codeArr !== null && this.codeRamPage === page) this.codeCacheReset();
  }

  /** Drops every cached decode (e.g. after the runner rewrote guest memory wholesale). */
  flushDecodeCache(): void {
    this.clearCodeCache();
  }

  private clearCodeCache(): void {
    this.codeCache.clear();
    this.decodedCount = 0;
    this.blockCount = 0;
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

  /** Makes the page holding linear (lo, hi) the current code page (translating it for execution). */
  private switchCodePage(lo: number, hi: number): Array<Insn | undefined> {
    const vpn = hi * 1048576 + (lo >>> 12);
    const slot = this.tlbUser + 2 * TLB_SIZE + ((lo >>> 12) & (TLB_SIZE - 1));
    const pageOff = this.tlbTag[slot] === vpn ? this.tlbOff[slot]! : this.codePage(lo, hi);
    const ramPage = ramPageOf(pageOff);
    let a = this.codeCache.get(ramPage);
    if (a === undefined) {
      // Bound the cache so a guest jumping all over memory cannot grow it without limit. Page marks in
      // GuestMemory.codePages stay set (another processor may still cache the page); a stale mark only
      // sends that page's writes through the slow path until the next write clears it.
      if (this.codeCache.size >= MAX_CODE_PAGES) this.clearCodeCache();
      a = new Array<Insn | undefined>(4096);
      this.codeCache.set(ramPage, a);
      if (this.mem.codePages[ramPage] === 0) {
        this.mem.codePages[ramPage] = 1;
        for (const p of peers.get(this.mem) ?? []) p.dropWriteEntries(pageOff);
      }
    }
    this.codeArr = a;
    this.codePg = lo >>> 12;
    this.codePgHi = hi;
    this.codeRamPage = ramPage;
    return a;
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
    const base = this.codeRamPage * PAGE_SIZE;
    if (++this.decodedCount > MAX_DECODED) {
      // Bound memory: a guest executing densely packed code everywhere cannot grow the cache past this.
      this.clearCodeCache();
      this.decodedCount = 1;
      arr = new Array<Insn | undefined>(4096);
      this.codeCache.set(this.codeRamPage, arr);
      this.codeArr = arr;
    }
    const d = new Insn();
    const avail = Math.min(15, 4096 - po);
    let r = this.decodeInPage(po, avail, d);
    if (r === DECODE_OK) {
      arr[po] = d;
      return d;
    }
    if (r === DECODE_MORE) {
      // The instruction straddles a page: gather bytes from both pages, decode uncached.
      const buf = this.fetchBuf;
      for (let i = 0; i < avail; i++) buf[i] = this.dv.getUint8(base + po + i);
      const s = (lo >>> 0) + avail;
      const nlo = s | 0;
      const nhi = this.long64 ? (hi + (s >= TWO32 ? 1 : 0)) | 0 : 0;
      const next = this.codePage(nlo, nhi);
      for (let i = avail; i < 15; i++) buf[i] = this.dv.getUint8(next + i - avail);
      r = decode(buf, 0, 15, this.codeMode, this.cpuid, this.straddle);
      if (r === DECODE_OK) {
        // The cached page shortcut now points at the wrong page for the tail; recompute next time.
        this.codeCacheReset();
        return this.straddle;
      }
    }
    return this.fault(r);
  }

  // =============================== run loop ===============================

  run(budget: number): ExitReason {
    const x = this.exit;
    if (this.shutdown) {
      x.reason = ExitReason.TripleFault;
      return x.reason;
    }
    this.count = 0;
    this.blk = null;
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
        const b = this.blk as Block | null;
        if (b !== null) {
          // A fault or exit inside a translated block: the instructions before it retired.
          this.blk = null;
          this.count = this.blockBase + b.indexOf((this.curRipLo - this.blkRl) | 0);
        }
        if (e === FAULT) {
          faults++;
          this.ripLo = this.curRipLo;
          this.ripHi = this.curRipHi;
          if (!this.deliver(this.faultVector, EventKind.Exception, this.faultHasCode, this.faultCode)) {
            reason = ExitReason.TripleFault;
            break;
          }
        } else if (e === EXIT) {
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
    const dispatch = this.dispatch;
    // REP string instructions count each iteration and stop their chunk at the budget (string-ops.ts).
    this.budgetEnd = budget;
    const ifWas = this.flagsReg & (FLAG_IF | FLAG_TF);
    for (;;) {
      // The instruction's own RIP first: faults while fetching/decoding (#PF, #GP, #UD) report it.
      const rl = this.ripLo;
      this.curRipLo = rl;
      this.curRipHi = this.ripHi;
      const d = this.fetch();
      if (this.attn === 0 && this.jitThreshold >= 0) {
        const b = d.block as Block | null;
        if (b !== null) {
          if (this.count + b.n <= budget && this.blockFits(rl, b)) {
            this.stop = 0;
            this.blk = b;
            this.blkRl = rl;
            this.blockBase = this.count;
            b.fn(this, rl, this.count, budget);
            this.blk = null;
            if (this.attn !== 0 && this.attnBreak()) break;
            if (this.count >= budget || (this.flagsReg & (FLAG_IF | FLAG_TF)) !== ifWas) break;
            continue;
          }
        } else if (d !== this.straddle && d.hits++ >= this.jitThreshold) {
          if (this.translateAt(rl, d)) continue;
        }
      }
      const next = rl + d.len;
      if (this.codeMode === 2) {
        if (next > 0x7fffffff || (rl < 0 && next >= 0)) {
          // Carry out of the low half (or crossing the sign boundary of the int32 representation).
          const s = (rl >>> 0) + d.len;
          this.ripLo = s | 0;
          if (s >= TWO32) this.ripHi = (this.ripHi + 1) | 0;
        } else this.ripLo = next;
      } else this.ripLo = this.codeMode === 1 ? next | 0 : next & 0xffff;
      if (d.hasMem) this.computeEA(d);
      dispatch[d.op]!(this, d);
      const count = ++this.count;
      if (this.attn !== 0 && this.attnBreak()) break;
      if (count >= budget || (this.flagsReg & (FLAG_IF | FLAG_TF)) !== ifWas) break;
    }
  }

  /**
   * After an instruction (or block) that left `attn` set: whether inner() must stop so that run() looks at
   * events before the next instruction. It stops for a posted exit, HLT, the end of an interrupt shadow, and
   * any other request (blocking state changed: IRET unblocking NMIs, CR8 lowered, a replayed exit); it
   * runs on only while a shadow still covers the next instruction.
   */
  private attnBreak(): boolean {
    if (this.shadow !== 0 && --this.shadow !== 0 && !this.postedExit && !this.halted) return false;
    if (this.shadow === 0) this.attn = 0;
    return true;
  }

  /**
   * Whether block b may run from RIP low half rl: no instruction start may leave the code segment (the
   * interpreter's fetch checks the limit per instruction) and no RIP inside the block may wrap (16-bit IP
   * at 64 KiB, 64-bit RIP carrying into the high half), so the block's RIP arithmetic stays exact.
   */
  private blockFits(rl: number, b: Block): boolean {
    const mode = this.codeMode;
    if (mode === 2) return (rl >>> 0) + b.bytes < TWO32;
    if (mode === 0 && rl + b.lastOff > 0xffff) return false;
    return !(this.segCheck & 2) || (rl >>> 0) + b.lastOff <= this.segLimit[1]!;
  }

  /**
   * Translates the straight-line run starting at d (RIP low half rl, on the current code page). Returns
   * false when nothing worth translating was found (the instruction then runs interpreted).
   */
  private translateAt(rl: number, d: Insn): boolean {
    const arr = this.codeArr;
    if (arr === null) return false;
    if (this.blockCount >= MAX_BLOCKS) {
      // Bound memory and compile work: a guest generating endless code starts over with empty caches.
      this.clearCodeCache();
      return false;
    }
    const ds: Insn[] = [d];
    const mode = this.codeMode;
    let po = (this.long64 ? rl : (this.segBaseLo[1]! + rl) | 0) & 0xfff;
    let cur = d;
    while (isStraight(cur) && ds.length < MAX_BLOCK_INSNS) {
      po += cur.len;
      if (po >= 4096) break;
      const nx = this.peekDecode(po, arr);
      if (nx === null) break;
      ds.push(nx);
      cur = nx;
    }
    d.block = translateBlock(ds, this.dispatch, mode);
    this.blockCount++;
    this.translatedTotal++;
    return true;
  }

  /**
   * The decoded instruction at page offset po of the current code page, decoding (and caching) it if
   * needed; null when it straddles the page end or does not decode (the block ends before it; running it
   * interpreted raises the fault at the right time).
   */
  private peekDecode(po: number, arr: Array<Insn | undefined>): Insn | null {
    const c = arr[po];
    if (c !== undefined && c.mode === this.codeMode) return c;
    if (this.decodedCount >= MAX_DECODED) return null;
    const d = new Insn();
    const avail = Math.min(15, 4096 - po);
    if (this.decodeInPage(po, avail, d) !== DECODE_OK) return null;
    this.decodedCount++;
    arr[po] = d;
    return d;
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
