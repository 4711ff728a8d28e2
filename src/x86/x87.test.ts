// Compares the x87 instructions bit for bit with the host FPU: a C program compiled here with gcc runs the
// same encodings (arithmetic in D8/DE forms, FSQRT, FRNDINT, FSCALE, FST m32/m64, FIST(P)/FISTTP m16/m32/m64,
// FCOM, FXAM) on the same 80-bit operands under the same control word (every precision and rounding
// control, exceptions masked), and the emulator runs them as guest code; results and FSW (exception flags,
// C0-C3) must match. Hand tests cover the stack, tags, FNSTENV/FNSAVE images and the #MF protocol.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hostProcessor } from "../../tests/conformance/host-processor.js";
import { assemble, CODE_BASE, machine } from "./nasm-harness.test.js";
import { ExitReason } from "./vm-exit.js";
import { faultVector, run } from "./simd-harness.test.js";

/** [op bytes or store form, result bytes compared]. Operands: ST(0) = a, ST(1) = b. */
const OPS: ReadonlyArray<[string, string, number]> = [
  // [nasm, gas (AT&T), result size]; arithmetic ops leave their result in ST(0), stored as tword.
  ["db 0xd8, 0xc1", ".byte 0xd8, 0xc1", 10], // FADD ST(0), ST(1)
  ["db 0xd8, 0xe1", ".byte 0xd8, 0xe1", 10], // FSUB
  ["db 0xd8, 0xe9", ".byte 0xd8, 0xe9", 10], // FSUBR
  ["db 0xd8, 0xc9", ".byte 0xd8, 0xc9", 10], // FMUL
  ["db 0xd8, 0xf1", ".byte 0xd8, 0xf1", 10], // FDIV
  ["db 0xd8, 0xf9", ".byte 0xd8, 0xf9", 10], // FDIVR
  ["db 0xd9, 0xfa", ".byte 0xd9, 0xfa", 10], // FSQRT
  ["db 0xd9, 0xfc", ".byte 0xd9, 0xfc", 10], // FRNDINT
  ["db 0xd9, 0xfd", ".byte 0xd9, 0xfd", 10], // FSCALE
  ["db 0xde, 0xe9", ".byte 0xde, 0xe9", 10], // FSUBP ST(1), ST(0): b - a, pop
  ["db 0xde, 0xf9", ".byte 0xde, 0xf9", 10], // FDIVP: b / a, pop
  ["db 0xd8, 0xd1", ".byte 0xd8, 0xd1", 10], // FCOM ST(1)
  ["db 0xd9, 0xf8", ".byte 0xd9, 0xf8", 10], // FPREM (operands with close exponents: complete)
  ["db 0xd9, 0xf5", ".byte 0xd9, 0xf5", 10], // FPREM1
  ["db 0xd9, 0xe5", ".byte 0xd9, 0xe5", 10], // FXAM
  ["fst qword [rbx+48]", "fstl (%rbx)", 8],
  ["fst dword [rbx+48]", "fsts (%rbx)", 4],
  ["fist dword [rbx+48]", "fistl (%rbx)", 4],
  ["fist word [rbx+48]", "fists (%rbx)", 2],
  ["fistp qword [rbx+48]\nfld tword [rbx+16]", "fistpll (%rbx)\n fldt (%rdx)", 8],
  ["fisttp qword [rbx+48]\nfld tword [rbx+16]", "fisttpll (%rbx)\n fldt (%rdx)", 8],
  ["fisttp dword [rbx+48]\nfld tword [rbx+16]", "fisttpl (%rbx)\n fldt (%rdx)", 4],
];

function cSource(): string {
  const cases = OPS.map(([, gas, size], i) => {
    const tail = size === 10 ? `fstpt (%%rbx)` : "fstp %%st(0)";
    return `case ${i}: __asm__ volatile("fninit\\n fldcw (%%rcx)\\n fldt (%%rsi)\\n fldt (%%rdx)\\n ${gas.replace(/%/g, "%%").replace(/\n/g, "\\n")}\\n fnstsw %%ax\\n ${size === 10 ? tail : "fstp %%st(0)"}\\n fstp %%st(0)\\n mov %%ax, (%%rdi)" :: "b"(res), "c"(&r.cw), "d"(r.a), "S"(r.b), "D"(&sw) : "rax", "memory"); break;`;
  }).join("\n      ");
  return `
#include <stdio.h>
#include <stdint.h>
#include <string.h>
struct rec { uint32_t op; uint16_t cw; uint16_t pad; uint8_t a[16]; uint8_t b[16]; };
int main(void) {
  struct rec r;
  while (fread(&r, sizeof r, 1, stdin) == 1) {
    uint8_t res[16]; uint16_t sw = 0;
    memset(res, 0, sizeof res);
    switch (r.op) {
      ${cases}
    }
    fwrite(res, 16, 1, stdout); fwrite(&sw, 2, 1, stdout);
  }
  return 0;
}
`;
}

