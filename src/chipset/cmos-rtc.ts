// Owns: the MC146818A-compatible real-time clock and its 128 bytes of CMOS RAM behind the index/data ports
// 0x70/0x71 (bit 7 of the index is the PC's NMI-disable bit): the time/date/alarm registers in BCD or
// binary and 12- or 24-hour form, the century byte (0x32), registers A-D (UIP with the datasheet's 244 µs
// warning window, divider control, periodic rate; SET/PIE/AIE/UIE/DM/24-hour; IRQF/PF/AF/UF, cleared by
// reading; VRT), periodic, alarm and update-ended interrupts on ISA IRQ8, and the standard PC CMOS fields
// (shutdown status, base/extended memory sizes as QEMU's and SeaBIOS's firmware read them).
// Must not: read the host's calendar itself. Calendar time comes from a host wall-clock function plus a
// per-VM offset in seconds given at construction (the parent-created virtual RTC); from then on the
// registers advance with the partition `Clock`, so a deterministic clock gives a reproducible calendar.
// Spec: Motorola MC146818A datasheet: "Address map" (fig. 3), "Time, calendar and alarm locations" (table 3,
// BCD/binary, 12/24 h with bit 7 = PM), "Update cycle" (UIP goes high 244 µs before the update, fig. 12),
// Register A (UIP, DV2-0 divider: 010 runs the 32.768 kHz time base, 11x holds it in reset; RS3-0 periodic
// rate, table 5), Register B (SET stops updates and clears UIE, PIE, AIE, UIE, SQWE, DM, 24/12, DSE),
// Register C (IRQF, PF, AF, UF; read clears), Register D (VRT), alarm "don't care" codes (0xC0-0xFF).
// CMOS map: IBM PC/AT Technical Reference (0x0E-0x3F); QEMU hw/i386/pc.c behaviour for 0x5B-0x5D.

import type { PortDevice } from "./port-bus.js";
import type { IrqLine } from "../contracts/platform.js";
import type { Clock } from "../contracts/platform.js";
import { nsForTicks, ticksIn } from "./clock.js";
import { DOUBLE_ZERO } from "../support/heap-number.js";

export const RTC_PORT = 0x70;
export const RTC_IRQ = 8;
/** CMOS index of the century byte (the FADT's CENTURY field). */
export const RTC_CENTURY_INDEX = 0x32;

const REG_A = 0x0a;
const REG_B = 0x0b;
const REG_C = 0x0c;
const REG_D = 0x0d;

const A_UIP = 0x80;
const B_SET = 0x80;
const B_PIE = 0x40;
const B_AIE = 0x20;
const B_UIE = 0x10;
const B_DM_BINARY = 0x04;
const B_24H = 0x02;
const C_IRQF = 0x80;
const C_PF = 0x40;
const C_AF = 0x20;
const C_UF = 0x10;
const D_VRT = 0x80;

const NS_PER_S = 1e9;
/** UIP rises this long before each update (datasheet, update cycle). */
export const UIP_LEAD_NS = 244_000;
/** After the divider leaves reset the first update comes half a second later (datasheet, register A). */
const FIRST_UPDATE_AFTER_RESET_NS = 500_000_000;
/** Alarms are checked once per elapsed second; a day covers every combination of don't-care fields. */
const MAX_SECONDS_REPLAYED = 86_400;

export interface RtcOptions {
  clock: Clock;
  irq: IrqLine;
  /** The host's calendar time in seconds since the Unix epoch (UTC), fractions allowed. */
  hostSeconds: () => number;
  /** Added to the host time: the per-VM offset of the parent-created virtual RTC. */
  offsetSeconds?: number;
  /** RAM below 4 GiB and above 4 GiB in bytes, for the memory-size CMOS fields firmware reads. */
  memoryBelow4G?: number;
  memoryAbove4G?: number;
}

function bcd(v: number): number {
  return (Math.floor(v / 10) << 4) | (v % 10);
}

function unbcd(v: number): number {
  return (v >> 4) * 10 + (v & 0xf);
}

