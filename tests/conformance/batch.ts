// Owns: the binary batch format shared with runner.c (cases in, raw results out), the seeded data-page fill
// both sides use, and the normalization of a raw result (registers, RFLAGS, the vector the case ended with)
// into an outcome that can be compared field by field.
// Must not: generate cases or run the emulator.
// Spec: runner.c protocol header; Intel SDM Vol. 3A 6.3 table 6-1 (which vectors push an error code) and
// 6.5 (faults report the faulting instruction, traps the next one).

import { CODE_BASE, DATA_SIZE, type Case } from "./generate.js";
import { GPR64_NAMES } from "../../src/x86/disasm.js";

export const REC_IN = 460;

export function encodeBatch(cases: readonly Case[]): Buffer {
  const buf = Buffer.alloc(8 + cases.length * REC_IN);
  buf.write("VCF1", 0, "latin1");
  buf.writeUInt32LE(cases.length, 4);
  cases.forEach((c, i) => {
    const o = 8 + i * REC_IN;
    buf[o] = c.code.length;
    buf.writeUInt16LE(c.codeOff, o + 2);
    buf.writeUInt32LE(c.memSeed >>> 0, o + 4);
    buf.set(c.code, o + 8);
    for (let r = 0; r < 16; r++) buf.writeBigUInt64LE(c.regs[r]!, o + 24 + r * 8);
    buf.writeBigUInt64LE(BigInt(c.rflags >>> 0), o + 152);
    c.pokes.slice(0, 2).forEach((p, k) => {
      const q = o + 160 + k * 20;
      buf.writeUInt16LE(p.off, q);
      buf.writeUInt16LE(p.bytes.length, q + 2);
      buf.set(p.bytes.subarray(0, 16), q + 4);
    });
    buf.set(c.xmm, o + 200);
    buf.writeUInt32LE(c.mxcsr >>> 0, o + 456);
  });
  return buf;
}

/** What a case ended with, before normalization: the interrupted context of the trap/fault. */
export interface RawResult {
  regs: bigint[];
  rip: bigint;
  rflags: number;
  cr2: bigint;
  vector: number;
  err: number;
  /** XMM0-15 as 256 little-endian bytes, and MXCSR. */
  xmm: Uint8Array;
  mxcsr: number;
  /** Data-page bytes that differ from the initial image: offset -> new value. */
  diffs: Map<number, number>;
}

export function decodeResults(buf: Buffer, count: number): RawResult[] {
  if (buf.length < 8 || buf.toString("latin1", 0, 4) !== "VCR1") throw new Error("runner output: bad header");
  if (buf.readUInt32LE(4) !== count) throw new Error("runner output: wrong case count");
  const out: RawResult[] = [];
  let p = 8;
  for (let i = 0; i < count; i++) {
    const regs: bigint[] = [];
    for (let r = 0; r < 16; r++) regs.push(buf.readBigUInt64LE(p + r * 8));
    const rip = buf.readBigUInt64LE(p + 128);
    const rflags = Number(buf.readBigUInt64LE(p + 136) & 0xffffffffn);
    const cr2 = buf.readBigUInt64LE(p + 144);
    const vector = buf.readInt32LE(p + 152);
    const err = buf.readUInt32LE(p + 156);
    const xmm = new Uint8Array(buf.subarray(p + 160, p + 416));
    const mxcsr = buf.readUInt32LE(p + 416);
    const nd = buf.readUInt32LE(p + 420);
    p += 424;
    const diffs = new Map<number, number>();
    for (let k = 0; k < nd; k++) diffs.set(buf.readUInt16LE(p + k * 4), buf[p + k * 4 + 2]!);
    p += nd * 4;
    out.push({ regs, rip, rflags, cr2, vector, err, xmm, mxcsr, diffs });
  }
  if (p !== buf.length) throw new Error("runner output: trailing bytes");
  return out;
}

/** xorshift32 fill of the two data pages (runner.c fill_data), then the case's pokes. */
export function dataImage(c: Case, into: Uint8Array): void {
  let x = (c.memSeed | 1) >>> 0;
  for (let i = 0; i < DATA_SIZE; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    into[i] = x & 0xff;
    into[i + 1] = (x >>> 8) & 0xff;
    into[i + 2] = (x >>> 16) & 0xff;
    into[i + 3] = x >>> 24;
  }
  for (const p of c.pokes.slice(0, 2)) {
    if (p.bytes.length <= 16 && p.off + p.bytes.length <= DATA_SIZE) into.set(p.bytes, p.off);
  }
}

/** Vectors that push an error code (SDM Vol. 3A table 6-1). */
export const HAS_ERROR_CODE = new Set([8, 10, 11, 12, 13, 14, 17, 21]);

export const VECTOR_NAMES: Record<number, string> = {
  [-1]: "ok",
  0: "#DE",
  1: "#DB",
  3: "#BP",
  4: "#OF",
  5: "#BR",
  6: "#UD",
  7: "#NM",
  8: "#DF",
  10: "#TS",
  11: "#NP",
  12: "#SS",
  13: "#GP",
  14: "#PF",
  16: "#MF",
  17: "#AC",
  19: "#XM",
};

export interface Outcome {
  /** -1: the instruction completed and execution reached a filler byte (rip = that byte). */
  vector: number;
  rip: bigint;
  err: number;
  cr2: bigint;
  regs: bigint[];
  rflags: number;
  xmm: Uint8Array;
  mxcsr: number;
  diffs: Map<number, number>;
}

/** The byte filling the code page around the instruction: HLT, a #GP(0) fault in ring 3. */
export const FILLER = 0xf4;

/**
 * A #GP(0) at a filler byte of the code page (not one of the instruction's own bytes) means the instruction
 * completed and execution went to that byte.
 */
