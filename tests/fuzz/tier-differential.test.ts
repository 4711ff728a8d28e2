// Owns: the differential fuzz of the translation tier: random but valid 64-bit instruction sequences
// (register, immediate and memory forms of the inline instructions, forms run through their handlers,
// branches, loops, calls, pushes and pops, faults in the middle of a unit (#GP, #DE, #UD, #PF), MMIO reads
// and writes, port I/O, and self-modifying stores into code ahead and behind) run on two processors in
// lockstep: one interpreting, one translating every page at its first block start. After every run()
// slice (random budgets) the exit, RIP, retired count, registers, RFLAGS and the touched memory must be
// identical.
// The sandbox is tier-sandbox.ts; bench/tier-diverge.ts narrows a failure down to one instruction.
// Knobs: VIRIDIAN_TIERFUZZ_SEQUENCES (default 400; VIRIDIAN_FULL=1: 4000), VIRIDIAN_TIERFUZZ_SEED.
// Spec: Intel SDM Vol. 3A 6.5-6.6 (precise exceptions), 8.1.3 (self-modifying code); docs/decisions/0005.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ExitReason } from "../../src/x86/vm-exit.js";
import { build, machine, Rng, slice, state } from "./tier-sandbox.js";

const FULL = process.env.VIRIDIAN_FULL === "1";
const SEQUENCES = Number(process.env.VIRIDIAN_TIERFUZZ_SEQUENCES ?? (FULL ? 4000 : 400));
const SEED = Number(process.env.VIRIDIAN_TIERFUZZ_SEED ?? 0x7e1f0015);

test(
  `interpreter and translation tier agree after ${SEQUENCES} random sequences, slice by slice`,
  { timeout: 1_800_000 },
  () => {
    const failures: string[] = [];
    let translated = 0;
    for (let s = 0; s < SEQUENCES && failures.length < 3; s++) {
      const seed = (SEED + s * 0x9e3779b9) >>> 0;
      const code = build(new Rng(seed));
      const a = machine(code, -1, new Rng(seed ^ 0x55));
      const b = machine(code, 0, new Rng(seed ^ 0x55));
      const budgets = new Rng(seed ^ 0xaa);
      for (let step = 0; step < 400; step++) {
        const budget = budgets.chance(0.3) ? 1 + budgets.below(8) : 1 + budgets.below(400);
        const ra = slice(a, budget);
        const rb = slice(b, budget);
        const sa = state(a);
        const sb = state(b);
        if (ra !== rb || sa !== sb) {
          failures.push(
            `seed 0x${seed.toString(16)} step ${step} budget ${budget}: exit ${ra} vs ${rb}\ninterpreter:\n${sa}\ntier:\n${sb}\ncode: ${Buffer.from(code).toString("hex")}`,
          );
          break;
        }
        if (ra === ExitReason.Hlt || ra === ExitReason.TripleFault) break;
      }
      translated += b.cpu.translatedBlocks;
    }
    assert.deepEqual(failures, []);
    assert.ok(translated > SEQUENCES, `units were compiled (${translated})`);
  },
);
