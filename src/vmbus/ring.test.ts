import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestMemory, PAGE_SIZE } from "../memory/guest-memory.js";
import { GuestPageList } from "../memory/page-list.js";
import { buildPacket, parsePacket } from "./packets.js";
import * as P from "./protocol.js";
import { InboundRing, OutboundRing } from "./ring.js";

/** A 2-page ring (4 KiB data) at PFN 16 of a 1 MiB guest. */
function ring() {
  const memory = new GuestMemory(1 << 20);
  const pages = GuestPageList.build(memory, [{ pfns: [16, 17], offset: 0, length: 2 * PAGE_SIZE }]);
  if (typeof pages === "string") throw new Error(pages);
  const view = new DataView(memory.buffer);
  const hdr = (f: number) => view.getUint32(16 * PAGE_SIZE + f, true);
  const setHdr = (f: number, v: number) => view.setUint32(16 * PAGE_SIZE + f, v >>> 0, true);
  const data = 17 * PAGE_SIZE;
  /** Writes a packet into the data area at the guest's write index, as a guest writer would. */
  const guestWrite = (packet: Uint8Array) => {
    const w = hdr(P.RING_WRITE_INDEX);
    const all = new Uint8Array(packet.length + 8);
    all.set(packet);
    new DataView(all.buffer).setUint32(packet.length + 4, w, true);
    for (let i = 0; i < all.length; i++) memory.bytes[data + ((w + i) % PAGE_SIZE)] = all[i]!;
    setHdr(P.RING_WRITE_INDEX, (w + all.length) % PAGE_SIZE);
  };
  return { memory, pages, hdr, setHdr, guestWrite, data };
}

const inband = (n: number, tid = 0) =>
  buildPacket(P.PacketType.Inband, null, new Uint8Array(n).fill(0x5a), { lo: tid, hi: 0 }, true);

test("inbound: packets come out whole across the wrap; the read index is published, never read back", () => {
  const r = ring();
  const ib = InboundRing.attach(r.pages)!;
  for (let i = 0; i < 100; i++) {
    r.guestWrite(inband(8 * (i % 40), i));
    // The guest scribbles on the index the host owns: the host ignores it.
    r.setHdr(P.RING_READ_INDEX, 0xdead);
    const got = ib.read();
    assert.ok(got !== null);
    assert.equal(got.packet.transLo, i);
    assert.equal(got.packet.bytes.length, 16 + 8 * (i % 40));
    const p = parsePacket(got.packet);
    assert.ok(typeof p !== "string");
    assert.equal(p.payload.length, 8 * (i % 40));
    assert.ok(p.payload.every((b) => b === 0x5a));
    assert.equal(ib.read(), null);
  }
  assert.equal(ib.fault, null);
  assert.equal(ib.packets, 100);
});

test("inbound: hostile write index, lengths and offsets break the ring instead of being followed", () => {
  const cases: Array<[string, (r: ReturnType<typeof ring>) => void]> = [
    ["bad-write-index", (r) => r.setHdr(P.RING_WRITE_INDEX, 4)],
    ["bad-write-index", (r) => r.setHdr(P.RING_WRITE_INDEX, PAGE_SIZE)],
    ["bad-write-index", (r) => r.setHdr(P.RING_WRITE_INDEX, 0xfffffff8)],
    ["bad-packet-length", (r) => r.setHdr(P.RING_WRITE_INDEX, 8)],
    [
      "bad-packet-length",
      (r) => {
        const p = inband(64);
        new DataView(p.buffer).setUint16(4, 0xffff, true);
        r.guestWrite(p);
      },
    ],
    [
      "bad-packet-length",
      (r) => {
        const p = inband(64);
        new DataView(p.buffer).setUint16(4, 1, true);
        r.guestWrite(p);
      },
    ],
    [
      "bad-packet-offset",
      (r) => {
        const p = inband(64);
        new DataView(p.buffer).setUint16(2, 1, true);
        r.guestWrite(p);
      },
    ],
    [
      "bad-packet-offset",
      (r) => {
        const p = inband(64);
        new DataView(p.buffer).setUint16(2, 11, true);
        r.guestWrite(p);
      },
    ],
  ];
  for (const [fault, corrupt] of cases) {
    const r = ring();
    const ib = InboundRing.attach(r.pages)!;
    corrupt(r);
    assert.equal(ib.read(), null);
    assert.equal(ib.fault, fault);
    assert.equal(ib.hasData(), false, "a broken ring stays broken");
  }
  // A ring whose initial read index is not a valid start is refused at attach.
  const r = ring();
  r.setHdr(P.RING_READ_INDEX, 12);
  assert.equal(InboundRing.attach(r.pages), null);
});

