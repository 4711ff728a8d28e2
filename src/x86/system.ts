// Owns: flag-control, port I/O and system handlers: CLC/STC/CMC/CLD/STD/CLI/STI, IN/OUT, HLT, CPUID, RDTSC/
// RDTSCP, RDRAND, RDMSR/WRMSR (owned MSRs here, others exit), MOV to/from CRn/DRn (with the mode-switch
// side effects: paging, long-mode activation, TLB flushes), LGDT/LIDT/SGDT/SIDT, SMSW/LMSW/CLTS, INVLPG,
// INVPCID, CLFLUSH, SYSCALL/SYSRET, SYSENTER/SYSEXIT, SWAPGS, VMCALL, UD, NOP forms.
// Must not: know what exits mean (the runner decides); owned-MSR storage only, no device behaviour.
// Spec: Intel SDM Vol. 2 (each instruction), Vol. 3A 2.5 (control registers, reserved-bit #GP), 4.10.4
// (TLB invalidation), 5.8.7-5.8.8 (SYSENTER/SYSCALL), 9.8.5 (initializing IA-32e mode), Vol. 4 (MSRs:
// IA32_EFER 0xC0000080, STAR/LSTAR/CSTAR/FMASK 0xC0000081-84, FS/GS/KERNEL_GS_BASE 0xC0000100-102,
// TSC_AUX 0xC0000103, SYSENTER_CS/ESP/EIP 0x174-0x176, TSC 0x10, PAT 0x277, MTRRs 0xFE, 0x200-0x2FF,
// IA32_MISC_ENABLE 0x1A0: Table 2-2).

import {
  CR0_CD,
  CR0_MP,
  CR0_NE,
  CR0_NW,
  CR0_PE,
  CR0_PG,
  CR0_TS,
  CR4_PAE,
  CR4_PCIDE,
  CR4_PGE,
  CR4_PSE,
  CR4_TSD,
  type CpuCore,
  EFER_LMA,
  EFER_LME,
  EFER_NXE,
  EFER_SCE,
  type Handler,
  Vec,
} from "./core.js";
import { type Insn, OpKind } from "./insn.js";
import { FLAG_CF, FLAG_DF, FLAG_IF, FLAG_RF, FLAG_VM, FLAGS_STATUS } from "./opcode-table.js";
import { checkIoPermission, portIn, portOut } from "./string-ops.js";
import { ExitReason } from "./vm-exit.js";

// ---- flags ----

function iopl(c: CpuCore): number {
  return (c.flagsReg >> 12) & 3;
}

/** CLI/STI are IOPL-sensitive in protected and virtual-8086 mode (no PVI/VME support). */
function checkIopl(c: CpuCore): void {
  if (c.cr0 & CR0_PE && c.cpl > iopl(c)) c.gp(0);
}

function sti(c: CpuCore): void {
  checkIopl(c);
  if (!(c.flagsReg & FLAG_IF)) c.shadow = c.attn = 2; // interrupts recognized after the next instruction
  c.flagsReg |= FLAG_IF;
}

// ---- port I/O ----

function ioPort(c: CpuCore, d: Insn, slot: number): number {
  const k = slot === 0 ? d.k0 : d.k1;
  return k === OpKind.Imm ? d.immLo & 0xff : c.rlo[2]! & 0xffff;
}

function inInsn(c: CpuCore, d: Insn): void {
  const port = ioPort(c, d, 1);
  const size = d.s0;
  checkIoPermission(c, port, size);
  c.setGpr(0, size, portIn(c, port, size), 0);
}

function outInsn(c: CpuCore, d: Insn): void {
  const port = ioPort(c, d, 0);
  const size = d.s1;
  checkIoPermission(c, port, size);
  portOut(c, port, size, c.rlo[0]!);
}

// ---- HLT, CPUID, time, randomness ----

function hlt(c: CpuCore): void {
  if (c.controls.hltExiting) {
    c.exit.reason = ExitReason.Hlt;
    c.postedExit = true;
    c.attn = 1;
    return;
  }
  c.halted = true;
  c.attn = 1;
}

