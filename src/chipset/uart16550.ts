// Owns: one 16550A UART (the PC's COM port): the register file (RBR/THR, IER, IIR/FCR, LCR with the divisor
// latch, MCR, LSR, MSR, SCR), the 16-byte receive FIFO with its trigger levels and character-timeout
// interrupt, loopback, modem-status deltas, the interrupt-identification logic with the datasheet's
// priorities, and the host side of the serial line: `receive(bytes)` queues host input without loss and
// feeds it to the receiver as fast as the guest drains it (the host queue is the flow control a real line
// would need). Transmitted bytes leave at once through a sink callback, so the transmitter FIFO is always
// empty: THRE and TEMT read as set, and a THRE interrupt follows every write.
// Must not: know how the IRQ line reaches a processor (the board wires `irq`; as on PCs, MCR.OUT2 gates it)
// or where bytes go (the worker gives a sink: stdout, a log file, a socket).
// Spec: TI PC16550D datasheet (SLLS057): Table 2 (register summary), 8.1-8.11 (LCR, LSR, IIR with its
// priority table 4 incl. character timeout, FCR trigger levels, IER, MCR, MSR with delta bits, SCR, divisor
// latches), 8.6 (loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD), FIFO interrupt mode operation (timeout
// after four character times without FIFO activity). IBM PC: OUT2 enables the IRQ driver.

import type { PortDevice } from "./port-bus.js";
import type { Clock } from "../contracts/platform.js";
import { DOUBLE_ZERO } from "../support/heap-number.js";

export const COM1_PORT = 0x3f8;
export const COM1_IRQ = 4;
export const COM2_PORT = 0x2f8;
export const COM2_IRQ = 3;

const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_BI = 0x10;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;

const IER_RDA = 0x01;
const IER_THRE = 0x02;
const IER_RLS = 0x04;
const IER_MS = 0x08;

const IIR_NONE = 0x01;
const IIR_RLS = 0x06;
const IIR_RDA = 0x04;
const IIR_CTI = 0x0c;
const IIR_THRE = 0x02;
const IIR_MS = 0x00;

const LCR_DLAB = 0x80;
const MCR_LOOP = 0x10;
const MCR_OUT2 = 0x08;
const FIFO_SIZE = 16;
const TRIGGER_LEVELS = [1, 4, 8, 14] as const;
/** The UART's reference clock divided by 16: the baud rate with divisor 1 (1.8432 MHz crystal). */
const BAUD_BASE = 115_200;

/** Host-driven modem inputs (outside loopback). */
export interface ModemLines {
  cts: boolean;
  dsr: boolean;
  ri: boolean;
  dcd: boolean;
}

export interface Uart16550Options {
  /** Receives each transmitted byte (not called in loopback mode, where bytes go to the receiver). */
  sink: (byte: number) => void;
  /** The interrupt line (INTRPT gated by MCR.OUT2, as wired on PC boards). */
  irq?: (level: boolean) => void;
  /**
   * Time for the character-timeout interrupt (four character times at the programmed baud rate). Without
   * a clock the timeout counts as already elapsed, so data below the trigger level is reported at once.
   */
  clock?: Clock;
}

