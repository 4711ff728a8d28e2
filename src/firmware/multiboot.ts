// Owns: loading a Multiboot v1 kernel image into guest RAM (ELF32 program headers, or the a.out-kludge
// address fields) and its modules (page-aligned after the kernel, each with its string), building the
// Multiboot information structure (memory sizes, memory map with the caller's reserved ranges, command line,
// modules, boot loader name) and describing the machine state the kernel must be entered with.
// Must not: touch a processor (the firmware tier does not import x86; the worker applies the entry state),
// or trust anything in the file: every offset, size and address is checked before use, and a bad image
// gives a MultibootError, never an out-of-bounds access or a large allocation.
// Spec: The Multiboot Specification version 0.6.96: 3.1 (OS image format, header fields, the a.out kludge),
// 3.2 (machine state), 3.3 (boot information format); ELF32 program headers (System V ABI, Tool Interface
// Standard ELF 1.2, "Program Header").

import type { GuestMemory } from "../memory/guest-memory.js";
import type { EntryState } from "./entry-state.js";

export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
/** The header must lie entirely within the first 8192 bytes, 32-bit aligned (3.1.1). */
const HEADER_SEARCH_BYTES = 8192;

const FLAG_PAGE_ALIGN = 1 << 0;
const FLAG_MEMORY_INFO = 1 << 1;
const FLAG_VIDEO_MODE = 1 << 2;
const FLAG_AOUT_KLUDGE = 1 << 16;
/** Bits 0-15 are requirements: a loader that does not understand one must refuse the image (3.1.2). */
const UNDERSTOOD_REQUIRED_FLAGS = FLAG_PAGE_ALIGN | FLAG_MEMORY_INFO | FLAG_VIDEO_MODE;

// Boot information flags (3.3).
const INFO_MEMORY = 1 << 0;
const INFO_CMDLINE = 1 << 2;
const INFO_MODS = 1 << 3;
const INFO_MMAP = 1 << 6;
const INFO_LOADER_NAME = 1 << 9;
const INFO_STRUCT_SIZE = 88;
const MMAP_ENTRY_SIZE = 24;
const MMAP_AVAILABLE = 1;
const MMAP_RESERVED = 2;

const FOUR_GIB = 0x1_0000_0000;
const ONE_MIB = 0x10_0000;
/** Conventional memory ends at 640 KiB; 0xA0000-0xFFFFF is the legacy video/ROM area on a PC. */
const LEGACY_HOLE_START = 0xa_0000;
/** Where the information structure goes unless the image overlaps it (below the 0x7C00 boot area's use). */
const DEFAULT_INFO_ADDRESS = 0x8000;
const MAX_CMDLINE_BYTES = 4096;
const MAX_PROGRAM_HEADERS = 256;
const MODULE_ENTRY_SIZE = 16;
/** Most modules one boot takes (each costs an entry and a string in the information structure). */
export const MAX_MODULES = 64;
const PAGE = 4096;

export class MultibootError extends Error {
  override name = "MultibootError";
}

/** A flat 4 GiB segment as the worker should load it (access rights in the VMCS layout of processor.ts). */
export interface FlatSegment {
  selector: number;
  base: number;
  limit: number;
  access: number;
}

/** The machine state of 3.2: 32-bit protected mode, flat segments, paging and interrupts off. */
export interface MultibootEntryState {
  eip: number;
  eax: number;
  ebx: number;
  /** The spec leaves ESP undefined; we point it just below the information structure, in free RAM. */
  esp: number;
  /** Bit 1 is reserved-one; VM (17) and IF (9) must be clear. */
  eflags: number;
  /** PE set, PG clear (ET set as on every processor since the 386). */
  cr0: number;
  code: FlatSegment;
  data: FlatSegment;
}

export interface MultibootLoadResult {
  entry: MultibootEntryState;
  /** Guest-physical ranges written from the image (including zeroed bss). */
  loaded: Array<{ base: number; length: number }>;
  /** Where each module went (page-aligned, in the order given). */
  modules: Array<{ base: number; length: number; string: string }>;
  infoAddress: number;
  headerFlags: number;
}

/** A boot module: its contents and its string (by convention its path and arguments). */
export interface MultibootModule {
  data: Uint8Array;
  string: string;
}

/** A range the memory map must show as not available (e.g. ACPI tables: type 3). */
export interface ReservedRange {
  base: number;
  length: number;
  type: number;
}

export interface MultibootOptions {
  cmdline?: string;
  bootLoaderName?: string;
  modules?: readonly MultibootModule[];
  /** Ranges of RAM the memory map marks with their type instead of available; nothing may be loaded there. */
  reserved?: readonly ReservedRange[];
}

