// Owns: the local APIC of one virtual processor (xAPIC MMIO page and x2APIC MSR interfaces, IA32_APIC_BASE,
// IA32_TSC_DEADLINE, the LVT, the APIC timer in one-shot/periodic/TSC-deadline mode, interrupt acceptance,
// priorities, EOI) and the `ApicBus` that connects every VP's APIC (I/O APIC messages and IPIs).
// Must not: import the chipset (the I/O APIC, the 8259 and the clock meet it through src/contracts), run a clock or a loop
// (the run loop asks `nextDeadlineNs()` and calls `tick(nowNs)`, as with chipset devices), inject events
// into the processor itself (it is the processor's `InterruptSource`; NMIs and INIT/SIPI go to callbacks),
// or throw on guest input (#GP cases are returned as `MsrResult` for the caller to inject).
// Spec: Intel SDM Vol. 3A ch. 11: 11.4.1 (register access), 11.4.4 (IA32_APIC_BASE), 11.4.6 (ID), 11.4.7
// (enable/disable, INIT and power-up state), 11.4.8 (version), 11.5.1 (LVT), 11.5.3 (ESR), 11.5.4 (timer,
// 11.5.4.1 TSC-deadline), 11.6 (ICR, destinations, lowest priority, shorthands), 11.8 (IRR/ISR/TMR,
// acceptance, EOI), 11.8.3 (TPR/PPR/APR), 11.8.6 (CR8 = TPR[7:4]), 11.9 (spurious vector), 11.12 (x2APIC:
// MSR map, #GP rules, logical ID derivation, SELF IPI, mode transitions of figure 11-27).
//
// Choices where the SDM leaves room:
// - IPIs and I/O APIC messages are delivered at once, so ICR delivery status always reads idle.
// - SMI and the remote-read mode are not modelled (no SMM); such messages are dropped.
// - CR8 and TPR are one value: TPR[7:4] lives in the processor's `cr8` field (read through a structural
//   `{ cr8: number }` hook, so the CPU hot path is untouched); TPR[3:0] is kept here and reads 0 after
//   the guest changed CR8 (a MOV to CR8 clears it, SDM 11.8.6).
// - A TPR/CR8 lowered by MOV CR8 is seen at the processor's next event check (the end of its current batch).
// - Misaligned or non-32-bit MMIO accesses: reads return the bytes of the 16-byte-aligned register at that
//   offset (zero past its low dword); writes other than aligned 32-bit ones are ignored.
// - Lowest-priority delivery picks the matching APIC with the lowest PPR class (the first attached on ties).

import type { ApicMessage, ApicMessageSink, Clock, InterruptSource } from "../contracts/platform.js";
import type { MsrResult } from "./msr-result.js";
import { DOUBLE_ZERO } from "../support/heap-number.js";

export const APIC_DEFAULT_BASE = 0xfee00000;
export const APIC_PAGE_SIZE = 0x1000;
/** Hyper-V reports a 200 MHz APIC timer through HV_X64_MSR_APIC_FREQUENCY. */
export const APIC_DEFAULT_TIMER_HZ = 200_000_000;
export const MSR_IA32_APIC_BASE = 0x1b;
export const MSR_IA32_TSC_DEADLINE = 0x6e0;
export const MSR_X2APIC_FIRST = 0x800;
export const MSR_X2APIC_LAST = 0x8ff;
export const APIC_VERSION = 0x14;

const BASE_BSP = 1 << 8;
const BASE_EXTD = 1 << 10;
const BASE_EN = 1 << 11;

export const enum ApicDelivery {
  Fixed = 0,
  LowestPriority = 1,
  Smi = 2,
  Nmi = 4,
  Init = 5,
  Startup = 6,
  ExtInt = 7,
}

export const enum ApicShorthand {
  None = 0,
  Self = 1,
  AllIncludingSelf = 2,
  AllExcludingSelf = 3,
}

/** ESR bits (SDM 11.5.3). */
export const enum ApicError {
  SendIllegalVector = 1 << 5,
  ReceiveIllegalVector = 1 << 6,
  IllegalRegisterAddress = 1 << 7,
}

const LVT_MASKED = 1 << 16;
const LVT_TIMER_MODE_SHIFT = 17;
const TIMER_ONESHOT = 0;
const TIMER_PERIODIC = 1;
const TIMER_TSC_DEADLINE = 2;

/** LVT indexes; the order of the xAPIC offsets 0x2F0, 0x320..0x370. */
const enum Lvt {
  Cmci = 0,
  Timer = 1,
  Thermal = 2,
  Perf = 3,
  Lint0 = 4,
  Lint1 = 5,
  Error = 6,
}
/** Bits software can write per LVT (vector, delivery mode, polarity, trigger, mask, timer mode). */
const LVT_WRITABLE = [0x107ff, 0x700ff, 0x107ff, 0x107ff, 0x1a7ff, 0x1a7ff, 0x100ff] as const;

/** The processor's CR8 storage (structurally `Cpu`, whose `cr8` field MOV CR8 reads and writes). */
export interface Cr8Storage {
  cr8: number;
}

