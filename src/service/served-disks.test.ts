// The disks the service serves for a worker (hot added): every request of a possibly compromised worker is
// checked against the image it names (bounds, alignment, size, read-only), never reaches another file, and
// a removed disk is closed.

import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { openServedDisk, ServedDisks } from "./served-disks.js";

const dir = mkdtempSync(join(tmpdir(), "viridian-served-disks-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function open(path: string): boolean {
  return readdirSync("/proc/self/fd").some((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  });
}

test("served disk I/O: checked requests only, read-only honoured, closed on removal", async () => {
  const rw = join(dir, "rw.img");
  const ro = join(dir, "ro.img");
  writeFileSync(rw, Buffer.alloc(1024 * 1024));
  writeFileSync(ro, Buffer.alloc(1024 * 1024));
  const served = new ServedDisks([]);
  const a = await openServedDisk(rw, false);
  const b = await openServedDisk(ro, true);
  assert.equal(a.info.capacity, 1024 * 1024);
  assert.equal(b.info.readOnly, true);
  served.add(rw, a.disk);
  served.add(ro, b.disk);
  const data = Buffer.alloc(512, 0x5a).toString("base64");
  assert.deepEqual(await served.io(rw, "write", 512, 512, data), { data: new Uint8Array(0) });
  const back = await served.io(rw, "read", 512, 512, null);
  assert.ok("data" in back && back.data.every((x) => x === 0x5a));
  for (const [path, op, offset, length, d] of [
    [rw, "read", 1024 * 1024, 512, null], // past the end
    [rw, "read", 100, 512, null], // unaligned
    [rw, "read", 0, 1024 * 1024, null], // larger than one request may be
    [rw, "read", -512, 512, null],
    [rw, "write", 0, 512, Buffer.alloc(100).toString("base64")], // data of the wrong size
    [ro, "write", 0, 512, data], // read-only
    [ro, "trim", 0, 512, null],
    [rw, "format", 0, 512, null], // no such operation
    ["/etc/passwd", "read", 0, 512, null], // not served
  ] as const) {
    const r = await served.io(path, op, offset, length, d);
    assert.ok("error" in r, `${op} ${path} ${offset}+${length} is refused`);
  }
  assert.equal(open(rw), true);
  await served.remove(rw);
  assert.equal(open(rw), false, "a removed disk is closed");
  assert.ok("error" in (await served.io(rw, "read", 0, 512, null)));
  await served.close();
  assert.equal(open(ro), false);
});
