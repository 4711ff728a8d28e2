// Unit tests of the local APIC and the APIC bus against Intel SDM Vol. 3A ch. 11 (register reset values,
// priorities, EOI, ESR, LVT, timer modes and divisors, TSC deadline, x2APIC MSR rules, destinations).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ApicBus,
  LocalApic,
  MSR_IA32_APIC_BASE,
  MSR_IA32_TSC_DEADLINE,
  type LocalApicOptions,
} from "./local-apic.js";

class Clock {
  ns = 0;
  nowNs(): number {
    return this.ns;
  }
}

function make(extra: Partial<LocalApicOptions> = {}) {
  const clock = new Clock();
  const eois: number[] = [];
  let nmis = 0;
  const apic = new LocalApic({
    clock,
    onEoi: (v) => eois.push(v),
    raiseNmi: () => nmis++,
    ...extra,
  });
  const rd = (off: number) => apic.readMmio(off, 4) >>> 0;
  const wr = (off: number, v: number) => apic.writeMmio(off, 4, v);
  const enable = () => wr(0xf0, 0x1ff);
  return { apic, clock, eois, nmis: () => nmis, rd, wr, enable };
}

function msr(apic: LocalApic, n: number): [number, number] {
  const r = apic.readMsr(n);
  assert.ok(r.ok, `rdmsr ${n.toString(16)} should succeed`);
  return [r.lo, r.hi];
}

function gp(r: { ok: boolean }, what: string): void {
  assert.equal(r.ok, false, `${what} should #GP`);
}

function toX2apic(apic: LocalApic): void {
  assert.ok(apic.writeMsr(MSR_IA32_APIC_BASE, 0xfee00000 | 0x900 | 0x400, 0).ok);
}

test("power-up state: base MSR, ID, version (max LVT 5), SVR, DFR, masked LVTs", () => {
  const { apic, rd } = make({ apicId: 3, bsp: true });
  assert.deepEqual(msr(apic, MSR_IA32_APIC_BASE), [0xfee00900, 0]);
  assert.equal(rd(0x20), 3 << 24);
  assert.equal(rd(0x30), 0x00050014);
  assert.equal(rd(0xf0), 0xff);
  assert.equal(rd(0xe0), 0xffffffff);
  assert.equal(rd(0xd0), 0);
  for (const off of [0x320, 0x330, 0x340, 0x350, 0x360, 0x370])
    assert.equal(rd(off), 0x10000, off.toString(16));
  assert.equal(rd(0x2f0), 0, "no CMCI LVT with max LVT 5");
  const ap = make({ apicId: 1 }).apic;
  assert.deepEqual(msr(ap, MSR_IA32_APIC_BASE), [0xfee00800, 0], "application processor: BSP clear");
  const c = make({ cmci: true });
  assert.equal(c.rd(0x30), 0x00060014);
  assert.equal(c.rd(0x2f0), 0x10000);
  assert.ok(apic.claimsMmio(0xfee00000) && apic.claimsMmio(0xfee00ffc) && !apic.claimsMmio(0xfee01000));
});

test("software disable forces LVT masks and drops fixed interrupts; enable accepts them", () => {
  const { apic, rd, wr, enable } = make();
  wr(0x350, 0x700); // LINT0 ExtINT, unmasked
  assert.equal(rd(0x350), 0x10700, "mask stays while SVR.8 = 0");
  apic.acceptFixed(0x40, false);
  assert.equal(apic.hasInterrupt(), false);
  assert.equal(rd(0x200 + 0x20), 0, "IRR untouched while disabled");
  enable();
  wr(0x350, 0x700);
  assert.equal(rd(0x350), 0x700);
  apic.acceptFixed(0x40, false);
  assert.equal(rd(0x220), 1, "IRR bit 0x40 is bit 0 of IRR word 2");
  wr(0xf0, 0xff);
  assert.equal(rd(0x350), 0x10700, "clearing SVR.8 masks every LVT");
});

test("priorities: highest IRR above PPR, TPR blocks a class, ISR nesting, EOI order, spurious", () => {
  const { apic, rd, wr, enable } = make();
  enable();
  wr(0xf0, 0x1ef); // spurious vector 0xef
  apic.acceptFixed(0x31, false);
  apic.acceptFixed(0x52, false);
  apic.acceptFixed(0x45, false);
  assert.equal(rd(0x90), 0x50, "APR = IRRV class when above TPR");
  wr(0x80, 0x5f);
  assert.equal(rd(0x80), 0x5f);
  assert.equal(rd(0xa0), 0x5f, "PPR = TPR when no ISR");
  assert.equal(apic.hasInterrupt(), false, "0x52 is not above class 5");
  wr(0x80, 0x30);
  assert.equal(apic.hasInterrupt(), true);
  assert.equal(apic.acknowledge(), 0x52);
  assert.equal(rd(0x100 + 0x20), 1 << 18, "ISR bit 0x52");
  assert.equal(rd(0xa0), 0x50, "PPR = ISRV class");
  assert.equal(apic.hasInterrupt(), false, "0x45 is below the in-service class");
  apic.acceptFixed(0x61, false);
  assert.equal(apic.acknowledge(), 0x61, "a higher class nests");
  wr(0xb0, 0);
  assert.equal(rd(0x130), 0, "EOI retired 0x61 first");
  assert.equal(rd(0x120), 1 << 18);
  wr(0xb0, 0);
  assert.equal(apic.acknowledge(), 0x45);
  wr(0xb0, 0);
  wr(0x80, 0x30);
  assert.equal(apic.hasInterrupt(), false, "0x31 is in class 3 = TPR class");
  assert.equal(
    apic.acknowledge(),
    0xef,
    "an acknowledge with nothing deliverable returns the spurious vector",
  );
  assert.equal(rd(0x100 + 0x10), 0, "a spurious vector does not set ISR");
  wr(0x80, 0);
  assert.equal(apic.acknowledge(), 0x31);
});

