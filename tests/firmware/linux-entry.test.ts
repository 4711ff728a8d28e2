// Integration: the 64-bit entry state from prepareLinuxBoot, applied to the emulated processor, runs the
// bundled guest kernel's decompressor (startup_64 of arch/x86/boot/compressed: relocation, its own page
// tables, decompression, ELF parsing) until it has written the decompressed vmlinux over the load address.
// Reads the committed guest/bzImage (a missing file fails the test).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { GuestMemory } from "../../src/memory/guest-memory.js";
import { Cpu } from "../../src/x86/cpu.js";
import { ExitReason } from "../../src/x86/vm-exit.js";
import { applyLinuxEntryState, describeProcessor } from "../../src/worker/processor-state.js";
import { prepareLinuxBoot } from "../../src/firmware/prepare-linux.js";

const MiB = 1024 * 1024;

test("the bundled kernel's decompressor runs from the 64-bit entry state and unpacks vmlinux", (t) => {
  // The bundled guest kernel is committed (guest/README.md); a missing file must fail, not skip.
  const kernel = readFileSync("guest/bzImage");
  const memory = new GuestMemory(256 * MiB);
  // VIRIDIAN_JIT_THRESHOLD overrides the translation threshold (-1: interpreter only) for comparisons.
  const jit = process.env.VIRIDIAN_JIT_THRESHOLD;
  const cpu = new Cpu(memory, { jitThreshold: jit ? Number(jit) : undefined });
  const p = prepareLinuxBoot(memory, { kernel, cmdline: "console=ttyS0", cpus: 1 });
  const payload = kernel.subarray(p.boot.header.kernelOffset, p.boot.header.kernelOffset + 4096);
  applyLinuxEntryState(cpu, p.entry);
  // No devices: the decompressor's console writes go nowhere. It runs until the instruction limit.
  const c0 = process.cpuUsage();
  let reason = ExitReason.BudgetExhausted;
  while (cpu.retired < 40_000_000 && reason === ExitReason.BudgetExhausted)
    reason = cpu.run(Math.min(100_000, 40_000_000 - cpu.retired));
  const cu = process.cpuUsage(c0);
  const retired = cpu.retired;
  t.diagnostic(
    `${retired} instructions, ${((cu.user + cu.system) / 1000).toFixed(0)} ms CPU, ` +
      `${cpu.translatedBlocks} blocks translated`,
  );
  const head = new Uint8Array(4096);
  memory.read(p.boot.kernel.base, head);
  assert.ok(
    retired > 1_000_000,
    `stopped after ${retired} instructions (exit ${reason}):\n${describeProcessor(cpu)}`,
  );
  // The decompressor moved itself to the end of init_size, built page tables of its own and wrote the
  // decompressed kernel at the load address: the first page no longer holds the compressed image.
  assert.notDeepEqual(head, payload, "the load address still holds the compressed image");
  assert.notEqual(
    cpu.getControl("cr3").lo,
    p.entry.cr3,
    "the decompressor did not switch to its own page tables",
  );
});
