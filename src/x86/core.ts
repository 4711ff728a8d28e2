// Owns: the architectural state of one virtual processor (GPRs as (lo, hi) Int32 pairs, RIP, RFLAGS via
// FlagUnit, segment registers with their hidden caches, descriptor-table registers, control/debug registers,
// owned MSRs, XMM file) and every primitive a handler needs: operand read/write by decoded operand slot,
// effective-address computation, segmentation, the software TLB and guest-memory access (RAM fast path,
// MMIO and access-violation exits), stack push/pop, and raising exceptions.
// Must not: decode instructions, deliver exceptions (exceptions.ts) or contain instruction semantics
// (handler modules). Nothing here allocates on the hot path.
// Spec: Intel SDM Vol. 1 ch. 3 (registers, address computation), Vol. 3A ch. 3 (segmentation, descriptor
// caches), ch. 4.10 (TLBs), ch. 6.3/6.15 (exception classes used by `fault`); docs/decisions/0001.

import { type GuestMemory, PAGE_EXECUTE, PAGE_READ, PAGE_WRITE, ramPageOf } from "../memory/guest-memory.js";
import { CpuidModel } from "./cpuid.js";
import { FlagUnit, SIGN_BIT } from "./flags.js";
import { type Insn, OpKind } from "./insn.js";
import { FpuState } from "./simd-state.js";
import { ACC_READ, ACC_WRITE, type PagingRegs, WalkResult, walk } from "./paging.js";
import {
  ExitReason,
  newExitInfo,
  type ExitControls,
  type ExitInfo,
  type MmioIntercept,
  type PortIntercept,
} from "./vm-exit.js";
import { REG_HI, REG_LO, TLB_ENTRIES, TLB_OFF, TLB_TAG, XCH, XCH_SLOTS } from "./wasm/layout.js";
import { DOUBLE_ZERO, heapNumber } from "../support/heap-number.js";

/** Thrown (never constructed per event) to unwind an instruction: a fault to deliver, or an exit. */
export class CpuSignal {
  constructor(readonly kind: number) {}
}
export const FAULT = new CpuSignal(0);
export const EXIT = new CpuSignal(1);

/** Exception vectors (SDM Vol. 3A Table 6-1). */
export const enum Vec {
  DE = 0,
  DB = 1,
  NMI = 2,
  BP = 3,
  OF = 4,
  BR = 5,
  UD = 6,
  NM = 7,
  DF = 8,
  TS = 10,
  NP = 11,
  SS = 12,
  GP = 13,
  PF = 14,
  MF = 16,
  AC = 17,
  MC = 18,
  XM = 19,
}

export const CR0_PE = 1;
export const CR0_MP = 2;
export const CR0_EM = 4;
export const CR0_TS = 8;
export const CR0_ET = 0x10;
export const CR0_NE = 0x20;
export const CR0_WP = 0x10000;
export const CR0_AM = 0x40000;
export const CR0_NW = 0x20000000;
export const CR0_CD = 0x40000000;
export const CR0_PG = 0x80000000 | 0;
export const CR4_VME = 1;
export const CR4_PVI = 2;
export const CR4_TSD = 4;
export const CR4_DE = 8;
export const CR4_PSE = 0x10;
export const CR4_PAE = 0x20;
export const CR4_MCE = 0x40;
export const CR4_PGE = 0x80;
export const CR4_PCE = 0x100;
export const CR4_OSFXSR = 0x200;
export const CR4_OSXMMEXCPT = 0x400;
export const CR4_FSGSBASE = 0x10000;
export const CR4_PCIDE = 0x20000;
export const EFER_SCE = 1;
export const EFER_LME = 0x100;
export const EFER_LMA = 0x400;
export const EFER_NXE = 0x800;

/** Segment access-rights bits (VMCS access-rights layout: descriptor bits 40..55 shifted down by 40). */
export const ACC_TYPE_ACCESSED = 1;
export const ACC_S = 0x10;
export const ACC_P = 0x80;
export const ACC_L = 0x2000;
export const ACC_DB = 0x4000;
export const ACC_G = 0x8000;
/** Set in our cache when a null selector was loaded (protected mode): any use faults. */
export const ACC_UNUSABLE = 0x10000;

const TLB_BITS = 9;
export const TLB_SIZE = 1 << TLB_BITS;
const TLB_MASK = TLB_SIZE - 1;
const TWO32 = 0x1_0000_0000;
/**
 * 2^20, the scale of a TLB tag (`hi * VPN_SCALE + (lo >>> 12)`, a virtual page number up to 2^52) as a heap
 * number: the tag's arithmetic then has number feedback from its first run. With the literal, the first
 * runs (low addresses) recorded small-integer feedback and every optimised function with an inlined TLB
 * probe deoptimised ("overflow") on its first kernel address; see support/heap-number.ts.
 */
export const VPN_SCALE = heapNumber(1048576);

export type Handler = (c: CpuCore, d: Insn) => void;

export interface CpuOptions {
  /** TSC frequency in Hz (default 1 GHz). */
  tscHz?: number;
  /** Monotonic clock in nanoseconds (double); default performance.now()-based. */
  clock?: () => number;
  /** Derive time (TSC) from retired instructions only, for reproducible runs. */
  deterministic?: boolean;
  /**
   * The WebAssembly translation tier (docs/decisions/0005): a code page of 64-bit code is compiled after
   * this many block starts were executed on it (0: at the first one); negative turns translation off.
   * Translation needs guest memory backed by WebAssembly (GuestMemory.wasmMemory).
   */
  jitThreshold?: number;
  /**
   * Compile translation units on the engine's background threads (`WebAssembly.instantiate`) while the
   * interpreter goes on, installing each when ready; needs a caller whose run loop yields to the event loop
   * (the VM's). Default false: compiled synchronously when hot (deterministic for tests and tools).
   */
  backgroundCompile?: boolean;
}

export class CpuCore extends FlagUnit {
  readonly mem: GuestMemory;
  /** All of RAM (a DataView has no 4 GiB limit; RAM offsets pass 2^32 on large guests). */
  readonly dv: DataView;
  readonly cpuid = new CpuidModel();