test("TPR and CR8 are one value; a CR8 write clears TPR[3:0]", () => {
  const cpu = { cr8: 0 };
  const { apic, rd, wr, enable } = make({ cr8: cpu });
  enable();
  wr(0x80, 0x7c);
  assert.equal(cpu.cr8, 7);
  assert.equal(rd(0x80), 0x7c);
  cpu.cr8 = 3; // MOV CR8, 3
  assert.equal(rd(0x80), 0x30);
  apic.acceptFixed(0x35, false);
  assert.equal(apic.hasInterrupt(), false);
  cpu.cr8 = 2;
  assert.equal(apic.hasInterrupt(), true);
});

test("EOI of a level-triggered vector calls onEoi; edge-triggered does not", () => {
  const { apic, wr, enable, eois, rd } = make();
  enable();
  apic.acceptFixed(0x60, true);
  apic.acceptFixed(0x50, false);
  assert.equal(rd(0x180 + 0x30), 1, "TMR bit 0x60");
  assert.equal(apic.acknowledge(), 0x60);
  wr(0xb0, 0);
  assert.deepEqual(eois, [0x60]);
  assert.equal(apic.acknowledge(), 0x50);
  wr(0xb0, 0);
  assert.deepEqual(eois, [0x60]);
  wr(0xb0, 0); // nothing in service: no effect
  assert.deepEqual(eois, [0x60]);
});

test("ESR is write-before-read; illegal vectors are logged and raise the error LVT", () => {
  const { apic, rd, wr, enable } = make();
  enable();
  wr(0x370, 0xfe); // error LVT vector 0xfe
  apic.acceptFixed(5, false);
  assert.equal(rd(0x280), 0, "not visible before a write");
  wr(0x280, 0);
  assert.equal(rd(0x280), 0x40, "receive illegal vector");
  assert.equal(apic.acknowledge(), 0xfe, "error interrupt");
  wr(0x300, 0x4000 | 0x0008); // ICR: fixed self-addressed vector 8 (illegal)
  wr(0x280, 0);
  assert.equal(rd(0x280), 0x20, "send illegal vector");
  wr(0x280, 0);
  assert.equal(rd(0x280), 0, "cleared by the next write");
  rd(0x2a0); // reserved register
  wr(0x280, 0);
  assert.equal(rd(0x280), 0x80, "illegal register address");
});

test("MMIO access shapes: byte/word reads, misaligned and narrow writes ignored, 8-byte low half", () => {
  const { apic, rd, wr } = make({ apicId: 0x12 });
  assert.equal(apic.readMmio(0x23, 1), 0x12);
  assert.equal(apic.readMmio(0x22, 2), 0x1200);
  assert.equal(apic.readMmio(0x24, 4), 0, "bytes past a register's low dword read 0");
  assert.equal(apic.readMmio(0x30, 8), 0x00050014);
  apic.writeMmio(0x80, 1, 0x55);
  apic.writeMmio(0x84, 4, 0x55);
  assert.equal(rd(0x80), 0);
  apic.writeMmio(0x80, 8, 0x20);
  assert.equal(rd(0x80), 0x20);
  wr(0x30, 0); // read-only version
  assert.equal(rd(0x30), 0x00050014);
  wr(0x20, 0x05000000);
  assert.equal(rd(0x20), 0x05000000, "xAPIC ID is writable");
  wr(0xd0, 0xffffffff);
  assert.equal(rd(0xd0), 0xff000000);
  wr(0xe0, 0);
  assert.equal(rd(0xe0), 0x0fffffff, "DFR cluster model, reserved bits read 1");
});

