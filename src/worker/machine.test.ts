// Run-loop tests against a scripted processor: each exit the machine must handle is produced on cue, and
// the test checks how the machine completed it. (Whole-system behaviour is covered by tests/kernels.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest-memory.js";
import {
  ExitReason,
  newExitInfo,
  type ExitControls,
  type ExitInfo,
  type MmioIntercept,
  type PortIntercept,
} from "../x86/vm-exit.js";
import type { InterruptSource } from "../contracts/platform.js";
import type { Processor, SegmentState } from "../x86/processor.js";
import { Machine } from "./machine.js";

/** One run() call: optionally device accesses made through the intercepts (`act`), then an exit. */
type Step = Partial<ExitInfo> & { reason: ExitReason; retire?: number; act?: (p: ScriptedProcessor) => void };

class ScriptedProcessor implements Processor {
  readonly exit = newExitInfo();
  readonly controls: ExitControls = {
    ioBitmap: new Uint8Array(8192),
    cpuidExiting: true,
    interruptWindowExiting: false,
    hltExiting: false,
    tscOffsetLo: 0,
    tscOffsetHi: 0,
  };
  retired = 0;
  faults = 0;
  interrupts: InterruptSource | null = null;
  ports: PortIntercept | null = null;
  mmio: MmioIntercept | null = null;
  readonly log: string[] = [];
  private rflags = 2;
  private readonly regs = new Map<number, { lo: number; hi: number }>();
  private rip = { lo: 0, hi: 0 };
  private readonly segs = new Map<number, SegmentState>();
  private readonly ctl = new Map<string, { lo: number; hi: number }>();

  constructor(private readonly script: Step[]) {}

  run(budget: number): ExitReason {
    const step = this.script.shift();
    if (!step) {
      this.retired += budget;
      return ExitReason.BudgetExhausted;
    }
    step.act?.(this);
    const { act: _act, retire, ...exit } = step;
    Object.assign(this.exit, exit);
    this.retired += retire ?? 1;
    return step.reason;
  }
  /** An IN as the processor makes it when the port's bitmap bit is set. */
  portRead(port: number, size: number): void {
    const v = this.ports === null ? -1 : this.ports.read(port, size);
    this.log.push(`io-read ${((v & (size === 4 ? -1 : (1 << (size * 8)) - 1)) >>> 0).toString(16)}`);
  }
  completeRdmsr(): void {
    this.log.push("rdmsr");
  }
  completeWrmsr(): void {
    this.log.push("wrmsr");
  }
  completeCpuid(): void {
    this.log.push("cpuid");
  }
  completeVmcall(): void {
    this.log.push("vmcall");
  }
  injectException(vector: number, errorCode?: number): void {
    this.log.push(`inject ${vector} ${errorCode ?? "-"}`);
  }
  raiseNmi(): void {}
  reset(): void {}
  getReg(reg: number): { lo: number; hi: number } {
    return this.regs.get(reg) ?? { lo: 0, hi: 0 };
  }
  setReg(reg: number, lo: number, hi: number): void {
    this.regs.set(reg, { lo, hi });
  }
  getRip(): { lo: number; hi: number } {
    return this.rip;
  }
  setRip(lo: number, hi: number): void {
    this.rip = { lo, hi };
  }
  getRflags(): number {
    return this.rflags;
  }
  setRflags(value: number): void {
    this.rflags = value;
  }
  getSegment(seg: number): SegmentState {
    return this.segs.get(seg) ?? { selector: 0, base: 0, limit: 0xffff, access: 0x93 };
  }
  setSegment(seg: number, state: SegmentState): void {
    this.segs.set(seg, state);
  }
  getControl(which: string): { lo: number; hi: number } {
    return this.ctl.get(which) ?? { lo: 0, hi: 0 };
  }
  setControl(which: string, lo: number, hi: number): void {
    this.ctl.set(which, { lo, hi });
  }
  setDescriptorTable(): void {}
}

function machine(
  script: Step[],
  maxInstructions = 1000,
): { m: Machine; cpu: ScriptedProcessor; out: number[] } {
  const cpu = new ScriptedProcessor(script);
  const out: number[] = [];
  const m = new Machine({
    memory: new GuestMemory(2 * 1024 * 1024),
    processor: cpu,
    serial: (b) => out.push(b),
    maxInstructions,
  });
  return { m, cpu, out };
}

