// The disk logical unit answers every command of the table as Hyper-V's "Msft Virtual Disk" does, with the
// right sense for each refusal, over in-memory raw and VHDX images (512- and 4096-byte sectors).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ArrayData,
  be,
  cdb,
  memoryImage,
  rw,
  run,
  runIn,
  senseOf,
  SpyDisk,
} from "../../../tests/vsp/scsi-fixtures.js";
import { ScsiController, type ScsiResult } from "./scsi-controller.js";

const ascii = (b: Uint8Array): string => String.fromCharCode(...b);

async function rawController(
  capacity = 1024 * 1024,
  options: { readOnly?: boolean } = {},
): Promise<{ c: ScsiController; spy: SpyDisk }> {
  const { disk } = await memoryImage("raw", capacity, {
    readOnly: options.readOnly,
    fill: (b) => b.forEach((_, i) => (b[i] = (i * 31 + (i >> 9)) & 0xff)),
  });
  const spy = new SpyDisk(disk);
  const c = new ScsiController();
  c.attachDisk(0, spy, { deviceId: Uint8Array.from({ length: 16 }, (_, i) => i + 1) });
  return { c, spy };
}

async function readImage(spy: SpyDisk, lba: number, bytes: number): Promise<Uint8Array> {
  const b = new Uint8Array(bytes);
  await spy.inner.read(lba, b);
  return b;
}

test("INQUIRY standard data: Msft Virtual Disk, SPC-3, allocation length and short buffers", async () => {
  const { c } = await rawController();
  const { r, data } = await runIn(c, 0, cdb(6, 0x12, { 4: 0xff }), 255);
  assert.equal(r.status, 0);
  assert.equal(r.transferred, 36);
  assert.equal(r.overrun, false);
  assert.equal(data[0], 0x00); // peripheral qualifier 0, direct access
  assert.equal(data[1], 0x00); // not removable
  assert.equal(data[2], 0x05);
  assert.equal(data[3]! & 0x0f, 2);
  assert.equal(data[4], 31);
  assert.equal(data[7]! & 0x02, 0x02);
  assert.equal(ascii(data.subarray(8, 16)), "Msft    ");
  assert.equal(ascii(data.subarray(16, 32)), "Virtual Disk    ");
  assert.equal(ascii(data.subarray(32, 36)), "1.0 ");
  const short = await runIn(c, 0, cdb(6, 0x12, { 4: 5 }), 255);
  assert.equal(short.r.transferred, 5);
  const tiny = await runIn(c, 0, cdb(6, 0x12, { 4: 36 }), 10);
  assert.equal(tiny.r.transferred, 10);
  assert.equal(tiny.r.overrun, true);
  // page code without EVPD, and CMDDT, are invalid fields
  assert.deepEqual(senseOf((await runIn(c, 0, cdb(6, 0x12, { 2: 0x80, 4: 36 }), 36)).r), [5, 0x24, 0]);
  const cmddt = (await runIn(c, 0, cdb(6, 0x12, { 1: 0x02, 4: 36 }), 36)).r;
  assert.deepEqual(senseOf(cmddt), [5, 0x24, 0]);
  assert.deepEqual([...cmddt.sense!.subarray(15, 18)], [0xc9, 0, 1]); // SKSV, C/D, BPV bit 1, byte 1
});

