// Owns: the page-table walk for the three paging modes (32-bit with PSE 4 MiB pages, PAE, 4-level with
// 1 GiB / 2 MiB / 4 KiB pages): permission checks (P, R/W with CR0.WP, U/S, NX with EFER.NXE), reserved-bit
// checks, accessed/dirty bits set atomically in guest RAM, and the #PF error code.
// Must not: cache translations (the TLB lives in core.ts), raise exceptions itself, or touch anything but
// guest RAM — a page-table entry outside RAM reads as not-present.
// Spec: Intel SDM Vol. 3A ch. 4 (4.3 32-bit paging, 4.4 PAE paging, 4.5 4-level paging, 4.6 access rights,
// 4.7 page-fault exceptions, 4.8 accessed and dirty flags, 4.10.2 global pages).

import type { GuestMemory } from "../memory/guest-memory.js";

/** #PF error code bits (SDM Vol. 3A 4.7). */
export const PF_P = 1;
export const PF_W = 2;
export const PF_U = 4;
export const PF_RSVD = 8;
export const PF_I = 16;

/** Access kinds (also the TLB's kind index). */
export const ACC_READ = 0;
export const ACC_WRITE = 1;
export const ACC_EXEC = 2;

/** Paging-relevant control state, copied from the processor at walk time. */
export interface PagingRegs {
  cr0: number;
  cr3Lo: number;
  cr3Hi: number;
  cr4: number;
  /** EFER.LMA set (4-level paging). */
  lma: boolean;
  /** EFER.NXE set. */
  nxe: boolean;
}

/** Outcome of a walk; one instance per processor. */
export class WalkResult {
  /** Guest-physical address of the 4 KiB frame containing the linear address (valid when ok). */
  frame = 0;
  /** The translation is global (PTE.G with CR4.PGE). */
  global = false;
  /** #PF error code when the walk failed. */
  error = 0;
}

const CR0_WP = 1 << 16;
const CR4_PSE = 1 << 4;
const CR4_PAE = 1 << 5;
const CR4_PGE = 1 << 7;
const TWO32 = 0x1_0000_0000;

/** Bits 40..51 of an entry's high half (beyond MAXPHYADDR = 40, see cpuid.ts leaf 0x80000008). */
const RSVD_HI = 0x000fff00;

function read64(mem: GuestMemory, gpa: number, hiOut: Int32Array): number {
  const off = mem.offsetOf(gpa);
  if (off < 0 || off + 8 > mem.size) {
    hiOut[0] = 0;
    return 0;
  }
  hiOut[0] = mem.view.getInt32(off + 4, true);
  return mem.view.getInt32(off, true);
}

const hiScratch = new Int32Array(1);

/**
 * Sets bits in the low dword of an entry atomically, as the processor's locked A/D update does. Entries
 * may lie anywhere in RAM, past 2^31 and 2^32 bytes too: no 32-bit shift of the offset.
 */
function setBits(mem: GuestMemory, gpa: number, bits: number): void {
  const off = mem.offsetOf(gpa);
  if (off < 0 || off % 4 !== 0) return;
  mem.atomicOr32(off, bits);
}

/**
 * Translates linear (lo, hi) for an access of `kind` at user (CPL 3) or supervisor privilege.
 * Returns true and fills `res.frame`/`res.global`, or false with `res.error` set to the #PF error code.
 */
