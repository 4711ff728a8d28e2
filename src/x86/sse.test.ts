// Tests the SSE/SSE2/MMX data movement and integer groups and the architectural checks (CR0.EM/TS,
// CR4.OSFXSR, 16-byte alignment, #XM vs #UD) with nasm snippets run to HLT in 64-bit mode.
import { test } from "node:test";
import assert from "node:assert/strict";
import { exec } from "./nasm-harness.test.js";
import { bytes, faultVector, run, xmm } from "./simd-harness.test.js";

test("SSE availability: #UD without CR4.OSFXSR or with CR0.EM, #NM with CR0.TS, aligned #GP", () => {
  assert.equal(faultVector("pxor xmm0, xmm0", [], 0), 6);
  assert.equal(faultVector("pxor xmm0, xmm0", [], 0x600, 4), 6);
  assert.equal(faultVector("pxor xmm0, xmm0", [], 0x600, 8), 7);
  assert.equal(
    faultVector(
      "movdqa xmm0, [rbx + 8]",
      bytes(32, (i) => i),
    ),
    13,
  );
  assert.equal(
    faultVector(
      "paddb xmm0, [rbx + 4]",
      bytes(32, (i) => i),
    ),
    13,
  );
  assert.equal(
    faultVector(
      "movdqu xmm0, [rbx + 4]\nmov eax, 99",
      bytes(32, (i) => i),
    ),
    99,
  );
  // MMX: CR0.EM -> #UD, CR0.TS -> #NM, and no OSFXSR requirement.
  assert.equal(faultVector("paddb mm0, mm1\nmov eax, 98", [], 0), 98);
  assert.equal(faultVector("paddb mm0, mm1", [], 0, 4), 6);
  assert.equal(faultVector("emms", [], 0, 8), 7);
});

test("moves: MOVDQA/MOVDQU/MOVAPS/MOVUPS, MOVD/MOVQ (zero-extension), MOVSS/MOVSD merge rules", () => {
  const d = bytes(64, (i) => i + 1);
  let cpu = run(
    "movdqa xmm1, [rbx]\nmovdqu xmm2, [rbx + 3]\nmovups [rbx + 33], xmm1\nmovdqu xmm3, [rbx + 33]",
    d,
  );
  assert.equal(xmm(cpu, 1), "100f0e0d0c0b0a090807060504030201");
  assert.equal(xmm(cpu, 2), "131211100f0e0d0c0b0a090807060504");
  assert.equal(xmm(cpu, 3), xmm(cpu, 1));
  cpu = run(
    "pcmpeqb xmm0, xmm0\nmov eax, 0x11223344\nmovd xmm0, eax\npcmpeqb xmm1, xmm1\nmov rax, -2\nmovq xmm1, rax\n" +
      "pcmpeqb xmm2, xmm2\nmovss xmm2, [rbx]\npcmpeqb xmm3, xmm3\nmovss xmm3, xmm2\npcmpeqb xmm4, xmm4\nmovsd xmm4, [rbx]\n" +
      "movq rcx, xmm1\nmovd edx, xmm0",
    d,
  );
  assert.equal(xmm(cpu, 0), "00000000000000000000000011223344");
  assert.equal(xmm(cpu, 1), "0000000000000000fffffffffffffffe");
  assert.equal(xmm(cpu, 2), "00000000000000000000000004030201");
  assert.equal(xmm(cpu, 3), "ffffffffffffffffffffffff04030201");
  assert.equal(xmm(cpu, 4), "00000000000000000807060504030201");
  assert.equal(cpu.getReg(1).lo, -2);
  assert.equal(cpu.getReg(1).hi, -1);
  assert.equal(cpu.getReg(2).lo, 0x11223344);
});

