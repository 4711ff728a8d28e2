// Owns: the on-disk structures of a VHD: the 512-byte footer (and its copy), the 1024-byte dynamic disk
// header, the CHS geometry rule, checksums, and the rule for which size field a reader trusts.
// Must not: perform I/O; every parser here works on bytes already read and reports malformed input as null
// or a StorageError, never by throwing anything else.
// Spec: "Virtual Hard Disk Image Format Specification" (Microsoft, 2006): "Hard Disk Footer Format",
// "Dynamic Disk Header Format", Appendix "CHS Calculation". Interop notes from qemu's block/vpc.c (read,
// not copied): qemu-created images carry creator "qemu" and a CHS-rounded size; Hyper-V ("win ") and others
// make current_size authoritative.

import { StorageError } from "./disk.js";

export const SECTOR = 512;
export const FOOTER_SIZE = 512;
export const HEADER_SIZE = 1024;
export const UNUSED = 0xffffffff;
export const DISK_FIXED = 2;
export const DISK_DYNAMIC = 3;
export const DISK_DIFFERENCING = 4;
/** The largest size the format can address: CHS 65535 x 16 x 255 sectors. */
export const MAX_GEOMETRY_SECTORS = 65535 * 16 * 255;
/** VHD's documented limit (2040 GiB). */
export const MAX_CAPACITY = 2040 * 1024 ** 3;
/** Seconds between the Unix epoch and the VHD epoch (2000-01-01T00:00:00Z). */
const VHD_EPOCH = 946684800;

export const PLATFORM = {
  none: 0,
  W2ru: 0x57327275,
  W2ku: 0x57326b75,
  Mac: 0x4d616320,
  MacX: 0x4d616358,
} as const;

export interface Footer {
  features: number;
  version: number;
  dataOffset: number; // -1 for fixed disks (all ones on disk)
  timestamp: number;
  creatorApp: string;
  creatorVersion: number;
  creatorOs: number;
  originalSize: number;
  currentSize: number;
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
  diskType: number;
  uniqueId: Uint8Array;
  savedState: number;
}

export interface Locator {
  code: number;
  dataSpace: number;
  dataLength: number;
  dataOffset: number;
}

export interface DynamicHeader {
  tableOffset: number;
  version: number;
  maxTableEntries: number;
  blockSize: number;
  parentUniqueId: Uint8Array;
  parentTimestamp: number;
  parentName: Uint8Array; // 512 bytes, UTF-16BE
  locators: Locator[];
}

function ascii(b: Uint8Array, start: number, len: number): string {
  let s = "";
  for (let i = 0; i < len; i++) s += String.fromCharCode(b[start + i] ?? 0);
  return s;
}

/** One's complement of the byte sum, with the checksum field itself taken as zero. */
export function vhdChecksum(b: Uint8Array, checksumAt: number): number {
  let sum = 0;
  for (let i = 0; i < b.length; i++) {
    if (i >= checksumAt && i < checksumAt + 4) continue;
    sum = (sum + b[i]!) >>> 0;
  }
  return ~sum >>> 0;
}

/** A 64-bit big-endian field as a safe integer; all ones reads as -1 (the spec's "none"). */
function u64(dv: DataView, at: number, what: string): number {
  const hi = dv.getUint32(at);
  const lo = dv.getUint32(at + 4);
  if (hi === 0xffffffff && lo === 0xffffffff) return -1;
  if (hi >= 0x200000)
    throw new StorageError("corrupt", `VHD ${what} ${hi.toString(16)}${lo.toString(16)} is too large`);
  return hi * 2 ** 32 + lo;
}

function putU64(dv: DataView, at: number, v: number): void {
  if (v < 0) {
    dv.setUint32(at, 0xffffffff);
    dv.setUint32(at + 4, 0xffffffff);
    return;
  }
  dv.setUint32(at, Math.floor(v / 2 ** 32));
  dv.setUint32(at + 4, v >>> 0);
}

export interface ParsedFooter {
  footer: Footer;
  checksumOk: boolean;
}

/** Parses 512 bytes as a footer; null when the cookie is absent. Throws StorageError on impossible fields. */
export function parseFooter(b: Uint8Array): ParsedFooter | null {
  if (b.length < FOOTER_SIZE || ascii(b, 0, 8) !== "conectix") return null;
  const dv = new DataView(b.buffer, b.byteOffset, FOOTER_SIZE);
  const footer: Footer = {
    features: dv.getUint32(8),
    version: dv.getUint32(12),
    dataOffset: u64(dv, 16, "data offset"),
    timestamp: dv.getUint32(24),
    creatorApp: ascii(b, 28, 4),
    creatorVersion: dv.getUint32(32),
    creatorOs: dv.getUint32(36),
    originalSize: u64(dv, 40, "original size"),
    currentSize: u64(dv, 48, "current size"),
    cylinders: dv.getUint16(56),
    heads: b[58]!,
    sectorsPerTrack: b[59]!,
    diskType: dv.getUint32(60),
    uniqueId: b.slice(68, 84),
    savedState: b[84]!,
  };
  return { footer, checksumOk: vhdChecksum(b.subarray(0, FOOTER_SIZE), 64) === dv.getUint32(64) };
}

