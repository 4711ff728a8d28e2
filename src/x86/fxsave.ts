// Owns: saving and restoring the x87/MMX and SSE state as memory images: FXSAVE/FXRSTOR (64-bit layout with
// REX.W, the 32-bit-pointer layout otherwise), XSAVE/XRSTOR (standard form, state components 0 = x87 and
// 1 = SSE), XGETBV/XSETBV and the XCR0 rules. Whole-image accesses are validated before anything is written
// or loaded, so a fault leaves memory and registers unchanged.
// Must not: interpret x87 register contents (the images carry the 80-bit registers verbatim).
// Spec: Intel SDM Vol. 1 10.5.1 (FXSAVE area, Tables 10-2/10-3), 13.1-13.8 (XSAVE feature set, XCR0, the
// XSAVE header, standard-form XRSTOR, init values), Vol. 2 FXSAVE/FXRSTOR/XSAVE/XRSTOR/XGETBV/XSETBV pages.

import { CR0_EM, CR0_TS, type CpuCore, type Handler, Vec } from "./core.js";
import type { Insn } from "./insn.js";
import { ACC_READ, ACC_WRITE } from "./paging.js";
import { MXCSR_MASK } from "./simd-access.js";

export const CR4_OSXSAVE = 0x40000;
const TWO32 = 0x1_0000_0000;
/** XCR0 bits this processor supports: x87 and SSE. */
export const XCR0_SUPPORTED = 3;
/** XSAVE area size for every supported XCR0 value: legacy region + header. */
export const XSAVE_SIZE = 576;

const img = new Uint8Array(576);
const imgView = new DataView(img.buffer);

/** Linear address of d's memory operand for `len` bytes with `align` alignment; probes every page. */
function area(c: CpuCore, d: Insn, len: number, align: number, write: boolean): number {
  const lo = c.linear(d.seg, c.eaLo, c.eaHi, len, write);
  const hi = c.hi;
  if ((lo & (align - 1)) !== 0) c.gp(0);
  const user = c.cpl === 3;
  // An aligned 512/576-byte area spans at most two pages: probe both before touching either.
  c.translate(lo, hi, write ? ACC_WRITE : ACC_READ, user);
  const s = (lo >>> 0) + len - 1;
  c.translate(s | 0, (hi + (s >= TWO32 ? 1 : 0)) | 0, write ? ACC_WRITE : ACC_READ, user);
  c.hi = hi;
  return lo;
}

function readImage(c: CpuCore, lo: number, hi: number, len: number): void {
  for (let i = 0; i < len; i += 8) {
    const s = (lo >>> 0) + i;
    imgView.setInt32(i, c.readLin(s | 0, (hi + (s >= TWO32 ? 1 : 0)) | 0, 8), true);
    imgView.setInt32(i + 4, c.hi, true);
  }
}

function writeImage(c: CpuCore, lo: number, hi: number, from: number, len: number): void {
  for (let i = from; i < from + len; i += 8) {
    const s = (lo >>> 0) + i;
    c.writeLin(
      s | 0,
      (hi + (s >= TWO32 ? 1 : 0)) | 0,
      8,
      imgView.getInt32(i, true),
      imgView.getInt32(i + 4, true),
    );
  }
}

/** Fills img[0..160) with the x87 state (FXSAVE layout; 64-bit pointers when `rexW`). */
function packX87(c: CpuCore, rexW: boolean): void {
  const f = c.fpu;
  imgView.setUint16(0, f.fcw, true);
  imgView.setUint16(2, f.fsw, true);
  img[4] = f.ftw;
  img[5] = 0;
  imgView.setUint16(6, f.fop & 0x7ff, true);
  imgView.setInt32(8, f.fipLo, true);
  imgView.setInt32(16, f.fdpLo, true);
  if (rexW) {
    imgView.setInt32(12, f.fipHi, true);
    imgView.setInt32(20, f.fdpHi, true);
  } else {
    imgView.setInt32(12, f.fcs & 0xffff, true);
    imgView.setInt32(20, f.fds & 0xffff, true);
  }
  const top = (f.fsw >> 11) & 7;
  for (let i = 0; i < 8; i++) {
    const p = ((top + i) & 7) * 10;
    const o = 32 + i * 16;
    for (let k = 0; k < 10; k++) img[o + k] = f.regs[p + k]!;
    for (let k = 10; k < 16; k++) img[o + k] = 0;
  }
}

function unpackX87(c: CpuCore, rexW: boolean): void {
  const f = c.fpu;
  f.fcw = imgView.getUint16(0, true);
  f.fsw = imgView.getUint16(2, true);
  f.ftw = img[4]!;
  f.fop = imgView.getUint16(6, true) & 0x7ff;
  f.fipLo = imgView.getInt32(8, true);
  f.fdpLo = imgView.getInt32(16, true);
  if (rexW) {
    f.fipHi = imgView.getInt32(12, true);
    f.fdpHi = imgView.getInt32(20, true);
    f.fcs = f.fds = 0;
  } else {
    f.fipHi = f.fdpHi = 0;
    f.fcs = imgView.getUint16(12, true);
    f.fds = imgView.getUint16(20, true);
  }
  const top = (f.fsw >> 11) & 7;
  for (let i = 0; i < 8; i++) {
    const p = ((top + i) & 7) * 10;
    for (let k = 0; k < 10; k++) f.regs[p + k] = img[32 + i * 16 + k]!;
  }
}

