// Owns: the translation tier's runtime module, built once per process with our encoder: the flag
// functions translated code calls when the producer of the flags it reads is not known where it reads them
// (at a block start, after a helper call): a condition code, the carry flag, and RFLAGS, each dispatching
// on the lazy operation and size to the same formulas as the statically known case (flags-emit.ts).
// Must not: hold state (pure functions of their arguments) or know about registers and memory.
// Spec: flags.ts (lazy flags), Intel SDM Vol. 1 3.4.3, B.1.

import { ModuleBuilder, Op, T } from "./encoder.js";
import { Emitter } from "./emitter.js";
import { emitCond, emitFlag, emitMaterialize, Flag, type FlagState, LZ_DEC } from "./flags-emit.js";

/** Parameter types of the flag functions after their leading arguments: op, size, a, b, r, cin, flags. */
const STATE = [T.I32, T.I32, T.I64, T.I64, T.I64, T.I32, T.I32] as const;

export interface RuntimeFunctions {
  /** f(kind, cc, op, size, a, b, r, cin, flags): kind 0 cond, 1 cf, 2 rflags (cc used by cond only). */
  f: (...args: never[]) => unknown;
  /** cond(cc, op, size, a, b, r, cin, flags) -> 0/1 */
  cond: (...args: never[]) => unknown;
  /** cf(op, size, a, b, r, cin, flags) -> 0/1 */
  cf: (...args: never[]) => unknown;
  /** rflags(op, size, a, b, r, cin, flags) -> RFLAGS */
  rflags: (...args: never[]) => unknown;
}

/**
 * Emits `switch (selector) { case i: body(i) }` where every body returns; selectors outside 0..n-1 run
 * `dflt`, which must return or trap.
 */
function switchReturn(e: Emitter, selector: () => void, n: number, body: (i: number) => void): void {
  const outer = e.block();
  for (let i = n - 1; i >= 0; i--) e.block();
  selector();
  e.brTable(
    Array.from({ length: n }, (_, i) => i),
    n,
  );
  for (let i = 0; i < n; i++) {
    e.end();
    body(i);
  }
  e.end();
  void outer;
  e.op(Op.Unreachable);
}

/** Dispatches on (op, size) of the parameters at `first` and calls leaf(state) in each reachable case. */
function perOpSize(e: Emitter, first: number, leaf: (s: FlagState) => void): void {
  switchReturn(
    e,
    () => e.get(first),
    LZ_DEC + 1,
    (op) =>
      switchReturn(
        e,
        () => e.get(first + 1),
        9,
        (size) => {
          if (size !== 1 && size !== 2 && size !== 4 && size !== 8) {
            e.op(Op.Unreachable);
            return;
          }
          leaf({ op, size, a: first + 2, b: first + 3, r: first + 4, cin: first + 5, flags: first + 6 });
        },
      ),
  );
}

function build(): Uint8Array {
  const m = new ModuleBuilder();

  // cond: per operation and size, each condition code by its own formula (flags-emit.ts).
  const ec = new Emitter(8);
  perOpSize(ec, 1, (s) =>
    switchReturn(
      ec,
      () => ec.get(0),
      16,
      (cc) => {
        emitCond(ec, cc, s);
        ec.op(Op.Return);
      },
    ),
  );
  m.exportFunc("cond", m.addFunc([T.I32, ...STATE], [T.I32], ec));

  const ef = new Emitter(7);
  perOpSize(ef, 0, (s) => {
    emitFlag(ef, Flag.CF, s);
    ef.op(Op.Return);
  });
  m.exportFunc("cf", m.addFunc([...STATE], [T.I32], ef));

  const er = new Emitter(7);
  perOpSize(er, 0, (s) => {
    emitMaterialize(er, s);
    er.op(Op.Return);
  });
  const rflags = m.addFunc([...STATE], [T.I32], er);
  m.exportFunc("rflags", rflags);

  // f(kind, cc, state...): cond (0), cf (1) or rflags (2), for units to import as one function.
  const ef2 = new Emitter(9);
  switchReturn(
    ef2,
    () => ef2.get(0),
    3,
    (kind) => {
      if (kind === 0) ef2.get(1);
      for (let i = 2; i < 9; i++) ef2.get(i);
      ef2.call(kind);
      ef2.op(Op.Return);
    },
  );
  m.exportFunc("f", m.addFunc([T.I32, T.I32, ...STATE], [T.I32], ef2));
  return m.finish();
}

let runtime: RuntimeFunctions | null = null;

/** The runtime's functions (compiled on first use, then shared by every unit of every processor). */
export function runtimeFunctions(): RuntimeFunctions {
  if (runtime === null) {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(build()));
    const x = inst.exports as Record<string, (...args: never[]) => unknown>;
    runtime = { f: x.f!, cond: x.cond!, cf: x.cf!, rflags: x.rflags! };
  }
  return runtime;
}
