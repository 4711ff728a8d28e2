import { test } from "node:test";
import assert from "node:assert/strict";
import { Chipset } from "./pc-chipset.js";
import { ManualClock } from "./clock.js";
import type { ApicMessage } from "../contracts/platform.js";
import { IOAPIC_BASE } from "./ioapic.js";
import { IrqRouter, IrqRouterError, isaIrqToGsi } from "./irq.js";

function board() {
  const clock = new ManualClock(0);
  const out: number[] = [];
  const events: string[] = [];
  const cs = new Chipset({
    clock,
    hostSeconds: () => Date.UTC(2026, 10, 27, 8, 0, 0) / 1000,
    rtcOffsetSeconds: 60,
    com1: (b) => out.push(b),
    onPowerOff: () => events.push("off"),
    onReset: (kind, source) => events.push(`reset ${kind} ${source}`),
    memoryBelow4G: 512 * 1024 * 1024,
  });
  const p = cs.ports;
  // Linux's PIC setup: vectors 0x30/0x38, cascade on IR2.
  for (const [port, v] of [
    [0x20, 0x11],
    [0x21, 0x30],
    [0x21, 0x04],
    [0x21, 0x01],
    [0xa0, 0x11],
    [0xa1, 0x38],
    [0xa1, 0x02],
    [0xa1, 0x01],
    [0x21, 0x00],
    [0xa1, 0x00],
  ] as const)
    p.write(port, 1, v);
  return { cs, clock, out, events, p };
}

/** Runs the timers to `ns` the way the worker's loop will: tick at each deadline. */
function runTo(cs: Chipset, clock: ManualClock, ns: number, onInterrupt: () => void): void {
  for (;;) {
    const d = cs.nextDeadlineNs();
    if (d > ns) break;
    clock.set(d);
    cs.tick(d);
    while (cs.interruptSource.hasInterrupt()) onInterrupt();
  }
  clock.set(ns);
  cs.tick(ns);
}

test("IRQ routing: ISA IRQ0 is GSI 2, others identity; the cascade line takes no device", () => {
  assert.equal(isaIrqToGsi(0), 2);
  assert.equal(isaIrqToGsi(9), 9);
  const r = new IrqRouter();
  assert.throws(() => r.line(2), IrqRouterError);
  assert.throws(() => r.line(16), IrqRouterError);
  const seen: string[] = [];
  r.connect({ setInput: (i, l) => seen.push(`${i}=${l}`) }, isaIrqToGsi);
  const a = r.line(0);
  const b = r.line(0);
  a.set(true);
  b.set(true);
  a.set(false);
  b.set(false);
  assert.deepEqual(seen, ["2=true", "2=false"], "shared line: wired-OR");
});

test("PIT mode 2 at 1 kHz drives IRQ0 through the PIC: vectors 0x30, EOI each", () => {
  const { cs, clock, p } = board();
  p.write(0x43, 1, 0x34);
  p.write(0x40, 1, 1193 & 0xff);
  p.write(0x40, 1, 1193 >> 8);
  // OUT rising at load is the first edge.
  assert.equal(cs.interruptSource.acknowledge(), 0x30);
  p.write(0x20, 1, 0x20);
  let count = 0;
  runTo(cs, clock, 100e6, () => {
    assert.equal(cs.interruptSource.acknowledge(), 0x30);
    count++;
    p.write(0x20, 1, 0x20);
  });
  assert.equal(count, 100, "100 periods of 0.99985 ms in 100 ms");
});

test("the I/O APIC sees the same lines: PIT on GSI 2, COM1 on 4, RTC on 8, SCI level on 9", () => {
  const { cs, clock, p } = board();
  const msgs: ApicMessage[] = [];
  cs.setApicSink({ deliver: (m) => msgs.push({ ...m }) });
  const redir = (gsi: number, lo: number) => {
    cs.mmio.write(IOAPIC_BASE, 4, 0x10 + 2 * gsi);
    cs.mmio.write(IOAPIC_BASE + 0x10, 4, lo);
  };
  redir(2, 0x30);
  redir(4, 0x34);
  redir(8, 0x38);
  redir(9, 0x8000 | 0x39);
  p.write(0x21, 1, 0xff); // Linux masks the PIC when it uses the I/O APIC
  p.write(0xa1, 1, 0xff);
  p.write(0x43, 1, 0x34);
  p.write(0x40, 1, 0xa9);
  p.write(0x40, 1, 0x04); // 1193: 1 kHz
  runTo(cs, clock, 10e6, () => assert.fail("PIC is masked"));
  const pit = msgs.filter((m) => m.pin === 2).length;
  assert.equal(pit, 1 + 10, "the load edge and ten periods");
  // COM1: THRE interrupt with OUT2.
  p.write(0x3fc, 1, 0x08);
  p.write(0x3f9, 1, 0x02);
  assert.equal(msgs.at(-1)!.vector, 0x34);
  // RTC update-ended interrupt.
  p.write(0x70, 1, 0x0b);
  p.write(0x71, 1, 0x12);
  runTo(cs, clock, 1.1e9, () => undefined);
  assert.ok(msgs.some((m) => m.vector === 0x38));
  // SCI: power button with PWRBTN_EN; level until cleared, remote IRR until EOI.
  p.write(0x602, 2, 0x100);
  cs.pm.pressPowerButton();
  assert.equal(msgs.at(-1)!.vector, 0x39);
  assert.equal(msgs.at(-1)!.levelTriggered, true);
  const n = msgs.length;
  cs.apicEoi(0x39);
  assert.equal(msgs.length, n + 1, "still asserted: re-delivered after EOI");
  p.write(0x600, 2, 0x100);
  cs.apicEoi(0x39);
  assert.equal(msgs.length, n + 1);
});

