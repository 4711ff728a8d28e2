// The VMBus server driven by the guest-side test client through the real partition: SynIC MSRs, SIMP/SIEF
// pages, HvPostMessage and HvSignalEvent hypercalls executed by the processor. An echo VSP answers packets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PAGE_SIZE } from "../../src/memory/guest-memory.js";
import type {
  ChannelHandler,
  ReceivedPacket,
  VmbusChannel,
  VmbusOffer,
} from "../../src/vmbus/channel-api.js";
import * as P from "../../src/vmbus/protocol.js";
import { Msg } from "../../src/vmbus/protocol.js";
import { VmbusServer } from "../../src/vmbus/server.js";
import { guidConstant } from "../../src/support/ms-guid.js";
import * as T from "../../src/hv/tlfs.js";
import {
  type GuestChannel,
  gpaDirectExtra,
  gpadlMessages,
  guestPacket,
  TestGuest,
  VMBUS_VECTOR,
  VmbusClient,
} from "./guest-client.js";

const ECHO_CLASS = guidConstant("{8f2a1c3e-0000-4000-8000-00000000ec00}");

/** A VSP that completes every packet with its payload, and records what it saw. */
class EchoVsp implements ChannelHandler {
  channel!: VmbusChannel;
  readonly seen: ReceivedPacket[] = [];
  opens = 0;
  closes = 0;
  writable = 0;
  refuseOpen = false;
  /** Packets it could not send (ring full), sent again from onWritable. */
  readonly backlog: ReceivedPacket[] = [];
  /** Stop pulling after this many packets per kick (back-pressure tests). */
  pullLimit = Infinity;

  onOpen(): boolean {
    if (this.refuseOpen) return false;
    this.opens++;
    return true;
  }
  onReadable(): void {
    let n = 0;
    let p: ReceivedPacket | null;
    while (n < this.pullLimit && this.backlog.length === 0 && (p = this.channel.receive()) !== null) {
      n++;
      this.seen.push(p);
      this.answer(p);
    }
  }
  private answer(p: ReceivedPacket): void {
    if (!p.completionRequested) return;
    if (this.channel.sendCompletion(p.transactionId, p.payload) === "full") this.backlog.push(p);
  }
  onWritable(): void {
    this.writable++;
    while (this.backlog.length > 0) {
      const p = this.backlog[0]!;
      if (this.channel.sendCompletion(p.transactionId, p.payload) === "full") return;
      this.backlog.shift();
    }
    this.onReadable();
  }
  onClose(): void {
    this.closes++;
    this.backlog.length = 0;
  }
}

function echoOffer(n = 1, extra: Partial<VmbusOffer> = {}): VmbusOffer {
  const instanceId = new Uint8Array(16);
  instanceId[0] = n;
  return { classId: ECHO_CLASS, instanceId, name: `echo${n}`, maxGuestPacketBytes: 4096, ...extra };
}

function setup(options: { vsps?: number; offer?: Partial<VmbusOffer>; vpCount?: number } = {}) {
  const guest = new TestGuest({ vpCount: options.vpCount ?? 1 });
  const server = new VmbusServer({ partition: guest.partition });
  const vsps: EchoVsp[] = [];
  for (let i = 0; i < (options.vsps ?? 1); i++) {
    const vsp = new EchoVsp();
    vsp.channel = server.offer(echoOffer(i + 1, options.offer), vsp);
    vsps.push(vsp);
  }
  guest.enableSynic();
  const client = new VmbusClient(guest, () => server.poll());
  return { guest, server, client, vsps };
}

function connected(options: Parameters<typeof setup>[0] = {}) {
  const s = setup(options);
  assert.equal(s.client.negotiate(), P.VERSION_WIN10_V5_3);
  s.client.requestOffers();
  return s;
}

function openEcho(s: ReturnType<typeof setup>, relid = 1, sendPages = 4, recvPages = 4): GuestChannel {
  const ch = s.client.open(relid, sendPages, recvPages);
  assert.notEqual(typeof ch, "number", `open failed with status ${String(ch)}`);
  return ch as GuestChannel;
}

