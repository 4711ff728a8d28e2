// Owns: VHD images (fixed, dynamic, differencing) as ImageDisks: open with validation, reads through the BAT
// and sector bitmaps (falling through to the parent), copy-on-write into a differencing child, crash-ordered
// block allocation, check/repair, resize and in-place compaction; and the "vhd" ImageFormat (probe/create).
// Must not: open parents itself (it asks OpenOptions.openParent, which src/storage/open.ts supplies, so
// chains are shared and cycle-checked in one place), or trust any on-disk number without bounding it by the
// file size.
// Spec: "Virtual Hard Disk Image Format Specification" (Microsoft, 2006): footer, dynamic header, BAT, block
// sector bitmap (bit 7 of byte 0 = first sector), parent locators (W2ru/W2ku/MacX). Interop with qemu's vpc
// driver: qemu reads allocated blocks without consulting the bitmap, so dynamic blocks are allocated with a
// full bitmap and zero-filled data.
//
// Crash ordering: data is written in place at once; a new block first gets a footer at the new end of file
// (the file always ends in a valid footer), then its data and initial bitmap, unreferenced so far. BAT entries
// and later bitmap changes are kept in memory and written by flush() only after an fdatasync has made the
// data (and those initial bitmaps) durable, then synced again. So on disk no metadata ever
// points at data that is not durable, whether the writer is killed or the host loses power; everything before
// an acknowledged flush survives (see docs/architecture.md, "Crash safety (VHD)").

import { StorageError, type FileHandle, type FileOpener } from "./disk.js";
import {
  checkRequest,
  decodeUtf16,
  encodeUtf16,
  guidText,
  isZero,
  randomGuid,
  readFull,
  relativePath,
  roundUp,
} from "./block-io.js";
import type {
  CheckReport,
  CreateOptions,
  ImageDisk,
  ImageFormat,
  ImageInfo,
  OpenOptions,
} from "./image-format.js";
import {
  buildFooter,
  buildHeader,
  DISK_DIFFERENCING,
  DISK_DYNAMIC,
  DISK_FIXED,
  effectiveSize,
  FOOTER_SIZE,
  geometry,
  HEADER_SIZE,
  MAX_CAPACITY,
  newFooter,
  parseFooter,
  parseHeader,
  PLATFORM,
  SECTOR,
  type DynamicHeader,
  type Footer,
  type Locator,
} from "./vhd-structures.js";

export const DEFAULT_BLOCK_SIZE = 2 * 1024 * 1024;
const MAX_BLOCK_SIZE = 256 * 1024 * 1024;
const MAX_LOCATOR_BYTES = 64 * 1024;

interface Region {
  start: number;
  end: number;
  what: string;
}

/** Serialises metadata-changing operations; reads run concurrently. */
class Lock {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

export class VhdDisk implements ImageDisk {
  readonly logicalSectorSize = SECTOR;
  readonly physicalSectorSize = SECTOR;
  private closed = false;
  private readonly lock = new Lock();
  private readonly bitmaps = new Map<number, Uint8Array>();
  /** Bitmaps and BAT entries changed in memory and not yet on disk (written by commit(), after the data). */
  private readonly dirtyBitmaps = new Set<number>();
  private readonly pendingBat = new Set<number>();
  private readonly spb: number; // sectors per block
  private readonly bitmapSize: number;

  constructor(
    private readonly file: FileHandle,
    private readonly path: string,
    private footer: Footer,
    /** The trailing footer was absent or invalid when opened (the copy at offset 0 was used). */
    private footerMissing: boolean,
    private headCopyOk: boolean,
    private header: DynamicHeader | null,
    private bat: Uint32Array,
    private fileSize: number,
    private nextFree: number,
    readonly parent: ImageDisk | null,
    private readonly parentPath: string | undefined,
    private _capacity: number,
  ) {
    const bs = header?.blockSize ?? 0;
    this.spb = bs / SECTOR;
    this.bitmapSize = bs ? roundUp(Math.ceil(this.spb / 8), SECTOR) : 0;
  }

  get capacity(): number {
    return this._capacity;
  }
  get readOnly(): boolean {
    return this.file.readOnly;
  }
  get identity(): string {
    return guidText(this.footer.uniqueId);
  }
  private get kind(): "fixed" | "dynamic" | "differencing" {
    return this.footer.diskType === DISK_FIXED
      ? "fixed"
      : this.footer.diskType === DISK_DYNAMIC
        ? "dynamic"
        : "differencing";
  }
  private get blockSize(): number {
    return this.header?.blockSize ?? 0;
  }
  private get blockTotal(): number {
    return this.bitmapSize + this.blockSize;
  }

  info(): ImageInfo {
    let allocated = 0;
    if (this.header) for (const e of this.usedEntries()) if (e !== undefined) allocated += this.blockTotal;
    const info: ImageInfo = {
      format: "vhd",
      kind: this.kind,
      capacity: this.capacity,
      logicalSectorSize: SECTOR,
      physicalSectorSize: SECTOR,
      blockSize: this.blockSize,
      allocatedBytes: this.header ? allocated : this.capacity,
      fileSize: this.fileSize,
      identity: this.identity,
    };
    if (this.header && this.kind === "differencing") {
      info.parentIdentity = guidText(this.header.parentUniqueId);
      if (this.parentPath !== undefined) info.parentPath = this.parentPath;
    }
    return info;
  }

