// Owns: the focused tests of block translation: self-modifying code (inside the running block, across
// blocks, across pages and through a page-straddling instruction) and exceptions in the middle of a block,
// each run with translation off (the reference), translating on first execution, and with a small threshold
// so that blocks become hot first; the architectural state must be identical.
// Must not: test instruction semantics (the other *.test.ts files do, translated).
// Spec: Intel SDM Vol. 3A 8.1.3 (self- and cross-modifying code), 6.5/6.6 (faults are precise).
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest-memory.js";
import { Cpu } from "./cpu.js";
import { assemble, CODE_BASE, runToHlt, setupMode } from "./nasm-harness.test.js";
import { ExitReason } from "./vm-exit.js";

const THRESHOLDS = [-1, 0, 3];
const IDT = 0x40000;
const STUBS = 0x30000;

interface State {
  regs: string[];
  rip: string;
  rflags: number;
  retired: number;
  cr2: string;
  stack: string;
  exit: ExitReason;
  mmio: string[];
  translated: number;
}

/** Runs 64-bit `src` (ending in HLT) with the given threshold; every vector's stub is a bare HLT. */
function runWith(src: string, jitThreshold: number, extra?: (mem: GuestMemory) => void): State {
  const mem = new GuestMemory(8 * 1024 * 1024);
  const cpu = new Cpu(mem, { deterministic: true, jitThreshold });
  setupMode(cpu, mem, "long64", assemble(src, 64, CODE_BASE));
  const dv = new DataView(mem.buffer);
  for (let i = 0; i < 32; i++) {
    const h = STUBS + 8 * i;
    dv.setUint8(h, 0xf4);
    dv.setUint16(IDT + i * 16, h & 0xffff, true);
    dv.setUint16(IDT + i * 16 + 2, 0x08, true);
    dv.setUint16(IDT + i * 16 + 4, 0x8e00, true);
    dv.setUint16(IDT + i * 16 + 6, h >>> 16, true);
  }
  cpu.setDescriptorTable("idtr", IDT, 32 * 16 - 1);
  extra?.(mem);
  // MMIO writes reach the intercept and end the batch once they retired: each is logged with the retired
  // count at that point, and the run continues; anything else ends the run.
  let exit: ExitReason;
  const mmio: string[] = [];
  cpu.mmio = {
    hi: 0,
    read: () => -1,
    write: (gpa, _size, lo) => void mmio.push(`${gpa.toString(16)}=${lo.toString(16)}`),
  };
  for (;;) {
    const logged = mmio.length;
    exit = runToHlt(cpu);
    for (let i = logged; i < mmio.length; i++) mmio[i] += `@${cpu.retired}`;
    if (exit !== ExitReason.BudgetExhausted || mmio.length === logged) break;
  }
  const hex = (v: { lo: number; hi: number }): string =>
    (v.hi >>> 0).toString(16).padStart(8, "0") + (v.lo >>> 0).toString(16).padStart(8, "0");
  const regs: string[] = [];
  for (let r = 0; r < 16; r++) regs.push(hex(cpu.getReg(r)));
  const rsp = cpu.getReg(4).lo;
  return {
    regs,
    rip: hex(cpu.getRip()),
    rflags: cpu.getRflags(),
    retired: cpu.retired,
    cr2: hex(cpu.getControl("cr2")),
    stack: Buffer.from(mem.bytes.subarray(rsp, rsp + 48)).toString("hex"),
    exit,
    mmio,
    translated: cpu.translatedBlocks,
  };
}

/** Runs src under every threshold; the state must equal the interpreter's; returns the reference. */
function sameEverywhere(src: string, extra?: (mem: GuestMemory) => void, hot = true): State {
  const ref = runWith(src, -1, extra);
  assert.equal(ref.translated, 0);
  for (const t of THRESHOLDS.slice(1)) {
    const s = runWith(src, t, extra);
    // (A page written on every pass is dropped every pass and never becomes hot: only threshold 0 must
    // translate there.)
    if (t === 0 || hot) assert.ok(s.translated > 0, `threshold ${t}: nothing was translated`);
    const { translated: _a, ...got } = s;
    const { translated: _b, ...want } = ref;
    assert.deepEqual(got, want, `threshold ${t}: state differs from the interpreter's`);
  }
  return ref;
}

