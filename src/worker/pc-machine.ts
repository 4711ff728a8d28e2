// Owns: the PC machine that boots Linux: the guest partition (the hypervisor: its RAM, one virtual processor,
// CPUID, synthetic MSRs, hypercalls, SynIC, synthetic timers, crash MSRs), the chipset (ports, MMIO, PIC, PIT,
// RTC, UARTs, ACPI PM, reset registers, i8042, I/O APIC) and the local APIC, the platform's answers to MSRs
// neither the processor nor the hypervisor owns, the Linux boot (firmware tier's prepareLinuxBoot + the 64-bit
// entry state), and the run loop: `partition.runVp` batches, the exits the hypervisor forwards, device ticks
// when a deadline has passed, HLT as a real sleep until the next deadline or host input, reset (reload and
// boot again), power-off and the guest's crash report. One virtual clock (the partition's, on the worker's
// paced source) drives the TSC, the reference counter and TSC page, the synthetic timers and every timer
// device, so the guest sees one consistent time base.
// Must not: implement devices, hypervisor registers or instruction semantics (chipset, hv and x86 do), parse
// boot images (firmware does) or touch the host terminal (the CLI feeds input through `sendInput` and takes
// output from `serial`).
// Spec: Intel SDM Vol. 3C ch. 27-28 (exit handling, as modelled by src/x86/vm-exit.ts), Vol. 4 (MSR map);
// Linux Documentation/arch/x86/boot.rst (64-bit entry); the PC/AT platform (reset via 0xCF9/i8042, ACPI S5);
// TLFS "Guest Crash Enlightenment" (the crash report stops the VM).

import type { GuestMemory } from "../memory/guest-memory.js";
import { ExitReason } from "../x86/vm-exit.js";
import { Reg, Seg, type Processor } from "../x86/processor.js";
import type { Cpu } from "../x86/cpu.js";
import { APIC_DEFAULT_TIMER_HZ, LocalApic } from "../hv/local-apic.js";
import { ExitHandling, Partition, type GuestCrashReport } from "../hv/partition.js";
import type { PartitionClock } from "../hv/reference-time.js";
import { Chipset } from "../chipset/pc-chipset.js";
import type { PacedClock } from "./paced-clock.js";
import { prepareLinuxBoot, type PreparedLinux } from "../firmware/prepare-linux.js";
import type { EntryState } from "../firmware/entry-state.js";
import { describeProcessor, formatTrace, snapshotProcessor, type TraceRecord } from "./machine.js";

const VECTOR_GP = 13;
const RFLAGS_IF = 1 << 9;
/** Instructions per run() call: a few milliseconds of guest time, so device deadlines are met closely. */
const BATCH = 50_000;
/** How long the loop computes before it lets the host's event loop run (input, signals), in ms. */
const YIELD_MS = 15;
/**
 * The largest time step taken at once to make up lag in HLT: well below Linux's stall detectors (20 s) and the
 * ACPI PM timer's wrap (4.7 s), so each step looks like a short pause to the guest.
 */
const CATCH_UP_STEP_NS = 2_000_000_000;
/** Serial lines kept for failure reports. */
const SERIAL_KEEP = 50;
const TRACE_KEEP = 50;
/** After `Kernel panic` appears, how long (virtual ns) the guest may keep printing before the stop. */
const PANIC_GRACE_NS = 300_000_000;
/**
 * The same for a guest that identified itself to the hypervisor (so it may report through the crash MSRs):
 * Linux calls the panic notifiers and the kmsg dumper only after printing the panic line, a stack trace and
 * the kernel offset at 115200 baud, which takes Debian's stock kernel well over 0.3 s.
 */
const PANIC_GRACE_REPORTING_NS = 10_000_000_000;

export type PcStopKind =
  "poweroff" | "triple-fault" | "panic" | "guest-crash" | "halted" | "instruction-limit" | "stopped";

export interface PcStop {
  kind: PcStopKind;
  message: string;
  retired: number;
  /** For "guest-crash": what the guest reported through the crash MSRs. */
  crash?: GuestCrashReport;
}

/** A device that answers MSRs beyond the processor's own (the local APIC plugs in here). */
export interface MsrHandler {
  /** Returns [lo, hi], null when the MSR is not this handler's, or "gp" when the access is refused. */
  readMsr(msr: number): [number, number] | null | "gp";
  /** Returns true when handled; throwing is not allowed (a refused value returns "gp"). */
  writeMsr(msr: number, lo: number, hi: number): boolean | "gp";
}

