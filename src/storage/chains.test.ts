// Format-independent chain operations over both differencing formats (VHD and VHDX): a depth-3 chain with
// random writes matches a flat model; convert and merge give the same bytes; one parent serves two children
// at once. Runs on the in-memory file system.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryFileSystem } from "./memory-file.js";
import { createImage, openImage } from "./open.js";
import { convert, merge } from "./operations.js";
import type { ImageDisk, ImageFormatName } from "./image-format.js";

const MiB = 1024 * 1024;
const CAPACITY = 8 * MiB;

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function readAll(d: ImageDisk): Promise<Uint8Array> {
  const b = new Uint8Array(d.capacity);
  await d.read(0, b);
  return b;
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Writes random runs into `path` (opened alone), mirroring them into `model`. */
async function scribble(
  fs: MemoryFileSystem,
  path: string,
  model: Uint8Array,
  next: () => number,
): Promise<void> {
  const d = await openImage(fs, path, { readOnly: false });
  for (let i = 0; i < 24; i++) {
    const sectors = 1 + Math.floor(next() * 300);
    const lba = Math.floor(next() * (CAPACITY / 512 - sectors));
    const data = new Uint8Array(sectors * 512);
    for (let j = 0; j < data.length; j += 97) data[j] = Math.floor(next() * 256);
    await d.write(lba, data);
    model.set(data, lba * 512);
  }
  await d.flush();
  await d.close();
}

for (const format of ["vhd", "vhdx"] as const satisfies readonly ImageFormatName[]) {
  const ext = `.${format}`;

  test(`${format}: depth-3 chain matches a flat model; convert and merge give the same bytes`, async () => {
    const seed = Number(process.env.VIRIDIAN_SEED ?? 0x5eed) + (format === "vhd" ? 1 : 2);
    const next = rng(seed);
    const fs = new MemoryFileSystem();
    const model = new Uint8Array(CAPACITY);
    const blockSize = format === "vhdx" ? MiB : 512 * 1024;
    await createImage(fs, `/l0${ext}`, format, { kind: "dynamic", capacity: CAPACITY, blockSize });
    await scribble(fs, `/l0${ext}`, model, next);
    await createImage(fs, `/l1${ext}`, format, { kind: "differencing", parentPath: `/l0${ext}` });
    await scribble(fs, `/l1${ext}`, model, next);
    await createImage(fs, `/l2${ext}`, format, { kind: "differencing", parentPath: `l1${ext}` });
    await scribble(fs, `/l2${ext}`, model, next);

    const top = await openImage(fs, `/l2${ext}`, { readOnly: true });
    assert.equal(
      firstDifference(await readAll(top), model),
      -1,
      `chain differs from the model (seed ${seed})`,
    );
    await top.close();

    for (const target of ["raw", "vhd", "vhdx"] as const) {
      const out = `/flat-${target}`;
      await convert(fs, `/l2${ext}`, out, { format: target, kind: "dynamic" });
      const flat = await openImage(fs, out, { readOnly: true });
      assert.equal(flat.parent, null);
      assert.equal(firstDifference(await readAll(flat), model), -1, `convert to ${target} (seed ${seed})`);
      await flat.close();
    }

    // Merging the top into its parent leaves the parent's chain equal to the whole former chain.
    const into = await merge(fs, `/l2${ext}`);
    assert.equal(into, `/l1${ext}`);
    const merged = await openImage(fs, `/l1${ext}`, { readOnly: true });
    assert.equal(firstDifference(await readAll(merged), model), -1, `merge (seed ${seed})`);
    await merged.close();
  });

  test(`${format}: one parent serves two children at once, and stays unwritten`, async () => {
    const fs = new MemoryFileSystem();
    await createImage(fs, `/base${ext}`, format, { kind: "dynamic", capacity: 4 * MiB });
    const b = await openImage(fs, `/base${ext}`, { readOnly: false });
    await b.write(0, new Uint8Array(4096).fill(0x5a));
    await b.close();
    const before = fs.files.get(`/base${ext}`)!.contents();
    await createImage(fs, `/a${ext}`, format, { kind: "differencing", parentPath: `/base${ext}` });
    await createImage(fs, `/b${ext}`, format, { kind: "differencing", parentPath: `/base${ext}` });
    const a = await openImage(fs, `/a${ext}`, { readOnly: false });
    const c = await openImage(fs, `/b${ext}`, { readOnly: false });
    await a.write(1, new Uint8Array(512).fill(1));
    await c.write(2, new Uint8Array(512).fill(2));
    const ra = new Uint8Array(4096);
    const rc = new Uint8Array(4096);
    await a.read(0, ra);
    await c.read(0, rc);
    assert.deepEqual([ra[0], ra[600], ra[1100], rc[0], rc[600], rc[1100]], [0x5a, 1, 0x5a, 0x5a, 0x5a, 2]);
    await a.close();
    await c.close();
    assert.equal(firstDifference(fs.files.get(`/base${ext}`)!.contents(), before), -1, "parent was modified");
  });
}
