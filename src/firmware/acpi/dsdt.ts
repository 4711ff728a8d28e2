// Owns: the Differentiated System Description Table's AML for a PCI-less PC: the \_S5 sleep package, and
// under \_SB one Device per platform device described by the caller (the standard set: COM1/COM2, RTC,
// PIT, PIC, keyboard controller; the VMBus node), so later issues add devices by passing descriptions.
// Must not: know where the table is placed or how devices are emulated; it only describes them.
// Spec: ACPI 6.5 5.2.11.1 (DSDT), 7.4.2 (\_Sx system states, SLP_TYPx values), 6.1 (_HID, _UID, _CID),
// 6.2.2 (_CRS); PNP IDs from the Plug and Play ISA/ACPI ID registry (PNP0501, PNP0B00, PNP0100, PNP0000,
// PNP0303).

import {
  AmlError,
  device,
  eisaId,
  integer,
  name,
  pkg,
  resourceTemplate,
  scope,
  string,
  type Aml,
  type Resource,
} from "./aml.js";

/** A platform device as firmware describes it to the OS. */
export interface AcpiDevice {
  /** Four-character ACPI name under \_SB, e.g. "COM1". */
  name: string;
  /** A PNP/ACPI ID: 7-character EISA IDs ("PNP0501") are compressed; anything else (e.g. "VMBus") is a string. */
  hid: string;
  uid?: number;
  /** Compatible ID, same encoding rules as `hid`. */
  cid?: string;
  /** The _CRS; absent means no _CRS, an empty list an empty ResourceTemplate (an end tag only). */
  resources?: readonly Resource[];
}

function id(value: string): Aml {
  return /^[A-Z]{3}[0-9A-F]{4}$/.test(value) ? eisaId(value) : string(value);
}

/** The standard legacy devices of the Viridian PC platform. */
export function standardDevices(options: { keyboardController?: boolean } = {}): AcpiDevice[] {
  const out: AcpiDevice[] = [
    {
      name: "COM1",
      hid: "PNP0501",
      uid: 1,
      resources: [
        { kind: "io", min: 0x3f8, length: 8 },
        { kind: "irq", irqs: [4] },
      ],
    },
    {
      name: "COM2",
      hid: "PNP0501",
      uid: 2,
      resources: [
        { kind: "io", min: 0x2f8, length: 8 },
        { kind: "irq", irqs: [3] },
      ],
    },
    {
      name: "RTC",
      hid: "PNP0B00",
      resources: [
        { kind: "io", min: 0x70, length: 2 },
        { kind: "irq", irqs: [8] },
      ],
    },
    {
      name: "PIT",
      hid: "PNP0100",
      resources: [
        { kind: "io", min: 0x40, length: 4 },
        { kind: "irq", irqs: [0] },
      ],
    },
    {
      name: "PIC",
      hid: "PNP0000",
      resources: [
        { kind: "io", min: 0x20, length: 2 },
        { kind: "io", min: 0xa0, length: 2 },
        { kind: "irq", irqs: [2] },
      ],
    },
  ];
  if (options.keyboardController ?? true) {
    out.push({
      name: "KBD",
      hid: "PNP0303",
      resources: [
        { kind: "io", min: 0x60, length: 1 },
        { kind: "io", min: 0x64, length: 1 },
        { kind: "irq", irqs: [1] },
      ],
    });
  }
  return out;
}

/**
 * Hyper-V's VMBus node as Linux's hv_vmbus looks for it: _HID "VMBus" and an empty _CRS (hv_vmbus walks the
 * device's _CRS and gives up without one; on x86 it takes no interrupt or MMIO from it: VMBus interrupts use
 * the hypervisor callback vector). Checklist 5.2.
 */
export function vmbusDevice(): AcpiDevice {
  return { name: "VMBS", hid: "VMBus", uid: 0, resources: [] };
}

/** The AML body of a DSDT (everything after the 36-byte table header). */
export function dsdtAml(devices: readonly AcpiDevice[], s5SleepType = 0): Uint8Array {
  const seen = new Set<string>();
  const devs = devices.map((d) => {
    if (seen.has(d.name)) throw new AmlError(`duplicate ACPI device name ${d.name}`);
    seen.add(d.name);
    const terms: Aml[] = [name("_HID", id(d.hid))];
    if (d.cid !== undefined) terms.push(name("_CID", id(d.cid)));
    if (d.uid !== undefined) terms.push(name("_UID", integer(d.uid)));
    if (d.resources !== undefined) terms.push(name("_CRS", resourceTemplate(d.resources)));
    return device(d.name, terms);
  });
  const s5 = name("\\_S5", pkg([integer(s5SleepType), integer(s5SleepType), integer(0), integer(0)]));
  const out = [s5, scope("\\_SB", devs)];
  return Uint8Array.from(out.flatMap((a) => [...a]));
}
