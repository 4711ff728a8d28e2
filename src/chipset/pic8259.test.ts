import { test } from "node:test";
import assert from "node:assert/strict";
import { PicPair } from "./pic8259.js";
import { PortBus } from "./port-bus.js";

/** The PC pair on a bus, initialised the way Linux's init_8259A does (vectors 0x30/0x38, ICW4 8086 mode). */
function pair(opts: { autoEoi?: boolean } = {}): { pic: PicPair; bus: PortBus } {
  const pic = new PicPair();
  const bus = new PortBus();
  bus.map(0x20, 2, pic.masterPorts, "master");
  bus.map(0xa0, 2, pic.slavePorts, "slave");
  bus.map(0x4d0, 2, pic.elcrPorts, "elcr");
  const icw4 = opts.autoEoi ? 0x03 : 0x01;
  bus.write(0x21, 1, 0xff);
  bus.write(0xa1, 1, 0xff);
  bus.write(0x20, 1, 0x11); // ICW1: edge, cascade, ICW4 needed
  bus.write(0x21, 1, 0x30); // ICW2: vectors 0x30-0x37
  bus.write(0x21, 1, 0x04); // ICW3: slave on IR2
  bus.write(0x21, 1, icw4);
  bus.write(0xa0, 1, 0x11);
  bus.write(0xa1, 1, 0x38);
  bus.write(0xa1, 1, 0x02); // slave identity 2
  bus.write(0xa1, 1, icw4);
  bus.write(0x21, 1, 0x00);
  bus.write(0xa1, 1, 0x00);
  return { pic, bus };
}

test("init sequence: ICW2 vectors, IMR cleared by ICW1, OCW1 mask reads back", () => {
  const { pic, bus } = pair();
  assert.equal(bus.read(0x21, 1), 0);
  bus.write(0x21, 1, 0xfa);
  assert.equal(bus.read(0x21, 1), 0xfa);
  bus.write(0x21, 1, 0);
  assert.equal(pic.hasInterrupt(), false);
  pic.setInput(1, true);
  assert.equal(pic.hasInterrupt(), true);
  assert.equal(pic.acknowledge(), 0x31);
  bus.write(0x20, 1, 0x20);
  pic.setInput(9, true);
  assert.equal(pic.acknowledge(), 0x39, "slave IR1 = vector 0x39");
});

test("fully nested priority: lower IR first, higher pre-empts, lower waits for EOI", () => {
  const { pic, bus } = pair();
  pic.setInput(4, true);
  pic.setInput(3, true);
  assert.equal(pic.acknowledge(), 0x33);
  assert.equal(pic.hasInterrupt(), false, "IR4 waits: IR3 is in service");
  pic.setInput(1, true);
  assert.equal(pic.hasInterrupt(), true, "IR1 outranks the IR3 in service");
  assert.equal(pic.acknowledge(), 0x31);
  bus.write(0x20, 1, 0x0b); // OCW3: read ISR
  assert.equal(bus.read(0x20, 1), 0x0a);
  bus.write(0x20, 1, 0x20); // non-specific EOI retires IR1 (highest in service)
  assert.equal(bus.read(0x20, 1), 0x08);
  assert.equal(pic.hasInterrupt(), false);
  bus.write(0x20, 1, 0x63); // specific EOI for IR3
  assert.equal(pic.acknowledge(), 0x34);
  bus.write(0x20, 1, 0x0a); // OCW3: read IRR
  assert.equal(bus.read(0x20, 1), 0, "INTA cleared the edge-latched requests although the lines stay high");
});

test("edge requests latch; level requests follow the line (ELCR) and re-raise after EOI", () => {
  const { pic, bus } = pair();
  pic.setInput(5, true);
  pic.setInput(5, false);
  assert.equal(pic.hasInterrupt(), true, "the edge was latched");
  assert.equal(pic.acknowledge(), 0x35);
  bus.write(0x20, 1, 0x20);
  bus.write(0x4d1, 1, 0x02); // slave IR1 = IRQ9 level
  assert.equal(bus.read(0x4d1, 1), 0x02);
  bus.write(0x4d0, 1, 0xff);
  assert.equal(bus.read(0x4d0, 1), 0xf8, "IRQ0-2 cannot be level");
  bus.write(0x4d0, 2, 0xffff);
  assert.equal(bus.read(0x4d0, 2), 0xdef8, "a word access reaches both ELCRs");
  bus.write(0x4d0, 2, 0x02f8);
  pic.setInput(9, true);
  assert.equal(pic.acknowledge(), 0x39);
  bus.write(0xa0, 1, 0x20);
  bus.write(0x20, 1, 0x20);
  assert.equal(pic.hasInterrupt(), true, "still asserted: interrupts again after EOI");
  pic.setInput(9, false);
  // Master IR2 is edge-triggered and latched the slave's INT; with the request gone the slave answers the
  // INTA with its spurious IR7 (IRQ15), as real hardware does.
  assert.equal(pic.acknowledge(), 0x3f);
  bus.write(0x20, 1, 0x20);
  assert.equal(pic.hasInterrupt(), false);
});