test("INQUIRY VPD pages 00h, 80h, 83h, B0h, B1h, B2h", async () => {
  const { c } = await rawController();
  const vpd = async (page: number): Promise<Uint8Array> => {
    const { r, data } = await runIn(c, 0, cdb(6, 0x12, { 1: 1, 2: page, 4: 0xff }), 255);
    assert.equal(r.status, 0, `page ${page.toString(16)}`);
    assert.equal(data[1], page);
    assert.equal(((data[2]! << 8) | data[3]!) + 4, data.length);
    return data;
  };
  assert.deepEqual([...(await vpd(0x00)).subarray(4)], [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
  assert.equal(ascii((await vpd(0x80)).subarray(4)), "0102030405060708090a0b0c0d0e0f10");
  const ids = await vpd(0x83);
  assert.equal(ids[5]! & 0x0f, 1); // T10 vendor ID designator
  assert.equal(ascii(ids.subarray(8, 16)), "Msft    ");
  const naa = 8 + ids[7]!;
  assert.equal(ids[naa + 1]! & 0x0f, 3); // NAA designator
  assert.deepEqual([...ids.subarray(naa + 4, naa + 8)], [0x60, 0x02, 0x24, 0x80 | 0x01]);
  const limits = await vpd(0xb0);
  assert.equal(limits.length, 64);
  assert.equal(limits[4]! & 1, 1); // WSNZ
  const u32 = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset).getUint32(at);
  assert.equal(u32(limits, 8), (1024 * 1024) / 512); // maximum transfer length in blocks
  assert.ok(u32(limits, 20) > 0 && u32(limits, 24) > 0); // unmap limits
  assert.equal(u32(limits, 32), 0x80000000); // UGAVALID
  assert.equal(u32(limits, 40), (8 * 1024 * 1024) / 512); // maximum WRITE SAME length
  const bdc = await vpd(0xb1);
  assert.equal((bdc[4]! << 8) | bdc[5]!, 1); // non-rotating
  const lbp = await vpd(0xb2);
  assert.equal(lbp[5], 0xe0); // LBPU, LBPWS, LBPWS10
  const bad = (await runIn(c, 0, cdb(6, 0x12, { 1: 1, 2: 0x89, 4: 0xff }), 255)).r;
  assert.deepEqual(senseOf(bad), [5, 0x24, 0]);
  assert.deepEqual([...bad.sense!.subarray(15, 18)], [0xc0, 0, 2]);
  // A read-only disk cannot unmap: no LBP bits, no unmap limits.
  const ro = await rawController(64 * 1024, { readOnly: true });
  const roLbp = await runIn(ro.c, 0, cdb(6, 0x12, { 1: 1, 2: 0xb2, 4: 0xff }), 255);
  assert.equal(roLbp.data[5], 0);
});

test("READ CAPACITY(10)/(16) report the image's logical and physical sector sizes", async () => {
  const cases = [
    { format: "raw", logical: 512, physical: 512, exponent: 0 },
    { format: "vhdx", logical: 512, physical: 4096, exponent: 3 },
    { format: "vhdx", logical: 4096, physical: 4096, exponent: 0 },
  ] as const;
  for (const k of cases) {
    const capacity = 8 * 1024 * 1024;
    const { disk } = await memoryImage(k.format, capacity, { logical: k.logical, physical: k.physical });
    const c = new ScsiController();
    c.attachDisk(0, disk);
    const rc10 = await runIn(c, 0, cdb(10, 0x25), 8);
    const v10 = new DataView(rc10.data.buffer, rc10.data.byteOffset);
    assert.equal(v10.getUint32(0), capacity / k.logical - 1, `${k.format} ${k.logical}`);
    assert.equal(v10.getUint32(4), k.logical);
    const rc16 = await runIn(c, 0, be(cdb(16, 0x9e, { 1: 0x10 }), 10, 4, 32), 32);
    const v16 = new DataView(rc16.data.buffer, rc16.data.byteOffset);
    assert.equal(rc16.r.transferred, 32);
    assert.equal(v16.getUint32(0) * 2 ** 32 + v16.getUint32(4), capacity / k.logical - 1);
    assert.equal(v16.getUint32(8), k.logical);
    assert.equal(rc16.data[13]! & 0x0f, k.exponent);
    assert.equal(rc16.data[14]! & 0x80, 0x80); // LBPME: UNMAP is supported
    // A 4096-byte sector moves 4096 bytes per block.
    const one = await runIn(c, 0, rw("read", 10, 0, 1), 8192);
    assert.equal(one.r.transferred, k.logical);
  }
  const { c } = await rawController();
  assert.deepEqual(senseOf((await runIn(c, 0, cdb(10, 0x25, { 5: 1 }), 8)).r), [5, 0x24, 0]); // LBA without PMI
  assert.deepEqual(
    senseOf((await runIn(c, 0, be(cdb(16, 0x9e, { 1: 0x12 }), 10, 4, 32), 32)).r),
    [5, 0x24, 0],
  );
  // A short buffer takes what fits and says so.
  const short = await runIn(c, 0, cdb(10, 0x25), 4);
  assert.equal(short.r.transferred, 4);
  assert.equal(short.r.overrun, true);
});

test("READ/WRITE(6/10/12/16) move data both ways, READ(6) of 0 blocks is 256, FUA flushes", async () => {
  const { c, spy } = await rawController();
  for (const size of [6, 10, 12, 16] as const) {
    const lba = 100 + size * 10;
    const data = Uint8Array.from({ length: 3 * 512 }, (_, i) => (i * size + 7) & 0xff);
    const w = await run(c, 0, rw("write", size, lba, 3), new ArrayData("out", data));
    assert.equal(w.status, 0, `WRITE(${size})`);
    assert.equal(w.transferred, data.length);
    assert.deepEqual(await readImage(spy, lba, data.length), data);
    for (const readSize of [6, 10, 12, 16] as const) {
      const { r, data: got } = await runIn(c, 0, rw("read", readSize, lba, 3), data.length);
      assert.equal(r.status, 0);
      assert.deepEqual(got, data, `READ(${readSize}) after WRITE(${size})`);
    }
  }
  const all = await runIn(c, 0, rw("read", 6, 0, 0), 256 * 512);
  assert.equal(all.r.transferred, 256 * 512);
  assert.deepEqual(all.data, await readImage(spy, 0, 256 * 512));
  const before = spy.flushes;
  await run(c, 0, rw("write", 10, 5, 1), new ArrayData("out", 512));
  assert.equal(spy.flushes, before);
  for (const size of [10, 12, 16] as const) {
    await run(c, 0, rw("write", size, 5, 1, 0x08), new ArrayData("out", 512));
  }
  assert.equal(spy.flushes, before + 3);
  assert.deepEqual(spy.outOfBounds, []);
});

test("LBA OUT OF RANGE, transfer sizes that disagree with the CDB, protection fields, limits", async () => {
  const { c, spy } = await rawController(64 * 1024);
  const blocks = 128;
  const image = await readImage(spy, 0, 64 * 1024);
  const out = (n: number): ArrayData => new ArrayData("out", new Uint8Array(n).fill(0xee));
  assert.deepEqual(senseOf(await run(c, 0, rw("write", 10, blocks - 1, 2), out(1024))), [5, 0x21, 0]);
  assert.deepEqual(senseOf(await run(c, 0, rw("write", 16, 2 ** 63, 1), out(512))), [5, 0x21, 0]);
  assert.deepEqual(senseOf((await runIn(c, 0, rw("read", 12, blocks, 1), 512)).r), [5, 0x21, 0]);
  assert.deepEqual(senseOf((await runIn(c, 0, rw("read", 10, blocks + 1, 0), 0)).r), [5, 0x21, 0]);
  assert.equal((await runIn(c, 0, rw("read", 10, blocks, 0), 0)).r.status, 0); // zero blocks at the end
  // A buffer shorter than the CDB's transfer: refused at the transfer length field, nothing written.
  const short = await run(c, 0, rw("write", 10, 0, 4), out(1024));
  assert.deepEqual(senseOf(short), [5, 0x24, 0]);
  assert.deepEqual([...short.sense!.subarray(15, 18)], [0xc0, 0, 7]);
  assert.deepEqual(senseOf((await runIn(c, 0, rw("read", 16, 0, 4), 1024)).r), [5, 0x24, 0]);
  // A buffer running the wrong way cannot carry the data either.
  assert.deepEqual(senseOf(await run(c, 0, rw("write", 10, 0, 1), new ArrayData("in", 512))), [5, 0x24, 0]);
  // RDPROTECT/WRPROTECT: no protection information here.
  assert.deepEqual(senseOf(await run(c, 0, rw("write", 10, 0, 1, 0x20), out(512))), [5, 0x24, 0]);
  assert.deepEqual(senseOf((await runIn(c, 0, rw("read", 10, 0, 1, 0x40), 512)).r), [5, 0x24, 0]);
  assert.deepEqual(await readImage(spy, 0, 64 * 1024), image);
  assert.deepEqual(spy.writes, []);
  // A longer buffer: the CDB's amount moves, the rest is residual.
  const { r } = await runIn(c, 0, rw("read", 10, 0, 2), 4096);
  assert.equal(r.status, 0);
  assert.equal(r.transferred, 1024);
  // More than the maximum transfer length (1 MiB) is an invalid field.
  const big = await rawController(4 * 1024 * 1024);
  assert.deepEqual(senseOf((await runIn(big.c, 0, rw("read", 10, 0, 2049), 2049 * 512)).r), [5, 0x24, 0]);
  assert.equal((await runIn(big.c, 0, rw("read", 10, 0, 2048), 2048 * 512)).r.status, 0);
});

test("a read-only disk: writes are DATA PROTECT, MODE SENSE shows WP, reads work", async () => {
  const { c, spy } = await rawController(64 * 1024, { readOnly: true });
  for (const size of [6, 10, 12, 16] as const) {
    assert.deepEqual(
      senseOf(await run(c, 0, rw("write", size, 0, 1), new ArrayData("out", 512))),
      [7, 0x27, 0],
    );
  }
  const ws = be(cdb(16, 0x93), 10, 4, 1);
  assert.deepEqual(senseOf(await run(c, 0, ws, new ArrayData("out", 512))), [7, 0x27, 0]);
  const unmap = be(cdb(10, 0x42), 7, 2, 24);
  assert.deepEqual(senseOf(await run(c, 0, unmap, new ArrayData("out", 24))), [7, 0x27, 0]);
  const ms = await runIn(c, 0, cdb(6, 0x1a, { 2: 0x3f, 4: 4 }), 4);
  assert.equal(ms.data[2]! & 0x80, 0x80);
  assert.equal((await runIn(c, 0, rw("read", 10, 0, 1), 512)).r.status, 0);
  assert.deepEqual(spy.writes, []);
});

test("SYNCHRONIZE CACHE(10/16) flush the disk; START STOP UNIT stop flushes", async () => {
  const { c, spy } = await rawController(64 * 1024);
  const before = spy.flushes;
  assert.equal((await run(c, 0, cdb(10, 0x35))).status, 0);
  assert.equal((await run(c, 0, cdb(16, 0x91))).status, 0);
  assert.equal(spy.flushes, before + 2);
  assert.deepEqual(senseOf(await run(c, 0, be(cdb(10, 0x35), 2, 4, 200))), [5, 0x21, 0]);
  assert.equal(spy.flushes, before + 2);
  assert.equal((await run(c, 0, cdb(6, 0x1b, { 4: 0x00 }))).status, 0); // stop
  assert.equal(spy.flushes, before + 3);
  assert.equal((await run(c, 0, cdb(6, 0x1b, { 4: 0x01 }))).status, 0); // start
  assert.equal(spy.flushes, before + 3);
  assert.deepEqual(senseOf(await run(c, 0, cdb(6, 0x1b, { 4: 0x02 }))), [5, 0x24, 0]); // LOEJ
  assert.equal((await run(c, 0, cdb(6, 0x1e, { 4: 1 }))).status, 0); // PREVENT: nothing to lock
  assert.equal((await run(c, 0, cdb(6, 0x00))).status, 0); // TEST UNIT READY
});

test("UNMAP trims validated ranges; bad parameter lists change nothing", async () => {
  const { c, spy } = await rawController(64 * 1024);
  const list = (descriptors: [number, number][], declared = descriptors.length * 16): Uint8Array => {
    const b = new Uint8Array(8 + descriptors.length * 16);
    be(b, 0, 2, b.length - 2);
    be(b, 2, 2, declared);
    descriptors.forEach(([lba, n], i) => {
      be(b, 8 + i * 16, 8, lba);
      be(b, 16 + i * 16, 4, n);
    });
    return b;
  };
  const unmap = (b: Uint8Array, length = b.length): Promise<ScsiResult> =>
    run(c, 0, be(cdb(10, 0x42), 7, 2, length), new ArrayData("out", b));
  assert.equal(
    (
      await unmap(
        list([
          [8, 16],
          [64, 8],
        ]),
      )
    ).status,
    0,
  );
  assert.deepEqual(spy.trims, [
    { lba: 8, count: 16 },
    { lba: 64, count: 8 },
  ]);
  spy.trims = [];
  assert.deepEqual(
    senseOf(
      await unmap(
        list([
          [8, 16],
          [120, 16],
        ]),
      ),
    ),
    [5, 0x21, 0],
  );
  assert.deepEqual(senseOf(await unmap(new Uint8Array(4))), [5, 0x1a, 0]);
  assert.deepEqual(senseOf(await unmap(list([[0, 1]]), 40)), [5, 0x24, 0]); // longer than the buffer
  const many = list(Array.from({ length: 257 }, (_, i): [number, number] => [i % 100, 0]));
  assert.deepEqual(senseOf(await unmap(many)), [5, 0x26, 0]);
  assert.deepEqual(
    senseOf(await run(c, 0, be(cdb(10, 0x42, { 1: 1 }), 7, 2, 24), new ArrayData("out", 24))),
    [5, 0x24, 0],
  );
  assert.deepEqual(spy.trims, []);
  // A partial trailing descriptor is ignored; a zero-length list does nothing.
  assert.equal((await unmap(list([[0, 4]], 20))).status, 0);
  assert.equal((await unmap(new Uint8Array(0), 0)).status, 0);
  assert.deepEqual(spy.trims, [{ lba: 0, count: 4 }]);
});

test("WRITE SAME(10/16) replicate one block, trim with UNMAP, refuse 0 blocks and too many", async () => {
  const { c, spy } = await rawController(16 * 1024 * 1024);
  const block = Uint8Array.from({ length: 512 }, (_, i) => (i * 3) & 0xff);
  const ws16 = (lba: number, n: number, flags = 0): Uint8Array =>
    be(be(cdb(16, 0x93, { 1: flags }), 2, 8, lba), 10, 4, n);
  const ws10 = (lba: number, n: number, flags = 0): Uint8Array =>
    be(be(cdb(10, 0x41, { 1: flags }), 2, 4, lba), 7, 2, n);
  assert.equal((await run(c, 0, ws16(10, 5), new ArrayData("out", block))).status, 0);
  const five = await readImage(spy, 10, 5 * 512);
  for (let i = 0; i < 5; i++) assert.deepEqual(five.subarray(i * 512, (i + 1) * 512), block);
  assert.equal((await run(c, 0, ws10(30, 3), new ArrayData("out", block))).status, 0);
  assert.deepEqual(await readImage(spy, 32, 512), block);
  // 2200 blocks crosses the 1 MiB chunk used internally
  assert.equal((await run(c, 0, ws16(40, 2200), new ArrayData("out", block))).status, 0);
  assert.deepEqual(await readImage(spy, 40 + 2199, 512), block);
  assert.equal((await run(c, 0, ws16(0, 4, 0x01))).status, 0); // NDOB: zeros
  assert.deepEqual(await readImage(spy, 0, 2048), new Uint8Array(2048));
  spy.trims = [];
  assert.equal((await run(c, 0, ws16(100, 64, 0x08), new ArrayData("out", 512))).status, 0);
  assert.equal((await run(c, 0, ws10(200, 8, 0x08), new ArrayData("out", 512))).status, 0);
  assert.deepEqual(spy.trims, [
    { lba: 100, count: 64 },
    { lba: 200, count: 8 },
  ]);
  const writes = spy.writes.length;
  assert.deepEqual(senseOf(await run(c, 0, ws16(0, 0), new ArrayData("out", block))), [5, 0x24, 0]);
  assert.deepEqual(senseOf(await run(c, 0, ws16(0, 16385), new ArrayData("out", block))), [5, 0x24, 0]);
  assert.deepEqual(senseOf(await run(c, 0, ws16(32767, 2), new ArrayData("out", block))), [5, 0x21, 0]);
  assert.deepEqual(senseOf(await run(c, 0, ws16(0, 2), new ArrayData("out", 100))), [5, 0x24, 0]);
  assert.deepEqual(senseOf(await run(c, 0, ws16(0, 2, 0x10), new ArrayData("out", block))), [5, 0x24, 0]); // ANCHOR
  assert.equal(spy.writes.length, writes);
});

test("MODE SENSE(6/10): caching page with WCE, DPOFUA, all pages, page control, unsupported pages", async () => {
  const { c } = await rawController(64 * 1024);
  const header6 = await runIn(c, 0, cdb(6, 0x1a, { 2: 0x3f, 4: 4 }), 4);
  assert.deepEqual([...header6.data], [3 + 20, 0, 0x10, 0]); // length, medium, DPOFUA, no block descriptors
  const caching6 = await runIn(c, 0, cdb(6, 0x1a, { 1: 0x08, 2: 0x08, 4: 0xff }), 0xff);
  assert.equal(caching6.r.transferred, 24);
  assert.deepEqual([...caching6.data.subarray(4, 7)], [0x08, 0x12, 0x04]); // WCE
  const caching10 = await runIn(c, 0, be(cdb(10, 0x5a, { 2: 0x08 }), 7, 2, 0xff), 0xff);
  assert.equal(caching10.r.transferred, 28);
  assert.deepEqual([...caching10.data.subarray(0, 8)], [0, 26, 0, 0x10, 0, 0, 0, 0]);
  assert.equal(caching10.data[10], 0x04);
  const changeable = await runIn(c, 0, cdb(6, 0x1a, { 2: 0x48, 4: 0xff }), 0xff);
  assert.equal(changeable.data[6], 0);
  assert.deepEqual(senseOf((await runIn(c, 0, cdb(6, 0x1a, { 2: 0xc8, 4: 0xff }), 0xff)).r), [5, 0x39, 0]);
  assert.deepEqual(senseOf((await runIn(c, 0, cdb(6, 0x1a, { 2: 0x1c, 4: 0xff }), 0xff)).r), [5, 0x24, 0]);
  assert.deepEqual(
    senseOf((await runIn(c, 0, cdb(6, 0x1a, { 2: 0x08, 3: 1, 4: 0xff }), 0xff)).r),
    [5, 0x24, 0],
  );
});

test("REQUEST SENSE, unknown opcodes, DVD-only opcodes and the NACA bit", async () => {
  const { c } = await rawController(64 * 1024);
  const rs = await runIn(c, 0, cdb(6, 0x03, { 4: 252 }), 252);
  assert.equal(rs.r.transferred, 18);
  assert.equal(rs.data[0], 0x70);
  assert.equal(rs.data[2], 0);
  assert.deepEqual(senseOf((await runIn(c, 0, cdb(6, 0x03, { 1: 1, 4: 252 }), 252)).r), [5, 0x24, 0]);
  for (const op of [0xc0, 0x04, 0x43, 0x46, 0xbd, 0xff]) {
    const r = await run(c, 0, cdb(16, op));
    assert.deepEqual(senseOf(r), [5, 0x20, 0], `opcode ${op.toString(16)}`);
  }
  const naca = await run(c, 0, cdb(6, 0x00, { 5: 0x04 }));
  assert.deepEqual(senseOf(naca), [5, 0x24, 0]);
  assert.deepEqual([...naca.sense!.subarray(15, 18)], [0xca, 0, 5]);
});
