// Owns: tuning the JavaScript engine for the x86 translation tier at process start: V8 compiles
// WebAssembly with its baseline compiler (Liftoff) only. Measured on the Linux boot (docs/decisions/0005):
// letting V8 tier hot translation units up to its optimizing compiler costs more background CPU time
// (20 s for a 7 s boot on this machine) than the faster code saves; a unit's one large function with
// hundreds of blocks and exits is expensive for the optimizing compiler. And V8 optimises the emulator's own
// JavaScript later than by default (a larger interrupt budget), so it optimises with fuller type feedback.
// Must not: be called after WebAssembly code was compiled (flags apply to later compilations), or
// change anything when VIRIDIAN_WASM_OPTIMIZE=1 asks for V8's default tiering (experiments).
// Spec: V8 flags --liftoff-only, --interrupt-budget (node --v8-options).

import { setFlagsFromString } from "node:v8";

/**
 * V8's tier-up budget for the emulator's own JavaScript: 4x V8's default (66 KiB of bytecode executed per
 * profiler tick), so TurboFan optimises a function after more of its paths have run and with their type
 * feedback. With the default, the bundled boot compiled ~630 functions, many of them again after a
 * deoptimisation at a path first met after the optimisation; measured (docs/decisions/0005, Round 5): fewer
 * compiles and deoptimisations and less boot CPU, the same md5 throughput.
 */
const JS_INTERRUPT_BUDGET = 4 * 67584;

let done = false;

/** Applies the engine settings once per process (the CLI, the benchmarks and the test runner call it). */
export function tuneWasmEngine(): void {
  if (done) return;
  done = true;
  if (process.env.VIRIDIAN_WASM_OPTIMIZE === "1") return;
  setFlagsFromString("--liftoff-only");
  setFlagsFromString(`--interrupt-budget=${JS_INTERRUPT_BUDGET}`);
}
