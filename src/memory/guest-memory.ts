// Owns: one partition's guest-physical RAM (a SharedArrayBuffer so virtual processors can later run on
// worker threads), the guest-physical layout (RAM below the 32-bit MMIO hole and above 4 GiB), per-page
// access rights set by the hypervisor, and the code-page map that keeps decoded-instruction caches coherent.
// Must not: know about devices, page tables or any other partition. There is deliberately no way to map
// one GuestMemory into another (ARCHITECTURE.md, security model).
// Spec: the guest-physical address space of the Hyper-V TLFS ("Partitions", GPA space); the PC layout
// (RAM, then an MMIO hole below 4 GiB for the local/I/O APIC and devices) of the Intel SDM Vol. 3A 10.4.

/** Page-level access rights a partition's owner grants on a guest-physical page (bits combine). */
export const PAGE_READ = 1;
export const PAGE_WRITE = 2;
export const PAGE_EXECUTE = 4;
export const PAGE_ALL = PAGE_READ | PAGE_WRITE | PAGE_EXECUTE;

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
const FOUR_GIB = 0x1_0000_0000;

/** Start of the MMIO hole below 4 GiB; RAM beyond this much is placed above 4 GiB. */
export const DEFAULT_MMIO_HOLE_START = 0xc000_0000;

export class GuestMemoryError extends Error {
  override name = "GuestMemoryError";
}

export class GuestMemory {
  readonly buffer: SharedArrayBuffer;
  /** All RAM, densely: offset = gpa below the hole, gpa - 4 GiB + lowTop above it. */
  readonly bytes: Uint8Array;
  readonly size: number;
  /** First guest-physical address of the MMIO hole (equal to the low RAM size). */
  readonly lowTop: number;
  /** Per-RAM-page rights (PAGE_READ | PAGE_WRITE | PAGE_EXECUTE); indexed by RAM offset >> 12. */
  readonly rights: Uint8Array;
  /** Nonzero where some decoded-instruction cache holds code from the RAM page (offset >> 12). */
  readonly codePages: Uint8Array;
  /** Called when a page marked in `codePages` is written through this object; caches drop that page. */
  onCodeWrite: ((ramPage: number) => void) | null = null;

  constructor(sizeBytes: number, mmioHoleStart = DEFAULT_MMIO_HOLE_START) {
    if (!Number.isInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % PAGE_SIZE !== 0) {
      throw new GuestMemoryError(`guest memory size must be a positive multiple of 4 KiB, got ${sizeBytes}`);
    }
    if (sizeBytes > 64 * 1024 * 1024 * 1024) {
      throw new GuestMemoryError(`guest memory size ${sizeBytes} exceeds the 64 GiB limit`);
    }
    if (mmioHoleStart % PAGE_SIZE !== 0 || mmioHoleStart > FOUR_GIB) {
      throw new GuestMemoryError(`MMIO hole start must be page aligned and below 4 GiB`);
    }
    this.size = sizeBytes;
    this.buffer = new SharedArrayBuffer(sizeBytes);
    this.bytes = new Uint8Array(this.buffer);
    this.lowTop = Math.min(sizeBytes, mmioHoleStart);
    const pages = sizeBytes >>> PAGE_SHIFT;
    this.rights = new Uint8Array(pages).fill(PAGE_ALL);
    this.codePages = new Uint8Array(pages);
  }

  /** Offset into `bytes` of a guest-physical address, or -1 when the address is not RAM. */
  offsetOf(gpa: number): number {
    if (gpa < 0) return -1;
    if (gpa < this.lowTop) return gpa;
    if (gpa >= FOUR_GIB) {
      const off = gpa - FOUR_GIB + this.lowTop;
      return off < this.size ? off : -1;
    }
    return -1;
  }

  /** Whether `[gpa, gpa + length)` is RAM in one contiguous piece. */
  isRam(gpa: number, length: number): boolean {
    const off = this.offsetOf(gpa);
    return off >= 0 && length >= 0 && this.offsetOf(gpa + length - 1) === off + length - 1;
  }

  /** The guest-physical RAM ranges, for firmware tables (e820) and inspection. */
  ramRanges(): Array<{ base: number; length: number }> {
    const out = [{ base: 0, length: this.lowTop }];
    if (this.size > this.lowTop) out.push({ base: FOUR_GIB, length: this.size - this.lowTop });
    return out;
  }

  /**
   * Root-side (parent) read of guest RAM for device I/O. Throws GuestMemoryError when the range is not RAM,
   * so a hostile guest-supplied address can never reach host memory outside this partition.
   */
  read(gpa: number, dst: Uint8Array): void {
    const off = this.checkedOffset(gpa, dst.length);
    dst.set(this.bytes.subarray(off, off + dst.length));
  }

  /** Root-side write of guest RAM for device I/O (DMA); keeps instruction caches coherent. */
  write(gpa: number, src: Uint8Array): void {
    const off = this.checkedOffset(gpa, src.length);
    this.bytes.set(src, off);
    this.noteWrite(off, src.length);
  }

  /** Tells code caches that RAM bytes [offset, offset + length) changed. */
  noteWrite(offset: number, length: number): void {
    if (length <= 0) return;
    const last = (offset + length - 1) >>> PAGE_SHIFT;
    for (let p = offset >>> PAGE_SHIFT; p <= last; p++) {
      if (this.codePages[p] !== 0) {
        this.codePages[p] = 0;
        this.onCodeWrite?.(p);
      }
    }
  }

  private checkedOffset(gpa: number, length: number): number {
    if (!Number.isSafeInteger(gpa) || !this.isRam(gpa, Math.max(length, 1))) {
      throw new GuestMemoryError(
        `guest-physical range 0x${gpa.toString(16)}+${length} is not RAM of this partition`,
      );
    }
    return this.offsetOf(gpa);
  }
}
