// Owns: the worker's requests that wait for an answer from its supervisor (the service), by request id: one
// table per kind of request (DVD medium reads, disk I/O of hot-added disks), failed at once when no
// supervisor is connected and all together when its connection closes.
// Must not: send anything itself (the caller's `send` does), or leave a request waiting that cannot be
// answered: the guest sees an I/O error, never a hang.
// Spec: docs/architecture.md "Worker processes and their protocol".

import { StorageError } from "../storage/disk.js";

/** How one kind of request reads its answers and words its errors. */
export interface RequestKind {
  /** Whether an answer carrying `data` and `error` is a success. */
  succeeded(data: Uint8Array | null, error: string | null): boolean;
  notConnected: string;
  failed(error: string | null): string;
  gone: string;
}

export class SupervisorRequests {
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (d: Uint8Array) => void; reject: (e: Error) => void }
  >();

  constructor(private readonly kind: RequestKind) {}

  request(send: (rid: number) => boolean): Promise<Uint8Array> {
    const rid = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(rid, { resolve, reject });
      if (!send(rid)) {
        this.waiting.delete(rid);
        reject(new StorageError("io", this.kind.notConnected));
      }
    });
  }

  /** The supervisor's answer; unknown ids (a closed connection's) are ignored. */
  answer(rid: number, data: Uint8Array | null, error: string | null): void {
    const w = this.waiting.get(rid);
    if (!w) return;
    this.waiting.delete(rid);
    if (this.kind.succeeded(data, error)) w.resolve(data ?? new Uint8Array(0));
    else w.reject(new StorageError("io", this.kind.failed(error)));
  }

  /** The supervisor connection closed: nothing it was asked will be answered. */
  failAll(): void {
    for (const w of this.waiting.values()) w.reject(new StorageError("io", this.kind.gone));
    this.waiting.clear();
  }
}
