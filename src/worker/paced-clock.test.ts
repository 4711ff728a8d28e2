import { test } from "node:test";
import assert from "node:assert/strict";
import { PacedClock } from "./paced-clock.js";

test("the paced clock follows the host, limited to 1/rate per instruction while computing", () => {
  let hostMs = 1000;
  let instructions = 0;
  const clock = new PacedClock(1_000_000, () => hostMs); // 1 us per instruction at most
  clock.attach(() => instructions);
  assert.equal(clock.nowNs(), 0);
  // A fast processor: 10 ms of host time, 1e6 instructions (1 s allowed): the host limits.
  hostMs += 10;
  instructions += 1_000_000;
  assert.equal(clock.nowNs(), 10_000_000);
  clock.settle();
  // A slow processor: 1 s of host time but 1000 instructions: 1 ms of guest time.
  hostMs += 1000;
  instructions += 1000;
  assert.equal(clock.nowNs(), 11_000_000);
  clock.settle();
  assert.ok(clock.lagNs() > 990_000_000, "about a second behind the host");
  // Halted, time follows the host (the lag stays) and is made up by skips, never past the host.
  clock.halt();
  hostMs += 5;
  assert.equal(clock.nowNs(), 16_000_000);
  assert.equal(clock.skip(4_000_000), 4_000_000);
  assert.equal(clock.nowNs(), 20_000_000);
  assert.equal(clock.skip(10_000_000_000), 995_000_000, "only the remaining lag");
  assert.equal(clock.nowNs(), 1_015_000_000);
  assert.equal(clock.caughtUpNs, 999_000_000);
  clock.resume();
  assert.equal(clock.skip(1), 0, "no skipping while the processor runs");
  hostMs += 5;
  assert.equal(clock.nowNs(), 1_015_000_000, "no instructions since resume: time waits for them");
  instructions += 2000;
  assert.equal(clock.nowNs(), 1_017_000_000);
});

test("the paced clock never goes backwards, even if its counter does", () => {
  let hostMs = 0;
  let instructions = 100;
  const clock = new PacedClock(1_000_000, () => hostMs);
  clock.attach(() => instructions);
  hostMs = 1;
  instructions = 600;
  const a = clock.nowNs();
  instructions = 200;
  assert.equal(clock.nowNs(), a);
  hostMs = 0.5; // a host clock step back changes nothing either
  assert.equal(clock.nowNs(), a);
  assert.throws(() => new PacedClock(0), RangeError);
});

test("without a pacing floor the clock is host time, computing or not", () => {
  let hostMs = 10;
  const clock = new PacedClock(null, () => hostMs);
  clock.attach(() => 0);
  hostMs += 2000;
  assert.equal(clock.nowNs(), 2_000_000_000);
  clock.settle();
  assert.equal(clock.lagNs(), 0);
  clock.halt();
  assert.equal(clock.skip(1000), 0, "nothing to make up");
});
