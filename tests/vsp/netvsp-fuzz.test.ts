// Hostile hv_netvsc traffic through the real partition, VMBus server and network VSP: after a proper
// bring-up, 100,000 random and mutated NVSP messages and RNDIS messages (lying msg_len, data/PPI/info offsets
// and lengths, unknown OIDs and types, batches running past the end of a section, section indices and sizes
// at and past the send buffer's end, GPA-direct ranges beyond RAM, forged and repeated receive completions,
// re-negotiation, buffer revocation, offload per-packet informations: checksum requests, LSO v2 with right,
// wrong and extreme MSSs and offsets, LSO v1, IPsec, 802.1Q) while frames arrive from a virtual switch. No host exception; every
// access the host side makes to the hostile guest's RAM (an access recorder on its memory object: all page
// lists, rings and buffers go through it) lies inside RAM and outside guard pages the guest never shared,
// and the guard pages never change; a second, well-behaved VM on the same switch exchanges frames before,
// during and after the storm; two shorter runs with the same seed end in the same state hash.
// VIRIDIAN_FULL=1 raises the count to 1,000,000.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type GuestMemory, PAGE_SIZE, RAM_WINDOW_SIZE } from "../../src/memory/guest-memory.js";
import { VirtualSwitch, type SwitchPort } from "../../src/net/virtual-switch.js";
import * as P from "../../src/vmbus/protocol.js";
import type { NicPort } from "../../src/vsp/netvsp/netvsp.js";
import {
  NvspType,
  PPI_IEEE_8021Q,
  PPI_IPSEC,
  PPI_LSO,
  PPI_TCPIP_CHECKSUM,
  RndisType,
} from "../../src/vsp/netvsp/nvsp-protocol.js";
import { rng } from "../storage/memory-disks.js";
import { gpaDirectExtra, guestPacket } from "../vmbus/guest-client.js";
import {
  frame,
  NetvscGuest,
  nvsp,
  RECV_PAGES,
  rndisMessage,
  rndisPacket,
  rndisPacketWithPpis,
  SEND_PAGES,
} from "./netvsc-guest.js";

const MESSAGES = process.env.VIRIDIAN_FULL === "1" ? 1_000_000 : 100_000;
/** The determinism check repeats a shorter run. */
const REPEAT_MESSAGES = 10_000;
const HOSTILE_MAC = [0x00, 0x15, 0x5d, 0x0b, 0xad, 0x01];
const GOOD_MAC = [0x00, 0x15, 0x5d, 0x00, 0x00, 0x02];
const PROBE_MAC = [0x00, 0x15, 0x5d, 0x00, 0x00, 0x03];
const OIDS = [
  0x00010101, 0x00010106, 0x00010107, 0x0001010e, 0x00010114, 0x00010203, 0x0001021b, 0x00020101, 0x00020216,
  0x01010101, 0x01010102, 0x01010103, 0xfc01020c, 0xfc01020d, 0x12345678, 0xffffffff, 0,
];
const EDGES = [0, 1, 4, 7, 8, 35, 36, 44, 6143, 6144, 6145, 0x7fffffff, 0x80000000, 0xfffffff8, 0xffffffff];

/** A switch port that hands a VSP's frames to the switch. */
function switchPort(sw: VirtualSwitch, port: SwitchPort): NicPort {
  return { send: (f) => (sw.input(port, f), true) };
}

/** What the access recorder saw: how many host-side accesses, and the first few that broke the rule. */
interface AccessLog {
  count: number;
  bad: string[];
}

/**
 * Records every access the host side makes to `memory` from now on and checks it against the rule: inside
 * RAM and outside [guardStart, guardEnd). Page lists (GPADLs, GPA-direct ranges, the rings) reach RAM only
 * through `windowAt` (byte copies) and `view` (u32 reads), looked up on the memory object at each access, so
 * wrapping both sees all of them; the processor and the SynIC keep their own views (taken at construction)
 * and the test's guest writes through `bytes`, so neither is recorded.
 */
