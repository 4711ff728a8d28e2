import { test } from "node:test";
import assert from "node:assert/strict";
import { Uart16550 } from "./uart16550.js";
import { PortBus, PortBusError } from "./port-bus.js";
import { DebugExit, qemuExitStatus } from "./debug-exit.js";
import { ManualClock } from "./clock.js";

function uart(): { u: Uart16550; out: number[]; irq: boolean[] } {
  const out: number[] = [];
  const irq: boolean[] = [];
  const u = new Uart16550({ sink: (b) => out.push(b), irq: (l) => irq.push(l) });
  return { u, out, irq };
}

test("polled transmit: THR bytes reach the sink and LSR always shows THRE and TEMT", () => {
  const { u, out } = uart();
  assert.equal(u.readPort(5, 1) & 0x60, 0x60);
  for (const c of "hi\n") u.writePort(0, 1, c.charCodeAt(0));
  assert.deepEqual(out, [0x68, 0x69, 0x0a]);
  assert.equal(u.readPort(5, 1) & 0x61, 0x60, "no data ready");
});

test("DLAB switches offsets 0 and 1 to the divisor latch; SCR and LCR read back", () => {
  const { u, out } = uart();
  u.writePort(3, 1, 0x80);
  u.writePort(0, 1, 0x01);
  u.writePort(1, 1, 0x00);
  assert.equal(u.divisorLatch, 1);
  assert.equal(u.readPort(0, 1), 1);
  u.writePort(3, 1, 0x03);
  assert.equal(u.readPort(3, 1), 0x03);
  assert.equal(out.length, 0, "divisor writes are not transmitted");
  u.writePort(1, 1, 0xff);
  assert.equal(u.readPort(1, 1), 0x0f, "IER keeps its four defined bits");
  u.writePort(7, 1, 0x5a);
  assert.equal(u.readPort(7, 1), 0x5a);
});

test("IIR reports FIFO state and interrupt priorities; OUT2 gates the IRQ line", () => {
  const { u, irq } = uart();
  assert.equal(u.readPort(2, 1), 0x01, "no interrupt, FIFO off");
  u.writePort(2, 1, 0x07);
  assert.equal(u.readPort(2, 1), 0xc1, "FIFO enabled bits");
  u.writePort(4, 1, 0x08); // OUT2
  u.writePort(1, 1, 0x02); // THRE interrupt
  assert.deepEqual(irq, [true]);
  assert.equal(u.readPort(2, 1) & 0x0f, 0x02, "THRE pending");
  assert.equal(u.readPort(2, 1) & 0x0f, 0x01, "reading IIR cleared THRE");
  assert.deepEqual(irq, [true, false]);
  u.writePort(1, 1, 0x03); // + received data
  u.receive(new Uint8Array([0x41, 0x42]));
  assert.equal(u.readPort(2, 1) & 0x0f, 0x04, "received data outranks THRE");
  assert.equal(u.readPort(5, 1) & 1, 1);
  assert.equal(u.readPort(0, 1), 0x41);
  assert.equal(u.readPort(0, 1), 0x42);
  assert.equal(u.readPort(5, 1) & 1, 0);
});

test("host input is never lost: it waits in the host queue while the receiver is full", () => {
  const { u } = uart();
  u.receive(new Uint8Array([1, 2, 3]));
  assert.equal(u.readPort(5, 1) & 0x03, 0x01, "data ready, no overrun");
  assert.equal(u.pendingHostBytes, 2, "16450 mode holds one byte; two wait");
  assert.deepEqual([u.readPort(0, 1), u.readPort(0, 1), u.readPort(0, 1)], [1, 2, 3]);
  assert.equal(u.readPort(5, 1) & 1, 0);
  u.writePort(2, 1, 0x01); // FIFO on
  const big = new Uint8Array(100).map((_, i) => i);
  u.receive(big);
  assert.equal(u.pendingHostBytes, 100 - 16);
  const got: number[] = [];
  while (u.readPort(5, 1) & 1) got.push(u.readPort(0, 1));
  assert.deepEqual(got, [...big]);
  assert.equal(u.readPort(5, 1) & 0x02, 0, "no overrun");
});

