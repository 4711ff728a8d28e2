// Owns: the Linux/x86 boot protocol for 64-bit entry: parsing and validating a bzImage's setup header,
// loading the protected-mode kernel and an initrd into guest RAM, building the zero page (struct
// boot_params: setup header copy, command line, ramdisk, e820 map, RSDP address), identity-mapping page
// tables and a boot GDT, and describing the IA-32e entry state (RIP = kernel + 0x200, RSI = zero page).
// Must not: touch a processor (the worker applies the EntryState), import Node built-ins, or trust the
// image: every header field is range-checked and a malformed kernel gives a BootError naming the field,
// never an out-of-bounds access or an allocation sized by the file.
// Spec: Linux Documentation/arch/x86/boot.rst ("The Linux/x86 Boot Protocol": the real-mode kernel header,
// details of header fields, 64-bit boot protocol), arch/x86/include/uapi/asm/bootparam.h (zero-page layout),
// Documentation/arch/x86/zero-page.rst; ACPI 6.5 15 (E820 address range types); Intel SDM Vol. 3A 4.5
// (4-level paging, 2 MiB pages) and 9.8.5 (IA-32e mode initialization).

import type { GuestMemory } from "../memory/guest-memory.js";
import {
  ACCESS_CODE64,
  ACCESS_DATA,
  flatSegment,
  type EntryState,
  type SegmentDescriptor,
} from "./entry-state.js";