  /**
   * Byte offset of this processor's state slot in the WebAssembly-backed guest memory (wasm/layout.ts), or
   * -1 when the memory is a plain buffer: registers and TLB then live in arrays of their own.
   */
  readonly stateSlot: number;
  /** The exchange area of the slot (wasm/layout.ts X), or a private array without a slot. */
  readonly xch: Int32Array;

  // ---- general-purpose registers and RIP (docs/decisions/0001) ----
  readonly rlo: Int32Array;
  readonly rhi: Int32Array;
  ripLo = 0;
  ripHi = 0;
  /** RIP of the instruction being executed (faults report it; RIP itself already points past it). */
  curRipLo = 0;
  curRipHi = 0;
  /** Scratch: high half of the last 64-bit value returned by a read helper. */
  hi = 0;

  // ---- segments ----
  readonly segSel = new Int32Array(6);
  readonly segBaseLo = new Int32Array(6);
  readonly segBaseHi = new Int32Array(6);
  /** Byte-granular limit as an unsigned value (0..0xffffffff). */
  readonly segLimit = new Float64Array(6);
  readonly segAccess = new Int32Array(6);
  /** Bit per segment whose accesses need a limit/usability check (not flat 4 GiB expand-up). */
  segCheck = 0;
  ldtrSel = 0;
  ldtrBaseLo = 0;
  ldtrBaseHi = 0;
  ldtrLimit = 0;
  ldtrAccess = ACC_UNUSABLE;
  trSel = 0;
  trBaseLo = 0;
  trBaseHi = 0;
  trLimit = 0xffff;
  trAccess = 0x8b;
  gdtrBaseLo = 0;
  gdtrBaseHi = 0;
  gdtrLimit = 0xffff;
  idtrBaseLo = 0;
  idtrBaseHi = 0;
  idtrLimit = 0x3ff;

  // ---- control, debug, model-specific registers ----
  cr0 = 0x60000010;
  cr2Lo = 0;
  cr2Hi = 0;
  cr3Lo = 0;
  cr3Hi = 0;
  cr4 = 0;
  cr8 = 0;
  efer = 0;
  readonly drLo = new Int32Array(8);
  readonly drHi = new Int32Array(8);
  starLo = 0;
  starHi = 0;
  lstarLo = 0;
  lstarHi = 0;
  cstarLo = 0;
  cstarHi = 0;
  sfmask = 0;
  kgsBaseLo = 0;
  kgsBaseHi = 0;
  sysenterCs = 0;
  sysenterEspLo = 0;
  sysenterEspHi = 0;
  sysenterEipLo = 0;
  sysenterEipHi = 0;
  tscAux = 0;
  patLo = 0x00070406;
  patHi = 0x00070406;
  /** MTRRs and other storage-only MSRs the processor owns (number -> [lo, hi]). */
  readonly msrStore = new Map<number, [number, number]>();

  // ---- SIMD state (owned by the SIMD helper's modules; storage lives here so it is per-processor) ----
  /** XMM0..15, four little-endian dwords each (XMM n dword k at [n * 4 + k]). */
  readonly xmm = new Int32Array(64);
  mxcsr = 0x1f80;
  /** x87/MMX state in FXSAVE layout (bytes 0..159 of the FXSAVE image: FCW, FSW, FTW, ..., ST0-7). */
  readonly fxArea = new Uint8Array(512);
  /** x87/MMX registers and XCR0 as the SIMD modules operate on them (simd-state.ts). */
  readonly fpu = new FpuState();

  // ---- derived mode state (updateMode) ----
  cpl = 0;
  /** 64-bit mode (EFER.LMA and CS.L). */
  long64 = false;
  /** CodeMode for decoding. */
  codeMode = 0;
  /** Stack address size in bytes (2, 4, 8). */
  stackSize = 2;

  // ---- per-instruction scratch ----
  /** Effective address (offset within segment) of the current instruction's memory operand. */
  eaLo = 0;
  eaHi = 0;
  /** Interrupt shadow after STI / MOV SS / POP SS: instructions left to retire before interrupts. */
  shadow = 0;
  /** HLT executed without HLT exiting: the processor idles until an interrupt or NMI. */
  halted = false;
  /** NMIs are blocked from NMI delivery until the next IRET. */
  nmiBlocked = false;

  // ---- exceptions and exits ----
  faultVector = 0;
  faultCode = 0;
  faultHasCode = false;
  readonly exit: ExitInfo = newExitInfo();
  readonly controls: ExitControls;
  /** A posted (already retired) exit is waiting to be reported after the current instruction. */
  postedExit = false;
  /**
   * Nonzero when the run loop must look at something after the current instruction: a posted exit, HLT, an
   * interrupt shadow, or blocking state that pending events depend on (IRET unblocking NMIs, CR8 lowered).
   * Set together with postedExit/halted/shadow, or alone to have events re-checked at the next boundary, so
   * the loop tests one field.
   */
  attn = 0;
  /**
   * Set when decoded code may be stale (mode, paging or code-page changes; see Cpu.codeCacheReset): a
   * translation unit's slow-path store checks it and the unit stops after that instruction (wasm/tier.ts).
   */
  stop = 0;
  /** The `count` at which the current inner loop stops (a REP string instruction stops its chunk there). */
  budgetEnd = 0;
  /** The runner's device intercepts (vm-exit.ts): ports with their I/O-bitmap bit set, and non-RAM accesses. */
  ports: PortIntercept | null = null;
  mmio: MmioIntercept | null = null;
  /** Bytes of a page-straddling access that touches MMIO, assembled or split here (never allocated per access). */
  private readonly straddleBytes = new Uint8Array(8);

  // ---- TLB: tags (linear page number, NaN = empty) and RAM offsets, per kind x (supervisor, user) ----
  // A seventh to ninth region is never filled: user accesses look there while alignment checking is active
  // (CR0.AM, RFLAGS.AC, CPL 3), so every such access takes the slow path, which checks alignment.
  readonly tlbTag: Float64Array;
  readonly tlbOff: Float64Array;
  readonly tlbGlobal = new Uint8Array(9 * TLB_SIZE);
  /** 0 for supervisor (CPL < 3), 3 * TLB_SIZE for user, 6 * TLB_SIZE for user with alignment checks. */
  tlbUser = 0;
  private readonly walkRes = new WalkResult();
  private readonly pagingRegs: PagingRegs = { cr0: 0, cr3Lo: 0, cr3Hi: 0, cr4: 0, lma: false, nxe: false };

