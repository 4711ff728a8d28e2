// Power-loss simulation for VHDX resize (with BAT relocation) and compact: every write, sync and truncate is
// logged; at every sync point, and at random points between, the file is rebuilt as a power cut can leave
// it (everything before the last sync, plus a random subset of the 4 KiB pieces written after it). The image
// must open (replaying its log), check clean, and read as either the disk before or the disk after.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryFile, MemoryFileSystem } from "../memory-file.js";
import type { FileHandle, FileOpener } from "../disk.js";
import { createImage, openImage } from "../open.js";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

type Op =
  { kind: "write"; pos: number; bytes: Uint8Array } | { kind: "sync" } | { kind: "truncate"; n: number };

class LoggingOpener implements FileOpener {
  readonly log: Op[] = [];
  constructor(private readonly inner: MemoryFileSystem) {}
  async open(path: string, mode: "read" | "read-write"): Promise<FileHandle> {
    const h = await this.inner.open(path, mode);
    if (mode === "read") return h;
    const log = this.log;
    return {
      name: h.name,
      readOnly: h.readOnly,
      read: (p, d) => h.read(p, d),
      write: async (p, b) => {
        log.push({ kind: "write", pos: p, bytes: b.slice() });
        await h.write(p, b);
      },
      flush: async () => {
        log.push({ kind: "sync" });
        await h.flush();
      },
      size: () => h.size(),
      truncate: async (n) => {
        log.push({ kind: "truncate", n });
        await h.truncate(n);
      },
      close: () => h.close(),
    };
  }
  create(path: string): Promise<FileHandle> {
    return this.inner.create(path);
  }
  resolve(base: string, rel: string): string {
    return this.inner.resolve(base, rel);
  }
  isAbsolute(p: string): boolean {
    return this.inner.isAbsolute(p);
  }
  exists(p: string): Promise<boolean> {
    return this.inner.exists(p);
  }
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

async function rebuild(initial: Uint8Array, ops: Op[], cut: number, r: () => number): Promise<MemoryFile> {
  let lastSync = -1;
  for (let i = 0; i < cut; i++) if (ops[i]!.kind === "sync") lastSync = i;
  const f = new MemoryFile("/img.vhdx", initial);
  for (let i = 0; i < cut; i++) {
    const op = ops[i]!;
    if (op.kind === "truncate") await f.truncate(op.n);
    else if (op.kind === "write") {
      if (i < lastSync) await f.write(op.pos, op.bytes);
      else {
        for (let o = 0; o < op.bytes.length; o += 4096)
          if (r() < 0.5) await f.write(op.pos + o, op.bytes.subarray(o, Math.min(o + 4096, op.bytes.length)));
      }
    }
  }
  return f;
}

async function view(fs: FileOpener): Promise<{ capacity: number; head: Uint8Array; problems: string[] }> {
  const d = await openImage(fs, "/img.vhdx", { readOnly: false });
  try {
    const head = new Uint8Array(Math.min(d.capacity, 24 * MiB));
    await d.read(0, head);
    return { capacity: d.capacity, head, problems: (await d.check(false)).problems };
  } finally {
    await d.close();
  }
}

test("resize and compact survive a power cut at any point", async () => {
  const base = new MemoryFileSystem();
  await createImage(base, "/img.vhdx", "vhdx", { kind: "dynamic", capacity: 16 * MiB, blockSize: MiB });
  const d0 = await openImage(base, "/img.vhdx", { readOnly: false });
  const r0 = rng(5);
  for (let b = 0; b < 16; b++) {
    const data = new Uint8Array(MiB);
    if (b % 2 === 0) for (let i = 0; i < MiB; i += 512) data[i] = Math.floor(r0() * 255) + 1;
    await d0.write((b * MiB) / 512, data);
  }
  await d0.close();
  const before = await view(base);
  const initial = base.files.get("/img.vhdx")!.contents();
  const logging = new LoggingOpener(base);
  const d = await openImage(logging, "/img.vhdx", { readOnly: false });
  await d.resize!(200 * GiB, false);
  await d.compact!();
  await d.close();
  const ops = logging.log;
  const r = rng(9);
  const cuts = new Set<number>();
  ops.forEach((op, i) => {
    if (op.kind === "sync") cuts.add(i + 1);
  });
  for (let i = 0; i < 40; i++) cuts.add(Math.floor(r() * ops.length) + 1);
  assert.ok(cuts.size > 10);
  for (const cut of cuts) {
    const crashed = new MemoryFileSystem();
    crashed.files.set("/img.vhdx", await rebuild(initial, ops, cut, r));
    const v = await view(crashed);
    assert.ok(v.capacity === 16 * MiB || v.capacity === 200 * GiB, `cut ${cut}: capacity ${v.capacity}`);
    assert.deepEqual(v.problems, [], `cut ${cut}`);
    const expected = new Uint8Array(v.head.length);
    expected.set(before.head);
    assert.ok(Buffer.compare(v.head, expected) === 0, `cut ${cut} of ${ops.length}: contents differ`);
  }
});
