// Integration: the 64-bit entry state from prepareLinuxBoot, applied to the emulated processor, runs the
// bundled guest kernel's decompressor (startup_64 of arch/x86/boot/compressed: relocation, its own page
// tables, decompression, ELF parsing) until it has written the decompressed vmlinux over the load address.
// Skips when no guest/bzImage is in the tree and no `guest` branch holds one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { GuestMemory } from "../../src/memory/guest-memory.js";
import { Cpu } from "../../src/x86/cpu.js";
import { Reg, Seg } from "../../src/x86/processor.js";
import { Machine } from "../../src/worker/machine.js";
import { prepareLinuxBoot } from "../../src/firmware/prepare-linux.js";
import type { EntryState } from "../../src/firmware/entry-state.js";

const MiB = 1024 * 1024;

function realKernel(): Uint8Array | null {
  if (existsSync("guest/bzImage")) return readFileSync("guest/bzImage");
  try {
    return execFileSync("git", ["show", "guest:guest/bzImage"], {
      maxBuffer: 64 * MiB,
      stdio: ["ignore", "pipe", "ignore"],
    });
  } catch {
    return null;
  }
}

/** Applies a long-mode EntryState (the worker will own this; here it checks the state is complete). */
function apply(cpu: Cpu, e: EntryState): void {
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
  cpu.setReg(Reg.RSI, e.registers.rsi ?? 0, 0);
  cpu.setReg(Reg.RSP, e.registers.rsp ?? 0, 0);
  cpu.setRip(e.rip, 0);
}

test("the bundled kernel's decompressor runs from the 64-bit entry state and unpacks vmlinux", (t) => {
  const kernel = realKernel();
  if (!kernel) {
    t.skip("no guest/bzImage in the tree and no `guest` branch to read it from");
    return;
  }
  const memory = new GuestMemory(256 * MiB);
  // VIRIDIAN_JIT_THRESHOLD overrides the translation threshold (-1: interpreter only) for comparisons.
  const jit = process.env.VIRIDIAN_JIT_THRESHOLD;
  const cpu = new Cpu(memory, { jitThreshold: jit ? Number(jit) : undefined });
  const machine = new Machine({ memory, processor: cpu, serial: () => {}, maxInstructions: 40_000_000 });
  const p = prepareLinuxBoot(memory, { kernel, cmdline: "console=ttyS0", cpus: 1 });
  const payload = kernel.subarray(p.boot.header.kernelOffset, p.boot.header.kernelOffset + 4096);
  apply(cpu, p.entry);
  const c0 = process.cpuUsage();
  const stop = machine.run();
  const cu = process.cpuUsage(c0);
  t.diagnostic(
    `${stop.retired} instructions, ${((cu.user + cu.system) / 1000).toFixed(0)} ms CPU, ` +
      `${cpu.translatedBlocks} blocks translated`,
  );
  const head = new Uint8Array(4096);
  memory.read(p.boot.kernel.base, head);
  assert.ok(
    stop.retired > 1_000_000,
    `stopped after ${stop.retired} instructions: ${stop.message}\n${machine.inspect()}`,
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