export const MMAP_ACPI_RECLAIMABLE = 3;

interface Header {
  offset: number;
  flags: number;
}

function u32(file: Uint8Array, offset: number): number {
  if (offset < 0 || offset + 4 > file.length) {
    throw new MultibootError(`image truncated: need 4 bytes at offset ${offset}, file has ${file.length}`);
  }
  return (
    (file[offset]! | (file[offset + 1]! << 8) | (file[offset + 2]! << 16) | (file[offset + 3]! << 24)) >>> 0
  );
}

function u16(file: Uint8Array, offset: number): number {
  if (offset < 0 || offset + 2 > file.length) {
    throw new MultibootError(`image truncated: need 2 bytes at offset ${offset}, file has ${file.length}`);
  }
  return file[offset]! | (file[offset + 1]! << 8);
}

/** Finds and validates the Multiboot header (3.1.1, 3.1.2). */
export function findMultibootHeader(file: Uint8Array): Header {
  const limit = Math.min(file.length, HEADER_SEARCH_BYTES) - 12;
  for (let off = 0; off <= limit; off += 4) {
    if (u32(file, off) !== MULTIBOOT_HEADER_MAGIC) continue;
    const flags = u32(file, off + 4);
    const checksum = u32(file, off + 8);
    if ((MULTIBOOT_HEADER_MAGIC + flags + checksum) >>> 0 !== 0) continue;
    const unknown = flags & 0xffff & ~UNDERSTOOD_REQUIRED_FLAGS;
    if (unknown !== 0) {
      throw new MultibootError(
        `the kernel requires Multiboot features this loader does not provide (flags 0x${unknown.toString(16)})`,
      );
    }
    return { offset: off, flags };
  }
  throw new MultibootError(
    "no Multiboot v1 header (magic 0x1BADB002 with a valid checksum) in the first 8 KiB",
  );
}

/** Checks that [base, base+length) is guest RAM below 4 GiB, where a 32-bit kernel can be loaded. */
function checkTarget(memory: GuestMemory, base: number, length: number, what: string): void {
  if (length === 0) return;
  if (base < 0 || base + length > FOUR_GIB || !memory.isRam(base, length)) {
    throw new MultibootError(
      `${what} at 0x${base.toString(16)}+0x${length.toString(16)} is outside guest RAM ` +
        `(RAM below the MMIO hole ends at 0x${memory.lowTop.toString(16)})`,
    );
  }
}

function place(
  memory: GuestMemory,
  file: Uint8Array,
  fileOffset: number,
  fileSize: number,
  base: number,
  memSize: number,
  what: string,
): void {
  if (fileSize > memSize)
    throw new MultibootError(`${what}: file size 0x${fileSize.toString(16)} exceeds memory size`);
  if (fileOffset < 0 || fileOffset + fileSize > file.length) {
    throw new MultibootError(
      `${what}: file range 0x${fileOffset.toString(16)}+0x${fileSize.toString(16)} is past the end of the image`,
    );
  }
  checkTarget(memory, base, memSize, what);
  if (memSize === 0) return;
  memory.write(base, file.subarray(fileOffset, fileOffset + fileSize));
  if (memSize > fileSize) memory.fill(base + fileSize, memSize - fileSize, 0);
}

function loadAout(
  memory: GuestMemory,
  file: Uint8Array,
  header: Header,
): { entry: number; loaded: MultibootLoadResult["loaded"] } {
  const h = header.offset;
  const headerAddr = u32(file, h + 12);
  const loadAddr = u32(file, h + 16);
  const loadEndAddr = u32(file, h + 20);
  const bssEndAddr = u32(file, h + 24);
  const entryAddr = u32(file, h + 28);
  if (loadAddr > headerAddr) {
    throw new MultibootError(
      `a.out kludge: load_addr 0x${loadAddr.toString(16)} is above header_addr 0x${headerAddr.toString(16)}`,
    );
  }
  const fileOffset = h - (headerAddr - loadAddr);
  if (fileOffset < 0)
    throw new MultibootError("a.out kludge: header_addr - load_addr points before the start of the file");
  const loadEnd = loadEndAddr === 0 ? loadAddr + (file.length - fileOffset) : loadEndAddr;
  if (loadEnd < loadAddr) throw new MultibootError("a.out kludge: load_end_addr is below load_addr");
  const fileSize = loadEnd - loadAddr;
  const memEnd = bssEndAddr === 0 ? loadEnd : bssEndAddr;
  if (memEnd < loadEnd) throw new MultibootError("a.out kludge: bss_end_addr is below load_end_addr");
  place(memory, file, fileOffset, fileSize, loadAddr, memEnd - loadAddr, "a.out-kludge image");
  if (entryAddr < loadAddr || entryAddr >= loadEnd) {
    throw new MultibootError(
      `a.out kludge: entry_addr 0x${entryAddr.toString(16)} is outside the loaded text`,
    );
  }
  return { entry: entryAddr, loaded: [{ base: loadAddr, length: memEnd - loadAddr }] };
}

