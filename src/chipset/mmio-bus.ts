// Owns: the motherboard's memory-mapped I/O routing: which device answers which guest-physical range, and
// what an unclaimed address does (reads float to all ones, writes are dropped).
// Must not: interpret any device's registers, or let two devices claim overlapping ranges.
// Spec: the PC physical address map (Intel SDM Vol. 3A 10.4.1 for the local APIC page; 82093AA I/O APIC
// datasheet 3.0 for its default 0xFEC00000 window). Same shape as the port bus (port-bus.ts).

/**
 * A memory-mapped device; `offset` is relative to the range's base, `size` is 1, 2 or 4. The bus splits an
 * 8-byte access into two 4-byte accesses, low half at `offset` then high half at `offset + 4`, which is how
 * a 32-bit register file sees a 64-bit access on the PC's front-side bus.
 */
export interface MmioDevice {
  readMmio(offset: number, size: number): number;
  writeMmio(offset: number, size: number, value: number): void;
}

export class MmioBusError extends Error {
  override name = "MmioBusError";
}

interface Range {
  base: number;
  length: number;
  device: MmioDevice;
  name: string;
}

function allOnes(size: number): number {
  return size >= 4 ? 0xffffffff : (1 << (size * 8)) - 1;
}

/** A 64-bit value as (lo, hi), reused by `readQword` so the hot path does not allocate. */
export interface QwordValue {
  lo: number;
  hi: number;
}

export class MmioBus {
  private readonly mapped: Range[] = [];
  private readonly qword: QwordValue = { lo: 0, hi: 0 };

  map(base: number, length: number, device: MmioDevice, name: string): void {
    if (
      !Number.isSafeInteger(base) ||
      !Number.isSafeInteger(length) ||
      base < 0 ||
      length <= 0 ||
      base + length > Number.MAX_SAFE_INTEGER
    ) {
      throw new MmioBusError(`${name}: range 0x${base.toString(16)}+0x${length.toString(16)} is invalid`);
    }
    for (const r of this.mapped) {
      if (base < r.base + r.length && r.base < base + length) {
        throw new MmioBusError(`${name}: range 0x${base.toString(16)} overlaps ${r.name}`);
      }
    }
    this.mapped.push({ base, length, device, name });
  }

  private find(gpa: number): Range | undefined {
    for (const r of this.mapped) if (gpa >= r.base && gpa < r.base + r.length) return r;
    return undefined;
  }

  /** Whether some device claims `gpa` (the run loop asks before treating an MMIO exit as a bad access). */
  claims(gpa: number): boolean {
    return this.find(gpa) !== undefined;
  }

  nameAt(gpa: number): string | undefined {
    return this.find(gpa)?.name;
  }

  /** A 1-, 2- or 4-byte read. */
  read(gpa: number, size: number): number {
    const r = this.find(gpa);
    if (!r) return allOnes(size);
    return r.device.readMmio(gpa - r.base, size) & allOnes(size);
  }

  /** An 8-byte read as two 4-byte device reads; the returned object is reused by the next call. */
  readQword(gpa: number): QwordValue {
    this.qword.lo = this.read(gpa, 4) >>> 0;
    this.qword.hi = this.read(gpa + 4, 4) >>> 0;
    return this.qword;
  }

  /** A 1-, 2-, 4- or 8-byte write; `hi` is the upper half of an 8-byte write. */
  write(gpa: number, size: number, lo: number, hi = 0): void {
    if (size === 8) {
      this.write(gpa, 4, lo);
      this.write(gpa + 4, 4, hi);
      return;
    }
    const r = this.find(gpa);
    if (!r) return;
    r.device.writeMmio(gpa - r.base, size, (lo & allOnes(size)) >>> 0);
  }

  /** Every mapped range, in mapping order (the worker registers them with the partition as intercepts). */
  ranges(): Array<{ base: number; length: number; name: string }> {
    return this.mapped.map((r) => ({ base: r.base, length: r.length, name: r.name }));
  }

  describe(): string[] {
    return this.mapped.map(
      (r) => `0x${r.base.toString(16)}-0x${(r.base + r.length - 1).toString(16)} ${r.name}`,
    );
  }
}
