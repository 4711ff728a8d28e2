// Integration: the chipset's I/O APIC delivers through the hypervisor's APIC bus (structurally its
// ApicMessageSink), and a local APIC's EOI of a level-triggered vector reaches `apicEoi` so the pin's
// remote IRR clears and a still-asserted line is delivered again.
// Spec: Intel 82093AA datasheet (remote IRR, level mode); Intel SDM Vol. 3A 11.8.4-11.8.5 (EOI broadcast).
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ApicMessageSink } from "../../src/contracts/platform.js";
import { IoApic } from "../../src/chipset/ioapic.js";
import { ApicBus, LocalApic } from "../../src/hv/local-apic.js";

test("I/O APIC -> APIC bus -> local APIC; level-triggered EOI clears remote IRR and re-delivers", () => {
  const ioapic = new IoApic();
  const bus = new ApicBus();
  const clock = { nowNs: () => 0 };
  const apics = [0, 1].map(
    (id) => new LocalApic({ apicId: id, clock, bus, onEoi: (vector) => ioapic.eoi(vector) }),
  );
  for (const a of apics) a.writeMmio(0xf0, 4, 0x1ff);
  const sink: ApicMessageSink = bus;
  ioapic.sink = sink;
  // Pin 9 (SCI): level, vector 0x59, physical destination APIC 1; pin 4: edge, vector 0x34, APIC 0.
  ioapic.writeRegister(0x10 + 2 * 9 + 1, 1 << 24);
  ioapic.writeRegister(0x10 + 2 * 9, 0x8000 | 0x59);
  ioapic.writeRegister(0x10 + 2 * 4, 0x34);
  ioapic.setInput(4, true);
  assert.equal(apics[0]!.acknowledge(), 0x34);
  ioapic.setInput(9, true);
  const a1 = apics[1]!;
  assert.equal(a1.hasInterrupt(), true);
  assert.equal(a1.acknowledge(), 0x59);
  assert.notEqual(ioapic.readRegister(0x10 + 2 * 9) & 0x4000, 0, "remote IRR set");
  a1.writeMmio(0xb0, 4, 0); // EOI while the line is still asserted
  assert.equal(a1.acknowledge(), 0x59, "delivered again after the EOI broadcast");
  ioapic.setInput(9, false);
  a1.writeMmio(0xb0, 4, 0);
  assert.equal(ioapic.readRegister(0x10 + 2 * 9) & 0x4000, 0, "remote IRR clear");
  assert.equal(a1.hasInterrupt(), false);
  apics[0]!.writeMmio(0xb0, 4, 0); // edge EOI: not broadcast
  assert.equal(ioapic.delivered, 3);
});
