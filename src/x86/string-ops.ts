// Owns: string instructions MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS with REP/REPE/REPNE in 16/32/64-bit
// address sizes, and the port-I/O primitives they share with IN/OUT (I/O permission checks, the intercept).
// Must not: run a REP loop unboundedly inside one step: at most REP_CHUNK iterations run per execution, and
// no more than the run's budget has left, then RIP stays on the instruction so interrupts, exits and the
// budget are honoured between chunks. Every iteration counts as a retired instruction (as QEMU's instruction
// counter counts them), so the budget, `--max-instructions` and deterministic time bound a REP with any count.
// Spec: Intel SDM Vol. 2B MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS, REP/REPE/REPNE (incl. "interrupted
// repeated string operations"), Vol. 1 18.5.2 (I/O permission bit map), Vol. 3A 20.2.8.

import { usize } from "./alu.js";
import { CR0_PE, type CpuCore, type Handler } from "./core.js";
import { LazyOp } from "./flags.js";
import { type Insn, PFX_REP, PFX_REPNE } from "./insn.js";
import { FLAG_DF, FLAG_VM } from "./opcode-table.js";

const REP_CHUNK = 4096;

/** Reads index register r (RSI/RDI/RCX) at the address size. */
function idx(c: CpuCore, r: number, as: number): number {
  if (as === 8) {
    c.hi = c.rhi[r]!;
    return c.rlo[r]!;
  }
  c.hi = 0;
  return as === 4 ? c.rlo[r]! : c.rlo[r]! & 0xffff;
}

/** Adds delta to index register r at the address size (wrapping as the architecture does). */
function step(c: CpuCore, r: number, as: number, delta: number): void {
  if (as === 8) {
    const s = (c.rlo[r]! >>> 0) + delta;
    c.rlo[r] = s | 0;
    c.rhi[r] = (c.rhi[r]! + (s >= 0x1_0000_0000 ? 1 : s < 0 ? -1 : 0)) | 0;
  } else if (as === 4) c.setGpr(r, 4, c.rlo[r]! + delta, 0);
  else c.rlo[r] = (c.rlo[r]! & ~0xffff) | ((c.rlo[r]! + delta) & 0xffff);
}

function countZero(c: CpuCore, as: number): boolean {
  if (as === 8) return (c.rlo[1]! | c.rhi[1]!) === 0;
  if (as === 4) return c.rlo[1]! === 0;
  return (c.rlo[1]! & 0xffff) === 0;
}

/** Operand size of a string instruction: byte forms are even opcodes. */
function elemSize(d: Insn): number {
  return (d.opcode & 1) === 0 ? 1 : d.osize;
}

/** Iterations a REP chunk may run now: at most REP_CHUNK, and no more than the budget has left (at least 1). */
function chunk(c: CpuCore): number {
  return Math.max(1, Math.min(REP_CHUNK, c.budgetEnd - c.count));
}

/**
 * Runs `body` once, or as a REP loop. body returns false to stop early (REPE/REPNE condition or a posted
 * exit). When iterations remain after a chunk, RIP is moved back to the instruction. Every iteration after
 * the first is added to the retired count (the dispatch counts the first).
 */
function repeat(c: CpuCore, d: Insn, body: (c: CpuCore, d: Insn) => boolean, conditional: boolean): void {
  const rep = d.prefixes & (PFX_REP | PFX_REPNE);
  if (rep === 0) {
    body(c, d);
    return;
  }
  const as = d.asize;
  const max = chunk(c);
  let n = 0;
  let finished = false;
  while (n < max) {
    if (countZero(c, as)) {
      finished = true;
      break;
    }
    const cont = body(c, d);
    step(c, 1, as, -1);
    n++;
    if (conditional) {
      const zf = c.getZF();
      if ((rep & PFX_REP) !== 0 ? zf === 0 : zf === 1) {
        finished = true;
        break;
      }
    }
    if (!cont) break;
  }
  if (n > 1) c.count += n - 1;
  if (!finished && !countZero(c, as)) {
    c.ripLo = c.curRipLo;
    c.ripHi = c.curRipHi;
  }
}

function dir(c: CpuCore, size: number): number {
  return c.flagsReg & FLAG_DF ? -size : size;
}

function movsBody(c: CpuCore, d: Insn): boolean {
  const size = elemSize(d);
  const as = d.asize;
  const s = idx(c, 6, as);
  const v = c.readMem(d.seg, s, c.hi, size);
  const vh = c.hi;
  const t = idx(c, 7, as);
  c.writeMem(0, t, c.hi, size, v, vh);
  const delta = dir(c, size);
  step(c, 6, as, delta);
  step(c, 7, as, delta);
  return !c.postedExit;
}

