import { test } from "node:test";
import assert from "node:assert/strict";
import { LINKTYPE_ETHERNET, pcapHeader, pcapRecord, PCAP_MAGIC_MICROSECONDS, PCAP_SNAPLEN } from "./pcap.js";
import { VirtualSwitch } from "./virtual-switch.js";

// Field offsets and values from the libpcap file format (draft-ietf-opsawg-pcap sections 4 and 5), read
// back independently of the writer; tests/net/capture.test.ts reads real captures with tcpdump.
test("the global header carries the microsecond magic, version 2.4, the snap length and LINKTYPE_ETHERNET", () => {
  const v = new DataView(pcapHeader().buffer);
  assert.equal(v.byteLength, 24);
  assert.equal(v.getUint32(0, true), PCAP_MAGIC_MICROSECONDS);
  assert.deepEqual([v.getUint16(4, true), v.getUint16(6, true)], [2, 4]);
  assert.equal(v.getInt32(8, true), 0);
  assert.equal(v.getUint32(12, true), 0);
  assert.equal(v.getUint32(16, true), PCAP_SNAPLEN);
  assert.equal(v.getUint32(20, true), LINKTYPE_ETHERNET);
});

test("a record has seconds, microseconds, captured and original lengths, then the frame", () => {
  const f = Uint8Array.from({ length: 60 }, (_, i) => i);
  const r = pcapRecord(f, 1_700_000_000_123.456);
  const v = new DataView(r.buffer);
  assert.equal(v.getUint32(0, true), 1_700_000_000);
  assert.equal(v.getUint32(4, true), 123_456);
  assert.equal(v.getUint32(8, true), 60);
  assert.equal(v.getUint32(12, true), 60);
  assert.deepEqual(r.subarray(16), f);
});

test("a capture of a port records what its endpoint sends and what it is given", () => {
  const sw = new VirtualSwitch({ clock: () => 5000 });
  const a = sw.addPort({ name: "a" });
  const b = sw.addPort({ name: "b" });
  const bytes: Uint8Array[] = [];
  const stop = sw.capture(b, (x) => bytes.push(x));
  const f = new Uint8Array(60).fill(0xff, 0, 6);
  f[11] = 0x0a;
  sw.input(a, f); // b receives it
  f[6] = 0x02;
  const g = Uint8Array.from(f);
  g[11] = 0x0b;
  sw.input(b, g); // b sends it
  stop();
  sw.input(a, f);
  assert.equal(bytes.length, 3);
  assert.equal(bytes[0]!.length, 24);
  assert.deepEqual(
    bytes[1]!.subarray(16),
    f.subarray(0, 60).map((x, i) => (i === 6 ? 0 : x)),
  );
  assert.deepEqual(bytes[2]!.subarray(16), g);
  assert.equal(new DataView(bytes[2]!.buffer).getUint32(0, true), 5);
});
