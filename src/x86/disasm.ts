// Owns: Intel-syntax disassembly of a decoded `Insn`, driven entirely by the opcode table's mnemonics and
// operand slots (so every instruction the interpreter runs can be printed), for traces and tests.
// Must not: be used on the interpreter's hot path (it builds strings).
// Spec: Intel SDM Vol. 2 operand notation and Intel assembler syntax (size keywords "byte ptr", ...).

import { decodeBytes, DECODE_OK, type FeatureGate } from "./decoder.js";
import { type CodeMode, Insn, OpKind, PFX_LOCK, PFX_REP, PFX_REPNE, PFX_SEG } from "./insn.js";

/** 64-bit general register names in Intel numbering (ModRM/REX order); also used by traces. */
export const GPR64_NAMES: readonly string[] = [
  "rax",
  "rcx",
  "rdx",
  "rbx",
  "rsp",
  "rbp",
  "rsi",
  "rdi",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
];
const R32 = [
  "eax",
  "ecx",
  "edx",
  "ebx",
  "esp",
  "ebp",
  "esi",
  "edi",
  "r8d",
  "r9d",
  "r10d",
  "r11d",
  "r12d",
  "r13d",
  "r14d",
  "r15d",
];
const R16 = [
  "ax",
  "cx",
  "dx",
  "bx",
  "sp",
  "bp",
  "si",
  "di",
  "r8w",
  "r9w",
  "r10w",
  "r11w",
  "r12w",
  "r13w",
  "r14w",
  "r15w",
];
const R8 = [
  "al",
  "cl",
  "dl",
  "bl",
  "spl",
  "bpl",
  "sil",
  "dil",
  "r8b",
  "r9b",
  "r10b",
  "r11b",
  "r12b",
  "r13b",
  "r14b",
  "r15b",
];
const R8H = ["ah", "ch", "dh", "bh"];
const SREG = ["es", "cs", "ss", "ds", "fs", "gs"];
const PTR: Record<number, string> = {
  1: "byte",
  2: "word",
  4: "dword",
  6: "fword",
  8: "qword",
  10: "tbyte",
  16: "xmmword",
};

export function regName(r: number, size: number): string {
  const t = size === 8 ? GPR64_NAMES : size === 4 ? R32 : size === 2 ? R16 : R8;
  return t[r] ?? `r${r}?`;
}

function hex(v: number): string {
  return "0x" + v.toString(16);
}

/** A signed or 64-bit immediate as hex (two's complement at the slot size). */
function immText(lo: number, hi: number, size: number): string {
  if (size === 8 && hi !== 0)
    return "0x" + (hi >>> 0).toString(16) + (lo >>> 0).toString(16).padStart(8, "0");
  const v = size === 1 ? lo & 0xff : size === 2 ? lo & 0xffff : lo >>> 0;
  return hex(v);
}

function memText(d: Insn, size: number): string {
  const parts: string[] = [];
  const rn = (r: number): string => (d.asize === 8 ? GPR64_NAMES : d.asize === 4 ? R32 : R16)[r] ?? "?";
  if (d.ripRel) parts.push(d.asize === 8 ? "rip" : "eip");
  if (d.base >= 0) parts.push(rn(d.base));
  if (d.index >= 0) parts.push(rn(d.index) + (d.scale ? "*" + (1 << d.scale) : ""));
  let disp = "";
  if (d.dispLo !== 0 || d.dispHi !== 0 || parts.length === 0) {
    if (parts.length === 0) disp = immText(d.dispLo, d.dispHi, d.asize);
    else if (d.dispHi < 0 || (d.asize < 8 && d.dispLo < 0 && d.asize === 4))
      disp = "-" + hex(-d.dispLo >>> 0);
    else if (d.asize === 2 && (d.dispLo & 0x8000) !== 0) disp = "-" + hex(0x10000 - (d.dispLo & 0xffff));
    else disp = "+" + hex(d.dispLo >>> 0);
  }
  let s = parts.join("+");
  s = parts.length === 0 ? disp : s + disp;
  const seg = d.prefixes & PFX_SEG || d.seg >= 4 ? SREG[d.seg] + ":" : "";
  const ptr = PTR[size];
  return (ptr !== undefined ? ptr + " ptr " : "") + seg + "[" + s + "]";
}

