import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestMemory, PAGE_READ } from "../memory/guest-memory.js";
import { ExitReason } from "../x86/vm-exit.js";
import { MSR_IA32_APIC_BASE } from "./local-apic.js";
import { ExitHandling, Partition, PartitionError } from "./partition.js";
import * as T from "./tlfs.js";

function partition(options: Partial<ConstructorParameters<typeof Partition>[0]> = {}): Partition {
  return new Partition({ memory: 1 << 20, time: "deterministic", ...options });
}

const read = (p: Partition, msr: number): { lo: number; hi: number } | null => {
  const r = p.readMsr(p.vps[0]!, msr);
  return r.ok ? { lo: r.lo, hi: r.hi } : null;
};

test("privileges, features and hints are limited to what is implemented", () => {
  const p = partition({
    privilegesLow: 0xffffffff,
    privilegesHigh: 0xffffffff,
    features: 0xffffffff,
    hints: 0,
  });
  assert.equal(p.privilegesLow, 0xa6f);
  assert.equal(p.privilegesHigh, 0x30);
  assert.equal(p.features, 0x80510);
  assert.equal(p.hints, 0, "a configuration may leave AutoEOI undeprecated: SINTs then honour AutoEOI");
  assert.equal(partition({ hints: 0xffffffff }).hints, 0xe24);
  const q = partition({ privilegesLow: 0x26e });
  assert.equal(q.features & T.FEATURE_FREQUENCY_MSRS, 0, "frequency MSRs need AccessFrequencyRegs");
  assert.equal(read(q, T.MSR_TSC_FREQUENCY), null);
  const o = new Uint32Array(4);
  p.hypervisorLeaf(0x40000081, o);
  assert.deepEqual([...o], [0, 0, 0, 0], "no VS#1 / other leaves");
  assert.throws(() => partition({ vpCount: 0 }), PartitionError);
});

test("guest OS identity gates the hypercall page; the locked bit freezes it; zeroing the identity disables it", () => {
  const p = partition();
  const vp = p.vps[0]!;
  assert.equal(p.writeMsr(vp, T.MSR_HYPERCALL, 0x3001, 0).ok, true);
  assert.equal(read(p, T.MSR_HYPERCALL)!.lo, 0x3000, "no identity: enable stays clear");
  assert.equal(p.guestOsIdentified(), false);
  p.writeMsr(vp, T.MSR_GUEST_OS_ID, 0x01c00000, 0x81000006);
  assert.equal(p.guestOsIdentified(), true);
  assert.equal(p.writeMsr(vp, T.MSR_HYPERCALL, 0x3001, 0).ok, true);
  assert.deepEqual([...p.memory.bytes.subarray(0x3000, 0x3005)], [0x0f, 0x01, 0xc1, 0xc3, 0xcc]);
  p.writeMsr(vp, T.MSR_HYPERCALL, 0x3003, 0);
  p.writeMsr(vp, T.MSR_HYPERCALL, 0x5001, 0);
  assert.equal(read(p, T.MSR_HYPERCALL)!.lo, 0x3003, "locked");
  p.writeMsr(vp, T.MSR_GUEST_OS_ID, 0, 0);
  assert.equal(read(p, T.MSR_HYPERCALL)!.lo, 0x3002, "identity cleared: page disabled");
  p.writeMsr(vp, T.MSR_STIMER0_CONFIG + 1, 1000, 0);
  p.writeMsr(vp, T.MSR_STIMER0_CONFIG, 0x1ed1, 0);
  assert.ok(Number.isFinite(p.nextDeadlineNs()));
  const before = p.clock.nowNs();
  p.reset();
  assert.equal(read(p, T.MSR_HYPERCALL)!.lo, 0, "reset clears even a locked page");
  assert.equal(p.nextDeadlineNs(), Infinity, "reset disarms the synthetic timers");
  assert.equal(read(p, T.MSR_GUEST_OS_ID)!.hi, 0);
  assert.equal(p.guestOsIdentified(), false);
  assert.ok(p.clock.nowNs() >= before, "the clock keeps running across a reset");
});

