// Owns: the interpreter's handler variants specialised per operand form, chosen once when an instruction
// is decoded (`formHandler`), for the forms that dominate executed code (measured on the Linux boot and
// the md5 loop: register and immediate ALU, loads and stores, LEA, MOVZX, INC/DEC, PUSH/POP, Jcc). Each
// variant does exactly what the generic handler's path for that form does (alu.ts binop32/binop64/incdec,
// data.ts mov/movzx/lea, stack.ts push/pop, control.ts jcc), minus the form tests and the operand-kind
// switches of rd/wr, so the flags stay lazy and bit-for-bit identical.
// Must not: change semantics, or be chosen for a form it does not cover (LOCK, segment-checked or 16-bit
// forms keep the generic handler). Every variant is its own function literal: V8 compiles per literal,
// so variants made by one factory would share one polymorphic body.
// Spec: Intel SDM Vol. 2 ADD, SUB, CMP, AND, OR, XOR, TEST, INC, DEC, MOV, MOVZX, LEA, PUSH, POP, Jcc.

import type { CpuCore, Handler } from "./core.js";
import { LazyOp } from "./flags.js";
import { type Insn, OpKind, PFX_LOCK } from "./insn.js";

// ---- 32-bit register destination, register or immediate source (alu.ts binop32) ----

function add32(c: CpuCore, d: Insn): void {
  const a = c.rlo[d.r0]!;
  const b = d.k1 === OpKind.Reg ? c.rlo[d.r1]! : d.immLo;
  const r = (a + b) | 0;
  c.setLazy(LazyOp.Add, 4, a, b, r, 0);
  c.rlo[d.r0] = r;
  c.rhi[d.r0] = 0;
}
function sub32(c: CpuCore, d: Insn): void {
  const a = c.rlo[d.r0]!;
  const b = d.k1 === OpKind.Reg ? c.rlo[d.r1]! : d.immLo;
  const r = (a - b) | 0;
  c.setLazy(LazyOp.Sub, 4, a, b, r, 0);
  c.rlo[d.r0] = r;
  c.rhi[d.r0] = 0;
}
function cmp32(c: CpuCore, d: Insn): void {
  const a = c.rlo[d.r0]!;
  const b = d.k1 === OpKind.Reg ? c.rlo[d.r1]! : d.immLo;
  c.setLazy(LazyOp.Sub, 4, a, b, (a - b) | 0, 0);
}
function and32(c: CpuCore, d: Insn): void {
  const r = c.rlo[d.r0]! & (d.k1 === OpKind.Reg ? c.rlo[d.r1]! : d.immLo);
  c.setResultFlags(4, r, 0, 0, 0, 0);
  c.rlo[d.r0] = r;
  c.rhi[d.r0] = 0;
}
function or32(c: CpuCore, d: Insn): void {
  const r = c.rlo[d.r0]! | (d.k1 === OpKind.Reg ? c.rlo[d.r1]! : d.immLo);
  c.setResultFlags(4, r, 0, 0, 0, 0);
  c.rlo[d.r0] = r;
  c.rhi[d.r0] = 0;
}
function xor32(c: CpuCore, d: Insn): void {
  const r = c.rlo[d.r0]! ^ (d.k1 === OpKind.Reg ? c.rlo[d.r1]! : d.immLo);
  c.setResultFlags(4, r, 0, 0, 0, 0);
  c.rlo[d.r0] = r;
  c.rhi[d.r0] = 0;
}
function test32(c: CpuCore, d: Insn): void {
  c.setResultFlags(4, c.rlo[d.r0]! & (d.k1 === OpKind.Reg ? c.rlo[d.r1]! : d.immLo), 0, 0, 0, 0);
}

// ---- 64-bit register destination, register or immediate source (alu.ts binop64) ----

