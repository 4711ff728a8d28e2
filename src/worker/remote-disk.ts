// Owns: a disk hot added while the VM runs, which the worker cannot open itself (its file permissions were
// fixed when it started): every read, write, flush and trim becomes a `disk-io` request on the worker's
// socket (at most DISK_IO_CHUNK bytes each, so a frame stays below MAX_FRAME), answered by the service, which
// opened the image (any format) and checks every request against it.
// Must not: open files, or wait for an answer that cannot come (I/O without a supervisor connection, or whose
// connection closed, fails at once as an I/O error: the guest sees an error, never a hang).
// Spec: docs/architecture.md "Worker processes and their protocol" (disks the service serves).

import { StorageError, type Disk } from "../storage/disk.js";
import type { RemoteDiskInfo } from "./protocol.js";
import { SupervisorRequests } from "./supervisor-requests.js";

/** Bytes per `disk-io`: 256 KiB is 349,528 bytes of base64, well within a frame. */
export const DISK_IO_CHUNK = 256 * 1024;

export type DiskIoOp = "read" | "write" | "flush" | "trim";

/** Sends one request to the supervisor; false when none is connected. */
export type DiskIoSender = (
  rid: number,
  path: string,
  op: DiskIoOp,
  offset: number,
  length: number,
  data: string | null,
) => boolean;

/** The disk I/O requests waiting for the supervisor's answer (one table per worker). */
export class DiskIoRequests extends SupervisorRequests {
  constructor() {
    super({
      succeeded: (_data, error) => error === null,
      notConnected: "the service that serves the disk is not connected",
      failed: (error) => `the service could not do the disk I/O: ${error}`,
      gone: "the service that serves the disk went away",
    });
  }
}

export class RemoteDisk implements Disk {
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  readonly capacity: number;
  readonly readOnly: boolean;
  readonly identity: string;
  readonly path: string;
  private closed = false;

  constructor(
    readonly info: RemoteDiskInfo,
    private readonly send: DiskIoSender,
    private readonly pending: DiskIoRequests,
  ) {
    const s = info.logicalSectorSize;
    if (
      (s !== 512 && s !== 4096) ||
      !Number.isSafeInteger(info.capacity) ||
      info.capacity <= 0 ||
      info.capacity % s !== 0 ||
      !Number.isInteger(info.physicalSectorSize) ||
      info.physicalSectorSize < s
    )
      throw new StorageError("invalid-argument", `${info.path}: not a disk geometry the worker accepts`);
    this.logicalSectorSize = s;
    this.physicalSectorSize = info.physicalSectorSize;
    this.capacity = info.capacity;
    this.readOnly = info.readOnly;
    this.identity = info.identity;
    this.path = info.path;
  }

  private check(lba: number, bytes: number, what: string): number {
    if (this.closed) throw new StorageError("closed", `${this.path}: ${what} after close`);
    const offset = lba * this.logicalSectorSize;
    if (lba < 0 || bytes % this.logicalSectorSize !== 0 || offset + bytes > this.capacity)
      throw new StorageError("out-of-range", `${this.path}: ${what} of ${bytes} bytes at sector ${lba}`);
    return offset;
  }

  private io(op: DiskIoOp, offset: number, length: number, data: string | null): Promise<Uint8Array> {
    return this.pending.request((rid) => this.send(rid, this.path, op, offset, length, data));
  }

  async read(lba: number, dst: Uint8Array): Promise<void> {
    const offset = this.check(lba, dst.length, "read");
    for (let done = 0; done < dst.length; done += DISK_IO_CHUNK) {
      const length = Math.min(DISK_IO_CHUNK, dst.length - done);
      const data = await this.io("read", offset + done, length, null);
      if (data.length !== length)
        throw new StorageError("io", `${this.path}: the service sent ${data.length} bytes, not ${length}`);
      dst.set(data, done);
    }
  }

  async write(lba: number, src: Uint8Array): Promise<void> {
    if (this.readOnly) throw new StorageError("read-only", `${this.path} is read-only`);
    const offset = this.check(lba, src.length, "write");
    for (let done = 0; done < src.length; done += DISK_IO_CHUNK) {
      const chunk = src.subarray(done, Math.min(src.length, done + DISK_IO_CHUNK));
      await this.io("write", offset + done, chunk.length, Buffer.from(chunk).toString("base64"));
    }
  }

  async flush(): Promise<void> {
    if (this.closed || this.readOnly) return;
    await this.io("flush", 0, 0, null);
  }

  async trim(lba: number, sectorCount: number): Promise<void> {
    if (this.readOnly) throw new StorageError("read-only", `${this.path} is read-only`);
    const offset = this.check(lba, sectorCount * this.logicalSectorSize, "trim");
    await this.io("trim", offset, sectorCount * this.logicalSectorSize, null);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}