export class BootError extends Error {
  override name = "BootError";
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const FOUR_GIB = 4 * GiB;
const PAGE = 4096;

/** Where the loader puts its structures in low RAM (all below the EBDA at 0x9FC00). */
export const LINUX_LAYOUT = {
  /** Boot GDT: null, unused, __BOOT_CS (0x10), __BOOT_DS (0x18). */
  gdt: 0x1000,
  /** Top of the initial stack (the 64-bit entry sets its own stack; RSP just has to be valid RAM). */
  stackTop: 0x7000,
  /** The zero page (struct boot_params). */
  bootParams: 0x7000,
  /** Command line, NUL-terminated, up to 0x8000 bytes. */
  cmdline: 0x8000,
  cmdlineMax: 0x7fff,
  /** Identity page tables: PML4, PDPT, then one page directory of 2 MiB pages per GiB. */
  pageTables: 0x10000,
  pageTablesEnd: 0x80000,
  /** Region reserved for ACPI tables (e820 type 3); the RSDP itself lives in the BIOS area. */
  acpiTables: 0x80000,
  acpiTablesEnd: 0x90000,
  /** Legacy BIOS area (EBDA, VGA window, option and system ROMs): e820 reserved. */
  biosAreaStart: 0x9fc00,
  biosAreaEnd: 0x100000,
} as const;

export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;
export const E820_NVS = 4;
/** The zero page holds at most 128 e820 entries (E820_MAX_ENTRIES_ZEROPAGE). */
const E820_MAX_ZEROPAGE = 128;

export interface E820Entry {
  base: number;
  length: number;
  type: number;
}

// Setup-header offsets within the image (and, identically, within boot_params).
const HDR_SETUP_SECTS = 0x1f1;
const HDR_SYSSIZE = 0x1f4;
const HDR_BOOT_FLAG = 0x1fe;
const HDR_JUMP = 0x200;
const HDR_HEADER = 0x202;
const HDR_VERSION = 0x206;
const HDR_TYPE_OF_LOADER = 0x210;
const HDR_LOADFLAGS = 0x211;
const HDR_CODE32_START = 0x214;
const HDR_RAMDISK_IMAGE = 0x218;
const HDR_RAMDISK_SIZE = 0x21c;
const HDR_HEAP_END_PTR = 0x224;
const HDR_CMD_LINE_PTR = 0x228;
const HDR_INITRD_ADDR_MAX = 0x22c;
const HDR_KERNEL_ALIGNMENT = 0x230;
const HDR_RELOCATABLE = 0x234;
const HDR_MIN_ALIGNMENT = 0x235;
const HDR_XLOADFLAGS = 0x236;
const HDR_CMDLINE_SIZE = 0x238;
const HDR_PREF_ADDRESS = 0x258;
const HDR_INIT_SIZE = 0x260;
/** The setup header may not extend past edd_mbr_sig_buffer in boot_params. */
const BP_HEADER_LIMIT = 0x290;
// boot_params fields outside the setup header.
const BP_ACPI_RSDP_ADDR = 0x070;
const BP_EXT_RAMDISK_IMAGE = 0x0c0;
const BP_EXT_RAMDISK_SIZE = 0x0c4;
const BP_EXT_CMD_LINE_PTR = 0x0c8;
const BP_E820_ENTRIES = 0x1e8;
const BP_E820_TABLE = 0x2d0;
const BOOT_PARAMS_SIZE = 4096;

export const LOADFLAG_LOADED_HIGH = 0x01;
export const LOADFLAG_CAN_USE_HEAP = 0x80;
export const XLF_KERNEL_64 = 0x01;
export const XLF_CAN_BE_LOADED_ABOVE_4G = 0x02;
/** 2.12 added xloadflags, which is how a loader learns that the 64-bit entry exists. */
const MIN_PROTOCOL = 0x020c;
/** 2.14 added boot_params.acpi_rsdp_addr. */
const PROTOCOL_ACPI_RSDP = 0x020e;
/** heap_end_ptr as the boot protocol recommends for a setup area at 0x90000 with the stack above it. */
const HEAP_END_PTR = 0xfe00;

/** The fields of a bzImage setup header this loader uses, validated. */
export interface SetupHeader {
  setupSects: number;
  syssize: number;
  /** Boot protocol version, e.g. 0x020f for 2.15. */
  version: number;
  loadflags: number;
  xloadflags: number;
  relocatable: boolean;
  kernelAlignment: number;
  minAlignment: number;
  prefAddress: number;
  initSize: number;
  cmdlineSize: number;
  initrdAddrMax: number;
  /** File offset one past the last setup-header byte (0x202 + the jump's displacement). */
  headerEnd: number;
  /** File offset and length of the protected-mode kernel. */
  kernelOffset: number;
  kernelLength: number;
}

function u8(f: Uint8Array, o: number): number {
  return f[o] ?? 0;
}
function u16(f: Uint8Array, o: number): number {
  return u8(f, o) | (u8(f, o + 1) << 8);
}
function u32(f: Uint8Array, o: number): number {
  return (u16(f, o) | (u16(f, o + 2) << 16)) >>> 0;
}
function u64(f: Uint8Array, o: number): number {
  return u32(f, o + 4) * FOUR_GIB + u32(f, o);
}
const hex = (v: number): string => `0x${v.toString(16)}`;

/** Parses and validates the setup header of a bzImage for the 64-bit boot protocol. */
export function parseBzImage(file: Uint8Array): SetupHeader {
  if (file.length < 0x400)
    throw new BootError(`kernel image is ${file.length} bytes: too small for a bzImage`);
  const bootFlag = u16(file, HDR_BOOT_FLAG);
  if (bootFlag !== 0xaa55) throw new BootError(`boot_flag is ${hex(bootFlag)}, not 0xaa55: not a bzImage`);
  if (u32(file, HDR_HEADER) !== 0x53726448)
    throw new BootError(
      `no "HdrS" signature at 0x202: not a Linux boot-protocol kernel (or protocol < 2.00)`,
    );
  const version = u16(file, HDR_VERSION);
  if (version < MIN_PROTOCOL) {
    throw new BootError(
      `boot protocol ${version >> 8}.${(version & 0xff).toString().padStart(2, "0")} is older than 2.12: no 64-bit entry`,
    );
  }
  const setupSects = u8(file, HDR_SETUP_SECTS) || 4; // 0 means 4 for compatibility
  const kernelOffset = (setupSects + 1) * 512;
  if (kernelOffset >= file.length) {
    throw new BootError(
      `setup_sects ${setupSects} puts the protected-mode kernel at ${hex(kernelOffset)}, past the end of the ${file.length}-byte file`,
    );
  }
  const jump = u16(file, HDR_JUMP);
  if ((jump & 0xff) !== 0xeb)
    throw new BootError(`setup header jump at 0x200 is ${hex(jump)}, not a short jmp`);
  const headerEnd = HDR_HEADER + (jump >> 8);
  if (headerEnd < HDR_INIT_SIZE + 4 || headerEnd > BP_HEADER_LIMIT || headerEnd > kernelOffset) {
    throw new BootError(`setup header length ${hex(headerEnd)} (from the jump at 0x200) is inconsistent`);
  }
  const loadflags = u8(file, HDR_LOADFLAGS);
  if ((loadflags & LOADFLAG_LOADED_HIGH) === 0)
    throw new BootError("loadflags.LOADED_HIGH is clear: a zImage (loaded at 0x10000) is not supported");
  const xloadflags = u16(file, HDR_XLOADFLAGS);
  if ((xloadflags & XLF_KERNEL_64) === 0)
    throw new BootError("xloadflags.XLF_KERNEL_64 is clear: the kernel has no 64-bit entry point at +0x200");
  const syssize = u32(file, HDR_SYSSIZE);
  const available = file.length - kernelOffset;
  if (syssize === 0 || syssize * 16 - 15 > available) {
    throw new BootError(
      `syssize ${hex(syssize)} paragraphs does not match the ${available} bytes after the setup code`,
    );
  }
  const kernelLength = Math.min(available, syssize * 16);
  const relocatable = u8(file, HDR_RELOCATABLE) !== 0;
  const kernelAlignment = u32(file, HDR_KERNEL_ALIGNMENT);
  const minAlignShift = u8(file, HDR_MIN_ALIGNMENT);
  if (relocatable && (kernelAlignment < PAGE || (kernelAlignment & (kernelAlignment - 1)) !== 0))
    throw new BootError(`kernel_alignment ${hex(kernelAlignment)} is not a power of two >= 4 KiB`);
  if (minAlignShift > 31) throw new BootError(`min_alignment ${minAlignShift} is out of range`);
  const prefAddress = u64(file, HDR_PREF_ADDRESS);
  const initSize = u32(file, HDR_INIT_SIZE);
  if (initSize < kernelLength)
    throw new BootError(`init_size ${hex(initSize)} is smaller than the ${kernelLength}-byte kernel`);
  const cmdlineSize = u32(file, HDR_CMDLINE_SIZE);
  return {
    setupSects,
    syssize,
    version,
    loadflags,
    xloadflags,
    relocatable,
    kernelAlignment,
    minAlignment: 2 ** minAlignShift,
    prefAddress,
    initSize,
    cmdlineSize,
    initrdAddrMax: u32(file, HDR_INITRD_ADDR_MAX),
    headerEnd,
    kernelOffset,
    kernelLength,
  };
}

/**
 * The e820 map: guest RAM as usable, the legacy BIOS area reserved, and `extra` ranges (e.g. the ACPI
 * tables) overriding what they cover. The MMIO hole is absent, which tells the kernel it is not RAM.
 */
export function e820Map(memory: GuestMemory, extra: E820Entry[] = []): E820Entry[] {
  const overlays: E820Entry[] = [
    {
      base: LINUX_LAYOUT.biosAreaStart,
      length: LINUX_LAYOUT.biosAreaEnd - LINUX_LAYOUT.biosAreaStart,
      type: E820_RESERVED,
    },
    ...extra,
  ];
  const ram = memory.ramRanges();
  const points = new Set<number>();
  for (const r of [...ram, ...overlays]) {
    points.add(r.base);
    points.add(r.base + r.length);
  }
  const sorted = [...points].sort((a, b) => a - b);
  const out: E820Entry[] = [];
  for (let i = 0; i + 1 < sorted.length; i++) {
    const a = sorted[i]!;
    const b = sorted[i + 1]!;
    const inside = (r: { base: number; length: number }): boolean => a >= r.base && b <= r.base + r.length;
    let type = 0;
    for (const o of overlays) if (inside(o)) type = o.type; // later overlays win
    if (type === 0 && ram.some(inside)) type = E820_RAM;
    if (type === 0) continue;
    const last = out[out.length - 1];
    if (last && last.type === type && last.base + last.length === a) last.length += b - a;
    else out.push({ base: a, length: b - a, type });
  }
  return out;
}

export interface LinuxBootOptions {
  cmdline?: string;
  initrd?: Uint8Array;
  /** Guest-physical address of the ACPI RSDP (written to boot_params.acpi_rsdp_addr for protocol >= 2.14). */
  rsdpAddress?: number;
  /** Ranges to describe in the e820 map beyond RAM and the BIOS area (e.g. ACPI tables as type 3). */
  e820Extra?: E820Entry[];
  /** Set EFER.NXE at entry; only when the virtual processor advertises NX (CPUID 0x80000001 EDX bit 20). */
  nx?: boolean;
}

export interface LinuxBootResult {
  entry: EntryState;
  header: SetupHeader;
  kernel: { base: number; length: number; initSize: number };
  initrd: { base: number; length: number } | null;
  bootParams: number;
  cmdline: { base: number; length: number };
  pageTables: { base: number; length: number };
  e820: E820Entry[];
}

function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}
function writeU64(b: Uint8Array, o: number, v: number): void {
  writeU32(b, o, v % FOUR_GIB);
  writeU32(b, o + 4, Math.floor(v / FOUR_GIB));
}

