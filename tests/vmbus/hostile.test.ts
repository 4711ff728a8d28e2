// A hostile guest against the VMBus server, through the real partition (processor-executed HvPostMessage and
// HvSignalEvent, SIMP/SIEF pages, rings in guest RAM): random and mutated channel messages, GPADLs with PFNs
// outside RAM, in the MMIO hole, with overflowing counts, torn-down handles in use, and rings with hostile
// indices, lengths, packet types and offsets. The host must not throw or hang, must write only the guest's own
// RAM (a neighbouring partition stays bit-for-bit unchanged) and must end in the same state on every run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { PAGE_SIZE } from "../../src/memory/guest-memory.js";
import { Partition } from "../../src/hv/partition.js";
import type { ChannelHandler, ReceivedPacket, VmbusChannel } from "../../src/vmbus/channel-api.js";
import * as P from "../../src/vmbus/protocol.js";
import { Msg } from "../../src/vmbus/protocol.js";
import { VmbusServer } from "../../src/vmbus/server.js";
import {
  gpaDirectExtra,
  gpadlMessages,
  GuestRing,
  guestPacket,
  parseOffer,
  setU64,
  TestGuest,
} from "./guest-client.js";

/** xorshift32: the same sequence on every run and host. */
class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  int(n: number): number {
    return this.next() % n;
  }
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Uint8Array {
    return Uint8Array.from({ length: n }, () => this.int(256));
  }
}

/**
 * A device that uses everything the channel offers: it echoes completions, writes a pattern into the
 * buffers of GPA-direct packets, and writes into a GPADL named by an inband packet, keeping that list for
 * later writes (after the guest may have torn it down).
 */
class BusyVsp implements ChannelHandler {
  channel!: VmbusChannel;
  kept: ReturnType<VmbusChannel["gpadl"]> = null;
  packets = 0;
  writes = 0;
  refusedWrites = 0;
  sendResults = new Map<string, number>();
  constructor(private readonly rng: Rng) {}
  onOpen(userData: Uint8Array): boolean {
    return userData[0] !== 0xee;
  }
  onReadable(): void {
    let p: ReceivedPacket | null;
    for (let n = 0; n < 64 && (p = this.channel.receive()) !== null; n++) this.handle(p);
  }
  private handle(p: ReceivedPacket): void {
    this.packets++;
    if (p.type === "gpa-direct") {
      const buf = this.channel.buffer(p.ranges);
      if (typeof buf !== "string") {
        buf.write(0, new Uint8Array(Math.min(buf.length, 64)).fill(0xd5));
        this.writes++;
      }
    } else if (p.type === "inband" && p.payload.length >= 8 && p.payload[0] === 0x47) {
      const list = this.channel.gpadl(
        new DataView(p.payload.buffer, p.payload.byteOffset).getUint32(4, true),
      );
      if (list !== null) this.kept = list;
    }
    if (this.kept !== null) {
      if (this.kept.write(this.rng.int(8192), new Uint8Array(16).fill(0x3c))) this.writes++;
      else this.refusedWrites++;
    }
    if (p.completionRequested)
      this.count(this.channel.sendCompletion(p.transactionId, p.payload.subarray(0, 64)));
  }
  count(status: string): void {
    this.sendResults.set(status, (this.sendResults.get(status) ?? 0) + 1);
  }
  onWritable(): void {
    this.onReadable();
  }
  onClose(): void {
    this.kept = null;
  }
}

interface OpenRing {
  relid: number;
  connectionId: number;
  send: GuestRing;
  recv: GuestRing;
}

const POOL_LOW = [0x100, 0x1000] as const; // 1 MiB .. 16 MiB of low RAM
const HIGH_BASE = 0x100000; // RAM above 4 GiB (16 MiB of it)

function hostilePfn(rng: Rng): number {
  return rng.pick([
    0x2000 + rng.int(0x1000), // just past low RAM, below the hole
    0xc0000 + rng.int(0x40000), // the MMIO hole
    0xfee00, // the local APIC page
    HIGH_BASE + 0x1000 + rng.int(0x1000), // past high RAM
    2 ** 40 + rng.int(1000), // far beyond
    2 ** 52 - 1, // gpa beyond 2^53
    0xffffffff * 0x1_0000_0000 + 0xffffffff, // u64 max (as far as a double holds it)
  ]);
}

function goodPfn(rng: Rng): number {
  return rng.chance(0.8) ? POOL_LOW[0] + rng.int(POOL_LOW[1] - POOL_LOW[0]) : HIGH_BASE + rng.int(0x1000);
}