test("loopback overrun sets LSR.OE (cleared by reading LSR); loopback maps MCR to MSR", () => {
  const { u, out } = uart();
  u.writePort(4, 1, 0x10 | 0x03); // loopback, DTR, RTS
  u.writePort(0, 1, 0x98);
  u.writePort(0, 1, 0x99);
  assert.deepEqual(out, []);
  assert.equal(u.readPort(5, 1) & 0x02, 0x02);
  assert.equal(u.readPort(5, 1) & 0x02, 0);
  assert.equal(u.readPort(0, 1), 0x99, "16450 mode keeps the newest byte");
  assert.equal(u.readPort(6, 1) & 0xf0, 0x30, "CTS and DSR from RTS and DTR");
  u.writePort(4, 1, 0);
  assert.equal(u.readPort(6, 1), 0xb0 | 0x08, "host lines again: DCD rose, so DDCD");
  assert.equal(u.readPort(6, 1), 0xb0, "reading MSR cleared the deltas");
});

test("Linux 8250 autoconfig: scratch test, loopback test (MSR 0x90), FIFO detection (IIR 0xC0)", () => {
  const { u } = uart();
  const scratch = u.readPort(1, 1);
  u.writePort(1, 1, 0);
  const scratch2 = u.readPort(1, 1) & 0x0f;
  u.writePort(1, 1, 0x0f);
  const scratch3 = u.readPort(1, 1) & 0x0f;
  u.writePort(1, 1, scratch);
  assert.deepEqual([scratch2, scratch3], [0, 0x0f]);
  const saveMcr = u.readPort(4, 1);
  u.writePort(4, 1, 0x10 | 0x0a); // LOOP | OUT2 | RTS
  assert.equal(u.readPort(6, 1) & 0xf0, 0x90);
  u.writePort(4, 1, saveMcr);
  u.writePort(2, 1, 0x01);
  assert.equal(u.readPort(2, 1) >> 6, 3, "16550A");
  u.writePort(3, 1, 0xbf); // LCR conf mode B: EFR probe reads IIR on a 16550A
  assert.notEqual(u.readPort(2, 1), 0, "no EFR: not a 16650");
  u.writePort(3, 1, 0x03);
  u.writePort(7, 1, 0xa5);
  assert.equal(u.readPort(7, 1), 0xa5);
});

test("FIFO trigger levels, character timeout (IIR 0x0C) after four character times", () => {
  const clock = new ManualClock(0);
  const irq: boolean[] = [];
  const u = new Uart16550({ sink: () => undefined, irq: (l) => irq.push(l), clock });
  u.writePort(3, 1, 0x80);
  u.writePort(0, 1, 1); // 115200 baud
  u.writePort(1, 1, 0);
  u.writePort(3, 1, 0x03); // 8N1: 10 bits per character
  u.writePort(2, 1, 0x81); // FIFO on, trigger 8
  u.writePort(4, 1, 0x08); // OUT2
  u.writePort(1, 1, 0x01); // RDA interrupts
  u.receive(new Uint8Array(7));
  assert.equal(u.readPort(2, 1) & 0x0f, 0x01, "below the trigger level, no timeout yet");
  const charNs = (10 * 1e9) / 115200;
  assert.equal(u.nextDeadlineNs(), Math.ceil(4 * charNs), "whole nanoseconds");
  clock.set(4 * charNs);
  u.tick(clock.nowNs());
  assert.deepEqual(irq, [true]);
  assert.equal(u.readPort(2, 1) & 0x0f, 0x0c, "character timeout");
  u.receive(new Uint8Array(1));
  assert.equal(u.readPort(2, 1) & 0x0f, 0x04, "eight bytes reach trigger level 8");
  for (let i = 0; i < 8; i++) u.readPort(0, 1);
  assert.equal(u.readPort(2, 1) & 0x0f, 0x01);
  assert.deepEqual(irq, [true, false]);
  u.writePort(2, 1, 0xc3); // trigger 14, clear RX FIFO
  u.receive(new Uint8Array(14));
  assert.equal(u.readPort(2, 1) & 0x0f, 0x04);
  u.writePort(2, 1, 0xc3);
  assert.equal(u.readPort(5, 1) & 1, 0, "FCR bit 1 cleared the receiver FIFO");
});