function cpuid(c: CpuCore): void {
  const leaf = c.rlo[0]!;
  const sub = c.rlo[1]!;
  if (c.controls.cpuidExiting) {
    c.exit.cpuidLeaf = leaf >>> 0;
    c.exit.cpuidSubleaf = sub >>> 0;
    c.exitNow(ExitReason.Cpuid);
  }
  const o = c.cpuid.query(leaf, sub);
  c.setGpr(0, 4, o[0]!, 0);
  c.setGpr(3, 4, o[1]!, 0);
  // CPUID.1:ECX[27] OSXSAVE reflects CR4.OSXSAVE (SDM Vol. 2A Table 3-10).
  if (leaf === 1 && c.cr4 & CR4_OSXSAVE) o[2] = o[2]! | (1 << 27);
  c.setGpr(1, 4, o[2]!, 0);
  c.setGpr(2, 4, o[3]!, 0);
}

function rdtsc(c: CpuCore): void {
  if (c.cr4 & CR4_TSD && c.cpl > 0 && c.cr0 & CR0_PE) c.gp(0);
  const lo = c.readTsc();
  c.setGpr(2, 4, c.hi, 0);
  c.setGpr(0, 4, lo, 0);
}

function rdtscp(c: CpuCore): void {
  rdtsc(c);
  c.setGpr(1, 4, c.tscAux, 0);
}

const entropy = new Uint32Array(64);
let entropyLeft = 0;

function random32(): number {
  if (entropyLeft === 0) {
    globalThis.crypto.getRandomValues(entropy);
    entropyLeft = entropy.length;
  }
  return entropy[--entropyLeft]! | 0;
}

function rdrand(c: CpuCore, d: Insn): void {
  c.setGpr(d.r0, d.s0, random32(), random32());
  c.setStatus(FLAGS_STATUS, FLAG_CF);
}

// ---- control registers ----

const CR4_OSXSAVE = 0x40000;
/**
 * CR4 bits this processor implements; the others are reserved (#GP(0) when set, SDM Vol. 3A 2.5), among them
 * FSGSBASE (bit 16): CPUID.07H:EBX[0] is 0, as RDFSBASE/WRFSBASE/RDGSBASE/WRGSBASE are not implemented.
 */
const CR4_SUPPORTED =
  0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x20000 | CR4_OSXSAVE;

/** Writes CR0 with the architectural checks and side effects (SDM Vol. 3A 2.5, 9.8.5). */
export function writeCr0(c: CpuCore, lo: number, hi: number): void {
  if (hi !== 0) c.gp(0);
  let v = lo | 0x10; // ET is hardwired to 1
  if (v & CR0_PG && !(v & CR0_PE)) c.gp(0);
  if (v & CR0_NW && !(v & CR0_CD)) c.gp(0);
  const old = c.cr0;
  if (v & CR0_PG && !(old & CR0_PG) && c.efer & EFER_LME) {
    if (!(c.cr4 & CR4_PAE)) c.gp(0);
    if (c.segAccess[1]! & 0x2000) c.gp(0); // CS.L must be 0 when activating long mode
  }
  if (!(v & CR0_PG) && old & CR0_PG && c.long64) c.gp(0); // paging can only be disabled in compat mode
  v &= 0xe005003f;
  c.cr0 = v;
  if (v & CR0_PG && c.efer & EFER_LME) c.efer |= EFER_LMA;
  else if (!(v & CR0_PG)) c.efer &= ~EFER_LMA;
  if ((old ^ v) & (CR0_PG | CR0_PE | 0x10000)) c.flushTlb();
  c.updateMode();
}

export function writeCr4(c: CpuCore, lo: number, hi: number): void {
  if (hi !== 0 || lo & ~CR4_SUPPORTED) c.gp(0);
  if (lo & CR4_OSXSAVE && !c.cpuid.has("XSAVE")) c.gp(0);
  if (c.efer & EFER_LMA && !(lo & CR4_PAE)) c.gp(0);
  if (lo & CR4_PCIDE && !(c.cr4 & CR4_PCIDE) && (!(c.efer & EFER_LMA) || (c.cr3Lo & 0xfff) !== 0)) c.gp(0);
  const old = c.cr4;
  c.cr4 = lo;
  if ((old ^ lo) & (CR4_PGE | CR4_PAE | CR4_PSE | CR4_PCIDE)) c.flushTlb();
}