function add64(c: CpuCore, d: Insn): void {
  const a = c.rlo[d.r0]!;
  const ah = c.rhi[d.r0]!;
  const reg = d.k1 === OpKind.Reg;
  const b = reg ? c.rlo[d.r1]! : d.immLo;
  const bh = reg ? c.rhi[d.r1]! : d.immHi;
  const rl = (a + b) | 0;
  const rh = (ah + bh + (rl >>> 0 < a >>> 0 ? 1 : 0)) | 0;
  c.setLazy64(LazyOp.Add, a, ah, b, bh, rl, rh, 0);
  c.rlo[d.r0] = rl;
  c.rhi[d.r0] = rh;
}
function sub64(c: CpuCore, d: Insn): void {
  const a = c.rlo[d.r0]!;
  const ah = c.rhi[d.r0]!;
  const reg = d.k1 === OpKind.Reg;
  const b = reg ? c.rlo[d.r1]! : d.immLo;
  const bh = reg ? c.rhi[d.r1]! : d.immHi;
  const rl = (a - b) | 0;
  const rh = (ah - bh - (a >>> 0 < b >>> 0 ? 1 : 0)) | 0;
  c.setLazy64(LazyOp.Sub, a, ah, b, bh, rl, rh, 0);
  c.rlo[d.r0] = rl;
  c.rhi[d.r0] = rh;
}
function cmp64(c: CpuCore, d: Insn): void {
  const a = c.rlo[d.r0]!;
  const ah = c.rhi[d.r0]!;
  const reg = d.k1 === OpKind.Reg;
  const b = reg ? c.rlo[d.r1]! : d.immLo;
  const bh = reg ? c.rhi[d.r1]! : d.immHi;
  const rl = (a - b) | 0;
  c.setLazy64(LazyOp.Sub, a, ah, b, bh, rl, (ah - bh - (a >>> 0 < b >>> 0 ? 1 : 0)) | 0, 0);
}
function and64(c: CpuCore, d: Insn): void {
  const reg = d.k1 === OpKind.Reg;
  const rl = c.rlo[d.r0]! & (reg ? c.rlo[d.r1]! : d.immLo);
  const rh = c.rhi[d.r0]! & (reg ? c.rhi[d.r1]! : d.immHi);
  c.setResultFlags(8, rl, rh, 0, 0, 0);
  c.rlo[d.r0] = rl;
  c.rhi[d.r0] = rh;
}
function or64(c: CpuCore, d: Insn): void {
  const reg = d.k1 === OpKind.Reg;
  const rl = c.rlo[d.r0]! | (reg ? c.rlo[d.r1]! : d.immLo);
  const rh = c.rhi[d.r0]! | (reg ? c.rhi[d.r1]! : d.immHi);
  c.setResultFlags(8, rl, rh, 0, 0, 0);
  c.rlo[d.r0] = rl;
  c.rhi[d.r0] = rh;
}
function xor64(c: CpuCore, d: Insn): void {
  const reg = d.k1 === OpKind.Reg;
  const rl = c.rlo[d.r0]! ^ (reg ? c.rlo[d.r1]! : d.immLo);
  const rh = c.rhi[d.r0]! ^ (reg ? c.rhi[d.r1]! : d.immHi);
  c.setResultFlags(8, rl, rh, 0, 0, 0);
  c.rlo[d.r0] = rl;
  c.rhi[d.r0] = rh;
}
function test64(c: CpuCore, d: Insn): void {
  const reg = d.k1 === OpKind.Reg;
  const rl = c.rlo[d.r0]! & (reg ? c.rlo[d.r1]! : d.immLo);
  const rh = c.rhi[d.r0]! & (reg ? c.rhi[d.r1]! : d.immHi);
  c.setResultFlags(8, rl, rh, 0, 0, 0);
}

// ---- INC/DEC of a 32/64-bit register (alu.ts incdec) ----