export interface LinuxBootImages {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  cmdline: string;
}

export interface PcMachineOptions {
  memory: GuestMemory;
  /**
   * The worker's time source (the pacing policy): the partition clock reads it, and the run loop tells it
   * when batches end and when the processor halts, resumes or may skip ahead.
   */
  clock: PacedClock;
  /** TSC rate in Hz (default 1 GHz). */
  tscHz?: number;
  /** The processor's block-translation threshold (CpuOptions.jitThreshold; negative = interpret only). */
  jitThreshold?: number;
  /** Host calendar seconds (for the RTC). */
  hostSeconds?: () => number;
  rtcOffsetSeconds?: number;
  /** Receives every byte the guest writes to COM1. */
  serial: (byte: number) => void;
  /** Called with the state before every instruction (single-steps; slow). */
  trace?: ((record: TraceRecord, line: string) => void) | undefined;
  maxInstructions?: number;
  cpus?: number;
}

function sleep(ms: number, wake: { resolve: (() => void) | null }): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      wake.resolve = null;
      resolve();
    }, ms);
    wake.resolve = () => {
      clearTimeout(t);
      wake.resolve = null;
      resolve();
    };
  });
}

export class PcMachine {
  readonly memory: GuestMemory;
  /** The hypervisor's view of this VM: one VP, the synthetic registers, and the clock everything reads. */
  readonly partition: Partition;
  /** VP 0's processor (built by the partition). */
  readonly cpu: Cpu;
  /** The pacing source under the partition clock (run-loop controls: settle, halt, resume, skip). */
  readonly pacing: PacedClock;
  /** The one time base: the partition clock (TSC, reference time, stimers, chipset, APIC timer). */
  readonly clock: PartitionClock;
  readonly chipset: Chipset;
  /** The boot processor's local APIC (the processor's interrupt source; the PIC reaches it via ExtINT). */
  readonly apic: LocalApic;
  /** Extra MSR handlers consulted in order (e.g. the local APIC). */
  readonly msrHandlers: MsrHandler[] = [];
  /** Extra deadline sources (e.g. the local APIC timer): next deadline in ns and the tick to call. */
  readonly timers: Array<{ nextDeadlineNs(): number; tick(nowNs: number): void }> = [];
  private stop: PcStop | null = null;
  private pauseGate: { promise: Promise<void>; resolve: () => void } | null = null;
  private resetPending: string | null = null;
  private images: LinuxBootImages | null = null;
  private prepared: PreparedLinux | null = null;
  private readonly serialSink: (byte: number) => void;
  private readonly serialLines: string[] = [];
  private serialLine = "";
  private panicAtNs = -1;
  private readonly traceSink: ((record: TraceRecord, line: string) => void) | undefined;
  private readonly lastTrace: string[] = [];
  private readonly maxInstructions: number;
  private readonly cpus: number;
  private readonly wake: { resolve: (() => void) | null } = { resolve: null };
  /** Resets performed so far (the guest's `reboot`). */
  resets = 0;
  /** Host milliseconds spent asleep in HLT, and how many sleeps (diagnostics for `inspect`). */
  idleMs = 0;
  idleCount = 0;

