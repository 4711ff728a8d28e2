// Hostile CDBs against the SCSI target: random and table opcodes, LBAs at and past the edges, lengths and
// buffers that disagree with the CDB in size and direction, on a read-write raw disk, a 4096-byte-sector
// VHDX, a read-only disk, a DVD and an empty LUN. Every answer must be well formed (status, sense, transfer
// within the buffer); no command may throw, touch a buffer outside its bounds, write outside a disk's
// capacity, or write anything when it fails; the raw disk must equal a shadow copy that only successful
// writes (decoded here, independently of the target) change; read-only media must stay byte-identical; and
// two runs with the same seed must end in the same state hash.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { rng } from "../storage/memory-disks.js";
import { ArrayData, isoDisk, memoryImage, SpyDisk } from "./scsi-fixtures.js";
import { applyToShadow, type FuzzUnit, randomCommand as generate, WRITE_OPCODES } from "./cdb-generator.js";
import { ScsiController, type ScsiAddress } from "../../src/vsp/storvsp/scsi-controller.js";

const SEQUENTIAL = 25_000;
const CONCURRENT_BATCHES = 400;
const RAW_BYTES = 256 * 1024;

interface Setup {
  c: ScsiController;
  raw: SpyDisk;
  shadow: Uint8Array;
  vhdx: SpyDisk;
  readOnly: SpyDisk;
  readOnlyBytes: Uint8Array;
  iso: SpyDisk;
  isoBytes: Uint8Array;
}

async function setup(): Promise<Setup> {
  const fill = (b: Uint8Array): void => b.forEach((_, i) => (b[i] = (i * 131 + (i >> 9)) & 0xff));
  const raw = new SpyDisk((await memoryImage("raw", RAW_BYTES, { fill })).disk);
  const shadow = new Uint8Array(RAW_BYTES);
  fill(shadow);
  const vhdx = new SpyDisk((await memoryImage("vhdx", 1024 * 1024, { logical: 4096 })).disk);
  const readOnly = new SpyDisk((await memoryImage("raw", 64 * 1024, { fill, readOnly: true })).disk);
  const readOnlyBytes = new Uint8Array(64 * 1024);
  fill(readOnlyBytes);
  const { bytes: isoBytes, disk } = await isoDisk(48);
  const iso = new SpyDisk(disk);
  const c = new ScsiController({ maxInFlight: 8 });
  c.attachDisk(0, raw);
  c.attachDisk(1, vhdx);
  c.attachDisk(2, readOnly);
  c.attachDvd(3, iso);
  return { c, raw, shadow, vhdx, readOnly, readOnlyBytes, iso, isoBytes };
}

const UNITS: FuzzUnit[] = [
  { kind: "disk", blockSize: 512, blocks: RAW_BYTES / 512, weight: 5 },
  { kind: "disk", blockSize: 4096, blocks: 256, weight: 2 },
  { kind: "disk", blockSize: 512, blocks: 128, weight: 1 },
  { kind: "dvd", blockSize: 2048, blocks: 48, weight: 3 },
  { kind: null, blockSize: 512, blocks: 0, weight: 1 },
];

function randomCommand(r: () => number): { address: ScsiAddress; cdb: Uint8Array; data: ArrayData } {
  const c = generate(r, UNITS);
  return { address: c.address, cdb: c.cdb, data: new ArrayData(c.direction, c.bytes) };
}

