// Owns: the one-call path that readies a VM's RAM for a Multiboot kernel on the PC machine, as QEMU's -kernel
// does on its PC: the platform's ACPI tables (RSDP in the BIOS area, the tables reserved as ACPI memory in
// the Multiboot memory map), then the kernel, its modules and its information structure.
// Must not: apply the state to a processor (the worker does) or choose devices (the caller describes them).
// Spec: Multiboot 0.6.96 3.1-3.3; ACPI 6.5 5.2.5.1 (finding the RSDP in the BIOS read-only area 0xE0000-0xFFFFF).

import type { GuestMemory } from "../memory/guest-memory.js";
import type { AcpiDevice } from "./acpi/dsdt.js";
import { buildAcpiTables, writeAcpiTables, type AcpiLayout } from "./acpi/tables.js";
import {
  loadMultiboot,
  MMAP_ACPI_RECLAIMABLE,
  type MultibootLoadResult,
  type MultibootModule,
} from "./multiboot.js";

export interface PrepareMultibootOptions {
  kernel: Uint8Array;
  /** The whole command line (GRUB and QEMU pass the kernel's path followed by its arguments). */
  cmdline: string;
  modules?: readonly MultibootModule[];
  cpus: number;
  /** Devices under \_SB; the standard PC set when absent. */
  acpiDevices?: readonly AcpiDevice[];
}

export interface PreparedMultiboot {
  loaded: MultibootLoadResult;
  acpi: AcpiLayout;
}

export function prepareMultibootBoot(
  memory: GuestMemory,
  options: PrepareMultibootOptions,
): PreparedMultiboot {
  const acpi = buildAcpiTables({
    cpus: options.cpus,
    ...(options.acpiDevices ? { devices: options.acpiDevices } : {}),
  });
  // The kernel first, so a bad image is reported before anything else is written; it may not overlap the
  // tables, which the memory map reserves (the RSDP sits in the legacy BIOS area, reserved anyway).
  const loaded = loadMultiboot(memory, options.kernel, {
    cmdline: options.cmdline,
    bootLoaderName: "viridian",
    modules: options.modules ?? [],
    reserved: [{ base: acpi.region.base, length: acpi.region.length, type: MMAP_ACPI_RECLAIMABLE }],
  });
  writeAcpiTables(memory, acpi);
  return { loaded, acpi };
}