  // ---- time ----
  readonly tscHz: number;
  readonly clock: () => number;
  readonly deterministic: boolean;
  /** Instructions retired before the current run() call (exact to 2^53). */
  retiredCount = 0;
  /** Instructions retired so far in the current run() call. */
  count = 0;
  private tscBase = DOUBLE_ZERO;
  private tscLast = DOUBLE_ZERO;
  private readonly clock0: number;

  constructor(memory: GuestMemory, options: CpuOptions = {}) {
    super();
    this.mem = memory;
    this.dv = memory.view;
    const slot = memory.claimSlot();
    this.stateSlot = slot;
    const buf = memory.buffer;
    if (slot >= 0) {
      this.rlo = new Int32Array(buf, slot + REG_LO, 16);
      this.rhi = new Int32Array(buf, slot + REG_HI, 16);
      this.xch = new Int32Array(buf, slot + XCH, XCH_SLOTS);
      this.tlbTag = new Float64Array(buf, slot + TLB_TAG, TLB_ENTRIES);
      this.tlbOff = new Float64Array(buf, slot + TLB_OFF, TLB_ENTRIES);
    } else {
      this.rlo = new Int32Array(16);
      this.rhi = new Int32Array(16);
      this.xch = new Int32Array(XCH_SLOTS);
      this.tlbTag = new Float64Array(TLB_ENTRIES);
      this.tlbOff = new Float64Array(TLB_ENTRIES);
    }
    this.tlbTag.fill(NaN);
    this.tscHz = options.tscHz ?? 1_000_000_000;
    this.deterministic = options.deterministic ?? false;
    this.clock = options.clock ?? (() => globalThis.performance.now() * 1e6);
    this.clock0 = this.clock();
    this.controls = {
      ioBitmap: new Uint8Array(8192).fill(0xff),
      cpuidExiting: false,
      interruptWindowExiting: false,
      hltExiting: true,
      tscOffsetLo: 0,
      tscOffsetHi: 0,
    };
  }

  // =============================== exceptions ===============================

  /** Raises an exception (vector with optional error code) for the current instruction. Never returns. */
  fault(vector: number, code = -1): never {
    this.faultVector = vector;
    this.faultHasCode = code >= 0;
    this.faultCode = code >= 0 ? code : 0;
    throw FAULT;
  }

  gp(code = 0): never {
    return this.fault(Vec.GP, code);
  }

  ud(): never {
    return this.fault(Vec.UD);
  }

  /** Reports an exit that aborts the current instruction (it will re-execute or be completed). */
  exitNow(reason: ExitReason): never {
    this.exit.reason = reason;
    throw EXIT;
  }

  // =============================== registers ===============================

  /** Reads GPR r at size (1 = low byte, r in 0..15 with REX numbering). 8 bytes: hi in `this.hi`. */
  getGpr(r: number, size: number): number {
    switch (size) {
      case 1:
        return this.rlo[r]! & 0xff;
      case 2:
        return this.rlo[r]! & 0xffff;
      case 4:
        return this.rlo[r]!;
      default:
        this.hi = this.rhi[r]!;
        return this.rlo[r]!;
    }
  }

  /** Writes GPR r at size; 32-bit writes zero the upper half, 8/16-bit writes merge (SDM Vol. 1 3.4.1.1). */
  setGpr(r: number, size: number, lo: number, hi: number): void {
    switch (size) {
      case 1:
        this.rlo[r] = (this.rlo[r]! & ~0xff) | (lo & 0xff);
        break;
      case 2:
        this.rlo[r] = (this.rlo[r]! & ~0xffff) | (lo & 0xffff);
        break;
      case 4:
        this.rlo[r] = lo;
        this.rhi[r] = 0;
        break;
      default:
        this.rlo[r] = lo;
        this.rhi[r] = hi;
    }
  }

  /** Reads operand slot (kind, reg, size) of `d`. Values of size < 8 are zero-extended; size 4 is int32. */
  rd(d: Insn, kind: number, reg: number, size: number): number {
    switch (kind) {
      case OpKind.Reg:
        return this.getGpr(reg, size);
      case OpKind.Mem:
        return this.readMem(d.seg, this.eaLo, this.eaHi, size);
      case OpKind.Imm:
      case OpKind.Rel:
        this.hi = d.immHi;
        return size === 1 ? d.immLo & 0xff : size === 2 ? d.immLo & 0xffff : d.immLo;
      case OpKind.RegHigh:
        return (this.rlo[reg]! >> 8) & 0xff;
      case OpKind.Sreg:
        this.hi = 0;
        return this.segSel[reg]!;
      default:
        throw new Error(`operand kind ${kind} is not a GPR/memory/immediate operand`);
    }
  }

  /** Writes operand slot (kind, reg, size) of `d`. */
  wr(d: Insn, kind: number, reg: number, size: number, lo: number, hi: number): void {
    if (kind === OpKind.Reg) this.setGpr(reg, size, lo, hi);
    else if (kind === OpKind.Mem) this.writeMem(d.seg, this.eaLo, this.eaHi, size, lo, hi);
    else if (kind === OpKind.RegHigh) this.rlo[reg] = (this.rlo[reg]! & ~0xff00) | ((lo & 0xff) << 8);
    else throw new Error(`operand kind ${kind} is not writable`);
  }

  rd0(d: Insn): number {
    if (d.rmw && d.k0 === OpKind.Mem) return this.readMemRmw(d.seg, this.eaLo, this.eaHi, d.s0);
    return this.rd(d, d.k0, d.r0, d.s0);
  }
  rd1(d: Insn): number {
    return this.rd(d, d.k1, d.r1, d.s1);
  }
  rd2(d: Insn): number {
    return this.rd(d, d.k2, d.r2, d.s2);
  }
  wr0(d: Insn, lo: number, hi: number): void {
    this.wr(d, d.k0, d.r0, d.s0, lo, hi);
  }
  wr1(d: Insn, lo: number, hi: number): void {
    this.wr(d, d.k1, d.r1, d.s1, lo, hi);
  }