test("moves: MOVHLPS/MOVLHPS/MOVLPS/MOVHPS, MOVQ xmm<->m64, MOVNTDQ, MASKMOVDQU", () => {
  const d = bytes(64, (i) => i);
  const cpu = run(
    "movdqa xmm0, [rbx]\nmovdqa xmm1, [rbx + 16]\nmovdqa xmm2, xmm0\nmovhlps xmm2, xmm1\nmovdqa xmm3, xmm0\n" +
      "movlhps xmm3, xmm1\nmovdqa xmm4, xmm0\nmovhps xmm4, [rbx + 32]\nmovlps xmm4, [rbx + 40]\nmovhps [rbx + 48], xmm0\n" +
      "movq xmm5, [rbx + 48]\nmovntdq [rbx + 32], xmm1\nmovdqa xmm6, [rbx + 32]\n" +
      "mov rdi, rbx\nmovdqa xmm7, xmm0\npcmpeqb xmm8, xmm8\npsrlw xmm8, 8\npxor xmm7, xmm7\nmaskmovdqu xmm7, xmm8\nmovdqa xmm9, [rbx]",
    d,
  );
  assert.equal(xmm(cpu, 2), "0f0e0d0c0b0a09081f1e1d1c1b1a1918");
  assert.equal(xmm(cpu, 3), "171615141312111007060504030201" + "00");
  assert.equal(xmm(cpu, 4), "27262524232221202f2e2d2c2b2a2928");
  assert.equal(xmm(cpu, 5), "00000000000000000f0e0d0c0b0a0908");
  assert.equal(xmm(cpu, 6), xmm(cpu, 1));
  // Mask bytes 0xff at even positions only (psrlw by 8 leaves 0x00ff words): even bytes zeroed.
  assert.equal(xmm(cpu, 9), "0f000d000b00090007000500030001" + "00");
});

test("integer lanes: PADD/PSUB wrap and saturate at the bounds", () => {
  const a = [0x7f, 0x80, 0xff, 0x00, 0x01, 0xfe, 0x40, 0xc0, 0x7f, 0x80, 0xff, 0x00, 0x01, 0xfe, 0x40, 0xc0];
  const b = [0x01, 0xff, 0x01, 0xff, 0x7f, 0x02, 0x40, 0xc0, 0x01, 0xff, 0x01, 0xff, 0x7f, 0x02, 0x40, 0xc0];
  const cpu = run(
    "movdqa xmm0, [rbx]\nmovdqa xmm1, [rbx+16]\n" +
      ["paddb", "paddsb", "paddusb", "psubb", "psubsb", "psubusb", "paddsw", "psubusw"]
        .map((op, i) => `movdqa xmm${i + 2}, xmm0\n${op} xmm${i + 2}, xmm1`)
        .join("\n"),
    [...a, ...b],
  );
  const lanes = (n: number): number[] => bytes(16, (i) => cpu.xmm[n * 4 + (i >> 2)]! >>> ((i & 3) * 8));
  const s8 = (v: number): number => (v << 24) >> 24;
  const sat = (v: number, lo: number, hi: number): number => Math.max(lo, Math.min(hi, v));
  assert.deepEqual(
    lanes(2),
    bytes(16, (i) => a[i]! + b[i]!),
  );
  assert.deepEqual(
    lanes(3),
    bytes(16, (i) => sat(s8(a[i]!) + s8(b[i]!), -128, 127)),
  );
  assert.deepEqual(
    lanes(4),
    bytes(16, (i) => sat(a[i]! + b[i]!, 0, 255)),
  );
  assert.deepEqual(
    lanes(5),
    bytes(16, (i) => a[i]! - b[i]!),
  );
  assert.deepEqual(
    lanes(6),
    bytes(16, (i) => sat(s8(a[i]!) - s8(b[i]!), -128, 127)),
  );
  assert.deepEqual(
    lanes(7),
    bytes(16, (i) => sat(a[i]! - b[i]!, 0, 255)),
  );
  // Words: 0x807f + 0xff01 (signed: -32641 + -255 -> -32768); 0x00ff - 0x7f01 unsigned -> 0.
  assert.equal(cpu.xmm[8 * 4]! & 0xffff, 0x8000);
  assert.equal(cpu.xmm[9 * 4]! & 0xffff, 0);
});