export function writeCr3(c: CpuCore, lo: number, hi: number): void {
  if (c.efer & EFER_LMA) {
    // Bit 63 with CR4.PCIDE means "do not flush" — we flush non-global entries anyway (always allowed).
    hi &= 0x7fffffff;
    if (hi & 0xffffff00) c.gp(0); // beyond MAXPHYADDR
  } else hi = 0;
  c.cr3Lo = lo;
  c.cr3Hi = hi;
  c.flushTlb(true);
}

function movToCr(c: CpuCore, d: Insn): void {
  const lo = c.rlo[d.r1]!;
  const hi = d.s1 === 8 ? c.rhi[d.r1]! : 0;
  switch (d.r0) {
    case 0:
      writeCr0(c, lo, hi);
      break;
    case 2:
      c.cr2Lo = lo;
      c.cr2Hi = hi;
      break;
    case 3:
      writeCr3(c, lo, hi);
      break;
    case 4:
      writeCr4(c, lo, hi);
      break;
    case 8:
      if (lo & ~15 || hi) c.gp(0);
      // A lower priority threshold may make a held-back interrupt deliverable at the next boundary.
      if (lo < c.cr8) c.attn = 1;
      c.cr8 = lo;
      break;
    default:
      c.ud();
  }
}

function movFromCr(c: CpuCore, d: Insn): void {
  let lo: number;
  let hi = 0;
  switch (d.r1) {
    case 0:
      lo = c.cr0;
      break;
    case 2:
      lo = c.cr2Lo;
      hi = c.cr2Hi;
      break;
    case 3:
      lo = c.cr3Lo;
      hi = c.cr3Hi;
      break;
    case 4:
      lo = c.cr4;
      break;
    case 8:
      lo = c.cr8;
      break;
    default:
      return c.ud();
  }
  c.setGpr(d.r0, d.s0, lo, hi);
}

/** Debug registers are storage (breakpoint matching is not implemented, and not advertised beyond DE). */
function drIndex(c: CpuCore, n: number): number {
  if (n === 4 || n === 5) {
    if (c.cr4 & 8) c.ud();
    return n + 2;
  }
  if (n > 7) c.ud();
  return n;
}

function movToDr(c: CpuCore, d: Insn): void {
  const n = drIndex(c, d.r0);
  const lo = c.rlo[d.r1]!;
  const hi = d.s1 === 8 ? c.rhi[d.r1]! : 0;
  if ((n === 6 || n === 7) && hi !== 0) c.gp(0);
  c.drLo[n] = n === 6 ? (lo | 0xffff0ff0) & ~0x1000 : n === 7 ? (lo | 0x400) & ~0xd000 : lo;
  c.drHi[n] = hi;
}

function movFromDr(c: CpuCore, d: Insn): void {
  const n = drIndex(c, d.r1);
  c.setGpr(d.r0, d.s0, c.drLo[n]!, c.drHi[n]!);
}

// ---- MSRs ----

const MSR_TSC = 0x10;
const MSR_SYSENTER_CS = 0x174;
const MSR_SYSENTER_ESP = 0x175;
const MSR_SYSENTER_EIP = 0x176;
const MSR_PAT = 0x277;
const MSR_EFER = 0xc0000080 | 0;
const MSR_STAR = 0xc0000081 | 0;
const MSR_LSTAR = 0xc0000082 | 0;
const MSR_CSTAR = 0xc0000083 | 0;
const MSR_FMASK = 0xc0000084 | 0;
const MSR_FS_BASE = 0xc0000100 | 0;
const MSR_GS_BASE = 0xc0000101 | 0;
const MSR_KGS_BASE = 0xc0000102 | 0;
const MSR_TSC_AUX = 0xc0000103 | 0;

function isMtrr(n: number): boolean {
  return (
    n === 0xfe ||
    n === 0x2ff ||
    (n >= 0x200 && n <= 0x20f) ||
    n === 0x250 ||
    n === 0x258 ||
    n === 0x259 ||
    (n >= 0x268 && n <= 0x26f)
  );
}