test("version negotiation: every version Linux offers is accepted, others refused, 5.3 first", () => {
  const { client, server } = setup();
  for (const v of P.SUPPORTED_VERSIONS) {
    assert.equal(client.connect(v), true, P.formatVersion(v));
    assert.equal(server.inspect().version, P.formatVersion(v));
  }
  for (const v of [0x00000d, 0x00010001, 0x00050004, 0x00060000, 0xffffffff]) {
    assert.equal(client.connect(v), false, `version 0x${v.toString(16)}`);
    assert.equal(server.inspect().connected, false);
  }
  assert.equal(client.negotiate(), P.VERSION_WIN10_V5_3);
  // A 5.x contact with a SINT other than 2 is refused (the server only talks on SINT 2).
  const m = P.newMessage(Msg.InitiateContact, 40);
  m.view.setUint32(P.IC_VERSION, P.VERSION_WIN10_V5_3, true);
  m.view.setUint8(P.IC_MSG_SINT, 3);
  client.post(m.bytes, P.MESSAGE_CONNECTION_ID_4);
  assert.equal(client.expect(Msg.VersionResponse).getUint8(P.VR_SUPPORTED), 0);
  assert.equal(server.inspect().refused["unsupported-version"], 6);
});

test("the version response names connection id 1 and arrives in SINT2's slot with vector 0xF3", () => {
  const { client, guest } = setup();
  const before = guest.vectors.count[VMBUS_VECTOR]!;
  const m = P.newMessage(Msg.InitiateContact, 40);
  m.view.setUint32(P.IC_VERSION, P.VERSION_WIN10_V5, true);
  m.view.setUint8(P.IC_MSG_SINT, P.VMBUS_SINT);
  assert.equal(guest.postMessage(P.MESSAGE_CONNECTION_ID_4, m.bytes), T.HV_STATUS_SUCCESS);
  assert.ok(guest.vectors.count[VMBUS_VECTOR]! > before, "SINT2 vector asserted");
  const r = guest.takeMessage()!;
  assert.equal(r.length, P.VERSION_RESPONSE_SIZE);
  const v = new DataView(r.buffer);
  assert.equal(v.getUint32(0, true), Msg.VersionResponse);
  assert.equal(v.getUint8(P.VR_SUPPORTED), 1);
  assert.equal(v.getUint8(P.VR_CONNECTION_STATE), 0);
  assert.equal(v.getUint32(P.VR_MSG_CONN_ID, true), 1);
  // Connection ids other than 1 and 4 are not ports at all.
  assert.equal(guest.postMessage(2, m.bytes), T.HV_STATUS_INVALID_CONNECTION_ID);
  void client;
});

test("offers: one per device, then ALLOFFERS_DELIVERED; dedicated interrupt, no monitor, own connection id", () => {
  const s = setup({ vsps: 3 });
  s.client.negotiate();
  const offers = s.client.requestOffers();
  assert.deepEqual(
    offers.map((o) => o.relid),
    [1, 2, 3],
  );
  for (const o of offers) {
    assert.deepEqual([...o.classId], [...ECHO_CLASS]);
    assert.equal(o.instanceId[0], o.relid);
    assert.equal(o.dedicatedInterrupt, true);
    assert.equal(o.monitorAllocated, false);
    assert.notEqual(o.connectionId, 1);
    assert.equal(o.flags & P.CHANNEL_FLAG_TLNPI_PROVIDER, 0);
  }
  assert.equal(new Set(offers.map((o) => o.connectionId)).size, 3);
  // A second REQUESTOFFERS is a protocol error: dropped.
  s.client.post(P.newMessage(Msg.RequestOffers, 8).bytes);
  assert.equal(s.client.take(Msg.OfferChannel), null);
  assert.equal(s.server.inspect().dropped["repeated-requestoffers"], 1);
  // Hot add: an offer registered now reaches the guest at once.
  const late = new EchoVsp();
  late.channel = s.server.offer(echoOffer(9), late);
  const m = s.client.take(Msg.OfferChannel);
  assert.ok(m !== null);
  assert.equal(new DataView(m.buffer).getUint32(P.OFFER_RELID, true), 4);
});