test("cascade: slave interrupt comes through master IR2, needs EOI on both", () => {
  const { pic, bus } = pair();
  pic.setInput(12, true);
  assert.equal(pic.acknowledge(), 0x3c);
  bus.write(0x20, 1, 0x0b);
  assert.equal(bus.read(0x20, 1), 0x04, "master has IR2 in service");
  bus.write(0xa0, 1, 0x0b);
  assert.equal(bus.read(0xa0, 1), 0x10);
  pic.setInput(8, true);
  assert.equal(pic.hasInterrupt(), false, "master IR2 in service blocks the slave (fully nested)");
  bus.write(0xa0, 1, 0x20);
  bus.write(0x20, 1, 0x20);
  assert.equal(pic.acknowledge(), 0x38);
});

test("spurious IR7 and IR15: the request vanished before INTA, ISR stays clear", () => {
  const { pic, bus } = pair();
  bus.write(0x4d0, 1, 0x08); // IR3 level
  pic.setInput(3, true);
  assert.equal(pic.hasInterrupt(), true);
  pic.setInput(3, false);
  assert.equal(pic.acknowledge(), 0x37);
  bus.write(0x20, 1, 0x0b);
  assert.equal(bus.read(0x20, 1), 0, "spurious vector sets no ISR bit");
  bus.write(0x4d1, 1, 0x08); // IRQ11 level
  pic.setInput(11, true);
  pic.setInput(11, false);
  // The slave's request went away after the master saw IR2; master IR2 is an edge latch.
  assert.equal(pic.acknowledge(), 0x3f, "slave spurious = base + 7");
});

test("auto-EOI, rotation on EOI, set priority, special mask mode, poll mode", () => {
  const a = pair({ autoEoi: true });
  a.pic.setInput(3, true);
  assert.equal(a.pic.acknowledge(), 0x33);
  a.bus.write(0x20, 1, 0x0b);
  assert.equal(a.bus.read(0x20, 1), 0, "auto-EOI leaves nothing in service");

  const { pic, bus } = pair();
  bus.write(0x20, 1, 0xc4); // set priority: IR4 lowest, so IR5 is highest
  pic.setInput(3, true);
  pic.setInput(6, true);
  assert.equal(pic.acknowledge(), 0x36);
  bus.write(0x20, 1, 0xa0); // rotate on non-specific EOI: IR6 becomes lowest
  assert.equal(pic.acknowledge(), 0x33);
  bus.write(0x20, 1, 0x20);

  // Special mask mode: masking the in-service IR lets lower ones through.
  pic.setInput(0, true);
  bus.write(0x20, 1, 0xc7); // back to IR0 highest
  assert.equal(pic.acknowledge(), 0x30);
  pic.setInput(5, true);
  assert.equal(pic.hasInterrupt(), false);
  bus.write(0x21, 1, 0x01);
  bus.write(0x20, 1, 0x68); // OCW3: set special mask
  assert.equal(pic.hasInterrupt(), true);
  assert.equal(pic.acknowledge(), 0x35);
  bus.write(0x20, 1, 0x48); // reset special mask
  bus.write(0x20, 1, 0x65);
  bus.write(0x20, 1, 0x60);
  bus.write(0x21, 1, 0x00);

  pic.setInput(7, false);
  pic.setInput(7, true);
  bus.write(0x20, 1, 0x0c); // poll
  assert.equal(bus.read(0x20, 1), 0x87, "poll word: bit 7 + IR number");
  bus.write(0x20, 1, 0x0c);
  assert.equal(bus.read(0x20, 1), 0, "nothing else pending (IR7 now in service)");
});

test("masked requests wait in IRR and fire when unmasked", () => {
  const { pic, bus } = pair();
  bus.write(0x21, 1, 0x10);
  pic.setInput(4, true);
  assert.equal(pic.hasInterrupt(), false);
  bus.write(0x20, 1, 0x0a);
  assert.equal(bus.read(0x20, 1), 0x10);
  bus.write(0x21, 1, 0);
  assert.equal(pic.acknowledge(), 0x34);
  assert.match(pic.inspect(), /master PIC: base=0x30 .*isr=10/);
});
