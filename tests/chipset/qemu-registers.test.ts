// Cross-check against QEMU 7.2: tests/chipset/registers.asm programs the PC devices and records register
// values that do not depend on timing; the same kernel runs on the real emulated processor with this
// project's chipset and under QEMU (SeaBIOS, i440FX/PIIX), and the printed values must agree. The kernel's
// header lists the behaviours left out on purpose where QEMU departs from the datasheets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { GuestMemory } from "../../src/memory/guest-memory.js";
import { Cpu } from "../../src/x86/cpu.js";
import { ExitReason, type MmioIntercept } from "../../src/x86/vm-exit.js";
import { loadMultiboot } from "../../src/firmware/multiboot.js";
import { applyEntryState } from "../../src/worker/machine.js";
import { kernelOutput, qemuAvailable, runQemu } from "../../src/host/qemu-runner.js";
import { Chipset } from "../../src/chipset/pc-chipset.js";
import { DebugExit, DEBUG_EXIT_PORT, DEBUG_EXIT_SIZE } from "../../src/chipset/debug-exit.js";

const SOURCE_DIR = fileURLToPath(new URL("../../../tests/", import.meta.url));
const BUILD_DIR = join(SOURCE_DIR, "kernels", "build");

function assembleRegisters(): string {
  mkdirSync(BUILD_DIR, { recursive: true });
  const out = join(BUILD_DIR, "chipset-registers.elf");
  const r = spawnSync(
    "nasm",
    [
      "-f",
      "bin",
      "-I",
      join(SOURCE_DIR, "kernels") + "/",
      "-o",
      out,
      join(SOURCE_DIR, "chipset", "registers.asm"),
    ],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`nasm registers.asm failed: ${r.stderr}`);
  return out;
}

/** Runs a Multiboot kernel on the emulated processor with the full chipset; returns its COM1 output. */
function runOnChipset(elf: string): { output: string; exit: number } {
  const memory = new GuestMemory(128 * 1024 * 1024);
  const cpu = new Cpu(memory, { deterministic: true });
  // 1 ns per instruction, including the batch running now (device reads happen inside a batch).
  let running = false;
  const clock = { nowNs: (): number => cpu.retired + (running ? cpu.count : 0) };
  let output = "";
  let exit = -1;
  const cs = new Chipset({
    clock,
    hostSeconds: () => Date.now() / 1000,
    com1: (b) => (output += String.fromCharCode(b)),
    onPowerOff: () => assert.fail("power-off"),
    onReset: () => assert.fail("reset"),
    memoryBelow4G: memory.size,
  });
  cs.ports.map(DEBUG_EXIT_PORT, DEBUG_EXIT_SIZE, new DebugExit((v) => (exit = v)), "isa-debug-exit");
  const loaded = loadMultiboot(memory, new Uint8Array(readFileSync(elf)), {
    cmdline: "",
    bootLoaderName: "viridian",
  });
  applyEntryState(cpu, loaded.entry);
  cpu.controls.ioBitmap.fill(0xff);
  cpu.controls.hltExiting = true;
  cpu.ports = {
    read: (port, size) => cs.ports.read(port, size),
    write: (port, size, value) => cs.ports.write(port, size, value),
  };
  const mmio: MmioIntercept = {
    hi: 0,
    read: (gpa, size) => {
      if (size !== 8) return cs.mmio.read(gpa, size);
      const q = cs.mmio.readQword(gpa);
      mmio.hi = q.hi;
      return q.lo;
    },
    write: (gpa, size, lo, hi) => cs.mmio.write(gpa, size, lo, hi),
  };
  cpu.mmio = mmio;
  for (let batches = 0; exit < 0 && batches < 100_000; batches++) {
    running = true;
    const r = cpu.run(100_000);
    running = false;
    switch (r) {
      case ExitReason.BudgetExhausted:
        break;
      default:
        assert.fail(`unexpected exit ${r} at ${output.length} bytes of output`);
    }
    cs.tick(clock.nowNs());
  }
  return { output, exit };
}

test("chipset registers agree with QEMU 7.2 (PIC, UART, RTC, PIT, i8042, ACPI PM, I/O APIC)", async (t) => {
  if (!qemuAvailable()) {
    t.skip("qemu-system-x86_64 is not installed");
    return;
  }
  const elf = assembleRegisters();
  const ours = runOnChipset(elf);
  assert.equal(ours.exit, 0, ours.output);
  const qemu = await runQemu(elf, { timeoutMs: 60_000 });
  assert.equal(qemu.timedOut, false);
  const theirs = kernelOutput(qemu.output).replace(/\r/g, "");
  assert.match(theirs, /done\n$/);
  assert.equal(ours.output, theirs);
  assert.equal(ours.output.split("\n").length, 52 + 2, "52 values, done, final newline");
});