function recordAccesses(memory: GuestMemory, guardStart: number, guardEnd: number): AccessLog {
  const log: AccessLog = { count: 0, bad: [] };
  const check = (from: number, to: number, what: string): void => {
    log.count++;
    const inRam =
      Number.isInteger(from) && Number.isInteger(to) && from >= 0 && from <= to && to <= memory.size;
    if (!inRam || (from < guardEnd && to > guardStart)) {
      const problem = `${what} [${from}, ${to})`;
      if (log.bad.length < 10) log.bad.push(problem);
      // At once too, with the stack of the access (and in the log, should the host swallow this).
      throw new assert.AssertionError({ message: `host access outside RAM or in guard pages: ${problem}` });
    }
  };
  const windows = memory.byteWindows.map((w, i) => {
    const base = i * RAM_WINDOW_SIZE;
    return new Proxy(w, {
      get(t, prop) {
        if (prop === "subarray")
          return (a: number, b: number) => (check(base + a, base + b, "read"), t.subarray(a, b));
        if (prop === "set")
          return (src: Uint8Array, at = 0) => (
            check(base + at, base + at + src.length, "write"),
            t.set(src, at)
          );
        if (prop === "fill")
          return (v: number, a = 0, b = t.length) => (check(base + a, base + b, "fill"), t.fill(v, a, b));
        const v = Reflect.get(t, prop, t) as unknown;
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
  });
  const windowAt = (offset: number): Uint8Array => {
    if (!(offset >= 0 && offset < memory.size)) check(offset, offset, "window");
    return windows[Math.floor(offset / RAM_WINDOW_SIZE)]!;
  };
  const view = new Proxy(memory.view, {
    get(t, prop) {
      const v = Reflect.get(t, prop, t) as unknown;
      if (typeof v !== "function") return v;
      const bits = typeof prop === "string" ? /^(?:get|set)\D*(\d+)$/.exec(prop) : null;
      if (bits === null) return (v as (...a: unknown[]) => unknown).bind(t);
      return (offset: number, ...rest: unknown[]) => {
        check(offset, offset + Number(bits[1]) / 8, String(prop));
        return (v as (...a: unknown[]) => unknown).call(t, offset, ...rest);
      };
    },
  });
  Object.defineProperty(memory, "windowAt", { value: windowAt });
  Object.defineProperty(memory, "view", { value: view });
  return log;
}

async function fuzz(
  seed: number,
  messages: number,
): Promise<{
  hash: string;
  messages: number;
  accesses: number;
  exchanges: number;
  refused: Record<string, number>;
}> {
  const r = rng(seed);
  const int = (n: number): number => Math.floor(r() * n);
  const pick = <T>(a: readonly T[]): T => a[int(a.length)]!;
  const sw = new VirtualSwitch({ clock: () => 0 });
  const pHostile = sw.addPort({ name: "hostile" });
  const pGood = sw.addPort({ name: "good" });
  const pProbe = sw.addPort({ name: "probe" });
  const hostile = new NetvscGuest([switchPort(sw, pHostile)], [HOSTILE_MAC]);
  const good = new NetvscGuest([switchPort(sw, pGood)], [GOOD_MAC]);
  // Frames the switch queues for the VMs go straight to their VSPs.
  pHostile.onQueued = () => {
    for (let f = pHostile.take(); f; f = pHostile.take()) hostile.vsps[0]!.receiveFrame(f);
  };
  pGood.onQueued = () => {
    for (let f = pGood.take(); f; f = pGood.take()) good.vsps[0]!.receiveFrame(f);
  };
  const ch = hostile.open(0);
  hostile.bringUp();
  good.open(0);
  good.bringUp();
  good.take();
  // Everything the host may write (rings, receive buffer) lies below this; it must never change.
  const guard = hostile.guest.memory.offsetOf(hostile.guest.alloc(4));
  const hash = createHash("sha256");
  const mem = hostile.guest.memory.bytes;
  const pattern = (i: number): number => (i * 7 + 3) & 0xff;
  for (let i = 0; i < 4 * PAGE_SIZE; i++) mem[guard + i] = pattern(i);
  const accesses = recordAccesses(hostile.guest.memory, guard, guard + 4 * PAGE_SIZE);
  let exchanges = 0;
  // The well-behaved VM and the probe trade one frame each way; both must arrive, whatever the hostile VM
  // does meanwhile. The good VM reads its ring and completes every receive first (it sees the hostile VM's
  // broadcasts too), as Linux does.
  const drainGood = (): Uint8Array[] => {
    const frames: Uint8Array[] = [];
    for (let n = good.take(); n.length > 0; n = good.take()) {
      for (const p of n) {
        if (p.type !== P.PacketType.TransferPages) continue;
        for (const m of p.messages) frames.push(m.slice(44));
        good.completeReceive(p.transLo);
      }
    }
    return frames;
  };
  const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(b);
  const exchange = (tag: number): void => {
    drainGood();
    const toGood = frame(GOOD_MAC, PROBE_MAC, tag, 60 + (tag % 1400));
    sw.input(pProbe, toGood);
    assert.ok(
      drainGood().some((f) => same(f, toGood)),
      `the good VM received frame ${tag}`,
    );
    const fromGood = frame(PROBE_MAC, GOOD_MAC, tag, 60 + ((tag * 7) % 1400));
    good.sendRndisDirect(rndisPacket(fromGood), 0);
    drainGood();
    const out: Uint8Array[] = [];
    for (let f = pProbe.take(); f; f = pProbe.take()) out.push(f);
    for (const f of out) hash.update(f);
    assert.ok(
      out.some((f) => same(f, fromGood)),
      `the probe received the good VM's frame ${tag}`,
    );
    exchanges++;
  };
  const outstanding: number[] = [];
  const relid = ch.offer.relid;

  const mutate = (b: Uint8Array): Uint8Array => {
    const out = r() < 0.1 ? b.slice(0, int(b.length + 1)) : b.slice();
    const v = new DataView(out.buffer);
    const n = 1 + int(3);
    for (let i = 0; i < n && out.length >= 4; i++) {
      const at = int(out.length - 3) & ~3;
      if (r() < 0.5) v.setUint32(at, pick(EDGES), true);
      else out[int(out.length)] = int(256);
    }
    return out;
  };
  // A TCP or UDP over IPv4/IPv6 frame (header fields often near their limits) with the per-packet
  // informations hv_netvsc sends: checksum requests, LSO v2 (MSS and offsets right, wrong or extreme),
  // LSO v1, IPsec, 802.1Q, in random combinations.
  const offloadPacket = (req: number): Uint8Array => {
    const v6 = r() < 0.3;
    const l4 = 14 + (v6 ? 40 : 20 + 4 * int(3));
    const f = frame(PROBE_MAC, HOSTILE_MAC, req, l4 + 20 + int(4800));
    f[12] = v6 ? 0x86 : 0x08;
    f[13] = v6 ? 0xdd : 0x00;
    f[14] = v6 ? 0x60 : 0x40 | ((l4 - 14) / 4);
    const proto = r() < 0.8 ? 6 : pick([17, 1, int(256)]);
    f[v6 ? 20 : 23] = proto;
    if (!v6) {
      f[16] = r() < 0.5 ? 0 : (f.length - 14) >> 8;
      f[17] = r() < 0.5 ? 0 : (f.length - 14) & 0xff;
      f[20] = 0x40;
      f[21] = 0;
    } else {
      f[18] = (f.length - 54) >> 8;
      f[19] = (f.length - 54) & 0xff;
    }
    f[l4 + 12] = r() < 0.8 ? 0x50 + 0x10 * int(3) : int(256);
    const offset = r() < 0.8 ? l4 : int(1024);
    const ppis: [number, number][] = [];
    if (r() < 0.6) {
      const mss = pick([1448, 1460, 536, 1, 0, 0xf_ffff, int(9000)]);
      ppis.push([PPI_LSO, ((r() < 0.9 ? 1 : 0) << 30) | (offset << 20) | mss | ((v6 ? 1 : 0) << 31)]);
    }
    if (r() < 0.5)
      ppis.push([PPI_TCPIP_CHECKSUM, (v6 ? 2 : 1) | pick([4, 8, 12, 0x10, 0x14]) | (offset << 16)]);
    if (r() < 0.1) ppis.push([PPI_IPSEC, int(2 ** 32)]);
    if (r() < 0.2) ppis.push([PPI_IEEE_8021Q, int(2 ** 16)]);
    return rndisPacketWithPpis(f, ppis);
  };

  const validRndis = (): Uint8Array => {
    const req = int(1000);
    switch (int(8)) {
      case 0:
        return rndisMessage(RndisType.Init, [req, 1, 0, 0x4000]);
      case 1:
        return rndisMessage(RndisType.Query, [req, pick(OIDS), 0, 20, 0]);
      case 2:
        return rndisMessage(RndisType.Set, [req, pick(OIDS), 4, 20, 0], new Uint8Array([int(256), 0, 0, 0]));
      case 3:
        return rndisMessage(
          pick([RndisType.KeepAlive, RndisType.Reset, RndisType.Halt, RndisType.Indicate]),
          [req],
        );
      case 4:
        return offloadPacket(req);
      default: {
        const dst = r() < 0.5 ? PROBE_MAC : [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        return rndisPacket(frame(dst, HOSTILE_MAC, req, 14 + int(1600)));
      }
    }
  };

  let sent = 0;
  exchange(0);
  for (let i = 0; i < messages; i++) {
    const kind = int(100);
    if (kind < 15) {
      // An NVSP message: a known type with random fields, or anything.
      const type = pick([
        1,
        100,
        101,
        103,
        104,
        106,
        107,
        108,
        125,
        128,
        129,
        133,
        134,
        int(300),
        int(2 ** 32),
      ]);
      const m = nvsp(type, pick(EDGES), pick(EDGES), pick(EDGES));
      hostile.sendInband(r() < 0.5 ? mutate(m) : m.slice(0, int(41)), r() < 0.7);
    } else if (kind < 20) {
      // Forged completions: known, repeated and unknown transaction ids.
      const t = r() < 0.6 && outstanding.length > 0 ? outstanding[int(outstanding.length)]! : int(2 ** 32);
      const b = mutate(new Uint8Array([108, 0, 0, 0, 1, 0, 0, 0]));
      hostile.client.sendPacket(ch, guestPacket(P.PacketType.Completion, b, t, int(2), false));
    } else if (kind < 22) {
      // Re-negotiation or buffers announced again, with real or made-up GPADL handles.
      const pages = (gpa: number, n: number) => Array.from({ length: n }, (_, k) => gpa / PAGE_SIZE + k);
      if (r() < 0.3) hostile.sendInband(nvsp(NvspType.Init, 0x60001, 0x60001));
      const g =
        r() < 0.5
          ? hostile.client.createGpadl(relid, pages(hostile.recvGpa, 1 + int(RECV_PAGES))).handle
          : int(2 ** 32);
      hostile.sendInband(nvsp(NvspType.SendReceiveBuffer, g, 0xcafe));
      const s =
        r() < 0.5
          ? hostile.client.createGpadl(relid, pages(hostile.sendGpa, 1 + int(SEND_PAGES))).handle
          : int(2 ** 32);
      hostile.sendInband(nvsp(NvspType.SendSendBuffer, s, 0));
    } else if (kind < 60) {
      // RNDIS bytes in a send-buffer section: batches, mutated, sizes past the message or the section.
      const msgs = Array.from({ length: 1 + int(4) }, () =>
        r() < 0.6 ? mutate(validRndis()) : validRndis(),
      );
      const index = r() < 0.8 ? int((SEND_PAGES * 4096) / 6144) : pick(EDGES);
      const base = hostile.guest.memory.offsetOf(hostile.sendGpa) + (index < 5 ? index * 6144 : 0);
      let at = 0;
      for (const m of msgs) {
        if (at + m.length > 6144) break;
        mem.set(m, base + at);
        at += (m.length + 7) & ~7;
      }
      const size = r() < 0.7 ? at : pick(EDGES);
      const payload = nvsp(NvspType.SendRndisPacket, int(3), index, size);
      hostile.client.sendPacket(ch, guestPacket(P.PacketType.Inband, payload, hostile.nextTrans(), 0, true));
    } else {
      // RNDIS bytes in GPA-direct ranges: valid pages, pages beyond RAM, lengths past the page list.
      const m = r() < 0.6 ? mutate(validRndis()) : validRndis();
      const off = int(PAGE_SIZE);
      mem.set(
        m.subarray(0, Math.min(m.length, 2 * PAGE_SIZE - off)),
        hostile.guest.memory.offsetOf(hostile.scratch) + off,
      );
      const len = Math.max(1, Math.min(m.length, 2 * PAGE_SIZE - off));
      const pages = Math.ceil((off + len) / PAGE_SIZE);
      const pfns = Array.from({ length: pages }, (_, k) =>
        r() < 0.1
          ? pick([0x7ffff, 0xfffff, 2 ** 40, hostile.scratch / PAGE_SIZE + k])
          : hostile.scratch / PAGE_SIZE + k,
      );
      const extra = gpaDirectExtra([{ length: len, offset: off, pfns }]);
      const payload = nvsp(NvspType.SendRndisPacket, int(2), r() < 0.9 ? 0xffffffff : int(5), int(200));
      hostile.client.sendPacket(
        ch,
        guestPacket(P.PacketType.GpaDirect, payload, hostile.nextTrans(), 0, true, extra),
      );
    }
    sent++;
    if (int(10) === 0) {
      // Frames for the hostile VM from the switch (unicast and broadcast).
      sw.input(
        pProbe,
        frame(r() < 0.5 ? HOSTILE_MAC : [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], PROBE_MAC, i, 60 + int(1400)),
      );
    }
    // The guest reads its ring most of the time, completes most transfer-page packets, and sometimes lags.
    if (r() < 0.8) {
      for (const raw of hostile.client.receivePackets(ch)) {
        hash.update(raw);
        const v = new DataView(raw.buffer, raw.byteOffset);
        if (v.getUint16(0, true) === P.PacketType.TransferPages) {
          const t = v.getUint32(8, true);
          if (r() < 0.9) hostile.completeReceive(t);
          else outstanding.push(t);
        }
      }
    }
    // The probe's queue is the switch's business; empty it so it never fills.
    for (let f = pProbe.take(); f; f = pProbe.take()) hash.update(f);
    if (i % 1000 === 999) exchange(i + 1);
  }
  // The guest's own memory outside the receive buffer and rings: the host never wrote there.
  for (let k = 0; k < 4 * PAGE_SIZE; k++) assert.equal(mem[guard + k], pattern(k), "guard RAM changed");
  hash.update(JSON.stringify(hostile.vsps[0]!.inspect()));

  // After the storm.
  exchange(messages + 1);
  assert.deepEqual(accesses.bad, [], "host accesses outside RAM or in the guard pages");
  const refused = { ...hostile.vsps[0]!.counters.refused };
  return { hash: hash.digest("hex"), messages: sent, accesses: accesses.count, exchanges, refused };
}

test(`${MESSAGES.toLocaleString("en")} hostile NVSP/RNDIS messages: no host exception, no access outside RAM or in guard pages, the neighbour forwards before, during and after`, async () => {
  const r = await fuzz(0x5eed, MESSAGES);
  assert.equal(r.messages, MESSAGES);
  // The recorder saw the host's traffic (a recorder that sees nothing proves nothing).
  assert.ok(r.accesses > MESSAGES, `${r.accesses} accesses recorded`);
  assert.equal(r.exchanges, Math.floor(MESSAGES / 1000) + 2);
  // The offload requests reached the offload code: bad ones of several kinds were dropped and counted.
  const offload = Object.keys(r.refused).filter((k) => k.startsWith("tx-offload-"));
  assert.ok(offload.length >= 4, JSON.stringify(r.refused));
});

test("the same seed ends in the same state twice", async () => {
  const a = await fuzz(0x0dd5eed, REPEAT_MESSAGES);
  const b = await fuzz(0x0dd5eed, REPEAT_MESSAGES);
  assert.equal(a.hash, b.hash);
});
