// Interop with qemu-img/qemu-io (qemu's "vpc" driver): images qemu makes read identically through our Disk;
// images we make are recognised by qemu-img info and convert to exactly our view. qemu 7.x's vpc driver has no
// backing-file support, so for a differencing VHD qemu sees the child layer alone (its own sectors, zeros
// elsewhere): we check exactly that, and that our flattened conversion of the chain reads the same in qemu.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeFileOpener } from "../src/host/node-files.js";
import { createImage, openImage } from "../src/storage/open.js";
import { convert } from "../src/storage/operations.js";
import type { ImageDisk } from "../src/storage/image-format.js";

const opener = new NodeFileOpener();
const run = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: "utf8" });

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

async function ourView(path: string): Promise<{ bytes: Uint8Array; disk: ImageDisk }> {
  const d = await openImage(opener, path, { readOnly: true });
  const bytes = new Uint8Array(d.capacity);
  await d.read(0, bytes);
  return { bytes, disk: d };
}

function qemuRaw(dir: string, path: string): Uint8Array {
  const out = join(dir, `q-${Math.random().toString(36).slice(2)}.raw`);
  run("qemu-img", ["convert", "-f", "vpc", "-O", "raw", path, out]);
  return new Uint8Array(readFileSync(out));
}

function sameBytes(a: Uint8Array, b: Uint8Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: sizes differ`);
  const i = a.findIndex((x, k) => x !== b[k]);
  assert.equal(i, -1, `${what}: first difference at byte ${i}`);
}

test("images qemu creates (fixed and dynamic) read back identically", async () => {
  const dir = mkdtempSync(join(tmpdir(), "viridian-qemu-"));
  try {
    for (const sub of ["fixed", "dynamic"]) {
      const p = join(dir, `${sub}.vhd`);
      run("qemu-img", ["create", "-q", "-f", "vpc", "-o", `subformat=${sub}`, p, "24M"]);
      run("qemu-io", ["-f", "vpc", "-c", "write -P 0xab 0 1M", "-c", "write -P 0x5c 7M 64k", p]);
      const { bytes, disk } = await ourView(p);
      assert.equal(disk.info().kind, sub);
      sameBytes(bytes, qemuRaw(dir, p), `qemu ${sub}`);
      assert.ok(bytes.subarray(0, 1 << 20).every((x) => x === 0xab));
      assert.deepEqual((await disk.check(false)).problems, []);
      await disk.close();
    }
    // a random raw file converted by qemu-img
    const random = rng(7);
    const raw = new Uint8Array(5 << 20);
    for (let i = 0; i < raw.length; i += 4096)
      if (random() < 0.5) raw.fill(Math.floor(random() * 256), i, i + 4096);
    const rawPath = join(dir, "random.raw");
    writeFileSync(rawPath, raw);
    for (const sub of ["fixed", "dynamic"]) {
      const p = join(dir, `conv-${sub}.vhd`);
      run("qemu-img", ["convert", "-f", "raw", "-O", "vpc", "-o", `subformat=${sub}`, rawPath, p]);
      const { bytes, disk } = await ourView(p);
      sameBytes(bytes.subarray(0, raw.length), raw, `converted ${sub}`);
      assert.ok(
        bytes.subarray(raw.length).every((x) => x === 0),
        "qemu's CHS rounding tail is zero",
      );
      sameBytes(bytes, qemuRaw(dir, p), `converted ${sub} vs qemu`);
      await disk.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("images we create and write are recognised by qemu-img and convert to exactly our view", async () => {
  const dir = mkdtempSync(join(tmpdir(), "viridian-qemu-"));
  try {
    const random = rng(11);
    for (const kind of ["fixed", "dynamic"] as const) {
      const p = join(dir, `ours-${kind}.vhd`);
      const capacity = 20 * 1024 * 1024 + 7 * 512; // not a CHS multiple: current_size must win
      await createImage(opener, p, "vhd", { kind, capacity });
      const d = await openImage(opener, p, { readOnly: false });
      for (let k = 0; k < 40; k++) {
        const n = 1 + Math.floor(random() * 64);
        const lba = Math.floor(random() * (capacity / 512 - n));
        await d.write(lba, new Uint8Array(n * 512).fill(1 + Math.floor(random() * 255)));
      }
      await d.flush();
      await d.close();
      const info = JSON.parse(run("qemu-img", ["info", "-f", "vpc", "--output=json", p])) as {
        format: string;
        "virtual-size": number;
      };
      assert.equal(info.format, "vpc");
      assert.equal(info["virtual-size"], capacity);
      const { bytes, disk } = await ourView(p);
      sameBytes(qemuRaw(dir, p), bytes, `ours ${kind}`);
      await disk.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a differencing VHD we make: qemu sees the child layer; the flattened chain reads the same in qemu", async () => {
  const dir = mkdtempSync(join(tmpdir(), "viridian-qemu-"));
  try {
    const base = join(dir, "base.vhd");
    const child = join(dir, "child.vhd");
    run("qemu-img", ["create", "-q", "-f", "vpc", base, "16M"]);
    run("qemu-io", ["-f", "vpc", "-c", "write -P 0x11 0 4M", base]);
    await createImage(opener, child, "vhd", { kind: "differencing", parentPath: base });
    const d = await openImage(opener, child, { readOnly: false });
    const random = rng(5);
    const own = new Uint8Array(d.capacity);
    for (let k = 0; k < 30; k++) {
      const n = 1 + Math.floor(random() * 32);
      const lba = Math.floor(random() * (d.capacity / 512 - n));
      const buf = new Uint8Array(n * 512).fill(0x80 + k);
      await d.write(lba, buf);
      own.set(buf, lba * 512);
    }
    await d.flush();
    const view = new Uint8Array(d.capacity);
    await d.read(0, view);
    await d.close();
    const info = JSON.parse(run("qemu-img", ["info", "-f", "vpc", "--output=json", child])) as {
      format: string;
    };
    assert.equal(info.format, "vpc");
    sameBytes(qemuRaw(dir, child), own, "qemu's view of the child layer");
    const flat = join(dir, "flat.vhd");
    await convert(opener, child, flat, { format: "vhd", kind: "dynamic" });
    sameBytes(qemuRaw(dir, flat), view, "flattened chain");
    // where the child holds nothing, the chain shows qemu's base data (0x11 in the first 4 MiB, else zeros)
    for (let i = 0; i < view.length; i += 512) {
      const expected = own[i] !== 0 ? own[i] : i < 4 << 20 ? 0x11 : 0;
      assert.equal(view[i], expected, `byte ${i}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
