// Owns: the one-call path that readies a VM's RAM for booting Linux: ACPI tables from the VM configuration,
// then the bzImage, initrd and command line through the 64-bit boot protocol, with the ACPI region in the
// e820 map and the RSDP address in the zero page. Returns the entry state and a summary of the layout.
// Must not: apply the state to a processor (the worker does) or choose devices (the caller describes them).
// Spec: Linux Documentation/arch/x86/boot.rst (64-bit boot protocol, acpi_rsdp_addr); ACPI 6.5 5.2 and 15.

import type { GuestMemory } from "../memory/guest-memory.js";
import { buildAcpiTables, writeAcpiTables, type AcpiLayout } from "./acpi/tables.js";
import type { AcpiDevice } from "./acpi/dsdt.js";
import type { EntryState } from "./entry-state.js";
import { E820_ACPI, LINUX_LAYOUT, loadLinux, type LinuxBootResult } from "./linux-boot.js";

export interface PrepareLinuxOptions {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  cmdline?: string;
  cpus: number;
  /** Devices under \_SB; the standard PC set when absent. */
  acpiDevices?: readonly AcpiDevice[];
  keyboardController?: boolean;
  /** Whether the virtual processor advertises NX, so EFER.NXE may be set at entry. */
  nx?: boolean;
}

export interface PreparedLinux {
  entry: EntryState;
  boot: LinuxBootResult;
  acpi: AcpiLayout;
}

export function prepareLinuxBoot(memory: GuestMemory, options: PrepareLinuxOptions): PreparedLinux {
  const acpi = buildAcpiTables(
    {
      cpus: options.cpus,
      ...(options.acpiDevices ? { devices: options.acpiDevices } : {}),
      ...(options.keyboardController !== undefined ? { keyboardController: options.keyboardController } : {}),
    },
    LINUX_LAYOUT.acpiTables,
    LINUX_LAYOUT.acpiTablesEnd - LINUX_LAYOUT.acpiTables,
  );
  // Parse and place the kernel first so a bad image is reported before anything else is written.
  const boot = loadLinux(memory, options.kernel, {
    ...(options.cmdline !== undefined ? { cmdline: options.cmdline } : {}),
    ...(options.initrd ? { initrd: options.initrd } : {}),
    rsdpAddress: acpi.rsdpAddress,
    e820Extra: [{ base: acpi.region.base, length: acpi.region.length, type: E820_ACPI }],
    nx: options.nx ?? false,
  });
  writeAcpiTables(memory, acpi);
  return { entry: boot.entry, boot, acpi };
}

/** A human-readable summary of where everything went (for `viridian run` diagnostics and tests). */
export function describeLinuxLayout(p: PreparedLinux): string[] {
  const h = (v: number): string => `0x${v.toString(16)}`;
  const b = p.boot;
  const lines = [
    `boot protocol ${b.header.version >> 8}.${(b.header.version & 0xff).toString().padStart(2, "0")}`,
    `kernel ${h(b.kernel.base)}+${h(b.kernel.length)} (init_size ${h(b.kernel.initSize)}), entry ${h(p.entry.rip)}`,
    `zero page ${h(b.bootParams)}, cmdline ${h(b.cmdline.base)} (${b.cmdline.length} bytes)`,
    `page tables ${h(b.pageTables.base)}+${h(b.pageTables.length)}, GDT ${h(p.entry.gdtr.base)}`,
    `ACPI RSDP ${h(p.acpi.rsdpAddress)}, tables ${h(p.acpi.region.base)}+${h(p.acpi.region.length)}`,
  ];
  if (b.initrd) lines.push(`initrd ${h(b.initrd.base)}+${h(b.initrd.length)}`);
  for (const e of b.e820) lines.push(`e820 ${h(e.base)}-${h(e.base + e.length - 1)} type ${e.type}`);
  return lines;
}
