import { test } from "node:test";
import assert from "node:assert/strict";
import type { ApicMessage } from "../contracts/platform.js";
import { IoApic, IOAPIC_BASE, IOAPIC_SIZE } from "./ioapic.js";
import { MmioBus, MmioBusError } from "./mmio-bus.js";

function setup() {
  const io = new IoApic();
  const seen: ApicMessage[] = [];
  io.sink = { deliver: (m) => seen.push({ ...m }) };
  const bus = new MmioBus();
  bus.map(IOAPIC_BASE, IOAPIC_SIZE, io, "I/O APIC");
  const rd = (reg: number) => {
    bus.write(IOAPIC_BASE, 4, reg);
    return bus.read(IOAPIC_BASE + 0x10, 4) >>> 0;
  };
  const wr = (reg: number, v: number) => {
    bus.write(IOAPIC_BASE, 4, reg);
    bus.write(IOAPIC_BASE + 0x10, 4, v);
  };
  return { io, seen, bus, rd, wr };
}

test("ID, version 0x20 with 24 entries, arbitration; entries reset masked", () => {
  const { rd, wr } = setup();
  assert.equal(rd(1), 0x00170020);
  wr(0, 0x0a000000);
  assert.equal(rd(0), 0x0a000000);
  assert.equal(rd(2), 0x0a000000);
  for (let pin = 0; pin < 24; pin++) assert.equal(rd(0x10 + 2 * pin), 0x10000);
  assert.equal(rd(0x40), 0, "beyond the table");
});

test("edge pin: one message per rising edge; masked edges are lost", () => {
  const { io, seen, wr, rd } = setup();
  wr(0x10 + 2 * 2, 0x30); // GSI2 (the PIT): vector 0x30, fixed, physical, edge, unmasked
  wr(0x11 + 2 * 2, 0x01000000); // to APIC 1
  io.setInput(2, true);
  io.setInput(2, true);
  io.setInput(2, false);
  io.setInput(2, true);
  assert.equal(seen.length, 2);
  assert.deepEqual(seen[0], {
    destination: 1,
    logicalDestination: false,
    vector: 0x30,
    deliveryMode: 0,
    levelTriggered: false,
    level: true,
    pin: 2,
  });
  wr(0x14, 0x10030);
  io.setInput(2, false);
  io.setInput(2, true);
  wr(0x14, 0x30);
  assert.equal(seen.length, 2, "masked edge lost");
  assert.equal(rd(0x14) & 0x4000, 0, "no remote IRR for edge");
});

test("level pin: remote IRR set on delivery, EOI clears it and re-delivers while asserted", () => {
  const { io, seen, wr, rd, bus } = setup();
  wr(0x10 + 2 * 9, 0x8000 | 0x2000 | 0x41 | (1 << 11)); // level, active low, vector 0x41, logical
  wr(0x11 + 2 * 9, 0xff000000);
  io.setInput(9, true);
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.levelTriggered, true);
  assert.equal(seen[0]!.logicalDestination, true);
  assert.equal(seen[0]!.destination, 0xff);
  assert.equal(rd(0x22) & 0x4000, 0x4000, "remote IRR");
  wr(0x22, 0x8000 | 0x41); // software cannot clear remote IRR by writing
  assert.equal(rd(0x22) & 0x4000, 0x4000);
  io.eoi(0x41);
  assert.equal(seen.length, 2, "still asserted: delivered again");
  io.setInput(9, false);
  io.eoi(0x41);
  assert.equal(rd(0x22) & 0x4000, 0);
  assert.equal(seen.length, 2);
  io.setInput(9, true);
  assert.equal(seen.length, 3);
  io.setInput(9, false);
  bus.write(IOAPIC_BASE + 0x40, 4, 0x41); // the EOI register of version-0x20 parts
  assert.equal(rd(0x22) & 0x4000, 0);
  // Unmasking an asserted level pin delivers.
  wr(0x22, 0x18000 | 0x41);
  io.setInput(9, true);
  assert.equal(seen.length, 3);
  wr(0x22, 0x8000 | 0x41);
  assert.equal(seen.length, 4);
  assert.match(io.inspect(), /pin 9: vec=0x41 mode=0 level remote-irr/);
});

test("no APIC bus attached: nothing is delivered and remote IRR stays clear", () => {
  const { io, wr, rd } = setup();
  io.sink = null;
  wr(0x20, 0x8000 | 0x50);
  io.setInput(8, true);
  assert.equal(rd(0x20) & 0x4000, 0);
  assert.equal(io.delivered, 0);
});

test("MMIO bus: sub-dword and qword accesses, unclaimed reads, overlap refused", () => {
  const { bus } = setup();
  bus.write(IOAPIC_BASE, 1, 0x01);
  assert.equal(bus.read(IOAPIC_BASE + 0x10, 2), 0x0020);
  assert.equal(bus.read(IOAPIC_BASE + 0x12, 1), 0x17);
  const q = bus.readQword(IOAPIC_BASE);
  assert.deepEqual([q.lo, q.hi], [1, 0]);
  bus.write(IOAPIC_BASE, 8, 0x10, 0);
  assert.equal(bus.read(IOAPIC_BASE, 4), 0x10);
  assert.equal(bus.read(0xfed00000, 4), 0xffffffff);
  assert.equal(bus.read(0xfed00000, 1), 0xff);
  bus.write(0xfed00000, 4, 1);
  assert.throws(
    () => bus.map(IOAPIC_BASE + 0x800, 0x1000, { readMmio: () => 0, writeMmio: () => undefined }, "x"),
    MmioBusError,
  );
  assert.equal(bus.claims(IOAPIC_BASE + 0xfff), true);
  assert.equal(bus.nameAt(IOAPIC_BASE), "I/O APIC");
});

test("hostile register traffic never throws", () => {
  const { io, bus } = setup();
  let x = 3;
  for (let i = 0; i < 20000; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    const off = x & 0xff;
    const size = [1, 2, 4, 8][(x >>> 8) & 3]!;
    if (x & 0x10000) bus.write(IOAPIC_BASE + off, size, x, x >>> 3);
    else if (size === 8) bus.readQword(IOAPIC_BASE + off);
    else bus.read(IOAPIC_BASE + off, size);
    io.setInput((x >>> 20) % 30, (x & 0x800000) !== 0);
    if (i % 5 === 0) io.eoi(x & 0xff);
  }
});
