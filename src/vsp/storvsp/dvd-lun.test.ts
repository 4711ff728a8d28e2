// The DVD logical unit: an ISO as read-only MMC media (2048-byte sectors), the commands Linux's sr and cdrom
// drivers send at probe and mount (replayed as they build them), media change by the host and the guest
// with UNIT ATTENTION, NOT READY and media events, and writes answered DATA PROTECT.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ArrayData,
  be,
  cdb,
  GatedDisk,
  isoDisk,
  rw,
  run,
  runIn,
  senseOf,
} from "../../../tests/vsp/scsi-fixtures.js";
import { ScsiController } from "./scsi-controller.js";
import type { DvdLun } from "./dvd-lun.js";

const SECTORS = 300;

async function dvd(): Promise<{ c: ScsiController; lun: DvdLun; bytes: Uint8Array }> {
  const { bytes, disk } = await isoDisk(SECTORS);
  const c = new ScsiController();
  const lun = c.attachDvd(1, disk);
  return { c, lun, bytes };
}

const u32 = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset).getUint32(at);
const u16 = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset).getUint16(at);

test("INQUIRY: a removable CD/DVD device, Msft Virtual DVD-ROM", async () => {
  const { c } = await dvd();
  const { data } = await runIn(c, 1, cdb(6, 0x12, { 4: 36 }), 36);
  assert.equal(data[0], 0x05);
  assert.equal(data[1], 0x80);
  assert.equal(String.fromCharCode(...data.subarray(8, 32)), "Msft    Virtual DVD-ROM ");
  const pages = await runIn(c, 1, cdb(6, 0x12, { 1: 1, 4: 0xff }), 255);
  assert.deepEqual([...pages.data.subarray(4)], [0x00, 0x80, 0x83]);
});

test("READ CAPACITY and READ(10/12/16) return the ISO's 2048-byte sectors; writes are DATA PROTECT", async () => {
  const { c, bytes } = await dvd();
  const cap = await runIn(c, 1, cdb(10, 0x25), 8);
  assert.equal(u32(cap.data, 0), SECTORS - 1);
  assert.equal(u32(cap.data, 4), 2048);
  for (const size of [10, 12, 16] as const) {
    const { r, data } = await runIn(c, 1, rw("read", size, 16, 8), 8 * 2048);
    assert.equal(r.status, 0);
    assert.deepEqual(data, bytes.subarray(16 * 2048, 24 * 2048));
  }
  assert.deepEqual(senseOf((await runIn(c, 1, rw("read", 10, SECTORS - 1, 2), 4096)).r), [5, 0x21, 0]);
  assert.deepEqual(senseOf(await run(c, 1, rw("read", 6, 0, 1), new ArrayData("in", 2048))), [5, 0x20, 0]);
  for (const size of [6, 10, 12, 16] as const) {
    assert.deepEqual(
      senseOf(await run(c, 1, rw("write", size, 0, 1), new ArrayData("out", 2048))),
      [7, 0x27, 0],
    );
  }
  assert.deepEqual(
    senseOf(await run(c, 1, be(cdb(16, 0x93), 10, 4, 1), new ArrayData("out", 2048))),
    [7, 0x27, 0],
  );
  assert.deepEqual(senseOf(await run(c, 1, cdb(10, 0x35))), [5, 0x20, 0]); // no SYNCHRONIZE CACHE on a DVD-ROM
});