test("timer one-shot: every divide value, current count from time, one interrupt at the deadline", () => {
  const divides: Array<[number, number]> = [
    [0x0, 2],
    [0x1, 4],
    [0x2, 8],
    [0x3, 16],
    [0x8, 32],
    [0x9, 64],
    [0xa, 128],
    [0xb, 1],
  ];
  for (const [dcr, div] of divides) {
    const { apic, clock, rd, wr, enable } = make({ timerHz: 100_000_000 }); // 10 ns per input tick
    enable();
    wr(0x3e0, dcr);
    assert.equal(rd(0x3e0), dcr);
    wr(0x320, 0x30); // one-shot, vector 0x30
    clock.ns = 1000;
    wr(0x380, 100);
    assert.equal(rd(0x390), 100);
    const periodNs = 100 * div * 10;
    assert.equal(apic.nextDeadlineNs(), 1000 + periodNs, `divide ${div}`);
    clock.ns = 1000 + periodNs / 2;
    assert.equal(rd(0x390), 50);
    apic.tick(clock.ns);
    assert.equal(apic.hasInterrupt(), false);
    clock.ns = 1000 + periodNs - 1;
    assert.equal(rd(0x390), 1);
    clock.ns = 1000 + periodNs;
    apic.tick(clock.ns);
    assert.equal(rd(0x390), 0);
    assert.equal(apic.acknowledge(), 0x30);
    assert.equal(apic.nextDeadlineNs(), Infinity);
    clock.ns += 10 * periodNs;
    apic.tick(clock.ns);
    assert.equal(apic.hasInterrupt(), false, "one-shot fires once");
    assert.equal(rd(0x380), 100, "initial count keeps its value");
  }
});

test("timer periodic: reload, coalesced late ticks, masked LVT counts without interrupts, stop by 0", () => {
  const { apic, clock, rd, wr, enable } = make(); // 200 MHz, 5 ns per tick
  enable();
  wr(0x3e0, 0xb); // divide by 1
  wr(0x320, 0x20000 | 0x41);
  wr(0x380, 1000); // 5 us period
  assert.equal(apic.nextDeadlineNs(), 5000);
  clock.ns = 5000;
  apic.tick(5000);
  assert.equal(apic.acknowledge(), 0x41);
  wr(0xb0, 0);
  assert.equal(rd(0x390), 1000, "reloaded");
  assert.equal(apic.nextDeadlineNs(), 10000);
  clock.ns = 12500;
  assert.equal(rd(0x390), 500);
  clock.ns = 27000; // periods 2, 3, 4 and 5 elapsed
  apic.tick(27000);
  assert.equal(apic.acknowledge(), 0x41);
  assert.equal(apic.hasInterrupt(), false, "missed periods coalesce");
  wr(0xb0, 0);
  assert.equal(apic.nextDeadlineNs(), 30000);
  wr(0x320, 0x20000 | 0x10000 | 0x41); // masked
  clock.ns = 30000;
  apic.tick(30000);
  assert.equal(apic.hasInterrupt(), false, "masked: no interrupt");
  assert.equal(rd(0x390), 1000, "but still counting");
  wr(0x380, 0);
  assert.equal(apic.nextDeadlineNs(), Infinity);
  assert.equal(rd(0x390), 0);
});

test("timer: a divide change mid-count keeps the elapsed counts", () => {
  const { apic, clock, rd, wr, enable } = make({ timerHz: 100_000_000 });
  enable();
  wr(0x3e0, 0xb); // divide 1: 10 ns per count
  wr(0x320, 0x22);
  wr(0x380, 100);
  clock.ns = 400; // 40 counts
  wr(0x3e0, 0x0); // divide 2: 20 ns per count
  assert.equal(rd(0x390), 60);
  assert.equal(apic.nextDeadlineNs(), 400 + 60 * 20);
  clock.ns = 1600;
  apic.tick(1600);
  assert.equal(apic.acknowledge(), 0x22);
});

test("TSC-deadline mode: arm, fire once and disarm, disarm by 0, mode switches, MSR reads 0 elsewhere", () => {
  let tsc = 1_000_000;
  const { apic, clock, rd, wr, enable } = make({ readTsc: () => tsc, tscHz: 1_000_000_000 });
  enable();
  assert.ok(apic.writeMsr(MSR_IA32_TSC_DEADLINE, 5, 0).ok);
  assert.deepEqual(msr(apic, MSR_IA32_TSC_DEADLINE), [0, 0], "ignored and reads 0 outside TSC-deadline mode");
  wr(0x320, 0x40000 | 0x50);
  wr(0x380, 1234);
  assert.equal(rd(0x380), 0, "initial count writes are ignored in TSC-deadline mode");
  assert.ok(apic.writeMsr(MSR_IA32_TSC_DEADLINE, 1_000_500, 0).ok);
  assert.deepEqual(msr(apic, MSR_IA32_TSC_DEADLINE), [1_000_500, 0]);
  assert.equal(apic.nextDeadlineNs(), 500);
  clock.ns = tsc = 499;
  apic.tick(499);
  assert.equal(apic.hasInterrupt(), false);
  clock.ns = 500;
  apic.tick(500);
  assert.equal(apic.acknowledge(), 0x50);
  assert.deepEqual(msr(apic, MSR_IA32_TSC_DEADLINE), [0, 0], "disarmed after firing");
  assert.equal(apic.nextDeadlineNs(), Infinity);
  wr(0xb0, 0);
  tsc = 2_000_000;
  assert.ok(apic.writeMsr(MSR_IA32_TSC_DEADLINE, 0x1000, 1).ok); // far future
  assert.ok(apic.nextDeadlineNs() > 4e9);
  assert.ok(apic.writeMsr(MSR_IA32_TSC_DEADLINE, 0, 0).ok);
  assert.equal(apic.nextDeadlineNs(), Infinity, "0 disarms");
  assert.ok(apic.writeMsr(MSR_IA32_TSC_DEADLINE, 3_000_000, 0).ok);
  wr(0x320, 0x50); // to one-shot: disarms
  assert.equal(apic.nextDeadlineNs(), Infinity);
  wr(0x320, 0x40000 | 0x50);
  assert.deepEqual(msr(apic, MSR_IA32_TSC_DEADLINE), [0, 0]);
  assert.ok(apic.writeMsr(MSR_IA32_TSC_DEADLINE, 100, 0).ok, "a deadline in the past");
  assert.equal(apic.acknowledge(), 0x50, "fires at once");
  assert.equal(rd(0x390), 0);
});

