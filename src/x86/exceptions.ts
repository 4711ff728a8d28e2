// Owns: delivery of exceptions and interrupts through the IVT (real mode), the IDT of protected mode
// (16/32-bit interrupt and trap gates, privilege change with the TSS stack switch, virtual-8086 exits) and
// long mode (64-bit gates, IST, RSPn), the double-fault rules, and the triple-fault condition.
// Must not: decide when an interrupt is taken (cpu.ts checks IF and shadows), or run instructions.
// Spec: Intel SDM Vol. 3A 6.4-6.15 (sources, vectors, error codes, IDT, gates, 6.12 exception/interrupt
// handling incl. stack switch, 6.14 64-bit mode, 6.14.5 IST, 6.15 Table 6-5 double-fault conditions),
// 20.1.1 (real-address mode interrupts), 7.7 (TSS stack pointers).

import { ACC_DB, ACC_L, ACC_P, CR0_PE, type CpuCore, FAULT, Vec } from "./core.js";
import { FLAG_AC, FLAG_IF, FLAG_NT, FLAG_RF, FLAG_TF, FLAG_VM } from "./opcode-table.js";
import { descAccess, descBase, descLimit, fetchDescriptor } from "./segments.js";

/** How an event arose: error-code EXT bit, gate DPL check, and RIP pushed. */
export const enum EventKind {
  /** A fault or trap raised by an instruction (#GP, #PF, ...): EXT = 1, no DPL check. */
  Exception = 0,
  /** INT n / INT3 / INTO: gate DPL checked against CPL, EXT = 0. */
  Software = 1,
  /** External interrupt or NMI: EXT = 1, no DPL check. */
  External = 2,
  /** INT1 (ICEBP): like an exception for DPL purposes. */
  Icebp = 3,
}

/** Vectors that push an error code (SDM Vol. 3A Table 6-1). */
export function hasErrorCode(vector: number): boolean {
  return vector === 8 || (vector >= 10 && vector <= 14) || vector === 17 || vector === 21;
}

function contributory(v: number): boolean {
  return v === 0 || (v >= 10 && v <= 13);
}

/** Thrown out of delivery when the processor must shut down (triple fault). */
export const SHUTDOWN = { shutdown: true };

/**
 * Delivers an event, applying the double-fault rules if a second exception occurs while delivering the
 * first. On return the processor is at the handler's first instruction. Throws SHUTDOWN on triple fault.
 */
export function deliverEvent(
  c: CpuCore,
  vector: number,
  kind: EventKind,
  hasCode: boolean,
  code: number,
): void {
  let vec = vector;
  let k = kind;
  let hc = hasCode;
  let ec = code;
  for (let attempt = 0; ; attempt++) {
    try {
      deliverOnce(c, vec, k, hc, ec);
      return;
    } catch (e) {
      if (e !== FAULT) throw e;
      const second = c.faultVector;
      if (vec === Vec.DF) throw SHUTDOWN;
      const first = vec;
      const df =
        (contributory(first) && contributory(second)) ||
        (first === Vec.PF && (contributory(second) || second === Vec.PF));
      if (df && k === EventKind.Exception) {
        vec = Vec.DF;
        hc = true;
        ec = 0;
      } else {
        vec = second;
        hc = c.faultHasCode;
        ec = c.faultCode;
      }
      k = EventKind.Exception;
      if (attempt > 4) throw SHUTDOWN;
    }
  }
}

/** Delivers without the double-fault rules (INT n: a fault here is reported at the INT instruction). */
export function deliverSoftware(c: CpuCore, vector: number, kind: EventKind): void {
  deliverOnce(c, vector, kind, false, 0);
}

function deliverOnce(c: CpuCore, vector: number, kind: EventKind, hasCode: boolean, code: number): void {
  const ext = kind === EventKind.Software ? 0 : 1;
  if (!(c.cr0 & CR0_PE)) {
    deliverReal(c, vector);
    return;
  }
  if (c.efer & 0x400) {
    deliverLong(c, vector, kind, hasCode, code, ext);
    return;
  }
  deliverProtected(c, vector, kind, hasCode, code, ext);
}

