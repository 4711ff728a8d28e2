// Owns: the processor's CPUID answers and feature set — in ONE place, reporting exactly what is implemented.
// The decoder consults `CpuidModel.has` for the table's feature gates (an instruction whose feature is not
// advertised is #UD), so advertising a bit here is what turns instructions on.
// Must not: advertise anything the processor does not implement. The SIMD helper adds "FPU", "SSE", ... with
// `enable` once its handlers are registered.
// Spec: Intel SDM Vol. 2A "CPUID" (leaves 0, 1, 7, 0x80000000-0x80000008), Table 3-8 onwards.

import type { Feature } from "./opcode-table.js";

/** Features that are not instruction gates but architectural capabilities. */
export type Capability =
  | Feature
  | "TSC"
  | "MSR"
  | "PAE"
  | "PSE"
  | "PGE"
  | "PAT"
  | "NX"
  | "PCID"
  | "PDPE1GB"
  | "DE"
  | "CR8LEGACY"
  | "INVARIANT_TSC"
  // MONITOR/MWAIT (monitor-mwait.ts): CPUID.01H:ECX[3] shows it only while IA32_MISC_ENABLE[18] is set.
  | "MONITOR"
  // Platform capabilities: the processor core does not implement these; the runner enables them when it
  // attaches a local APIC (src/hv/local-apic.ts) that does.
  | "APIC"
  | "X2APIC"
  | "TSC_DEADLINE";

/** Where each capability's bit lives: [leaf, register (0 eax, 1 ebx, 2 ecx, 3 edx), bit]. */
const BITS: Record<Capability, [number, number, number]> = {
  FPU: [1, 3, 0],
  DE: [1, 3, 2],
  PSE: [1, 3, 3],
  TSC: [1, 3, 4],
  MSR: [1, 3, 5],
  PAE: [1, 3, 6],
  CX8: [1, 3, 8],
  APIC: [1, 3, 9],
  SEP: [1, 3, 11],
  PGE: [1, 3, 13],
  CMOV: [1, 3, 15],
  PAT: [1, 3, 16],
  CLFSH: [1, 3, 19],
  MMX: [1, 3, 23],
  FXSR: [1, 3, 24],
  SSE: [1, 3, 25],
  SSE2: [1, 3, 26],
  SSE3: [1, 2, 0],
  MONITOR: [1, 2, 3],
  SSSE3: [1, 2, 9],
  CX16: [1, 2, 13],
  PCID: [1, 2, 17],
  SSE41: [1, 2, 19],
  SSE42: [1, 2, 20],
  X2APIC: [1, 2, 21],
  TSC_DEADLINE: [1, 2, 24],
  XSAVE: [1, 2, 26],
  MOVBE: [1, 2, 22],
  POPCNT: [1, 2, 23],
  RDRAND: [1, 2, 30],
  BMI1: [7, 1, 3],
  INVPCID: [7, 1, 10],
  LAHF64: [0x80000001, 2, 0],
  CR8LEGACY: [0x80000001, 2, 4],
  LZCNT: [0x80000001, 2, 5],
  SYSCALL: [0x80000001, 3, 11],
  NX: [0x80000001, 3, 20],
  PDPE1GB: [0x80000001, 3, 26],
  RDTSCP: [0x80000001, 3, 27],
  LM: [0x80000001, 3, 29],
  INVARIANT_TSC: [0x80000007, 3, 8],
};

/** What this processor core implements (see docs/x86-internals.md before adding to it). */
export const IMPLEMENTED: readonly Capability[] = [
  "DE",
  "PSE",
  "TSC",
  "MSR",
  "PAE",
  "CX8",
  "SEP",
  "PGE",
  "CMOV",
  "PAT",
  "CLFSH",
  "CX16",
  "PCID",
  "MOVBE",
  "POPCNT",
  "RDRAND",
  "INVPCID",
  "LAHF64",
  "LZCNT",
  "SYSCALL",
  "NX",
  "PDPE1GB",
  "RDTSCP",
  "LM",
  "INVARIANT_TSC",
  "MONITOR",
  // SIMD (simd-table.ts; CPUID.1:ECX.OSXSAVE mirrors CR4.OSXSAVE in system.ts's CPUID handler)
  "FPU",
  "MMX",
  "FXSR",
  "SSE",
  "SSE2",
  "SSE3",
  "SSSE3",
  "SSE41",
  "SSE42",
  "XSAVE",
];