test("IA32_APIC_BASE: reserved bits, legal and illegal transitions, relocation, disable resets state", () => {
  const { apic, wr, rd, enable } = make();
  gp(apic.writeMsr(MSR_IA32_APIC_BASE, 0xfee00900 | 1, 0), "reserved bit 0");
  gp(apic.writeMsr(MSR_IA32_APIC_BASE, 0xfee00900, 0x100), "above MAXPHYADDR 40");
  gp(apic.writeMsr(MSR_IA32_APIC_BASE, 0xfee00000 | 0x400, 0), "EXTD without EN");
  enable();
  wr(0x80, 0x20);
  assert.ok(apic.writeMsr(MSR_IA32_APIC_BASE, 0xfed00800, 0x1).ok, "relocate (BSP write ignored)");
  assert.deepEqual(msr(apic, MSR_IA32_APIC_BASE), [0xfed00900, 1]);
  assert.equal(apic.mmioBase, 0x1_fed00000);
  assert.ok(apic.claimsMmio(0x1_fed00080) && !apic.claimsMmio(0xfee00080));
  assert.ok(apic.writeMsr(MSR_IA32_APIC_BASE, 0xfee00000, 0).ok, "xAPIC -> disabled");
  assert.equal(apic.claimsMmio(0xfee00000), false);
  gp(apic.writeMsr(MSR_IA32_APIC_BASE, 0xfee00c00, 0), "disabled -> x2APIC");
  assert.ok(apic.writeMsr(MSR_IA32_APIC_BASE, 0xfee00800, 0).ok, "disabled -> xAPIC");
  assert.equal(rd(0x80), 0, "disable returned the registers to power-up state");
  assert.equal(rd(0xf0), 0xff);
  toX2apic(apic);
  gp(apic.writeMsr(MSR_IA32_APIC_BASE, 0xfee00800, 0), "x2APIC -> xAPIC");
  assert.ok(apic.writeMsr(MSR_IA32_APIC_BASE, 0xfee00000, 0).ok, "x2APIC -> disabled");
});

test("x2APIC: MSR map, derived LDR, #GP for reserved, read-only and write-only registers, no MMIO", () => {
  const { apic } = make({ apicId: 0x23 });
  gp(apic.readMsr(0x802), "x2APIC MSR in xAPIC mode");
  toX2apic(apic);
  assert.equal(apic.claimsMmio(0xfee00000), false);
  assert.deepEqual(msr(apic, 0x802), [0x23, 0]);
  assert.deepEqual(msr(apic, 0x803), [0x00050014, 0]);
  assert.deepEqual(msr(apic, 0x80d), [(2 << 16) | (1 << 3), 0], "cluster 2, bit 3");
  for (const r of [0x800, 0x801, 0x804, 0x809, 0x80c, 0x80e, 0x82f, 0x831, 0x83a, 0x83d, 0x840, 0x8ff])
    gp(apic.readMsr(r), `read ${r.toString(16)}`);
  gp(apic.readMsr(0x80b), "read EOI");
  gp(apic.readMsr(0x83f), "read SELF IPI");
  for (const r of [0x802, 0x803, 0x809, 0x80a, 0x80d, 0x80e, 0x810, 0x818, 0x820, 0x839, 0x831])
    gp(apic.writeMsr(r, 0, 0), `write ${r.toString(16)}`);
  gp(apic.writeMsr(0x80b, 1, 0), "non-zero EOI");
  gp(apic.writeMsr(0x828, 1, 0), "non-zero ESR");
  gp(apic.writeMsr(0x83f, 0x100, 0), "SELF IPI reserved bits");
  gp(apic.writeMsr(0x808, 0, 1), "high half of TPR");
  assert.ok(apic.writeMsr(0x80f, 0x1ff, 0).ok);
  assert.ok(apic.writeMsr(0x808, 0x10, 0).ok);
  assert.deepEqual(msr(apic, 0x808), [0x10, 0]);
  assert.ok(apic.writeMsr(0x83f, 0x77, 0).ok);
  assert.deepEqual(msr(apic, 0x823), [1 << 23, 0], "IRR bit 0x77");
  assert.equal(apic.acknowledge(), 0x77);
  assert.ok(apic.writeMsr(0x80b, 0, 0).ok);
  assert.deepEqual(msr(apic, 0x813), [0, 0]);
  assert.ok(apic.writeMsr(0x830, 0x4000 | 0x66, 0x23).ok, "64-bit ICR, physical destination 0x23");
  assert.deepEqual(msr(apic, 0x830), [0x4066, 0x23]);
  assert.equal(apic.acknowledge(), 0x66);
  assert.ok(apic.writeMsr(0x83f, 3, 0).ok);
  assert.ok(apic.writeMsr(0x828, 0, 0).ok);
  assert.deepEqual(msr(apic, 0x828), [0x20, 0], "self IPI with an illegal vector is a send error");
  assert.ok(apic.writeMsr(0x83e, 0xb, 0).ok);
  assert.ok(apic.writeMsr(0x838, 50, 0).ok);
  assert.deepEqual(msr(apic, 0x839), [50, 0]);
});