  /** Computes the effective address of d's memory operand into eaLo/eaHi (SDM Vol. 1 3.7.5). */
  computeEA(d: Insn): void {
    let lo = d.dispLo;
    if (d.asize === 8) {
      let hi = d.dispHi;
      // 64-bit adds in int32 halves; the carry is "sum < addend" unsigned, compared with the sign bits
      // flipped (no value leaves int32, so V8 has nothing to deoptimise on at the first kernel address).
      if (d.ripRel) {
        const s = (lo + this.ripLo) | 0;
        hi = (hi + this.ripHi + ((s ^ SIGN_BIT) < (lo ^ SIGN_BIT) ? 1 : 0)) | 0;
        lo = s;
      }
      if (d.base >= 0) {
        const s = (lo + this.rlo[d.base]!) | 0;
        hi = (hi + this.rhi[d.base]! + ((s ^ SIGN_BIT) < (lo ^ SIGN_BIT) ? 1 : 0)) | 0;
        lo = s;
      }
      if (d.index >= 0) {
        const sh = d.scale;
        let ilo = this.rlo[d.index]!;
        let ihi = this.rhi[d.index]!;
        if (sh !== 0) {
          ihi = (ihi << sh) | (ilo >>> (32 - sh));
          ilo <<= sh;
        }
        const s = (lo + ilo) | 0;
        hi = (hi + ihi + ((s ^ SIGN_BIT) < (lo ^ SIGN_BIT) ? 1 : 0)) | 0;
        lo = s;
      }
      this.eaLo = lo;
      this.eaHi = hi;
      return;
    }
    if (d.ripRel) lo = (lo + this.ripLo) | 0;
    if (d.base >= 0) lo = (lo + this.rlo[d.base]!) | 0;
    if (d.index >= 0) lo = (lo + (this.rlo[d.index]! << d.scale)) | 0;
    this.eaLo = d.asize === 2 ? lo & 0xffff : lo;
    this.eaHi = 0;
  }

  // =============================== segmentation ===============================

  /** Linear address (lo) of seg:offset, checking limits outside 64-bit mode; hi half in `this.hi`. */
  linear(seg: number, offLo: number, offHi: number, size: number, write: boolean): number {
    if (this.long64) {
      if (seg < 4) {
        // A non-canonical stack-segment reference is #SS(0), not #GP(0) (SDM Vol. 3A 6.15 #SS).
        if (seg === 2 && (offHi << 16) >> 16 !== offHi) this.fault(Vec.SS, 0);
        this.hi = offHi;
        return offLo;
      }
      // As in computeEA: int32 halves, carry by the sign-flipped unsigned comparison.
      const s = (offLo + this.segBaseLo[seg]!) | 0;
      this.hi = (offHi + this.segBaseHi[seg]! + ((s ^ SIGN_BIT) < (offLo ^ SIGN_BIT) ? 1 : 0)) | 0;
      return s;
    }
    if (this.segCheck & (1 << seg)) this.checkSegment(seg, offLo, size, write);
    this.hi = 0;
    return (this.segBaseLo[seg]! + offLo) | 0;
  }

  /** Limit, type and usability checks for a non-flat segment (SDM Vol. 3A 5.3, 5.4). */
  checkSegment(seg: number, off: number, size: number, write: boolean): void {
    const acc = this.segAccess[seg]!;
    const vec = seg === 2 ? Vec.SS : Vec.GP;
    if (acc & ACC_UNUSABLE) this.fault(vec, 0);
    if (write && this.cr0 & CR0_PE && !(this.flagsReg & 0x20000)) {
      // Writes need a writable data segment (type bit 1 set, bit 3 clear).
      if ((acc & 0xa) !== 0x2) this.fault(vec, 0);
    }
    const limit = this.segLimit[seg]!;
    const first = off >>> 0;
    const last = first + size - 1;
    if ((acc & 0x1c) === 0x14) {
      // Expand-down data segment: valid offsets are (limit, upper], upper = 0xffff or 0xffffffff by B.
      const upper = acc & ACC_DB ? 0xffffffff : 0xffff;
      if (first <= limit || last > upper) this.fault(vec, 0);
    } else if (last > limit) this.fault(vec, 0);
  }

  /** Loads a segment's cache directly (real mode, resets, and descriptor loads in segments.ts). */
  loadSegCache(
    seg: number,
    sel: number,
    baseLo: number,
    baseHi: number,
    limit: number,
    access: number,
  ): void {
    this.segSel[seg] = sel & 0xffff;
    this.segBaseLo[seg] = baseLo;
    this.segBaseHi[seg] = baseHi;
    this.segLimit[seg] = limit >>> 0;
    this.segAccess[seg] = access;
    const flat = limit >>> 0 === 0xffffffff && (access & 0x1c) !== 0x14 && (access & ACC_UNUSABLE) === 0;
    // Writes to code/read-only segments must fault too; those are never "flat" for our purposes.
    const writable = (access & 0x18) === 0x10 && (access & 2) !== 0;
    if (flat && (writable || seg === 1)) this.segCheck &= ~(1 << seg);
    else this.segCheck |= 1 << seg;
    if (seg === 1 || seg === 2) this.updateMode();
  }

  /** Real-mode / virtual-8086 segment load: base = selector * 16, limit and rights unchanged. */
  loadSegReal(seg: number, sel: number): void {
    sel &= 0xffff;
    this.segSel[seg] = sel;
    this.segBaseLo[seg] = sel << 4;
    this.segBaseHi[seg] = 0;
    if (this.flagsReg & 0x20000) {
      this.segLimit[seg] = 0xffff;
      this.segAccess[seg] = seg === 1 ? 0xfb : 0xf3;
      this.segCheck |= 1 << seg;
    } else if (this.segAccess[seg]! & ACC_UNUSABLE) {
      this.segAccess[seg] = seg === 1 ? 0x9b : 0x93;
      this.segLimit[seg] = 0xffff;
      this.segCheck |= 1 << seg;
    }
    if (seg === 1 || seg === 2) this.updateMode();
  }

