// Owns: the PC's cascaded 8259A programmable interrupt controllers (master at 0x20/0x21, slave at
// 0xA0/0xA1, slave on master IR2) and the EISA edge/level control registers (ELCR, 0x4D0/0x4D1): the
// initialization sequence (ICW1-ICW4), OCW1 (mask), OCW2 (EOI, rotation, priority), OCW3 (IRR/ISR read,
// poll, special mask), IRR/ISR/IMR, edge and level triggering, auto-EOI, special fully nested mode,
// spurious IR7/IR15, and the INTA cycle the processor runs to fetch a vector.
// Must not: know which device sits on which line (the board's IrqRouter drives `setInput`), or deliver to
// the processor itself: the master is an `InterruptSource` the processor (or the hypervisor) polls.
// Spec: Intel 8259A datasheet (231468): "Interrupt Sequence", "Initialization Command Words" (ICW1-4, fig. 6),
// "Operation Command Words" (OCW1-3, fig. 8), "Fully nested / Automatic rotation / Specific rotation",
// "Special mask mode", "Poll command", "Reading the 8259A status", "Edge and level triggered modes",
// "Cascading" (spurious IR7 when the request goes away before INTA). ELCR: Intel 82371AB (PIIX4) datasheet
// 4.1.12 (ELCR1/ELCR2; IRQ0-2, 8 and 13 are always edge).

import type { PortDevice } from "./port-bus.js";
import type { InterruptSource } from "../contracts/platform.js";
import type { InterruptInputs } from "./irq.js";

const CASCADE_IRQ = 2;

function hex2(v: number): string {
  return v.toString(16).padStart(2, "0");
}

/** One 8259A. The pair wires the slave's INT output to the master's IR2. */
class Pic8259Chip {
  irr = 0;
  isr = 0;
  imr = 0;
  /** Input levels as last seen, for edge detection. */
  lines = 0;
  elcr = 0;
  vectorBase = 0;
  /** The IR with the highest priority is (lowest + 1) & 7; rotation moves `lowest`. */
  lowest = 7;
  /** 0: operational; 2, 3, 4: the ICW expected next on the odd port. */
  initStep = 0;
  needIcw4 = false;
  single = false;
  levelAll = false;
  icw3 = 0;
  autoEoi = false;
  rotateOnAutoEoi = false;
  specialMask = false;
  specialFullyNested = false;
  readIsr = false;
  pollPending = false;
  /** Called after any change that may alter the INT output. */
  onChange: () => void = () => undefined;

  constructor(
    readonly name: string,
    private readonly elcrMask: number,
    private readonly isMaster: boolean,
  ) {}

  /** Power-on state (RESET pin): uninitialised, nothing pending or masked; the input levels remain. */
  reset(): void {
    this.irr = 0;
    this.isr = 0;
    this.imr = 0;
    this.elcr = 0;
    this.vectorBase = 0;
    this.lowest = 7;
    this.initStep = 0;
    this.needIcw4 = false;
    this.single = false;
    this.levelAll = false;
    this.icw3 = 0;
    this.autoEoi = false;
    this.rotateOnAutoEoi = false;
    this.specialMask = false;
    this.specialFullyNested = false;
    this.readIsr = false;
    this.pollPending = false;
    this.onChange();
  }

  isLevel(irq: number): boolean {
    return this.levelAll || ((this.elcr >> irq) & 1) === 1;
  }

  setInput(irq: number, level: boolean): void {
    const bit = 1 << irq;
    if (this.isLevel(irq)) {
      if (level) this.irr |= bit;
      else this.irr &= ~bit;
    } else if (level && !(this.lines & bit)) {
      this.irr |= bit;
    }
    // An edge-triggered request stays in IRR after the line drops: the 8259A latches it (datasheet,
    // "Edge and level triggered modes"); only INTA or ICW1 clears it.
    if (level) this.lines |= bit;
    else this.lines &= ~bit;
    this.onChange();
  }

  /** Priority rank of an IR (0 = highest) under the current rotation. */
  private rank(irq: number): number {
    return (irq - this.lowest - 1) & 7;
  }

  /** The highest-priority IR set in `mask`, or -1. */
  private highest(mask: number): number {
    for (let r = 0; r < 8; r++) {
      const irq = (this.lowest + 1 + r) & 7;
      if (mask & (1 << irq)) return irq;
    }
    return -1;
  }

