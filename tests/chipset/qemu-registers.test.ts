// Cross-check against QEMU 7.2: tests/chipset/registers.asm programs the PC devices and records register
// values that do not depend on timing; the same kernel runs under `viridian run --kernel` (the PC machine:
// this project's chipset behind the hypervisor) and under QEMU (SeaBIOS, i440FX/PIIX), and the printed values
// must agree. The kernel's header lists the behaviours left out on purpose where QEMU departs from the
// datasheets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { kernelOutput, qemuAvailable, runQemu } from "../../src/host/qemu-runner.js";
import { runViridian } from "../kernels/run-viridian.js";

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

test("chipset registers agree with QEMU 7.2 (PIC, UART, RTC, PIT, i8042, ACPI PM, I/O APIC)", async (t) => {
  if (!qemuAvailable()) {
    t.skip("qemu-system-x86_64 is not installed");
    return;
  }
  const elf = assembleRegisters();
  const ours = await runViridian(["--kernel", elf, "--max-instructions", "20000000", "--state"]);
  assert.equal(ours.status, 1, `debug-exit 0 expected:\n${ours.output}\n${ours.stderr}`);
  const qemu = await runQemu(elf, { timeoutMs: 60_000 });
  assert.equal(qemu.timedOut, false);
  const theirs = kernelOutput(qemu.output).replace(/\r/g, "");
  assert.match(theirs, /done\n$/);
  assert.equal(ours.output, theirs);
  assert.equal(ours.output.split("\n").length, 52 + 2, "52 values, done, final newline");
});
