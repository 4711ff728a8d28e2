// Owns: the I/O APIC (24 redirection entries, version 0x20) at MMIO 0xFEC00000: the indirect register
// window (IOREGSEL at +0x00, IOWIN at +0x10), the EOI register at +0x40 of version-0x20 parts, the ID,
// version and arbitration registers, and per-pin redirection with edge and level semantics (remote IRR set
// on delivery of a level interrupt, cleared by the local APIC's EOI broadcast or the EOI register).
// Must not: implement a local APIC or pick a processor: every interrupt becomes an `ApicMessage` handed to
// an `ApicMessageSink` (src/contracts/platform.ts: the hypervisor's APIC bus; tests use a recording sink).
// Spec: Intel 82093AA I/O APIC datasheet (290566) 3.0 (register map, IOREGSEL/IOWIN), 3.2.1-3.2.4 (IOAPICID,
// IOAPICVER, IOAPICARB, IOREDTBL bit fields), "Edge/level" and remote IRR behaviour; Intel ICH9 datasheet
// 13.5 (I/O APIC registers: EOI register at offset 0x40, version 0x20).
// Inputs are logical: a pin's level means "asserted". The polarity bit is stored and read back, but the
// board's wiring (IrqRouter) already delivers asserted/deasserted, so polarity does not invert it.

import type { ApicMessageSink } from "../contracts/platform.js";
import type { MmioDevice } from "./mmio-bus.js";
import type { InterruptInputs } from "./irq.js";

export const IOAPIC_BASE = 0xfec00000;
export const IOAPIC_SIZE = 0x1000;
export const IOAPIC_PINS = 24;
export const IOAPIC_VERSION = 0x20;

export const enum DeliveryMode {
  Fixed = 0,
  LowestPriority = 1,
  Smi = 2,
  Nmi = 4,
  Init = 5,
  ExtInt = 7,
}

const LO_MASK = 1 << 16;
const LO_TRIGGER_LEVEL = 1 << 15;
const LO_REMOTE_IRR = 1 << 14;
/** Bits software may write in the low dword: all but delivery status (12) and remote IRR (14). */
const LO_WRITABLE = 0x1afff;

export class IoApic implements MmioDevice, InterruptInputs {
  private id = 0;
  private select = 0;
  private readonly lo = new Uint32Array(IOAPIC_PINS).fill(LO_MASK);
  private readonly hi = new Uint32Array(IOAPIC_PINS);
  private pins = 0;
  sink: ApicMessageSink | null = null;
  /** Messages sent since reset (diagnostics). */
  delivered = 0;

  /** Platform reset: ID 0, every entry masked with remote IRR clear; the input levels remain. */
  reset(): void {
    this.id = 0;
    this.select = 0;
    this.lo.fill(LO_MASK);
    this.hi.fill(0);
  }

  readMmio(offset: number, size: number): number {
    const reg = offset & ~3;
    const shift = (offset & 3) * 8;
    let v: number;
    if (reg === 0x00) v = this.select;
    else if (reg === 0x10) v = this.readRegister(this.select);
    else v = 0;
    return size >= 4 ? v >>> 0 : (v >>> shift) & ((1 << (size * 8)) - 1);
  }

  writeMmio(offset: number, size: number, value: number): void {
    const reg = offset & ~3;
    if (reg === 0x00) this.select = value & 0xff;
    else if (reg === 0x10) {
      // Sub-dword writes to IOWIN merge into the selected register.
      if (size < 4) {
        const shift = (offset & 3) * 8;
        const mask = ((1 << (size * 8)) - 1) << shift;
        const old = this.readRegister(this.select);
        value = (old & ~mask) | ((value << shift) & mask);
      }
      this.writeRegister(this.select, value >>> 0);
    } else if (reg === 0x40) this.eoi(value & 0xff);
  }

