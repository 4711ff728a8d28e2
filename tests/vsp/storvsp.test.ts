// The storage VSP driven through the real partition and VMBus server by the guest-side test client, as
// Linux's hv_storvsc drives it: the initialization handshake with each protocol version Linux 6.1 tries,
// properties (no sub-channels), EXECUTE_SRB with GPA-direct data landing in guest RAM and on the image,
// completions with SRB status / SCSI status / sense, hostile SRBs refused without touching memory or disk,
// back-pressure from a stuck disk, closes with commands in flight, and the bus-rescan notice.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PAGE_SIZE } from "../../src/memory/guest-memory.js";
import * as P from "../../src/vmbus/protocol.js";
import { VmbusServer } from "../../src/vmbus/server.js";
import { guidEquals } from "../../src/support/ms-guid.js";
import { ScsiController } from "../../src/vsp/storvsp/scsi-controller.js";
import { StorageVsp } from "../../src/vsp/storvsp/storvsp.js";
import {
  Operation,
  PROTOCOL_WIN10,
  PROTOCOL_WIN8,
  PROTOCOL_WIN8_1,
  SCSI_CONTROLLER_CLASS,
  STATUS_INVALID_DEVICE_REQUEST,
  STATUS_INVALID_DEVICE_STATE,
  STATUS_REVISION_MISMATCH,
} from "../../src/vsp/storvsp/vstor-protocol.js";
import {
  type GuestChannel,
  gpaDirectExtra,
  guestPacket,
  TestGuest,
  VmbusClient,
} from "../vmbus/guest-client.js";
import { be, cdb, GatedDisk, isoDisk, memoryImage, OrderedDisk, rw, SpyDisk } from "./scsi-fixtures.js";

/** VMBUS_RQST_INIT: the transaction id of storvsc's initialization requests. */
const RQST_INIT = { lo: 0xfffffffd, hi: 0xffffffff };
const SRB_DATA_IN_READ = 1;
const SRB_DATA_IN_WRITE = 0;
const SRB_DATA_IN_NONE = 2;

interface Completion {
  type: number;
  transLo: number;
  transHi: number;
  length: number;
  payload: Uint8Array;
  view: DataView;
}

async function setup(options: { maxInFlight?: number; gated?: boolean; ordered?: boolean } = {}) {
  const guest = new TestGuest();
  const server = new VmbusServer({ partition: guest.partition });
  const controller = new ScsiController({ maxInFlight: options.maxInFlight });
  const raw = await memoryImage("raw", 1024 * 1024, {
    fill: (b) => b.forEach((_, i) => (b[i] = (i * 7) & 0xff)),
  });
  const disk = options.gated
    ? new GatedDisk(raw.disk)
    : options.ordered
      ? new OrderedDisk(raw.disk)
      : new SpyDisk(raw.disk);
  controller.attachDisk(0, disk);
  controller.attachDisk(1, (await memoryImage("vhdx", 4 * 1024 * 1024, { logical: 4096 })).disk);
  controller.attachDvd(2, (await isoDisk(32)).disk);
  const instanceId = new Uint8Array(16).fill(0x5c);
  const vsp = new StorageVsp(server, controller, { instanceId });
  guest.enableSynic();
  const client = new VmbusClient(guest, () => server.poll());
  client.negotiate();
  const offers = client.requestOffers();
  const offer = offers.find((o) => guidEquals(o.classId, SCSI_CONTROLLER_CLASS));
  assert.ok(offer, "the SCSI controller is offered");
  assert.ok(guidEquals(offer.instanceId, instanceId));
  const ch = client.open(offer.relid, 16, 16);
  assert.notEqual(typeof ch, "number");
  return { guest, server, controller, disk, vsp, client, ch: ch as GuestChannel };
}

type Setup = Awaited<ReturnType<typeof setup>>;

/** A 64-byte vstor_packet. */
function vstor(op: number, fill: (v: DataView, b: Uint8Array) => void = () => undefined): Uint8Array {
  const b = new Uint8Array(64);
  const v = new DataView(b.buffer);
  v.setUint32(0, op, true);
  v.setUint32(4, 1, true); // REQUEST_COMPLETION_FLAG
  fill(v, b);
  return b;
}