test("reference TSC page: sequence, scale, offset; re-enabling bumps the sequence", () => {
  const p = partition({ tscHz: 2_000_000_000 });
  const vp = p.vps[0]!;
  const v = new DataView(p.memory.buffer);
  p.writeMsr(vp, T.MSR_REFERENCE_TSC, 0x4001, 0);
  assert.equal(v.getUint32(0x4000, true), 1);
  assert.equal(v.getBigUint64(0x4008, true), ((1n << 64n) * 10_000_000n) / 2_000_000_000n);
  assert.equal(v.getBigInt64(0x4010, true), 0n);
  p.writeMsr(vp, T.MSR_REFERENCE_TSC, 0x4001, 0);
  assert.equal(v.getUint32(0x4000, true), 2);
  assert.deepEqual(read(p, T.MSR_REFERENCE_TSC), { lo: 0x4001, hi: 0 });
  // a page the root made read-only is not written
  p.setPageRights(0x6000, 0x1000, PAGE_READ);
  p.writeMsr(vp, T.MSR_REFERENCE_TSC, 0x6001, 0);
  assert.equal(v.getUint32(0x6000, true), 0);
  assert.throws(() => p.setPageRights(0x6001, 0x1000, 0), PartitionError);
});

test("read-only and per-VP registers; VP run time only with its privilege", () => {
  const p = partition({ vpCount: 2, privilegesLow: 0xa6f, apicHz: 123_456_789 });
  assert.deepEqual(p.readMsr(p.vps[1]!, T.MSR_VP_INDEX), { ok: true, lo: 1, hi: 0 });
  assert.equal(p.writeMsr(p.vps[1]!, T.MSR_VP_INDEX, 0, 0).ok, false);
  assert.deepEqual(read(p, T.MSR_APIC_FREQUENCY), { lo: 123_456_789, hi: 0 });
  assert.deepEqual(read(p, T.MSR_TSC_FREQUENCY), { lo: 1e9, hi: 0 });
  assert.deepEqual(read(p, T.MSR_VP_RUNTIME), { lo: 0, hi: 0 });
  assert.equal(p.writeMsr(p.vps[0]!, T.MSR_TIME_REF_COUNT, 1, 0).ok, false);
  assert.equal(read(partition(), T.MSR_VP_RUNTIME), null, "not offered by default");
  assert.equal(read(p, 0x40000070), null, "APIC-access MSRs are not offered");
  assert.equal(p.writeMsr(p.vps[0]!, T.MSR_VP_ASSIST_PAGE, 0x200001, 0).ok, false, "assist page outside RAM");
  assert.equal(p.writeMsr(p.vps[0]!, T.MSR_VP_ASSIST_PAGE, 0x7001, 0).ok, true);
});

test("crash MSRs: capabilities, parameters, the message, and the report", () => {
  const reports: string[] = [];
  const p = partition({ onGuestCrash: (r) => reports.push(`${r.parameters[0]} ${r.message}`) });
  const vp = p.vps[0]!;
  assert.deepEqual(read(p, T.MSR_CRASH_CTL), { lo: 0, hi: 0xc0000000 });
  p.memory.bytes.set(new TextEncoder().encode("oops\0\0"), 0x9000);
  p.writeMsr(vp, T.MSR_CRASH_P0, 0xdead, 0);
  p.writeMsr(vp, T.MSR_CRASH_P0 + 3, 0x9000, 0);
  p.writeMsr(vp, T.MSR_CRASH_P0 + 4, 6, 0);
  p.writeMsr(vp, T.MSR_CRASH_CTL, 0, 0x40000000); // message bit alone: nothing happens
  assert.equal(reports.length, 0);
  p.writeMsr(vp, T.MSR_CRASH_CTL, 0, 0xc0000000);
  assert.deepEqual(reports, ["000000000000dead oops"]);
  p.writeMsr(vp, T.MSR_CRASH_CTL, 0, 0x80000000);
  assert.deepEqual(reports[1], "000000000000dead null");
  assert.equal(p.crash?.message, "oops", "the first report is kept");
  assert.equal(read(partition({ features: 0x80100 }), T.MSR_CRASH_CTL), null);
});