function hex2(v: number): string {
  return v.toString(16).padStart(2, "0");
}

const TIME_BASE_HZ = 32768;

/** Periodic-interrupt period in 32.768 kHz time-base cycles for rate select RS (datasheet table 5). */
function periodicCycles(rs: number): number {
  if (rs === 0) return 0;
  return rs <= 2 ? 1 << (rs + 6) : 1 << (rs - 1);
}

/** Period of the periodic interrupt for rate select RS, in nanoseconds (fractional). */
export function periodicPeriodNs(rs: number): number {
  return (periodicCycles(rs) * NS_PER_S) / TIME_BASE_HZ;
}

export class CmosRtc implements PortDevice {
  private readonly ram = new Uint8Array(128);
  private index = 0;
  /** The NMI mask bit of port 0x70 (no NMI source is wired yet; kept so guests read back consistent state). */
  nmiDisabled = false;
  /** Time of the next once-a-second update while the divider runs and SET is clear. */
  private nextUpdateNs = DOUBLE_ZERO;
  private periodicAnchorNs = DOUBLE_ZERO;
  private periodicCount = 0;
  private irqLevel = false;
  private readonly clock: Clock;
  private readonly irq: IrqLine;

  constructor(options: RtcOptions) {
    this.clock = options.clock;
    this.irq = options.irq;
    const now = this.clock.nowNs();
    const seconds = options.hostSeconds() + (options.offsetSeconds ?? 0);
    const whole = Math.floor(seconds);
    this.ram[REG_A] = 0x26; // divider running, 1024 Hz periodic rate: what PC firmware leaves
    this.ram[REG_B] = B_24H; // BCD, 24-hour
    this.ram[REG_D] = D_VRT;
    this.storeEpoch(Number.isFinite(whole) ? whole : 0);
    this.nextUpdateNs = now + Math.round((1 - (seconds - whole || 0)) * NS_PER_S);
    this.periodicAnchorNs = now;
    this.setMemoryFields(options.memoryBelow4G ?? 0, options.memoryAbove4G ?? 0);
  }

  private setMemoryFields(below: number, above: number): void {
    const r = this.ram;
    r[0x0f] = 0; // shutdown status: normal power-on
    r[0x10] = 0; // no floppy drives
    r[0x14] = 0x06; // equipment: no floppy, math coprocessor, VGA/EGA display
    r[0x15] = 0x80; // base memory 640 KiB (0x280)
    r[0x16] = 0x02;
    const kbAbove1M = Math.min(0xffff, Math.max(0, Math.floor(below / 1024) - 1024));
    r[0x17] = r[0x30] = kbAbove1M & 0xff;
    r[0x18] = r[0x31] = kbAbove1M >> 8;
    const above16M = Math.min(0xffff, Math.max(0, Math.floor((below - 16 * 1024 * 1024) / 65536)));
    r[0x34] = above16M & 0xff;
    r[0x35] = above16M >> 8;
    const above4G = Math.min(0xffffff, Math.max(0, Math.floor(above / 65536)));
    r[0x5b] = above4G & 0xff;
    r[0x5c] = (above4G >> 8) & 0xff;
    r[0x5d] = above4G >> 16;
  }

  /**
   * The chip's RESET pin (asserted on platform reset): clears PIE, AIE, UIE and SQWE and the interrupt flags.
   * Time, alarm, the divider and the NVRAM are battery-backed and survive, as on a PC.
   */
  reset(): void {
    this.ram[REG_B] = this.ram[REG_B]! & ~(B_PIE | B_AIE | B_UIE | 0x08);
    this.ram[REG_C] = 0;
    this.nmiDisabled = false;
    this.updateIrq();
  }

  private get running(): boolean {
    return ((this.ram[REG_A]! >> 4) & 7) === 2 && !(this.ram[REG_B]! & B_SET);
  }

  private get binary(): boolean {
    return (this.ram[REG_B]! & B_DM_BINARY) !== 0;
  }