export interface LocalApicOptions {
  /** Initial APIC ID (CPUID.1:EBX[31:24] and the x2APIC ID); default 0. */
  apicId?: number;
  /** The VP index the bus callbacks report; default the APIC ID. */
  vpIndex?: number;
  /** Bootstrap processor (IA32_APIC_BASE bit 8); default true for APIC ID 0. */
  bsp?: boolean;
  clock: Clock;
  /** APIC timer input frequency (before the divide configuration); default 200 MHz as Hyper-V. */
  timerHz?: number;
  /** Guest TSC now, and its frequency: converts IA32_TSC_DEADLINE values to time. */
  readTsc?: () => number;
  tscHz?: number;
  /** The processor's CR8; without it TPR is held here alone. */
  cr8?: Cr8Storage;
  /** The 8259 PIC, reached through LINT0 in ExtINT mode and while the APIC is globally disabled. */
  extInt?: InterruptSource;
  /** EOI of a level-triggered vector (the worker connects it to `chipset.apicEoi`). */
  onEoi?: (vector: number) => void;
  /** An NMI for this processor (LINT1 in NMI mode, NMI IPIs and messages). */
  raiseNmi?: () => void;
  /** Report the CMCI LVT (max LVT entry 6); default false: max LVT entry 5 as Hyper-V. */
  cmci?: boolean;
  /** Physical-address width for the APIC base (MAXPHYADDR); default 40 as our CPUID leaf 0x80000008. */
  physAddrBits?: number;
  /**
   * Leave the APIC as an MP-spec BIOS does (software enabled, LINT0 ExtINT, LINT1 NMI) so the PIC reaches
   * the processor; default false (the power-up state of SDM 11.4.7.1).
   */
  virtualWire?: boolean;
  /** The bus to join; default a bus of its own. */
  bus?: ApicBus;
}

const BIG_NS = 1_000_000_000n;

function highestBit(words: Uint32Array): number {
  for (let i = 7; i >= 0; i--) {
    const w = words[i]!;
    if (w !== 0) return i * 32 + 31 - Math.clz32(w);
  }
  return -1;
}

function testBit(words: Uint32Array, v: number): boolean {
  return ((words[v >>> 5]! >>> (v & 31)) & 1) !== 0;
}

function setBit(words: Uint32Array, v: number, on: boolean): void {
  const i = v >>> 5;
  if (on) words[i] = words[i]! | (1 << (v & 31));
  else words[i] = words[i]! & ~(1 << (v & 31));
}

export class LocalApic implements InterruptSource {
  readonly initialId: number;
  readonly vpIndex: number;
  readonly bus: ApicBus;
  private readonly clock: Clock;
  private readonly timerHz: number;
  private readonly readTsc: (() => number) | null;
  private readonly tscHz: number;
  private readonly cr8Hook: Cr8Storage | null;
  private readonly extInt: InterruptSource | null;
  private readonly onEoi: (vector: number) => void;
  private readonly raiseNmi: () => void;
  private readonly hasCmci: boolean;
  private readonly baseMask: number; // writable base-address bits of the high dword
  private readonly virtualWire: boolean;

  // IA32_APIC_BASE
  private baseLo = 0;
  private baseHi = 0;

  private id = 0;
  private tprLow = 0; // TPR[3:0]; TPR[7:4] is CR8
  private tprHigh = 0; // used when there is no CR8 hook, and the CR8 value last seen otherwise
  private ldr = 0;
  private dfr = 0xffffffff;
  private svr = 0xff;
  private readonly isr = new Uint32Array(8);
  private readonly tmr = new Uint32Array(8);
  private readonly irr = new Uint32Array(8);
  /** IRR vectors accepted with AutoEOI (hypervisor-side state, not an architectural register). */
  private readonly autoEoi = new Uint32Array(8);
  private esrPending = 0;
  private esrVisible = 0;
  private readonly lvt = new Uint32Array(7);
  private icrLo = 0;
  private icrHi = 0;
  private extIntRequested = false;

  // Timer: counts elapsed since `timerBaseNs` plus `timerOffset` counts before it, in the current divisor.
  private initialCount = 0;
  private dcr = 0;
  private divisor = 2;
  private timerBaseNs = DOUBLE_ZERO;
  private timerOffset = 0;
  private timerFired = 0; // one-shot: 0/1; periodic: periods already signalled
  /** The count reached zero in one-shot mode and stays there, whatever the mode, until an initial count. */
  private timerAtZero = false;
  private tscDeadline = DOUBLE_ZERO; // TSC units; 0 = disarmed
  private tscDeadlineNs = Number.POSITIVE_INFINITY;
  private deadlineNs = Number.POSITIVE_INFINITY;

  /** Interrupts accepted into IRR since reset (diagnostics). */
  accepted = 0;

  constructor(options: LocalApicOptions) {
    this.initialId = (options.apicId ?? 0) >>> 0;
    this.vpIndex = options.vpIndex ?? this.initialId;
    this.clock = options.clock;
    this.timerHz = options.timerHz ?? APIC_DEFAULT_TIMER_HZ;
    if (!(this.timerHz > 0 && Number.isInteger(this.timerHz)))
      throw new RangeError("timerHz must be a positive integer");
    this.readTsc = options.readTsc ?? null;
    this.tscHz = options.tscHz ?? 0;
    this.cr8Hook = options.cr8 ?? null;
    this.extInt = options.extInt ?? null;
    this.onEoi = options.onEoi ?? (() => undefined);
    this.raiseNmi = options.raiseNmi ?? (() => undefined);
    this.hasCmci = options.cmci ?? false;
    const bits = Math.min(52, Math.max(36, options.physAddrBits ?? 40));
    this.baseMask = (2 ** (bits - 32) - 1) | 0;
    this.virtualWire = options.virtualWire ?? false;
    const bsp = options.bsp ?? this.initialId === 0;
    this.baseLo = APIC_DEFAULT_BASE | BASE_EN | (bsp ? BASE_BSP : 0) | 0;
    this.powerUp();
    this.bus = options.bus ?? new ApicBus();
    this.bus.attach(this);
  }