async function fuzz(seed: number): Promise<string> {
  const s = await setup();
  const r = rng(seed);
  const hash = createHash("sha256");
  const senses = new Map<string, number>();
  const disks = [s.raw, s.vhdx, s.readOnly, s.iso];
  const check = (
    cmd: ReturnType<typeof randomCommand>,
    res: Awaited<ReturnType<ScsiController["execute"]>>,
  ): void => {
    assert.ok([0x00, 0x02, 0x28].includes(res.status), `status ${res.status}`);
    assert.equal(res.sense !== null, res.status === 0x02);
    if (res.sense) {
      assert.equal(res.sense.length, 18);
      assert.equal(res.sense[0], 0x70);
      assert.notEqual(res.sense[2]! & 0x0f, 0);
      assert.equal(res.transferred, 0);
      const k = `${(res.sense[2]! & 0x0f).toString(16)}/${res.sense[12]!.toString(16)}`;
      senses.set(k, (senses.get(k) ?? 0) + 1);
    }
    assert.ok(res.transferred <= cmd.data.length, "transferred within the buffer");
    assert.deepEqual(cmd.data.violations, []);
    hash.update(
      `${res.status}:${res.transferred}:${res.overrun}:${res.noLun}:${res.sense?.join(",") ?? ""};`,
    );
  };
  for (let i = 0; i < SEQUENTIAL; i++) {
    const cmd = randomCommand(r);
    const before = disks.map((d) => d.writes.length + d.trims.length);
    const res = await s.c.execute(cmd.address, cmd.cdb, cmd.data);
    check(cmd, res);
    const changed = disks.map((d, k) => d.writes.length + d.trims.length - before[k]!);
    if (res.status !== 0) assert.deepEqual(changed, [0, 0, 0, 0], `a failed ${cmd.cdb[0]} wrote`);
    else if (changed.some((n) => n > 0))
      assert.ok(WRITE_OPCODES.has(cmd.cdb[0]!), `opcode ${cmd.cdb[0]} wrote`);
    if (res.status === 0 && cmd.address.lun === 0 && cmd.address.path === 0 && cmd.address.target === 0) {
      applyToShadow(s.shadow, cmd.cdb, cmd.data.bytes);
    }
    if (i % 2500 === 0) {
      // Swap the DVD's medium now and then: out and back in.
      const dvd = s.c.unit(3);
      if (dvd?.kind === "dvd") await dvd.changeMedium(r() < 0.5 ? null : s.iso);
    }
  }
  // Concurrent batches: more commands than the in-flight bound, so some meet TASK SET FULL.
  for (let b = 0; b < CONCURRENT_BATCHES; b++) {
    const cmds = Array.from({ length: 12 }, () => randomCommand(r)).filter(
      (c) => !(c.address.lun === 0 && WRITE_OPCODES.has(c.cdb[0] ?? -1)), // keep the shadow exact
    );
    const results = await Promise.all(cmds.map((c) => s.c.execute(c.address, c.cdb, c.data)));
    results.forEach((res, k) => check(cmds[k]!, res));
  }
  assert.equal(s.c.counters.internalErrors, 0, s.c.lastInternalError ?? "");
  assert.ok(s.c.counters.taskSetFull > 0, "the in-flight bound was reached");
  assert.equal(s.c.commandsInFlight, 0);
  for (const d of disks) assert.deepEqual(d.outOfBounds, []);
  const image = async (d: SpyDisk, bytes: number): Promise<Uint8Array> => {
    const b = new Uint8Array(bytes);
    await d.inner.read(0, b);
    return b;
  };
  assert.ok(Buffer.from(await image(s.raw, RAW_BYTES)).equals(Buffer.from(s.shadow)), "raw image = shadow");
  assert.deepEqual(await image(s.readOnly, s.readOnlyBytes.length), s.readOnlyBytes);
  assert.deepEqual(s.readOnly.writes, []);
  assert.deepEqual(await image(s.iso, s.isoBytes.length), s.isoBytes);
  hash.update(await image(s.vhdx, 1024 * 1024));
  hash.update(s.shadow);
  const counts = s.c.counters;
  console.log(
    `scsi fuzz seed ${seed}: ${counts.commands} commands, ${counts.checkConditions} CHECK CONDITION, ` +
      `${counts.taskSetFull} TASK SET FULL, ${counts.noLun} no LUN, ` +
      `${s.raw.writes.length + s.vhdx.writes.length} disk writes, ${s.raw.trims.length + s.vhdx.trims.length} trims; ` +
      `sense key/ASC: ${[...senses]
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${k} ${n}`)
        .join(", ")}`,
  );
  return hash.digest("hex");
}

test("hostile CDBs: well-formed answers, no write outside capacity or on failure, shadow-exact images", async () => {
  const first = await fuzz(0x5c51);
  const second = await fuzz(0x5c51);
  assert.equal(first, second, "the same seed ends in the same state");
});