function deliverReal(c: CpuCore, vector: number): void {
  const at = vector * 4;
  if (at + 3 > c.idtrLimit) c.fault(Vec.GP, 0);
  const entry = c.readSys((c.idtrBaseLo + at) | 0, 0, 4);
  const flags = c.getFlags();
  // Stack pushes in real mode use SS with 16-bit wrap (the stack size from the SS cache).
  c.push(2, flags, 0);
  c.push(2, c.segSel[1]!, 0);
  c.push(2, c.ripLo, 0);
  c.flagsReg = flags & ~(FLAG_IF | FLAG_TF | FLAG_AC | FLAG_RF);
  c.loadSegReal(1, entry >>> 16);
  c.ripLo = entry & 0xffff;
  c.ripHi = 0;
}

/** Reads the stack pointer for privilege level `dpl` from the current TSS (32- or 16-bit). */
export function tssStack(c: CpuCore, dpl: number, ext: number): { ss: number; sp: number } {
  const is32 = (c.trAccess & 0xf) === 9 || (c.trAccess & 0xf) === 11;
  const off = is32 ? 4 + dpl * 8 : 2 + dpl * 4;
  const width = is32 ? 4 : 2;
  if (off + width * 2 - 1 > c.trLimit) c.fault(Vec.TS, (c.trSel & 0xfffc) | ext);
  const sp = c.readSys((c.trBaseLo + off) | 0, 0, width);
  const ss = c.readSys((c.trBaseLo + off + width) | 0, 0, 2);
  return { ss, sp };
}