test("GPADL header + bodies, open, echo round trip with SIEF signalling, close, teardown", () => {
  const s = connected();
  const vsp = s.vsps[0]!;
  // 40 pages: the PFN list needs a header and a body message.
  const ch = openEcho(s, 1, 20, 20);
  assert.equal(vsp.opens, 1);
  assert.equal(s.server.inspect().channels[0]!.state, "open");
  assert.deepEqual(s.server.inspect().channels[0]!.ringBytes, [20 * PAGE_SIZE, 20 * PAGE_SIZE]);
  const payload = new TextEncoder().encode("hello vmbus");
  const before = s.guest.vectors.count[VMBUS_VECTOR]!;
  assert.ok(s.client.sendPacket(ch, guestPacket(P.PacketType.Inband, payload, 0x1234, 0xffff8880, true)));
  assert.equal(vsp.seen.length, 1);
  const p = vsp.seen[0]!;
  assert.equal(p.type, "inband");
  assert.deepEqual(p.transactionId, { lo: 0x1234, hi: 0xffff8880 });
  assert.equal(p.completionRequested, true);
  assert.deepEqual([...p.payload.subarray(0, payload.length)], [...payload]);
  assert.ok(s.guest.vectors.count[VMBUS_VECTOR]! > before, "the completion interrupted the guest");
  assert.equal(s.guest.takeEvent(1), true, "SIEF flag 1 (the relid) of SINT2 set");
  const got = s.client.receivePackets(ch);
  assert.equal(got.length, 1);
  const d = new DataView(got[0]!.buffer);
  assert.equal(d.getUint16(0, true), P.PacketType.Completion);
  assert.equal(d.getUint32(8, true), 0x1234);
  assert.equal(d.getUint32(12, true), 0xffff8880);
  assert.deepEqual([...got[0]!.subarray(16, 16 + payload.length)], [...payload]);
  // Trailer: the start index in the high half.
  assert.equal(s.guest.u32(ch.recv.gpa + PAGE_SIZE + got[0]!.length + 4), 0);
  s.client.close(ch);
  assert.equal(vsp.closes, 1);
  assert.equal(s.server.inspect().gpadls, 0);
  assert.equal(vsp.channel.sendInband(payload, { lo: 0, hi: 0 }, false), "closed");
  // Reopen works.
  const again = openEcho(s);
  assert.ok(s.client.sendPacket(again, guestPacket(P.PacketType.Inband, payload, 7, 0, true)));
  assert.equal(s.client.receivePackets(again).length, 1);
  assert.equal(vsp.opens, 2);
});

test("a ring wraps around: 500 packets through a 2-page ring, trailers and indices as Linux expects", () => {
  const s = connected();
  const vsp = s.vsps[0]!;
  const ch = openEcho(s, 1, 2, 2);
  let received = 0;
  for (let i = 0; i < 500; i++) {
    const payload = new Uint8Array(40 + (i % 13) * 8).fill(i & 0xff);
    assert.ok(s.client.sendPacket(ch, guestPacket(P.PacketType.Inband, payload, i, 0, true)));
    for (const pkt of s.client.receivePackets(ch)) {
      const d = new DataView(pkt.buffer);
      assert.equal(d.getUint32(8, true), received);
      assert.equal(pkt[16], received & 0xff);
      received++;
    }
  }
  assert.equal(received, 500);
  assert.equal(vsp.seen.length, 500);
  const info = s.server.inspect().channels[0]!;
  assert.equal(info.packetsIn, 500);
  assert.equal(info.packetsOut, 500);
  assert.equal(info.lastFault, null);
});

test("host ring full: pending_send_sz set, the guest's read signals the host, onWritable resumes", () => {
  const s = connected();
  const vsp = s.vsps[0]!;
  const ch = openEcho(s, 1, 8, 2);
  // The guest queues 40 requests without reading answers: the 4 KiB host-to-guest ring fills up.
  for (let i = 0; i < 40; i++) {
    ch.send.write(guestPacket(P.PacketType.Inband, new Uint8Array(200).fill(i), i, 0, true));
  }
  s.guest.signalEvent(ch.offer.connectionId);
  assert.ok(vsp.backlog.length > 0, "the echo VSP hit a full ring");
  assert.ok(ch.recv.header(P.RING_PENDING_SEND_SZ) > 0, "pending_send_sz published");
  assert.equal(s.server.inspect().channels[0]!.ringFull, 1);
  const ids: number[] = [];
  for (let turn = 0; turn < 40 && ids.length < 40; turn++) {
    for (const pkt of s.client.receivePackets(ch)) ids.push(new DataView(pkt.buffer).getUint32(8, true));
  }
  assert.deepEqual(
    ids,
    Array.from({ length: 40 }, (_, i) => i),
  );
  assert.ok(vsp.writable > 0);
  assert.equal(ch.recv.header(P.RING_PENDING_SEND_SZ), 0, "cleared once the host could write again");
});