const MSR_PLATFORM_ID = 0x17;
const MSR_BIOS_SIGN_ID = 0x8b;
const MSR_MISC_ENABLE = 0x1a0;
/** The microcode update signature BIOS_SIGN_ID reports (no update is ever loaded: a fixed revision). */
const MICROCODE_REVISION = 1;
/**
 * IA32_MISC_ENABLE (SDM Vol. 4 Table 2-2), low dword. Read/write: fast strings (0), automatic thermal control
 * (3), enhanced SpeedStep (16) and xTPR message disable (23) only read back (no thermal control, P-states or
 * xTPR messages exist here); limit CPUID maxval (22) acts on CPUID (cpuid.ts); ENABLE MONITOR FSM (18),
 * writable while the processor implements MONITOR/MWAIT, sets CPUID.01H:ECX[3] and lets MONITOR/MWAIT run
 * (monitor-mwait.ts). It powers on clear, unlike a bare Intel part (docs/x86-internals.md
 * "IA32_MISC_ENABLE"). Read-only: performance monitoring available (7) reads 0 (CPUID leaf 0xA enumerates
 * none), BTS and PEBS unavailable (11, 12) read 1; writes leave them.
 */
const MISC_ENABLE_RESET = 0x1801;
const MISC_ENABLE_READ_ONLY = 0x1880;
const MISC_ENABLE_READ_ONLY_VALUE = 0x1800;
const MISC_ENABLE_WRITABLE = 0x1 | 0x8 | 0x10000 | 0x400000 | 0x800000;
const MISC_LIMIT_CPUID = 0x400000;
const MISC_MONITOR_FSM = 0x40000;
/** High dword: XD bit disable (34), writable when the processor implements NX. */
const MISC_XD_DISABLE_HI = 0x4;

function canonical(hi: number): boolean {
  return (hi << 16) >> 16 === hi;
}

/** Reads an owned MSR into (return lo, c.hi); returns null-equivalent via `owned` = false when not owned. */
let owned = false;
export function readMsr(c: CpuCore, n: number): number {
  owned = true;
  c.hi = 0;
  switch (n) {
    case MSR_TSC:
      return c.readTsc();
    case MSR_SYSENTER_CS:
      return c.sysenterCs;
    case MSR_SYSENTER_ESP:
      c.hi = c.sysenterEspHi;
      return c.sysenterEspLo;
    case MSR_SYSENTER_EIP:
      c.hi = c.sysenterEipHi;
      return c.sysenterEipLo;
    case MSR_PAT:
      c.hi = c.patHi;
      return c.patLo;
    case MSR_EFER:
      return c.efer;
    case MSR_STAR:
      c.hi = c.starHi;
      return c.starLo;
    case MSR_LSTAR:
      c.hi = c.lstarHi;
      return c.lstarLo;
    case MSR_CSTAR:
      c.hi = c.cstarHi;
      return c.cstarLo;
    case MSR_FMASK:
      return c.sfmask;
    case MSR_FS_BASE:
      c.hi = c.segBaseHi[4]!;
      return c.segBaseLo[4]!;
    case MSR_GS_BASE:
      c.hi = c.segBaseHi[5]!;
      return c.segBaseLo[5]!;
    case MSR_KGS_BASE:
      c.hi = c.kgsBaseHi;
      return c.kgsBaseLo;
    case MSR_TSC_AUX:
      return c.tscAux;
    case MSR_PLATFORM_ID:
      return 0; // platform ID 0 (bits 52:50): what an unconstrained part reports
    case MSR_BIOS_SIGN_ID:
      c.hi = MICROCODE_REVISION;
      return 0;
    case MSR_MISC_ENABLE: {
      const v = c.msrStore.get(MSR_MISC_ENABLE);
      c.hi = v?.[1] ?? 0;
      return v?.[0] ?? MISC_ENABLE_RESET;
    }
    default:
      if (isMtrr(n)) {
        const v = c.msrStore.get(n);
        if (n === 0xfe) {
          c.hi = 0;
          return 0x508; // MTRRcap: 8 variable ranges, fixed ranges, write-combining
        }
        c.hi = v?.[1] ?? 0;
        return v?.[0] ?? 0;
      }
      owned = false;
      return 0;
  }
}