function packSse(c: CpuCore, nregs: number): void {
  imgView.setInt32(24, c.mxcsr, true);
  imgView.setInt32(28, MXCSR_MASK, true);
  for (let i = 0; i < nregs * 4; i++) imgView.setInt32(160 + i * 4, c.xmm[i]!, true);
}

function unpackXmm(c: CpuCore, nregs: number): void {
  for (let i = 0; i < nregs * 4; i++) c.xmm[i] = imgView.getInt32(160 + i * 4, true);
}

/** FXSAVE/FXRSTOR/XSAVE/XRSTOR availability: #NM on CR0.TS or CR0.EM (SDM FXSAVE "Exceptions"). */
function fxCheck(c: CpuCore): void {
  if (c.cr0 & (CR0_TS | CR0_EM)) c.fault(Vec.NM);
}

function xCheck(c: CpuCore): void {
  if (!(c.cr4 & CR4_OSXSAVE)) c.ud();
  if (c.cr0 & CR0_TS) c.fault(Vec.NM);
}

function fxsave(c: CpuCore, d: Insn): void {
  fxCheck(c);
  const lo = area(c, d, 512, 16, true);
  const hi = c.hi;
  // Bytes 416..511 are not written (reserved / available to software).
  readImage(c, lo, hi, 512);
  const rexW = (d.rex & 8) !== 0;
  packX87(c, rexW);
  packSse(c, c.long64 ? 16 : 8);
  writeImage(c, lo, hi, 0, c.long64 ? 416 : 288);
}

function fxrstor(c: CpuCore, d: Insn): void {
  fxCheck(c);
  const lo = area(c, d, 512, 16, false);
  readImage(c, lo, c.hi, 512);
  const mx = imgView.getInt32(24, true);
  if (mx & ~MXCSR_MASK) c.gp(0);
  unpackX87(c, (d.rex & 8) !== 0);
  c.mxcsr = mx;
  unpackXmm(c, c.long64 ? 16 : 8);
}

/** EDX:EAX & XCR0: the requested-feature bitmap. */
function rfbm(c: CpuCore): number {
  return c.rlo[0]! & c.fpu.xcr0 & XCR0_SUPPORTED;
}

function xsave(c: CpuCore, d: Insn): void {
  xCheck(c);
  const lo = area(c, d, XSAVE_SIZE, 64, true);
  const hi = c.hi;
  readImage(c, lo, hi, XSAVE_SIZE);
  const rexW = (d.rex & 8) !== 0;
  const rf = rfbm(c);
  if (rf & 1) packX87(c, rexW);
  if (rf & 2) packSse(c, c.long64 ? 16 : 8);
  // XSTATE_BV[i] = XINUSE[i] for requested components; we track no init optimization, so "in use".
  imgView.setInt32(512, (imgView.getInt32(512, true) & ~rf) | rf, true);
  writeImage(c, lo, hi, 0, XSAVE_SIZE);
}

function xrstor(c: CpuCore, d: Insn): void {
  xCheck(c);
  const lo = area(c, d, XSAVE_SIZE, 64, false);
  readImage(c, lo, c.hi, XSAVE_SIZE);
  const bvLo = imgView.getInt32(512, true);
  const bvHi = imgView.getInt32(516, true);
  // Standard form only: XCOMP_BV = 0, bytes 528..575 zero, XSTATE_BV within XCR0 (SDM 13.8.1).
  let bad = bvHi !== 0 || (bvLo & ~c.fpu.xcr0) !== 0;
  for (let i = 520; i < 576; i += 4) if (imgView.getInt32(i, true) !== 0) bad = true;
  if (bad) c.gp(0);
  const rf = rfbm(c);
  const mx = imgView.getInt32(24, true);
  if (rf & 2 && mx & ~MXCSR_MASK) c.gp(0);
  if (rf & 1) {
    if (bvLo & 1) unpackX87(c, (d.rex & 8) !== 0);
    else {
      c.fpu.init();
      c.fpu.regs.fill(0);
    }
  }
  if (rf & 2) {
    c.mxcsr = mx;
    if (bvLo & 2) unpackXmm(c, c.long64 ? 16 : 8);
    else c.xmm.fill(0);
  }
}

function xgetbv(c: CpuCore): void {
  if (!(c.cr4 & CR4_OSXSAVE)) c.ud();
  if (c.rlo[1] !== 0) c.gp(0);
  c.setGpr(0, 4, c.fpu.xcr0, 0);
  c.setGpr(2, 4, 0, 0);
}

function xsetbv(c: CpuCore): void {
  if (!(c.cr4 & CR4_OSXSAVE)) c.ud();
  if (c.cpl !== 0) c.gp(0);
  const v = c.rlo[0]!;
  if (c.rlo[1] !== 0 || c.rlo[2] !== 0 || (v & 1) === 0 || (v & ~XCR0_SUPPORTED) !== 0) c.gp(0);
  c.fpu.xcr0 = v;
}

export const fxsaveHandlers: Record<string, Handler> = {
  fxsave,
  fxrstor,
  xsave,
  xrstor,
  xgetbv,
  xsetbv,
};