test("GPA-direct packets with several multi-page ranges: the VSP reads and writes the guest buffers", () => {
  const s = connected();
  const vsp = s.vsps[0]!;
  const ch = openEcho(s);
  const a = s.guest.alloc(3);
  const b = s.guest.alloc(1);
  s.guest.memory.bytes.fill(0xaa, a + 100, a + 100 + 9000);
  s.guest.memory.bytes.fill(0xbb, b + 8, b + 8 + 16);
  const ranges = [
    { length: 9000, offset: 100, pfns: [a / PAGE_SIZE, a / PAGE_SIZE + 1, a / PAGE_SIZE + 2] },
    { length: 16, offset: 8, pfns: [b / PAGE_SIZE] },
  ];
  s.client.sendPacket(
    ch,
    guestPacket(P.PacketType.GpaDirect, new Uint8Array([1, 2, 3]), 5, 0, true, gpaDirectExtra(ranges)),
  );
  const p = vsp.seen[0]!;
  assert.equal(p.type, "gpa-direct");
  assert.equal(p.ranges.length, 2);
  assert.deepEqual([...p.payload.subarray(0, 3)], [1, 2, 3]);
  const buf = vsp.channel.buffer(p.ranges);
  assert.notEqual(typeof buf, "string");
  if (typeof buf === "string") return;
  assert.equal(buf.length, 9016);
  const data = new Uint8Array(9016);
  assert.ok(buf.read(0, data));
  assert.ok(data.subarray(0, 9000).every((x) => x === 0xaa));
  assert.ok(data.subarray(9000).every((x) => x === 0xbb));
  assert.ok(buf.write(8990, new Uint8Array(20).fill(0x55)));
  assert.equal(s.guest.memory.bytes[a + 100 + 8999], 0x55);
  assert.equal(s.guest.memory.bytes[a + 100 + 9000], 0, "the byte after the first range is untouched");
  assert.equal(s.guest.memory.bytes[b + 8 + 9], 0x55);
  assert.equal(s.guest.memory.bytes[b + 8 + 10], 0xbb);
  assert.equal(buf.read(9000, new Uint8Array(17)), false, "past the end of the list");
  // A range with a PFN outside RAM is refused when the VSP asks for it.
  const bad = vsp.channel.buffer([{ length: 10, offset: 0, pfns: [0xc0000] }]);
  assert.equal(bad, "not-ram");
});

test("transfer-page packets reach the guest with their ranges and payload", () => {
  const s = connected();
  const vsp = s.vsps[0]!;
  const ch = openEcho(s);
  const st = vsp.channel.sendTransferPages(
    0xcafe,
    [
      { byteCount: 100, byteOffset: 0 },
      { byteCount: 60, byteOffset: 4096 },
    ],
    new Uint8Array([9, 8, 7]),
    { lo: 77, hi: 0 },
    true,
  );
  assert.equal(st, "ok");
  const [pkt] = s.client.receivePackets(ch);
  const d = new DataView(pkt!.buffer);
  assert.equal(d.getUint16(0, true), P.PacketType.TransferPages);
  assert.equal(d.getUint16(6, true), 1);
  assert.equal(d.getUint16(16, true), 0xcafe);
  assert.equal(d.getUint32(20, true), 2);
  assert.equal(d.getUint32(24, true), 100);
  assert.equal(d.getUint32(36, true), 4096);
  assert.equal(d.getUint16(2, true) * 8, 40);
  assert.deepEqual([...pkt!.subarray(40, 43)], [9, 8, 7]);
  assert.equal(vsp.channel.sendInband(new Uint8Array(4096), { lo: 0, hi: 0 }, false), "too-large");
});

test("GPADLs: created on complete PFN lists, refused with a failure status for PFNs outside RAM or bad layouts", () => {
  const s = connected();
  const ok = s.client.createGpadl(1, [0x200, 0x201]);
  assert.equal(ok.status, 0);
  assert.ok(s.vsps[0]!.channel.gpadl(ok.handle) !== null, "the VSP sees the channel's GPADL");
  // Outside RAM (32 MiB guest), in the MMIO hole, beyond 2^53 bytes.
  for (const pfn of [0x2000, 0xfee00, 2 ** 41]) {
    assert.equal(
      s.client.createGpadl(1, [0x300, pfn]).status,
      P.STATUS_UNSUCCESSFUL,
      `pfn 0x${pfn.toString(16)}`,
    );
  }
  // byte_count that needs more pages than listed.
  const msgs = gpadlMessages(1, 0x999, [0x300], 2 * PAGE_SIZE);
  s.client.post(msgs[0]!);
  assert.equal(s.client.expect(Msg.GpadlCreated).getUint32(16, true), P.STATUS_UNSUCCESSFUL);
  // A GPADL for a relid that was never offered is dropped.
  const stray = gpadlMessages(77, 0x777, [0x300]);
  s.client.post(stray[0]!);
  assert.equal(s.client.take(Msg.GpadlCreated), null);
  assert.equal(s.server.inspect().dropped["gpadl-unknown-relid"], 1);
  // Teardown answers GPADL_TORNDOWN; the VSP's view is detached.
  const view = s.vsps[0]!.channel.gpadl(ok.handle)!;
  assert.ok(s.client.teardownGpadl(1, ok.handle));
  assert.equal(view.length, 0);
  assert.equal(view.read(0, new Uint8Array(1)), false);
  assert.equal(s.vsps[0]!.channel.gpadl(ok.handle), null);
  assert.equal(s.server.inspect().gpadls, 0);
});

