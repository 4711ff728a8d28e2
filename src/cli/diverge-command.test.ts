import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { collapse, firstDivergence, parseQemuLog, type State } from "./diverge-command.js";

const h = (v: number): string => v.toString(16).padStart(16, "0");
function st(rip: number, regs: Record<number, number> = {}, wide = true): State {
  return { rip: h(rip), regs: Array.from({ length: 16 }, (_, i) => h(regs[i] ?? 0)), wide };
}

test("QEMU's -d cpu dumps parse in 32-bit and 64-bit formats", async () => {
  const dir = mkdtempSync(join(tmpdir(), "viridian-diverge-test-"));
  try {
    const log = join(dir, "q.log");
    writeFileSync(
      log,
      [
        "Trace 0: 0x7f00 [00000000/00100060/00000000/ff000201] ",
        "EAX=2badb002 EBX=00009500 ECX=00100060 EDX=00000511",
        "ESI=00000000 EDI=00000000 EBP=00000000 ESP=00006f00",
        "EIP=00100060 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0",
        "CR0=00000011 CR2=00000000 CR3=00000000 CR4=00000000",
        "Trace 0: 0x7f01 [00000000/00101000/00000000/ff000201] ",
        "RAX=0000000000000001 RBX=0000000000000002 RCX=0000000000000003 RDX=0000000000000004",
        "RSI=0000000000000005 RDI=0000000000000006 RBP=0000000000000007 RSP=0000000000000008",
        "R8 =0000000000000010 R9 =0000000000000011 R10=0000000000000012 R11=0000000000000013",
        "R12=0000000000000014 R13=0000000000000015 R14=0000000000000016 R15=0000000000000017",
        "RIP=0000000000101000 RFL=00000046 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=0",
        "DR0=0000000000000000 DR1=0000000000000000",
      ].join("\n"),
    );
    const states = await parseQemuLog(log, 10);
    assert.equal(states.length, 2);
    assert.equal(states[0]!.rip, h(0x100060));
    assert.equal(states[0]!.wide, false);
    assert.equal(states[0]!.regs[0], h(0x2badb002));
    assert.equal(states[0]!.regs[4], h(0x6f00), "ESP is register 4");
    assert.equal(states[0]!.regs[8], "", "no R8 in 32-bit dumps");
    assert.equal(states[1]!.wide, true);
    assert.equal(states[1]!.regs[1], h(3), "RCX is register 1");
    assert.equal(states[1]!.regs[15], h(0x17));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the first divergence: RIP, then registers once they have agreed", () => {
  const q = [st(1, { 0: 5, 3: 9 }), st(2, { 0: 6, 3: 7 }), st(3, { 0: 6, 3: 8 }), st(4)];
  // rbx differs from the start (undefined at entry) and is ignored until it agrees at state 1
  const ours = [st(1, { 0: 5, 3: 1 }), st(2, { 0: 6, 3: 7 }), st(3, { 0: 6, 3: 9 }), st(4)];
  assert.deepEqual(firstDivergence(ours, q), {
    index: 2,
    qemuIndex: 2,
    what: `rbx viridian=${h(9)} qemu=${h(8)}`,
  });
  assert.equal(firstDivergence(q, q), null);
  const branch = [st(1, { 0: 5 }), st(2, { 0: 6 }), st(7)];
  assert.match(firstDivergence(branch, q)!.what, /^rip viridian=0+7 qemu=0+3$/);
});

test("a state logged by one side only is skipped; REP iterations collapse", () => {
  const q = [st(1), st(0x20), st(0x22), st(0x24)];
  const ours = [st(1), st(0x22), st(0x24)];
  assert.equal(firstDivergence(ours, q), null);
  assert.deepEqual(
    collapse([st(1), st(2), st(2), st(2), st(3)]).map((s) => s.rip),
    [h(1), h(2), h(3)],
  );
});
