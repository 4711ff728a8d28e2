// Owns: a minimal Node FileOpener/FileHandle for storage integration tests that need real files (qemu-img
// interop, crash tests). Test-only: src/host/node-files.ts replaces it when that lands on main.
// Must not: be imported from src/.
// Spec: the FileHandle/FileOpener contract in src/storage/disk.ts.

import { promises as fs, constants } from "node:fs";
import * as nodePath from "node:path";
import { StorageError, type FileHandle, type FileOpener } from "../../src/storage/disk.js";

class NodeFile implements FileHandle {
  constructor(
    readonly name: string,
    private readonly fh: fs.FileHandle,
    readonly readOnly: boolean,
  ) {}
  async read(position: number, dst: Uint8Array): Promise<number> {
    let done = 0;
    while (done < dst.length) {
      const { bytesRead } = await this.fh.read(dst, done, dst.length - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }
  async write(position: number, src: Uint8Array): Promise<void> {
    if (this.readOnly) throw new StorageError("read-only", `${this.name} is open read-only`);
    let done = 0;
    while (done < src.length) {
      const { bytesWritten } = await this.fh.write(src, done, src.length - done, position + done);
      done += bytesWritten;
    }
  }
  flush(): Promise<void> {
    return this.readOnly ? Promise.resolve() : this.fh.datasync();
  }
  async size(): Promise<number> {
    return (await this.fh.stat()).size;
  }
  truncate(size: number): Promise<void> {
    if (this.readOnly) throw new StorageError("read-only", `${this.name} is open read-only`);
    return this.fh.truncate(size);
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}

export class NodeOpener implements FileOpener {
  async open(path: string, mode: "read" | "read-write"): Promise<FileHandle> {
    try {
      return new NodeFile(path, await fs.open(path, mode === "read" ? "r" : "r+"), mode === "read");
    } catch (e) {
      const code = (e as { code?: string }).code;
      throw new StorageError(code === "ENOENT" ? "not-found" : "io", `${path}: ${(e as Error).message}`);
    }
  }
  async create(path: string): Promise<FileHandle> {
    return new NodeFile(path, await fs.open(path, "w+"), false);
  }
  resolve(base: string, relative: string): string {
    return nodePath.resolve(nodePath.dirname(base), relative);
  }
  isAbsolute(path: string): boolean {
    return nodePath.isAbsolute(path);
  }
  async exists(path: string): Promise<boolean> {
    try {
      await fs.access(path, constants.F_OK);
      return true;
    } catch {
      return false;
    }
  }
}
