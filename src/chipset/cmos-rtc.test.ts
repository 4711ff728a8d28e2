import { test } from "node:test";
import assert from "node:assert/strict";
import { CmosRtc, periodicPeriodNs, UIP_LEAD_NS } from "./cmos-rtc.js";
import { ManualClock } from "./clock.js";

/** 2024-02-29T23:59:58Z plus half a second. */
const HOST = Date.UTC(2024, 1, 29, 23, 59, 58) / 1000 + 0.5;

function rtc(offsetSeconds = 0, host = HOST) {
  const clock = new ManualClock(0);
  let level = false;
  let rising = 0;
  const r = new CmosRtc({
    clock,
    irq: {
      set(l) {
        if (l && !level) rising++;
        level = l;
      },
    },
    hostSeconds: () => host,
    offsetSeconds,
    memoryBelow4G: 3 * 1024 ** 3,
    memoryAbove4G: 1024 ** 3,
  });
  const rd = (i: number) => {
    r.writePort(0, 1, i);
    return r.readPort(1, 1);
  };
  const wr = (i: number, v: number) => {
    r.writePort(0, 1, i);
    r.writePort(1, 1, v);
  };
  return { r, clock, rd, wr, level: () => level, rising: () => rising };
}

test("BCD time and date from host time plus the per-VM offset; century byte", () => {
  const { rd } = rtc();
  assert.deepEqual(
    [rd(0), rd(2), rd(4), rd(6), rd(7), rd(8), rd(9), rd(0x32)],
    [0x58, 0x59, 0x23, 0x05, 0x29, 0x02, 0x24, 0x20],
    "23:59:58 Thursday 29 Feb 2024",
  );
  const shifted = rtc(-3600 * 24 * 365);
  assert.equal(shifted.rd(9), 0x23, "offset of minus one year");
  assert.equal(shifted.rd(7), 0x01, "2023 has no 29 Feb: 1 March");
  assert.equal(shifted.rd(8), 0x03);
});

test("time advances with the partition clock across a leap-day midnight; binary and 12-hour modes", () => {
  const { rd, wr, clock, r } = rtc();
  clock.set(500_000_000); // first update (the host time had .5 s)
  assert.equal(rd(0), 0x59);
  clock.set(1_500_000_000);
  assert.deepEqual([rd(0), rd(2), rd(4), rd(7), rd(8), rd(6)], [0x00, 0x00, 0x00, 0x01, 0x03, 0x06]);
  assert.equal(r.calendar(), "2024-03-01T00:00:00.000Z");
  // Switch to binary, 12-hour and set 13:05:09 with SET.
  wr(0x0b, 0x80 | 0x04);
  wr(0, 9);
  wr(2, 5);
  wr(4, 0x80 | 1); // 1 PM
  wr(9, 24); // the date bytes are still BCD: rewrite them in binary too
  wr(0x32, 20);
  wr(7, 1);
  wr(8, 3);
  wr(0x0b, 0x04);
  clock.advance(3_000_000_000);
  assert.equal(rd(0), 12);
  assert.equal(rd(4), 0x81);
  assert.equal(r.calendar(), "2024-03-01T13:05:12.000Z");
  wr(0x0b, 0x06); // 24-hour binary (stored bytes are not converted: rewrite the hour)
  wr(4, 23);
  assert.equal(rd(4), 23);
});

test("SET stops updates; UIP rises 244 µs before each update and falls after it", () => {
  const { rd, wr, clock } = rtc(0, Date.UTC(2030, 0, 1, 0, 0, 0) / 1000);
  assert.equal(rd(0x0a) & 0x80, 0);
  clock.set(1e9 - UIP_LEAD_NS - 1);
  assert.equal(rd(0x0a) & 0x80, 0);
  clock.set(1e9 - UIP_LEAD_NS);
  assert.equal(rd(0x0a) & 0x80, 0x80, "update in progress window");
  assert.equal(rd(0), 0x00, "not yet updated");
  clock.set(1e9);
  assert.equal(rd(0x0a) & 0x80, 0);
  assert.equal(rd(0), 0x01);
  wr(0x0b, 0x82 | 0x10); // SET with UIE: SET clears UIE
  assert.equal(rd(0x0b), 0x82);
  clock.set(5e9);
  assert.equal(rd(0), 0x01, "frozen while SET");
  assert.equal(rd(0x0a) & 0x80, 0, "no UIP while SET");
  wr(0x0b, 0x02);
  clock.set(6e9);
  assert.equal(rd(0), 0x02, "first update one second after SET cleared");
  assert.equal(rd(0x0d), 0x80, "VRT");
});