  /** Recomputes CPL, 64-bit mode, decode mode and stack size from CR0/EFER/CS/SS. */
  updateMode(): void {
    const csAcc = this.segAccess[1]!;
    const lma = (this.efer & EFER_LMA) !== 0;
    this.long64 = lma && (csAcc & ACC_L) !== 0;
    if (this.long64) this.codeMode = 2;
    else this.codeMode = csAcc & ACC_DB && !(this.flagsReg & 0x20000) ? 1 : 0;
    if (!(this.cr0 & CR0_PE)) this.cpl = 0;
    else if (this.flagsReg & 0x20000) this.cpl = 3;
    else this.cpl = this.segSel[1]! & 3;
    const ac = (this.cr0 & CR0_AM) !== 0 && (this.flagsReg & 0x40000) !== 0;
    this.tlbUser = this.cpl === 3 ? (ac ? 6 * TLB_SIZE : 3 * TLB_SIZE) : 0;
    this.stackSize = this.long64 ? 8 : this.segAccess[2]! & ACC_DB ? 4 : 2;
    this.codeCacheReset();
  }

  /** Hook for the interpreter's current-code-page shortcut (cpu.ts overrides). */
  codeCacheReset(): void {}

  // =============================== memory ===============================

  /** Reads size (1, 2, 4, 8) bytes at seg:offset. 8 bytes: high half in `this.hi`. */
  readMem(seg: number, offLo: number, offHi: number, size: number): number {
    const lo = this.linear(seg, offLo, offHi, size, false);
    return this.readLin(lo, this.hi, size);
  }

  /**
   * Reads the destination of a read-modify-write instruction: segment and page checks are those of a
   * write (the hardware locks or claims the line for writing on the first access), then the value is read.
   */
  readMemRmw(seg: number, offLo: number, offHi: number, size: number): number {
    const lo = this.probeWrite(seg, offLo, offHi, size);
    return this.readLin(lo, this.hi, size);
  }

  /**
   * Checks that size bytes at seg:offset may be written (segment, alignment and page checks, faulting as the
   * write would) without touching them: no device sees an access. Returns the linear address (hi in `hi`).
   */
  probeWrite(seg: number, offLo: number, offHi: number, size: number): number {
    const lo = this.linear(seg, offLo, offHi, size, true);
    this.probeLinWrite(lo, this.hi, size);
    return lo;
  }

  /** The read of a read-modify-write destination at a linear address (see readMemRmw). */
  readLinRmw(lo: number, hi: number, size: number): number {
    this.probeLinWrite(lo, hi, size);
    return this.readLin(lo, hi, size);
  }

  /** The page and alignment checks of a write at a linear address, without the write (see probeWrite). */
  private probeLinWrite(lo: number, hi: number, size: number): void {
    const po = lo & 0xfff;
    const slot = this.tlbUser + TLB_SIZE + ((lo >>> 12) & TLB_MASK);
    if (po + size > 4096 || this.tlbTag[slot] !== hi * VPN_SCALE + (lo >>> 12)) {
      const user = this.cpl === 3;
      this.alignCheck(lo, hi, size, user);
      this.translate(lo, hi, ACC_WRITE, user);
      if (po + size > 4096) {
        const s2 = (lo >>> 0) + (4096 - po);
        this.translate(s2 | 0, (hi + (s2 >= TWO32 ? 1 : 0)) | 0, ACC_WRITE, user);
      }
    }
    this.hi = hi;
  }

  writeMem(seg: number, offLo: number, offHi: number, size: number, vlo: number, vhi: number): void {
    const lo = this.linear(seg, offLo, offHi, size, true);
    this.writeLin(lo, this.hi, size, vlo, vhi);
  }

  /** Reads at a linear address with the current privilege. */
  readLin(lo: number, hi: number, size: number): number {
    const po = lo & 0xfff;
    if (po + size <= 4096) {
      const slot = this.tlbUser + ((lo >>> 12) & TLB_MASK);
      if (this.tlbTag[slot] === hi * VPN_SCALE + (lo >>> 12)) {
        const off = this.tlbOff[slot]! + po;
        switch (size) {
          case 1:
            return this.dv.getUint8(off);
          case 2:
            return this.dv.getUint16(off, true);
          case 4:
            return this.dv.getInt32(off, true);
          default:
            this.hi = this.dv.getInt32(off + 4, true);
            return this.dv.getInt32(off, true);
        }
      }
    }
    return this.readSlow(lo, hi, size, this.cpl === 3);
  }

  writeLin(lo: number, hi: number, size: number, vlo: number, vhi: number): void {
    const po = lo & 0xfff;
    if (po + size <= 4096) {
      const slot = this.tlbUser + TLB_SIZE + ((lo >>> 12) & TLB_MASK);
      if (this.tlbTag[slot] === hi * VPN_SCALE + (lo >>> 12)) {
        const off = this.tlbOff[slot]! + po;
        switch (size) {
          case 1:
            this.dv.setUint8(off, vlo);
            return;
          case 2:
            this.dv.setUint16(off, vlo, true);
            return;
          case 4:
            this.dv.setInt32(off, vlo, true);
            return;
          default:
            this.dv.setInt32(off, vlo, true);
            this.dv.setInt32(off + 4, vhi, true);
            return;
        }
      }
    }
    this.writeSlow(lo, hi, size, vlo, vhi, this.cpl === 3);
  }

  /** Supervisor (implicit) reads and writes: descriptor tables, TSS, IDT — regardless of CPL. */
  readSys(lo: number, hi: number, size: number): number {
    return this.readSlow(lo, hi, size, false);
  }
  writeSys(lo: number, hi: number, size: number, vlo: number, vhi: number): void {
    this.writeSlow(lo, hi, size, vlo, vhi, false);
  }

