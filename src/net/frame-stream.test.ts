import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeFrame, FrameDecoder, MAX_FRAME } from "./frame-stream.js";
import { NetError } from "./net-error.js";

function frameOf(length: number, seed: number): Uint8Array {
  const f = new Uint8Array(length);
  for (let i = 0; i < length; i++) f[i] = (seed + i * 7) & 0xff;
  return f;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function lengthPrefix(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

test("the wire format is a 4-byte big-endian length, then the frame", () => {
  const f = frameOf(60, 1);
  const wire = encodeFrame(f);
  assert.deepEqual([...wire.subarray(0, 4)], [0, 0, 0, 60]);
  assert.deepEqual(wire.subarray(4), f);
  const big = encodeFrame(frameOf(1514 + 256, 2));
  assert.deepEqual([...big.subarray(0, 4)], [0, 0, 0x06, 0xea]);
});

test("frames survive any split of the stream into chunks", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 14, max: 3000 }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 20 }),
      (lengths, cuts) => {
        const frames = lengths.map((n, i) => frameOf(n, i));
        const wire = concat(frames.map((f) => encodeFrame(f)));
        const d = new FrameDecoder();
        const got: Uint8Array[] = [];
        let at = 0;
        for (let i = 0; at < wire.length; i++) {
          const n = cuts[i % cuts.length]!;
          got.push(...d.push(wire.subarray(at, at + n)));
          at += n;
        }
        assert.equal(got.length, frames.length);
        got.forEach((g, i) => assert.deepEqual(g, frames[i]));
        assert.ok(d.idle);
        d.end();
      },
    ),
  );
});

test("a byte-at-a-time stream yields the same frames", () => {
  const frames = [frameOf(14, 3), frameOf(1514, 4)];
  const wire = concat(frames.map((f) => encodeFrame(f)));
  const d = new FrameDecoder();
  const got: Uint8Array[] = [];
  for (const b of wire) got.push(...d.push(Uint8Array.of(b)));
  assert.deepEqual(got, frames);
});

test("frames handed out are copies: reusing the chunk buffer does not change them", () => {
  const chunk = encodeFrame(frameOf(20, 9));
  const d = new FrameDecoder();
  const [f] = d.push(chunk);
  chunk.fill(0);
  assert.deepEqual(f, frameOf(20, 9));
});

test("a huge length prefix breaks the stream with frame-too-large, before any allocation", () => {
  for (const n of [MAX_FRAME + 1, 0x7fffffff, 0xffffffff]) {
    const d = new FrameDecoder();
    assert.throws(
      () => d.push(lengthPrefix(n)),
      (e: unknown) => e instanceof NetError && e.code === "frame-too-large",
    );
    // The stream is out of step: nothing more is accepted from it.
    assert.throws(
      () => d.push(encodeFrame(frameOf(60, 0))),
      (e: unknown) => e instanceof NetError && e.code === "frame-too-large",
    );
  }
  // The largest legal frame still passes.
  const d = new FrameDecoder();
  assert.equal(d.push(encodeFrame(frameOf(MAX_FRAME, 5))).length, 1);
});

test("zero-length and runt frames are skipped and counted; the stream stays in step", () => {
  const good = frameOf(60, 6);
  const wire = concat([lengthPrefix(0), lengthPrefix(5), frameOf(5, 1), encodeFrame(good), lengthPrefix(0)]);
  const d = new FrameDecoder();
  assert.deepEqual(d.push(wire), [good]);
  assert.equal(d.counters.runts, 3);
  d.end();
});

test("a stream that ends inside a frame is reported as truncated", () => {
  const wire = encodeFrame(frameOf(100, 7));
  for (const cut of [1, 3, 4, 50, 103]) {
    const d = new FrameDecoder();
    assert.deepEqual(d.push(wire.subarray(0, cut)), []);
    assert.throws(
      () => d.end(),
      (e: unknown) => e instanceof NetError && e.code === "truncated",
    );
  }
});

test("encodeFrame refuses what the wire cannot carry", () => {
  for (const n of [0, 13, MAX_FRAME + 1]) {
    assert.throws(
      () => encodeFrame(new Uint8Array(n)),
      (e: unknown) => e instanceof NetError && e.code === "invalid-frame",
    );
  }
});

test("random bytes never make the decoder throw anything but a NetError", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 10 }), (chunks) => {
      const d = new FrameDecoder({ maxFrame: 4096 });
      try {
        for (const c of chunks) for (const f of d.push(c)) assert.ok(f.length >= 14 && f.length <= 4096);
        d.end();
      } catch (e) {
        assert.ok(e instanceof NetError, String(e));
      }
    }),
  );
});

test("the 2-byte prefix variant (vde_plug's stdin/stdout) frames the same way", () => {
  const frames = [frameOf(60, 1), frameOf(1514, 2)];
  const wire = concat(frames.map((f) => encodeFrame(f, 2)));
  assert.deepEqual([...wire.subarray(0, 2)], [0, 60]);
  const d = new FrameDecoder({ prefixBytes: 2 });
  assert.deepEqual(d.push(wire), frames);
  assert.throws(() => encodeFrame(frameOf(65_536, 0), 2), NetError);
});
