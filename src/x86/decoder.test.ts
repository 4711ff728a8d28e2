// Tests the decoder on literal bytes: prefixes (REX placement, 66/67, segment overrides, LOCK legality,
// mandatory prefixes), ModRM/SIB edge cases (no base, RBP/R13 base, RSP/R12 index), RIP-relative addressing,
// immediates and displacement sizes, mode validity, the 15-byte limit, and the disassembler on top.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CpuidModel } from "./cpuid.js";
import { DECODE_GP, DECODE_MORE, DECODE_OK, DECODE_UD, decodeBytes, warmDecoder } from "./decoder.js";
import { disassembleBytes } from "./disasm.js";
import { CodeMode, Insn, OpKind } from "./insn.js";
import { OPCODES } from "./opcode-table.js";
import { buildDispatch, HANDLERS } from "./handlers.js";

const gate = new CpuidModel();

function dec(bytes: number[], mode = CodeMode.Bits64): Insn {
  const d = new Insn();
  const r = decodeBytes(Uint8Array.from(bytes), mode, gate, d);
  assert.equal(r, DECODE_OK, `decode ${bytes.map((b) => b.toString(16)).join(" ")} -> ${r}`);
  return d;
}

function dis(bytes: number[], mode = CodeMode.Bits64, addr = 0): string {
  return disassembleBytes(Uint8Array.from(bytes), mode, gate, addr)[0];
}

test("every table row names a registered handler", () => {
  assert.ok(OPCODES.length > 300);
  for (const e of OPCODES) assert.ok(HANDLERS[e.handler], `${e.mnemonic} -> ${e.handler}`);
  assert.equal(buildDispatch().length, OPCODES.length);
});

test("table metadata: flags masks, lock, privilege, modes", () => {
  const add = OPCODES.find((e) => e.mnemonic === "ADD" && e.opcode === 0x01)!;
  assert.equal(add.lockable, true);
  assert.equal(add.flagsWritten, 0x8d5);
  const hlt = OPCODES.find((e) => e.mnemonic === "HLT")!;
  assert.equal(hlt.privilege, "ring0");
  const inc = OPCODES.find((e) => e.mnemonic === "INC" && e.opcode === 0x40)!;
  assert.equal(inc.validIn64, false);
  const and = OPCODES.find((e) => e.mnemonic === "AND" && e.opcode === 0x21)!;
  assert.equal(and.flagsUndefined, 0x10);
});

test("REX.W selects 64-bit operand size; REX must be last", () => {
  const d = dec([0x48, 0x01, 0xd8]); // add rax, rbx
  assert.equal(d.osize, 8);
  assert.equal(d.r0, 0);
  assert.equal(d.r1, 3);
  // REX followed by a legacy prefix is ignored: 48 66 01 d8 = add ax, bx
  const e = dec([0x48, 0x66, 0x01, 0xd8]);
  assert.equal(e.osize, 2);
  assert.equal(e.rex, 0);
  assert.equal(dis([0x48, 0x66, 0x01, 0xd8]), "add ax, bx");
});

test("REX.R/X/B extend reg, index and base", () => {
  // mov r9, [r12 + r13*4 + 0x10]: 4f 8b 4c ac 10
  const d = dec([0x4f, 0x8b, 0x4c, 0xac, 0x10]);
  assert.equal(d.r0, 9);
  assert.equal(d.base, 12);
  assert.equal(d.index, 13);
  assert.equal(d.scale, 2);
  assert.equal(d.dispLo, 0x10);
  assert.equal(dis([0x4f, 0x8b, 0x4c, 0xac, 0x10]), "mov r9, qword ptr [r12+r13*4+0x10]");
});

