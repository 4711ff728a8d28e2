// Owns: the tests of device accesses through the processor's intercepts (docs/decisions/0004): every MMIO
// access completes in one pass whatever its size and count (a string instruction with both operands in MMIO,
// 16-byte SSE loads and stores, FXRSTOR/FXSAVE, page-straddling reads and writes), in the order and the
// pieces a device sees them, and a run of any guest stays bounded.
// Must not: test device behaviour (the recording intercept answers every read with a known value).
// Spec: Intel SDM Vol. 2B CMPS/REP, MOVUPS, FXRSTOR/FXSAVE, INS; Vol. 3A 11.4.1 (natural alignment of bus
// accesses); docs/decisions/0004 (how the processor splits accesses for the intercept).
import { test } from "node:test";
import assert from "node:assert/strict";
import { assemble, machine, RecordingDevices, runToExit } from "./nasm-harness.test.js";
import { ExitReason } from "./vm-exit.js";

const SSE_ON = "mov eax, cr4\nor eax, 0x600\nmov cr4, eax\n";

/** The low byte of every MMIO byte is the low byte of its address, except where `diff` says otherwise. */
function bytewise(
  diff: Record<number, number> = {},
): (gpa: number, size: number) => { lo: number; hi: number } {
  return (gpa, size) => {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < size; i++) {
      const a = gpa + i;
      const b = diff[a] ?? a & 0xff;
      if (i < 4) lo |= b << (8 * i);
      else hi |= b << (8 * (i - 4));
    }
    return { lo, hi };
  };
}

test("REPE CMPSB between two MMIO ranges completes: every element read once, in order, result right", () => {
  const src = `
    mov esi, 0xfec00000
    mov edi, 0xfed00000
    mov ecx, 16
    cld
    repe cmpsb
    setz bl
    hlt`;
  const { cpu } = machine("prot32", assemble(src, 32));
  // The ranges agree up to byte 9, where the second one differs.
  const dev = new RecordingDevices(undefined, bytewise({ 0xfed00009: 0x77 })).attach(cpu);
  assert.equal(runToExit(cpu, 100_000), ExitReason.Hlt);
  assert.equal(cpu.getReg(1).lo, 6, "ECX: 10 elements compared");
  assert.equal(cpu.getReg(6).lo >>> 0, 0xfec0000a, "ESI past the differing byte");
  assert.equal(cpu.getReg(7).lo >>> 0, 0xfed0000a);
  assert.equal(cpu.getReg(3).lo & 0xff, 0, "ZF clear: the ranges differ");
  const expected: string[] = [];
  for (let i = 0; i < 10; i++)
    expected.push(`mr ${(0xfec00000 + i).toString(16)} 1`, `mr ${(0xfed00000 + i).toString(16)} 1`);
  assert.deepEqual(dev.log, expected);
});

test("a 16-byte SSE load from MMIO is two 8-byte reads, lowest address first, assembled in the register", () => {
  const src = `${SSE_ON}
    movups xmm0, [0xfee00010]
    movd eax, xmm0
    psrldq xmm0, 4
    movd ebx, xmm0
    psrldq xmm0, 4
    movd ecx, xmm0
    psrldq xmm0, 4
    movd edx, xmm0
    hlt`;
  const { cpu } = machine("prot32", assemble(src, 32));
  const dev = new RecordingDevices(undefined, bytewise()).attach(cpu);
  assert.equal(runToExit(cpu), ExitReason.Hlt);
  assert.deepEqual(dev.log, ["mr fee00010 8", "mr fee00018 8"]);
  assert.deepEqual(
    [0, 3, 1, 2].map((r) => cpu.getReg(r).lo >>> 0),
    [0x13121110, 0x17161514, 0x1b1a1918, 0x1f1e1d1c],
  );
});

test("a 16-byte SSE store to MMIO reaches the device whole: two 8-byte writes, lowest address first", () => {
  const src = `${SSE_ON}
    mov dword [0x9000], 0x03020100
    mov dword [0x9004], 0x07060504
    mov dword [0x9008], 0x0b0a0908
    mov dword [0x900c], 0x0f0e0d0c
    movups xmm1, [0x9000]
    movups [0xfee00020], xmm1
    hlt`;
  const { cpu } = machine("prot32", assemble(src, 32));
  const dev = new RecordingDevices().attach(cpu);
  assert.equal(runToExit(cpu), ExitReason.Hlt);
  assert.deepEqual(dev.log, ["mw fee00020 8 3020100 7060504", "mw fee00028 8 b0a0908 f0e0d0c"]);
});

