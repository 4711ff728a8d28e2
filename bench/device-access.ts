// Device-access micro-benchmark (docs/decisions/0004): the processor-side cost of an intercepted access, one
// kind at a time, with tests/kernels/device-bench.asm (a million accesses in a loop, 32-bit protected mode) on
// a bare processor whose intercepts answer from one variable: a 4-byte MMIO read, a 4-byte MMIO write (which
// ends the batch, so the loop re-enters run() per write as a runner does), a port read, and a 16-byte SSE
// MMIO read. Prints nanoseconds of process CPU time per access, minus the same kernel with zero iterations.
import { readFileSync } from "node:fs";
import { GuestMemory } from "../src/memory/guest-memory.js";
import { Cpu } from "../src/x86/cpu.js";
import { ExitReason, type MmioIntercept, type PortIntercept } from "../src/x86/vm-exit.js";
import { loadMultiboot } from "../src/firmware/multiboot.js";
import { applyEntryState } from "../src/worker/processor-state.js";
import { assembleKernel } from "../tests/kernels/assemble.js";

export interface DeviceBenchResult {
  name: string;
  nsPerAccess: number;
}

const ITER = Number(process.env.VIRIDIAN_BENCH_DEVICE_ITER ?? 1_000_000);
const KINDS: Array<[number, string]> = [
  [1, "4-byte MMIO read"],
  [2, "4-byte MMIO write (ends the batch)"],
  [3, "1-byte port read"],
  [4, "16-byte SSE MMIO read"],
];

/** CPU milliseconds to run the kernel assembled with OP/ITER to its debug-exit write. */
function cpuMs(op: number, iter: number): number {
  const path = assembleKernel("device-bench", { OP: op, ITER: iter }, `device-bench-${op}-${iter}`);
  const memory = new GuestMemory(16 * 1024 * 1024);
  const cpu = new Cpu(memory);
  applyEntryState(cpu, loadMultiboot(memory, readFileSync(path)).entry);
  let done = false;
  let register = 0;
  const ports: PortIntercept = {
    read: () => 0x60,
    write: (port) => {
      if (port === 0xf4) done = true;
    },
  };
  const mmio: MmioIntercept = {
    hi: 0,
    read: () => register,
    write: (_gpa, _size, lo) => {
      register = lo;
    },
  };
  cpu.ports = ports;
  cpu.mmio = mmio;
  cpu.controls.ioBitmap.fill(0xff);
  const c0 = process.cpuUsage();
  while (!done) {
    const r = cpu.run(100_000);
    if (r !== ExitReason.BudgetExhausted) throw new Error(`device-bench ${op}: unexpected exit ${r}`);
  }
  const cu = process.cpuUsage(c0);
  return (cu.user + cu.system) / 1000;
}

export function benchDeviceAccess(): DeviceBenchResult[] {
  const best = (op: number, iter: number): number =>
    Math.min(cpuMs(op, iter), cpuMs(op, iter), cpuMs(op, iter));
  const base = best(1, 0);
  return KINDS.map(([op, name]) => ({ name, nsPerAccess: ((best(op, ITER) - base) * 1e6) / ITER }));
}
