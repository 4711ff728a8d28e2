// Owns: data-movement handlers: MOV, LEA, MOVZX/MOVSX/MOVSXD, XCHG, CMPXCHG/CMPXCHG8B/CMPXCHG16B, XADD,
// MOVBE, CMOVcc, SETcc, CBW/CWDE/CDQE, CWD/CDQ/CQO, LAHF/SAHF, XLAT, BSWAP.
// Must not: bypass core.ts operand and memory helpers. LOCKed forms are atomic by construction: one virtual
// processor runs one instruction at a time on its own thread and nothing interleaves within a handler.
// Spec: Intel SDM Vol. 2 MOV, LEA, MOVZX, MOVSX/MOVSXD, XCHG, CMPXCHG, CMPXCHG8B/16B, XADD, MOVBE, CMOVcc,
// SETcc, CBW/CWDE/CDQE, CWD/CDQ/CQO, LAHF, SAHF, XLAT, BSWAP.

import { usize } from "./alu.js";
import { type CpuCore, type Handler, Vec } from "./core.js";
import { LazyOp } from "./flags.js";
import { type Insn, OpKind } from "./insn.js";
import { FLAG_ZF } from "./opcode-table.js";

function mov(c: CpuCore, d: Insn): void {
  if (d.k0 === OpKind.Reg && d.s0 >= 4) {
    const r = d.r0;
    if (d.k1 === OpKind.Reg) {
      c.rlo[r] = c.rlo[d.r1]!;
      c.rhi[r] = d.s0 === 8 ? c.rhi[d.r1]! : 0;
      return;
    }
    if (d.k1 === OpKind.Imm) {
      c.rlo[r] = d.immLo;
      c.rhi[r] = d.s0 === 8 ? d.immHi : 0;
      return;
    }
    if (d.k1 === OpKind.Mem) {
      // Load: straight to the memory path (fault before the register is touched).
      const v = c.readMem(d.seg, c.eaLo, c.eaHi, d.s0);
      c.rlo[r] = v;
      c.rhi[r] = d.s0 === 8 ? c.hi : 0;
      return;
    }
  } else if (d.k0 === OpKind.Mem && d.k1 === OpKind.Reg && d.s0 >= 4) {
    c.writeMem(d.seg, c.eaLo, c.eaHi, d.s0, c.rlo[d.r1]!, c.rhi[d.r1]!);
    return;
  }
  const v = c.rd1(d);
  c.wr0(d, v, c.hi);
}

function lea(c: CpuCore, d: Insn): void {
  // The effective address (already computed) truncated to the operand size.
  c.setGpr(d.r0, d.s0, c.eaLo, d.asize === 8 ? c.eaHi : 0);
}

function movzx(c: CpuCore, d: Insn): void {
  if (d.k1 === OpKind.Mem && d.s0 >= 4) {
    // The zero-extended value fills the whole register for 32- and 64-bit destinations alike.
    const v = c.readMem(d.seg, c.eaLo, c.eaHi, d.s1);
    c.rlo[d.r0] = v;
    c.rhi[d.r0] = 0;
    return;
  }
  c.setGpr(d.r0, d.s0, c.rd1(d), 0);
}

function movsx(c: CpuCore, d: Insn): void {
  let v = c.rd1(d);
  if (d.s1 === 1) v = (v << 24) >> 24;
  else if (d.s1 === 2) v = (v << 16) >> 16;
  c.setGpr(d.r0, d.s0, v, v >> 31);
}

function xchg(c: CpuCore, d: Insn): void {
  const a = c.rd0(d);
  const ah = c.hi;
  const b = c.rd1(d);
  const bh = c.hi;
  // Memory operand first so a fault leaves the register unchanged.
  c.wr0(d, b, bh);
  c.wr1(d, a, ah);
}

