// Owns: writing a new VHDX file (fixed, dynamic or differencing): file identifier, both headers, both region
// tables, an empty log, the metadata region with its items and parent locator, and the BAT.
// Must not: leave a file that looks like a valid VHDX if creation stops half way (the identifier is written
// last), or allocate memory proportional to the disk size.
// Spec: MS-VHDX v20240423 sections 2.1 (layout, 1 MiB alignment), 2.2 (header section), 2.5 (BAT for fixed
// images: every payload block FULLY_PRESENT), 2.6.2 (metadata items), 2.6.2.6 (parent locator keys).

import { StorageError, type FileOpener } from "../disk.js";
import type { CreateOptions } from "../image-format.js";
import { GUID_ZERO, formatGuid, randomGuid } from "../../support/ms-guid.js";
import {
  BlockState,
  HEADER1_OFFSET,
  HEADER2_OFFSET,
  MAX_CAPACITY,
  MiB,
  REGION1_OFFSET,
  REGION2_OFFSET,
  buildFileIdentifier,
  buildHeader,
  buildMetadata,
  buildRegionTable,
  encodeBatEntry,
  geometry,
  payloadBatIndex,
  type Metadata,
} from "./layout.js";
import { VhdxImage } from "./image.js";

const LOG_OFFSET = MiB;
const LOG_LENGTH = MiB;
const METADATA_OFFSET = 2 * MiB;
const METADATA_LENGTH = MiB;
const BAT_OFFSET = 3 * MiB;
const DEFAULT_BLOCK = 32 * MiB;
/** Hyper-V's choice for differencing disks: small blocks keep copy-on-write granularity fine. */
const DEFAULT_DIFF_BLOCK = 2 * MiB;

const bad = (msg: string) => new StorageError("invalid-argument", msg);

