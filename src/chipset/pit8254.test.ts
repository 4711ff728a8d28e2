import { test } from "node:test";
import assert from "node:assert/strict";
import { Pit8254, PIT_HZ } from "./pit8254.js";
import { ManualClock, nsForTicks, ticksIn } from "./clock.js";
import type { IrqLine } from "../contracts/platform.js";

function pit(): { p: Pit8254; clock: ManualClock; edges: () => number; level: () => boolean } {
  const clock = new ManualClock(1_000_000);
  let level = false;
  let rising = 0;
  const irq: IrqLine = {
    set(l) {
      if (l && !level) rising++;
      level = l;
    },
  };
  return { p: new Pit8254(clock, irq), clock, edges: () => rising, level: () => level };
}

/** Advances to `ns` after start, ticking whenever a deadline passes, as the run loop would. */
function runTo(p: Pit8254, clock: ManualClock, ns: number): void {
  for (;;) {
    const d = p.nextDeadlineNs();
    if (d > ns) break;
    clock.set(d);
    p.tick(d);
  }
  clock.set(ns);
  p.tick(ns);
}

function readCounter(p: Pit8254, ch: number): number {
  p.writePort(3, 1, ch << 6); // counter latch
  return p.readPort(ch, 1) | (p.readPort(ch, 1) << 8);
}

test("tick conversions are exact and inverse", () => {
  assert.equal(ticksIn(1e9, PIT_HZ), PIT_HZ);
  assert.equal(ticksIn(3600e9 + 1, PIT_HZ), 3600 * PIT_HZ);
  for (const t of [1, 2, 1193, 1193182, 1193183, 5_000_000_000]) {
    const ns = nsForTicks(t, PIT_HZ);
    assert.equal(ticksIn(ns, PIT_HZ), t);
    assert.equal(ticksIn(ns - 1, PIT_HZ), t - 1);
  }
});

test("mode 2 rate generator at 100 Hz gives 100 IRQ0 edges per simulated second", () => {
  const { p, clock, edges } = pit();
  const start = clock.nowNs();
  p.writePort(3, 1, 0x34); // counter 0, lo/hi, mode 2, binary
  p.writePort(0, 1, 11932 & 0xff);
  p.writePort(0, 1, 11932 >> 8);
  const first = p.nextDeadlineNs();
  assert.equal(first, start + nsForTicks(11932, PIT_HZ));
  runTo(p, clock, start + 1e9);
  // One edge when OUT first goes high at load, then one per period of 11932/1193182 s = 10.0002 ms: the
  // 100th period ends just after one second.
  assert.equal(edges(), 1 + 99);
  runTo(p, clock, start + 1e9 + 1e6);
  assert.equal(edges(), 1 + 100);
  // Counter value mid-period: 11932 - elapsed % 11932.
  clock.set(start + nsForTicks(11932 * 101 + 500, PIT_HZ));
  assert.equal(readCounter(p, 0), 11932 - 500);
});

test("mode 3 square wave: OUT high for the first half, IRQ0 edge each period, counter steps by two", () => {
  const { p, clock, edges, level } = pit();
  const start = clock.nowNs();
  p.writePort(3, 1, 0x36); // counter 0, lo/hi, mode 3
  p.writePort(0, 1, 0x00);
  p.writePort(0, 1, 0x10); // 4096
  assert.equal(level(), true);
  clock.set(start + nsForTicks(10, PIT_HZ));
  assert.equal(readCounter(p, 0), 4096 - 20);
  runTo(p, clock, start + nsForTicks(3000, PIT_HZ));
  assert.equal(level(), false, "second half of the period");
  runTo(p, clock, start + nsForTicks(4096 * 50 + 1, PIT_HZ));
  assert.equal(edges(), 1 + 50, "initial high + one rising edge per period");
});

test("mode 0 on counter 2 gated by port 0x61, OUT seen in bit 5 (Linux PIT calibration)", () => {
  const { p, clock } = pit();
  const start = clock.nowNs();
  p.portBDevice.writePort(0, 1, 0x01); // gate on, speaker off
  p.writePort(3, 1, 0xb0); // counter 2, lo/hi, mode 0
  p.writePort(2, 1, 0xff);
  p.writePort(2, 1, 0xff);
  assert.equal(p.portBDevice.readPort(0, 1) & 0x20, 0, "OUT low while counting");
  clock.set(start + nsForTicks(0xffff - 1, PIT_HZ));
  assert.equal(p.portBDevice.readPort(0, 1) & 0x20, 0);
  clock.set(start + nsForTicks(0xffff, PIT_HZ));
  assert.equal(p.portBDevice.readPort(0, 1) & 0x20, 0x20, "terminal count");
  // Gate low pauses mode 0.
  p.writePort(3, 1, 0xb0);
  p.writePort(2, 1, 0x00);
  p.writePort(2, 1, 0x10);
  const t0 = clock.nowNs();
  clock.set(t0 + nsForTicks(100, PIT_HZ));
  p.portBDevice.writePort(0, 1, 0x00);
  clock.set(t0 + nsForTicks(5000, PIT_HZ));
  assert.equal(readCounter(p, 2), 0x1000 - 100);
  p.portBDevice.writePort(0, 1, 0x01);
  clock.advance(nsForTicks(50, PIT_HZ));
  assert.equal(readCounter(p, 2), 0x1000 - 150);
});

