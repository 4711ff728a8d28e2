// Owns: one partition's guest-physical RAM (a SharedArrayBuffer so virtual processors can later run on
// worker threads), the guest-physical layout (RAM below the 32-bit MMIO hole and above 4 GiB), the views
// through which RAM of any size is reached (one DataView; byte and 32-bit views per 4 GiB window), per-page
// access rights set by the hypervisor, the code-page map that keeps decoded-instruction caches coherent,
// and the record of pages that may have been written (so a reset clears RAM without committing the rest).
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

/**
 * Largest guest RAM. Per-page maps cost one byte per 4 KiB page each (16 MiB at this size), and the
 * processor's physical-address width (40 bits, cpuid.ts) is far above it.
 */
export const MAX_GUEST_MEMORY = 64 * 1024 ** 3;

/**
 * RAM is reached through typed-array windows of this many bytes. The runtime refuses a typed array of more
 * than 2^32 elements (Node 20: no Uint8Array over more than 4 GiB), so a large guest needs several; 1 GiB
 * keeps every offset within a window below 2^30, a small integer for the engine, so the decoder's
 * positions never become boxed doubles whatever the guest size (docs/decisions/0002). Windows start at
 * multiples of the size: no page and no aligned access spans two. A DataView has no such limit and covers
 * all of RAM.
 */
export const RAM_WINDOW_SHIFT = 30;
export const RAM_WINDOW_SIZE = 2 ** RAM_WINDOW_SHIFT;
/** A RAM page's window is `byteWindows[ramPage >> WINDOW_PAGE_SHIFT]`, at `(ramPage & WINDOW_PAGE_MASK) << PAGE_SHIFT`. */
export const WINDOW_PAGE_SHIFT = RAM_WINDOW_SHIFT - PAGE_SHIFT;
export const WINDOW_PAGE_MASK = (1 << WINDOW_PAGE_SHIFT) - 1;

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
/**
 * Largest 32-bit WebAssembly memory (65536 pages of 64 KiB), less one page of headroom. RAM plus the slots
 * must fit below it, so guests of more than about 3.9 GiB run on the interpreter alone (docs/decisions/0005).
 */
const WASM32_MAX_BYTES = 0x1_0000_0000 - WASM_PAGE;

/**
 * RAM page number of a RAM offset. Offsets pass 2^32, so no 32-bit shift (`>>>` wraps there); the page
 * number itself stays below 2^24 (MAX_GUEST_MEMORY), so it is exact as an int32, which keeps the
 * processor's page fields small integers.
 */
export function ramPageOf(offset: number): number {
  return (offset / PAGE_SIZE) | 0;
}

export class GuestMemoryError extends Error {
  override name = "GuestMemoryError";
}

export class GuestMemory {
  readonly buffer: SharedArrayBuffer;
  /** All RAM, densely: offset = gpa below the hole, gpa - 4 GiB + lowTop above it. Any size. */
  readonly view: DataView;
  /** Byte views of successive RAM_WINDOW_SIZE pieces of RAM. */
  readonly byteWindows: readonly Uint8Array[];
  /** 32-bit views of the same windows, for atomic read-modify-writes (page-table A/D bits). */
  readonly wordWindows: readonly Int32Array[];
  readonly size: number;
  /** First guest-physical address of the MMIO hole (equal to the low RAM size). */
  readonly lowTop: number;
  /** Per-RAM-page rights (PAGE_READ | PAGE_WRITE | PAGE_EXECUTE); indexed by ramPageOf(offset). */
  readonly rights: Uint8Array;
  /** Nonzero where some decoded-instruction cache holds code from the RAM page (ramPageOf(offset)). */
  readonly codePages: Uint8Array;
  /**
   * Nonzero for RAM pages that may hold nonzero bytes: set by `noteWrite` (every root-side and slow-path
   * write) and by the processor when it maps a page for writing (`noteWritable`); never cleared, so a
   * write through a mapping made before a `clear()` is still covered. `clear()` zeroes only these pages.
   */
  readonly writtenPages: Uint8Array;
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
  private whole: Uint8Array | null = null;

