// Owns: ISO 9660 images as read-only media (2048-byte sectors, capacity from the volume space size) and a
// small directory reader (list a directory, read a file by path) over the primary volume descriptor.
// Must not: accept writes (the seed's "read-only (CD ISO file)" rule: every write is StorageError
// "read-only"), follow extents outside the file, or read directories/files larger than the file holds.
// Spec: ECMA-119 (ISO 9660): 8.4 primary volume descriptor at logical sector 16 ("CD001", version 1),
// 9.1 directory records, both-endian fields (7.2.3, 7.3.3). Rock Ridge and Joliet names are not interpreted;
// paths use the ISO 9660 identifiers (version suffix ";1" and a trailing "." dropped, case-insensitive).

import { StorageError, type FileHandle, type FileOpener } from "./disk.js";
import { checkRequest, readFull } from "./block-io.js";
import type { CheckReport, ImageDisk, ImageFormat, ImageInfo, OpenOptions } from "./image-format.js";

const SECTOR = 2048;
const PVD_OFFSET = 16 * SECTOR;
/** Bounds directory sizes so a hostile length cannot make us allocate more than this per directory. */
const MAX_DIRECTORY_BYTES = 16 * 1024 * 1024;
const MAX_DEPTH = 64;

export interface IsoEntry {
  name: string;
  isDirectory: boolean;
  extent: number; // logical block
  size: number;
}

function parseRecord(b: Uint8Array, at: number): { entry: IsoEntry; length: number } | null {
  const len = b[at] ?? 0;
  if (len === 0) return null;
  if (len < 34 || at + len > b.length)
    throw new StorageError("corrupt", `ISO directory record at ${at} is malformed`);
  const dv = new DataView(b.buffer, b.byteOffset + at, len);
  const nameLen = b[at + 32]!;
  if (33 + nameLen > len) throw new StorageError("corrupt", `ISO directory record name overruns its record`);
  let name = "";
  for (let i = 0; i < nameLen; i++) name += String.fromCharCode(b[at + 33 + i]!);
  if (nameLen === 1 && name === "\0") name = ".";
  else if (nameLen === 1 && name === "\x01") name = "..";
  else name = name.replace(/;\d*$/, "").replace(/\.$/, "");
  return {
    entry: {
      name,
      isDirectory: (b[at + 25]! & 2) !== 0,
      extent: dv.getUint32(2, true),
      size: dv.getUint32(10, true),
    },
    length: len,
  };
}

export class IsoDisk implements ImageDisk {
  readonly logicalSectorSize = SECTOR;
  readonly physicalSectorSize = SECTOR;
  readonly readOnly = true;
  readonly parent = null;
  private closed = false;

  constructor(
    private readonly file: FileHandle,
    private readonly path: string,
    readonly capacity: number,
    private readonly fileSize: number,
    private readonly root: IsoEntry,
    readonly identity: string,
  ) {}