function stosBody(c: CpuCore, d: Insn): boolean {
  const size = elemSize(d);
  const as = d.asize;
  const t = idx(c, 7, as);
  c.writeMem(0, t, c.hi, size, c.rlo[0]!, c.rhi[0]!);
  step(c, 7, as, dir(c, size));
  return !c.postedExit;
}

function lodsBody(c: CpuCore, d: Insn): boolean {
  const size = elemSize(d);
  const as = d.asize;
  const s = idx(c, 6, as);
  const v = c.readMem(d.seg, s, c.hi, size);
  c.setGpr(0, size, v, c.hi);
  step(c, 6, as, dir(c, size));
  return true;
}

function compare(c: CpuCore, size: number, a: number, ah: number, b: number, bh: number): void {
  if (size === 8) {
    const s = (a >>> 0) - (b >>> 0);
    c.setLazy64(LazyOp.Sub, a, ah, b, bh, s | 0, (ah - bh - (s < 0 ? 1 : 0)) | 0, 0);
  } else {
    const ua = usize(a, size);
    const ub = usize(b, size);
    c.setLazy(LazyOp.Sub, size, ua, ub, usize(ua - ub, size), 0);
  }
}

function cmpsBody(c: CpuCore, d: Insn): boolean {
  const size = elemSize(d);
  const as = d.asize;
  const s = idx(c, 6, as);
  const a = c.readMem(d.seg, s, c.hi, size);
  const ah = c.hi;
  const t = idx(c, 7, as);
  const b = c.readMem(0, t, c.hi, size);
  const bh = c.hi;
  compare(c, size, a, ah, b, bh);
  const delta = dir(c, size);
  step(c, 6, as, delta);
  step(c, 7, as, delta);
  return true;
}

function scasBody(c: CpuCore, d: Insn): boolean {
  const size = elemSize(d);
  const as = d.asize;
  const t = idx(c, 7, as);
  const b = c.readMem(0, t, c.hi, size);
  const bh = c.hi;
  compare(c, size, c.getGpr(0, size), c.rhi[0]!, b, bh);
  step(c, 7, as, dir(c, size));
  return true;
}

/**
 * I/O permission (SDM Vol. 1 18.5): in protected mode with CPL > IOPL, or in virtual-8086 mode, every port
 * of the access must be enabled in the TSS I/O bitmap, else #GP(0).
 */
