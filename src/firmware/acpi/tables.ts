// Owns: generating the static ACPI tables of a VM from its configuration (CPU count, devices) and placing
// them in guest RAM: RSDP (revision 2) in the BIOS area, and XSDT, FADT, FACS, MADT and DSDT in the region
// the e820 map reports as ACPI (type 3), each with a correct checksum.
// Must not: model the hardware the tables describe (the chipset tier owns the PM block at 0x600, the reset
// register at 0xCF9, the APICs); the addresses here are the platform contract with those devices.
// Spec: ACPI 6.5 5.2.5 (RSDP), 5.2.6 (system description table header, checksum), 5.2.8 (XSDT), 5.2.9
// (FADT, revision 6; 5.2.9.3 IA-PC boot architecture flags), 5.2.10 (FACS), 5.2.12 (MADT: 5.2.12.2 local
// APIC, 5.2.12.3 I/O APIC, 5.2.12.5 interrupt source override, 5.2.12.7 local APIC NMI), 5.2.3.2 (GAS).

import type { GuestMemory } from "../../memory/guest-memory.js";
import { AmlError } from "./aml.js";
import { dsdtAml, standardDevices, type AcpiDevice } from "./dsdt.js";

export const OEM_ID = "VIRIDN";
export const OEM_TABLE_ID = "VIRIDIAN";

/** The platform's fixed ACPI hardware addresses (the contract with the chipset tier). */
export const ACPI_HW = {
  pm1aEvt: 0x600,
  pm1aCnt: 0x604,
  pmTmr: 0x608,
  gpe0: 0x620,
  gpe0Length: 8,
  sciIrq: 9,
  resetPort: 0xcf9,
  resetValue: 0x06,
  localApic: 0xfee00000,
  ioApic: 0xfec00000,
} as const;

export interface AcpiConfig {
  cpus: number;
  /** Devices under \_SB; defaults to the standard PC set. */
  devices?: readonly AcpiDevice[];
  /** Whether an i8042 keyboard controller exists (IAPC_BOOT_ARCH bit 1). */
  keyboardController?: boolean;
  ioApicId?: number;
  /** SLP_TYP written to PM1a_CNT for S5. */
  s5SleepType?: number;
}

export interface AcpiTable {
  signature: string;
  address: number;
  bytes: Uint8Array;
}

export interface AcpiLayout {
  rsdpAddress: number;
  /** Region holding every table but the RSDP (describe it as e820 type 3). */
  region: { base: number; length: number };
  tables: AcpiTable[];
}

const ascii = (s: string, len: number): number[] =>
  Array.from(s.padEnd(len, " ").slice(0, len), (c) => c.charCodeAt(0));

class Writer {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  constructor(length: number) {
    this.bytes = new Uint8Array(length);
    this.view = new DataView(this.bytes.buffer);
  }
  u8(o: number, v: number): void {
    this.view.setUint8(o, v);
  }
  u16(o: number, v: number): void {
    this.view.setUint16(o, v, true);
  }
  u32(o: number, v: number): void {
    this.view.setUint32(o, v >>> 0, true);
  }
  u64(o: number, v: number): void {
    this.u32(o, v % 0x1_0000_0000);
    this.u32(o + 4, Math.floor(v / 0x1_0000_0000));
  }
  str(o: number, s: string, len: number): void {
    this.bytes.set(ascii(s, len), o);
  }
  /** Generic Address Structure (5.2.3.2) in system I/O space. */
  gasIo(o: number, port: number, bitWidth: number, accessSize: number): void {
    this.u8(o, 1);
    this.u8(o + 1, bitWidth);
    this.u8(o + 2, 0);
    this.u8(o + 3, accessSize);
    this.u64(o + 4, port);
  }
}

/** Sets byte `at` so the bytes in [from, to) sum to zero mod 256. */
export function fixChecksum(bytes: Uint8Array, at: number, from = 0, to = bytes.length): void {
  bytes[at] = 0;
  let sum = 0;
  for (let i = from; i < to; i++) sum += bytes[i]!;
  bytes[at] = (256 - (sum & 0xff)) & 0xff;
}

export function checksumOk(bytes: Uint8Array, from = 0, to = bytes.length): boolean {
  let sum = 0;
  for (let i = from; i < to; i++) sum += bytes[i]!;
  return (sum & 0xff) === 0;
}