test("ExtINT pass-through: globally disabled APIC and LINT0 in ExtINT mode; masked LINT0 blocks", () => {
  let pending = true;
  const pic = { hasInterrupt: () => pending, acknowledge: () => ((pending = false), 0x08) };
  const { apic, wr, enable } = make({ extInt: pic });
  assert.equal(apic.hasInterrupt(), false, "LINT0 masked after reset");
  assert.ok(apic.writeMsr(MSR_IA32_APIC_BASE, 0xfee00000, 0).ok);
  assert.equal(apic.hasInterrupt(), true, "disabled APIC: INTR goes straight through");
  assert.equal(apic.acknowledge(), 0x08);
  assert.ok(apic.writeMsr(MSR_IA32_APIC_BASE, 0xfee00800, 0).ok);
  enable();
  pending = true;
  wr(0x350, 0x700);
  apic.acceptFixed(0x30, false);
  assert.equal(apic.acknowledge(), 0x08, "ExtINT first, like an INTA cycle to the PIC");
  assert.equal(apic.acknowledge(), 0x30);
  pending = true;
  wr(0x350, 0x10700);
  assert.equal(apic.hasInterrupt(), false);
  const vw = make({ extInt: pic, virtualWire: true });
  assert.equal(vw.rd(0x350), 0x700);
  assert.equal(vw.rd(0x360), 0x400);
  assert.equal(vw.apic.hasInterrupt(), true, "virtual-wire firmware state");
});

test("LINT1 in NMI mode raises an NMI; LINT0 fixed mode accepts its vector; masked pins do nothing", () => {
  const { apic, wr, enable, nmis } = make();
  apic.lint(1);
  assert.equal(nmis(), 0, "masked");
  enable();
  wr(0x360, 0x400);
  apic.lint(1);
  assert.equal(nmis(), 1);
  wr(0x350, 0x8000 | 0x44);
  apic.lint(0);
  assert.equal(apic.acknowledge(), 0x44);
});

test("APIC bus: I/O APIC messages by physical, flat and cluster logical destination; lowest priority", () => {
  const bus = new ApicBus();
  const clock = new Clock();
  const apics = [0, 1, 2, 3].map((id) => new LocalApic({ apicId: id, clock, bus }));
  for (const a of apics) a.writeMmio(0xf0, 4, 0x1ff);
  const irr = (a: LocalApic, v: number) => ((a.readMmio(0x200 + (v >> 5) * 0x10, 4) >>> (v & 31)) & 1) === 1;
  const msg = (destination: number, logical: boolean, vector: number, deliveryMode = 0) => ({
    destination,
    logicalDestination: logical,
    vector,
    deliveryMode,
    levelTriggered: false,
    level: true,
  });
  bus.deliver(msg(2, false, 0x30));
  assert.deepEqual(
    apics.map((a) => irr(a, 0x30)),
    [false, false, true, false],
  );
  bus.deliver(msg(0xff, false, 0x31));
  assert.deepEqual(
    apics.map((a) => irr(a, 0x31)),
    [true, true, true, true],
    "physical broadcast",
  );
  apics.forEach((a, i) => a.writeMmio(0xd0, 4, (1 << i) << 24)); // flat model: one bit each
  bus.deliver(msg(0b1010, true, 0x32));
  assert.deepEqual(
    apics.map((a) => irr(a, 0x32)),
    [false, true, false, true],
  );
  // Cluster model: APICs 0,1 in cluster 1 (bits 0,1), APICs 2,3 in cluster 2 (bits 0,1).
  apics.forEach((a, i) => {
    a.writeMmio(0xe0, 4, 0x0fffffff);
    a.writeMmio(0xd0, 4, (((i < 2 ? 1 : 2) << 4) | (1 << (i & 1))) << 24);
  });
  bus.deliver(msg(0x22, true, 0x33));
  assert.deepEqual(
    apics.map((a) => irr(a, 0x33)),
    [false, false, false, true],
  );
  bus.deliver(msg(0x13, true, 0x34));
  assert.deepEqual(
    apics.map((a) => irr(a, 0x34)),
    [true, true, false, false],
  );
  // Lowest priority among all four: APIC 2 has the lowest TPR.
  apics.forEach((a, i) => a.writeMmio(0x80, 4, i === 2 ? 0x10 : 0x40));
  bus.deliver(msg(0xff, false, 0x35, 1));
  assert.deepEqual(
    apics.map((a) => irr(a, 0x35)),
    [false, false, true, false],
  );
});