function inc32(c: CpuCore, d: Insn): void {
  const cf = c.carryForIncDec();
  const a = c.rlo[d.r0]!;
  const r = (a + 1) | 0;
  c.setLazy(LazyOp.Inc, 4, a, 1, r, cf);
  c.rhi[d.r0] = 0;
  c.rlo[d.r0] = r;
}
function dec32(c: CpuCore, d: Insn): void {
  const cf = c.carryForIncDec();
  const a = c.rlo[d.r0]!;
  const r = (a - 1) | 0;
  c.setLazy(LazyOp.Dec, 4, a, 1, r, cf);
  c.rhi[d.r0] = 0;
  c.rlo[d.r0] = r;
}
function inc64(c: CpuCore, d: Insn): void {
  const cf = c.carryForIncDec();
  const a = c.rlo[d.r0]!;
  const ah = c.rhi[d.r0]!;
  const r = (a + 1) | 0;
  const rh = r === 0 ? (ah + 1) | 0 : ah;
  c.setLazy64(LazyOp.Inc, a, ah, 1, 0, r, rh, cf);
  c.rhi[d.r0] = rh;
  c.rlo[d.r0] = r;
}
function dec64(c: CpuCore, d: Insn): void {
  const cf = c.carryForIncDec();
  const a = c.rlo[d.r0]!;
  const ah = c.rhi[d.r0]!;
  const r = (a - 1) | 0;
  const rh = a === 0 ? (ah - 1) | 0 : ah;
  c.setLazy64(LazyOp.Dec, a, ah, 1, 0, r, rh, cf);
  c.rhi[d.r0] = rh;
  c.rlo[d.r0] = r;
}

// ---- MOV, MOVZX, LEA (data.ts) ----

function movRR64(c: CpuCore, d: Insn): void {
  c.rlo[d.r0] = c.rlo[d.r1]!;
  c.rhi[d.r0] = c.rhi[d.r1]!;
}
function movRR32(c: CpuCore, d: Insn): void {
  c.rlo[d.r0] = c.rlo[d.r1]!;
  c.rhi[d.r0] = 0;
}
function movRI(c: CpuCore, d: Insn): void {
  c.rlo[d.r0] = d.immLo;
  c.rhi[d.r0] = d.s0 === 8 ? d.immHi : 0;
}
function movRM64(c: CpuCore, d: Insn): void {
  const v = c.readMem(d.seg, c.eaLo, c.eaHi, 8);
  c.rlo[d.r0] = v;
  c.rhi[d.r0] = c.hi;
}
function movRM32(c: CpuCore, d: Insn): void {
  c.rlo[d.r0] = c.readMem(d.seg, c.eaLo, c.eaHi, 4);
  c.rhi[d.r0] = 0;
}
function movRM8(c: CpuCore, d: Insn): void {
  const v = c.readMem(d.seg, c.eaLo, c.eaHi, 1);
  c.rlo[d.r0] = (c.rlo[d.r0]! & ~0xff) | v;
}
function movMR64(c: CpuCore, d: Insn): void {
  c.writeMem(d.seg, c.eaLo, c.eaHi, 8, c.rlo[d.r1]!, c.rhi[d.r1]!);
}
function movMR32(c: CpuCore, d: Insn): void {
  c.writeMem(d.seg, c.eaLo, c.eaHi, 4, c.rlo[d.r1]!, 0);
}
function movMR8(c: CpuCore, d: Insn): void {
  c.writeMem(d.seg, c.eaLo, c.eaHi, 1, c.rlo[d.r1]! & 0xff, 0);
}
function movMR16(c: CpuCore, d: Insn): void {
  c.writeMem(d.seg, c.eaLo, c.eaHi, 2, c.rlo[d.r1]! & 0xffff, 0);
}
function movzxRM(c: CpuCore, d: Insn): void {
  c.rlo[d.r0] = c.readMem(d.seg, c.eaLo, c.eaHi, d.s1);
  c.rhi[d.r0] = 0;
}
function movzxRR8(c: CpuCore, d: Insn): void {
  c.rlo[d.r0] = c.rlo[d.r1]! & 0xff;
  c.rhi[d.r0] = 0;
}
function movzxRR16(c: CpuCore, d: Insn): void {
  c.rlo[d.r0] = c.rlo[d.r1]! & 0xffff;
  c.rhi[d.r0] = 0;
}
function lea64(c: CpuCore, d: Insn): void {
  c.rlo[d.r0] = c.eaLo;
  c.rhi[d.r0] = c.eaHi;
}
function lea32(c: CpuCore, d: Insn): void {
  c.rlo[d.r0] = c.eaLo;
  c.rhi[d.r0] = 0;
}

