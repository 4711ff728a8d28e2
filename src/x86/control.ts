// Owns: control-transfer handlers: Jcc, JMP/CALL/RET near (relative and indirect), far JMP/CALL/RET
// (real mode, protected mode code segments, 64-bit), LOOP/LOOPE/LOOPNE/JCXZ, INT n/INT3/INTO/INT1, IRET
// (real, protected incl. outer-privilege and virtual-8086 returns, IRETQ).
// Must not: implement event delivery itself (exceptions.ts) or segment descriptor checks (segments.ts).
// Spec: Intel SDM Vol. 2A CALL, Vol. 2A/2B INT n/INTO/INT3/INT1, IRET/IRETD/IRETQ, Jcc, JMP, LOOP/LOOPcc,
// RET; Vol. 3A 5.8 (privilege checks for control transfers), 6.14.3 (IRET in IA-32e mode).

import { ACC_DB, ACC_L, ACC_P, ACC_UNUSABLE, CR0_PE, type CpuCore, type Handler, Vec } from "./core.js";
import { deliverSoftware, EventKind, tssStack } from "./exceptions.js";
import { type Insn, OpKind } from "./insn.js";
import {
  FLAG_AC,
  FLAG_ID,
  FLAG_IF,
  FLAG_NT,
  FLAG_RF,
  FLAG_VIF,
  FLAG_VIP,
  FLAG_VM,
  FLAGS_STATUS,
} from "./opcode-table.js";
import {
  descAccess,
  descBase,
  descLimit,
  fetchDescriptor,
  loadCodeSeg,
  loadSeg,
  peekCodeDescriptor,
  protectedMode,
} from "./segments.js";
import { ACC_WRITE } from "./paging.js";
import { writeFlags } from "./stack.js";

function jcc(c: CpuCore, d: Insn): void {
  const cc = d.opcode & 15;
  // JZ/JNZ close most loops (DEC/TEST/CMP + JNZ); ZF alone is cheaper than the general condition.
  const taken = cc >> 1 === 2 ? (c.getZF() ^ cc) & 1 : c.cond(cc);
  if (taken) c.branchRel(d.immLo, d.immHi, d.osize);
}

function jmp(c: CpuCore, d: Insn): void {
  c.branchRel(d.immLo, d.immHi, d.osize);
}

function jmpAbs(c: CpuCore, d: Insn): void {
  const lo = c.rd0(d);
  c.setRipSized(lo, d.osize === 8 ? c.hi : 0, d.osize);
}

function call(c: CpuCore, d: Insn): void {
  const rl = c.ripLo;
  const rh = c.ripHi;
  c.push(d.osize, rl, rh);
  c.branchRel(d.immLo, d.immHi, d.osize);
}

function callAbs(c: CpuCore, d: Insn): void {
  const lo = c.rd0(d);
  const hi = d.osize === 8 ? c.hi : 0;
  if (d.osize === 8) {
    // 64-bit: the push's faults (#SS, #AC, #PF) come first, then a non-canonical target is #GP(0) with
    // nothing written and rSP unchanged (observed on hardware).
    if ((hi << 16) >> 16 !== hi) {
      const s = (c.rlo[4]! >>> 0) - 8;
      const nlo = s | 0;
      const nhi = (c.rhi[4]! - (s < 0 ? 1 : 0)) | 0;
      if ((nhi << 16) >> 16 !== nhi) c.fault(Vec.SS, 0);
      c.alignCheck(nlo, nhi, 8, c.cpl === 3);
      c.translate(nlo, nhi, ACC_WRITE, c.cpl === 3);
      if ((nlo & 0xfff) > 0xff8) {
        const s2 = (nlo >>> 0) + 8;
        c.translate(s2 & ~0xfff, (nhi + (s2 >= 0x1_0000_0000 ? 1 : 0)) | 0, ACC_WRITE, c.cpl === 3);
      }
      c.gp(0);
    }
    c.push(8, c.ripLo, c.ripHi);
    c.ripLo = lo;
    c.ripHi = hi;
    return;
  }
  // Check the target before pushing so a bad target faults with the stack unchanged.
  const saveLo = c.ripLo;
  const saveHi = c.ripHi;
  c.setRipSized(lo, hi, d.osize);
  const tLo = c.ripLo;
  const tHi = c.ripHi;
  c.ripLo = saveLo;
  c.ripHi = saveHi;
  c.push(d.osize, saveLo, saveHi);
  c.ripLo = tLo;
  c.ripHi = tHi;
}