test("latch freezes the value until read; a second latch is ignored; lobyte and hibyte modes", () => {
  const { p, clock } = pit();
  p.writePort(3, 1, 0x74); // counter 1, lo/hi, mode 2
  p.writePort(1, 1, 0x00);
  p.writePort(1, 1, 0x20);
  clock.advance(nsForTicks(16, PIT_HZ));
  p.writePort(3, 1, 0x40);
  clock.advance(nsForTicks(100, PIT_HZ));
  p.writePort(3, 1, 0x40);
  assert.equal(p.readPort(1, 1), 0xf0);
  assert.equal(p.readPort(1, 1), 0x1f);
  p.writePort(3, 1, 0x50); // counter 1, LSB only, mode 0
  p.writePort(1, 1, 0x80);
  assert.equal(p.readPort(1, 1), 0x80);
  p.writePort(3, 1, 0x60); // counter 1, MSB only, mode 0
  p.writePort(1, 1, 0x12);
  assert.equal(p.readPort(1, 1), 0x12, "reads the high byte of 0x1200");
});

test("read-back command latches status and count; status shows OUT, null count, mode", () => {
  const { p, clock } = pit();
  p.writePort(3, 1, 0x34);
  p.writePort(3, 1, 0xe2); // read-back status only, counter 0
  assert.equal(p.readPort(0, 1), 0x40 | 0x30 | 0x04 | 0x80, "null count, lo/hi, mode 2, OUT high");
  p.writePort(0, 1, 0x00);
  p.writePort(0, 1, 0x01); // 256
  clock.advance(nsForTicks(6, PIT_HZ));
  p.writePort(3, 1, 0xc2); // status and count
  assert.equal(p.readPort(0, 1), 0x34 | 0x80);
  assert.equal(p.readPort(0, 1), 250);
  assert.equal(p.readPort(0, 1), 0);
});

test("BCD counting and mode 4 strobe", () => {
  const { p, clock, edges } = pit();
  p.writePort(3, 1, 0x39); // counter 0, lo/hi, mode 4, BCD
  p.writePort(0, 1, 0x00);
  p.writePort(0, 1, 0x10); // BCD 1000
  const t0 = clock.nowNs();
  clock.set(t0 + nsForTicks(1, PIT_HZ));
  assert.equal(readCounter(p, 0), 0x0999);
  runTo(p, clock, t0 + nsForTicks(2000, PIT_HZ));
  assert.equal(edges(), 2, "one strobe after 1000 counts (the first edge is the initial high)");
  assert.equal(p.nextDeadlineNs(), Number.POSITIVE_INFINITY, "mode 4 fires once");
});

test("hostile writes to every PIT port never throw", () => {
  const { p, clock } = pit();
  let x = 12345;
  for (let i = 0; i < 20000; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    const off = x % 4;
    if (x & 0x100000) p.writePort(off, 1, x >>> 8);
    else p.readPort(off, 1);
    if (i % 7 === 0) p.portBDevice.writePort(0, 1, x >>> 16);
    clock.advance(x % 5000);
    p.tick(clock.nowNs());
    assert.ok(p.nextDeadlineNs() >= clock.nowNs() || p.nextDeadlineNs() > 0);
  }
  assert.match(p.inspect(), /PIT counter 0/);
});

test("mode 1 one-shot and mode 5 strobe start on a gate rising edge (counter 2 via port 0x61)", () => {
  const { p, clock } = pit();
  p.portBDevice.writePort(0, 1, 0x00);
  p.writePort(3, 1, 0xb2); // counter 2, lo/hi, mode 1
  p.writePort(2, 1, 100);
  p.writePort(2, 1, 0);
  clock.advance(nsForTicks(500, PIT_HZ));
  assert.equal(p.speakerOut(), true, "OUT high until triggered");
  assert.equal(readCounter(p, 2), 100, "not counting before the trigger");
  p.portBDevice.writePort(0, 1, 0x01); // gate rising edge
  const t0 = clock.nowNs();
  clock.set(t0 + nsForTicks(40, PIT_HZ));
  assert.equal(p.speakerOut(), false, "one-shot pulse in progress");
  assert.equal(readCounter(p, 2), 60);
  clock.set(t0 + nsForTicks(100, PIT_HZ));
  assert.equal(p.speakerOut(), true, "pulse ends at terminal count");
  p.portBDevice.writePort(0, 1, 0x00);
  p.portBDevice.writePort(0, 1, 0x01); // retrigger
  clock.advance(nsForTicks(10, PIT_HZ));
  assert.equal(p.speakerOut(), false, "retriggered");
  p.writePort(3, 1, 0xba); // counter 2, mode 5
  p.writePort(2, 1, 10);
  p.writePort(2, 1, 0);
  p.portBDevice.writePort(0, 1, 0x00);
  p.portBDevice.writePort(0, 1, 0x01);
  const t1 = clock.nowNs();
  clock.set(t1 + nsForTicks(10, PIT_HZ));
  assert.equal(p.speakerOut(), false, "strobe at count 0");
  clock.set(t1 + nsForTicks(11, PIT_HZ));
  assert.equal(p.speakerOut(), true);
});
