// Owns: one virtual processor and all of its wiring, built and connected once, here: the emulated processor
// (on the partition clock, its TSC aligned with the partition's), its exit controls (CPUID exits to the
// hypervisor, HLT idles in the processor, the partition's shared I/O bitmap), its device intercepts (ports to
// the partition's intercept table; MMIO to its own local APIC page first, then the table), its local APIC
// (the processor's interrupt source, its CR8, TSC view, NMI line and the partition's APIC bus, with the
// platform's 8259 on the BSP's LINT0 and EOI broadcasts to the platform), the CPUID the APIC makes true, its
// SynIC and four synthetic timers (whose interrupts go to the APIC), and its per-VP hypervisor state. Adding a
// processor to a partition is constructing one of these (`Partition.addVp`).
// Must not: know the chipset or the worker (the platform's 8259 and EOI sink arrive through
// `PlatformInterrupts`, set by the root), or handle exits (the partition does).
// Spec: Intel SDM Vol. 3A 8.4 (BSP and APs), 11.4 (local APIC, IA32_APIC_BASE BSP flag), 11.4.7.1 (power-up
// state), 17.17 (TSC); TLFS inter-partition-communication.md (SynIC per VP), timers.md (synthetic timers).

import type { InterruptSource } from "../contracts/platform.js";
import type { GuestMemory } from "../memory/guest-memory.js";
import { Cpu } from "../x86/cpu.js";
import { ExitReason, type MmioIntercept, type PortIntercept } from "../x86/vm-exit.js";
import type { InterceptTable } from "./intercepts.js";
import { type ApicBus, LocalApic } from "./local-apic.js";
import type { PartitionClock } from "./reference-time.js";
import { Synic, type VpInterruptTarget } from "./synic.js";
import { SyntheticTimers } from "./synthetic-timers.js";
import { DOUBLE_ZERO } from "../support/heap-number.js";

const TWO32 = 0x1_0000_0000;

/** How `Partition.handleExit` left an exit. */
export const enum ExitHandling {
  /** The hypervisor handled it; run the VP again. */
  Handled = 0,
  /** Not the hypervisor's: the caller handles it (HLT, triple fault, the end of a batch, access violation). */
  Forward = 1,
}

/** What the root connects for the partition's interrupt controllers (the PC chipset, in the worker). */
export interface PlatformInterrupts {
  /** The 8259 pair, on the BSP's LINT0 (ExtINT) and while its APIC is disabled. */
  extInt: InterruptSource | null;
  /** A local APIC's EOI of a level-triggered vector (the I/O APIC clears remote IRR). */
  onEoi: ((vector: number) => void) | null;
}

/** An interrupt controller standing in for the local APIC (tests' minimal controllers). */
export type VpInterruptController = VpInterruptTarget & InterruptSource;

/** What the partition gives each of its processors. */
export interface VpContext {
  memory: GuestMemory;
  clock: PartitionClock;
  tscHz: number;
  apicHz: number;
  jitThreshold: number | undefined;
  directTimers: boolean;
  apicBus: ApicBus;
  intercepts: InterceptTable;
  platform: PlatformInterrupts;
  /** Build a local APIC (default); without one the root connects a controller with `setInterruptController`. */
  localApic: boolean;
  /** Start the APIC as an MP-spec BIOS leaves it (virtual wire) instead of the power-up state. */
  virtualWire: boolean;
}

export class VirtualProcessor {
  readonly index: number;
  readonly cpu: Cpu;
  readonly synic: Synic;
  readonly timers: SyntheticTimers;
  /** This processor's local APIC (null when the partition was built without them). */
  readonly apic: LocalApic | null;
  /** Where SINTs, direct-mode timers and synthetic IPIs go: the APIC, or a controller set for tests. */
  interruptTarget: VpInterruptTarget | null = null;
  running = false;
  /** Guest run time for HV_X64_MSR_VP_RUNTIME, in ns of partition time. */
  runtimeNs = DOUBLE_ZERO;
  assistLo = 0;
  assistHi = 0;
  /** Result of the last `Partition.runVp` (preallocated). */
  readonly last = { reason: ExitReason.BudgetExhausted as ExitReason, handling: ExitHandling.Handled };

