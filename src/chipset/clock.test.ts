import { test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock, WallClock, nsForTicks, ticksIn } from "./clock.js";

test("ManualClock is monotonic and whole-nanosecond", () => {
  const c = new ManualClock(10.2);
  assert.equal(c.nowNs(), 11);
  c.set(5);
  assert.equal(c.nowNs(), 11, "never goes back");
  c.advance(-3);
  assert.equal(c.nowNs(), 11);
  c.advance(0.5);
  assert.equal(c.nowNs(), 12);
  c.set(100.1);
  assert.equal(c.nowNs(), 101);
});

test("WallClock starts near zero and never decreases", () => {
  const c = new WallClock();
  let last = c.nowNs();
  assert.ok(last >= 0);
  for (let i = 0; i < 1000; i++) {
    const now = c.nowNs();
    assert.ok(now >= last);
    assert.ok(Number.isInteger(now));
    last = now;
  }
});

test("ticksIn/nsForTicks are exact inverses across oscillators and large times", () => {
  for (const hz of [32768, 115200, 1_193_182, 3_579_545]) {
    for (const t of [1, 7, hz - 1, hz, hz + 1, 1e6 * hz + 12345]) {
      const ns = nsForTicks(t, hz);
      assert.ok(Number.isInteger(ns));
      assert.equal(ticksIn(ns, hz), t, `hz=${hz} t=${t}`);
      assert.equal(ticksIn(ns - 1, hz), t - 1, `hz=${hz} t=${t} - 1 ns`);
    }
    // Beyond 2^53 ns (a VM up for years) a deadline must still be reached by a tick at that time.
    for (const t of [2 ** 40, 2 ** 42 + 3, 2 ** 45 + 1]) {
      assert.ok(ticksIn(nsForTicks(t, hz), hz) >= t, `hz=${hz} t=${t}`);
    }
  }
  assert.equal(ticksIn(-5, 1000), 0);
  assert.equal(ticksIn(Number.NaN, 1000), 0);
  assert.equal(nsForTicks(0, 1000), 0);
});