test("SIB edge cases: no base, RBP/R13 base, RSP index none, R12 index", () => {
  // mov eax, [rbx*2 + 0x100]: 8b 04 5d 00 01 00 00 (mod 00, base 101 -> disp32, no base)
  let d = dec([0x8b, 0x04, 0x5d, 0x00, 0x01, 0x00, 0x00]);
  assert.equal(d.base, -1);
  assert.equal(d.index, 3);
  assert.equal(d.scale, 1);
  assert.equal(d.dispLo, 0x100);
  // mov eax, [rbp + 0] needs mod 01: 8b 45 00
  d = dec([0x8b, 0x45, 0x00]);
  assert.equal(d.base, 5);
  assert.equal(d.seg, 2, "rbp base defaults to SS");
  // mov eax, [r13]: 41 8b 45 00 (R13 base also needs a displacement)
  d = dec([0x41, 0x8b, 0x45, 0x00]);
  assert.equal(d.base, 13);
  assert.equal(d.seg, 3, "r13 base defaults to DS");
  // mov eax, [rsp]: 8b 04 24 (index 100 = none)
  d = dec([0x8b, 0x04, 0x24]);
  assert.equal(d.base, 4);
  assert.equal(d.index, -1);
  // mov eax, [rax + r12]: 42 8b 04 20 (REX.X + index 100 = r12)
  d = dec([0x42, 0x8b, 0x04, 0x20]);
  assert.equal(d.index, 12);
  // mov eax, [r13 + 0]: with SIB base 101 and mod 01
  d = dec([0x41, 0x8b, 0x44, 0x25, 0x08]);
  assert.equal(d.base, 13);
  assert.equal(d.index, -1);
  assert.equal(d.dispLo, 8);
});

test("RIP-relative addressing and 32-bit absolute disp32", () => {
  const d = dec([0x48, 0x8b, 0x05, 0xf0, 0xff, 0xff, 0xff]); // mov rax, [rip - 0x10]
  assert.equal(d.ripRel, true);
  assert.equal(d.dispLo, -0x10);
  assert.equal(d.dispHi, -1);
  assert.equal(dis([0x48, 0x8b, 0x05, 0xf0, 0xff, 0xff, 0xff]), "mov rax, qword ptr [rip-0x10]");
  const e = dec([0x8b, 0x05, 0x00, 0x10, 0x00, 0x00], CodeMode.Bits32); // mov eax, [0x1000]
  assert.equal(e.ripRel, false);
  assert.equal(e.base, -1);
  assert.equal(e.dispLo, 0x1000);
});

test("16-bit addressing forms and the 67h prefix", () => {
  const d = dec([0x8b, 0x42, 0x04], CodeMode.Bits16); // mov ax, [bp+si+4]
  assert.equal(d.asize, 2);
  assert.equal(d.base, 5);
  assert.equal(d.index, 6);
  assert.equal(d.seg, 2);
  assert.equal(d.osize, 2);
  const e = dec([0x67, 0x66, 0x8b, 0x03], CodeMode.Bits16); // mov eax, [ebx]
  assert.equal(e.asize, 4);
  assert.equal(e.osize, 4);
  assert.equal(e.base, 3);
  const f = dec([0x67, 0x8b, 0x03]); // 64-bit mode: mov eax, [ebx]
  assert.equal(f.asize, 4);
});

test("segment overrides: ES/CS/SS/DS ignored in 64-bit mode, FS/GS honoured", () => {
  assert.equal(dec([0x26, 0x8b, 0x03]).seg, 3);
  assert.equal(dec([0x64, 0x8b, 0x03]).seg, 4);
  assert.equal(dec([0x26, 0x8b, 0x03], CodeMode.Bits32).seg, 0);
});

test("immediates: Ibs sign extension, Iz to 64 bits, Iv imm64", () => {
  let d = dec([0x48, 0x83, 0xc0, 0xff]); // add rax, -1
  assert.equal(d.immLo, -1);
  assert.equal(d.immHi, -1);
  d = dec([0x48, 0x81, 0xc0, 0x00, 0x00, 0x00, 0x80]); // add rax, 0xffffffff80000000
  assert.equal(d.immHi, -1);
  d = dec([0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8]); // mov rax, imm64
  assert.equal(d.len, 10);
  assert.equal(d.immLo, 0x04030201);
  assert.equal(d.immHi, 0x08070605);
  d = dec([0x66, 0xb8, 0x34, 0x12]);
  assert.equal(d.len, 4);
  assert.equal(d.osize, 2);
});

test("operand-size rules: d64 push, f64 branches ignore 66", () => {
  assert.equal(dec([0x50]).osize, 8);
  assert.equal(dec([0x66, 0x50]).osize, 2);
  assert.equal(dec([0x66, 0xe8, 0, 0, 0, 0]).osize, 8);
  assert.equal(dec([0x50], CodeMode.Bits32).osize, 4);
});