export class Uart16550 implements PortDevice {
  private ier = 0;
  private lcr = 0x03;
  private mcr = 0;
  private lsr = LSR_THRE | LSR_TEMT;
  private scr = 0;
  private divisor = 12; // 9600 baud, the PC BIOS default
  private fifoEnabled = false;
  private triggerLevel = 1;
  /** A THRE interrupt is pending until IIR reports it or THR is written (datasheet IIR table). */
  private threPending = false;
  private msrDelta = 0;
  /** The modem input bits (MSR 7:4) as last reported, for delta detection. */
  private msrLines = 0;
  private hostLines: ModemLines = { cts: true, dsr: true, ri: false, dcd: true };
  private readonly rx = new Uint8Array(FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;
  /** Host bytes not yet in the receiver: chunks, with a read position in the first. */
  private readonly hostQueue: Uint8Array[] = [];
  private hostPos = 0;
  private hostBytes = 0;
  /** Last time the receive FIFO was read or written (for the character timeout). */
  private lastRxActivityNs = DOUBLE_ZERO;
  private irqLevel = false;

  constructor(private readonly options: Uart16550Options) {
    this.msrLines = this.currentLines();
  }

  /**
   * Bytes arriving on the serial line (the host's keyboard, a socket). Nothing is dropped: what does not
   * fit in the receiver waits here until the guest reads (see `pendingHostBytes` for flow control).
   */
  receive(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.hostQueue.push(bytes.slice());
    this.hostBytes += bytes.length;
    this.feedFromHost();
    this.updateIrq();
  }

  /** Host bytes still waiting for room in the receiver; the worker can pause its input source above a limit. */
  get pendingHostBytes(): number {
    return this.hostBytes;
  }

  get divisorLatch(): number {
    return this.divisor;
  }

  /** Sets the modem-status inputs the host side presents (CTS, DSR, RI, DCD), updating the delta bits. */
  setModemLines(lines: ModemLines): void {
    this.hostLines = { ...lines };
    this.refreshMsr();
    this.updateIrq();
  }

  /** The host sent a break condition (LSR.BI, a receiver line status interrupt). */
  sendBreak(): void {
    this.lsr |= LSR_BI;
    this.updateIrq();
  }

  /**
   * Master reset (datasheet table 11): IER, FCR, LCR, MCR and the line/modem status return to their reset
   * values and the receiver FIFO empties; the divisor latch and scratch register keep their contents, and
   * host bytes still queued are kept for the next guest.
   */
  reset(): void {
    this.ier = 0;
    this.lcr = 0;
    this.mcr = 0;
    this.lsr = LSR_THRE | LSR_TEMT;
    this.fifoEnabled = false;
    this.triggerLevel = 1;
    this.threPending = false;
    this.msrDelta = 0;
    this.msrLines = this.currentLines();
    this.rxHead = 0;
    this.rxCount = 0;
    this.lastRxActivityNs = this.now();
    this.feedFromHost();
    this.updateIrq();
  }

  private get capacity(): number {
    return this.fifoEnabled ? FIFO_SIZE : 1;
  }

  private feedFromHost(): void {
    // In loopback the receiver is disconnected from the line: host input waits.
    if (this.mcr & MCR_LOOP) return;
    while (this.hostBytes > 0 && this.rxCount < this.capacity) {
      const chunk = this.hostQueue[0]!;
      this.pushRx(chunk[this.hostPos]!);
      this.hostPos++;
      this.hostBytes--;
      if (this.hostPos >= chunk.length) {
        this.hostQueue.shift();
        this.hostPos = 0;
      }
    }
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
        this.lsr &= ~(LSR_OE | LSR_BI); // reading LSR clears the error bits
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
        this.writeFcr(value);
        break;
      case 3:
        this.lcr = value;
        break;
      case 4: {
        const old = this.mcr;
        this.mcr = value & 0x1f;
        this.refreshMsr();
        if (old & MCR_LOOP && !(this.mcr & MCR_LOOP)) this.feedFromHost();
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

  private writeFcr(value: number): void {
    const enable = (value & 0x01) !== 0;
    // Changing the FIFO enable clears both FIFOs; bit 1 clears the receiver FIFO (bit 2, the transmitter
    // FIFO, is always empty here).
    if (enable !== this.fifoEnabled || value & 0x02) {
      this.rxHead = 0;
      this.rxCount = 0;
      this.lsr &= ~LSR_DR;
    }
    this.fifoEnabled = enable;
    if (enable) this.triggerLevel = TRIGGER_LEVELS[(value >> 6) & 3]!;
    this.lastRxActivityNs = this.now();
    this.feedFromHost();
  }

  private now(): number {
    return this.options.clock?.nowNs() ?? 0;
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
    this.lastRxActivityNs = this.now();
    if (this.rxCount >= this.capacity) {
      // Overrun: the FIFO keeps its contents; the character in the shift register is lost (in 16450 mode
      // the holding register is overwritten).
      this.lsr |= LSR_OE;
      if (!this.fifoEnabled) this.rx[this.rxHead] = byte;
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
    this.lastRxActivityNs = this.now();
    this.feedFromHost();
    if (this.rxCount === 0) this.lsr &= ~LSR_DR;
    this.updateIrq();
    return b;
  }

  /** MSR 7:4 as the pins present them now. */
  private currentLines(): number {
    if (this.mcr & MCR_LOOP) {
      // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
      const m = this.mcr;
      return ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4);
    }
    const h = this.hostLines;
    return (h.cts ? 0x10 : 0) | (h.dsr ? 0x20 : 0) | (h.ri ? 0x40 : 0) | (h.dcd ? 0x80 : 0);
  }

  /** Latches delta bits for changed inputs: DCTS, DDSR, DDCD on any change, TERI on RI's trailing edge. */
  private refreshMsr(): void {
    const now = this.currentLines();
    const changed = now ^ this.msrLines;
    if (changed & 0x10) this.msrDelta |= 0x01;
    if (changed & 0x20) this.msrDelta |= 0x02;
    if (changed & 0x40 && !(now & 0x40)) this.msrDelta |= 0x04;
    if (changed & 0x80) this.msrDelta |= 0x08;
    this.msrLines = now;
  }

  private readMsr(): number {
    this.refreshMsr();
    const v = this.msrLines | this.msrDelta;
    this.msrDelta = 0;
    this.updateIrq();
    return v;
  }

  private charTimeNs(): number {
    const divisor = this.divisor === 0 ? 0x10000 : this.divisor;
    // Start bit + data bits + parity + stop bits, at BAUD_BASE / divisor.
    const bits = 1 + 5 + (this.lcr & 3) + (this.lcr & 0x08 ? 1 : 0) + (this.lcr & 0x04 ? 2 : 1);
    return (bits * divisor * 1e9) / BAUD_BASE;
  }

  /** When the character timeout for data below the trigger level fires. */
  private timeoutAtNs(): number {
    return this.lastRxActivityNs + Math.ceil(4 * this.charTimeNs());
  }

  private timedOut(): boolean {
    return !this.options.clock || this.now() >= this.timeoutAtNs();
  }

  /** The highest-priority pending interrupt (datasheet IIR table). */
  private interruptId(): number {
    if (this.ier & IER_RLS && this.lsr & (LSR_OE | LSR_BI)) return IIR_RLS;
    if (this.ier & IER_RDA && this.rxCount > 0) {
      if (!this.fifoEnabled || this.rxCount >= this.triggerLevel) return IIR_RDA;
      if (this.timedOut()) return IIR_CTI;
    }
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

  /** When a character-timeout interrupt may become due, or Infinity. */
  nextDeadlineNs(): number {
    if (!this.options.clock || !this.fifoEnabled || !(this.ier & IER_RDA)) return Number.POSITIVE_INFINITY;
    if (this.rxCount === 0 || this.rxCount >= this.triggerLevel) return Number.POSITIVE_INFINITY;
    const t = this.timeoutAtNs();
    if (t > this.now()) return t;
    // Already due: raise it now rather than report a deadline in the past (which would spin the loop).
    this.updateIrq();
    return Number.POSITIVE_INFINITY;
  }

  tick(_nowNs: number): void {
    this.updateIrq();
  }

  inspect(name = "UART"): string {
    const h = (v: number) => v.toString(16).padStart(2, "0");
    return (
      `${name}: IER=${h(this.ier)} IIR=${h(this.interruptId() | (this.fifoEnabled ? 0xc0 : 0))} ` +
      `LCR=${h(this.lcr)} MCR=${h(this.mcr)} LSR=${h(this.lsr)} MSR=${h(this.msrLines | this.msrDelta)} ` +
      `SCR=${h(this.scr)} divisor=${this.divisor}${this.fifoEnabled ? ` fifo trigger=${this.triggerLevel}` : ""} ` +
      `rx=${this.rxCount} host-queue=${this.hostBytes} irq=${this.irqLevel ? 1 : 0}`
    );
  }
}