test("READ TOC/PMA/ATIP: TOC in LBA and MSF, the lead-out alone, session info, the SFF-8020 format byte", async () => {
  const { c } = await dvd();
  const toc = await runIn(c, 1, be(cdb(10, 0x43), 7, 2, 100), 100);
  assert.equal(toc.r.transferred, 20);
  assert.deepEqual([...toc.data.subarray(0, 4)], [0, 18, 1, 1]);
  assert.deepEqual([...toc.data.subarray(4, 12)], [0, 0x14, 1, 0, 0, 0, 0, 0]);
  assert.deepEqual([toc.data[13], toc.data[14], u32(toc.data, 16)], [0x14, 0xaa, SECTORS]);
  const msf = await runIn(c, 1, be(cdb(10, 0x43, { 1: 0x02 }), 7, 2, 100), 100);
  assert.deepEqual([...msf.data.subarray(8, 12)], [0, 0, 2, 0]); // 00:02:00
  const leadOut = SECTORS + 150;
  assert.deepEqual(
    [...msf.data.subarray(16, 20)],
    [0, Math.floor(leadOut / 4500), Math.floor(leadOut / 75) % 60, leadOut % 75],
  );
  const only = await runIn(c, 1, be(cdb(10, 0x43, { 6: 0xaa }), 7, 2, 100), 100);
  assert.equal(only.r.transferred, 12);
  assert.equal(only.data[6], 0xaa);
  assert.deepEqual(senseOf((await runIn(c, 1, be(cdb(10, 0x43, { 6: 2 }), 7, 2, 100), 100)).r), [5, 0x24, 0]);
  for (const session of [cdb(10, 0x43, { 2: 1, 8: 12 }), cdb(10, 0x43, { 8: 12, 9: 0x40 })]) {
    const s = await runIn(c, 1, session, 12);
    assert.equal(s.r.transferred, 12);
    assert.deepEqual([...s.data], [0, 10, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0]);
  }
  assert.deepEqual(senseOf((await runIn(c, 1, cdb(10, 0x43, { 2: 2, 8: 12 }), 12)).r), [5, 0x24, 0]);
});

test("GET CONFIGURATION: DVD-ROM profile when loaded, none when empty; RT 1 and 2", async () => {
  const { c, lun } = await dvd();
  const all = await runIn(c, 1, be(cdb(10, 0x46), 7, 2, 512), 512);
  assert.equal(u32(all.data, 0) + 4, all.r.transferred);
  assert.equal(u16(all.data, 6), 0x0010);
  const codes: number[] = [];
  for (let at = 8; at < all.data.length; at += 4 + all.data[at + 3]!) codes.push(u16(all.data, at));
  assert.deepEqual(codes, [0x0000, 0x0001, 0x0002, 0x0003, 0x0010, 0x001f]);
  // Linux's MRW probe: RT 0 from feature 28h finds nothing of that code
  const mrw = await runIn(c, 1, cdb(10, 0x46, { 3: 0x28, 8: 16 }), 16);
  assert.equal(mrw.r.transferred, 8);
  const one = await runIn(c, 1, be(cdb(10, 0x46, { 1: 2, 3: 0x10 }), 7, 2, 64), 64);
  assert.equal(one.r.transferred, 20);
  assert.equal(u16(one.data, 8), 0x0010);
  // Linux's mmc3 profile query takes 8 bytes
  const header = await runIn(c, 1, cdb(10, 0x46, { 8: 8 }), 8);
  assert.equal(u16(header.data, 6), 0x0010);
  await lun.changeMedium(null);
  const empty = await runIn(c, 1, be(cdb(10, 0x46, { 1: 1 }), 7, 2, 512), 512);
  assert.equal(u16(empty.data, 6), 0);
  const current: number[] = [];
  for (let at = 8; at < empty.data.length; at += 4 + empty.data[at + 3]!) current.push(u16(empty.data, at));
  assert.deepEqual(current, [0x0000, 0x0001, 0x0002, 0x0003]);
  assert.deepEqual(senseOf((await runIn(c, 1, cdb(10, 0x46, { 1: 3, 8: 8 }), 8)).r), [5, 0x24, 0]);
});