  constructor(options: PcMachineOptions) {
    this.memory = options.memory;
    this.pacing = options.clock;
    this.partition = new Partition({
      memory: this.memory,
      vpCount: 1,
      time: this.pacing,
      tscHz: options.tscHz ?? 1_000_000_000,
      ...(options.jitThreshold !== undefined ? { jitThreshold: options.jitThreshold } : {}),
      apicHz: APIC_DEFAULT_TIMER_HZ,
      onGuestCrash: (report) => this.onGuestCrash(report),
    });
    this.cpu = this.partition.vps[0]!.cpu;
    this.clock = this.partition.clock;
    // The pacing floor counts every VP's retired instructions, including the batch running now.
    this.pacing.attach(() => this.partition.retiredInstructions());
    this.traceSink = options.trace;
    this.maxInstructions = options.maxInstructions ?? Number.POSITIVE_INFINITY;
    this.cpus = options.cpus ?? 1;
    this.serialSink = options.serial;
    const above4G = Math.max(0, this.memory.size - this.memory.lowTop);
    this.chipset = new Chipset({
      clock: this.clock,
      hostSeconds: options.hostSeconds ?? (() => Date.now() / 1000),
      rtcOffsetSeconds: options.rtcOffsetSeconds ?? 0,
      com1: (byte) => this.onSerial(byte),
      onPowerOff: () => this.halt("poweroff", "the guest powered off (ACPI S5)"),
      onReset: (kind, source) => {
        this.resetPending ??= `${kind} reset through ${source}`;
      },
      memoryBelow4G: Math.min(this.memory.size, this.memory.lowTop),
      memoryAbove4G: above4G,
    });
    const cpu = this.cpu;
    this.apic = new LocalApic({
      apicId: 0,
      clock: this.clock,
      timerHz: this.partition.apicHz,
      cr8: cpu,
      // The full 64-bit TSC (readTsc returns the low half and leaves the high half in `hi`).
      readTsc: () => {
        const lo = cpu.readTsc();
        return (cpu.hi >>> 0) * 0x1_0000_0000 + (lo >>> 0);
      },
      tscHz: cpu.tscHz,
      extInt: this.chipset.interruptSource,
      onEoi: (v) => this.chipset.apicEoi(v),
      raiseNmi: () => cpu.raiseNmi(),
      // No BIOS runs before the kernel, so the machine leaves the APIC as an MP-spec BIOS does (virtual
      // wire: LINT0 ExtINT, LINT1 NMI): a kernel that never programs the APIC still gets PIC interrupts.
      virtualWire: true,
    });
    this.chipset.setApicSink(this.apic.bus);
    this.msrHandlers.push({
      readMsr: (msr) => {
        if (!LocalApic.ownsMsr(msr)) return null;
        const r = this.apic.readMsr(msr);
        return r.ok ? [r.lo, r.hi] : "gp";
      },
      writeMsr: (msr, lo, hi) => {
        if (!LocalApic.ownsMsr(msr)) return false;
        return this.apic.writeMsr(msr, lo, hi).ok ? true : "gp";
      },
    });
    this.timers.push(this.apic, this.partition);
    cpu.interrupts = this.apic;
    // SINT messages and events, direct-mode synthetic timers and synthetic IPIs arrive as fixed interrupts.
    this.partition.setInterruptTarget(0, this.apic);
    // CPUID tells the truth about the platform: an xAPIC/x2APIC with a TSC-deadline timer is attached.
    cpu.cpuid.enable("APIC");
    cpu.cpuid.enable("X2APIC");
    cpu.cpuid.enable("TSC_DEADLINE");
    cpu.cpuid.apicId = 0;
    // The APIC timer's input is the core crystal; enumerating it and the TSC rate (leaf 0x15) tells Linux
    // the exact TSC frequency instead of leaving it to calibrate against the PIT on a slow processor.
    cpu.cpuid.setTscFrequency(cpu.tscHz, this.partition.apicHz);
    // Every port exits to us; CPUID exits to the hypervisor (its leaves 0x40000000+, the hypervisor bit,
    // the rest from the processor's table as configured above); HLT idles inside the processor, which then
    // reports Hlt from run() until an interrupt arrives.
    this.cpu.controls.ioBitmap.fill(0xff);
    this.cpu.controls.cpuidExiting = true;
    this.cpu.controls.hltExiting = false;
  }

  /** Loads Linux and puts the processor at its 64-bit entry point. Kept for reboots. */
  bootLinux(images: LinuxBootImages): PreparedLinux {
    this.images = images;
    this.prepared = prepareLinuxBoot(this.memory, {
      kernel: images.kernel,
      ...(images.initrd ? { initrd: images.initrd } : {}),
      cmdline: images.cmdline,
      cpus: this.cpus,
      nx: true,
    });
    this.cpu.reset();
    applyLinuxEntryState(this.cpu, this.prepared.entry);
    return this.prepared;
  }

  /** Host input for COM1 (wakes a halted guest at once). */
  sendInput(bytes: Uint8Array): void {
    this.chipset.com1.receive(bytes);
    this.wake.resolve?.();
  }

  /** Stops the run loop from outside (signals, the terminal's quit key, the service's turn-off). */
  requestStop(message: string): void {
    this.halt("stopped", message);
    this.wake.resolve?.();
    this.pauseGate?.resolve();
  }