  /** BAT entries of blocks inside the capacity (undefined = unallocated). */
  private *usedEntries(): Generator<number | undefined> {
    const blocks = this.blockCount();
    for (let i = 0; i < blocks; i++) {
      const e = this.bat[i]!;
      yield e === 0xffffffff ? undefined : e;
    }
  }

  private blockCount(): number {
    return this.blockSize ? Math.ceil(this.capacity / this.blockSize) : 0;
  }

  private live(): void {
    if (this.closed) throw new StorageError("closed", `${this.path} is closed`);
  }

  async read(lba: number, dst: Uint8Array): Promise<void> {
    this.live();
    const offset = checkRequest(this.path, this.capacity, SECTOR, lba, dst.length);
    if (!this.header) return readFull(this.file, offset, dst);
    let done = 0;
    while (done < dst.length) {
      const sector = lba + done / SECTOR;
      const block = Math.floor(sector / this.spb);
      const inBlock = sector % this.spb;
      const n = Math.min(this.spb - inBlock, (dst.length - done) / SECTOR);
      const sub = dst.subarray(done, done + n * SECTOR);
      const e = this.bat[block]!;
      if (e === 0xffffffff) {
        await this.readBelow(sector, sub);
      } else if (!this.parent) {
        await readFull(this.file, e * SECTOR + this.bitmapSize + inBlock * SECTOR, sub);
      } else {
        const bitmap = await this.bitmap(block);
        let i = 0;
        while (i < n) {
          const present = bitSet(bitmap, inBlock + i);
          let j = i + 1;
          while (j < n && bitSet(bitmap, inBlock + j) === present) j++;
          const run = sub.subarray(i * SECTOR, j * SECTOR);
          if (present) await readFull(this.file, e * SECTOR + this.bitmapSize + (inBlock + i) * SECTOR, run);
          else await this.readBelow(sector + i, run);
          i = j;
        }
      }
      done += n * SECTOR;
    }
  }

  /** Reads what lies beneath this layer: the parent within its capacity, zeros beyond it or without one. */
  private async readBelow(sector: number, dst: Uint8Array): Promise<void> {
    const p = this.parent;
    if (!p) return void dst.fill(0);
    const start = sector * SECTOR;
    const inParent = Math.max(0, Math.min(dst.length, p.capacity - start));
    if (inParent > 0) await p.read(sector, dst.subarray(0, inParent));
    dst.fill(0, inParent);
  }

  private async bitmap(block: number): Promise<Uint8Array> {
    let b = this.bitmaps.get(block);
    if (!b) {
      b = new Uint8Array(this.bitmapSize);
      await readFull(this.file, this.bat[block]! * SECTOR, b);
      this.bitmaps.set(block, b);
    }
    return b;
  }

  async write(lba: number, src: Uint8Array): Promise<void> {
    this.live();
    if (this.readOnly) throw new StorageError("read-only", `${this.path} is open read-only`);
    const offset = checkRequest(this.path, this.capacity, SECTOR, lba, src.length);
    if (!this.header) return this.file.write(offset, src);
    await this.lock.run(async () => {
      let done = 0;
      while (done < src.length) {
        const sector = lba + done / SECTOR;
        const block = Math.floor(sector / this.spb);
        const inBlock = sector % this.spb;
        const n = Math.min(this.spb - inBlock, (src.length - done) / SECTOR);
        await this.writeInBlock(block, inBlock, n, src.subarray(done, done + n * SECTOR));
        done += n * SECTOR;
      }
    });
  }

  private async writeInBlock(block: number, inBlock: number, n: number, data: Uint8Array): Promise<void> {
    const e = this.bat[block]!;
    const differencing = this.parent !== null;
    if (e === 0xffffffff) {
      const pos = this.nextFree;
      const end = pos + this.blockTotal;
      // The file keeps ending in a valid footer; the block's bitmap will later cover the old footer's place.
      await this.file.write(end, buildFooter(this.footer));
      this.nextFree = end;
      this.fileSize = Math.max(this.fileSize, end + FOOTER_SIZE);
      this.footerMissing = false;
      await this.file.write(pos + this.bitmapSize + inBlock * SECTOR, data);
      // Dynamic: every sector is present (zeros where unwritten); differencing: only what was written.
      const bitmap = new Uint8Array(this.bitmapSize).fill(differencing ? 0 : 0xff);
      if (differencing) setBits(bitmap, inBlock, n);
      // The bitmap goes out now: nothing references it until the BAT entry, which commit() writes only after
      // syncing it together with the data; later bit changes are written after that sync.
      await this.file.write(pos, bitmap);
      this.bitmaps.set(block, bitmap);
      this.bat[block] = pos / SECTOR;
      this.pendingBat.add(block);
      return;
    }
    await this.file.write(e * SECTOR + this.bitmapSize + inBlock * SECTOR, data);
    if (differencing) {
      const bitmap = await this.bitmap(block);
      if (!allSet(bitmap, inBlock, n)) {
        setBits(bitmap, inBlock, n);
        this.dirtyBitmaps.add(block);
      }
    }
  }

