// Owns: the translation tier's divergence finder, a developer tool: runs 64-bit code on two processors in
// the differential fuzz's sandbox (tests/fuzz/tier-sandbox.ts), one interpreting and one translating every
// page at its first block start, slice by slice as the fuzz does; at the first slice whose outcome differs
// it starts both again, runs them to the slice before and then one instruction at a time, and prints the
// first instruction after which they disagree, both states, and the unit that ran it (its instruction
// table and WebAssembly text, WasmTier.unitListing).
// Run: npm run build && node --liftoff-only dist/bench/tier-diverge.js [--seed N] [--count N] [--code FILE]
// (--code: raw 64-bit machine code loaded at the sandbox's code address; otherwise the fuzz's generator
// makes `count` sequences from `seed`). Exit status 1 when a divergence was found.
// Must not: be part of the test suite (the fuzz is), or print anything for agreeing runs beyond a summary.
// Spec: docs/x86-internals.md ("Debugging a unit"); docs/decisions/0005-wasm-tier.md.
import { readFileSync } from "node:fs";
import { disassembleBytes } from "../src/x86/disasm.js";
import { ExitReason } from "../src/x86/vm-exit.js";
import { tuneWasmEngine } from "../src/host/wasm-engine.js";
import { build, CODE_BASE, machine, type Machine, Rng, slice, state } from "../tests/fuzz/tier-sandbox.js";

const SLICES = 400;

function budgets(seed: number): number[] {
  const g = new Rng(seed ^ 0xaa);
  return Array.from({ length: SLICES }, () => (g.chance(0.3) ? 1 + g.below(8) : 1 + g.below(400)));
}

function pair(code: Uint8Array, seed: number): [Machine, Machine] {
  return [machine(code, -1, new Rng(seed ^ 0x55)), machine(code, 0, new Rng(seed ^ 0x55))];
}

/** The first slice at which the two disagree, or -1. */
function firstBadSlice(code: Uint8Array, seed: number): number {
  const [a, b] = pair(code, seed);
  const bs = budgets(seed);
  for (let i = 0; i < bs.length; i++) {
    const ra = slice(a, bs[i]!);
    const rb = slice(b, bs[i]!);
    if (ra !== rb || state(a) !== state(b)) return i;
    if (ra === ExitReason.Hlt || ra === ExitReason.TripleFault) return -1;
  }
  return -1;
}

function report(code: Uint8Array, seed: number, bad: number): void {
  const [a, b] = pair(code, seed);
  const bs = budgets(seed);
  for (let i = 0; i < bad; i++) {
    slice(a, bs[i]!);
    slice(b, bs[i]!);
  }
  // One instruction at a time from there (the tier runs single instructions of its units as well).
  for (let step = 0; step < bs[bad]!; step++) {
    const rip = a.cpu.getRip();
    const ra = slice(a, 1);
    const rb = slice(b, 1);
    const sa = state(a);
    const sb = state(b);
    if (ra === rb && sa === sb) continue;
    const off = rip.lo - CODE_BASE;
    const bytes = off >= 0 && off < code.length ? code.subarray(off, off + 15) : new Uint8Array(0);
    const [text] = disassembleBytes(bytes, 2, a.cpu.cpuid, rip.lo);
    console.log(`divergence after the instruction at ${rip.lo.toString(16)}: ${text}`);
    console.log(`exit reason: interpreter ${ra}, tier ${rb} (vm-exit.ts ExitReason)`);
    console.log(`interpreter:\n${sa}\ntier:\n${sb}`);
    const listing = b.cpu.tier?.unitListing(Math.floor(rip.lo / 4096));
    console.log(
      listing ?? "(no unit on that page: the difference comes from the interpreter's side of the tier)",
    );
    return;
  }
  console.log(`slice ${bad} differs, but no single instruction does (a budget or exit boundary effect)`);
}

tuneWasmEngine();
const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const file = opt("--code");
const seed0 = Number(opt("--seed") ?? 0x7e1f0015);
const count = file !== undefined ? 1 : Number(opt("--count") ?? 100);
let found = false;
for (let s = 0; s < count && !found; s++) {
  const seed = (seed0 + s * 0x9e3779b9) >>> 0;
  const code = file !== undefined ? new Uint8Array(readFileSync(file)) : build(new Rng(seed));
  const bad = firstBadSlice(code, seed);
  if (bad < 0) continue;
  found = true;
  console.log(`seed 0x${seed.toString(16)}: first differing slice ${bad}`);
  report(code, seed, bad);
}
if (!found) console.log(`no divergence in ${count} sequence(s) from seed 0x${seed0.toString(16)}`);
process.exitCode = found ? 1 : 0;
