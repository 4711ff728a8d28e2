// Owns: writing small files so that a crash at any instant leaves either the old or the new contents, never a
// mix, and once the call returns the new contents survive a power cut: write a temporary file beside the
// target, fsync it, rename it over the target, fsync the directory. Also creating private directories.
// Must not: know what the files hold (vm-store.ts, auth-store.ts do), or be used for large data.
// Spec: POSIX rename(2) atomicity; fsync(2) of the directory to persist the rename (Linux ext4/xfs).

import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync, chmodSync } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
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

/**
 * The same sequence as writeFileDurable with every step on the thread pool: the event loop goes on serving
 * while the disk flushes (a state file's fsync took 3.8 s under a busy disk on 2026-12-07 and every API request
 * waited behind it: `npm run bench -- api`).
 */
export async function writeFileDurableAsync(
  path: string,
  data: string | Uint8Array,
  mode = 0o600,
): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const f = await open(tmp, "wx", mode);
  try {
    await f.writeFile(data);
    await f.sync();
  } catch (e) {
    await f.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await f.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDirectoryAsync(dir);
}

/** syncDirectory on the thread pool. */
export async function syncDirectoryAsync(dir: string): Promise<void> {
  const d = await open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

interface Pending {
  queued: string | null;
  writing: string | null;
  running: Promise<void>;
}

/**
 * Durable writes of small files that nobody is waiting to be acknowledged, off the event loop, in order per
 * file: at most one write of a file in flight; a newer version queued behind it replaces an older queued one
 * (only the last version matters), so a file always ends with the last version written. `latest` answers
 * reads with the newest version, durable or not.
 */
export class BackgroundDurableWrites {
  private readonly files = new Map<string, Pending>();

  constructor(private readonly onError: (path: string, e: Error) => void = () => undefined) {}

  write(path: string, data: string): void {
    const f = this.files.get(path);
    if (f) {
      f.queued = data;
      return;
    }
    const entry: Pending = { queued: data, writing: null, running: Promise.resolve() };
    this.files.set(path, entry);
    entry.running = this.drain(path, entry);
  }

  private async drain(path: string, entry: Pending): Promise<void> {
    // Yield once so that writes queued in the same tick coalesce into one.
    await Promise.resolve();
    while (entry.queued !== null) {
      const data = entry.queued;
      entry.queued = null;
      entry.writing = data;
      try {
        await writeFileDurableAsync(path, data);
      } catch (e) {
        this.onError(path, e as Error);
      }
    }
    entry.writing = null;
    this.files.delete(path);
  }

  /** The newest version handed to write() that is not yet on disk, if any. */
  latest(path: string): string | undefined {
    const f = this.files.get(path);
    return f?.queued ?? f?.writing ?? undefined;
  }

  /** Resolves once every write handed over so far is on disk (or failed). */
  async flush(): Promise<void> {
    while (this.files.size > 0) await Promise.all([...this.files.values()].map((f) => f.running));
  }
}
