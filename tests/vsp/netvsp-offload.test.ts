// The network VSP's task offloads: transmit checksums and LSO v2 segmentation of hand-built IPv4/IPv6 frames
// (every field of every segment checked, and a property test: segments reassemble to the original payload
// and every checksum is valid by this file's own checksum code), receive checksums marked verified only when
// they are right, hostile requests (MSS 0 or huge, header lengths beyond the frame, non-TCP with LSO, lying
// offsets) dropped and counted, and the same through the VSP as hv_netvsc drives it (capabilities answer,
// per-packet informations on sends, the checksum PPI on receives).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  completeChecksums,
  parseChecksumInfo,
  parseLsoInfo,
  segmentTcp,
  verifiedChecksums,
  RX_IP_CHECKSUM_SUCCEEDED,
  RX_TCP_CHECKSUM_SUCCEEDED,
  RX_UDP_CHECKSUM_SUCCEEDED,
} from "../../src/vsp/netvsp/offload.js";
import * as P from "../../src/vmbus/protocol.js";
import { LSO_OFFERED } from "../../src/vsp/netvsp/rndis-control.js";
import {
  PPI_IEEE_8021Q,
  PPI_LSO,
  PPI_TCPIP_CHECKSUM,
  RndisType,
} from "../../src/vsp/netvsp/nvsp-protocol.js";
import { NetvscGuest, RecordingPort, rndisPacketWithPpis } from "./netvsc-guest.js";

const MAC = [0x00, 0x15, 0x5d, 0x12, 0x34, 0x56];
const PEER = [0x00, 0x15, 0x5d, 0x65, 0x43, 0x21];

// ---- an independent checksum: 16-bit words with the end-around carry taken at every step ----

function onesSum(words: number[]): number {
  let s = 0;
  for (const w of words) {
    s += w;
    if (s > 0xffff) s -= 0xffff;
  }
  return s;
}

function wordsOf(b: Uint8Array, start: number, end: number): number[] {
  const out: number[] = [];
  for (let i = start; i < end; i += 2) out.push((b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0));
  return out;
}

const be16 = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;
const be32 = (b: Uint8Array, at: number): number => ((be16(b, at) << 16) | be16(b, at + 2)) >>> 0;

/** True when the IP header (v4) and the TCP/UDP checksum of an Ethernet frame are valid. */
function checksumsValid(f: Uint8Array): boolean {
  const v6 = be16(f, 12) === 0x86dd;
  let l4: number;
  let proto: number;
  let end: number;
  let pseudo: number[];
  if (v6) {
    // The test's frames have at most a hop-by-hop header before TCP/UDP.
    l4 = f[20] === 0 ? 54 + (f[55]! + 1) * 8 : 54;
    proto = f[20] === 0 ? f[54]! : f[20]!;
    end = 14 + 40 + be16(f, 18);
    pseudo = wordsOf(f, 22, 54);
  } else {
    const ihl = (f[14]! & 0xf) * 4;
    if (onesSum(wordsOf(f, 14, 14 + ihl)) !== 0xffff) return false;
    l4 = 14 + ihl;
    proto = f[23]!;
    end = 14 + be16(f, 16);
    pseudo = wordsOf(f, 26, 34);
  }
  if (end !== f.length) return false;
  const len = end - l4;
  return onesSum([...pseudo, proto, len, ...wordsOf(f, l4, end)]) === 0xffff;
}

// ---- hand-built frames ----

interface Built {
  frame: Uint8Array;
  l4: number;
  headers: number;
}

