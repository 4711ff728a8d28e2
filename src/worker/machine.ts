// Owns: the minimal machine that runs test kernels and the bundled demo guest: guest RAM, one processor, a
// port bus with COM1 (16550A) and QEMU's isa-debug-exit, the Multiboot boot path, and the run loop that
// answers every VM exit. Also the state dump (`inspect`) used in failure messages, and an optional
// per-instruction trace (the divergence finder compares it with QEMU's log).
// Must not: implement devices or instruction semantics (chipset and x86 do), or know Hyper-V (no hypervisor
// sits between this machine and the processor yet, so exits are handled here directly).
// Spec: the exit contract of src/x86/vm-exit.ts (modelled on Intel SDM Vol. 3C ch. 27-28); Multiboot 0.6.96
// 3.2 for the entry state; QEMU's default PC port map for COM1 (0x3f8) and isa-debug-exit (0xf4).

import type { GuestMemory } from "../memory/guest-memory.js";
import { ExitReason } from "../x86/vm-exit.js";
import { Reg, Seg, type Processor, type SegmentState } from "../x86/processor.js";
import { PortBus } from "../chipset/port-bus.js";
import { Uart16550 } from "../chipset/uart16550.js";
import { DebugExit, DEBUG_EXIT_PORT, DEBUG_EXIT_SIZE } from "../chipset/debug-exit.js";
import { loadMultiboot, type MultibootEntryState, type MultibootLoadResult } from "../firmware/multiboot.js";
import { GPR64_NAMES } from "../x86/disasm.js";

export const COM1_PORT = 0x3f8;
const VECTOR_UD = 6;
const VECTOR_GP = 13;
const RFLAGS_IF = 1 << 9;
/** Instructions per run() call: large enough to amortize the call, small enough to notice a stop quickly. */
const BATCH = 100_000;
const TRACE_KEEP = 50;

export type StopKind =
  "debug-exit" | "halted" | "triple-fault" | "access-violation" | "instruction-limit" | "internal";

export interface StopResult {
  kind: StopKind;
  /** The value written to isa-debug-exit (kind "debug-exit"). */
  exitValue: number;
  message: string;
  retired: number;
}

export interface MachineOptions {
  memory: GuestMemory;
  processor: Processor;
  /** Receives every byte the guest writes to COM1. */
  serial: (byte: number) => void;
  /** Called with the state before every instruction (enables single-step execution; slow). */
  trace?: ((record: TraceRecord, line: string) => void) | undefined;
  /**
   * Stop after this many retired instructions plus faults delivered (tests use it so a broken guest cannot
   * hang them; faults count so that a handler faulting forever is bounded too).
   */
  maxInstructions?: number;
}

const REG_NAMES = GPR64_NAMES;
const SEG_NAMES = ["es", "cs", "ss", "ds", "fs", "gs"];

function hex64(lo: number, hi: number): string {
  return (hi >>> 0).toString(16).padStart(8, "0") + (lo >>> 0).toString(16).padStart(8, "0");
}

/** The state before one instruction, as the trace and the divergence finder see it. */
export interface TraceRecord {
  retired: number;
  ripLo: number;
  ripHi: number;
  /** RAX..R15 as (lo, hi) pairs: regs[2 * n] is the low half of register n (Intel numbering). */
  regs: number[];
  rflags: number;
}

function sameState(a: TraceRecord, b: TraceRecord): boolean {
  if (a.ripLo !== b.ripLo || a.ripHi !== b.ripHi || a.rflags !== b.rflags) return false;
  for (let i = 0; i < 32; i++) if (a.regs[i] !== b.regs[i]) return false;
  return true;
}

export function formatTrace(rec: TraceRecord): string {
  const regs = REG_NAMES.map((n, i) => `${n}=${hex64(rec.regs[2 * i]!, rec.regs[2 * i + 1]!)}`);
  return `${rec.retired} rip=${hex64(rec.ripLo, rec.ripHi)} ${regs.join(" ")} rfl=${rec.rflags.toString(16)}`;
}

