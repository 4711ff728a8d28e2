// Acceptance 5 of issue 4: two partitions in one host process. Crafted guest-physical addresses in one
// partition's hypercalls and synthetic MSRs (beyond its RAM, inside the other's RAM range, in the MMIO hole,
// above 4 GiB, near 2^64) are refused with the documented #GP / HV_STATUS and never read or write the other
// partition's memory or anything outside the caller's own RAM; a hostile guest running in one leaves the
// other bit-for-bit unchanged; root ports belong to one partition.
import { test } from "node:test";
import assert from "node:assert/strict";
import { assembleHvKernel, bootPartition, runPartition, stateHash } from "./harness.js";
import { Partition } from "../../src/hv/partition.js";
import { executeHypercall, type HypercallRegisters } from "../../src/hv/hypercalls.js";
import { Reg } from "../../src/x86/processor.js";
import * as T from "../../src/hv/tlfs.js";

const A_RAM = 16 << 20;
const B_RAM = 64 << 20;
const TWO32 = 0x1_0000_0000;

/** Crafted addresses: none is RAM of A; several are RAM of B. */
const CRAFTED = [
  A_RAM,
  A_RAM + 0x1000,
  32 << 20,
  B_RAM - 0x1000,
  0xc000_0000,
  0xfee0_0000,
  TWO32,
  TWO32 + A_RAM,
  2 ** 52,
  2 ** 63,
  2 ** 64 - 0x1000,
];

function split(v: number): [number, number] {
  const hi = Math.floor(v / TWO32);
  return [(v - hi * TWO32) >>> 0, hi >>> 0];
}

class Regs implements HypercallRegisters {
  readonly r = new Map<number, { lo: number; hi: number }>();
  readonly xmm = new Int32Array(64);
  getReg(reg: Reg): { lo: number; hi: number } {
    return this.r.get(reg) ?? { lo: 0, hi: 0 };
  }
  setReg(reg: Reg, lo: number, hi: number): void {
    this.r.set(reg, { lo, hi });
  }
}

function memHash(p: Partition): string {
  let h = 0x811c9dc5;
  const b = p.memory.bytes;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return (h >>> 0).toString(16);
}

test("crafted addresses in one partition's MSRs and hypercalls never reach the other partition", () => {
  const a = new Partition({ memory: A_RAM, time: "deterministic" });
  const b = new Partition({ memory: B_RAM, time: "deterministic" });
  assert.notEqual(a.memory.buffer, b.memory.buffer);
  for (let i = 0; i < b.memory.bytes.length; i += 4093) b.memory.bytes[i] = (i * 7) & 0xff;
  const bBefore = memHash(b);
  const aBefore = memHash(a);
  const vp = a.vps[0]!;
  a.writeMsr(vp, T.MSR_GUEST_OS_ID, 1, 0x81000000);
  for (const gpa of CRAFTED) {
    const [lo, hi] = split(gpa);
    for (const msr of [T.MSR_HYPERCALL, T.MSR_SIMP, T.MSR_SIEFP, T.MSR_VP_ASSIST_PAGE]) {
      assert.equal(
        a.writeMsr(vp, msr, lo | 1, hi).ok,
        false,
        `MSR ${msr.toString(16)} at 0x${gpa.toString(16)}: #GP`,
      );
    }
    // The reference TSC page is accepted but inaccessible (timers.md): nothing is written.
    assert.equal(a.writeMsr(vp, T.MSR_REFERENCE_TSC, lo | 1, hi).ok, true);
    // Crash message pointing at it: reported without a message.
    a.writeMsr(vp, T.MSR_CRASH_P0 + 3, lo, hi);
    a.writeMsr(vp, T.MSR_CRASH_P0 + 4, 4096, 0);
    let report: string | null | undefined;
    a.onGuestCrash = (r) => (report = r.message);
    a.writeMsr(vp, T.MSR_CRASH_CTL, 0, 0xc0000000);
    assert.equal(report, null);
    // Hypercall input blocks there: INVALID_ALIGNMENT (outside the caller's GPA space).
    for (const code of [
      T.HVCALL_POST_MESSAGE,
      T.HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE,
      T.HVCALL_SEND_SYNTHETIC_CLUSTER_IPI_EX,
    ]) {
      const regs = new Regs();
      regs.setReg(Reg.RCX, code, 0);
      regs.setReg(Reg.RDX, lo, hi);
      regs.setReg(Reg.R8, lo, hi);
      executeHypercall(a, 0, regs, true);
      assert.equal(
        regs.getReg(Reg.RAX).lo,
        T.HV_STATUS_INVALID_ALIGNMENT,
        `call ${code} input 0x${gpa.toString(16)}`,
      );
    }
  }
  assert.equal(memHash(b), bBefore, "the other partition's memory is untouched");
  assert.equal(memHash(a), aBefore, "nothing was written anywhere in the caller's own memory either");
});

test("root ports and guest messages stay within their partition", () => {
  const a = new Partition({ memory: A_RAM, time: "deterministic" });
  const b = new Partition({ memory: A_RAM, time: "deterministic" });
  const got: string[] = [];
  a.registerMessagePort(1, () => (got.push("a"), 0));
  assert.equal(b.postMessage(0, 1, 1, new Uint8Array(4)), T.HV_STATUS_INVALID_CONNECTION_ID);
  assert.equal(a.postMessage(0, 1, 1, new Uint8Array(4)), 0);
  assert.deepEqual(got, ["a"]);
  b.registerMessagePort(1, () => (got.push("b"), 0));
  assert.throws(() => a.registerMessagePort(1, () => 0), /already registered/);
  assert.equal(a.postMessageToGuest(5, 2, 1, new Uint8Array(1)), T.HV_STATUS_INVALID_VP_INDEX);
});

test("a hostile guest in one partition leaves a second partition in the same process bit-for-bit unchanged", () => {
  const victim = bootPartition(assembleHvKernel("hv-synic"), { memory: B_RAM });
  for (let i = 0; i < victim.memory.bytes.length; i += 1021)
    victim.memory.bytes[i] = victim.memory.bytes[i]! ^ 0x5a;
  const before = stateHash(victim);
  const attacker = bootPartition(assembleHvKernel("hv-hostile", { OPS: 100_000, SEED: "0x5eed" }), {
    memory: A_RAM,
    features: 0x80510,
    hints: 0xe24,
  });
  for (let c = 1; c <= 4; c++) {
    attacker.registerMessagePort(c, (vp, type, payload) => attacker.postMessageToGuest(vp, c, type, payload));
    attacker.registerEventPort(c, (vp, flag) => void attacker.signalGuestEvent(vp, c, flag), 16);
  }
  const r = runPartition(attacker, 100_000_000);
  assert.equal(r.stop, "debug-exit", r.output);
  assert.equal(stateHash(victim), before);
});