/** Ethernet + IPv4 (optionally with options) + TCP (optionally with options) + payload; checksums zero. */
function tcp4(
  payload: Uint8Array,
  o: {
    ipOptions?: number;
    tcpOptions?: number;
    flags?: number;
    seq?: number;
    id?: number;
    lsoLength?: boolean;
  } = {},
): Built {
  const ihl = 20 + (o.ipOptions ?? 0);
  const doff = 20 + (o.tcpOptions ?? 0);
  const f = new Uint8Array(14 + ihl + doff + payload.length);
  f.set(PEER, 0);
  f.set(MAC, 6);
  f[12] = 0x08;
  f[14] = 0x40 | (ihl / 4);
  const total = o.lsoLength ? 0 : ihl + doff + payload.length; // Linux zeroes tot_len for a large send
  f[16] = total >> 8;
  f[17] = total & 0xff;
  f[18] = (o.id ?? 0x1234) >> 8;
  f[19] = (o.id ?? 0x1234) & 0xff;
  f[20] = 0x40; // DF
  f[22] = 64;
  f[23] = 6;
  f.set([10, 0, 0, 1, 10, 0, 0, 2], 26);
  for (let i = 34; i < 14 + ihl; i++) f[i] = 1; // NOP options
  const t = 14 + ihl;
  f.set([0x30, 0x39, 0x00, 0x50], t);
  const seq = o.seq ?? 0xfffff000; // wraps during a large send
  f.set([seq >>> 24, (seq >>> 16) & 0xff, (seq >>> 8) & 0xff, seq & 0xff], t + 4);
  f[t + 12] = (doff / 4) << 4;
  f[t + 13] = o.flags ?? 0x18;
  f[t + 14] = 0xff;
  for (let i = t + 20; i < t + doff; i++) f[i] = 1;
  f.set(payload, t + doff);
  return { frame: f, l4: t, headers: t + doff };
}

function tcp6(payload: Uint8Array, o: { flags?: number; hopByHop?: boolean } = {}): Built {
  const ext = o.hopByHop ? 8 : 0;
  const f = new Uint8Array(14 + 40 + ext + 20 + payload.length);
  f.set(PEER, 0);
  f.set(MAC, 6);
  f[12] = 0x86;
  f[13] = 0xdd;
  f[14] = 0x60;
  const len = ext + 20 + payload.length;
  f[18] = len >> 8;
  f[19] = len & 0xff;
  f[20] = o.hopByHop ? 0 : 6;
  f[21] = 64;
  for (let i = 0; i < 16; i++) {
    f[22 + i] = 0xfd ^ i;
    f[38 + i] = 0xfe ^ (i * 3);
  }
  if (o.hopByHop) {
    f[54] = 6; // next header TCP, length 0 (8 bytes), PadN
    f[56] = 1;
    f[57] = 4;
  }
  const t = 54 + ext;
  f.set([0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1], t);
  f[t + 12] = 0x50;
  f[t + 13] = o.flags ?? 0x18;
  f.set(payload, t + 20);
  return { frame: f, l4: t, headers: t + 20 };
}

