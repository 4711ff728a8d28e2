// Owns: the one result type of every MSR access the hypervisor answers or dispatches: its synthetic MSRs
// (partition, SynIC, synthetic timers), the local APIC's (IA32_APIC_BASE, TSC_DEADLINE, x2APIC) and those a
// root-side intercept handler registered with the partition. A read yields a value; a write yields MSR_OK; a
// refusal (unknown MSR, missing privilege, reserved bits, invalid transition) is #GP(0), injected by the
// partition, never thrown.
// Must not: allocate for refusals or successful writes (shared constants), or know any particular MSR.
// Spec: Intel SDM Vol. 2B RDMSR/WRMSR (#GP(0) for reserved or unimplemented MSRs and reserved bits).

export type MsrResult =
  | { ok: true; lo: number; hi: number }
  /** `reason` says why, for diagnostics and tests; the guest only sees #GP(0). */
  | { ok: false; reason?: string };

/** A refused access: the partition injects #GP(0). */
export const MSR_GP: MsrResult = { ok: false };

/** A write that was accepted. */
export const MSR_OK: MsrResult = { ok: true, lo: 0, hi: 0 };

/** A read's value (both halves as unsigned 32-bit numbers). */
export function msrValue(lo: number, hi: number): MsrResult {
  return { ok: true, lo: lo >>> 0, hi: hi >>> 0 };
}

/** MSR_OK when `accepted`, else MSR_GP. */
export function msrWritten(accepted: boolean): MsrResult {
  return accepted ? MSR_OK : MSR_GP;
}
