// Unit tests of the VHD format, chains and operations on the in-memory file system: structures, random
// writes through depth-3 differencing chains against a flat model, merge/convert equivalence, shared parents,
// cycles, parent mismatch, torn footers, resize and compaction.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryFile, MemoryFileSystem } from "./memory-file.js";
import { StorageError } from "./disk.js";
import { createImage, openImage, openParentCount } from "./open.js";
import { check, compact, convert, merge, resize } from "./operations.js";
import { geometry, parseFooter, buildFooter, newFooter, DISK_DYNAMIC } from "./vhd-structures.js";
import type { ImageDisk } from "./image-format.js";

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

async function readAll(d: ImageDisk): Promise<Uint8Array> {
  const b = new Uint8Array(d.capacity);
  await d.read(0, b);
  return b;
}

function seedOf(): number {
  return Number(process.env.VIRIDIAN_SEED ?? Math.floor(Math.random() * 2 ** 31));
}

test("CHS geometry follows the specification's appendix", () => {
  assert.deepEqual(geometry(64 * 1024 * 1024), { cylinders: 963, heads: 8, sectorsPerTrack: 17 });
  // 127 GiB and beyond saturate at 65535 x 16 x 255.
  assert.deepEqual(geometry(200 * 1024 ** 3), { cylinders: 65535, heads: 16, sectorsPerTrack: 255 });
  const g = geometry(10 * 1024 * 1024);
  assert.ok(g.cylinders * g.heads * g.sectorsPerTrack * 512 <= 10 * 1024 * 1024);
});

test("footer round-trips with a valid checksum; a flipped byte breaks it", () => {
  const f = newFooter(DISK_DYNAMIC, 1 << 20, new Uint8Array(16).fill(7), Date.UTC(2020, 0, 1));
  const b = buildFooter(f);
  const p = parseFooter(b)!;
  assert.ok(p.checksumOk);
  assert.equal(p.footer.currentSize, 1 << 20);
  b[100] = 1;
  assert.equal(parseFooter(b)!.checksumOk, false);
});

test("dynamic and fixed VHDs store and return data; writes beyond capacity fail", async () => {
  for (const kind of ["dynamic", "fixed"] as const) {
    const fs = new MemoryFileSystem();
    await createImage(fs, "/d.vhd", "vhd", { kind, capacity: 4 << 20, blockSize: 1 << 20 });
    const d = await openImage(fs, "/d.vhd", { readOnly: false });
    const data = new Uint8Array(3 * 512).map((_, i) => i & 0xff);
    await d.write(2047, data);
    await d.flush();
    await d.close();
    const r = await openImage(fs, "/d.vhd", { readOnly: true });
    const back = new Uint8Array(3 * 512);
    await r.read(2047, back);
    assert.deepEqual(back, data);
    await assert.rejects(r.write(0, new Uint8Array(512)), (e: StorageError) => e.code === "read-only");
    await assert.rejects(r.read(8192, new Uint8Array(512)), (e: StorageError) => e.code === "out-of-range");
    assert.equal(r.info().kind, kind);
    assert.deepEqual((await r.check(false)).problems, []);
    await r.close();
  }
});

