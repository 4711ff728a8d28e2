// A VM's storage (src/worker/vm-storage.ts) over in-memory files and a real VMBus server: disks on LUN 0.. in
// order and the DVD after them, the image's block size as the unmap granularity (VPD B0), one controller
// offered only when there is storage (or an empty DVD drive is asked for, whose medium is swapped and the old
// one closed), images that do not open (or a DVD that is no ISO) refused by name with
// everything already opened closed again, and the end of the VM flushing writable images and closing all.
// Must not: boot a guest (tests/vsp/linux-storage.test.ts does) or assert timings.
// Spec: docs/architecture.md "Storage in a VM".
import { strict as assert } from "node:assert";
import { test } from "node:test";
import type { FileHandle, FileOpener } from "../../src/storage/disk.js";
import { MemoryFileSystem } from "../../src/storage/memory-file.js";
import { createImage, openImage } from "../../src/storage/open.js";
import { VmbusServer } from "../../src/vmbus/server.js";
import { VmStorage, VmStorageError } from "../../src/worker/vm-storage.js";
import { TestGuest } from "../vmbus/guest-client.js";
import { ArrayData, cdb, isoImage, run, rw } from "../vsp/scsi-fixtures.js";

const MiB = 1024 * 1024;

/** A MemoryFileSystem that counts open handles, flushes and closes. */
class CountingFs implements FileOpener {
  readonly inner = new MemoryFileSystem();
  /** Handles open now. */
  handles = 0;
  flushes = 0;
  async open(path: string, mode: "read" | "read-write"): Promise<FileHandle> {
    return this.count(await this.inner.open(path, mode));
  }
  private count(h: FileHandle): FileHandle {
    this.handles++;
    return {
      get name() {
        return h.name;
      },
      get readOnly() {
        return h.readOnly;
      },
      read: (p, d) => h.read(p, d),
      write: (p, s) => h.write(p, s),
      flush: () => {
        this.flushes++;
        return h.flush();
      },
      size: () => h.size(),
      truncate: (n) => h.truncate(n),
      close: () => {
        this.handles--;
        return h.close();
      },
    };
  }
  async create(path: string): Promise<FileHandle> {
    return this.count(await this.inner.create(path));
  }
  resolve(base: string, relative: string): string {
    return this.inner.resolve(base, relative);
  }
  isAbsolute(path: string): boolean {
    return this.inner.isAbsolute(path);
  }
  exists(path: string): Promise<boolean> {
    return this.inner.exists(path);
  }
}

async function images(): Promise<CountingFs> {
  const fs = new CountingFs();
  const raw = await fs.inner.create("/raw.img");
  await raw.write(0, new Uint8Array(4 * MiB));
  await raw.close();
  await createImage(fs.inner, "/dyn.vhdx", "vhdx", {
    kind: "dynamic",
    capacity: 64 * MiB,
    blockSize: 8 * MiB,
  });
  const iso = await fs.inner.create("/media.iso");
  await iso.write(0, isoImage(64));
  await iso.close();
  return fs;
}

function server(): VmbusServer {
  return new VmbusServer({ partition: new TestGuest().partition });
}

/** VPD B0's OPTIMAL UNMAP GRANULARITY (bytes 28-31, in logical blocks) of a LUN. */
async function unmapGranularity(storage: VmStorage, lun: number): Promise<number> {
  const buf = new ArrayData("in", 64);
  const r = await run(storage.controller, lun, cdb(6, 0x12, { 1: 1, 2: 0xb0, 4: 64 }), buf);
  assert.equal(r.status, 0);
  return new DataView(buf.bytes.buffer).getUint32(28, false);
}

test("disks on LUN 0.. in order, the DVD after them, one controller offered; the VHDX block as unmap granularity", async () => {
  const fs = await images();
  const vmbus = server();
  const storage = await VmStorage.open(
    vmbus,
    fs,
    [
      { path: "/raw.img", readOnly: false },
      { path: "/dyn.vhdx", readOnly: false },
      { path: "/raw.img", readOnly: true },
    ],
    "/media.iso",
  );
  assert.ok(storage);
  assert.deepEqual(storage.controller.luns, [0, 1, 2, 3]);
  assert.deepEqual(
    storage.controller.luns.map((l) => storage.controller.unit(l)?.kind),
    ["disk", "disk", "disk", "dvd"],
  );
  assert.deepEqual(
    vmbus.inspect().channels.map((c) => c.name),
    ["storvsp"],
  );
  // 8 MiB blocks of 512-byte sectors; a raw image allocates per sector.
  assert.equal(await unmapGranularity(storage, 1), (8 * MiB) / 512);
  assert.equal(await unmapGranularity(storage, 0), 1);
  assert.deepEqual(storage.describe(), [
    "LUN 0: disk 0 (/raw.img)",
    "LUN 1: disk 1 (/dyn.vhdx)",
    "LUN 2: disk 2 (/raw.img), read-only",
    "LUN 3: the DVD (/media.iso), read-only",
  ]);
  assert.match(storage.summary()[0]!, /^storage: storvsp closed; 0 SRBs, 0 in flight; refused: none$/);
  assert.equal(storage.summary().length, 5);
  await storage.close();
  assert.equal(fs.handles, 0, "every image closed");
});

