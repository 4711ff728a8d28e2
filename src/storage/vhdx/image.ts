// Owns: an opened VHDX image as an ImageDisk: header selection and update, log replay on open (in memory for
// read-only opens), the BAT and sector bitmaps (cached by 4 KiB page), reads through to the parent, block
// allocation, trim, metadata commits through the log, and check/repair.
// Must not: touch Node built-ins (all I/O goes through FileHandle/FileOpener), trust any field of the file, or
// let a metadata page reach its final place in the file before the log entry carrying it is durable.
// Spec: MS-VHDX v20240423 sections 2.2.2 (header update protocol, FileWriteGuid/DataWriteGuid), 2.3 (log
// write and replay), 2.5 (BAT states, sector bitmap blocks, chunks), 2.6.2.6 (parent locator resolution).

import { StorageError, type FileHandle, type FileOpener } from "../disk.js";
import type { CheckReport, ImageDisk, ImageInfo, OpenOptions } from "../image-format.js";
import {
  formatGuid,
  guidEquals,
  isZeroGuid,
  parseGuid,
  randomGuid,
  GUID_ZERO,
} from "../../support/ms-guid.js";
import {
  BlockState,
  HEADER1_OFFSET,
  HEADER2_OFFSET,
  HEADER_SIZE,
  LOG_SECTOR,
  MAX_CAPACITY,
  METADATA_TABLE_SIZE,
  MiB,
  VIRTUAL_DISK_SIZE,
  REGION1_OFFSET,
  REGION2_OFFSET,
  REGION_TABLE_SIZE,
  SB_PRESENT,
  SECTORS_PER_BITMAP_BLOCK,
  bitmapBatIndex,
  buildHeader,
  buildRegionTable,
  corrupt,
  decodeBatEntry,
  encodeBatEntry,
  geometry,
  isVhdxSignature,
  parseHeader,
  parseMetadata,
  parseRegionTable,
  payloadBatIndex,
  put64,
  u16,
  u32,
  validateHeader,
  type Geometry,
  type Header,
  type Metadata,
  type RegionTable,
} from "./layout.js";
import { buildLogEntry, entryBytes, findActiveSequence, validateReplay, type ActiveSequence } from "./log.js";

/** Logs larger than this are refused rather than read into memory (Hyper-V and qemu write 1 MiB). */
const MAX_LOG = 64 * MiB;
/** Metadata regions are read whole; real ones are 1 MiB. */
const MAX_METADATA = 16 * MiB;
/** Differencing chains deeper than this are treated as a loop the path comparison could not see. */
const MAX_CHAIN = 64;
/** Clean cached BAT/bitmap pages kept before the cache is trimmed. */
const PAGE_CACHE_LIMIT = 16384;

interface Extent {
  start: number;
  end: number;
  what: string;
}

export class VhdxImage implements ImageDisk {
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  capacity: number;
  private geo: Geometry;
  private readonly pages = new Map<number, Uint8Array>();
  private readonly dirty = new Set<number>();
  private readonly dirtyBitmap = new Set<number>();
  private queue: Promise<unknown> = Promise.resolve();
  private session = false;
  private logHead = 0;
  private logSequence = 1;
  private closed = false;
  private allocatedBlocks = -1;
  private dataGuidRenewed = false;

  /** The path this image was opened from (for a parent: as resolved from the child's locator). */
  get location(): string {
    return this.path;
  }

  private constructor(
    private file: FileHandle,
    readonly path: string,
    readonly readOnly: boolean,
    private header: Header,
    private headerSlot: 0 | 1,
    private regions: RegionTable,
    private readonly meta: Metadata,
    private fileEnd: number,
    readonly parent: VhdxImage | null,
    readonly parentPath: string | undefined,
    /** Set when a read-only open found a log it had to replay in memory. */
    private readonly pendingLog: boolean,
    /** The header section, log, metadata and BAT regions: no block may overlap them. */
    private readonly fixedExtents: Extent[],
  ) {
    this.logicalSectorSize = meta.logicalSectorSize;
    this.physicalSectorSize = meta.physicalSectorSize;
    this.capacity = meta.capacity;
    this.geo = geometry(meta.blockSize, meta.logicalSectorSize, meta.capacity, meta.hasParent);
  }

  get identity(): string {
    return formatGuid(this.header.dataWriteGuid);
  }

  /** The 16-byte DataWriteGuid a child's parent_linkage must name. */
  get dataWriteGuid(): Uint8Array {
    return this.header.dataWriteGuid;
  }

  // ---------------------------------------------------------------- open