function deliverProtected(
  c: CpuCore,
  vector: number,
  kind: EventKind,
  hasCode: boolean,
  code: number,
  ext: number,
): void {
  const at = vector * 8;
  const idtErr = at + 2 + ext;
  if (at + 7 > c.idtrLimit) c.fault(Vec.GP, idtErr);
  const lo = c.readSys((c.idtrBaseLo + at) | 0, 0, 4);
  const hi = c.readSys((c.idtrBaseLo + at + 4) | 0, 0, 4);
  const type = (hi >> 8) & 0x1f;
  const gdpl = (hi >> 13) & 3;
  if (type !== 6 && type !== 7 && type !== 0xe && type !== 0xf) c.fault(Vec.GP, idtErr); // task gates unsupported
  if (kind === EventKind.Software && gdpl < c.cpl) c.fault(Vec.GP, idtErr);
  if ((hi & 0x8000) === 0) c.fault(Vec.NP, idtErr);
  const gate32 = (type & 8) !== 0;
  const trap = (type & 1) !== 0;
  const sel = lo >>> 16;
  const offset = gate32 ? (lo & 0xffff) | (hi & 0xffff0000) : lo & 0xffff;
  if ((sel & 0xfffc) === 0) c.fault(Vec.GP, ext);
  const d = fetchDescriptor(c, sel);
  if (d === null) c.fault(Vec.GP, (sel & 0xfffc) | ext);
  const acc = descAccess(d);
  const dpl = (acc >> 5) & 3;
  if ((acc & 0x18) !== 0x18 || dpl > c.cpl) c.fault(Vec.GP, (sel & 0xfffc) | ext);
  if ((acc & ACC_P) === 0) c.fault(Vec.NP, (sel & 0xfffc) | ext);
  const flags = c.getFlags();
  const fromV86 = (flags & FLAG_VM) !== 0;
  const size = gate32 ? 4 : 2;
  const oldCs = c.segSel[1]!;
  const oldEip = c.ripLo;
  const conforming = (acc & 4) !== 0;
  if (!conforming && dpl < c.cpl) {
    // Inter-privilege: switch to the TSS stack of the new privilege level.
    if (fromV86 && dpl !== 0) c.fault(Vec.GP, (sel & 0xfffc) | ext);
    const oldSs = c.segSel[2]!;
    const oldEsp = c.rlo[4]!;
    const { ss, sp } = tssStack(c, dpl, ext);
    const sd = fetchDescriptor(c, ss);
    if ((ss & 0xfffc) === 0 || sd === null) c.fault(Vec.TS, (ss & 0xfffc) | ext);
    const sacc = descAccess(sd);
    if ((ss & 3) !== dpl || ((sacc >> 5) & 3) !== dpl || (sacc & 0x1a) !== 0x12)
      c.fault(Vec.TS, (ss & 0xfffc) | ext);
    if ((sacc & ACC_P) === 0) c.fault(Vec.SS, (ss & 0xfffc) | ext);
    const ssBase = descBase(sd);
    const ssLimit = descLimit(sd);
    // Commit: new CS privilege first so stack writes are supervisor accesses.
    c.loadSegCache(2, ss, ssBase, 0, ssLimit, sacc | 1);
    c.rlo[4] = sacc & ACC_DB ? sp : (c.rlo[4]! & ~0xffff) | (sp & 0xffff);
    c.loadSegCache(1, (sel & 0xfffc) | dpl, descBase(d), 0, descLimit(d), acc | 1);
    if (fromV86) {
      c.flagsReg = flags & ~FLAG_VM;
      c.updateMode();
      c.push(size, c.segSel[5]!, 0);
      c.push(size, c.segSel[4]!, 0);
      c.push(size, c.segSel[3]!, 0);
      c.push(size, c.segSel[0]!, 0);
      for (const s of [0, 3, 4, 5]) c.loadSegCache(s, 0, 0, 0, 0, 0x10000);
    }
    c.push(size, oldSs, 0);
    c.push(size, oldEsp, 0);
  } else {
    if (fromV86) c.fault(Vec.GP, (sel & 0xfffc) | ext);
    c.loadSegCache(1, (sel & 0xfffc) | c.cpl, descBase(d), 0, descLimit(d), acc | 1);
  }
  c.push(size, flags, 0);
  c.push(size, oldCs, 0);
  c.push(size, oldEip, 0);
  if (hasCode) c.push(size, code, 0);
  c.flagsReg = flags & ~(FLAG_TF | FLAG_NT | FLAG_RF | FLAG_VM | (trap ? 0 : FLAG_IF));
  c.updateMode();
  c.ripLo = offset;
  c.ripHi = 0;
}

/** The 64-bit interrupt frame (SS, RSP, RFLAGS, CS, RIP, error code as lo/hi pairs), reused per delivery. */
const FRAME = new Int32Array(12);

