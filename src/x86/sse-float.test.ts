// Tests the SSE/SSE2 floating-point instructions at instruction level (packed/scalar forms, CMPxx
// predicates, COMIS/UCOMIS flags, conversions, MXCSR control and #XM/#UD for unmasked exceptions) and the
// state save/restore group (FXSAVE/FXRSTOR, XSAVE/XRSTOR, XGETBV/XSETBV, CPUID leaf 1/0xD bits).
// Lane-exact arithmetic against the host is in softfloat.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { f32s, f64s, faultVector, run, xmm } from "./simd-harness.test.js";

const f32at = (cpu: { xmm: Int32Array }, n: number, k: number): number =>
  new Float32Array(cpu.xmm.buffer, cpu.xmm.byteOffset)[n * 4 + k]!;
const f64at = (cpu: { xmm: Int32Array }, n: number, k: number): number =>
  new Float64Array(cpu.xmm.buffer, cpu.xmm.byteOffset)[n * 2 + k]!;

test("packed and scalar arithmetic: lanes, merge of the upper lanes, rounding control", () => {
  const cpu = run(
    "movaps xmm0, [rbx]\nmovaps xmm1, [rbx+16]\nmovaps xmm2, xmm0\naddps xmm2, xmm1\nmovaps xmm3, xmm0\n" +
      "mulss xmm3, xmm1\nmovapd xmm4, [rbx+32]\nmovapd xmm5, xmm4\ndivpd xmm5, [rbx+48]\nsqrtsd xmm6, [rbx+48]\n" +
      "movaps xmm7, xmm0\nmaxps xmm7, xmm1\n" +
      // 1/3 in round-up and round-down differ in the last bit
      "mov dword [rbx+64], 0x5f80\nldmxcsr [rbx+64]\nmovsd xmm8, [rbx+32]\ndivsd xmm8, [rbx+56]\n" +
      "mov dword [rbx+64], 0x3f80\nldmxcsr [rbx+64]\nmovsd xmm9, [rbx+32]\ndivsd xmm9, [rbx+56]\nstmxcsr [rbx+68]\nmov ecx, [rbx+68]",
    [...f32s(1, -2, 3.5, 1e30), ...f32s(0.25, 8, -3.5, 1e30), ...f64s(1, -9), ...f64s(4, 3)],
  );
  assert.deepEqual(
    [0, 1, 2, 3].map((k) => f32at(cpu, 2, k)),
    [1.25, 6, 0, Math.fround(2e30)],
  );
  assert.deepEqual(
    [0, 1, 2, 3].map((k) => f32at(cpu, 3, k)),
    [0.25, -2, 3.5, Math.fround(1e30)],
  );
  assert.deepEqual([f64at(cpu, 5, 0), f64at(cpu, 5, 1)], [0.25, -3]);
  assert.equal(f64at(cpu, 6, 0), 2);
  assert.deepEqual(
    [0, 1, 2, 3].map((k) => f32at(cpu, 7, k)),
    [1, 8, 3.5, Math.fround(1e30)],
  );
  const up = f64at(cpu, 8, 0);
  const down = f64at(cpu, 9, 0);
  assert.ok(up > down && up - down < 1e-16 && down === 1 / 3 && up > 1 / 3);
  assert.equal(cpu.getReg(1).lo, 0x3f80 | 0x20); // PE set by the inexact divisions
});

test("CMPPS predicates 0-7 with NaN lanes, COMISS/UCOMISS flags", () => {
  const nan = NaN;
  const cpu = run(
    "movaps xmm0, [rbx]\nmovaps xmm1, [rbx+16]\n" +
      [0, 1, 2, 3, 4, 5, 6, 7]
        .map((p) => `movaps xmm${p + 2}, xmm0\ncmpps xmm${p + 2}, xmm1, ${p}`)
        .join("\n") +
      "\ncomiss xmm0, xmm1\npushfq\npop r8\nmovss xmm10, [rbx+4]\nucomiss xmm10, xmm1\npushfq\npop r9\n" +
      "movss xmm11, [rbx+12]\nucomiss xmm11, xmm0\npushfq\npop r10\nstmxcsr [rbx+32]\nmov ecx, [rbx+32]",
    [...f32s(1, 2, 3, nan), ...f32s(1, 1, 4, 0)],
  );
  const m = (p: number): number[] => [0, 1, 2, 3].map((k) => (cpu.xmm[(p + 2) * 4 + k]! === -1 ? 1 : 0));
  assert.deepEqual(m(0), [1, 0, 0, 0]); // EQ
  assert.deepEqual(m(1), [0, 0, 1, 0]); // LT
  assert.deepEqual(m(2), [1, 0, 1, 0]); // LE
  assert.deepEqual(m(3), [0, 0, 0, 1]); // UNORD
  assert.deepEqual(m(4), [0, 1, 1, 1]); // NEQ
  assert.deepEqual(m(5), [1, 1, 0, 1]); // NLT
  assert.deepEqual(m(6), [0, 1, 0, 1]); // NLE
  assert.deepEqual(m(7), [1, 1, 1, 0]); // ORD
  const st = (r: number): number => cpu.getReg(r).lo & 0x8d5;
  assert.equal(st(8), 0x40); // 1 == 1: ZF
  assert.equal(st(9), 0); // 2 > 1
  assert.equal(st(10), 0x45); // NaN: ZF PF CF
  // LT/LE/NLT/NLE on a QNaN lane and COMISS... raise IE; UCOMISS on QNaN does not (already set anyway).
  assert.equal(cpu.getReg(1).lo & 1, 1);
});