function cmpxchg(c: CpuCore, d: Insn): void {
  const size = d.s0;
  const dst = c.rd0(d);
  const dh = c.hi;
  const acc = c.getGpr(0, size);
  const ah = c.hi;
  const src = c.rd1(d);
  const sh = c.hi;
  // Flags as CMP accumulator, destination.
  if (size === 8) {
    const s = (acc >>> 0) - (dst >>> 0);
    c.setLazy64(LazyOp.Sub, acc, ah, dst, dh, s | 0, (ah - dh - (s < 0 ? 1 : 0)) | 0, 0);
  } else {
    const ua = usize(acc, size);
    const ud = usize(dst, size);
    c.setLazy(LazyOp.Sub, size, ua, ud, usize(ua - ud, size), 0);
  }
  const equal = size === 8 ? acc === dst && ah === dh : usize(acc, size) === usize(dst, size);
  if (equal) c.wr0(d, src, sh);
  else {
    // The destination is written back with its own value (a locked RMW cycle), then the accumulator loads it.
    c.wr0(d, dst, dh);
    c.setGpr(0, size, dst, dh);
  }
}

function cmpxchg8b(c: CpuCore, d: Insn): void {
  const wide = (d.rex & 8) !== 0;
  if (wide && (c.eaLo & 15) !== 0) c.gp(0);
  const seg = d.seg;
  if (!wide) {
    const lo = c.readMemRmw(seg, c.eaLo, c.eaHi, 8);
    const hi = c.hi;
    if (lo === c.rlo[0] && hi === c.rlo[2]) {
      c.writeMem(seg, c.eaLo, c.eaHi, 8, c.rlo[3]!, c.rlo[1]!);
      c.setStatus(FLAG_ZF, FLAG_ZF);
    } else {
      c.writeMem(seg, c.eaLo, c.eaHi, 8, lo, hi);
      c.setGpr(0, 4, lo, 0);
      c.setGpr(2, 4, hi, 0);
      c.setStatus(FLAG_ZF, 0);
    }
    return;
  }
  const s = (c.eaLo >>> 0) + 8;
  const lo2 = s | 0;
  const hi2 = (c.eaHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0;
  const q0l = c.readMemRmw(seg, c.eaLo, c.eaHi, 8);
  const q0h = c.hi;
  const q1l = c.readMemRmw(seg, lo2, hi2, 8);
  const q1h = c.hi;
  if (q0l === c.rlo[0] && q0h === c.rhi[0] && q1l === c.rlo[2] && q1h === c.rhi[2]) {
    c.writeMem(seg, c.eaLo, c.eaHi, 8, c.rlo[3]!, c.rhi[3]!);
    c.writeMem(seg, lo2, hi2, 8, c.rlo[1]!, c.rhi[1]!);
    c.setStatus(FLAG_ZF, FLAG_ZF);
  } else {
    c.writeMem(seg, c.eaLo, c.eaHi, 8, q0l, q0h);
    c.setGpr(0, 8, q0l, q0h);
    c.setGpr(2, 8, q1l, q1h);
    c.setStatus(FLAG_ZF, 0);
  }
}

function xadd(c: CpuCore, d: Insn): void {
  const size = d.s0;
  const a = c.rd0(d);
  const ah = c.hi;
  const b = c.rd1(d);
  const bh = c.hi;
  if (size === 8) {
    const s = (a >>> 0) + (b >>> 0);
    const rl = s | 0;
    const rh = (ah + bh + (s >= 0x1_0000_0000 ? 1 : 0)) | 0;
    c.setLazy64(LazyOp.Add, a, ah, b, bh, rl, rh, 0);
    xaddWrite(c, d, rl, rh, a, ah);
    return;
  }
  const ua = usize(a, size);
  const ub = usize(b, size);
  const r = usize(ua + ub, size);
  c.setLazy(LazyOp.Add, size, ua, ub, r, 0);
  xaddWrite(c, d, r, 0, ua, 0);
}

/**
 * XADD writes SRC <- DEST then DEST <- sum (SDM XADD "Operation"), so with the same register as both
 * operands the sum wins. A memory destination is written first so that its fault leaves the register alone.
 */
function xaddWrite(c: CpuCore, d: Insn, rl: number, rh: number, ol: number, oh: number): void {
  if (d.k0 === OpKind.Mem) {
    c.wr0(d, rl, rh);
    c.wr1(d, ol, oh);
  } else {
    c.wr1(d, ol, oh);
    c.wr0(d, rl, rh);
  }
}

export function bswap32(v: number): number {
  return (v >>> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24) | 0;
}

function movbe(c: CpuCore, d: Insn): void {
  const size = d.s0;
  let v = c.rd1(d);
  let h = c.hi;
  if (size === 2) v = ((v >> 8) & 0xff) | ((v & 0xff) << 8);
  else if (size === 4) v = bswap32(v);
  else {
    const t = bswap32(v);
    v = bswap32(h);
    h = t;
  }
  c.wr0(d, v, h);
}

function bswap(c: CpuCore, d: Insn): void {
  const r = d.r0;
  if (d.s0 === 8) {
    const lo = c.rlo[r]!;
    c.rlo[r] = bswap32(c.rhi[r]!);
    c.rhi[r] = bswap32(lo);
  } else c.setGpr(r, 4, bswap32(c.rlo[r]!), 0);
}

function cmovcc(c: CpuCore, d: Insn): void {
  const v = c.rd1(d); // the source is read (and may fault) whether or not the condition holds
  const h = c.hi;
  if (c.cond(d.opcode & 15)) c.setGpr(d.r0, d.s0, v, h);
  else if (d.s0 === 4) c.rhi[d.r0] = 0; // a 32-bit CMOV zero-extends even when it does not move
}

function setcc(c: CpuCore, d: Insn): void {
  c.wr0(d, c.cond(d.opcode & 15) ? 1 : 0, 0);
}

function cbw(c: CpuCore, d: Insn): void {
  const v = c.rlo[0]!;
  if (d.osize === 2) c.setGpr(0, 2, (v << 24) >> 24, 0);
  else if (d.osize === 4) c.setGpr(0, 4, (v << 16) >> 16, 0);
  else c.setGpr(0, 8, v, v >> 31);
}

function cwd(c: CpuCore, d: Insn): void {
  const v = c.rlo[0]!;
  if (d.osize === 2) c.setGpr(2, 2, (v << 16) >> 31, 0);
  else if (d.osize === 4) c.setGpr(2, 4, v >> 31, 0);
  else {
    const s = c.rhi[0]! >> 31;
    c.setGpr(2, 8, s, s);
  }
}

function lahf(c: CpuCore): void {
  if (c.long64 && !c.cpuid.has("LAHF64")) c.fault(Vec.UD);
  const f = c.getFlags() & 0xd5;
  c.rlo[0] = (c.rlo[0]! & ~0xff00) | ((f | 2) << 8);
}

function sahf(c: CpuCore): void {
  if (c.long64 && !c.cpuid.has("LAHF64")) c.fault(Vec.UD);
  c.setStatus(0xd5, (c.rlo[0]! >> 8) & 0xd5);
}

function xlat(c: CpuCore, d: Insn): void {
  const al = c.rlo[0]! & 0xff;
  let lo: number;
  let hi = 0;
  if (d.asize === 8) {
    const s = (c.rlo[3]! >>> 0) + al;
    lo = s | 0;
    hi = (c.rhi[3]! + (s >= 0x1_0000_0000 ? 1 : 0)) | 0;
  } else if (d.asize === 4) lo = (c.rlo[3]! + al) | 0;
  else lo = (c.rlo[3]! + al) & 0xffff;
  c.setGpr(0, 1, c.readMem(d.seg, lo, hi, 1), 0);
}

export const dataHandlers: Record<string, Handler> = {
  mov,
  lea,
  movzx,
  movsx,
  xchg,
  cmpxchg,
  cmpxchg8b,
  xadd,
  movbe,
  bswap,
  cmovcc,
  setcc,
  cbw,
  cwd,
  lahf,
  sahf,
  xlat,
};