test("FXRSTOR from MMIO completes (64 8-byte reads) and FXSAVE to MMIO writes its whole image", () => {
  const src = `${SSE_ON}
    fxrstor [0xfee00000]
    movd eax, xmm0
    movd ebx, xmm7
    fxsave [0xfee00200]
    hlt`;
  const { cpu } = machine("prot32", assemble(src, 32));
  // Offsets below 160 (x87 state, MXCSR) read as zero, which FXRSTOR accepts; the XMM area reads its address.
  const dev = new RecordingDevices(undefined, (gpa, size) =>
    (gpa & 0xfff) < 160 ? { lo: 0, hi: 0 } : bytewise()(gpa, size),
  ).attach(cpu);
  assert.equal(runToExit(cpu), ExitReason.Hlt);
  // FXRSTOR's reads come first (FXSAVE then reads its area before writing, keeping the bytes it leaves).
  const reads = dev.log.slice(0, 64);
  const writes = dev.log.filter((l) => l.startsWith("mw "));
  assert.ok(reads.every((l) => l.startsWith("mr ")));
  assert.equal(reads[0], "mr fee00000 8");
  assert.equal(reads[63], "mr fee001f8 8");
  assert.equal(cpu.getReg(0).lo >>> 0, 0xa3a2a1a0, "XMM0 from offset 160");
  assert.equal(cpu.getReg(3).lo >>> 0, 0x13121110, "XMM7 from offset 272");
  assert.equal(writes.length, 36, "FXSAVE outside 64-bit mode: the 288 bytes up to XMM7");
  assert.match(
    writes.find((w) => w.startsWith("mw fee002a0 "))!,
    /^mw fee002a0 8 a3a2a1a0 a7a6a5a4$/,
  );
});

test("a page-straddling read is split at the page boundary; its MMIO part in naturally aligned pieces", () => {
  const src = `
    mov dword [0x7ffffc], 0x2211ffee
    mov eax, [0x7ffffe]        ; two bytes of RAM, then two bytes of MMIO at 8 MiB
    mov ebx, [0xfee00ffe]      ; MMIO on both sides of a page boundary
    mov cx, [0xfee00fff]
    hlt`;
  const { cpu } = machine("prot32", assemble(src, 32));
  const dev = new RecordingDevices(undefined, bytewise()).attach(cpu);
  assert.equal(runToExit(cpu), ExitReason.Hlt);
  assert.equal(cpu.getReg(0).lo >>> 0, 0x01002211);
  assert.equal(cpu.getReg(3).lo >>> 0, 0x0100fffe);
  assert.equal(cpu.getReg(1).lo & 0xffff, 0x00ff);
  assert.deepEqual(dev.log, [
    "mr 800000 2",
    "mr fee00ffe 2",
    "mr fee01000 2",
    "mr fee00fff 1",
    "mr fee01000 1",
  ]);
});

test("an 8-byte straddling read of MMIO is made of 1/2/4-byte pieces; a straddling write likewise", () => {
  const src = `${SSE_ON}
    movq xmm0, [0xfee00ffd]
    movd eax, xmm0
    psrldq xmm0, 4
    movd ebx, xmm0
    mov ecx, 0x44332211
    mov [0xfee00ffe], ecx
    mov [0x7fffff], ecx
    hlt`;
  const { cpu, mem } = machine("prot32", assemble(src, 32));
  const dev = new RecordingDevices(undefined, bytewise()).attach(cpu);
  assert.equal(runToExit(cpu), ExitReason.Hlt);
  assert.equal(cpu.getReg(0).lo >>> 0, 0x00fffefd);
  assert.equal(cpu.getReg(3).lo >>> 0, 0x04030201);
  assert.deepEqual(dev.log, [
    "mr fee00ffd 1",
    "mr fee00ffe 2",
    "mr fee01000 4",
    "mr fee01004 1",
    "mw fee00ffe 2 2211 0",
    "mw fee01000 2 4433 0",
    "mw 800000 2 3322 0",
    "mw 800002 1 44 0",
  ]);
  assert.equal(mem.bytes[0x7fffff], 0x11, "the RAM part of the straddling write");
});

test("REP INSB into MMIO probes the destination without reading it; a read-modify-write reads then writes", () => {
  const src = `
    mov edi, 0xfee00000
    mov dx, 0x60
    mov ecx, 2
    cld
    rep insb
    add dword [0xfee00010], 1
    hlt`;
  const { cpu } = machine("prot32", assemble(src, 32));
  let n = 0x41;
  const dev = new RecordingDevices(() => n++, bytewise()).attach(cpu);
  assert.equal(runToExit(cpu), ExitReason.Hlt);
  assert.deepEqual(dev.log, [
    "in 60 1",
    "mw fee00000 1 41 0",
    "in 60 1",
    "mw fee00001 1 42 0",
    "mr fee00010 4",
    "mw fee00010 4 13121111 0",
  ]);
});

test("a guest whose exception handler faults forever is bounded: faults count, retired stays", () => {
  // IDT entry 6 (#UD) points at a UD2: every delivery faults again without retiring anything.
  const src = `
    mov dword [0x9000 + 6 * 8], 0x00180000 | ((handler - $$ + 0x10000) & 0xffff)
    mov dword [0x9000 + 6 * 8 + 4], 0x00008e00 | ((handler - $$ + 0x10000) & 0xffff0000)
    lidt [idtr]
    ud2
  handler:
    ud2
  idtr:
    dw 8 * 8 - 1
    dd 0x9000`;
  const { cpu } = machine("prot32", assemble(src, 32));
  const before = cpu.retired;
  cpu.run(10_000);
  cpu.run(10_000);
  assert.equal(cpu.retired - before, 3, "only the setup retired");
  assert.ok(cpu.faults >= 19_990, `faults counted: ${cpu.faults}`);
});
