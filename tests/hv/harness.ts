// Test harness for the hypervisor microkernels (tests/hv/*.asm): assembles a kernel with nasm, loads it as
// Multiboot into a Partition, and runs it with a small run loop written here (not src/worker): COM1 output,
// isa-debug-exit, a minimal interrupt controller standing in for the local APIC (fixed vectors, highest
// first, no EOI needed), HLT = skip the partition clock to the next synthetic-timer deadline, and budgets cut
// at that deadline so timers fire at the exact instruction in deterministic mode.
// Spec: Multiboot 0.6.96 3.2 (entry state), src/x86/vm-exit.ts (exit contract), TLFS (what the kernels test).
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readFileSync } from "node:fs";
import { loadMultiboot } from "../../src/firmware/multiboot.js";
import { applyEntryState } from "../../src/worker/processor-state.js";
import { ExitHandling, Partition, type PartitionOptions } from "../../src/hv/partition.js";
import { ExitReason } from "../../src/x86/vm-exit.js";
import type { InterruptSource } from "../../src/contracts/platform.js";

export const HV_SOURCE_DIR = fileURLToPath(new URL("../../../tests/hv/", import.meta.url));
const KERNEL_INCLUDE_DIR = fileURLToPath(new URL("../../../tests/kernels/", import.meta.url));
const BUILD_DIR = join(HV_SOURCE_DIR, "build");

/** Assembles tests/hv/<name>.asm (includes from tests/kernels/include and tests/hv) into build/. */
export function assembleHvKernel(name: string, defines: Record<string, string | number> = {}): Uint8Array {
  mkdirSync(BUILD_DIR, { recursive: true });
  const suffix = Object.entries(defines)
    .map(([k, v]) => `-${k}${v}`)
    .join("");
  const out = join(BUILD_DIR, `${name}${suffix}.elf`);
  const args = ["-f", "bin", "-I", KERNEL_INCLUDE_DIR, "-I", HV_SOURCE_DIR, "-o", out];
  for (const [k, v] of Object.entries(defines)) args.push(`-D${k}=${v}`);
  args.push(join(HV_SOURCE_DIR, `${name}.asm`));
  const r = spawnSync("nasm", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`nasm ${name}.asm failed: ${r.stderr || r.error?.message}`);
  return new Uint8Array(readFileSync(out));
}

/** The local APIC's role for these tests: accepts fixed vectors, hands out the highest pending one. */
export class TestInterrupts implements InterruptSource {
  private readonly pending = new Uint8Array(256);
  private count = 0;
  accepted = 0;

  acceptFixed(vector: number): void {
    if (this.pending[vector & 0xff] === 0) this.count++;
    this.pending[vector & 0xff] = 1;
    this.accepted++;
  }

  hasInterrupt(): boolean {
    return this.count > 0;
  }

  acknowledge(): number {
    for (let v = 255; v >= 0; v--) {
      if (this.pending[v] !== 0) {
        this.pending[v] = 0;
        this.count--;
        return v;
      }
    }
    return 0;
  }
}

export interface RunResult {
  output: string;
  exitValue: number | null;
  stop: string;
  retired: number;
}

const BATCH = 100_000;
const RFLAGS_IF = 1 << 9;

/**
 * Runs VP 0 of `p` (already loaded) until debug-exit, a stop, or `maxInstructions`. With `useApic` the VP's
 * interrupt controller is its own local APIC (src/hv/local-apic.ts, on the partition clock, its MMIO page and
 * MSRs answered by the VP), instead of the test controller. COM1 and isa-debug-exit are registered with the
 * partition as the worker registers its devices.
 */
export function runPartition(p: Partition, maxInstructions = 20_000_000, useApic = false): RunResult {
  let output = "";
  let exitValue: number | null = null;
  let stop = "";
  let dlab = false;
  const vp = p.vps[0]!;
  const testIrq = new TestInterrupts();
  const apic = useApic ? vp.apic : null;
  if (useApic && apic === null) throw new Error("useApic needs a partition with local APICs");
  if (!useApic) p.setInterruptController(0, testIrq);
  const irq: InterruptSource = apic ?? testIrq;
  p.registerPorts(
    0x3f8,
    8,
    {
      read: (_vp, port) => (port === 0x3fd ? 0x60 : 0xff),
      write: (_vp, port, _size, value) => {
        // With LCR.DLAB set, port 0x3f8 is the divisor latch, not data.
        if (port === 0x3fb) dlab = (value & 0x80) !== 0;
        else if (port === 0x3f8 && !dlab) output += String.fromCharCode(value & 0xff);
      },
    },
    "COM1 (test)",
  );
  p.registerPorts(
    0xf4,
    4,
    {
      read: () => 0xffffffff,
      write: (_vp, _port, _size, value) => {
        if (exitValue === null) {
          exitValue = value;
          stop = "debug-exit";
        }
      },
    },
    "isa-debug-exit (test)",
  );
  const ns = p.clock.nsPerInstruction;
  while (exitValue === null && stop === "") {
    if (vp.cpu.retired >= maxInstructions) {
      stop = "instruction-limit";
      break;
    }
    const now = p.clock.nowNs();
    let deadline = p.nextDeadlineNs();
    if (deadline <= now) {
      p.tick(now);
      deadline = p.nextDeadlineNs();
    }
    let budget = BATCH;
    if (deadline !== Infinity && p.clock.source === "deterministic") {
      budget = Math.max(1, Math.min(BATCH, Math.ceil((deadline - now) / ns)));
    }
    const r = p.runVp(0, budget);
    if (r.handling === ExitHandling.Handled) continue;
    switch (r.reason) {
      case ExitReason.BudgetExhausted:
      case ExitReason.InterruptWindow:
        break;
      case ExitReason.Hlt: {
        // HLT retired; the processor idles until an interrupt: skip time to the next timer deadline.
        if (irq.hasInterrupt()) break;
        const next = p.nextDeadlineNs();
        if ((vp.cpu.getRflags() & RFLAGS_IF) === 0 || next === Infinity) stop = "halted";
        else {
          p.clock.skipTo(next);
          p.tick(p.clock.nowNs());
        }
        break;
      }
      default:
        stop = `exit ${r.reason}`;
    }
  }
  return { output, exitValue, stop, retired: vp.cpu.retired };
}

/** A deterministic partition with the kernel `image` loaded at its Multiboot entry. */
export function bootPartition(image: Uint8Array, options: Partial<PartitionOptions> = {}): Partition {
  const p = new Partition({ memory: 32 << 20, time: "deterministic", ...options });
  const loaded = loadMultiboot(p.memory, image, { cmdline: "", bootLoaderName: "viridian-hv-test" });
  applyEntryState(p.vps[0]!.cpu, loaded.entry);
  return p;
}

/** Lines "key=value" (values hex as printed by HEX) of a kernel's output, as a map to numbers. */
export function parseValues(output: string): Map<string, bigint> {
  const m = new Map<string, bigint>();
  for (const line of output.split("\n")) {
    for (const part of line.trim().split(/\s+/)) {
      const eq = part.indexOf("=");
      if (eq > 0 && /^0x[0-9a-f]+$/.test(part.slice(eq + 1)))
        m.set(part.slice(0, eq), BigInt(part.slice(eq + 1)));
    }
  }
  return m;
}

/** FNV-1a over guest RAM and the hypervisor's state words. */
export function stateHash(p: Partition): string {
  let h = 0x811c9dc5;
  const b = p.memory.bytes;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  for (const w of p.stateWords()) {
    const s = String(w);
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}