  // ------------------------------------------------------------------ state

  /** Power-up/INIT register state (SDM 11.4.7.1/11.4.7.3): everything but the APIC base MSR. */
  private powerUp(): void {
    this.id = this.initialId;
    this.setTpr(0);
    this.ldr = 0;
    this.dfr = 0xffffffff;
    this.svr = 0xff;
    this.isr.fill(0);
    this.tmr.fill(0);
    this.irr.fill(0);
    this.autoEoi.fill(0);
    this.esrPending = this.esrVisible = 0;
    this.lvt.fill(LVT_MASKED);
    this.icrLo = this.icrHi = 0;
    this.extIntRequested = false;
    this.initialCount = 0;
    this.dcr = 0;
    this.divisor = 2;
    this.timerFired = 0;
    this.timerAtZero = false;
    this.tscDeadline = 0;
    this.tscDeadlineNs = Number.POSITIVE_INFINITY;
    this.deadlineNs = Number.POSITIVE_INFINITY;
    if (this.x2apic) this.ldr = this.x2apicLdr();
    if (this.virtualWire && this.enabled) {
      this.svr = 0x1ff;
      this.lvt[Lvt.Lint0] = ApicDelivery.ExtInt << 8;
      this.lvt[Lvt.Lint1] = ApicDelivery.Nmi << 8;
    }
  }

  /** Processor reset (power-on or RESET#): the APIC base returns to its default too. */
  reset(): void {
    this.baseLo = APIC_DEFAULT_BASE | BASE_EN | (this.baseLo & BASE_BSP) | 0;
    this.baseHi = 0;
    this.powerUp();
  }

  /** INIT (IPI or signal): registers to power-up values except the base MSR and ID (SDM 11.4.7.3). */
  init(): void {
    const id = this.id;
    this.powerUp();
    if (!this.x2apic) this.id = id;
  }

  /** Globally enabled (IA32_APIC_BASE.EN). */
  get enabled(): boolean {
    return (this.baseLo & BASE_EN) !== 0;
  }

  get x2apic(): boolean {
    return (this.baseLo & BASE_EXTD) !== 0;
  }

  /** Software enabled (SVR bit 8) and globally enabled: the APIC accepts fixed interrupts. */
  get softwareEnabled(): boolean {
    return this.enabled && (this.svr & 0x100) !== 0;
  }

  /** The APIC ID as the bus matches it (8-bit xAPIC ID, or the 32-bit x2APIC ID). */
  get apicId(): number {
    return this.x2apic ? this.initialId : this.id;
  }

  /** Guest-physical base of the xAPIC page. */
  get mmioBase(): number {
    return ((this.baseLo & 0xfffff000) >>> 0) + (this.baseHi >>> 0) * 0x1_0000_0000;
  }

  /** Whether an MMIO access at `gpa` is this APIC's (xAPIC mode only: in x2APIC or disabled it is not there). */
  claimsMmio(gpa: number): boolean {
    if (!this.enabled || this.x2apic) return false;
    const base = this.mmioBase;
    return gpa >= base && gpa < base + APIC_PAGE_SIZE;
  }

  private x2apicLdr(): number {
    const id = this.initialId;
    return (((id >>> 4) << 16) | (1 << (id & 15))) >>> 0;
  }

  private get tpr(): number {
    const hook = this.cr8Hook;
    if (hook !== null) {
      const c = hook.cr8 & 15;
      if (c !== this.tprHigh) {
        this.tprHigh = c;
        this.tprLow = 0;
      }
    }
    return (this.tprHigh << 4) | this.tprLow;
  }

  private setTpr(v: number): void {
    this.tprHigh = (v >>> 4) & 15;
    this.tprLow = v & 15;
    if (this.cr8Hook !== null) this.cr8Hook.cr8 = this.tprHigh;
  }

  /** Processor priority (SDM 11.8.3.1). */
  get ppr(): number {
    const tpr = this.tpr;
    const isrv = highestBit(this.isr);
    const isrClass = isrv < 0 ? 0 : isrv & 0xf0;
    return (tpr & 0xf0) >= isrClass ? tpr : isrClass;
  }

  /** Arbitration priority (SDM 11.8.3.1 / 11.6.2.4; P6 family definition). */
  private get apr(): number {
    const tpr = this.tpr;
    const irrv = Math.max(0, highestBit(this.irr));
    const isrv = Math.max(0, highestBit(this.isr));
    if ((tpr & 0xf0) >= (irrv & 0xf0) && (tpr & 0xf0) > (isrv & 0xf0)) return tpr;
    return Math.max(tpr & 0xf0, isrv & 0xf0, irrv & 0xf0);
  }

  private error(bits: number): void {
    this.esrPending |= bits;
    const lvt = this.lvt[Lvt.Error]!;
    if (!(lvt & LVT_MASKED)) this.accept(lvt & 0xff, false, false);
  }

  // ------------------------------------------------------------------ acceptance and the processor side

  /**
   * A fixed interrupt for this APIC (I/O APIC message, IPI, LVT, SynIC, synthetic timers). Vectors 0-15
   * are illegal: the receive-illegal-vector error is logged instead (SDM 11.5.3). Ignored while the APIC
   * is disabled (SDM 11.4.7.2). `autoEoi` is for SynIC SINTs with AutoEOI (TLFS 11.8): the vector is
   * retired as it is acknowledged, so it never enters ISR and the guest writes no EOI for it.
   */
  acceptFixed(vector: number, levelTriggered: boolean, autoEoi = false): void {
    this.accept(vector, levelTriggered, true);
    if (testBit(this.irr, vector & 0xff)) setBit(this.autoEoi, vector & 0xff, autoEoi);
  }