  static async open(opener: FileOpener, path: string, options: OpenOptions): Promise<VhdxImage> {
    const chain = options.openChain ?? new Set<string>();
    if (chain.has(path))
      throw new StorageError("cycle", `${path}: differencing chain refers back to this image`);
    if (chain.size >= MAX_CHAIN)
      throw new StorageError("cycle", `${path}: differencing chain deeper than ${MAX_CHAIN}`);
    chain.add(path);
    const file = await opener.open(path, options.readOnly ? "read" : "read-write");
    let parent: VhdxImage | null = null;
    try {
      let size = await file.size();
      if (size < MiB)
        throw corrupt(`${path}: ${size} bytes is too short for a VHDX header section (truncated?)`);
      const head = new Uint8Array(REGION2_OFFSET + REGION_TABLE_SIZE);
      await readFully(file, 0, head);
      if (!isVhdxSignature(head)) throw corrupt(`${path}: not a VHDX file (no "vhdxfile" identifier)`);
      const h1 = parseHeader(head.subarray(HEADER1_OFFSET, HEADER1_OFFSET + HEADER_SIZE));
      const h2 = parseHeader(head.subarray(HEADER2_OFFSET, HEADER2_OFFSET + HEADER_SIZE));
      let slot: 0 | 1;
      let header: Header;
      if ("invalid" in h1 && "invalid" in h2)
        throw corrupt(`${path}: both VHDX headers are invalid (${h1.invalid}; ${h2.invalid})`);
      if ("invalid" in h1) [slot, header] = [1, h2 as Header];
      else if ("invalid" in h2) [slot, header] = [0, h1];
      else [slot, header] = h2.sequence > h1.sequence ? [1, h2] : [0, h1];
      validateHeader(header, size);

      // Log replay (2.3.3) comes before anything else is read: the region table and metadata may be in it.
      let base = file;
      let pendingLog = false;
      let replayed = false;
      if (!isZeroGuid(header.logGuid) && header.logLength > 0) {
        if (header.logLength > MAX_LOG)
          throw new StorageError(
            "unsupported",
            `${path}: log of ${header.logLength} bytes (at most ${MAX_LOG})`,
          );
        const log = new Uint8Array(header.logLength);
        await readFully(file, header.logOffset, log);
        const active = findActiveSequence(log, header.logGuid, header.logOffset);
        if (active) {
          validateReplay(active, size);
          replayed = true;
          if (options.readOnly) {
            base = new ReplayedFile(file, active, size);
            pendingLog = true;
            size = await base.size();
          } else {
            await replayInto(file, active, size);
            size = await file.size();
          }
        }
        if (!options.readOnly) {
          [slot, header] = await updateHeader(file, slot, header, { logGuid: GUID_ZERO });
        }
      }

      // The region tables may have been in the replayed log: read them again after a replay.
      const regions = await readRegions(base, path, head, replayed);
      const metaLength = Math.min(regions.metadata.length, MAX_METADATA);
      const metaBytes = new Uint8Array(metaLength);
      checkExtent(regions.metadata, size, "metadata region", path);
      checkExtent(regions.bat, size, "BAT region", path);
      await readFully(base, regions.metadata.offset, metaBytes);
      const meta = parseMetadata(metaBytes);
      const geo = geometry(meta.blockSize, meta.logicalSectorSize, meta.capacity, meta.hasParent);
      if (regions.bat.length < geo.batEntries * 8) {
        throw corrupt(
          `${path}: BAT region (${regions.bat.length} bytes) is smaller than the ${geo.batEntries} entries the disk size needs`,
        );
      }
      const fixed: Extent[] = [
        { start: 0, end: MiB, what: "header section" },
        {
          start: regions.metadata.offset,
          end: regions.metadata.offset + regions.metadata.length,
          what: "metadata region",
        },
        { start: regions.bat.offset, end: regions.bat.offset + regions.bat.length, what: "BAT region" },
      ];
      if (header.logLength > 0)
        fixed.push({ start: header.logOffset, end: header.logOffset + header.logLength, what: "log" });
      for (let i = 0; i < fixed.length; i++) {
        for (let j = i + 1; j < fixed.length; j++) {
          const a = fixed[i]!;
          const b = fixed[j]!;
          if (a.start < b.end && b.start < a.end)
            throw corrupt(`${path}: the ${a.what} overlaps the ${b.what}`);
        }
      }

      let parentPath: string | undefined;
      if (meta.hasParent) {
        const found = await locateParent(opener, path, meta);
        parentPath = found;
        parent = await VhdxImage.open(opener, found, { readOnly: true, openChain: chain });
        const linkage = meta.parentLocator!.entries;
        const ok = ["parent_linkage", "parent_linkage2"].some((k) => {
          const g = linkage.get(k);
          const parsed = g === undefined ? null : parseGuid(g);
          return parsed !== null && guidEquals(parsed, parent!.dataWriteGuid);
        });
        if (!ok) {
          throw new StorageError(
            "parent-mismatch",
            `${path}: parent ${found} has DataWriteGuid ${parent.identity} but the child links to ${linkage.get("parent_linkage")}`,
          );
        }
        if (parent.logicalSectorSize !== meta.logicalSectorSize) {
          throw new StorageError(
            "parent-mismatch",
            `${path}: parent sector size ${parent.logicalSectorSize} differs from ${meta.logicalSectorSize}`,
          );
        }
      }
      const image = new VhdxImage(
        base,
        path,
        options.readOnly,
        header,
        slot,
        regions,
        meta,
        size,
        parent,
        parentPath,
        pendingLog,
        fixed,
      );
      return image;
    } catch (e) {
      await parent?.close().catch(() => undefined);
      await file.close().catch(() => undefined);
      chain.delete(path);
      throw asStorageError(e, path);
    }
  }

  // ---------------------------------------------------------------- Disk

  read(lba: number, dst: Uint8Array): Promise<void> {
    this.checkRange(lba, dst.length);
    return this.serial(async () => {
      let pos = lba * this.logicalSectorSize;
      let done = 0;
      while (done < dst.length) {
        const block = Math.floor(pos / this.geo.blockSize);
        const inBlock = pos - block * this.geo.blockSize;
        const n = Math.min(dst.length - done, this.geo.blockSize - inBlock);
        await this.readInBlock(block, inBlock, dst.subarray(done, done + n));
        done += n;
        pos += n;
      }
    });
  }

  write(lba: number, src: Uint8Array): Promise<void> {
    this.checkRange(lba, src.length);
    if (this.readOnly) return Promise.reject(new StorageError("read-only", `${this.path} is open read-only`));
    return this.serial(async () => {
      await this.beginSession();
      let pos = lba * this.logicalSectorSize;
      let done = 0;
      while (done < src.length) {
        const block = Math.floor(pos / this.geo.blockSize);
        const inBlock = pos - block * this.geo.blockSize;
        const n = Math.min(src.length - done, this.geo.blockSize - inBlock);
        await this.writeInBlock(block, inBlock, src.subarray(done, done + n));
        done += n;
        pos += n;
      }
    });
  }

  flush(): Promise<void> {
    if (this.closed) return Promise.reject(new StorageError("closed", `${this.path} is closed`));
    return this.serial(async () => {
      if (this.readOnly) return;
      await this.commit();
      await this.file.flush();
    });
  }

