// Owns: a partition's one virtual clock (wall or deterministic) and the arithmetic that derives everything
// the guest reads from it: the TSC, the partition reference counter (100 ns units) and the reference TSC
// page's scale and offset, plus the inverse (the nanosecond at which the reference counter reaches a count,
// for timer deadlines).
// Must not: know processors, memory or timers; the partition feeds it retired-instruction counts.
// Spec: TLFS timers.md "Reference Counter" (starts at 0 at partition creation, monotonic, 100 ns units) and
// "Partition Reference TSC Mechanism" (ReferenceTime = ((VirtualTsc * TscScale) >> 64) + TscOffset);
// ARCHITECTURE.md "Time" (wall, deterministic or worker-chosen source). The TSC formula is the one src/x86/core.ts uses
// (floor((clockNs - clock0) * tscHz / 1e9), clock0 = 0 here because processors are built before the clock
// starts), so the TSC page, TIME_REF_COUNT and RDTSC agree at every instant.

import type { Clock } from "../contracts/platform.js";
import { DOUBLE_ZERO } from "../support/heap-number.js";

export type TimeSource = "wall" | "deterministic" | "external";

const TWO64 = 1n << 64n;

/**
 * The partition's time in whole nanoseconds. Before `start()` it reads 0 (processors are created then, so
 * their TSC origin is exactly 0). Wall: host monotonic time since start. Deterministic: a pure function of
 * retired instructions plus idle time the run loop skipped (`skipTo`), so a run is reproducible. External:
 * the worker's source (its pacing policy) since start; the chipset and local APIC then read this clock too,
 * so the TSC, reference counter, TSC page, synthetic timers and every device timer share one time base.
 */
export class PartitionClock implements Clock {
  readonly source: TimeSource;
  readonly nsPerInstruction: number;
  private started = false;
  private origin = 0;
  private last = DOUBLE_ZERO;
  private idleNs = DOUBLE_ZERO;
  private readonly hostNowNs: () => number;
  private readonly external: Clock | null;
  /** Retired-instruction count of the whole partition (set by the partition; deterministic mode). */
  retired: () => number = () => 0;

  constructor(source: TimeSource | Clock, nsPerInstruction = 10, hostNowNs?: () => number) {
    if (!Number.isInteger(nsPerInstruction) || nsPerInstruction < 1 || nsPerInstruction > 1_000_000) {
      throw new RangeError(`nsPerInstruction must be an integer in 1..1e6, got ${nsPerInstruction}`);
    }
    this.external = typeof source === "string" ? null : source;
    this.source = typeof source === "string" ? source : "external";
    if (this.source === "external" && hostNowNs !== undefined) {
      throw new RangeError("an external time source replaces the host clock; do not give both");
    }
    this.nsPerInstruction = nsPerInstruction;
    const external = this.external;
    this.hostNowNs =
      external !== null
        ? (): number => external.nowNs()
        : (hostNowNs ?? ((): number => Math.floor(globalThis.performance.now() * 1e6)));
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.origin = this.hostNowNs();
  }

  nowNs(): number {
    if (!this.started) return 0;
    let t: number;
    if (this.source === "deterministic") t = this.retired() * this.nsPerInstruction + this.idleNs;
    else t = this.hostNowNs() - this.origin + this.idleNs;
    // Monotonic whatever the host clock or a caller does.
    if (t < this.last) t = this.last;
    this.last = t;
    return t;
  }

  /**
   * Moves time forward to `ns` (the run loop does this when every processor is halted and the next event is
   * at `ns`). Wall time moves by itself, so there this only matters when the host clock lags.
   */
  skipTo(ns: number): void {
    const now = this.nowNs();
    if (ns > now && Number.isFinite(ns)) {
      this.idleNs += Math.ceil(ns - now);
      this.last = Math.max(this.last, this.nowNs());
    }
  }
}

