// Owns: the partition clock of the PC machine: host time, except that with a pacing floor set, while the
// processor computes, virtual time may advance by at most `1 / minInstructionsPerSecond` per retired
// instruction (without a floor it is plain host time, which keeps the guest's calendar exact). An emulated processor
// runs 100x slower than hardware (more on a loaded host), and a guest measuring loops in host time sees
// them take seconds: Linux's soft-lockup detector fires (`BUG: soft lockup ... stuck for 23s` in the stock
// kernel's W+X page-table scan on a loaded host) and timeouts expire. The time the clock falls behind the
// host (the lag) is made up while the processor is halted, in steps (`skip`) to the next device deadline or
// a bounded step: the guest wakes for its timers as after a short pause, instead of seeing one big jump
// (which Linux reports as an RCU stall). An idle guest (a shell prompt) is then on the host's calendar time.
// Must not: go backwards (every reader -- TSC, PIT, PM timer, RTC, APIC timer -- relies on it), or schedule
// anything: the run loop tells it when a batch ended (`settle`), when the processor halts or resumes, and
// how far to skip.
// Spec: ARCHITECTURE.md "Time" (one virtual clock per partition); the Clock contract of src/contracts/platform.ts.

import type { Clock } from "../contracts/platform.js";
import { DOUBLE_ZERO } from "../support/heap-number.js";

export class PacedClock implements Clock {
  private readonly origin: number;
  private readonly hostMs: () => number;
  private readonly nsPerInstruction: number;
  private instructions: () => number = () => 0;
  private baseNs = DOUBLE_ZERO;
  private baseHostNs = DOUBLE_ZERO;
  private baseInstructions = 0;
  private lastNs = DOUBLE_ZERO;
  private free = false;
  /** Total virtual time skipped forward to catch up with the host (diagnostics). */
  caughtUpNs = DOUBLE_ZERO;

  /**
   * @param minInstructionsPerSecond the pacing floor: the guest sees at least this many instructions per
   *   second of its time; null = no pacing (host time).
   */
  constructor(
    minInstructionsPerSecond: number | null,
    hostMs: () => number = () => globalThis.performance.now(),
  ) {
    if (minInstructionsPerSecond !== null && !(minInstructionsPerSecond > 0))
      throw new RangeError("minInstructionsPerSecond must be positive");
    this.nsPerInstruction = minInstructionsPerSecond === null ? Infinity : 1e9 / minInstructionsPerSecond;
    this.hostMs = hostMs;
    this.origin = hostMs();
  }

  /** The retired-instruction counter that paces the clock (the processor's, including its current batch). */
  attach(instructions: () => number): void {
    this.instructions = instructions;
    this.baseInstructions = instructions();
  }

  private hostNs(): number {
    return Math.floor((this.hostMs() - this.origin) * 1e6);
  }

  nowNs(): number {
    const host = this.hostNs() - this.baseHostNs;
    const step =
      this.free || this.nsPerInstruction === Infinity
        ? host
        : Math.min(host, (this.instructions() - this.baseInstructions) * this.nsPerInstruction);
    const v = this.baseNs + Math.floor(step);
    if (v <= this.lastNs) return this.lastNs;
    this.lastNs = v;
    return v;
  }

  /** Starts a new pacing window at the current time (after every batch, so credit never accumulates). */
  settle(): void {
    this.baseNs = this.nowNs();
    this.baseHostNs = this.hostNs();
    this.baseInstructions = this.instructions();
  }

  /** The processor halted: time follows the host (still behind it by the lag) until `resume`. */
  halt(): void {
    this.baseNs = this.nowNs();
    this.baseHostNs = this.hostNs();
    this.free = true;
  }

  /** While halted: moves virtual time forward by up to `ns`, never past the host's time; returns the skip. */
  skip(ns: number): number {
    const step = Math.floor(Math.min(ns, this.lagNs()));
    if (!this.free || !(step > 0)) return 0;
    this.baseNs += step;
    this.caughtUpNs += step;
    this.nowNs();
    return step;
  }

  /** The processor computes again: pacing applies from here. */
  resume(): void {
    this.settle();
    this.free = false;
  }

  /** How far virtual time is behind the host now, in ns. */
  lagNs(): number {
    return Math.max(0, this.hostNs() - this.nowNs());
  }
}