  private enc(v: number): number {
    return this.binary ? v : bcd(v);
  }

  private dec(v: number): number {
    return this.binary ? v : unbcd(v);
  }

  private encHour(h: number): number {
    if (this.ram[REG_B]! & B_24H) return this.enc(h);
    const pm = h >= 12 ? 0x80 : 0;
    return this.enc(h % 12 === 0 ? 12 : h % 12) | pm;
  }

  private decHour(v: number): number {
    if (this.ram[REG_B]! & B_24H) return this.dec(v);
    const h = this.dec(v & 0x7f) % 12;
    return v & 0x80 ? h + 12 : h;
  }

  /** The calendar registers as seconds since the epoch, or NaN if the guest stored nonsense. */
  private loadEpoch(): number {
    const r = this.ram;
    const year = this.dec(r[RTC_CENTURY_INDEX]!) * 100 + this.dec(r[9]!);
    // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
    const d = new Date(0);
    d.setUTCFullYear(year, this.dec(r[8]!) - 1, this.dec(r[7]!));
    d.setUTCHours(this.decHour(r[4]!), this.dec(r[2]!), this.dec(r[0]!));
    return d.getTime() / 1000;
  }

  private storeEpoch(seconds: number): void {
    const d = new Date(seconds * 1000);
    if (Number.isNaN(d.getTime())) return;
    const r = this.ram;
    r[0] = this.enc(d.getUTCSeconds());
    r[2] = this.enc(d.getUTCMinutes());
    r[4] = this.encHour(d.getUTCHours());
    r[6] = this.enc(d.getUTCDay() + 1);
    r[7] = this.enc(d.getUTCDate());
    r[8] = this.enc(d.getUTCMonth() + 1);
    const year = d.getUTCFullYear();
    r[9] = this.enc(((year % 100) + 100) % 100);
    r[RTC_CENTURY_INDEX] = this.enc(Math.floor(year / 100) % 100);
  }

  private alarmMatches(): boolean {
    const r = this.ram;
    const match = (alarm: number, now: number) => alarm >= 0xc0 || alarm === now;
    return match(r[1]!, r[0]!) && match(r[3]!, r[2]!) && match(r[5]!, r[4]!);
  }

  /** Runs the update cycles and periodic ticks that fell due up to `now`, then drives IRQ8. */
  private catchUp(now: number): void {
    if (this.running && now >= this.nextUpdateNs) {
      const due = Math.floor((now - this.nextUpdateNs) / NS_PER_S) + 1;
      const epoch = this.loadEpoch();
      if (Number.isFinite(epoch)) {
        const replay = Math.min(due, MAX_SECONDS_REPLAYED);
        const base = epoch + due - replay;
        for (let i = 1; i <= replay; i++) {
          this.storeEpoch(base + i);
          if (this.alarmMatches()) this.ram[REG_C]! |= C_AF;
        }
      }
      this.ram[REG_C]! |= C_UF;
      this.nextUpdateNs += due * NS_PER_S;
    }
    const cycles = this.periodicRunning() ? periodicCycles(this.ram[REG_A]! & 0xf) : 0;
    if (cycles > 0) {
      // Counted in whole time-base cycles so that a tick exactly at the deadline always sees the period end.
      const count = Math.floor(ticksIn(now - this.periodicAnchorNs, TIME_BASE_HZ) / cycles);
      if (count > this.periodicCount) {
        this.periodicCount = count;
        this.ram[REG_C]! |= C_PF;
      }
    }
    this.updateIrq();
  }

  private periodicRunning(): boolean {
    // The periodic divider taps are held while the divider chain is in reset (DV = 11x).
    return ((this.ram[REG_A]! >> 5) & 3) !== 3;
  }

  private updateIrq(): void {
    const b = this.ram[REG_B]!;
    let c = this.ram[REG_C]! & (C_PF | C_AF | C_UF);
    if ((c & C_PF && b & B_PIE) || (c & C_AF && b & B_AIE) || (c & C_UF && b & B_UIE)) c |= C_IRQF;
    this.ram[REG_C] = c;
    const level = (c & C_IRQF) !== 0;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }

