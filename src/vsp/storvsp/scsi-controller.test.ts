// The controller: addresses with and without logical units, REPORT LUNS, several disks and a DVD on one
// controller, the bound on commands in flight (TASK SET FULL), a stuck disk that never blocks the caller or
// other units, detaching while commands run, and a handler bug answered as HARDWARE ERROR.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ArrayData,
  be,
  cdb,
  GatedDisk,
  isoDisk,
  memoryImage,
  rw,
  run,
  runIn,
  senseOf,
  SpyDisk,
} from "../../../tests/vsp/scsi-fixtures.js";
import { COMMANDS } from "./command-table.js";
import { ScsiController } from "./scsi-controller.js";
import { ScsiStatus } from "./scsi.js";

const reportLuns = (alloc = 4096): Uint8Array => be(cdb(12, 0xa0), 6, 4, alloc);

async function fourDisksAndDvd(): Promise<ScsiController> {
  const c = new ScsiController();
  for (const lun of [0, 1, 2, 5]) c.attachDisk(lun, (await memoryImage("raw", 64 * 1024 * (lun + 1))).disk);
  c.attachDvd(3, (await isoDisk(64)).disk);
  return c;
}

test("four disks and a DVD: REPORT LUNS lists them, each answers as its kind, empty LUNs as absent", async () => {
  const c = await fourDisksAndDvd();
  const { r, data } = await runIn(c, 0, reportLuns(), 4096);
  assert.equal(r.status, 0);
  assert.equal(new DataView(data.buffer).getUint32(0), 5 * 8);
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((i) => data[8 + i * 8 + 1]),
    [0, 1, 2, 3, 5],
  );
  // REPORT LUNS is answered at any LUN of target 0, and with an empty list elsewhere
  const viaEmpty = await c.execute({ path: 0, target: 0, lun: 9 }, reportLuns(), new ArrayData("in", 4096));
  assert.equal(viaEmpty.transferred, 48);
  const other = await c.execute({ path: 1, target: 0, lun: 0 }, reportLuns(), new ArrayData("in", 4096));
  assert.equal(other.status, 0);
  assert.equal(other.transferred, 8);
  assert.deepEqual(senseOf((await runIn(c, 0, reportLuns(15), 4096)).r), [5, 0x24, 0]);
  for (const [lun, type] of [
    [0, 0x00],
    [1, 0x00],
    [2, 0x00],
    [3, 0x05],
    [5, 0x00],
  ] as const) {
    const inq = await runIn(c, lun, cdb(6, 0x12, { 4: 36 }), 36);
    assert.equal(inq.data[0], type);
  }
  const capacities = [];
  for (const lun of [0, 1, 2, 5]) {
    const rc = await runIn(c, lun, cdb(10, 0x25), 8);
    capacities.push(new DataView(rc.data.buffer).getUint32(0) + 1);
  }
  assert.deepEqual(capacities, [128, 256, 384, 768]);
  // An empty LUN: INQUIRY says "no device here" (7Fh), VPD is refused, anything else is INVALID LUN.
  for (const address of [
    { path: 0, target: 0, lun: 4 },
    { path: 0, target: 1, lun: 0 },
    { path: 7, target: 0, lun: 0 },
    { path: 0, target: 0, lun: 200 },
  ]) {
    const buf = new ArrayData("in", 96);
    const inq = await c.execute(address, cdb(6, 0x12, { 4: 96 }), buf);
    assert.equal(inq.status, 0);
    assert.equal(inq.noLun, false);
    assert.equal(buf.bytes[0], 0x7f);
    const vpd = await c.execute(address, cdb(6, 0x12, { 1: 1, 4: 96 }), new ArrayData("in", 96));
    assert.deepEqual(senseOf(vpd), [5, 0x24, 0]);
    const tur = await c.execute(address, cdb(6, 0x00), new ArrayData("none", 0));
    assert.equal(tur.noLun, true);
    assert.deepEqual(senseOf(tur), [5, 0x25, 0]);
    const rs = new ArrayData("in", 18);
    assert.equal((await c.execute(address, cdb(6, 0x03, { 4: 18 }), rs)).status, 0);
    assert.deepEqual([rs.bytes[2], rs.bytes[12]], [5, 0x25]);
  }
  assert.deepEqual(c.luns, [0, 1, 2, 3, 5]);
  const spare = (await memoryImage("raw", 4096)).disk;
  assert.throws(() => c.attachDisk(0, spare), /already in use/);
  assert.throws(() => c.attachDvd(64, null), /outside/);
  assert.throws(() => c.attachDvd(6, spare), /2048-byte sectors/);
});

