// Owns: the fixed on-disk structures of a VHDX file (file identifier, headers, region table, metadata table
// and items, parent locator, BAT entries): constants, parsing with full validation, and serialization.
// Must not: do I/O or keep state; every parser works on a buffer it is given and reports problems as
// StorageError("corrupt" | "unsupported") naming the structure.
// Spec: MS-VHDX v20240423 sections 2.1 (layout), 2.2 (header section: 2.2.1 file type identifier, 2.2.2
// headers, 2.2.3 region table), 2.5 (BAT, chunk ratio, 2.5.1 entry states), 2.6 (metadata region, 2.6.1 table,
// 2.6.2 known items, 2.6.2.6 parent locator).

import { StorageError } from "../disk.js";
import { crc32cWithHole } from "../../support/crc32c.js";
import { guidConstant, guidEquals } from "../../support/ms-guid.js";

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const MAX_CAPACITY = 64 * 1024 * MiB * 1024; // 64 TiB (2.6.2.2)
export const HEADER1_OFFSET = 64 * KiB;
export const HEADER2_OFFSET = 128 * KiB;
export const REGION1_OFFSET = 192 * KiB;
export const REGION2_OFFSET = 256 * KiB;
export const HEADER_SIZE = 4 * KiB;
export const REGION_TABLE_SIZE = 64 * KiB;
export const METADATA_TABLE_SIZE = 64 * KiB;
export const LOG_SECTOR = 4 * KiB;
export const SECTORS_PER_BITMAP_BLOCK = 2 ** 23;

export const FILE_SIGNATURE = "vhdxfile";
export const BAT_REGION = guidConstant("2DC27766-F623-4200-9D64-115E9BFD4A08");
export const METADATA_REGION = guidConstant("8B7CA206-4790-4B9A-B8FE-575F050F886E");
export const FILE_PARAMETERS = guidConstant("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
export const VIRTUAL_DISK_SIZE = guidConstant("2FA54224-CD1B-4876-B211-5DBED83BF4B8");
export const PAGE83_DATA = guidConstant("BECA12AB-B2E6-4523-93EF-C309E000C746");
export const LOGICAL_SECTOR_SIZE = guidConstant("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
export const PHYSICAL_SECTOR_SIZE = guidConstant("CDA348C7-445D-4471-9CC9-E9885251C556");
export const PARENT_LOCATOR = guidConstant("A8D35F2B-B30B-454D-ABF7-D3D84834AB0C");
export const VHDX_LOCATOR_TYPE = guidConstant("B04AEFB7-D19E-4A81-B789-25B8E9445913");

/** Payload block states (2.5.1.1) and sector bitmap block states (2.5.1.2). */
export const enum BlockState {
  NotPresent = 0,
  Undefined = 1,
  Zero = 2,
  Unmapped = 3,
  /** The value 0.95 drafts used for UNMAPPED; qemu accepts it, so do we (read as UNMAPPED). */
  UnmappedV095 = 5,
  FullyPresent = 6,
  PartiallyPresent = 7,
}
export const SB_PRESENT = 6;

export const corrupt = (what: string) => new StorageError("corrupt", what);

export const u32 = (b: Uint8Array, at: number) =>
  (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
export const u16 = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8);
/** Reads a u64 as a number; values beyond 2^53 come back as Infinity so range checks reject them. */
export function u64(b: Uint8Array, at: number): number {
  const hi = u32(b, at + 4);
  if (hi >= 0x200000) return Infinity;
  return hi * 2 ** 32 + u32(b, at);
}
export function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 24) & 0xff;
}
export function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
}
export function put64(b: Uint8Array, at: number, v: number): void {
  put32(b, at, v % 2 ** 32);
  put32(b, at + 4, Math.floor(v / 2 ** 32));
}
const sig = (b: Uint8Array, at: number, s: string) => {
  for (let i = 0; i < s.length; i++) if (b[at + i] !== s.charCodeAt(i)) return false;
  return true;
};
const putSig = (b: Uint8Array, at: number, s: string) => {
  for (let i = 0; i < s.length; i++) b[at + i] = s.charCodeAt(i);
};
const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

// ---- file type identifier (2.2.1) ----