  /** `signalError` false: the error LVT's own illegal vector is logged without another error interrupt. */
  private accept(vector: number, levelTriggered: boolean, signalError: boolean): void {
    if (!this.softwareEnabled) return;
    vector &= 0xff;
    if (vector < 16) {
      if (signalError) this.error(ApicError.ReceiveIllegalVector);
      else this.esrPending |= ApicError.ReceiveIllegalVector;
      return;
    }
    setBit(this.irr, vector, true);
    setBit(this.tmr, vector, levelTriggered);
    this.accepted++;
  }

  private extIntPassThrough(): boolean {
    if (this.extInt === null) return false;
    if (!this.enabled || this.extIntRequested) return true;
    const lint0 = this.lvt[Lvt.Lint0]!;
    return !(lint0 & LVT_MASKED) && ((lint0 >>> 8) & 7) === ApicDelivery.ExtInt;
  }

  /** The highest IRR vector whose class is above PPR, or -1. */
  private deliverable(): number {
    const v = highestBit(this.irr);
    if (v < 0 || !this.softwareEnabled) return -1;
    return (v & 0xf0) > (this.ppr & 0xf0) ? v : -1;
  }

  hasInterrupt(): boolean {
    if (this.extIntPassThrough() && this.extInt!.hasInterrupt()) return true;
    return this.deliverable() >= 0;
  }

  /** INTA: an ExtINT vector from the PIC, else IRR -> ISR of the highest deliverable vector, else spurious. */
  acknowledge(): number {
    if (this.extIntPassThrough() && this.extInt!.hasInterrupt()) {
      this.extIntRequested = false;
      return this.extInt!.acknowledge() & 0xff;
    }
    const v = this.deliverable();
    if (v < 0) return this.svr & 0xff;
    setBit(this.irr, v, false);
    if (testBit(this.autoEoi, v)) {
      setBit(this.autoEoi, v, false);
      if (testBit(this.tmr, v)) this.onEoi(v);
    } else setBit(this.isr, v, true);
    return v;
  }

  /** EOI: retires the highest in-service vector; a level-triggered one is broadcast to the I/O APIC. */
  eoi(): void {
    const v = highestBit(this.isr);
    if (v < 0) return;
    setBit(this.isr, v, false);
    if (testBit(this.tmr, v)) this.onEoi(v);
  }

  /** A local interrupt pin (LINT0/LINT1) edge, delivered as its LVT says. */
  lint(pin: 0 | 1): void {
    this.deliverLvt(pin === 0 ? Lvt.Lint0 : Lvt.Lint1);
  }

  private deliverLvt(which: Lvt): void {
    if (!this.enabled) {
      // Globally disabled: LINT0 is INTR (handled through extInt) and LINT1 is the NMI pin.
      if (which === Lvt.Lint1) this.raiseNmi();
      return;
    }
    const lvt = this.lvt[which]!;
    if (lvt & LVT_MASKED) return;
    const mode = which === Lvt.Timer || which === Lvt.Error ? ApicDelivery.Fixed : (lvt >>> 8) & 7;
    const level = which === Lvt.Lint0 && (lvt & (1 << 15)) !== 0;
    this.receive(mode, lvt & 0xff, level);
  }

  /** A message that reached this APIC (after destination matching). */
  receive(mode: number, vector: number, levelTriggered: boolean): void {
    switch (mode) {
      case ApicDelivery.Fixed:
      case ApicDelivery.LowestPriority:
        this.acceptFixed(vector, levelTriggered);
        break;
      case ApicDelivery.Nmi:
        this.raiseNmi();
        break;
      case ApicDelivery.Init:
        this.init();
        this.bus.onInit(this.vpIndex);
        break;
      case ApicDelivery.Startup:
        this.bus.onStartup(this.vpIndex, vector & 0xff);
        break;
      case ApicDelivery.ExtInt:
        this.extIntRequested = true;
        break;
      default:
        // SMI and reserved modes: no SMM in this machine.
        break;
    }
  }

  // ------------------------------------------------------------------ timer

  /** The LVT timer mode; the reserved encoding 11b counts as one-shot. */
  private get timerMode(): number {
    const m = (this.lvt[Lvt.Timer]! >>> LVT_TIMER_MODE_SHIFT) & 3;
    return m === 3 ? TIMER_ONESHOT : m;
  }

  /** Timer counts in `ns` nanoseconds at the current divisor. */
  private countsIn(ns: number): number {
    if (!(ns > 0)) return 0;
    if (ns > Number.MAX_SAFE_INTEGER) ns = Number.MAX_SAFE_INTEGER; // a hostile or absurd time stays finite
    const big = (BigInt(Math.floor(ns)) * BigInt(this.timerHz)) / (BIG_NS * BigInt(this.divisor));
    return Number(big);
  }

  /** The first nanosecond by which `counts` counts have elapsed (inverse of countsIn). */
  private nsForCounts(counts: number): number {
    if (!(counts > 0)) return 0;
    const num = BigInt(Math.ceil(counts)) * BIG_NS * BigInt(this.divisor);
    const den = BigInt(this.timerHz);
    return Number((num + den - 1n) / den);
  }

  private elapsedCounts(now: number): number {
    return this.timerOffset + this.countsIn(now - this.timerBaseNs);
  }

