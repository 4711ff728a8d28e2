import { test } from "node:test";
import assert from "node:assert/strict";
import { MemFs, rng } from "../../../tests/storage/memory-disks.js";
import { StorageError } from "../disk.js";
import type { ImageDisk } from "../image-format.js";
import { vhdxFormat } from "./format.js";
import {
  buildHeader,
  buildRegionTable,
  parseHeader,
  parseRegionTable,
  put32,
  put64,
  MiB,
  HEADER1_OFFSET,
  HEADER2_OFFSET,
  REGION1_OFFSET,
  REGION2_OFFSET,
  type Header,
  type RegionTable,
} from "./layout.js";

const open = (fs: MemFs, path: string, readOnly = false) => vhdxFormat.open(fs, path, { readOnly });

function pattern(seed: number, n: number): Uint8Array {
  const r = rng(seed);
  const b = new Uint8Array(n);
  const w = new Uint32Array(b.buffer, 0, n >>> 2);
  for (let i = 0; i < w.length; i++) w[i] = (r() * 2 ** 32) >>> 0;
  return b;
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

async function readAll(d: ImageDisk): Promise<Uint8Array> {
  const b = new Uint8Array(d.capacity);
  await d.read(0, b);
  return b;
}

test("fixed, dynamic and differencing images round-trip data across reopen", async () => {
  for (const kind of ["fixed", "dynamic"] as const) {
    const fs = new MemFs();
    await vhdxFormat.create(fs, "/a.vhdx", { kind, capacity: 8 * MiB + 4096, blockSize: MiB });
    let d = await open(fs, "/a.vhdx");
    assert.equal(d.capacity, 8 * MiB + 4096);
    assert.equal(d.info().kind, kind);
    const data = pattern(1, 3 * MiB + 512);
    await d.write(3, data);
    await d.write((8 * MiB) / 512 + 7, pattern(2, 512)); // the short last block
    await d.close();
    d = await open(fs, "/a.vhdx", true);
    const got = new Uint8Array(data.length);
    await d.read(3, got);
    assert.deepEqual(got, data);
    const tail = new Uint8Array(512);
    await d.read((8 * MiB) / 512 + 7, tail);
    assert.deepEqual(tail, pattern(2, 512));
    const head = new Uint8Array(3 * 512);
    await d.read(0, head);
    assert.ok(head.every((x) => x === 0));
    assert.deepEqual(await d.check(false), { problems: [], repaired: [] });
    await d.close();
  }
});

test("a depth-3 differencing chain with random writes and trims at each level equals a flat model", async () => {
  const seed = 0x5eed;
  const r = rng(seed);
  const fs = new MemFs();
  const cap = 24 * MiB;
  const model = new Uint8Array(cap);
  const paths = ["/base.vhdx", "/d1/mid.vhdx", "/d1/d2/top.vhdx"];
  await vhdxFormat.create(fs, paths[0]!, { kind: "dynamic", capacity: cap, blockSize: MiB });
  for (let level = 0; level < 3; level++) {
    if (level > 0)
      await vhdxFormat.create(fs, paths[level]!, {
        kind: "differencing",
        parentPath: paths[level - 1]!,
        blockSize: MiB,
      });
    const d = await open(fs, paths[level]!);
    for (let i = 0; i < 60; i++) {
      const lba = Math.floor(r() * (cap / 512 - 4096));
      const count = 1 + Math.floor(r() * (r() < 0.2 ? 4096 : 64));
      if (r() < 0.1) {
        // Trim whole blocks: the layer reads zeros there afterwards (ZERO/UNMAPPED states).
        const first = Math.ceil((lba * 512) / MiB);
        await d.trim(first * 2048, 2048 * 2);
        model.fill(0, first * MiB, (first + 2) * MiB);
      } else {
        const data = pattern(i * 7 + level, count * 512);
        await d.write(lba, data);
        model.set(data, lba * 512);
      }
      if (r() < 0.3) await d.flush();
    }
    assert.deepEqual(await readAll(d), model, `level ${level}, seed ${seed}`);
    await d.close();
  }
  const top = await open(fs, paths[2]!, true);
  assert.ok(top.parent && top.parent.parent && top.parent.parent.parent === null);
  assert.deepEqual(await readAll(top), model);
  assert.equal(top.info().kind, "differencing");
  assert.equal(top.info().parentPath, "/d1/mid.vhdx");
  assert.equal(top.info().parentIdentity, top.parent.identity);
  await top.close();
});

test("writing to a parent breaks its children's linkage (parent-mismatch)", async () => {
  const fs = new MemFs();
  await vhdxFormat.create(fs, "/p.vhdx", { kind: "dynamic", capacity: 4 * MiB, blockSize: MiB });
  await vhdxFormat.create(fs, "/c.vhdx", { kind: "differencing", parentPath: "/p.vhdx" });
  (await open(fs, "/c.vhdx", true)).close();
  const p = await open(fs, "/p.vhdx");
  await p.write(0, new Uint8Array(512).fill(1));
  await p.close();
  await assert.rejects(
    open(fs, "/c.vhdx", true),
    (e: unknown) => e instanceof StorageError && e.code === "parent-mismatch",
  );
});

test("differencing images read unwritten sectors from the parent and track isAllocated", async () => {
  const fs = new MemFs();
  await vhdxFormat.create(fs, "/p.vhdx", { kind: "fixed", capacity: 4 * MiB, blockSize: MiB });
  const p = await open(fs, "/p.vhdx");
  await p.write(0, new Uint8Array(4 * MiB).fill(0xaa));
  await p.close();
  await vhdxFormat.create(fs, "/c.vhdx", { kind: "differencing", parentPath: "/p.vhdx" });
  const c = await open(fs, "/c.vhdx");
  await c.write(9, new Uint8Array(1024).fill(0x55));
  const b = new Uint8Array(4096);
  await c.read(8, b);
  assert.equal(b[0], 0xaa);
  assert.equal(b[512], 0x55);
  assert.equal(b[1535], 0x55);
  assert.equal(b[1536], 0xaa);
  assert.equal(await c.isAllocated(9, 2), true);
  assert.equal(await c.isAllocated(11, 100), false);
  assert.equal(await c.isAllocated(4096, 100), false);
  await c.close();
});

/** Rewrites both headers with `change` applied (keeping them valid). */
async function patchHeaders(fs: MemFs, path: string, change: Partial<Header>): Promise<void> {
  const f = await fs.open(path, "read-write");
  for (const off of [HEADER1_OFFSET, HEADER2_OFFSET]) {
    const b = new Uint8Array(4096);
    await f.read(off, b);
    const h = parseHeader(b) as Header;
    await f.write(off, buildHeader({ ...h, ...change }));
  }
}

async function patchRegions(fs: MemFs, path: string, change: (r: RegionTable) => RegionTable): Promise<void> {
  const f = await fs.open(path, "read-write");
  const b = new Uint8Array(65536);
  await f.read(REGION1_OFFSET, b);
  const t = buildRegionTable(change(parseRegionTable(b) as RegionTable));
  await f.write(REGION1_OFFSET, t);
  await f.write(REGION2_OFFSET, t);
}

async function rejectsWith(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof StorageError, `not a StorageError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    return true;
  });
}

test("hostile images fail with a StorageError naming the problem", async () => {
  const fresh = async () => {
    const fs = new MemFs();
    await vhdxFormat.create(fs, "/h.vhdx", { kind: "dynamic", capacity: 8 * MiB, blockSize: MiB });
    const d = await open(fs, "/h.vhdx");
    await d.write(0, new Uint8Array(4096).fill(1));
    await d.close();
    return fs;
  };
  let fs = await fresh();
  fs.file("/h.vhdx").current.data.fill(0x41, HEADER1_OFFSET + 100, HEADER1_OFFSET + 101);
  fs.file("/h.vhdx").current.data.fill(0x41, HEADER2_OFFSET + 100, HEADER2_OFFSET + 101);
  await rejectsWith(open(fs, "/h.vhdx"), "corrupt", /both VHDX headers are invalid \(bad checksum/);

  fs = await fresh();
  fs.file("/h.vhdx").current.length = 512 * 1024;
  await rejectsWith(open(fs, "/h.vhdx"), "corrupt", /too short/);

  fs = await fresh();
  await patchHeaders(fs, "/h.vhdx", { logLength: 64 * MiB });
  await rejectsWith(open(fs, "/h.vhdx"), "corrupt", /log .* beyond the end of the file/);

  fs = await fresh();
  const meta = fs.file("/h.vhdx").current.data;
  put32(meta, 2 * MiB + 65536, 3 * MiB); // file parameters: block size
  await rejectsWith(open(fs, "/h.vhdx"), "corrupt", /block size 3145728 is not a power of two/);

  fs = await fresh();
  put64(fs.file("/h.vhdx").current.data, 2 * MiB + 65536 + 8, 65 * 1024 * 1024 * MiB); // virtual disk size
  await rejectsWith(open(fs, "/h.vhdx"), "corrupt", /virtual disk size/);

  fs = await fresh();
  // BAT entry 0 -> far beyond the end of the file.
  put32(fs.file("/h.vhdx").current.data, 3 * MiB, (500 << 20) | 6);
  const d = await open(fs, "/h.vhdx", true);
  await rejectsWith(
    d.read(0, new Uint8Array(512)),
    "corrupt",
    /block 0: block at .* beyond the end of the file/,
  );
  await d.close();
  // BAT entry 0 -> on top of the metadata region.
  put32(fs.file("/h.vhdx").current.data, 3 * MiB, (2 << 20) | 6);
  const d2 = await open(fs, "/h.vhdx", true);
  await rejectsWith(d2.read(0, new Uint8Array(512)), "corrupt", /overlaps the metadata region/);
  const report = await d2.check(false);
  assert.match(report.problems.join("\n"), /BAT entry 0: block at 2097152 overlaps the metadata region/);

  fs = await fresh();
  await patchRegions(fs, "/h.vhdx", (r) => ({ ...r, bat: { offset: 2 * MiB, length: MiB } }));
  await rejectsWith(open(fs, "/h.vhdx"), "corrupt", /overlaps/);

  fs = await fresh();
  const f = fs.file("/h.vhdx").current.data;
  f[REGION1_OFFSET + 16 + 64] = 0x99; // a third entry with the required bit
  put32(f, REGION1_OFFSET + 8, 3);
  put32(f, REGION1_OFFSET + 16 + 64 + 16, MiB * 5);
  put32(f, REGION1_OFFSET + 16 + 64 + 24, MiB);
  put32(f, REGION1_OFFSET + 16 + 64 + 28, 1);
  const { crc32cWithHole } = await import("../../support/crc32c.js");
  put32(f, REGION1_OFFSET + 4, crc32cWithHole(f.subarray(REGION1_OFFSET, REGION1_OFFSET + 65536), 4));
  await rejectsWith(open(fs, "/h.vhdx"), "unsupported", /unknown required region/);
});

test("self-referencing and cyclic parents are refused as cycles", async () => {
  const fs = new MemFs();
  await vhdxFormat.create(fs, "/a.vhdx", { kind: "dynamic", capacity: 4 * MiB, blockSize: MiB });
  await vhdxFormat.create(fs, "/b.vhdx", { kind: "differencing", parentPath: "/a.vhdx" });
  await vhdxFormat.create(fs, "/c.vhdx", { kind: "differencing", parentPath: "/b.vhdx" });
  // Make b's parent c (b -> c -> b) by copying c's parent locator target path: swap file contents.
  const relB = fs.file("/c.vhdx").contents(); // c points at b
  fs.files.set("/a.vhdx", fs.file("/c.vhdx")); // now b -> a(=c's bytes) -> b
  await rejectsWith(open(fs, "/b.vhdx", true), "cycle", /refers back/);
  // A file whose parent is itself.
  fs.files.set("/b.vhdx", fs.file("/c.vhdx"));
  await rejectsWith(open(fs, "/b.vhdx", true), "cycle", /refers back/);
  assert.ok(relB.length > 0);
});

test("check repairs a BAT entry outside the file and a damaged header copy", async () => {
  const fs = new MemFs();
  await vhdxFormat.create(fs, "/r.vhdx", { kind: "dynamic", capacity: 8 * MiB, blockSize: MiB });
  let d = await open(fs, "/r.vhdx");
  await d.write(2048, new Uint8Array(512).fill(7));
  await d.close();
  const f = fs.file("/r.vhdx").current.data;
  put32(f, 3 * MiB + 8 * 3, (900 << 20) | 6);
  f[HEADER1_OFFSET + 200] = f[HEADER1_OFFSET + 200]! ^ 1;
  d = await open(fs, "/r.vhdx");
  const r1 = await d.check(true);
  assert.equal(r1.problems.length, 2, r1.problems.join("; "));
  assert.equal(r1.repaired.length, 2);
  assert.deepEqual(await d.check(false), { problems: [], repaired: [] });
  const b = new Uint8Array(512);
  await d.read(2048, b);
  assert.equal(b[0], 7);
  await d.close();
});

test("power cut at any point: the image reopens and every flushed write is present", async () => {
  const trials = process.env.VIRIDIAN_FULL === "1" ? 400 : 40;
  for (let t = 0; t < trials; t++) {
    const seed = 1000 + t;
    const r = rng(seed);
    const fs = new MemFs(true);
    const diff = t % 2 === 1;
    const cap = 8 * MiB;
    await vhdxFormat.create(fs, "/p.vhdx", { kind: "dynamic", capacity: cap, blockSize: MiB });
    const base = new Uint8Array(cap);
    if (diff) {
      const p = await open(fs, "/p.vhdx");
      const fill = pattern(seed, cap);
      await p.write(0, fill);
      base.set(fill);
      await p.close();
      await vhdxFormat.create(fs, "/c.vhdx", { kind: "differencing", parentPath: "/p.vhdx", blockSize: MiB });
    }
    const path = diff ? "/c.vhdx" : "/p.vhdx";
    fs.file(path).flush();
    const d = await open(fs, path);
    // Per sector: the values allowed after a crash (flushed value, plus anything written since).
    const flushed = base.slice();
    const latest = base.slice();
    const since: Array<[number, Uint8Array]> = [];
    const stopAt = Math.floor(r() * 40);
    for (let i = 0; i < stopAt; i++) {
      const lba = Math.floor(r() * (cap / 512 - 256));
      const n = 1 + Math.floor(r() * 255);
      if (r() < 0.1) {
        const first = Math.ceil((lba * 512) / MiB);
        if ((first + 1) * MiB <= cap) {
          await d.trim(first * 2048, 2048);
          latest.fill(0, first * MiB, (first + 1) * MiB);
          since.push([first * MiB, new Uint8Array(MiB)]);
        }
      } else {
        const data = pattern(seed * 100 + i, n * 512);
        await d.write(lba, data);
        latest.set(data, lba * 512);
        since.push([lba * 512, data]);
      }
      if (r() < 0.3) {
        await d.flush();
        flushed.set(latest);
        since.length = 0;
      }
    }
    fs.file(path).crash(r);
    fs.file("/p.vhdx").crash(r);
    const again = await open(fs, path);
    assert.deepEqual(await again.check(false), { problems: [], repaired: [] }, `seed ${seed}`);
    const got = await readAll(again);
    for (let s = 0; s < cap; s += 512) {
      const g = got.subarray(s, s + 512);
      const ok = (v: Uint8Array) => same(g, v);
      if (ok(flushed.subarray(s, s + 512))) continue;
      const alt = since.some(
        ([at, data]) => s >= at && s < at + data.length && ok(data.subarray(s - at, s - at + 512)),
      );
      assert.ok(alt, `seed ${seed}: sector ${s / 512} holds neither its flushed value nor a later write`);
    }
    await again.close();
  }
});

test("a read-only open replays a pending log in memory and leaves the file untouched", async () => {
  const fs = new MemFs();
  await vhdxFormat.create(fs, "/l.vhdx", { kind: "dynamic", capacity: 8 * MiB, blockSize: MiB });
  const d = await open(fs, "/l.vhdx");
  await d.write(4096, new Uint8Array(8192).fill(0x3c));
  await d.flush();
  // Simulate a crash between the log write and its application: the BAT page is back to all zeros.
  const f = fs.file("/l.vhdx");
  f.current.data.fill(0, 3 * MiB, 3 * MiB + 4096);
  const before = f.contents();
  const ro = await open(fs, "/l.vhdx", true);
  const b = new Uint8Array(8192);
  await ro.read(4096, b);
  assert.ok(b.every((x) => x === 0x3c));
  assert.match((await ro.check(false)).problems.join(), /not replayed/);
  await ro.close();
  assert.deepEqual(f.contents(), before);
  const rw = await open(fs, "/l.vhdx");
  await rw.read(4096, b);
  assert.ok(b.every((x) => x === 0x3c));
  assert.deepEqual(await rw.check(false), { problems: [], repaired: [] });
  await rw.close();
});

test("a moved chain finds its parent through the relative path", async () => {
  const fs = new MemFs();
  await vhdxFormat.create(fs, "/old/base.vhdx", { kind: "dynamic", capacity: 4 * MiB, blockSize: MiB });
  await vhdxFormat.create(fs, "/old/kids/child.vhdx", { kind: "differencing", parentPath: "/old/base.vhdx" });
  const b = await open(fs, "/old/base.vhdx");
  await b.write(1, new Uint8Array(512).fill(0x61));
  await b.close();
  await assert.rejects(
    open(fs, "/old/kids/child.vhdx", true),
    (e: unknown) => e instanceof StorageError && e.code === "parent-mismatch",
  );
  await vhdxFormat.create(fs, "/old/kids/child.vhdx", { kind: "differencing", parentPath: "/old/base.vhdx" });
  fs.files.set("/new/base.vhdx", fs.file("/old/base.vhdx"));
  fs.files.set("/new/kids/child.vhdx", fs.file("/old/kids/child.vhdx"));
  fs.files.delete("/old/base.vhdx");
  fs.files.delete("/old/kids/child.vhdx");
  const c = await open(fs, "/new/kids/child.vhdx", true);
  assert.equal(c.info().parentPath, "/new/base.vhdx");
  const got = new Uint8Array(512);
  await c.read(1, got);
  assert.equal(got[0], 0x61);
  await c.close();
  fs.files.delete("/new/base.vhdx");
  await rejectsWith(
    open(fs, "/new/kids/child.vhdx", true),
    "not-found",
    /parent not found \(tried \/new\/base.vhdx, \/old\/base.vhdx\)/,
  );
});

test("4096-byte sector chains keep per-sector bitmaps right", async () => {
  const fs = new MemFs();
  await vhdxFormat.create(fs, "/p4.vhdx", {
    kind: "dynamic",
    capacity: 6 * MiB,
    blockSize: MiB,
    logicalSectorSize: 4096,
  });
  const p = await open(fs, "/p4.vhdx");
  await p.write(0, new Uint8Array(6 * MiB).fill(0xee));
  await p.close();
  await vhdxFormat.create(fs, "/c4.vhdx", { kind: "differencing", parentPath: "/p4.vhdx", blockSize: MiB });
  const c = await open(fs, "/c4.vhdx");
  assert.equal(c.logicalSectorSize, 4096);
  const model = new Uint8Array(6 * MiB).fill(0xee);
  const r = rng(44);
  for (let i = 0; i < 30; i++) {
    const n = 1 + Math.floor(r() * 40);
    const lba = Math.floor(r() * (6 * 256 - n));
    const data = pattern(i, n * 4096);
    await c.write(lba, data);
    model.set(data, lba * 4096);
  }
  await c.close();
  const again = await open(fs, "/c4.vhdx", true);
  assert.ok(same(await readAll(again), model));
  await again.close();
});