test("one exit path: MSRs go to the hypervisor, the VP's APIC or a registered range; HLT is forwarded", () => {
  const p = partition();
  const cpu = p.vps[0]!.cpu;
  assert.equal(p.handleExit(0, ExitReason.Hlt), ExitHandling.Forward);
  assert.throws(() => p.handleExit(3, ExitReason.Hlt), PartitionError);
  const rdmsr = (msr: number): { lo: number; hi: number } => {
    cpu.setRip(0x1000, 0);
    cpu.exit.msr = msr;
    assert.equal(p.handleExit(0, ExitReason.Rdmsr), ExitHandling.Handled, "an MSR exit is never forwarded");
    return cpu.getRip().lo === 0x1000
      ? { lo: -1, hi: -1 }
      : { lo: cpu.getReg(0).lo >>> 0, hi: cpu.getReg(2).lo >>> 0 };
  };
  // IA32_APIC_BASE is the VP's own local APIC: enabled, BSP, at 0xFEE00000.
  assert.deepEqual(rdmsr(0x1b), { lo: 0xfee00900, hi: 0 });
  // An MSR nobody registered: #GP(0) is delivered (RIP leaves the instruction for the handler).
  const seen: string[] = [];
  p.registerMsrs(
    0xc0011000,
    0xc0011001,
    {
      read: (vp, msr) => (seen.push(`r${vp} ${msr.toString(16)}`), { ok: true, lo: 0x1234, hi: 5 }),
      write: (vp, msr, lo, hi) => (seen.push(`w${vp} ${msr.toString(16)} ${lo} ${hi}`), { ok: false }),
    },
    "test MSRs",
  );
  assert.deepEqual(rdmsr(0xc0011001), { lo: 0x1234, hi: 5 });
  cpu.exit.msr = 0xc0011000;
  cpu.exit.valueLo = 7;
  cpu.exit.valueHi = 8;
  assert.equal(p.handleExit(0, ExitReason.Wrmsr), ExitHandling.Handled);
  assert.deepEqual(seen, ["r0 c0011001", "w0 c0011000 7 8"]);
  assert.throws(
    () =>
      p.registerMsrs(
        0x40000000,
        0x40000001,
        { read: () => ({ ok: false }), write: () => ({ ok: false }) },
        "x",
      ),
    /synthetic/,
  );
  assert.throws(
    () => p.registerMsrs(0x800, 0x800, { read: () => ({ ok: false }), write: () => ({ ok: false }) }, "x"),
    /x2APIC/,
  );
  assert.throws(
    () =>
      p.registerMsrs(
        0xc0011001,
        0xc0011002,
        { read: () => ({ ok: false }), write: () => ({ ok: false }) },
        "x",
      ),
    /overlaps/,
  );
});

test("registered ports and MMIO reach their handlers from the processor; the VP's APIC page comes first", () => {
  const p = partition({ memory: 2 << 20 });
  const log: string[] = [];
  p.registerPorts(
    0x123,
    2,
    {
      read: (vp, port, size) => (log.push(`in${vp} ${port.toString(16)} ${size}`), 0x5a),
      write: (vp, port, size, v) => void log.push(`out${vp} ${port.toString(16)} ${size} ${v}`),
    },
    "test ports",
  );
  const mmio = {
    hi: 0,
    read: (vp: number, gpa: number, size: number) => (
      log.push(`mr${vp} ${gpa.toString(16)} ${size}`),
      (mmio.hi = 0x77),
      0x11
    ),
    write: (vp: number, gpa: number, size: number, lo: number, hi: number) =>
      void log.push(`mw${vp} ${gpa.toString(16)} ${size} ${lo} ${hi}`),
  };
  p.registerMmio(0xfed00000, 0x1000, mmio, "test MMIO");
  assert.throws(
    () => p.registerPorts(0x124, 1, { read: () => 0, write: () => undefined }, "again"),
    /already goes to test ports/,
  );
  const cpu = p.vps[0]!.cpu;
  assert.equal(
    cpu.controls.ioBitmap[0x123 >>> 3]! & (1 << (0x123 & 7)),
    1 << (0x123 & 7),
    "registered ports exit",
  );
  assert.equal(cpu.controls.ioBitmap[0x125 >>> 3]! & (1 << (0x125 & 7)), 0, "others float");
  // Real mode at 0x1000: in al, dx; out dx, al; in al, 0x80 (unclaimed); hlt.
  p.memory.write(0x1000, Uint8Array.from([0xba, 0x23, 0x01, 0xec, 0xee, 0xe4, 0x80, 0xf4]));
  cpu.setSegment(1, { selector: 0, base: 0, limit: 0xffff, access: 0x9b });
  cpu.setRip(0x1000, 0);
  while (p.runVp(0, 100).reason !== ExitReason.Hlt);
  assert.deepEqual(log, ["in0 123 1", "out0 123 1 90"]);
  assert.equal(cpu.getReg(0).lo & 0xff, 0xff, "the unclaimed port floated");
  assert.equal(cpu.mmio!.read(0xfed00010, 8), 0x11);
  assert.equal(cpu.mmio!.hi, 0x77);
  cpu.mmio!.write(0xfed00020, 4, 3, 0);
  assert.equal(
    cpu.mmio!.read(0xfee00030, 4),
    0x50014,
    "the local APIC's version register, not a registered range",
  );
  assert.equal(cpu.mmio!.read(0xfe000000, 4), -1, "nobody's MMIO floats");
  assert.deepEqual(log.slice(2), ["mr0 fed00010 8", "mw0 fed00020 4 3 0"]);
  assert.match(p.inspect(), /intercepts: ports 0x123-0x124 test ports, MMIO 0xfed00000-0xfed00fff test MMIO/);
});

