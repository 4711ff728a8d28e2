import { test } from "node:test";
import assert from "node:assert/strict";
import { PartitionClock, ReferenceTime, referenceFromTsc, tscAt, tscScale } from "./reference-time.js";

test("TSC page scale: floor(2^64 * 1e7 / tscHz)", () => {
  assert.equal(tscScale(1e9), (1n << 64n) / 100n);
  assert.equal(tscScale(2_500_000_000), ((1n << 64n) * 10_000_000n) / 2_500_000_000n);
  assert.throws(() => new ReferenceTime(10_000_000), RangeError);
});

test("reference counter equals the TSC page formula at every instant and never decreases", () => {
  for (const hz of [1e9, 2_400_000_000, 3_123_456_789, 50_000_000]) {
    const rt = new ReferenceTime(hz);
    let last = -1;
    for (let i = 0; i < 5000; i++) {
      const ns = Math.floor(i * 7919.37 + ((i * i) % 1000)) * 13;
      const tsc = tscAt(ns, hz);
      const ref = rt.referenceAt(ns);
      assert.equal(ref, referenceFromTsc(tsc, rt.scale, rt.offset));
      assert.ok(ref >= last);
      last = ref;
      // 100 ns units, within a unit of the exact value
      assert.ok(Math.abs(ref - ns / 100) <= 1.01 + 1e7 / hz, `hz=${hz} ns=${ns} ref=${ref}`);
    }
  }
});

test("nsForReference is the first nanosecond the counter reaches a count", () => {
  for (const hz of [1e9, 2_400_000_000, 3_123_456_789]) {
    const rt = new ReferenceTime(hz);
    for (const count of [1, 2, 99, 100, 12345, 10_000_000, 987654321, 2 ** 40]) {
      const ns = rt.nsForReference(count);
      assert.ok(rt.referenceAt(ns) >= count, `hz=${hz} count=${count}`);
      assert.ok(rt.referenceAt(ns - 1) < count, `hz=${hz} count=${count} minimal`);
    }
    assert.equal(rt.nsForReference(0), 0);
    assert.equal(rt.nsForReference(Infinity), Infinity);
  }
});

test("deterministic clock: a function of retired instructions plus skipped idle time", () => {
  let retired = 0;
  const c = new PartitionClock("deterministic", 10);
  c.retired = () => retired;
  assert.equal(c.nowNs(), 0, "0 before start");
  retired = 50;
  assert.equal(c.nowNs(), 0);
  c.start();
  assert.equal(c.nowNs(), 500);
  c.skipTo(10_000);
  assert.equal(c.nowNs(), 10_000);
  retired = 60;
  assert.equal(c.nowNs(), 10_100);
  c.skipTo(5);
  assert.equal(c.nowNs(), 10_100, "skipping backwards does nothing");
  assert.throws(() => new PartitionClock("deterministic", 0), RangeError);
});

test("wall clock follows the host clock from start and never decreases", () => {
  let host = 1_000_000;
  const c = new PartitionClock("wall", 10, () => host);
  assert.equal(c.nowNs(), 0);
  c.start();
  host += 500;
  assert.equal(c.nowNs(), 500);
  host -= 400; // a host clock that jumps back
  assert.equal(c.nowNs(), 500);
  assert.equal(c.nowNs(), 500, "held while the host is behind");
  host += 1000;
  assert.equal(c.nowNs(), 1100);
});