test("port I/O goes to COM1 and debug-exit; unclaimed reads float high; debug-exit stops the machine", () => {
  const write = (port: number, size: number, value: number) => (p: ScriptedProcessor) =>
    p.ports!.write(port, size, value);
  const { m, cpu, out } = machine([
    { reason: ExitReason.BudgetExhausted, act: write(0x3f8, 1, 0x41) },
    { reason: ExitReason.BudgetExhausted, act: (p) => p.portRead(0x3fd, 1) },
    { reason: ExitReason.BudgetExhausted, act: (p) => p.portRead(0x1234, 2) },
    { reason: ExitReason.BudgetExhausted, act: write(0xf4, 4, 7) },
    { reason: ExitReason.BudgetExhausted, act: write(0x3f8, 1, 0x42) },
  ]);
  assert.equal(
    cpu.controls.ioBitmap.every((b) => b === 0xff),
    true,
    "every port is intercepted",
  );
  assert.equal(cpu.controls.cpuidExiting, false, "CPUID is answered by the processor");
  const stop = m.run();
  assert.equal(stop.kind, "debug-exit");
  assert.equal(stop.exitValue, 7);
  assert.deepEqual(out, [0x41]);
  assert.deepEqual(cpu.log, ["io-read 60", "io-read ffff"]);
});

test("no MMIO devices (reads float high), unknown MSRs and VMCALL raise faults", () => {
  const { m, cpu } = machine([
    { reason: ExitReason.Rdmsr, msr: 0x1234 },
    { reason: ExitReason.Wrmsr, msr: 0x1234 },
    { reason: ExitReason.Vmcall },
    { reason: ExitReason.Hlt },
  ]);
  assert.equal(cpu.mmio, null, "no MMIO intercept: the processor floats reads to all ones");
  const stop = m.run();
  assert.equal(stop.kind, "halted");
  assert.match(stop.message, /guest halted \(HLT with interrupts disabled\)/);
  assert.deepEqual(cpu.log, ["inject 13 0", "inject 13 0", "inject 6 -"]);
});

test("a triple fault stops with a message and the state dump names registers and segments", () => {
  const { m } = machine([{ reason: ExitReason.TripleFault }]);
  const stop = m.run();
  assert.equal(stop.kind, "triple-fault");
  const dump = m.inspect();
  assert.match(dump, /rip=0000000000000000/);
  assert.match(dump, /cr0=.* efer=/);
  assert.match(dump, /^cs=/m);
});

test("the instruction limit stops a guest that never exits", () => {
  const { m } = machine([], 250_000);
  const stop = m.run();
  assert.equal(stop.kind, "instruction-limit");
  assert.ok(stop.retired >= 250_000);
});

test("HLT with interrupts enabled and no interrupt source is reported as such", () => {
  const { m, cpu } = machine([{ reason: ExitReason.Hlt }]);
  cpu.setRflags(0x202);
  assert.match(m.run().message, /interrupts enabled/);
});

test("bootMultiboot applies the Multiboot entry state", () => {
  const { m, cpu } = machine([]);
  const file = new Uint8Array(200);
  const dv = new DataView(file.buffer);
  file.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]);
  dv.setUint16(16, 2, true);
  dv.setUint16(18, 3, true);
  dv.setUint32(24, 0x100000 + 100, true);
  dv.setUint32(28, 52, true);
  dv.setUint16(42, 32, true);
  dv.setUint16(44, 1, true);
  dv.setUint32(52, 1, true);
  dv.setUint32(60, 0x100000, true);
  dv.setUint32(64, 0x100000, true);
  dv.setUint32(68, 200, true);
  dv.setUint32(72, 200, true);
  dv.setUint32(84, 0x1badb002, true);
  dv.setUint32(88, 0, true);
  dv.setUint32(92, -0x1badb002 >>> 0, true);
  const r = m.bootMultiboot(file, "x");
  assert.deepEqual(cpu.getRip(), { lo: 0x100064, hi: 0 });
  assert.deepEqual(cpu.getReg(0), { lo: 0x2badb002, hi: 0 });
  assert.deepEqual(cpu.getReg(3), { lo: r.infoAddress, hi: 0 });
  assert.equal(cpu.getControl("cr0").lo & 0x80000001, 1);
  assert.equal(cpu.getSegment(1).access, 0xc09b);
  assert.equal(cpu.getRflags() & 0x200, 0);
});