test("integer lanes: compares, PMOVMSKB, min/max, multiplies, PMADDWD, PAVG, PSADBW", () => {
  const d = [
    ...[1, 2, 3, 4, 0xfffe, 0x8000, 0x7fff, 0].flatMap((w) => [w & 0xff, w >> 8]),
    ...[1, 3, 2, 4, 2, 0x8000, 0x7fff, 0xffff].flatMap((w) => [w & 0xff, w >> 8]),
  ];
  const cpu = run(
    "movdqa xmm0, [rbx]\nmovdqa xmm1, [rbx+16]\n" +
      "movdqa xmm2, xmm0\npcmpeqw xmm2, xmm1\npmovmskb eax, xmm2\n" +
      "movdqa xmm3, xmm0\npcmpgtw xmm3, xmm1\n" +
      "movdqa xmm4, xmm0\npmullw xmm4, xmm1\nmovdqa xmm5, xmm0\npmulhw xmm5, xmm1\nmovdqa xmm6, xmm0\npmulhuw xmm6, xmm1\n" +
      "movdqa xmm7, xmm0\npmaddwd xmm7, xmm1\nmovdqa xmm8, xmm0\npminsw xmm8, xmm1\nmovdqa xmm9, xmm0\npavgw xmm9, xmm1\n" +
      "movdqa xmm10, xmm0\npsadbw xmm10, xmm1\nmovdqa xmm11, xmm0\npmuludq xmm11, xmm1",
    d,
  );
  const w = (n: number, i: number): number => (cpu.xmm[n * 4 + (i >> 1)]! >>> ((i & 1) * 16)) & 0xffff;
  assert.equal(cpu.getReg(0).lo, 0b0011110011000011);
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((i) => w(3, i)),
    [0, 0, 0xffff, 0, 0, 0, 0, 0xffff],
  );
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((i) => w(4, i)),
    [1, 6, 6, 16, 0xfffc, 0, 1, 0],
  );
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((i) => w(5, i)),
    [0, 0, 0, 0, 0xffff, 0x4000, 0x3fff, 0],
  );
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((i) => w(6, i)),
    [0, 0, 0, 0, 1, 0x4000, 0x3fff, 0],
  );
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => cpu.xmm[7 * 4 + i]!),
    [7, 22, -4 + 0x40000000, 0x3fff0001],
  );
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((i) => w(8, i)),
    [1, 2, 2, 4, 0xfffe, 0x8000, 0x7fff, 0xffff],
  );
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((i) => w(9, i)),
    [1, 3, 3, 4, 0x8000, 0x8000, 0x7fff, 0x8000],
  );
  // PSADBW low qword: |1-1|+0+|2-3|+0+|3-2|+0+|4-4|+0 = 2; high: bytes fe,ff,00,80,ff,7f,00,00 vs 02,00,00,80,ff,7f,ff,ff.
  assert.equal(cpu.xmm[10 * 4], 2);
  assert.equal(cpu.xmm[10 * 4 + 2], 0xfc + 0xff + 0 + 0 + 0 + 0 + 0xff + 0xff);
  // PMULUDQ: dword0 0x00020001 * 0x00030001, dword2 0x8000fffe * 0xffff0002.
  const p0 = 0x00020001n * 0x00030001n;
  const p1 = 0x8000fffen * 0x80000002n;
  assert.equal(BigInt(cpu.xmm[11 * 4]! >>> 0) | (BigInt(cpu.xmm[11 * 4 + 1]! >>> 0) << 32n), p0);
  assert.equal(BigInt(cpu.xmm[11 * 4 + 2]! >>> 0) | (BigInt(cpu.xmm[11 * 4 + 3]! >>> 0) << 32n), p1);
});