function loadElf(
  memory: GuestMemory,
  file: Uint8Array,
): { entry: number; loaded: MultibootLoadResult["loaded"] } {
  if (file.length < 52 || file[0] !== 0x7f || file[1] !== 0x45 || file[2] !== 0x4c || file[3] !== 0x46) {
    throw new MultibootError(
      "not an ELF file, and the Multiboot header does not set the a.out-kludge flag (bit 16)",
    );
  }
  if (file[4] !== 1)
    throw new MultibootError("ELF class is not ELFCLASS32 (Multiboot v1 loads 32-bit ELF images)");
  if (file[5] !== 1) throw new MultibootError("ELF data encoding is not little-endian");
  const type = u16(file, 16);
  const machine = u16(file, 18);
  if (type !== 2) throw new MultibootError(`ELF type ${type} is not ET_EXEC`);
  if (machine !== 3) throw new MultibootError(`ELF machine ${machine} is not EM_386`);
  const entry = u32(file, 24);
  const phoff = u32(file, 28);
  const phentsize = u16(file, 42);
  const phnum = u16(file, 44);
  if (phnum === 0) throw new MultibootError("ELF image has no program headers");
  if (phnum > MAX_PROGRAM_HEADERS)
    throw new MultibootError(`ELF image has ${phnum} program headers (limit ${MAX_PROGRAM_HEADERS})`);
  if (phentsize < 32) throw new MultibootError(`ELF program header size ${phentsize} is smaller than 32`);
  if (phoff + phnum * phentsize > file.length)
    throw new MultibootError("ELF program header table is past the end of the file");
  const loaded: MultibootLoadResult["loaded"] = [];
  let physEntry = -1;
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (u32(file, p) !== 1) continue; // PT_LOAD only
    const offset = u32(file, p + 4);
    const vaddr = u32(file, p + 8);
    const paddr = u32(file, p + 12);
    const filesz = u32(file, p + 16);
    const memsz = u32(file, p + 20);
    const what = `ELF segment ${i}`;
    for (const other of loaded) {
      if (paddr < other.base + other.length && other.base < paddr + memsz) {
        throw new MultibootError(`${what} overlaps an earlier segment at 0x${other.base.toString(16)}`);
      }
    }
    place(memory, file, offset, filesz, paddr, memsz, what);
    if (memsz > 0) loaded.push({ base: paddr, length: memsz });
    // Like GRUB, an entry point given as a virtual address is translated through its segment.
    if (entry >= vaddr && entry < vaddr + memsz) physEntry = paddr + (entry - vaddr);
  }
  if (loaded.length === 0) throw new MultibootError("ELF image has no loadable (PT_LOAD) segment");
  if (physEntry < 0)
    throw new MultibootError(`ELF entry point 0x${entry.toString(16)} is not inside a loaded segment`);
  return { entry: physEntry, loaded };
}

function overlaps(ranges: MultibootLoadResult["loaded"], base: number, length: number): boolean {
  return ranges.some((r) => base < r.base + r.length && r.base < base + length);
}

/**
 * Loads a Multiboot v1 kernel into `memory` and writes its boot information. Returns the entry state for
 * the processor (3.2): EAX = 0x2BADB002, EBX = information structure, flat protected mode.
 */
