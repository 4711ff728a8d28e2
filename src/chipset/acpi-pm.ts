// Owns: the ACPI fixed-hardware register blocks of this board, at ports the firmware's FADT points to:
// PM1a event block (PM1_STS, PM1_EN), PM1a control block (SCI_EN, SLP_TYP, SLP_EN), the 3.579545 MHz PM
// timer (32 bits: the FADT must set TMR_VAL_EXT), and GPE0 (status and enable halves). It raises the SCI on
// ISA IRQ9 (level) while an enabled status bit is set, and reports S5 (soft-off) and the power button.
// Must not: build ACPI tables (firmware does; it imports the constants below so the two cannot disagree),
// or stop the machine itself: it calls the board's power-off callback.
// Spec: ACPI 6.5 4.8.3 (fixed hardware registers: PM1 status/enable bits, write-1-to-clear, PM1 control
// with SCI_EN, SLP_TYPx, SLP_EN), 4.8.3.3 (power management timer, TMR_STS on bit-23 or bit-31 toggle),
// 4.8.4.1 (general-purpose event blocks: STS then EN, each half the block), 7.4.2 (\_S5 package: the
// SLP_TYP value the OS writes), 5.2.9 (FADT fields PM1a_EVT_BLK, PM1a_CNT_BLK, PM_TMR_BLK, GPE0_BLK,
// SCI_INT, TMR_VAL_EXT flag).

import type { PortDevice } from "./port-bus.js";
import type { IrqLine } from "../contracts/platform.js";
import type { Clock } from "../contracts/platform.js";
import { nsForTicks, ticksIn } from "./clock.js";

export const PM1A_EVT_BLK = 0x600;
export const PM1_EVT_LEN = 4;
export const PM1A_CNT_BLK = 0x604;
export const PM1_CNT_LEN = 2;
export const PM_TMR_BLK = 0x608;
export const PM_TMR_LEN = 4;
export const GPE0_BLK = 0x620;
export const GPE0_BLK_LEN = 8;
export const SCI_IRQ = 9;
/** The SLP_TYP value of \_S5 in the DSDT; writing it with SLP_EN powers the machine off. */
export const SLP_TYP_S5 = 0;
/** The PM timer is 32 bits wide (FADT flag TMR_VAL_EXT must be set). */
export const PM_TIMER_32BIT = true;
export const PM_TIMER_HZ = 3_579_545;

export const PM1_TMR = 1 << 0;
export const PM1_GBL = 1 << 5;
export const PM1_PWRBTN = 1 << 8;
export const PM1_RTC = 1 << 10;
export const PM1_WAK = 1 << 15;
const PM1_STS_BITS = PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_RTC | PM1_WAK;
const PM1_EN_BITS = PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_RTC;

const CNT_SCI_EN = 1 << 0;
const CNT_SLP_EN = 1 << 13;
/** Control bits that hold their value: SCI_EN, BM_RLD, SLP_TYP. */
const CNT_STORED = 0x1c03;

const TIMER_MSB = 0x80000000;

export interface AcpiPmOptions {
  clock: Clock;
  sci: IrqLine;
  onPowerOff: () => void;
}

export class AcpiPm {
  private pm1Sts = 0;
  private pm1En = 0;
  /** SCI_EN starts set: without an SMI_CMD port in the FADT the OS takes the board as already in ACPI mode. */
  private pm1Cnt = CNT_SCI_EN;
  private gpeSts = 0;
  private gpeEn = 0;
  private sciLevel = false;
  /** Timer MSB toggles already reflected in TMR_STS. */
  private msbToggles = 0;
  private readonly clock: Clock;
  private readonly sci: IrqLine;
  private readonly onPowerOff: () => void;
  readonly eventBlock: PortDevice;
  readonly controlBlock: PortDevice;
  readonly timerBlock: PortDevice;
  readonly gpeBlock: PortDevice;

  constructor(options: AcpiPmOptions) {
    this.clock = options.clock;
    this.sci = options.sci;
    this.onPowerOff = options.onPowerOff;
    this.eventBlock = {
      readPort: (o, s) => this.readEvent(o, s),
      writePort: (o, s, v) => this.writeEvent(o, s, v),
    };
    this.controlBlock = {
      readPort: (o, s) => (s === 1 ? (this.pm1Cnt >> (8 * o)) & 0xff : this.pm1Cnt & 0xffff),
      writePort: (o, s, v) =>
        this.writeControl(s === 1 ? (v & 0xff) << (8 * o) : v, s === 1 ? 0xff << (8 * o) : 0xffff),
    };
    this.timerBlock = {
      readPort: (o, s) => {
        const t = this.timer();
        if (s === 4) return t;
        return (t >>> (8 * o)) & (s === 2 ? 0xffff : 0xff);
      },
      writePort: () => undefined, // read-only
    };
    this.gpeBlock = {
      readPort: (o, s) => this.readGpe(o, s),
      writePort: (o, s, v) => this.writeGpe(o, s, v),
    };
  }