test("host media change: NOT READY without a medium, UNIT ATTENTION and a NewMedia event after insert", async () => {
  const { c, lun, bytes } = await dvd();
  const gesn = async (): Promise<Uint8Array> =>
    (await runIn(c, 1, cdb(10, 0x4a, { 1: 1, 4: 0x10, 8: 8 }), 8)).data;
  assert.deepEqual([...(await gesn())], [0, 6, 4, 0x10, 0, 2, 0, 0]); // no event, medium present
  const old = await lun.changeMedium(null);
  assert.ok(old);
  assert.deepEqual([...(await gesn())], [0, 6, 4, 0x10, 3, 0, 0, 0]); // MediaRemoval, nothing present
  assert.equal((await gesn())[4], 0); // consumed
  for (const c10 of [cdb(6, 0x00), cdb(10, 0x25), rw("read", 10, 0, 1), be(cdb(10, 0x43), 7, 2, 12)]) {
    const r = await run(c, 1, c10, new ArrayData("in", 2048));
    assert.deepEqual(senseOf(r), [2, 0x3a, 1], `opcode ${c10[0]}`);
  }
  assert.deepEqual(senseOf(await run(c, 1, rw("write", 10, 0, 1), new ArrayData("out", 2048))), [2, 0x3a, 1]);
  const rs = await runIn(c, 1, cdb(6, 0x03, { 4: 18 }), 18);
  assert.deepEqual([rs.data[2], rs.data[12], rs.data[13]], [2, 0x3a, 1]);
  // GET CONFIGURATION, GESN, MODE SENSE and MECHANISM STATUS work without a medium
  assert.equal((await runIn(c, 1, be(cdb(10, 0x5a, { 2: 0x2a }), 7, 2, 64), 64)).r.status, 0);
  assert.equal((await runIn(c, 1, be(cdb(12, 0xbd), 8, 2, 8), 8)).r.status, 0);
  assert.equal(await lun.changeMedium(old), null);
  assert.deepEqual([...(await gesn())], [0, 6, 4, 0x10, 2, 2, 0, 0]); // NewMedia, present
  // INQUIRY does not report the unit attention; the next TEST UNIT READY does, once.
  assert.equal((await runIn(c, 1, cdb(6, 0x12, { 4: 36 }), 36)).r.status, 0);
  assert.deepEqual(senseOf(await run(c, 1, cdb(6, 0x00))), [6, 0x28, 0]);
  assert.equal((await run(c, 1, cdb(6, 0x00))).status, 0);
  const { data } = await runIn(c, 1, rw("read", 10, 20, 1), 2048);
  assert.deepEqual(data, bytes.subarray(20 * 2048, 21 * 2048));
  // REQUEST SENSE reports (and clears) a pending unit attention.
  await lun.changeMedium(old);
  const ua = await runIn(c, 1, cdb(6, 0x03, { 4: 18 }), 18);
  assert.deepEqual([ua.data[2], ua.data[12]], [6, 0x28]);
  assert.equal((await run(c, 1, cdb(6, 0x00))).status, 0);
});

test("guest eject and load: PREVENT refuses eject, an open tray is NOT READY 3A/02, load brings it back", async () => {
  const { c } = await dvd();
  const startStop = (byte4: number): Uint8Array => cdb(6, 0x1b, { 4: byte4 });
  assert.equal((await run(c, 1, cdb(6, 0x1e, { 4: 1 }))).status, 0);
  const ms = await runIn(c, 1, be(cdb(10, 0x5a, { 2: 0x2a }), 7, 2, 64), 64);
  assert.equal(ms.data[8 + 6]! & 0x02, 0x02); // lock state
  assert.deepEqual(senseOf(await run(c, 1, startStop(0x02))), [5, 0x53, 2]);
  assert.equal((await run(c, 1, cdb(6, 0x1e, { 4: 0 }))).status, 0);
  assert.equal((await run(c, 1, startStop(0x02))).status, 0);
  assert.deepEqual(senseOf(await run(c, 1, cdb(6, 0x00))), [2, 0x3a, 2]);
  const mech = await runIn(c, 1, be(cdb(12, 0xbd), 8, 2, 8), 8);
  assert.equal(mech.data[1]! & 0x10, 0x10); // door open
  assert.equal((await run(c, 1, startStop(0x03))).status, 0);
  assert.deepEqual(senseOf(await run(c, 1, cdb(6, 0x00))), [6, 0x28, 0]);
  assert.equal((await run(c, 1, cdb(6, 0x00))).status, 0);
});

test("changeMedium hands back the old medium only after the commands using it finish", async () => {
  const { disk } = await isoDisk(64);
  const gated = new GatedDisk(disk);
  const c = new ScsiController();
  const lun = c.attachDvd(0, gated);
  const reading = runIn(c, 0, rw("read", 10, 0, 1), 2048);
  let returned: unknown = undefined;
  const swapping = lun.changeMedium(null).then((d) => (returned = d));
  await new Promise((r) => setImmediate(r));
  assert.equal(returned, undefined);
  gated.release();
  await swapping;
  assert.equal(returned, gated);
  assert.equal((await reading).r.status, 0);
});