function udp(v6: boolean, payload: Uint8Array): Built {
  const b = v6 ? tcp6(new Uint8Array(payload.length - 12)) : tcp4(new Uint8Array(payload.length - 12));
  const f = b.frame;
  if (v6) f[20] = 17;
  else f[23] = 17;
  const len = f.length - b.l4;
  f.set([0x13, 0x88, 0x13, 0x89, len >> 8, len & 0xff, 0, 0], b.l4);
  f.set(payload, b.l4 + 8);
  return { frame: f, l4: b.l4, headers: b.l4 + 8 };
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

const csumV4Tcp = (l4: number, ip = false) => ({
  ipv4: true,
  ipv6: false,
  tcp: true,
  udp: false,
  ipHeader: ip,
  transportOffset: l4,
});

test("transmit checksums: TCP and UDP over IPv4 (with options) and IPv6, the IPv4 header on request", () => {
  const cases: [string, Built, ReturnType<typeof parseChecksumInfo>][] = [];
  const t4 = tcp4(bytes(1000, 1), { ipOptions: 8, tcpOptions: 12 });
  cases.push(["tcp4", t4, csumV4Tcp(t4.l4, true)]);
  const u4 = udp(false, bytes(333, 2));
  cases.push([
    "udp4",
    u4,
    { ipv4: true, ipv6: false, tcp: false, udp: true, ipHeader: false, transportOffset: u4.l4 },
  ]);
  const t6 = tcp6(bytes(1201, 3), { hopByHop: true });
  cases.push([
    "tcp6",
    t6,
    { ipv4: false, ipv6: true, tcp: true, udp: false, ipHeader: false, transportOffset: t6.l4 },
  ]);
  const u6 = udp(true, bytes(100, 4));
  cases.push([
    "udp6",
    u6,
    { ipv4: false, ipv6: true, tcp: false, udp: true, ipHeader: false, transportOffset: u6.l4 },
  ]);
  for (const [name, b, req] of cases) {
    if (name === "tcp4") {
      // The IPv4 header checksum too: start from a wrong one.
      b.frame[24] = 0xde;
      b.frame[25] = 0xad;
    } else if (name === "udp4") {
      const f = b.frame;
      const c = ~onesSum(wordsOf(f, 14, 34)) & 0xffff; // the guest computed its IPv4 header checksum
      f[24] = c >> 8;
      f[25] = c & 0xff;
    }
    assert.equal(checksumsValid(b.frame), false, `${name} starts invalid`);
    const before = b.frame.slice();
    assert.equal(completeChecksums(b.frame, req), null, name);
    assert.ok(checksumsValid(b.frame), `${name} checksums are valid`);
    // Only the checksum fields changed.
    const csumAt = b.l4 + (req.tcp ? 16 : 6);
    for (let i = 0; i < before.length; i++)
      if (i !== csumAt && i !== csumAt + 1 && !(req.ipHeader && (i === 24 || i === 25)))
        assert.equal(b.frame[i], before[i], `${name} byte ${i}`);
    assert.notEqual(
      verifiedChecksums(b.frame) & (req.tcp ? RX_TCP_CHECKSUM_SUCCEEDED : RX_UDP_CHECKSUM_SUCCEEDED),
      0,
    );
  }
  // The bit layout Linux writes (netvsc_xmit): is_ipv4 | tcp_checksum, tcp_header_offset in bits 16-25.
  assert.deepEqual(parseChecksumInfo(1 | 4 | (34 << 16)), csumV4Tcp(34));
});

test("a large send splits into MSS frames: lengths, ids, sequence numbers, flags and checksums", () => {
  const payload = bytes(3000, 7);
  const b = tcp4(payload, { flags: 0x80 | 0x18 | 0x01, lsoLength: true, id: 0xfffe }); // CWR PSH ACK FIN
  const lso = parseLsoInfo((1 << 30) | (b.l4 << 20) | 1448)!;
  assert.deepEqual(lso, { mss: 1448, transportOffset: b.l4, ipv6: false });
  const segs = segmentTcp(b.frame, lso);
  assert.ok(Array.isArray(segs));
  assert.deepEqual(
    segs.map((s) => s.length),
    [54 + 1448, 54 + 1448, 54 + 104],
  );
  segs.forEach((s, i) => {
    assert.equal(be16(s, 16), s.length - 14, "total length");
    assert.equal(
      be16(s, 18),
      (0xfffe + i) & 0xffff,
      "IP id: the first one's plus the segment number, wrapping",
    );
    assert.equal(be32(s, 38), (0xfffff000 + i * 1448) >>> 0, "sequence number");
    const flags = s[47]!;
    assert.equal((flags & 0x80) !== 0, i === 0, "CWR only on the first");
    assert.equal((flags & 0x09) !== 0, i === 2, "FIN and PSH only on the last");
    assert.equal(flags & 0x10, 0x10, "ACK on all");
    assert.ok(checksumsValid(s), `segment ${i} checksums`);
    assert.deepEqual(s.subarray(54), payload.subarray(i * 1448, i * 1448 + s.length - 54));
  });
  // IPv6: payload length per segment; the hop-by-hop header is kept in every segment.
  const b6 = tcp6(bytes(2000, 8), { hopByHop: true });
  const s6 = segmentTcp(b6.frame, { mss: 1000, transportOffset: b6.l4, ipv6: true });
  assert.ok(Array.isArray(s6) && s6.length === 2);
  for (const s of s6) {
    assert.equal(be16(s, 18), s.length - 54);
    assert.ok(checksumsValid(s));
  }
});

test("property: segments reassemble to the payload and every checksum is valid (300 random sends)", () => {
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  for (let round = 0; round < 300; round++) {
    const v6 = rnd(3) === 0;
    const mss = [1, 7, 536, 1220, 1448, 1460, 9000, 65_000][rnd(8)]!;
    // Tiny MSSs with short sends only: thousands of one-byte segments prove nothing more and cost seconds.
    const len = rnd(4) === 0 ? rnd(100) : rnd(mss < 100 ? 3000 : 65_000);
    const payload = bytes(len, round + 1);
    const flags = rnd(256);
    const b = v6
      ? tcp6(payload, { flags })
      : tcp4(payload, {
          flags,
          ipOptions: rnd(3) * 4,
          tcpOptions: rnd(4) * 4,
          seq: rnd(0x7fffffff) * 2,
          lsoLength: true,
        });
    if (b.headers + mss > 65_553) continue;
    const segs = segmentTcp(b.frame, { mss, transportOffset: b.l4, ipv6: v6 });
    assert.ok(Array.isArray(segs), `round ${round}: ${String(segs)}`);
    assert.equal(segs.length, Math.max(1, Math.ceil(len / mss)));
    const seq0 = be32(b.frame, b.l4 + 4);
    const got = new Uint8Array(len);
    let fin = 0;
    for (const [i, s] of segs.entries()) {
      assert.ok(checksumsValid(s), `round ${round} segment ${i}`);
      assert.ok(s.length - b.headers <= mss);
      assert.deepEqual(s.subarray(0, 12), b.frame.subarray(0, 12), "the addresses are kept");
      const off = (be32(s, b.l4 + 4) - seq0) >>> 0;
      got.set(s.subarray(b.headers), off);
      if (s[b.l4 + 13]! & 1) fin++;
    }
    assert.deepEqual(got, payload, `round ${round}: reassembled`);
    assert.equal(fin, flags & 1, "FIN at most once, on the last");
  }
});

test("hostile requests are problems, never exceptions", () => {
  const b = tcp4(bytes(4000, 9), { lsoLength: true });
  const lso = { mss: 1448, transportOffset: b.l4, ipv6: false };
  assert.equal(segmentTcp(b.frame, { ...lso, mss: 0 }), "offload-mss");
  assert.equal(segmentTcp(b.frame, { ...lso, mss: 0xf_ffff }), "offload-mss");
  assert.equal(segmentTcp(b.frame, { ...lso, transportOffset: b.l4 + 4 }), "offload-transport-offset");
  assert.equal(segmentTcp(b.frame, { ...lso, ipv6: true }), "offload-ip-header");
  const u = udp(false, bytes(2000, 1));
  assert.equal(segmentTcp(u.frame, { ...lso, transportOffset: u.l4 }), "offload-protocol");
  const longIhl = b.frame.slice(0, 40);
  longIhl[14] = 0x4f; // 60-byte IP header in a 40-byte frame
  assert.equal(segmentTcp(longIhl, lso), "offload-ip-header");
  const longDoff = b.frame.slice(0, 54);
  longDoff[b.l4 + 12] = 0xf0; // 60-byte TCP header with 20 bytes left
  assert.equal(segmentTcp(longDoff, lso), "offload-tcp-header");
  const arp = b.frame.slice();
  arp[12] = 0x08;
  arp[13] = 0x06;
  assert.equal(segmentTcp(arp, lso), "offload-not-ip");
  const t = tcp4(bytes(100, 2));
  assert.equal(
    completeChecksums(t.frame, { ...csumV4Tcp(t.l4), transportOffset: 40 }),
    "offload-transport-offset",
  );
  assert.equal(completeChecksums(t.frame, { ...csumV4Tcp(t.l4), tcp: false, udp: true }), "offload-protocol");
  const lying = t.frame.slice();
  lying[16] = 0xff; // total length past the frame
  assert.equal(completeChecksums(lying, csumV4Tcp(t.l4)), "offload-ip-length");
  assert.equal(parseLsoInfo(1448 | (34 << 20)), null, "LSO v1 is not an LSO v2 request");
  const routed = tcp6(bytes(3000, 3), { hopByHop: true });
  routed.frame[20] = 43; // a routing header: its final destination would belong in the pseudo-header
  const lso6 = { mss: 1000, transportOffset: routed.l4, ipv6: true };
  assert.equal(segmentTcp(routed.frame, lso6), "offload-ipv6-extension");
  // Random bytes and requests: a result, never a throw.
  for (let i = 0; i < 3000; i++) {
    const f = bytes(15 + (i % 200), i + 77);
    if (i % 3 === 0) f.set([0x08, 0x00, 0x45], 12);
    if (i % 3 === 1) f.set([0x86, 0xdd, 0x60], 12);
    const r = parseChecksumInfo(be32(bytes(4, i), 0));
    const l = parseLsoInfo(be32(bytes(4, i + 9), 0) | (1 << 30))!;
    completeChecksums(f, r);
    const s = segmentTcp(f, l);
    if (Array.isArray(s)) for (const x of s) assert.ok(x.length <= 65_553);
    verifiedChecksums(f);
  }
});

test("receive: TCP/UDP and IPv4 header bits only for checksums computed and right", () => {
  const t = tcp4(bytes(500, 3));
  assert.equal(completeChecksums(t.frame, csumV4Tcp(t.l4, true)), null);
  assert.equal(verifiedChecksums(t.frame), RX_TCP_CHECKSUM_SUCCEEDED | RX_IP_CHECKSUM_SUCCEEDED);
  const bad = t.frame.slice();
  bad[bad.length - 1] = bad[bad.length - 1]! ^ 1;
  assert.equal(verifiedChecksums(bad), RX_IP_CHECKSUM_SUCCEEDED, "a corrupted payload is not verified");
  const padded = new Uint8Array(t.frame.length + 6);
  padded.set(t.frame);
  assert.equal(
    verifiedChecksums(padded) & RX_TCP_CHECKSUM_SUCCEEDED,
    RX_TCP_CHECKSUM_SUCCEEDED,
    "Ethernet padding is not data",
  );
  const u = udp(true, bytes(64, 5));
  assert.equal(verifiedChecksums(u.frame), 0, "no checksum yet");
  completeChecksums(u.frame, {
    ipv4: false,
    ipv6: true,
    tcp: false,
    udp: true,
    ipHeader: false,
    transportOffset: u.l4,
  });
  assert.equal(verifiedChecksums(u.frame), RX_UDP_CHECKSUM_SUCCEEDED);
});

// ---- through the VSP ----

function up(): { g: NetvscGuest; port: RecordingPort } {
  const port = new RecordingPort();
  const g = new NetvscGuest([port], [MAC]);
  g.open(0);
  g.bringUp();
  return { g, port };
}

test("the VSP advertises checksums and LSO v2 and does them for hv_netvsc's per-packet informations", () => {
  const port = new RecordingPort();
  const g = new NetvscGuest([port], [MAC]);
  g.open(0);
  const { responses } = g.bringUp();
  const hw = responses[3]!;
  const data = hw.subarray(8 + new DataView(hw.buffer, hw.byteOffset).getUint32(20, true));
  const dv = new DataView(data.buffer, data.byteOffset);
  // Linux's rndis_netdev_set_hwcaps: ip4_txcsum has TCP4|TCP4OPT, ip6_txcsum TCP6|TCP6OPT|IP6EXT, the
  // lsov2 encapsulations 802.3, ip6_opts IP6EXT|TCP6OPT; the largest send within 64 KiB.
  assert.equal(dv.getUint32(8, true) & 0x14, 0x14);
  assert.equal(dv.getUint32(24, true) & 0x15, 0x15);
  // LSO v2 is advertised only with LSO_OFFERED (off for now: see rndis-control.ts); its limits are there.
  assert.equal(dv.getUint32(80, true) & 2, LSO_OFFERED ? 2 : 0);
  assert.ok(dv.getUint32(84, true) >= 16_000 && dv.getUint32(84, true) <= 65_536);
  assert.equal(dv.getUint32(92, true) & 2, LSO_OFFERED ? 2 : 0);
  assert.equal(dv.getUint32(104, true) & 5, 5);
  const big = tcp4(bytes(10_000, 4), { lsoLength: true });
  g.sendRndisDirect(rndisPacketWithPpis(big.frame, [[PPI_LSO, (1 << 30) | (big.l4 << 20) | 1448]]), 0);
  const small = tcp4(bytes(200, 5));
  g.sendRndisSection(
    [
      rndisPacketWithPpis(small.frame, [
        [PPI_TCPIP_CHECKSUM, 1 | 4 | 0x10 | (small.l4 << 16)],
        [PPI_IEEE_8021Q, 5 << 4],
      ]),
    ],
    1,
  );
  const comps = g.take().filter((p) => p.type === P.PacketType.Completion);
  assert.deepEqual(
    comps.map((c) => new DataView(c.payload.buffer, c.payload.byteOffset).getUint32(4, true)),
    [1, 1],
  );
  assert.equal(port.frames.length, 7 + 1);
  for (const f of port.frames.slice(0, 7)) {
    assert.ok(f.length <= 1514);
    assert.ok(checksumsValid(f));
  }
  const tagged = port.frames[7]!;
  assert.deepEqual(
    [...tagged.subarray(12, 16)],
    [0x81, 0x00, 0x00, 0x05],
    "the VLAN tag goes in after the checksum",
  );
  const untagged = new Uint8Array(tagged.length - 4);
  untagged.set(tagged.subarray(0, 12));
  untagged.set(tagged.subarray(16), 12);
  assert.ok(checksumsValid(untagged));
  assert.equal(g.vsps[0]!.counters.txFrames, 8);
  // The bytes the port was handed, segments and tag included (the management API's network throughput).
  assert.equal(
    g.vsps[0]!.counters.txBytes,
    port.frames.reduce((n, f) => n + f.length, 0),
  );
});

test("the VSP drops and counts bad offload requests, and marks verified receive checksums", () => {
  const { g, port } = up();
  const vsp = g.vsps[0]!;
  const big = tcp4(bytes(5000, 4), { lsoLength: true });
  g.sendRndisDirect(rndisPacketWithPpis(big.frame, [[PPI_LSO, (1 << 30) | (big.l4 << 20) | 0]]), 0);
  g.sendRndisDirect(rndisPacketWithPpis(big.frame, [[PPI_LSO, (big.l4 << 20) | 1448]]), 0); // LSO v1
  const u = udp(false, bytes(3000, 1));
  g.sendRndisDirect(rndisPacketWithPpis(u.frame, [[PPI_LSO, (1 << 30) | (u.l4 << 20) | 1448]]), 0);
  const statuses = g
    .take()
    .filter((p) => p.type === P.PacketType.Completion)
    .map((c) => new DataView(c.payload.buffer, c.payload.byteOffset).getUint32(4, true));
  assert.deepEqual(statuses, [2, 2, 2]);
  assert.equal(port.frames.length, 0);
  const r = vsp.counters.refused;
  assert.deepEqual([r["tx-offload-mss"], r["tx-offload-requested"], r["tx-offload-protocol"]], [1, 1, 1]);
  assert.equal(vsp.rndis.counters.xmitError, 3);
  // Receive: a good TCP frame carries TCPIP_CHKSUM_PKTINFO with TCP and IP succeeded; a corrupted one none.
  const t = tcp4(bytes(300, 6));
  t.frame.set(MAC, 0);
  completeChecksums(t.frame, csumV4Tcp(t.l4, true));
  const corrupt = t.frame.slice();
  corrupt[corrupt.length - 1] = corrupt[corrupt.length - 1]! ^ 0x40;
  assert.ok(vsp.receiveFrame(t.frame));
  assert.ok(vsp.receiveFrame(corrupt));
  const msgs = g.take().flatMap((p) => p.messages);
  const u32 = (m: Uint8Array, at: number): number => new DataView(m.buffer, m.byteOffset).getUint32(at, true);
  const [good, worse] = msgs;
  assert.equal(vsp.counters.rxBytes, 2 * t.frame.length, "received bytes are counted as delivered");
  assert.equal(u32(good!, 0), RndisType.Packet);
  assert.deepEqual(
    [u32(good!, 8), u32(good!, 12), u32(good!, 28), u32(good!, 32)],
    [52, t.frame.length, 36, 16],
  );
  assert.deepEqual(
    [u32(good!, 44), u32(good!, 48), u32(good!, 52), u32(good!, 56)],
    [16, PPI_TCPIP_CHECKSUM, 12, RX_TCP_CHECKSUM_SUCCEEDED | RX_IP_CHECKSUM_SUCCEEDED],
  );
  assert.deepEqual(good!.slice(60), t.frame);
  assert.deepEqual([u32(worse!, 8), u32(worse!, 28), u32(worse!, 32)], [52, 36, 16]);
  assert.equal(
    u32(worse!, 56),
    RX_IP_CHECKSUM_SUCCEEDED,
    "the corrupted frame's TCP checksum is not vouched for",
  );
});