  private currentCount(): number {
    const n = this.initialCount;
    if (n === 0 || this.timerAtZero || this.timerMode === TIMER_TSC_DEADLINE) return 0;
    const e = this.elapsedCounts(this.clock.nowNs());
    if (this.timerMode === TIMER_PERIODIC) return n - (e % n);
    return e >= n ? 0 : n - e;
  }

  private startTimer(count: number): void {
    this.initialCount = count >>> 0;
    this.timerBaseNs = this.clock.nowNs();
    this.timerOffset = 0;
    this.timerFired = 0;
    this.timerAtZero = false;
    this.rearm();
  }

  /** Recomputes the next deadline from the timer state. */
  private rearm(): void {
    let d = Number.POSITIVE_INFINITY;
    const mode = this.timerMode;
    if (mode === TIMER_TSC_DEADLINE) {
      if (this.tscDeadline !== 0) d = this.tscDeadlineNs;
    } else if (
      this.initialCount !== 0 &&
      !this.timerAtZero &&
      !(mode === TIMER_ONESHOT && this.timerFired > 0)
    ) {
      const target = (this.timerFired + 1) * this.initialCount;
      d = this.timerBaseNs + this.nsForCounts(target - this.timerOffset);
    }
    this.deadlineNs = d;
  }

  /** The earliest time `tick` has timer work to do; Infinity when the timer is idle. */
  nextDeadlineNs(): number {
    return this.deadlineNs;
  }

  /** Signals timer expirations up to `nowNs`; periods missed between two ticks coalesce into one interrupt. */
  tick(nowNs: number): void {
    if (!(nowNs >= this.deadlineNs) || this.deadlineNs === Number.POSITIVE_INFINITY) return;
    const mode = this.timerMode;
    if (mode === TIMER_TSC_DEADLINE) {
      this.tscDeadline = 0;
      this.tscDeadlineNs = Number.POSITIVE_INFINITY;
      this.deliverLvt(Lvt.Timer);
    } else if (this.initialCount !== 0) {
      const e = this.elapsedCounts(nowNs);
      const n = this.initialCount;
      if (mode === TIMER_PERIODIC) {
        const periods = Math.floor(e / n);
        if (periods > this.timerFired) {
          this.timerFired = periods;
          this.deliverLvt(Lvt.Timer);
        }
      } else if (e >= n && this.timerFired === 0) {
        this.timerFired = 1;
        this.deliverLvt(Lvt.Timer);
      }
    }
    this.rearm();
  }

  private writeDcr(v: number): void {
    const now = this.clock.nowNs();
    // Rebase so counts already elapsed stay elapsed under the new divisor.
    this.timerOffset = this.elapsedCounts(now);
    this.timerBaseNs = now;
    this.dcr = v & 0xb;
    const code = (this.dcr & 3) | ((this.dcr >>> 1) & 4);
    this.divisor = code === 7 ? 1 : 2 << code;
    this.rearm();
  }

  private writeLvtTimer(v: number): void {
    const now = this.clock.nowNs();
    // An expiry already due is signalled under the mode and vector it was armed with.
    this.tick(now);
    const oldMode = this.timerMode;
    this.writeLvt(Lvt.Timer, v);
    const mode = this.timerMode;
    if ((oldMode === TIMER_TSC_DEADLINE) !== (mode === TIMER_TSC_DEADLINE)) {
      // Switching to or from TSC-deadline mode disarms the timer (SDM 11.5.4.1).
      this.initialCount = 0;
      this.timerAtZero = false;
      this.tscDeadline = 0;
      this.tscDeadlineNs = Number.POSITIVE_INFINITY;
    } else if (oldMode !== mode && this.initialCount !== 0 && !this.timerAtZero) {
      // Between one-shot and periodic, a mode change neither starts nor restarts the count-down (SDM
      // 11.5.4): the current count goes on from where it is. A one-shot count already at zero stays there.
      const n = this.initialCount;
      const e = this.elapsedCounts(now);
      if (oldMode === TIMER_ONESHOT) {
        if (e >= n) this.timerAtZero = true;
      } else {
        // Periodic -> one-shot: what is left of the current period counts down, then the count stops.
        this.timerOffset -= Math.floor(e / n) * n;
        this.timerFired = 0;
      }
    }
    this.rearm();
  }

  private writeTscDeadline(lo: number, hi: number): void {
    if (this.timerMode !== TIMER_TSC_DEADLINE) return; // ignored in other modes (SDM 11.5.4.1)
    const target = (hi >>> 0) * 0x1_0000_0000 + (lo >>> 0);
    this.tscDeadline = target;
    if (target === 0) {
      this.tscDeadlineNs = Number.POSITIVE_INFINITY;
    } else {
      const now = this.clock.nowNs();
      const tsc = this.readTsc !== null ? this.readTsc() : 0;
      const hz = this.tscHz > 0 ? this.tscHz : 1e9;
      this.tscDeadlineNs = target <= tsc ? now : now + Math.ceil(((target - tsc) / hz) * 1e9);
    }
    this.rearm();
    if (this.deadlineNs <= this.clock.nowNs()) this.tick(this.clock.nowNs());
  }

  // ------------------------------------------------------------------ registers (shared by MMIO and MSRs)

  private writeLvt(which: Lvt, v: number): void {
    let value = v & LVT_WRITABLE[which]!;
    if (!(this.svr & 0x100)) value |= LVT_MASKED;
    this.lvt[which] = value;
  }