  /**
   * Makes everything written so far durable, metadata last: data (and the footer at the end) are synced
   * first, then the sector bitmaps and BAT entries that point at them are written and synced. A crash at
   * any moment thus leaves on disk only metadata whose data is already durable.
   */
  private async commit(): Promise<void> {
    if (this.readOnly) return;
    await this.file.flush();
    if (this.dirtyBitmaps.size === 0 && this.pendingBat.size === 0) return;
    for (const block of [...this.dirtyBitmaps].sort((x, y) => x - y)) {
      await this.file.write(this.bat[block]! * SECTOR, this.bitmaps.get(block)!);
    }
    this.dirtyBitmaps.clear();
    const sectors = new Set([...this.pendingBat].map((b) => Math.floor((b * 4) / SECTOR)));
    for (const sector of [...sectors].sort((x, y) => x - y)) {
      const first = (sector * SECTOR) / 4;
      const count = Math.min(SECTOR / 4, this.bat.length - first);
      const bytes = new Uint8Array(count * 4);
      const dv = new DataView(bytes.buffer);
      for (let i = 0; i < count; i++) dv.setUint32(i * 4, this.bat[first + i]!);
      await this.file.write(this.header!.tableOffset + sector * SECTOR, bytes);
    }
    this.pendingBat.clear();
    await this.file.flush();
  }

  private async writeBatEntry(block: number, value: number): Promise<void> {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value);
    await this.file.write(this.header!.tableOffset + block * 4, b);
    this.bat[block] = value;
  }

  async flush(): Promise<void> {
    this.live();
    await this.lock.run(() => this.commit());
  }

  /** Whole unshared blocks of a dynamic image are released (their reads become zeros); otherwise a no-op. */
  async trim(lba: number, sectorCount: number): Promise<void> {
    this.live();
    checkRequest(this.path, this.capacity, SECTOR, lba, sectorCount * SECTOR);
    if (this.readOnly) throw new StorageError("read-only", `${this.path} is open read-only`);
    if (!this.header || this.parent) return;
    await this.lock.run(async () => {
      await this.commit();
      const first = Math.ceil(lba / this.spb);
      const end = Math.floor((lba + sectorCount) / this.spb);
      for (let b = first; b < end; b++) {
        if (this.bat[b] !== 0xffffffff) {
          await this.writeBatEntry(b, 0xffffffff);
          this.bitmaps.delete(b);
        }
      }
    });
  }