  /**
   * #AC(0) for a misaligned user data access while alignment checking is active (SDM Vol. 3A 6.15 #AC).
   * A non-canonical address is a #GP(0) first: the canonical check has priority over alignment.
   */
  alignCheck(lo: number, hi: number, size: number, user: boolean): void {
    if (user && this.tlbUser === 6 * TLB_SIZE && size > 1 && (lo & (size - 1)) !== 0) {
      if (this.efer & EFER_LMA && (hi << 16) >> 16 !== hi) this.fault(Vec.GP, 0);
      this.fault(Vec.AC, 0);
    }
  }

  readSlow(lo: number, hi: number, size: number, user: boolean): number {
    this.alignCheck(lo, hi, size, user);
    const po = lo & 0xfff;
    if (po + size > 4096) {
      // Page-straddling: both pages are translated first (a fault leaves every device untouched), then each
      // part is read where it lives: RAM directly, MMIO as the intercept's pieces (straddleRead).
      const n1 = 4096 - po;
      const s2 = (lo >>> 0) + n1;
      const off1 = this.translate(lo, hi, ACC_READ, user);
      const gpa1 = this.mmioGpaLast;
      const off2 = this.translate(s2 | 0, (hi + (s2 >= TWO32 ? 1 : 0)) | 0, ACC_READ, user);
      const gpa2 = this.mmioGpaLast;
      const b = this.straddleBytes;
      this.straddleRead(off1, gpa1, n1, 0);
      this.straddleRead(off2, gpa2, size - n1, n1);
      let vlo = 0;
      let vhi = 0;
      for (let i = 0; i < size; i++) {
        if (i < 4) vlo |= b[i]! << (8 * i);
        else vhi |= b[i]! << (8 * (i - 4));
      }
      this.hi = vhi;
      return size === 4 || size === 8 ? vlo | 0 : vlo >>> 0;
    }
    const off = this.translate(lo, hi, ACC_READ, user);
    if (off < 0) return this.mmioRead(this.mmioGpaLast, size);
    switch (size) {
      case 1:
        return this.dv.getUint8(off);
      case 2:
        return this.dv.getUint16(off, true);
      case 4:
        return this.dv.getInt32(off, true);
      default:
        this.hi = this.dv.getInt32(off + 4, true);
        return this.dv.getInt32(off, true);
    }
  }

  writeSlow(lo: number, hi: number, size: number, vlo: number, vhi: number, user: boolean): void {
    this.alignCheck(lo, hi, size, user);
    const po = lo & 0xfff;
    if (po + size > 4096) {
      // Translate both pages first so a fault on the second leaves memory and devices untouched; then each
      // part goes where it lives, the lower page first: RAM directly, MMIO as the intercept's pieces.
      const n1 = 4096 - po;
      const s2 = (lo >>> 0) + n1;
      const off1 = this.translate(lo, hi, ACC_WRITE, user);
      const gpa1 = this.mmioGpaLast;
      const off2 = this.translate(s2 | 0, (hi + (s2 >= TWO32 ? 1 : 0)) | 0, ACC_WRITE, user);
      const gpa2 = this.mmioGpaLast;
      const b = this.straddleBytes;
      for (let i = 0; i < size; i++) b[i] = i < 4 ? vlo >>> (8 * i) : vhi >>> (8 * (i - 4));
      this.straddleWrite(off1, gpa1, n1, 0);
      this.straddleWrite(off2, gpa2, size - n1, n1);
      return;
    }
    const off = this.translate(lo, hi, ACC_WRITE, user);
    if (off < 0) {
      this.mmioWrite(this.mmioGpaLast, size, vlo, vhi);
      return;
    }
    switch (size) {
      case 1:
        this.dv.setUint8(off, vlo);
        break;
      case 2:
        this.dv.setUint16(off, vlo, true);
        break;
      case 4:
        this.dv.setInt32(off, vlo, true);
        break;
      default:
        this.dv.setInt32(off, vlo, true);
        this.dv.setInt32(off + 4, vhi, true);
    }
    this.mem.noteWrite(off, size);
  }

  /** Guest-physical address of the last translate() (set for MMIO results too). */
  mmioGpaLast = 0;

  /**
   * Translates a linear address for an access kind; returns the RAM offset, or -1 for MMIO (gpa in
   * mmioGpaLast). Raises #GP (non-canonical), #PF, or an AccessViolation exit. Fills the TLB.
   */
  /**
   * The RAM offset of linear (lo, hi) for an access of `kind` (ACC_*), as `translate` returns it: from the TLB when
   * it has the page, else `translate` (a walk that may fault, exit, or return -1 for non-RAM).
   */
  pageFor(lo: number, hi: number, kind: number, user: boolean): number {
    const slot = (user ? 3 * TLB_SIZE : 0) + kind * TLB_SIZE + ((lo >>> 12) & TLB_MASK);
    if (this.tlbTag[slot] === hi * VPN_SCALE + (lo >>> 12)) return this.tlbOff[slot]! + (lo & 0xfff);
    return this.translate(lo, hi, kind, user);
  }

  translate(lo: number, hi: number, kind: number, user: boolean): number {
    if (this.efer & EFER_LMA) {
      if ((hi << 16) >> 16 !== hi) this.fault(Vec.GP, 0);
    } else hi = 0;
    let frame: number;
    let global = false;
    if (this.cr0 & CR0_PG) {
      const pr = this.pagingRegs;
      pr.cr0 = this.cr0;
      pr.cr3Lo = this.cr3Lo;
      pr.cr3Hi = this.cr3Hi;
      pr.cr4 = this.cr4;
      pr.lma = (this.efer & EFER_LMA) !== 0;
      pr.nxe = (this.efer & EFER_NXE) !== 0;
      const r = this.walkRes;
      if (!walk(this.mem, pr, lo, hi, kind, user, r)) {
        this.cr2Lo = lo;
        this.cr2Hi = hi;
        this.fault(Vec.PF, r.error);
      }
      frame = r.frame;
      global = r.global;
    } else frame = (lo & 0xfffff000) >>> 0;
    const gpa = frame + (lo & 0xfff);
    this.mmioGpaLast = gpa;
    const pageOff = this.mem.offsetOf(frame);
    if (pageOff < 0) return -1;
    const need = kind === ACC_READ ? PAGE_READ : kind === ACC_WRITE ? PAGE_WRITE : PAGE_EXECUTE;
    const ramPage = ramPageOf(pageOff);
    if ((this.mem.rights[ramPage]! & need) === 0) {
      this.exit.gpa = gpa;
      this.exit.isWrite = kind === ACC_WRITE;
      this.exit.size = 0;
      this.exitNow(ExitReason.AccessViolation);
    }
    // Writes through a TLB entry skip noteWrite: the page is recorded as written when it is mapped.
    if (kind === ACC_WRITE) this.mem.noteWritable(ramPage);
    // Writes to pages holding decoded code stay on the slow path so they invalidate the decode cache.
    if (kind !== ACC_WRITE || this.mem.codePages[ramPage] === 0) {
      const slot = (user ? 3 * TLB_SIZE : 0) + kind * TLB_SIZE + ((lo >>> 12) & TLB_MASK);
      this.tlbTag[slot] = hi * VPN_SCALE + (lo >>> 12);
      this.tlbOff[slot] = pageOff;
      this.tlbGlobal[slot] = global ? 1 : 0;
    }
    return pageOff + (lo & 0xfff);
  }