test("IIR priorities: line status > received data > THRE > modem status", () => {
  const { u, irq } = uart();
  u.writePort(4, 1, 0x08);
  u.writePort(1, 1, 0x0f);
  u.setModemLines({ cts: false, dsr: true, ri: false, dcd: true });
  u.receive(new Uint8Array([7]));
  u.sendBreak();
  assert.equal(u.readPort(2, 1) & 0x0f, 0x06, "line status (break)");
  assert.equal(u.readPort(5, 1) & 0x10, 0x10);
  assert.equal(u.readPort(2, 1) & 0x0f, 0x04, "received data");
  u.readPort(0, 1);
  assert.equal(u.readPort(2, 1) & 0x0f, 0x02, "THRE (cleared by this read)");
  assert.equal(u.readPort(2, 1) & 0x0f, 0x00, "modem status");
  assert.equal(u.readPort(6, 1), 0xa0 | 0x01, "DSR, DCD and the CTS delta");
  assert.equal(u.readPort(2, 1) & 0x0f, 0x01);
  assert.equal(irq.at(-1), false);
  u.writePort(0, 1, 0x41);
  assert.equal(u.readPort(2, 1) & 0x0f, 0x02, "THRE again after a transmit");
  assert.match(u.inspect("COM1"), /COM1: IER=0f/);
});

test("hostile writes to every UART register never throw", () => {
  const clock = new ManualClock(0);
  const u = new Uart16550({ sink: () => undefined, irq: () => undefined, clock });
  let x = 99;
  for (let i = 0; i < 20000; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    u.writePort(x & 7, 1, (x >>> 8) & 0xff);
    u.readPort((x >>> 4) & 7, 1);
    if (i % 11 === 0) u.receive(new Uint8Array([x & 0xff, 1, 2]));
    clock.advance(x % 100_000);
    u.nextDeadlineNs();
    u.tick(clock.nowNs());
  }
});

test("the port bus routes by range, floats unclaimed reads to all ones and refuses overlaps", () => {
  const bus = new PortBus();
  const { u, out } = uart();
  bus.map(0x3f8, 8, u, "COM1");
  bus.write(0x3f8, 1, 0x41);
  assert.deepEqual(out, [0x41]);
  assert.equal(bus.read(0x3fd, 1) & 0x60, 0x60);
  assert.equal(bus.read(0x80, 1), 0xff);
  assert.equal(bus.read(0x80, 2), 0xffff);
  assert.equal(bus.read(0x80, 4), 0xffffffff);
  bus.write(0x80, 4, 0x12345678); // dropped
  assert.throws(() => bus.map(0x3fc, 2, u, "other"), PortBusError);
  assert.throws(() => bus.map(0xfffe, 4, u, "wraps"), PortBusError);
  assert.equal(bus.nameAt(0x3ff), "COM1");
});

test("isa-debug-exit reports the written value; QEMU's status is (v << 1) | 1", () => {
  const seen: number[] = [];
  const d = new DebugExit((v) => seen.push(v));
  d.writePort(0, 4, 0x10);
  assert.deepEqual(seen, [0x10]);
  assert.equal(qemuExitStatus(0), 1);
  assert.equal(qemuExitStatus(0x10), 0x21);
  assert.equal(qemuExitStatus(0x80), 1, "8-bit truncation like a process exit status");
});
