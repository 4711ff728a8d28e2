// Owns: the public surface of the emulated processor that runners (the hypervisor, the test platform, the
// CLI) program against, so they can be built while the processor grows. src/x86/cpu.ts implements it.
// Must not: expose internal representation beyond the (lo, hi) 32-bit pairs of docs/decisions/0001.
// Spec: register numbering follows the Intel SDM Vol. 2A 2.1.5 (ModRM reg field, REX extension);
// segment numbering follows the SReg encoding (ES=0, CS=1, SS=2, DS=3, FS=4, GS=5).

import type { InterruptSource } from "../contracts/platform.js";
import type { ExitControls, ExitInfo, ExitReason, MmioIntercept, PortIntercept } from "./vm-exit.js";

export const enum Reg {
  RAX = 0,
  RCX = 1,
  RDX = 2,
  RBX = 3,
  RSP = 4,
  RBP = 5,
  RSI = 6,
  RDI = 7,
  R8 = 8,
  R9 = 9,
  R10 = 10,
  R11 = 11,
  R12 = 12,
  R13 = 13,
  R14 = 14,
  R15 = 15,
}

export const enum Seg {
  ES = 0,
  CS = 1,
  SS = 2,
  DS = 3,
  FS = 4,
  GS = 5,
}

/** A segment register as software sees it after loading (selector plus hidden descriptor cache). */
export interface SegmentState {
  selector: number;
  base: number; // linear base (below 2^53; FS/GS bases may be any canonical 64-bit value, see below)
  baseHi?: number; // high 32 bits of a 64-bit FS/GS base; 0 when absent
  limit: number; // byte-granular limit (already scaled by G)
  /** Descriptor attribute bits 40..55 as in the VMCS access-rights format (type, S, DPL, P, AVL, L, D/B, G). */
  access: number;
}

export interface Processor {
  readonly exit: ExitInfo;
  readonly controls: ExitControls;
  /** Instructions retired since reset (a double; exact to 2^53). */
  readonly retired: number;
  /**
   * Exceptions delivered at an instruction that did not retire (a fault restarts it), since construction.
   * A guest whose handlers fault forever retires nothing, so a runner bounds a run by retired + faults.
   */
  readonly faults: number;
  /** The interrupt controller as the processor sees it (the local APIC, or the 8259 pair on its own). */
  interrupts: InterruptSource | null;
  /** Where IN/OUT of ports with their I/O-bitmap bit set go; null: they read all ones, writes vanish. */
  ports: PortIntercept | null;
  /** Where accesses outside RAM go; null: reads float to all ones, writes vanish. */
  mmio: MmioIntercept | null;

  /** Runs up to `budget` instructions, or until an exit; returns why it stopped (details in `exit`). */
  run(budget: number): ExitReason;

  completeRdmsr(lo: number, hi: number): void;
  completeWrmsr(): void;
  completeCpuid(eax: number, ebx: number, ecx: number, edx: number): void;
  /** The runner has already placed results in registers; retire the VMCALL. */
  completeVmcall(): void;
  /** Delivers an exception at the current (un-retired) instruction, e.g. #GP(0) for a refused WRMSR. */
  injectException(vector: number, errorCode?: number): void;
  /** Non-maskable interrupt, delivered at the next instruction boundary. */
  raiseNmi(): void;
  /** INIT/power-on reset to the architectural reset state (real mode at F000:FFF0). */
  reset(): void;

  getReg(reg: Reg): { lo: number; hi: number };
  setReg(reg: Reg, lo: number, hi: number): void;
  getRip(): { lo: number; hi: number };
  setRip(lo: number, hi: number): void;
  getRflags(): number;
  setRflags(value: number): void;
  getSegment(seg: Seg): SegmentState;
  setSegment(seg: Seg, state: SegmentState): void;
  /** Control registers 0, 2, 3, 4, 8 and EFER (msr 0xC0000080) as (lo, hi). */
  getControl(which: "cr0" | "cr2" | "cr3" | "cr4" | "cr8" | "efer"): { lo: number; hi: number };
  setControl(which: "cr0" | "cr2" | "cr3" | "cr4" | "cr8" | "efer", lo: number, hi: number): void;
  setDescriptorTable(which: "gdtr" | "idtr", base: number, limit: number): void;
}