test("conversions: CVTSI2SS/SD, CVT(T)SS2SI/SD2SI with integer indefinite, packed conversions", () => {
  const cpu = run(
    "mov rax, -7\ncvtsi2sd xmm0, rax\nmov eax, 16777217\ncvtsi2ss xmm1, eax\ncvtsd2si ecx, [rbx]\ncvttsd2si rdx, [rbx]\n" +
      "cvtss2si esi, [rbx+16]\ncvtsd2si rdi, [rbx+8]\ncvtdq2ps xmm2, [rbx+32]\ncvtps2dq xmm3, [rbx+48]\n" +
      "cvttps2dq xmm4, [rbx+48]\ncvtps2pd xmm5, [rbx+48]\ncvtpd2ps xmm6, [rbx]\ncvtdq2pd xmm7, [rbx+32]\ncvtpd2dq xmm8, [rbx]",
    [
      ...f64s(2.5, 1e300),
      ...f32s(-3.5, 0, 0, 0),
      ...[1, -2, 0x7fffffff, -0x80000000].flatMap((v) => [...new Uint8Array(new Int32Array([v]).buffer)]),
      ...f32s(1.5, -2.5, 3e9, NaN),
    ],
  );
  assert.equal(f64at(cpu, 0, 0), -7);
  assert.equal(f32at(cpu, 1, 0), 16777216);
  assert.equal(cpu.getReg(1).lo, 2); // round to even
  assert.equal(cpu.getReg(2).lo, 2);
  assert.equal(cpu.getReg(6).lo, -4);
  assert.equal(cpu.getReg(7).hi, 0x80000000 | 0); // 1e300 -> integer indefinite
  assert.deepEqual(
    [0, 1, 2, 3].map((k) => f32at(cpu, 2, k)),
    [1, -2, 2147483648, -2147483648],
  );
  assert.deepEqual(
    [0, 1, 2, 3].map((k) => cpu.xmm[3 * 4 + k]!),
    [2, -2, 0x80000000 | 0, 0x80000000 | 0],
  );
  assert.deepEqual(
    [0, 1, 2, 3].map((k) => cpu.xmm[4 * 4 + k]!),
    [1, -2, 0x80000000 | 0, 0x80000000 | 0],
  );
  assert.deepEqual([f64at(cpu, 5, 0), f64at(cpu, 5, 1)], [1.5, -2.5]);
  assert.deepEqual(
    [0, 1, 2, 3].map((k) => f32at(cpu, 6, k)),
    [2.5, Infinity, 0, 0],
  );
  assert.deepEqual([f64at(cpu, 7, 0), f64at(cpu, 7, 1)], [1, -2]);
  assert.deepEqual(
    [0, 1, 2, 3].map((k) => cpu.xmm[8 * 4 + k]!),
    [2, 0x80000000 | 0, 0, 0],
  );
});

test("unmasked SIMD exceptions: #XM with OSXMMEXCPT, #UD without; destination unchanged; LDMXCSR #GP", () => {
  const src =
    "mov dword [rbx+16], 0x1d80\nldmxcsr [rbx+16]\nmovss xmm0, [rbx]\nxorps xmm1, xmm1\ndivss xmm0, xmm1";
  assert.equal(faultVector(src, f32s(1)), 19);
  assert.equal(faultVector(src, f32s(1), 0x200), 6);
  const cpu = run(
    "mov dword [rbx+16], 0x1d80\nldmxcsr [rbx+16]\nmovss xmm0, [rbx]\nxorps xmm1, xmm1\nmovss xmm2, [rbx+4]\n" +
      "addss xmm2, xmm0\nstmxcsr [rbx+20]\nmov ecx, [rbx+20]",
    f32s(1, 2),
  );
  assert.equal(cpu.getReg(1).lo, 0x1d80);
  assert.equal(faultVector("mov dword [rbx], 0x10000\nldmxcsr [rbx]"), 13);
  // Masked: divide by zero gives infinity and sets ZE.
  const c2 = run(
    "movss xmm0, [rbx]\nxorps xmm1, xmm1\ndivss xmm0, xmm1\nstmxcsr [rbx+8]\nmov ecx, [rbx+8]",
    f32s(1),
  );
  assert.equal(f32at(c2, 0, 0), Infinity);
  assert.equal(c2.getReg(1).lo, 0x1f84);
  assert.equal(xmm(c2, 1), "0".repeat(32));
});