/** A processor's architectural state now: RIP, the 16 general registers as (lo, hi) pairs, RFLAGS. */
export function snapshotProcessor(cpu: Processor): TraceRecord {
  const regs = new Array<number>(32);
  for (let i = 0; i < 16; i++) {
    const r = cpu.getReg(i as Reg);
    regs[2 * i] = r.lo >>> 0;
    regs[2 * i + 1] = r.hi >>> 0;
  }
  const rip = cpu.getRip();
  return {
    retired: cpu.retired,
    ripLo: rip.lo >>> 0,
    ripHi: rip.hi >>> 0,
    regs,
    rflags: cpu.getRflags() >>> 0,
  };
}

export class Machine {
  readonly memory: GuestMemory;
  readonly cpu: Processor;
  readonly ports = new PortBus();
  readonly uart: Uart16550;
  private stop: StopResult | null = null;
  private readonly traceSink: ((record: TraceRecord, line: string) => void) | undefined;
  private lastRecord: TraceRecord | null = null;
  private readonly lastTrace: string[] = [];
  private readonly maxInstructions: number;

  constructor(options: MachineOptions) {
    this.memory = options.memory;
    this.cpu = options.processor;
    this.traceSink = options.trace;
    this.maxInstructions = options.maxInstructions ?? Number.POSITIVE_INFINITY;
    this.uart = new Uart16550({ sink: options.serial });
    this.ports.map(COM1_PORT, 8, this.uart, "COM1 (16550A)");
    this.ports.map(
      DEBUG_EXIT_PORT,
      DEBUG_EXIT_SIZE,
      new DebugExit((value) =>
        this.halt("debug-exit", value, `debug-exit written with 0x${value.toString(16)}`),
      ),
      "isa-debug-exit",
    );
    // Every port reaches the bus (unclaimed ones float high); there are no MMIO devices on this board, so
    // accesses outside RAM read all ones and writes go nowhere (no MMIO intercept). CPUID is answered by the
    // processor's own table.
    this.cpu.controls.ioBitmap.fill(0xff);
    this.cpu.ports = {
      read: (port, size) => this.ports.read(port, size),
      write: (port, size, value) => this.ports.write(port, size, value),
    };
    this.cpu.mmio = null;
    this.cpu.controls.cpuidExiting = false;
    this.cpu.controls.hltExiting = true;
  }

  /** Loads a Multiboot kernel and puts the processor in the entry state of Multiboot 0.6.96 3.2. */
  bootMultiboot(image: Uint8Array, cmdline: string): MultibootLoadResult {
    const loaded = loadMultiboot(this.memory, image, { cmdline, bootLoaderName: "viridian" });
    applyEntryState(this.cpu, loaded.entry);
    return loaded;
  }

  /** Runs until the guest stops (debug-exit, halt, triple fault) or the instruction limit is reached. */
  run(): StopResult {
    const cpu = this.cpu;
    while (this.stop === null) {
      // Faults count too: a guest whose exception handler faults forever retires nothing.
      const left = this.maxInstructions - cpu.retired - cpu.faults;
      if (left <= 0) {
        this.halt(
          "instruction-limit",
          0,
          `stopped after ${cpu.retired} instructions and ${cpu.faults} faults (the limit)`,
        );
        break;
      }
      if (this.traceSink) {
        this.step();
      } else {
        this.handle(cpu.run(Math.min(BATCH, left)));
      }
    }
    return this.stop!;
  }

  /** One instruction (or one exit), recording the state before it as QEMU's `-d cpu` log does. */
  private step(): void {
    const rec = this.snapshot();
    const last = this.lastRecord;
    if (last === null || last.retired !== rec.retired || !sameState(last, rec)) {
      this.lastRecord = rec;
      const line = formatTrace(rec);
      this.lastTrace.push(line);
      if (this.lastTrace.length > TRACE_KEEP) this.lastTrace.shift();
      this.traceSink!(rec, line);
    }
    this.handle(this.cpu.run(1));
  }

  /** The architectural state now: RIP, the 16 general registers as (lo, hi) pairs, RFLAGS. */
  snapshot(): TraceRecord {
    return snapshotProcessor(this.cpu);
  }