/** Lets the host finish asynchronous work, then reads the guest's inbound ring. */
async function completions(s: Setup, want = 1): Promise<Completion[]> {
  const out: Completion[] = [];
  for (let turn = 0; turn < 200 && out.length < want; turn++) {
    await new Promise((r) => setImmediate(r));
    for (const p of s.client.receivePackets(s.ch)) {
      const v = new DataView(p.buffer, p.byteOffset, p.length);
      const dataOffset = v.getUint16(2, true) * 8;
      const payload = p.slice(dataOffset);
      out.push({
        type: v.getUint16(0, true),
        transLo: v.getUint32(8, true),
        transHi: v.getUint32(12, true),
        length: p.length,
        payload,
        view: new DataView(payload.buffer),
      });
    }
  }
  return out;
}

async function request(
  s: Setup,
  packet: Uint8Array,
  trans = RQST_INIT,
  extra?: Uint8Array,
): Promise<Completion> {
  const type = extra ? P.PacketType.GpaDirect : P.PacketType.Inband;
  assert.ok(s.client.sendPacket(s.ch, guestPacket(type, packet, trans.lo, trans.hi, true, extra)));
  const [c] = await completions(s);
  assert.ok(c, "a completion arrived");
  assert.equal(c.type, P.PacketType.Completion);
  assert.deepEqual([c.transLo, c.transHi], [trans.lo, trans.hi]);
  assert.equal(c.payload.length, 64, "a full vstor_packet");
  assert.equal(c.length, 80, "within storvsc's 80-byte packet limit");
  assert.equal(c.view.getUint32(0, true), Operation.CompleteIo);
  return c;
}

/** Linux's storvsc_channel_init with the version list it tries. */
async function initialize(s: Setup, versions = [PROTOCOL_WIN10]): Promise<DataView> {
  assert.equal((await request(s, vstor(Operation.BeginInitialization))).view.getUint32(8, true), 0);
  for (const v of versions) {
    const r = await request(
      s,
      vstor(Operation.QueryProtocolVersion, (d) => d.setUint16(12, v, true)),
    );
    if (r.view.getUint32(8, true) === 0) break;
  }
  const props = await request(s, vstor(Operation.QueryProperties));
  assert.equal(props.view.getUint32(8, true), 0);
  assert.equal((await request(s, vstor(Operation.EndInitialization))).view.getUint32(8, true), 0);
  return props.view;
}

interface Srb {
  lun?: number;
  path?: number;
  target?: number;
  cdb: Uint8Array;
  dataIn: number;
  transfer: number;
  /** Guest buffer: its GPA (page-aligned start + offset) when data moves. */
  gpa?: number;
  trans?: number;
}

/** EXECUTE_SRB as storvsc_queuecommand builds it: one GPA-direct range when data moves. */
function srbPacket(srb: Srb): { packet: Uint8Array; extra?: Uint8Array } {
  const packet = vstor(Operation.ExecuteSrb, (v, b) => {
    v.setUint16(12, 52, true);
    b[17] = srb.path ?? 0;
    b[18] = srb.target ?? 0;
    b[19] = srb.lun ?? 0;
    b[20] = srb.cdb.length;
    b[21] = 20;
    b[22] = srb.dataIn;
    v.setUint32(24, srb.transfer, true);
    b.set(srb.cdb, 28);
    b[50] = 0xff;
    b[51] = 0x20;
    v.setUint32(
      52,
      srb.dataIn === SRB_DATA_IN_READ ? 0x40 : srb.dataIn === SRB_DATA_IN_WRITE ? 0x80 : 0,
      true,
    );
    v.setUint32(56, 60, true);
  });
  if (srb.transfer === 0 || srb.gpa === undefined) return { packet };
  const offset = srb.gpa % PAGE_SIZE;
  const first = Math.floor(srb.gpa / PAGE_SIZE);
  const pages = Math.ceil((offset + srb.transfer) / PAGE_SIZE);
  const pfns = Array.from({ length: pages }, (_, i) => first + i);
  return { packet, extra: gpaDirectExtra([{ length: srb.transfer, offset, pfns }]) };
}

let nextTag = 1;
async function execute(s: Setup, srb: Srb): Promise<Completion> {
  const { packet, extra } = srbPacket(srb);
  return request(s, packet, { lo: srb.trans ?? nextTag++, hi: 0 }, extra);
}