test("RTC interrupt reaches the slave PIC (vector 0x38) and the per-VM offset shows in the calendar", () => {
  const { cs, clock, p } = board();
  assert.match(cs.rtc.calendar(), /^2026-11-27T08:01:00/);
  p.write(0x70, 1, 0x0a);
  p.write(0x71, 1, 0x2f); // 2 Hz
  p.write(0x70, 1, 0x0b);
  p.write(0x71, 1, 0x42); // PIE
  const vectors: number[] = [];
  runTo(cs, clock, 2e9, () => {
    vectors.push(cs.interruptSource.acknowledge());
    p.write(0x70, 1, 0x0c);
    p.read(0x71, 1);
    p.write(0xa0, 1, 0x20);
    p.write(0x20, 1, 0x20);
  });
  assert.deepEqual(vectors, [0x38, 0x38, 0x38, 0x38]);
});

test("power-off through PM1a_CNT and each reset path reach the board callbacks", () => {
  const { events, p } = board();
  p.write(0x604, 2, 0x2000 | 1);
  p.write(0xcf9, 1, 0x06);
  p.write(0x92, 1, 0x01);
  p.write(0x92, 1, 0x01);
  p.write(0x64, 1, 0xfe);
  assert.deepEqual(events, [
    "off",
    "reset hard port 0xCF9",
    "reset soft port 0x92 fast reset",
    "reset soft port 0x92 fast reset",
    "reset hard i8042 pulse reset",
  ]);
});

test("COM1 output and input through the board; inspect lists every device", () => {
  const { cs, out, p } = board();
  for (const c of "ok") p.write(0x3f8, 1, c.charCodeAt(0));
  assert.equal(String.fromCharCode(...out), "ok");
  cs.com1.receive(new TextEncoder().encode("ls\n"));
  const got: number[] = [];
  while (p.read(0x3fd, 1) & 1) got.push(p.read(0x3f8, 1));
  assert.equal(String.fromCharCode(...got), "ls\n");
  const dump = cs.inspect();
  for (const name of [
    "master PIC",
    "slave PIC",
    "I/O APIC",
    "PIT counter 0",
    "RTC:",
    "COM1:",
    "COM2:",
    "ACPI PM",
    "i8042",
    "0xCF9",
    "port 0x92",
    "MMIO: 0xfec00000",
  ])
    assert.ok(dump.includes(name), `inspect shows ${name}`);
  assert.equal(p.nameAt(0x4d0), "ELCR");
  assert.equal(p.nameAt(0x64), "i8042 status/command");
});

test("hostile guest: random accesses to every port and the I/O APIC window never throw", () => {
  const { cs, clock } = board();
  cs.setApicSink({ deliver: () => undefined });
  let x = 0x1234567;
  const rand = () => (x = (x * 1103515245 + 12345) >>> 0);
  // Every port once with random values, then a long random run over the devices' ports.
  for (let port = 0; port < 0x10000; port++) {
    cs.ports.write(port, [1, 2, 4][port % 3]!, rand());
    cs.ports.read(port, 1);
  }
  const owned = [
    0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1, 0x40, 0x41, 0x42, 0x43, 0x61, 0x70, 0x71, 0x60, 0x64, 0x92, 0xcf9,
  ];
  for (let i = 0; i < 0x400; i++)
    owned.push(0x3f8 + (i & 7), 0x2f8 + (i & 7), 0x600 + (i & 0xf), 0x620 + (i & 7));
  for (let i = 0; i < 100_000; i++) {
    const port = owned[rand() % owned.length]!;
    const size = [1, 2, 4][rand() % 3]!;
    if (rand() & 1) cs.ports.write(port, size, rand());
    else cs.ports.read(port, size);
    if (i % 64 === 0) {
      cs.mmio.write(IOAPIC_BASE + (rand() & 0x4f), 4, rand());
      cs.mmio.read(IOAPIC_BASE + (rand() & 0x1f), 4);
      if (cs.interruptSource.hasInterrupt()) cs.interruptSource.acknowledge();
      clock.advance(rand() % 10_000_000);
      cs.tick(clock.nowNs());
      // The run loop's termination guarantee: once ticked, no deadline is left at or before now.
      assert.ok(cs.nextDeadlineNs() > clock.nowNs());
    }
  }
  assert.equal(typeof cs.inspect(), "string");
});

