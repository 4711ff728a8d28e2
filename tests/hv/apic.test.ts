// Integration: the local APIC on the real emulated processor. tests/hv/apic.asm (a Multiboot microkernel)
// runs in long mode under a small run loop that routes the xAPIC page's MMIO exits and the APIC MSRs to a
// `LocalApic`, makes the APIC the processor's interrupt source with CR8 as its TPR, and drives virtual time
// from retired instructions plus HLT jumps to the APIC's next deadline. The kernel takes one-shot, periodic,
// self-IPI, x2APIC self-IPI and TSC-deadline interrupts through its IDT and prints what it counted.
// Spec: Intel SDM Vol. 3A ch. 11 (see src/hv/local-apic.ts); Multiboot 0.6.96.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestMemory } from "../../src/memory/guest-memory.js";
import { Cpu } from "../../src/x86/cpu.js";
import { ExitReason } from "../../src/x86/vm-exit.js";
import { loadMultiboot } from "../../src/firmware/multiboot.js";
import { applyEntryState } from "../../src/worker/processor-state.js";
import { LocalApic } from "../../src/hv/local-apic.js";
import { KERNEL_SOURCE_DIR } from "../kernels/assemble.js";

const SOURCE = fileURLToPath(new URL("../../../tests/hv/apic.asm", import.meta.url));
/** Virtual nanoseconds per retired instruction (the deterministic TSC runs 10 ticks per instruction at 1 GHz). */
const NS_PER_INSN = 10;

function assemble(): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "viridian-apic-"));
  try {
    const out = join(dir, "apic.elf");
    execFileSync("nasm", ["-f", "bin", "-I", KERNEL_SOURCE_DIR, "-o", out, SOURCE], { stdio: "pipe" });
    return new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a long-mode microkernel takes APIC timer, self-IPI and TSC-deadline interrupts through its IDT", () => {
  const mem = new GuestMemory(8 * 1024 * 1024);
  const loaded = loadMultiboot(mem, assemble());
  const cpu = new Cpu(mem, { deterministic: true });
  applyEntryState(cpu, loaded.entry);
  cpu.controls.ioBitmap.fill(0xff);
  cpu.controls.hltExiting = true;

  let idleNs = 0;
  const clock = { nowNs: () => cpu.retired * NS_PER_INSN + idleNs };
  const apic = new LocalApic({
    clock,
    cr8: cpu,
    readTsc: () => cpu.readTsc(),
    tscHz: cpu.tscHz,
  });
  cpu.interrupts = apic;

  let serial = "";
  let dlab = false; // COM1 LCR.DLAB: port 0x3f8 is the divisor latch, not the transmitter
  let status = -1;
  let mmio = 0;
  let msrs = 0;
  let gps = 0;
  const periodicDeadlines: number[] = [];
  cpu.ports = {
    read: (port) => (port === 0x3fd ? 0x60 : 0xffffffff),
    write: (port, _size, value) => {
      if (port === 0xf4) status = value;
      else if (port === 0x3fb) dlab = (value & 0x80) !== 0;
      else if (port === 0x3f8 && !dlab) serial += String.fromCharCode(value & 0xff);
    },
  };
  cpu.mmio = {
    hi: 0,
    read: (gpa, size) => {
      assert.ok(apic.claimsMmio(gpa), `MMIO outside the APIC page: ${gpa.toString(16)}`);
      mmio++;
      return apic.readMmio(gpa - apic.mmioBase, size);
    },
    write: (gpa, size, lo) => {
      assert.ok(apic.claimsMmio(gpa), `MMIO outside the APIC page: ${gpa.toString(16)}`);
      mmio++;
      apic.writeMmio(gpa - apic.mmioBase, size, lo);
    },
  };
  for (let exits = 0; status < 0 && exits < 200_000; exits++) {
    const r = cpu.run(10_000);
    const e = cpu.exit;
    switch (r) {
      case ExitReason.Rdmsr:
      case ExitReason.Wrmsr: {
        assert.ok(LocalApic.ownsMsr(e.msr), `MSR ${e.msr.toString(16)}`);
        msrs++;
        const res = r === ExitReason.Rdmsr ? apic.readMsr(e.msr) : apic.writeMsr(e.msr, e.valueLo, e.valueHi);
        if (!res.ok) {
          gps++;
          cpu.injectException(13, 0);
        } else if (r === ExitReason.Rdmsr) cpu.completeRdmsr(res.lo, res.hi);
        else cpu.completeWrmsr();
        break;
      }
      case ExitReason.Hlt: {
        const d = apic.nextDeadlineNs();
        assert.ok(
          Number.isFinite(d),
          `the guest halted with no APIC timer armed; serial so far:\n${serial}\n${apic.inspect()}`,
        );
        idleNs += Math.max(0, d - clock.nowNs());
        break;
      }
      case ExitReason.BudgetExhausted:
        break;
      default:
        assert.fail(`unexpected exit ${r}; serial so far:\n${serial}`);
    }
    const now = clock.nowNs();
    if (now >= apic.nextDeadlineNs()) {
      // LVT timer in periodic mode and unmasked: this tick signals one period.
      if ((apic.readMmio(0x320, 4) & 0x30000) === 0x20000) periodicDeadlines.push(apic.nextDeadlineNs());
      apic.tick(now);
    }
  }
  assert.equal(
    serial,
    [
      "apic: base=0xfee00900 version=0x50014",
      "oneshot: count=0x1 current=0x0",
      "periodic: count=0xa",
      "tpr=0x50 blocked: count=0x0 irr=0x4 released: count=0x1",
      "x2apic: id=0x0 ldr=0x1",
      "x2apic self-ipi: count=0x1",
      "exc: v=0xd ec=0x0 rip=+0x5 cpl=0x0",
      "tsc-deadline: count=0x1 msr=0x0",
      "totals: oneshot=0x1 periodic=0xa spurious=0x0",
      "done",
      "",
    ].join("\n"),
  );
  assert.equal(status, 0);
  assert.equal(gps, 1, "one #GP: RDMSR of the x2APIC APR");
  assert.ok(mmio > 20 && msrs > 10, `exits routed: ${mmio} MMIO, ${msrs} MSR`);
  // The periodic timer's deadlines are 1.6 ms apart (20000 counts at 200 MHz / 16) in virtual time.
  const gaps = periodicDeadlines.slice(1).map((d, i) => d - periodicDeadlines[i]!);
  assert.equal(gaps.length, 9, `${periodicDeadlines.length} periodic deadlines`);
  for (const g of gaps) assert.equal(g, 1_600_000);
});
