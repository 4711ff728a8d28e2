// Owns: writing small files so that a crash at any instant leaves either the old or the new contents, never a
// mix, and once the call returns the new contents survive a power cut: write a temporary file beside the
// target, fsync it, rename it over the target, fsync the directory. Also creating private directories.
// Must not: know what the files hold (vm-store.ts, auth-store.ts do), or be used for large data.
// Spec: POSIX rename(2) atomicity; fsync(2) of the directory to persist the rename (Linux ext4/xfs).

import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync, chmodSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";

/** Writes `data` to `path` atomically and durably (see the header). Synchronous: the event loop sees no gap. */
export function writeFileDurable(path: string, data: string | Uint8Array, mode = 0o600): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  const fd = openSync(tmp, "wx", mode);
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  syncDirectory(dir);
}

/** fsyncs a directory so that entries created, renamed or removed in it are durable. */
export function syncDirectory(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Creates a directory (and parents) readable only by this user; tightens an existing one. */
export function makePrivateDir(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  chmodSync(path, 0o700);
}