/** Writes an owned MSR; returns false when the MSR is not owned (the caller exits). */
export function writeMsr(c: CpuCore, n: number, lo: number, hi: number): boolean {
  switch (n) {
    case MSR_TSC:
      c.writeTsc(lo, hi);
      return true;
    case MSR_SYSENTER_CS:
      c.sysenterCs = lo & 0xffff;
      return true;
    case MSR_SYSENTER_ESP:
      if (!canonical(hi)) c.gp(0);
      c.sysenterEspLo = lo;
      c.sysenterEspHi = hi;
      return true;
    case MSR_SYSENTER_EIP:
      if (!canonical(hi)) c.gp(0);
      c.sysenterEipLo = lo;
      c.sysenterEipHi = hi;
      return true;
    case MSR_PAT:
      for (let i = 0; i < 8; i++) {
        const t = ((i < 4 ? lo : hi) >>> ((i & 3) * 8)) & 0xff;
        if (t === 2 || t === 3 || t > 7) c.gp(0);
      }
      c.patLo = lo;
      c.patHi = hi;
      return true;
    case MSR_EFER: {
      if (hi !== 0 || lo & ~(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE)) c.gp(0);
      // NXE is reserved while NX is not offered (e.g. disabled through IA32_MISC_ENABLE bit 34).
      if (lo & EFER_NXE && !c.cpuid.nxOffered()) c.gp(0);
      if ((lo ^ c.efer) & EFER_LME && c.cr0 & CR0_PG) c.gp(0);
      const old = c.efer;
      c.efer = (lo & ~EFER_LMA) | (c.efer & EFER_LMA);
      if ((old ^ c.efer) & EFER_NXE) c.flushTlb();
      return true;
    }
    case MSR_STAR:
      c.starLo = lo;
      c.starHi = hi;
      return true;
    case MSR_LSTAR:
    case MSR_CSTAR:
      if (!canonical(hi)) c.gp(0);
      if (n === MSR_LSTAR) {
        c.lstarLo = lo;
        c.lstarHi = hi;
      } else {
        c.cstarLo = lo;
        c.cstarHi = hi;
      }
      return true;
    case MSR_FMASK:
      c.sfmask = lo;
      return true;
    case MSR_FS_BASE:
    case MSR_GS_BASE:
      if (!canonical(hi)) c.gp(0);
      c.segBaseLo[n === MSR_FS_BASE ? 4 : 5] = lo;
      c.segBaseHi[n === MSR_FS_BASE ? 4 : 5] = hi;
      return true;
    case MSR_KGS_BASE:
      if (!canonical(hi)) c.gp(0);
      c.kgsBaseLo = lo;
      c.kgsBaseHi = hi;
      return true;
    case MSR_TSC_AUX:
      if (hi !== 0) c.gp(0);
      c.tscAux = lo;
      return true;
    case MSR_BIOS_SIGN_ID:
      // Software writes 0 before CPUID to read the revision back; no update is loaded by a write here.
      return true;
    case MSR_MISC_ENABLE: {
      // Reserved bits are #GP(0); so is XD disable without NX ("may generate a #GP", Table 2-2). Setting XD
      // disable while EFER.NXE = 1 leaves NXE set: the SDM defines the effect on CPUID and on later writes.
      // Bit 18 likewise without MONITOR/MWAIT ("may generate a #GP" when SSE3 is not offered, Table 2-2).
      const hiWritable = c.cpuid.has("NX") ? MISC_XD_DISABLE_HI : 0;
      const loWritable = MISC_ENABLE_WRITABLE | (c.cpuid.has("MONITOR") ? MISC_MONITOR_FSM : 0);
      if (lo & ~(loWritable | MISC_ENABLE_READ_ONLY) || hi & ~hiWritable) c.gp(0);
      const newLo = (lo & loWritable) | MISC_ENABLE_READ_ONLY_VALUE;
      c.msrStore.set(MSR_MISC_ENABLE, [newLo, hi]);
      c.cpuid.limitMaxLeaf = (lo & MISC_LIMIT_CPUID) !== 0;
      c.cpuid.monitorEnabled = (lo & MISC_MONITOR_FSM) !== 0;
      c.cpuid.xdDisabled = (hi & MISC_XD_DISABLE_HI) !== 0;
      return true;
    }
    default:
      if (isMtrr(n)) {
        if (n === 0xfe) c.gp(0);
        c.msrStore.set(n, [lo, hi]);
        return true;
      }
      return false;
  }
}