/** Hostile operations until `messages` channel messages were posted; returns the final state hash and more. */
function run(seed: number, target: number) {
  const rng = new Rng(seed);
  const vspRng = new Rng(seed ^ 0x5a5a5a5a);
  // 48 MiB: 32 MiB below a hole at 32 MiB, 16 MiB above 4 GiB.
  const guest = new TestGuest({ ram: 48 << 20, mmioHoleStart: 32 << 20, vpCount: 2 });
  const neighbour = new Partition({ memory: 4 << 20, time: "deterministic" });
  neighbour.memory.bytes.fill(0x77);
  const server = new VmbusServer({ partition: guest.partition });
  const vsps: BusyVsp[] = [];
  let instance = 0;
  const addVsp = (maxPacket: number) => {
    const v = new BusyVsp(vspRng);
    const id = new Uint8Array(16);
    id[0] = ++instance;
    id[1] = instance >> 8;
    v.channel = server.offer(
      {
        classId: new Uint8Array(16).fill(0x11),
        instanceId: id,
        name: `busy${instance}`,
        maxGuestPacketBytes: maxPacket,
      },
      v,
    );
    vsps.push(v);
  };
  addVsp(80); // storvsc's limit
  addVsp(4096);
  addVsp(16384);
  guest.enableSynic();

  const relids = new Set<number>();
  const connIds = new Map<number, number>();
  const handles: number[] = [];
  const open: OpenRing[] = [];
  const opening = new Map<number, OpenRing>();
  let messages = 0;

  const post = (bytes: Uint8Array, conn = rng.chance(0.9) ? 1 : 4) => {
    messages++;
    guest.postMessage(conn, bytes);
  };
  const drain = () => {
    server.poll();
    for (let i = 0; i < 32; i++) {
      const m = guest.takeMessage();
      if (m === null) break;
      const v = new DataView(m.buffer);
      const type = v.getUint32(0, true);
      if (type === Msg.OfferChannel && m.length >= P.OFFER_SIZE) {
        const o = parseOffer(m);
        relids.add(o.relid);
        connIds.set(o.relid, o.connectionId);
      } else if (type === Msg.GpadlCreated && v.getUint32(16, true) === 0) {
        handles.push(v.getUint32(12, true));
        if (handles.length > 64) handles.shift();
      } else if (type === Msg.RescindChannelOffer) {
        relids.delete(v.getUint32(8, true));
      } else if (type === Msg.OpenChannelResult && v.getUint32(16, true) === 0) {
        const ring = opening.get(v.getUint32(8, true));
        if (ring !== undefined) open.push(ring);
        if (open.length > 6) open.shift();
      } else if (type === Msg.VersionResponse || type === Msg.UnloadResponse) {
        // The connection ended (and maybe began again): the guest's channels are gone.
        open.length = 0;
        relids.clear();
      }
    }
  };
  const relid = () => (relids.size > 0 && rng.chance(0.85) ? rng.pick([...relids]) : rng.int(4096));
  const handle = () => (handles.length > 0 && rng.chance(0.85) ? rng.pick(handles) : rng.next());

  const template = (kind: number): Uint8Array => {
    switch (kind) {
      case 0: {
        const m = P.newMessage(Msg.InitiateContact, 40);
        m.view.setUint32(P.IC_VERSION, rng.chance(0.7) ? rng.pick(P.SUPPORTED_VERSIONS) : rng.next(), true);
        m.view.setUint32(P.IC_TARGET_VCPU, rng.chance(0.9) ? 0 : rng.chance(0.5) ? 1 : rng.next(), true);
        m.view.setUint8(P.IC_MSG_SINT, rng.chance(0.9) ? 2 : rng.int(256));
        return m.bytes;
      }
      case 1:
        return P.newMessage(Msg.RequestOffers, 8).bytes;
      case 2: {
        const n = rng.chance(0.8) ? 1 + rng.int(40) : rng.int(2000);
        const pfns = Array.from({ length: Math.min(n, 40) }, () =>
          rng.chance(0.9) ? goodPfn(rng) : hostilePfn(rng),
        );
        const msgs = gpadlMessages(relid(), rng.chance(0.7) ? 0x100000 + rng.int(4096) : rng.next(), pfns);
        const h = msgs[0]!;
        const hv = new DataView(h.buffer);
        if (rng.chance(0.2)) hv.setUint16(P.GH_RANGE_BUFLEN, rng.int(65536), true); // overflowing / short counts
        if (rng.chance(0.1)) hv.setUint16(P.GH_RANGE_COUNT, rng.int(65536), true);
        if (rng.chance(0.1)) hv.setUint32(20, rng.next(), true); // byte_count
        if (rng.chance(0.1)) hv.setUint32(24, rng.chance(0.5) ? rng.int(8192) : rng.next(), true); // byte_offset
        // The bodies follow at once (as Linux sends them) unless the guest drops some.
        for (const b of msgs.slice(1)) if (rng.chance(0.95)) post(b);
        return h;
      }
      case 3: {
        const m = P.newMessage(Msg.GpadlBody, 16 + 8 * rng.int(28));
        m.view.setUint32(P.GB_GPADL, handle(), true);
        for (let at = 16; at < m.bytes.length; at += 8)
          setU64(m.view, at, rng.chance(0.8) ? goodPfn(rng) : hostilePfn(rng));
        return m.bytes;
      }
      case 4: {
        const m = P.newMessage(Msg.GpadlTeardown, 16);
        m.view.setUint32(8, relid(), true);
        m.view.setUint32(12, handle(), true);
        return m.bytes;
      }
      case 5: {
        const m = P.newMessage(Msg.OpenChannel, 148);
        m.view.setUint32(P.OC_RELID, relid(), true);
        m.view.setUint32(P.OC_GPADL, handle(), true);
        m.view.setUint32(P.OC_TARGET_VP, rng.chance(0.9) ? rng.int(2) : rng.next(), true);
        m.view.setUint32(P.OC_DOWNSTREAM_OFFSET, rng.chance(0.8) ? 1 + rng.int(8) : rng.next(), true);
        m.bytes[P.OC_USER_DATA] = rng.chance(0.05) ? 0xee : 0;
        return m.bytes;
      }
      case 6:
      case 7:
      case 8: {
        const type = [Msg.CloseChannel, Msg.RelidReleased, Msg.ModifyChannel][kind - 6]!;
        const m = P.newMessage(type, type === Msg.ModifyChannel ? 16 : 12);
        m.view.setUint32(8, relid(), true);
        if (type === Msg.ModifyChannel) m.view.setUint32(12, rng.chance(0.8) ? rng.int(2) : rng.next(), true);
        return m.bytes;
      }
      default:
        return P.newMessage(Msg.Unload, 8).bytes;
    }
  };

  /** A properly built ring over fresh pool pages, opened through the real protocol (when the guest is lucky). */
  const openRing = () => {
    if (relids.size === 0) return;
    const r = rng.pick([...relids]);
    const sendPages = 2 + rng.int(3);
    const recvPages = 2 + rng.int(3);
    const base = POOL_LOW[0] + rng.int(POOL_LOW[1] - POOL_LOW[0] - 8);
    const pfns = Array.from({ length: sendPages + recvPages }, (_, i) => base + i);
    const send = new GuestRing(guest, base * PAGE_SIZE, sendPages);
    const recv = new GuestRing(guest, (base + sendPages) * PAGE_SIZE, recvPages);
    send.init();
    recv.init();
    const h = 0x200000 + rng.int(1 << 20);
    for (const m of gpadlMessages(r, h, pfns)) post(m);
    const m = P.newMessage(Msg.OpenChannel, 148);
    m.view.setUint32(P.OC_RELID, r, true);
    m.view.setUint32(P.OC_GPADL, h, true);
    m.view.setUint32(P.OC_DOWNSTREAM_OFFSET, sendPages, true);
    opening.set(r, { relid: r, connectionId: connIds.get(r) ?? 0, send, recv });
    post(m.bytes);
    drain();
  };

  const ringAttack = () => {
    if (open.length === 0) return;
    const ch = rng.pick(open);
    const choice = rng.int(10);
    if (choice < 5) {
      // Well-formed packets (sometimes GPA-direct with hostile PFNs, sometimes naming a GPADL).
      for (let n = 1 + rng.int(4); n > 0; n--) {
        let pkt: Uint8Array;
        const k = rng.int(4);
        if (k === 0) {
          const ranges = Array.from({ length: 1 + rng.int(3) }, () => {
            const offset = rng.int(4096);
            const length = 1 + rng.int(3 * 4096);
            const count = Math.ceil((offset + length) / 4096) + (rng.chance(0.05) ? 1 : 0);
            return {
              offset,
              length,
              pfns: Array.from({ length: count }, () => (rng.chance(0.8) ? goodPfn(rng) : hostilePfn(rng))),
            };
          });
          pkt = guestPacket(
            P.PacketType.GpaDirect,
            rng.bytes(rng.int(64)),
            rng.next(),
            rng.next(),
            rng.chance(0.7),
            gpaDirectExtra(ranges),
          );
        } else if (k === 1) {
          const payload = new Uint8Array(8);
          payload[0] = 0x47;
          new DataView(payload.buffer).setUint32(4, handle(), true);
          pkt = guestPacket(P.PacketType.Inband, payload, rng.next(), 0, true);
        } else {
          pkt = guestPacket(
            rng.pick([6, 7, 9, 11, rng.int(65536)]),
            rng.bytes(rng.int(200)),
            rng.next(),
            rng.next(),
            rng.chance(0.5),
          );
        }
        if (rng.chance(0.2)) pkt[rng.int(pkt.length)] = rng.int(256); // mutate the descriptor or extras
        ch.send.write(pkt);
      }
    } else if (choice < 8) {
      // Hostile header values.
      const field = rng.pick([
        P.RING_WRITE_INDEX,
        P.RING_READ_INDEX,
        P.RING_INTERRUPT_MASK,
        P.RING_PENDING_SEND_SZ,
        P.RING_FEATURE_BITS,
      ]);
      const value = rng.pick([
        rng.next(),
        rng.int(ch.send.dataSize) & ~7,
        rng.int(ch.send.dataSize),
        ch.send.dataSize,
        0,
      ]);
      (rng.chance(0.5) ? ch.send : ch.recv).setHeader(field, value);
    } else {
      // Raw bytes into the data area.
      const at = rng.int(ch.send.dataSize);
      guest.memory.bytes.set(rng.bytes(16), ch.send.gpa + PAGE_SIZE + Math.min(at, ch.send.dataSize - 16));
    }
    guest.signalEvent(
      rng.chance(0.9) ? ch.connectionId : rng.next() & 0xffffff,
      rng.chance(0.95) ? 0 : rng.int(4),
    );
  };

  /** A GPADL the device is using, torn down under it, then the device is kicked again. */
  const tornDownInUse = () => {
    if (open.length === 0) return;
    const ch = rng.pick(open);
    const h = 0x300000 + rng.int(1 << 20);
    for (const m of gpadlMessages(ch.relid, h, [goodPfn(rng), goodPfn(rng), goodPfn(rng)])) post(m);
    drain();
    const name = new Uint8Array(8);
    name[0] = 0x47;
    new DataView(name.buffer).setUint32(4, h, true);
    ch.send.write(guestPacket(P.PacketType.Inband, name, 1, 0, false));
    guest.signalEvent(ch.connectionId);
    const td = P.newMessage(Msg.GpadlTeardown, 16);
    td.view.setUint32(8, ch.relid, true);
    td.view.setUint32(12, h, true);
    post(td.bytes);
    drain();
    ch.send.write(guestPacket(P.PacketType.Inband, new Uint8Array(8), 2, 0, true));
    guest.signalEvent(ch.connectionId);
  };

  const guestReads = () => {
    for (const ch of open) {
      for (let n = 0; n < 64; n++) {
        const r = ch.recv.read();
        if (r === null) break;
        if (r.signal) guest.signalEvent(ch.connectionId);
      }
      guest.takeEvent(ch.relid);
    }
  };

  let ops = 0;
  for (; messages < target; ops++) {
    const op = rng.int(100);
    if (op < 15) {
      // Random bytes with a plausible (or any) message type.
      const bytes = rng.bytes(rng.int(241));
      if (bytes.length >= 4)
        new DataView(bytes.buffer).setUint32(0, rng.chance(0.8) ? rng.int(26) : rng.next(), true);
      post(bytes);
    } else if (op < 45) {
      // A template message, mutated in 0-3 bytes and sometimes cut or extended.
      // Contacts and unloads end every channel: keep them rare so channels live long enough to be attacked.
      const kinds = [1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 5, 6, 8, 8];
      let m = template(rng.chance(0.03) ? rng.pick([0, 9]) : rng.chance(0.01) ? 7 : rng.pick(kinds));
      for (let k = rng.int(4); k > 0; k--) m[rng.int(m.length)] = rng.int(256);
      if (rng.chance(0.1)) m = m.slice(0, rng.int(m.length + 1));
      else if (rng.chance(0.05)) {
        const longer = new Uint8Array(Math.min(240, m.length + rng.int(64)));
        longer.set(m.subarray(0, longer.length));
        m = longer;
      }
      post(m, rng.chance(0.8) ? 1 : 4);
    } else if (op < 48) {
      openRing();
    } else if (op < 50) {
      tornDownInUse();
    } else if (op < 80) {
      ringAttack();
    } else if (op < 85) {
      messages++;
      guest.postMessage(
        rng.chance(0.5) ? 1 : rng.next() & 0xffffff,
        rng.bytes(rng.int(241)),
        rng.chance(0.9) ? 1 : rng.next(),
      );
    } else if (op < 90) {
      guestReads();
    } else if (op < 93) {
      // Host: unsolicited sends, a revoke now and then, a new device after it.
      const v = rng.pick(vsps);
      v.count(v.channel.sendInband(rng.bytes(rng.int(100)), { lo: rng.next(), hi: 0 }, rng.chance(0.5)));
      if (rng.chance(0.03) && vsps.length < 40) {
        v.channel.revoke();
        addVsp(rng.pick([80, 4096, 16384]));
      }
    } else if (op < 95 && (open.length === 0 || rng.chance(0.05))) {
      // Protocol-correct bring-up, so the later hostility meets connected, offered, open channels.
      const m = P.newMessage(Msg.InitiateContact, 40);
      m.view.setUint32(P.IC_VERSION, rng.pick(P.SUPPORTED_VERSIONS), true);
      m.view.setUint8(P.IC_MSG_SINT, 2);
      post(m.bytes, 4);
      drain();
      post(P.newMessage(Msg.RequestOffers, 8).bytes);
    }
    // The guest reads its messages most of the time; sometimes it lets them pile up.
    if (rng.chance(0.8)) drain();
    else server.poll();
  }

  const h = createHash("sha256");
  h.update(guest.memory.bytes);
  h.update(JSON.stringify(guest.partition.stateWords()));
  const inspection = server.inspect();
  h.update(JSON.stringify(inspection));
  h.update(JSON.stringify(vsps.map((v) => [v.packets, v.writes, v.refusedWrites, [...v.sendResults]])));
  return { hash: h.digest("hex"), inspection, vsps, messages, ops, neighbour, faults: guest.faults };
}