test("tearing down an open channel's ring GPADL waits for the close", () => {
  const s = connected();
  const ch = openEcho(s);
  assert.equal(s.client.teardownGpadl(1, ch.gpadl), false, "no TORNDOWN while the ring is in use");
  const m = P.newMessage(Msg.CloseChannel, 12);
  m.view.setUint32(8, 1, true);
  s.client.post(m.bytes);
  const r = s.client.take(Msg.GpadlTorndown);
  assert.ok(r !== null);
  assert.equal(new DataView(r.buffer).getUint32(8, true), ch.gpadl);
});

test("open failures answer OPENCHANNEL_RESULT with a failure status", () => {
  const s = connected();
  s.vsps[0]!.refuseOpen = true;
  assert.equal(s.client.open(1), P.STATUS_UNSUCCESSFUL);
  assert.equal(s.server.inspect().refused["open-refused-by-device"], 1);
  s.vsps[0]!.refuseOpen = false;
  // Rings below the offer's minimum.
  const t = connected({ offer: { ringBytes: { min: 4 * PAGE_SIZE, max: 8 * PAGE_SIZE } } });
  assert.equal(t.client.open(1, 2, 4), P.STATUS_UNSUCCESSFUL);
  assert.equal(t.client.open(1, 4, 16), P.STATUS_UNSUCCESSFUL);
  assert.notEqual(typeof t.client.open(1, 4, 8), "number");
  // Target VP that does not exist; a GPADL of another channel; a ring whose initial index is bogus.
  const u = connected({ vsps: 2 });
  assert.equal(u.client.open(1, 4, 4, 5), P.STATUS_UNSUCCESSFUL);
  const other = u.client.createGpadl(2, [0x400, 0x401, 0x402, 0x403]);
  const m = P.newMessage(Msg.OpenChannel, 148);
  m.view.setUint32(P.OC_RELID, 1, true);
  m.view.setUint32(P.OC_GPADL, other.handle, true);
  m.view.setUint32(P.OC_DOWNSTREAM_OFFSET, 2, true);
  u.client.post(m.bytes);
  assert.equal(u.client.expect(Msg.OpenChannelResult).getUint32(16, true), P.STATUS_UNSUCCESSFUL);
  u.guest.memory.bytes.fill(0, 0x500000, 0x504000);
  u.guest.setU32(0x500000 + P.RING_READ_INDEX, 13);
  const g = u.client.createGpadl(1, [0x500, 0x501, 0x502, 0x503]);
  m.view.setUint32(P.OC_GPADL, g.handle, true);
  u.client.post(m.bytes);
  assert.equal(u.client.expect(Msg.OpenChannelResult).getUint32(16, true), P.STATUS_UNSUCCESSFUL);
  assert.equal(u.server.inspect().refused["open-bad-ring-index"], 1);
});