test("self-modifying code inside the running block: the patched instruction runs with its new bytes", () => {
  const s = sameEverywhere(
    `
    xor edx, edx
    mov ecx, 50
  .loop:
    mov [rel patch + 1], ecx   ; rewrites the immediate two instructions ahead, in this very block
    nop
  patch:
    mov eax, 0x11111111
    add edx, eax
    dec ecx
    jnz .loop
    hlt`,
    undefined,
    false,
  );
  assert.equal(Number.parseInt(s.regs[2]!, 16), (50 * 51) / 2);
});

test("self-modifying code across blocks: a translated callee patched by its caller", () => {
  const s = sameEverywhere(`
    xor edx, edx
    mov ecx, 20
  .loop:
    call fn
    add edx, eax
    cmp ecx, 10
    jne .skip
    mov [rel fn + 1], ecx      ; once, after fn's block is hot
  .skip:
    dec ecx
    jnz .loop
    hlt
  fn:
    mov eax, 0
    ret`);
  assert.equal(Number.parseInt(s.regs[2]!, 16), 9 * 10);
});

test("self-modifying code across pages, including an instruction straddling the page boundary", () => {
  // fn's MOV EAX, imm32 starts 3 bytes before a page boundary: its immediate straddles the two pages.
  const s = sameEverywhere(`
    xor edx, edx
    mov ecx, 30
  .loop:
    call fn
    add edx, eax
    call fn2
    add edx, eax
    cmp ecx, 10
    jne .skip
    mov [rel fn + 1], ecx      ; low bytes on the first page, high bytes on the second
    lea ebx, [ecx * 2]
    mov [rel fn2 + 1], ebx     ; a hot block on another page
  .skip:
    dec ecx
    jnz .loop
    hlt
    times (0x1000 - 3) - ($ - $$) db 0x90
  fn:
    mov eax, 0x01000000
    ret
    times 0x2000 - ($ - $$) db 0x90
  fn2:
    mov eax, 0
    ret`);
  const want = 21 * 0x01000000 + 9 * 10 + 9 * 20;
  assert.equal(Number.parseInt(s.regs[2]!, 16), want);
});

test("a #PF in the middle of a hot block leaves the interpreter's state (RIP, registers, count, frame, CR2)", () => {
  const s = sameEverywhere(
    `
    mov ecx, 10
    mov rdi, 0x20000
  .loop:
    add rax, rcx
    mov rdx, [rdi + rcx * 8]   ; table: entry 1 is an unmapped address
    imul rbx, rcx, 3
    mov rsi, [rdx]             ; faults on the last iteration, mid-block
    add r8, rsi
    inc r9
    dec ecx
    jnz .loop
    hlt`,
    (mem) => {
      const dv = new DataView(mem.buffer);
      for (let i = 0; i <= 10; i++) dv.setBigUint64(0x20000 + i * 8, BigInt(0x21000 + i * 8), true);
      dv.setBigUint64(0x20000 + 8, 0x40_0000_0000n, true);
    },
  );
  assert.equal(s.cr2, "0000004000000000");
  assert.equal(s.rip, (STUBS + 8 * 14 + 1).toString(16).padStart(16, "0"));
});

test("a #DE and a #GP in the middle of a block, and a posted MMIO write, match the interpreter", () => {
  sameEverywhere(`
    mov ecx, 5
  .loop:
    mov eax, 100
    xor edx, edx
    lea ebx, [rcx - 1]
    div ebx                    ; #DE when ecx reaches 1
    add r10, rax
    dec ecx
    jnz .loop
    hlt`);
  sameEverywhere(
    `
    mov rax, 0x8000000000000000
    add rbx, 1
    mov rcx, [rax]             ; non-canonical: #GP(0)
    add rbx, 2
    hlt`,
    undefined,
    false,
  );
  const s = sameEverywhere(`
    mov ecx, 6
  .loop:
    lea eax, [rcx + 0x40]
    add r11, rcx
    mov [0x10000000], eax      ; outside RAM: an MMIO write ends the batch in the middle of the block
    add r12, rcx
    dec ecx
    jnz .loop
    hlt`);
  assert.equal(s.mmio.length, 6);
});