test("APIC bus: IPIs with shorthands, x2APIC cluster destinations, NMI, INIT and SIPI callbacks", () => {
  const inits: number[] = [];
  const sipis: Array<[number, number]> = [];
  const bus = new ApicBus({ onInit: (vp) => inits.push(vp), onStartup: (vp, v) => sipis.push([vp, v]) });
  const clock = new Clock();
  let nmi = 0;
  const apics = [0, 1, 0x11].map((id) => new LocalApic({ apicId: id, clock, bus, raiseNmi: () => nmi++ }));
  for (const a of apics) a.writeMmio(0xf0, 4, 0x1ff);
  const [a0, a1] = apics as [LocalApic, LocalApic, LocalApic];
  const irr = (a: LocalApic, v: number) => ((a.readMmio(0x200 + (v >> 5) * 0x10, 4) >>> (v & 31)) & 1) === 1;
  a0.writeMmio(0x300, 4, (2 << 18) | 0x40); // all including self
  assert.deepEqual(
    apics.map((a) => irr(a, 0x40)),
    [true, true, true],
  );
  a0.writeMmio(0x300, 4, (3 << 18) | 0x41); // all excluding self
  assert.deepEqual(
    apics.map((a) => irr(a, 0x41)),
    [false, true, true],
  );
  a1.writeMmio(0x300, 4, (1 << 18) | 0x42); // self
  assert.deepEqual(
    apics.map((a) => irr(a, 0x42)),
    [false, true, false],
  );
  a0.writeMmio(0x310, 4, 1 << 24);
  a0.writeMmio(0x300, 4, 0x43);
  assert.deepEqual(
    apics.map((a) => irr(a, 0x43)),
    [false, true, false],
    "physical destination 1",
  );
  assert.equal(a0.readMmio(0x300, 4) & 0x1000, 0, "delivery status idle");
  a0.writeMmio(0x300, 4, 0x400); // NMI to APIC 1
  assert.equal(nmi, 1);
  a0.writeMmio(0x300, 4, 0x4500); // INIT assert
  a0.writeMmio(0x300, 4, 0x8500); // INIT de-assert: no effect
  assert.deepEqual(inits, [1]);
  assert.equal(irr(a1, 0x43), false, "INIT cleared APIC 1's IRR");
  a0.writeMmio(0x300, 4, 0x4600 | 0x9a); // SIPI vector 0x9a
  assert.deepEqual(sipis, [[1, 0x9a]]);
  for (const a of apics) {
    toX2apic(a);
    a.writeMsr(0x80f, 0x1ff, 0);
  }
  // x2APIC logical: cluster 0 holds IDs 0 and 1 (bits 0, 1); cluster 1 holds ID 0x11 (bit 1).
  assert.ok(a0.writeMsr(0x830, 0x800 | 0x50, 0x00010002).ok);
  assert.deepEqual(
    apics.map((a) => x2irr(a, 0x50)),
    [false, false, true],
  );
  assert.ok(a0.writeMsr(0x830, 0x800 | 0x51, 0x00000003).ok);
  assert.deepEqual(
    apics.map((a) => x2irr(a, 0x51)),
    [true, true, false],
  );
  assert.ok(a0.writeMsr(0x830, 0x52, 0x11).ok, "x2APIC physical ID 0x11");
  assert.deepEqual(
    apics.map((a) => x2irr(a, 0x52)),
    [false, false, true],
  );
  assert.ok(a0.writeMsr(0x830, 0x53, 0xffffffff).ok, "x2APIC broadcast");
  assert.deepEqual(
    apics.map((a) => x2irr(a, 0x53)),
    [true, true, true],
  );
});

function x2irr(a: LocalApic, v: number): boolean {
  const r = a.readMsr(0x820 + (v >> 5));
  return r.ok && ((r.lo >>> (v & 31)) & 1) === 1;
}

test("APR follows the P6 definition; PPR uses the in-service class; LVT writable bits per entry", () => {
  const { apic, rd, wr, enable } = make();
  enable();
  wr(0x80, 0x35);
  assert.equal(rd(0x90), 0x35, "APR = TPR with nothing pending");
  apic.acceptFixed(0x20, false);
  assert.equal(rd(0x90), 0x35, "IRRV class below TPR class");
  apic.acceptFixed(0x71, false);
  assert.equal(rd(0x90), 0x70, "IRRV class above TPR: APR = its class");
  wr(0x80, 0);
  assert.equal(apic.acknowledge(), 0x71);
  wr(0x80, 0x35);
  assert.equal(rd(0xa0), 0x70, "PPR = ISRV class above TPR");
  assert.equal(rd(0x90), 0x70);
  for (const [off, mask] of [
    [0x320, 0x700ff],
    [0x330, 0x107ff],
    [0x340, 0x107ff],
    [0x350, 0x1a7ff],
    [0x360, 0x1a7ff],
    [0x370, 0x100ff],
  ] as const) {
    wr(off, 0xffffffff);
    assert.equal(rd(off), mask, `LVT ${off.toString(16)}`);
    wr(off, 0x10000);
  }
  wr(0x3e0, 0xffffffff);
  assert.equal(rd(0x3e0), 0xb, "DCR keeps bits 0, 1 and 3");
  wr(0x310, 0xffffffff);
  assert.equal(rd(0x310), 0xff000000, "ICR high: destination field");
  wr(0x300, 0xffffffff & ~0xc0000 & ~0x700); // fixed, no shorthand, physical broadcast... to 0xff
  assert.equal(rd(0x300) & 0x1000, 0, "delivery status idle after the send");
  assert.equal(rd(0xb0), 0, "EOI reads 0");
  assert.equal(rd(0x390), 0, "no timer");
});