const srbStatus = (c: Completion): number => c.payload[14]!;
const scsiStatus = (c: Completion): number => c.payload[15]!;
const moved = (c: Completion): number => c.view.getUint32(24, true);
const sense = (c: Completion): number[] => [
  c.payload[28 + 2]! & 0x0f,
  c.payload[28 + 12]!,
  c.payload[28 + 13]!,
];

test("initialization: every protocol version Linux 6.1 tries, older ones refused, properties without sub-channels", async () => {
  for (const version of [PROTOCOL_WIN10, PROTOCOL_WIN8_1, PROTOCOL_WIN8]) {
    const s = await setup();
    const props = await initialize(s, [version]);
    assert.equal(s.vsp.protocolVersion, version);
    assert.equal(props.getUint16(16, true), 0, "max_channel_cnt");
    assert.equal(props.getUint32(20, true), 0, "flags: no multi-channel");
    assert.equal(props.getUint32(24, true), 1024 * 1024, "max_transfer_bytes");
    const tur = await execute(s, { cdb: cdb(6, 0x00), dataIn: SRB_DATA_IN_NONE, transfer: 0 });
    assert.equal(srbStatus(tur), 0x01);
  }
  const s = await setup();
  await request(s, vstor(Operation.BeginInitialization));
  for (const old of [0x0402, 0x0200, 0x0603, 0]) {
    const r = await request(
      s,
      vstor(Operation.QueryProtocolVersion, (d) => d.setUint16(12, old, true)),
    );
    assert.equal(r.view.getUint32(8, true), STATUS_REVISION_MISMATCH, `version ${old.toString(16)}`);
  }
  // END_INITIALIZATION without a version, SRBs before the end, and sub-channels are refused.
  assert.equal(
    (await request(s, vstor(Operation.EndInitialization))).view.getUint32(8, true),
    STATUS_INVALID_DEVICE_STATE,
  );
  const early = await execute(s, { cdb: cdb(6, 0x00), dataIn: SRB_DATA_IN_NONE, transfer: 0 });
  assert.equal(early.view.getUint32(8, true), STATUS_INVALID_DEVICE_STATE);
  assert.equal(srbStatus(early), 0x04);
  const sub = await request(
    s,
    vstor(Operation.CreateSubChannels, (d) => d.setUint16(12, 3, true)),
  );
  assert.equal(sub.view.getUint32(8, true), STATUS_INVALID_DEVICE_REQUEST);
  assert.equal((await request(s, vstor(Operation.ResetBus))).view.getUint32(8, true), 0);
  assert.equal((await request(s, vstor(99))).view.getUint32(8, true), STATUS_INVALID_DEVICE_REQUEST);
});

