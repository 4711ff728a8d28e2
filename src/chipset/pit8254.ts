// Owns: the 8254 programmable interval timer (ports 0x40-0x43): three counters with modes 0-5, binary and
// BCD counting, lobyte/hibyte/word access, the counter-latch and read-back commands and status bytes; and the
// PC's system control port B (0x61), which gates counter 2 (bit 0) and reads its output (bit 5) and the DRAM
// refresh toggle (bit 4). Counter 0's output drives ISA IRQ0.
// Must not: keep its own timer thread: counter values are computed from the partition `Clock` when read, and
// IRQ0 edges are produced when the run loop calls `tick(nowNs)` at or after `nextDeadlineNs()`. Several
// periods elapsed between two ticks give one interrupt (as a late timer interrupt would), never a backlog.
// Spec: Intel 8254 datasheet (231164): "Control Word Format", "Write Operations", "Read Operations" (counter
// latch, read-back command, status byte), "Mode Definitions" (modes 0-5, fig. 13-18), gate behaviour table;
// IBM PC/AT Technical Reference for port 0x61 and the 1.193182 MHz input clock (14.31818 MHz / 12).
// Simplification: a count written while a mode 2/3 counter runs takes effect at once, not at the end of the
// current period (Linux reprograms only after a control word, where both behaviours agree).

import type { PortDevice } from "./port-bus.js";
import type { IrqLine } from "../contracts/platform.js";
import type { Clock } from "../contracts/platform.js";
import { nsForTicks, ticksIn } from "./clock.js";
import { DOUBLE_ZERO } from "../support/heap-number.js";

export const PIT_HZ = 1_193_182;
export const PIT_PORT = 0x40;
export const PORT_B = 0x61;
/** DRAM refresh requests come every 15.085 µs on the PC/AT; bit 4 of port 0x61 toggles with each one. */
const REFRESH_NS = 15_085;

function fromBcd(v: number): number {
  return ((v >> 12) & 0xf) * 1000 + ((v >> 8) & 0xf) * 100 + ((v >> 4) & 0xf) * 10 + (v & 0xf);
}

function toBcd(v: number): number {
  return (
    ((Math.floor(v / 1000) % 10) << 12) |
    ((Math.floor(v / 100) % 10) << 8) |
    ((Math.floor(v / 10) % 10) << 4) |
    (v % 10)
  );
}

class Counter {
  mode = 0;
  rw = 3;
  bcd = false;
  /** The count register as written (0 means the maximum, 0x10000 or 10000 in BCD). */
  written = 0;
  loaded = false;
  nullCount = true;
  loadNs = DOUBLE_ZERO;
  gate: boolean;
  /** Modes 1 and 5 count only after a gate rising edge. */
  triggered = false;
  /** Ticks already counted when the gate paused modes 0/4. */
  pausedTicks = -1;
  writeMsbNext = false;
  lowByte = 0;
  readMsbNext = false;
  latched: number | null = null;
  latchedMsbNext = false;
  status: number | null = null;
  /** Rising OUT edges already turned into interrupts (counter 0). */
  edgesSeen = 0;

  constructor(gate: boolean) {
    this.gate = gate;
  }

  /** The effective initial count N. */
  get n(): number {
    if (this.bcd) return this.written === 0 ? 10000 : fromBcd(this.written);
    return this.written === 0 ? 0x10000 : this.written;
  }

  private get modulus(): number {
    return this.bcd ? 10000 : 0x10000;
  }

  private get counting(): boolean {
    if (!this.loaded) return false;
    if (this.mode === 1 || this.mode === 5) return this.triggered;
    if (this.mode === 2 || this.mode === 3 || this.mode === 6 || this.mode === 7) return this.gate;
    return true;
  }

  /** CLK pulses counted since the count was loaded (or triggered). */
  elapsed(nowNs: number): number {
    if (!this.counting) return 0;
    if (this.pausedTicks >= 0) return this.pausedTicks;
    return ticksIn(nowNs - this.loadNs, PIT_HZ);
  }

  private baseMode(): number {
    return this.mode > 5 ? this.mode - 4 : this.mode;
  }

  value(nowNs: number): number {
    if (!this.loaded) return this.written;
    const n = this.n;
    const d = this.elapsed(nowNs);
    const m = this.modulus;
    let v: number;
    switch (this.baseMode()) {
      case 2:
        v = n - (d % n);
        break;
      case 3:
        v = (n - ((2 * d) % n)) & ~1;
        break;
      default:
        if (!this.counting) v = n;
        else v = (((n - d) % m) + m) % m;
        break;
    }
    return this.bcd ? toBcd(v % 10000) : v & 0xffff;
  }