  readPort(offset: number, _size: number): number {
    if (offset === 0) return 0xff; // the index register is write-only on the PC
    return this.readRegister(this.index);
  }

  writePort(offset: number, _size: number, value: number): void {
    if (offset === 0) {
      this.index = value & 0x7f;
      this.nmiDisabled = (value & 0x80) !== 0;
      return;
    }
    this.writeRegister(this.index, value & 0xff);
  }

  readRegister(index: number): number {
    const now = this.clock.nowNs();
    this.catchUp(now);
    switch (index) {
      case REG_A: {
        const uip = this.running && now >= this.nextUpdateNs - UIP_LEAD_NS ? A_UIP : 0;
        return (this.ram[REG_A]! & 0x7f) | uip;
      }
      case REG_C: {
        const v = this.ram[REG_C]!;
        this.ram[REG_C] = 0;
        this.updateIrq();
        return v;
      }
      default:
        return this.ram[index & 0x7f]!;
    }
  }

  writeRegister(index: number, value: number): void {
    const now = this.clock.nowNs();
    this.catchUp(now);
    index &= 0x7f;
    switch (index) {
      case REG_A: {
        const wasRunning = this.running;
        const wasReset = ((this.ram[REG_A]! >> 5) & 3) === 3;
        const oldRate = this.ram[REG_A]! & 0xf;
        this.ram[REG_A] = value & 0x7f; // UIP is read-only
        if (!wasRunning && this.running)
          this.nextUpdateNs = now + (wasReset ? FIRST_UPDATE_AFTER_RESET_NS : NS_PER_S);
        if (oldRate !== (value & 0xf) || wasReset) this.restartPeriodic(now);
        break;
      }
      case REG_B: {
        const wasRunning = this.running;
        let v = value;
        if (v & B_SET) v &= ~B_UIE; // setting SET clears UIE (datasheet, register B)
        // Changing DM or 24/12 does not convert the stored bytes (as on the chip): the guest rewrites them.
        this.ram[REG_B] = v;
        if (!wasRunning && this.running) this.nextUpdateNs = now + NS_PER_S;
        break;
      }
      case REG_C:
      case REG_D:
        break; // read-only
      default:
        this.ram[index] = value;
        break;
    }
    this.updateIrq();
  }

  private restartPeriodic(now: number): void {
    this.periodicAnchorNs = now;
    this.periodicCount = 0;
  }

  /** The next time an enabled RTC interrupt can fire, or Infinity. */
  nextDeadlineNs(): number {
    const b = this.ram[REG_B]!;
    let t = Number.POSITIVE_INFINITY;
    if (b & (B_UIE | B_AIE) && this.running) t = this.nextUpdateNs;
    const cycles = this.periodicRunning() ? periodicCycles(this.ram[REG_A]! & 0xf) : 0;
    if (b & B_PIE && cycles > 0) {
      t = Math.min(t, this.periodicAnchorNs + nsForTicks((this.periodicCount + 1) * cycles, TIME_BASE_HZ));
    }
    return t;
  }

  tick(nowNs: number): void {
    this.catchUp(nowNs);
  }

  /** The calendar as the registers hold it, as an ISO string (for inspect and tests). */
  calendar(): string {
    this.catchUp(this.clock.nowNs());
    const epoch = this.loadEpoch();
    return Number.isFinite(epoch) ? new Date(epoch * 1000).toISOString() : "(invalid date registers)";
  }

  inspect(): string {
    const r = this.ram;
    return (
      `RTC: ${this.calendar()} A=${hex2(r[REG_A]!)} B=${hex2(r[REG_B]!)} C=${hex2(r[REG_C]!)} ` +
      `D=${hex2(r[REG_D]!)} index=0x${hex2(this.index)}${this.nmiDisabled ? " NMI-off" : ""} ` +
      `irq8=${this.irqLevel ? 1 : 0}`
    );
  }
}