test("EXECUTE_SRB: INQUIRY, READ and WRITE move data through GPA-direct ranges into guest RAM and the image", async () => {
  const s = await setup();
  await initialize(s);
  const buf = s.guest.alloc(8);
  const inq = await execute(s, {
    cdb: cdb(6, 0x12, { 4: 96 }),
    dataIn: SRB_DATA_IN_READ,
    transfer: 96,
    gpa: buf + 100,
  });
  assert.equal(srbStatus(inq), 0x01);
  assert.equal(scsiStatus(inq), 0);
  assert.equal(moved(inq), 36);
  const text = String.fromCharCode(...s.guest.memory.bytes.subarray(buf + 100 + 8, buf + 100 + 32));
  assert.equal(text, "Msft    Virtual Disk    ");
  // A write spanning three pages, starting mid-page, then read back elsewhere.
  const data = Uint8Array.from({ length: 3 * 4096 }, (_, i) => (i * 13 + 5) & 0xff);
  s.guest.memory.bytes.set(data, buf + 0x200);
  const w = await execute(s, {
    cdb: rw("write", 10, 40, 24),
    dataIn: SRB_DATA_IN_WRITE,
    transfer: data.length,
    gpa: buf + 0x200,
  });
  assert.equal(srbStatus(w), 0x01);
  assert.equal(moved(w), data.length);
  const image = new Uint8Array(data.length);
  await (s.disk as SpyDisk).inner.read(40, image);
  assert.deepEqual(image, data);
  const out = s.guest.alloc(4);
  const r = await execute(s, {
    cdb: rw("read", 16, 40, 24),
    dataIn: SRB_DATA_IN_READ,
    transfer: data.length,
    gpa: out,
  });
  assert.equal(srbStatus(r), 0x01);
  assert.deepEqual(s.guest.memory.bytes.subarray(out, out + data.length), data);
  // The 4096-byte-sector VHDX at LUN 1 and the DVD at LUN 2.
  const cap = await execute(s, {
    lun: 1,
    cdb: cdb(10, 0x25),
    dataIn: SRB_DATA_IN_READ,
    transfer: 8,
    gpa: out,
  });
  assert.equal(s.guest.memory.bytes[out + 6], 0x10); // 4096 = 0x1000
  assert.equal(srbStatus(cap), 0x01);
  const dvd = await execute(s, {
    lun: 2,
    cdb: cdb(6, 0x12, { 4: 36 }),
    dataIn: SRB_DATA_IN_READ,
    transfer: 36,
    gpa: out,
  });
  assert.equal(srbStatus(dvd), 0x01);
  assert.equal(s.guest.memory.bytes[out], 0x05);
  // FUA and SYNCHRONIZE CACHE reach Disk.flush()
  const flushes = (s.disk as SpyDisk).flushes;
  await execute(s, { cdb: rw("write", 10, 0, 1, 0x08), dataIn: SRB_DATA_IN_WRITE, transfer: 512, gpa: buf });
  await execute(s, { cdb: cdb(10, 0x35), dataIn: SRB_DATA_IN_NONE, transfer: 0 });
  assert.equal((s.disk as SpyDisk).flushes, flushes + 2);
});

test("completions: CHECK CONDITION with autosense, INVALID LUN, DATA OVERRUN, residuals", async () => {
  const s = await setup();
  await initialize(s);
  const buf = s.guest.alloc(2);
  const past = await execute(s, {
    cdb: rw("read", 10, 2048, 1),
    dataIn: SRB_DATA_IN_READ,
    transfer: 512,
    gpa: buf,
  });
  assert.equal(srbStatus(past), 0x86); // INVALID_REQUEST | AUTOSENSE_VALID
  assert.equal(scsiStatus(past), 2);
  assert.equal(past.payload[21], 18, "sense_info_length");
  assert.deepEqual(sense(past), [5, 0x21, 0]);
  assert.equal(moved(past), 0);
  const dvdWrite = await execute(s, {
    lun: 2,
    cdb: rw("write", 10, 0, 1),
    dataIn: SRB_DATA_IN_WRITE,
    transfer: 2048,
    gpa: buf,
  });
  assert.equal(srbStatus(dvdWrite), 0x84); // ERROR | AUTOSENSE_VALID
  assert.deepEqual(sense(dvdWrite), [7, 0x27, 0]);
  for (const address of [{ lun: 7 }, { target: 1 }, { path: 3 }]) {
    const tur = await execute(s, { ...address, cdb: cdb(6, 0x00), dataIn: SRB_DATA_IN_NONE, transfer: 0 });
    assert.equal(srbStatus(tur), 0x20, JSON.stringify(address));
    const inq = await execute(s, {
      ...address,
      cdb: cdb(6, 0x12, { 4: 36 }),
      dataIn: SRB_DATA_IN_READ,
      transfer: 36,
      gpa: buf,
    });
    assert.equal(srbStatus(inq), 0x01);
    assert.equal(s.guest.memory.bytes[buf], 0x7f);
  }
  const over = await execute(s, {
    cdb: cdb(6, 0x12, { 4: 36 }),
    dataIn: SRB_DATA_IN_READ,
    transfer: 8,
    gpa: buf,
  });
  assert.equal(srbStatus(over), 0x12);
  assert.equal(moved(over), 8);
  const residual = await execute(s, {
    cdb: rw("read", 10, 0, 1),
    dataIn: SRB_DATA_IN_READ,
    transfer: 2048,
    gpa: buf,
  });
  assert.equal(srbStatus(residual), 0x01);
  assert.equal(moved(residual), 512);
});