/** A table with the 36-byte header (5.2.6); the checksum is fixed when the body is complete. */
function table(signature: string, length: number, revision: number): Writer {
  const w = new Writer(length);
  w.str(0, signature, 4);
  w.u32(4, length);
  w.u8(8, revision);
  w.str(10, OEM_ID, 6);
  w.str(16, OEM_TABLE_ID, 8);
  w.u32(24, 1);
  w.str(28, "VRDN", 4);
  w.u32(32, 1);
  return w;
}
function finish(w: Writer): Uint8Array {
  fixChecksum(w.bytes, 9);
  return w.bytes;
}

export function buildRsdp(xsdtAddress: number): Uint8Array {
  const w = new Writer(36);
  w.str(0, "RSD PTR ", 8);
  w.str(9, OEM_ID, 6);
  w.u8(15, 2); // revision 2: ACPI 2.0+ with XSDT
  w.u32(16, 0); // no RSDT: every supported OS reads the XSDT
  w.u32(20, 36);
  w.u64(24, xsdtAddress);
  fixChecksum(w.bytes, 8, 0, 20);
  fixChecksum(w.bytes, 32, 0, 36);
  return w.bytes;
}

export function buildXsdt(entries: readonly number[]): Uint8Array {
  const w = table("XSDT", 36 + 8 * entries.length, 1);
  entries.forEach((a, i) => w.u64(36 + 8 * i, a));
  return finish(w);
}

export const FADT_WBINVD = 1 << 0;
export const FADT_PROC_C1 = 1 << 2;
export const FADT_SLP_BUTTON = 1 << 5;
/** The PM timer counts 32 bits (the chipset's acpi-pm.ts PM_TIMER_32BIT), not 24. */
export const FADT_TMR_VAL_EXT = 1 << 8;
export const FADT_RESET_REG_SUP = 1 << 10;
export const BOOT_ARCH_LEGACY_DEVICES = 1 << 0;
export const BOOT_ARCH_8042 = 1 << 1;
export const BOOT_ARCH_VGA_NOT_PRESENT = 1 << 2;

export function buildFadt(facs: number, dsdt: number, keyboardController: boolean): Uint8Array {
  const w = table("FACP", 276, 6);
  w.u32(36, facs);
  w.u32(40, dsdt);
  w.u8(45, 0); // preferred PM profile: unspecified
  w.u16(46, ACPI_HW.sciIrq);
  w.u32(48, 0); // SMI_CMD 0: the platform is always in ACPI mode
  w.u32(56, ACPI_HW.pm1aEvt);
  w.u32(64, ACPI_HW.pm1aCnt);
  w.u32(76, ACPI_HW.pmTmr);
  w.u32(80, ACPI_HW.gpe0);
  w.u8(88, 4);
  w.u8(89, 2);
  w.u8(91, 4);
  w.u8(92, ACPI_HW.gpe0Length);
  // C2/C3 latencies above 100/1000 us tell the OS those states are unsupported.
  w.u16(96, 101);
  w.u16(98, 1001);
  w.u16(
    109,
    BOOT_ARCH_LEGACY_DEVICES | BOOT_ARCH_VGA_NOT_PRESENT | (keyboardController ? BOOT_ARCH_8042 : 0),
  );
  w.u32(112, FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_TMR_VAL_EXT | FADT_RESET_REG_SUP);
  w.gasIo(116, ACPI_HW.resetPort, 8, 1);
  w.u8(128, ACPI_HW.resetValue);
  w.u8(131, 3); // FADT minor version: ACPI 6.3
  w.u64(132, facs);
  w.u64(140, dsdt);
  w.gasIo(148, ACPI_HW.pm1aEvt, 32, 2);
  w.gasIo(172, ACPI_HW.pm1aCnt, 16, 2);
  w.gasIo(208, ACPI_HW.pmTmr, 32, 3);
  w.gasIo(220, ACPI_HW.gpe0, ACPI_HW.gpe0Length * 8, 1);
  return finish(w);
}

export function buildFacs(): Uint8Array {
  const w = new Writer(64);
  w.str(0, "FACS", 4);
  w.u32(4, 64);
  w.u8(32, 2); // version
  return w.bytes;
}