export async function createVhdx(opener: FileOpener, path: string, options: CreateOptions): Promise<void> {
  let capacity = options.capacity;
  let lss: number = options.logicalSectorSize ?? 512;
  const pss: number = options.physicalSectorSize ?? 4096;
  let locator: Map<string, string> | null = null;
  if (options.kind === "differencing") {
    if (options.parentPath === undefined) throw bad("a differencing VHDX needs a parent path");
    const parent = await VhdxImage.open(opener, options.parentPath, { readOnly: true });
    try {
      if (capacity !== undefined && capacity !== parent.capacity)
        throw bad(`capacity ${capacity} differs from the parent's ${parent.capacity}`);
      if (options.logicalSectorSize !== undefined && options.logicalSectorSize !== parent.logicalSectorSize) {
        throw bad(
          `sector size ${options.logicalSectorSize} differs from the parent's ${parent.logicalSectorSize}`,
        );
      }
      capacity = parent.capacity;
      lss = parent.logicalSectorSize;
      locator = new Map([["parent_linkage", `{${formatGuid(parent.dataWriteGuid)}}`]]);
      const rel = relativePath(path, options.parentPath);
      if (rel !== null) locator.set("relative_path", rel.replace(/\//g, "\\"));
      if (opener.isAbsolute(options.parentPath)) locator.set("absolute_win32_path", options.parentPath);
    } finally {
      await parent.close();
    }
  } else if (options.parentPath !== undefined) {
    throw bad(`a ${options.kind} VHDX has no parent`);
  }
  if (capacity === undefined || !Number.isSafeInteger(capacity) || capacity <= 0 || capacity > MAX_CAPACITY) {
    throw bad(`VHDX capacity ${capacity} must be in (0, 64 TiB]`);
  }
  if (lss !== 512 && lss !== 4096) throw bad(`logical sector size ${lss} (512 or 4096)`);
  if (pss !== 512 && pss !== 4096) throw bad(`physical sector size ${pss} (512 or 4096)`);
  if (capacity % lss !== 0) throw bad(`capacity ${capacity} is not a multiple of the ${lss}-byte sector`);
  const blockSize =
    options.blockSize ?? (options.kind === "differencing" ? DEFAULT_DIFF_BLOCK : DEFAULT_BLOCK);
  if (!(blockSize >= MiB && blockSize <= 256 * MiB && (blockSize & (blockSize - 1)) === 0)) {
    throw bad(`block size ${blockSize} must be a power of two in 1 MiB..256 MiB`);
  }

  const meta: Metadata = {
    blockSize,
    leaveBlocksAllocated: options.kind === "fixed",
    hasParent: options.kind === "differencing",
    capacity,
    page83: randomGuid(),
    logicalSectorSize: lss,
    physicalSectorSize: pss,
    parentLocator: locator ? { entries: locator } : null,
  };
  const g = geometry(blockSize, lss, capacity, meta.hasParent);
  const batLength = Math.ceil((g.batEntries * 8) / MiB) * MiB;
  const dataStart = BAT_OFFSET + batLength;
  const fileSize = options.kind === "fixed" ? dataStart + g.payloadBlocks * blockSize : dataStart;

  const file = await opener.create(path);
  try {
    await file.truncate(fileSize);
    const common = {
      fileWriteGuid: randomGuid(),
      dataWriteGuid: randomGuid(),
      logGuid: GUID_ZERO,
      logVersion: 0,
      version: 1,
      logLength: LOG_LENGTH,
      logOffset: LOG_OFFSET,
    };
    await file.write(HEADER1_OFFSET, buildHeader({ ...common, sequence: 1 }));
    await file.write(HEADER2_OFFSET, buildHeader({ ...common, sequence: 2 }));
    const regions = {
      bat: { offset: BAT_OFFSET, length: batLength },
      metadata: { offset: METADATA_OFFSET, length: METADATA_LENGTH },
    };
    await file.write(REGION1_OFFSET, buildRegionTable(regions));
    await file.write(REGION2_OFFSET, buildRegionTable(regions));
    await file.write(METADATA_OFFSET, buildMetadata(meta, METADATA_LENGTH));
    if (options.kind === "fixed") {
      // The BAT is written a megabyte at a time so a large fixed disk needs no large buffer.
      const perChunk = MiB / 8;
      for (let first = 0; first < g.batEntries; first += perChunk) {
        const n = Math.min(perChunk, g.batEntries - first);
        const chunk = new Uint8Array(n * 8);
        for (let block = 0; block < g.payloadBlocks; block++) {
          const i = payloadBatIndex(g, block);
          if (i < first) continue;
          if (i >= first + n) break;
          encodeBatEntry(chunk, (i - first) * 8, BlockState.FullyPresent, dataStart + block * blockSize);
        }
        await file.write(BAT_OFFSET + first * 8, chunk);
        options.onProgress?.(Math.min(1, (first + n) / g.batEntries));
      }
    }
    await file.flush();
    await file.write(0, buildFileIdentifier("Viridian"));
    await file.flush();
    options.onProgress?.(1);
  } finally {
    await file.close();
  }
}

/** The path of `to` relative to the directory of `from` ('/'-separated), or null when there is none. */
export function relativePath(from: string, to: string): string | null {
  const abs = (p: string) => p.startsWith("/");
  if (abs(from) !== abs(to)) return null;
  const norm = (p: string) => {
    const out: string[] = [];
    for (const part of p.split("/")) {
      if (part === "" || part === ".") continue;
      if (part === "..") {
        if (out.length === 0 || out[out.length - 1] === "..") {
          if (abs(p)) continue;
          out.push("..");
        } else out.pop();
      } else out.push(part);
    }
    return out;
  };
  const a = norm(from).slice(0, -1);
  const b = norm(to);
  if (a.includes("..") || b.slice(0, -1).includes("..")) return null;
  let i = 0;
  while (i < a.length && i < b.length - 1 && a[i] === b[i]) i++;
  const up = a.length - i;
  const rest = b.slice(i);
  return (up === 0 ? "./" : "../".repeat(up)) + rest.join("/");
}