test("ENTER whose nesting display faults leaves RSP as before the instruction (interpreted or called from a unit)", () => {
  // RBP points at a non-canonical address: the display read of ENTER 16, 3 faults after the first push.
  const s = sameEverywhere(
    `
    mov r8, rsp
    mov rbp, 0x8000000000000010
    add rbx, 1
    enter 16, 3
    hlt`,
    undefined,
    false,
  );
  // The fault's frame was pushed below the original RSP (the #GP stub halts with it on the stack).
  const rsp = BigInt(`0x${s.regs[4]!}`);
  const r8 = BigInt(`0x${s.regs[8]!}`);
  assert.equal(r8 - rsp, 48n, "only the #GP frame (6 qwords with the error code) is on the stack");
});

test("a rotate after an arithmetic or logic producer keeps the producer's SF, ZF, AF and PF (pushed, read by Jcc and at a #PF)", () => {
  // Each producer sets AF, SF, ZF or PF differently; the rotate by a constant replaces CF and OF only.
  // The flags are read by PUSHF, by conditional jumps, and pushed by a #PF raised right after the rotate.
  const s = sameEverywhere(
    `
    mov ecx, 12
    mov rdi, 0x20000
    xor r12, r12
  .loop:
    mov eax, ecx
    shl eax, 28
    add eax, 0x0fffffff        ; AF, SF or ZF depending on ecx
    rol eax, 7
    pushfq
    pop rbx
    add r12, rbx
    lea edx, [rcx + 0x7f]
    sub edx, 0x88              ; borrow out of bit 4
    ror edx, 3
    pushfq
    pop rbx
    add r12, rbx
    mov rsi, rcx
    inc rsi
    rol rsi, 61
    jnp .odd
    add r12, 5
  .odd:
    and esi, ecx
    ror esi, 1
    js .neg
    add r12, 9
  .neg:
    dec ecx
    mov r8, [rdi + rcx * 8]
    add r8, 0x10
    ror r8, 5
    mov r9, [r8]               ; faults on the last pass: the frame holds the flags after ROR
    test ecx, ecx
    jnz .loop
    hlt`,
    (mem) => {
      const dv = new DataView(mem.buffer);
      // Entry i: the address (rotated left by 5, less 0x10) the loop loads from; entry 0 is unmapped.
      const rol5 = (a: bigint): bigint => ((a << 5n) | (a >> 59n)) & 0xffff_ffff_ffff_ffffn;
      for (let i = 0; i <= 12; i++)
        dv.setBigUint64(0x20000 + i * 8, rol5(BigInt(0x21000 + i * 0x100)) - 0x10n, true);
      dv.setBigUint64(0x20000, rol5(0x40_0000_0000n) - 0x10n, true);
    },
  );
  assert.equal(s.cr2, "0000004000000000");
});

test("where a unit stopped for its budget is a resume point, not a new entry: the page is compiled once", () => {
  // A hot loop run in slices of 3..17 instructions: every slice ends in the middle of the loop's block.
  // Counting those resume points as block starts (where a unit stopped, or where the next slice begins)
  // made each of them an entry of the next compilation (up to the recompilation limit), splitting the
  // loop into one block per instruction.
  const mem = new GuestMemory(8 * 1024 * 1024);
  const cpu = new Cpu(mem, { deterministic: true, jitThreshold: 3 });
  setupMode(
    cpu,
    mem,
    "long64",
    assemble(
      `
    mov ecx, 3000
  .loop:
    add eax, ecx
    xor edx, eax
    lea ebx, [rdx + rcx * 2]
    rol ebx, 3
    add esi, ebx
    sub edi, eax
    dec ecx
    jnz .loop
    hlt`,
      64,
      CODE_BASE,
    ),
  );
  let exit = ExitReason.BudgetExhausted;
  for (let i = 0; exit === ExitReason.BudgetExhausted && i < 100_000; i++) exit = cpu.run(3 + (i % 15));
  assert.equal(exit, ExitReason.Hlt);
  assert.equal(cpu.getReg(1).lo, 0);
  const stats = cpu.tierStats()!;
  assert.equal(stats.units, 1, `units compiled: ${stats.units}`);
  // Entries: the first instruction (where the processor started) and the loop head, nothing in between.
  const listing = cpu.tier!.unitListing(CODE_BASE >>> 12)!;
  const entries = listing.split("\n").filter((l) => / entry /.test(l));
  assert.equal(entries.length, 2, listing.split("(import")[0]);
  assert.ok((stats.translated ?? 0) > 5_000, `translated ${stats.translated}`);
});

