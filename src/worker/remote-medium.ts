// Owns: a DVD medium the worker cannot open itself (an ISO inserted while the VM runs lies outside the file
// permissions the worker started with), read through its supervisor: every read becomes `medium-read`
// requests on the worker's socket (at most MEDIUM_CHUNK bytes each, so a frame stays below MAX_FRAME), the
// service reads the image and answers with `medium-data`.
// Must not: open files, or wait for an answer that cannot come (a read without a supervisor connection, or
// whose connection closed, fails at once as an I/O error: the guest sees a read error, never a hang).
// Spec: docs/architecture.md "Worker processes and their protocol" (the medium the service reads).

import { StorageError, type Disk } from "../storage/disk.js";
import type { MediumInfo } from "./protocol.js";
import { SupervisorRequests } from "./supervisor-requests.js";

/** Bytes per `medium-read`: 512 KiB is 699,052 bytes of base64, within a frame with room to spare. */
export const MEDIUM_CHUNK = 512 * 1024;
const SECTOR = 2048;

/** Sends one read request to the supervisor; false when none is connected. */
export type MediumReadSender = (rid: number, path: string, offset: number, length: number) => boolean;

export class RemoteMedium implements Disk {
  readonly logicalSectorSize = SECTOR;
  readonly physicalSectorSize = SECTOR;
  readonly readOnly = true;
  readonly capacity: number;
  readonly identity: string;
  readonly path: string;
  private closed = false;

  /** `pending` is shared by every remote medium of one worker: read ids are unique across them. */
  constructor(
    info: MediumInfo,
    private readonly send: MediumReadSender,
    private readonly pending: MediumReads,
  ) {
    if (!Number.isSafeInteger(info.capacity) || info.capacity <= 0 || info.capacity % SECTOR !== 0)
      throw new StorageError(
        "invalid-argument",
        `${info.path}: capacity ${info.capacity} is not whole sectors`,
      );
    this.capacity = info.capacity;
    this.identity = info.identity;
    this.path = info.path;
  }

  async read(lba: number, dst: Uint8Array): Promise<void> {
    if (this.closed) throw new StorageError("closed", `${this.path}: read after close`);
    const offset = lba * SECTOR;
    if (lba < 0 || dst.length % SECTOR !== 0 || offset + dst.length > this.capacity)
      throw new StorageError("out-of-range", `${this.path}: read of ${dst.length} bytes at sector ${lba}`);
    for (let done = 0; done < dst.length; done += MEDIUM_CHUNK) {
      const length = Math.min(MEDIUM_CHUNK, dst.length - done);
      const data = await this.pending.request((rid) => this.send(rid, this.path, offset + done, length));
      if (data.length !== length)
        throw new StorageError("io", `${this.path}: the service sent ${data.length} bytes, not ${length}`);
      dst.set(data, done);
    }
  }

  write(): Promise<void> {
    return Promise.reject(new StorageError("read-only", `${this.path}: a DVD medium is read-only`));
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  trim(): Promise<void> {
    return Promise.reject(new StorageError("read-only", `${this.path}: a DVD medium is read-only`));
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

/** The medium reads waiting for the supervisor's answer, by read id. */
export class MediumReads extends SupervisorRequests {
  constructor() {
    super({
      succeeded: (data) => data !== null,
      notConnected: "the service that reads the DVD medium is not connected",
      failed: (error) => `the service could not read the DVD medium: ${error ?? "no reason"}`,
      gone: "the service that reads the DVD medium went away",
    });
  }
}
