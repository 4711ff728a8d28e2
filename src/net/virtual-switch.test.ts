import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { BROADCAST, formatMac, parseMac, type Mac } from "./ethernet.js";
import { NetError } from "./net-error.js";
import { VirtualSwitch, type SwitchPort } from "./virtual-switch.js";

const A = parseMac("02:00:00:00:00:0a");
const B = parseMac("02:00:00:00:00:0b");
const C = parseMac("02:00:00:00:00:0c");
const MULTICAST = parseMac("01:00:5e:00:00:01");

function frame(dst: Mac, src: Mac, etherType = 0x0800, payload = 46): Uint8Array {
  const f = new Uint8Array(14 + payload);
  const put = (mac: Mac, at: number) => {
    const parts = formatMac(mac).split(":");
    parts.forEach((p, i) => (f[at + i] = parseInt(p, 16)));
  };
  put(dst, 0);
  put(src, 6);
  f[12] = etherType >> 8;
  f[13] = etherType & 0xff;
  return f;
}

function drain(port: SwitchPort): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let f = port.take(); f; f = port.take()) out.push(f);
  return out;
}

function rig(options: { ageingMs?: number; macTableSize?: number } = {}) {
  let now = 1_000_000;
  const sw = new VirtualSwitch({ clock: () => now, ...options });
  return { sw, advance: (ms: number) => (now += ms) };
}

test("MAC text round-trips and group addresses are recognised", () => {
  assert.equal(formatMac(parseMac("02:AB:cd:00:01:ff")), "02:ab:cd:00:01:ff");
  assert.equal(parseMac("ff:ff:ff:ff:ff:ff"), BROADCAST);
  assert.throws(() => parseMac("02:00:00:00:00"), NetError);
  assert.throws(() => parseMac("zz:00:00:00:00:00"), NetError);
});

test("unknown unicast floods; once learnt, frames go to one port only", () => {
  const { sw } = rig();
  const [pa, pb, pc] = ["a", "b", "c"].map((name) => sw.addPort({ name })) as [
    SwitchPort,
    SwitchPort,
    SwitchPort,
  ];
  sw.input(pa, frame(B, A));
  assert.equal(drain(pb).length, 1);
  assert.equal(drain(pc).length, 1);
  assert.equal(drain(pa).length, 0, "never back out of the port it came in on");
  assert.equal(sw.stats.unknownFloods, 1);
  sw.input(pb, frame(A, B)); // A is known: only pa gets it
  assert.equal(drain(pa).length, 1);
  assert.equal(drain(pc).length, 0);
  sw.input(pa, frame(B, A)); // B is known now
  assert.equal(drain(pb).length, 1);
  assert.equal(drain(pc).length, 0);
  assert.deepEqual(
    sw
      .macTable()
      .map((e) => [e.mac, e.port])
      .sort(),
    [
      ["02:00:00:00:00:0a", pa.id],
      ["02:00:00:00:00:0b", pb.id],
    ],
  );
});

test("broadcast and multicast go to every other port", () => {
  const { sw } = rig();
  const ports = ["a", "b", "c"].map((name) => sw.addPort({ name }));
  sw.input(ports[1]!, frame(B, C)); // learn C on b... and B is unknown
  ports.forEach(drain);
  for (const dst of [BROADCAST, MULTICAST]) {
    sw.input(ports[0]!, frame(dst, A));
    assert.deepEqual(
      ports.map((p) => drain(p).length),
      [0, 1, 1],
    );
  }
});

test("a frame for a station on the port it came from is filtered", () => {
  const { sw } = rig();
  const pa = sw.addPort({ name: "a" });
  const pb = sw.addPort({ name: "b" });
  sw.input(pa, frame(BROADCAST, A));
  sw.input(pa, frame(BROADCAST, C)); // A and C both behind pa (a bridge behind the port)
  drain(pb);
  sw.input(pa, frame(C, A));
  assert.equal(drain(pa).length + drain(pb).length, 0);
});

test("learnt addresses age out and then flood again; a moved station is found on its new port", () => {
  const { sw, advance } = rig({ ageingMs: 1000 });
  const [pa, pb, pc] = ["a", "b", "c"].map((name) => sw.addPort({ name })) as [
    SwitchPort,
    SwitchPort,
    SwitchPort,
  ];
  sw.input(pb, frame(BROADCAST, B));
  [pa, pb, pc].forEach(drain);
  advance(999);
  sw.input(pa, frame(B, A));
  assert.deepEqual([drain(pb).length, drain(pc).length], [1, 0]);
  advance(1000);
  assert.equal(
    sw.macTable().find((e) => e.mac === formatMac(B)),
    undefined,
  );
  sw.input(pa, frame(B, A));
  assert.deepEqual([drain(pb).length, drain(pc).length], [1, 1], "aged out: flooded");
  sw.input(pc, frame(BROADCAST, B)); // B moved to pc
  [pa, pb, pc].forEach(drain);
  sw.input(pa, frame(B, A));
  assert.deepEqual([drain(pb).length, drain(pc).length], [0, 1]);
});

test("a full queue drops and counts, and never holds up the other ports", () => {
  const { sw } = rig();
  const pa = sw.addPort({ name: "a" });
  const slow = sw.addPort({ name: "slow", queueFrames: 4 });
  const fast = sw.addPort({ name: "fast" });
  for (let i = 0; i < 10; i++) {
    sw.input(pa, frame(BROADCAST, A));
    drain(fast);
  }
  assert.equal(slow.queued, 4);
  assert.equal(slow.stats.txDropped, 6);
  assert.equal(slow.stats.txFrames, 4);
  assert.equal(fast.stats.txFrames, 10);
  assert.equal(fast.stats.txDropped, 0);
  assert.equal(drain(slow).length, 4);
  sw.input(pa, frame(BROADCAST, A));
  assert.equal(slow.queued, 1, "room again once drained");
});

