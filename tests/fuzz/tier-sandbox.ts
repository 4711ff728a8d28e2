// Owns: the sandbox of the translation tier's differential fuzz and of its divergence finder
// (bench/tier-diverge.ts): the random but valid 64-bit instruction sequences, a long-mode machine that runs
// one (with port and MMIO intercepts that log every access), its comparable state, and one run() slice.
// Must not: assert anything (the test does) or depend on the processor's translation threshold.
// Spec: Intel SDM Vol. 3A 6.5-6.6 (precise exceptions), 8.1.3 (self-modifying code); docs/decisions/0005.
import { GuestMemory } from "../../src/memory/guest-memory.js";
import { Cpu } from "../../src/x86/cpu.js";
import { CODE_BASE, setupMode } from "../../src/x86/nasm-harness.test.js";
import type { ExitReason } from "../../src/x86/vm-exit.js";

export { CODE_BASE };

const DATA = 0x60000;
const IDT = 0x40000;
const STUBS = 0x30000;
const MMIO = 0x1000000; // beyond the 8 MiB of RAM, inside the identity map: MMIO exits
const STACK_TOP = 0x80000;
/** General registers the generator may write: not RBX (the data pointer) nor RSP. */
const POOL = [0, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

export class Rng {
  constructor(private s: number) {
    this.s = s >>> 0 || 1;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  below(n: number): number {
    return this.u32() % n;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.below(a.length)]!;
  }
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }
}

const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];

function rex(w: number, r: number, x: number, b: number): number {
  return 0x40 | (w << 3) | ((r >> 3) << 2) | ((x >> 3) << 1) | (b >> 3);
}

/** op reg, rm (register form) with REX when needed. */
function rr(op: number[], w: boolean, reg: number, rm: number, pre: number[] = []): number[] {
  const p = rex(w ? 1 : 0, reg, 0, rm);
  return [...pre, ...(p !== 0x40 ? [p] : []), ...op, 0xc0 | ((reg & 7) << 3) | (rm & 7)];
}

/** op reg, [rbx + d8]. */
function rm(op: number[], w: boolean, reg: number, d8: number, pre: number[] = []): number[] {
  const p = rex(w ? 1 : 0, reg, 0, 3);
  return [...pre, ...(p !== 0x40 ? [p] : []), ...op, 0x40 | ((reg & 7) << 3) | 3, d8 & 0xff];
}

type Piece =
  | { kind: "bytes"; bytes: number[] }
  /** An instruction whose last 4 bytes are a rel32 to label `to` (function index, or "patch" target). */
  | { kind: "rel32"; bytes: number[]; to: number }
  /** A jcc rel8 over the next piece. */
  | { kind: "skip"; cc: number }
  /** Loop: counter r15, body pieces. */
  | { kind: "loop"; count: number; body: Piece[] }
  /** mov byte [rip + rel32], imm8 patching byte `at` of the piece at index `target` (relative). */
  | { kind: "patch"; target: number; at: number; value: number };