  readRegister(index: number): number {
    if (index === 0x00) return this.id << 24;
    if (index === 0x01) return ((IOAPIC_PINS - 1) << 16) | IOAPIC_VERSION;
    if (index === 0x02) return this.id << 24; // arbitration ID mirrors the APIC ID after reset
    const pin = (index - 0x10) >> 1;
    if (index >= 0x10 && pin < IOAPIC_PINS) return index & 1 ? this.hi[pin]! : this.lo[pin]!;
    return 0;
  }

  writeRegister(index: number, value: number): void {
    if (index === 0x00) {
      this.id = (value >>> 24) & 0x0f;
      return;
    }
    const pin = (index - 0x10) >> 1;
    if (index < 0x10 || pin >= IOAPIC_PINS) return;
    if (index & 1) {
      this.hi[pin] = value & 0xff000000;
      return;
    }
    const keep = this.lo[pin]! & LO_REMOTE_IRR;
    this.lo[pin] = ((value & LO_WRITABLE) | keep) >>> 0;
    // Switching a pin to edge clears its remote IRR, which means nothing for edges.
    if (!(value & LO_TRIGGER_LEVEL)) this.lo[pin] = this.lo[pin]! & ~LO_REMOTE_IRR;
    this.service(pin);
  }

  setInput(pin: number, level: boolean): void {
    if (pin < 0 || pin >= IOAPIC_PINS) return;
    const bit = 1 << pin;
    const was = (this.pins & bit) !== 0;
    if (level) this.pins |= bit;
    else this.pins &= ~bit;
    const lo = this.lo[pin]!;
    if (lo & LO_TRIGGER_LEVEL) this.service(pin);
    else if (level && !was && !(lo & LO_MASK)) this.send(pin);
    // A masked edge is lost, as on the 82093AA.
  }

  /** A level pin that is asserted, unmasked and not awaiting EOI sends (again). */
  private service(pin: number): void {
    const lo = this.lo[pin]!;
    if (!(lo & LO_TRIGGER_LEVEL) || lo & LO_MASK || lo & LO_REMOTE_IRR) return;
    if (!(this.pins & (1 << pin))) return;
    if (this.send(pin)) this.lo[pin] = (this.lo[pin]! | LO_REMOTE_IRR) >>> 0;
  }

  private send(pin: number): boolean {
    if (!this.sink) return false; // no APIC bus connected: the message has nowhere to go
    const lo = this.lo[pin]!;
    this.delivered++;
    this.sink.deliver({
      destination: this.hi[pin]! >>> 24,
      logicalDestination: (lo & (1 << 11)) !== 0,
      vector: lo & 0xff,
      deliveryMode: (lo >> 8) & 7,
      levelTriggered: (lo & LO_TRIGGER_LEVEL) !== 0,
      level: true,
      pin,
    });
    return true;
  }

  /** EOI for `vector` (local APIC broadcast or the EOI register): clears remote IRR on matching pins. */
  eoi(vector: number): void {
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      const lo = this.lo[pin]!;
      if ((lo & 0xff) === vector && lo & LO_REMOTE_IRR) {
        this.lo[pin] = lo & ~LO_REMOTE_IRR;
        this.service(pin);
      }
    }
  }

  inspect(): string {
    const lines = [
      `I/O APIC: id=${this.id} select=0x${this.select.toString(16)} pins=0x${this.pins.toString(16)} ` +
        `delivered=${this.delivered}${this.sink ? "" : " (no APIC bus attached)"}`,
    ];
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      const lo = this.lo[pin]!;
      if (lo & LO_MASK && !(this.pins & (1 << pin))) continue;
      lines.push(
        `  pin ${pin}: vec=0x${(lo & 0xff).toString(16)} mode=${(lo >> 8) & 7} ` +
          `${lo & LO_TRIGGER_LEVEL ? "level" : "edge"}${lo & LO_MASK ? " masked" : ""}` +
          `${lo & LO_REMOTE_IRR ? " remote-irr" : ""}${lo & (1 << 13) ? " active-low" : ""} ` +
          `dest=0x${(this.hi[pin]! >>> 24).toString(16)}${lo & (1 << 11) ? " logical" : ""}` +
          ` input=${(this.pins >> pin) & 1}`,
      );
    }
    return lines.join("\n");
  }
}
