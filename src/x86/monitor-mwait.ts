// Owns: MONITOR (0F 01 C8) and MWAIT (0F 01 C9): their availability (#UD unless CPUID.01H:ECX[3] is set,
// i.e. IA32_MISC_ENABLE[18] is set, and #UD at CPL > 0), the ECX extension checks, and MONITOR's address
// checks (segment, canonical form, paging, accessed bit) made like those of a byte load.
// Must not: wait. MWAIT retires at once, so no monitor address is kept and no optimized state exists; the
// run loop delivers any pending event at the next instruction boundary as after any other instruction.
// Must not read the monitored byte either: a device behind it would see an access.
// Spec: Intel SDM Vol. 2B MONITOR, MWAIT (description, exceptions); Vol. 2A CPUID leaf 01H ECX[3] and
// leaf 05H (Table 3-8); Vol. 4 Table 2-2 IA32_MISC_ENABLE[18] (ENABLE MONITOR FSM); Vol. 3A 9.10.4
// (MONITOR/MWAIT in multiprocessor systems: software re-checks its condition after MWAIT returns).

import type { CpuCore, Handler } from "./core.js";
import { CodeMode, type Insn } from "./insn.js";
import { ACC_READ } from "./paging.js";

/** MWAIT ECX[0]: interrupts are break events even when masked (offered: CPUID.05H:ECX[1] = 1). */
const MWAIT_INTERRUPT_BREAK = 1;

/** #UD unless MONITOR/MWAIT are offered and the processor is at CPL 0 (ring-3 MONITOR is not offered). */
function checkAvailable(c: CpuCore): void {
  if (!c.cpuid.monitorOffered() || c.cpl !== 0) c.ud();
}

/** RCX in 64-bit mode, ECX otherwise: the register MONITOR/MWAIT take their extensions from. */
function extensionsNonZero(c: CpuCore, d: Insn, allowed: number): boolean {
  return (c.rlo[1]! & ~allowed) !== 0 || (d.mode === CodeMode.Bits64 && c.rhi[1]! !== 0);
}

/**
 * Arms nothing: with MWAIT retiring at once there is nothing for the monitor to wake. The address in
 * RAX/EAX/AX (by address size) at DS or the override segment is still checked as a byte load would be.
 */
function monitor(c: CpuCore, d: Insn): void {
  checkAvailable(c);
  if (extensionsNonZero(c, d, 0)) c.gp(0); // no MONITOR extensions are offered
  let lo = c.rlo[0]!;
  let hi = 0;
  if (d.asize === 8) hi = c.rhi[0]!;
  else if (d.asize === 2) lo &= 0xffff;
  const linLo = c.linear(d.seg, lo, hi, 1, false);
  c.translate(linLo, c.hi, ACC_READ, false);
}

/**
 * Retires at once. The SDM lets the processor leave the optimized state on implementation-dependent
 * events, so software re-checks its wake condition after MWAIT; returning before any store or interrupt
 * is one such exit. With ECX[0] set, a masked interrupt would only end the wait, which has already ended.
 */
function mwait(c: CpuCore, d: Insn): void {
  checkAvailable(c);
  if (extensionsNonZero(c, d, MWAIT_INTERRUPT_BREAK)) c.gp(0);
}

export const monitorMwaitHandlers: Record<string, Handler> = { monitor, mwait };