  /** The IR that would interrupt now (a request outranking everything in service), or -1. */
  pending(): number {
    const req = this.highest(this.irr & ~this.imr);
    if (req < 0) return -1;
    let inService = this.isr;
    // Special mask mode: masked levels do not inhibit lower priorities (datasheet "Special mask mode").
    if (this.specialMask) inService &= ~this.imr;
    // Special fully nested: a further request from the slave in service is allowed through.
    if (this.isMaster && this.specialFullyNested) inService &= ~this.icw3;
    const cur = this.highest(inService);
    if (cur >= 0 && this.rank(cur) <= this.rank(req)) return -1;
    return req;
  }

  /** INTA: moves the IR from IRR to ISR (or retires it at once with auto-EOI). */
  ack(irq: number): void {
    const bit = 1 << irq;
    if (!this.isLevel(irq)) this.irr &= ~bit;
    if (this.autoEoi) {
      if (this.rotateOnAutoEoi) this.lowest = irq;
    } else {
      this.isr |= bit;
    }
    this.onChange();
  }

  private eoi(irq: number, rotate: boolean): void {
    if (irq < 0) return;
    this.isr &= ~(1 << irq);
    if (rotate) this.lowest = irq;
  }

  read(offset: number): number {
    if (offset === 1) return this.imr;
    if (this.pollPending) {
      this.pollPending = false;
      const irq = this.pending();
      if (irq < 0) return 0;
      this.ack(irq);
      return 0x80 | irq;
    }
    return this.readIsr ? this.isr : this.irr;
  }

  write(offset: number, value: number): void {
    if (offset === 0) {
      if (value & 0x10) this.icw1(value);
      else if (value & 0x08) this.ocw3(value);
      else this.ocw2(value);
    } else if (this.initStep === 2) {
      this.vectorBase = value & 0xf8;
      this.initStep = this.single ? (this.needIcw4 ? 4 : 0) : 3;
    } else if (this.initStep === 3) {
      this.icw3 = value;
      this.initStep = this.needIcw4 ? 4 : 0;
    } else if (this.initStep === 4) {
      this.autoEoi = (value & 0x02) !== 0;
      this.specialFullyNested = (value & 0x10) !== 0;
      this.initStep = 0;
    } else {
      this.imr = value;
    }
    this.onChange();
  }

  private icw1(value: number): void {
    // ICW1 resets the edge sense, clears IMR and ISR, gives IR7 the lowest priority, and clears special
    // mask mode and the status-read selection (datasheet "Initialization command words").
    this.initStep = 2;
    this.needIcw4 = (value & 0x01) !== 0;
    this.single = (value & 0x02) !== 0;
    this.levelAll = (value & 0x08) !== 0;
    this.imr = 0;
    this.isr = 0;
    this.irr = 0;
    for (let irq = 0; irq < 8; irq++) if (this.isLevel(irq) && this.lines & (1 << irq)) this.irr |= 1 << irq;
    this.lowest = 7;
    this.specialMask = false;
    this.readIsr = false;
    this.pollPending = false;
    if (!this.needIcw4) {
      this.autoEoi = false;
      this.specialFullyNested = false;
    }
    this.rotateOnAutoEoi = false;
  }

  private ocw2(value: number): void {
    const level = value & 7;
    switch (value >> 5) {
      case 0b001: // non-specific EOI
        this.eoi(this.highest(this.isr), false);
        break;
      case 0b011: // specific EOI
        this.eoi(level, false);
        break;
      case 0b101: // rotate on non-specific EOI
        this.eoi(this.highest(this.isr), true);
        break;
      case 0b100:
        this.rotateOnAutoEoi = true;
        break;
      case 0b000:
        this.rotateOnAutoEoi = false;
        break;
      case 0b111: // rotate on specific EOI
        this.eoi(level, true);
        break;
      case 0b110: // set priority: `level` becomes the lowest
        this.lowest = level;
        break;
      default: // 0b010: no operation
        break;
    }
  }

  private ocw3(value: number): void {
    if (value & 0x40) this.specialMask = (value & 0x20) !== 0;
    if (value & 0x04) this.pollPending = true;
    if (value & 0x02) this.readIsr = (value & 0x01) !== 0;
  }

  readElcr(): number {
    return this.elcr;
  }

  writeElcr(value: number): void {
    this.elcr = value & this.elcrMask;
    // A line switched to level follows its input from now on; one switched to edge keeps what it latched.
    for (let irq = 0; irq < 8; irq++) {
      const bit = 1 << irq;
      if (this.isLevel(irq)) this.irr = this.lines & bit ? this.irr | bit : this.irr & ~bit;
    }
    this.onChange();
  }