  async isAllocated(lba: number, sectorCount: number): Promise<boolean> {
    this.live();
    checkRequest(this.path, this.capacity, SECTOR, lba, sectorCount * SECTOR);
    if (!this.header) return true;
    let s = lba;
    const end = lba + sectorCount;
    while (s < end) {
      const block = Math.floor(s / this.spb);
      const inBlock = s % this.spb;
      const n = Math.min(this.spb - inBlock, end - s);
      if (this.bat[block] !== 0xffffffff) {
        if (!this.parent) return true;
        const bitmap = await this.bitmap(block);
        for (let i = 0; i < n; i++) if (bitSet(bitmap, inBlock + i)) return true;
      }
      s += n;
    }
    return false;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.lock.run(() => this.commit());
    } finally {
      try {
        await this.file.close();
      } finally {
        await this.parent?.close();
      }
    }
  }

  /** Regions of the file that hold metadata (never block data). */
  private metadataRegions(): Region[] {
    const r: Region[] = [{ start: 0, end: FOOTER_SIZE, what: "footer copy" }];
    const h = this.header;
    if (!h) return r;
    r.push({
      start: this.footer.dataOffset,
      end: this.footer.dataOffset + HEADER_SIZE,
      what: "dynamic header",
    });
    r.push({
      start: h.tableOffset,
      end: h.tableOffset + roundUp(h.maxTableEntries * 4, SECTOR),
      what: "BAT",
    });
    h.locators.forEach((l, i) => {
      if (l.code !== PLATFORM.none && l.dataLength > 0) {
        r.push({
          start: l.dataOffset,
          end: l.dataOffset + roundUp(l.dataLength, SECTOR),
          what: `locator ${i}`,
        });
      }
    });
    return r;
  }

  private blockRegions(): Array<Region & { block: number }> {
    const out: Array<Region & { block: number }> = [];
    const blocks = this.blockCount();
    for (let i = 0; i < blocks; i++) {
      const e = this.bat[i]!;
      if (e !== 0xffffffff) {
        out.push({ start: e * SECTOR, end: e * SECTOR + this.blockTotal, what: `block ${i}`, block: i });
      }
    }
    return out;
  }

  private endOfData(): number {
    let end = 0;
    for (const r of [...this.metadataRegions(), ...this.blockRegions()]) end = Math.max(end, r.end);
    return roundUp(end, SECTOR);
  }

  async check(repair: boolean): Promise<CheckReport> {
    this.live();
    if (repair && this.readOnly) throw new StorageError("read-only", `${this.path}: repair needs read-write`);
    return this.lock.run(async () => {
      await this.commit();
      const problems: string[] = [];
      const repaired: string[] = [];
      const size = await this.file.size();
      if (!this.header) {
        if (size < this.capacity + FOOTER_SIZE) problems.push(`file is shorter than capacity plus footer`);
        return { problems, repaired };
      }
      const end = this.endOfData();
      const regions = [...this.metadataRegions(), ...this.blockRegions()].sort((a, b) => a.start - b.start);
      for (let i = 1; i < regions.length; i++) {
        const a = regions[i - 1]!;
        const b = regions[i]!;
        if (b.start < a.end)
          problems.push(`${b.what} at byte ${b.start} overlaps ${a.what} (ends at ${a.end})`);
      }
      for (const r of regions) if (r.start % SECTOR !== 0) problems.push(`${r.what} is not sector-aligned`);
      const trailingBad = this.footerMissing || size < end + FOOTER_SIZE;
      if (trailingBad) {
        problems.push(
          size < end + FOOTER_SIZE
            ? `the file ends (byte ${size}) before the last block plus footer (byte ${end + FOOTER_SIZE})`
            : `the trailing footer is missing or invalid (the copy at offset 0 was used)`,
        );
        if (repair) {
          await this.file.write(end, buildFooter(this.footer));
          await this.file.truncate(end + FOOTER_SIZE);
          this.nextFree = end;
          this.fileSize = end + FOOTER_SIZE;
          this.footerMissing = false;
          repaired.push(`wrote the footer at byte ${end}`);
        }
      }
      if (!this.headCopyOk) {
        problems.push(`the footer copy at offset 0 is missing, invalid or differs from the trailing footer`);
        if (repair) {
          await this.file.write(0, buildFooter(this.footer));
          this.headCopyOk = true;
          repaired.push(`rewrote the footer copy at offset 0`);
        }
      }
      if (repair && repaired.length) await this.file.flush();
      return { problems, repaired };
    });
  }

  async resize(newCapacity: number, force: boolean): Promise<void> {
    this.live();
    if (this.readOnly) throw new StorageError("read-only", `${this.path} is open read-only`);
    if (!Number.isSafeInteger(newCapacity) || newCapacity <= 0 || newCapacity % SECTOR !== 0) {
      throw new StorageError("invalid-argument", `new size ${newCapacity} is not a positive multiple of 512`);
    }
    if (newCapacity > MAX_CAPACITY) {
      throw new StorageError("invalid-argument", `VHD images are limited to 2040 GiB`);
    }
    const old = this.capacity;
    if (
      newCapacity < old &&
      !force &&
      (await this.isAllocated(newCapacity / SECTOR, (old - newCapacity) / SECTOR))
    ) {
      throw new StorageError(
        "invalid-argument",
        `${this.path}: data is allocated beyond ${newCapacity} bytes; shrinking would lose it (use force)`,
      );
    }
    await this.lock.run(async () => {
      await this.commit();
      const footer = {
        ...this.footer,
        ...geometry(newCapacity),
        currentSize: newCapacity,
        creatorApp: "win ",
      };
      if (!this.header) {
        // Fixed: the footer moves; the old footer's bytes become data and must read as zeros.
        await this.file.write(newCapacity, buildFooter(footer));
        if (newCapacity > old)
          await this.file.write(old, new Uint8Array(Math.min(FOOTER_SIZE, newCapacity - old)));
        await this.file.flush();
        await this.file.truncate(newCapacity + FOOTER_SIZE);
        this.footer = footer;
        this._capacity = newCapacity;
        this.fileSize = newCapacity + FOOTER_SIZE;
        await this.file.flush();
        return;
      }
      const h = this.header;
      const blocks = Math.ceil(newCapacity / this.blockSize);
      if (newCapacity < old) {
        for (let b = blocks; b < this.blockCount(); b++) {
          if (this.bat[b] !== 0xffffffff) await this.writeBatEntry(b, 0xffffffff);
          this.bitmaps.delete(b);
        }
        // A block straddling the new end keeps no data beyond it, so a later grow reads zeros there.
        const tail = newCapacity % this.blockSize;
        const lastBlock = blocks - 1;
        if (tail && this.bat[lastBlock] !== 0xffffffff) {
          const e = this.bat[lastBlock]!;
          if (this.parent) {
            const bitmap = await this.bitmap(lastBlock);
            for (let s = tail / SECTOR; s < this.spb; s++) bitmap[s >> 3]! &= ~(0x80 >> (s & 7));
            await this.file.write(e * SECTOR, bitmap);
          } else {
            await this.file.write(e * SECTOR + this.bitmapSize + tail, new Uint8Array(this.blockSize - tail));
          }
        }
        await this.file.flush();
      } else if (blocks > h.maxTableEntries) {
        await this.growTable(blocks);
      }
      this._capacity = newCapacity;
      this.footer = footer;
      await this.file.write(this.nextFree, buildFooter(footer));
      await this.file.flush();
      await this.file.write(0, buildFooter(footer));
      await this.file.flush();
    });
  }

  /** Enlarges the BAT in place, first moving any block or locator data that lies where it must grow. */
  private async growTable(entries: number): Promise<void> {
    const h = this.header!;
    const start = h.tableOffset;
    const newEnd = start + roundUp(entries * 4, SECTOR);
    for (const r of this.metadataRegions()) {
      if (r.what === "BAT" || r.end <= start || r.start >= newEnd) continue;
      if (!r.what.startsWith("locator")) {
        throw new StorageError("unsupported", `${this.path}: the ${r.what} lies where the BAT must grow`);
      }
    }
    if (this.nextFree < newEnd) this.nextFree = newEnd;
    for (const r of this.blockRegions()) {
      if (r.end <= start || r.start >= newEnd) continue;
      await this.moveBlocks([{ block: r.block, to: await this.reserve(this.blockTotal) }]);
    }
    const locators = h.locators.map((l) => ({ ...l }));
    let moved = false;
    for (const l of locators) {
      if (l.code === PLATFORM.none || l.dataLength === 0) continue;
      const lEnd = l.dataOffset + roundUp(l.dataLength, SECTOR);
      if (lEnd <= start || l.dataOffset >= newEnd) continue;
      const data = new Uint8Array(roundUp(l.dataLength, SECTOR));
      await readFull(this.file, l.dataOffset, data);
      const to = await this.reserve(data.length);
      await this.file.write(to, data);
      l.dataOffset = to;
      moved = true;
    }
    if (moved) {
      await this.file.flush();
      this.header = { ...h, locators };
      await this.file.write(this.footer.dataOffset, buildHeader(this.header));
      await this.file.flush();
    }
    const grown = new Uint32Array(entries).fill(0xffffffff);
    grown.set(this.bat.subarray(0, Math.min(this.bat.length, entries)));
    const bytes = new Uint8Array(newEnd - start).fill(0xff);
    const dv = new DataView(bytes.buffer);
    for (let i = 0; i < entries; i++) dv.setUint32(i * 4, grown[i]!);
    await this.file.write(start, bytes);
    await this.file.flush();
    this.header = { ...this.header!, maxTableEntries: entries };
    await this.file.write(this.footer.dataOffset, buildHeader(this.header));
    await this.file.flush();
    this.bat = grown;
  }

  /** Claims `bytes` at the end of the data area, keeping a valid footer at the end of the file. */
  private async reserve(bytes: number): Promise<number> {
    const pos = this.nextFree;
    this.nextFree = pos + roundUp(bytes, SECTOR);
    await this.file.write(this.nextFree, buildFooter(this.footer));
    this.fileSize = Math.max(this.fileSize, this.nextFree + FOOTER_SIZE);
    return pos;
  }

  /** Copies blocks to free places, makes the copies durable, then repoints the BAT (old copies stay valid). */
  private async moveBlocks(moves: Array<{ block: number; to: number }>): Promise<void> {
    const buf = new Uint8Array(this.blockTotal);
    for (const m of moves) {
      await readFull(this.file, this.bat[m.block]! * SECTOR, buf);
      await this.file.write(m.to, buf);
    }
    await this.file.flush();
    for (const m of moves) await this.writeBatEntry(m.block, m.to / SECTOR);
    await this.file.flush();
  }

  async compact(onProgress?: (fraction: number) => void): Promise<{ before: number; after: number }> {
    this.live();
    if (this.readOnly) throw new StorageError("read-only", `${this.path} is open read-only`);
    return this.lock.run(async () => {
      await this.commit();
      const before = await this.file.size();
      if (!this.header) return { before, after: before };
      // 1. Release blocks that hold nothing: all-zero data (dynamic) or an empty bitmap (differencing; a
      // zero sector there still hides the parent's data, so it stays).
      const blocks = this.blockCount();
      const buf = new Uint8Array(this.blockSize);
      for (let b = 0; b < blocks; b++) {
        const e = this.bat[b]!;
        if (e === 0xffffffff) continue;
        let empty: boolean;
        if (this.parent) empty = isZero(await this.bitmap(b));
        else {
          await readFull(this.file, e * SECTOR + this.bitmapSize, buf);
          empty = isZero(buf);
        }
        if (empty) {
          await this.writeBatEntry(b, 0xffffffff);
          this.bitmaps.delete(b);
        }
        onProgress?.((b + 1) / blocks / 2);
      }
      await this.file.flush();
      // 2. Move the highest blocks into the lowest gaps; a moved block's old place is above every remaining
      // block, so the gaps never need recomputing.
      const fixed = this.metadataRegions().sort((a, b) => a.start - b.start);
      const live = this.blockRegions().sort((a, b) => a.start - b.start);
      const occupied = [...fixed, ...live].sort((a, b) => a.start - b.start);
      const gaps: Array<{ start: number; end: number }> = [];
      let cursor = 0;
      for (const r of occupied) {
        const s = roundUp(cursor, SECTOR);
        if (r.start > s) gaps.push({ start: s, end: r.start });
        cursor = Math.max(cursor, r.end);
      }
      const total = this.blockTotal;
      const moves: Array<{ block: number; to: number }> = [];
      let g = 0;
      for (let i = live.length - 1; i >= 0; i--) {
        const h = live[i]!;
        while (g < gaps.length && gaps[g]!.end - gaps[g]!.start < total) g++;
        const gap = gaps[g];
        if (!gap || gap.start + total > h.start) break;
        moves.push({ block: h.block, to: gap.start });
        gap.start += total;
        if (moves.length === 16) {
          await this.moveBlocks(moves.splice(0));
          onProgress?.(0.5 + (0.5 * (live.length - i)) / live.length);
        }
      }
      if (moves.length) await this.moveBlocks(moves);
      // 3. The footer goes right after the last used byte, then the tail is cut.
      const end = this.endOfData();
      await this.file.write(end, buildFooter(this.footer));
      await this.file.flush();
      await this.file.truncate(end + FOOTER_SIZE);
      await this.file.flush();
      this.nextFree = end;
      this.fileSize = end + FOOTER_SIZE;
      onProgress?.(1);
      return { before, after: this.fileSize };
    });
  }
}