test("depth-3 differencing chains with random writes at random levels match a flat model", async () => {
  const seed = seedOf();
  try {
    const random = rng(seed);
    const fs = new MemoryFileSystem();
    const cap = 1 << 20;
    const sectors = cap / 512;
    const paths = ["/base.vhd", "/img/mid.vhd", "/img/top/top.vhd"];
    await createImage(fs, paths[0]!, "vhd", { kind: "dynamic", capacity: cap, blockSize: 64 * 1024 });
    await createImage(fs, paths[1]!, "vhd", {
      kind: "differencing",
      parentPath: paths[0]!,
      blockSize: 32 * 1024,
    });
    await createImage(fs, paths[2]!, "vhd", { kind: "differencing", parentPath: "../mid.vhd" });
    const data = paths.map(() => new Uint8Array(cap));
    const mask = paths.map(() => new Uint8Array(sectors));
    const view = (level: number): Uint8Array => {
      const out = new Uint8Array(cap);
      for (let s = 0; s < sectors; s++) {
        for (let l = level; l >= 0; l--) {
          if (mask[l]![s]) {
            out.set(data[l]!.subarray(s * 512, s * 512 + 512), s * 512);
            break;
          }
        }
      }
      return out;
    };
    for (let round = 0; round < 12; round++) {
      const level = Math.floor(random() * 3);
      const d = await openImage(fs, paths[level]!, { readOnly: false });
      for (let k = 0; k < 6; k++) {
        const n = 1 + Math.floor(random() * 200);
        const lba = Math.floor(random() * (sectors - n));
        const buf = new Uint8Array(n * 512);
        for (let i = 0; i < buf.length; i += 512) buf.fill(Math.floor(random() * 256), i, i + 512);
        await d.write(lba, buf);
        data[level]!.set(buf, lba * 512);
        mask[level]!.fill(1, lba, lba + n);
      }
      assert.deepEqual(await readAll(d), view(level), `level ${level} round ${round}`);
      await d.close();
      const top = await openImage(fs, paths[2]!, { readOnly: true });
      assert.deepEqual(await readAll(top), view(2), `top after round ${round}`);
      await top.close();
    }
    assert.equal(openParentCount(fs), 0, "every shared parent was closed");
    // convert of the chain gives the same bytes, to raw and to a dynamic VHD
    await convert(fs, paths[2]!, "/flat.raw", { format: "raw", kind: "fixed" });
    await convert(fs, paths[2]!, "/flat.vhd", { format: "vhd", kind: "dynamic" });
    for (const p of ["/flat.raw", "/flat.vhd"]) {
      const f = await openImage(fs, p, { readOnly: true });
      assert.deepEqual(await readAll(f), view(2), p);
      await f.close();
    }
    // merge top into mid: mid alone now reads as the top did
    assert.equal(await merge(fs, paths[2]!), paths[1]);
    const mid = await openImage(fs, paths[1]!, { readOnly: true });
    assert.deepEqual(await readAll(mid), view(2));
    assert.deepEqual((await mid.check(false)).problems, []);
    await mid.close();
  } catch (e) {
    console.error(`differencing model test failed with VIRIDIAN_SEED=${seed}`);
    throw e;
  }
});

test("a shared parent serves two children at once and closes with the last", async () => {
  const fs = new MemoryFileSystem();
  await createImage(fs, "/base.vhd", "vhd", { kind: "dynamic", capacity: 1 << 20 });
  const b = await openImage(fs, "/base.vhd", { readOnly: false });
  await b.write(0, new Uint8Array(1024).fill(0x5a));
  await b.close();
  await createImage(fs, "/a.vhd", "vhd", { kind: "differencing", parentPath: "/base.vhd" });
  await createImage(fs, "/b.vhd", "vhd", { kind: "differencing", parentPath: "/base.vhd" });
  const a = await openImage(fs, "/a.vhd", { readOnly: false });
  const c = await openImage(fs, "/b.vhd", { readOnly: false });
  assert.equal(openParentCount(fs), 1);
  await a.write(1, new Uint8Array(512).fill(1));
  await c.write(0, new Uint8Array(512).fill(2));
  const ra = new Uint8Array(1024);
  const rc = new Uint8Array(1024);
  await a.read(0, ra);
  await c.read(0, rc);
  assert.deepEqual([ra[0], ra[600], rc[0], rc[600]], [0x5a, 1, 2, 0x5a]);
  await a.close();
  assert.equal(openParentCount(fs), 1);
  await c.close();
  assert.equal(openParentCount(fs), 0);
  // the parent itself was never written through the children
  const base = await openImage(fs, "/base.vhd", { readOnly: true });
  const rb = new Uint8Array(1024);
  await base.read(0, rb);
  assert.ok(rb.every((x) => x === 0x5a));
  await base.close();
});