export function isVhdxSignature(b: Uint8Array): boolean {
  return b.length >= 8 && sig(b, 0, FILE_SIGNATURE);
}

export function buildFileIdentifier(creator: string): Uint8Array {
  const b = new Uint8Array(64 * KiB);
  putSig(b, 0, FILE_SIGNATURE);
  for (let i = 0; i < Math.min(creator.length, 255); i++) put16(b, 8 + i * 2, creator.charCodeAt(i));
  return b;
}

// ---- headers (2.2.2) ----

export interface Header {
  sequence: number;
  fileWriteGuid: Uint8Array;
  dataWriteGuid: Uint8Array;
  logGuid: Uint8Array;
  logVersion: number;
  version: number;
  logLength: number;
  logOffset: number;
}

/** Parses one 4 KiB header; returns null when it is not a valid header (the other copy may be). */
export function parseHeader(b: Uint8Array): Header | { invalid: string } {
  if (b.length < HEADER_SIZE) return { invalid: "short" };
  const h = b.subarray(0, HEADER_SIZE);
  if (!sig(h, 0, "head")) return { invalid: "bad signature" };
  if (crc32cWithHole(h, 4) !== u32(h, 4)) return { invalid: "bad checksum" };
  const sequence = u64(h, 8);
  if (!Number.isFinite(sequence)) return { invalid: "sequence number too large" };
  return {
    sequence,
    fileWriteGuid: h.slice(16, 32),
    dataWriteGuid: h.slice(32, 48),
    logGuid: h.slice(48, 64),
    logVersion: u16(h, 64),
    version: u16(h, 66),
    logLength: u32(h, 68),
    logOffset: u64(h, 72),
  };
}

export function buildHeader(h: Header): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE);
  putSig(b, 0, "head");
  put64(b, 8, h.sequence);
  b.set(h.fileWriteGuid, 16);
  b.set(h.dataWriteGuid, 32);
  b.set(h.logGuid, 48);
  put16(b, 64, h.logVersion);
  put16(b, 66, h.version);
  put32(b, 68, h.logLength);
  put64(b, 72, h.logOffset);
  put32(b, 4, crc32cWithHole(b, 4));
  return b;
}

/** Checks the fields of the current header that the rest of parsing depends on. */
export function validateHeader(h: Header, fileSize: number): void {
  if (h.version !== 1)
    throw new StorageError("unsupported", `VHDX header version ${h.version} (only 1 is defined)`);
  if (h.logVersion !== 0)
    throw new StorageError("unsupported", `VHDX log version ${h.logVersion} (only 0 is defined)`);
  if (h.logLength % MiB !== 0 || h.logOffset % MiB !== 0 || h.logOffset < MiB) {
    throw corrupt(
      `VHDX header: log at ${h.logOffset} length ${h.logLength} is not 1 MiB aligned after the header section`,
    );
  }
  if (h.logLength > 0 && h.logOffset + h.logLength > fileSize) {
    throw corrupt(
      `VHDX header: log (${h.logOffset}+${h.logLength}) extends beyond the end of the file (${fileSize})`,
    );
  }
}

// ---- region table (2.2.3) ----

export interface Region {
  offset: number;
  length: number;
}
export interface RegionTable {
  bat: Region;
  metadata: Region;
}