function operandText(
  d: Insn,
  kind: number,
  reg: number,
  size: number,
  nextLo: number,
  nextHi: number,
): string {
  switch (kind) {
    case OpKind.Reg:
      return regName(reg, size);
    case OpKind.RegHigh:
      return R8H[reg] ?? "?";
    case OpKind.Mem:
      return memText(d, size);
    case OpKind.Imm:
      return immText(d.immLo, d.immHi, size);
    case OpKind.Rel: {
      const s = (nextLo >>> 0) + (d.immLo >>> 0);
      const lo = s >>> 0;
      const hi = (nextHi + d.immHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0;
      if (d.osize === 2) return hex(lo & 0xffff);
      if (d.osize === 4 || hi === 0) return hex(lo);
      return immText(lo, hi, 8);
    }
    case OpKind.Sreg:
      return SREG[reg] ?? "?";
    case OpKind.Creg:
      return "cr" + reg;
    case OpKind.Dreg:
      return "dr" + reg;
    case OpKind.Xmm:
      return "xmm" + reg;
    case OpKind.Mmx:
      return "mm" + reg;
    case OpKind.FarPtr:
      return hex(d.imm2 & 0xffff) + ":" + hex(d.immLo >>> 0);
    default:
      return "";
  }
}

const STRING_OPS = new Set(["MOVS", "CMPS", "STOS", "LODS", "SCAS", "INS", "OUTS"]);
const SUFFIX: Record<number, string> = { 1: "b", 2: "w", 4: "d", 8: "q" };

/** Disassembles a decoded instruction; `next` is the address after it (for relative branch targets). */
export function disassemble(d: Insn, nextLo = 0, nextHi = 0): string {
  const e = d.entry;
  if (e === null) return "(bad)";
  let mn = e.mnemonic.toLowerCase();
  const pre: string[] = [];
  if (d.prefixes & PFX_LOCK) pre.push("lock");
  if (STRING_OPS.has(e.mnemonic)) {
    const size = (d.opcode & 1) === 0 ? 1 : d.osize;
    mn += SUFFIX[size];
    if (d.prefixes & PFX_REP) pre.push(e.mnemonic === "CMPS" || e.mnemonic === "SCAS" ? "repe" : "rep");
    if (d.prefixes & PFX_REPNE) pre.push("repne");
    return [...pre, mn].join(" ");
  }
  if (e.mnemonic === "CBW") mn = d.osize === 2 ? "cbw" : d.osize === 4 ? "cwde" : "cdqe";
  else if (e.mnemonic === "CWD") mn = d.osize === 2 ? "cwd" : d.osize === 4 ? "cdq" : "cqo";
  else if (
    e.mnemonic === "IRET" ||
    e.mnemonic === "PUSHF" ||
    e.mnemonic === "POPF" ||
    e.mnemonic === "PUSHA" ||
    e.mnemonic === "POPA"
  ) {
    if (d.osize === 4) mn += "d";
    else if (d.osize === 8) mn += "q";
  }
  const ops: string[] = [];
  const slots: Array<[number, number, number]> = [
    [d.k0, d.r0, d.s0],
    [d.k1, d.r1, d.s1],
    [d.k2, d.r2, d.s2],
  ];
  for (const [k, r, s] of slots) {
    if (k === OpKind.None) continue;
    ops.push(operandText(d, k, r, s, nextLo, nextHi));
  }
  // ENTER's second immediate.
  if (e.mnemonic === "ENTER") ops[1] = hex(d.imm2 & 0xff);
  return [...pre, mn].join(" ") + (ops.length ? " " + ops.join(", ") : "");
}

/** Decodes and disassembles raw bytes (tests and tools); returns [text, length] or ["(bad)", 0]. */
export function disassembleBytes(
  bytes: Uint8Array,
  mode: CodeMode,
  gate: FeatureGate,
  addr = 0,
): [string, number] {
  const d = new Insn();
  if (decodeBytes(bytes, mode, gate, d) !== DECODE_OK) return ["(bad)", 0];
  const next = addr + d.len;
  return [disassemble(d, next % 0x1_0000_0000, Math.floor(next / 0x1_0000_0000)), d.len];
}