function chooseKernelBase(memory: GuestMemory, h: SetupHeader): number {
  const span = Math.max(h.initSize, h.kernelLength);
  const fits = (base: number): boolean =>
    base >= LINUX_LAYOUT.biosAreaEnd && base + span <= memory.lowTop && memory.isRam(base, span);
  if (fits(h.prefAddress)) return h.prefAddress;
  if (!h.relocatable) {
    throw new BootError(
      `the kernel is not relocatable and needs RAM at ${hex(h.prefAddress)}+${hex(span)} (init_size), ` +
        `but RAM below the MMIO hole ends at ${hex(memory.lowTop)}`,
    );
  }
  const align = Math.max(h.kernelAlignment, PAGE);
  const base = Math.ceil(LINUX_LAYOUT.biosAreaEnd / align) * align;
  if (!fits(base)) {
    throw new BootError(
      `not enough RAM for the kernel: it needs ${hex(span)} bytes (init_size) at a ${hex(align)}-aligned ` +
        `address, RAM below the MMIO hole ends at ${hex(memory.lowTop)}`,
    );
  }
  return base;
}

/** Highest page-aligned spot for the initrd below initrd_addr_max and RAM top, above the kernel's init_size. */
function chooseInitrdBase(memory: GuestMemory, h: SetupHeader, length: number, kernelEnd: number): number {
  const lowLimit = Math.min(h.initrdAddrMax + 1, memory.lowTop);
  const low = Math.floor((lowLimit - length) / PAGE) * PAGE;
  if (low >= kernelEnd && memory.isRam(low, length)) return low;
  const high = memory.ramRanges()[1];
  if (high && h.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G && high.length >= length) {
    return Math.floor((high.base + high.length - length) / PAGE) * PAGE;
  }
  throw new BootError(
    `initrd of ${length} bytes does not fit between the kernel's end ${hex(kernelEnd)} and ` +
      `${hex(lowLimit)} (min of initrd_addr_max+1 and the top of low RAM)`,
  );
}

