// Owns: the PC machine every guest boots on: the guest partition (the hypervisor: its RAM, its virtual
// processor with its local APIC, CPUID, MSRs, hypercalls, SynIC, synthetic timers, crash MSRs), the chipset
// (ports, MMIO, PIC, PIT, RTC, UARTs, ACPI PM, reset registers, i8042, I/O APIC) registered with the
// partition, QEMU's isa-debug-exit for Multiboot kernels, the boot (firmware tier's prepareLinuxBoot /
// prepareMultibootBoot + the entry state), and the run loop: `partition.runVp` batches, the exits the
// hypervisor forwards, device ticks when a deadline has passed, HLT as a real sleep until the next deadline
// or host input, reset (Linux: reload and boot again; Multiboot: stop, as QEMU's -no-reboot), power-off, the
// debug-exit write and the guest's crash report; the VMBus server and the integration services on it (reaching
// the partition through its root-side message and event ports), polled as one more device. One virtual clock (the partition's, on the worker's
// paced source) drives the TSC, the reference counter and TSC page, the synthetic timers and every timer
// device, so the guest sees one consistent time base.
// Must not: implement devices, hypervisor registers or instruction semantics (chipset, hv and x86 do), parse
// boot images (firmware does) or touch the host terminal (the CLI feeds input through `sendInput` and takes
// output from `serial`).
// Spec: Intel SDM Vol. 3C ch. 27-28 (exit handling, as modelled by src/x86/vm-exit.ts), Vol. 4 (MSR map);
// Linux Documentation/arch/x86/boot.rst (64-bit entry); Multiboot 0.6.96 (entry state, modules); QEMU's
// isa-debug-exit (port 0xF4, status (value << 1) | 1); the PC/AT platform (reset via 0xCF9/i8042, ACPI S5);
// TLFS "Guest Crash Enlightenment" (the crash report stops the VM).

import type { GuestMemory } from "../memory/guest-memory.js";
import { ExitReason } from "../x86/vm-exit.js";
import type { Cpu } from "../x86/cpu.js";
import { APIC_DEFAULT_TIMER_HZ } from "../hv/local-apic.js";
import type { MmioHandler, PortHandler } from "../hv/intercepts.js";
import { ExitHandling, Partition, type GuestCrashReport } from "../hv/partition.js";
import type { PartitionClock } from "../hv/reference-time.js";
import { Chipset } from "../chipset/pc-chipset.js";
import { DebugExit, DEBUG_EXIT_PORT, DEBUG_EXIT_SIZE } from "../chipset/debug-exit.js";
import type { PacedClock } from "./paced-clock.js";
import { prepareLinuxBoot, type PreparedLinux } from "../firmware/prepare-linux.js";
import { prepareMultibootBoot } from "../firmware/prepare-multiboot.js";
import type { MultibootLoadResult, MultibootModule } from "../firmware/multiboot.js";
import {
  applyEntryState,
  applyLinuxEntryState,
  describeProcessor,
  formatTrace,
  sameState,
  snapshotProcessor,
  type TraceRecord,
} from "./processor-state.js";
import { standardDevices, vmbusDevice } from "../firmware/acpi/dsdt.js";
import { VmbusServer, type VmbusPartition } from "../vmbus/server.js";
import { IntegrationServices } from "../vsp/ic/integration-services.js";
import type { ShutdownAnswer } from "../vsp/ic/shutdown.js";
import { DOUBLE_ZERO } from "../support/heap-number.js";

const RFLAGS_IF = 1 << 9;
/** Instructions per run() call: a few milliseconds of guest time, so device deadlines are met closely. */
const BATCH = 50_000;
/** How long the loop computes before it lets the host's event loop run (input, signals), in ms. */
const YIELD_MS = 15;
/**
 * The same while a translation unit compiles in the engine's background: it is installed by a promise
 * callback, which runs only when the loop yields, and its page runs interpreted until then.
 */
const YIELD_PENDING_MS = 2;
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
  | "poweroff"
  | "triple-fault"
  | "panic"
  | "guest-crash"
  | "halted"
  | "instruction-limit"
  | "stopped"
  | "debug-exit"
  | "reset";