  /**
   * Pauses the run loop at its next batch boundary (Hyper-V's Suspend-VM): no guest instruction runs and no
   * device is ticked until `resume`; guest time keeps following the host, so the guest sees the pause as a
   * jump in time (as on Hyper-V), and its timers catch up at once.
   */
  pause(): void {
    if (this.pauseGate) return;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.pauseGate = { promise, resolve };
    this.wake.resolve?.();
  }

  resume(): void {
    const g = this.pauseGate;
    this.pauseGate = null;
    g?.resolve();
  }

  get paused(): boolean {
    return this.pauseGate !== null;
  }

  /** The last lines the guest wrote to COM1 (the partial current line last). */
  recentSerial(): string[] {
    return this.serialLine.length > 0 ? [...this.serialLines, this.serialLine] : [...this.serialLines];
  }

  private onSerial(byte: number): void {
    this.serialSink(byte);
    if (byte === 0x0a) {
      const line = this.serialLine.replace(/\r$/, "");
      this.serialLines.push(line);
      if (this.serialLines.length > SERIAL_KEEP) this.serialLines.shift();
      this.serialLine = "";
      if (this.panicAtNs < 0 && line.includes("Kernel panic")) this.panicAtNs = this.clock.nowNs();
    } else if (this.serialLine.length < 4096) {
      this.serialLine += String.fromCharCode(byte);
    }
  }

  /** The guest reported a crash through HV_X64_MSR_CRASH_CTL: the VM stops with the report. */
  private onGuestCrash(report: GuestCrashReport): void {
    this.halt("guest-crash", `guest crashed: ${crashSummary(report)}`);
    if (this.stop !== null && this.stop.kind === "guest-crash") this.stop.crash = report;
  }

  /** Runs until power-off, a fatal guest error, the instruction limit or `requestStop`. */
  async run(): Promise<PcStop> {
    const cpu = this.cpu;
    let sliceStart = performance.now();
    while (this.stop === null) {
      if (this.pauseGate !== null) {
        this.pacing.halt();
        await this.pauseGate.promise;
        this.pacing.resume();
        sliceStart = performance.now();
        continue;
      }
      const left = this.maxInstructions - cpu.retired;
      if (left <= 0) {
        this.halt("instruction-limit", `stopped after ${cpu.retired} instructions (the limit)`);
        break;
      }
      let reason: ExitReason;
      if (this.traceSink) reason = this.step();
      else {
        const r = this.partition.runVp(0, Math.min(BATCH, left));
        reason = r.reason;
        if (r.handling === ExitHandling.Handled) reason = ExitReason.BudgetExhausted;
      }
      this.pacing.settle();
      this.handle(reason);
      if (this.resetPending !== null) this.doReset();
      const now = this.clock.nowNs();
      this.tickDevices(now);
      const grace = this.partition.guestOsIdentified() ? PANIC_GRACE_REPORTING_NS : PANIC_GRACE_NS;
      if (this.panicAtNs >= 0 && now - this.panicAtNs > grace) {
        this.halt("panic", "the guest kernel panicked (`Kernel panic` on the console)");
      }
      if (this.stop !== null) break;
      if (reason === ExitReason.Hlt) {
        this.pacing.halt();
        await this.idle();
        this.pacing.resume();
        sliceStart = performance.now();
      } else if (performance.now() - sliceStart > YIELD_MS) {
        await new Promise<void>((r) => setImmediate(r));
        sliceStart = performance.now();
      }
    }
    return this.stop!;
  }

  private nextDeadline(): number {
    let d = this.chipset.nextDeadlineNs();
    for (const t of this.timers) d = Math.min(d, t.nextDeadlineNs());
    return d;
  }

  private tickDevices(now: number): void {
    if (now >= this.chipset.nextDeadlineNs()) this.chipset.tick(now);
    for (const t of this.timers) if (now >= t.nextDeadlineNs()) t.tick(now);
  }