/** RET checks the target (#GP for non-canonical or beyond CS.limit) before RSP moves (SDM RET "Operation"). */
function ret(c: CpuCore, d: Insn): void {
  const lo = c.peekStack(0, d.osize);
  const hi = d.osize === 8 ? c.hi : 0;
  c.setRipSized(lo, hi, d.osize);
  c.addSp(d.osize + (d.k0 === OpKind.Imm ? d.immLo & 0xffff : 0));
}

/** Reads a far pointer operand: offset in return value (hi in c.hi), selector in farSel. */
let farSel = 0;
function farOperand(c: CpuCore, d: Insn): number {
  if (d.k0 === OpKind.FarPtr) {
    farSel = d.imm2 & 0xffff;
    c.hi = 0;
    return d.osize === 2 ? d.immLo & 0xffff : d.immLo;
  }
  const os = d.osize;
  const off = c.readMem(d.seg, c.eaLo, c.eaHi, os);
  const offHi = os === 8 ? c.hi : 0;
  const s = (c.eaLo >>> 0) + os;
  farSel = c.readMem(d.seg, s | 0, c.eaHi, 2);
  c.hi = offHi;
  return off;
}

/** Far JMP/CALL target load (no gates): real mode, or a protected-mode code segment at the same CPL. */
function farTransfer(c: CpuCore, sel: number, offLo: number, offHi: number, osize: number): void {
  if (!protectedMode(c)) {
    c.loadSegReal(1, sel);
    c.ripLo = osize === 2 ? offLo & 0xffff : offLo;
    c.ripHi = 0;
    return;
  }
  const acc = peekCodeDescriptor(c, sel);
  if ((acc & 0x10) === 0) {
    viaCallGate(c, sel, false, 0, 0, 0);
    return;
  }
  loadCodeSeg(c, sel, c.cpl, true);
  c.setRipSized(offLo, c.long64 ? offHi : 0, c.long64 ? osize : osize === 2 ? 2 : 4);
}

/**
 * Far JMP/CALL through a call gate (SDM Vol. 3A 5.8.3-5.8.6; 5.8.3.1 for IA-32e 16-byte gates): gate and
 * target checks, the inner-privilege stack switch from the TSS with parameter copying (legacy gates), and
 * the return frame. Task gates and TSS descriptors (task switching) are refused with #GP.
 */