function bitSet(bitmap: Uint8Array, i: number): boolean {
  return ((bitmap[i >> 3] ?? 0) & (0x80 >> (i & 7))) !== 0;
}

function setBits(bitmap: Uint8Array, from: number, n: number): void {
  for (let i = from; i < from + n; i++) bitmap[i >> 3]! |= 0x80 >> (i & 7);
}

function allSet(bitmap: Uint8Array, from: number, n: number): boolean {
  for (let i = from; i < from + n; i++) if (!bitSet(bitmap, i)) return false;
  return true;
}

/** The parent paths a child's locators name, relative ones first (the order Windows tries them). */
async function parentCandidates(
  file: FileHandle,
  fileSize: number,
  opener: FileOpener,
  childPath: string,
  h: DynamicHeader,
): Promise<string[]> {
  const relative: string[] = [];
  const absolute: string[] = [];
  for (const l of h.locators) {
    if (l.code === PLATFORM.none || l.dataLength === 0) continue;
    if (l.dataLength > MAX_LOCATOR_BYTES || l.dataOffset < 0 || l.dataOffset + l.dataLength > fileSize)
      continue;
    const raw = new Uint8Array(l.dataLength);
    await readFull(file, l.dataOffset, raw);
    if (l.code === PLATFORM.W2ru || l.code === PLATFORM.W2ku) {
      const p = decodeUtf16(raw, false).replace(/\\/g, "/");
      if (!p) continue;
      if (l.code === PLATFORM.W2ru) relative.push(opener.resolve(childPath, p));
      else if (opener.isAbsolute(p)) absolute.push(p);
    } else if (l.code === PLATFORM.MacX) {
      const text = new TextDecoder("utf-8", { fatal: false }).decode(raw).replace(/\0.*$/s, "");
      let p = text.startsWith("file://") ? text.slice(7) : text;
      try {
        p = decodeURI(p);
      } catch {
        continue;
      }
      if (p && opener.isAbsolute(p)) absolute.push(p);
    }
  }
  const name = decodeUtf16(h.parentName, true).replace(/\\/g, "/");
  if (name) (opener.isAbsolute(name) ? absolute : relative).push(opener.resolve(childPath, name));
  return [...new Set([...relative, ...absolute])];
}

