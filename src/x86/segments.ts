// Owns: segment-register loads with protected-mode descriptor checks (null selector, table limit, type,
// present, DPL/RPL/CPL), descriptor-table lookups for GDT/LDT, code-segment loads for far transfers, and the
// segment/descriptor instructions (MOV Sreg, LDS/LES/LFS/LGS/LSS, LLDT, LTR, SLDT, STR, LAR, LSL, VERR, VERW,
// ARPL).
// Must not: deliver exceptions (it raises them via CpuCore.fault) or implement gates' control transfer
// (control.ts, exceptions.ts).
// Spec: Intel SDM Vol. 3A 3.4 (selectors, descriptors), 5.5-5.8 (privilege checks on loads and transfers),
// Vol. 2 MOV (segment), LDS/LES/LFS/LGS/LSS, LLDT, LTR, LAR, LSL, VERR/VERW, ARPL.

import {
  ACC_DB,
  ACC_P,
  ACC_S,
  ACC_UNUSABLE,
  CR0_PE,
  type CpuCore,
  EFER_LMA,
  type Handler,
  Vec,
} from "./core.js";
import { type Insn, OpKind } from "./insn.js";
import { FLAG_ZF } from "./opcode-table.js";

/** Raw descriptor of the last `fetchDescriptor` (low and high dwords; 16-byte system descriptors: hi2). */
export class DescriptorScratch {
  lo = 0;
  hi = 0;
  hi2 = 0;
  /** Linear address of the descriptor (for setting the accessed bit). */
  addrLo = 0;
  addrHi = 0;
}
const desc = new DescriptorScratch();

export function protectedMode(c: CpuCore): boolean {
  return (c.cr0 & CR0_PE) !== 0 && (c.flagsReg & 0x20000) === 0;
}

/**
 * Reads the 8-byte descriptor for `sel` (or 16 bytes when `wide`, for system descriptors in long mode)
 * into the module scratch. Returns false when the selector is beyond the table limit (caller faults).
 */
