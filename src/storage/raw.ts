// Owns: raw disk images (a file whose bytes are the disk): capacity is the file size, fixed creation makes a
// sparse file of the requested size.
// Must not: guess at formats (probing other formats first is open.ts's job; raw is the fallback), or grow the
// file on writes beyond the capacity.
// Spec: none beyond the Disk contract (./disk.ts); 512-byte sectors.

import { StorageError, type FileHandle, type FileOpener } from "./disk.js";
import { checkRequest, isZero, readFull } from "./block-io.js";
import type {
  CheckReport,
  CreateOptions,
  ImageDisk,
  ImageFormat,
  ImageInfo,
  OpenOptions,
} from "./image-format.js";

const SECTOR = 512;

export class RawDisk implements ImageDisk {
  readonly logicalSectorSize = SECTOR;
  readonly physicalSectorSize = SECTOR;
  readonly parent = null;
  private closed = false;

  constructor(
    private readonly file: FileHandle,
    private readonly path: string,
    private _capacity: number,
    private fileSize: number,
  ) {}

  get capacity(): number {
    return this._capacity;
  }
  get readOnly(): boolean {
    return this.file.readOnly;
  }
  /** Raw files carry no identity; the path stands in (raw images cannot be differencing parents). */
  get identity(): string {
    return `raw:${this.path}`;
  }

  info(): ImageInfo {
    return {
      format: "raw",
      kind: "fixed",
      capacity: this.capacity,
      logicalSectorSize: SECTOR,
      physicalSectorSize: SECTOR,
      blockSize: 0,
      allocatedBytes: this.capacity,
      fileSize: this.fileSize,
      identity: this.identity,
    };
  }

  private live(): void {
    if (this.closed) throw new StorageError("closed", `${this.path} is closed`);
  }

  async read(lba: number, dst: Uint8Array): Promise<void> {
    this.live();
    await readFull(this.file, checkRequest(this.path, this.capacity, SECTOR, lba, dst.length), dst);
  }

  async write(lba: number, src: Uint8Array): Promise<void> {
    this.live();
    if (this.readOnly) throw new StorageError("read-only", `${this.path} is open read-only`);
    await this.file.write(checkRequest(this.path, this.capacity, SECTOR, lba, src.length), src);
  }

  async flush(): Promise<void> {
    this.live();
    await this.file.flush();
  }

  /** Raw files have no allocation map; trimmed sectors keep their contents (allowed by the contract). */
  async trim(lba: number, sectorCount: number): Promise<void> {
    this.live();
    checkRequest(this.path, this.capacity, SECTOR, lba, sectorCount * SECTOR);
  }

  async isAllocated(lba: number, sectorCount: number): Promise<boolean> {
    this.live();
    checkRequest(this.path, this.capacity, SECTOR, lba, sectorCount * SECTOR);
    return true;
  }

  async check(_repair: boolean): Promise<CheckReport> {
    this.live();
    const problems: string[] = [];
    if (this.fileSize % SECTOR !== 0) {
      problems.push(
        `the file size ${this.fileSize} is not a multiple of 512; the last partial sector is ignored`,
      );
    }
    return { problems, repaired: [] };
  }

  async resize(newCapacity: number, force: boolean): Promise<void> {
    this.live();
    if (this.readOnly) throw new StorageError("read-only", `${this.path} is open read-only`);
    if (!Number.isSafeInteger(newCapacity) || newCapacity <= 0 || newCapacity % SECTOR !== 0) {
      throw new StorageError("invalid-argument", `new size ${newCapacity} is not a positive multiple of 512`);
    }
    if (newCapacity < this.capacity && !force) {
      // Every sector of a raw image is allocated; only all-zero tails may go without force.
      const buf = new Uint8Array(1024 * 1024);
      for (let at = newCapacity; at < this.capacity; at += buf.length) {
        const chunk = buf.subarray(0, Math.min(buf.length, this.capacity - at));
        await readFull(this.file, at, chunk);
        if (!isZero(chunk)) {
          throw new StorageError(
            "invalid-argument",
            `${this.path}: data beyond ${newCapacity} bytes would be lost (use force)`,
          );
        }
      }
    }
    await this.file.truncate(newCapacity);
    await this.file.flush();
    this._capacity = newCapacity;
    this.fileSize = newCapacity;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.file.close();
  }
}

export const rawFormat: ImageFormat = {
  name: "raw",
  async probe(): Promise<boolean> {
    return true;
  },
  async create(opener: FileOpener, path: string, o: CreateOptions): Promise<void> {
    const capacity = o.capacity ?? 0;
    if (o.kind === "differencing") throw new StorageError("unsupported", `raw images cannot be differencing`);
    if ((o.logicalSectorSize ?? 512) !== 512)
      throw new StorageError("unsupported", `raw images use 512-byte sectors`);
    if (!Number.isSafeInteger(capacity) || capacity <= 0 || capacity % SECTOR !== 0) {
      throw new StorageError("invalid-argument", `raw size ${capacity} must be a positive multiple of 512`);
    }
    const f = await opener.create(path);
    try {
      await f.truncate(capacity);
      await f.flush();
      o.onProgress?.(1);
    } finally {
      await f.close();
    }
  },
  async open(opener: FileOpener, path: string, o: OpenOptions): Promise<ImageDisk> {
    const f = await opener.open(path, o.readOnly ? "read" : "read-write");
    try {
      const size = await f.size();
      return new RawDisk(f, path, size - (size % SECTOR), size);
    } catch (e) {
      await f.close().catch(() => undefined);
      throw e;
    }
  },
};