test("FXSAVE/FXRSTOR round trip (64-bit layout), MXCSR_MASK, alignment and reserved MXCSR bits", () => {
  const cpu = run(
    "mov rax, 0x1122334455667788\nmovq mm3, rax\nmovq xmm15, rax\nmov dword [rbx+0x300], 0x7f80\nldmxcsr [rbx+0x300]\n" +
      "fxsave64 [rbx]\npxor xmm15, xmm15\nmov dword [rbx+0x300], 0x1f80\nldmxcsr [rbx+0x300]\nemms\nfxrstor64 [rbx]\n" +
      "stmxcsr [rbx+0x304]\nmov ecx, [rbx+0x304]\nmov edx, [rbx+28]\nmovzx esi, byte [rbx+4]\nmov rdi, [rbx+32+3*16]",
  );
  assert.equal(xmm(cpu, 15), "00000000000000001122334455667788");
  assert.equal(cpu.getReg(1).lo, 0x7f80);
  assert.equal(cpu.getReg(2).lo, 0xffff);
  assert.equal(cpu.getReg(6).lo, 0xff);
  assert.equal(cpu.getReg(7).lo, 0x55667788);
  assert.equal(cpu.fpu.ftw, 0xff);
  assert.equal(faultVector("fxsave [rbx+8]"), 13);
  assert.equal(faultVector("fxsave [rbx]\nmov dword [rbx+24], 0x10000\nfxrstor [rbx]"), 13);
  assert.equal(faultVector("fxsave [rbx]", [], 0x600, 8), 7);
});

test("XSAVE/XRSTOR, XGETBV/XSETBV, CPUID leaf 1 OSXSAVE and leaf 0xD", () => {
  const OSX = 0x40000 | 0x600;
  assert.equal(faultVector("xor ecx, ecx\nxgetbv"), 6);
  const cpu = run(
    "mov eax, 1\ncpuid\nmov r8d, ecx\nmov r9d, edx\nxor ecx, ecx\nmov eax, 3\nxor edx, edx\nxsetbv\nxor ecx, ecx\nxgetbv\n" +
      "mov r10d, eax\nmov eax, 0xd\nxor ecx, ecx\ncpuid\nmov r11d, eax\nmov r12d, ebx\n" +
      "mov rax, 0x0102030405060708\nmovq xmm3, rax\nmov eax, 3\nxor edx, edx\nxsave [rbx]\npxor xmm3, xmm3\n" +
      "mov eax, 2\nxrstor [rbx]\nmov r13, [rbx+512]\nmov eax, 3\nmov qword [rbx+512], 1\nxrstor [rbx]",
    [],
    OSX,
  );
  const r = (n: number): number => cpu.getReg(n as 0).lo;
  assert.equal((r(8) >>> 26) & 3, 3); // XSAVE and OSXSAVE
  assert.equal(r(9) & 1, 1); // FPU
  assert.equal((r(9) >>> 23) & 0xf, 0xf); // MMX FXSR SSE SSE2
  assert.equal(r(10), 3);
  assert.equal(r(11), 3);
  assert.equal(r(12), 576);
  assert.equal(cpu.getReg(13).lo, 3); // XSTATE_BV
  // The last XRSTOR had XSTATE_BV[1] = 0: XMM registers initialized to zero.
  assert.equal(xmm(cpu, 3), "0".repeat(32));
  assert.equal(faultVector("xor ecx, ecx\nmov eax, 2\nxor edx, edx\nxsetbv", [], OSX), 13);
  assert.equal(faultVector("xor ecx, ecx\nmov eax, 7\nxor edx, edx\nxsetbv", [], OSX), 13);
  assert.equal(faultVector("mov eax, 3\nxor edx, edx\nxsave [rbx+16]", [], OSX), 13);
  assert.equal(
    faultVector("mov eax, 3\nxor edx, edx\nxsave [rbx]\nmov qword [rbx+520], 1\nxrstor [rbx]", [], OSX),
    13,
  );
});
