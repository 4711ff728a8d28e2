// Owns: stack handlers: PUSH/POP (register, memory, immediate, segment), PUSHA/POPA, PUSHF/POPF (with the
// IOPL/VM/IF rules), ENTER/LEAVE.
// Must not: address the stack other than through CpuCore.push/pop/peekStack/addSp, which apply the stack
// address size (SS.B, 64-bit mode) and commit RSP only after the access succeeded.
// Spec: Intel SDM Vol. 2B PUSH, POP, PUSHA/PUSHAD, POPA/POPAD, PUSHF/PUSHFD/PUSHFQ, POPF/POPFD/POPFQ, ENTER,
// LEAVE; Vol. 3A 20.2.7 (virtual-8086 sensitive instructions).

import { CR0_PE, type CpuCore, type Handler, Vec } from "./core.js";
import { type Insn, OpKind } from "./insn.js";
import {
  FLAG_AC,
  FLAG_ID,
  FLAG_IF,
  FLAG_NT,
  FLAG_RF,
  FLAG_VM,
  FLAGS_STATUS,
  FLAG_DF,
  FLAG_TF,
} from "./opcode-table.js";
import { ACC_WRITE } from "./paging.js";
import { loadSeg } from "./segments.js";

function push(c: CpuCore, d: Insn): void {
  const v = c.rd0(d);
  const h = d.osize === 8 ? c.hi : 0;
  c.push(d.osize, v, h);
}

function pop(c: CpuCore, d: Insn): void {
  const size = d.osize;
  if (d.k0 === OpKind.Mem) {
    // The destination address is computed with RSP already incremented (SDM POP), and RSP is only
    // committed once the store succeeded.
    const v = c.peekStack(0, size);
    const h = c.hi;
    const sLo = c.rlo[4]!;
    const sHi = c.rhi[4]!;
    c.addSp(size);
    try {
      c.computeEA(d);
      c.writeMem(d.seg, c.eaLo, c.eaHi, size, v, h);
    } catch (e) {
      c.rlo[4] = sLo;
      c.rhi[4] = sHi;
      throw e;
    }
    return;
  }
  const v = c.pop(size);
  c.setGpr(d.r0, size, v, c.hi);
}

function pushSeg(c: CpuCore, d: Insn): void {
  c.push(d.osize, c.segSel[d.r0]!, 0);
}

function popSeg(c: CpuCore, d: Insn): void {
  const v = c.peekStack(0, d.osize) & 0xffff;
  loadSeg(c, d.r0, v);
  c.addSp(d.osize);
  if (d.r0 === 2) c.shadow = c.attn = 2;
}

function pusha(c: CpuCore, d: Insn): void {
  const size = d.osize;
  const sp = c.rlo[4]!;
  for (let r = 0; r < 8; r++) c.push(size, r === 4 ? sp : c.rlo[r]!, 0);
}

function popa(c: CpuCore, d: Insn): void {
  const size = d.osize;
  for (let r = 7; r >= 0; r--) {
    const v = c.pop(size);
    if (r !== 4) c.setGpr(r, size, v, 0);
  }
}

function v86Iopl(c: CpuCore): boolean {
  return (c.flagsReg & FLAG_VM) !== 0;
}

function pushf(c: CpuCore, d: Insn): void {
  const f = c.getFlags();
  if (v86Iopl(c) && ((f >> 12) & 3) < 3) c.gp(0);
  c.push(d.osize, f & ~(FLAG_VM | FLAG_RF), 0);
}

/** Writes RFLAGS bits under `mask` (all status/control rules already applied by the caller). */
export function writeFlags(c: CpuCore, value: number, mask: number): void {
  const old = c.getFlags();
  c.flagsReg = ((old & ~mask) | (value & mask) | 2) & 0x3f7fd7;
  if ((old ^ c.flagsReg) & (FLAG_VM | FLAG_AC)) c.updateMode();
}

function popf(c: CpuCore, d: Insn): void {
  const f = c.getFlags();
  const iopl = (f >> 12) & 3;
  if (v86Iopl(c) && iopl < 3) c.gp(0);
  const v = c.pop(d.osize);
  let mask = FLAGS_STATUS | FLAG_TF | FLAG_DF | FLAG_NT | FLAG_AC | FLAG_ID;
  const pm = (c.cr0 & CR0_PE) !== 0 && !v86Iopl(c);
  if (!pm && !v86Iopl(c)) mask |= FLAG_IF | 0x3000;
  else if (pm) {
    if (c.cpl === 0) mask |= 0x3000;
    if (c.cpl <= iopl) mask |= FLAG_IF;
  } else mask |= FLAG_IF; // virtual-8086 with IOPL 3: IOPL unchanged
  if (d.osize === 2) mask &= 0xffff;
  writeFlags(c, v, mask);
}

