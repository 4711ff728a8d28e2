// Owns: the few types that the processor, the hypervisor and the chipset all program against, defined once
// here below all three instead of as structural mirrors in each tier: time (`Clock`), the interrupt
// acknowledge cycle (`InterruptSource`), interrupt messages on the APIC bus (`ApicMessage`,
// `ApicMessageSink`) and a device's interrupt output (`IrqLine`).
// Must not: hold any code: types only, so every tier may depend on it and it depends on nothing.
// Spec: Intel SDM Vol. 3A 6.3 and 11.6 (interrupt acknowledge, APIC interrupt messages); 82093AA I/O APIC
// datasheet 3.2.4 (redirection-entry fields carried by a message); ARCHITECTURE.md "Time".

/**
 * A partition's virtual time in whole nanoseconds since it was created; never goes backwards. Integer values
 * keep deadline arithmetic exact: after `tick(t)` a device's next deadline is always later than t.
 */
export interface Clock {
  nowNs(): number;
}

/**
 * Whatever presents maskable interrupts to a processor or a local APIC: the local APIC to its processor, the
 * 8259 pair to the APIC's LINT0 (ExtINT) or straight to an APIC-less processor.
 */
export interface InterruptSource {
  /** Whether a maskable external interrupt is pending. */
  hasInterrupt(): boolean;
  /** Acknowledges the highest-priority pending interrupt and returns its vector (the INTA cycle). */
  acknowledge(): number;
}

/** One interrupt message on the APIC bus (what the I/O APIC sends to local APICs, and IPIs between them). */
export interface ApicMessage {
  /** Destination field (bits 63:56 of a redirection entry): an APIC ID (physical) or a logical set. */
  destination: number;
  logicalDestination: boolean;
  vector: number;
  /** Fixed 0, lowest priority 1, SMI 2, NMI 4, INIT 5, start-up 6, ExtINT 7. */
  deliveryMode: number;
  levelTriggered: boolean;
  /** Assert (true) or de-assert; the I/O APIC only sends asserts. */
  level: boolean;
  /** The I/O APIC pin it came from, for diagnostics only (local APICs do not see it). */
  pin?: number;
}

/**
 * Where interrupt messages go: the hypervisor's APIC bus. For level-triggered vectors the local APICs later
 * broadcast an EOI, which the platform passes back to the I/O APIC (clearing remote IRR).
 */
export interface ApicMessageSink {
  deliver(message: ApicMessage): void;
}

/** A device's interrupt output. `set(true)` asserts it; edges and levels are the receiver's business. */
export interface IrqLine {
  set(level: boolean): void;
}