  private handle(reason: ExitReason): void {
    const cpu = this.cpu;
    const exit = cpu.exit;
    switch (reason) {
      case ExitReason.BudgetExhausted:
      case ExitReason.InterruptWindow:
        return;
      case ExitReason.Rdmsr:
      case ExitReason.Wrmsr:
        // An MSR the processor does not own does not exist on this board (SDM: #GP(0) for unknown MSRs).
        cpu.injectException(VECTOR_GP, 0);
        return;
      case ExitReason.Vmcall:
        // No hypervisor here: VMCALL outside VMX non-root operation is #UD (SDM Vol. 2B VMCALL).
        cpu.injectException(VECTOR_UD);
        return;
      case ExitReason.Cpuid:
        this.halt("internal", 0, "CPUID exited although cpuidExiting is off");
        return;
      case ExitReason.Hlt: {
        const ifSet = (cpu.getRflags() & RFLAGS_IF) !== 0;
        this.halt(
          "halted",
          0,
          ifSet
            ? "guest halted with interrupts enabled, but this machine has no interrupt source"
            : "guest halted (HLT with interrupts disabled)",
        );
        return;
      }
      case ExitReason.TripleFault:
        this.halt("triple-fault", 0, "triple fault (shutdown)");
        return;
      case ExitReason.AccessViolation:
        this.halt(
          "access-violation",
          0,
          `access to guest-physical 0x${exit.gpa.toString(16)} refused by page rights`,
        );
        return;
      default:
        this.halt("internal", 0, `unknown exit reason ${reason as number}`);
    }
  }

  private halt(kind: StopKind, exitValue: number, message: string): void {
    if (this.stop === null) this.stop = { kind, exitValue, message, retired: this.cpu.retired };
  }

  /** Registers, control registers, segments and the last trace lines, for failure messages. */
  inspect(): string {
    const lines = [describeProcessor(this.cpu)];
    if (this.lastTrace.length > 0) {
      lines.push(`state before each of the last ${this.lastTrace.length} instructions:`, ...this.lastTrace);
    }
    return lines.join("\n");
  }
}

/** RIP, RFLAGS, the general registers, control registers and segment caches of a processor. */
export function describeProcessor(cpu: Processor): string {
  const lines: string[] = [];
  const rip = cpu.getRip();
  lines.push(
    `rip=${hex64(rip.lo, rip.hi)} rflags=${cpu.getRflags().toString(16).padStart(8, "0")} retired=${cpu.retired}`,
  );
  for (let i = 0; i < 16; i += 4) {
    lines.push(
      [i, i + 1, i + 2, i + 3]
        .map((r) => {
          const v = cpu.getReg(r as Reg);
          return `${REG_NAMES[r]!.padStart(3)}=${hex64(v.lo, v.hi)}`;
        })
        .join(" "),
    );
  }
  const cr = (["cr0", "cr2", "cr3", "cr4", "cr8", "efer"] as const).map((n) => {
    const v = cpu.getControl(n);
    return `${n}=${hex64(v.lo, v.hi)}`;
  });
  lines.push(cr.join(" "));
  for (let s = 0; s < 6; s++) {
    const seg = cpu.getSegment(s as Seg);
    lines.push(
      `${SEG_NAMES[s]}=${seg.selector.toString(16).padStart(4, "0")} base=${hex64(seg.base >>> 0, seg.baseHi ?? Math.floor(seg.base / 0x1_0000_0000))} ` +
        `limit=${(seg.limit >>> 0).toString(16)} access=${seg.access.toString(16)}`,
    );
  }
  return lines.join("\n");
}

/** Puts a processor into the Multiboot entry state (flat 32-bit protected mode, paging and IF off). */
export function applyEntryState(cpu: Processor, entry: MultibootEntryState): void {
  const seg = (s: MultibootEntryState["code"]): SegmentState => ({
    selector: s.selector,
    base: s.base,
    limit: s.limit,
    access: s.access,
  });
  cpu.setControl("cr0", entry.cr0, 0);
  cpu.setControl("cr4", 0, 0);
  cpu.setControl("efer", 0, 0);
  cpu.setSegment(Seg.CS, seg(entry.code));
  for (const s of [Seg.DS, Seg.ES, Seg.SS, Seg.FS, Seg.GS]) cpu.setSegment(s, seg(entry.data));
  cpu.setRflags(entry.eflags);
  cpu.setReg(Reg.RAX, entry.eax, 0);
  cpu.setReg(Reg.RBX, entry.ebx, 0);
  cpu.setReg(Reg.RSP, entry.esp, 0);
  cpu.setRip(entry.eip, 0);
}