  constructor(sizeBytes: number, mmioHoleStart = DEFAULT_MMIO_HOLE_START, options: { wasm?: boolean } = {}) {
    if (!Number.isInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % PAGE_SIZE !== 0) {
      throw new GuestMemoryError(`guest memory size must be a positive multiple of 4 KiB, got ${sizeBytes}`);
    }
    if (sizeBytes > MAX_GUEST_MEMORY) {
      throw new GuestMemoryError(
        `guest memory size ${sizeBytes} exceeds the ${MAX_GUEST_MEMORY / 1024 ** 3} GiB limit`,
      );
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
    try {
      // The operating system commits pages only when they are first written (the buffer is zero-filled
      // lazily), so a large guest costs address space up front, not memory.
      this.buffer = wasm !== null ? (wasm.buffer as SharedArrayBuffer) : new SharedArrayBuffer(sizeBytes);
    } catch (e) {
      throw new GuestMemoryError(
        `the host refused to reserve ${sizeBytes / 1024 ** 2} MiB of address space for guest RAM ` +
          `(${(e as Error).message}): its memory, overcommit policy or address-space limit (ulimit -v) ` +
          `allows less`,
      );
    }
    // Views of RAM end at RAM's end: the state slots behind it are reachable only through claimSlot.
    this.view = new DataView(this.buffer, 0, sizeBytes);
    const bytes: Uint8Array[] = [];
    const words: Int32Array[] = [];
    for (let at = 0; at < sizeBytes; at += RAM_WINDOW_SIZE) {
      const length = Math.min(RAM_WINDOW_SIZE, sizeBytes - at);
      bytes.push(new Uint8Array(this.buffer, at, length));
      words.push(new Int32Array(this.buffer, at, length / 4));
    }
    this.byteWindows = bytes;
    this.wordWindows = words;
    this.lowTop = Math.min(sizeBytes, mmioHoleStart);
    const pages = sizeBytes / PAGE_SIZE;
    this.rights = new Uint8Array(pages).fill(PAGE_ALL);
    this.codePages = new Uint8Array(pages);
    this.writtenPages = new Uint8Array(pages);
  }

  /**
   * All RAM as one byte array, for guests of up to 4 GiB only (small test machines and tools): the
   * runtime has no larger typed array. Code that must work for any size uses `view`, `windowAt`, or the
   * root-side read/write/fill.
   */
  get bytes(): Uint8Array {
    if (this.size > FOUR_GIB) {
      throw new GuestMemoryError(
        `guest RAM of ${this.size} bytes has no single byte view (typed arrays end at 4 GiB)`,
      );
    }
    this.whole ??= new Uint8Array(this.buffer, 0, this.size);
    return this.whole;
  }

  /**
   * Claims a processor-state slot: its byte offset in `buffer`, or -1 when the memory is not
   * WebAssembly-backed or every slot is taken (that processor keeps its state in its own arrays).
   */
  claimSlot(): number {
    if (this.wasmMemory === null || this.slotsClaimed >= STATE_SLOTS) return -1;
    return this.stateBase + this.slotBytes * this.slotsClaimed++;
  }

  /** The byte window holding RAM offset `offset`; index it with `offset % RAM_WINDOW_SIZE`. */
  windowAt(offset: number): Uint8Array {
    return this.byteWindows[Math.floor(offset / RAM_WINDOW_SIZE)]!;
  }

  /** Atomically ORs `bits` into the 32-bit word at RAM offset `offset` (4-byte aligned). */
  atomicOr32(offset: number, bits: number): void {
    const w = Math.floor(offset / RAM_WINDOW_SIZE);
    Atomics.or(this.wordWindows[w]!, (offset - w * RAM_WINDOW_SIZE) / 4, bits);
  }

  /** Offset into RAM of a guest-physical address, or -1 when the address is not RAM. */
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
    let off = this.checkedOffset(gpa, dst.length);
    for (let done = 0; done < dst.length;) {
      const n = Math.min(dst.length - done, RAM_WINDOW_SIZE - (off % RAM_WINDOW_SIZE));
      const at = off % RAM_WINDOW_SIZE;
      dst.set(this.windowAt(off).subarray(at, at + n), done);
      done += n;
      off += n;
    }
  }