test("hostile SRBs: bad page lists, lengths and directions are refused without touching RAM or the image", async () => {
  const s = await setup();
  await initialize(s);
  const spy = s.disk as SpyDisk;
  const buf = s.guest.alloc(2);
  const write = (fill: (v: DataView, b: Uint8Array) => void, extra?: Uint8Array) => {
    const { packet } = srbPacket({ cdb: rw("write", 10, 0, 1), dataIn: SRB_DATA_IN_WRITE, transfer: 512 });
    fill(new DataView(packet.buffer), packet);
    return request(s, packet, { lo: nextTag++, hi: 0 }, extra);
  };
  const range = (pfns: number[], length = 512, offset = 0) => gpaDirectExtra([{ length, offset, pfns }]);
  const ramTop = s.guest.memory.lowTop / PAGE_SIZE;
  for (const [name, c] of [
    ["PFN beyond RAM", await write(() => undefined, range([ramTop + 5]))],
    ["PFN near 2^52", await write(() => undefined, range([2 ** 52]))],
    ["transfer beyond the list", await write((v) => v.setUint32(24, 8192, true), range([buf / PAGE_SIZE]))],
    ["data but no list", await write(() => undefined)],
    ["CDB length 17", await write((_v, b) => (b[20] = 17), range([buf / PAGE_SIZE]))],
    ["CDB length 0", await write((_v, b) => (b[20] = 0), range([buf / PAGE_SIZE]))],
    [
      "a WRITE marked as a read",
      await write((_v, b) => (b[22] = SRB_DATA_IN_READ), range([buf / PAGE_SIZE])),
    ],
  ] as const) {
    assert.equal(srbStatus(c), 0x06, name);
    assert.equal(moved(c), 0, name);
  }
  assert.deepEqual(spy.writes, []);
  // A short SRB (the packet without its vmscsi_request) and a packet too short for an operation.
  const short = await request(s, vstor(Operation.ExecuteSrb).subarray(0, 24), { lo: 77, hi: 0 });
  assert.equal(srbStatus(short), 0x06);
  const tiny = await request(s, new Uint8Array([3, 0, 0, 0]), { lo: 78, hi: 0 });
  assert.notEqual(tiny.view.getUint32(8, true), 0);
  const refused = s.vsp.inspect().counters as { refused: Record<string, number> };
  assert.equal(refused.refused["page-list-not-ram"], 2);
  assert.equal(refused.refused["direction"], 1);
  assert.equal(s.controller.counters.internalErrors, 0);
});

test("back-pressure: a stuck disk holds packets in the ring, never TASK SET FULL; all complete after", async () => {
  const s = await setup({ maxInFlight: 2, gated: true });
  await initialize(s);
  const gated = s.disk as GatedDisk;
  const buf = s.guest.alloc(8);
  for (let i = 0; i < 6; i++) {
    const { packet, extra } = srbPacket({
      cdb: rw("read", 10, i, 1),
      dataIn: SRB_DATA_IN_READ,
      transfer: 512,
      gpa: buf + i * 1024,
      trans: 1000 + i,
    });
    assert.ok(
      s.client.sendPacket(s.ch, guestPacket(P.PacketType.GpaDirect, packet, 1000 + i, 0, true, extra)),
    );
  }
  await new Promise((r) => setImmediate(r));
  assert.equal(s.controller.commandsInFlight, 2);
  assert.equal(gated.pendingReads, 2);
  assert.equal(s.client.receivePackets(s.ch).length, 0);
  gated.release();
  const done = await completions(s, 6);
  assert.deepEqual(
    done.map((c) => c.transLo).sort((a, b) => a - b),
    [1000, 1001, 1002, 1003, 1004, 1005],
  );
  assert.ok(done.every((c) => srbStatus(c) === 0x01));
  assert.equal(s.controller.counters.taskSetFull, 0);
  for (let i = 0; i < 6; i++) {
    const expect = Uint8Array.from({ length: 512 }, (_, k) => ((i * 512 + k) * 7) & 0xff);
    assert.deepEqual(s.guest.memory.bytes.subarray(buf + i * 1024, buf + i * 1024 + 512), expect);
  }
});