test("rescind: RESCIND_CHANNELOFFER, the VSP closes, the relid is reused only after RELID_RELEASED", () => {
  const s = connected({ vsps: 2 });
  const ch = openEcho(s, 1);
  s.vsps[0]!.channel.revoke();
  const r = s.client.expect(Msg.RescindChannelOffer);
  assert.equal(r.getUint32(8, true), 1);
  assert.equal(s.vsps[0]!.closes, 1);
  assert.equal(s.server.inspect().channels[0]!.state, "rescinded");
  // Linux then tears down the ring GPADL and releases the relid.
  assert.ok(s.client.teardownGpadl(1, ch.gpadl));
  const rel = P.newMessage(Msg.RelidReleased, 12);
  rel.view.setUint32(8, 1, true);
  s.client.post(rel.bytes);
  assert.equal(s.server.inspect().channels.length, 1);
  // A new device takes the free relid and is offered at once.
  const v = new EchoVsp();
  v.channel = s.server.offer(echoOffer(5), v);
  assert.equal(v.channel.relid, 1);
  assert.ok(s.client.take(Msg.OfferChannel) !== null);
  // The old channel's event connection id is gone from the partition.
  assert.equal(s.guest.signalEvent(ch.offer.connectionId), T.HV_STATUS_SUCCESS, "reused by the new channel");
  assert.equal(s.guest.signalEvent(P.MESSAGE_CONNECTION_ID + 0x20000), T.HV_STATUS_INVALID_CONNECTION_ID);
});

test("UNLOAD closes every channel and answers UNLOAD_RESPONSE; a new contact starts over", () => {
  const s = connected({ vsps: 2 });
  openEcho(s, 1);
  openEcho(s, 2);
  assert.ok(s.client.unload());
  assert.deepEqual(
    s.vsps.map((v) => v.closes),
    [1, 1],
  );
  assert.equal(s.server.inspect().connected, false);
  assert.equal(s.server.inspect().gpadls, 0);
  // Messages other than INITIATE_CONTACT are dropped until the guest connects again.
  s.client.post(P.newMessage(Msg.RequestOffers, 8).bytes);
  assert.equal(s.server.inspect().dropped["not-connected"], 1);
  assert.equal(s.client.negotiate(), P.VERSION_WIN10_V5_3);
  assert.equal(s.client.requestOffers().length, 2);
  const ch = openEcho(s, 2);
  s.client.sendPacket(ch, guestPacket(P.PacketType.Inband, new Uint8Array(8), 1, 0, true));
  assert.equal(s.client.receivePackets(ch).length, 1);
});

test("MODIFYCHANNEL moves channel events to another VP and answers on 5.3 only", () => {
  const s = connected({ vpCount: 2 });
  const ch = openEcho(s);
  const m = P.newMessage(Msg.ModifyChannel, 16);
  m.view.setUint32(8, 1, true);
  m.view.setUint32(12, 1, true);
  s.client.post(m.bytes);
  const r = s.client.expect(Msg.ModifyChannelResponse);
  assert.equal(r.getUint32(8, true), 1);
  assert.equal(r.getInt32(12, true), 0);
  assert.equal(s.server.inspect().channels[0]!.targetVp, 1);
  m.view.setUint32(12, 9, true);
  s.client.post(m.bytes);
  assert.notEqual(s.client.expect(Msg.ModifyChannelResponse).getInt32(12, true), 0);
  // On 4.1 the change is silent.
  s.client.connect(P.VERSION_WIN10_V4_1);
  s.client.requestOffers();
  openEcho(s);
  m.view.setUint32(12, 1, true);
  s.client.post(m.bytes);
  assert.equal(s.client.take(Msg.ModifyChannelResponse), null);
  assert.equal(s.server.inspect().channels[0]!.targetVp, 1);
  void ch;
});

test("messages the SIMP slot cannot take wait in the server; a guest that never reads gets INSUFFICIENT_BUFFERS", () => {
  const s = setup({ vsps: 40 });
  s.client.negotiate();
  // 40 offers + ALLOFFERS do not fit the SynIC's queue of 16: the rest wait in the server's outbox.
  s.guest.postMessage(1, P.newMessage(Msg.RequestOffers, 8).bytes);
  assert.ok(s.server.inspect().outbox > 0);
  let offers = 0;
  for (let i = 0; i < 200; i++) {
    s.server.poll();
    const m = s.guest.takeMessage();
    if (m === null) continue;
    if (new DataView(m.buffer).getUint32(0, true) === Msg.OfferChannel) offers++;
  }
  assert.equal(offers, 40);
  assert.equal(s.server.inspect().outbox, 0);
  // Now the guest stops reading and floods: answers pile up to the limit, then the hypercall says so.
  const ic = P.newMessage(Msg.InitiateContact, 40);
  ic.view.setUint32(P.IC_VERSION, 0x00010000, true);
  let busy = 0;
  for (let i = 0; i < 200; i++) {
    if (s.guest.postMessage(1, ic.bytes) === T.HV_STATUS_INSUFFICIENT_BUFFERS) busy++;
  }
  assert.ok(busy > 0);
  assert.equal(s.server.inspect().busyRefusals, busy);
});
