// Owns: the two reset registers guests use to restart a PC: the chipset's Reset Control Register at port
// 0xCF9 (SYS_RST, RST_CPU, FULL_RST) and the PS/2-style System Control Port A at 0x92 (fast reset in bit 0,
// the A20 gate in bit 1). The i8042 pulse-reset path lives with the keyboard controller (i8042.ts).
// Must not: reset anything itself: it reports the request to the board's reset callback. The A20 bit is
// stored and read back only: this machine never wraps addresses at 1 MiB (every 64-bit guest enables A20).
// Spec: Intel 82371AB (PIIX4) datasheet 4.1.17 (RC, Reset Control Register, I/O 0xCF9: bit 1 SRST/SYS_RST,
// bit 2 RCPU initiates the reset on a 0->1 write, bit 3 FULL_RST on ICH parts); Intel ICH9 datasheet 13.7.5
// (RST_CNT); IBM PS/2 Technical Reference, System Control Port A (0x92: bit 0 alternate hot reset on a
// 0->1 transition, bit 1 alternate gate A20).

import type { PortDevice } from "./port-bus.js";

export const RESET_CONTROL_PORT = 0xcf9;
export const PORT_A = 0x92;

/** "hard": platform reset (devices too); "soft": processor INIT only. */
export type ResetKind = "hard" | "soft";

export class ResetControl implements PortDevice {
  private value = 0;

  constructor(private readonly onReset: (kind: ResetKind, source: string) => void) {}

  reset(): void {
    this.value = 0;
  }

  readPort(): number {
    return this.value;
  }

  writePort(_offset: number, _size: number, value: number): void {
    // RST_CPU is self-clearing; SYS_RST and FULL_RST select the kind of the next reset.
    this.value = value & 0x0a;
    if (value & 0x04) this.onReset(value & 0x0a ? "hard" : "soft", "port 0xCF9");
  }

  inspect(): string {
    return `reset control (0xCF9): 0x${this.value.toString(16)}`;
  }
}

export class SystemControlPortA implements PortDevice {
  private value = 0;

  constructor(private readonly onReset: (kind: ResetKind, source: string) => void) {}

  get a20(): boolean {
    return (this.value & 0x02) !== 0;
  }

  readPort(): number {
    return this.value;
  }

  writePort(_offset: number, _size: number, value: number): void {
    const rising = value & 0x01 && !(this.value & 0x01);
    this.value = value & 0x03;
    if (rising) this.onReset("soft", "port 0x92 fast reset");
  }

  /** Platform reset: fast-reset and A20 bits clear. */
  reset(): void {
    this.value = 0;
  }

  /** After a reset the fast-reset bit reads 0 again, so the next 0->1 write is seen. */
  clearResetBit(): void {
    this.value &= ~0x01;
  }

  inspect(): string {
    return `port 0x92: 0x${this.value.toString(16)} (A20 ${this.a20 ? "on" : "off"})`;
  }
}
