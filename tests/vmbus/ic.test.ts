// The integration services over the real VMBus server and partition, against a guest that answers as Linux 6.1's
// hv_utils does (vmbus_prep_negotiate_resp, the shutdown / timesync / heartbeat callbacks, hv_kvp with and
// without its daemon). The guest side is written from the checklist (section 9), not from the host code.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as P from "../../src/vmbus/protocol.js";
import { VmbusServer } from "../../src/vmbus/server.js";
import { IntegrationServices } from "../../src/vsp/ic/integration-services.js";
import { guidEquals } from "../../src/support/ms-guid.js";
import { SHUTDOWN_CLASS } from "../../src/vsp/ic/shutdown.js";
import { HEARTBEAT_CLASS } from "../../src/vsp/ic/heartbeat.js";
import { TIMESYNC_CLASS, WLTIMEDELTA } from "../../src/vsp/ic/timesync.js";
import { KVP_CLASS } from "../../src/vsp/ic/kvp.js";
import { type GuestChannel, guestPacket, TestGuest, VmbusClient } from "./guest-client.js";

type V = [number, number];
const LINUX_FW: V[] = [
  [3, 0],
  [1, 0],
];
const LINUX_MSG: Record<string, V[]> = {
  shutdown: [
    [3, 2],
    [3, 1],
    [3, 0],
    [1, 0],
  ],
  timesync: [
    [4, 0],
    [3, 0],
    [1, 0],
  ],
  heartbeat: [
    [3, 0],
    [1, 0],
  ],
  kvp: [
    [4, 0],
    [3, 0],
    [1, 0],
  ],
};

/** Linux's vmbus_prep_negotiate_resp: the first of its own lists that the host offers, answered in place. */
function negotiateInPlace(buf: Uint8Array, fwList: V[], msgList: V[]): string | null {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const fwCount = v.getUint16(28, true);
  const msgCount = v.getUint16(30, true);
  const at = (i: number): V => [v.getUint16(36 + i * 4, true), v.getUint16(38 + i * 4, true)];
  const host = (from: number, n: number) => Array.from({ length: n }, (_, i) => at(from + i));
  const fw = fwList.find(([a, b]) => host(0, fwCount).some(([c, d]) => a === c && b === d));
  const msg = msgList.find(([a, b]) => host(fwCount, msgCount).some(([c, d]) => a === c && b === d));
  v.setUint16(18, 0x10, true);
  if (fw === undefined || msg === undefined) {
    v.setUint16(28, 0, true);
    v.setUint16(30, 0, true);
    return null;
  }
  v.setUint16(28, 1, true);
  v.setUint16(30, 1, true);
  v.setUint16(36, fw[0], true);
  v.setUint16(38, fw[1], true);
  v.setUint16(40, msg[0], true);
  v.setUint16(42, msg[1], true);
  return `${msg[0]}.${msg[1]}`;
}

const utf16z = (s: string) => {
  const b = new Uint8Array((s.length + 1) * 2);
  for (let i = 0; i < s.length; i++) b[i * 2] = s.charCodeAt(i);
  return b;
};
const fromUtf16 = (b: Uint8Array) => new TextDecoder("utf-16le").decode(b).replace(/\0[^]*$/, "");

/** The guest half of hv_utils plus a hv_kvp_daemon that knows a few intrinsic items. */
class LinuxUtils {
  readonly log: string[] = [];
  readonly versions = new Map<string, string>();
  readonly heartbeats: number[] = [];
  readonly times: Array<{ parentMs: number; flags: number; ref: number | null }> = [];
  readonly external = new Map<string, string>();
  kvpDaemon = true;
  hostileKvp = false;
  constructor(
    readonly client: VmbusClient,
    readonly channels: Map<string, GuestChannel>,
  ) {}