function rdmsr(c: CpuCore): void {
  const n = c.rlo[1]!;
  const lo = readMsr(c, n);
  if (!owned) {
    c.exit.msr = n >>> 0;
    c.exitNow(ExitReason.Rdmsr);
  }
  const hi = c.hi;
  c.setGpr(0, 4, lo, 0);
  c.setGpr(2, 4, hi, 0);
}

function wrmsr(c: CpuCore): void {
  const n = c.rlo[1]!;
  const lo = c.rlo[0]!;
  const hi = c.rlo[2]!;
  if (!writeMsr(c, n, lo, hi)) {
    c.exit.msr = n >>> 0;
    c.exit.valueLo = lo;
    c.exit.valueHi = hi;
    c.exitNow(ExitReason.Wrmsr);
  }
}

// ---- descriptor tables and CR0 shorthands ----

function lgdtLidt(c: CpuCore, d: Insn, idt: boolean): void {
  const limit = c.readMem(d.seg, c.eaLo, c.eaHi, 2);
  const s = (c.eaLo >>> 0) + 2;
  const aLo = d.asize === 2 ? s & 0xffff : s | 0;
  const aHi = d.asize === 8 ? (c.eaHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0 : 0;
  let baseLo: number;
  let baseHi = 0;
  if (c.long64) {
    baseLo = c.readMem(d.seg, aLo, aHi, 8);
    baseHi = c.hi;
    if (!canonical(baseHi)) c.gp(0);
  } else {
    baseLo = c.readMem(d.seg, aLo, aHi, 4);
    if (d.osize === 2) baseLo &= 0xffffff;
  }
  if (idt) {
    c.idtrLimit = limit;
    c.idtrBaseLo = baseLo;
    c.idtrBaseHi = baseHi;
  } else {
    c.gdtrLimit = limit;
    c.gdtrBaseLo = baseLo;
    c.gdtrBaseHi = baseHi;
  }
}

function sgdtSidt(c: CpuCore, d: Insn, idt: boolean): void {
  const limit = idt ? c.idtrLimit : c.gdtrLimit;
  const baseLo = idt ? c.idtrBaseLo : c.gdtrBaseLo;
  const baseHi = idt ? c.idtrBaseHi : c.gdtrBaseHi;
  c.writeMem(d.seg, c.eaLo, c.eaHi, 2, limit, 0);
  const s = (c.eaLo >>> 0) + 2;
  const aLo = d.asize === 2 ? s & 0xffff : s | 0;
  const aHi = d.asize === 8 ? (c.eaHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0 : 0;
  if (c.long64) c.writeMem(d.seg, aLo, aHi, 8, baseLo, baseHi);
  else c.writeMem(d.seg, aLo, aHi, 4, baseLo, 0);
}

function smsw(c: CpuCore, d: Insn): void {
  if (d.k0 === OpKind.Mem) c.writeMem(d.seg, c.eaLo, c.eaHi, 2, c.cr0, 0);
  else c.setGpr(d.r0, d.s0, c.cr0, 0);
}

function lmsw(c: CpuCore, d: Insn): void {
  const v = c.rd0(d) & 0xf;
  // LMSW can set PE but never clear it.
  writeCr0(c, (c.cr0 & ~0xe) | v | (c.cr0 & CR0_PE), 0);
}

/**
 * INVLPG: the operand only names a linear address, so it never faults on it: no segment checks (SDM INVLPG
 * lists none), and in 64-bit mode a non-canonical address makes the instruction a NOP.
 */
function invlpg(c: CpuCore, d: Insn): void {
  let lo: number;
  let hi = 0;
  if (c.long64) {
    const base = d.seg < 4 ? 0 : c.segBaseLo[d.seg]! >>> 0;
    const s = (c.eaLo >>> 0) + base;
    lo = s | 0;
    hi = (c.eaHi + (d.seg < 4 ? 0 : c.segBaseHi[d.seg]!) + (s >= 0x1_0000_0000 ? 1 : 0)) | 0;
    if (!canonical(hi)) return;
  } else lo = (c.segBaseLo[d.seg]! + c.eaLo) | 0;
  c.flushTlbPage(lo, hi);
}

/** INVPCID (SDM Vol. 2A "INVPCID", Operation and exceptions; the ring-0 check is the table's). */
function invpcid(c: CpuCore, d: Insn): void {
  // Outside 64-bit mode the register operand is 32 bits; in 64-bit mode all 64 bits are the type.
  const type = c.rlo[d.r0]!;
  if ((c.long64 && c.rhi[d.r0]! !== 0) || type >>> 0 > 3) c.gp(0);
  const pcid = c.readMem(d.seg, c.eaLo, c.eaHi, 8);
  const pcidHi = c.hi;
  const s = (c.eaLo >>> 0) + 8;
  const addrLo = c.readMem(d.seg, s | 0, (c.eaHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0, 8);
  const addrHi = c.hi;
  if (pcid & ~0xfff || pcidHi) c.gp(0);
  // Types 0 and 1 name one PCID, and only PCID 0 exists while CR4.PCIDE = 0.
  if (type <= 1 && pcid !== 0 && !(c.cr4 & CR4_PCIDE)) c.gp(0);
  if (type === 0) {
    // The full 64-bit address, in every mode.
    if (!canonical(addrHi)) c.gp(0);
    c.flushTlbPage(addrLo, addrHi);
  } else c.flushTlb(type !== 2);
}

function clflush(c: CpuCore, d: Insn): void {
  // Checked like a byte read (faults, MMIO) — caches are not modelled, so nothing else to do.
  c.readMem(d.seg, c.eaLo, c.eaHi, 1);
}

// ---- fast system calls ----

function flatCode(c: CpuCore, sel: number, dpl: number, long: boolean): void {
  c.loadSegCache(1, sel, 0, 0, 0xffffffff, 0x9b | (dpl << 5) | (long ? 0x2000 | 0x8000 : 0x4000 | 0x8000));
}

function flatStack(c: CpuCore, sel: number, dpl: number): void {
  c.loadSegCache(2, sel, 0, 0, 0xffffffff, 0x93 | (dpl << 5) | 0x4000 | 0x8000);
}

function syscall(c: CpuCore): void {
  if (!(c.efer & EFER_SCE)) c.ud();
  const f = c.getFlags();
  c.setGpr(1, 8, c.ripLo, c.ripHi);
  c.setGpr(11, 8, f & ~FLAG_RF, 0);
  const sel = c.starHi & 0xffff;
  flatCode(c, sel & 0xfffc, 0, true);
  flatStack(c, (sel + 8) & 0xfffc, 0);
  c.flagsReg = (f & ~c.sfmask & ~FLAG_RF) | 2;
  c.updateMode();
  if (c.long64) {
    c.ripLo = c.lstarLo;
    c.ripHi = c.lstarHi;
  } else {
    c.ripLo = c.cstarLo;
    c.ripHi = c.cstarHi;
  }
}

function sysret(c: CpuCore, d: Insn): void {
  if (!(c.efer & EFER_SCE)) c.ud();
  const sel = c.starHi >>> 16;
  const to64 = d.osize === 8;
  if (to64 && !canonical(c.rhi[1]!)) c.gp(0);
  if (to64) flatCode(c, ((sel + 16) & 0xfffc) | 3, 3, true);
  else flatCode(c, (sel & 0xfffc) | 3, 3, false);
  // SS gets the selector; the hidden part keeps flat DPL-3 attributes (SDM SYSRET).
  flatStack(c, ((sel + 8) & 0xfffc) | 3, 3);
  c.flagsReg = ((c.rlo[11]! & 0x3c7fd7) | 2) & ~FLAG_RF;
  c.lazyOp = 0;
  c.updateMode();
  c.ripLo = c.rlo[1]!;
  c.ripHi = to64 ? c.rhi[1]! : 0;
}

function sysenter(c: CpuCore): void {
  if (!(c.cr0 & CR0_PE) || (c.sysenterCs & 0xfffc) === 0) c.gp(0);
  const long = (c.efer & EFER_LMA) !== 0;
  const f = c.getFlags();
  c.flagsReg = f & ~(FLAG_VM | FLAG_IF | FLAG_RF);
  flatCode(c, c.sysenterCs & 0xfffc, 0, long);
  flatStack(c, (c.sysenterCs + 8) & 0xfffc, 0);
  c.updateMode();
  if (long) {
    c.rlo[4] = c.sysenterEspLo;
    c.rhi[4] = c.sysenterEspHi;
    c.ripLo = c.sysenterEipLo;
    c.ripHi = c.sysenterEipHi;
  } else {
    c.setGpr(4, 4, c.sysenterEspLo, 0);
    c.ripLo = c.sysenterEipLo;
    c.ripHi = 0;
  }
}

function sysexit(c: CpuCore, d: Insn): void {
  if (!(c.cr0 & CR0_PE) || (c.sysenterCs & 0xfffc) === 0) c.gp(0);
  const to64 = d.osize === 8;
  const base = c.sysenterCs & 0xfffc;
  flatCode(c, ((base + (to64 ? 32 : 16)) & 0xfffc) | 3, 3, to64);
  flatStack(c, ((base + (to64 ? 40 : 24)) & 0xfffc) | 3, 3);
  c.updateMode();
  if (to64) {
    if (!canonical(c.rhi[2]!) || !canonical(c.rhi[1]!)) c.gp(0);
    c.rlo[4] = c.rlo[1]!;
    c.rhi[4] = c.rhi[1]!;
    c.ripLo = c.rlo[2]!;
    c.ripHi = c.rhi[2]!;
  } else {
    c.setGpr(4, 4, c.rlo[1]!, 0);
    c.ripLo = c.rlo[2]!;
    c.ripHi = 0;
  }
}

function swapgs(c: CpuCore): void {
  const lo = c.segBaseLo[5]!;
  const hi = c.segBaseHi[5]!;
  c.segBaseLo[5] = c.kgsBaseLo;
  c.segBaseHi[5] = c.kgsBaseHi;
  c.kgsBaseLo = lo;
  c.kgsBaseHi = hi;
}

/**
 * WAIT/FWAIT: #NM when CR0.TS and CR0.MP are both set; #MF when the x87 status word (`c.fpu.fsw`, owned by
 * x87.ts) has its exception-summary bit set and CR0.NE selects native error reporting (without NE the
 * error goes to FERR#, which is not modelled); otherwise nothing (SDM WAIT/FWAIT, Table 2-2 of Vol. 3A 2.5).
 */
function fwait(c: CpuCore): void {
  if ((c.cr0 & (CR0_TS | CR0_MP)) === (CR0_TS | CR0_MP)) c.fault(Vec.NM);
  if (c.fpu.fsw & 0x80 && c.cr0 & CR0_NE) c.fault(Vec.MF);
}

export const systemHandlers: Record<string, Handler> = {
  fwait,
  clc: (c) => c.setStatus(FLAG_CF, 0),
  stc: (c) => c.setStatus(FLAG_CF, FLAG_CF),
  cmc: (c) => c.setStatus(FLAG_CF, c.getCF() ? 0 : FLAG_CF),
  cld: (c) => {
    c.flagsReg &= ~FLAG_DF;
  },
  std: (c) => {
    c.flagsReg |= FLAG_DF;
  },
  cli: (c) => {
    checkIopl(c);
    c.flagsReg &= ~FLAG_IF;
  },
  sti,
  in: inInsn,
  out: outInsn,
  hlt,
  cpuid,
  rdtsc,
  rdtscp,
  rdrand,
  rdmsr,
  wrmsr,
  movToCr,
  movFromCr,
  movToDr,
  movFromDr,
  lgdt: (c, d) => lgdtLidt(c, d, false),
  lidt: (c, d) => lgdtLidt(c, d, true),
  sgdt: (c, d) => sgdtSidt(c, d, false),
  sidt: (c, d) => sgdtSidt(c, d, true),
  smsw,
  lmsw,
  clts: (c) => {
    c.cr0 &= ~CR0_TS;
  },
  invlpg,
  invpcid,
  clflush,
  syscall,
  sysret,
  sysenter,
  sysexit,
  swapgs,
  vmcall: (c) => c.exitNow(ExitReason.Vmcall),
  ud: (c) => c.ud(),
  nop: () => {},
  nop0: () => {},
};