test("timer: reserved mode 11b counts once like one-shot; periodic -> one-shot counts down the period, then stops", () => {
  const { apic, clock, rd, wr, enable } = make({ timerHz: 100_000_000 });
  enable();
  wr(0x3e0, 0xb);
  wr(0x320, 0x60000 | 0x31); // 11b
  wr(0x380, 10);
  clock.ns = 100;
  apic.tick(100);
  assert.equal(apic.acknowledge(), 0x31);
  assert.equal(apic.nextDeadlineNs(), Infinity);
  wr(0xb0, 0);
  wr(0x320, 0x20000 | 0x32);
  wr(0x380, 10);
  clock.ns = 250; // 15 counts: one period done, 5 into the next
  apic.tick(250);
  assert.equal(apic.acknowledge(), 0x32);
  wr(0xb0, 0);
  wr(0x320, 0x32); // to one-shot mid-period: the count goes on from 5, fires at zero and stays there
  assert.equal(rd(0x390), 5);
  assert.equal(apic.nextDeadlineNs(), 300);
  clock.ns = 300;
  apic.tick(300);
  assert.equal(apic.acknowledge(), 0x32);
  wr(0xb0, 0);
  assert.equal(rd(0x390), 0);
  assert.equal(apic.nextDeadlineNs(), Infinity);
  clock.ns = 1000;
  apic.tick(1000);
  assert.equal(apic.hasInterrupt(), false, "one-shot: no reload");
  apic.tick(Infinity);
  apic.tick(Number.NaN);
  assert.equal(apic.hasInterrupt(), false, "absurd tick times do not fire a disarmed timer");
});

test("INIT keeps the xAPIC ID and base MSR, resets the rest; x2APIC registers through their MSRs", () => {
  const { apic, rd, wr, enable } = make({ apicId: 2 });
  enable();
  wr(0x20, 0x07000000);
  wr(0x80, 0x44);
  apic.acceptFixed(0x80, false);
  apic.init();
  assert.equal(rd(0x20), 0x07000000);
  assert.equal(rd(0x80), 0);
  assert.equal(rd(0xf0), 0xff);
  assert.equal(rd(0x200 + 0x40), 0, "IRR cleared");
  toX2apic(apic);
  assert.deepEqual(msr(apic, 0x802), [2, 0], "x2APIC ID is the initial APIC ID");
  assert.ok(apic.writeMsr(0x80f, 0x1ff, 0).ok);
  for (const r of [0x832, 0x833, 0x834, 0x835, 0x836, 0x837]) {
    assert.ok(apic.writeMsr(r, 0x10030, 0).ok);
    assert.deepEqual(msr(apic, r), [0x10030, 0], r.toString(16));
  }
  assert.ok(apic.writeMsr(0x83e, 0x8, 0).ok);
  assert.deepEqual(msr(apic, 0x83e), [0x8, 0]);
  apic.acceptFixed(0x90, true);
  assert.deepEqual(msr(apic, 0x824), [1 << 16, 0], "IRR");
  assert.deepEqual(msr(apic, 0x81c), [1 << 16, 0], "TMR");
  apic.acknowledge();
  assert.deepEqual(msr(apic, 0x814), [1 << 16, 0], "ISR");
  assert.deepEqual(msr(apic, 0x80a), [0x90, 0], "PPR");
});

