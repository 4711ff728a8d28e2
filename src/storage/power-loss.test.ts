// Power-loss simulation for VHD: every write and sync a dynamic or differencing VHD issues is logged; at random
// cut points a disk image is rebuilt the way a power cut can leave it (everything before the last sync, plus
// any subset of the 512-byte pieces written after it). The image must open, and every write acknowledged by
// Disk.flush() before the cut must read back; other sectors hold their acknowledged contents or contents of a
// write issued after it. This covers host crashes, which the SIGKILL trials (tests/storage-crash.test.ts)
// cannot: there the page cache keeps every completed write.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryFile, MemoryFileSystem } from "./memory-file.js";
import type { FileHandle, FileOpener } from "./disk.js";
import { createImage, openImage } from "./open.js";

type Op =
  { kind: "write"; pos: number; bytes: Uint8Array } | { kind: "sync" } | { kind: "ack"; upTo: number };

/** Logs writes and syncs of one file, passing everything through to the real handle. */
class LoggingOpener implements FileOpener {
  readonly log: Op[] = [];
  constructor(
    private readonly inner: MemoryFileSystem,
    private readonly watched: string,
  ) {}
  async open(path: string, mode: "read" | "read-write"): Promise<FileHandle> {
    const h = await this.inner.open(path, mode);
    if (path !== this.watched || mode === "read") return h;
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
      truncate: (n) => h.truncate(n),
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
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CAP = 512 * 1024;
const SECTORS = CAP / 512;

for (const kind of ["dynamic", "differencing"] as const) {
  test(`power loss at any point keeps every flushed write (${kind} VHD)`, async () => {
    const seed = Number(process.env.VIRIDIAN_SEED ?? Math.floor(Math.random() * 2 ** 31));
    try {
      const random = rng(seed);
      const fs = new MemoryFileSystem();
      const base = new Uint32Array(SECTORS * 128);
      if (kind === "differencing") {
        await createImage(fs, "/base.vhd", "vhd", { kind: "dynamic", capacity: CAP, blockSize: 64 * 1024 });
        const b = await openImage(fs, "/base.vhd", { readOnly: false });
        for (let s = 0; s < SECTORS; s++) base.fill(0xb0000000 + s, s * 128, s * 128 + 128);
        await b.write(0, new Uint8Array(base.buffer));
        await b.close();
        await createImage(fs, "/img.vhd", "vhd", { kind, parentPath: "/base.vhd", blockSize: 16 * 1024 });
      } else {
        await createImage(fs, "/img.vhd", "vhd", { kind, capacity: CAP, blockSize: 16 * 1024 });
      }
      const initial = fs.files.get("/img.vhd")!.contents();
      const logging = new LoggingOpener(fs, "/img.vhd");
      const disk = await openImage(logging, "/img.vhd", { readOnly: false });
      const tags: Array<{ lba: number; n: number; tag: number }> = [];
      for (let i = 0; i < 300; i++) {
        const n = 1 + Math.floor(random() * 40);
        const lba = Math.floor(random() * (SECTORS - n));
        const tag = 0x1000 + i;
        await disk.write(lba, new Uint8Array(new Uint32Array(n * 128).fill(tag).buffer));
        tags.push({ lba, n, tag });
        if (random() < 0.2) {
          await disk.flush();
          logging.log.push({ kind: "ack", upTo: tags.length });
        }
      }
      await disk.close();
      const log = logging.log;
      for (let trial = 0; trial < 150; trial++) {
        const cut = Math.floor(random() * (log.length + 1));
        let lastSync = -1;
        let acked = 0;
        for (let i = 0; i < cut; i++) {
          const op = log[i]!;
          if (op.kind === "sync") lastSync = i;
          if (op.kind === "ack") acked = op.upTo;
        }
        // Rebuild the file: durable prefix, then a random subset of the 512-byte pieces written since.
        const file = new MemoryFile("/img.vhd", initial);
        for (let i = 0; i < cut; i++) {
          const op = log[i]!;
          if (op.kind !== "write") continue;
          for (let o = 0; o < op.bytes.length; o += 512) {
            if (i < lastSync || random() < 0.5) {
              await file.write(op.pos + o, op.bytes.subarray(o, Math.min(op.bytes.length, o + 512)));
            }
          }
        }
        const crashed = new MemoryFileSystem();
        crashed.files.set("/img.vhd", file);
        if (kind === "differencing") crashed.files.set("/base.vhd", fs.files.get("/base.vhd")!);
        const expected = new Uint32Array(SECTORS).map((_, s) =>
          kind === "differencing" ? base[s * 128]! : 0,
        );
        for (let k = 0; k < acked; k++) expected.fill(tags[k]!.tag, tags[k]!.lba, tags[k]!.lba + tags[k]!.n);
        const maybe = new Map<number, Set<number>>();
        for (let k = acked; k < tags.length; k++) {
          for (let s = tags[k]!.lba; s < tags[k]!.lba + tags[k]!.n; s++) {
            if (!maybe.has(s)) maybe.set(s, new Set());
            maybe.get(s)!.add(tags[k]!.tag);
          }
        }
        const d = await openImage(crashed, "/img.vhd", { readOnly: true });
        const got = new Uint8Array(CAP);
        await d.read(0, got);
        await d.close();
        const words = new Uint32Array(got.buffer);
        for (let s = 0; s < SECTORS; s++) {
          const v = words[s * 128]!;
          if (v !== expected[s] && !maybe.get(s)?.has(v)) {
            assert.fail(
              `cut ${cut}/${log.length} (acked ${acked}): sector ${s} reads ${v.toString(16)}, ` +
                `expected ${expected[s]!.toString(16)}`,
            );
          }
        }
      }
    } catch (e) {
      console.error(`power-loss test failed with VIRIDIAN_SEED=${seed}`);
      throw e;
    }
  });
}