  /**
   * Moves `n` bytes of one part of a page-straddling read into straddleBytes[at..]: from RAM at offset `off`,
   * or, for MMIO at `gpa`, as naturally aligned 1-, 2- and 4-byte intercept reads (the pieces a bus makes).
   */
  private straddleRead(off: number, gpa: number, n: number, at: number): void {
    const b = this.straddleBytes;
    if (off >= 0) {
      for (let i = 0; i < n; i++) b[at + i] = this.dv.getUint8(off + i);
      return;
    }
    for (let a = gpa, end = gpa + n; a < end;) {
      const size = pieceSize(a, end - a);
      let v = this.mmioRead(a, size);
      for (let i = 0; i < size; i++, v >>>= 8) b[at++] = v;
      a += size;
    }
  }

  /** The write counterpart of straddleRead: straddleBytes[at..at+n) to RAM at `off` or to MMIO at `gpa`. */
  private straddleWrite(off: number, gpa: number, n: number, at: number): void {
    const b = this.straddleBytes;
    if (off >= 0) {
      for (let i = 0; i < n; i++) this.dv.setUint8(off + i, b[at + i]!);
      this.mem.noteWrite(off, n);
      return;
    }
    for (let a = gpa, end = gpa + n; a < end;) {
      const size = pieceSize(a, end - a);
      let v = 0;
      for (let i = size - 1; i >= 0; i--) v = (v << 8) | b[at + i]!;
      this.mmioWrite(a, size, v >>> 0, 0);
      at += size;
      a += size;
    }
  }

  /**
   * MMIO read through the runner's intercept, completed in place (docs/decisions/0004); with no intercept
   * the address floats to all ones. Same result conventions as readLin.
   */
  mmioRead(gpa: number, size: number): number {
    const m = this.mmio;
    if (m === null) {
      this.hi = -1;
      return size === 1 ? 0xff : size === 2 ? 0xffff : -1;
    }
    const v = m.read(gpa, size);
    // A device may raise an interrupt while it answers: events are looked at after this instruction.
    this.attn = 1;
    switch (size) {
      case 1:
        this.hi = 0;
        return v & 0xff;
      case 2:
        this.hi = 0;
        return v & 0xffff;
      case 4:
        this.hi = 0;
        return v | 0;
      default:
        this.hi = m.hi | 0;
        return v | 0;
    }
  }

  /**
   * MMIO write through the runner's intercept; the batch ends once the instruction retires, so the runner
   * sees what the write changed (pending interrupts, deadlines) before the next instruction runs.
   */
  mmioWrite(gpa: number, size: number, lo: number, hi: number): void {
    const m = this.mmio;
    if (m === null) return;
    m.write(
      gpa,
      size,
      size === 1 ? lo & 0xff : size === 2 ? lo & 0xffff : lo >>> 0,
      size === 8 ? hi >>> 0 : 0,
    );
    this.endBatch();
  }

  /** After a device write: report the batch as ended once the current instruction retires. */
  endBatch(): void {
    if (!this.postedExit) this.exit.reason = ExitReason.BudgetExhausted;
    this.postedExit = true;
    this.attn = 1;
  }

  /** Flushes the TLB; non-global entries only when `keepGlobal`. */
  flushTlb(keepGlobal = false): void {
    if (!keepGlobal) {
      this.tlbTag.fill(NaN);
      this.tlbGlobal.fill(0);
    } else {
      const t = this.tlbTag;
      const g = this.tlbGlobal;
      for (let i = 0; i < t.length; i++) if (g[i] === 0) t[i] = NaN;
    }
    this.codeCacheReset();
  }

  /** Drops every TLB entry for the linear page containing (lo, hi) (INVLPG). */
  flushTlbPage(lo: number, hi: number): void {
    const vpn = hi * VPN_SCALE + (lo >>> 12);
    const idx = (lo >>> 12) & TLB_MASK;
    for (let k = 0; k < 6; k++) {
      const slot = k * TLB_SIZE + idx;
      if (this.tlbTag[slot] === vpn) {
        this.tlbTag[slot] = NaN;
        this.tlbGlobal[slot] = 0;
      }
    }
    this.codeCacheReset();
  }

  /** Removes write entries that point at a RAM page (it now holds decoded code). */
  dropWriteEntries(pageOff: number): void {
    for (let u = 0; u < 2; u++) {
      const base = u * 3 * TLB_SIZE + TLB_SIZE;
      for (let i = 0; i < TLB_SIZE; i++) if (this.tlbOff[base + i] === pageOff) this.tlbTag[base + i] = NaN;
    }
  }

  // =============================== stack ===============================

