// Owns: the assembly of this board's PC platform devices: builds the PIC pair, I/O APIC, PIT, CMOS RTC,
// two 16550A UARTs, ACPI PM block, reset registers and i8042; maps them on a PortBus and an MmioBus; wires
// their interrupt outputs through one IrqRouter to both interrupt controllers (ISA IRQ n -> PIC input n and
// I/O APIC GSI n, except IRQ0 -> GSI 2); and gives the run loop one surface: the PIC as the processor's
// interrupt source, the I/O APIC's message sink hook and EOI, power-off/reset callbacks, timer deadlines
// (`nextDeadlineNs`/`tick`) and a human-readable `inspect()` of every device.
// Must not: run processors or decide when time passes (the worker's run loop does), or own the local APIC
// (the hypervisor does; it plugs in through `setApicSink` and `apicEoi`).
// Spec: the PC/AT I/O map and IRQ assignment (IBM PC/AT Technical Reference); ACPI 6.5 5.2.12.5 (MADT
// interrupt source override IRQ0 -> GSI 2, SCI on IRQ 9 level); device specs are cited in each module.

import { PortBus } from "./port-bus.js";
import { MmioBus } from "./mmio-bus.js";
import { IrqRouter, isaIrqToGsi } from "./irq.js";
import type { ApicMessageSink, Clock, InterruptSource } from "../contracts/platform.js";
import { PicPair } from "./pic8259.js";
import { IoApic, IOAPIC_BASE, IOAPIC_SIZE } from "./ioapic.js";
import { Pit8254, PIT_PORT, PORT_B } from "./pit8254.js";
import { CmosRtc, RTC_IRQ, RTC_PORT } from "./cmos-rtc.js";
import { COM1_IRQ, COM1_PORT, COM2_IRQ, COM2_PORT, Uart16550 } from "./uart16550.js";
import {
  AcpiPm,
  GPE0_BLK,
  GPE0_BLK_LEN,
  PM1A_CNT_BLK,
  PM1A_EVT_BLK,
  PM1_CNT_LEN,
  PM1_EVT_LEN,
  PM_TMR_BLK,
  PM_TMR_LEN,
  SCI_IRQ,
} from "./acpi-pm.js";
import {
  PORT_A,
  RESET_CONTROL_PORT,
  ResetControl,
  SystemControlPortA,
  type ResetKind,
} from "./reset-control.js";
import { AUX_IRQ, I8042, I8042_DATA_PORT, I8042_STATUS_PORT, KEYBOARD_IRQ } from "./i8042.js";

export const PIC_MASTER_PORT = 0x20;
export const PIC_SLAVE_PORT = 0xa0;
export const ELCR_PORT = 0x4d0;
export const PIT_IRQ = 0;

export interface ChipsetOptions {
  clock: Clock;
  /** The host's calendar time in seconds since the Unix epoch, e.g. `() => Date.now() / 1000`. */
  hostSeconds: () => number;
  /** Per-VM RTC offset in seconds (the parent-created virtual RTC). */
  rtcOffsetSeconds?: number;
  /** Bytes the guest transmits on COM1 / COM2. */
  com1: (byte: number) => void;
  com2?: (byte: number) => void;
  /** The guest entered S5 (ACPI soft-off). */
  onPowerOff: () => void;
  /** The guest asked for a reset; `source` names the register (for logs). */
  onReset: (kind: ResetKind, source: string) => void;
  /** RAM sizes for the CMOS memory fields. */
  memoryBelow4G?: number;
  memoryAbove4G?: number;
  /** Buses to map onto (the board may add more devices); new ones are created if absent. */
  ports?: PortBus;
  mmio?: MmioBus;
}

export class Chipset {
  readonly ports: PortBus;
  readonly mmio: MmioBus;
  readonly irqs = new IrqRouter();
  readonly pic = new PicPair();
  readonly ioapic = new IoApic();
  readonly pit: Pit8254;
  readonly rtc: CmosRtc;
  readonly com1: Uart16550;
  readonly com2: Uart16550;
  readonly pm: AcpiPm;
  readonly resetControl: ResetControl;
  readonly portA: SystemControlPortA;
  readonly i8042: I8042;
  /** For processors without a local APIC: the 8259 master's INTR/INTA (the x86 tier's InterruptSource). */
  readonly interruptSource: InterruptSource;
  private lastTickNs = -1;