const VENDOR = "GenuineIntel";
const BRAND = "Viridian emulated x86-64 processor";

function ascii4(s: string, at: number): number {
  let v = 0;
  for (let i = 3; i >= 0; i--) v = (v << 8) | (s.charCodeAt(at + i) || 0);
  return v | 0;
}

export class CpuidModel {
  private readonly caps = new Set<Capability>(IMPLEMENTED);
  /** Results of the last `query` (eax, ebx, ecx, edx) — preallocated, no allocation per CPUID. */
  readonly out = new Int32Array(4);
  /** Initial APIC ID reported in leaf 1 EBX[31:24]. */
  apicId = 0;
  /**
   * TSC and core crystal (APIC timer) rates for leaves 0x15/0x16, set by the runner that knows both
   * (the TSC is the processor's, the crystal drives the platform's APIC timer); 0 = not enumerated, and the
   * highest basic leaf stays 0xD.
   */
  private tscHz = 0;
  private crystalHz = 0;
  /**
   * IA32_MISC_ENABLE controls that change the answers (SDM Vol. 4 Table 2-2), set by WRMSR (system.ts) and
   * cleared by `resetControls` at processor reset: bit 22 (limit CPUID maxval) makes CPUID.0:EAX read 2;
   * bit 34 (XD bit disable) clears CPUID.80000001H:EDX[20]; bit 18 (ENABLE MONITOR FSM) is what sets
   * CPUID.01H:ECX[3] and lets MONITOR/MWAIT execute. Bit 18 powers on clear (docs/x86-internals.md
   * "IA32_MISC_ENABLE"): a guest only sees MONITOR after enabling it itself.
   */
  limitMaxLeaf = false;
  xdDisabled = false;
  monitorEnabled = false;

  /**
   * Enumerates the time-stamp counter's rate (SDM Vol. 2A CPUID leaf 0x15: TSC = crystal * EBX / EAX) so
   * software need not calibrate it. `tscHz` must be a whole multiple of `crystalHz`.
   */
  setTscFrequency(tscHz: number, crystalHz: number): void {
    if (!(Number.isSafeInteger(tscHz) && Number.isSafeInteger(crystalHz) && crystalHz > 0 && tscHz > 0))
      throw new RangeError("TSC and crystal rates must be positive integers");
    if (tscHz % crystalHz !== 0 || tscHz / crystalHz > 0xffffffff || crystalHz > 0xffffffff)
      throw new RangeError("the TSC rate must be a whole multiple of the crystal rate, both below 2^32");
    this.tscHz = tscHz;
    this.crystalHz = crystalHz;
  }

  private get maxBasicLeaf(): number {
    return this.tscHz > 0 ? 0x16 : 0xd;
  }

  has(f: Capability): boolean {
    return this.caps.has(f);
  }

  /** NX as software sees it: implemented and not disabled through IA32_MISC_ENABLE (EFER.NXE depends on it). */
  nxOffered(): boolean {
    return this.caps.has("NX") && !this.xdDisabled;
  }

  /** MONITOR/MWAIT as software sees them: implemented and enabled through IA32_MISC_ENABLE[18]. */
  monitorOffered(): boolean {
    return this.caps.has("MONITOR") && this.monitorEnabled;
  }

  /** Power-on state of the IA32_MISC_ENABLE controls above. */
  resetControls(): void {
    this.limitMaxLeaf = false;
    this.xdDisabled = false;
    this.monitorEnabled = false;
  }

  /** Advertises a capability (for modules that implement more instructions, e.g. SSE). */
  enable(f: Capability): void {
    this.caps.add(f);
  }

  disable(f: Capability): void {
    this.caps.delete(f);
  }

  private bits(leaf: number, reg: number): number {
    let v = 0;
    for (const c of this.caps) {
      const b = BITS[c];
      if (b[0] === leaf && b[1] === reg) v |= 1 << b[2];
    }
    return v | 0;
  }