export function normalize(r: RawResult, c: Case): Outcome {
  let vector = r.vector;
  const rip = r.rip;
  if (vector === 13 && r.err === 0) {
    const at = rip - BigInt(CODE_BASE);
    if (at >= 0n && at < 4096n && (at < BigInt(c.codeOff) || at >= BigInt(c.codeOff + c.code.length)))
      vector = -1;
  }
  return {
    vector,
    rip,
    err: r.err,
    cr2: r.cr2,
    regs: r.regs,
    rflags: r.rflags,
    xmm: r.xmm,
    mxcsr: r.mxcsr,
    diffs: r.diffs,
  };
}

const REG_NAMES = GPR64_NAMES;

/** RFLAGS bits compared: every defined bit except RF (set in fault frames by hardware and kernel alike). */
export const FLAGS_COMPARED = 0x3f7fd5 & ~0x10000;

/**
 * Lists the differences between the native and emulated outcome (empty = match): bit for bit, except the
 * SDM's undefined flags of a completed instruction and the #PF P bit where the harnesses' page tables differ.
 * Behaviour the SDM leaves to the implementation is reconciled before this (model-specific.ts).
 */
export function compareOutcomes(nat: Outcome, emu: Outcome, c: Case): string[] {
  const d: string[] = [];
  const hex = (v: bigint | number): string => v.toString(16);
  if (nat.vector !== emu.vector)
    d.push(`end ${VECTOR_NAMES[nat.vector] ?? nat.vector} vs ${VECTOR_NAMES[emu.vector] ?? emu.vector}`);
  if (nat.rip !== emu.rip) d.push(`rip ${hex(nat.rip)} vs ${hex(emu.rip)}`);
  for (let r = 0; r < 16; r++) {
    const a = nat.regs[r]!;
    const b = emu.regs[r]!;
    if (a !== b) d.push(`${REG_NAMES[r]} ${hex(a)} vs ${hex(b)}`);
  }
  let mask = FLAGS_COMPARED;
  if (nat.vector === -1 && emu.vector === -1) mask &= ~c.undefMask;
  if ((nat.rflags & mask) !== (emu.rflags & mask))
    d.push(`rflags ${hex(nat.rflags & mask)} vs ${hex(emu.rflags & mask)} (mask ${hex(mask)})`);
  if (nat.vector === emu.vector && HAS_ERROR_CODE.has(nat.vector)) {
    // Linux reports kernel-half page faults as protection faults (P=1) whatever the page tables say. The
    // P bit (SDM Vol. 3A 4.7: 0 = non-present page, 1 = protection violation) is a property of the page
    // tables, not of the processor: the emulated harness maps its low 2 MiB supervisor-only (GDT, IDT,
    // TSS, handlers) where the host process has nothing, so P is not compared there either; W/U/I/D/RSVD
    // and CR2 still are.
    const harnessLow = nat.cr2 < 0x200000n;
    const errMask = nat.vector === 14 && (nat.cr2 >> 63n === 1n || harnessLow) ? ~1 : ~0;
    if ((nat.err & errMask) !== (emu.err & errMask)) d.push(`error code ${hex(nat.err)} vs ${hex(emu.err)}`);
  }
  for (let x = 0; x < 16; x++) {
    const a = nat.xmm.subarray(x * 16, x * 16 + 16);
    const b = emu.xmm.subarray(x * 16, x * 16 + 16);
    if (a.every((v, i) => v === b[i])) continue;
    d.push(`xmm${x} ${xmmHex(a)} vs ${xmmHex(b)}`);
  }
  if (nat.mxcsr !== emu.mxcsr) d.push(`mxcsr ${hex(nat.mxcsr)} vs ${hex(emu.mxcsr)}`);
  if (nat.vector === 14 && emu.vector === 14 && nat.cr2 !== emu.cr2)
    d.push(`cr2 ${hex(nat.cr2)} vs ${hex(emu.cr2)}`);
  const keys = new Set([...nat.diffs.keys(), ...emu.diffs.keys()]);
  const memDiff: string[] = [];
  for (const k of [...keys].sort((a, b) => a - b)) {
    const a = nat.diffs.get(k);
    const b = emu.diffs.get(k);
    if (a !== b)
      memDiff.push(`+${hex(k)}: ${a === undefined ? "-" : hex(a)} vs ${b === undefined ? "-" : hex(b)}`);
  }
  if (memDiff.length > 0)
    d.push(`memory ${memDiff.slice(0, 8).join(", ")}${memDiff.length > 8 ? ", ..." : ""}`);
  return d;
}

export function xmmHex(a: Uint8Array): string {
  return [...a]
    .reverse()
    .map((x) => x.toString(16).padStart(2, "0"))
    .join("");
}

export function describeCase(c: Case): string {
  const bytes = [...c.code].map((x) => x.toString(16).padStart(2, "0")).join(" ");
  const regs = c.regs.map((v, i) => `${REG_NAMES[i]}=${v.toString(16)}`).join(" ");
  const pokes = c.pokes.map(
    (p) => `[+${p.off.toString(16)}]=${[...p.bytes].map((x) => x.toString(16).padStart(2, "0")).join("")}`,
  );
  const xmm = c.simd
    ? `\n      mxcsr=${c.mxcsr.toString(16)} ` +
      Array.from({ length: 16 }, (_, x) => `xmm${x}=${xmmHex(c.xmm.subarray(x * 16, x * 16 + 16))}`).join(" ")
    : "";
  return `bytes ${bytes} @+${c.codeOff.toString(16)} rflags=${c.rflags.toString(16)} memSeed=${c.memSeed} ${pokes.join(" ")}\n      ${regs}${xmm}`;
}