let seed = 0x9e3779b9 | 0;
function rnd(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}

/** A random 80-bit operand biased toward edge cases (10 bytes). */
function operand(op: number): number[] {
  const out = new DataView(new ArrayBuffer(10));
  const sign = rnd() & 1;
  let exp: number;
  let hi = (rnd() | 0x80000000) >>> 0;
  let lo = rnd();
  const k = rnd() % 20;
  if (k === 0) {
    exp = 0;
    hi = lo = 0;
  } else if (k === 1) {
    exp = 0x7fff;
    hi = 0x80000000;
    lo = 0;
  } else if (k === 2) {
    exp = 0x7fff;
    hi = (0xc0000000 | rnd()) >>> 0; // QNaN
  } else if (k === 3) {
    exp = 0x7fff;
    hi = (0x80000000 | (rnd() & 0x3fffffff)) >>> 0 || 0x80000001; // SNaN
    if (hi === 0x80000000 && lo === 0) lo = 1;
  } else if (k === 4) {
    exp = 0;
    hi = rnd() & 0x7fffffff; // denormal
  } else if (k === 5) {
    exp = 1 + (rnd() % 4); // near the denormal boundary
  } else if (k === 6) {
    exp = 0x7ffe - (rnd() % 3); // near overflow
  } else if (k === 7) {
    exp = 16383 + (rnd() % 70); // integers and near-integers (FIST, FRNDINT)
    if (rnd() % 2) {
      const keep = Math.max(0, Math.min(64, exp - 16383 + 1 - (rnd() % 2)));
      if (keep <= 32) {
        hi = keep === 0 ? 0x80000000 : (hi & ~((1 << (32 - keep)) - 1)) >>> 0;
        lo = 0;
      } else lo = keep === 64 ? lo : (lo & ~((1 << (64 - keep)) - 1)) >>> 0;
      if (rnd() % 2) lo = (lo | (keep > 32 ? 2 ** (63 - keep) : 0)) >>> 0; // exact .5 ties
    }
  } else if (k === 8) {
    exp = 16383 - 1 - (rnd() % 3); // values below 1
  } else if (k === 9) {
    // binary64/binary32 boundaries and ties
    exp = 16383 + ((rnd() % 200) - 100);
    lo = (lo & 0xfffff800) | (rnd() % 2 ? 0x400 : 0);
    if (rnd() % 2) hi = (hi & 0xffffff00) | (rnd() % 2 ? 0x80 : 0);
    if (rnd() % 2) lo = rnd() % 2 ? lo & 0xfffff800 : lo | 0x400;
  } else if (k === 10) {
    exp = 16383 - 1022 - (rnd() % 60); // binary64 denormal range (FST m64 underflow)
  } else if (k === 11) {
    exp = 16383 - 126 - (rnd() % 30);
  } else if (op === 8) {
    exp = 16383 + (rnd() % 16); // FSCALE amounts
  } else if (op === 12 || op === 13) {
    exp = 16383 + (rnd() % 40) - 20; // FPREM/FPREM1: exponent differences below 64 (complete reduction)
  } else exp = 16383 + ((rnd() % 64) - 32);
  out.setUint32(0, lo >>> 0, true);
  out.setUint32(4, hi >>> 0, true);
  out.setUint16(8, (sign << 15) | exp, true);
  return [...new Uint8Array(out.buffer)];
}

