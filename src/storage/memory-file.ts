// Owns: an in-memory FileHandle/FileOpener, for tests and for running storage code where there is no file
// system (a browser). Files grow on write like sparse files and read zeros in holes.
// Must not: be used where durability matters; flush() only counts calls.
// Spec: the FileHandle contract in ./disk.ts.

import { StorageError, type FileHandle, type FileOpener } from "./disk.js";

export class MemoryFile implements FileHandle {
  private data: Uint8Array;
  private length: number;
  private closed = false;
  flushes = 0;

  constructor(
    readonly name: string,
    initial: Uint8Array = new Uint8Array(0),
    readonly readOnly = false,
  ) {
    this.data = new Uint8Array(Math.max(initial.length, 4096));
    this.data.set(initial);
    this.length = initial.length;
  }

  /** A copy of the current contents. */
  contents(): Uint8Array {
    return this.data.slice(0, this.length);
  }

  async read(position: number, dst: Uint8Array): Promise<number> {
    this.check(position, dst.length);
    const n = Math.max(0, Math.min(dst.length, this.length - position));
    dst.set(this.data.subarray(position, position + n));
    return n;
  }

  async write(position: number, src: Uint8Array): Promise<void> {
    this.check(position, src.length);
    if (this.readOnly) throw new StorageError("read-only", `${this.name} is open read-only`);
    const end = position + src.length;
    this.ensure(end);
    this.data.set(src, position);
    this.length = Math.max(this.length, end);
  }

  async flush(): Promise<void> {
    this.check(0, 0);
    this.flushes++;
  }

  async size(): Promise<number> {
    this.check(0, 0);
    return this.length;
  }

  async truncate(size: number): Promise<void> {
    this.check(size, 0);
    if (this.readOnly) throw new StorageError("read-only", `${this.name} is open read-only`);
    this.ensure(size);
    if (size < this.length) this.data.fill(0, size, this.length);
    this.length = size;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private ensure(end: number): void {
    if (end <= this.data.length) return;
    let cap = this.data.length;
    while (cap < end) cap *= 2;
    const grown = new Uint8Array(cap);
    grown.set(this.data.subarray(0, this.length));
    this.data = grown;
  }

  private check(position: number, length: number): void {
    if (this.closed) throw new StorageError("closed", `${this.name} is closed`);
    if (!Number.isSafeInteger(position) || position < 0 || length < 0 || position + length > 2 ** 42) {
      throw new StorageError("out-of-range", `${this.name}: position ${position}+${length} is out of range`);
    }
  }
}

/** A flat namespace of MemoryFiles; paths are '/'-separated. */
export class MemoryFileSystem implements FileOpener {
  readonly files = new Map<string, MemoryFile>();

  async open(path: string, mode: "read" | "read-write"): Promise<FileHandle> {
    const f = this.files.get(path);
    if (!f) throw new StorageError("not-found", `${path}: no such file`);
    // Share the bytes but honour the requested mode; each open is its own handle.
    return new FileView(f, mode === "read");
  }

  async create(path: string): Promise<FileHandle> {
    const f = new MemoryFile(path);
    this.files.set(path, f);
    return new FileView(f, false);
  }

  resolve(base: string, relative: string): string {
    if (this.isAbsolute(relative)) return relative;
    const dir = base.includes("/") ? base.slice(0, base.lastIndexOf("/") + 1) : "";
    const parts: string[] = [];
    for (const p of (dir + relative).split("/")) {
      if (p === "..") parts.pop();
      else if (p !== "." && p !== "") parts.push(p);
    }
    return (base.startsWith("/") ? "/" : "") + parts.join("/");
  }

  isAbsolute(path: string): boolean {
    return path.startsWith("/");
  }

  async exists(path: string): Promise<boolean> {
    return this.files.has(path);
  }
}

/**
 * One opened handle on a MemoryFile: closing it ends this handle only, as closing a file descriptor does,
 * so a file can be opened, closed and opened again.
 */
class FileView implements FileHandle {
  private closed = false;
  constructor(
    private readonly file: MemoryFile,
    readonly readOnly: boolean,
  ) {}
  get name(): string {
    return this.file.name;
  }
  read(position: number, dst: Uint8Array): Promise<number> {
    this.live();
    return this.file.read(position, dst);
  }
  async write(position: number, src: Uint8Array): Promise<void> {
    this.live();
    if (this.readOnly) throw new StorageError("read-only", `${this.file.name} is open read-only`);
    return this.file.write(position, src);
  }
  async flush(): Promise<void> {
    this.live();
    if (!this.readOnly) await this.file.flush();
  }
  size(): Promise<number> {
    this.live();
    return this.file.size();
  }
  async truncate(size: number): Promise<void> {
    this.live();
    if (this.readOnly) throw new StorageError("read-only", `${this.file.name} is open read-only`);
    return this.file.truncate(size);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  private live(): void {
    if (this.closed) throw new StorageError("closed", `${this.file.name} is closed`);
  }
}
