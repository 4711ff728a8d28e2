// Owns: the four synthetic timers of one virtual processor (STIMER0-3 CONFIG/COUNT): one-shot (absolute
// expiry) and periodic (period) timers, lazy and auto-enable, direct mode (a fixed APIC vector) and message
// mode (HVMSG_TIMER_EXPIRED into a SynIC SINT), and their deadlines in reference-counter units.
// Must not: read clocks itself: the partition passes the reference counter in (`refNow`) and turns the
// deadlines into nanoseconds; delivery goes only through this VP's Synic / interrupt target.
// Spec: TLFS timers.md "Synthetic Timers" (configuration bits, count semantics, one-shot auto-disable,
// past deadlines expire immediately, SINTx = 0 disables a message-mode timer, periodic catch-up and lazy
// skipping), datatypes/hv_timer_message_payload.md (TimerIndex, ExpirationTime, DeliveryTime).

import { MSR_GP, MSR_OK, msrValue, type MsrResult } from "./msr-result.js";
import type { Synic, VpInterruptTarget } from "./synic.js";
import {
  HVMSG_TIMER_EXPIRED,
  MSR_STIMER0_CONFIG,
  MSR_STIMER3_COUNT,
  STIMER_AUTO_ENABLE,
  STIMER_CONFIG_DEFINED,
  STIMER_COUNT,
  STIMER_DIRECT,
  STIMER_ENABLE,
  STIMER_LAZY,
  STIMER_PERIODIC,
} from "./tlfs.js";

/** A non-lazy periodic timer further behind than this many periods skips the missed ones (TLFS allows it). */
const MAX_CATCH_UP_PERIODS = 4;

class SyntheticTimer {
  config = 0;
  countLo = 0;
  countHi = 0;
  /** Reference time of the next expiry (Infinity when disarmed). */
  due = Infinity;
  /** A message-mode expiry is waiting in the SynIC queue (expirations coalesce until it lands). */
  messageQueued = false;
  fired = 0;

  get count(): number {
    return this.countHi * 0x1_0000_0000 + this.countLo;
  }
}

export class SyntheticTimers {
  private readonly timers = Array.from({ length: STIMER_COUNT }, () => new SyntheticTimer());
  private readonly synic: Synic;
  private readonly directAllowed: boolean;
  target: VpInterruptTarget | null = null;

  constructor(synic: Synic, directAllowed: boolean) {
    this.synic = synic;
    this.directAllowed = directAllowed;
  }

  owns(msr: number): boolean {
    return msr >= MSR_STIMER0_CONFIG && msr <= MSR_STIMER3_COUNT;
  }

  reset(): void {
    for (const t of this.timers) {
      t.config = t.countLo = t.countHi = 0;
      t.due = Infinity;
      t.messageQueued = false;
    }
  }

  readMsr(msr: number): MsrResult {
    const i = msr - MSR_STIMER0_CONFIG;
    const t = this.timers[i >> 1];
    if (t === undefined || i < 0) return MSR_GP;
    return (i & 1) === 0 ? msrValue(t.config, 0) : msrValue(t.countLo, t.countHi);
  }

  /** MSR_GP for a write refused with #GP (reserved bits, direct mode when not offered). */
  writeMsr(msr: number, lo: number, hi: number, refNow: number): MsrResult {
    const i = msr - MSR_STIMER0_CONFIG;
    const t = this.timers[i >> 1];
    if (t === undefined || i < 0) return MSR_GP;
    lo >>>= 0;
    hi >>>= 0;
    if ((i & 1) === 0) {
      if (hi !== 0 || (lo & ~STIMER_CONFIG_DEFINED) !== 0) return MSR_GP;
      if ((lo & STIMER_DIRECT) !== 0 && !this.directAllowed) return MSR_GP;
      t.config = lo;
      this.validate(t);
      this.arm(t, refNow);
      return MSR_OK;
    }
    t.countLo = lo;
    t.countHi = hi;
    if (t.count === 0) t.config &= ~STIMER_ENABLE;
    else if ((t.config & STIMER_AUTO_ENABLE) !== 0) t.config |= STIMER_ENABLE;
    this.validate(t);
    this.arm(t, refNow);
    return MSR_OK;
  }

  /** An enabled message-mode timer must name a SINT, and a zero count stops the timer (timers.md). */
  private validate(t: SyntheticTimer): void {
    if ((t.config & STIMER_ENABLE) === 0) return;
    const direct = (t.config & STIMER_DIRECT) !== 0;
    if ((!direct && ((t.config >>> 16) & 0xf) === 0) || t.count === 0) t.config &= ~STIMER_ENABLE;
  }

  private arm(t: SyntheticTimer, refNow: number): void {
    if ((t.config & STIMER_ENABLE) === 0) t.due = Infinity;
    else if ((t.config & STIMER_PERIODIC) !== 0) t.due = refNow + t.count;
    else t.due = t.count;
  }

  /** The earliest expiry in reference-counter units (Infinity when none is armed). */
  nextDue(): number {
    let d = Infinity;
    for (const t of this.timers) if (t.due < d) d = t.due;
    return d;
  }

  /** Fires every timer whose expiry is at or before `refNow`. */
  tick(refNow: number): void {
    for (let i = 0; i < STIMER_COUNT; i++) {
      const t = this.timers[i]!;
      if (t.due > refNow) continue;
      this.expire(i, t, refNow);
      if ((t.config & STIMER_PERIODIC) === 0) {
        t.config &= ~STIMER_ENABLE;
        t.due = Infinity;
        continue;
      }
      const period = t.count;
      let next = t.due + period;
      const behind = refNow - next;
      if (behind >= 0 && ((t.config & STIMER_LAZY) !== 0 || behind >= MAX_CATCH_UP_PERIODS * period)) {
        // Lazy timers never deliver missed periods; others catch up a little, then skip.
        next += (Math.floor(behind / period) + 1) * period;
      }
      t.due = next;
    }
  }

  private expire(index: number, t: SyntheticTimer, refNow: number): void {
    t.fired++;
    if ((t.config & STIMER_DIRECT) !== 0) {
      const vector = (t.config >>> 4) & 0xff;
      if (vector >= 16) this.target?.acceptFixed(vector, false);
      return;
    }
    if (t.messageQueued) return;
    const payload = new Uint8Array(24);
    const v = new DataView(payload.buffer);
    v.setUint32(0, index, true);
    setU64(v, 8, t.due);
    const sint = (t.config >>> 16) & 0xf;
    t.messageQueued = true;
    const status = this.synic.postMessage(sint, HVMSG_TIMER_EXPIRED, payload, 0, (p) => {
      t.messageQueued = false;
      // DeliveryTime: when the message reached the slot (it may have waited for an EOM).
      setU64(new DataView(p.buffer, p.byteOffset, p.byteLength), 16, Math.max(refNow, this.lastRef));
    });
    if (status !== 0) t.messageQueued = false;
  }

  /** The partition keeps this current so late deliveries carry a fresh DeliveryTime. */
  lastRef = 0;

  firedCount(index: number): number {
    return this.timers[index]?.fired ?? 0;
  }

  state(): number[] {
    const out: number[] = [];
    for (const t of this.timers)
      out.push(t.config, t.countLo, t.countHi, t.due, t.messageQueued ? 1 : 0, t.fired);
    return out;
  }
}

function setU64(v: DataView, at: number, value: number): void {
  const x = Number.isFinite(value) && value > 0 ? value : 0;
  v.setUint32(at, x % 0x1_0000_0000, true);
  v.setUint32(at + 4, Math.floor(x / 0x1_0000_0000) >>> 0, true);
}