function viaCallGate(
  c: CpuCore,
  gateSel: number,
  isCall: boolean,
  oldCs: number,
  retLo: number,
  retHi: number,
): void {
  const long = (c.efer & 0x400) !== 0;
  const g = fetchDescriptor(c, gateSel, long);
  if (g === null) return c.gp(gateSel & 0xfffc);
  const gLo = g.lo;
  const gHi = g.hi;
  const gHi2 = g.hi2;
  const gacc = descAccess(g);
  const type = gacc & 0x1f;
  if (long ? type !== 0x0c : type !== 0x04 && type !== 0x0c) c.gp(gateSel & 0xfffc);
  const gdpl = (gacc >> 5) & 3;
  if (gdpl < c.cpl || gdpl < (gateSel & 3)) c.gp(gateSel & 0xfffc);
  if ((gacc & ACC_P) === 0) c.fault(Vec.NP, gateSel & 0xfffc);
  const size = long ? 8 : type === 0x0c ? 4 : 2;
  const target = gLo >>> 16;
  const offLo = size === 2 ? gLo & 0xffff : (gLo & 0xffff) | (gHi & 0xffff0000);
  const offHi = long ? gHi2 : 0;
  const params = long ? 0 : gHi & 0x1f;
  const acc = peekCodeDescriptor(c, target);
  const dpl = (acc >> 5) & 3;
  if ((acc & 0x18) !== 0x18 || dpl > c.cpl) c.gp(target & 0xfffc);
  if (long && ((acc & ACC_L) === 0 || acc & ACC_DB)) c.gp(target & 0xfffc);
  if ((acc & ACC_P) === 0) c.fault(Vec.NP, target & 0xfffc);
  const conforming = (acc & 4) !== 0;
  if (isCall && !conforming && dpl < c.cpl) {
    const oldSs = c.segSel[2]!;
    const oldSpLo = c.rlo[4]!;
    const oldSpHi = c.rhi[4]!;
    if (long) {
      const s = (c.trBaseLo >>> 0) + 4 + dpl * 8;
      const tLo = s | 0;
      const tHi = (c.trBaseHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0;
      const spLo = c.readSys(tLo, tHi, 4);
      const spHi = c.readSys((tLo + 4) | 0, tHi, 4);
      loadCodeSeg(c, target, dpl, false);
      c.loadSegCache(2, dpl, 0, 0, 0, ACC_UNUSABLE | (dpl << 5));
      c.rlo[4] = spLo;
      c.rhi[4] = spHi;
    } else {
      const copied: number[] = [];
      for (let i = params - 1; i >= 0; i--) copied.push(c.peekStack(i * size, size));
      const { ss, sp } = tssStack(c, dpl, 0);
      const sd = fetchDescriptor(c, ss);
      if ((ss & 0xfffc) === 0 || sd === null) return c.fault(Vec.TS, ss & 0xfffc);
      const sacc = descAccess(sd);
      if ((ss & 3) !== dpl || ((sacc >> 5) & 3) !== dpl || (sacc & 0x1a) !== 0x12)
        c.fault(Vec.TS, ss & 0xfffc);
      if ((sacc & ACC_P) === 0) c.fault(Vec.SS, ss & 0xfffc);
      loadCodeSeg(c, target, dpl, false);
      c.loadSegCache(2, ss, descBase(sd), 0, descLimit(sd), sacc | 1);
      c.rlo[4] = sacc & ACC_DB ? sp : (c.rlo[4]! & ~0xffff) | (sp & 0xffff);
      c.push(size, oldSs, 0);
      c.push(size, oldSpLo, 0);
      for (const v of copied) c.push(size, v, 0);
      c.push(size, oldCs, 0);
      c.push(size, retLo, 0);
      c.ripLo = offLo;
      c.ripHi = 0;
      return;
    }
    c.push(8, oldSs, 0);
    c.push(8, oldSpLo, oldSpHi);
    c.push(8, oldCs, 0);
    c.push(8, retLo, retHi);
  } else {
    if (!isCall && (conforming ? dpl > c.cpl : dpl !== c.cpl)) c.gp(target & 0xfffc);
    if (isCall) {
      c.push(size, oldCs, 0);
      c.push(size, retLo, retHi);
    }
    loadCodeSeg(c, target, c.cpl, false);
  }
  c.ripLo = offLo;
  c.ripHi = offHi;
}

function jmpFar(c: CpuCore, d: Insn): void {
  const off = farOperand(c, d);
  farTransfer(c, farSel, off, c.hi, d.osize);
}

function callFar(c: CpuCore, d: Insn): void {
  const off = farOperand(c, d);
  const offHi = c.hi;
  const sel = farSel;
  const os = d.osize;
  const oldCs = c.segSel[1]!;
  const rl = c.ripLo;
  const rh = c.ripHi;
  if (protectedMode(c)) {
    const acc = peekCodeDescriptor(c, sel);
    if ((acc & 0x10) === 0) {
      viaCallGate(c, sel, true, oldCs, rl, rh);
      return;
    }
  }
  c.push(os, oldCs, 0);
  c.push(os, rl, rh);
  farTransfer(c, sel, off, offHi, os);
}

function retf(c: CpuCore, d: Insn): void {
  const os = d.osize;
  const imm = d.k0 === OpKind.Imm ? d.immLo & 0xffff : 0;
  const ipLo = c.peekStack(0, os);
  const ipHi = os === 8 ? c.hi : 0;
  const sel = c.peekStack(os, 2) & 0xffff;
  if (!protectedMode(c)) {
    c.addSp(2 * os + imm);
    c.loadSegReal(1, sel);
    c.ripLo = os === 2 ? ipLo & 0xffff : ipLo;
    c.ripHi = 0;
    return;
  }
  const rpl = sel & 3;
  if (rpl < c.cpl) c.gp(sel & 0xfffc);
  checkReturnCode(c, sel);
  if (rpl === c.cpl) {
    loadCodeSeg(c, sel, rpl, false);
    c.addSp(2 * os + imm);
    c.setRipSized(ipLo, ipHi, c.long64 ? os : os === 2 ? 2 : 4);
    return;
  }
  // Return to an outer privilege level: SS:rSP follow CS:rIP (and the parameters) on the stack.
  const spLo = c.peekStack(2 * os + imm, os);
  const spHi = os === 8 ? c.hi : 0;
  const ss = c.peekStack(3 * os + imm, 2) & 0xffff;
  const wasLong = (c.efer & 0x400) !== 0;
  loadCodeSeg(c, sel, rpl, false);
  if (wasLong && c.long64 && (ss & 0xfffc) === 0) c.loadSegCache(2, ss, 0, 0, 0, ACC_UNUSABLE | (rpl << 5));
  else loadSeg(c, 2, ss);
  setSp(c, spLo, spHi, os);
  c.addSp(imm);
  c.setRipSized(ipLo, ipHi, c.long64 ? os : os === 2 ? 2 : 4);
  nullDataSegsForOuter(c);
}

/**
 * RET far / IRET target checks beyond loadCodeSeg (SDM RET, IRET): a non-conforming code segment's DPL must
 * equal the selector's RPL; a conforming one's DPL must not exceed it.
 */
function checkReturnCode(c: CpuCore, sel: number): void {
  const acc = peekCodeDescriptor(c, sel);
  if ((acc & 0x18) !== 0x18) c.gp(sel & 0xfffc);
  const dpl = (acc >> 5) & 3;
  const rpl = sel & 3;
  if (acc & 4 ? dpl > rpl : dpl !== rpl) c.gp(sel & 0xfffc);
}

function setSp(c: CpuCore, lo: number, hi: number, os: number): void {
  if (c.stackSize === 8) {
    c.rlo[4] = lo;
    c.rhi[4] = os === 8 ? hi : 0;
  } else if (c.stackSize === 4) c.setGpr(4, 4, lo, 0);
  else c.rlo[4] = (c.rlo[4]! & ~0xffff) | (lo & 0xffff);
}

/** After a return to an outer level, data segments the new CPL may not use are nulled (SDM RET/IRET). */
function nullDataSegsForOuter(c: CpuCore): void {
  for (const s of [0, 3, 4, 5]) {
    const acc = c.segAccess[s]!;
    if (acc & ACC_UNUSABLE) continue;
    const dpl = (acc >> 5) & 3;
    const conformingCode = (acc & 0x1c) === 0x1c;
    if ((acc & 0x10) === 0 || (!conformingCode && dpl < c.cpl)) c.loadSegCache(s, 0, 0, 0, 0, ACC_UNUSABLE);
  }
}

function counterSize(d: Insn): number {
  return d.asize;
}

/** Decrements rCX at the address size; returns whether it is now non-zero. */
function decCount(c: CpuCore, d: Insn): boolean {
  const as = counterSize(d);
  if (as === 8) {
    const s = (c.rlo[1]! >>> 0) - 1;
    c.rlo[1] = s | 0;
    c.rhi[1] = (c.rhi[1]! - (s < 0 ? 1 : 0)) | 0;
    return (c.rlo[1]! | c.rhi[1]!) !== 0;
  }
  if (as === 4) {
    c.setGpr(1, 4, c.rlo[1]! - 1, 0);
    c.rhi[1] = c.rhi[1]!; // 32-bit address size: ECX written, upper half zeroed by setReg
    return c.rlo[1]! !== 0;
  }
  const v = (c.rlo[1]! - 1) & 0xffff;
  c.rlo[1] = (c.rlo[1]! & ~0xffff) | v;
  return v !== 0;
}

function loop(c: CpuCore, d: Insn): void {
  const nz = decCount(c, d);
  let take = nz;
  if (d.opcode === 0xe1) take = nz && c.getZF() === 1;
  else if (d.opcode === 0xe0) take = nz && c.getZF() === 0;
  if (take) c.branchRel(d.immLo, d.immHi, d.osize);
}

function jcxz(c: CpuCore, d: Insn): void {
  const as = d.asize;
  const zero =
    as === 8 ? (c.rlo[1]! | c.rhi[1]!) === 0 : as === 4 ? c.rlo[1]! === 0 : (c.rlo[1]! & 0xffff) === 0;
  if (zero) c.branchRel(d.immLo, d.immHi, d.osize);
}

function softInt(c: CpuCore, vector: number, kind: EventKind): void {
  // Virtual-8086 mode with IOPL < 3: INT n is IOPL-sensitive (no VME support).
  if (c.flagsReg & FLAG_VM && ((c.flagsReg >> 12) & 3) < 3 && kind === EventKind.Software) c.gp(0);
  deliverSoftware(c, vector, kind);
}

function iret(c: CpuCore, d: Insn): void {
  const os = d.osize;
  if (c.nmiBlocked) {
    // NMIs are unblocked from here on: a pending one is taken before the next instruction (SDM 6.7.1).
    c.nmiBlocked = false;
    c.attn = 1;
  }
  if (!(c.cr0 & CR0_PE)) {
    const ip = c.peekStack(0, os);
    const cs = c.peekStack(os, 2);
    const fl = c.peekStack(2 * os, os);
    c.addSp(3 * os);
    c.loadSegReal(1, cs);
    c.ripLo = os === 2 ? ip & 0xffff : ip;
    c.ripHi = 0;
    const mask = os === 2 ? 0xffff : 0x257fd5;
    writeFlags(c, fl, mask & ~(FLAG_VIF | FLAG_VIP) & 0x3f7fd5);
    return;
  }
  if (c.flagsReg & FLAG_VM) {
    // IRET inside virtual-8086 mode: IOPL-sensitive.
    if (((c.flagsReg >> 12) & 3) < 3) c.gp(0);
    const ip = c.peekStack(0, os);
    const cs = c.peekStack(os, 2);
    const fl = c.peekStack(2 * os, os);
    c.addSp(3 * os);
    c.loadSegReal(1, cs);
    c.ripLo = os === 2 ? ip & 0xffff : ip;
    writeFlags(c, fl, (os === 2 ? 0xffff : 0x3f7fd5) & ~(0x3000 | FLAG_VM | FLAG_VIF | FLAG_VIP));
    return;
  }
  if (c.getFlags() & FLAG_NT) {
    if (c.efer & 0x400) c.gp(0);
    c.gp(c.trSel & 0xfffc); // task return: task switching is not supported by this core
  }
  const ipLo = c.peekStack(0, os);
  const ipHi = os === 8 ? c.hi : 0;
  const sel = c.peekStack(os, 2) & 0xffff;
  const fl = c.peekStack(2 * os, os);
  const oldCpl = c.cpl;
  const iopl = (c.flagsReg >> 12) & 3;
  // Which flags IRET may change (SDM IRET operation): IOPL only at CPL 0, IF only when CPL <= IOPL.
  let mask = FLAGS_STATUS | 0x100 | 0x400 | FLAG_NT | FLAG_AC | FLAG_ID | FLAG_RF;
  if (oldCpl <= iopl) mask |= FLAG_IF;
  if (oldCpl === 0) mask |= 0x3000 | FLAG_VIF | FLAG_VIP;
  if (os === 2) mask &= 0xffff;
  if (!(c.efer & 0x400) && fl & FLAG_VM && oldCpl === 0 && os === 4) {
    // Return to virtual-8086 mode: ESP, SS, ES, DS, FS, GS follow.
    const esp = c.peekStack(12, 4);
    const ss = c.peekStack(16, 2);
    const es = c.peekStack(20, 2);
    const ds = c.peekStack(24, 2);
    const fs = c.peekStack(28, 2);
    const gs = c.peekStack(32, 2);
    writeFlags(c, fl, 0x3f7fd5);
    for (const [s, v] of [
      [1, sel],
      [2, ss],
      [0, es],
      [3, ds],
      [4, fs],
      [5, gs],
    ] as const)
      c.loadSegReal(s, v);
    c.rlo[4] = esp;
    c.ripLo = ipLo & 0xffff;
    c.ripHi = 0;
    return;
  }
  const rpl = sel & 3;
  if (rpl < oldCpl) c.gp(sel & 0xfffc);
  checkReturnCode(c, sel);
  const acc = peekCodeDescriptor(c, sel);
  const long = (c.efer & 0x400) !== 0;
  const to64 = long && (acc & ACC_L) !== 0 && (acc & ACC_DB) === 0;
  if (rpl === oldCpl && !(long && c.long64)) {
    loadCodeSeg(c, sel, rpl, false);
    c.addSp(3 * os);
    writeFlags(c, fl, mask);
    c.setRipSized(ipLo, ipHi, to64 ? 8 : os === 2 ? 2 : 4);
    return;
  }
  // 64-bit IRET always pops SS:RSP; legacy IRET does for an outer-privilege return.
  const spLo = c.peekStack(3 * os, os);
  const spHi = os === 8 ? c.hi : 0;
  const ss = c.peekStack(4 * os, 2) & 0xffff;
  loadCodeSeg(c, sel, rpl, false);
  if (long && c.long64 && (ss & 0xfffc) === 0 && rpl < 3)
    c.loadSegCache(2, ss, 0, 0, 0, ACC_UNUSABLE | (rpl << 5));
  else loadSeg(c, 2, ss);
  writeFlags(c, fl, mask);
  setSp(c, spLo, spHi, os);
  c.setRipSized(ipLo, ipHi, to64 ? 8 : os === 2 ? 2 : 4);
  if (rpl > oldCpl) nullDataSegsForOuter(c);
}

/** BOUND: #BR unless lower <= index <= upper (signed, operand size 16 or 32). */
function bound(c: CpuCore, d: Insn): void {
  const os = d.osize;
  const idx = os === 2 ? (c.rlo[d.r0]! << 16) >> 16 : c.rlo[d.r0]!;
  let lower = c.readMem(d.seg, c.eaLo, 0, os);
  let upper = c.readMem(d.seg, (c.eaLo + os) | 0, 0, os);
  if (os === 2) {
    lower = (lower << 16) >> 16;
    upper = (upper << 16) >> 16;
  }
  if (idx < lower || idx > upper) c.fault(Vec.BR);
}

export const controlHandlers: Record<string, Handler> = {
  bound,
  jcc,
  jmp,
  jmpAbs,
  call,
  callAbs,
  ret,
  jmpFar,
  callFar,
  retf,
  loop,
  jcxz,
  int3: (c) => softInt(c, Vec.BP, EventKind.Software),
  int: (c, d) => softInt(c, d.immLo & 0xff, EventKind.Software),
  into: (c) => {
    if (c.getOF()) softInt(c, Vec.OF, EventKind.Software);
  },
  int1: (c) => softInt(c, Vec.DB, EventKind.Icebp),
  iret,
};