  /** Pushes size bytes (2, 4, 8) at SS:rSP - size; RSP is updated only after the write succeeds. */
  push(size: number, lo: number, hi: number): void {
    if (this.stackSize === 8) {
      // Int32 halves, borrow by the sign-flipped unsigned comparison (see computeEA).
      const sp = this.rlo[4]!;
      const nlo = (sp - size) | 0;
      const nhi = (this.rhi[4]! - ((sp ^ SIGN_BIT) < (size ^ SIGN_BIT) ? 1 : 0)) | 0;
      if ((nhi << 16) >> 16 !== nhi) this.fault(Vec.SS, 0);
      this.writeLin(nlo, nhi, size, lo, hi);
      this.rlo[4] = nlo;
      this.rhi[4] = nhi;
    } else if (this.stackSize === 4) {
      const nsp = (this.rlo[4]! - size) | 0;
      this.writeMem(2, nsp, 0, size, lo, hi);
      this.rlo[4] = nsp;
    } else {
      const nsp = (this.rlo[4]! - size) & 0xffff;
      this.writeMem(2, nsp, 0, size, lo, hi);
      this.rlo[4] = (this.rlo[4]! & ~0xffff) | nsp;
    }
  }

  /** Pops size bytes; 8 bytes: high half in `this.hi`. */
  pop(size: number): number {
    let v: number;
    if (this.stackSize === 8) {
      const vhi0 = 0;
      const sh = this.rhi[4]!;
      if ((sh << 16) >> 16 !== sh) this.fault(Vec.SS, 0);
      v = this.readLin(this.rlo[4]!, sh, size);
      const vhi = size === 8 ? this.hi : vhi0;
      const sp = this.rlo[4]!;
      const s = (sp + size) | 0;
      this.rlo[4] = s;
      this.rhi[4] = (this.rhi[4]! + ((s ^ SIGN_BIT) < (sp ^ SIGN_BIT) ? 1 : 0)) | 0;
      this.hi = vhi;
    } else if (this.stackSize === 4) {
      v = this.readMem(2, this.rlo[4]!, 0, size);
      this.rlo[4] = (this.rlo[4]! + size) | 0;
    } else {
      const sp = this.rlo[4]! & 0xffff;
      v = this.readMem(2, sp, 0, size);
      this.rlo[4] = (this.rlo[4]! & ~0xffff) | ((sp + size) & 0xffff);
    }
    return v;
  }

  /** Reads the stack at rSP + offset without popping (far returns, IRET). */
  peekStack(offset: number, size: number): number {
    if (this.stackSize === 8) {
      const sp = this.rlo[4]!;
      const s = (sp + offset) | 0;
      const h = (this.rhi[4]! + ((s ^ SIGN_BIT) < (sp ^ SIGN_BIT) ? 1 : 0)) | 0;
      if ((h << 16) >> 16 !== h) this.fault(Vec.SS, 0);
      return this.readLin(s, h, size);
    }
    const sp = this.stackSize === 4 ? (this.rlo[4]! + offset) | 0 : (this.rlo[4]! + offset) & 0xffff;
    return this.readMem(2, sp, 0, size);
  }

  /** Adds to rSP at the stack address size. */
  addSp(n: number): void {
    if (this.stackSize === 8) {
      const s = (this.rlo[4]! >>> 0) + n;
      this.rlo[4] = s | 0;
      this.rhi[4] = (this.rhi[4]! + (s >= TWO32 ? 1 : s < 0 ? -1 : 0)) | 0;
    } else if (this.stackSize === 4) this.rlo[4] = (this.rlo[4]! + n) | 0;
    else this.rlo[4] = (this.rlo[4]! & ~0xffff) | ((this.rlo[4]! + n) & 0xffff);
  }

  // =============================== control flow ===============================

  /** Sets RIP to a branch target of the given operand size (truncating as the architecture requires). */
  setRipSized(lo: number, hi: number, osize: number): void {
    if (osize === 8) {
      if ((hi << 16) >> 16 !== hi) this.gp(0);
      this.ripLo = lo;
      this.ripHi = hi;
      return;
    }
    const v = osize === 2 ? lo & 0xffff : lo;
    if (!this.long64 && (this.segCheck & 2) !== 0 && v >>> 0 > this.segLimit[1]!) this.gp(0);
    this.ripLo = v;
    this.ripHi = 0;
  }

  /** Branches to next-RIP + rel (Jcc/JMP/CALL rel), truncated to the operand size. */
  branchRel(relLo: number, relHi: number, osize: number): void {
    const rl = this.ripLo;
    const lo = (rl + relLo) | 0;
    const hi = (this.ripHi + relHi + ((lo ^ SIGN_BIT) < (rl ^ SIGN_BIT) ? 1 : 0)) | 0;
    this.setRipSized(lo, hi, osize);
  }

  // =============================== time ===============================

  /** The current TSC (before the control's offset) as a double. Never decreases. */
  tscNow(): number {
    let t: number;
    if (this.deterministic)
      t = this.tscBase + Math.floor((this.retiredCount + this.count) * (this.tscHz / 1e8));
    else t = this.tscBase + Math.floor(((this.clock() - this.clock0) * this.tscHz) / 1e9);
    if (t < this.tscLast) t = this.tscLast;
    this.tscLast = t;
    return t;
  }

  /** TSC as the guest sees it (with the controls' offset): low half returned, high half in `this.hi`. */
  readTsc(): number {
    const t = this.tscNow();
    const tlo = t % TWO32;
    const thi = Math.floor(t / TWO32);
    const s = tlo + (this.controls.tscOffsetLo >>> 0);
    this.hi = (thi + this.controls.tscOffsetHi + (s >= TWO32 ? 1 : 0)) | 0;
    return s | 0;
  }

  /** WRMSR IA32_TIME_STAMP_COUNTER: the guest-visible TSC becomes (lo, hi). */
  writeTsc(lo: number, hi: number): void {
    const want = (hi >>> 0) * TWO32 + (lo >>> 0);
    const off = (this.controls.tscOffsetHi >>> 0) * TWO32 + (this.controls.tscOffsetLo >>> 0);
    const cur = this.tscNow();
    this.tscBase += want - off - cur;
    this.tscLast = want - off;
  }
}

/** The largest naturally aligned access (4, 2 or 1 bytes) at `addr` that fits in `left` bytes. */
function pieceSize(addr: number, left: number): number {
  if (left >= 4 && (addr & 3) === 0) return 4;
  if (left >= 2 && (addr & 1) === 0) return 2;
  return 1;
}
