// The DVD medium the service reads for a worker: a worker's RemoteMedium reads the ISO's sectors through
// ServedMedium exactly as the file holds them; the service answers only for the medium it opened (another
// path, a misaligned, oversized or out-of-range read is an error answer); a read without a connection fails
// at once; a medium that is not an ISO is refused when it is opened.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ApiError } from "../api/errors.js";
import { StorageError } from "../storage/disk.js";
import { MEDIUM_CHUNK, MediumReads, RemoteMedium } from "../worker/remote-medium.js";
import { openMedium, ServedMedium } from "./served-medium.js";

function withIso(fn: (iso: string, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "viridian-served-"));
  const src = join(dir, "src");
  mkdirSync(src);
  // Larger than one chunk, so a 1 MiB read crosses chunks.
  writeFileSync(
    join(src, "BIG.BIN"),
    Uint8Array.from({ length: 1536 * 1024 }, (_, i) => (i * 7) & 0xff),
  );
  const iso = join(dir, "media.iso");
  execFileSync("genisoimage", ["-quiet", "-V", "SERVED", "-o", iso, src]);
  return fn(iso, dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test("a remote medium reads the ISO's bytes through the service, in chunks", () =>
  withIso(async (iso) => {
    const { info, disk } = await openMedium(iso);
    const served = new ServedMedium(null);
    await served.add(iso, disk);
    const reads = new MediumReads();
    const sizes: number[] = [];
    const medium = new RemoteMedium(
      info,
      (rid, path, offset, length) => {
        sizes.push(length);
        void served
          .read(path, offset, length)
          .then((r) => reads.answer(rid, "data" in r ? r.data : null, "error" in r ? r.error : null));
        return true;
      },
      reads,
    );
    const file = readFileSync(iso);
    assert.equal(medium.capacity, file.length);
    const dst = new Uint8Array(1024 * 1024);
    await medium.read(16, dst);
    assert.deepEqual(Buffer.from(dst), file.subarray(16 * 2048, 16 * 2048 + dst.length));
    assert.deepEqual(sizes, [MEDIUM_CHUNK, MEDIUM_CHUNK]);
    await assert.rejects(medium.write(), (e: unknown) => e instanceof StorageError && e.code === "read-only");
    await served.close();
  }));

test("the service answers only for the medium it opened, inside it", () =>
  withIso(async (iso) => {
    const { disk } = await openMedium(iso);
    const served = new ServedMedium(null);
    await served.add(iso, disk);
    const bad: Array<[string, number, number]> = [
      ["/etc/passwd", 0, 2048],
      [iso, 1, 2048],
      [iso, 0, 100],
      [iso, 0, MEDIUM_CHUNK + 2048],
      [iso, disk.capacity, 2048],
      [iso, -2048, 2048],
    ];
    for (const [path, offset, length] of bad) {
      const r = await served.read(path, offset, length);
      assert.ok("error" in r, `${path} ${offset} ${length}`);
    }
    assert.ok("data" in (await served.read(iso, 0, 2048)));
    await served.keepOnly(null);
    assert.ok("error" in (await served.read(iso, 0, 2048)), "nothing served after an eject");
  }));

test("a restarted service opens the medium the worker names at its first read", () =>
  withIso(async (iso) => {
    const { info, disk } = await openMedium(iso);
    await disk.close();
    const served = new ServedMedium(info);
    assert.ok("data" in (await served.read(iso, 0, 2048)));
    await served.close();
  }));

test("without a connection a read fails at once; a closed connection fails what it was asked", () =>
  withIso(async (iso) => {
    const { info, disk } = await openMedium(iso);
    await disk.close();
    const reads = new MediumReads();
    const offline = new RemoteMedium(info, () => false, reads);
    await assert.rejects(offline.read(0, new Uint8Array(2048)), (e: unknown) => e instanceof StorageError);
    const waiting = new RemoteMedium(info, () => true, reads).read(0, new Uint8Array(2048));
    reads.failAll();
    await assert.rejects(waiting, (e: unknown) => e instanceof StorageError && e.code === "io");
  }));

test("a medium that is not an ISO is refused when opened", () =>
  withIso(async (_iso, dir) => {
    const raw = join(dir, "raw.img");
    writeFileSync(raw, new Uint8Array(1024 * 1024));
    await assert.rejects(openMedium(raw), (e: unknown) => e instanceof ApiError && e.code === "bad-request");
  }));
