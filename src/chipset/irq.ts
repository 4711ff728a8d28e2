// Owns: the board's interrupt wiring: ISA IRQ lines that devices drive, and the router that fans each line
// out to the 8259 pair and to the I/O APIC. Several devices may share a line (wired-OR, as PCI INTx would);
// the router sees the OR of their levels.
// Must not: decide priorities or vectors (the PIC and I/O APIC do), or know about processors.
// Spec: PC/AT ISA IRQ assignment; ACPI 6.5 5.2.12.5 (Interrupt Source Override): on this board ISA IRQ n is
// GSI n except IRQ0 (the PIT), which is GSI 2, the override the MADT declares.

import type { IrqLine } from "../contracts/platform.js";

/** Something with numbered interrupt inputs: the PIC pair (IRQ 0-15) or the I/O APIC (GSI 0-23). */
export interface InterruptInputs {
  setInput(input: number, level: boolean): void;
}

export const ISA_IRQ_COUNT = 16;

/** The GSI an ISA IRQ arrives on at the I/O APIC (the MADT's interrupt source override for IRQ0). */
export function isaIrqToGsi(irq: number): number {
  return irq === 0 ? 2 : irq;
}

export class IrqRouterError extends Error {
  override name = "IrqRouterError";
}

export class IrqRouter {
  /** Number of asserted sources per ISA line. */
  private readonly asserted = new Uint8Array(ISA_IRQ_COUNT);
  private readonly targets: { inputs: InterruptInputs; map: (irq: number) => number }[] = [];

  /** Adds a receiver; `map` turns an ISA IRQ number into the receiver's input number. */
  connect(inputs: InterruptInputs, map: (irq: number) => number = (irq) => irq): void {
    this.targets.push({ inputs, map });
  }

  /** A new source on ISA line `irq`, initially deasserted. */
  line(irq: number): IrqLine {
    if (!Number.isInteger(irq) || irq < 0 || irq >= ISA_IRQ_COUNT || irq === 2) {
      throw new IrqRouterError(`ISA IRQ ${irq} cannot take a device (0-15, 2 is the cascade)`);
    }
    let level = false;
    return {
      set: (l: boolean) => {
        if (l === level) return;
        level = l;
        const before = this.asserted[irq]! > 0;
        this.asserted[irq] = this.asserted[irq]! + (l ? 1 : -1);
        const after = this.asserted[irq]! > 0;
        if (before !== after) for (const t of this.targets) t.inputs.setInput(t.map(irq), after);
      },
    };
  }

  level(irq: number): boolean {
    return (this.asserted[irq] ?? 0) > 0;
  }
}