  info(): ImageInfo {
    return {
      format: "iso",
      kind: "media",
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
  async write(): Promise<void> {
    throw new StorageError("read-only", `${this.path} is read-only media`);
  }
  async trim(): Promise<void> {
    throw new StorageError("read-only", `${this.path} is read-only media`);
  }
  async flush(): Promise<void> {
    this.live();
  }
  async isAllocated(lba: number, sectorCount: number): Promise<boolean> {
    this.live();
    checkRequest(this.path, this.capacity, SECTOR, lba, sectorCount * SECTOR);
    return true;
  }
  async check(repair: boolean): Promise<CheckReport> {
    this.live();
    if (repair) throw new StorageError("read-only", `${this.path} is read-only media`);
    const problems: string[] = [];
    if (this.capacity > this.fileSize) {
      problems.push(
        `the volume space (${this.capacity} bytes) is larger than the file (${this.fileSize} bytes)`,
      );
    }
    return { problems, repaired: [] };
  }
  async close(): Promise<void> {
    this.closed = true;
    await this.file.close();
  }

  /** Reads an extent, refusing ones that do not lie within the file. */
  private async extent(e: IsoEntry, limit: number): Promise<Uint8Array> {
    const start = e.extent * SECTOR;
    if (e.size > limit || start + e.size > this.fileSize) {
      throw new StorageError(
        "corrupt",
        `${this.path}: extent of "${e.name}" (${e.size} bytes at ${start}) is outside the file`,
      );
    }
    const b = new Uint8Array(e.size);
    await readFull(this.file, start, b);
    return b;
  }

  async list(path: string): Promise<IsoEntry[]> {
    this.live();
    const dir = await this.lookup(path);
    if (!dir.isDirectory) throw new StorageError("invalid-argument", `${path} is not a directory`);
    return this.entries(dir);
  }

  async readFile(path: string): Promise<Uint8Array> {
    this.live();
    const f = await this.lookup(path);
    if (f.isDirectory) throw new StorageError("invalid-argument", `${path} is a directory`);
    return this.extent(f, this.fileSize);
  }

  private async entries(dir: IsoEntry): Promise<IsoEntry[]> {
    const b = await this.extent(dir, MAX_DIRECTORY_BYTES);
    const out: IsoEntry[] = [];
    let at = 0;
    while (at < b.length) {
      const r = parseRecord(b, at);
      if (!r) {
        at = (Math.floor(at / SECTOR) + 1) * SECTOR; // records never cross a sector; zero pads to the next
        continue;
      }
      if (r.entry.name !== "." && r.entry.name !== "..") out.push(r.entry);
      at += r.length;
    }
    return out;
  }

  private async lookup(path: string): Promise<IsoEntry> {
    const parts = path.split("/").filter((p) => p !== "" && p !== ".");
    if (parts.length > MAX_DEPTH) throw new StorageError("invalid-argument", `${path}: too deep`);
    let cur = this.root;
    for (const p of parts) {
      if (!cur.isDirectory) throw new StorageError("not-found", `${path}: ${cur.name} is not a directory`);
      const next = (await this.entries(cur)).find((e) => e.name.toUpperCase() === p.toUpperCase());
      if (!next) throw new StorageError("not-found", `${path}: no such file on ${this.path}`);
      cur = next;
    }
    return cur;
  }
}

async function readPvd(file: FileHandle): Promise<Uint8Array | null> {
  const pvd = new Uint8Array(SECTOR);
  if ((await file.read(PVD_OFFSET, pvd)) < SECTOR) return null;
  if (pvd[0] !== 1 || String.fromCharCode(...pvd.subarray(1, 6)) !== "CD001" || pvd[6] !== 1) return null;
  return pvd;
}

export const isoFormat: ImageFormat = {
  name: "iso",
  async probe(file: FileHandle): Promise<boolean> {
    return (await readPvd(file)) !== null;
  },
  async create(): Promise<void> {
    throw new StorageError("unsupported", `ISO images are made by mastering tools (genisoimage, xorriso)`);
  },
  async open(opener: FileOpener, path: string, _o: OpenOptions): Promise<ImageDisk> {
    const file = await opener.open(path, "read");
    try {
      const pvd = await readPvd(file);
      if (!pvd) throw new StorageError("corrupt", `${path}: no ISO 9660 primary volume descriptor ("CD001")`);
      const dv = new DataView(pvd.buffer);
      const blockSize = dv.getUint16(128, true);
      if (blockSize !== SECTOR) {
        throw new StorageError("unsupported", `${path}: logical block size ${blockSize} is not 2048`);
      }
      const size = await file.size();
      const spaceBlocks = dv.getUint32(80, true);
      const capacity = spaceBlocks > 0 ? spaceBlocks * SECTOR : Math.floor(size / SECTOR) * SECTOR;
      const root = parseRecord(pvd, 156);
      if (!root?.entry.isDirectory)
        throw new StorageError("corrupt", `${path}: the root directory record is invalid`);
      let label = "";
      for (let i = 40; i < 72; i++) label += String.fromCharCode(pvd[i]!);
      return new IsoDisk(file, path, capacity, size, root.entry, `iso:${label.trim()}`);
    } catch (e) {
      await file.close().catch(() => undefined);
      throw e;
    }
  },
};
