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
import { ExitReason } from "../../src/x86/vm-exit.js";
import { loadMultiboot } from "../../src/firmware/multiboot.js";
import { applyEntryState } from "../../src/worker/machine.js";
import { kernelOutput, qemuAvailable, runQemu } from "../../src/host/qemu-runner.js";
import { Chipset } from "../../src/chipset/pc-chipset.js";
import { ManualClock } from "../../src/chipset/clock.js";
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
  const clock = new ManualClock(0);
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
  for (let batches = 0; exit < 0 && batches < 10_000; batches++) {
    const r = cpu.run(100_000);
    const e = cpu.exit;
    switch (r) {
      case ExitReason.Io:
        if (e.isWrite) cs.ports.write(e.port, e.size, e.valueLo);
        else cpu.completeIoRead(cs.ports.read(e.port, e.size));
        break;
      case ExitReason.Mmio:
        if (e.isWrite) cs.mmio.write(e.gpa, e.size, e.valueLo, e.valueHi);
        else if (e.size === 8) {
          const q = cs.mmio.readQword(e.gpa);
          cpu.completeMmioRead(q.lo, q.hi);
        } else cpu.completeMmioRead(cs.mmio.read(e.gpa, e.size) >>> 0, 0);
        break;
      case ExitReason.BudgetExhausted:
        break;
      default:
        assert.fail(`unexpected exit ${r} at ${output.length} bytes of output`);
    }
    clock.advance(100_000); // whole batches only: 1 ns per instruction
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