  out(nowNs: number): boolean {
    const mode = this.baseMode();
    if (!this.loaded) return mode !== 0;
    const n = this.n;
    const d = this.elapsed(nowNs);
    switch (mode) {
      case 0:
        return d >= n;
      case 1:
        return !this.triggered || d >= n;
      case 2:
        return !this.gate || n < 2 || d % n !== n - 1;
      case 3:
        return !this.gate || d % n < Math.ceil(n / 2);
      default: // 4, 5: one low CLK when the count reaches zero
        return !this.counting || d !== n;
    }
  }

  /** Rising OUT edges at or before `d` elapsed ticks. */
  edgesUpTo(d: number): number {
    if (!this.counting) return 0;
    const n = this.n;
    switch (this.baseMode()) {
      case 0:
      case 1:
        return d >= n ? 1 : 0;
      case 2:
      case 3:
        return n < 2 ? 0 : Math.floor(d / n);
      default:
        return d >= n + 1 ? 1 : 0;
    }
  }

  /** Elapsed-tick count of the next rising OUT edge after `edges` edges, or -1 if none will come. */
  nextEdgeTick(edges: number): number {
    if (!this.counting || this.pausedTicks >= 0) return -1;
    const n = this.n;
    switch (this.baseMode()) {
      case 0:
      case 1:
        return edges === 0 ? n : -1;
      case 2:
      case 3:
        return n < 2 ? -1 : (edges + 1) * n;
      default:
        return edges === 0 ? n + 1 : -1;
    }
  }

  statusByte(nowNs: number): number {
    return (
      (this.out(nowNs) ? 0x80 : 0) |
      (this.nullCount ? 0x40 : 0) |
      (this.rw << 4) |
      (this.mode << 1) |
      (this.bcd ? 1 : 0)
    );
  }

  control(value: number): void {
    this.rw = (value >> 4) & 3;
    this.mode = (value >> 1) & 7;
    this.bcd = (value & 1) !== 0;
    this.loaded = false;
    this.nullCount = true;
    this.triggered = false;
    this.pausedTicks = -1;
    this.writeMsbNext = false;
    this.readMsbNext = false;
    this.latched = null;
    this.status = null;
    this.edgesSeen = 0;
  }

  latch(nowNs: number): void {
    if (this.latched !== null) return; // a second latch before the read is ignored (datasheet)
    this.latched = this.value(nowNs);
    this.latchedMsbNext = false;
  }

  writeCount(value: number, nowNs: number): void {
    switch (this.rw) {
      case 1:
        this.load(value, nowNs);
        break;
      case 2:
        this.load(value << 8, nowNs);
        break;
      case 3:
        if (!this.writeMsbNext) {
          this.lowByte = value;
          this.writeMsbNext = true;
        } else {
          this.writeMsbNext = false;
          this.load(this.lowByte | (value << 8), nowNs);
        }
        break;
      default:
        break; // RW=0 is the latch command; no count can be written until a real control word
    }
  }

  private load(count: number, nowNs: number): void {
    this.written = count & 0xffff;
    this.loaded = true;
    this.nullCount = false;
    this.loadNs = nowNs;
    this.pausedTicks = -1;
    this.edgesSeen = 0;
    if (this.mode === 1 || this.mode === 5) this.triggered = false;
  }

  readData(nowNs: number): number {
    if (this.status !== null) {
      const s = this.status;
      this.status = null;
      return s;
    }
    if (this.latched !== null) {
      const v = this.latched;
      if (this.rw === 3 && !this.latchedMsbNext) {
        this.latchedMsbNext = true;
        return v & 0xff;
      }
      this.latched = null;
      return this.rw === 2 || this.rw === 3 ? v >> 8 : v & 0xff;
    }
    const v = this.value(nowNs);
    if (this.rw === 1) return v & 0xff;
    if (this.rw === 2) return v >> 8;
    this.readMsbNext = !this.readMsbNext;
    return this.readMsbNext ? v & 0xff : v >> 8;
  }

  setGate(level: boolean, nowNs: number): void {
    if (level === this.gate) return;
    const mode = this.baseMode();
    if (mode === 0 || mode === 4) {
      // Gate low suspends counting; counting resumes where it stopped.
      if (!level) this.pausedTicks = this.elapsed(nowNs);
      else if (this.pausedTicks >= 0) {
        this.loadNs = nowNs - nsForTicks(this.pausedTicks, PIT_HZ);
        this.pausedTicks = -1;
      }
    } else if (level && this.loaded) {
      // Rising edge: modes 1 and 5 trigger, modes 2 and 3 reload and restart.
      this.loadNs = nowNs;
      this.triggered = true;
      this.edgesSeen = 0;
    }
    this.gate = level;
  }

