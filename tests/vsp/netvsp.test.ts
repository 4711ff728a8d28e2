// The network VSP through the real partition and VMBus server, driven by a guest that speaks as Linux 6.1's
// hv_netvsc: the NVSP handshake and buffers, RNDIS control answers (MAC, frame size, offloads: checksums, RSS:
// not supported, link), frames out of send-buffer sections (batched) and GPA-direct buffers, frames in through
// receive-buffer sections that only the guest's completion frees, the packet filter, link indications, and
// refusals of what a guest must not do.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as P from "../../src/vmbus/protocol.js";
import { NvspType, RndisType } from "../../src/vsp/netvsp/nvsp-protocol.js";
import { frame, NetvscGuest, nvsp, RecordingPort, rndisMessage, rndisPacket } from "./netvsc-guest.js";

const MAC = [0x00, 0x15, 0x5d, 0x12, 0x34, 0x56];
const PEER = [0x00, 0x15, 0x5d, 0x65, 0x43, 0x21];
const u32 = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset).getUint32(at, true);

function up(): { g: NetvscGuest; port: RecordingPort; responses: Uint8Array[] } {
  const port = new RecordingPort();
  const g = new NetvscGuest([port], [MAC]);
  g.open(0);
  const { responses, completions } = g.bringUp();
  // INIT_COMPLETE (6.1 accepted), RECV_BUF_COMPLETE, SEND_BUF_COMPLETE, then one 108 per RNDIS request.
  const init = completions[0]!;
  assert.equal(init.type, P.PacketType.Completion);
  assert.equal(init.payload.length, 40, "NVSP completions are padded to the full message");
  assert.deepEqual([u32(init.payload, 0), u32(init.payload, 4), u32(init.payload, 12)], [2, 0x60001, 1]);
  const rb = completions[1]!.payload;
  assert.deepEqual([u32(rb, 0), u32(rb, 4), u32(rb, 8), u32(rb, 12)], [102, 1, 1, 0]);
  assert.ok(u32(rb, 16) >= 68 && u32(rb, 16) >= 44 + 1514, "a section holds a full frame");
  assert.ok(u32(rb, 16) * u32(rb, 20) <= 64 * 4096);
  const sb = completions[2]!.payload;
  assert.deepEqual([u32(sb, 0), u32(sb, 4), u32(sb, 8)], [105, 1, 6144]);
  assert.equal(completions.length, 3 + 10);
  for (const c of completions.slice(3)) assert.deepEqual([u32(c.payload, 0), u32(c.payload, 4)], [108, 1]);
  return { g, port, responses };
}

test("hv_netvsc's bring-up: NVSP 6.1, buffers, RNDIS answers Linux needs", () => {
  const { g, responses } = up();
  assert.equal(g.vsps[0]!.state, "ready");
  assert.equal(responses.length, 10);
  const init = responses[0]!;
  assert.equal(u32(init, 0), RndisType.InitComplete);
  assert.equal(u32(init, 4), 52);
  assert.deepEqual([u32(init, 8), u32(init, 12), u32(init, 16), u32(init, 28)], [1, 0, 1, 0]);
  const query = (i: number) => {
    const r = responses[i]!;
    assert.equal(u32(r, 0), RndisType.QueryComplete);
    assert.equal(u32(r, 8), i + 1, "the request id is echoed");
    const len = u32(r, 16);
    return { status: u32(r, 12), data: r.slice(8 + u32(r, 20), 8 + u32(r, 20) + len), msgLen: u32(r, 4) };
  };
  assert.deepEqual([...query(1).data], MAC);
  assert.equal(u32(query(2).data, 0), 1500);
  const hw = query(3);
  assert.equal(hw.status, 0);
  assert.equal(hw.data[0], 0xa7, "NDIS_OBJECT_TYPE_OFFLOAD");
  assert.ok(hw.data[1]! >= 1);
  const size = hw.data[2]! | (hw.data[3]! << 8);
  assert.ok(size >= 112 && size <= hw.data.length);
  // Checksums (csum, offset 4) are advertised (LSO v2 at offset 80 as LSO_OFFERED says); LSO v1, IPsec, RSC are not.
  assert.ok(hw.data.subarray(4, 36).some((b) => b !== 0));
  assert.ok(hw.data.subarray(36, 80).every((b) => b === 0) && hw.data.subarray(108).every((b) => b === 0));
  assert.equal(u32(query(4).data, 0), 0, "media connected");
  assert.equal(u32(query(5).data, 0), 100_000_000);
  const rss = query(6);
  assert.equal(rss.status, 0xc00000bb, "RSS is NOT_SUPPORTED");
  assert.equal(rss.data.length, 0);
  assert.equal(query(7).status, 0);
  for (const i of [8, 9]) {
    assert.equal(u32(responses[i]!, 0), RndisType.SetComplete);
    assert.equal(u32(responses[i]!, 12), 0);
  }
  assert.equal(g.vsps[0]!.rndis.packetFilter, 0x0b);
});

