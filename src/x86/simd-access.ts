// Owns: what every SSE/MMX handler needs before and around its arithmetic: the architectural availability
// checks (CR0.EM/TS/MP, CR4.OSFXSR, pending x87 errors), reading and writing XMM/MMX/memory operand slots
// as 128-bit lane buffers (16-byte alignment #GP for the instructions that require it, 16-byte stores that
// fault before writing anything), and reporting SIMD floating-point exceptions through MXCSR (#XM / #UD).
// Must not: contain instruction semantics (sse-int.ts, sse-float.ts, ...) or allocate per instruction.
// Spec: Intel SDM Vol. 1 11.6.6 (alignment of 128-bit memory operands), 11.5 (SIMD floating-point exceptions,
// MXCSR), 13.1-13.2 (CR4.OSFXSR / OSXMMEXCPT), Vol. 2 "Exceptions (Protected Mode)" tables in 2.5 (Table 2-18
// for legacy SSE: #UD if CR0.EM or !CR4.OSFXSR, #NM if CR0.TS), Vol. 3A 2.5 (CR0.EM/MP/TS).

import { CR0_EM, CR0_NE, CR0_TS, CR4_OSFXSR, CR4_OSXMMEXCPT, type CpuCore, TLB_SIZE, Vec } from "./core.js";
import { type Insn, OpKind } from "./insn.js";
import { ACC_WRITE } from "./paging.js";

const TWO32 = 0x1_0000_0000;
/** `CpuCore.tlbUser` while alignment checking is live (CR0.AM, RFLAGS.AC, CPL 3): see `CpuCore.alignCheck`. */
const AC_LIVE = 6 * TLB_SIZE;

/** Legacy SSE availability (SDM Vol. 2 Table 2-18 "Exception class"): #UD, then #NM. */
export function sseCheck(c: CpuCore): void {
  if (c.cr0 & CR0_EM || !(c.cr4 & CR4_OSFXSR)) c.ud();
  if (c.cr0 & CR0_TS) c.fault(Vec.NM);
}

/**
 * MMX availability (SDM Vol. 2 Table 22-1 / "Exceptions" of MMX instructions): #UD if CR0.EM, #NM if CR0.TS,
 * #MF if an unmasked x87 exception is pending (FSW.ES) and CR0.NE. Then the instruction switches the x87
 * unit to MMX state (TOP 0, all tags valid).
 */
export function mmxCheck(c: CpuCore): void {
  if (c.cr0 & CR0_EM) c.ud();
  if (c.cr0 & CR0_TS) c.fault(Vec.NM);
  if (c.fpu.fsw & 0x80 && c.cr0 & CR0_NE) c.fault(Vec.MF);
  c.fpu.enterMmx();
}

/** Checks for the operand kinds of d's destination: MMX rows use MMX rules, everything else SSE rules. */
export function simdCheck(c: CpuCore, d: Insn): void {
  if (d.k0 === OpKind.Mmx || d.k1 === OpKind.Mmx) mmxCheck(c);
  else sseCheck(c);
}

/** 16-byte scratch lane buffers (A = first source / destination, B = second source, R = result). */
export class Lanes {
  readonly i32 = new Int32Array(4);
  readonly u32 = new Uint32Array(this.i32.buffer);
  readonly i16 = new Int16Array(this.i32.buffer);
  readonly u16 = new Uint16Array(this.i32.buffer);
  readonly i8 = new Int8Array(this.i32.buffer);
  readonly u8 = new Uint8Array(this.i32.buffer);
  readonly f32 = new Float32Array(this.i32.buffer);
  readonly f64 = new Float64Array(this.i32.buffer);
}
export const LA = new Lanes();
export const LB = new Lanes();
export const LR = new Lanes();