export function fetchDescriptor(c: CpuCore, sel: number, wide = false): DescriptorScratch | null {
  const idx = sel & 0xfff8;
  let baseLo: number;
  let baseHi: number;
  let limit: number;
  if (sel & 4) {
    if (c.ldtrAccess & ACC_UNUSABLE) return null;
    baseLo = c.ldtrBaseLo;
    baseHi = c.ldtrBaseHi;
    limit = c.ldtrLimit;
  } else {
    baseLo = c.gdtrBaseLo;
    baseHi = c.gdtrBaseHi;
    limit = c.gdtrLimit;
  }
  if (idx + (wide ? 15 : 7) > limit) return null;
  const s = (baseLo >>> 0) + idx;
  desc.addrLo = s | 0;
  desc.addrHi = c.long64 || c.efer & 0x400 ? (baseHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0 : 0;
  desc.lo = c.readSys(desc.addrLo, desc.addrHi, 4);
  desc.hi = c.readSys((desc.addrLo + 4) | 0, desc.addrHi, 4);
  desc.hi2 = wide ? c.readSys((desc.addrLo + 8) | 0, desc.addrHi, 4) : 0;
  return desc;
}

export function descBase(d: DescriptorScratch): number {
  return (d.lo >>> 16) | ((d.hi & 0xff) << 16) | (d.hi & 0xff000000) | 0;
}

export function descLimit(d: DescriptorScratch): number {
  const raw = (d.lo & 0xffff) | (d.hi & 0xf0000);
  return d.hi & 0x800000 ? ((raw << 12) | 0xfff) >>> 0 : raw;
}

/** Access rights in VMCS layout from a descriptor's high dword. */
export function descAccess(d: DescriptorScratch): number {
  return (d.hi >>> 8) & 0xf0ff;
}

/** Sets the accessed bit of the descriptor last fetched, as the processor does on a segment load. */
function markAccessed(c: CpuCore, d: DescriptorScratch): void {
  if ((d.hi & 0x100) === 0) {
    d.hi |= 0x100;
    c.writeSys((d.addrLo + 4) | 0, d.addrHi, 4, d.hi, 0);
  }
}

/** Loads a data segment register or SS from a selector, with all protected-mode checks. */
export function loadSeg(c: CpuCore, seg: number, sel: number): void {
  sel &= 0xffff;
  if (!protectedMode(c)) {
    c.loadSegReal(seg, sel);
    return;
  }
  const rpl = sel & 3;
  if ((sel & 0xfffc) === 0) {
    // Null selector: SS only in 64-bit mode at CPL < 3 (SDM Vol. 3A 5.4.1.1 / MOV).
    if (seg === 2 && !(c.long64 && c.cpl < 3 && rpl === c.cpl)) c.gp(0);
    c.loadSegCache(seg, sel, 0, 0, 0, ACC_UNUSABLE | (seg === 2 ? c.cpl << 5 : 0));
    return;
  }
  const d = fetchDescriptor(c, sel);
  if (d === null) c.gp(sel & 0xfffc);
  const acc = descAccess(d);
  const dpl = (acc >> 5) & 3;
  const type = acc & 0xf;
  if ((acc & ACC_S) === 0) c.gp(sel & 0xfffc);
  if (seg === 2) {
    // Writable data, RPL = CPL = DPL.
    if (type & 8 || (type & 2) === 0 || rpl !== c.cpl || dpl !== c.cpl) c.gp(sel & 0xfffc);
    if ((acc & ACC_P) === 0) c.fault(Vec.SS, sel & 0xfffc);
  } else {
    // Data or readable code; non-conforming needs DPL >= max(CPL, RPL).
    if ((type & 0xa) === 8) c.gp(sel & 0xfffc);
    const conformingCode = (type & 0xc) === 0xc;
    if (!conformingCode && (dpl < c.cpl || dpl < rpl)) c.gp(sel & 0xfffc);
    if ((acc & ACC_P) === 0) c.fault(Vec.NP, sel & 0xfffc);
  }
  markAccessed(c, d);
  c.loadSegCache(seg, sel, descBase(d), 0, descLimit(d), acc | 1);
}

/**
 * Loads CS for a far JMP/CALL/RET/IRET to a code-segment descriptor at privilege `newCpl` (the selector's
 * RPL is forced to it). Checks type, present and (for `checkPriv`) the JMP/CALL privilege rules; call gates
 * and task switches are handled by the callers.
 */
export function loadCodeSeg(c: CpuCore, sel: number, newCpl: number, checkPriv: boolean): void {
  sel &= 0xffff;
  if ((sel & 0xfffc) === 0) c.gp(0);
  const d = fetchDescriptor(c, sel);
  if (d === null) c.gp(sel & 0xfffc);
  const acc = descAccess(d);
  if ((acc & 0x18) !== 0x18) c.gp(sel & 0xfffc); // must be a code segment
  const dpl = (acc >> 5) & 3;
  if (checkPriv) {
    if (acc & 4) {
      if (dpl > c.cpl) c.gp(sel & 0xfffc); // conforming: DPL <= CPL
    } else if ((sel & 3) > c.cpl || dpl !== c.cpl) c.gp(sel & 0xfffc);
  }
  if ((acc & ACC_P) === 0) c.fault(Vec.NP, sel & 0xfffc);
  if (acc & 0x2000 && acc & ACC_DB && c.efer & 0x400) c.gp(sel & 0xfffc); // L and D both set
  markAccessed(c, d);
  c.loadSegCache(1, (sel & 0xfffc) | newCpl, descBase(d), 0, descLimit(d), acc | 1);
}

/** Validates a far-transfer code descriptor without loading it; returns its access rights (or faults). */
export function peekCodeDescriptor(c: CpuCore, sel: number): number {
  if ((sel & 0xfffc) === 0) c.gp(0);
  const d = fetchDescriptor(c, sel);
  if (d === null) c.gp(sel & 0xfffc);
  return descAccess(d);
}

function movToSreg(c: CpuCore, d: Insn): void {
  const seg = d.r0;
  if (seg === 1) c.ud(); // MOV CS is invalid
  const v = c.rd1(d) & 0xffff;
  loadSeg(c, seg, v);
  if (seg === 2) c.shadow = c.attn = 2; // MOV SS inhibits interrupts until after the next instruction
}

function movFromSreg(c: CpuCore, d: Insn): void {
  const v = c.segSel[d.r1]!;
  // A memory destination is always 16 bits; a register gets the selector zero-extended.
  if (d.k0 === OpKind.Mem) c.writeMem(d.seg, c.eaLo, c.eaHi, 2, v, 0);
  else c.setGpr(d.r0, d.s0 === 8 ? 8 : d.s0, v, 0);
}

/** LDS/LES/LFS/LGS/LSS: offset then selector from memory. */
function loadFar(c: CpuCore, d: Insn): void {
  const os = d.s0;
  const off = c.readMem(d.seg, c.eaLo, c.eaHi, os);
  const offHi = c.hi;
  const s2 = (c.eaLo >>> 0) + os;
  const sel = c.readMem(d.seg, s2 | 0, c.eaHi, 2);
  const op = d.opcode;
  const seg = op === 0xc5 ? 3 : op === 0xc4 ? 0 : op === 0xb2 ? 2 : op === 0xb4 ? 4 : 5;
  loadSeg(c, seg, sel);
  c.setGpr(d.r0, os, off, offHi);
}

function requirePm(c: CpuCore): void {
  if (!protectedMode(c)) c.ud();
}

/**
 * The upper half of a 16-byte LDT/TSS descriptor in IA-32e mode: its type field (bits 12:8 of the fourth
 * dword) must be 0 and the 64-bit base canonical, else #GP(selector) (SDM Vol. 2A LLDT/LTR 64-bit mode
 * exceptions; Vol. 3A 3.5.2, 7.2.3). The fourth dword is read here, as fetchDescriptor stops at 12 bytes.
 */
function checkSystemUpper(c: CpuCore, ds: DescriptorScratch, sel: number): void {
  const upper = c.readSys((ds.addrLo + 12) | 0, ds.addrHi, 4);
  if (upper & 0x1f00) c.gp(sel & 0xfffc);
  if ((ds.hi2 << 16) >> 16 !== ds.hi2) c.gp(sel & 0xfffc); // base bits 63:47 must be equal
}

function lldt(c: CpuCore, d: Insn): void {
  requirePm(c);
  const sel = c.rd0(d) & 0xffff;
  if ((sel & 0xfffc) === 0) {
    c.ldtrSel = sel;
    c.ldtrAccess = ACC_UNUSABLE;
    return;
  }
  if (sel & 4) c.gp(sel & 0xfffc);
  // System descriptors are 16 bytes in IA-32e mode, compatibility mode included.
  const wide = (c.efer & EFER_LMA) !== 0;
  const ds = fetchDescriptor(c, sel, wide);
  if (ds === null) c.gp(sel & 0xfffc);
  const acc = descAccess(ds);
  if ((acc & 0x1f) !== 2) c.gp(sel & 0xfffc);
  if ((acc & ACC_P) === 0) c.fault(Vec.NP, sel & 0xfffc);
  if (wide) checkSystemUpper(c, ds, sel);
  c.ldtrSel = sel;
  c.ldtrBaseLo = descBase(ds);
  c.ldtrBaseHi = wide ? ds.hi2 : 0;
  c.ldtrLimit = descLimit(ds);
  c.ldtrAccess = acc;
}

function ltr(c: CpuCore, d: Insn): void {
  requirePm(c);
  const sel = c.rd0(d) & 0xffff;
  if ((sel & 0xfffc) === 0 || sel & 4) c.gp(sel & 0xfffc);
  const wide = (c.efer & EFER_LMA) !== 0;
  const ds = fetchDescriptor(c, sel, wide);
  if (ds === null) c.gp(sel & 0xfffc);
  const acc = descAccess(ds);
  const type = acc & 0x1f;
  // Available 16-bit TSS (1) outside IA-32e mode, available 32/64-bit TSS (9).
  if (type !== 9 && !(type === 1 && !wide)) c.gp(sel & 0xfffc);
  if ((acc & ACC_P) === 0) c.fault(Vec.NP, sel & 0xfffc);
  if (wide) checkSystemUpper(c, ds, sel);
  ds.hi |= 0x200; // mark busy
  c.writeSys((ds.addrLo + 4) | 0, ds.addrHi, 4, ds.hi, 0);
  c.trSel = sel;
  c.trBaseLo = descBase(ds);
  c.trBaseHi = wide ? ds.hi2 : 0;
  c.trLimit = descLimit(ds);
  c.trAccess = acc | 2;
}

function storeSel(c: CpuCore, d: Insn, v: number): void {
  if (d.k0 === OpKind.Mem) c.writeMem(d.seg, c.eaLo, c.eaHi, 2, v, 0);
  else c.setGpr(d.r0, d.s0, v, 0);
}

/** LAR/LSL/VERR/VERW: descriptor visibility test; sets ZF when the descriptor passes (SDM "LAR"). */
function probe(c: CpuCore, sel: number, kind: "lar" | "lsl" | "verr" | "verw"): DescriptorScratch | null {
  if ((sel & 0xfffc) === 0) return null;
  const d = fetchDescriptor(c, sel);
  if (d === null) return null;
  const acc = descAccess(d);
  const dpl = (acc >> 5) & 3;
  const type = acc & 0xf;
  const conforming = (acc & 0x1c) === 0x1c;
  if (kind === "verr" || kind === "verw") {
    if ((acc & ACC_S) === 0) return null;
    if (!conforming && (dpl < c.cpl || dpl < (sel & 3))) return null;
    if (kind === "verr") return (type & 0xa) === 8 ? null : d;
    return (type & 0xa) === 2 ? d : null;
  }
  if (acc & ACC_S) {
    if (!conforming && (dpl < c.cpl || dpl < (sel & 3))) return null;
    return d;
  }
  // System descriptors visible to LAR/LSL: TSS (1,3,9,11), LDT (2); LAR also call/task gates (4,5,12).
  const okLsl = type === 1 || type === 2 || type === 3 || type === 9 || type === 11;
  const okLar = okLsl || type === 4 || type === 5 || type === 12;
  if (c.long64 && type !== 2 && type !== 9 && type !== 11 && !(kind === "lar" && type === 12)) return null;
  if (!(kind === "lar" ? okLar : okLsl)) return null;
  if (dpl < c.cpl || dpl < (sel & 3)) return null;
  return d;
}

function larLsl(c: CpuCore, d: Insn, lsl: boolean): void {
  requirePm(c);
  const sel = c.rd1(d) & 0xffff;
  const ds = probe(c, sel, lsl ? "lsl" : "lar");
  if (ds === null) {
    c.setStatus(FLAG_ZF, 0);
    return;
  }
  c.setStatus(FLAG_ZF, FLAG_ZF);
  const v = lsl ? descLimit(ds) : ds.hi & 0x00ffff00;
  c.setGpr(d.r0, d.s0, v, 0);
}

function verrw(c: CpuCore, d: Insn, w: boolean): void {
  requirePm(c);
  const sel = c.rd0(d) & 0xffff;
  c.setStatus(FLAG_ZF, probe(c, sel, w ? "verw" : "verr") !== null ? FLAG_ZF : 0);
}

function arpl(c: CpuCore, d: Insn): void {
  requirePm(c);
  const dst = c.rd0(d);
  const src = c.rd1(d);
  if ((dst & 3) < (src & 3)) {
    c.wr0(d, (dst & ~3) | (src & 3), 0);
    c.setStatus(FLAG_ZF, FLAG_ZF);
  } else c.setStatus(FLAG_ZF, 0);
}

export const segmentHandlers: Record<string, Handler> = {
  movToSreg,
  movFromSreg,
  loadFar,
  lldt,
  ltr,
  sldt: (c, d) => {
    requirePm(c);
    storeSel(c, d, c.ldtrSel);
  },
  str: (c, d) => {
    requirePm(c);
    storeSel(c, d, c.trSel);
  },
  lar: (c, d) => larLsl(c, d, false),
  lsl: (c, d) => larLsl(c, d, true),
  verr: (c, d) => verrw(c, d, false),
  verw: (c, d) => verrw(c, d, true),
  arpl,
};