function deliverLong(
  c: CpuCore,
  vector: number,
  kind: EventKind,
  hasCode: boolean,
  code: number,
  ext: number,
): void {
  const at = vector * 16;
  // The error code names the vector as vector * 8 + 2 (+ EXT) in every mode, though gates are 16 bytes.
  const err = vector * 8 + 2 + ext;
  if (at + 15 > c.idtrLimit) c.fault(Vec.GP, err);
  const s = (c.idtrBaseLo >>> 0) + at;
  const bLo = s | 0;
  const bHi = (c.idtrBaseHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0;
  const w0 = c.readSys(bLo, bHi, 4);
  const w1 = c.readSys((bLo + 4) | 0, bHi, 4);
  const w2 = c.readSys((bLo + 8) | 0, bHi, 4);
  const type = (w1 >> 8) & 0x1f;
  const gdpl = (w1 >> 13) & 3;
  if (type !== 0xe && type !== 0xf) c.fault(Vec.GP, err);
  if (kind === EventKind.Software && gdpl < c.cpl) c.fault(Vec.GP, err);
  if ((w1 & 0x8000) === 0) c.fault(Vec.NP, err);
  const ist = w1 & 7;
  const sel = w0 >>> 16;
  const offLo = (w0 & 0xffff) | (w1 & 0xffff0000);
  const offHi = w2;
  if ((sel & 0xfffc) === 0) c.fault(Vec.GP, ext);
  const d = fetchDescriptor(c, sel);
  if (d === null) c.fault(Vec.GP, (sel & 0xfffc) | ext);
  const acc = descAccess(d);
  const dpl = (acc >> 5) & 3;
  if ((acc & 0x18) !== 0x18 || dpl > c.cpl || (acc & ACC_L) === 0 || acc & ACC_DB) {
    c.fault(Vec.GP, (sel & 0xfffc) | ext);
  }
  if ((acc & ACC_P) === 0) c.fault(Vec.NP, (sel & 0xfffc) | ext);
  if ((offHi << 16) >> 16 !== offHi) c.fault(Vec.GP, ext);
  const flags = c.getFlags();
  const oldSs = c.segSel[2]!;
  const oldRspLo = c.rlo[4]!;
  const oldRspHi = c.rhi[4]!;
  const oldCs = c.segSel[1]!;
  const oldRipLo = c.ripLo;
  const oldRipHi = c.ripHi;
  const conforming = (acc & 4) !== 0;
  const newCpl = conforming ? c.cpl : dpl;
  let rspLo = oldRspLo;
  let rspHi = oldRspHi;
  if (ist !== 0 || newCpl < c.cpl) {
    const off = ist !== 0 ? 0x24 + (ist - 1) * 8 : 4 + newCpl * 8;
    if (off + 7 > c.trLimit) c.fault(Vec.TS, (c.trSel & 0xfffc) | ext);
    const ts = (c.trBaseLo >>> 0) + off;
    const tLo = ts | 0;
    const tHi = (c.trBaseHi + (ts >= 0x1_0000_0000 ? 1 : 0)) | 0;
    rspLo = c.readSys(tLo, tHi, 4);
    rspHi = c.readSys((tLo + 4) | 0, tHi, 4);
    if ((rspHi << 16) >> 16 !== rspHi) c.fault(Vec.SS, ext);
  }
  rspLo &= ~15; // the 64-bit frame is 16-byte aligned
  // Build the frame with supervisor writes before committing any register.
  const frame = FRAME;
  frame[0] = oldSs;
  frame[1] = 0;
  frame[2] = oldRspLo;
  frame[3] = oldRspHi;
  frame[4] = flags;
  frame[5] = 0;
  frame[6] = oldCs;
  frame[7] = 0;
  frame[8] = oldRipLo;
  frame[9] = oldRipHi;
  frame[10] = code;
  frame[11] = 0;
  const n = hasCode ? 6 : 5;
  let sp = rspLo;
  let spHi = rspHi;
  for (let i = 0; i < n; i++) {
    const t = (sp >>> 0) - 8;
    sp = t | 0;
    spHi = (spHi - (t < 0 ? 1 : 0)) | 0;
    const wasUser = newCpl === 3;
    if (wasUser) c.writeLin(sp, spHi, 8, frame[i * 2]!, frame[i * 2 + 1]!);
    else c.writeSys(sp, spHi, 8, frame[i * 2]!, frame[i * 2 + 1]!);
  }
  if (newCpl < c.cpl) c.loadSegCache(2, newCpl, 0, 0, 0, 0x10000 | (newCpl << 5) | 0x93);
  c.loadSegCache(1, (sel & 0xfffc) | newCpl, descBase(d), 0, descLimit(d), acc | 1);
  c.rlo[4] = sp;
  c.rhi[4] = spHi;
  c.flagsReg = flags & ~(FLAG_TF | FLAG_NT | FLAG_RF | FLAG_VM | ((type & 1) !== 0 ? 0 : FLAG_IF));
  c.updateMode();
  c.ripLo = offLo;
  c.ripHi = offHi;
}