test("x87 arithmetic, conversions and compares match the host FPU bit for bit", () => {
  const dir = mkdtempSync(join(tmpdir(), "viridian-x87-"));
  try {
    writeFileSync(join(dir, "ref.c"), cSource());
    execFileSync("gcc", ["-O1", "-o", join(dir, "ref"), join(dir, "ref.c")], { stdio: "pipe" });
    const per = process.env.VIRIDIAN_FULL === "1" ? 20000 : 1500;
    const count = per * OPS.length;
    const recs = new DataView(new ArrayBuffer(count * 40));
    for (let i = 0; i < count; i++) {
      const op = i % OPS.length;
      const pcBits = [0, 2, 3][rnd() % 3]!;
      const cw = 0x3f | (pcBits << 8) | ((rnd() & 3) << 10) | 0x40;
      recs.setUint32(i * 40, op, true);
      recs.setUint16(i * 40 + 4, cw, true);
      operand(op).forEach((b, k) => recs.setUint8(i * 40 + 8 + k, b));
      operand(op).forEach((b, k) => recs.setUint8(i * 40 + 24 + k, b));
    }
    const out = execFileSync(join(dir, "ref"), {
      input: new Uint8Array(recs.buffer),
      maxBuffer: count * 18 + 1024,
    });
    const host = new DataView(out.buffer, out.byteOffset, out.byteLength);
    // One guest program per op: inputs at DATA (cw at +0, a at +16, b at +32), result at +48, FSW in AX.
    const progs = OPS.map(([nasm, , size]) => {
      const tail = size === 10 ? "fstp tword [rbx+48]" : "fstp st0";
      const src = `fninit\nfldcw [rbx]\nfld tword [rbx+32]\nfld tword [rbx+16]\n${nasm}\nfnstsw ax\n${tail}\nfstp st0\nhlt`;
      return assemble(`mov rbx, 0x20000\n${src}`, 64, CODE_BASE);
    });
    const fails: string[] = [];
    const { cpu, mem } = machine("long64", progs[0]!);
    const dv = new DataView(mem.buffer);
    let loaded = -1;
    for (let i = 0; i < count; i++) {
      const op = i % OPS.length;
      if (loaded !== op) {
        mem.write(CODE_BASE, new Uint8Array(64).fill(0x90));
        mem.write(CODE_BASE, progs[op]!);
        cpu.flushDecodeCache();
        loaded = op;
      }
      dv.setUint16(0x20000, recs.getUint16(i * 40 + 4, true), true);
      for (let k = 0; k < 16; k++) {
        dv.setUint8(0x20010 + k, recs.getUint8(i * 40 + 8 + k));
        dv.setUint8(0x20020 + k, recs.getUint8(i * 40 + 24 + k));
        dv.setUint8(0x20030 + k, 0);
      }
      cpu.setRip(CODE_BASE, 0);
      const r = cpu.run(1000);
      assert.equal(r, ExitReason.Hlt, `op ${op} exit ${r}`);
      const size = OPS[op]![2];
      let ok = true;
      for (let k = 0; k < size; k++) if (dv.getUint8(0x20030 + k) !== host.getUint8(i * 18 + k)) ok = false;
      const hsw = host.getUint16(i * 18 + 16, true);
      const osw = cpu.getReg(0).lo & 0xffff;
      // Compare exception flags, SF, C0-C3 (TOP matches by construction).
      const MASK = 0x7fff & ~0x3800 & ~0x80;
      if (!ok || (hsw & MASK) !== (osw & MASK)) {
        const hex = (o: number, n: number, v: DataView): string => {
          let s = "";
          for (let k = n - 1; k >= 0; k--)
            s += v
              .getUint8(o + k)
              .toString(16)
              .padStart(2, "0");
          return s;
        };
        fails.push(
          `op ${op} cw ${recs.getUint16(i * 40 + 4, true).toString(16)} a ${hex(i * 40 + 8, 10, recs)} b ${hex(i * 40 + 24, 10, recs)}: host ${hex(i * 18, size, host)} sw ${hsw.toString(16)}, ours ${hex(0x20030, size, dv)} sw ${osw.toString(16)}`,
        );
      }
    }
    assert.equal(
      fails.length,
      0,
      `${fails.length} mismatches of ${count} on ${hostProcessor()}:\n${fails.slice(0, 30).join("\n")}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
test("x87 stack: push/pop, tags, overflow and underflow give the masked indefinite with SF and C1", () => {
  const cpu = run(
    "fninit\nfld1\nfldz\nfldpi\nfnstsw ax\nmov r8d, eax\nfstp st0\nfstp st0\nfstp st0\nfstp st0\nfnstsw ax\nmov r9d, eax\n" +
      "fninit\n" +
      "fld1\n".repeat(9) +
      "fnstsw ax\nmov r10d, eax\nfistp dword [rbx]\nmov r11d, [rbx]",
  );
  const r = (n: number): number => cpu.getReg(n as 0).lo & 0xffff;
  assert.equal((r(8) >> 11) & 7, 5); // TOP after three pushes
  assert.equal(r(9) & 0x3fff & ~0x3800, 0x41 | 0x0000); // underflow: IE + SF, C1 = 0
  assert.equal(r(10) & 0x241, 0x241); // overflow: IE + SF + C1
  assert.equal(cpu.getReg(11).lo, 0x80000000 | 0); // ST(0) was the indefinite: integer indefinite
});

test("x87 loads and stores: m32/m64 with DE, FILD/FIST, constants, FXAM, FCOMI and FCMOV", () => {
  const dv = new DataView(new ArrayBuffer(32));
  dv.setFloat64(0, 1.5, true);
  dv.setUint32(8, 1, true); // smallest binary32 denormal
  dv.setInt32(12, -7, true);
  const cpu = run(
    "fninit\nfld qword [rbx]\nfild dword [rbx+12]\nfmulp\nfistp dword [rbx+16]\nmov r8d, [rbx+16]\n" +
      "fld dword [rbx+8]\nfnstsw ax\nmov r9d, eax\nfxam\nfnstsw ax\nmov r10d, eax\nfstp st0\n" +
      "fldpi\nfld1\nfcomi st0, st1\nsetb cl\nfcmovb st0, st1\nfstp qword [rbx+24]\nmov r11, [rbx+24]\nfstp st0\n" +
      "fldl2e\nfstp qword [rbx+24]\nmov r12, [rbx+24]",
    [...new Uint8Array(dv.buffer)],
  );
  assert.equal(cpu.getReg(8).lo, -10); // 1.5 * -7 = -10.5 -> round to even
  assert.equal(cpu.getReg(9).lo & 0x02, 0x02); // DE on loading a binary32 denormal
  assert.equal(cpu.getReg(10).lo & 0x4700, 0x0400); // FXAM: normal (2^-149 is normal in extended format)
  assert.equal(cpu.getReg(1).lo & 0xff, 1); // 1 < pi: CF
  const f = new DataView(new ArrayBuffer(8));
  f.setInt32(0, cpu.getReg(11).lo, true);
  f.setInt32(4, cpu.getReg(11).hi, true);
  assert.equal(f.getFloat64(0, true), Math.PI);
  f.setInt32(0, cpu.getReg(12).lo, true);
  f.setInt32(4, cpu.getReg(12).hi, true);
  assert.equal(f.getFloat64(0, true), Math.LOG2E);
});

test("x87 exceptions: unmasked -> ES, #MF at the next waiting instruction; FNSTENV/FLDENV and FNSAVE/FRSTOR", () => {
  // Unmask ZE, divide by zero: no fault yet; the next FWAIT faults with #MF (vector 16) when CR0.NE.
  const src =
    "fninit\nmov word [rbx], 0x37b\nfldcw [rbx]\nfld1\nfldz\nfdivp\nmov eax, 77\nfwait\nmov eax, 78";
  assert.equal(faultVector(src, [], 0x600, 0x20), 16);
  // Without CR0.NE the error is left to FERR# (not modelled): execution continues.
  assert.equal(faultVector(src), 78);
  // x87 with CR0.TS or CR0.EM -> #NM.
  assert.equal(faultVector("fld1", [], 0x600, 8), 7);
  assert.equal(faultVector("fld1", [], 0x600, 4), 7);
  const cpu = run(
    "fninit\nfld1\nfldpi\nfnstenv [rbx]\nmov r8d, [rbx]\nmov r9d, [rbx+8]\nfldcw [rbx]\n" +
      "fnsave [rbx+64]\nfnstsw ax\nmov r10d, eax\nfrstor [rbx+64]\nfstp qword [rbx+200]\nmov r11, [rbx+200]\n" +
      "fnstsw ax\nmov r12d, eax",
  );
  assert.equal(cpu.getReg(8).lo & 0xffff, 0x37f);
  assert.equal(cpu.getReg(9).lo & 0xffff, 0x0fff); // tags: ST0, ST1 valid (00), the rest empty (11)
  assert.equal(cpu.getReg(10).lo & 0xffff, 0); // FNSAVE reinitializes
  const f = new DataView(new ArrayBuffer(8));
  f.setInt32(0, cpu.getReg(11).lo, true);
  f.setInt32(4, cpu.getReg(11).hi, true);
  assert.equal(f.getFloat64(0, true), Math.PI);
  assert.equal((cpu.getReg(12).lo >> 11) & 7, 7); // one value left after FRSTOR and FSTP
});