export function parseRegionTable(b: Uint8Array): RegionTable | { invalid: string } {
  if (b.length < REGION_TABLE_SIZE) return { invalid: "short" };
  if (!sig(b, 0, "regi")) return { invalid: "bad signature" };
  if (crc32cWithHole(b.subarray(0, REGION_TABLE_SIZE), 4) !== u32(b, 4)) return { invalid: "bad checksum" };
  const count = u32(b, 8);
  if (count > 2047) return { invalid: `${count} entries (at most 2047)` };
  let bat: Region | undefined;
  let metadata: Region | undefined;
  for (let i = 0; i < count; i++) {
    const at = 16 + i * 32;
    const guid = b.subarray(at, at + 16);
    const r = { offset: u64(b, at + 16), length: u32(b, at + 24) };
    const required = (u32(b, at + 28) & 1) !== 0;
    const known = guidEquals(guid, BAT_REGION)
      ? "bat"
      : guidEquals(guid, METADATA_REGION)
        ? "metadata"
        : null;
    if (known === null) {
      if (required) throw new StorageError("unsupported", `VHDX region table: unknown required region ${i}`);
      continue;
    }
    if ((known === "bat" && bat) || (known === "metadata" && metadata))
      return { invalid: `duplicate ${known} region` };
    if (
      !Number.isFinite(r.offset) ||
      r.offset % MiB !== 0 ||
      r.offset < MiB ||
      r.length === 0 ||
      r.length % MiB !== 0
    ) {
      return {
        invalid: `${known} region at ${r.offset} length ${r.length} is not 1 MiB aligned after the header`,
      };
    }
    if (known === "bat") bat = r;
    else metadata = r;
  }
  if (!bat || !metadata) return { invalid: `missing ${bat ? "metadata" : "BAT"} region` };
  return { bat, metadata };
}

export function buildRegionTable(t: RegionTable): Uint8Array {
  const b = new Uint8Array(REGION_TABLE_SIZE);
  putSig(b, 0, "regi");
  put32(b, 8, 2);
  const entry = (i: number, g: Uint8Array, r: Region) => {
    const at = 16 + i * 32;
    b.set(g, at);
    put64(b, at + 16, r.offset);
    put32(b, at + 24, r.length);
    put32(b, at + 28, 1);
  };
  entry(0, BAT_REGION, t.bat);
  entry(1, METADATA_REGION, t.metadata);
  put32(b, 4, crc32cWithHole(b, 4));
  return b;
}

// ---- metadata (2.6) ----

export interface ParentLocator {
  entries: Map<string, string>;
}

export interface Metadata {
  blockSize: number;
  leaveBlocksAllocated: boolean;
  hasParent: boolean;
  capacity: number;
  page83: Uint8Array;
  logicalSectorSize: number;
  physicalSectorSize: number;
  parentLocator: ParentLocator | null;
}

/** Parses the metadata region (`region` holds the whole region, at most its first 1 MiB + items). */
export function parseMetadata(region: Uint8Array): Metadata {
  if (region.length < METADATA_TABLE_SIZE) throw corrupt("VHDX metadata region is shorter than its table");
  if (!sig(region, 0, "metadata")) throw corrupt("VHDX metadata table: bad signature");
  const count = u16(region, 10);
  if (count > 2047) throw corrupt(`VHDX metadata table: ${count} entries (at most 2047)`);
  const items = new Map<string, Uint8Array>();
  const seen: Array<[number, number]> = [];
  for (let i = 0; i < count; i++) {
    const at = 32 + i * 32;
    const id = region.subarray(at, at + 16);
    const offset = u32(region, at + 16);
    const length = u32(region, at + 20);
    const flags = u32(region, at + 24);
    const name = KNOWN_ITEMS.find(([g]) => guidEquals(g, id))?.[1];
    if (length > MiB || (length > 0 && (offset < METADATA_TABLE_SIZE || offset + length > region.length))) {
      throw corrupt(
        `VHDX metadata entry ${i}: item at ${offset} length ${length} is outside the metadata region`,
      );
    }
    for (const [o, l] of seen) {
      if (length > 0 && offset < o + l && o < offset + length)
        throw corrupt(`VHDX metadata entry ${i} overlaps another item`);
    }
    seen.push([offset, length]);
    if (!name) {
      if (flags & 4) throw new StorageError("unsupported", `VHDX metadata: unknown required item ${i}`);
      continue;
    }
    if (items.has(name)) throw corrupt(`VHDX metadata: duplicate ${name} item`);
    items.set(name, region.subarray(offset, offset + length));
  }
  const need = (name: string, min: number) => {
    const it = items.get(name);
    if (!it) throw corrupt(`VHDX metadata: required item ${name} is missing`);
    if (it.length < min) throw corrupt(`VHDX metadata: item ${name} is ${it.length} bytes, expected ${min}`);
    return it;
  };
  const fp = need("file parameters", 8);
  const blockSize = u32(fp, 0);
  const flags = u32(fp, 4);
  if (!isPow2(blockSize) || blockSize < MiB || blockSize > 256 * MiB) {
    throw corrupt(`VHDX file parameters: block size ${blockSize} is not a power of two in 1 MiB..256 MiB`);
  }
  const logicalSectorSize = u32(need("logical sector size", 4), 0);
  const physicalSectorSize = u32(need("physical sector size", 4), 0);
  if (logicalSectorSize !== 512 && logicalSectorSize !== 4096)
    throw corrupt(`VHDX logical sector size ${logicalSectorSize} (512 or 4096)`);
  if (physicalSectorSize !== 512 && physicalSectorSize !== 4096)
    throw corrupt(`VHDX physical sector size ${physicalSectorSize} (512 or 4096)`);
  const capacity = u64(need("virtual disk size", 8), 0);
  if (!(capacity > 0 && capacity <= MAX_CAPACITY) || capacity % logicalSectorSize !== 0) {
    throw corrupt(`VHDX virtual disk size ${capacity} is not a multiple of the sector size in (0, 64 TiB]`);
  }
  const page83 = need("page 83 data", 16).slice(0, 16);
  const hasParent = (flags & 2) !== 0;
  let parentLocator: ParentLocator | null = null;
  if (hasParent) parentLocator = parseParentLocator(need("parent locator", 20));
  return {
    blockSize,
    leaveBlocksAllocated: (flags & 1) !== 0,
    hasParent,
    capacity,
    page83,
    logicalSectorSize,
    physicalSectorSize,
    parentLocator,
  };
}