/** Write-checks size bytes at rSP - below (stack segment and paging), raising #SS/#PF without writing. */
function enterProbe(c: CpuCore, below: number, size: number): void {
  if (c.stackSize === 8) {
    const s = (c.rlo[4]! >>> 0) - below;
    const lo = s | 0;
    const hi = (c.rhi[4]! - (s < 0 ? 1 : 0)) | 0;
    if ((hi << 16) >> 16 !== hi) c.fault(Vec.SS, 0);
    c.alignCheck(lo, hi, size, c.cpl === 3);
    c.translate(lo, hi, ACC_WRITE, c.cpl === 3);
    return;
  }
  const sp = c.stackSize === 4 ? (c.rlo[4]! - below) | 0 : (c.rlo[4]! - below) & 0xffff;
  const lin = c.linear(2, sp, 0, size, true);
  c.alignCheck(lin, 0, size, c.cpl === 3);
  c.translate(lin, 0, ACC_WRITE, c.cpl === 3);
}

function enter(c: CpuCore, d: Insn): void {
  const size = d.osize;
  const alloc = d.immLo & 0xffff;
  const level = d.imm2 & 31;
  // The final stack pointer must be writable before anything changes (SDM ENTER "Protected/64-Bit Mode
  // Exceptions": a write using the final value of the stack pointer would fault).
  // The pushes happen first (hardware writes them), but a fault leaves rSP unchanged.
  const spLo = c.rlo[4]!;
  const spHi = c.rhi[4]!;
  try {
    enterFrame(c, size, alloc, level, spLo, spHi);
  } catch (e) {
    // A fault or exit (an MMIO frame-pointer read) in the nesting display: rSP as before the instruction.
    c.rlo[4] = spLo;
    c.rhi[4] = spHi;
    throw e;
  }
}

function enterFrame(
  c: CpuCore,
  size: number,
  alloc: number,
  level: number,
  spLo: number,
  spHi: number,
): void {
  c.push(size, c.rlo[5]!, c.rhi[5]!);
  const ftLo = c.rlo[4]!;
  const ftHi = c.rhi[4]!;
  if (level > 0) {
    let bp = c.rlo[5]!;
    let bpHi = c.rhi[5]!;
    for (let i = 1; i < level; i++) {
      const s = (bp >>> 0) - size;
      bp = c.stackSize === 2 ? s & 0xffff : s | 0;
      if (c.stackSize === 8) bpHi = (bpHi - (s < 0 ? 1 : 0)) | 0;
      const v =
        c.stackSize === 8
          ? c.readLin(bp, bpHi, size)
          : c.readMem(2, c.stackSize === 2 ? bp & 0xffff : bp, 0, size);
      c.push(size, v, c.hi);
    }
    c.push(size, ftLo, ftHi);
  }
  if (alloc !== 0) {
    const pLo = c.rlo[4]!;
    const pHi = c.rhi[4]!;
    c.rlo[4] = spLo;
    c.rhi[4] = spHi;
    enterProbe(c, size * (level > 0 ? level + 1 : 1) + alloc, size);
    c.rlo[4] = pLo;
    c.rhi[4] = pHi;
  }
  // rBP takes the frame pointer at the operand size; rSP then drops by the allocation size.
  c.setGpr(5, size, ftLo, ftHi);
  c.addSp(-alloc);
}

function leave(c: CpuCore, d: Insn): void {
  const ss = c.stackSize;
  if (ss === 8) {
    c.rlo[4] = c.rlo[5]!;
    c.rhi[4] = c.rhi[5]!;
  } else if (ss === 4) c.rlo[4] = c.rlo[5]!;
  else c.rlo[4] = (c.rlo[4]! & ~0xffff) | (c.rlo[5]! & 0xffff);
  const v = c.pop(d.osize);
  c.setGpr(5, d.osize, v, c.hi);
}

export const stackHandlers: Record<string, Handler> = {
  push,
  pop,
  pushSeg,
  popSeg,
  pusha,
  popa,
  pushf,
  popf,
  enter,
  leave,
};