test("the commands Linux's sr sends at probe and mount, built as sr.c and cdrom.c build them", async () => {
  const { c } = await dvd();
  // sr_probe → get_capabilities: TEST UNIT READY, then MODE SENSE(10) page 2Ah with 128 bytes
  assert.equal((await run(c, 1, cdb(6, 0x00))).status, 0);
  const caps = await runIn(c, 1, be(cdb(10, 0x5a, { 2: 0x2a }), 7, 2, 128), 128);
  assert.equal(caps.r.status, 0);
  const ms = caps.data;
  const n = 8 + u16(ms, 6); // header + block descriptors
  assert.ok(u16(ms, 0) + 2 <= 128 && n <= u16(ms, 0) + 2);
  assert.equal(ms[n]! & 0x3f, 0x2a);
  assert.equal(ms[n + 2]! & 0x08, 0x08, "reads DVD");
  assert.equal(ms[n + 3], 0, "writes nothing");
  assert.equal(ms[n + 6]! >> 5, 1, "tray");
  assert.equal(u16(ms, n + 8) / 176, 24);
  // sr_revalidate_disk → sr_cd_check: READ TOC multisession (SFF-8020 format 1 in the control byte)
  const ms1 = await runIn(c, 1, cdb(10, 0x43, { 8: 12, 9: 0x40 }), 12);
  assert.ok((ms1.data[0]! << 8) + ms1.data[1]! >= 0x0a);
  assert.equal(u32(ms1.data, 8), 0); // multisession offset 0
  // sr_disk_status: READ TOC header, then the entry of each track (MSF, as cdrom_count_tracks asks)
  const hdr = await runIn(c, 1, cdb(10, 0x43, { 8: 12 }), 12);
  assert.deepEqual([hdr.data[2], hdr.data[3]], [1, 1]);
  const entry = await runIn(c, 1, cdb(10, 0x43, { 1: 2, 6: 1, 8: 12 }), 12);
  assert.equal(entry.data[5]! & 0x04, 0x04, "a data track");
  // get_sectorsize: READ CAPACITY, then cdrom_get_last_written: READ DISC INFORMATION (2 bytes, then all)
  const cap = await runIn(c, 1, cdb(10, 0x25), 8);
  const capacity = u32(cap.data, 0) + 1;
  const di2 = await runIn(c, 1, cdb(10, 0x51, { 8: 2 }), 2);
  const diLen = Math.min(u16(di2.data, 0) + 2, 34);
  const di = await runIn(c, 1, cdb(10, 0x51, { 8: diLen }), diLen);
  assert.equal(di.r.transferred, 34);
  const lastTrack = di.data[6]!; // last track in the last session
  // READ TRACK INFORMATION of that track (address type 1), 8 bytes first, then in full
  const ti8 = await runIn(c, 1, be(cdb(10, 0x52, { 1: 1, 8: 8 }), 2, 4, lastTrack), 8);
  assert.equal(ti8.r.transferred, 8);
  const ti = await runIn(c, 1, be(be(cdb(10, 0x52, { 1: 1 }), 2, 4, lastTrack), 7, 2, 36), 36);
  assert.equal(ti.data[6]! & 0x40, 0, "not blank");
  assert.equal(ti.data[7]! & 0x02, 0x02, "LRA_V");
  const lastWritten = u32(ti.data, 28);
  assert.equal(Math.max(capacity, lastWritten), SECTORS); // sr keeps READ CAPACITY's answer
  // cdrom_open → cdrom_mmc3_profile, then the media-event poll
  assert.equal(u16((await runIn(c, 1, cdb(10, 0x46, { 8: 8 }), 8)).data, 6), 0x10);
  const ev = await runIn(c, 1, cdb(10, 0x4a, { 1: 1, 4: 0x10, 8: 8 }), 8);
  assert.equal(ev.data[2]! & 0x80, 0, "NEA clear");
  assert.equal(ev.data[2]! & 0x07, 4, "media class");
  // lock the door for the mount, read the volume descriptor, unlock
  assert.equal((await run(c, 1, cdb(6, 0x1e, { 4: 1 }))).status, 0);
  const pvd = await runIn(c, 1, rw("read", 10, 16, 1), 2048);
  assert.equal(String.fromCharCode(...pvd.data.subarray(1, 6)), "CD001");
  assert.equal((await run(c, 1, cdb(6, 0x1e, { 4: 0 }))).status, 0);
});