async function openVhd(opener: FileOpener, path: string, options: OpenOptions): Promise<VhdDisk> {
  const file = await opener.open(path, options.readOnly ? "read" : "read-write");
  let parent: ImageDisk | null = null;
  try {
    const size = await file.size();
    if (size < FOOTER_SIZE) throw new StorageError("corrupt", `${path}: too small to be a VHD`);
    const tailBytes = new Uint8Array(FOOTER_SIZE);
    const headBytes = new Uint8Array(FOOTER_SIZE);
    await readFull(file, size - FOOTER_SIZE, tailBytes);
    await readFull(file, 0, headBytes);
    const tail = parseFooter(tailBytes);
    const head = parseFooter(headBytes);
    const headValid = head !== null && head.checksumOk && head.footer.diskType !== DISK_FIXED;
    let footer: Footer;
    let footerMissing = false;
    if (tail?.checksumOk) footer = tail.footer;
    else if (headValid) {
      footer = head.footer;
      footerMissing = true;
    } else if (tail || head) {
      throw new StorageError("corrupt", `${path}: the VHD footer checksum is wrong`);
    } else throw new StorageError("corrupt", `${path}: no VHD footer ("conectix") found`);
    if (footer.version >>> 16 !== 1) {
      throw new StorageError(
        "unsupported",
        `${path}: VHD version ${(footer.version >>> 16).toString()} is not 1`,
      );
    }
    const capacity = effectiveSize(footer);
    if (capacity % SECTOR !== 0 || capacity > MAX_CAPACITY) {
      throw new StorageError(
        "corrupt",
        `${path}: VHD size ${capacity} is not a multiple of 512 up to 2040 GiB`,
      );
    }
    if (footer.savedState && !options.readOnly) {
      throw new StorageError("unsupported", `${path}: the VHD is in a saved state; open it read-only`);
    }
    const headCopyOk = headValid && buildFooter(head.footer).every((b, i) => b === buildFooter(footer)[i]);
    if (footer.diskType === DISK_FIXED) {
      if (capacity > size - FOOTER_SIZE) {
        throw new StorageError("corrupt", `${path}: fixed VHD of ${capacity} bytes is longer than its file`);
      }
      return new VhdDisk(
        file,
        path,
        footer,
        false,
        true,
        null,
        new Uint32Array(0),
        size,
        size,
        null,
        undefined,
        capacity,
      );
    }
    if (footer.diskType !== DISK_DYNAMIC && footer.diskType !== DISK_DIFFERENCING) {
      throw new StorageError(
        "unsupported",
        `${path}: VHD disk type ${footer.diskType} is not fixed/dynamic/differencing`,
      );
    }
    if (footer.dataOffset < 0 || footer.dataOffset + HEADER_SIZE > size) {
      throw new StorageError(
        "corrupt",
        `${path}: dynamic header offset ${footer.dataOffset} is outside the file`,
      );
    }
    const hb = new Uint8Array(HEADER_SIZE);
    await readFull(file, footer.dataOffset, hb);
    const parsed = parseHeader(hb);
    if (!parsed) throw new StorageError("corrupt", `${path}: no dynamic disk header ("cxsparse")`);
    if (!parsed.checksumOk)
      throw new StorageError("corrupt", `${path}: the dynamic header checksum is wrong`);
    const h = parsed.header;
    const bs = h.blockSize;
    if (bs < SECTOR || bs > MAX_BLOCK_SIZE || (bs & (bs - 1)) !== 0) {
      throw new StorageError(
        "corrupt",
        `${path}: block size ${bs} is not a power of two from 512 to 256 MiB`,
      );
    }
    const blocks = Math.ceil(capacity / bs);
    if (h.maxTableEntries < blocks) {
      throw new StorageError(
        "corrupt",
        `${path}: BAT of ${h.maxTableEntries} entries cannot map ${blocks} blocks`,
      );
    }
    const batBytes = h.maxTableEntries * 4;
    if (h.tableOffset < 0 || h.tableOffset + batBytes > size) {
      throw new StorageError(
        "corrupt",
        `${path}: the BAT (${batBytes} bytes at ${h.tableOffset}) is outside the file`,
      );
    }
    const raw = new Uint8Array(batBytes);
    await readFull(file, h.tableOffset, raw);
    const dv = new DataView(raw.buffer);
    const bat = new Uint32Array(h.maxTableEntries);
    const bitmapSize = roundUp(Math.ceil(bs / SECTOR / 8), SECTOR);
    let end = Math.max(footer.dataOffset + HEADER_SIZE, h.tableOffset + roundUp(batBytes, SECTOR));
    for (let i = 0; i < h.maxTableEntries; i++) {
      const e = dv.getUint32(i * 4);
      bat[i] = e;
      if (e !== 0xffffffff && i < blocks) end = Math.max(end, e * SECTOR + bitmapSize + bs);
    }
    for (const l of h.locators) {
      if (l.code !== PLATFORM.none && l.dataLength > 0 && l.dataOffset >= 0) {
        end = Math.max(end, l.dataOffset + roundUp(l.dataLength, SECTOR));
      }
    }
    const nextFree = roundUp(Math.max(end, footerMissing ? size : size - FOOTER_SIZE), SECTOR);
    let parentPath: string | undefined;
    if (footer.diskType === DISK_DIFFERENCING) {
      if (!options.openParent) {
        throw new StorageError(
          "unsupported",
          `${path}: differencing images must be opened through openImage`,
        );
      }
      const candidates = await parentCandidates(file, size, opener, path, h);
      parent = await options.openParent({
        child: path,
        candidates,
        expectedIdentity: guidText(h.parentUniqueId),
      });
      if (parent.logicalSectorSize !== SECTOR) {
        throw new StorageError("unsupported", `${path}: parent has ${parent.logicalSectorSize}-byte sectors`);
      }
      parentPath = parent.location;
    }
    return new VhdDisk(
      file,
      path,
      footer,
      footerMissing,
      headCopyOk,
      h,
      bat,
      size,
      nextFree,
      parent,
      parentPath,
      capacity,
    );
  } catch (e) {
    await parent?.close().catch(() => undefined);
    await file.close().catch(() => undefined);
    throw e;
  }
}