// ---- PUSH/POP of a 64-bit register in 64-bit mode (stack.ts; the stack size is 8 there) ----

function push64(c: CpuCore, d: Insn): void {
  c.push(8, c.rlo[d.r0]!, c.rhi[d.r0]!);
}
function pop64(c: CpuCore, d: Insn): void {
  const v = c.pop(8);
  c.rlo[d.r0] = v;
  c.rhi[d.r0] = c.hi;
}

// ---- Jcc (control.ts jcc) ----

function jz(c: CpuCore, d: Insn): void {
  if (c.getZF() !== 0) c.branchRel(d.immLo, d.immHi, d.osize);
}
function jnz(c: CpuCore, d: Insn): void {
  if (c.getZF() === 0) c.branchRel(d.immLo, d.immHi, d.osize);
}
function jccOther(c: CpuCore, d: Insn): void {
  if (c.cond(d.opcode & 15)) c.branchRel(d.immLo, d.immHi, d.osize);
}

const ALU32: Record<string, Handler> = {
  add: add32,
  sub: sub32,
  cmp: cmp32,
  and: and32,
  or: or32,
  xor: xor32,
  test: test32,
};
const ALU64: Record<string, Handler> = {
  add: add64,
  sub: sub64,
  cmp: cmp64,
  and: and64,
  or: or64,
  xor: xor64,
  test: test64,
};

/**
 * The specialised handler for d's operand form, or null when the generic handler must run. `mode` is the
 * code mode d was decoded in (CodeMode; 2 = 64-bit, where the stack size is 8).
 */
export function formHandler(d: Insn, mode: number): Handler | null {
  const e = d.entry;
  if (e === null || d.prefixes & PFX_LOCK || e.privilege === "ring0") return null;
  const h = e.handler;
  const k0 = d.k0;
  const k1 = d.k1;
  const s0 = d.s0;
  const reg0 = k0 === OpKind.Reg;
  switch (h) {
    case "add":
    case "sub":
    case "cmp":
    case "and":
    case "or":
    case "xor":
    case "test":
      if (!reg0 || (k1 !== OpKind.Reg && k1 !== OpKind.Imm)) return null;
      return s0 === 4 ? ALU32[h]! : s0 === 8 ? ALU64[h]! : null;
    case "inc":
    case "dec":
      if (!reg0) return null;
      if (s0 === 4) return h === "inc" ? inc32 : dec32;
      return s0 === 8 ? (h === "inc" ? inc64 : dec64) : null;
    case "mov":
      if (reg0 && s0 >= 4) {
        if (k1 === OpKind.Reg) return s0 === 8 ? movRR64 : movRR32;
        if (k1 === OpKind.Imm) return movRI;
        if (k1 === OpKind.Mem) return s0 === 8 ? movRM64 : movRM32;
        return null;
      }
      if (reg0 && s0 === 1 && k1 === OpKind.Mem) return movRM8;
      if (k0 === OpKind.Mem && k1 === OpKind.Reg) {
        if (s0 === 8) return movMR64;
        if (s0 === 4) return movMR32;
        if (s0 === 2) return movMR16;
        return movMR8;
      }
      return null;
    case "movzx":
      if (!reg0 || s0 < 4) return null;
      if (k1 === OpKind.Mem) return movzxRM;
      if (k1 === OpKind.Reg) return d.s1 === 1 ? movzxRR8 : movzxRR16;
      return null;
    case "lea":
      if (!reg0) return null;
      if (s0 === 8 && d.asize === 8) return lea64;
      if (s0 === 4) return lea32;
      return null;
    case "push":
      return mode === 2 && reg0 && d.osize === 8 ? push64 : null;
    case "pop":
      return mode === 2 && reg0 && d.osize === 8 ? pop64 : null;
    case "jcc": {
      const cc = d.opcode & 15;
      return cc === 4 ? jz : cc === 5 ? jnz : jccOther;
    }
    default:
      return null;
  }
}