const KNOWN_ITEMS: Array<[Uint8Array, string]> = [
  [FILE_PARAMETERS, "file parameters"],
  [VIRTUAL_DISK_SIZE, "virtual disk size"],
  [PAGE83_DATA, "page 83 data"],
  [LOGICAL_SECTOR_SIZE, "logical sector size"],
  [PHYSICAL_SECTOR_SIZE, "physical sector size"],
  [PARENT_LOCATOR, "parent locator"],
];

function utf16(b: Uint8Array, at: number, len: number): string {
  let s = "";
  for (let i = 0; i + 1 < len; i += 2) s += String.fromCharCode(u16(b, at + i));
  return s;
}

export function parseParentLocator(b: Uint8Array): ParentLocator {
  if (!guidEquals(b.subarray(0, 16), VHDX_LOCATOR_TYPE))
    throw new StorageError("unsupported", "VHDX parent locator: unknown locator type");
  const count = u16(b, 18);
  if (20 + count * 12 > b.length)
    throw corrupt(`VHDX parent locator: ${count} entries do not fit in ${b.length} bytes`);
  const entries = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const at = 20 + i * 12;
    const ko = u32(b, at);
    const vo = u32(b, at + 4);
    const kl = u16(b, at + 8);
    const vl = u16(b, at + 10);
    if (kl === 0 || vl === 0 || ko + kl > b.length || vo + vl > b.length) {
      throw corrupt(`VHDX parent locator entry ${i}: key/value outside the item`);
    }
    const key = utf16(b, ko, kl);
    if (entries.has(key)) throw corrupt(`VHDX parent locator: duplicate key ${key}`);
    entries.set(key, utf16(b, vo, vl));
  }
  if (!entries.has("parent_linkage")) throw corrupt("VHDX parent locator: no parent_linkage entry");
  return { entries };
}

export function buildParentLocator(entries: Array<[string, string]>): Uint8Array {
  const strings: Uint8Array[] = [];
  let size = 20 + entries.length * 12;
  const enc = (s: string) => {
    const b = new Uint8Array(s.length * 2);
    for (let i = 0; i < s.length; i++) put16(b, i * 2, s.charCodeAt(i));
    return b;
  };
  const placed: Array<[number, number, number, number]> = [];
  for (const [k, v] of entries) {
    const kb = enc(k);
    const vb = enc(v);
    placed.push([size, size + kb.length, kb.length, vb.length]);
    strings.push(kb, vb);
    size += kb.length + vb.length;
  }
  const b = new Uint8Array(size);
  b.set(VHDX_LOCATOR_TYPE, 0);
  put16(b, 18, entries.length);
  let at = 20 + entries.length * 12;
  placed.forEach(([ko, vo, kl, vl], i) => {
    put32(b, 20 + i * 12, ko);
    put32(b, 24 + i * 12, vo);
    put16(b, 28 + i * 12, kl);
    put16(b, 30 + i * 12, vl);
  });
  for (const s of strings) {
    b.set(s, at);
    at += s.length;
  }
  return b;
}