async function createVhd(opener: FileOpener, path: string, o: CreateOptions): Promise<void> {
  if ((o.logicalSectorSize ?? 512) !== 512 || (o.physicalSectorSize ?? 512) !== 512) {
    throw new StorageError("unsupported", `VHD images have 512-byte sectors only`);
  }
  const now = Date.now();
  let capacity = o.capacity ?? 0;
  let parentId: Uint8Array | null = null;
  let parentTime = 0;
  let parentAbs = "";
  if (o.kind === "differencing") {
    if (!o.parentPath) throw new StorageError("invalid-argument", `a differencing image needs a parent`);
    parentAbs = opener.isAbsolute(o.parentPath) ? o.parentPath : opener.resolve(path, o.parentPath);
    const pf = await opener.open(parentAbs, "read");
    try {
      const psize = await pf.size();
      const tb = new Uint8Array(FOOTER_SIZE);
      await readFull(pf, Math.max(0, psize - FOOTER_SIZE), tb);
      let p = parseFooter(tb);
      if (!p?.checksumOk) {
        await readFull(pf, 0, tb);
        p = parseFooter(tb);
      }
      if (!p?.checksumOk) throw new StorageError("corrupt", `${parentAbs}: the parent is not a valid VHD`);
      capacity = effectiveSize(p.footer);
      parentId = p.footer.uniqueId;
      parentTime = p.footer.timestamp;
    } finally {
      await pf.close();
    }
  }
  if (
    !Number.isSafeInteger(capacity) ||
    capacity <= 0 ||
    capacity % SECTOR !== 0 ||
    capacity > MAX_CAPACITY
  ) {
    throw new StorageError(
      "invalid-argument",
      `VHD size ${capacity} must be a positive multiple of 512 up to 2040 GiB`,
    );
  }
  const bs = o.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (o.kind !== "fixed" && (bs < SECTOR || bs > MAX_BLOCK_SIZE || (bs & (bs - 1)) !== 0)) {
    throw new StorageError("invalid-argument", `block size ${bs} must be a power of two from 512 to 256 MiB`);
  }
  const type = o.kind === "fixed" ? DISK_FIXED : o.kind === "dynamic" ? DISK_DYNAMIC : DISK_DIFFERENCING;
  const footer = newFooter(type, capacity, randomGuid(), now);
  const fb = buildFooter(footer);
  const file = await opener.create(path);
  try {
    if (type === DISK_FIXED) {
      // Sparse: the data area is a hole that reads as zeros.
      await file.write(capacity, fb);
      o.onProgress?.(1);
      await file.flush();
      return;
    }
    const entries = Math.ceil(capacity / bs);
    const tableOffset = FOOTER_SIZE + HEADER_SIZE;
    let cursor = tableOffset + roundUp(entries * 4, SECTOR);
    const locators: Locator[] = [];
    const locatorData: Array<{ at: number; bytes: Uint8Array }> = [];
    let parentName = new Uint8Array(512);
    if (parentId) {
      const add = (code: number, bytes: Uint8Array): void => {
        const space = roundUp(Math.max(bytes.length, 1), SECTOR);
        locators.push({ code, dataSpace: space / SECTOR, dataLength: bytes.length, dataOffset: cursor });
        locatorData.push({ at: cursor, bytes });
        cursor += space;
      };
      const bothAbsolute = opener.isAbsolute(path) && opener.isAbsolute(parentAbs);
      if (bothAbsolute || (!opener.isAbsolute(path) && !opener.isAbsolute(parentAbs))) {
        const rel = relativePath(path, parentAbs);
        add(PLATFORM.W2ru, encodeUtf16(rel.replace(/\//g, "\\"), false));
      }
      add(PLATFORM.W2ku, encodeUtf16(parentAbs, false));
      add(PLATFORM.MacX, new TextEncoder().encode("file://" + encodeURI(parentAbs)));
      const name = encodeUtf16(parentAbs.slice(0, 255), true);
      parentName = new Uint8Array(512);
      parentName.set(name.subarray(0, 510));
    }
    while (locators.length < 8) locators.push({ code: 0, dataSpace: 0, dataLength: 0, dataOffset: 0 });
    const header: DynamicHeader = {
      tableOffset,
      version: 0x00010000,
      maxTableEntries: entries,
      blockSize: bs,
      parentUniqueId: parentId ?? new Uint8Array(16),
      parentTimestamp: parentTime,
      parentName,
      locators,
    };
    await file.write(0, fb);
    await file.write(FOOTER_SIZE, buildHeader(header));
    await file.write(tableOffset, new Uint8Array(roundUp(entries * 4, SECTOR)).fill(0xff));
    for (const l of locatorData) await file.write(l.at, l.bytes);
    await file.write(cursor, fb);
    await file.flush();
    o.onProgress?.(1);
  } finally {
    await file.close();
  }
}

export const vhdFormat: ImageFormat = {
  name: "vhd",
  async probe(file: FileHandle): Promise<boolean> {
    const size = await file.size();
    if (size < FOOTER_SIZE) return false;
    const b = new Uint8Array(8);
    for (const at of [size - FOOTER_SIZE, 0]) {
      await readFull(file, at, b);
      if (String.fromCharCode(...b) === "conectix") return true;
    }
    return false;
  },
  create: createVhd,
  open: openVhd,
};
