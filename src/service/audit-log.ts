// Owns: the append-only audit log (`<data>/audit.log`, one JSON object per line): every authorization decision,
// allow or deny, with who, which operation, on what, and why; numbered by a sequence that survives restarts.
// Must not: rewrite or truncate the file, or record secrets (tokens never reach it).
// Spec: docs/architecture.md "Authorization" (audit); docs/threat-model.md (what the log guarantees).

import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  writeSync,
} from "node:fs";
import type { AuditEntry } from "../api/schemas.js";

/** Entries kept in memory for reading; older ones are read from the file. */
const RECENT = 20_000;

export class AuditLog {
  private fd: number;
  private recent: AuditEntry[] = [];
  private seq = 0;
  private listeners = new Set<(e: AuditEntry) => void>();
  private unsynced = 0;
  /** An fdatasync in flight on the thread pool (at most one). */
  private syncing = false;
  private closed = false;

  constructor(private readonly path: string) {
    // O_APPEND: every write lands at the end, whatever else has the file open.
    this.fd = openSync(path, "a", 0o600);
    this.seq = this.lastSeq();
    // A crash mid-append leaves a torn last line without its newline: end it, or the next entry would be
    // written onto it and be unreadable too.
    const size = statSync(path).size;
    if (size > 0) {
      const last = Buffer.alloc(1);
      const fd = openSync(path, "r");
      try {
        readSync(fd, last, 0, 1, size - 1);
      } finally {
        closeSync(fd);
      }
      if (last[0] !== 0x0a) writeSync(this.fd, "\n");
    }
  }

  private lastSeq(): number {
    const size = statSync(this.path).size;
    if (size === 0) return 0;
    // The last complete line holds the highest number (a torn last line from a crash is skipped).
    const text = readFileSync(this.path, "utf8");
    const lines = text.split("\n");
    for (let i = lines.length - 1; i >= 0; i--) {
      try {
        const e = JSON.parse(lines[i]!) as { seq?: unknown };
        if (typeof e.seq === "number") return e.seq;
      } catch {
        // a torn or empty line
      }
    }
    return 0;
  }

  append(entry: Omit<AuditEntry, "seq" | "time">): AuditEntry {
    const e: AuditEntry = { seq: ++this.seq, time: new Date().toISOString(), ...entry };
    const line = Buffer.from(JSON.stringify(e) + "\n", "utf8");
    let off = 0;
    while (off < line.length) off += writeSync(this.fd, line, off, line.length - off);
    // Durable in batches: a host crash can lose the last few entries, a service crash none (the page cache keeps them).
    // The batch's fdatasync runs off the event loop: on a busy disk it took over a second, and every request
    // waited behind it (`npm run bench -- api`: p99 1.1 s at 500 reads/s, closed-loop p99 26 ms).
    if (++this.unsynced >= 256) this.syncInBackground();
    this.recent.push(e);
    if (this.recent.length > RECENT * 2) this.recent = this.recent.slice(-RECENT);
    for (const l of this.listeners) l(e);
    return e;
  }

  private syncInBackground(): void {
    if (this.syncing || this.closed) return;
    this.syncing = true;
    const batch = this.unsynced;
    this.unsynced = 0;
    fdatasync(this.fd, (err) => {
      this.syncing = false;
      // Not durable yet: the next batch (or close) tries again.
      if (err) this.unsynced += batch;
    });
  }

  sync(): void {
    if (this.unsynced === 0 || this.closed) return;
    fdatasyncSync(this.fd);
    this.unsynced = 0;
  }

  onEntry(l: (e: AuditEntry) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** Entries with seq > after, oldest first, at most `limit`. */
  read(after: number, limit: number): AuditEntry[] {
    const first = this.recent[0];
    if (first !== undefined && after >= first.seq - 1) {
      const start = after - first.seq + 1;
      return this.recent.slice(start, start + limit);
    }
    const out: AuditEntry[] = [];
    for (const e of this.fileEntries()) {
      if (e.seq > after) {
        out.push(e);
        if (out.length >= limit) break;
      }
    }
    return out;
  }

  /** The newest `limit` entries with after < seq < before, oldest first (what a reader paging back from now wants). */
  readBefore(before: number, after: number, limit: number): AuditEntry[] {
    const first = this.recent[0];
    // Memory answers when it holds the lowest number wanted (numbers are consecutive).
    const lowest = Math.max(after + 1, Math.min(before, this.seq + 1) - limit);
    if (first !== undefined && first.seq <= lowest) {
      const upTo = this.recent.findIndex((e) => e.seq >= before);
      const end = upTo < 0 ? this.recent.length : upTo;
      return this.recent.slice(Math.max(0, end - limit), end).filter((e) => e.seq > after);
    }
    // Older than memory holds: one pass over the file, keeping the last `limit` that fit.
    const out: AuditEntry[] = [];
    for (const e of this.fileEntries()) {
      if (e.seq >= before) break;
      if (e.seq <= after) continue;
      out.push(e);
      if (out.length > limit) out.shift();
    }
    return out;
  }

  /** Every entry in the file, oldest first; a line that does not parse (a crash's torn last line) is skipped. */
  private *fileEntries(): Generator<AuditEntry> {
    for (const line of readFileSync(this.path, "utf8").split("\n")) {
      if (line === "") continue;
      try {
        yield JSON.parse(line) as AuditEntry;
      } catch {
        // torn or foreign line
      }
    }
  }

  close(): void {
    // An fdatasync still in flight covers only its own batch; this one covers everything written.
    this.unsynced = Math.max(this.unsynced, 1);
    this.sync();
    this.closed = true;
    closeSync(this.fd);
  }
}
