// Tests of `viridian vhd`: each subcommand end to end on temporary files, help texts, sizes, and exit status 1
// with the StorageError message for a broken image.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { command, parseSize } from "./vhd-command.js";
import { main } from "./main.js";

async function capture(args: string[]): Promise<{ status: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => void out.push(a.join(" "));
  console.error = (...a: unknown[]) => void err.push(a.join(" "));
  try {
    const status = await command.run(args);
    return { status, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

test("sizes take K/M/G/T suffixes; junk is refused", () => {
  assert.equal(parseSize("10G"), 10 * 1024 ** 3);
  assert.equal(parseSize("512M"), 512 * 1024 ** 2);
  assert.equal(parseSize("4096"), 4096);
  assert.equal(parseSize("1MiB"), 1024 ** 2);
  assert.throws(() => parseSize("ten"));
});

test("every subcommand has --help; vhd is registered in main", async () => {
  for (const sub of ["new", "info", "convert", "merge", "resize", "compact", "check"]) {
    const r = await capture([sub, "--help"]);
    assert.equal(r.status, 0);
    assert.match(r.out, new RegExp(`viridian vhd ${sub}`));
  }
  const log = console.log;
  console.log = () => {};
  try {
    assert.equal(await main(["vhd", "--help"]), 0);
  } finally {
    console.log = log;
  }
});

test("new, info, convert, resize, compact, merge and check work end to end", async () => {
  const dir = mkdtempSync(join(tmpdir(), "viridian-cli-"));
  try {
    const base = join(dir, "base.vhd");
    assert.equal((await capture(["new", base, "--size", "8M"])).status, 0);
    const info = await capture(["info", base, "--json"]);
    const parsed = JSON.parse(info.out) as Array<{ format: string; kind: string; capacity: number }>;
    assert.deepEqual([parsed[0]!.format, parsed[0]!.kind, parsed[0]!.capacity], ["vhd", "dynamic", 8 << 20]);
    const child = join(dir, "child.vhd");
    assert.equal((await capture(["new", child, "--parent", base])).status, 0);
    assert.match((await capture(["info", child])).out, /parent identity/);
    assert.equal((await capture(["convert", child, join(dir, "flat.vhdx.raw")])).status, 0);
    assert.equal(statSync(join(dir, "flat.vhdx.raw")).size, 8 << 20);
    assert.equal((await capture(["convert", base, join(dir, "fixed.vhd"), "--type", "fixed"])).status, 0);
    assert.equal((await capture(["resize", base, "--size", "16M"])).status, 0);
    assert.equal(JSON.parse((await capture(["info", base, "--json"])).out)[0].capacity, 16 << 20);
    assert.equal((await capture(["compact", base])).status, 0);
    assert.match((await capture(["check", base])).out, /clean/);
    // the child now names a parent whose size changed but whose identity did not: merge still works
    const m = await capture(["merge", child]);
    assert.equal(m.status, 0, m.err);
    assert.match(m.out, /can now be deleted/);
    // errors: existing target, broken image, missing arguments
    const exists = await capture(["new", base, "--size", "1M"]);
    assert.equal(exists.status, 1);
    assert.match(exists.err, /already exists/);
    const bad = join(dir, "bad.vhd");
    writeFileSync(bad, Buffer.concat([Buffer.alloc(1024), Buffer.from("conectix"), Buffer.alloc(504)]));
    const broken = await capture(["info", bad]);
    assert.equal(broken.status, 1);
    assert.match(broken.err, /checksum/);
    assert.equal((await capture(["resize", base])).status, 2);
    assert.equal((await capture(["frobnicate"])).status, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