  private writeSvr(v: number): void {
    this.svr = v & 0x1ff;
    if (!(this.svr & 0x100))
      for (let i = 0; i < this.lvt.length; i++) this.lvt[i] = this.lvt[i]! | LVT_MASKED;
  }

  private writeEsr(): void {
    this.esrVisible = this.esrPending;
    this.esrPending = 0;
  }

  /** Sends the IPI in ICR (xAPIC: written low dword; x2APIC: one 64-bit write). */
  private sendIpi(): void {
    const lo = this.icrLo;
    const mode = (lo >>> 8) & 7;
    const vector = lo & 0xff;
    if ((mode === ApicDelivery.Fixed || mode === ApicDelivery.LowestPriority) && vector < 16) {
      this.error(ApicError.SendIllegalVector);
      return;
    }
    // INIT level de-assert (level 0, trigger level) only resynchronises arbitration IDs.
    if (mode === ApicDelivery.Init && !(lo & (1 << 14)) && lo & (1 << 15)) return;
    const destination = this.x2apic ? this.icrHi >>> 0 : this.icrHi >>> 24;
    this.bus.sendIpi(this, {
      destination,
      logicalDestination: (lo & (1 << 11)) !== 0,
      vector,
      deliveryMode: mode,
      levelTriggered: (lo & (1 << 15)) !== 0,
      level: (lo & (1 << 14)) !== 0,
      shorthand: (lo >>> 18) & 3,
      x2apicFormat: this.x2apic,
    });
  }

  private readBank(bank: Uint32Array, index: number): number {
    return bank[index]! >>> 0;
  }

  /** Register read by xAPIC offset index (offset >> 4); undefined for a register that does not exist. */
  private readReg(reg: number): number | undefined {
    switch (reg) {
      case 0x02:
        return this.x2apic ? this.initialId : (this.id << 24) >>> 0;
      case 0x03:
        return (APIC_VERSION | ((this.hasCmci ? 6 : 5) << 16)) >>> 0;
      case 0x08:
        return this.tpr;
      case 0x09:
        return this.x2apic ? undefined : this.apr;
      case 0x0a:
        return this.ppr;
      case 0x0b:
        return this.x2apic ? undefined : 0; // EOI is write-only (reads 0 in xAPIC)
      case 0x0d:
        return this.ldr >>> 0;
      case 0x0e:
        return this.x2apic ? undefined : this.dfr >>> 0;
      case 0x0f:
        return this.svr;
      case 0x28:
        return this.esrVisible;
      case 0x2f:
        return this.hasCmci ? this.lvt[Lvt.Cmci]! : undefined;
      case 0x30:
        return this.icrLo & ~(1 << 12); // delivery status: always idle
      case 0x31:
        return this.x2apic ? undefined : this.icrHi >>> 0;
      case 0x32:
      case 0x33:
      case 0x34:
      case 0x35:
      case 0x36:
      case 0x37:
        return this.lvt[reg - 0x32 + Lvt.Timer]!;
      case 0x38:
        return this.initialCount;
      case 0x39:
        return this.currentCount();
      case 0x3e:
        return this.dcr;
      default:
        if (reg >= 0x10 && reg < 0x18) return this.readBank(this.isr, reg - 0x10);
        if (reg >= 0x18 && reg < 0x20) return this.readBank(this.tmr, reg - 0x18);
        if (reg >= 0x20 && reg < 0x28) return this.readBank(this.irr, reg - 0x20);
        return undefined;
    }
  }

  /** Register write by offset index; returns false for a register that cannot be written. */
  private writeReg(reg: number, v: number): boolean {
    switch (reg) {
      case 0x02:
        if (this.x2apic) return false;
        this.id = v >>> 24;
        return true;
      case 0x08:
        this.setTpr(v & 0xff);
        return true;
      case 0x0b:
        this.eoi();
        return true;
      case 0x0d:
        if (this.x2apic) return false;
        this.ldr = v & 0xff000000;
        return true;
      case 0x0e:
        if (this.x2apic) return false;
        this.dfr = (v | 0x0fffffff) >>> 0;
        return true;
      case 0x0f:
        this.writeSvr(v);
        return true;
      case 0x28:
        this.writeEsr();
        return true;
      case 0x2f:
        if (!this.hasCmci) return false;
        this.writeLvt(Lvt.Cmci, v);
        return true;
      case 0x30:
        this.icrLo = v & 0x000ccfff;
        if (!this.x2apic) this.sendIpi();
        return true;
      case 0x31:
        if (this.x2apic) return false;
        this.icrHi = v & 0xff000000;
        return true;
      case 0x32:
        this.writeLvtTimer(v);
        return true;
      case 0x33:
      case 0x34:
      case 0x35:
      case 0x36:
      case 0x37:
        this.writeLvt(reg - 0x32 + Lvt.Timer, v);
        return true;
      case 0x38:
        if (this.timerMode !== TIMER_TSC_DEADLINE) this.startTimer(v);
        return true;
      case 0x3e:
        this.writeDcr(v);
        return true;
      default:
        return false;
    }
  }

  // ------------------------------------------------------------------ xAPIC MMIO

  /** A read at `offset` within the xAPIC page (sizes 1, 2, 4, 8; an 8-byte read's high half is 0). */
  readMmio(offset: number, size: number): number {
    const reg = (offset >>> 4) & 0xff;
    const within = offset & 15;
    const value = this.readReg(reg);
    if (value === undefined) {
      this.error(ApicError.IllegalRegisterAddress);
      return 0;
    }
    if (within >= 4) return 0;
    const shifted = value >>> (within * 8);
    const bytes = Math.min(size, 4 - within);
    return bytes >= 4 ? shifted >>> 0 : shifted & ((1 << (bytes * 8)) - 1);
  }