test("mode validity, LOCK legality, mandatory prefixes, 15-byte limit", () => {
  const ud = (b: number[], m = CodeMode.Bits64): number =>
    decodeBytes(Uint8Array.from(b), m, gate, new Insn());
  assert.equal(ud([0x06]), DECODE_UD, "PUSH ES is invalid in 64-bit mode");
  assert.equal(ud([0x06], CodeMode.Bits32), DECODE_OK);
  assert.equal(ud([0xf0, 0x01, 0xd8]), DECODE_UD, "LOCK on a register destination");
  assert.equal(ud([0xf0, 0x01, 0x18]), DECODE_OK, "lock add [rax], ebx");
  assert.equal(ud([0xf0, 0x8b, 0x00]), DECODE_UD, "MOV is not lockable");
  assert.equal(dis([0xf3, 0x0f, 0xb8, 0xc1]), "popcnt eax, ecx");
  assert.equal(ud([0x0f, 0xb8, 0xc1]), DECODE_UD, "0F B8 without F3");
  assert.equal(dis([0xf3, 0x0f, 0xbc, 0xc1]), "bsf eax, ecx", "TZCNT not advertised: F3 is ignored");
  assert.equal(dis([0xf3, 0x90]), "pause");
  assert.equal(dis([0x41, 0x90]), "xchg r8d, eax");
  assert.equal(dis([0x49, 0x90]), "xchg r8, rax");
  const long = [0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x48, 0x05, 1, 0, 0, 0];
  assert.equal(ud(long), DECODE_GP, "17 bytes");
  assert.equal(decodeBytes(Uint8Array.from([0x48, 0x05, 1]), CodeMode.Bits64, gate, new Insn()), DECODE_MORE);
  assert.equal(ud([0x0f, 0x0b]), DECODE_OK);
  assert.equal(ud([0x0f, 0x01, 0xc1]), DECODE_OK, "vmcall");
  assert.equal(dis([0x0f, 0x01, 0xf8]), "swapgs");
  assert.equal(ud([0x0f, 0x01, 0xf8], CodeMode.Bits32), DECODE_UD);
});

test("MOV CRn ignores ModRM.mod; byte registers with and without REX", () => {
  assert.equal(dis([0x0f, 0x22, 0x18]), "mov cr3, rax");
  assert.equal(dis([0x0f, 0x20, 0xc0], CodeMode.Bits32), "mov eax, cr0");
  assert.equal(dis([0x88, 0xe0]), "mov al, ah");
  assert.equal(dis([0x40, 0x88, 0xe0]), "mov al, spl");
  assert.equal(dis([0x0f, 0xb6, 0xc7]), "movzx eax, bh");
});

test("disassembler: branches, string ops, far pointers", () => {
  assert.equal(dis([0xeb, 0xfe], CodeMode.Bits64, 0x1000), "jmp 0x1000");
  assert.equal(dis([0xe8, 0x00, 0x00, 0x00, 0x00], CodeMode.Bits32, 0x1000), "call 0x1005");
  assert.equal(dis([0xf3, 0x48, 0xa5]), "rep movsq");
  assert.equal(dis([0xea, 0x00, 0x10, 0x00, 0x00, 0x08, 0x00], CodeMode.Bits32), "jmpf 0x8:0x1000");
  assert.equal(dis([0xcd, 0x80], CodeMode.Bits32), "int 0x80");
  assert.equal(dis([0x66, 0x8c, 0xd8]), "mov ax, ds");
  assert.equal(dis([0x0f, 0x01, 0x15, 0, 0, 0, 0]), "lgdt tbyte ptr [rip]");
});

test("OpKind of operands: immediate 1 for shifts, CL counts", () => {
  const d = dec([0xd1, 0xe0]); // shl eax, 1
  assert.equal(d.k1, OpKind.Imm);
  assert.equal(d.immLo, 1);
  const e = dec([0xd3, 0xe0]); // shl eax, cl
  assert.equal(e.k1, OpKind.Reg);
  assert.equal(e.r1, 1);
});

// This file builds no processor, so the call below is the warm-up itself (it throws on a row it cannot decode).
test("warming the decoder up (every table row in every mode) leaves its results unchanged", () => {
  const samples = [
    [0x48, 0x8b, 0x44, 0x24, 0x08],
    [0x66, 0x0f, 0x38, 0x00, 0xc1],
    [0xf3, 0x48, 0xab],
    [0x67, 0x8b, 0x00],
    [0x0f, 0x3a, 0x0f, 0xc1, 0x04],
  ];
  const before = samples.map((b) => dec(b));
  warmDecoder(gate);
  samples.forEach((b, i) => assert.deepEqual(dec(b), before[i]));
});