  /** HLT: sleep for real until the next device deadline or host input; never spins. */
  private async idle(): Promise<void> {
    const cpu = this.cpu;
    if ((cpu.getRflags() & RFLAGS_IF) === 0) {
      // Only an NMI or a reset could wake it, and nothing here raises either.
      if (this.panicAtNs >= 0)
        this.halt("panic", "the guest kernel panicked (`Kernel panic` on the console)");
      else this.halt("halted", "the guest halted with interrupts disabled");
      return;
    }
    if (cpu.interrupts?.hasInterrupt()) return;
    const deadline = this.nextDeadline();
    // Behind the host (the processor computed slower than the clock's pacing floor): make the time up now,
    // to the next deadline or by one catch-up step if that is further: the guest wakes at least every step
    // and sees its timers fire in order, late by less than a step (ticks coalesce, as after a VM pause).
    const before = this.clock.nowNs();
    if (deadline > before) this.pacing.skip(Math.max(deadline - before, CATCH_UP_STEP_NS));
    const now = this.clock.nowNs();
    const waitMs = deadline === Number.POSITIVE_INFINITY ? 1000 : (deadline - now) / 1e6;
    const t0 = performance.now();
    if (waitMs > 0) await sleep(Math.min(Math.ceil(waitMs), 1000), this.wake);
    else await new Promise<void>((r) => setImmediate(r));
    this.idleMs += performance.now() - t0;
    this.idleCount++;
    this.tickDevices(this.clock.nowNs());
  }

  private step(): ExitReason {
    const cpu = this.cpu;
    const rec = snapshotProcessor(cpu);
    const line = formatTrace(rec);
    this.lastTrace.push(line);
    if (this.lastTrace.length > TRACE_KEEP) this.lastTrace.shift();
    this.traceSink!(rec, line);
    const r = this.partition.runVp(0, 1);
    return r.handling === ExitHandling.Handled ? ExitReason.BudgetExhausted : r.reason;
  }

  private handle(reason: ExitReason): void {
    const cpu = this.cpu;
    const exit = cpu.exit;
    switch (reason) {
      case ExitReason.BudgetExhausted:
      case ExitReason.InterruptWindow:
      case ExitReason.Hlt:
        return;
      case ExitReason.Io:
        if (exit.isWrite) this.chipset.ports.write(exit.port, exit.size, exit.valueLo);
        else cpu.completeIoRead(this.chipset.ports.read(exit.port, exit.size));
        return;
      case ExitReason.Mmio: {
        const apic = this.apic;
        if (apic.claimsMmio(exit.gpa)) {
          // The xAPIC page moves with IA32_APIC_BASE and vanishes in x2APIC mode, so it is asked first
          // rather than mapped; of an 8-byte access the low dword acts (SDM 11.4.1: 32-bit registers).
          const off = exit.gpa - apic.mmioBase;
          const size = exit.size === 8 ? 4 : exit.size;
          if (exit.isWrite) apic.writeMmio(off, size, exit.valueLo >>> 0);
          else cpu.completeMmioRead(apic.readMmio(off, size) >>> 0, 0);
          return;
        }
        const bus = this.chipset.mmio;
        if (exit.isWrite) bus.write(exit.gpa, exit.size, exit.valueLo >>> 0, exit.valueHi >>> 0);
        else if (exit.size === 8) {
          const q = bus.readQword(exit.gpa);
          cpu.completeMmioRead(q.lo, q.hi);
        } else cpu.completeMmioRead(bus.read(exit.gpa, exit.size), 0);
        return;
      }
      case ExitReason.Rdmsr: {
        for (const h of this.msrHandlers) {
          const v = h.readMsr(exit.msr);
          if (v === "gp") break;
          if (v !== null) {
            cpu.completeRdmsr(v[0], v[1]);
            return;
          }
        }
        // Not on this platform: #GP(0), as a real processor does for an MSR it does not implement.
        cpu.injectException(VECTOR_GP, 0);
        return;
      }
      case ExitReason.Wrmsr: {
        for (const h of this.msrHandlers) {
          const r = h.writeMsr(exit.msr, exit.valueLo, exit.valueHi);
          if (r === "gp") break;
          if (r) {
            cpu.completeWrmsr();
            return;
          }
        }
        cpu.injectException(VECTOR_GP, 0);
        return;
      }
      case ExitReason.Vmcall:
      case ExitReason.Cpuid:
        this.halt("stopped", `internal error: the hypervisor forwarded its own exit ${reason as number}`);
        return;
      case ExitReason.TripleFault:
        this.halt("triple-fault", "the guest triple-faulted (shutdown)");
        return;
      case ExitReason.AccessViolation:
        this.halt("stopped", `access to guest-physical 0x${exit.gpa.toString(16)} refused by page rights`);
        return;
      default:
        this.halt("stopped", `internal error: unknown exit reason ${reason as number}`);
    }
  }