export function buildFooter(f: Footer): Uint8Array {
  const b = new Uint8Array(FOOTER_SIZE);
  const dv = new DataView(b.buffer);
  for (let i = 0; i < 8; i++) b[i] = "conectix".charCodeAt(i);
  dv.setUint32(8, f.features);
  dv.setUint32(12, f.version);
  putU64(dv, 16, f.dataOffset);
  dv.setUint32(24, f.timestamp);
  for (let i = 0; i < 4; i++) b[28 + i] = f.creatorApp.charCodeAt(i) & 0xff;
  dv.setUint32(32, f.creatorVersion);
  dv.setUint32(36, f.creatorOs);
  putU64(dv, 40, f.originalSize);
  putU64(dv, 48, f.currentSize);
  dv.setUint16(56, f.cylinders);
  b[58] = f.heads;
  b[59] = f.sectorsPerTrack;
  dv.setUint32(60, f.diskType);
  b.set(f.uniqueId.subarray(0, 16), 68);
  b[84] = f.savedState;
  dv.setUint32(64, vhdChecksum(b, 64));
  return b;
}

export function parseHeader(b: Uint8Array): { header: DynamicHeader; checksumOk: boolean } | null {
  if (b.length < HEADER_SIZE || ascii(b, 0, 8) !== "cxsparse") return null;
  const dv = new DataView(b.buffer, b.byteOffset, HEADER_SIZE);
  const locators: Locator[] = [];
  for (let i = 0; i < 8; i++) {
    const at = 576 + i * 24;
    locators.push({
      code: dv.getUint32(at),
      dataSpace: dv.getUint32(at + 4),
      dataLength: dv.getUint32(at + 8),
      dataOffset: u64(dv, at + 16, "parent locator offset"),
    });
  }
  const header: DynamicHeader = {
    tableOffset: u64(dv, 16, "table offset"),
    version: dv.getUint32(24),
    maxTableEntries: dv.getUint32(28),
    blockSize: dv.getUint32(32),
    parentUniqueId: b.slice(40, 56),
    parentTimestamp: dv.getUint32(56),
    parentName: b.slice(64, 576),
    locators,
  };
  return { header, checksumOk: vhdChecksum(b.subarray(0, HEADER_SIZE), 36) === dv.getUint32(36) };
}

export function buildHeader(h: DynamicHeader): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE);
  const dv = new DataView(b.buffer);
  for (let i = 0; i < 8; i++) b[i] = "cxsparse".charCodeAt(i);
  putU64(dv, 8, -1);
  putU64(dv, 16, h.tableOffset);
  dv.setUint32(24, h.version);
  dv.setUint32(28, h.maxTableEntries);
  dv.setUint32(32, h.blockSize);
  b.set(h.parentUniqueId.subarray(0, 16), 40);
  dv.setUint32(56, h.parentTimestamp);
  b.set(h.parentName.subarray(0, 512), 64);
  h.locators.slice(0, 8).forEach((l, i) => {
    const at = 576 + i * 24;
    dv.setUint32(at, l.code);
    dv.setUint32(at + 4, l.dataSpace);
    dv.setUint32(at + 8, l.dataLength);
    putU64(dv, at + 16, l.code === PLATFORM.none ? 0 : l.dataOffset);
  });
  dv.setUint32(36, vhdChecksum(b, 36));
  return b;
}

/** CHS geometry for a size, exactly as the specification's appendix computes it. */
export function geometry(size: number): { cylinders: number; heads: number; sectorsPerTrack: number } {
  let total = Math.floor(size / SECTOR);
  if (total > MAX_GEOMETRY_SECTORS) total = MAX_GEOMETRY_SECTORS;
  let spt: number;
  let heads: number;
  let cth: number;
  if (total >= 65535 * 16 * 63) {
    spt = 255;
    heads = 16;
    cth = Math.floor(total / spt);
  } else {
    spt = 17;
    cth = Math.floor(total / spt);
    heads = Math.max(4, Math.floor((cth + 1023) / 1024));
    if (cth >= heads * 1024 || heads > 16) {
      spt = 31;
      heads = 16;
      cth = Math.floor(total / spt);
    }
    if (cth >= heads * 1024) {
      spt = 63;
      heads = 16;
      cth = Math.floor(total / spt);
    }
  }
  return { cylinders: Math.floor(cth / heads), heads, sectorsPerTrack: spt };
}

/** Creators whose images define their size by current_size rather than by CHS geometry (as qemu reads them). */
const SIZE_AUTHORITATIVE = new Set(["win ", "qem2", "d2v ", "tap\0", "CTXS"]);

/**
 * The virtual size a reader should present. Virtual PC and qemu ("vpc ", "qemu") size the disk by its
 * geometry; Hyper-V and most others by current_size; a maximal geometry always means current_size.
 */
export function effectiveSize(f: Footer): number {
  const chs = f.cylinders * f.heads * f.sectorsPerTrack;
  if (SIZE_AUTHORITATIVE.has(f.creatorApp) || chs === MAX_GEOMETRY_SECTORS) return f.currentSize;
  return Math.min(chs * SECTOR, f.currentSize);
}

export function vhdTimestamp(nowMs: number): number {
  return Math.max(0, Math.floor(nowMs / 1000) - VHD_EPOCH) >>> 0;
}

export function newFooter(diskType: number, capacity: number, uniqueId: Uint8Array, nowMs: number): Footer {
  const g = geometry(capacity);
  return {
    features: 2, // "reserved" bit the specification requires set
    version: 0x00010000,
    dataOffset: diskType === DISK_FIXED ? -1 : FOOTER_SIZE,
    timestamp: vhdTimestamp(nowMs),
    // "win ": Hyper-V's creator; readers (qemu included) then trust current_size, so capacity is exact.
    creatorApp: "win ",
    creatorVersion: 0x000a0000,
    creatorOs: 0x5769326b, // "Wi2k"
    originalSize: capacity,
    currentSize: capacity,
    cylinders: g.cylinders,
    heads: g.heads,
    sectorsPerTrack: g.sectorsPerTrack,
    diskType,
    uniqueId,
    savedState: 0,
  };
}