  /** Runs every channel callback once: read each packet, answer in place as hv_util.c does. */
  service(): void {
    for (const [name, ch] of this.channels) {
      if (name === "kvp" && !this.kvpDaemon) continue; // hv_kvp answers nothing until the daemon registers
      for (const pkt of this.client.receivePackets(ch)) {
        const d = new DataView(pkt.buffer);
        const off = d.getUint16(2, true) * 8;
        const buf = pkt.slice(off);
        const v = new DataView(buf.buffer);
        const type = v.getUint16(12, true);
        if (type === 0) {
          const ver = negotiateInPlace(buf, LINUX_FW, LINUX_MSG[name]!);
          if (ver !== null) {
            this.versions.set(name, ver);
            this.log.push(`hv_utils: ${name} IC version ${ver}`);
          }
        } else if (name === "heartbeat" && type === 1) {
          const seq = v.getUint32(28, true) + v.getUint32(32, true) * 2 ** 32 + 1;
          v.setUint32(28, seq % 2 ** 32, true);
          v.setUint32(32, Math.floor(seq / 2 ** 32), true);
          this.heartbeats.push(seq);
        } else if (name === "shutdown" && type === 3) {
          const flags = v.getUint32(36, true);
          v.setUint32(20, flags <= 3 ? 0 : 0x80004005, true);
          this.log.push(flags >= 2 ? "restart requested" : "shutdown requested");
        } else if (name === "timesync" && type === 4) {
          const parent = v.getBigUint64(28, true);
          const v4 = v.getUint16(14, true) >= 4;
          this.times.push({
            parentMs: Number((parent - WLTIMEDELTA) / 10000n),
            flags: v4 ? v.getUint8(44) : v.getUint8(52),
            ref: v4 ? Number(v.getBigUint64(36, true)) : null,
          });
        } else if (name === "kvp" && type === 2) {
          this.kvp(buf, v);
        }
        v.setUint8(25, 1 | 4);
        const tid = [d.getUint32(8, true), d.getUint32(12, true)] as const;
        this.client.sendPacket(ch, guestPacket(P.PacketType.Inband, buf, tid[0], tid[1], false));
      }
    }
  }

  private kvp(buf: Uint8Array, v: DataView): void {
    const op = buf[28]!;
    const pool = buf[29]!;
    if (op === 1 && pool === 0) {
      const ks = v.getUint32(36, true);
      const vs = v.getUint32(40, true);
      this.external.set(fromUtf16(buf.subarray(44, 44 + ks)), fromUtf16(buf.subarray(556, 556 + vs)));
    } else if (op === 3) {
      const items: Array<[string, string]> =
        pool === 2
          ? [
              ["FullyQualifiedDomainName", "viridian-guest"],
              ["OSName", "Linux"],
              ["OSVersion", "6.1.0"],
              ["NetworkAddressIPv4", "10.0.2.15"],
            ]
          : [];
      const item = items[v.getUint32(32, true)];
      if (this.hostileKvp && v.getUint32(32, true) < 300) {
        // Sizes far beyond the fields, no terminators, every index answered.
        v.setUint32(40, 0xffffffff, true);
        v.setUint32(44, 0xfffffff0, true);
        for (let j = 48; j < buf.length; j++) buf[j] = 0x41 + ((j + v.getUint32(32, true)) % 26);
      } else if (item === undefined) v.setUint32(20, 0x80070103, true);
      else {
        const k = utf16z(item[0]);
        const val = utf16z(item[1]);
        v.setUint32(36, 1, true);
        v.setUint32(40, k.length, true);
        v.setUint32(44, val.length, true);
        buf.set(k, 48);
        buf.set(val, 560);
      }
    }
  }
}

