// Tests VHDX resize (grow with BAT relocation, guarded shrink) and compact (zero-block release, hole closing,
// truncation) against a byte model of the virtual disk (qemu interop: tests/storage/vhdx-resize-qemu.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryFileSystem } from "../memory-file.js";
import { createImage, openImage } from "../open.js";
import { StorageError, type FileOpener } from "../disk.js";
import type { ImageDisk } from "../image-format.js";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function pattern(seed: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

async function readAt(d: ImageDisk, pos: number, n: number): Promise<Uint8Array> {
  const b = new Uint8Array(n);
  await d.read(pos / 512, b);
  return b;
}

async function fileSize(fs: FileOpener, path: string): Promise<number> {
  const f = await fs.open(path, "read");
  try {
    return await f.size();
  } finally {
    await f.close();
  }
}

async function dynamic(fs: FileOpener, path: string, capacity: number): Promise<ImageDisk> {
  await createImage(fs, path, "vhdx", { kind: "dynamic", capacity, blockSize: MiB });
  return openImage(fs, path, { readOnly: false });
}

test("grow relocates the BAT when needed; the new end is writable and survives reopening", async () => {
  const fs = new MemoryFileSystem();
  let d = await dynamic(fs, "/g.vhdx", 8 * MiB);
  const head = pattern(1, 3 * MiB);
  await d.write(MiB / 512, head);
  // 200 GiB of 1 MiB blocks needs a 2 MiB BAT: the 1 MiB one must move.
  await d.resize!(200 * GiB, false);
  assert.equal(d.capacity, 200 * GiB);
  const tail = pattern(2, 2 * MiB);
  await d.write((200 * GiB - 2 * MiB) / 512, tail);
  assert.deepEqual(await readAt(d, 200 * GiB - 2 * MiB, 2 * MiB), tail);
  await d.close();
  d = await openImage(fs, "/g.vhdx", { readOnly: true });
  assert.equal(d.capacity, 200 * GiB);
  assert.deepEqual(await readAt(d, MiB, 3 * MiB), head);
  assert.deepEqual(await readAt(d, 200 * GiB - 2 * MiB, 2 * MiB), tail);
  assert.deepEqual(await readAt(d, 8 * MiB, MiB), new Uint8Array(MiB));
  assert.deepEqual((await d.check(false)).problems, []);
  await d.close();
});

test("a small grow keeps the BAT in place and reads zeros in the new space", async () => {
  const fs = new MemoryFileSystem();
  const d = await dynamic(fs, "/s.vhdx", 3 * MiB + 512 * 1024);
  const data = pattern(3, 3 * MiB + 512 * 1024);
  await d.write(0, data);
  await d.resize!(10 * MiB, false);
  const all = await readAt(d, 0, 10 * MiB);
  const model = new Uint8Array(10 * MiB);
  model.set(data);
  assert.deepEqual(all, model);
  assert.deepEqual((await d.check(false)).problems, []);
  await d.close();
});

test("shrink is refused when data lies beyond the new end, allowed when free or forced", async () => {
  const fs = new MemoryFileSystem();
  const d = await dynamic(fs, "/k.vhdx", 16 * MiB);
  await d.write(0, pattern(4, 2 * MiB));
  await d.write((10 * MiB) / 512, pattern(5, MiB));
  await assert.rejects(d.resize!(8 * MiB, false), (e: unknown) => {
    return e instanceof StorageError && e.code === "invalid-argument";
  });
  assert.equal(d.capacity, 16 * MiB);
  // Free beyond 12 MiB: allowed.
  await d.resize!(12 * MiB, false);
  assert.equal(d.capacity, 12 * MiB);
  // Forced: the block at 10 MiB is dropped; growing again reads zeros there.
  await d.resize!(8 * MiB, true);
  await d.resize!(16 * MiB, false);
  assert.deepEqual(await readAt(d, 8 * MiB, 8 * MiB), new Uint8Array(8 * MiB));
  assert.deepEqual(await readAt(d, 0, 2 * MiB), pattern(4, 2 * MiB));
  assert.deepEqual((await d.check(false)).problems, []);
  await d.close();
});

test("a differencing image refuses to change size", async () => {
  const fs = new MemoryFileSystem();
  await createImage(fs, "/p.vhdx", "vhdx", { kind: "dynamic", capacity: 8 * MiB, blockSize: MiB });
  await createImage(fs, "/c.vhdx", "vhdx", { kind: "differencing", parentPath: "/p.vhdx" });
  const d = await openImage(fs, "/c.vhdx", { readOnly: false });
  await d.resize!(8 * MiB, false);
  await assert.rejects(d.resize!(16 * MiB, false), (e: unknown) => {
    return e instanceof StorageError && e.code === "unsupported" && /parent/.test(e.message);
  });
  await d.close();
});

test("compact releases zero blocks, closes holes and keeps every byte", async () => {
  const fs = new MemoryFileSystem();
  const d = await dynamic(fs, "/c.vhdx", 32 * MiB);
  const model = new Uint8Array(32 * MiB);
  for (let b = 0; b < 32; b++) {
    const data = b % 3 === 0 ? pattern(b + 10, MiB) : new Uint8Array(MiB);
    await d.write((b * MiB) / 512, data);
    model.set(data, b * MiB);
  }
  await d.resize!(64 * MiB, false);
  const grown = new Uint8Array(64 * MiB);
  grown.set(model);
  await d.flush();
  let fractions = 0;
  const { before, after: afterSize } = await d.compact!(() => fractions++);
  assert.ok(fractions > 0);
  assert.ok(afterSize < before, `${afterSize} < ${before}`);
  // 11 data blocks remain; nothing else but the header, log, metadata and BAT.
  assert.ok(afterSize <= 11 * MiB + 4 * MiB, `${afterSize}`);
  assert.equal(await fileSize(fs, "/c.vhdx"), afterSize);
  assert.deepEqual(await readAt(d, 0, 64 * MiB), grown);
  assert.deepEqual((await d.check(false)).problems, []);
  // Still writable after compaction, and the result survives reopening.
  const extra = pattern(99, MiB);
  await d.write((40 * MiB) / 512, extra);
  grown.set(extra, 40 * MiB);
  await d.close();
  const r = await openImage(fs, "/c.vhdx", { readOnly: true });
  assert.deepEqual(await readAt(r, 0, 64 * MiB), grown);
  assert.deepEqual((await r.check(false)).problems, []);
  await r.close();
});

test("compact of a differencing image keeps hiding the parent and keeps the parent link", async () => {
  const fs = new MemoryFileSystem();
  await createImage(fs, "/base.vhdx", "vhdx", { kind: "dynamic", capacity: 8 * MiB, blockSize: MiB });
  const p = await openImage(fs, "/base.vhdx", { readOnly: false });
  await p.write(0, pattern(7, 8 * MiB));
  await p.close();
  await createImage(fs, "/child.vhdx", "vhdx", { kind: "differencing", parentPath: "/base.vhdx" });
  const c = await openImage(fs, "/child.vhdx", { readOnly: false });
  await c.write(0, new Uint8Array(2 * MiB)); // zeros that hide the parent's first two blocks
  await c.write((5 * MiB) / 512, pattern(8, MiB));
  await c.write((3 * MiB) / 512, pattern(9, 4096)); // partially present block
  const view = await readAt(c, 0, 8 * MiB);
  await c.compact!();
  assert.deepEqual(await readAt(c, 0, 8 * MiB), view);
  assert.deepEqual((await c.check(false)).problems, []);
  await c.close();
  // Compacting the parent does not change what it reads, so the child stays linked to it.
  const p2 = await openImage(fs, "/base.vhdx", { readOnly: false });
  await p2.compact!();
  await p2.close();
  const c2 = await openImage(fs, "/child.vhdx", { readOnly: true });
  assert.deepEqual(await readAt(c2, 0, 8 * MiB), view);
  await c2.close();
});