test("a close with commands in flight drops their completions; the channel reopens and works", async () => {
  const s = await setup({ gated: true });
  await initialize(s);
  const buf = s.guest.alloc(1);
  const { packet, extra } = srbPacket({
    cdb: rw("read", 10, 0, 1),
    dataIn: SRB_DATA_IN_READ,
    transfer: 512,
    gpa: buf,
  });
  s.client.sendPacket(s.ch, guestPacket(P.PacketType.GpaDirect, packet, 5, 0, true, extra));
  await new Promise((r) => setImmediate(r));
  s.client.close(s.ch);
  (s.disk as GatedDisk).release();
  await new Promise((r) => setImmediate(r));
  const ch = s.client.open(s.ch.offer.relid, 16, 16);
  assert.notEqual(typeof ch, "number");
  s.ch = ch as GuestChannel;
  assert.deepEqual(await completions(s, 1).then((c) => c.length), 0);
  await initialize(s);
  const tur = await execute(s, { cdb: cdb(6, 0x00), dataIn: SRB_DATA_IN_NONE, transfer: 0 });
  assert.equal(srbStatus(tur), 0x01);
});

test("rescan: ENUMERATE_BUS reaches the guest as an unsolicited packet (transaction id 0)", async () => {
  const s = await setup();
  assert.equal(s.vsp.rescan(), false, "not before initialization");
  await initialize(s);
  s.controller.attachDisk(5, (await memoryImage("raw", 64 * 1024)).disk);
  assert.equal(s.vsp.rescan(), true);
  const [p] = await completions(s);
  assert.ok(p);
  assert.equal(p.type, P.PacketType.Inband);
  assert.deepEqual([p.transLo, p.transHi], [0, 0]);
  assert.equal(p.view.getUint32(0, true), Operation.EnumerateBus);
  const buf = s.guest.alloc(1);
  const luns = await execute(s, {
    cdb: be(cdb(12, 0xa0), 6, 4, 256),
    dataIn: SRB_DATA_IN_READ,
    transfer: 256,
    gpa: buf,
  });
  assert.equal(moved(luns), 8 + 4 * 8);
});

test("durability order: a WRITE completes after Disk.write resolved; FUA and SYNCHRONIZE CACHE after Disk.flush", async () => {
  const s = await setup({ ordered: true });
  await initialize(s);
  const disk = s.disk as OrderedDisk;
  const buf = s.guest.alloc(1);
  /** Sends an SRB and lets the host run; returns what completed so far. */
  const send = async (srb: Srb, trans: number): Promise<Completion[]> => {
    const { packet, extra } = srbPacket({ ...srb, trans });
    const type = extra ? P.PacketType.GpaDirect : P.PacketType.Inband;
    assert.ok(s.client.sendPacket(s.ch, guestPacket(type, packet, trans, 0, true, extra)));
    return settle();
  };
  // Up to 200 turns of the event loop for one completion: long enough for anything not held to finish.
  const settle = (): Promise<Completion[]> => completions(s, 1);
  const write = (fua: boolean): Srb => ({
    cdb: rw("write", 10, 3, 1, fua ? 0x08 : 0),
    dataIn: SRB_DATA_IN_WRITE,
    transfer: 512,
    gpa: buf,
  });
  // A plain WRITE: nothing completes while the write is held; it completes once the write returned.
  assert.deepEqual(await send(write(false), 1), []);
  assert.equal(disk.waiting, 1);
  disk.step();
  const plain = await settle();
  assert.deepEqual(
    plain.map((c) => [c.transLo, srbStatus(c)]),
    [[1, 0x01]],
  );
  // WRITE with FUA: not after the write alone; after the flush that follows it.
  assert.deepEqual(await send(write(true), 2), []);
  disk.step();
  assert.deepEqual(await settle(), [], "a FUA write completed before its flush");
  assert.equal(disk.waiting, 1, "the flush is held");
  disk.step();
  assert.deepEqual(
    (await settle()).map((c) => c.transLo),
    [2],
  );
  // SYNCHRONIZE CACHE: completes only after the flush returned.
  assert.deepEqual(await send({ cdb: cdb(10, 0x35), dataIn: SRB_DATA_IN_NONE, transfer: 0 }, 3), []);
  disk.step();
  assert.deepEqual(
    (await settle()).map((c) => c.transLo),
    [3],
  );
  assert.deepEqual(disk.log, [
    "write started",
    "write done",
    "write started",
    "write done",
    "flush started",
    "flush done",
    "flush started",
    "flush done",
  ]);
});