/** Linear address of d's memory operand for `size` bytes (segment checks applied); hi half in c.hi. */
function memLinear(c: CpuCore, d: Insn, size: number, write: boolean, align: boolean): number {
  // In 64-bit mode the alignment #GP comes before the non-canonical #SS of an RBP/RSP-based operand.
  if (align && c.long64 && ((c.eaLo + (d.seg < 4 ? 0 : c.segBaseLo[d.seg]!)) & 15) !== 0) c.gp(0);
  const lo = c.linear(d.seg, c.eaLo, c.eaHi, size, write);
  if (align && (lo & 15) !== 0) c.gp(0);
  // Alignment checking of 16-byte operands is model-specific (docs/x86-internals.md "Model-specific
  // behaviour"): the explicitly unaligned moves (MOVUPS/MOVUPD/MOVDQU/LDDQU) raise #AC(0) at CPL 3 when the
  // address is not 8-byte aligned, the latitude SDM Vol. 3A 6.15 ("Interrupt 17") gives them; the other
  // unaligned-capable 16-byte operands (PCMPxSTRx, exception type 4) never raise #AC.
  if (!align && size === 16 && d.entry?.handler === "movUnaligned") c.alignCheck(lo, c.hi, 8, c.cpl === 3);
  return lo;
}

/**
 * Loads operand slot (kind, reg, size) into `dst` (size bytes; the rest of the 16 bytes zeroed).
 * `align`: a 16-byte memory operand must be 16-byte aligned (#GP(0)) — every legacy SSE packed operand
 * except the explicitly unaligned moves (SDM Vol. 1 11.6.6).
 */
export function load(
  c: CpuCore,
  d: Insn,
  kind: number,
  reg: number,
  size: number,
  dst: Lanes,
  align: boolean,
): void {
  const o = dst.i32;
  if (kind === OpKind.Xmm) {
    const x = c.xmm;
    const b = reg * 4;
    o[0] = x[b]!;
    o[1] = size > 4 ? x[b + 1]! : 0;
    o[2] = size > 8 ? x[b + 2]! : 0;
    o[3] = size > 8 ? x[b + 3]! : 0;
    if (size < 4) o[0] = size === 2 ? o[0] & 0xffff : o[0] & 0xff;
    return;
  }
  if (kind === OpKind.Mmx) {
    o[0] = c.fpu.mmxLo(reg);
    o[1] = size > 4 ? c.fpu.mmxHi(reg) : 0;
    o[2] = o[3] = 0;
    return;
  }
  if (kind === OpKind.Mem) {
    if (size === 16) {
      const lo = memLinear(c, d, 16, false, align);
      const hi = c.hi;
      if (!align && (lo & 7) !== 0 && c.tlbUser === AC_LIVE && d.entry?.handler !== "movUnaligned") {
        // No #AC for these operands even while alignment checking is live (see memLinear): the 8-byte
        // halves would be checked, so the bytes are read one by one (1-byte accesses are never checked).
        for (let i = 0; i < 16; i++) {
          const s = (lo >>> 0) + i;
          dst.u8[i] = c.readLin(s | 0, (hi + (s >= TWO32 ? 1 : 0)) | 0, 1);
        }
        return;
      }
      o[0] = c.readLin(lo, hi, 8);
      o[1] = c.hi;
      const s = (lo >>> 0) + 8;
      o[2] = c.readLin(s | 0, (hi + (s >= TWO32 ? 1 : 0)) | 0, 8);
      o[3] = c.hi;
      return;
    }
    o[0] = c.readMem(d.seg, c.eaLo, c.eaHi, size);
    o[1] = size === 8 ? c.hi : 0;
    o[2] = o[3] = 0;
    return;
  }
  if (kind === OpKind.Reg) {
    o[0] = c.getGpr(reg, size);
    o[1] = size === 8 ? c.hi : 0;
    o[2] = o[3] = 0;
    return;
  }
  throw new Error(`operand kind ${kind} is not a SIMD source`);
}

/**
 * Loads slot 0 (destination as first source; a whole XMM register even for scalar forms, whose upper lanes
 * pass through) and slot 1 (second source) of d into LA and LB.
 */
export function load01(c: CpuCore, d: Insn, align: boolean): void {
  load(c, d, d.k0, d.r0, d.k0 === OpKind.Xmm ? 16 : d.s0, LA, false);
  load(c, d, d.k1, d.r1, d.s1, LB, align);
}

/**
 * Stores `size` bytes of `src` to operand slot (kind, reg). XMM destinations keep bytes >= size (legacy SSE
 * merges) unless `zeroUpper`; MMX destinations get a full 64-bit write. A 16-byte memory store checks both
 * pages before writing so a fault leaves memory untouched.
 */