test("frames out: batched in a send section, and through GPA-direct buffers", () => {
  const { g, port } = up();
  const a = frame(PEER, MAC, 1, 60);
  const b = frame(PEER, MAC, 2, 1514);
  const pa = rndisPacket(a);
  // Linux pads each batched message to the 8-byte alignment and counts the padding in msg_len.
  const padded = new Uint8Array((pa.length + 7) & ~7);
  padded.set(pa);
  new DataView(padded.buffer).setUint32(4, padded.length, true);
  g.sendRndisSection([padded, rndisPacket(b)], 3);
  g.sendRndisDirect(rndisPacket(a), 0);
  const comps = g.take();
  assert.deepEqual(
    comps.map((c) => [c.type, u32(c.payload, 0), u32(c.payload, 4)]),
    [
      [P.PacketType.Completion, 108, 1],
      [P.PacketType.Completion, 108, 1],
    ],
  );
  assert.deepEqual(port.frames, [a, b, a]);
});

test("frames in: into receive sections, freed only by the guest's completion; the filter applies", () => {
  const { g } = up();
  const vsp = g.vsps[0]!;
  const mine = frame(MAC, PEER, 7, 100);
  assert.ok(vsp.receiveFrame(mine));
  assert.equal(vsp.receiveFrame(frame(PEER, MAC, 1, 100)), false, "someone else's unicast is filtered");
  assert.ok(vsp.receiveFrame(frame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], PEER, 9, 80)));
  const got = g.take();
  assert.equal(got.length, 2);
  for (const p of got) {
    assert.equal(p.type, P.PacketType.TransferPages);
    assert.equal(p.setId, 0xcafe);
    assert.ok(p.completionRequested);
    assert.deepEqual([u32(p.payload, 0), u32(p.payload, 4), u32(p.payload, 8)], [107, 0, 0xffffffff]);
  }
  const m = got[0]!.messages[0]!;
  assert.deepEqual([u32(m, 0), u32(m, 4), u32(m, 8), u32(m, 12)], [1, 44 + 100, 36, 100]);
  assert.deepEqual(m.slice(44), mine);
  // Without completions the sections run out: frames wait (bounded), then are dropped and counted.
  const sections = (vsp.inspect().receiveSections as { count: number }).count;
  for (let i = 0; i < sections + 300; i++) vsp.receiveFrame(frame(MAC, PEER, i, 64));
  const undelivered = g.take();
  assert.equal(undelivered.length, sections - 2);
  assert.ok((vsp.counters.rxDropped["queue-full"] ?? 0) > 0);
  // Completing packets frees their sections and the waiting frames flow.
  for (const p of [...got, ...undelivered]) g.completeReceive(p.transLo);
  assert.ok(g.take().length > 0);
});

test("link down and up reach the guest as RNDIS indications; frames are dropped while down", () => {
  const { g } = up();
  const vsp = g.vsps[0]!;
  vsp.setLink(false);
  assert.equal(vsp.receiveFrame(frame(MAC, PEER, 1)), false);
  vsp.setLink(true);
  const got = g.take().flatMap((p) => p.messages);
  assert.deepEqual(
    got.map((m) => [u32(m, 0), u32(m, 8)]),
    [
      [RndisType.Indicate, 0x4001000c],
      [RndisType.Indicate, 0x4001000b],
    ],
  );
});

test("refusals: bad versions, indices, sizes, unknown OIDs and messages before the handshake", () => {
  const port = new RecordingPort();
  const g = new NetvscGuest([port], [MAC]);
  g.open(0);
  // A data packet before anything: NVSP failure, nothing sent.
  g.sendRndisSection([rndisPacket(frame(PEER, MAC, 1))], 0);
  g.sendInband(nvsp(NvspType.Init, 0x10000, 0x20000));
  let c = g.take();
  assert.deepEqual(
    c.map((p) => u32(p.payload, 4)),
    [2, 0],
  );
  assert.equal(u32(c[1]!.payload, 12), 2, "an unsupported version range fails");
  g.bringUp();
  g.sendInband(nvsp(NvspType.SendRndisPacket, 0, 9999, 100)); // past the send buffer's sections
  g.sendInband(nvsp(NvspType.SendRndisPacket, 0, 0, 0)); // section 0 with zero bytes
  const short = rndisPacket(frame(PEER, MAC, 1));
  new DataView(short.buffer).setUint32(12, 5000, true); // data_len past the message
  g.sendRndisSection([short], 1);
  g.sendRndisDirect(rndisMessage(RndisType.Query, [77, 0x12345678, 0, 20, 0]));
  c = g.take();
  const statuses = c.filter((p) => p.type === P.PacketType.Completion).map((p) => u32(p.payload, 4));
  assert.deepEqual(statuses, [2, 2, 2, 1], "bad index, empty section and a lying data_len fail");
  const answer = c.find((p) => p.type === P.PacketType.TransferPages)!.messages[0]!;
  assert.deepEqual([u32(answer, 8), u32(answer, 12), u32(answer, 16)], [77, 0xc00000bb, 0]);
  assert.equal(port.frames.length, 0);
  const refused = g.vsps[0]!.counters.refused;
  assert.ok(refused["section-index"] === 1 && refused["tx-data-range"] === 1, JSON.stringify(refused));
});