test("hostile register sequences never throw, and after tick(t) the next deadline is later than t", () => {
  const op = fc.oneof(
    fc.record({ k: fc.constant("rm" as const), off: fc.nat(0xfff), size: fc.constantFrom(1, 2, 4, 8) }),
    fc.record({
      k: fc.constant("wm" as const),
      off: fc.oneof(fc.nat(0xfff), fc.constantFrom(0x80, 0xb0, 0xf0, 0x300, 0x320, 0x380, 0x3e0, 0x350)),
      size: fc.constantFrom(1, 2, 4, 8),
      v: fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }),
    }),
    fc.record({
      k: fc.constant("rmsr" as const),
      msr: fc.oneof(fc.integer({ min: 0x800, max: 0x8ff }), fc.constantFrom(0x1b, 0x6e0)),
    }),
    fc.record({
      k: fc.constant("wmsr" as const),
      msr: fc.oneof(fc.integer({ min: 0x800, max: 0x8ff }), fc.constantFrom(0x1b, 0x6e0)),
      lo: fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }),
      hi: fc.oneof(fc.constant(0), fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 })),
    }),
    fc.record({ k: fc.constant("time" as const), dt: fc.oneof(fc.nat(10_000), fc.nat(2 ** 40)) }),
    fc.record({ k: fc.constant("ack" as const) }),
    fc.record({ k: fc.constant("accept" as const), v: fc.nat(0x1ff), level: fc.boolean() }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 150 }), (ops) => {
      let tsc = 0;
      const { apic, clock } = make({ readTsc: () => tsc, tscHz: 2_000_000_000, cmci: true });
      for (const o of ops) {
        switch (o.k) {
          case "rm":
            assert.ok(Number.isInteger(apic.readMmio(o.off, o.size)));
            break;
          case "wm":
            apic.writeMmio(o.off, o.size, o.v);
            break;
          case "rmsr":
            apic.readMsr(o.msr);
            break;
          case "wmsr":
            apic.writeMsr(o.msr, o.lo, o.hi);
            break;
          case "time":
            clock.ns += o.dt;
            tsc += o.dt * 2;
            if (clock.ns >= apic.nextDeadlineNs()) {
              apic.tick(clock.ns);
              assert.ok(apic.nextDeadlineNs() > clock.ns);
            }
            break;
          case "ack": {
            const v = apic.acknowledge();
            assert.ok(v >= 0 && v <= 0xff);
            break;
          }
          case "accept":
            apic.acceptFixed(o.v, o.level);
            break;
        }
      }
      assert.ok(apic.inspect().length > 0);
    }),
    { numRuns: 300, seed: 0x41504943 },
  );
});

test("AutoEOI acceptance (SynIC): acknowledged without entering ISR, PPR unchanged", () => {
  const { apic, rd, enable } = make();
  enable();
  apic.acceptFixed(0x93, false, true);
  apic.acceptFixed(0x50, false);
  assert.equal(apic.acknowledge(), 0x93);
  assert.equal(rd(0x100 + 0x40), 0, "not in service");
  assert.equal(rd(0xa0), 0, "PPR stays 0");
  assert.equal(apic.acknowledge(), 0x50, "lower vectors are not held back");
  assert.equal(rd(0x100 + 0x20), 1 << 16);
  apic.acceptFixed(0x93, false);
  assert.equal(apic.acknowledge(), 0x93, "a later plain acceptance of the vector goes to ISR");
  assert.equal(rd(0x140), 1 << 19);
});

test("timer: an expired one-shot switched to periodic stays at zero; a running one keeps counting (SDM 11.5.4)", () => {
  const { apic, clock, rd, wr, enable } = make({ timerHz: 100_000_000 }); // 10 ns per count at divide 1
  enable();
  wr(0x3e0, 0xb);
  wr(0x320, 0x33); // one-shot
  wr(0x380, 10);
  clock.ns = 100;
  apic.tick(100);
  assert.equal(apic.acknowledge(), 0x33);
  wr(0xb0, 0);
  clock.ns = 150;
  assert.equal(rd(0x390), 0, "expired one-shot");
  wr(0x320, 0x20000 | 0x33); // to periodic: a mode change does not start the timer
  assert.equal(rd(0x390), 0, "current count stays 0 after the switch");
  assert.equal(apic.nextDeadlineNs(), Infinity, "nothing armed");
  clock.ns = 1000;
  apic.tick(1000);
  assert.equal(rd(0x390), 0, "still 0 later");
  assert.equal(apic.hasInterrupt(), false, "no periodic interrupts");
  wr(0x320, 0x33); // and back to one-shot: still 0
  assert.equal(rd(0x390), 0);
  wr(0x320, 0x20000 | 0x33);
  wr(0x380, 10); // only an initial-count write starts it again
  clock.ns = 1050;
  assert.equal(rd(0x390), 5);
  clock.ns = 1100;
  apic.tick(1100);
  assert.equal(apic.acknowledge(), 0x33);
  wr(0xb0, 0);
  assert.equal(rd(0x390), 10, "periodic reload");
  // A one-shot that expired without a tick in between (its interrupt not yet signalled) still signals
  // it once, under the LVT it expired with, and then stays at zero in periodic mode.
  wr(0x320, 0x34);
  wr(0x380, 10);
  clock.ns = 1300;
  wr(0x320, 0x20000 | 0x35);
  assert.equal(apic.acknowledge(), 0x34, "the expiry before the switch is signalled");
  wr(0xb0, 0);
  assert.equal(rd(0x390), 0);
  clock.ns = 2000;
  apic.tick(2000);
  assert.equal(apic.hasInterrupt(), false);
  // A one-shot still counting when switched to periodic goes on counting and then reloads.
  wr(0x320, 0x36);
  wr(0x380, 10);
  clock.ns = 2040;
  wr(0x320, 0x20000 | 0x36);
  assert.equal(rd(0x390), 6);
  clock.ns = 2100;
  apic.tick(2100);
  assert.equal(apic.acknowledge(), 0x36);
  wr(0xb0, 0);
  assert.equal(rd(0x390), 10);
  clock.ns = 2200;
  apic.tick(2200);
  assert.equal(apic.acknowledge(), 0x36, "and fires every period");
  wr(0xb0, 0);
});
