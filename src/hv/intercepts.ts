// Owns: a partition's intercept table, the one path by which guest accesses the hypervisor does not answer
// itself reach the root's device layer (the worker): the port, MMIO and MSR ranges the root registered, each
// with its handler, and the shared I/O bitmap every VP's processor consults (a port exits to the table only if
// a range claims it; others float, as unclaimed ISA ports do).
// Must not: answer any access itself (the handlers do; an address nobody claimed reads all ones and drops
// writes, an MSR nobody claimed is #GP), let two ranges of one kind overlap, or take hypervisor-owned MSRs
// (the synthetic range and the local APIC's are the partition's and its VPs').
// Spec: Intel SDM Vol. 3C 25.6.4 (I/O bitmaps), 25.6.9 (MSR bitmaps): the VMCS-style selection of what
// exits; docs/architecture.md "The seam"; docs/decisions/0004 (ports and MMIO are synchronous intercepts).

import type { MsrResult } from "./msr-result.js";

/** A root-side handler of port I/O; `size` is 1, 2 or 4. Must not throw. */
export interface PortHandler {
  read(vpIndex: number, port: number, size: number): number;
  write(vpIndex: number, port: number, size: number, value: number): void;
}

/**
 * A root-side handler of guest-physical accesses outside RAM; `size` is 1, 2, 4 or 8. An 8-byte read returns
 * its low 32 bits and leaves the high 32 bits in `hi` (as the processor's MmioIntercept). Must not throw.
 */
export interface MmioHandler {
  read(vpIndex: number, gpa: number, size: number): number;
  hi: number;
  write(vpIndex: number, gpa: number, size: number, lo: number, hi: number): void;
}

/** A root-side handler of MSRs; a refusal (`ok: false`) is #GP(0) for the guest. Must not throw. */
export interface MsrHandler {
  read(vpIndex: number, msr: number): MsrResult;
  write(vpIndex: number, msr: number, lo: number, hi: number): MsrResult;
}

export class InterceptError extends Error {
  override name = "InterceptError";
}

interface Range<H> {
  first: number;
  last: number;
  handler: H;
  name: string;
}

const PORT_COUNT = 0x10000;
/** MSRs the hypervisor answers itself (synthetic range; IA32_APIC_BASE, TSC_DEADLINE, x2APIC). */
const RESERVED_MSRS: Array<[number, number, string]> = [
  [0x40000000, 0x400000ff, "the hypervisor's synthetic MSRs"],
  [0x1b, 0x1b, "the local APIC (IA32_APIC_BASE)"],
  [0x6e0, 0x6e0, "the local APIC (IA32_TSC_DEADLINE)"],
  [0x800, 0x8ff, "the local APIC (x2APIC)"],
];

export class InterceptTable {
  /** Bit per port: set when a registered range claims it. Shared by every VP's ExitControls. */
  readonly ioBitmap = new Uint8Array(PORT_COUNT / 8);
  /** Index into `ports` + 1 per port, 0 when unclaimed. */
  private readonly portOwner = new Uint16Array(PORT_COUNT);
  private readonly ports: Array<Range<PortHandler>> = [];
  private readonly mmio: Array<Range<MmioHandler>> = [];
  private readonly msrs: Array<Range<MsrHandler>> = [];

  /** Ports [base, base + count) go to `handler`. */
  registerPorts(base: number, count: number, handler: PortHandler, name: string): void {
    if (
      !Number.isInteger(base) ||
      !Number.isInteger(count) ||
      count <= 0 ||
      base < 0 ||
      base + count > PORT_COUNT
    )
      throw new InterceptError(`${name}: port range 0x${base.toString(16)}+${count} is outside 0..0xffff`);
    for (let p = base; p < base + count; p++) {
      const o = this.portOwner[p]!;
      if (o !== 0)
        throw new InterceptError(
          `${name}: port 0x${p.toString(16)} already goes to ${this.ports[o - 1]!.name}`,
        );
    }
    this.ports.push({ first: base, last: base + count - 1, handler, name });
    this.portOwner.fill(this.ports.length, base, base + count);
    for (let p = base; p < base + count; p++)
      this.ioBitmap[p >>> 3] = this.ioBitmap[p >>> 3]! | (1 << (p & 7));
  }

  /** Guest-physical [base, base + length) outside RAM goes to `handler` (the VP's local APIC page wins). */
  registerMmio(base: number, length: number, handler: MmioHandler, name: string): void {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(length) || base < 0 || length <= 0)
      throw new InterceptError(
        `${name}: MMIO range 0x${base.toString(16)}+0x${length.toString(16)} is invalid`,
      );
    this.add(this.mmio, base, base + length - 1, handler, name, "MMIO range");
  }

  /** MSRs first..last go to `handler` (never the hypervisor's own). */
  registerMsrs(first: number, last: number, handler: MsrHandler, name: string): void {
    if (!Number.isInteger(first) || !Number.isInteger(last) || first < 0 || last > 0xffffffff || last < first)
      throw new InterceptError(
        `${name}: MSR range 0x${first.toString(16)}-0x${last.toString(16)} is invalid`,
      );
    for (const [a, b, owner] of RESERVED_MSRS) {
      if (first <= b && a <= last)
        throw new InterceptError(`${name}: MSR 0x${Math.max(a, first).toString(16)} belongs to ${owner}`);
    }
    this.add(this.msrs, first, last, handler, name, "MSR range");
  }

  private add<H>(
    list: Array<Range<H>>,
    first: number,
    last: number,
    handler: H,
    name: string,
    what: string,
  ): void {
    for (const r of list) {
      if (first <= r.last && r.first <= last) throw new InterceptError(`${name}: ${what} overlaps ${r.name}`);
    }
    list.push({ first, last, handler, name });
  }

  portHandler(port: number): PortHandler | null {
    const o = this.portOwner[port & 0xffff]!;
    return o === 0 ? null : this.ports[o - 1]!.handler;
  }

  mmioHandler(gpa: number): MmioHandler | null {
    for (const r of this.mmio) if (gpa >= r.first && gpa <= r.last) return r.handler;
    return null;
  }

  msrHandler(msr: number): MsrHandler | null {
    for (const r of this.msrs) if (msr >= r.first && msr <= r.last) return r.handler;
    return null;
  }

  /** The registered ranges, for `inspect`. */
  describe(): string[] {
    const hex = (v: number): string => `0x${v.toString(16)}`;
    return [
      ...this.ports.map((r) => `ports ${hex(r.first)}-${hex(r.last)} ${r.name}`),
      ...this.mmio.map((r) => `MMIO ${hex(r.first)}-${hex(r.last)} ${r.name}`),
      ...this.msrs.map((r) => `MSRs ${hex(r.first)}-${hex(r.last)} ${r.name}`),
    ];
  }
}
