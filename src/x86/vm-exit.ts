// Owns: the VM-exit contract between the emulated processor and whatever runs it (the hypervisor in src/hv,
// or the test platform): exit reasons, the preallocated record describing the last exit, and the exit
// controls that select which events exit. This is our VMCS: see docs/architecture.md, "The VM-exit boundary".
// Must not: know about Hyper-V, devices or the platform; it only describes events.
// Spec: modelled on Intel SDM Vol. 3C ch. 25-28 (VMX non-root operation, VM exits, exit qualifications),
// simplified to what an emulated processor needs.

/** Why `Cpu.run` returned. Numeric so the hot path never allocates. */
export const enum ExitReason {
  /** The instruction budget given to run() was used up; nothing to handle. */
  BudgetExhausted = 0,
  /** IN/INS (isWrite false) or OUT/OUTS (isWrite true) to a port that exits. See ExitInfo.port/size/value. */
  Io = 1,
  /** Access to a guest-physical address that is not RAM. See ExitInfo.gpa/size/isWrite/value. */
  Mmio = 2,
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
 * Completion rule: after an Io read, Mmio read, Rdmsr, Wrmsr, Cpuid or Vmcall exit the instruction has NOT
 * retired; the runner must call the processor's matching complete method (or inject a fault) before the next
 * run(). Io and Mmio writes are posted: the instruction has retired when the exit is reported.
 */
export interface ExitInfo {
  reason: ExitReason;
  /** I/O port (0..0xffff). */
  port: number;
  /** Access size in bytes: 1, 2, 4 (Io) or 1, 2, 4, 8 (Mmio). */
  size: number;
  isWrite: boolean;
  /** Guest-physical address of an Mmio exit (a JS number, exact below 2^53). */
  gpa: number;
  /** Low and high 32 bits of the data of a write (Io, Mmio, Wrmsr). */
  valueLo: number;
  valueHi: number;
  msr: number;
  cpuidLeaf: number;
  cpuidSubleaf: number;
}

/** Which events exit; the runner (hypervisor) configures these, like VMX execution controls. */
export interface ExitControls {
  /** Bit per port (8 KiB): a set bit makes IN/OUT to that port exit; clear bits read all-ones/discard. */
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
    port: 0,
    size: 0,
    isWrite: false,
    gpa: 0,
    valueLo: 0,
    valueHi: 0,
    msr: 0,
    cpuidLeaf: 0,
    cpuidSubleaf: 0,
  };
}
