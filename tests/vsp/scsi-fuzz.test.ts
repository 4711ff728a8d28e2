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
import { COMMANDS } from "../../src/vsp/storvsp/command-table.js";
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

const OPCODES = [...COMMANDS.keys()];
const BLOCK_SIZES = [512, 4096, 512, 2048, 512];
const BLOCK_COUNTS = [RAW_BYTES / 512, 256, 128, 48, 0];

function randomCommand(r: () => number): { address: ScsiAddress; cdb: Uint8Array; data: ArrayData } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const int = (n: number): number => Math.floor(r() * n);
  const lun = r() < 0.03 ? int(256) : pick([0, 0, 0, 0, 0, 1, 1, 2, 3, 3, 3, 4]);
  const address = r() < 0.02 ? { path: int(8), target: int(2), lun } : { path: 0, target: 0, lun };
  // Two in five commands are well formed for their unit (an opcode it implements, fields in range, the
  // buffer the CDB asks for); the rest are mutated or random.
  const wellFormed = r() < 0.4;
  const kind = lun === 3 ? "dvd" : "disk";
  const opcode = wellFormed
    ? pick(OPCODES.filter((o) => COMMANDS.get(o)![kind]))
    : r() < 0.85
      ? pick(OPCODES)
      : int(256);
  const row = COMMANDS.get(opcode);
  const cdb = new Uint8Array(r() < 0.03 ? int(20) : 16);
  for (let i = 0; i < cdb.length; i++) cdb[i] = wellFormed || r() < 0.6 ? 0 : int(256);
  if (cdb.length > 0) cdb[0] = opcode;
  const length = row?.cdbLength ?? 10;
  const blockSize = lun < 5 ? BLOCK_SIZES[lun]! : 512;
  const blocks = lun < 5 ? BLOCK_COUNTS[lun]! : 0;
  let count = 0;
  // Most commands get plausible fields: an LBA inside or at an edge, a small transfer length, a sane
  // control byte; the rest keep their random bytes.
  if (r() < 0.75 && cdb.length >= 16) {
    const lba =
      r() < 0.6 ? int(blocks) : pick([0, blocks - 1, blocks, blocks + 1, 2 ** 32 - 1, int(2 ** 32)]);
    count = pick([0, 1, 1, 2, 3, 8, int(64), int(300), 0xffff]);
    const put = (at: number, width: number, v: number): void => {
      for (let i = width - 1; i >= 0; i--) {
        cdb[at + i] = v & 0xff;
        v = Math.floor(v / 256);
      }
    };
    if (length === 6) {
      put(1, 3, Math.max(0, lba) & 0x1fffff);
      cdb[4] = count & 0xff;
    } else if (length === 10) {
      put(2, 4, Math.max(0, lba));
      put(7, 2, count);
    } else if (length === 12) {
      put(2, 4, Math.max(0, lba));
      put(6, 4, count);
    } else {
      put(2, 8, Math.max(0, lba));
      put(10, 4, count);
    }
    if (wellFormed && opcode === 0x12) cdb[4] = 0xff;
    if (wellFormed && (opcode === 0x1a || opcode === 0x5a)) cdb[2] = 0x3f;
    if (wellFormed && opcode === 0x9e) cdb[1] = 0x10;
    if (r() < 0.8) cdb[1] = cdb[1]! & pick([0x00, 0x00, 0x08, 0x01, 0x02, 0x10]);
    if (r() < 0.3) cdb[2] = 0;
    cdb[length - 1] = r() < 0.95 ? 0 : cdb[length - 1]!;
  }
  const direction = row && (wellFormed || r() < 0.85) ? row.direction : pick(["in", "out", "none"] as const);
  const allocation = (cdb[7]! << 8) | cdb[8]!;
  const size = wellFormed
    ? Math.max(count * blockSize, 255)
    : pick([
        count * blockSize,
        count * blockSize,
        (count + 1) * blockSize,
        Math.max(0, count - 1) * blockSize,
        0,
        8,
        18,
        36,
        255,
        blockSize,
        allocation,
        int(70_000),
      ]);
  const bytes = new Uint8Array(Math.min(size, 1 << 20));
  for (let i = 0; i < bytes.length; i += 97) bytes[i] = int(256);
  return { address, cdb, data: new ArrayData(direction, bytes) };
}

/** The effect a successful command has on the raw disk, decoded here (not by the target). */
function applyToShadow(shadow: Uint8Array, cdb: Uint8Array, data: ArrayData): void {
  const op = cdb[0]!;
  const be = (at: number, n: number): number => {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + (cdb[at + i] ?? 0);
    return v;
  };
  let lba: number;
  let blocks: number;
  switch (op) {
    case 0x0a:
      lba = be(1, 3) & 0x1fffff;
      blocks = cdb[4] || 256;
      break;
    case 0x2a:
      [lba, blocks] = [be(2, 4), be(7, 2)];
      break;
    case 0xaa:
      [lba, blocks] = [be(2, 4), be(6, 4)];
      break;
    case 0x8a:
      [lba, blocks] = [be(2, 8), be(10, 4)];
      break;
    case 0x41:
    case 0x93: {
      if (cdb[1]! & 0x08) return; // UNMAP on a raw image keeps the data
      [lba, blocks] = op === 0x41 ? [be(2, 4), be(7, 2)] : [be(2, 8), be(10, 4)];
      const pattern = op === 0x93 && cdb[1]! & 0x01 ? new Uint8Array(512) : data.bytes.subarray(0, 512);
      for (let i = 0; i < blocks; i++) shadow.set(pattern, (lba + i) * 512);
      return;
    }
    default:
      return; // reads, UNMAP (raw trim keeps data), and everything else change nothing
  }
  shadow.set(data.bytes.subarray(0, blocks * 512), lba * 512);
}

const WRITES = new Set([0x0a, 0x2a, 0xaa, 0x8a, 0x41, 0x93, 0x42]);

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
    else if (changed.some((n) => n > 0)) assert.ok(WRITES.has(cmd.cdb[0]!), `opcode ${cmd.cdb[0]} wrote`);
    if (res.status === 0 && cmd.address.lun === 0 && cmd.address.path === 0 && cmd.address.target === 0) {
      applyToShadow(s.shadow, cmd.cdb, cmd.data);
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
      (c) => !(c.address.lun === 0 && WRITES.has(c.cdb[0] ?? -1)), // keep the shadow exact
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