/** The TSC at partition time `ns`, exactly as the processor computes it (src/x86/core.ts tscNow). */
export function tscAt(ns: number, tscHz: number): number {
  return Math.floor((ns * tscHz) / 1e9);
}

/** TscScale of the reference TSC page: floor(2^64 * 10^7 / tscHz) (100 ns units per TSC tick, 64.64). */
export function tscScale(tscHz: number): bigint {
  return (TWO64 * 10_000_000n) / BigInt(Math.round(tscHz));
}

/** ((tsc * scale) >> 64) + offset, the formula of the TSC page, in exact 128-bit arithmetic. */
export function referenceFromTsc(tsc: number, scale: bigint, offset: bigint): number {
  return Number(((BigInt(tsc) * scale) >> 64n) + offset);
}

/** Reference-time arithmetic of one partition (TSC rate fixed at creation). */
export class ReferenceTime {
  readonly tscHz: number;
  readonly scale: bigint;
  /** TscOffset: 0, because the TSC and the reference counter both start at 0 with the partition. */
  readonly offset = 0n;
  /** scale / 2^64 as a double, for the fast path of `referenceAt`. */
  private readonly scaleFraction: number;
  private memoCount = -1;
  private memoNs = DOUBLE_ZERO;

  constructor(tscHz: number) {
    // TLFS/Linux: the TSC page needs a TSC faster than the 10 MHz reference counter.
    if (!(tscHz > 10_000_000 && tscHz <= 100_000_000_000)) {
      throw new RangeError(`TSC frequency must be in (10 MHz, 100 GHz], got ${tscHz}`);
    }
    this.tscHz = tscHz;
    this.scale = tscScale(tscHz);
    this.scaleFraction = Number(this.scale) / 2 ** 64;
  }

  /** The reference counter (100 ns units) at partition time `ns`: exactly the TSC page formula. */
  referenceAt(ns: number): number {
    const tsc = tscAt(ns, this.tscHz);
    // Doubles get the product right to far better than 1e-3 below 2^53; only a result that lands next to an
    // integer needs the exact 128-bit product to decide the floor.
    const x = tsc * this.scaleFraction;
    const f = x - Math.floor(x);
    if (tsc < 2 ** 53 && f > 1e-3 && f < 1 - 1e-3) return Math.floor(x);
    return referenceFromTsc(tsc, this.scale, this.offset);
  }

  /** The first whole nanosecond at which the reference counter is >= `count` (Infinity if unreachable). */
  nsForReference(count: number): number {
    if (!(count > 0)) return 0;
    if (!Number.isFinite(count)) return Infinity;
    if (count === this.memoCount) return this.memoNs;
    // Beyond 2^53 ns (104 days) doubles are coarser than a nanosecond; the estimate is then as good as any.
    if (count > 2 ** 53 / 100) return count * 100;
    // count * 100 is within a few nanoseconds of the answer (the floors in tscAt and the scale); walk to it.
    let ns = Math.max(0, Math.floor(count * 100));
    let step = 1;
    while (this.referenceAt(ns) < count) {
      ns += step;
      step *= 2;
    }
    // Now ref(ns) >= count; find the first such nanosecond below it.
    let lo = Math.max(0, ns - step);
    if (this.referenceAt(lo) >= count) {
      step = 1;
      while (lo > 0 && this.referenceAt(lo) >= count) {
        lo = Math.max(0, lo - step);
        step *= 2;
      }
      if (this.referenceAt(lo) >= count) return this.remember(count, lo);
    }
    // ref(lo) < count <= ref(ns): bisect.
    while (ns - lo > 1) {
      const mid = Math.floor((lo + ns) / 2);
      if (this.referenceAt(mid) >= count) ns = mid;
      else lo = mid;
    }
    return this.remember(count, ns);
  }

  private remember(count: number, ns: number): number {
    this.memoCount = count;
    this.memoNs = ns;
    return ns;
  }
}