export function loadMultiboot(
  memory: GuestMemory,
  file: Uint8Array,
  options: MultibootOptions = {},
): MultibootLoadResult {
  const header = findMultibootHeader(file);
  const image = header.flags & FLAG_AOUT_KLUDGE ? loadAout(memory, file, header) : loadElf(memory, file);
  const reserved = options.reserved ?? [];
  for (const r of image.loaded) {
    const clash = reserved.find((x) => r.base < x.base + x.length && x.base < r.base + r.length);
    if (clash !== undefined) {
      throw new MultibootError(
        `the image at 0x${r.base.toString(16)}+0x${r.length.toString(16)} overlaps reserved memory at ` +
          `0x${clash.base.toString(16)}+0x${clash.length.toString(16)}`,
      );
    }
  }

  const encoder = new TextEncoder();
  const cmdline = encoder.encode(options.cmdline ?? "");
  if (cmdline.length >= MAX_CMDLINE_BYTES) {
    throw new MultibootError(`command line is ${cmdline.length} bytes (limit ${MAX_CMDLINE_BYTES - 1})`);
  }
  const loaderName = encoder.encode(options.bootLoaderName ?? "viridian");
  const modules = placeModules(memory, image.loaded, options.modules ?? [], reserved);
  const moduleStrings = modules.map((m) => encoder.encode(m.string));
  const mmap = withReserved(memoryMap(memory), reserved);
  let infoSize =
    INFO_STRUCT_SIZE +
    mmap.length * MMAP_ENTRY_SIZE +
    modules.length * MODULE_ENTRY_SIZE +
    cmdline.length +
    1 +
    loaderName.length +
    1;
  for (const m of moduleStrings) infoSize += m.length + 1;
  const used = [...image.loaded, ...modules, ...reserved];
  let infoAddress = DEFAULT_INFO_ADDRESS;
  if (
    overlaps(used, infoAddress, infoSize) ||
    !memory.isRam(infoAddress, infoSize) ||
    infoAddress + infoSize > LEGACY_HOLE_START
  ) {
    const end = Math.max(...[...image.loaded, ...modules].map((r) => r.base + r.length));
    infoAddress = Math.ceil(end / PAGE) * PAGE;
  }
  checkTarget(memory, infoAddress, infoSize, "Multiboot information");

  const info = new Uint8Array(infoSize);
  const view = new DataView(info.buffer);
  const mmapAddr = infoAddress + INFO_STRUCT_SIZE;
  const modsAddr = mmapAddr + mmap.length * MMAP_ENTRY_SIZE;
  const cmdlineAddr = modsAddr + modules.length * MODULE_ENTRY_SIZE;
  const nameAddr = cmdlineAddr + cmdline.length + 1;
  let stringAddr = nameAddr + loaderName.length + 1;
  const low = memory.ramRanges()[0]!;
  const memLowerKiB = Math.floor(Math.min(low.length, LEGACY_HOLE_START) / 1024);
  const memUpperKiB = low.length > ONE_MIB ? Math.floor((low.length - ONE_MIB) / 1024) : 0;
  view.setUint32(0, INFO_MEMORY | INFO_CMDLINE | INFO_MODS | INFO_MMAP | INFO_LOADER_NAME, true);
  view.setUint32(4, memLowerKiB, true);
  view.setUint32(8, memUpperKiB, true);
  view.setUint32(16, cmdlineAddr, true);
  view.setUint32(20, modules.length, true); // mods_count
  view.setUint32(24, modsAddr, true); // mods_addr (any address is valid when there are none)
  view.setUint32(44, mmap.length * MMAP_ENTRY_SIZE, true);
  view.setUint32(48, mmapAddr, true);
  view.setUint32(64, nameAddr, true);
  mmap.forEach((e, i) => {
    const o = INFO_STRUCT_SIZE + i * MMAP_ENTRY_SIZE;
    view.setUint32(o, MMAP_ENTRY_SIZE - 4, true); // size excludes the size field itself
    view.setUint32(o + 4, e.base % FOUR_GIB, true);
    view.setUint32(o + 8, Math.floor(e.base / FOUR_GIB), true);
    view.setUint32(o + 12, e.length % FOUR_GIB, true);
    view.setUint32(o + 16, Math.floor(e.length / FOUR_GIB), true);
    view.setUint32(o + 20, e.type, true);
  });
  modules.forEach((m, i) => {
    const o = modsAddr - infoAddress + i * MODULE_ENTRY_SIZE;
    view.setUint32(o, m.base, true); // mod_start
    view.setUint32(o + 4, m.base + m.length, true); // mod_end (exclusive)
    view.setUint32(o + 8, stringAddr, true);
    view.setUint32(o + 12, 0, true);
    info.set(moduleStrings[i]!, stringAddr - infoAddress);
    stringAddr += moduleStrings[i]!.length + 1;
  });
  info.set(cmdline, cmdlineAddr - infoAddress);
  info.set(loaderName, nameAddr - infoAddress);
  memory.write(infoAddress, info);

  const flat = (selector: number, access: number): FlatSegment => ({
    selector,
    base: 0,
    limit: 0xffffffff,
    access,
  });
  return {
    entry: {
      eip: image.entry,
      eax: MULTIBOOT_BOOTLOADER_MAGIC,
      ebx: infoAddress,
      esp: infoAddress,
      eflags: 0x2,
      cr0: 0x11,
      // Access rights: type, S=1, DPL 0, P=1, D/B=1, G=1 (VMCS layout): execute/read code, read/write data.
      code: flat(0x08, 0xc09b),
      data: flat(0x10, 0xc093),
    },
    loaded: image.loaded,
    modules,
    infoAddress,
    headerFlags: header.flags,
  };
}