test("a replaced parent is a parent-mismatch naming both identities; a loop is a cycle", async () => {
  const fs = new MemoryFileSystem();
  await createImage(fs, "/p.vhd", "vhd", { kind: "dynamic", capacity: 1 << 20 });
  await createImage(fs, "/c.vhd", "vhd", { kind: "differencing", parentPath: "/p.vhd" });
  const expected = (await openImage(fs, "/p.vhd", { readOnly: true })).identity;
  fs.files.delete("/p.vhd");
  await createImage(fs, "/p.vhd", "vhd", { kind: "dynamic", capacity: 1 << 20 });
  await assert.rejects(
    openImage(fs, "/c.vhd", { readOnly: true }),
    (e: StorageError) => e.code === "parent-mismatch" && e.message.includes(expected),
  );
  // x <- y <- z, then x is replaced by a child of z: z -> y -> x -> z
  await createImage(fs, "/x.vhd", "vhd", { kind: "dynamic", capacity: 1 << 20 });
  await createImage(fs, "/y.vhd", "vhd", { kind: "differencing", parentPath: "/x.vhd" });
  await createImage(fs, "/z.vhd", "vhd", { kind: "differencing", parentPath: "/y.vhd" });
  await createImage(fs, "/w.vhd", "vhd", { kind: "differencing", parentPath: "/z.vhd" });
  fs.files.set("/x.vhd", fs.files.get("/w.vhd")!);
  await assert.rejects(openImage(fs, "/z.vhd", { readOnly: true }), (e: StorageError) => e.code === "cycle");
  assert.equal(openParentCount(fs), 0);
  fs.files.delete("/y.vhd");
  await assert.rejects(
    openImage(fs, "/z.vhd", { readOnly: true }),
    (e: StorageError) => e.code === "not-found",
  );
});

test("a torn trailing footer: the image opens from the copy, check reports it, repair restores it", async () => {
  const fs = new MemoryFileSystem();
  await createImage(fs, "/t.vhd", "vhd", { kind: "dynamic", capacity: 8 << 20 });
  const d = await openImage(fs, "/t.vhd", { readOnly: false });
  await d.write(100, new Uint8Array(4096).fill(9));
  await d.flush();
  await d.close();
  const f = fs.files.get("/t.vhd")!;
  const bytes = f.contents();
  fs.files.set("/t.vhd", new MemoryFile("/t.vhd", bytes.subarray(0, bytes.length - 300)));
  const r = await openImage(fs, "/t.vhd", { readOnly: true });
  const back = new Uint8Array(4096);
  await r.read(100, back);
  assert.ok(back.every((x) => x === 9));
  await r.close();
  const report = await check(fs, "/t.vhd", false);
  assert.equal(report.problems.length, 1);
  const fixed = await check(fs, "/t.vhd", true);
  assert.equal(fixed.repaired.length, 1);
  assert.deepEqual((await check(fs, "/t.vhd", false)).problems, []);
  assert.equal(fs.files.get("/t.vhd")!.contents().length % 512, 0);
});

test("resize grows (moving blocks out of the BAT's way) and shrinks only when safe or forced", async () => {
  const fs = new MemoryFileSystem();
  await createImage(fs, "/r.vhd", "vhd", { kind: "dynamic", capacity: 1 << 20, blockSize: 4096 });
  const d = await openImage(fs, "/r.vhd", { readOnly: false });
  const pattern = new Uint8Array(1 << 20).map((_, i) => (i * 7) & 0xff);
  await d.write(0, pattern);
  await d.close();
  await resize(fs, "/r.vhd", 4 << 20, false);
  const g = await openImage(fs, "/r.vhd", { readOnly: false });
  assert.equal(g.capacity, 4 << 20);
  const all = await readAll(g);
  assert.deepEqual(all.subarray(0, 1 << 20), pattern);
  assert.ok(all.subarray(1 << 20).every((x) => x === 0));
  await g.write(8000, new Uint8Array(512).fill(3));
  assert.deepEqual((await g.check(false)).problems, []);
  await g.close();
  await assert.rejects(
    resize(fs, "/r.vhd", 2 << 20, false),
    (e: StorageError) => e.code === "invalid-argument",
  );
  await resize(fs, "/r.vhd", 2 << 20, true);
  await resize(fs, "/r.vhd", (1 << 20) + 512, true);
  await resize(fs, "/r.vhd", 3 << 20, false);
  const s = await openImage(fs, "/r.vhd", { readOnly: true });
  const after = await readAll(s);
  assert.deepEqual(after.subarray(0, 1 << 20), pattern);
  assert.ok(
    after.subarray((1 << 20) + 512).every((x) => x === 0),
    "no stale data reappears after shrink+grow",
  );
  await s.close();
  // fixed
  await createImage(fs, "/f.vhd", "vhd", { kind: "fixed", capacity: 1 << 20 });
  await resize(fs, "/f.vhd", 2 << 20, false);
  const f = await openImage(fs, "/f.vhd", { readOnly: true });
  assert.equal(f.capacity, 2 << 20);
  assert.ok((await readAll(f)).every((x) => x === 0));
  await f.close();
  await assert.rejects(
    resize(fs, "/f.vhd", 1 << 20, false),
    (e: StorageError) => e.code === "invalid-argument",
  );
});