  /** A write at `offset` within the xAPIC page; only aligned 32-bit (or the low half of 64-bit) stores act. */
  writeMmio(offset: number, size: number, value: number): void {
    if ((offset & 15) !== 0 || (size !== 4 && size !== 8)) return;
    const reg = (offset >>> 4) & 0xff;
    if (this.readReg(reg) === undefined) {
      this.error(ApicError.IllegalRegisterAddress);
      return;
    }
    this.writeReg(reg, value >>> 0);
  }

  // ------------------------------------------------------------------ MSRs

  /** Whether `msr` belongs to the local APIC (the caller routes these here). */
  static ownsMsr(msr: number): boolean {
    return (
      msr === MSR_IA32_APIC_BASE ||
      msr === MSR_IA32_TSC_DEADLINE ||
      (msr >= MSR_X2APIC_FIRST && msr <= MSR_X2APIC_LAST)
    );
  }

  readMsr(msr: number): MsrResult {
    if (msr === MSR_IA32_APIC_BASE) return { ok: true, lo: this.baseLo >>> 0, hi: this.baseHi >>> 0 };
    if (msr === MSR_IA32_TSC_DEADLINE) {
      const t = this.timerMode === TIMER_TSC_DEADLINE ? this.tscDeadline : 0;
      return { ok: true, lo: (t % 0x1_0000_0000) >>> 0, hi: Math.floor(t / 0x1_0000_0000) >>> 0 };
    }
    if (msr < MSR_X2APIC_FIRST || msr > MSR_X2APIC_LAST) return { ok: false, reason: "not an APIC MSR" };
    if (!this.x2apic) return { ok: false, reason: "x2APIC MSR outside x2APIC mode" };
    const reg = msr - MSR_X2APIC_FIRST;
    if (reg === 0x0b || reg === 0x3f) return { ok: false, reason: "write-only x2APIC register" };
    if (reg === 0x30) return { ok: true, lo: this.icrLo & ~(1 << 12), hi: this.icrHi >>> 0 };
    const value = this.readReg(reg);
    if (value === undefined) return { ok: false, reason: "reserved x2APIC register" };
    return { ok: true, lo: value >>> 0, hi: 0 };
  }

  writeMsr(msr: number, lo: number, hi: number): MsrResult {
    if (msr === MSR_IA32_APIC_BASE) return this.writeBase(lo >>> 0, hi >>> 0);
    if (msr === MSR_IA32_TSC_DEADLINE) {
      this.writeTscDeadline(lo, hi);
      return { ok: true, lo: 0, hi: 0 };
    }
    if (msr < MSR_X2APIC_FIRST || msr > MSR_X2APIC_LAST) return { ok: false, reason: "not an APIC MSR" };
    if (!this.x2apic) return { ok: false, reason: "x2APIC MSR outside x2APIC mode" };
    const reg = msr - MSR_X2APIC_FIRST;
    const v = lo >>> 0;
    if (reg === 0x30) {
      this.icrLo = v & 0x000ccfff;
      this.icrHi = hi >>> 0;
      this.sendIpi();
      return { ok: true, lo: 0, hi: 0 };
    }
    if (hi !== 0) return { ok: false, reason: "reserved bits 63:32 set" };
    switch (reg) {
      case 0x0b:
        if (v !== 0) return { ok: false, reason: "non-zero write to x2APIC EOI" };
        break;
      case 0x28:
        if (v !== 0) return { ok: false, reason: "non-zero write to x2APIC ESR" };
        break;
      case 0x3f:
        if (v & 0xffffff00) return { ok: false, reason: "reserved bits in SELF IPI" };
        this.acceptFixedChecked(v & 0xff);
        return { ok: true, lo: 0, hi: 0 };
      default:
        break;
    }
    if (!this.writeReg(reg, v)) return { ok: false, reason: "read-only or reserved x2APIC register" };
    return { ok: true, lo: 0, hi: 0 };
  }

  /** A self IPI: an illegal vector is a send error, as from the ICR. */
  private acceptFixedChecked(vector: number): void {
    if (vector < 16) this.error(ApicError.SendIllegalVector);
    else this.acceptFixed(vector, false);
  }

  /** IA32_APIC_BASE write with the transitions of SDM 11.12.5 (figure 11-27). */
  private writeBase(lo: number, hi: number): MsrResult {
    if (lo & 0x2ff || hi & ~this.baseMask) return { ok: false, reason: "reserved bits in IA32_APIC_BASE" };
    const en = (lo & BASE_EN) !== 0;
    const extd = (lo & BASE_EXTD) !== 0;
    if (extd && !en) return { ok: false, reason: "x2APIC enabled with the APIC disabled (invalid state)" };
    const wasEn = this.enabled;
    const wasX2 = this.x2apic;
    if (wasX2 && en && !extd) return { ok: false, reason: "x2APIC to xAPIC without disabling first" };
    if (!wasEn && extd) return { ok: false, reason: "disabled to x2APIC without enabling xAPIC first" };
    this.baseLo = (lo & 0xfffff000) | (lo & (BASE_EN | BASE_EXTD)) | (this.baseLo & BASE_BSP) | 0;
    this.baseHi = hi | 0;
    if (wasEn && !en)
      this.powerUp(); // a globally disabled APIC returns to its power-up state
    else if (!wasX2 && extd) {
      // xAPIC -> x2APIC: the x2APIC ID is the initial APIC ID and the logical ID is derived from it.
      this.ldr = this.x2apicLdr();
    }
    return { ok: true, lo: 0, hi: 0 };
  }