test("32-bit reads of registers after 64-bit, 32-bit, 8-bit, POP and helper writes in one block see only the low half", () => {
  // A unit's register locals hold all 64 bits: a 32-bit operand is the low half, whatever wrote the
  // register (64-bit, a merge into the low byte, POP, a handler). SHR and CMP/SUB expose upper bits that
  // leak into a 32-bit operand (an unmasked read, or a mask skipped on a wrong assumption).
  sameEverywhere(`
    mov ecx, 40
    xor r12, r12
  .loop:
    mov rax, -1
    mov ebx, eax
    shr eax, 4                 ; 64-bit write before: 0x0fffffff
    shr ebx, 5                 ; 32-bit write before: 0x07ffffff
    add r12, rax
    add r12, rbx
    mov rdx, 0x123456789
    mov dl, 7
    cmp edx, ebx               ; CF from the low halves only
    pushfq
    pop rsi
    add r12, rsi
    mov r8, 0xfffffffe00000001
    push r8
    pop rdi
    sub edi, 2                 ; borrow from the low half of a popped value
    setb al
    add r12, rax
    add r12, rdi
    mov r9, -2
    bswap r9                   ; run by its handler
    shr r9d, 1
    add r12, r9
    dec ecx
    jnz .loop
    hlt`);
});

test("byte and word SHL/SHR/SAR by constants run inline and match the interpreter (values, CF/OF/SF/ZF/PF, a #PF)", () => {
  // Counts 1..width-1 are inline (forms.ts); 0, the width and more (masked to 5 bits, not to the width)
  // and CL counts stay with the handler: both kinds are mixed here, with registers whose upper bits must
  // survive (DX in RDX, AH in RAX, R8W) and memory operands, one of which faults on the last pass.
  const src = `
    mov ecx, 40
    mov rdi, 0x20000
    xor r12, r12
  .loop:
    mov rdx, 0x1234567890abcdef
    add edx, ecx
    shr dx, 5
    pushfq
    pop rbx
    add r12, rbx
    add r12, rdx
    mov rax, rcx
    imul eax, eax, 0x9e37
    sar ah, 3
    pushfq
    pop rbx
    add r12, rbx
    shl al, 7
    jo .ov
    add r12, 3
  .ov:
    add r12, rax
    mov r8, rcx
    shl r8, 11
    shl r8w, 1
    setc bl
    sar r8w, 15
    adc r12, r8
    shr r8b, 1
    setz bl
    add r12, rbx
    shl dx, 16                 ; handler: a count of the width
    sar dx, 20                 ; handler: above the width
    add r12, rdx
    sub r12, rax
    mov rsi, [rdi + rcx * 8]
    shr word [rsi], 3
    sar byte [rsi + 2], 6
    shl word [rsi + 4], 9
    pushfq
    pop rbx
    add r12, rbx
    add r12, [rsi]
    dec ecx
    jnz .loop
    hlt`;
  const s = sameEverywhere(src, (mem) => {
    const dv = new DataView(mem.buffer);
    for (let i = 1; i <= 40; i++) {
      dv.setBigUint64(0x20000 + i * 8, BigInt(0x21000 + i * 16), true);
      dv.setBigUint64(0x21000 + i * 16, (BigInt(i) * 0x9e3779b97f4a7c15n) & 0xffff_ffff_ffff_ffffn, true);
    }
    // The last pass (RCX = 1) shifts through an unmapped address.
    dv.setBigUint64(0x20008, 0x40_0000_0000n, true);
  });
  assert.equal(s.cr2, "0000004000000000");
  // The constant byte and word shifts are inline in the unit, the others are handler calls.
  const mem = new GuestMemory(8 * 1024 * 1024);
  const cpu = new Cpu(mem, { deterministic: true, jitThreshold: 3 });
  setupMode(cpu, mem, "long64", assemble(src, 64, CODE_BASE));
  runToHlt(cpu);
  const listing = cpu.tier!.unitListing(CODE_BASE >>> 12)!.split("(import")[0]!;
  const lines = listing.split("\n").filter((l) => /\b(shl|shr|sar)\b/.test(l));
  const handled = lines.filter((l) => / handler /.test(l));
  assert.equal(lines.length, 12, listing);
  assert.deepEqual(
    handled.map((l) => l.replace(/^.* handler +/, "").trim()),
    ["shl dx, 0x10", "sar dx, 0x14"],
    listing,
  );
});
