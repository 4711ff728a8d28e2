// Owns: in-memory FileOpeners for storage tests: one whose files survive close/reopen, and one that can
// simulate a power cut (writes since the last flush survive only in part).
// Must not: be imported from src/ (test-only).
// Spec: the FileHandle/FileOpener contract in src/storage/disk.ts; the durability model of fdatasync.

import { StorageError, type FileHandle, type FileOpener } from "../../src/storage/disk.js";

type Op = { kind: "write"; at: number; data: Uint8Array } | { kind: "truncate"; size: number };

/** File contents that grow like a sparse file. */
class Bytes {
  data = new Uint8Array(1 << 16);
  length = 0;
  ensure(n: number): void {
    if (n <= this.data.length) return;
    let cap = this.data.length;
    while (cap < n) cap *= 2;
    const g = new Uint8Array(cap);
    g.set(this.data.subarray(0, this.length));
    this.data = g;
  }
  apply(op: Op): void {
    if (op.kind === "write") {
      this.ensure(op.at + op.data.length);
      this.data.set(op.data, op.at);
      this.length = Math.max(this.length, op.at + op.data.length);
    } else {
      this.ensure(op.size);
      if (op.size < this.length) this.data.fill(0, op.size, this.length);
      this.length = op.size;
    }
  }
  clone(): Bytes {
    const b = new Bytes();
    b.data = this.data.slice(0, Math.max(this.length, 1 << 16));
    b.length = this.length;
    return b;
  }
}

/** A file with a durable image and the operations issued since the last flush. */
export class MemFile {
  current = new Bytes();
  durable = new Bytes();
  pending: Op[] = [];
  flushes = 0;

  /** `track`: keep the durable image and pending operations, needed only for crash(). */
  constructor(
    initial?: Uint8Array,
    readonly track = false,
  ) {
    if (initial) {
      const op: Op = { kind: "write", at: 0, data: initial };
      this.current.apply(op);
      if (track) this.durable.apply(op);
    }
  }
  contents(): Uint8Array {
    return this.current.data.slice(0, this.current.length);
  }
  do(op: Op): void {
    this.current.apply(op);
    if (this.track) this.pending.push(op);
  }
  flush(): void {
    for (const op of this.pending) this.durable.apply(op);
    this.pending = [];
    this.flushes++;
  }
  /** Power cut: each unflushed operation reaches the medium or not (4 KiB pieces of writes independently). */
  crash(random: () => number): void {
    if (!this.track) throw new Error("crash() needs a MemFile created with durability tracking");
    const d = this.durable.clone();
    for (const op of this.pending) {
      if (op.kind === "truncate") {
        if (random() < 0.5) d.apply(op);
        continue;
      }
      for (let off = 0; off < op.data.length; off += 4096) {
        if (random() < 0.5)
          d.apply({ kind: "write", at: op.at + off, data: op.data.subarray(off, off + 4096) });
      }
    }
    this.durable = d;
    this.current = d.clone();
    this.pending = [];
  }
}

class MemHandle implements FileHandle {
  private closed = false;
  constructor(
    readonly name: string,
    private readonly f: MemFile,
    readonly readOnly: boolean,
  ) {}
  private live(): void {
    if (this.closed) throw new StorageError("closed", `${this.name} is closed`);
  }
  async read(position: number, dst: Uint8Array): Promise<number> {
    this.live();
    const n = Math.max(0, Math.min(dst.length, this.f.current.length - position));
    dst.set(this.f.current.data.subarray(position, position + n));
    return n;
  }
  async write(position: number, src: Uint8Array): Promise<void> {
    this.live();
    if (this.readOnly) throw new StorageError("read-only", `${this.name} is open read-only`);
    this.f.do({ kind: "write", at: position, data: this.f.track ? src.slice() : src });
  }
  async flush(): Promise<void> {
    this.live();
    this.f.flush();
  }
  async size(): Promise<number> {
    this.live();
    return this.f.current.length;
  }
  async truncate(size: number): Promise<void> {
    this.live();
    if (this.readOnly) throw new StorageError("read-only", `${this.name} is open read-only`);
    this.f.do({ kind: "truncate", size });
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

/** '/'-separated in-memory files that persist across open/close. */
export class MemFs implements FileOpener {
  readonly files = new Map<string, MemFile>();
  /** `track`: files created here support crash() (slower: every write is kept until flushed). */
  constructor(private readonly track = false) {}
  async open(path: string, mode: "read" | "read-write"): Promise<FileHandle> {
    const f = this.files.get(path);
    if (!f) throw new StorageError("not-found", `${path}: no such file`);
    return new MemHandle(path, f, mode === "read");
  }
  async create(path: string): Promise<FileHandle> {
    const f = new MemFile(undefined, this.track);
    this.files.set(path, f);
    return new MemHandle(path, f, false);
  }
  resolve(base: string, relative: string): string {
    if (this.isAbsolute(relative)) return relative;
    const dir = base.includes("/") ? base.slice(0, base.lastIndexOf("/") + 1) : "";
    const parts: string[] = [];
    for (const p of (dir + relative).split("/")) {
      if (p === "..") parts.pop();
      else if (p !== "." && p !== "") parts.push(p);
    }
    return (base.startsWith("/") ? "/" : "") + parts.join("/");
  }
  isAbsolute(path: string): boolean {
    return path.startsWith("/");
  }
  async exists(path: string): Promise<boolean> {
    return this.files.has(path);
  }
  file(path: string): MemFile {
    const f = this.files.get(path);
    if (!f) throw new Error(`no file ${path}`);
    return f;
  }
}

/** A small deterministic PRNG (mulberry32) so failures reproduce from the printed seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