function boot(options: { kvpDaemon?: boolean } = {}) {
  const guest = new TestGuest();
  const server = new VmbusServer({ partition: guest.partition });
  let utcMs = Date.UTC(2025, 0, 2, 3, 4, 5);
  const ics = new IntegrationServices(server, {
    nowNs: () => guest.partition.clock.nowNs(),
    utcMs: () => utcMs,
    referenceCounter: () => guest.partition.referenceCounter(),
  });
  guest.enableSynic();
  const client = new VmbusClient(guest, () => {
    server.poll();
    ics.poll(guest.partition.clock.nowNs());
  });
  client.negotiate();
  const channels = new Map<string, GuestChannel>();
  const names: Array<[string, Uint8Array]> = [
    ["shutdown", SHUTDOWN_CLASS],
    ["timesync", TIMESYNC_CLASS],
    ["heartbeat", HEARTBEAT_CLASS],
    ["kvp", KVP_CLASS],
  ];
  for (const offer of client.requestOffers()) {
    const name = names.find(([, g]) => guidEquals(g, offer.classId))?.[0];
    assert.ok(name !== undefined, "only the four ICs are offered");
    assert.equal(offer.flags, 0x11);
    const ch = client.open(offer.relid, 4, 4);
    assert.notEqual(typeof ch, "number");
    channels.set(name, ch as GuestChannel);
  }
  const linux = new LinuxUtils(client, channels);
  linux.kvpDaemon = options.kvpDaemon ?? true;
  /** Lets `seconds` of partition time pass with the guest servicing its channels. */
  const run = (seconds: number) => {
    for (let i = 0; i < seconds * 4; i++) {
      guest.partition.clock.skipTo(guest.partition.clock.nowNs() + 250_000_000);
      client.pump();
      linux.service();
    }
  };
  return { guest, server, ics, client, linux, run, setUtc: (ms: number) => (utcMs = ms) };
}

test("negotiation: Linux's preferred versions (shutdown 3.2, timesync 4.0, heartbeat 3.0, KVP 4.0), framework 3.0", () => {
  const s = boot();
  s.run(1);
  assert.deepEqual(Object.fromEntries(s.linux.versions), {
    shutdown: "3.2",
    timesync: "4.0",
    heartbeat: "3.0",
    kvp: "4.0",
  });
  const i = s.ics.inspect();
  for (const ic of [i.shutdown, i.heartbeat, i.timesync, i.kvp]) {
    assert.equal(ic.state, "ready", ic.name);
    assert.equal(ic.frameworkVersion, "3.0");
  }
  assert.equal(i.shutdown.messageVersion, "3.2");
  assert.equal(i.timesync.messageVersion, "4.0");
});

test("heartbeat: sequence numbers visible in inspect() and increasing every 2 s", () => {
  const s = boot();
  s.run(1);
  const first = s.ics.inspect().heartbeat.sequence;
  s.run(10);
  const h = s.ics.inspect().heartbeat;
  assert.equal(h.health, "ok");
  assert.ok(h.sequence > first, `${h.sequence} > ${first}`);
  assert.ok(h.beats >= 5 && h.beats <= 7, `${h.beats} beats in 11 s`);
  assert.deepEqual(
    s.linux.heartbeats,
    Array.from({ length: s.linux.heartbeats.length }, (_, k) => k + 1),
  );
  // The guest stops answering: the heartbeat reports it lost.
  s.linux.channels.delete("heartbeat");
  s.run(30);
  assert.equal(s.ics.inspect().heartbeat.health, "lost");
});

test("timesync: SYNC right after negotiation, SAMPLEs every 5 s, SYNC again on request, v4 carries the reference counter", () => {
  const s = boot();
  s.run(1);
  assert.equal(s.linux.times[0]!.flags, 1, "first message: SYNC");
  assert.equal(s.linux.times[0]!.parentMs, Date.UTC(2025, 0, 2, 3, 4, 5));
  assert.ok(s.linux.times[0]!.ref !== null && s.linux.times[0]!.ref >= 0);
  s.run(11);
  assert.deepEqual(
    s.linux.times.slice(1).map((t) => t.flags),
    [2, 2],
  );
  s.setUtc(Date.UTC(2030, 5, 6));
  s.ics.timesync.syncNow();
  s.run(1);
  const last = s.linux.times[s.linux.times.length - 1]!;
  assert.deepEqual([last.flags, last.parentMs], [1, Date.UTC(2030, 5, 6)]);
  assert.equal(s.ics.inspect().timesync.syncs, 2);
});

test("shutdown: the request reaches the guest, its answer comes back; restart uses flags 2", () => {
  const s = boot();
  s.run(1);
  const answers: string[] = [];
  assert.equal(
    s.ics.shutdown.request("shutdown", (a) => answers.push(a)),
    true,
  );
  assert.equal(s.ics.shutdown.request("shutdown"), false, "one request at a time");
  s.run(1);
  assert.deepEqual(answers, ["accepted"]);
  assert.ok(s.linux.log.includes("shutdown requested"));
  s.ics.shutdown.request("restart", (a) => answers.push(a));
  s.run(1);
  assert.deepEqual(answers, ["accepted", "accepted"]);
  assert.ok(s.linux.log.includes("restart requested"));
  // A guest that never answers: no-answer after the timeout.
  s.linux.channels.delete("shutdown");
  s.ics.shutdown.request("shutdown", (a) => answers.push(a));
  s.run(12);
  assert.equal(answers[2], "no-answer");
});