test("deadline-driven loop: every tick moves the next deadline forward with all timers armed", () => {
  const { cs, clock, p } = board();
  p.write(0x43, 1, 0x36); // PIT mode 3
  p.write(0x40, 1, 0x37);
  p.write(0x40, 1, 0x00);
  p.write(0x70, 1, 0x0a);
  p.write(0x71, 1, 0x23); // RTC 8192 Hz periodic: period 122070.3125 ns, not whole nanoseconds
  p.write(0x70, 1, 0x0b);
  p.write(0x71, 1, 0x72); // PIE, AIE, UIE
  p.write(0x602, 2, 1); // PM timer overflow
  p.write(0x3fa, 1, 0x01); // COM1 FIFO
  p.write(0x3f9, 1, 0x01);
  cs.com1.receive(new Uint8Array([1]));
  let ticks = 0;
  while (clock.nowNs() < 50e6) {
    const d = cs.nextDeadlineNs();
    assert.ok(d > clock.nowNs(), `deadline ${d} after ${clock.nowNs()}`);
    clock.set(d);
    cs.tick(d);
    while (cs.interruptSource.hasInterrupt()) {
      cs.interruptSource.acknowledge();
      p.write(0xa0, 1, 0x20);
      p.write(0x20, 1, 0x20);
    }
    p.write(0x70, 1, 0x0c);
    p.read(0x71, 1);
    ticks++;
  }
  assert.ok(ticks > 400 && ticks < 5000, `ticks ${ticks}`);
});

test("platform reset returns devices to power-on state; the RTC keeps time and NVRAM", () => {
  const { cs, p, clock } = board();
  p.write(0x70, 1, 0x40);
  p.write(0x71, 1, 0x77);
  p.write(0x70, 1, 0x0b);
  p.write(0x71, 1, 0x52); // PIE | UIE
  p.write(0x43, 1, 0x34);
  p.write(0x40, 1, 0x10);
  p.write(0x40, 1, 0x00);
  p.write(0x3fb, 1, 0x83);
  p.write(0x3f8, 1, 0x01); // divisor 1
  p.write(0x3fb, 1, 0x03);
  p.write(0x3f9, 1, 0x0f);
  p.write(0x604, 2, 0x0001 | (5 << 10));
  cs.mmio.write(IOAPIC_BASE, 4, 0x10);
  cs.mmio.write(IOAPIC_BASE + 0x10, 4, 0x30);
  p.write(0x92, 1, 0x02);
  clock.advance(2e9);
  cs.reset();
  assert.equal(p.read(0x21, 1), 0, "IMR clear");
  assert.equal(cs.pic.master.initStep, 0);
  assert.equal(cs.pic.master.vectorBase, 0);
  p.write(0x70, 1, 0x40);
  assert.equal(p.read(0x71, 1), 0x77, "NVRAM survives");
  p.write(0x70, 1, 0x0b);
  assert.equal(p.read(0x71, 1), 0x02, "PIE and UIE cleared by RESET");
  assert.match(cs.rtc.calendar(), /^2026-11-27T08:01:02/, "time kept running");
  assert.equal(p.read(0x3f9, 1), 0, "UART IER reset");
  assert.equal(p.read(0x3fb, 1), 0, "UART LCR reset");
  assert.equal(cs.com1.divisorLatch, 1, "divisor kept");
  assert.equal(p.read(0x604, 2), 1, "SCI_EN only");
  cs.mmio.write(IOAPIC_BASE, 4, 0x10);
  assert.equal(cs.mmio.read(IOAPIC_BASE + 0x10, 4), 0x10000, "I/O APIC entry masked");
  assert.equal(p.read(0x92, 1), 0);
  assert.equal(cs.nextDeadlineNs(), Number.POSITIVE_INFINITY, "no timer armed after reset");
});

test("after years of uptime (time beyond 2^53 ns) the deadline loop still makes progress", () => {
  const clock = new ManualClock(2 ** 53 + 12345);
  const cs = new Chipset({
    clock,
    hostSeconds: () => 0,
    com1: () => undefined,
    onPowerOff: () => undefined,
    onReset: () => undefined,
  });
  const p = cs.ports;
  p.write(0x43, 1, 0x34);
  p.write(0x40, 1, 0x0b);
  p.write(0x40, 1, 0x00); // 11 PIT clocks: 9.2 µs
  p.write(0x70, 1, 0x0a);
  p.write(0x71, 1, 0x23);
  p.write(0x70, 1, 0x0b);
  p.write(0x71, 1, 0x42);
  let last = clock.nowNs();
  for (let i = 0; i < 2000; i++) {
    const d = cs.nextDeadlineNs();
    assert.ok(d > last, `deadline ${d} not after ${last}`);
    clock.set(d);
    cs.tick(clock.nowNs());
    last = clock.nowNs();
  }
  assert.ok(last - (2 ** 53 + 12345) > 1e6, "simulated more than a millisecond");
});