test("compact drops zero blocks, closes holes, and keeps every byte", async () => {
  const fs = new MemoryFileSystem();
  await createImage(fs, "/c.vhd", "vhd", { kind: "dynamic", capacity: 4 << 20, blockSize: 64 * 1024 });
  const d = await openImage(fs, "/c.vhd", { readOnly: false });
  const random = rng(42);
  for (let b = 0; b < 64; b++) {
    const buf = new Uint8Array(64 * 1024);
    if (b % 3 !== 0) for (let i = 0; i < buf.length; i += 512) buf[i] = 1 + Math.floor(random() * 255);
    await d.write(b * 128, buf);
  }
  const before = await readAll(d);
  await d.close();
  const r = await compact(fs, "/c.vhd");
  assert.ok(r.after < r.before, `${r.after} < ${r.before}`);
  const c = await openImage(fs, "/c.vhd", { readOnly: true });
  assert.deepEqual(await readAll(c), before);
  assert.deepEqual((await c.check(false)).problems, []);
  assert.equal(c.info().allocatedBytes, 42 * (64 * 1024 + 512));
  await c.close();
});

test("convert copies only non-zero data: zero blocks stay unallocated", async () => {
  const fs = new MemoryFileSystem();
  const raw = new Uint8Array(8 << 20);
  raw.fill(0xee, 3 << 20, (3 << 20) + 4096);
  fs.files.set("/src.img", new MemoryFile("/src.img", raw));
  await convert(fs, "/src.img", "/dst.vhd", { format: "vhd", kind: "dynamic" });
  const d = await openImage(fs, "/dst.vhd", { readOnly: true });
  assert.equal(d.info().allocatedBytes, 2 * 1024 * 1024 + 512);
  assert.deepEqual(await readAll(d), raw);
  await d.close();
});

test("concurrent writes into one new block allocate it once; trim releases whole dynamic blocks", async () => {
  const fs = new MemoryFileSystem();
  await createImage(fs, "/base.vhd", "vhd", { kind: "dynamic", capacity: 1 << 20, blockSize: 64 * 1024 });
  await createImage(fs, "/kid.vhd", "vhd", {
    kind: "differencing",
    parentPath: "/base.vhd",
    blockSize: 64 * 1024,
  });
  for (const p of ["/base.vhd", "/kid.vhd"]) {
    const d = await openImage(fs, p, { readOnly: false });
    await Promise.all(Array.from({ length: 16 }, (_, i) => d.write(i * 8, new Uint8Array(4096).fill(i + 1))));
    assert.equal(d.info().allocatedBytes, 64 * 1024 + 512, p);
    const back = new Uint8Array(64 * 1024);
    await d.read(0, back);
    for (let i = 0; i < 16; i++) assert.equal(back[i * 4096], i + 1);
    assert.deepEqual((await d.check(false)).problems, []);
    await d.close();
  }
  const d = await openImage(fs, "/base.vhd", { readOnly: false });
  await d.trim(0, 256);
  assert.equal(d.info().allocatedBytes, 0);
  const z = new Uint8Array(4096);
  await d.read(0, z);
  assert.ok(z.every((x) => x === 0));
  assert.equal(await d.isAllocated(0, 128), false);
  await d.close();
});