/** Channel messages per run (VIRIDIAN_VMBUS_HOSTILE_MESSAGES lowers it for a quick local run). */
const MESSAGES = Number(process.env.VIRIDIAN_VMBUS_HOSTILE_MESSAGES ?? 100_000);

test(`hostile guest: ${MESSAGES} random and mutated channel messages plus ring attacks, twice: no exception, own RAM only, same state hash`, () => {
  const a = run(0x1234567, MESSAGES);
  const b = run(0x1234567, MESSAGES);
  assert.equal(a.hash, b.hash, "the same operations give the same final state");
  assert.equal(a.ops, b.ops);
  const OPS = a.ops;
  assert.equal(a.faults, 0, "no hypercall or MSR access faulted");
  assert.ok(
    a.neighbour.memory.bytes.every((x) => x === 0x77),
    "the neighbouring partition is unchanged",
  );
  const i = a.inspection;
  const dropped = Object.keys(i.dropped);
  const refused = Object.keys(i.refused);
  // Every class of hostility was met (so the test cannot pass by never reaching the code).
  for (const reason of [
    "short",
    "not-connected",
    "gpadl-unknown-relid",
    "unknown-gpadl",
    "teardown-unknown-gpadl",
  ]) {
    assert.ok(dropped.includes(reason), `dropped: ${reason} (have ${dropped.join(", ")})`);
  }
  for (const reason of ["pfn-not-ram", "bad-range-layout", "open-bad-gpadl", "unsupported-version"]) {
    assert.ok(refused.includes(reason), `refused: ${reason} (have ${refused.join(", ")})`);
  }
  const packets = a.vsps.reduce((n, v) => n + v.packets, 0);
  const writes = a.vsps.reduce((n, v) => n + v.writes, 0);
  const refusedWrites = a.vsps.reduce((n, v) => n + v.refusedWrites, 0);
  assert.ok(packets > OPS / 20, `VSPs received ${packets} packets; ${JSON.stringify(i)}`);
  assert.ok(writes > OPS / 200, `VSPs wrote ${writes} guest buffers`);
  assert.ok(refusedWrites > 0, "writes through a torn-down GPADL were refused");
  const faults = i.channels.filter((c) => c.lastFault !== null).length;
  const dropPkts = i.channels.reduce((n, c) => n + c.droppedPackets, 0);
  assert.ok(faults > 0 || a.vsps.some((v) => (v.sendResults.get("broken") ?? 0) > 0), "rings were broken");
  assert.ok(dropPkts > 0, "malformed packets were skipped");
});
