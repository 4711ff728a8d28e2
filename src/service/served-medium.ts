// Owns: the DVD medium the service reads for one worker: an ISO inserted while the VM runs lies outside the
// file permissions the worker started with (Node's permission model cannot grant more later), so the service
// opens it (read-only, checked to be an ISO 9660 image) and answers the worker's `medium-read` requests
// from it. One medium per worker at a time; a restarted service reopens the one the worker names in `hello`.
// Must not: read any file but the medium it was given (the path the VM service checked against the image
// roots), answer a read for another path or outside the medium, or keep a medium open after the swap that
// replaced it or the end of the connection.
// Spec: docs/architecture.md "Worker processes and their protocol" (the medium the service reads).

import { ApiError } from "../api/errors.js";
import { NodeFileOpener } from "../host/node-files.js";
import { StorageError } from "../storage/disk.js";
import type { ImageDisk } from "../storage/image-format.js";
import { openImage } from "../storage/open.js";
import type { MediumInfo } from "../worker/protocol.js";
import { MEDIUM_CHUNK } from "../worker/remote-medium.js";

/** Opens `path` as a DVD medium, or a clear `bad-request` naming it. */
export async function openMedium(path: string): Promise<{ info: MediumInfo; disk: ImageDisk }> {
  let disk: ImageDisk;
  try {
    disk = await openImage(new NodeFileOpener(), path, { readOnly: true });
  } catch (e) {
    if (e instanceof StorageError) throw new ApiError("bad-request", `cannot open ${path}: ${e.message}`);
    throw e;
  }
  if (disk.logicalSectorSize !== 2048 || disk.info().format !== "iso") {
    await disk.close().catch(() => undefined);
    throw new ApiError(
      "bad-request",
      `${path} is not an ISO 9660 image (no CD001 volume descriptor at sector 16)`,
    );
  }
  return { info: { path, capacity: disk.capacity, identity: disk.identity }, disk };
}

export class ServedMedium {
  /**
   * The media being read, by path: one, and two during a swap (commands still reading the old medium finish
   * before the worker answers `set-dvd`, while the guest may already read the new one).
   */
  private readonly media = new Map<string, ImageDisk>();
  /** The medium named in the worker's hello, opened at its first read (a reattaching service). */
  private remembered: string | null;
  private opening: Promise<void> | null = null;

  constructor(remembered: MediumInfo | null) {
    this.remembered = remembered?.path ?? null;
  }

  /** Serves `disk` as `path` from now on, besides what is served already (the swap has not happened yet). */
  async add(path: string, disk: ImageDisk): Promise<void> {
    const had = this.media.get(path);
    if (had === disk) return;
    this.media.set(path, disk);
    if (had) await had.close().catch(() => undefined);
  }

  /** Serves only `path` (null: nothing): the worker swapped to it; every other medium is closed. */
  async keepOnly(path: string | null): Promise<void> {
    this.remembered = null;
    for (const [p, disk] of [...this.media]) {
      if (p === path) continue;
      this.media.delete(p);
      await disk.close().catch(() => undefined);
    }
  }

  /** Stops serving `path` (a swap to it failed). */
  async remove(path: string): Promise<void> {
    const disk = this.media.get(path);
    this.media.delete(path);
    await disk?.close().catch(() => undefined);
  }

  /** The bytes the worker asked for, or an error message for it (never a throw: the guest sees a read error). */
  async read(
    path: string,
    offset: number,
    length: number,
  ): Promise<{ data: Uint8Array } | { error: string }> {
    try {
      if (!this.media.has(path) && this.remembered === path) {
        this.opening ??= openMedium(path).then(
          (m) => void this.media.set(path, m.disk),
          () => undefined,
        );
        await this.opening;
      }
      const disk = this.media.get(path);
      if (disk === undefined) return { error: `the service does not serve ${path}` };
      const sector = disk.logicalSectorSize;
      if (
        !Number.isSafeInteger(offset) ||
        !Number.isSafeInteger(length) ||
        offset < 0 ||
        length <= 0 ||
        length > MEDIUM_CHUNK ||
        offset % sector !== 0 ||
        length % sector !== 0 ||
        offset + length > disk.capacity
      )
        return { error: `a read of ${String(length)} bytes at ${String(offset)} is outside the medium` };
      const data = new Uint8Array(length);
      await disk.read(offset / sector, data);
      return { data };
    } catch (e) {
      return { error: e instanceof StorageError ? e.message : `internal error: ${(e as Error).message}` };
    }
  }

  /** The connection ended: every medium is closed (a reattaching service opens the worker's again). */
  async close(): Promise<void> {
    await this.keepOnly(null);
  }
}