test("periodic interrupt at the register A rate; register C read clears and lowers IRQ8", () => {
  const { r, rd, wr, clock, level, rising } = rtc();
  assert.equal(periodicPeriodNs(6), 976_562.5, "1024 Hz");
  assert.equal(periodicPeriodNs(15), 500_000_000);
  assert.equal(periodicPeriodNs(1), 3_906_250);
  wr(0x0a, 0x2f); // 2 Hz
  rd(0x0c);
  wr(0x0b, 0x42); // PIE
  assert.equal(r.nextDeadlineNs(), clock.nowNs() + 500_000_000);
  let ints = 0;
  for (let i = 0; i < 40; i++) {
    const d = r.nextDeadlineNs();
    clock.set(d);
    r.tick(d);
    if (level()) {
      ints++;
      assert.equal(rd(0x0c) & 0xc0, 0xc0, "IRQF and PF");
      assert.equal(level(), false);
    }
  }
  assert.equal(ints, 40, "one interrupt per 500 ms period");
  assert.equal(clock.nowNs(), 20e9);
  assert.equal(rising(), 40);
});

test("alarm with don't-care hours; update-ended interrupt", () => {
  const { r, rd, wr, clock, level } = rtc(0, Date.UTC(2030, 0, 1, 5, 10, 0) / 1000);
  wr(1, 0x30); // second 30
  wr(3, 0x10); // minute 10
  wr(5, 0xc0); // any hour
  rd(0x0c);
  wr(0x0b, 0x22); // AIE
  for (let s = 1; s < 30; s++) r.tick(s * 1e9);
  clock.set(29e9);
  assert.equal(level(), false);
  clock.set(30e9);
  r.tick(30e9);
  assert.equal(level(), true);
  // PF and UF are set whether or not enabled (the 1024 Hz periodic rate runs from reset).
  assert.equal(rd(0x0c), 0x80 | 0x40 | 0x20 | 0x10, "IRQF, PF, AF, UF");
  wr(0x0b, 0x12); // UIE
  clock.set(31e9);
  r.tick(31e9);
  assert.equal(rd(0x0c) & 0xb0, 0x90, "IRQF and UF, no alarm");
  assert.equal(r.nextDeadlineNs(), 32e9);
});

test("NMI-disable bit of port 0x70, NVRAM bytes, memory-size fields", () => {
  const { r, rd, wr } = rtc();
  r.writePort(0, 1, 0x80 | 0x40);
  assert.equal(r.nmiDisabled, true);
  r.writePort(1, 1, 0xa5);
  assert.equal(rd(0x40), 0xa5);
  assert.equal(r.nmiDisabled, false);
  wr(0x7f, 0x11);
  assert.equal(rd(0x7f), 0x11);
  assert.equal(rd(0x0c) & 0x0f, 0, "C low bits read 0");
  assert.equal(rd(0x34) | (rd(0x35) << 8), (3 * 1024 - 16) * 16, "64 KiB units above 16 MiB");
  assert.equal(rd(0x5b) | (rd(0x5c) << 8) | (rd(0x5d) << 16), 16384, "64 KiB units above 4 GiB");
  assert.equal(rd(0x30) | (rd(0x31) << 8), 0xffff, "extended memory KiB, capped");
  assert.match(r.inspect(), /RTC: 2024-02-29T23:59:58/);
});

test("hostile writes and garbage calendar bytes never throw", () => {
  const { r, clock } = rtc();
  let x = 7;
  for (let i = 0; i < 20000; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    r.writePort(x & 1, 1, (x >>> 8) & 0xff);
    r.readPort((x >>> 3) & 1, 1);
    clock.advance(x % 20_000_000);
    if (i % 13 === 0) r.tick(clock.nowNs());
  }
  clock.advance(1e15);
  r.tick(clock.nowNs());
  assert.equal(typeof r.inspect(), "string");
});