test("without disks or a DVD nothing is opened or offered", async () => {
  const vmbus = server();
  assert.equal(await VmStorage.open(vmbus, new MemoryFileSystem(), [], null), null);
  assert.deepEqual(vmbus.inspect().channels, []);
});

test("an image that does not open is refused by name and what was opened is closed again", async () => {
  const fs = await images();
  const vmbus = server();
  await assert.rejects(
    VmStorage.open(
      vmbus,
      fs,
      [
        { path: "/raw.img", readOnly: false },
        { path: "/missing.vhdx", readOnly: false },
      ],
      null,
    ),
    (e: unknown) =>
      e instanceof VmStorageError && /^disk 1 \(\/missing\.vhdx\): .*no such file/.test(e.message),
  );
  assert.equal(fs.handles, 0);
  // A DVD must be an ISO 9660 image: a raw file would open as a 512-byte-sector disk.
  await assert.rejects(
    VmStorage.open(vmbus, fs, [{ path: "/dyn.vhdx", readOnly: false }], "/raw.img"),
    (e: unknown) =>
      e instanceof VmStorageError && /^the DVD \(\/raw\.img\): not an ISO 9660 image/.test(e.message),
  );
  assert.equal(fs.handles, 0);
  assert.deepEqual(vmbus.inspect().channels, [], "nothing offered after a failure");
});

test("the end of the VM waits for commands, flushes writable images and closes every image, once", async () => {
  const fs = await images();
  const storage = await VmStorage.open(server(), fs, [{ path: "/dyn.vhdx", readOnly: false }], "/media.iso");
  assert.ok(storage);
  const data = new ArrayData("out", 4096);
  data.bytes.fill(0x5a);
  const writing = run(storage.controller, 0, rw("write", 10, 100, 8), data);
  const flushesBefore = fs.flushes;
  const closing = storage.close();
  assert.equal((await writing).status, 0, "the write in flight completes");
  await Promise.all([closing, storage.close()]);
  assert.ok(fs.flushes > flushesBefore, "the writable image was flushed");
  assert.equal(fs.handles, 0, "every image closed");
  // What was written is in the image.
  const reopened = await VmStorage.open(server(), fs.inner, [{ path: "/dyn.vhdx", readOnly: true }], null);
  assert.ok(reopened);
  const back = new ArrayData("in", 4096);
  assert.equal((await run(reopened.controller, 0, rw("read", 10, 100, 8), back)).status, 0);
  assert.ok(back.bytes.every((b) => b === 0x5a));
  await reopened.close();
});

test("an empty DVD drive when asked for one; a medium swapped in while it runs, the old one closed", async () => {
  const fs = await images();
  const storage = await VmStorage.open(server(), fs, [], null, true);
  assert.ok(storage);
  assert.ok(storage.hasDvdDrive);
  assert.deepEqual(storage.controller.luns, [0]);
  assert.deepEqual(storage.describe(), ["LUN 0: DVD drive, empty"]);
  const dvd = storage.controller.unit(0);
  assert.equal(dvd?.kind, "dvd");
  // Empty: TEST UNIT READY is NOT READY (sense key 2).
  assert.equal((await run(storage.controller, 0, cdb(6, 0x00), new ArrayData("in", 0))).status, 2);

  const first = await openImage(fs, "/media.iso", { readOnly: true });
  await storage.changeDvd(first, "/media.iso");
  assert.deepEqual(storage.describe(), ["LUN 0: the DVD (/media.iso), read-only"]);
  assert.equal(fs.handles, 1);
  const second = await openImage(fs, "/media.iso", { readOnly: true });
  await storage.changeDvd(second, "/media.iso");
  assert.equal(fs.handles, 1, "the first medium was closed by the swap");
  await storage.changeDvd(null, "none");
  assert.equal(fs.handles, 0, "eject closes the medium");
  await assert.rejects(
    storage.changeDvd(await openImage(fs, "/raw.img", { readOnly: true }), "/raw.img"),
    VmStorageError,
  );
  await storage.close();
});

test("no DVD drive asked for: a VM without storage has no controller, and a medium change is refused", async () => {
  const fs = await images();
  assert.equal(await VmStorage.open(server(), fs, [], null), null);
  const storage = await VmStorage.open(server(), fs, [{ path: "/raw.img", readOnly: true }], null);
  assert.ok(storage && !storage.hasDvdDrive);
  await assert.rejects(storage.changeDvd(null, "none"), /no DVD drive/);
  await storage.close();
});
