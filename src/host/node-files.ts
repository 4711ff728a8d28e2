// Owns: the Node.js implementation of the storage tier's FileHandle/FileOpener (src/storage/disk.ts):
// positional reads and writes on fs/promises handles, fdatasync for flush, paths via node:path.
// Must not: interpret image contents (that is src/storage/), or swallow errors: every failure becomes a
// StorageError ("not-found" for missing files, "io" otherwise) so callers branch on codes, not errno strings.
// Spec: POSIX pread/pwrite/fdatasync semantics as exposed by Node's fs/promises FileHandle.

import { open as fsOpen, stat, type FileHandle as NodeHandle } from "node:fs/promises";
import { dirname, isAbsolute as pathIsAbsolute, resolve as pathResolve } from "node:path";
import { StorageError, type FileHandle, type FileOpener } from "../storage/disk.js";

function wrap(name: string, e: unknown): StorageError {
  if (e instanceof StorageError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err.code === "ENOENT") return new StorageError("not-found", `${name}: no such file`);
  if (err.code === "EEXIST") return new StorageError("invalid-argument", `${name}: file already exists`);
  return new StorageError("io", `${name}: ${err.message ?? String(e)}`);
}

export class NodeFile implements FileHandle {
  private closed = false;
  constructor(
    readonly name: string,
    private readonly fh: NodeHandle,
    readonly readOnly: boolean,
  ) {}

  async read(position: number, dst: Uint8Array): Promise<number> {
    this.live();
    let done = 0;
    try {
      // fs may return short counts before end of file; only a zero count means end of file.
      while (done < dst.length) {
        const { bytesRead } = await this.fh.read(dst, done, dst.length - done, position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (e) {
      throw wrap(this.name, e);
    }
    return done;
  }

  async write(position: number, src: Uint8Array): Promise<void> {
    this.live();
    if (this.readOnly) throw new StorageError("read-only", `${this.name} is open read-only`);
    let done = 0;
    try {
      while (done < src.length) {
        const { bytesWritten } = await this.fh.write(src, done, src.length - done, position + done);
        done += bytesWritten;
      }
    } catch (e) {
      throw wrap(this.name, e);
    }
  }

  async flush(): Promise<void> {
    this.live();
    if (this.readOnly) return;
    try {
      await this.fh.datasync();
    } catch (e) {
      throw wrap(this.name, e);
    }
  }

  async size(): Promise<number> {
    this.live();
    try {
      return (await this.fh.stat()).size;
    } catch (e) {
      throw wrap(this.name, e);
    }
  }

  async truncate(size: number): Promise<void> {
    this.live();
    if (this.readOnly) throw new StorageError("read-only", `${this.name} is open read-only`);
    try {
      await this.fh.truncate(size);
    } catch (e) {
      throw wrap(this.name, e);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.fh.close();
    } catch (e) {
      throw wrap(this.name, e);
    }
  }

  private live(): void {
    if (this.closed) throw new StorageError("closed", `${this.name} is closed`);
  }
}

/** Opens host files; `create` refuses to replace an existing file, since images hold guest data. */
export class NodeFileOpener implements FileOpener {
  async open(path: string, mode: "read" | "read-write"): Promise<FileHandle> {
    try {
      const fh = await fsOpen(path, mode === "read" ? "r" : "r+");
      return new NodeFile(path, fh, mode === "read");
    } catch (e) {
      throw wrap(path, e);
    }
  }

  async create(path: string): Promise<FileHandle> {
    try {
      const fh = await fsOpen(path, "wx+");
      return new NodeFile(path, fh, false);
    } catch (e) {
      throw wrap(path, e);
    }
  }

  resolve(base: string, relative: string): string {
    return pathResolve(dirname(base), relative);
  }

  isAbsolute(path: string): boolean {
    return pathIsAbsolute(path);
  }

  async exists(path: string): Promise<boolean> {
    try {
      await stat(path);
      return true;
    } catch {
      return false;
    }
  }
}
