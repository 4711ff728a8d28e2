// Owns: one partition's guest-physical RAM (a SharedArrayBuffer so virtual processors can later run on
// worker threads), the guest-physical layout (RAM below the 32-bit MMIO hole and above 4 GiB), per-page
// access rights set by the hypervisor, and the code-page map that keeps decoded-instruction caches coherent.
// Also the processor-state slots: when RAM and the slots fit a 32-bit WebAssembly memory, the buffer is a
// shared WebAssembly.Memory holding RAM at offset 0 (so RAM offsets are wasm addresses) followed by
// STATE_SLOTS slots that processors claim for the state their translated code shares (docs/decisions/0005).
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

/**
 * Bytes of the fixed part of one processor-state slot, and how many slots follow RAM in a
 * WebAssembly-backed memory. Each slot continues with 2 bytes per RAM page (the processor's map from code
 * page to translation unit), so a slot's size depends on the RAM size (`slotBytes`).
 */
export const STATE_SLOT_BYTES = 0x14000;
export const STATE_SLOTS = 16;
const WASM_PAGE = 0x10000;
/** Largest 32-bit WebAssembly memory (65536 pages of 64 KiB), less one page of headroom. */
const WASM32_MAX_BYTES = 0x1_0000_0000 - WASM_PAGE;

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
  /**
   * The WebAssembly memory whose buffer is `buffer`, or null when RAM plus the state slots do not fit a
   * 32-bit WebAssembly memory (or the caller asked for a plain buffer): processors then run interpreted.
   */
  readonly wasmMemory: WebAssembly.Memory | null;
  /** Byte offset of the first processor-state slot in `buffer` (RAM rounded up to 64 KiB). */
  readonly stateBase: number;
  /** Bytes per processor-state slot: STATE_SLOT_BYTES, then the page map (2 bytes per RAM page). */
  readonly slotBytes: number;
  private slotsClaimed = 0;

  constructor(sizeBytes: number, mmioHoleStart = DEFAULT_MMIO_HOLE_START, options: { wasm?: boolean } = {}) {
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
    this.stateBase = Math.ceil(sizeBytes / WASM_PAGE) * WASM_PAGE;
    this.slotBytes = STATE_SLOT_BYTES + Math.ceil(((sizeBytes / PAGE_SIZE) * 2) / PAGE_SIZE) * PAGE_SIZE;
    const total = Math.ceil((this.stateBase + STATE_SLOTS * this.slotBytes) / WASM_PAGE) * WASM_PAGE;
    let wasm: WebAssembly.Memory | null = null;
    if (options.wasm !== false && total <= WASM32_MAX_BYTES && typeof WebAssembly === "object") {
      try {
        const pages = total / WASM_PAGE;
        wasm = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
      } catch {
        // No address space for another memory: this guest runs on the interpreter alone.
        wasm = null;
      }
    }
    this.wasmMemory = wasm;
    this.buffer = wasm !== null ? (wasm.buffer as SharedArrayBuffer) : new SharedArrayBuffer(sizeBytes);
    // Views of RAM end at RAM's end: the state slots behind it are reachable only through claimSlot.
    this.bytes = new Uint8Array(this.buffer, 0, sizeBytes);
    this.lowTop = Math.min(sizeBytes, mmioHoleStart);
    const pages = sizeBytes >>> PAGE_SHIFT;
    this.rights = new Uint8Array(pages).fill(PAGE_ALL);
    this.codePages = new Uint8Array(pages);
  }

  /**
   * Claims a processor-state slot: its byte offset in `buffer`, or -1 when the memory is not
   * WebAssembly-backed or every slot is taken (that processor keeps its state in its own arrays).
   */
  claimSlot(): number {
    if (this.wasmMemory === null || this.slotsClaimed >= STATE_SLOTS) return -1;
    return this.stateBase + this.slotBytes * this.slotsClaimed++;
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