/** Builds identity-mapping page tables (2 MiB pages) for [0, top); returns their length in bytes. */
function buildPageTables(memory: GuestMemory, top: number): number {
  const gibs = Math.ceil(top / GiB);
  if (gibs > 512) throw new BootError(`cannot identity-map ${hex(top)} bytes with one PML4 entry`);
  const base = LINUX_LAYOUT.pageTables;
  const length = (2 + gibs) * PAGE;
  if (base + length > LINUX_LAYOUT.pageTablesEnd)
    throw new BootError(`identity page tables for ${gibs} GiB do not fit below the ACPI region`);
  const t = new Uint8Array(length);
  const pml4 = base;
  const pdpt = base + PAGE;
  // Present | writable; 2 MiB leaves add PS. Bits 63:52 and NX stay clear so no feature is assumed.
  writeU64(t, 0, pdpt | 0x3);
  for (let g = 0; g < gibs; g++) {
    const pd = base + (2 + g) * PAGE;
    writeU64(t, PAGE + g * 8, pd | 0x3);
    for (let e = 0; e < 512; e++) writeU64(t, (2 + g) * PAGE + e * 8, g * GiB + e * 2 * MiB + 0x83);
  }
  memory.write(pml4, t);
  return length;
}

/**
 * Loads a bzImage (and optional initrd) for the 64-bit boot protocol and returns the entry state. The
 * caller has already placed any ACPI tables and passes their RSDP address and e820 range.
 */
