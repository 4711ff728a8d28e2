// An ISO 9660 image mastered at test time by genisoimage is detected by openImage, its files read back
// through our directory reader with the contents we put in, its sectors match the file, and writes fail.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeFileOpener } from "../src/host/node-files.js";
import { StorageError } from "../src/storage/disk.js";
import { isoFormat, type IsoDisk } from "../src/storage/iso9660.js";
import { openImage } from "../src/storage/open.js";
import { convert } from "../src/storage/operations.js";

test("a genisoimage ISO is read-only media whose files read back", async () => {
  const dir = mkdtempSync(join(tmpdir(), "viridian-iso-"));
  try {
    const src = join(dir, "src");
    mkdirSync(join(src, "BOOT"), { recursive: true });
    const big = new Uint8Array(100_000).map((_, i) => (i * 13) & 0xff);
    writeFileSync(join(src, "README.TXT"), "viridian install media\n");
    writeFileSync(join(src, "BOOT", "KERNEL.BIN"), big);
    const iso = join(dir, "media.iso");
    execFileSync("genisoimage", ["-quiet", "-V", "VIRIDIAN", "-o", iso, src]);
    const opener = new NodeFileOpener();
    const disk = await openImage(opener, iso, { readOnly: false });
    assert.equal(disk.info().format, "iso");
    assert.equal(disk.logicalSectorSize, 2048);
    assert.equal(disk.readOnly, true);
    assert.equal(disk.identity, "iso:VIRIDIAN");
    const file = readFileSync(iso);
    assert.equal(disk.capacity, file.length);
    const first = new Uint8Array(4 * 2048);
    await disk.read(16, first);
    assert.deepEqual(first, new Uint8Array(file.subarray(16 * 2048, 20 * 2048)));
    await assert.rejects(disk.write(0, new Uint8Array(2048)), (e: StorageError) => e.code === "read-only");
    await disk.close();
    const media = (await isoFormat.open(opener, iso, { readOnly: true })) as IsoDisk;
    const names = (await media.list("/")).map((e) => e.name).sort();
    assert.deepEqual(names, ["BOOT", "README.TXT"]);
    assert.equal(new TextDecoder().decode(await media.readFile("/README.TXT")), "viridian install media\n");
    assert.deepEqual(await media.readFile("/boot/kernel.bin"), big);
    await assert.rejects(media.readFile("/NOPE"), (e: StorageError) => e.code === "not-found");
    await media.close();
    // ISO to raw conversion is a plain copy of the media
    await convert(opener, iso, join(dir, "media.raw"), { format: "raw", kind: "fixed" });
    assert.deepEqual(readFileSync(join(dir, "media.raw")), file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