test("shutdown without a guest driver is refused at once (the worker then turns the VM off)", () => {
  const guest = new TestGuest();
  const server = new VmbusServer({ partition: guest.partition });
  const ics = new IntegrationServices(server, {
    nowNs: () => 0,
    utcMs: () => 0,
    referenceCounter: () => 0,
  });
  assert.equal(ics.shutdown.state, "closed");
  assert.equal(ics.shutdown.request("shutdown"), false);
});

test("KVP: the host reads the guest's intrinsic items and pushes a pair the guest stores", () => {
  const s = boot();
  s.run(2);
  const k = s.ics.inspect().kvp;
  assert.equal(k.intrinsic["FullyQualifiedDomainName"], "viridian-guest");
  assert.equal(k.intrinsic["OSName"], "Linux");
  assert.equal(k.intrinsic["NetworkAddressIPv4"], "10.0.2.15");
  assert.equal(s.ics.kvp.set("HostName", "viridian-host"), true);
  assert.equal(s.ics.kvp.set("x".repeat(256), "too long a key"), false);
  s.run(1);
  assert.equal(s.linux.external.get("HostName"), "viridian-host");
  assert.equal(s.ics.inspect().kvp.pushed, 1);
});

test("KVP without hv_kvp_daemon: the negotiation waits, the other ICs are unaffected, and it completes when the daemon starts", () => {
  const s = boot({ kvpDaemon: false });
  s.run(20);
  const i = s.ics.inspect();
  assert.equal(i.kvp.state, "negotiating");
  assert.equal(i.kvp.timeouts, 0);
  assert.equal(i.heartbeat.health, "ok");
  assert.equal(s.ics.kvp.set("a", "b"), true);
  s.linux.kvpDaemon = true;
  s.run(2);
  assert.equal(s.ics.inspect().kvp.state, "ready");
  assert.equal(s.linux.external.get("a"), "b");
});

test("hostile IC answers (wrong sizes, forged transaction ids, huge key sizes) are counted, never thrown", () => {
  const s = boot();
  s.run(1);
  const hb = s.linux.channels.get("heartbeat")!;
  for (let i = 0; i < 200; i++) {
    const len = i % 40;
    const junk = Uint8Array.from({ length: len }, (_, j) => (i * 31 + j * 7) & 0xff);
    s.client.sendPacket(hb, guestPacket(P.PacketType.Inband, junk, i, i & 1, false), true);
  }
  const kvp = s.linux.channels.get("kvp")!;
  const forged = new Uint8Array(28 + 2580);
  const fv = new DataView(forged.buffer);
  fv.setUint16(12, 2, true);
  fv.setUint8(25, 5);
  fv.setUint32(28 + 12, 0xffffffff, true); // key_size
  fv.setUint32(28 + 16, 0xffffffff, true); // value_size
  for (let i = 0; i < 50; i++)
    s.client.sendPacket(kvp, guestPacket(P.PacketType.Inband, forged, i, 0, false), true);
  s.run(5);
  const i = s.ics.inspect();
  assert.ok(i.heartbeat.badResponses >= 200);
  assert.ok(i.kvp.badResponses >= 50);
  assert.equal(i.heartbeat.health, "ok");
});

test("KVP: a guest answering with oversized keys and values and endless enumerations stays bounded", () => {
  const s = boot();
  s.linux.hostileKvp = true;
  s.run(40);
  const k = s.ics.inspect().kvp;
  const keys = Object.keys(k.intrinsic);
  assert.ok(keys.length > 0 && keys.length <= 256, `${keys.length} pairs`);
  assert.ok(keys.every((key) => key.length <= 256));
  assert.ok(Object.values(k.intrinsic).every((value) => value.length <= 1024));
  assert.ok(k.queued <= 64);
});