/** The BIOS-style memory map: RAM ranges as available, with the legacy 640 KiB-1 MiB area reserved. */
export function memoryMap(memory: GuestMemory): Array<{ base: number; length: number; type: number }> {
  const out: Array<{ base: number; length: number; type: number }> = [];
  for (const r of memory.ramRanges()) {
    if (r.base < ONE_MIB && r.base + r.length > LEGACY_HOLE_START) {
      if (r.base < LEGACY_HOLE_START)
        out.push({ base: r.base, length: LEGACY_HOLE_START - r.base, type: MMAP_AVAILABLE });
      out.push({
        base: LEGACY_HOLE_START,
        length: Math.min(ONE_MIB, r.base + r.length) - LEGACY_HOLE_START,
        type: MMAP_RESERVED,
      });
      if (r.base + r.length > ONE_MIB)
        out.push({ base: ONE_MIB, length: r.base + r.length - ONE_MIB, type: MMAP_AVAILABLE });
    } else {
      out.push({ base: r.base, length: r.length, type: MMAP_AVAILABLE });
    }
  }
  return out;
}

/** The Multiboot entry state in the loader-neutral EntryState form (GDTR/IDTR are undefined in 3.2: zero). */
export function multibootEntryState(e: MultibootEntryState): EntryState {
  return {
    mode: "protected32",
    rip: e.eip,
    rflags: e.eflags,
    registers: { rax: e.eax, rbx: e.ebx, rsp: e.esp },
    cr0: e.cr0,
    cr3: 0,
    cr4: 0,
    efer: 0,
    cs: { ...e.code },
    ds: { ...e.data },
    es: { ...e.data },
    ss: { ...e.data },
    fs: { ...e.data },
    gs: { ...e.data },
    gdtr: { base: 0, limit: 0 },
    idtr: { base: 0, limit: 0 },
  };
}

/**
 * Places each module page-aligned after the kernel (and after the previous module), as GRUB and QEMU do,
 * skipping reserved ranges; every module must fit in RAM below 4 GiB.
 */
function placeModules(
  memory: GuestMemory,
  loaded: MultibootLoadResult["loaded"],
  list: readonly MultibootModule[],
  reserved: readonly ReservedRange[],
): MultibootLoadResult["modules"] {
  if (list.length > MAX_MODULES) throw new MultibootError(`${list.length} modules (limit ${MAX_MODULES})`);
  const out: MultibootLoadResult["modules"] = [];
  let next = Math.ceil(Math.max(...loaded.map((r) => r.base + r.length)) / PAGE) * PAGE;
  for (const [i, m] of list.entries()) {
    if (new TextEncoder().encode(m.string).length >= MAX_CMDLINE_BYTES)
      throw new MultibootError(`module ${i}'s string is longer than ${MAX_CMDLINE_BYTES - 1} bytes`);
    for (const r of reserved)
      if (next < r.base + r.length && r.base < next + m.data.length)
        next = Math.ceil((r.base + r.length) / PAGE) * PAGE;
    checkTarget(memory, next, Math.max(1, m.data.length), `module ${i} (${m.data.length} bytes)`);
    const off = memory.offsetOf(next);
    memory.bytes.set(m.data, off);
    memory.noteWrite(off, m.data.length);
    out.push({ base: next, length: m.data.length, string: m.string });
    next = Math.ceil((next + Math.max(1, m.data.length)) / PAGE) * PAGE;
  }
  return out;
}

/** The memory map with each reserved range cut out of the available RAM and listed with its own type. */
function withReserved(
  map: Array<{ base: number; length: number; type: number }>,
  reserved: readonly ReservedRange[],
): Array<{ base: number; length: number; type: number }> {
  let out = map;
  for (const r of reserved) {
    const next: typeof out = [];
    for (const e of out) {
      const end = e.base + e.length;
      if (e.type !== MMAP_AVAILABLE || r.base >= end || r.base + r.length <= e.base) {
        next.push(e);
        continue;
      }
      if (r.base > e.base) next.push({ base: e.base, length: r.base - e.base, type: e.type });
      if (r.base + r.length < end)
        next.push({ base: r.base + r.length, length: end - r.base - r.length, type: e.type });
    }
    next.push({ base: r.base, length: r.length, type: r.type });
    out = next.sort((a, b) => a.base - b.base);
  }
  return out;
}