  /** Computes the CPUID result for (leaf, subleaf) into `out`. `osxsave` mirrors CR4.OSXSAVE (unused: no XSAVE). */
  query(leaf: number, subleaf: number): Int32Array {
    const o = this.out;
    o.fill(0);
    leaf >>>= 0;
    const max = this.maxBasicLeaf;
    if (leaf > max && leaf < 0x80000000) leaf = max; // Intel: out-of-range basic leaves return the highest leaf
    if (leaf > 0x80000008) leaf = max;
    switch (leaf) {
      case 0:
        o[0] = this.limitMaxLeaf ? 2 : max;
        o[1] = ascii4(VENDOR, 0);
        o[3] = ascii4(VENDOR, 4);
        o[2] = ascii4(VENDOR, 8);
        break;
      case 1:
        // Family 6, model 0x3A (a generic Ivy Bridge-class signature), stepping 9.
        o[0] = 0x000306a9;
        o[1] = (this.apicId << 24) | (1 << 16) | (8 << 8); // CLFLUSH line size 8*8 = 64 bytes
        o[2] = this.bits(1, 2);
        if (!this.monitorEnabled) o[2] = o[2]! & ~(1 << BITS.MONITOR[2]);
        o[3] = this.bits(1, 3);
        break;
      case 5:
        // MONITOR/MWAIT leaf (SDM Vol. 2A Table 3-8): a 64-byte monitor line (the CLFLUSH line of leaf 1),
        // MWAIT extensions enumerated (ECX[0]) with interrupts as break events (ECX[1]), and no C-state
        // sub-states (EDX = 0): MWAIT enters no optimized state here, it retires at once
        // (monitor-mwait.ts). Reported whether or not IA32_MISC_ENABLE[18] has MONITOR enabled.
        if (this.caps.has("MONITOR")) {
          o[0] = 64;
          o[1] = 64;
          o[2] = 3;
        }
        break;
      case 7:
        if (subleaf === 0) {
          o[1] = this.bits(7, 1);
          o[2] = this.bits(7, 2);
          o[3] = this.bits(7, 3);
        }
        break;
      case 0xd:
        // XSAVE state enumeration (SDM Vol. 1 13.2): components x87|SSE, standard-form area of 576 bytes
        // (legacy region + header) for every XCR0 value we allow; sub-leaf 1 reports no XSAVEOPT/C/S.
        if (this.caps.has("XSAVE") && subleaf === 0) {
          o[0] = 3;
          o[1] = 576;
          o[2] = 576;
        }
        break;
      case 0x15:
        // Ratio TSC/crystal as EBX/EAX, crystal in Hz in ECX.
        if (this.tscHz > 0) {
          o[0] = 1;
          o[1] = this.tscHz / this.crystalHz;
          o[2] = this.crystalHz;
        }
        break;
      case 0x16:
        // Base and maximum frequency (MHz), bus (reference) frequency (MHz): the TSC and crystal rates.
        if (this.tscHz > 0) {
          o[0] = Math.floor(this.tscHz / 1e6) & 0xffff;
          o[1] = Math.floor(this.tscHz / 1e6) & 0xffff;
          o[2] = Math.floor(this.crystalHz / 1e6) & 0xffff;
        }
        break;
      case 0x80000000:
        o[0] = 0x80000008 | 0;
        break;
      case 0x80000001:
        o[2] = this.bits(0x80000001, 2);
        o[3] = this.bits(0x80000001, 3);
        if (this.xdDisabled) o[3] = o[3]! & ~(1 << BITS.NX[2]);
        break;
      case 0x80000002:
      case 0x80000003:
      case 0x80000004: {
        const at = (leaf - 0x80000002) * 16;
        const brand = BRAND.padEnd(48, "\0");
        for (let r = 0; r < 4; r++) o[r] = ascii4(brand, at + r * 4);
        break;
      }
      case 0x80000007:
        o[3] = this.bits(0x80000007, 3);
        break;
      case 0x80000008:
        o[0] = 0x3028; // 40 physical address bits, 48 linear
        break;
      default:
        // Leaves 2..4, 6, 8..0xC and 0x80000005/6: nothing to describe (no cache/topology/power enumeration).
        break;
    }
    return o;
  }
}