  describe(nowNs: number): string {
    if (!this.loaded) return `mode ${this.mode} rw ${this.rw}${this.bcd ? " bcd" : ""} (no count loaded)`;
    return (
      `mode ${this.mode} rw ${this.rw}${this.bcd ? " bcd" : ""} count=0x${this.written.toString(16)} ` +
      `now=0x${this.value(nowNs).toString(16)} out=${this.out(nowNs) ? 1 : 0} gate=${this.gate ? 1 : 0}`
    );
  }
}

export class Pit8254 implements PortDevice {
  private counters = Pit8254.freshCounters();
  private portB = 0;
  /** Port device for 0x61 (system control port B). */
  readonly portBDevice: PortDevice;

  constructor(
    private readonly clock: Clock,
    private readonly irq0: IrqLine,
  ) {
    this.portBDevice = {
      readPort: () => this.readPortB(),
      writePort: (_o, _s, v) => this.writePortB(v),
    };
  }

  private static freshCounters(): readonly [Counter, Counter, Counter] {
    return [new Counter(true), new Counter(true), new Counter(false)];
  }

  /** Platform reset: counters unprogrammed, counter 2's gate and the speaker off. */
  reset(): void {
    this.counters = Pit8254.freshCounters();
    this.portB = 0;
    this.syncIrq0(this.clock.nowNs());
  }

  private counter(i: number): Counter {
    return this.counters[i as 0 | 1 | 2];
  }

  readPort(offset: number, _size: number): number {
    if (offset === 3) return 0xff; // the control word register cannot be read
    return this.counter(offset).readData(this.clock.nowNs());
  }

  writePort(offset: number, _size: number, value: number): void {
    value &= 0xff;
    const now = this.clock.nowNs();
    if (offset < 3) {
      this.counter(offset).writeCount(value, now);
      if (offset === 0) this.syncIrq0(now);
      return;
    }
    const sc = value >> 6;
    if (sc === 3) {
      // Read-back: bit 5 clear latches counts, bit 4 clear latches status, bits 1-3 select counters.
      for (let i = 0; i < 3; i++) {
        if (!(value & (2 << i))) continue;
        const c = this.counter(i);
        if (!(value & 0x10) && c.status === null) c.status = c.statusByte(now);
        if (!(value & 0x20)) c.latch(now);
      }
      return;
    }
    const c = this.counter(sc);
    if (((value >> 4) & 3) === 0) c.latch(now);
    else {
      c.control(value);
      if (sc === 0) this.syncIrq0(now);
    }
  }

  private readPortB(): number {
    const now = this.clock.nowNs();
    const refresh = Math.floor(now / REFRESH_NS) & 1;
    return (this.portB & 0x0f) | (refresh << 4) | (this.counter(2).out(now) ? 0x20 : 0);
  }

  private writePortB(value: number): void {
    this.portB = value & 0x0f;
    this.counter(2).setGate((value & 1) !== 0, this.clock.nowNs());
  }

  /** Counter 2's output as port 0x61 bit 5 shows it (the PC speaker's input). */
  speakerOut(): boolean {
    return this.counter(2).out(this.clock.nowNs());
  }

  private syncIrq0(now: number): void {
    const c = this.counter(0);
    c.edgesSeen = c.edgesUpTo(c.elapsed(now));
    this.irq0.set(c.out(now));
  }

  /** When counter 0's output next rises (an IRQ0 edge), or Infinity. */
  nextDeadlineNs(): number {
    const c = this.counter(0);
    const t = c.nextEdgeTick(c.edgesSeen);
    return t < 0 ? Number.POSITIVE_INFINITY : c.loadNs + nsForTicks(t, PIT_HZ);
  }

  /** Raises IRQ0 for counter-0 output edges up to `nowNs` (one pulse however many were missed). */
  tick(nowNs: number): void {
    const c = this.counter(0);
    const edges = c.edgesUpTo(c.elapsed(nowNs));
    if (edges > c.edgesSeen) {
      c.edgesSeen = edges;
      this.irq0.set(false);
      this.irq0.set(true);
    }
    this.irq0.set(c.out(nowNs));
  }

  inspect(): string {
    const now = this.clock.nowNs();
    return [0, 1, 2]
      .map((i) => `PIT counter ${i}: ${this.counter(i).describe(now)}`)
      .concat([`port 0x61: 0x${this.readPortB().toString(16)}`])
      .join("\n");
  }
}