test("shuffles, unpacks, packs and shifts", () => {
  const d = bytes(32, (i) => i * 17);
  const cpu = run(
    "movdqa xmm0, [rbx]\nmovdqa xmm1, [rbx+16]\n" +
      "pshufd xmm2, xmm0, 0x1b\npshuflw xmm3, xmm0, 0x1b\npshufhw xmm4, xmm0, 0x1b\n" +
      "movdqa xmm5, xmm0\npunpcklbw xmm5, xmm1\nmovdqa xmm6, xmm0\npunpckhqdq xmm6, xmm1\n" +
      "movdqa xmm7, xmm0\npacksswb xmm7, xmm1\nmovdqa xmm8, xmm0\npackuswb xmm8, xmm1\n" +
      "movdqa xmm9, xmm0\npsrldq xmm9, 3\nmovdqa xmm10, xmm0\npslldq xmm10, 15\n" +
      "movdqa xmm11, xmm0\npsraw xmm11, 4\nmovdqa xmm12, xmm0\npsllq xmm12, 36\nmov eax, 3\nmovd xmm15, eax\n" +
      "movdqa xmm13, xmm0\npsrld xmm13, xmm15\nmovdqa xmm14, xmm0\nshufps xmm14, xmm1, 0x4e\n" +
      "pextrw ecx, xmm0, 5\npinsrw xmm0, ecx, 0",
    d,
  );
  const dw = (n: number, i: number): number => cpu.xmm[n * 4 + i]! >>> 0;
  const src = (i: number): number =>
    (d[i * 4]! | (d[i * 4 + 1]! << 8) | (d[i * 4 + 2]! << 16) | (d[i * 4 + 3]! << 24)) >>> 0;
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => dw(2, i)),
    [3, 2, 1, 0].map(src),
  );
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => dw(13, i)),
    [0, 1, 2, 3].map((i) => src(i) >>> 3),
  );
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => dw(14, i)),
    [src(2), src(3), src(4), src(5)],
  );
  const bytesOf = (n: number): number[] => bytes(16, (i) => cpu.xmm[n * 4 + (i >> 2)]! >>> ((i & 3) * 8));
  assert.deepEqual(
    bytesOf(9),
    bytes(16, (i) => (i + 3 < 16 ? d[i + 3]! : 0)),
  );
  assert.deepEqual(
    bytesOf(10),
    bytes(16, (i) => (i === 15 ? d[0]! : 0)),
  );
  assert.deepEqual(
    bytesOf(5),
    bytes(16, (i) => (i & 1 ? d[16 + (i >> 1)]! : d[i >> 1]!)),
  );
  assert.deepEqual(
    bytesOf(6),
    bytes(16, (i) => (i < 8 ? d[8 + i]! : d[16 + i]!)),
  );
  const s16 = (i: number): number => ((d[2 * i]! | (d[2 * i + 1]! << 8)) << 16) >> 16;
  assert.deepEqual(
    bytesOf(7),
    bytes(16, (i) => Math.max(-128, Math.min(127, s16(i)))),
  );
  assert.deepEqual(
    bytesOf(8),
    bytes(16, (i) => Math.max(0, Math.min(255, s16(i)))),
  );
  const w = (n: number, i: number): number => (cpu.xmm[n * 4 + (i >> 1)]! >>> ((i & 1) * 16)) & 0xffff;
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((i) => w(11, i)),
    [0, 1, 2, 3, 4, 5, 6, 7].map((i) => (s16(i) >> 4) & 0xffff),
  );
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => w(3, i)),
    [3, 2, 1, 0].map((i) => s16(i) & 0xffff),
  );
  assert.deepEqual(
    [4, 5, 6, 7].map((i) => w(4, i)),
    [7, 6, 5, 4].map((i) => s16(i) & 0xffff),
  );
  assert.equal(cpu.getReg(1).lo, s16(5) & 0xffff);
  assert.equal(w(0, 0), s16(5) & 0xffff);
  assert.equal(dw(12, 0), 0);
  assert.equal(dw(12, 1), (src(0) << 4) >>> 0);
});

test("MMX: registers alias the x87 significands, EMMS empties the tags", () => {
  const cpu = run(
    "mov rax, 0x0102030405060708\nmovq mm0, rax\nmovq mm1, mm0\npaddb mm1, mm0\nmovq rcx, mm1\nmovd edx, mm0\nemms",
  );
  assert.equal(cpu.getReg(1).lo, 0x0a0c0e10);
  assert.equal(cpu.getReg(1).hi, 0x02040608);
  assert.equal(cpu.getReg(2).lo, 0x05060708);
  assert.equal(cpu.fpu.regView.getUint16(8, true), 0xffff);
  assert.equal(cpu.fpu.ftw, 0);
});

test("SSE and x87 in 32-bit protected mode (CR4.OSFXSR set by the guest)", () => {
  const cpu = exec(
    "mov eax, cr4\nor eax, 0x600\nmov cr4, eax\nmov ebx, 0x20000\nmov dword [ebx], 7\nmov dword [ebx+4], 9\n" +
      "movq xmm0, [ebx]\npaddd xmm0, xmm0\nmovd ecx, xmm0\nfild dword [ebx+4]\nfsqrt\nfistp dword [ebx+8]\n" +
      "mov edx, [ebx+8]\nfxsave [ebx+512]\nmov esi, [ebx+512+160]\nhlt",
    "prot32",
  );
  assert.equal(cpu.getReg(1).lo, 14);
  assert.equal(cpu.getReg(2).lo, 3);
  assert.equal(cpu.getReg(6).lo, 14); // XMM0 in the 32-bit FXSAVE image
});