test("adding a VP is one call: its own APIC on the partition's bus, its ID, its TSC aligned with the partition's", () => {
  const p = partition();
  p.clock.skipTo(5_000_000);
  const vp = p.addVp();
  assert.equal(vp.index, 1);
  assert.equal(p.vpCount, 2);
  assert.equal(vp.apic!.bus, p.apicBus);
  assert.equal(p.apicBus.apics.length, 2);
  assert.equal(vp.cpu.interrupts, vp.apic, "the APIC is the processor's interrupt source");
  assert.equal(vp.cpu.cpuid.apicId, 1);
  const tsc = (c: typeof vp.cpu): number => {
    const lo = c.readTsc();
    return (c.hi >>> 0) * 0x1_0000_0000 + (lo >>> 0);
  };
  assert.ok(Math.abs(tsc(vp.cpu) - tsc(p.vps[0]!.cpu)) < 1000, "the new VP's TSC starts at the partition's");
  // A message to APIC ID 1 reaches the new VP's APIC (software-enabled through its SVR), not VP 0's.
  for (const v of p.vps) v.apic!.writeMmio(0xf0, 4, 0x1ff);
  p.apicBus.deliver({
    destination: 1,
    logicalDestination: false,
    vector: 0x40,
    deliveryMode: 0,
    levelTriggered: false,
    level: true,
  });
  assert.equal(vp.apic!.hasInterrupt(), true);
  assert.equal(vp.apic!.acknowledge(), 0x40);
  assert.equal(p.vps[0]!.apic!.hasInterrupt(), false);
});

test("a partition takes over an existing GuestMemory; the deterministic clock counts retired instructions", () => {
  const mem = new GuestMemory(1 << 20);
  const p = new Partition({ memory: mem, time: "deterministic", nsPerInstruction: 7 });
  assert.equal(p.memory, mem);
  const cpu = p.vps[0]!.cpu;
  // real mode at 0: NOPs
  mem.bytes.fill(0x90, 0, 0x100);
  cpu.setSegment(1, { selector: 0, base: 0, limit: 0xffff, access: 0x9b });
  cpu.setRip(0, 0);
  const r = p.runVp(0, 50);
  assert.equal(r.reason, ExitReason.BudgetExhausted);
  assert.equal(p.clock.nowNs(), 50 * 7);
  assert.equal(p.referenceCounter(), 3);
  assert.equal(p.vps[0]!.runtimeNs, 350);
});

