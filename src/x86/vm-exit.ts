// Owns: the VM-exit contract between the emulated processor and whatever runs it (the hypervisor in src/hv,
// or a test's run loop): exit reasons, the preallocated record describing the last exit, the exit controls
// that select which events exit, and the device intercepts through which port and MMIO accesses reach the
// runner while the instruction executes. This is our VMCS: see docs/architecture.md, "The VM-exit boundary",
// and docs/decisions/0004 (why device accesses are intercepts, not exits).
// Must not: know about Hyper-V, devices or the platform; it only describes events.
// Spec: modelled on Intel SDM Vol. 3C ch. 25-28 (VMX non-root operation, VM exits, exit qualifications),
// simplified to what an emulated processor needs.

import { DOUBLE_ZERO } from "../support/heap-number.js";

/** Why `Cpu.run` returned. Numeric so the hot path never allocates. */
export const enum ExitReason {
  /**
   * The batch ended with nothing to handle: the budget given to run() was used up, or a device write (an
   * intercepted port or MMIO write) ended it after its instruction retired, so the runner looks at what the
   * write may have changed (a stop or reset request, a new timer deadline, a pending interrupt) before it
   * runs the processor again.
   */
  BudgetExhausted = 0,
  // 1 and 2 were the Io and Mmio exits; device accesses are intercepts now (PortIntercept, MmioIntercept).
  /** RDMSR of an MSR the processor does not own. See ExitInfo.msr. */
  Rdmsr = 3,
  /** WRMSR of an MSR the processor does not own. See ExitInfo.msr and valueLo/valueHi. */
  Wrmsr = 4,
  /** CPUID with exit enabled. See ExitInfo.cpuidLeaf/cpuidSubleaf. */
  Cpuid = 5,
  /** VMCALL (the Hyper-V hypercall instruction). */
  Vmcall = 6,
  /** HLT with interrupts unable to wake the processor inside the batch. */
  Hlt = 7,
  /** The guest can now accept an external interrupt (requested via controls.interruptWindowExiting). */
  InterruptWindow = 8,
  /** Shutdown: a fault while delivering #DF. The processor stays stopped until reset. */
  TripleFault = 9,
  /** A guest access forbidden by the partition's page rights (GuestMemory.rights). See gpa/isWrite. */
  AccessViolation = 10,
}

/**
 * Details of the most recent exit; one instance per processor, overwritten by every exit.
 *
 * Completion rule: after an Rdmsr, Wrmsr, Cpuid or Vmcall exit the instruction has NOT retired; the runner
 * must call the processor's matching complete method (or inject a fault) before the next run(). Hlt with
 * hltExiting is posted: the HLT has retired when the exit is reported.
 */
export interface ExitInfo {
  reason: ExitReason;
  /** Access size in bytes of an AccessViolation (1 for an instruction fetch, 0 for a data access). */
  size: number;
  isWrite: boolean;
  /** Guest-physical address of an AccessViolation (a JS number, exact below 2^53). */
  gpa: number;
  /** Low and high 32 bits of the value of a Wrmsr. */
  valueLo: number;
  valueHi: number;
  msr: number;
  cpuidLeaf: number;
  cpuidSubleaf: number;
}

/** Which events exit; the runner (hypervisor) configures these, like VMX execution controls. */
export interface ExitControls {
  /**
   * Bit per port (8 KiB): a set bit sends IN/OUT of that port to the processor's PortIntercept; a clear bit
   * (or no intercept) reads all ones and discards writes, as an unclaimed ISA port does.
   */
  ioBitmap: Uint8Array;
  /** CPUID always exits when true; otherwise the processor answers from its own feature table. */
  cpuidExiting: boolean;
  /** Exit as soon as RFLAGS.IF=1 and no interrupt shadow, so a pending interrupt can be injected. */
  interruptWindowExiting: boolean;
  /** Exit on HLT instead of idling inside the batch. */
  hltExiting: boolean;
  /** Added to the processor's TSC (two's complement, as (lo, hi)); VMX "TSC offsetting". */
  tscOffsetLo: number;
  tscOffsetHi: number;
}

export function newExitInfo(): ExitInfo {
  return {
    reason: ExitReason.BudgetExhausted,
    size: 0,
    isWrite: false,
    // Unsigned 32-bit values (MMIO addresses, MSR numbers, CPUID leaves from 0x80000000): double fields
    // from the start, so the first large one does not change this object's hidden class.
    gpa: DOUBLE_ZERO,
    valueLo: 0,
    valueHi: 0,
    msr: DOUBLE_ZERO,
    cpuidLeaf: DOUBLE_ZERO,
    cpuidSubleaf: DOUBLE_ZERO,
  };
}

/**
 * Port I/O the runner intercepts: IN/OUT/INS/OUTS of every port whose I/O-bitmap bit is set reach it while the
 * instruction executes, so every access of a string instruction completes in the same pass. A write ends the
 * processor's batch once its instruction retires (ExitReason.BudgetExhausted), so the runner sees its effects
 * (a stop request, a new deadline, an interrupt) before the next instruction runs. Must not throw: what a
 * device does with a bad access is the device's business.
 */
export interface PortIntercept {
  /** Returns the value read (1, 2 or 4 bytes; bits above `size` bytes are ignored). */
  read(port: number, size: number): number;
  /** `value` holds `size` (1, 2 or 4) bytes, zero-extended. */
  write(port: number, size: number, value: number): void;
}

/**
 * Accesses to guest-physical addresses outside RAM, delivered while the instruction executes: sizes 1, 2, 4
 * and 8 as the instruction makes them (a 16-byte SSE or FXSAVE access is 8-byte ones, lowest address first;
 * an access that straddles a page is split at the boundary, and a part outside RAM is made of naturally
 * aligned 1-, 2- and 4-byte pieces as a bus splits it). Writes end the batch as PortIntercept writes do. Must
 * not throw.
 */
export interface MmioIntercept {
  /**
   * Returns the low 32 bits of the value read (1 and 2 bytes zero-extended). An 8-byte read leaves the high
   * 32 bits in `hi`, the processor's own convention for 64-bit values, so nothing is allocated.
   */
  read(gpa: number, size: number): number;
  /** High 32 bits of the last 8-byte `read`. */
  hi: number;
  /** `lo` holds the low 32 bits (zero-extended for 1 and 2 bytes), `hi` the high 32 bits of an 8-byte write. */
  write(gpa: number, size: number, lo: number, hi: number): void;
}
