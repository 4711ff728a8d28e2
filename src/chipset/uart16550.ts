// Owns: one 16550A UART (the PC's COM port): the register file (RBR/THR, IER, IIR/FCR, LCR with the divisor
// latch, MCR, LSR, MSR, SCR), a 16-byte receive FIFO, loopback, and the interrupt-identification logic that
// drives its IRQ line. Transmitted bytes leave at once through a sink callback, so THRE and TEMT read as set
// except while loopback is feeding the receiver.
// Must not: know how the IRQ line reaches a processor (the board wires `irq` to a PIC or I/O APIC) or where
// bytes go (the worker gives a sink: stdout, a log file, a socket).
// Spec: National Semiconductor / TI PC16550D datasheet (SLLS057): Table 2 (register summary), 8.1-8.11
// (LCR, LSR, IIR with its priority table, FCR, IER, MCR, MSR, SCR, divisor latches), 8.6 (loopback).

import type { PortDevice } from "./port-bus.js";

const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;

const IER_RDA = 0x01;
const IER_THRE = 0x02;
const IER_RLS = 0x04;
const IER_MS = 0x08;

const IIR_NONE = 0x01;
const IIR_RLS = 0x06;
const IIR_RDA = 0x04;
const IIR_THRE = 0x02;
const IIR_MS = 0x00;

const LCR_DLAB = 0x80;
const MCR_LOOP = 0x10;
const MCR_OUT2 = 0x08;
const FIFO_SIZE = 16;

export interface Uart16550Options {
  /** Receives each transmitted byte (not called in loopback mode, where bytes go to the receiver). */
  sink: (byte: number) => void;
  /** The interrupt line (INTRPT gated by MCR.OUT2, as wired on PC boards); optional until a PIC exists. */
  irq?: (level: boolean) => void;
}

export class Uart16550 implements PortDevice {
  private ier = 0;
  private lcr = 0x03;
  private mcr = 0;
  private lsr = LSR_THRE | LSR_TEMT;
  private scr = 0;
  private divisor = 12; // 9600 baud, the PC BIOS default
  private fifoEnabled = false;
  /** A THRE interrupt is pending until IIR reports it or THR is written (datasheet 8.4, table). */
  private threPending = false;
  private msrDelta = 0;
  private readonly rx = new Uint8Array(FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;
  private irqLevel = false;

  constructor(private readonly options: Uart16550Options) {}

  /** Bytes arriving on the serial line (the host's keyboard, a socket); excess bytes set the overrun bit. */
  receive(bytes: Uint8Array): void {
    for (const b of bytes) this.pushRx(b);
    this.updateIrq();
  }

  get divisorLatch(): number {
    return this.divisor;
  }

  readPort(offset: number, _size: number): number {
    switch (offset) {
      case 0:
        if (this.lcr & LCR_DLAB) return this.divisor & 0xff;
        return this.readRbr();
      case 1:
        if (this.lcr & LCR_DLAB) return this.divisor >>> 8;
        return this.ier;
      case 2: {
        const id = this.interruptId();
        if (id === IIR_THRE) this.threPending = false;
        this.updateIrq();
        return id | (this.fifoEnabled ? 0xc0 : 0);
      }
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5: {
        const v = this.lsr;
        this.lsr &= ~LSR_OE; // reading LSR clears the error bits
        this.updateIrq();
        return v;
      }
      case 6:
        return this.readMsr();
      case 7:
        return this.scr;
      default:
        return 0xff;
    }
  }

  writePort(offset: number, _size: number, value: number): void {
    value &= 0xff;
    switch (offset) {
      case 0:
        if (this.lcr & LCR_DLAB) this.divisor = (this.divisor & 0xff00) | value;
        else this.transmit(value);
        break;
      case 1:
        if (this.lcr & LCR_DLAB) {
          this.divisor = (this.divisor & 0xff) | (value << 8);
        } else {
          const enablingThre = !(this.ier & IER_THRE) && value & IER_THRE;
          this.ier = value & 0x0f;
          // Enabling the THRE interrupt with an empty holding register raises it at once.
          if (enablingThre && this.lsr & LSR_THRE) this.threPending = true;
        }
        break;
      case 2:
        this.fifoEnabled = (value & 0x01) !== 0;
        if (value & 0x02 || !this.fifoEnabled) {
          this.rxHead = 0;
          this.rxCount = 0;
          this.lsr &= ~LSR_DR;
        }
        break;
      case 3:
        this.lcr = value;
        break;
      case 4: {
        const old = this.mcr;
        this.mcr = value & 0x1f;
        if ((old ^ this.mcr) & MCR_LOOP) this.msrDelta = 0;
        break;
      }
      case 7:
        this.scr = value;
        break;
      default:
        break; // LSR and MSR are read-only (writes are factory test modes)
    }
    this.updateIrq();
  }

  private transmit(byte: number): void {
    this.threPending = false;
    if (this.mcr & MCR_LOOP) this.pushRx(byte);
    else this.options.sink(byte);
    // The byte leaves at once: the holding register is empty again.
    this.lsr |= LSR_THRE | LSR_TEMT;
    if (this.ier & IER_THRE) this.threPending = true;
  }

  private pushRx(byte: number): void {
    const capacity = this.fifoEnabled ? FIFO_SIZE : 1;
    if (this.rxCount >= capacity) {
      this.lsr |= LSR_OE;
      if (!this.fifoEnabled) this.rx[this.rxHead] = byte; // the 16450 mode overwrites the holding register
      return;
    }
    this.rx[(this.rxHead + this.rxCount) % FIFO_SIZE] = byte;
    this.rxCount++;
    this.lsr |= LSR_DR;
  }

  private readRbr(): number {
    if (this.rxCount === 0) return 0;
    const b = this.rx[this.rxHead]!;
    this.rxHead = (this.rxHead + 1) % FIFO_SIZE;
    this.rxCount--;
    if (this.rxCount === 0) this.lsr &= ~LSR_DR;
    this.updateIrq();
    return b;
  }

  private readMsr(): number {
    let lines: number;
    if (this.mcr & MCR_LOOP) {
      // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
      const m = this.mcr;
      lines = ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4);
    } else {
      lines = 0xb0; // a console is always there: CTS, DSR and DCD asserted
    }
    const v = lines | this.msrDelta;
    this.msrDelta = 0;
    this.updateIrq();
    return v;
  }

  /** The highest-priority pending interrupt (datasheet IIR table). */
  private interruptId(): number {
    if (this.ier & IER_RLS && this.lsr & LSR_OE) return IIR_RLS;
    if (this.ier & IER_RDA && this.rxCount > 0) return IIR_RDA;
    if (this.ier & IER_THRE && this.threPending) return IIR_THRE;
    if (this.ier & IER_MS && this.msrDelta) return IIR_MS;
    return IIR_NONE;
  }

  private updateIrq(): void {
    const level = this.interruptId() !== IIR_NONE && (this.mcr & MCR_OUT2) !== 0;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.options.irq?.(level);
    }
  }
}