test("page rights set by the root supersede the guest: a forbidden write is intercepted and forwarded", () => {
  const p = partition();
  const cpu = p.vps[0]!.cpu;
  // real mode at 0: mov byte [0x5000], 1 ; hlt
  p.memory.bytes.set([0xc6, 0x06, 0x00, 0x50, 0x01, 0xf4], 0);
  cpu.setSegment(1, { selector: 0, base: 0, limit: 0xffff, access: 0x9b });
  cpu.setRip(0, 0);
  p.setPageRights(0x5000, 0x1000, PAGE_READ);
  const r = p.runVp(0, 10);
  assert.equal(r.reason, ExitReason.AccessViolation);
  assert.equal(r.handling, ExitHandling.Forward);
  assert.equal(cpu.exit.gpa, 0x5000);
  assert.equal(p.memory.bytes[0x5000], 0, "the write did not happen");
});

test("an external time source drives the TSC and the reference counter; retiredInstructions counts the running batch", () => {
  const mem = new GuestMemory(1 << 20);
  // A pacing-style source: 100 ns per retired instruction of the partition (read while a batch runs).
  let p: Partition | null = null;
  const src = { nowNs: (): number => 5_000 + (p === null ? 0 : p.retiredInstructions() * 100) };
  p = new Partition({ memory: mem, time: src });
  assert.equal(p.clock.source, "external");
  const cpu = p.vps[0]!.cpu;
  // real mode at 0: 10 x NOP, RDTSC, HLT
  mem.bytes.fill(0x90, 0, 10);
  mem.bytes.set([0x0f, 0x31, 0xf4], 10);
  cpu.setSegment(1, { selector: 0, base: 0, limit: 0xffff, access: 0x9b });
  cpu.setRip(0, 0);
  const r = p.runVp(0, 100);
  assert.equal(r.reason, ExitReason.Hlt);
  assert.equal(cpu.getReg(0).lo, 1000, "RDTSC after 10 instructions: 1000 ns of partition time at 1 GHz");
  assert.equal(p.retiredInstructions(), 12);
  assert.equal(p.clock.nowNs(), 1200);
  assert.equal(p.referenceCounter(), p.time.referenceAt(1200), "the TSC page formula at 1200 ns");
});

test("CPUID.01H:EDX[9] (APIC) reads 0 while the VP's local APIC is globally disabled (SDM 11.4.3)", () => {
  const p = partition();
  const cpu = p.vps[0]!.cpu;
  // The VP builds and connects its own local APIC (docs/architecture.md, "The seam").
  const apic = p.vps[0]!.apic!;
  // Real mode at 0000:1000: mov eax, 1 / cpuid / jmp $ (HLT would leave the processor halted, and HLT idles
  // inside the processor, so a second run would not execute anything).
  p.memory.write(0x1000, Uint8Array.of(0x66, 0xb8, 1, 0, 0, 0, 0x0f, 0xa2, 0xeb, 0xfe));
  const leaf1Edx = (): number => {
    cpu.setSegment(1, { selector: 0, base: 0, limit: 0xffff, access: 0x9b });
    cpu.setRip(0x1000, 0);
    cpu.setReg(2, 0, 0);
    let cpuidExits = 0;
    for (let i = 0; i < 10; i++) {
      const r = p.runVp(0, 100);
      if (r.reason === ExitReason.Cpuid) cpuidExits++;
      else if (r.reason === ExitReason.BudgetExhausted && cpuidExits === 1) return cpu.getReg(2).lo;
      assert.equal(r.handling, ExitHandling.Handled, `exit ${r.reason}`);
    }
    return assert.fail("CPUID did not run once");
  };
  assert.equal(leaf1Edx() & 0x200, 0x200, "enabled after reset");
  assert.ok(apic.writeMsr(MSR_IA32_APIC_BASE, 0xfee00000, 0).ok, "clear IA32_APIC_BASE.EN");
  assert.equal(leaf1Edx() & 0x200, 0, "globally disabled: the APIC flag reads 0");
  assert.ok(apic.writeMsr(MSR_IA32_APIC_BASE, 0xfee00800, 0).ok);
  assert.equal(leaf1Edx() & 0x200, 0x200, "enabled again");
});

