// VHDX resize (with BAT relocation) and compact interoperate with qemu-img 7.2: the result passes
// `qemu-img check` and `qemu-img convert -O raw` reads the same bytes as our view.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeFileOpener } from "../../src/host/node-files.js";
import { createImage, openImage } from "../../src/storage/open.js";
import type { FileOpener } from "../../src/storage/disk.js";
import type { ImageDisk } from "../../src/storage/image-format.js";

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

async function dynamic(fs: FileOpener, path: string, capacity: number): Promise<ImageDisk> {
  await createImage(fs, path, "vhdx", { kind: "dynamic", capacity, blockSize: MiB });
  return openImage(fs, path, { readOnly: false });
}

test("qemu-img check passes and convert equals our view after resize and compact", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vhdx-rc-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const fs = new NodeFileOpener();
  const path = join(dir, "rc.vhdx");
  const d = await dynamic(fs, path, 8 * MiB);
  await d.write(0, new Uint8Array(MiB));
  await d.write(MiB / 512, pattern(11, 2 * MiB));
  await d.resize!(160 * GiB, false);
  await d.write((160 * GiB - MiB) / 512, pattern(12, MiB));
  await d.write((4 * MiB) / 512, new Uint8Array(MiB));
  await d.compact!();
  await d.resize!(160 * GiB - 512 * 1024, true);
  await d.close();
  execFileSync("qemu-img", ["check", "-q", "-f", "vhdx", path], { stdio: "pipe" });
  // Convert only the interesting ends; qemu-img dd would be slower to drive than comparing two ranges.
  const raw = join(dir, "rc.raw");
  execFileSync("qemu-img", ["convert", "-f", "vhdx", "-O", "raw", "-S", "4k", path, raw], { stdio: "pipe" });
  const r = await openImage(fs, path, { readOnly: true });
  assert.equal(r.capacity, 160 * GiB - 512 * 1024);
  const f = await fs.open(raw, "read");
  assert.equal(await f.size(), r.capacity);
  for (const at of [0, 8 * MiB, r.capacity - MiB]) {
    const ours = await readAt(r, at, MiB);
    const theirs = new Uint8Array(MiB);
    await f.read(at, theirs);
    assert.deepEqual(theirs, ours, `at ${at}`);
  }
  await f.close();
  await r.close();
  assert.ok(readFileSync(path).length < 32 * MiB);
});
