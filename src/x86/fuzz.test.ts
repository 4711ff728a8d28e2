// Hostile-guest robustness: random instruction bytes in real, 32-bit protected and 64-bit mode must only
// ever produce architectural outcomes (exits, faults, triple fault) — never a host exception or a hang.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CODE_BASE, machine, type Mode, setupMode } from "./nasm-harness.test.js";
import { ExitReason } from "./vm-exit.js";

function xorshift(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

function fuzz(mode: Mode, seeds: number): { exits: Map<number, number>; retired: number } {
  const exits = new Map<number, number>();
  let retired = 0;
  const { cpu, mem } = machine(mode, new Uint8Array(0));
  for (let seed = 1; seed <= seeds; seed++) {
    const rnd = xorshift(seed * 7919);
    const code = new Uint8Array(4096);
    for (let i = 0; i < code.length; i++) code[i] = rnd() & 0xff;
    setupMode(cpu, mem, mode, code);
    const before = cpu.retired;
    for (let step = 0; step < 50; step++) {
      const r = cpu.run(500);
      exits.set(r, (exits.get(r) ?? 0) + 1);
      if (r === ExitReason.TripleFault || r === ExitReason.Hlt || r === ExitReason.BudgetExhausted) break;
      if (r === ExitReason.Rdmsr) cpu.injectException(13, 0);
      else if (r === ExitReason.Wrmsr) cpu.injectException(13, 0);
      else if (r === ExitReason.Cpuid) cpu.completeCpuid(0, 0, 0, 0);
      else if (r === ExitReason.Vmcall) cpu.completeVmcall();
      else if (r === ExitReason.AccessViolation) break;
    }
    retired += cpu.retired - before;
    assert.ok(Number.isInteger(cpu.getRip().lo));
  }
  return { exits, retired };
}

for (const mode of ["real", "prot32", "long64"] as const) {
  test(`random code in ${mode} mode yields only architectural outcomes`, () => {
    const { retired } = fuzz(mode, 150);
    assert.ok(retired > 0);
    assert.ok(CODE_BASE > 0);
  });
}