test("inbound: the guest is signalled only when a read crosses its pending_send_sz", () => {
  const r = ring();
  const ib = InboundRing.attach(r.pages)!;
  r.setHdr(P.RING_FEATURE_BITS, 1);
  for (let i = 0; i < 8; i++) r.guestWrite(inband(400, i)); // 8 x 424 bytes: 3392 used, 704 free
  r.setHdr(P.RING_PENDING_SEND_SZ, 1200);
  const signals = [];
  for (let i = 0; i < 8; i++) signals.push(ib.read()!.signal);
  // Free grows 704 -> 1128 -> 1552: only the second read crosses 1200.
  assert.deepEqual(signals, [false, true, false, false, false, false, false, false]);
  // Without the feature bit the guest is never signalled.
  const q = ring();
  const ib2 = InboundRing.attach(q.pages)!;
  for (let i = 0; i < 8; i++) q.guestWrite(inband(400, i));
  q.setHdr(P.RING_PENDING_SEND_SZ, 1200);
  for (let i = 0; i < 8; i++) assert.equal(ib2.read()!.signal, false);
});

test("outbound: trailer, strict free rule, pending_send_sz, empty-to-non-empty signalling, hostile read index", () => {
  const r = ring();
  const ob = OutboundRing.attach(r.pages)!;
  const first = ob.write(inband(112));
  assert.deepEqual(first, { status: "ok", signal: true });
  assert.equal(r.hdr(P.RING_WRITE_INDEX), 136);
  assert.equal(new DataView(r.memory.buffer).getUint32(r.data + 128 + 4, true), 0, "trailer: start index 0");
  assert.deepEqual(ob.write(inband(112)), { status: "ok", signal: false }, "not empty before: no signal");
  assert.equal(new DataView(r.memory.buffer).getUint32(r.data + 264 + 4, true), 136);
  // Fill: 4096 - 272 = 3824 free. A packet of exactly 3816 + 8 = 3824 must not fit (strictly greater).
  assert.equal(ob.write(inband(3800)).status, "full");
  assert.equal(r.hdr(P.RING_PENDING_SEND_SZ), 3824);
  assert.equal(ob.fullCount, 1);
  assert.equal(ob.spaceFreed(), false);
  r.setHdr(P.RING_READ_INDEX, 136);
  assert.equal(ob.spaceFreed(), true);
  assert.equal(ob.write(inband(3800)).status, "ok");
  assert.equal(r.hdr(P.RING_PENDING_SEND_SZ), 0);
  // The reader masks interrupts: no signal even on an empty ring.
  r.setHdr(P.RING_READ_INDEX, r.hdr(P.RING_WRITE_INDEX));
  r.setHdr(P.RING_INTERRUPT_MASK, 1);
  assert.deepEqual(ob.write(inband(8)), { status: "ok", signal: false });
  // A read index the host could not have produced breaks the ring.
  r.setHdr(P.RING_READ_INDEX, 3);
  assert.deepEqual(ob.write(inband(8)), { status: "broken", signal: false });
  assert.equal(ob.fault, "bad-read-index");
});

test("packets: GPA-direct range lists are checked against the data offset; unknown types are refused", () => {
  const mk = (extra: number[], type: number = P.PacketType.GpaDirect) => {
    const bytes = new Uint8Array(16 + extra.length * 4 + 8);
    const v = new DataView(bytes.buffer);
    v.setUint16(0, type, true);
    v.setUint16(2, (16 + extra.length * 4) / 8, true);
    v.setUint16(4, bytes.length / 8, true);
    extra.forEach((x, i) => v.setUint32(16 + i * 4, x, true));
    return parsePacket({ bytes, type, dataOffset: 16 + extra.length * 4, flags: 0, transLo: 0, transHi: 0 });
  };
  // reserved, count 1, {len 8192, offset 0, pfn 5, pfn 6}
  const ok = mk([0, 1, 8192, 0, 5, 0, 6, 0]);
  assert.ok(typeof ok !== "string");
  assert.deepEqual(ok.ranges, [{ pfns: [5, 6], offset: 0, length: 8192 }]);
  assert.equal(mk([0, 1, 8193, 0, 5, 0, 6, 0]), "bad-ranges", "needs 3 PFNs");
  assert.equal(mk([0, 2, 8192, 0, 5, 0, 6, 0]), "bad-ranges", "second range missing");
  assert.equal(mk([0, 0xffffffff, 8192, 0, 5, 0, 6, 0]), "bad-ranges");
  assert.equal(mk([0, 1, 0, 0, 5, 0, 6, 0]), "bad-ranges", "zero length");
  assert.equal(mk([0, 1, 100, 4096, 5, 0, 6, 0]), "bad-ranges", "offset outside the page");
  assert.equal(mk([0, 0], 0x8), "unknown-type");
  const xfer = mk([0x00010007, 0xffffff, 0, 0], P.PacketType.TransferPages);
  assert.equal(xfer, "bad-transfer-ranges");
});