export function store(
  c: CpuCore,
  d: Insn,
  kind: number,
  reg: number,
  size: number,
  src: Lanes,
  align: boolean,
  zeroUpper = false,
): void {
  const v = src.i32;
  if (kind === OpKind.Xmm) {
    const x = c.xmm;
    const b = reg * 4;
    if (size >= 4) x[b] = v[0]!;
    else if (size === 2) x[b] = (x[b]! & ~0xffff) | (v[0]! & 0xffff);
    else x[b] = (x[b]! & ~0xff) | (v[0]! & 0xff);
    if (size >= 8) x[b + 1] = v[1]!;
    else if (zeroUpper) x[b + 1] = 0;
    if (size === 16) {
      x[b + 2] = v[2]!;
      x[b + 3] = v[3]!;
    } else if (zeroUpper) x[b + 2] = x[b + 3] = 0;
    return;
  }
  if (kind === OpKind.Mmx) {
    c.fpu.setMmx(reg, v[0]!, size >= 8 || !zeroUpper ? v[1]! : 0);
    return;
  }
  if (kind === OpKind.Mem) {
    if (size === 16) {
      const lo = memLinear(c, d, 16, true, align);
      const hi = c.hi;
      const s = (lo >>> 0) + 8;
      const lo2 = s | 0;
      const hi2 = (hi + (s >= TWO32 ? 1 : 0)) | 0;
      // Probe the first page and, for a page-crossing store, the first byte of the second page (the CR2 a
      // fault there reports), then write the halves; nothing is written unless both pages are writable.
      c.translate(lo, hi, ACC_WRITE, c.cpl === 3);
      const po = lo & 0xfff;
      if (po > 4096 - 16) {
        const p2 = (lo >>> 0) + (4096 - po);
        c.translate(p2 | 0, (hi + (p2 >= TWO32 ? 1 : 0)) | 0, ACC_WRITE, c.cpl === 3);
      }
      // Lowest address first, as a device behind an MMIO range sees a 16-byte store (docs/decisions/0004).
      c.writeLin(lo, hi, 8, v[0]!, v[1]!);
      c.writeLin(lo2, hi2, 8, v[2]!, v[3]!);
      return;
    }
    c.writeMem(d.seg, c.eaLo, c.eaHi, size, v[0]!, v[1]!);
    return;
  }
  if (kind === OpKind.Reg) {
    c.setGpr(reg, size, v[0]!, v[1]!);
    return;
  }
  throw new Error(`operand kind ${kind} is not a SIMD destination`);
}

/** Stores LR into slot 0 (size s0). */
export function store0(c: CpuCore, d: Insn, src: Lanes = LR): void {
  store(c, d, d.k0, d.r0, d.s0, src, false);
}

// ---- MXCSR (SDM Vol. 1 10.2.3) ----
export const MX_IE = 0x01;
export const MX_DE = 0x02;
export const MX_ZE = 0x04;
export const MX_OE = 0x08;
export const MX_UE = 0x10;
export const MX_PE = 0x20;
export const MX_DAZ = 0x40;
export const MX_FTZ = 0x8000;
/** Bits LDMXCSR/FXRSTOR accept (MXCSR_MASK reported by FXSAVE): flags, DAZ, masks, RC, FTZ. */
export const MXCSR_MASK = 0xffff;

/**
 * Commits the exception flags an SSE floating-point instruction raised. Unmasked ones fault (#XM with
 * CR4.OSXMMEXCPT, else #UD) before the destination is written, reporting only the pre-computation flags
 * (IE, DE, ZE) when one of those is unmasked (SDM Vol. 1 11.5.1-11.5.3).
 */
export function raiseMx(c: CpuCore, flags: number): void {
  if (flags === 0) return;
  const masks = (c.mxcsr >> 7) & 0x3f;
  const pre = flags & (MX_IE | MX_DE | MX_ZE);
  if (pre & ~masks) {
    c.mxcsr |= pre;
    signalXm(c);
  }
  c.mxcsr |= flags;
  if (flags & ~masks) signalXm(c);
}

function signalXm(c: CpuCore): never {
  return c.cr4 & CR4_OSXMMEXCPT ? c.fault(Vec.XM) : c.ud();
}
