// Owns: implementations of the `Clock` every timer device reads (src/contracts/platform.ts): a deterministic
// one the worker can drive from retired instructions or tests can step by hand, a wall-time one, and exact
// nanosecond <-> oscillator-tick conversions shared by the PIT, RTC, UART and ACPI PM timer.
// Must not: schedule callbacks or own a run loop: devices report their next deadline (`nextDeadlineNs`) and
// the run loop calls `tick(nowNs)` when it has passed, so time stays a pure function of what the loop feeds.
// Spec: ARCHITECTURE.md "Time" (one virtual clock per partition; wall or deterministic source).

import type { Clock } from "../contracts/platform.js";

/** Time that moves only when told to: tests and the deterministic (instruction-driven) mode. */
export class ManualClock implements Clock {
  private ns: number;

  constructor(startNs = 0) {
    this.ns = Math.max(0, Math.ceil(startNs));
  }

  nowNs(): number {
    return this.ns;
  }

  /** Moves time forward to `ns`; a value in the past is ignored, keeping the clock monotonic. */
  set(ns: number): void {
    if (ns > this.ns) this.ns = Math.ceil(ns);
  }

  advance(deltaNs: number): void {
    if (deltaNs > 0) this.ns += Math.ceil(deltaNs);
  }
}

/** Host monotonic time (performance.now, available in Node and browsers) since construction. */
export class WallClock implements Clock {
  private readonly origin = globalThis.performance.now();

  nowNs(): number {
    return Math.floor((globalThis.performance.now() - this.origin) * 1e6);
  }
}

const NS_PER_S = 1e9;

/**
 * Whole ticks of a `hz` oscillator in `ns` nanoseconds, exact for any ns below 2^53: the product ns * hz
 * would lose integer precision after a few seconds, so whole seconds and the remainder are scaled apart.
 */
export function ticksIn(ns: number, hz: number): number {
  if (!(ns > 0)) return 0;
  const s = Math.floor(ns / NS_PER_S);
  const rem = ns - s * NS_PER_S;
  return s * hz + Math.floor((rem * hz) / NS_PER_S);
}

/**
 * The first nanosecond at which `ticksIn(ns, hz) >= ticks` (the inverse of ticksIn), exact below 2^53 ns
 * (104 days). Beyond that doubles are coarser than a nanosecond; the result is then nudged up until it
 * really reaches `ticks`, so a deadline computed here is never one a tick at that time fails to pass.
 */
export function nsForTicks(ticks: number, hz: number): number {
  if (!(ticks > 0)) return 0;
  const s = Math.floor(ticks / hz);
  const rem = ticks - s * hz;
  let ns = s * NS_PER_S + Math.ceil((rem * NS_PER_S) / hz);
  while (ticksIn(ns, hz) < ticks) ns += Math.max(1, ns * Number.EPSILON);
  return ns;
}