  constructor(options: ChipsetOptions) {
    const clock = options.clock;
    this.ports = options.ports ?? new PortBus();
    this.mmio = options.mmio ?? new MmioBus();
    this.irqs.connect(this.pic);
    this.irqs.connect(this.ioapic, isaIrqToGsi);
    this.interruptSource = this.pic;

    const onReset = (kind: ResetKind, source: string) => {
      this.portA.clearResetBit();
      options.onReset(kind, source);
    };
    this.pit = new Pit8254(clock, this.irqs.line(PIT_IRQ));
    this.rtc = new CmosRtc({
      clock,
      irq: this.irqs.line(RTC_IRQ),
      hostSeconds: options.hostSeconds,
      offsetSeconds: options.rtcOffsetSeconds ?? 0,
      memoryBelow4G: options.memoryBelow4G ?? 0,
      memoryAbove4G: options.memoryAbove4G ?? 0,
    });
    const com1Irq = this.irqs.line(COM1_IRQ);
    const com2Irq = this.irqs.line(COM2_IRQ);
    this.com1 = new Uart16550({ sink: options.com1, irq: (l) => com1Irq.set(l), clock });
    this.com2 = new Uart16550({ sink: options.com2 ?? (() => undefined), irq: (l) => com2Irq.set(l), clock });
    this.pm = new AcpiPm({ clock, sci: this.irqs.line(SCI_IRQ), onPowerOff: options.onPowerOff });
    this.resetControl = new ResetControl(onReset);
    this.portA = new SystemControlPortA(onReset);
    this.i8042 = new I8042({
      keyboardIrq: this.irqs.line(KEYBOARD_IRQ),
      auxIrq: this.irqs.line(AUX_IRQ),
      onReset,
    });

    const p = this.ports;
    p.map(PIC_MASTER_PORT, 2, this.pic.masterPorts, "8259A master PIC");
    p.map(PIC_SLAVE_PORT, 2, this.pic.slavePorts, "8259A slave PIC");
    p.map(ELCR_PORT, 2, this.pic.elcrPorts, "ELCR");
    p.map(PIT_PORT, 4, this.pit, "8254 PIT");
    p.map(PORT_B, 1, this.pit.portBDevice, "system control port B");
    p.map(RTC_PORT, 2, this.rtc, "CMOS RTC");
    p.map(COM1_PORT, 8, this.com1, "COM1 (16550A)");
    p.map(COM2_PORT, 8, this.com2, "COM2 (16550A)");
    p.map(PM1A_EVT_BLK, PM1_EVT_LEN, this.pm.eventBlock, "ACPI PM1a event block");
    p.map(PM1A_CNT_BLK, PM1_CNT_LEN, this.pm.controlBlock, "ACPI PM1a control block");
    p.map(PM_TMR_BLK, PM_TMR_LEN, this.pm.timerBlock, "ACPI PM timer");
    p.map(GPE0_BLK, GPE0_BLK_LEN, this.pm.gpeBlock, "ACPI GPE0 block");
    p.map(RESET_CONTROL_PORT, 1, this.resetControl, "reset control register");
    p.map(PORT_A, 1, this.portA, "system control port A");
    p.map(I8042_DATA_PORT, 1, this.i8042, "i8042 data");
    // The status/command port sits at offset 4 of the controller (0x60 + 4).
    p.map(
      I8042_STATUS_PORT,
      1,
      {
        readPort: (_o, s) => this.i8042.readPort(4, s),
        writePort: (_o, s, v) => this.i8042.writePort(4, s, v),
      },
      "i8042 status/command",
    );
    this.mmio.map(IOAPIC_BASE, IOAPIC_SIZE, this.ioapic, "I/O APIC");
  }

  /**
   * Platform (hard) reset of every device, for the worker to call from `onReset` before restarting the
   * processors. The RTC keeps its time and NVRAM, the UARTs their divisor and queued host input, and the
   * PM timer keeps counting, as on a PC.
   */
  reset(): void {
    this.pic.reset();
    this.ioapic.reset();
    this.pit.reset();
    this.rtc.reset();
    this.com1.reset();
    this.com2.reset();
    this.pm.reset();
    this.resetControl.reset();
    this.portA.reset();
    this.i8042.reset();
  }

  /** Connects the I/O APIC to the local APICs (the hypervisor's APIC bus). */
  setApicSink(sink: ApicMessageSink | null): void {
    this.ioapic.sink = sink;
  }

  /** A local APIC's EOI broadcast for `vector` (clears remote IRR of level-triggered I/O APIC pins). */
  apicEoi(vector: number): void {
    this.ioapic.eoi(vector);
  }

  /**
   * The earliest time a device needs `tick` to raise an interrupt; Infinity if none is armed. Always later
   * than the last `tick`: should rounding ever leave a device reporting a deadline that tick already passed,
   * the loop still moves forward instead of spinning at one instant.
   */
  nextDeadlineNs(): number {
    const d = Math.min(
      this.pit.nextDeadlineNs(),
      this.rtc.nextDeadlineNs(),
      this.pm.nextDeadlineNs(),
      this.com1.nextDeadlineNs(),
      this.com2.nextDeadlineNs(),
    );
    const floor = this.lastTickNs + Math.max(1, this.lastTickNs * Number.EPSILON);
    return d < floor ? floor : d;
  }

  /** Lets every timer catch up to `nowNs` (call at or after `nextDeadlineNs()`; extra calls are harmless). */
  tick(nowNs: number): void {
    if (nowNs > this.lastTickNs) this.lastTickNs = nowNs;
    this.pit.tick(nowNs);
    this.rtc.tick(nowNs);
    this.pm.tick(nowNs);
    this.com1.tick(nowNs);
    this.com2.tick(nowNs);
  }

  /** A state dump of every device, for `viridian inspect` and failure messages. */
  inspect(): string {
    const lines = [
      "ISA IRQ lines asserted: " +
        (Array.from({ length: 16 }, (_, i) => i)
          .filter((i) => this.irqs.level(i))
          .join(" ") || "none"),
      this.pic.inspect(),
      this.ioapic.inspect(),
      this.pit.inspect(),
      this.rtc.inspect(),
      this.com1.inspect("COM1"),
      this.com2.inspect("COM2"),
      this.pm.inspect(),
      this.resetControl.inspect(),
      this.portA.inspect(),
      this.i8042.inspect(),
      "MMIO: " + this.mmio.describe().join(", "),
    ];
    return lines.join("\n");
  }
}