  /** Platform reset: status and enables clear, SCI_EN set, SLP_TYP 0; the PM timer keeps running. */
  reset(): void {
    this.pm1Sts = 0;
    this.pm1En = 0;
    this.pm1Cnt = CNT_SCI_EN;
    this.gpeSts = 0;
    this.gpeEn = 0;
    this.updateSci();
  }

  /** The 32-bit PM timer value. */
  timer(): number {
    return ticksIn(this.clock.nowNs(), PM_TIMER_HZ) % 0x1_0000_0000;
  }

  private bytes(value: number, offset: number, size: number): number {
    const mask = size >= 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    return (value >>> (8 * offset)) & mask;
  }

  private readEvent(offset: number, size: number): number {
    this.catchUp(this.clock.nowNs());
    const both = (this.pm1Sts | (this.pm1En << 16)) >>> 0;
    return this.bytes(both, offset, size);
  }

  private writeEvent(offset: number, size: number, value: number): void {
    const mask = size >= 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    const v = ((value & mask) << (8 * offset)) >>> 0;
    const touched = (mask << (8 * offset)) >>> 0;
    // PM1_STS bits are cleared by writing ones; PM1_EN is an ordinary register.
    this.pm1Sts &= ~(v & 0xffff);
    if (touched & 0xffff0000) {
      const enMask = (touched >>> 16) & 0xffff;
      this.pm1En = ((this.pm1En & ~enMask) | ((v >>> 16) & enMask)) & PM1_EN_BITS;
    }
    this.updateSci();
  }

  private writeControl(value: number, mask: number): void {
    const cnt = ((this.pm1Cnt & ~mask) | (value & mask)) & 0xffff;
    this.pm1Cnt = cnt & CNT_STORED; // GBL_RLS and SLP_EN are write-only and read as 0
    if (cnt & CNT_SLP_EN && ((cnt >> 10) & 7) === SLP_TYP_S5) this.onPowerOff();
    // Other sleep types are not declared in the DSDT, so a guest never asks for them; they do nothing.
    this.updateSci();
  }

  private readGpe(offset: number, size: number): number {
    const word = offset < 4 ? this.gpeSts : this.gpeEn;
    return this.bytes(word, offset & 3, size);
  }

  private writeGpe(offset: number, size: number, value: number): void {
    const mask = size >= 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    const shift = 8 * (offset & 3);
    const v = ((value & mask) << shift) >>> 0;
    const touched = (mask << shift) >>> 0;
    if (offset < 4) this.gpeSts = (this.gpeSts & ~v) >>> 0;
    else this.gpeEn = ((this.gpeEn & ~touched) | v) >>> 0;
    this.updateSci();
  }

  /** Raises a general-purpose event (a GPE0 status bit), e.g. for hot-plug notifications. */
  raiseGpe(bit: number): void {
    if (bit < 0 || bit > 31) return;
    this.gpeSts = (this.gpeSts | (1 << bit)) >>> 0;
    this.updateSci();
  }

  /** The power button was pressed (the host asks the guest for an orderly shutdown). */
  pressPowerButton(): void {
    this.pm1Sts |= PM1_PWRBTN;
    this.updateSci();
  }

  /** RTC alarm wake status (PM1 RTC_STS); the board may forward the RTC alarm here. */
  signalRtc(): void {
    this.pm1Sts |= PM1_RTC;
    this.updateSci();
  }

  private catchUp(now: number): void {
    const toggles = Math.floor(ticksIn(now, PM_TIMER_HZ) / TIMER_MSB);
    if (toggles > this.msbToggles) {
      this.msbToggles = toggles;
      this.pm1Sts |= PM1_TMR;
    }
  }

  private updateSci(): void {
    const level =
      (this.pm1Cnt & CNT_SCI_EN) !== 0 &&
      ((this.pm1Sts & this.pm1En & PM1_STS_BITS) !== 0 || (this.gpeSts & this.gpeEn) !== 0);
    if (level !== this.sciLevel) {
      this.sciLevel = level;
      this.sci.set(level);
    }
  }

  nextDeadlineNs(): number {
    if (!(this.pm1En & PM1_TMR)) return Number.POSITIVE_INFINITY;
    return nsForTicks((this.msbToggles + 1) * TIMER_MSB, PM_TIMER_HZ);
  }

  tick(nowNs: number): void {
    this.catchUp(nowNs);
    this.updateSci();
  }

  inspect(): string {
    const h = (v: number) => "0x" + (v >>> 0).toString(16);
    return (
      `ACPI PM: PM1_STS=${h(this.pm1Sts)} PM1_EN=${h(this.pm1En)} PM1_CNT=${h(this.pm1Cnt)} ` +
      `GPE0_STS=${h(this.gpeSts)} GPE0_EN=${h(this.gpeEn)} timer=${h(this.timer())} sci=${this.sciLevel ? 1 : 0}`
    );
  }
}
