import { test } from "node:test";
import assert from "node:assert/strict";
import { Uart16550 } from "./uart16550.js";
import { PortBus, PortBusError } from "./port-bus.js";
import { DebugExit, qemuExitStatus } from "./debug-exit.js";

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

test("receive overrun sets LSR.OE, cleared by reading LSR; loopback feeds the receiver and MSR", () => {
  const { u, out } = uart();
  u.receive(new Uint8Array([1, 2]));
  assert.equal(u.readPort(5, 1) & 0x02, 0x02);
  assert.equal(u.readPort(5, 1) & 0x02, 0);
  assert.equal(u.readPort(0, 1), 2, "16450 mode keeps the newest byte");
  u.writePort(4, 1, 0x10 | 0x03); // loopback, DTR, RTS
  u.writePort(0, 1, 0x99);
  assert.deepEqual(out, []);
  assert.equal(u.readPort(0, 1), 0x99);
  assert.equal(u.readPort(6, 1) & 0xf0, 0x30, "CTS and DSR from RTS and DTR");
  u.writePort(4, 1, 0);
  assert.equal(u.readPort(6, 1), 0xb0);
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