/** One random straight instruction (no control flow); `avoid`: registers it must not write. */
function straight(g: Rng, avoid: number[]): number[] {
  const pool = POOL.filter((r) => !avoid.includes(r));
  const r = (): number => g.pick(pool);
  const any = (): number => g.pick([0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  const d8 = (size: number): number => g.below(128 - size) & ~(g.chance(0.8) ? size - 1 : 0);
  const low8 = [0, 1, 2, 4, 5, 6].filter((x) => !avoid.includes(x & 3));
  const alu = [0x01, 0x09, 0x11, 0x19, 0x21, 0x29, 0x31, 0x39, 0x85];
  switch (g.below(33)) {
    case 0:
    case 1:
      return rr([g.pick(alu)], true, any(), r());
    case 2:
      return rr([g.pick(alu)], false, any(), r());
    case 3:
      return [...rr([0x83], g.chance(0.6), g.below(8), r()), g.below(256)];
    case 4: {
      // 8-bit ALU on AL..DL / AH..DH (no REX)
      const op = g.pick([0x00, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30, 0x38]);
      return [op, 0xc0 | (g.pick([0, 1, 2, 4, 5, 6]) << 3) | g.pick(low8)];
    }
    case 5: {
      const t = r();
      return [rex(1, 0, 0, t), 0xc7, 0xc0 | (t & 7), ...le32(g.u32())];
    }
    case 6: {
      const t = r();
      return [rex(1, 0, 0, t), 0xb8 + (t & 7), ...le32(g.u32()), ...le32(g.u32())];
    }
    case 7: {
      // loads of every size
      const s = g.pick([1, 2, 4, 8]);
      if (s === 1)
        return [0x8a, 0x40 | (g.pick([0, 1, 2, 4, 5, 6].filter((x) => low8.includes(x))) << 3) | 3, d8(1)];
      return rm([0x8b], s === 8, r(), d8(s), s === 2 ? [0x66] : []);
    }
    case 8: {
      const s = g.pick([1, 2, 4, 8]);
      if (s === 1) return [0x88, 0x40 | (g.pick([0, 1, 2, 4, 5, 6]) << 3) | 3, d8(1)];
      return rm([0x89], s === 8, any(), d8(s), s === 2 ? [0x66] : []);
    }
    case 9:
      // read-modify-write ALU on memory
      return rm([g.pick(alu.slice(0, 8))], g.chance(0.6), any(), d8(8));
    case 10:
      // ALU r, [m]
      return rm([g.pick([0x03, 0x0b, 0x13, 0x1b, 0x23, 0x2b, 0x33, 0x3b])], g.chance(0.6), r(), d8(8));
    case 11: {
      // INC/DEC/NEG/NOT of a register or qword [rbx + d8]
      const ext = g.pick([0, 1, 2, 3]);
      const op = ext < 2 ? 0xff : 0xf7;
      if (g.chance(0.5)) return rr([op], g.chance(0.6), ext, r());
      return rm([op], true, ext, d8(8));
    }
    case 12: {
      // MOVZX / MOVSX from memory or a register, MOVSXD
      const k = g.below(4);
      if (k === 0) return rm([0x0f, g.pick([0xb6, 0xb7])], g.chance(0.3), r(), d8(2));
      if (k === 1) return rm([0x0f, g.pick([0xbe, 0xbf])], g.chance(0.6), r(), d8(2));
      if (k === 2) return rr([0x0f, g.pick([0xb6, 0xbe])], g.chance(0.5), r(), g.pick([0, 1, 2, 5, 6, 7]));
      return rr([0x63], true, r(), any());
    }
    case 13: {
      // LEA r, [rbx + index * 4 + d8]
      const reg = r();
      const idx = g.pick([0, 1, 2, 5, 6, 7, 8, 9]);
      return [
        rex(g.chance(0.6) ? 1 : 0, reg, idx, 3),
        0x8d,
        0x44 | ((reg & 7) << 3),
        0x80 | ((idx & 7) << 3) | 3,
        g.below(256),
      ];
    }
    case 14:
    case 15: {
      // shifts and rotates by an immediate, by CL and by 1
      const ext = g.pick([0, 1, 4, 5, 7]);
      const w = g.chance(0.6);
      const k = g.below(3);
      if (k === 0) return [...rr([0xc1], w, ext, r()), g.below(72)];
      if (k === 1) return rr([0xd3], w, ext, r());
      return g.chance(0.5) ? rr([0xd1], w, ext, r()) : [...rm([0xc1], w, ext, d8(8)), g.below(72)];
    }
    case 16: {
      // IMUL r, r/m and r, r/m, imm
      const k = g.below(3);
      if (k === 0) return rr([0x0f, 0xaf], g.chance(0.6), r(), any());
      if (k === 1) return [...rr([0x6b], g.chance(0.6), r(), any()), g.below(256)];
      return rm([0x0f, 0xaf], g.chance(0.6), r(), d8(8));
    }
    case 17:
      // SETcc r8 / [m8]
      return g.chance(0.7)
        ? [0x0f, 0x90 + g.below(16), 0xc0 | g.pick([0, 1, 2, 4, 5, 6].filter((x) => low8.includes(x)))]
        : [0x0f, 0x90 + g.below(16), 0x43, d8(1)];
    case 18:
      return g.chance(0.7)
        ? rr([0x0f, 0x40 + g.below(16)], g.chance(0.6), r(), any())
        : rm([0x0f, 0x40 + g.below(16)], g.chance(0.6), r(), d8(8));
    case 19: {
      // BT/BTS/BTR/BTC r, imm and BT r, r
      if (g.chance(0.5)) return [...rr([0x0f, 0xba], g.chance(0.6), 4 + g.below(4), r()), g.below(256)];
      return rr([0x0f, 0xa3], g.chance(0.6), any(), g.chance(0.5) ? r() : any());
    }
    case 20:
      return rr([0x87], g.chance(0.6), r(), r());
    case 21:
      return g
        .pick([[0x48, 0x99], [0x99], [0x48, 0x98], [0x98]])
        .filter(() => !avoid.includes(0) && !avoid.includes(2));
    case 22: {
      // forms run through their handlers: BSF/BSR, MUL, CMPXCHG/XADD, BSWAP, LAHF/SAHF, CLC/STC/CMC
      const k = g.below(7);
      if (k === 0) return rr([0x0f, g.pick([0xbc, 0xbd])], g.chance(0.6), r(), any());
      if (k === 1) return avoid.includes(0) || avoid.includes(2) ? [0x90] : rr([0xf7], true, 4, any());
      if (k === 2) return avoid.includes(0) ? [0x90] : rm([0x0f, 0xb1], true, any(), d8(8));
      if (k === 3) return rm([0x0f, 0xc1], true, r(), d8(8));
      if (k === 4) {
        const t = r();
        return [rex(1, 0, 0, t), 0x0f, 0xc8 + (t & 7)];
      }
      if (k === 5) return avoid.includes(0) ? [0x90] : [g.pick([0x9f, 0x9e])];
      return [g.pick([0xf8, 0xf9, 0xf5])];
    }
    case 23: {
      // PUSH r; POP r (balanced here, so the stack stays put)
      const a = any();
      const b = r();
      return [...(a > 7 ? [0x41] : []), 0x50 + (a & 7), ...(b > 7 ? [0x41] : []), 0x58 + (b & 7)];
    }
    case 24:
      // PUSH imm8 / POP [rbx + d8]
      return [0x6a, g.below(256), 0x8f, 0x43, d8(8)];
    case 25:
      // DIV r/m (faults #DE when the divisor is 0 or the quotient overflows)
      return avoid.includes(0) || avoid.includes(2) ? [0x90] : rr([0xf7], g.chance(0.5), 6, any());
    case 26: {
      // a load through a non-canonical pointer (#GP) or from MMIO
      const t = r();
      const addr = g.chance(0.5)
        ? [0, 0, 0, 0, 0, 0, 0, 0x80]
        : [...le32(MMIO + g.below(64) * 8), 0, 0, 0, 0];
      return [rex(1, 0, 0, t), 0xb8 + (t & 7), ...addr, ...through([0x8b], g.pick([4, 8]) === 8, r(), t)];
    }
    case 27: {
      // a store to MMIO (posted exit)
      const t = r();
      const addr = [...le32(MMIO + g.below(64) * 8), 0, 0, 0, 0];
      return [rex(1, 0, 0, t), 0xb8 + (t & 7), ...addr, ...through([0x89], g.chance(0.5), any(), t)];
    }
    case 28:
      // PUSHF; POPF (the second ends the unit), OUT to a port, or UD2 (#UD)
      return g.pick([
        [0x9c, 0x9d],
        [0xe6, g.below(256)],
        [0x0f, 0x0b],
      ]);
    default:
      return [0x90];
  }
}

/** op reg, [t] (mod 01 with a zero displacement, and a SIB byte when t's low bits are 4). */
function through(op: number[], w: boolean, reg: number, t: number): number[] {
  const p = rex(w ? 1 : 0, reg, 0, t);
  const sib = (t & 7) === 4 ? [0x24] : [];
  return [...(p !== 0x40 ? [p] : []), ...op, 0x40 | ((reg & 7) << 3) | (t & 7), ...sib, 0];
}

export function build(g: Rng): Uint8Array {
  const pieces: Piece[] = [];
  const n = 8 + g.below(40);
  const functions: Piece[][] = [[], []];
  for (const f of functions)
    for (let i = 0, m = 1 + g.below(5); i < m; i++) f.push({ kind: "bytes", bytes: straight(g, []) });
  for (let i = 0; i < n; i++) {
    const k = g.below(20);
    if (k === 0) pieces.push({ kind: "skip", cc: g.below(16) });
    else if (k === 1) {
      const body: Piece[] = [];
      for (let j = 0, m = 1 + g.below(6); j < m; j++) body.push({ kind: "bytes", bytes: straight(g, [15]) });
      pieces.push({ kind: "loop", count: 1 + g.below(6), body });
    } else if (k === 2) pieces.push({ kind: "rel32", bytes: [0xe8, 0, 0, 0, 0], to: g.below(2) });
    else if (k === 3)
      pieces.push({ kind: "patch", target: 1 + g.below(4), at: g.below(4), value: g.below(256) });
    else pieces.push({ kind: "bytes", bytes: straight(g, []) });
  }
  pieces.push({ kind: "bytes", bytes: [0xf4] });
  return layout(pieces, functions);
}

function layout(pieces: Piece[], functions: Piece[][]): Uint8Array {
  const out: number[] = [];
  const fixups: Array<{ at: number; to: number }> = [];
  const patches: Array<{ at: number; pieceStart: number[]; target: number; byte: number }> = [];
  const starts: number[] = [];
  const emit = (list: Piece[], record: boolean): void => {
    for (let i = 0; i < list.length; i++) {
      const p = list[i]!;
      if (record) starts.push(out.length);
      if (p.kind === "bytes") out.push(...p.bytes);
      else if (p.kind === "rel32") {
        out.push(...p.bytes);
        fixups.push({ at: out.length - 4, to: p.to });
      } else if (p.kind === "skip") {
        // Jcc rel8 over the next piece (emitted here, so its length is known).
        const next = list[i + 1];
        const body = next !== undefined && next.kind === "bytes" ? next.bytes : [0x90];
        out.push(0x70 + p.cc, body.length, ...body);
        if (next !== undefined && next.kind === "bytes") {
          i++;
          if (record) starts.push(out.length - body.length);
        }
      } else if (p.kind === "loop") {
        out.push(0x41, 0xbf, ...le32(p.count)); // mov r15d, count
        const top = out.length;
        emit(p.body, false);
        out.push(0x41, 0xff, 0xcf); // dec r15d
        const rel = top - (out.length + 2);
        if (rel < -128) out.push(0x0f, 0x85, ...le32(rel - 4));
        else out.push(0x75, rel & 0xff);
      } else {
        // mov byte [rip + rel32], imm8 into a later piece (patched after layout)
        out.push(0xc6, 0x05, 0, 0, 0, 0, p.value);
        patches.push({
          at: out.length - 5,
          pieceStart: starts,
          target: starts.length - 1 + p.target,
          byte: p.at,
        });
      }
    }
  };
  emit(pieces, true);
  const fnStart: number[] = [];
  for (const f of functions) {
    fnStart.push(out.length);
    emit(f, false);
    out.push(0xc3);
  }
  for (const f of fixups) {
    const rel = fnStart[f.to]! - (f.at + 4);
    out.splice(f.at, 4, ...le32(rel));
  }
  for (const p of patches) {
    const t = p.pieceStart[p.target];
    const dest = t === undefined ? out.length - 1 : t + p.byte;
    const rel = dest - (p.at + 5);
    out.splice(p.at, 4, ...le32(rel));
  }
  return Uint8Array.from(out);
}

export interface Machine {
  cpu: Cpu;
  mem: GuestMemory;
  log: string[];
}

export function machine(code: Uint8Array, jitThreshold: number, g: Rng): Machine {
  const mem = new GuestMemory(8 * 1024 * 1024);
  const cpu = new Cpu(mem, { deterministic: true, jitThreshold });
  setupMode(cpu, mem, "long64", code);
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
  for (let i = 0; i < 128; i++) mem.bytes[DATA + i] = g.below(256);
  for (const r of POOL) cpu.setReg(r as never, g.u32() | 0, g.chance(0.5) ? g.u32() | 0 : 0);
  cpu.setReg(3 as never, DATA, 0);
  cpu.setRflags(0x2 | (g.u32() & 0x8d5));
  // Device accesses complete in place (docs/decisions/0004): each is logged in order, and `slice` adds
  // the retired count at the end of the batch (a write ends it right after its instruction).
  const log: string[] = [];
  cpu.mmio = {
    hi: 0x1234,
    read: (gpa, size) => {
      log.push(`mmio:r:${gpa.toString(16)}:${size}`);
      return 0x5a5a5a5a ^ gpa;
    },
    write: (gpa, size, lo) => void log.push(`mmio:w:${gpa.toString(16)}:${size}:${(lo >>> 0).toString(16)}`),
  };
  cpu.ports = {
    read: (port) => {
      log.push(`io:r:${port}`);
      return 0x77;
    },
    write: (port) => void log.push(`io:w:${port}`),
  };
  return { cpu, mem, log };
}

export function state(m: Machine): string {
  const c = m.cpu;
  const regs: string[] = [];
  for (let r = 0; r < 16; r++) {
    const v = c.getReg(r as never);
    regs.push(`${(v.hi >>> 0).toString(16)}:${(v.lo >>> 0).toString(16)}`);
  }
  const rip = c.getRip();
  const mem = Buffer.from(m.mem.bytes.subarray(DATA, DATA + 128)).toString("hex");
  const stack = Buffer.from(m.mem.bytes.subarray(STACK_TOP - 64, STACK_TOP)).toString("hex");
  const code = Buffer.from(m.mem.bytes.subarray(CODE_BASE, CODE_BASE + 512)).toString("hex");
  return [
    `rip ${(rip.hi >>> 0).toString(16)}:${(rip.lo >>> 0).toString(16)} retired ${c.retired} rflags ${c.getRflags().toString(16)}`,
    `regs ${regs.join(" ")}`,
    `data ${mem}`,
    `stack ${stack}`,
    `code ${code}`,
    `log ${m.log.join(" ")}`,
  ].join("\n");
}

/** One slice: run, then mark the device accesses it made with the retired count at its end. */
export function slice(m: Machine, budget: number): ExitReason {
  const c = m.cpu;
  const logged = m.log.length;
  const r = c.run(budget);
  if (m.log.length > logged) m.log[m.log.length - 1] += `@${c.retired}`;
  return r;
}