test("the byte limit of a queue counts too", () => {
  const { sw } = rig();
  const pa = sw.addPort({ name: "a" });
  const pb = sw.addPort({ name: "b", queueBytes: 3000 });
  for (let i = 0; i < 3; i++) sw.input(pa, frame(BROADCAST, A, 0x0800, 1500));
  assert.equal(pb.queued, 1);
  assert.equal(pb.stats.txDropped, 2);
});

test("onQueued fires when a queue becomes non-empty, so a host drains without polling", () => {
  const { sw } = rig();
  const pa = sw.addPort({ name: "a" });
  const pb = sw.addPort({ name: "b" });
  let calls = 0;
  pb.onQueued = () => calls++;
  sw.input(pa, frame(BROADCAST, A));
  sw.input(pa, frame(BROADCAST, A));
  assert.equal(calls, 1);
  drain(pb);
  sw.input(pa, frame(BROADCAST, A));
  assert.equal(calls, 2);
});

test("statistics count frames and bytes both ways; malformed frames are refused and counted", () => {
  const { sw } = rig();
  const pa = sw.addPort({ name: "a" });
  const pb = sw.addPort({ name: "b" });
  sw.input(pa, frame(BROADCAST, A, 0x0800, 100));
  sw.input(pa, new Uint8Array(10)); // runt
  sw.input(pa, frame(BROADCAST, MULTICAST)); // group source
  assert.deepEqual(pa.stats, {
    rxFrames: 3,
    rxBytes: 114 + 10 + 60,
    rxDropped: 2,
    txFrames: 0,
    txBytes: 0,
    txDropped: 0,
  });
  assert.deepEqual(pb.stats, {
    rxFrames: 0,
    rxBytes: 0,
    rxDropped: 0,
    txFrames: 1,
    txBytes: 114,
    txDropped: 0,
  });
  assert.equal(sw.macTable().length, 1);
});

test("VLANs: ports only exchange frames with ports of the same VLAN; tagged frames on VLAN ports are refused", () => {
  const { sw } = rig();
  const red1 = sw.addPort({ name: "r1", vlan: 10 });
  const red2 = sw.addPort({ name: "r2", vlan: 10 });
  const blue = sw.addPort({ name: "b", vlan: 20 });
  const untagged = sw.addPort({ name: "u" });
  sw.input(red1, frame(BROADCAST, A));
  assert.deepEqual(
    [red2, blue, untagged].map((p) => drain(p).length),
    [1, 0, 0],
  );
  sw.input(blue, frame(A, B)); // A is learnt in VLAN 10 only: flooded in VLAN 20 (nobody else there)
  assert.deepEqual(
    [red1, red2, untagged].map((p) => drain(p).length),
    [0, 0, 0],
  );
  sw.input(red2, frame(BROADCAST, C, 0x8100));
  assert.equal(red2.stats.rxDropped, 1);
  assert.equal(drain(red1).length, 0);
  assert.throws(() => sw.addPort({ name: "x", vlan: 4095 }), NetError);
});

test("a guest spraying source addresses fills the table but not memory; learnt stations keep working", () => {
  const { sw } = rig({ macTableSize: 64 });
  const pa = sw.addPort({ name: "a" });
  const pb = sw.addPort({ name: "b" });
  const pc = sw.addPort({ name: "c" });
  sw.input(pb, frame(BROADCAST, B));
  for (let i = 0; i < 1000; i++) sw.input(pa, frame(BROADCAST, 0x020000100000 + i));
  assert.equal(sw.macTable().length, 64);
  assert.equal(sw.stats.learnRefused, 1000 - 63);
  [pa, pb, pc].forEach(drain);
  sw.input(pc, frame(B, C));
  assert.deepEqual([drain(pa).length, drain(pb).length], [0, 1]);
});

test("a removed port forgets its stations and gets nothing more", () => {
  const { sw } = rig();
  const pa = sw.addPort({ name: "a" });
  const pb = sw.addPort({ name: "b" });
  sw.input(pb, frame(BROADCAST, B));
  assert.equal(drain(pa).length, 1);
  sw.removePort(pb);
  sw.input(pa, frame(B, A));
  assert.equal(pb.queued, 0);
  assert.equal(sw.ports().length, 1);
  assert.equal(sw.macTable().filter((e) => e.mac === formatMac(B)).length, 0);
  sw.input(pb, frame(BROADCAST, B)); // a stale handle does nothing
  assert.equal(drain(pa).length, 0);
});

test("random frames from random ports never throw, and every queued frame is one that came in", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.uint8Array({ minLength: 0, maxLength: 80 })), {
        maxLength: 200,
      }),
      (inputs) => {
        const { sw } = rig({ macTableSize: 8 });
        const ports = [0, 1, 2, 3].map((i) =>
          sw.addPort({ name: `p${i}`, vlan: i % 2 ? 5 : 0, queueFrames: 16 }),
        );
        const sent = new Set<Uint8Array>();
        for (const [i, f] of inputs) {
          sent.add(f);
          sw.input(ports[i]!, f);
        }
        for (const p of ports) for (const f of drain(p)) assert.ok(sent.has(f) && f.length >= 14);
      },
    ),
  );
});