  inspect(): string {
    const init = this.initStep === 0 ? "" : ` awaiting ICW${this.initStep}`;
    return (
      `${this.name}: base=0x${hex2(this.vectorBase)} irr=${hex2(this.irr)} isr=${hex2(this.isr)} ` +
      `imr=${hex2(this.imr)} elcr=${hex2(this.elcr)} lines=${hex2(this.lines)} lowest=${this.lowest}` +
      `${this.autoEoi ? " aeoi" : ""}${this.specialMask ? " smm" : ""}${this.specialFullyNested ? " sfnm" : ""}${init}`
    );
  }
}

/** The master/slave pair as a PC wires it. Ports: offset 0/1 = master 0x20/0x21; slave and ELCR separately. */
export class PicPair implements InterruptInputs, InterruptSource {
  readonly master = new Pic8259Chip("master PIC", 0xf8, true);
  readonly slave = new Pic8259Chip("slave PIC", 0xde, false);
  /** Port devices for 0x20-0x21, 0xA0-0xA1 and 0x4D0-0x4D1. */
  readonly masterPorts: PortDevice;
  readonly slavePorts: PortDevice;
  readonly elcrPorts: PortDevice;
  private slaveOut = false;

  constructor() {
    this.slave.onChange = () => {
      const out = this.slave.pending() >= 0;
      if (out !== this.slaveOut) {
        this.slaveOut = out;
        this.master.setInput(CASCADE_IRQ, out);
      }
    };
    this.masterPorts = this.chipPorts(this.master);
    this.slavePorts = this.chipPorts(this.slave);
    this.elcrPorts = {
      // A 16-bit access at 0x4D0 reaches both registers (ELCR1 low byte, ELCR2 high byte).
      readPort: (offset, size) => {
        if (offset === 0) return this.master.readElcr() | (size > 1 ? this.slave.readElcr() << 8 : 0);
        return this.slave.readElcr();
      },
      writePort: (offset, size, value) => {
        if (offset !== 0) return this.slave.writeElcr(value & 0xff);
        this.master.writeElcr(value & 0xff);
        if (size > 1) this.slave.writeElcr((value >>> 8) & 0xff);
      },
    };
  }

  private chipPorts(chip: Pic8259Chip): PortDevice {
    return {
      readPort: (offset, size) => {
        // A 16-bit access reaches both registers (low byte at the even port).
        if (size === 1) return chip.read(offset & 1);
        return chip.read(0) | (chip.read(1) << 8);
      },
      writePort: (offset, size, value) => {
        chip.write(offset & 1, value & 0xff);
        if (size > 1 && offset === 0) chip.write(1, (value >>> 8) & 0xff);
      },
    };
  }

  /** Drives IRQ 0-15 (8-15 on the slave). IRQ2 is the cascade and is driven only by the slave. */
  setInput(irq: number, level: boolean): void {
    if (irq === CASCADE_IRQ || irq < 0 || irq > 15) return;
    if (irq < 8) this.master.setInput(irq, level);
    else this.slave.setInput(irq - 8, level);
  }

  hasInterrupt(): boolean {
    return this.master.pending() >= 0;
  }

  /** Platform reset: both chips to their power-on state (the ELCR clears to all-edge, as on PIIX4). */
  reset(): void {
    this.slave.reset();
    this.master.reset();
  }

  /**
   * The INTA cycle: returns the vector of the highest-priority request and marks it in service. If the
   * request vanished (a level line dropped), the chip answers with IR7 without setting ISR: the spurious
   * interrupt guests detect by reading ISR.
   */
  acknowledge(): number {
    const irq = this.master.pending();
    if (irq < 0) return this.master.vectorBase | 7;
    if (irq === CASCADE_IRQ && !this.master.single && this.master.icw3 & (1 << CASCADE_IRQ)) {
      const sirq = this.slave.pending();
      this.master.ack(irq);
      if (sirq < 0) return this.slave.vectorBase | 7;
      this.slave.ack(sirq);
      // With auto-EOI the slave's INT may stay high for the next request; the master must see it again.
      if (this.slave.pending() >= 0) this.master.irr |= 1 << CASCADE_IRQ;
      return this.slave.vectorBase | sirq;
    }
    this.master.ack(irq);
    return this.master.vectorBase | irq;
  }

  inspect(): string {
    return `${this.master.inspect()}\n${this.slave.inspect()}`;
  }
}