test("overlay pages, page rights and the crash message above 2^31 and 2^32 (RAM offsets past 4 GiB)", () => {
  const GiB = 1024 ** 3;
  // 5 GiB: 3 GiB below the MMIO hole, 2 GiB at 4..6 GiB (RAM offsets 3..5 GiB).
  const mem = new GuestMemory(5 * GiB);
  const p = partition({ memory: mem });
  const vp = p.vps[0]!;
  const msr = (n: number, gpa: number, enable = 1): boolean =>
    p.writeMsr(vp, n, (gpa % 2 ** 32) + enable, Math.floor(gpa / 2 ** 32)).ok;
  const bytes = (gpa: number, n: number): number[] => {
    const b = new Uint8Array(n);
    mem.read(gpa, b);
    return [...b];
  };
  p.writeMsr(vp, T.MSR_GUEST_OS_ID, 0x01c00000, 0x81000006);
  // The hypercall page on the last page of RAM (RAM offset 5 GiB - 4 KiB, past 2^32).
  assert.equal(msr(T.MSR_HYPERCALL, 0x1_7fff_f000), true);
  assert.deepEqual(bytes(0x1_7fff_f000, 5), [0x0f, 0x01, 0xc1, 0xc3, 0xcc]);
  assert.deepEqual(bytes(0x1_7fff_f000 - 2 ** 32, 5), [0, 0, 0, 0, 0], "not at the wrapped address");
  // The reference TSC page at RAM offset exactly 4 GiB.
  assert.equal(msr(T.MSR_REFERENCE_TSC, 0x1_4000_0000), true);
  assert.equal(mem.view.getUint32(4 * GiB, true), 1, "TSC page sequence");
  // The VP assist page above 2^31 is zeroed when enabled.
  mem.fill(0x8000_0000, 4096, 0xee);
  assert.equal(msr(T.MSR_VP_ASSIST_PAGE, 0x8000_0000), true);
  assert.deepEqual(bytes(0x8000_0000, 4), [0, 0, 0, 0]);
  // SIMP and SIEFP above 4 GiB: a message and an event flag land there.
  const synic = vp.synic;
  synic.target = { acceptFixed: () => {} };
  assert.equal(synic.writeMsr(T.MSR_SCONTROL, 1, 0).ok, true);
  assert.equal(msr(T.MSR_SIMP, 0x1_3fff_f000), true);
  assert.equal(msr(T.MSR_SIEFP, 0x1_5000_0000), true);
  assert.equal(synic.writeMsr(T.MSR_SINT0 + 2, 0xf3, 0).ok, true);
  assert.equal(synic.postMessage(2, 7, Uint8Array.of(0x11, 0x22)), T.HV_STATUS_SUCCESS);
  const slot = 0x1_3fff_f000 + 2 * 256;
  assert.deepEqual(bytes(slot, 6), [7, 0, 0, 0, 2, 0]);
  assert.deepEqual(bytes(slot + 16, 2), [0x11, 0x22]);
  assert.equal(synic.postMessage(2, 8, Uint8Array.of(0x33)), T.HV_STATUS_SUCCESS);
  assert.equal(bytes(slot + 5, 1)[0], 1, "message-pending in the busy slot");
  assert.equal(synic.signalEvent(2, 9), T.HV_STATUS_SUCCESS);
  assert.equal(bytes(0x1_5000_0000 + 2 * 256 + 1, 1)[0], 2, "flag 9 of SINT 2");
  // Page rights above 4 GiB index the true page, and the overlay check honours them.
  p.setPageRights(0x1_6000_0000, 4096, PAGE_READ);
  assert.equal(mem.rights[(0x1_6000_0000 - 2 ** 32 + 3 * GiB) / 4096], PAGE_READ);
  assert.equal(mem.rights[(0x1_6000_0000 - 2 ** 32 + 3 * GiB) / 4096 - 2 ** 20], 7, "not the wrapped page");
  assert.equal(msr(T.MSR_REFERENCE_TSC, 0x1_6000_0000), true);
  assert.deepEqual(bytes(0x1_6000_0000, 4), [0, 0, 0, 0], "a read-only page is left alone");
  // The crash message is read from above 4 GiB.
  mem.write(0x1_7000_0000, new TextEncoder().encode("high\0"));
  p.writeMsr(vp, T.MSR_CRASH_P0 + 3, 0x7000_0000, 1);
  p.writeMsr(vp, T.MSR_CRASH_P0 + 4, 5, 0);
  p.writeMsr(vp, T.MSR_CRASH_CTL, 0, 0xc0000000);
  assert.equal(p.crash?.message, "high");
});
