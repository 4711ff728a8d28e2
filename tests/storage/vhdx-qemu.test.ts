// Interop with Debian's qemu-img/qemu-io (qemu-utils 7.2): images qemu writes read back identically through
// our Disk; images we create and write pass `qemu-img check` and convert to the same raw bytes we read.
// qemu cannot open differencing VHDX at all ("Operation not supported"), which the last test pins down;
// parent/child content is verified through our own code and by converting our flattened view.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeFileOpener as NodeOpener } from "../../src/host/node-files.js";
import { rng } from "./memory-disks.js";
import { vhdxFormat } from "../../src/storage/vhdx/format.js";
import type { ImageDisk } from "../../src/storage/image-format.js";

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), "vhdx-qemu-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const opener = new NodeOpener();
const q = (cmd: string, ...args: string[]) =>
  execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

function random(seed: number, n: number): Uint8Array {
  const r = rng(seed);
  const b = new Uint8Array(n);
  const w = new Uint32Array(b.buffer, 0, n >>> 2);
  for (let i = 0; i < w.length; i++) w[i] = (r() * 2 ** 32) >>> 0;
  return b;
}

async function readAll(d: ImageDisk): Promise<Uint8Array> {
  const b = new Uint8Array(d.capacity);
  await d.read(0, b);
  return b;
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

test("images qemu-io wrote read back identically", async () => {
  for (const sub of ["fixed", "dynamic"]) {
    const p = join(dir, `qemu-${sub}.vhdx`);
    q("qemu-img", "create", "-q", "-f", "vhdx", "-o", `subformat=${sub}`, p, "16M");
    q("qemu-io", "-f", "vhdx", "-c", "write -P 0xcd 1M 3M", p);
    const d = await vhdxFormat.open(opener, p, { readOnly: true });
    assert.equal(d.info().kind, sub);
    const all = await readAll(d);
    const expected = new Uint8Array(16 * MiB);
    expected.fill(0xcd, MiB, 4 * MiB);
    assert.ok(same(all, expected), sub);
    assert.deepEqual(await d.check(false), { problems: [], repaired: [] });
    await d.close();
  }
});

test("qemu-img convert of random raw files reads back identically", async () => {
  const raw = join(dir, "src.raw");
  const data = random(7, 20 * MiB);
  data.fill(0, 5 * MiB, 13 * MiB); // a hole qemu leaves unallocated
  writeFileSync(raw, data);
  for (const sub of ["fixed", "dynamic"]) {
    const p = join(dir, `conv-${sub}.vhdx`);
    q("qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", `subformat=${sub}`, raw, p);
    const d = await vhdxFormat.open(opener, p, { readOnly: true });
    assert.ok(same(await readAll(d), data), sub);
    await d.close();
  }
});

test("images we create and write pass qemu-img check and convert to the bytes we read", async () => {
  const cases = [
    { kind: "dynamic", lss: 512, blockSize: MiB },
    { kind: "dynamic", lss: 512, blockSize: 8 * MiB },
    { kind: "fixed", lss: 512, blockSize: 2 * MiB },
  ] as const;
  let seed = 100;
  for (const c of cases) {
    const p = join(dir, `ours-${c.kind}-${c.lss}-${c.blockSize}.vhdx`);
    const cap = 24 * MiB + 3 * c.lss;
    await vhdxFormat.create(opener, p, {
      kind: c.kind,
      capacity: cap,
      blockSize: c.blockSize,
      logicalSectorSize: c.lss,
    });
    const d = await vhdxFormat.open(opener, p, { readOnly: false });
    const r = rng(seed++);
    for (let i = 0; i < 40; i++) {
      const sectors = cap / c.lss;
      const n = 1 + Math.floor(r() * 300);
      const lba = Math.floor(r() * (sectors - n));
      if (r() < 0.1) await d.trim(lba, n * 8);
      else await d.write(lba, random(seed * 1000 + i, n * c.lss));
      if (r() < 0.2) await d.flush();
    }
    const ours = await readAll(d);
    await d.close();
    const check = spawnSync("qemu-img", ["check", "-f", "vhdx", p], { encoding: "utf8" });
    assert.equal(check.status, 0, `${p}: ${check.stdout}${check.stderr}`);
    assert.match(check.stdout, /No errors were found/);
    const out = join(dir, "out.raw");
    q("qemu-img", "convert", "-f", "vhdx", "-O", "raw", p, out);
    assert.ok(same(readFileSync(out), ours), `${c.kind}/${c.lss}: qemu's view differs from ours`);
    const info = JSON.parse(q("qemu-img", "info", "--output=json", p)) as { "virtual-size": number };
    assert.equal(info["virtual-size"], cap);
    // And qemu writing into our image is visible to us.
    q("qemu-io", "-f", "vhdx", "-c", `write -P 0x5a ${c.lss * 5} ${c.lss * 3}`, p);
    const again = await vhdxFormat.open(opener, p, { readOnly: true });
    const b = new Uint8Array(c.lss * 3);
    await again.read(5, b);
    assert.ok(b.every((x) => x === 0x5a));
    await again.close();
  }
});

test("qemu 7.2 refuses 4096-byte logical sectors; such images round-trip through our code", async () => {
  const p = join(dir, "ours-4k.vhdx");
  await vhdxFormat.create(opener, p, {
    kind: "dynamic",
    capacity: 12 * MiB,
    logicalSectorSize: 4096,
    blockSize: MiB,
  });
  const d = await vhdxFormat.open(opener, p, { readOnly: false });
  const w = random(9, 5 * 4096);
  await d.write(300, w);
  await d.close();
  const r = spawnSync("qemu-img", ["info", "-f", "vhdx", p], { encoding: "utf8" });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /not supported/i);
  const again = await vhdxFormat.open(opener, p, { readOnly: true });
  assert.equal(again.logicalSectorSize, 4096);
  const b = new Uint8Array(w.length);
  await again.read(300, b);
  assert.ok(same(b, w));
  await again.close();
});

test("qemu-img cannot open differencing VHDX; our chain flattens to parent + child writes", async () => {
  const parent = join(dir, "parent.vhdx");
  const child = join(dir, "child.vhdx");
  const raw = join(dir, "parent.raw");
  const data = random(3, 8 * MiB);
  writeFileSync(raw, data);
  q("qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic", raw, parent);
  await vhdxFormat.create(opener, child, { kind: "differencing", parentPath: parent });
  const d = await vhdxFormat.open(opener, child, { readOnly: false });
  const w = random(4, 3 * MiB + 1024);
  await d.write(2047, w);
  data.set(w, 2047 * 512);
  assert.ok(same(await readAll(d), data));
  await d.close();
  const r = spawnSync("qemu-img", ["info", "-f", "vhdx", child], { encoding: "utf8" });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /not supported/i);
  // Our flattened view, converted by qemu from raw to VHDX, reads back the same through both tools.
  const flat = join(dir, "flat.raw");
  const back = await vhdxFormat.open(opener, child, { readOnly: true });
  writeFileSync(flat, await readAll(back));
  await back.close();
  const flatVhdx = join(dir, "flat.vhdx");
  q("qemu-img", "convert", "-f", "raw", "-O", "vhdx", flat, flatVhdx);
  const f = await vhdxFormat.open(opener, flatVhdx, { readOnly: true });
  assert.ok(same(await readAll(f), data));
  await f.close();
  // The parent is untouched by writes to the child and still passes qemu's check.
  assert.equal(spawnSync("qemu-img", ["check", "-f", "vhdx", parent]).status, 0);
});