export interface PcStop {
  kind: PcStopKind;
  message: string;
  retired: number;
  /** For "guest-crash": what the guest reported through the crash MSRs. */
  crash?: GuestCrashReport;
  /** For "debug-exit": the value written to isa-debug-exit. */
  exitValue?: number;
}

export interface LinuxBootImages {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  cmdline: string;
}

export interface MultibootBootImages {
  kernel: Uint8Array;
  /** The whole Multiboot command line (by convention the kernel's path, then its arguments). */
  cmdline: string;
  modules: readonly MultibootModule[];
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
  /** The processor's translation threshold (CpuOptions.jitThreshold; negative = interpret only). */
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
  /** QEMU's isa-debug-exit at port 0xF4 (Multiboot test kernels): a write stops the machine with its value. */
  debugExit?: boolean;
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
  /** The VMBus server (root side) and the integration services offered on it. */
  readonly vmbus: VmbusServer;
  readonly ics: IntegrationServices;
  /** Lines about the VM's disks, DVD and NICs for inspect(), set by whoever attached them (src/worker/build-vm.ts). */
  deviceSummary: (() => string[]) | null = null;
  private stop: PcStop | null = null;
  private pauseGate: { promise: Promise<void>; resolve: () => void } | null = null;
  private resetPending: string | null = null;
  private images: LinuxBootImages | null = null;
  private prepared: PreparedLinux | null = null;
  private multiboot: MultibootLoadResult | null = null;
  private readonly serialSink: (byte: number) => void;
  private readonly serialLines: string[] = [];
  private serialLine = "";
  private panicAtNs = -1;
  private readonly traceSink: ((record: TraceRecord, line: string) => void) | undefined;
  private readonly lastTrace: string[] = [];
  private lastRecord: TraceRecord | null = null;
  private readonly maxInstructions: number;
  private readonly cpus: number;
  private readonly wake: { resolve: (() => void) | null } = { resolve: null };
  /** Resets performed so far (the guest's `reboot`). */
  resets = 0;
  /** Host milliseconds spent asleep in HLT, and how many sleeps (diagnostics for `inspect`). */
  idleMs = DOUBLE_ZERO;
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
      // No BIOS runs before the kernel, so the APICs start as an MP-spec BIOS leaves them (virtual wire:
      // LINT0 ExtINT, LINT1 NMI): a kernel that never programs the APIC still gets PIC interrupts.
      apicVirtualWire: true,
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
    if (options.debugExit === true) {
      const dev = new DebugExit((value) => {
        this.halt("debug-exit", `debug-exit written with 0x${value.toString(16)}`);
        if (this.stop?.kind === "debug-exit") this.stop.exitValue = value;
      });
      this.chipset.ports.map(DEBUG_EXIT_PORT, DEBUG_EXIT_SIZE, dev, "isa-debug-exit");
    }
    this.connectChipset();
    this.vmbus = new VmbusServer({ partition: this.vmbusPort() });
    const hostSeconds = options.hostSeconds ?? (() => Date.now() / 1000);
    const rtcOffset = options.rtcOffsetSeconds ?? 0;
    this.ics = new IntegrationServices(this.vmbus, {
      nowNs: () => this.clock.nowNs(),
      utcMs: () => (hostSeconds() + rtcOffset) * 1000,
      referenceCounter: () => this.partition.referenceCounter(),
    });
  }

  /**
   * The seam between the hypervisor and this machine's devices: the I/O APIC sends to the partition's APIC
   * bus, the 8259 sits on the BSP's LINT0 and APIC EOIs reach the I/O APIC (connectPlatform), and every
   * port and MMIO range of the chipset is registered with the partition, which dispatches accesses to it.
   */
  private connectChipset(): void {
    const chipset = this.chipset;
    chipset.setApicSink(this.partition.apicBus);
    this.partition.connectPlatform({
      extInt: chipset.interruptSource,
      onEoi: (vector) => chipset.apicEoi(vector),
    });
    const ports: PortHandler = {
      read: (_vp, port, size) => chipset.ports.read(port, size),
      write: (_vp, port, size, value) => chipset.ports.write(port, size, value),
    };
    for (const r of chipset.ports.ranges()) this.partition.registerPorts(r.base, r.count, ports, r.name);
    const bus = chipset.mmio;
    const mmio: MmioHandler = {
      hi: 0,
      read: (_vp, gpa, size) => {
        if (size !== 8) return bus.read(gpa, size);
        const q = bus.readQword(gpa);
        mmio.hi = q.hi;
        return q.lo;
      },
      write: (_vp, gpa, size, lo, hi) => bus.write(gpa, size, lo, hi),
    };
    for (const r of bus.ranges()) this.partition.registerMmio(r.base, r.length, mmio, r.name);
  }

  /**
   * The partition's root-side message and event ports as the VMBus server uses them. A VSP may answer
   * outside the VP's turn (a disk read completing while the guest sleeps in HLT): whatever it posts or
   * signals then also wakes the run loop, so the interrupt is taken now, not at the next timer deadline.
   */
  private vmbusPort(): VmbusPartition {
    const p = this.partition;
    const wake = this.wake;
    return {
      memory: p.memory,
      vpCount: p.vpCount,
      registerMessagePort: (id, handler) => p.registerMessagePort(id, handler),
      unregisterMessagePort: (id) => p.unregisterMessagePort(id),
      registerEventPort: (id, handler, flagCount) => p.registerEventPort(id, handler, flagCount),
      unregisterEventPort: (id) => p.unregisterEventPort(id),
      postMessageToGuest: (vp, sint, type, payload) => {
        const status = p.postMessageToGuest(vp, sint, type, payload);
        wake.resolve?.();
        return status;
      },
      signalGuestEvent: (vp, sint, flag) => {
        const status = p.signalGuestEvent(vp, sint, flag);
        wake.resolve?.();
        return status;
      },
    };
  }

  /** Loads Linux and puts the processor at its 64-bit entry point. Kept for reboots. */
  bootLinux(images: LinuxBootImages): PreparedLinux {
    this.images = images;
    this.prepared = prepareLinuxBoot(this.memory, {
      kernel: images.kernel,
      ...(images.initrd ? { initrd: images.initrd } : {}),
      cmdline: images.cmdline,
      cpus: this.cpus,
      acpiDevices: [...standardDevices(), vmbusDevice()],
      nx: true,
    });
    this.cpu.reset();
    applyLinuxEntryState(this.cpu, this.prepared.entry);
    return this.prepared;
  }

  /**
   * Loads a Multiboot kernel with its modules and the platform's ACPI tables, and puts the processor in the
   * entry state of Multiboot 0.6.96 3.2 (flat 32-bit protected mode, EAX = 0x2BADB002, EBX = the information).
   */
  bootMultiboot(images: MultibootBootImages): MultibootLoadResult {
    this.multiboot = prepareMultibootBoot(this.memory, {
      kernel: images.kernel,
      cmdline: images.cmdline,
      modules: images.modules,
      cpus: this.cpus,
    }).loaded;
    this.cpu.reset();
    applyEntryState(this.cpu, this.multiboot.entry);
    return this.multiboot;
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

  /**
   * Asks the guest for an orderly shutdown (or restart) through the shutdown IC, as Hyper-V's Stop-VM does.
   * False when the guest has no shutdown IC driver bound (the caller turns the VM off instead) or a request
   * is already in flight; `answered` gets the guest's answer.
   */
  requestShutdown(
    kind: "shutdown" | "restart" = "shutdown",
    answered?: (answer: ShutdownAnswer) => void,
  ): boolean {
    const sent = this.ics.shutdown.request(kind, answered);
    // The request interrupts the guest; a halted run loop must notice.
    if (sent) this.wake.resolve?.();
    return sent;
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
      // Faults count too: a guest whose exception handler faults forever retires nothing.
      const left = this.maxInstructions - cpu.retired - cpu.faults;
      if (left <= 0) {
        this.halt(
          "instruction-limit",
          `stopped at the instruction limit (${this.maxInstructions}: ${cpu.retired} instructions retired, ` +
            `${cpu.faults} exceptions at instructions that did not)`,
        );
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
      } else if (
        performance.now() - sliceStart >
        (cpu.tier !== null && cpu.tier.stats.pending > 0 ? YIELD_PENDING_MS : YIELD_MS)
      ) {
        await new Promise<void>((r) => setImmediate(r));
        sliceStart = performance.now();
      }
    }
    return this.stop!;
  }

  private nextDeadline(): number {
    return Math.min(this.chipset.nextDeadlineNs(), this.partition.nextDeadlineNs(), this.vmbusDeadlineNs());
  }

  /**
   * VMBus work: answers waiting for the guest's SIMP slot are retried soon (1 ms); the ICs have their own
   * timers (heartbeat, time samples, request timeouts).
   */
  private vmbusDeadlineNs(): number {
    return Math.min(
      this.ics.nextDeadlineNs(),
      this.vmbus.pending ? this.clock.nowNs() + 1_000_000 : Infinity,
    );
  }

  private tickDevices(now: number): void {
    if (now >= this.chipset.nextDeadlineNs()) this.chipset.tick(now);
    if (now >= this.partition.nextDeadlineNs()) this.partition.tick(now);
    if (now >= this.vmbusDeadlineNs()) {
      this.vmbus.poll();
      this.ics.poll(now);
    }
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
    // A state is printed once: a halted processor or an instruction that exits before it retires shows the
    // same state again (QEMU logs each instruction once too).
    const last = this.lastRecord;
    if (last === null || last.retired !== rec.retired || !sameState(last, rec)) {
      this.lastRecord = rec;
      const line = formatTrace(rec);
      this.lastTrace.push(line);
      if (this.lastTrace.length > TRACE_KEEP) this.lastTrace.shift();
      this.traceSink!(rec, line);
    }
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
      case ExitReason.Rdmsr:
      case ExitReason.Wrmsr:
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
    if (this.multiboot !== null) {
      // QEMU's -no-reboot view, which the Multiboot kernel tests compare against: a reset ends the run.
      this.halt("reset", `the guest asked for a ${why ?? "reset"}`);
      return;
    }
    if (!this.images) {
      this.halt("stopped", `the guest asked for a ${why ?? "reset"}, but nothing is loaded to boot again`);
      return;
    }
    this.resets++;
    this.chipset.reset();
    // Synthetic registers (hypercall page, TSC page, SynIC, stimers, crash MSRs) and the APICs back to
    // creation values;
    // the partition clock runs on, so the TSC and the reference counter never go backwards.
    this.partition.reset();
    this.vmbus.disconnect();
    // Only pages ever written are touched: a large guest's untouched RAM stays uncommitted.
    this.memory.clear();
    this.panicAtNs = -1;
    this.bootLinux(this.images);
  }

  private halt(kind: PcStopKind, message: string): void {
    if (this.stop === null) this.stop = { kind, message, retired: this.cpu.retired };
  }

  /** VMBus, integration-service and storage state in a few lines (guest-chosen strings made terminal-safe). */
  vmbusSummary(): string {
    const v = this.vmbus.inspect();
    const channels = v.channels.map((c) => `${c.name}#${c.relid} ${c.state}`).join(", ");
    const dropped = Object.entries(v.dropped)
      .map(([k, n]) => `${k} ${n}`)
      .join(", ");
    const refused = Object.entries(v.refused)
      .map(([k, n]) => `${k} ${n}`)
      .join(", ");
    return terminalSafe(
      [
        `vmbus: ${v.connected ? `connected, version ${v.version}` : "not connected"}; channels: ${channels}; ` +
          `messages in ${v.messagesReceived}, out ${v.messagesSent}; dropped: ${dropped || "none"}; ` +
          `refused: ${refused || "none"}`,
        "integration services:",
        ...this.ics.summary(),
        ...(this.deviceSummary?.() ?? []),
      ].join("\n"),
    );
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
    parts.push("devices:", this.chipset.inspect(), this.vmbusSummary());
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