export function buildMadt(cpus: number, ioApicId: number): Uint8Array {
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 255)
    throw new AmlError(`MADT: ${cpus} CPUs (this builder supports 1-255 xAPIC IDs)`);
  const length = 44 + 8 * cpus + 12 + 10 * 2 + 6;
  const w = table("APIC", length, 5);
  w.u32(36, ACPI_HW.localApic);
  w.u32(40, 1); // PCAT_COMPAT: dual 8259s present
  let o = 44;
  for (let i = 0; i < cpus; i++) {
    w.u8(o, 0);
    w.u8(o + 1, 8);
    w.u8(o + 2, i); // ACPI processor UID
    w.u8(o + 3, i); // APIC ID
    w.u32(o + 4, 1); // enabled
    o += 8;
  }
  w.u8(o, 1);
  w.u8(o + 1, 12);
  w.u8(o + 2, ioApicId);
  w.u32(o + 4, ACPI_HW.ioApic);
  w.u32(o + 8, 0); // GSI base
  o += 12;
  const override = (irq: number, gsi: number, flags: number): void => {
    w.u8(o, 2);
    w.u8(o + 1, 10);
    w.u8(o + 2, 0); // ISA
    w.u8(o + 3, irq);
    w.u32(o + 4, gsi);
    w.u16(o + 8, flags);
    o += 10;
  };
  override(0, 2, 0); // the PIT is wired to I/O APIC pin 2
  override(ACPI_HW.sciIrq, ACPI_HW.sciIrq, 0x0d); // SCI: active high (01), level (11 << 2)
  w.u8(o, 4);
  w.u8(o + 1, 6);
  w.u8(o + 2, 0xff); // all processors
  w.u16(o + 3, 0);
  w.u8(o + 5, 1); // LINT1
  return finish(w);
}

export function buildDsdt(devices: readonly AcpiDevice[], s5SleepType: number): Uint8Array {
  const aml = dsdtAml(devices, s5SleepType);
  const w = table("DSDT", 36 + aml.length, 2);
  w.bytes.set(aml, 36);
  return finish(w);
}

/** Default placement: RSDP at the start of the BIOS ROM area, the rest at 0x80000 (e820 type 3). */
export const ACPI_RSDP_ADDRESS = 0xe0000;
export const ACPI_TABLES_BASE = 0x80000;
export const ACPI_TABLES_LIMIT = 0x10000;

/** Builds every table and assigns addresses (64-byte aligned; the FACS requires it). */
export function buildAcpiTables(
  config: AcpiConfig,
  base = ACPI_TABLES_BASE,
  limit = ACPI_TABLES_LIMIT,
  rsdpAddress = ACPI_RSDP_ADDRESS,
): AcpiLayout {
  const kbd = config.keyboardController ?? true;
  const devices = config.devices ?? standardDevices({ keyboardController: kbd });
  let next = base;
  const alloc = (size: number): number => {
    const at = next;
    next = Math.ceil((next + size) / 64) * 64;
    return at;
  };
  const dsdt = buildDsdt(devices, config.s5SleepType ?? 0);
  const madt = buildMadt(config.cpus, config.ioApicId ?? 0);
  const facsAddr = alloc(64);
  const dsdtAddr = alloc(dsdt.length);
  const madtAddr = alloc(madt.length);
  const fadtAddr = alloc(276);
  const fadt = buildFadt(facsAddr, dsdtAddr, kbd);
  const xsdt = buildXsdt([fadtAddr, madtAddr]);
  const xsdtAddr = alloc(xsdt.length);
  if (next - base > limit)
    throw new AmlError(`ACPI tables need ${next - base} bytes; the region holds ${limit}`);
  return {
    rsdpAddress,
    region: { base, length: limit },
    tables: [
      { signature: "RSDP", address: rsdpAddress, bytes: buildRsdp(xsdtAddr) },
      { signature: "XSDT", address: xsdtAddr, bytes: xsdt },
      { signature: "FACP", address: fadtAddr, bytes: fadt },
      { signature: "FACS", address: facsAddr, bytes: buildFacs() },
      { signature: "APIC", address: madtAddr, bytes: madt },
      { signature: "DSDT", address: dsdtAddr, bytes: dsdt },
    ],
  };
}

/** Writes built tables into guest RAM. */
export function writeAcpiTables(memory: GuestMemory, layout: AcpiLayout): void {
  for (const t of layout.tables) memory.write(t.address, t.bytes);
}
