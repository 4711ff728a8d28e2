// Owns: the disks the service serves for one worker: a disk hot added while the VM runs lies outside the file
// permissions the worker started with (Node's permission model cannot grant more later), so the service opens
// the image (any format, read-write unless asked otherwise) and does the worker's `disk-io` requests on it.
// A restarted service reopens the disks the worker names in `hello` at their first request.
// Must not: touch any image but the ones it was given (paths the VM service checked against the image roots),
// do I/O outside an image or unaligned, write a read-only one, or keep an image open once the worker removed
// it or the connection ended.
// Spec: docs/architecture.md "Worker processes and their protocol" (disks the service serves).

import { ApiError } from "../api/errors.js";
import { NodeFileOpener } from "../host/node-files.js";
import { StorageError } from "../storage/disk.js";
import type { ImageDisk } from "../storage/image-format.js";
import { openImage } from "../storage/open.js";
import type { RemoteDiskInfo } from "../worker/protocol.js";
import { DISK_IO_CHUNK } from "../worker/remote-disk.js";

/** Opens `path` as a disk for a running VM, or a clear `bad-request` naming it. */
export async function openServedDisk(
  path: string,
  readOnly: boolean,
): Promise<{ info: RemoteDiskInfo; disk: ImageDisk }> {
  let disk: ImageDisk;
  try {
    disk = await openImage(new NodeFileOpener(), path, { readOnly });
  } catch (e) {
    if (e instanceof StorageError) throw new ApiError("bad-request", `cannot open ${path}: ${e.message}`);
    throw e;
  }
  return {
    info: {
      path,
      capacity: disk.capacity,
      logicalSectorSize: disk.logicalSectorSize,
      physicalSectorSize: disk.physicalSectorSize,
      readOnly: disk.readOnly,
      identity: disk.identity,
    },
    disk,
  };
}

export class ServedDisks {
  private readonly disks = new Map<string, ImageDisk>();
  /** Disks named in the worker's hello, opened at their first request (a reattaching service). */
  private readonly remembered = new Map<string, RemoteDiskInfo>();
  private readonly opening = new Map<string, Promise<void>>();

  constructor(remembered: readonly RemoteDiskInfo[]) {
    for (const r of remembered) this.remembered.set(r.path, r);
  }

  add(path: string, disk: ImageDisk): void {
    this.disks.set(path, disk);
  }

  /** Stops serving `path` (removed from the VM, or its hot add failed): flushed and closed. */
  async remove(path: string): Promise<void> {
    this.remembered.delete(path);
    const disk = this.disks.get(path);
    this.disks.delete(path);
    if (disk === undefined) return;
    if (!disk.readOnly) await disk.flush().catch(() => undefined);
    await disk.close().catch(() => undefined);
  }

  /** Paths served now (tests, inspect). */
  get paths(): string[] {
    return [...this.disks.keys()];
  }

  private async find(path: string): Promise<ImageDisk | undefined> {
    const r = this.remembered.get(path);
    if (!this.disks.has(path) && r !== undefined) {
      let o = this.opening.get(path);
      if (o === undefined) {
        o = openServedDisk(path, r.readOnly).then(
          (d) => void this.disks.set(path, d.disk),
          () => undefined,
        );
        this.opening.set(path, o);
      }
      await o;
    }
    return this.disks.get(path);
  }

  /** Does one request of the worker: the bytes read (empty for the others), or an error message (never a throw). */
  async io(
    path: string,
    op: string,
    offset: number,
    length: number,
    data: string | null,
  ): Promise<{ data: Uint8Array } | { error: string }> {
    try {
      const disk = await this.find(path);
      if (disk === undefined) return { error: `the service does not serve ${path}` };
      if (op === "flush") {
        if (!disk.readOnly) await disk.flush();
        return { data: new Uint8Array(0) };
      }
      const sector = disk.logicalSectorSize;
      if (
        !Number.isSafeInteger(offset) ||
        !Number.isSafeInteger(length) ||
        offset < 0 ||
        length <= 0 ||
        offset % sector !== 0 ||
        length % sector !== 0 ||
        offset + length > disk.capacity ||
        (op !== "trim" && length > DISK_IO_CHUNK)
      )
        return { error: `${op} of ${String(length)} bytes at ${String(offset)} is outside the disk` };
      const lba = offset / sector;
      switch (op) {
        case "read": {
          const out = new Uint8Array(length);
          await disk.read(lba, out);
          return { data: out };
        }
        case "write": {
          if (disk.readOnly) return { error: `${path} is read-only` };
          const bytes = typeof data === "string" ? Buffer.from(data, "base64") : null;
          if (bytes === null || bytes.length !== length)
            return { error: `a write of ${String(length)} bytes came with ${bytes?.length ?? 0}` };
          await disk.write(lba, bytes);
          return { data: new Uint8Array(0) };
        }
        case "trim":
          if (disk.readOnly) return { error: `${path} is read-only` };
          await disk.trim(lba, length / sector);
          return { data: new Uint8Array(0) };
        default:
          return { error: `unknown disk operation '${String(op)}'` };
      }
    } catch (e) {
      return { error: e instanceof StorageError ? e.message : `internal error: ${(e as Error).message}` };
    }
  }

  /** The connection ended: every disk is flushed and closed (a reattaching service opens them again). */
  async close(): Promise<void> {
    for (const path of [...this.disks.keys()]) {
      const r = this.remembered.get(path);
      await this.remove(path);
      // Still the worker's: a new connection (a restarted service) serves it again.
      if (r !== undefined) this.remembered.set(path, r);
    }
  }
}