/** Builds the first 1 MiB of a metadata region (table at 0, items from 64 KiB). */
export function buildMetadata(m: Metadata, regionLength: number): Uint8Array {
  const b = new Uint8Array(regionLength);
  putSig(b, 0, "metadata");
  const items: Array<[Uint8Array, Uint8Array, number]> = [];
  const fp = new Uint8Array(8);
  put32(fp, 0, m.blockSize);
  put32(fp, 4, (m.leaveBlocksAllocated ? 1 : 0) | (m.hasParent ? 2 : 0));
  items.push([FILE_PARAMETERS, fp, 4]);
  const vs = new Uint8Array(8);
  put64(vs, 0, m.capacity);
  items.push([VIRTUAL_DISK_SIZE, vs, 6]);
  items.push([PAGE83_DATA, m.page83, 6]);
  const ls = new Uint8Array(4);
  put32(ls, 0, m.logicalSectorSize);
  items.push([LOGICAL_SECTOR_SIZE, ls, 6]);
  const ps = new Uint8Array(4);
  put32(ps, 0, m.physicalSectorSize);
  items.push([PHYSICAL_SECTOR_SIZE, ps, 6]);
  if (m.parentLocator) items.push([PARENT_LOCATOR, buildParentLocator([...m.parentLocator.entries]), 4]);
  put16(b, 10, items.length);
  let offset = METADATA_TABLE_SIZE;
  items.forEach(([id, data, flags], i) => {
    const at = 32 + i * 32;
    b.set(id, at);
    put32(b, at + 16, offset);
    put32(b, at + 20, data.length);
    put32(b, at + 24, flags);
    b.set(data, offset);
    offset += Math.ceil(data.length / 8) * 8;
  });
  return b;
}

// ---- geometry and BAT (2.5) ----

export interface Geometry {
  blockSize: number;
  logicalSectorSize: number;
  capacity: number;
  chunkRatio: number;
  payloadBlocks: number;
  bitmapBlocks: number;
  batEntries: number;
  hasParent: boolean;
}

export function geometry(
  blockSize: number,
  logicalSectorSize: number,
  capacity: number,
  hasParent: boolean,
): Geometry {
  const chunkRatio = (SECTORS_PER_BITMAP_BLOCK * logicalSectorSize) / blockSize;
  const payloadBlocks = Math.ceil(capacity / blockSize);
  const bitmapBlocks = Math.ceil(payloadBlocks / chunkRatio);
  const batEntries = hasParent
    ? bitmapBlocks * (chunkRatio + 1)
    : payloadBlocks + Math.floor((payloadBlocks - 1) / chunkRatio);
  return {
    blockSize,
    logicalSectorSize,
    capacity,
    chunkRatio,
    payloadBlocks,
    bitmapBlocks,
    batEntries,
    hasParent,
  };
}

export const payloadBatIndex = (g: Geometry, block: number) => block + Math.floor(block / g.chunkRatio);
export const bitmapBatIndex = (g: Geometry, chunk: number) => chunk * (g.chunkRatio + 1) + g.chunkRatio;

/** A BAT entry as (state, byte offset); offsets beyond 2^53 are reported as Infinity. */
export function decodeBatEntry(b: Uint8Array, at: number): { state: number; offset: number } {
  const lo = u32(b, at);
  const hi = u32(b, at + 4);
  const mb = hi * 4096 + (lo >>> 20);
  const offset = mb * MiB;
  return { state: lo & 7, offset: Number.isSafeInteger(offset) ? offset : Infinity };
}

export function encodeBatEntry(b: Uint8Array, at: number, state: number, offset: number): void {
  const mb = offset / MiB;
  put32(b, at, ((mb % 4096) * 2 ** 20 + state) >>> 0);
  put32(b, at + 4, Math.floor(mb / 4096));
}