  /** Root-side write of guest RAM for device I/O (DMA); keeps instruction caches coherent. */
  write(gpa: number, src: Uint8Array): void {
    const start = this.checkedOffset(gpa, src.length);
    let off = start;
    for (let done = 0; done < src.length;) {
      const n = Math.min(src.length - done, RAM_WINDOW_SIZE - (off % RAM_WINDOW_SIZE));
      this.windowAt(off).set(src.subarray(done, done + n), off % RAM_WINDOW_SIZE);
      done += n;
      off += n;
    }
    this.noteWrite(start, src.length);
  }

  /** Root-side fill of guest RAM with one byte value (loaders, overlay pages); keeps caches coherent. */
  fill(gpa: number, length: number, value: number): void {
    const offset = this.checkedOffset(gpa, length);
    this.fillOffsets(offset, length, value);
    this.noteWrite(offset, length);
  }

  /**
   * Fills RAM offsets [offset, offset + length) with a byte value (the processor's string stores, on a
   * range it translated); the caller reports the write with `noteWrite`.
   */
  fillOffsets(offset: number, length: number, value: number): void {
    const end = offset + length;
    for (let off = offset; off < end;) {
      const n = Math.min(end - off, RAM_WINDOW_SIZE - (off % RAM_WINDOW_SIZE));
      const at = off % RAM_WINDOW_SIZE;
      this.windowAt(off).fill(value, at, at + n);
      off += n;
    }
  }

  /**
   * Copies RAM offsets [from, from + length) to `to` as memmove does (the processor's string moves, which
   * keep both ranges within one page each); the caller reports the write with `noteWrite`.
   */
  copyOffsets(to: number, from: number, length: number): void {
    const dw = Math.floor(to / RAM_WINDOW_SIZE);
    const sw = Math.floor(from / RAM_WINDOW_SIZE);
    const d = to - dw * RAM_WINDOW_SIZE;
    const s = from - sw * RAM_WINDOW_SIZE;
    if (d + length > RAM_WINDOW_SIZE || s + length > RAM_WINDOW_SIZE) {
      throw new GuestMemoryError(`copy of ${length} bytes crosses a ${RAM_WINDOW_SIZE}-byte RAM window`);
    }
    if (dw === sw) this.byteWindows[dw]!.copyWithin(d, s, s + length);
    else this.byteWindows[dw]!.set(this.byteWindows[sw]!.subarray(s, s + length), d);
  }

  /** Records a processor mapping of a RAM page for writing (its writes then bypass `noteWrite`). */
  noteWritable(ramPage: number): void {
    this.writtenPages[ramPage] = 1;
  }

  /** Tells code caches that RAM bytes [offset, offset + length) changed. */
  noteWrite(offset: number, length: number): void {
    if (length <= 0) return;
    const last = ramPageOf(offset + length - 1);
    for (let p = ramPageOf(offset); p <= last; p++) {
      this.writtenPages[p] = 1;
      if (this.codePages[p] !== 0) {
        this.codePages[p] = 0;
        this.onCodeWrite?.(p);
      }
    }
  }

  /**
   * Zeroes all RAM (platform reset) without committing host memory for pages never written: only pages
   * in `writtenPages` are touched, and of those only the ones not already zero.
   */
  clear(): void {
    const pages = this.writtenPages;
    for (let p = 0; p < pages.length; p++) {
      if (pages[p] === 0) continue;
      const off = p * PAGE_SIZE;
      const w = Math.floor(off / RAM_WINDOW_SIZE);
      const words = this.wordWindows[w]!;
      const first = (off - w * RAM_WINDOW_SIZE) / 4;
      if (!wordsZero(words, first, first + PAGE_SIZE / 4)) words.fill(0, first, first + PAGE_SIZE / 4);
    }
    // Every decoded page goes, written or not: the caches start over as after a power-on.
    for (let p = 0; p < this.codePages.length; p++) {
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

function wordsZero(a: Int32Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (a[i] !== 0) return false;
  return true;
}