  // ------------------------------------------------------------------ bus matching

  /** Whether a message addressed to `destination` (physical or logical) selects this APIC (SDM 11.6.2). */
  matches(destination: number, logical: boolean, x2apicFormat: boolean): boolean {
    if (!this.enabled) return false;
    const broadcast = x2apicFormat ? 0xffffffff : 0xff;
    if (destination >>> 0 === broadcast) return true;
    if (!logical) return destination >>> 0 === this.apicId;
    if (this.x2apic) {
      // Cluster in bits 31:16, member bitmap in 15:0.
      return destination >>> 16 === this.ldr >>> 16 && (destination & this.ldr & 0xffff) !== 0;
    }
    const ldr = this.ldr >>> 24;
    const d = destination & 0xff;
    if (this.dfr >>> 28 === 0xf) return (ldr & d) !== 0; // flat
    return d >>> 4 === ldr >>> 4 && (d & ldr & 0xf) !== 0; // cluster
  }

  /** Diagnostics: the state in one line per register group. */
  inspect(): string {
    const hex = (v: number) => (v >>> 0).toString(16).padStart(8, "0");
    const bank = (b: Uint32Array) => Array.from(b, hex).reverse().join("");
    const mode = !this.enabled ? "disabled" : this.x2apic ? "x2APIC" : "xAPIC";
    return [
      `local APIC ${this.vpIndex}: ${mode} base=${hex(this.baseHi)}${hex(this.baseLo)} id=${this.apicId} ` +
        `tpr=${this.tpr.toString(16)} ppr=${this.ppr.toString(16)} svr=${this.svr.toString(16)} ` +
        `ldr=${hex(this.ldr)} dfr=${hex(this.dfr)} esr=${this.esrVisible.toString(16)}`,
      `  irr=${bank(this.irr)}`,
      `  isr=${bank(this.isr)}`,
      `  tmr=${bank(this.tmr)}`,
      `  lvt cmci/timer/thermal/perf/lint0/lint1/error=${Array.from(this.lvt, hex).join("/")} ` +
        `timer initial=${this.initialCount} current=${this.currentCount()} dcr=${this.dcr.toString(16)} ` +
        `tscDeadline=${this.tscDeadline} next=${this.deadlineNs}`,
    ].join("\n");
  }
}

/** An IPI as the ICR describes it. */
export interface ApicIpi extends ApicMessage {
  shorthand: number;
  /** 32-bit x2APIC destination (broadcast 0xFFFFFFFF) rather than 8-bit xAPIC (broadcast 0xFF). */
  x2apicFormat: boolean;
}

export interface ApicBusOptions {
  /** An INIT reached VP `vpIndex` (its APIC has already been reset). */
  onInit?: (vpIndex: number) => void;
  /** A start-up IPI reached VP `vpIndex` with vector (the start page number). */
  onStartup?: (vpIndex: number, vector: number) => void;
}

/**
 * The APIC bus of one partition: every VP's local APIC. It is the chipset I/O APIC's message sink
 * (`deliver`) and carries IPIs between APICs.
 */
export class ApicBus implements ApicMessageSink {
  readonly apics: LocalApic[] = [];
  private readonly initCb: (vp: number) => void;
  private readonly startupCb: (vp: number, vector: number) => void;

  constructor(options: ApicBusOptions = {}) {
    this.initCb = options.onInit ?? (() => undefined);
    this.startupCb = options.onStartup ?? (() => undefined);
  }

  attach(apic: LocalApic): void {
    if (!this.apics.includes(apic)) this.apics.push(apic);
  }

  onInit(vp: number): void {
    this.initCb(vp);
  }

  onStartup(vp: number, vector: number): void {
    this.startupCb(vp, vector);
  }

  /** An I/O APIC message (8-bit xAPIC-format destination). */
  deliver(message: ApicMessage): void {
    const targets = this.apics.filter((a) =>
      a.matches(message.destination, message.logicalDestination, false),
    );
    this.dispatch(targets, message);
  }

  /** An IPI from `from`'s ICR (or its x2APIC ICR write). */
  sendIpi(from: LocalApic, ipi: ApicIpi): void {
    let targets: LocalApic[];
    switch (ipi.shorthand) {
      case ApicShorthand.Self:
        targets = [from];
        break;
      case ApicShorthand.AllIncludingSelf:
        targets = this.apics.filter((a) => a.enabled);
        break;
      case ApicShorthand.AllExcludingSelf:
        targets = this.apics.filter((a) => a !== from && a.enabled);
        break;
      default:
        targets = this.apics.filter((a) =>
          a.matches(ipi.destination, ipi.logicalDestination, ipi.x2apicFormat),
        );
    }
    this.dispatch(targets, ipi);
  }

  private dispatch(targets: LocalApic[], m: ApicMessage): void {
    if (targets.length === 0) return;
    if (m.deliveryMode === ApicDelivery.LowestPriority) {
      let best: LocalApic | null = null;
      for (const a of targets) {
        if (!a.softwareEnabled) continue;
        if (best === null || (a.ppr & 0xf0) < (best.ppr & 0xf0)) best = a;
      }
      if (best !== null) best.receive(ApicDelivery.Fixed, m.vector, m.levelTriggered);
      return;
    }
    for (const a of targets) a.receive(m.deliveryMode, m.vector, m.levelTriggered);
  }
}
