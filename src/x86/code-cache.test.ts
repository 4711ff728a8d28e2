// Owns: the tests of the decode cache's bounds and eviction (code-cache.ts) and of cached page-straddling
// instructions: a straddler must be decoded again when its tail page is written or when the next linear
// page is remapped to another physical page.
// Must not: test instruction semantics.
// Spec: Intel SDM Vol. 3A 8.1.3 (self-modifying code), 4.10.4 (INVLPG and remapped pages).
import { test } from "node:test";
import assert from "node:assert/strict";
import { CodeCache } from "./code-cache.js";
import { Insn } from "./insn.js";
import { assemble, CODE_BASE, machine, PML4_BASE, reg64, runToHlt } from "./nasm-harness.test.js";
import { ExitReason } from "./vm-exit.js";

test("the cache evicts its oldest pages, one at a time, to stay within its page and record bounds", () => {
  const dropped: number[] = [];
  const c = new CodeCache(3, 5, (p) => dropped.push(p.ramPage));
  for (const p of [10, 11, 12]) c.open(p);
  assert.equal(c.open(11).created, false);
  c.open(13);
  assert.deepEqual(dropped, [10]);
  assert.deepEqual(
    c.held().map((p) => p.ramPage),
    [11, 12, 13],
  );
  // Five records in page 13 (the youngest) fill the record bound; a sixth evicts the older pages first.
  const p13 = c.get(13)!;
  for (let i = 0; i < 5; i++) c.noteDecoded(p13);
  assert.equal(c.decoded, 5);
  c.noteDecoded(p13);
  assert.deepEqual(dropped, [10, 11, 12]);
  assert.equal(c.evictions, 3);
  assert.ok(c.get(13) !== undefined, "the page being filled is never the one evicted");
});

test("a straddling instruction is forgotten with its first page", () => {
  const c = new CodeCache(8, 100, () => undefined);
  const first = c.open(4).page;
  const d = new Insn();
  d.page2 = 9;
  c.addStraddle(first, 4093, d);
  assert.equal(c.straddleAt(first, 4093), d);
  c.drop(4);
  const again = c.open(4).page;
  assert.equal(c.straddleAt(again, 4093), undefined);
});

/**
 * A MOV EAX, imm32 at linear 0x40000ffd straddles into linear page 0x40001000, which 4 KiB page tables map
 * to physical page B or C. The program calls it, remaps the tail page (INVLPG), calls again, writes the
 * tail byte through the identity map, and calls again.
 */
test("a cached straddler follows its tail page's remapping and writes to it", () => {
  const PD2 = 0x300000;
  const PT = 0x301000;
  const A = 0x200000;
  const B = 0x201000;
  const C = 0x202000;
  const src = `
    call 0x40000ffd
    mov r8, rax
    call 0x40000ffd
    mov r9, rax
    mov dword [${PT + 8}], ${C + 3}
    invlpg [0x40001000]
    call 0x40000ffd
    mov r10, rax
    mov byte [${C + 1}], 0x55
    call 0x40000ffd
    mov r11, rax
    hlt`;
  for (const threshold of ["-1", "0"]) {
    process.env.VIRIDIAN_JIT_THRESHOLD = threshold;
    const { cpu, mem } = machine("long64", assemble(src, 64, CODE_BASE));
    const dv = new DataView(mem.buffer);
    // PDPT entry 1 (linear 1 GiB) -> PD2; PD2[0] -> PT; PT[0] -> A, PT[1] -> B.
    dv.setUint32(PML4_BASE + 0x1000 + 8, PD2 + 3, true);
    dv.setUint32(PD2, PT + 3, true);
    dv.setUint32(PT, A + 3, true);
    dv.setUint32(PT + 8, B + 3, true);
    mem.write(A + 0xffd, Uint8Array.of(0xb8, 0x01, 0x02));
    mem.write(B, Uint8Array.of(0x11, 0x22, 0xc3));
    mem.write(C, Uint8Array.of(0x33, 0x44, 0xc3));
    assert.equal(runToHlt(cpu), ExitReason.Hlt);
    assert.equal(reg64(cpu, 8), 0x22110201n, `threshold ${threshold}`);
    assert.equal(reg64(cpu, 9), 0x22110201n);
    assert.equal(reg64(cpu, 10), 0x44330201n, "the remapped tail page is fetched");
    assert.equal(reg64(cpu, 11), 0x55330201n, "the written tail byte is fetched");
  }
  delete process.env.VIRIDIAN_JIT_THRESHOLD;
});

/**
 * A hot loop calls a function whose first instruction straddles into a page of data that the host
 * rewrites between run() slices (no write through the processor, so nothing is invalidated): translated
 * code must notice the new tail bytes as the interpreter does, slice by slice.
 */
test("a straddler run inside a unit is checked against its tail bytes at every execution", () => {
  const PD2 = 0x300000;
  const PT = 0x301000;
  const A = 0x200000;
  const B = 0x201000;
  const src = `
    mov ecx, 3000
    xor r9d, r9d
  .loop:
    call 0x40000ffd
    add r9, rax
    dec ecx
    jnz .loop
    hlt`;
  const results: bigint[] = [];
  for (const threshold of ["-1", "0"]) {
    process.env.VIRIDIAN_JIT_THRESHOLD = threshold;
    const { cpu, mem } = machine("long64", assemble(src, 64, CODE_BASE));
    const dv = new DataView(mem.buffer);
    dv.setUint32(PML4_BASE + 0x1000 + 8, PD2 + 3, true);
    dv.setUint32(PD2, PT + 3, true);
    dv.setUint32(PT, A + 3, true);
    dv.setUint32(PT + 8, B + 3, true);
    mem.bytes.set([0xb8, 0x01, 0x02], A + 0xffd);
    mem.bytes.set([0x00, 0x00, 0xc3], B);
    let slices = 0;
    for (let r = cpu.run(997); r === ExitReason.BudgetExhausted; r = cpu.run(997)) {
      // The host changes the immediate's high bytes (in the tail page) every few slices.
      if (++slices % 3 === 0) mem.bytes[B] = slices & 0xff;
    }
    results.push(reg64(cpu, 9));
    if (threshold === "0") assert.ok(cpu.translatedBlocks > 0);
  }
  assert.equal(results[1], results[0], "translated run sums the same immediates as the interpreter");
  delete process.env.VIRIDIAN_JIT_THRESHOLD;
});