test("a stuck disk never blocks the caller or other LUNs; beyond the bound, TASK SET FULL", async () => {
  const { disk } = await memoryImage("raw", 64 * 1024);
  const gated = new GatedDisk(disk);
  const c = new ScsiController({ maxInFlight: 3 });
  c.attachDisk(0, gated);
  c.attachDisk(1, (await memoryImage("raw", 64 * 1024)).disk);
  const stuck = [runIn(c, 0, rw("read", 10, 0, 1), 512), runIn(c, 0, rw("read", 10, 1, 1), 512)];
  let done = 0;
  void Promise.all(stuck).then(() => done++);
  // Another LUN completes while the first disk is stuck.
  const other = await runIn(c, 1, rw("read", 10, 0, 1), 512);
  assert.equal(other.r.status, 0);
  assert.equal(gated.pendingReads, 2);
  assert.equal(c.commandsInFlight, 2);
  assert.equal(c.hasRoom, true);
  const third = runIn(c, 0, rw("read", 10, 2, 1), 512);
  assert.equal(c.hasRoom, false);
  const full = await runIn(c, 1, cdb(6, 0x12, { 4: 36 }), 36);
  assert.equal(full.r.status, ScsiStatus.TaskSetFull);
  assert.equal(full.r.transferred, 0);
  assert.equal(done, 0);
  gated.release();
  const results = await Promise.all([...stuck, third]);
  assert.deepEqual(
    results.map((x) => x.r.status),
    [0, 0, 0],
  );
  assert.equal(c.commandsInFlight, 0);
  assert.equal(c.counters.taskSetFull, 1);
});

test("detach waits for the unit's running commands; afterwards the LUN is absent", async () => {
  const { disk } = await memoryImage("raw", 64 * 1024);
  const gated = new GatedDisk(disk);
  const c = new ScsiController();
  c.attachDisk(0, gated);
  const pending = runIn(c, 0, rw("read", 10, 0, 1), 512);
  let detached = false;
  const detaching = c.detach(0).then(() => (detached = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(detached, false);
  assert.equal((await run(c, 0, cdb(6, 0x00))).noLun, true);
  gated.release();
  await detaching;
  assert.equal((await pending).r.status, 0);
  assert.equal(detached, true);
});

test("a handler bug is HARDWARE ERROR / INTERNAL TARGET FAILURE, counted, never a rejection", async () => {
  const { disk } = await memoryImage("raw", 64 * 1024);
  const broken = new SpyDisk(disk);
  broken.read = () => {
    throw new TypeError("boom");
  };
  const c = new ScsiController();
  c.attachDisk(0, broken);
  const r = (await runIn(c, 0, rw("read", 10, 0, 1), 512)).r;
  assert.deepEqual(senseOf(r), [4, 0x44, 0]);
  assert.equal(c.counters.internalErrors, 1);
  assert.match(c.lastInternalError ?? "", /boom/);
  // A buffer that refuses an access is also caught.
  const bad = { direction: "in" as const, length: 512, write: () => assert.fail("x"), read: () => undefined };
  const r2 = await c.execute({ path: 0, target: 0, lun: 0 }, cdb(6, 0x12, { 4: 36 }), bad);
  assert.deepEqual(senseOf(r2), [4, 0x44, 0]);
  assert.equal(typeof c.inspect().counters, "object");
});

test("the command table: CDB lengths follow the group code, opcodes are unique, every row has a handler", () => {
  const groupLength: Record<number, number> = { 0: 6, 1: 10, 2: 10, 4: 16, 5: 12 };
  for (const row of COMMANDS.values()) {
    assert.equal(row.cdbLength, groupLength[row.opcode >> 5], row.name);
    assert.ok(row.disk || row.dvd || row.target, row.name);
    if (row.direction === "out") assert.ok(!row.dvd, `${row.name}: the DVD is read-only`);
  }
  assert.ok(COMMANDS.size >= 29);
});

test("data bytes of successful READs and WRITEs are counted (the management API's disk throughput)", async () => {
  const c = new ScsiController();
  c.attachDisk(0, (await memoryImage("raw", 64 * 1024)).disk);
  assert.equal((await run(c, 0, rw("write", 10, 0, 2), new ArrayData("out", 1024))).status, ScsiStatus.Good);
  assert.equal((await runIn(c, 0, rw("read", 16, 0, 3), 1536)).r.status, ScsiStatus.Good);
  assert.equal((await runIn(c, 0, rw("read", 6, 1, 1), 512)).r.status, ScsiStatus.Good);
  // Neither a failed READ (past the end) nor other Data-In commands count.
  assert.equal((await runIn(c, 0, rw("read", 10, 4096, 1), 512)).r.status, ScsiStatus.CheckCondition);
  await runIn(c, 0, cdb(6, 0x12, { 4: 36 }), 36);
  assert.equal(c.counters.writeBytes, 1024);
  assert.equal(c.counters.readBytes, 2048);
});
