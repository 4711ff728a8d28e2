// Tests the extension points the SIMD work uses: registerRows (table rows with mandatory prefixes and XMM
// operands) + registerHandlers before a Cpu is built, operand specs validated at registration, and the
// decoder choosing the 66/F3/NP form by mandatory prefix. Runs in its own process (node:test per file), so
// the rows added here do not leak into other tests.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { CpuCore } from "./core.js";
import { CpuidModel } from "./cpuid.js";
import { decodeBytes, DECODE_OK } from "./decoder.js";
import { registerHandlers } from "./handlers.js";
import { CodeMode, Insn, OpKind } from "./insn.js";
import { OpcodeTableError, registerRows } from "./opcode-table.js";
import { exec } from "./nasm-harness.test.js";

test("rows with an unknown operand spec are refused at registration", () => {
  assert.throws(() => registerRows(["BAD | 0F 58 /r | Vqq,Wx | | bad"]), OpcodeTableError);
});

test("a module can add rows and handlers: mandatory prefixes select the form; XMM and 16-byte memory", () => {
  registerRows([
    // Opcodes no real row uses (0F 58/6E/7E are ADDPD/MOVD since the SIMD groups exist).
    "XADDD | 66 0F 7A /r | Vx,Wx | | xaddd",
    "XMOVD | 66 0F 7B /r | Vx,Ed | | xmovd",
    "XMOVD | 66 0F 36 /r | Ed,Vx | | xmovdOut",
  ]);
  registerHandlers({
    // Lane-wise 32-bit add (a stand-in for a real SSE handler).
    xaddd: (c: CpuCore, d: Insn) => {
      const dst = d.r0 * 4;
      for (let i = 0; i < 4; i++) {
        let v: number;
        if (d.k1 === OpKind.Xmm) v = c.xmm[d.r1 * 4 + i]!;
        else v = c.readMem(d.seg, (c.eaLo + i * 4) | 0, c.eaHi, 4);
        c.xmm[dst + i] = (c.xmm[dst + i]! + v) | 0;
      }
    },
    xmovd: (c: CpuCore, d: Insn) => {
      c.xmm.fill(0, d.r0 * 4, d.r0 * 4 + 4);
      c.xmm[d.r0 * 4] = c.rd1(d);
    },
    xmovdOut: (c: CpuCore, d: Insn) => c.wr0(d, c.xmm[d.r1 * 4]!, 0),
  });
  const d = new Insn();
  assert.equal(
    decodeBytes(Uint8Array.from([0x66, 0x0f, 0x7a, 0xc1]), CodeMode.Bits64, new CpuidModel(), d),
    DECODE_OK,
  );
  assert.equal(d.entry?.mnemonic, "XADDD");
  assert.equal(d.k0, OpKind.Xmm);
  assert.equal(d.osize, 4, "a mandatory 66 is not an operand-size prefix");
  const cpu = exec(`
    mov eax, 5
    db 0x66, 0x0f, 0x7b, 0xc0         ; xmovd xmm0, eax
    db 0x66, 0x0f, 0x7a, 0x05         ; xaddd xmm0, [rel v]
    dd v - ($ + 4)
    db 0x66, 0x0f, 0x36, 0xc3         ; xmovd ebx, xmm0
    hlt
  align 16
  v: dd 10, 20, 30, 40`);
  assert.equal(cpu.getReg(3).lo, 15);
  assert.equal(cpu.xmm[1], 20);
});