  /** A platform reset: devices to their reset state, RAM cleared, Linux loaded again and entered. */
  private doReset(): void {
    const why = this.resetPending;
    this.resetPending = null;
    if (!this.images) {
      this.halt("stopped", `the guest asked for a ${why ?? "reset"}, but nothing is loaded to boot again`);
      return;
    }
    this.resets++;
    this.chipset.reset();
    this.apic.reset();
    // Synthetic registers (hypercall page, TSC page, SynIC, stimers, crash MSRs) back to creation values;
    // the partition clock runs on, so the TSC and the reference counter never go backwards.
    this.partition.reset();
    // Only pages ever written are touched: a large guest's untouched RAM stays uncommitted.
    this.memory.clear();
    this.panicAtNs = -1;
    this.bootLinux(this.images);
  }

  private halt(kind: PcStopKind, message: string): void {
    if (this.stop === null) this.stop = { kind, message, retired: this.cpu.retired };
  }

  /** Registers, segments, the last instructions (with --trace), and the chipset's device state. */
  inspect(): string {
    const parts = [
      describeProcessor(this.cpu),
      `idle (HLT): ${Math.round(this.idleMs)} ms in ${this.idleCount} sleeps; resets: ${this.resets}; ` +
        `clock: ${(this.clock.nowNs() / 1e9).toFixed(3)} s virtual, ${(this.pacing.lagNs() / 1e9).toFixed(3)} s ` +
        `behind the host, ${(this.pacing.caughtUpNs / 1e9).toFixed(3)} s made up in HLT`,
      this.partition.inspect(),
    ];
    if (this.lastTrace.length > 0) {
      parts.push(`state before each of the last ${this.lastTrace.length} instructions:`, ...this.lastTrace);
    }
    parts.push("devices:", this.apic.inspect(), this.chipset.inspect());
    return parts.join("\n");
  }
}

/**
 * Guest-chosen text made safe for the host's terminal: control characters other than newline and tab (escape
 * sequences could move the cursor, retitle the window or worse) become U+FFFD.
 */
export function terminalSafe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, "\ufffd");
}

/** The guest's panic text (its `Kernel panic` line when the message has one) or else the crash parameters. */
export function crashSummary(r: GuestCrashReport): string {
  if (r.message !== null && r.message.trim() !== "") {
    const lines = r.message.split("\n").map((l) => l.replace(/\r$/, ""));
    const panic = lines.find((l) => l.includes("Kernel panic"));
    // Without the kernel's "[ seconds]" stamp: the line reads as the guest's own words.
    const line = panic ?? lines.filter((l) => l.trim() !== "").pop() ?? "";
    return terminalSafe(line.replace(/^\[\s*[\d.]+\]\s*/, "").trim());
  }
  return `CRASH_P0-P4 ${r.parameters.join(" ")}`;
}

/** Puts a processor into a firmware EntryState (descriptor tables, control registers, segments, GPRs). */
export function applyLinuxEntryState(cpu: Processor, e: EntryState): void {
  cpu.setDescriptorTable("gdtr", e.gdtr.base, e.gdtr.limit);
  cpu.setDescriptorTable("idtr", e.idtr.base, e.idtr.limit);
  cpu.setControl("cr4", e.cr4, 0);
  cpu.setControl("cr3", e.cr3, 0);
  cpu.setControl("efer", e.efer, 0);
  cpu.setControl("cr0", e.cr0, 0);
  cpu.setSegment(Seg.CS, e.cs);
  cpu.setSegment(Seg.DS, e.ds);
  cpu.setSegment(Seg.ES, e.es);
  cpu.setSegment(Seg.SS, e.ss);
  cpu.setSegment(Seg.FS, e.fs);
  cpu.setSegment(Seg.GS, e.gs);
  cpu.setRflags(e.rflags);
  const r = e.registers;
  const set: Array<[Reg, number | undefined]> = [
    [Reg.RAX, r.rax],
    [Reg.RBX, r.rbx],
    [Reg.RCX, r.rcx],
    [Reg.RDX, r.rdx],
    [Reg.RSI, r.rsi],
    [Reg.RDI, r.rdi],
    [Reg.RBP, r.rbp],
    [Reg.RSP, r.rsp],
  ];
  for (const [reg, v] of set) {
    const n = v ?? 0;
    cpu.setReg(reg, (n % 0x1_0000_0000) | 0, Math.floor(n / 0x1_0000_0000));
  }
  cpu.setRip((e.rip % 0x1_0000_0000) | 0, Math.floor(e.rip / 0x1_0000_0000));
}