export function loadLinux(
  memory: GuestMemory,
  kernel: Uint8Array,
  options: LinuxBootOptions = {},
): LinuxBootResult {
  const h = parseBzImage(kernel);
  if (!memory.isRam(0, LINUX_LAYOUT.biosAreaStart))
    throw new BootError(
      `guest RAM below ${hex(LINUX_LAYOUT.biosAreaStart)} is required for the boot structures`,
    );

  const kernelBase = chooseKernelBase(memory, h);
  memory.write(kernelBase, kernel.subarray(h.kernelOffset, h.kernelOffset + h.kernelLength));
  const kernelEnd = Math.ceil((kernelBase + Math.max(h.initSize, h.kernelLength)) / PAGE) * PAGE;

  const cmdlineBytes = new TextEncoder().encode(options.cmdline ?? "");
  const cmdlineLimit = Math.min(h.cmdlineSize, LINUX_LAYOUT.cmdlineMax);
  if (cmdlineBytes.includes(0)) throw new BootError("the command line contains a NUL byte");
  if (cmdlineBytes.length > cmdlineLimit) {
    throw new BootError(
      `command line is ${cmdlineBytes.length} bytes; the kernel accepts ${h.cmdlineSize} (cmdline_size)` +
        (h.cmdlineSize > cmdlineLimit ? ` and this loader ${cmdlineLimit}` : ""),
    );
  }
  const cmdlineWithNul = new Uint8Array(cmdlineBytes.length + 1);
  cmdlineWithNul.set(cmdlineBytes);
  memory.write(LINUX_LAYOUT.cmdline, cmdlineWithNul);

  let initrd: LinuxBootResult["initrd"] = null;
  if (options.initrd && options.initrd.length > 0) {
    const base = chooseInitrdBase(memory, h, options.initrd.length, kernelEnd);
    memory.write(base, options.initrd);
    initrd = { base, length: options.initrd.length };
  }

  const e820 = e820Map(memory, options.e820Extra ?? []);
  if (e820.length > E820_MAX_ZEROPAGE) throw new BootError(`e820 map has ${e820.length} entries (limit 128)`);

  const bp = new Uint8Array(BOOT_PARAMS_SIZE);
  bp.set(kernel.subarray(HDR_SETUP_SECTS, h.headerEnd), HDR_SETUP_SECTS);
  bp[HDR_TYPE_OF_LOADER] = 0xff; // no assigned loader ID
  bp[HDR_LOADFLAGS] = h.loadflags | LOADFLAG_CAN_USE_HEAP;
  bp[HDR_HEAP_END_PTR] = HEAP_END_PTR & 0xff;
  bp[HDR_HEAP_END_PTR + 1] = HEAP_END_PTR >> 8;
  writeU32(bp, HDR_CODE32_START, kernelBase);
  writeU32(bp, HDR_CMD_LINE_PTR, LINUX_LAYOUT.cmdline);
  writeU32(bp, BP_EXT_CMD_LINE_PTR, 0);
  if (initrd) {
    writeU32(bp, HDR_RAMDISK_IMAGE, initrd.base % FOUR_GIB);
    writeU32(bp, BP_EXT_RAMDISK_IMAGE, Math.floor(initrd.base / FOUR_GIB));
    writeU32(bp, HDR_RAMDISK_SIZE, initrd.length % FOUR_GIB);
    writeU32(bp, BP_EXT_RAMDISK_SIZE, Math.floor(initrd.length / FOUR_GIB));
  }
  if (options.rsdpAddress !== undefined && h.version >= PROTOCOL_ACPI_RSDP)
    writeU64(bp, BP_ACPI_RSDP_ADDR, options.rsdpAddress);
  bp[BP_E820_ENTRIES] = e820.length;
  e820.forEach((e, i) => {
    const o = BP_E820_TABLE + i * 20;
    writeU64(bp, o, e.base);
    writeU64(bp, o + 8, e.length);
    writeU32(bp, o + 16, e.type);
  });
  memory.write(LINUX_LAYOUT.bootParams, bp);

  // GDT per the 64-bit boot protocol: __BOOT_CS = 0x10 (64-bit code), __BOOT_DS = 0x18 (flat data).
  const gdt = new Uint8Array(32);
  writeU32(gdt, 0x10, 0x0000ffff);
  writeU32(gdt, 0x14, 0x00af9b00);
  writeU32(gdt, 0x18, 0x0000ffff);
  writeU32(gdt, 0x1c, 0x00cf9300);
  memory.write(LINUX_LAYOUT.gdt, gdt);

  const ram = memory.ramRanges();
  const ramTop = Math.max(...ram.map((r) => r.base + r.length));
  const mapTop = Math.max(FOUR_GIB, ramTop);
  const ptLength = buildPageTables(memory, mapTop);

  const data = (): SegmentDescriptor => flatSegment(0x18, ACCESS_DATA);
  const entry: EntryState = {
    mode: "long64",
    rip: kernelBase + 0x200,
    rflags: 0x2, // IF clear: the kernel must be entered with interrupts disabled
    registers: { rsi: LINUX_LAYOUT.bootParams, rsp: LINUX_LAYOUT.stackTop },
    // PE | ET | NE | WP | PG: NE for native x87 error reporting, WP so the kernel's RO mappings hold.
    cr0: 0x80010031,
    cr3: LINUX_LAYOUT.pageTables,
    cr4: 0x20, // PAE (required for IA-32e paging)
    efer: 0x500 | (options.nx ? 0x800 : 0), // LME | LMA (+ NXE)
    cs: flatSegment(0x10, ACCESS_CODE64),
    ds: data(),
    es: data(),
    ss: data(),
    fs: data(),
    gs: data(),
    gdtr: { base: LINUX_LAYOUT.gdt, limit: gdt.length - 1 },
    idtr: { base: 0, limit: 0 },
  };
  return {
    entry,
    header: h,
    kernel: { base: kernelBase, length: h.kernelLength, initSize: h.initSize },
    initrd,
    bootParams: LINUX_LAYOUT.bootParams,
    cmdline: { base: LINUX_LAYOUT.cmdline, length: cmdlineBytes.length },
    pageTables: { base: LINUX_LAYOUT.pageTables, length: ptLength },
    e820,
  };
}