export function walk(
  mem: GuestMemory,
  regs: PagingRegs,
  lo: number,
  hi: number,
  kind: number,
  user: boolean,
  res: WalkResult,
): boolean {
  const write = kind === ACC_WRITE;
  const exec = kind === ACC_EXEC;
  const errBase = (write ? PF_W : 0) | (user ? PF_U : 0) | (exec && regs.nxe ? PF_I : 0);
  const wp = (regs.cr0 & CR0_WP) !== 0;
  const pge = (regs.cr4 & CR4_PGE) !== 0;
  let rw = 1;
  let us = 1;
  let nx = 0;

  if ((regs.cr4 & CR4_PAE) === 0) {
    // 32-bit paging.
    const pdeAddr = (regs.cr3Lo & 0xfffff000) >>> 0;
    const pdeGpa = pdeAddr + (lo >>> 22) * 4;
    const pdeOff = mem.offsetOf(pdeGpa);
    const pde = pdeOff < 0 ? 0 : mem.view.getInt32(pdeOff, true);
    if ((pde & 1) === 0) return fail(res, errBase);
    rw &= pde >> 1;
    us &= pde >> 2;
    if (pde & 0x80 && regs.cr4 & CR4_PSE) {
      if (pde & (1 << 21)) return fail(res, errBase | PF_P | PF_RSVD);
      if (!allowed(rw, us, 0, write, exec, user, wp)) return fail(res, errBase | PF_P);
      setBits(mem, pdeGpa, write ? 0x60 : 0x20);
      const highBits = (pde >>> 13) & 0xff; // PSE-36/40: physical bits 39:32
      res.frame = highBits * TWO32 + ((pde & 0xffc00000) >>> 0) + (lo & 0x3ff000);
      res.global = pge && (pde & 0x100) !== 0;
      return true;
    }
    const pteGpa = ((pde & 0xfffff000) >>> 0) + ((lo >>> 12) & 0x3ff) * 4;
    const pteOff = mem.offsetOf(pteGpa);
    const pte = pteOff < 0 ? 0 : mem.view.getInt32(pteOff, true);
    if ((pte & 1) === 0) return fail(res, errBase);
    rw &= pte >> 1;
    us &= pte >> 2;
    if (!allowed(rw, us, 0, write, exec, user, wp)) return fail(res, errBase | PF_P);
    setBits(mem, pdeGpa, 0x20);
    setBits(mem, pteGpa, write ? 0x60 : 0x20);
    res.frame = (pte & 0xfffff000) >>> 0;
    res.global = pge && (pte & 0x100) !== 0;
    return true;
  }

  const nxe = regs.nxe;
  // Reserved: bits above MAXPHYADDR; XD when EFER.NXE is clear.
  const rsvdHi = RSVD_HI | (nxe ? 0 : 0x80000000);
  let table: number;
  let level: number;
  if (regs.lma) {
    table = (regs.cr3Lo & 0xfffff000) >>> 0;
    table += (regs.cr3Hi & 0xff) * TWO32;
    level = 4;
  } else {
    // PAE: the 4-entry PDPT at CR3[31:5].
    const pdpteGpa = ((regs.cr3Lo & 0xffffffe0) >>> 0) + (lo >>> 30) * 8;
    const e = read64(mem, pdpteGpa, hiScratch);
    const eh = hiScratch[0]!;
    if ((e & 1) === 0) return fail(res, errBase);
    if (eh & RSVD_HI || eh & 0x80000000 || e & 0x1e6) return fail(res, errBase | PF_P | PF_RSVD);
    table = ((e & 0xfffff000) >>> 0) + (eh & 0xff) * TWO32;
    level = 2;
  }
  const entries: number[] = ENTRY_STACK;
  let depth = 0;
  for (;;) {
    let idx: number;
    if (level === 4) idx = (hi >>> 7) & 0x1ff;
    else if (level === 3) idx = ((hi & 0x7f) << 2) | (lo >>> 30);
    else if (level === 2) idx = (lo >>> 21) & 0x1ff;
    else idx = (lo >>> 12) & 0x1ff;
    const gpa = table + idx * 8;
    const e = read64(mem, gpa, hiScratch);
    const eh = hiScratch[0]!;
    if ((e & 1) === 0) return fail(res, errBase);
    if (eh & rsvdHi) return fail(res, errBase | PF_P | PF_RSVD);
    rw &= e >> 1;
    us &= e >> 2;
    nx |= nxe ? eh >>> 31 : 0;
    entries[depth++] = gpa;
    const ps = (e & 0x80) !== 0;
    if (level === 4 && ps) return fail(res, errBase | PF_P | PF_RSVD);
    if (level === 1 || (ps && (level === 2 || level === 3))) {
      if (level === 3 && (e & 0x3fffe000) !== 0) return fail(res, errBase | PF_P | PF_RSVD);
      if (level === 2 && ps && (e & 0x1fe000) !== 0) return fail(res, errBase | PF_P | PF_RSVD);
      if (!allowed(rw, us, nx, write, exec, user, wp)) return fail(res, errBase | PF_P);
      for (let i = 0; i < depth - 1; i++) setBits(mem, entries[i]!, 0x20);
      setBits(mem, gpa, write ? 0x60 : 0x20);
      const baseHi = (eh & 0xff) * TWO32;
      if (level === 3) res.frame = baseHi + ((e & 0xc0000000) >>> 0) + (lo & 0x3ffff000);
      else if (level === 2 && ps) res.frame = baseHi + ((e & 0xffe00000) >>> 0) + (lo & 0x1ff000);
      else res.frame = baseHi + ((e & 0xfffff000) >>> 0);
      res.global = pge && (e & 0x100) !== 0;
      return true;
    }
    table = ((e & 0xfffff000) >>> 0) + (eh & 0xff) * TWO32;
    level--;
  }
}

const ENTRY_STACK: number[] = [0, 0, 0, 0];

function allowed(
  rw: number,
  us: number,
  nx: number,
  write: boolean,
  exec: boolean,
  user: boolean,
  wp: boolean,
): boolean {
  if (user && (us & 1) === 0) return false;
  if (write && (rw & 1) === 0 && (user || wp)) return false;
  if (exec && nx) return false;
  return true;
}

function fail(res: WalkResult, error: number): boolean {
  res.error = error;
  return false;
}