export function checkIoPermission(c: CpuCore, port: number, size: number): void {
  if (!(c.cr0 & CR0_PE)) return;
  const vm = (c.flagsReg & FLAG_VM) !== 0;
  if (!vm && c.cpl <= ((c.flagsReg >> 12) & 3)) return;
  const t = c.trAccess & 0xf;
  if (t !== 9 && t !== 11) c.gp(0); // only 32/64-bit TSSs have a bitmap
  if (c.trLimit < 0x67) c.gp(0);
  const base = c.readSys((c.trBaseLo + 0x66) | 0, c.trBaseHi, 2);
  const at = base + (port >>> 3);
  if (at + 1 > c.trLimit) c.gp(0);
  const s = (c.trBaseLo >>> 0) + at;
  const w = c.readSys(s | 0, (c.trBaseHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0, 2);
  const mask = ((1 << size) - 1) << (port & 7);
  if (w & mask) c.gp(0);
}

/**
 * Port read: the runner's PortIntercept for a port whose I/O-bitmap bit is set, else all ones (no device).
 * A device may raise an interrupt while it answers, so events are looked at after this instruction.
 */
export function portIn(c: CpuCore, port: number, size: number): number {
  const p = c.ports;
  if (p !== null && (c.controls.ioBitmap[port >>> 3]! >> (port & 7)) & 1) {
    const v = p.read(port, size);
    c.attn = 1;
    return usize(v, size);
  }
  return usize(-1, size);
}

/** Port write: to the runner's PortIntercept (ending the batch after this instruction), else discarded. */
export function portOut(c: CpuCore, port: number, size: number, value: number): void {
  const p = c.ports;
  if (p !== null && (c.controls.ioBitmap[port >>> 3]! >> (port & 7)) & 1) {
    p.write(port, size, usize(value, size));
    c.endBatch();
  }
}

function insBody(c: CpuCore, d: Insn): boolean {
  const size = d.s0;
  const as = d.asize;
  const port = c.rlo[2]! & 0xffff;
  checkIoPermission(c, port, size);
  const t = idx(c, 7, as);
  // Probe the destination first so a fault does not lose the port data (SDM INS: checked before the read);
  // a probe, not a read, so a device behind the destination sees only the store.
  c.probeWrite(0, t, c.hi, size);
  const v = portIn(c, port, size);
  c.writeMem(0, t, as === 8 ? c.rhi[7]! : 0, size, v, 0);
  step(c, 7, as, dir(c, size));
  return !c.postedExit;
}

function outsBody(c: CpuCore, d: Insn): boolean {
  const size = d.s1;
  const as = d.asize;
  const port = c.rlo[2]! & 0xffff;
  checkIoPermission(c, port, size);
  const s = idx(c, 6, as);
  const v = c.readMem(d.seg, s, c.hi, size);
  portOut(c, port, size, v);
  step(c, 6, as, dir(c, size));
  return !c.postedExit;
}

/**
 * Fast path for REP MOVS / REP STOS going forwards through RAM with flat segments: whole runs within a page
 * are copied/filled at once. Returns false (nothing done) whenever the general loop is needed: DF set,
 * non-flat segments, misaligned elements, MMIO, overlapping MOVS, or a pending posted exit.
 */
function repFast(c: CpuCore, d: Insn, movs: boolean): boolean {
  if ((d.prefixes & PFX_REP) === 0 || c.flagsReg & FLAG_DF) return false;
  const size = elemSize(d);
  const as = d.asize;
  if (as === 2) return false;
  const srcSeg = d.seg;
  if (!c.long64) {
    if (c.segCheck & (1 | (movs ? 1 << srcSeg : 0))) return false;
    if (c.segBaseLo[0] !== 0 || (movs && c.segBaseLo[srcSeg] !== 0)) return false;
  }
  const user = c.cpl === 3;
  const allowed = Math.max(1, Math.min(REP_CHUNK * 4, c.budgetEnd - c.count));
  let budget = allowed;
  while (budget > 0 && !countZero(c, as)) {
    const cnt = as === 8 ? (c.rhi[1] !== 0 ? 0x7fffffff : c.rlo[1]! >>> 0) : c.rlo[1]! >>> 0;
    const dLo = c.rlo[7]!;
    const dHi = as === 8 ? c.rhi[7]! : 0;
    if ((dLo & (size - 1)) !== 0) return false;
    let n = Math.min(cnt, budget, (4096 - (dLo & 0xfff)) / size);
    let sLo = 0;
    let sHi = 0;
    if (movs) {
      if (srcSeg >= 4 && c.long64) return false; // FS/GS-based source: use the general loop
      sLo = c.rlo[6]!;
      sHi = as === 8 ? c.rhi[6]! : 0;
      if ((sLo & (size - 1)) !== 0) return false;
      n = Math.min(n, (4096 - (sLo & 0xfff)) / size);
    }
    if (as === 4) {
      // 32-bit address size wraps at 4 GiB: stop before the wrap and let the general loop handle it.
      if ((dLo >>> 0) + n * size > 0x100000000 || (movs && (sLo >>> 0) + n * size > 0x100000000))
        return false;
    }
    const bytes = n * size;
    const dOff = c.translate(dLo, dHi, 1, user);
    if (dOff < 0) return false;
    if (movs) {
      const sOff = c.translate(sLo, sHi, 0, user);
      if (sOff < 0) return false;
      if (dOff > sOff && dOff < sOff + bytes) return false; // forward overlap replicates: general loop
      c.mem.copyOffsets(dOff, sOff, bytes);
    } else {
      const v = c.rlo[0]!;
      if (size === 1) c.mem.fillOffsets(dOff, bytes, v & 0xff);
      else {
        const vh = c.rhi[0]!;
        for (let i = 0; i < bytes; i += size) {
          if (size === 2) c.dv.setUint16(dOff + i, v, true);
          else if (size === 4) c.dv.setInt32(dOff + i, v, true);
          else {
            c.dv.setInt32(dOff + i, v, true);
            c.dv.setInt32(dOff + i + 4, vh, true);
          }
        }
      }
    }
    c.mem.noteWrite(dOff, bytes);
    step(c, 7, as, bytes);
    if (movs) step(c, 6, as, bytes);
    step(c, 1, as, -n);
    budget -= n;
  }
  // Each element is an iteration, counted as a retired instruction (the dispatch counts the first).
  if (allowed - budget > 1) c.count += allowed - budget - 1;
  if (!countZero(c, as)) {
    c.ripLo = c.curRipLo;
    c.ripHi = c.curRipHi;
  }
  return true;
}

export const stringHandlers: Record<string, Handler> = {
  movs: (c, d) => {
    if (!repFast(c, d, true)) repeat(c, d, movsBody, false);
  },
  stos: (c, d) => {
    if (!repFast(c, d, false)) repeat(c, d, stosBody, false);
  },
  lods: (c, d) => repeat(c, d, lodsBody, false),
  cmps: (c, d) => repeat(c, d, cmpsBody, true),
  scas: (c, d) => repeat(c, d, scasBody, true),
  // The I/O permission check comes before the count test, so REP with rCX = 0 still faults (SDM INS/OUTS).
  ins: (c, d) => {
    checkIoPermission(c, c.rlo[2]! & 0xffff, d.s0);
    repeat(c, d, insBody, false);
  },
  outs: (c, d) => {
    checkIoPermission(c, c.rlo[2]! & 0xffff, d.s1);
    repeat(c, d, outsBody, false);
  },
};
