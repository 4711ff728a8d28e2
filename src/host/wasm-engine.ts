// Owns: tuning the JavaScript engine for the x86 translation tier at process start: V8 compiles
// WebAssembly with its baseline compiler (Liftoff) only. Measured on the Linux boot (docs/decisions/0005):
// letting V8 tier hot translation units up to its optimizing compiler costs more background CPU time
// (20 s for a 7 s boot on this machine) than the faster code saves; a unit's one large function with
// hundreds of blocks and exits is expensive for the optimizing compiler.
// Must not: be called after WebAssembly code was compiled (flags apply to later compilations), or
// change anything when VIRIDIAN_WASM_OPTIMIZE=1 asks for V8's default tiering (experiments).
// Spec: V8 flags --liftoff-only (node --v8-options).

import { setFlagsFromString } from "node:v8";

let done = false;

/** Applies the engine settings once per process (the CLI, the benchmarks and the test runner call it). */
export function tuneWasmEngine(): void {
  if (done) return;
  done = true;
  if (process.env.VIRIDIAN_WASM_OPTIMIZE === "1") return;
  setFlagsFromString("--liftoff-only");
}
