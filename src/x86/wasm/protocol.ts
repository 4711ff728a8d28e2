// Owns: the protocol between the run loop, the dispatcher and translation units: what a unit returns
// (Status) and the helpers units call through the dispatcher's bridge function (kinds and parameters).
// Must not: hold code; tier.ts, dispatch.ts and unit.ts all follow it.
// Spec: docs/decisions/0005-wasm-tier.md.

import { T } from "./encoder.js";

/** What a unit's `run` returns (the run loop reads RIP, the count and the index from the exchange area). */
export const enum Status {
  /** Stopped with RIP and the count exact, for the run loop to look at (budget, a posted exit, a terminal handler). */
  Done = 0,
  /** Instruction X.Index raised a fault or exit (the helper kept the signal); nothing of it retired. */
  Signal = 1,
  /** RIP names an instruction the interpreter must run once (its fault is the interpreter's to raise). */
  Interp = 2,
  /** The dispatch found no block for the entry: a translator bug. */
  Internal = 3,
  /** A branch left the unit (RIP exact, nothing else to look at): the dispatcher may go on to RIP's unit. */
  Branch = 4,
  /** The page offset given is not an entry of the unit: nothing ran. */
  NoEntry = 5,
}

/** Kinds of the bridged helper (BRIDGED order). */
export const enum Bridge {
  Rd = 0,
  Rdw = 1,
  Wr = 2,
  Hc = 3,
}
/** h(kind, a, b, c, d, e, f): the bridged helper with its kind (BRIDGED's order) and up to 6 arguments. */
export const BRIDGE_PARAMS = [T.I32, T.I32, T.I32, T.I32, T.I32, T.I32, T.I32] as const;

/** The JavaScript helpers the bridge forwards, in kind order, with their parameter types (i32 status). */
export const BRIDGED = {
  rd: [T.I32, T.I32, T.I32, T.I32],
  rdw: [T.I32, T.I32, T.I32, T.I32],
  wr: [T.I32, T.I32, T.I32, T.I32, T.I32, T.I32],
  hc: [T.I32, T.I32],
} as const;