  trim(lba: number, sectorCount: number): Promise<void> {
    this.checkRange(lba, sectorCount * this.logicalSectorSize);
    if (this.readOnly) return Promise.reject(new StorageError("read-only", `${this.path} is open read-only`));
    return this.serial(async () => {
      // A fixed image promises every block stays allocated (LeaveBlockAllocated, 2.6.2.1).
      if (this.meta.leaveBlocksAllocated && !this.meta.hasParent) return;
      const bs = this.geo.blockSize;
      const start = lba * this.logicalSectorSize;
      const end = start + sectorCount * this.logicalSectorSize;
      // Only whole blocks change state; partial trims keep their data, which "may return zeros" allows.
      const target = this.meta.hasParent ? BlockState.Zero : BlockState.Unmapped;
      for (let b = Math.ceil(start / bs); b * bs < end; b++) {
        // The last block may be short of a whole block; covering up to the capacity covers it.
        if (Math.min((b + 1) * bs, this.capacity) > end) break;
        const e = await this.payloadEntry(b);
        if (e.state === target) continue;
        await this.beginSession();
        await this.setEntry(payloadBatIndex(this.geo, b), target, 0);
      }
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return this.serial(async () => {
      if (this.closed) return;
      this.closed = true;
      try {
        if (this.session) {
          await this.commit();
          await this.file.flush();
          // A clean close empties the log so that no replay is needed (2.3.3).
          [this.headerSlot, this.header] = await updateHeader(this.file, this.headerSlot, this.header, {
            logGuid: GUID_ZERO,
          });
          this.session = false;
        }
      } finally {
        await this.file.close();
        await this.parent?.close();
      }
    });
  }

  // ---------------------------------------------------------------- ImageDisk

  info(): ImageInfo {
    const kind = this.meta.hasParent ? "differencing" : this.meta.leaveBlocksAllocated ? "fixed" : "dynamic";
    const info: ImageInfo = {
      format: "vhdx",
      kind,
      capacity: this.capacity,
      logicalSectorSize: this.logicalSectorSize,
      physicalSectorSize: this.physicalSectorSize,
      blockSize: this.geo.blockSize,
      allocatedBytes: Math.max(0, this.allocatedBlocks) * this.geo.blockSize,
      fileSize: this.fileEnd,
      identity: this.identity,
    };
    if (this.parentPath !== undefined) info.parentPath = this.parentPath;
    const link = this.meta.parentLocator?.entries.get("parent_linkage");
    const g = link === undefined ? null : parseGuid(link);
    if (g) info.parentIdentity = formatGuid(g);
    return info;
  }

  isAllocated(lba: number, sectorCount: number): Promise<boolean> {
    this.checkRange(lba, sectorCount * this.logicalSectorSize);
    return this.serial(async () => {
      const lss = this.logicalSectorSize;
      const spb = this.geo.blockSize / lss;
      let s = lba;
      const end = lba + sectorCount;
      while (s < end) {
        const block = Math.floor(s / spb);
        const n = Math.min(end - s, (block + 1) * spb - s);
        const e = await this.payloadEntry(block);
        if (e.state === BlockState.FullyPresent) return true;
        if (
          this.meta.hasParent &&
          (e.state === BlockState.Zero ||
            e.state === BlockState.Unmapped ||
            e.state === BlockState.UnmappedV095)
        )
          return true;
        if (e.state === BlockState.PartiallyPresent) {
          for (const run of await this.bitmapRuns(s, n)) if (run.present) return true;
        }
        s += n;
      }
      return false;
    });
  }

  check(repair: boolean): Promise<CheckReport> {
    if (this.closed) return Promise.reject(new StorageError("closed", `${this.path} is closed`));
    return this.serial(() => this.runCheck(repair));
  }

  resize(newCapacity: number, force: boolean): Promise<void> {
    if (this.closed) return Promise.reject(new StorageError("closed", `${this.path} is closed`));
    if (this.readOnly) return Promise.reject(new StorageError("read-only", `${this.path} is open read-only`));
    return this.serial(() => this.runResize(newCapacity, force));
  }

  compact(onProgress?: (fraction: number) => void): Promise<{ before: number; after: number }> {
    if (this.closed) return Promise.reject(new StorageError("closed", `${this.path} is closed`));
    if (this.readOnly) return Promise.reject(new StorageError("read-only", `${this.path} is open read-only`));
    return this.serial(() => this.runCompact(onProgress));
  }

  // ---------------------------------------------------------------- internals: resize and compact

  /**
   * Changes the Virtual Disk Size item (2.6.2.2). The BAT region keeps its place when it already holds the
   * entries for the new size; otherwise a larger copy is written to fresh space at the end of the file and
   * made durable before one log entry switches both region tables (2.2.3) and the size, so a crash leaves
   * either the old or the new disk, never a mix.
   */
  private async runResize(newCapacity: number, force: boolean): Promise<void> {
    const lss = this.logicalSectorSize;
    if (
      !Number.isSafeInteger(newCapacity) ||
      newCapacity <= 0 ||
      newCapacity % lss !== 0 ||
      newCapacity > MAX_CAPACITY
    ) {
      throw new StorageError(
        "invalid-argument",
        `${this.path}: new size ${newCapacity} is not a multiple of ${lss} in (0, 64 TiB]`,
      );
    }
    if (newCapacity === this.capacity) return;
    if (this.meta.hasParent) {
      // A child's blocks line up with its parent's; a different size would leave sectors with no parent.
      throw new StorageError(
        "unsupported",
        `${this.path}: a differencing VHDX must keep its parent's size (${this.capacity} bytes); resize the base image and recreate the child`,
      );
    }
    const old = this.capacity;
    const bs = this.geo.blockSize;
    const newGeo = geometry(bs, lss, newCapacity, false);
    const buf = new Uint8Array(bs);
    const tail = newCapacity % bs;
    const hasData = async (block: number, from: number): Promise<boolean> => {
      const e = await this.payloadEntry(block);
      if (e.state !== BlockState.FullyPresent) return false;
      await readFully(this.file, e.offset + from, buf.subarray(0, bs - from));
      return !isZero(buf.subarray(0, bs - from));
    };
    if (newCapacity < old && !force) {
      // Refuse before changing anything. Allocated but all-zero blocks lose nothing and do not count.
      const firstWhole = Math.ceil(newCapacity / bs);
      if (tail !== 0 && (await hasData(firstWhole - 1, tail))) throw this.shrinkRefused(newCapacity);
      for (let b = firstWhole; b < this.geo.payloadBlocks; b++)
        if (await hasData(b, 0)) throw this.shrinkRefused(newCapacity);
    }
    await this.beginSession();
    await this.commit();
    if (newCapacity < old) {
      for (let b = newGeo.payloadBlocks; b < this.geo.payloadBlocks; b++) {
        const e = await this.payloadEntry(b);
        if (e.state !== BlockState.NotPresent)
          await this.setEntry(payloadBatIndex(this.geo, b), BlockState.NotPresent, 0);
      }
    }
    // The block straddling the smaller of the two ends keeps zeros past it, so a later grow reads zeros.
    const edge = Math.min(old, newCapacity);
    if (edge % bs !== 0) {
      const block = Math.floor(edge / bs);
      const e = await this.payloadEntry(block);
      if (e.state === BlockState.FullyPresent)
        await this.file.write(e.offset + (edge % bs), new Uint8Array(bs - (edge % bs)));
    }
    await this.commit();
    await this.file.flush();

    let regions = this.regions;
    if (newGeo.batEntries * 8 > regions.bat.length) {
      const length = Math.ceil((newGeo.batEntries * 8) / MiB) * MiB;
      const at = await this.allocate(length);
      const chunk = new Uint8Array(MiB);
      for (let done = 0; done < regions.bat.length; done += MiB) {
        const n = Math.min(MiB, regions.bat.length - done);
        await readFully(this.file, regions.bat.offset + done, chunk.subarray(0, n));
        await this.file.write(at + done, chunk.subarray(0, n));
      }
      await this.file.flush();
      regions = { ...regions, bat: { offset: at, length } };
    }
    // Region tables (both copies, whole) and the size item go through the log together.
    if (regions !== this.regions) {
      const table = buildRegionTable(regions);
      for (const base of [REGION1_OFFSET, REGION2_OFFSET]) {
        for (let o = 0; o < REGION_TABLE_SIZE; o += LOG_SECTOR) {
          this.pages.set(base + o, table.slice(o, o + LOG_SECTOR));
          this.dirty.add(base + o);
        }
      }
    }
    const sizeAt = this.regions.metadata.offset + (await this.virtualSizeItemOffset());
    const sizePage = sizeAt - (sizeAt % LOG_SECTOR);
    const page = await this.page(sizePage);
    put64(page, sizeAt - sizePage, newCapacity);
    this.dirty.add(sizePage);
    const batExtent = this.fixedExtents.find((x) => x.what === "BAT region")!;
    const oldBat = this.regions.bat;
    this.regions = regions;
    batExtent.start = regions.bat.offset;
    batExtent.end = regions.bat.offset + regions.bat.length;
    this.geo = newGeo;
    this.capacity = newCapacity;
    this.meta.capacity = newCapacity;
    // Cached pages of the old BAT place are stale once the region moved.
    if (oldBat.offset !== regions.bat.offset) {
      for (const k of [...this.pages.keys()])
        if (k >= oldBat.offset && k < oldBat.offset + oldBat.length && !this.dirty.has(k))
          this.pages.delete(k);
    }
    // A fixed image keeps its promise that every block is allocated (LeaveBlockAllocated, 2.6.2.1).
    if (this.meta.leaveBlocksAllocated && newCapacity > old) {
      for (let b = Math.ceil(old / bs); b < newGeo.payloadBlocks; b++) {
        const e = await this.payloadEntry(b);
        if (e.state === BlockState.FullyPresent) continue;
        const at = await this.allocate(bs);
        await this.setEntry(payloadBatIndex(newGeo, b), BlockState.FullyPresent, at);
      }
    }
    await this.commit();
    await this.file.flush();
  }

  private shrinkRefused(newCapacity: number): StorageError {
    return new StorageError(
      "invalid-argument",
      `${this.path}: data is allocated beyond ${newCapacity} bytes; shrinking would lose it (use force)`,
    );
  }

  /** Where the Virtual Disk Size item lies inside the metadata region (2.6.1.2 table entries). */
  private async virtualSizeItemOffset(): Promise<number> {
    const table = new Uint8Array(METADATA_TABLE_SIZE);
    await readFully(this.file, this.regions.metadata.offset, table);
    const count = Math.min(u16(table, 10), 2047);
    for (let i = 0; i < count; i++) {
      const at = 32 + i * 32;
      if (!guidEquals(table.subarray(at, at + 16), VIRTUAL_DISK_SIZE)) continue;
      const offset = u32(table, at + 16);
      if (offset < METADATA_TABLE_SIZE || offset + 8 > this.regions.metadata.length)
        throw corrupt(`${this.path}: the virtual disk size item lies outside the metadata region`);
      return offset;
    }
    throw corrupt(`${this.path}: the metadata table has no virtual disk size item`);
  }

  /**
   * 1. Fully present blocks that hold only zeros are released: NOT_PRESENT in a dynamic image, ZERO in a
   *    differencing one (ZERO still hides the parent, so what the child shows does not change; 2.5.1.1).
   * 2. Blocks and sector bitmap blocks move, lowest first, into the lowest free 1 MiB-aligned place below
   *    them. Each copy is flushed before a log entry repoints its BAT entry, and a freed place is reused only
   *    after that entry is durable, so a crash leaves every entry pointing at valid data.
   * 3. The file is cut after the last used byte, once the log is empty (its entries name the old size).
   * The virtual disk reads the same throughout, so DataWriteGuid stays (2.2.2.1): children stay linked.
   */
  private async runCompact(
    onProgress?: (fraction: number) => void,
  ): Promise<{ before: number; after: number }> {
    await this.commit();
    const before = await this.file.size();
    if (this.meta.leaveBlocksAllocated && !this.meta.hasParent) return { before, after: before };
    const g = this.geo;
    const buf = new Uint8Array(g.blockSize);
    for (let b = 0; b < g.payloadBlocks; b++) {
      const e = await this.payloadEntry(b);
      if (e.state === BlockState.FullyPresent) {
        await readFully(this.file, e.offset, buf);
        if (isZero(buf)) {
          await this.beginSession(true);
          const to = this.meta.hasParent ? BlockState.Zero : BlockState.NotPresent;
          await this.setEntry(payloadBatIndex(g, b), to, 0);
        }
      }
      onProgress?.(((b + 1) / g.payloadBlocks) * 0.5);
    }
    await this.commit();

    const live: Array<{ index: number; state: number; offset: number; length: number }> = [];
    for (let index = 0; index < g.batEntries; index++) {
      const isBitmap = (index + 1) % (g.chunkRatio + 1) === 0;
      const e = await this.entry(index);
      let length = 0;
      if (isBitmap) {
        if (e.state === SB_PRESENT) length = MiB;
      } else if (e.state === BlockState.FullyPresent || e.state === BlockState.PartiallyPresent) {
        length = g.blockSize;
      }
      if (length === 0) continue;
      const problem = this.locationProblem(e.offset, length);
      if (problem) throw corrupt(`${this.path}: BAT entry ${index}: ${problem} (run check --repair)`);
      live.push({ index, state: e.state, offset: e.offset, length });
    }
    live.sort((a, b) => a.offset - b.offset);
    const occupied = this.fixedExtents
      .map((x) => ({ start: x.start, end: x.end }))
      .sort((a, b) => a.start - b.start);
    const insert = (r: { start: number; end: number }) => {
      let i = occupied.length;
      while (i > 0 && occupied[i - 1]!.start > r.start) i--;
      occupied.splice(i, 0, r);
    };
    let copy = new Uint8Array(0);
    for (let i = 0; i < live.length; i++) {
      const x = live[i]!;
      let target = -1;
      let cursor = MiB;
      for (const r of occupied) {
        if (cursor + x.length > x.offset) break;
        if (r.start >= cursor + x.length) {
          target = cursor;
          break;
        }
        cursor = Math.max(cursor, Math.ceil(r.end / MiB) * MiB);
      }
      if (target < 0 && cursor + x.length <= x.offset) target = cursor;
      if (target >= 0) {
        if (copy.length !== x.length) copy = new Uint8Array(x.length);
        await readFully(this.file, x.offset, copy);
        await this.file.write(target, copy);
        await this.file.flush();
        await this.beginSession(true);
        await this.setEntry(x.index, x.state, target);
        // Bitmap pages are cached by file offset: the moved bitmap block's pages now live elsewhere.
        if (x.length === MiB && (x.index + 1) % (g.chunkRatio + 1) === 0) {
          for (const k of [...this.pages.keys()])
            if (k >= x.offset && k < x.offset + x.length && !this.dirty.has(k)) this.pages.delete(k);
        }
        await this.commit();
        insert({ start: target, end: target + x.length });
      } else {
        insert({ start: x.offset, end: x.offset + x.length });
      }
      onProgress?.(0.5 + ((i + 1) / live.length) * 0.5);
    }
    await this.file.flush();
    const end = Math.max(MiB, ...occupied.map((r) => r.end));
    if (end < before) {
      if (this.session) {
        [this.headerSlot, this.header] = await updateHeader(this.file, this.headerSlot, this.header, {
          logGuid: GUID_ZERO,
        });
        this.session = false;
      }
      await this.file.truncate(end);
      await this.file.flush();
      this.fileEnd = end;
    }
    onProgress?.(1);
    return { before, after: await this.file.size() };
  }

  // ---------------------------------------------------------------- internals: paging

  /** Runs operations one at a time: allocation and BAT/bitmap updates must not interleave. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private checkRange(lba: number, bytes: number): void {
    if (this.closed) throw new StorageError("closed", `${this.path} is closed`);
    const lss = this.logicalSectorSize;
    if (
      !Number.isSafeInteger(lba) ||
      lba < 0 ||
      bytes % lss !== 0 ||
      bytes < 0 ||
      lba * lss + bytes > this.capacity
    ) {
      throw new StorageError(
        "out-of-range",
        `${this.path}: sector ${lba} + ${bytes} bytes is outside the ${this.capacity}-byte disk`,
      );
    }
  }

  private async page(offset: number): Promise<Uint8Array> {
    let p = this.pages.get(offset);
    if (!p) {
      if (this.pages.size >= PAGE_CACHE_LIMIT) {
        for (const k of this.pages.keys()) if (!this.dirty.has(k)) this.pages.delete(k);
      }
      p = new Uint8Array(LOG_SECTOR);
      await readFully(this.file, offset, p);
      this.pages.set(offset, p);
    }
    return p;
  }

  private async entry(index: number): Promise<{ state: number; offset: number }> {
    const byte = this.regions.bat.offset + index * 8;
    const pageOff = byte - (byte % LOG_SECTOR);
    return decodeBatEntry(await this.page(pageOff), byte - pageOff);
  }

  private async setEntry(index: number, state: number, offset: number): Promise<void> {
    const byte = this.regions.bat.offset + index * 8;
    const pageOff = byte - (byte % LOG_SECTOR);
    const p = await this.page(pageOff);
    const before = decodeBatEntry(p, byte - pageOff).state;
    encodeBatEntry(p, byte - pageOff, state, offset);
    this.dirty.add(pageOff);
    if (this.allocatedBlocks >= 0 && (index + 1) % (this.geo.chunkRatio + 1) !== 0) {
      const was = before === BlockState.FullyPresent || before === BlockState.PartiallyPresent;
      const is = state === BlockState.FullyPresent || state === BlockState.PartiallyPresent;
      this.allocatedBlocks += (is ? 1 : 0) - (was ? 1 : 0);
    }
  }

  /** Validates an entry's file location: inside the file, clear of the header, log, metadata and BAT. */
  private locationProblem(offset: number, length: number): string | null {
    if (!Number.isFinite(offset) || offset < MiB) return `offset ${offset} is inside the header section`;
    if (offset + length > this.fileEnd)
      return `block at ${offset} extends beyond the end of the file (${this.fileEnd})`;
    for (const x of this.fixedExtents) {
      if (offset < x.end && x.start < offset + length) return `block at ${offset} overlaps the ${x.what}`;
    }
    return null;
  }

  private async payloadEntry(block: number): Promise<{ state: number; offset: number }> {
    const e = await this.entry(payloadBatIndex(this.geo, block));
    switch (e.state) {
      case BlockState.NotPresent:
      case BlockState.Undefined:
      case BlockState.Zero:
      case BlockState.Unmapped:
      case BlockState.UnmappedV095:
        return e;
      case BlockState.PartiallyPresent:
      case BlockState.FullyPresent: {
        if (e.state === BlockState.PartiallyPresent && !this.meta.hasParent) {
          throw corrupt(
            `${this.path}: BAT entry for block ${block} is partially present in a disk without a parent`,
          );
        }
        const problem = this.locationProblem(e.offset, this.geo.blockSize);
        if (problem) throw corrupt(`${this.path}: BAT entry for block ${block}: ${problem}`);
        return e;
      }
      default:
        throw corrupt(`${this.path}: BAT entry for block ${block} has unknown state ${e.state}`);
    }
  }

  private async bitmapBlock(chunk: number): Promise<number | null> {
    const e = await this.entry(bitmapBatIndex(this.geo, chunk));
    if (e.state === BlockState.NotPresent) return null;
    if (e.state !== SB_PRESENT)
      throw corrupt(`${this.path}: sector bitmap entry ${chunk} has unknown state ${e.state}`);
    const problem = this.locationProblem(e.offset, MiB);
    if (problem) throw corrupt(`${this.path}: sector bitmap block ${chunk}: ${problem}`);
    return e.offset;
  }

  /** Splits sectors [sector, sector+count) (inside one block) into runs present here / in the parent. */
  private async bitmapRuns(
    sector: number,
    count: number,
  ): Promise<Array<{ start: number; count: number; present: boolean }>> {
    const chunk = Math.floor(sector / SECTORS_PER_BITMAP_BLOCK);
    const sb = await this.bitmapBlock(chunk);
    if (sb === null)
      throw corrupt(`${this.path}: a partially present block in chunk ${chunk} has no sector bitmap block`);
    const runs: Array<{ start: number; count: number; present: boolean }> = [];
    let pageOff = -1;
    let p: Uint8Array = new Uint8Array(0);
    for (let i = 0; i < count; i++) {
      const bit = (sector + i) % SECTORS_PER_BITMAP_BLOCK;
      const byte = bit >>> 3;
      const po = sb + byte - (byte % LOG_SECTOR);
      if (po !== pageOff) {
        pageOff = po;
        p = await this.page(po);
      }
      const present = ((p[byte % LOG_SECTOR]! >>> (bit & 7)) & 1) === 1;
      const last = runs[runs.length - 1];
      if (last && last.present === present) last.count++;
      else runs.push({ start: sector + i, count: 1, present });
    }
    return runs;
  }

  private async setBits(sector: number, count: number, value: boolean): Promise<void> {
    const chunk = Math.floor(sector / SECTORS_PER_BITMAP_BLOCK);
    let sb = await this.bitmapBlock(chunk);
    if (sb === null) {
      sb = await this.allocate(MiB);
      await this.setEntry(bitmapBatIndex(this.geo, chunk), SB_PRESENT, sb);
    }
    let bit = sector % SECTORS_PER_BITMAP_BLOCK;
    const end = bit + count;
    while (bit < end) {
      const byte = bit >>> 3;
      const po = sb + byte - (byte % LOG_SECTOR);
      const p = await this.page(po);
      this.dirty.add(po);
      this.dirtyBitmap.add(po);
      if ((bit & 7) === 0 && end - bit >= 8) {
        // Whole bytes up to the end of this page or of the range.
        const bytes = Math.min((end - bit) >>> 3, LOG_SECTOR - (byte % LOG_SECTOR));
        p.fill(value ? 0xff : 0, byte % LOG_SECTOR, (byte % LOG_SECTOR) + bytes);
        bit += bytes * 8;
      } else {
        const mask = 1 << (bit & 7);
        const i = byte % LOG_SECTOR;
        p[i] = value ? p[i]! | mask : p[i]! & ~mask;
        bit++;
      }
    }
  }

  /** Reserves `length` bytes of fresh (zero) file space at the 1 MiB-aligned end of the file. */
  private async allocate(length: number): Promise<number> {
    const at = Math.ceil(this.fileEnd / MiB) * MiB;
    await this.file.truncate(at + length);
    this.fileEnd = at + length;
    return at;
  }

  // ---------------------------------------------------------------- internals: data path

  private async readParent(pos: number, dst: Uint8Array): Promise<void> {
    const parent = this.parent;
    if (!parent || pos >= parent.capacity) {
      dst.fill(0);
      return;
    }
    const n = Math.min(dst.length, parent.capacity - pos);
    await parent.read(pos / this.logicalSectorSize, dst.subarray(0, n));
    dst.fill(0, n);
  }

  private async readInBlock(block: number, inBlock: number, dst: Uint8Array): Promise<void> {
    const e = await this.payloadEntry(block);
    const pos = block * this.geo.blockSize + inBlock;
    switch (e.state) {
      case BlockState.FullyPresent:
        return readFully(this.file, e.offset + inBlock, dst);
      case BlockState.NotPresent:
      case BlockState.Undefined:
        return this.meta.hasParent ? this.readParent(pos, dst) : void dst.fill(0);
      case BlockState.PartiallyPresent: {
        const lss = this.logicalSectorSize;
        const first = pos / lss;
        for (const run of await this.bitmapRuns(first, dst.length / lss)) {
          const sub = dst.subarray((run.start - first) * lss, (run.start - first + run.count) * lss);
          if (run.present) await readFully(this.file, e.offset + inBlock + (run.start - first) * lss, sub);
          else await this.readParent(run.start * lss, sub);
        }
        return;
      }
      default:
        dst.fill(0);
    }
  }

  private async writeInBlock(block: number, inBlock: number, src: Uint8Array): Promise<void> {
    const e = await this.payloadEntry(block);
    const index = payloadBatIndex(this.geo, block);
    const lss = this.logicalSectorSize;
    const firstSector = (block * this.geo.blockSize + inBlock) / lss;
    if (e.state === BlockState.FullyPresent) return this.file.write(e.offset + inBlock, src);
    if (e.state === BlockState.PartiallyPresent) {
      await this.file.write(e.offset + inBlock, src);
      return this.setBits(firstSector, src.length / lss, true);
    }
    const fromParent =
      this.meta.hasParent && (e.state === BlockState.NotPresent || e.state === BlockState.Undefined);
    // Fresh space at the end of the file reads as zeros; it was never part of any block, so no stale data.
    const at = await this.allocate(this.geo.blockSize);
    await this.file.write(at + inBlock, src);
    if (fromParent) {
      // The bitmap range may hold bits from an earlier, uncommitted life of this block: clear it all first.
      const blockFirst = (block * this.geo.blockSize) / lss;
      await this.setBits(blockFirst, this.geo.blockSize / lss, false);
      await this.setBits(firstSector, src.length / lss, true);
      await this.setEntry(index, BlockState.PartiallyPresent, at);
    } else {
      await this.setEntry(index, BlockState.FullyPresent, at);
    }
  }

  // ---------------------------------------------------------------- internals: sessions and the log

  /** Before the first change: new FileWriteGuid and DataWriteGuid, and a fresh LogGuid for this session (2.2.2). */
  private async beginSession(keepData = false): Promise<void> {
    if (this.session) {
      // A session opened by compaction kept the DataWriteGuid; the first real data change still renews it.
      if (!keepData && !this.dataGuidRenewed) {
        [this.headerSlot, this.header] = await updateHeader(this.file, this.headerSlot, this.header, {
          dataWriteGuid: randomGuid(),
        });
        this.dataGuidRenewed = true;
      }
      return;
    }
    this.dataGuidRenewed = !keepData;
    if (this.header.logLength < entryBytes(2) * 2) {
      throw new StorageError(
        "unsupported",
        `${this.path}: the log (${this.header.logLength} bytes) is too small to update metadata safely`,
      );
    }
    [this.headerSlot, this.header] = await updateHeader(this.file, this.headerSlot, this.header, {
      fileWriteGuid: randomGuid(),
      // Compaction moves data without changing what the disk reads: children must stay linked.
      dataWriteGuid: keepData ? this.header.dataWriteGuid : randomGuid(),
      logGuid: randomGuid(),
    });
    this.session = true;
    this.logHead = 0;
    this.logSequence = 1;
  }

  /**
   * Makes every dirty BAT/bitmap page durable: data first (flush), then per log entry: write it, flush, apply
   * the pages in place. Bitmap pages go in earlier entries than BAT pages, so a BAT entry never points at a
   * block whose bitmap is not yet durable. Each entry is its own sequence (Tail = itself); the next entry is
   * written only after the previous one's pages were applied and flushed, and never over it (entries are at
   * most half the log).
   */
  private async commit(): Promise<void> {
    if (this.dirty.size === 0) return;
    await this.file.flush();
    const order = [...this.dirty].sort((a, b) => {
      const ba = this.dirtyBitmap.has(a) ? 0 : 1;
      const bb = this.dirtyBitmap.has(b) ? 0 : 1;
      return ba - bb || a - b;
    });
    const logLength = this.header.logLength;
    let perEntry = Math.floor(logLength / 2 / LOG_SECTOR);
    while (perEntry > 1 && entryBytes(perEntry) > logLength / 2) perEntry--;
    for (let i = 0; i < order.length; i += perEntry) {
      const batch = order.slice(i, i + perEntry).map((offset) => ({ offset, data: this.pages.get(offset)! }));
      const entry = buildLogEntry(
        this.logSequence,
        this.logHead,
        this.header.logGuid,
        this.fileEnd,
        this.fileEnd,
        batch,
      );
      const first = Math.min(entry.length, logLength - this.logHead);
      await this.file.write(this.header.logOffset + this.logHead, entry.subarray(0, first));
      if (first < entry.length) await this.file.write(this.header.logOffset, entry.subarray(first));
      await this.file.flush();
      for (const p of batch) await this.file.write(p.offset, p.data);
      this.logHead = (this.logHead + entry.length) % logLength;
      this.logSequence++;
      if (i + perEntry < order.length) await this.file.flush();
    }
    this.dirty.clear();
    this.dirtyBitmap.clear();
  }

  // ---------------------------------------------------------------- check

  private async runCheck(repair: boolean): Promise<CheckReport> {
    const problems: string[] = [];
    const repaired: string[] = [];
    const head = new Uint8Array(REGION2_OFFSET + REGION_TABLE_SIZE);
    await readFully(this.file, 0, head);
    const canRepair = repair && !this.readOnly;
    if (this.pendingLog) {
      problems.push("the log holds entries that were not replayed (opened read-only; replayed in memory)");
    }
    // Headers: both copies should be valid (2.2.2); a bad one is rewritten from the current header.
    for (const [slot, off] of [
      [0, HEADER1_OFFSET],
      [1, HEADER2_OFFSET],
    ] as const) {
      const h = parseHeader(head.subarray(off, off + HEADER_SIZE));
      if ("invalid" in h) {
        problems.push(`header ${slot + 1} is invalid (${h.invalid})`);
        if (canRepair) {
          [this.headerSlot, this.header] = await updateHeader(this.file, this.headerSlot, this.header, {});
          repaired.push(`rewrote header ${slot + 1}`);
        }
      }
    }
    // Region tables: both copies must be valid and identical.
    const r1 = parseRegionTable(head.subarray(REGION1_OFFSET, REGION1_OFFSET + REGION_TABLE_SIZE));
    const r2 = parseRegionTable(head.subarray(REGION2_OFFSET, REGION2_OFFSET + REGION_TABLE_SIZE));
    for (const [i, r, off] of [
      [1, r1, REGION1_OFFSET],
      [2, r2, REGION2_OFFSET],
    ] as const) {
      if ("invalid" in r) {
        problems.push(`region table ${i} is invalid (${r.invalid})`);
        if (canRepair) {
          await this.file.write(off, buildRegionTable(this.regions));
          await this.file.flush();
          repaired.push(`rewrote region table ${i}`);
        }
      }
    }
    // Metadata: there is one copy; it was parsed at open, so a failure now means it changed underneath us.
    try {
      const meta = new Uint8Array(Math.min(this.regions.metadata.length, MAX_METADATA));
      await readFully(this.file, this.regions.metadata.offset, meta);
      parseMetadata(meta);
    } catch (e) {
      if (!(e instanceof StorageError)) throw e;
      problems.push(`metadata region: ${e.message}`);
    }
    if (!this.session && !this.pendingLog && !isZeroGuid(this.header.logGuid)) {
      problems.push("the header names a log (LogGuid set) that holds no valid sequence");
      if (canRepair) {
        [this.headerSlot, this.header] = await updateHeader(this.file, this.headerSlot, this.header, {
          logGuid: GUID_ZERO,
        });
        repaired.push("cleared the LogGuid of the empty log");
      }
    }
    // BAT: every entry's state is known, every allocated block lies inside the file clear of the metadata,
    // log, BAT and every other block.
    const g = this.geo;
    const owners: Array<{ start: number; end: number; index: number }> = [];
    let allocated = 0;
    for (let index = 0; index < g.batEntries; index++) {
      const isBitmap = (index + 1) % (g.chunkRatio + 1) === 0;
      const e = await this.entry(index);
      const what = isBitmap
        ? `sector bitmap entry ${Math.floor(index / (g.chunkRatio + 1))}`
        : `BAT entry ${index}`;
      let problem: string | null = null;
      let length = 0;
      if (isBitmap) {
        if (e.state === SB_PRESENT) length = MiB;
        else if (e.state !== BlockState.NotPresent) problem = `unknown state ${e.state}`;
      } else if (e.state === BlockState.FullyPresent || e.state === BlockState.PartiallyPresent) {
        length = g.blockSize;
        if (e.state === BlockState.PartiallyPresent && !g.hasParent)
          problem = "partially present in a disk without a parent";
      } else if (e.state === 4 || e.state > 7) problem = `unknown state ${e.state}`;
      if (!problem && length > 0) problem = this.locationProblem(e.offset, length);
      if (problem) {
        problems.push(`${what}: ${problem}`);
        if (canRepair) {
          await this.beginSession();
          await this.setEntry(index, BlockState.NotPresent, 0);
          repaired.push(`${what}: marked not present`);
        }
        continue;
      }
      if (length > 0) {
        owners.push({ start: e.offset, end: e.offset + length, index });
        if (!isBitmap) allocated++;
      }
      if ((index & 4095) === 4095 && this.pages.size > PAGE_CACHE_LIMIT / 2) {
        for (const k of this.pages.keys()) if (!this.dirty.has(k)) this.pages.delete(k);
      }
    }
    owners.sort((a, b) => a.start - b.start);
    for (let i = 1; i < owners.length; i++) {
      if (owners[i]!.start < owners[i - 1]!.end) {
        problems.push(
          `BAT entries ${owners[i - 1]!.index} and ${owners[i]!.index} overlap at file offset ${owners[i]!.start}`,
        );
      }
    }
    this.allocatedBlocks = allocated;
    if (canRepair && repaired.length > 0) {
      await this.commit();
      await this.file.flush();
    }
    return { problems, repaired };
  }

  /** Counts allocated payload blocks for info(); skipped for very large BATs (allocatedBytes then reads 0). */
  async countAllocated(): Promise<void> {
    const g = this.geo;
    if (g.batEntries > 1 << 20) return;
    const bat = new Uint8Array(g.batEntries * 8);
    await readFully(this.file, this.regions.bat.offset, bat);
    let n = 0;
    for (let i = 0; i < g.batEntries; i++) {
      if ((i + 1) % (g.chunkRatio + 1) === 0) continue;
      const s = bat[i * 8]! & 7;
      if (s === BlockState.FullyPresent || s === BlockState.PartiallyPresent) n++;
    }
    this.allocatedBlocks = n;
  }
}

// ------------------------------------------------------------------ helpers

function isZero(b: Uint8Array): boolean {
  if (b.byteOffset % 4 !== 0) return b.every((x) => x === 0);
  const w = new Uint32Array(b.buffer, b.byteOffset, b.length >>> 2);
  for (let i = 0; i < w.length; i++) if (w[i] !== 0) return false;
  for (let i = w.length * 4; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

export async function readFully(file: FileHandle, position: number, dst: Uint8Array): Promise<void> {
  const n = await file.read(position, dst);
  if (n < dst.length) dst.fill(0, Math.max(0, n));
}

function asStorageError(e: unknown, path: string): StorageError {
  if (e instanceof StorageError) return e;
  if (e instanceof Error && typeof (e as { code?: unknown }).code === "string")
    return new StorageError("io", `${path}: ${e.message}`);
  throw e;
}

function checkExtent(r: { offset: number; length: number }, size: number, what: string, path: string): void {
  if (r.offset + r.length > size)
    throw corrupt(
      `${path}: the ${what} (${r.offset}+${r.length}) extends beyond the end of the file (${size})`,
    );
}

async function readRegions(
  file: FileHandle,
  path: string,
  head: Uint8Array,
  replayed: boolean,
): Promise<RegionTable> {
  let bytes = head;
  if (replayed) {
    bytes = new Uint8Array(head.length);
    await readFully(file, 0, bytes);
  }
  const r1 = parseRegionTable(bytes.subarray(REGION1_OFFSET, REGION1_OFFSET + REGION_TABLE_SIZE));
  if (!("invalid" in r1)) return r1;
  const r2 = parseRegionTable(bytes.subarray(REGION2_OFFSET, REGION2_OFFSET + REGION_TABLE_SIZE));
  if (!("invalid" in r2)) return r2;
  throw corrupt(`${path}: both VHDX region tables are invalid (${r1.invalid}; ${r2.invalid})`);
}

/**
 * Writes a new current header (2.2.2): the stale copy gets sequence+1 and is flushed, then the other copy, so
 * both end up current and a torn write leaves the previous header valid.
 */
export async function updateHeader(
  file: FileHandle,
  slot: 0 | 1,
  current: Header,
  change: Partial<Header>,
): Promise<[0 | 1, Header]> {
  let h = current;
  let s = slot;
  for (let i = 0; i < 2; i++) {
    s = s === 0 ? 1 : 0;
    h = { ...h, ...change, sequence: h.sequence + 1 };
    await file.write(s === 0 ? HEADER1_OFFSET : HEADER2_OFFSET, buildHeader(h));
    await file.flush();
  }
  return [s, h];
}

/** Applies an active log sequence to the file (2.3.3), durably. */
async function replayInto(file: FileHandle, seq: ActiveSequence, size: number): Promise<void> {
  const zero = new Uint8Array(MiB);
  for (const op of seq.ops) {
    if (op.kind === "data") {
      await file.write(op.offset, op.data);
    } else {
      // Space past the end of the file already reads as zeros once the file is extended below.
      const end = Math.min(op.offset + op.length, size);
      for (let at = op.offset; at < end; at += MiB)
        await file.write(at, zero.subarray(0, Math.min(MiB, end - at)));
    }
  }
  const newSize = Math.max(await file.size(), seq.lastFileOffset);
  if (newSize > (await file.size())) await file.truncate(newSize);
  await file.flush();
}

/** A read-only view of a file with an active log sequence applied in memory (for read-only opens). */
class ReplayedFile implements FileHandle {
  readonly readOnly = true;
  private readonly sectors = new Map<number, Uint8Array>();
  private readonly zeros: Array<[number, number]> = [];
  private readonly length: number;

  constructor(
    private readonly base: FileHandle,
    seq: ActiveSequence,
    size: number,
  ) {
    for (const op of seq.ops) {
      if (op.kind === "data") this.sectors.set(op.offset, op.data);
      else {
        const end = op.offset + op.length;
        this.zeros.push([op.offset, end]);
        for (const k of [...this.sectors.keys()]) if (k >= op.offset && k < end) this.sectors.delete(k);
      }
    }
    this.length = Math.max(size, seq.lastFileOffset);
  }

  get name(): string {
    return this.base.name;
  }

  async read(position: number, dst: Uint8Array): Promise<number> {
    const n = Math.min(dst.length, Math.max(0, this.length - position));
    await readFully(this.base, position, dst.subarray(0, n));
    const end = position + n;
    for (const [a, b] of this.zeros) {
      if (a < end && position < b) dst.fill(0, Math.max(a, position) - position, Math.min(b, end) - position);
    }
    const first = position - (position % LOG_SECTOR);
    for (let s = first; s < end; s += LOG_SECTOR) {
      const data = this.sectors.get(s);
      if (!data) continue;
      const from = Math.max(s, position);
      const to = Math.min(s + LOG_SECTOR, end);
      dst.set(data.subarray(from - s, to - s), from - position);
    }
    return n;
  }
  async write(): Promise<void> {
    throw new StorageError("read-only", `${this.base.name} is open read-only`);
  }
  async flush(): Promise<void> {}
  async size(): Promise<number> {
    return this.length;
  }
  async truncate(): Promise<void> {
    throw new StorageError("read-only", `${this.base.name} is open read-only`);
  }
  close(): Promise<void> {
    return this.base.close();
  }
}

/** Tries relative_path, then absolute_win32_path (2.6.2.6.1), relative to the child; first existing wins. */
async function locateParent(opener: FileOpener, child: string, meta: Metadata): Promise<string> {
  const entries = meta.parentLocator!.entries;
  const tried: string[] = [];
  for (const key of ["relative_path", "absolute_win32_path"]) {
    const raw = entries.get(key);
    if (raw === undefined || raw.length === 0) continue;
    const p = raw.replace(/\\/g, "/");
    const resolved = opener.isAbsolute(p) ? p : opener.resolve(child, p);
    tried.push(resolved);
    if (await opener.exists(resolved)) return resolved;
  }
  throw new StorageError(
    "not-found",
    `${child}: parent not found (tried ${tried.join(", ") || "no usable locator entry"})`,
  );
}