  constructor(index: number, ctx: VpContext) {
    this.index = index;
    const clock = ctx.clock;
    const cpu = new Cpu(ctx.memory, {
      tscHz: ctx.tscHz,
      clock: () => clock.nowNs(),
      ...(ctx.jitThreshold !== undefined ? { jitThreshold: ctx.jitThreshold } : {}),
      // A VM's run loop yields to the event loop between batches, so units compile in the background.
      backgroundCompile: true,
    });
    this.cpu = cpu;
    this.alignTsc(ctx);
    cpu.cpuid.apicId = index;
    // CPUID exits to the hypervisor (its leaves, the hypervisor bit); HLT idles inside the processor, which
    // reports Hlt from run() until an interrupt arrives; ports exit where the intercept table claims them.
    cpu.controls.cpuidExiting = true;
    cpu.controls.hltExiting = false;
    cpu.controls.ioBitmap = ctx.intercepts.ioBitmap;
    this.synic = new Synic(ctx.memory);
    this.timers = new SyntheticTimers(this.synic, ctx.directTimers);
    this.apic = ctx.localApic ? this.buildApic(ctx) : null;
    cpu.ports = this.portIntercept(ctx.intercepts);
    cpu.mmio = this.mmioIntercept(ctx.intercepts);
    if (this.apic !== null) {
      this.setInterruptController(this.apic);
      // CPUID tells the truth about the platform: an xAPIC/x2APIC with a TSC-deadline timer, and (leaf 0x15,
      // when the TSC runs at a whole multiple of it) the crystal that drives the APIC timer, so the guest knows
      // the TSC rate without calibrating.
      cpu.cpuid.enable("APIC");
      cpu.cpuid.enable("X2APIC");
      cpu.cpuid.enable("TSC_DEADLINE");
      const ratio = ctx.tscHz / ctx.apicHz;
      if (Number.isInteger(ratio) && ratio <= 0xffffffff && ctx.apicHz <= 0xffffffff)
        cpu.cpuid.setTscFrequency(ctx.tscHz, ctx.apicHz);
    }
  }

  /**
   * A processor built after the partition clock started begins with its TSC at the partition's, as an AP's
   * TSC matches the BSP's (the processor's own TSC counts from its construction).
   */
  private alignTsc(ctx: VpContext): void {
    const now = ctx.clock.nowNs();
    if (now <= 0) return;
    const tsc = Math.floor((now * ctx.tscHz) / 1e9);
    this.cpu.writeTsc((tsc % TWO32) | 0, Math.floor(tsc / TWO32) | 0);
  }

  private buildApic(ctx: VpContext): LocalApic {
    const cpu = this.cpu;
    const platform = ctx.platform;
    const bsp = this.index === 0;
    return new LocalApic({
      apicId: this.index,
      vpIndex: this.index,
      bsp,
      clock: ctx.clock,
      timerHz: ctx.apicHz,
      cr8: cpu,
      // The full 64-bit TSC (readTsc returns the low half and leaves the high half in `hi`).
      readTsc: () => {
        const lo = cpu.readTsc();
        return (cpu.hi >>> 0) * TWO32 + (lo >>> 0);
      },
      tscHz: cpu.tscHz,
      // The 8259 is wired to the BSP's LINT0; the root connects it later (connectPlatform).
      ...(bsp
        ? {
            extInt: {
              hasInterrupt: () => platform.extInt?.hasInterrupt() ?? false,
              acknowledge: () => platform.extInt?.acknowledge() ?? 0,
            },
          }
        : {}),
      onEoi: (vector) => platform.onEoi?.(vector),
      raiseNmi: () => cpu.raiseNmi(),
      bus: ctx.apicBus,
      virtualWire: ctx.virtualWire,
    });
  }

  private portIntercept(table: InterceptTable): PortIntercept {
    const vp = this.index;
    return {
      read: (port, size) => table.portHandler(port)?.read(vp, port, size) ?? -1,
      write: (port, size, value) => table.portHandler(port)?.write(vp, port, size, value),
    };
  }

  /**
   * Accesses outside RAM: this VP's xAPIC page when the APIC claims the address (it follows IA32_APIC_BASE
   * and vanishes in x2APIC mode, so it is asked, not mapped; of an 8-byte access the low dword acts, SDM
   * 11.4.1: the registers are 32 bits), else the root's registered ranges, else nothing (all ones).
   */
  private mmioIntercept(table: InterceptTable): MmioIntercept {
    const vp = this.index;
    const apic = this.apic;
    const m: MmioIntercept = {
      hi: 0,
      read: (gpa, size) => {
        if (apic !== null && apic.claimsMmio(gpa)) {
          m.hi = 0;
          return apic.readMmio(gpa - apic.mmioBase, size === 8 ? 4 : size);
        }
        const h = table.mmioHandler(gpa);
        if (h === null) {
          m.hi = -1;
          return -1;
        }
        const v = h.read(vp, gpa, size);
        m.hi = h.hi;
        return v;
      },
      write: (gpa, size, lo, hi) => {
        if (apic !== null && apic.claimsMmio(gpa))
          apic.writeMmio(gpa - apic.mmioBase, size === 8 ? 4 : size, lo);
        else table.mmioHandler(gpa)?.write(vp, gpa, size, lo, hi);
      },
    };
    return m;
  }

  /**
   * Connects `controller` as this VP's interrupt controller: the processor's interrupt source and the target
   * of its SINTs, direct-mode synthetic timers and synthetic IPIs (the local APIC unless a test replaces it).
   */
  setInterruptController(controller: VpInterruptController | null): void {
    this.cpu.interrupts = controller;
    this.interruptTarget = controller;
    this.synic.target = controller;
    this.timers.target = controller;
  }

  /** Platform reset: the processor, its APIC, SynIC, timers and assist page to their reset state. */
  reset(): void {
    this.synic.reset();
    this.timers.reset();
    this.apic?.reset();
    this.assistLo = this.assistHi = 0;
    this.cpu.reset();
  }
}
