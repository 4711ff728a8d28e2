// Owns: guest page lists, the scatter-gather view of guest RAM that a device is handed by its guest (a GPADL,
// a GPA-direct range of a VMBus packet): validation of every page frame number against this partition's RAM
// when the list is built, and byte-exact copies between the list and host buffers afterwards.
// Must not: reach memory outside the partition's RAM (every PFN is checked once, when the list is built, and
// RAM never shrinks), keep a reference to guest-controlled arrays (the PFNs are copied), throw on guest input
// (a bad list is a `PageListProblem`, an access outside the list returns false), or know any device.
// Spec: the GPA range of the Hyper-V VMBus protocol (`{byte_count, byte_offset, pfn[]}`, Linux
// include/linux/hyperv.h `struct gpa_range`; ../shared/research/hyperv-linux-guest-checklist.md 6.2, 6.4):
// a range covers `byte_count` bytes starting `byte_offset` bytes into its first page, over
// ceil((byte_offset + byte_count) / 4096) pages.

import { type GuestMemory, PAGE_SIZE } from "./guest-memory.js";

/** One guest range as a guest describes it: `length` bytes from `offset` into the first of `pfns`. */
export interface PageRange {
  readonly pfns: readonly number[];
  readonly offset: number;
  readonly length: number;
}

/** Why a list of ranges was refused. */
export type PageListProblem =
  /** No range, or a range of zero bytes. */
  | "empty"
  /** A byte offset outside the first page. */
  | "offset"
  /** The PFN count is not ceil((offset + length) / 4096). */
  | "count"
  /** A PFN that is not a whole page of this partition's RAM (outside RAM, in the MMIO hole, beyond 2^53). */
  | "not-ram"
  /** More bytes than the caller's limit. */
  | "too-long";

/** The number of pages a range of `length` bytes starting `offset` bytes into its first page spans. */
export function pagesSpanned(offset: number, length: number): number {
  return Math.ceil((offset + length) / PAGE_SIZE);
}

/**
 * A validated list of guest pages seen as one run of `length` bytes. Built by `GuestPageList.build`, which
 * checks every PFN; `read`/`write` then copy between the list and host buffers and return false for an access
 * that does not fit in the list. `detach()` withdraws it (e.g. the guest tore the GPADL down): every later
 * access fails.
 */
export class GuestPageList {
  private readonly memory: GuestMemory;
  /** Segment i covers list bytes [starts[i], starts[i] + lengths[i]) at RAM offset ram[i]. */
  private readonly starts: Float64Array;
  private readonly lengths: Float64Array;
  private readonly ram: Float64Array;
  private total: number;

  private constructor(memory: GuestMemory, starts: number[], lengths: number[], ram: number[]) {
    this.memory = memory;
    this.starts = Float64Array.from(starts);
    this.lengths = Float64Array.from(lengths);
    this.ram = Float64Array.from(ram);
    this.total = starts.length === 0 ? 0 : starts[starts.length - 1]! + lengths[lengths.length - 1]!;
  }

  /**
   * Validates `ranges` against `memory` and returns the list, or why it is refused. `maxBytes` bounds the
   * total length (default: unbounded beyond what the ranges' own PFN arrays allow).
   */
  static build(
    memory: GuestMemory,
    ranges: readonly PageRange[],
    maxBytes = Number.MAX_SAFE_INTEGER,
  ): GuestPageList | PageListProblem {
    if (ranges.length === 0) return "empty";
    const starts: number[] = [];
    const lengths: number[] = [];
    const ram: number[] = [];
    let at = 0;
    for (const r of ranges) {
      if (!Number.isInteger(r.length) || r.length <= 0) return "empty";
      if (!Number.isInteger(r.offset) || r.offset < 0 || r.offset >= PAGE_SIZE) return "offset";
      if (r.pfns.length !== pagesSpanned(r.offset, r.length)) return "count";
      if (at + r.length > maxBytes) return "too-long";
      let skip = r.offset;
      let left = r.length;
      for (const pfn of r.pfns) {
        const gpa = pfn * PAGE_SIZE;
        if (!Number.isSafeInteger(gpa) || gpa < 0 || !memory.isRam(gpa, PAGE_SIZE)) return "not-ram";
        const n = Math.min(PAGE_SIZE - skip, left);
        const off = memory.offsetOf(gpa) + skip;
        const last = ram.length - 1;
        // Physically contiguous pages become one segment: fewer, longer copies.
        if (last >= 0 && ram[last]! + lengths[last]! === off && starts[last]! + lengths[last]! === at) {
          lengths[last] = lengths[last]! + n;
        } else {
          starts.push(at);
          lengths.push(n);
          ram.push(off);
        }
        at += n;
        left -= n;
        skip = 0;
      }
    }
    return new GuestPageList(memory, starts, lengths, ram);
  }

  /** Bytes in the list (0 once detached). */
  get length(): number {
    return this.total;
  }

  /** Withdraws the list: every later access fails and `length` is 0. */
  detach(): void {
    this.total = 0;
  }

  /** Copies list bytes [at, at + dst.length) into `dst`; false (and nothing copied) if they are not all in the list. */
  read(at: number, dst: Uint8Array): boolean {
    if (!this.fits(at, dst.length)) return false;
    const bytes = this.memory.bytes;
    let done = 0;
    for (let i = this.segmentAt(at); done < dst.length; i++) {
      const skip = at + done - this.starts[i]!;
      const n = Math.min(this.lengths[i]! - skip, dst.length - done);
      const from = this.ram[i]! + skip;
      dst.set(bytes.subarray(from, from + n), done);
      done += n;
    }
    return true;
  }

  /** Copies `src` into list bytes [at, at + src.length); false (and nothing written) if they are not all in the list. */
  write(at: number, src: Uint8Array): boolean {
    if (!this.fits(at, src.length)) return false;
    const bytes = this.memory.bytes;
    let done = 0;
    for (let i = this.segmentAt(at); done < src.length; i++) {
      const skip = at + done - this.starts[i]!;
      const n = Math.min(this.lengths[i]! - skip, src.length - done);
      const to = this.ram[i]! + skip;
      bytes.set(src.subarray(done, done + n), to);
      this.memory.noteWrite(to, n);
      done += n;
    }
    return true;
  }

  /** Fills list bytes [at, at + length) with zeros; false if they are not all in the list. */
  zero(at: number, length: number): boolean {
    if (!this.fits(at, length)) return false;
    let done = 0;
    for (let i = this.segmentAt(at); done < length; i++) {
      const skip = at + done - this.starts[i]!;
      const n = Math.min(this.lengths[i]! - skip, length - done);
      const to = this.ram[i]! + skip;
      this.memory.bytes.fill(0, to, to + n);
      this.memory.noteWrite(to, n);
      done += n;
    }
    return true;
  }

  /** The little-endian u32 at list byte `at` (4-byte aligned accesses never straddle a page), or -1. */
  readU32(at: number): number {
    if (!this.fits(at, 4)) return -1;
    const i = this.segmentAt(at);
    const skip = at - this.starts[i]!;
    if (skip + 4 > this.lengths[i]!) {
      const tmp = new Uint8Array(4);
      this.read(at, tmp);
      return (tmp[0]! | (tmp[1]! << 8) | (tmp[2]! << 16) | (tmp[3]! << 24)) >>> 0;
    }
    const o = this.ram[i]! + skip;
    const b = this.memory.bytes;
    return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
  }

  /** Writes the little-endian u32 `value` at list byte `at`; false if it is not in the list. */
  writeU32(at: number, value: number): boolean {
    const tmp = new Uint8Array(4);
    tmp[0] = value & 0xff;
    tmp[1] = (value >>> 8) & 0xff;
    tmp[2] = (value >>> 16) & 0xff;
    tmp[3] = (value >>> 24) & 0xff;
    return this.write(at, tmp);
  }

  /** How many guest pages the list touches (for inspection). */
  pageCount(): number {
    let n = 0;
    for (let i = 0; i < this.lengths.length; i++) {
      const first = Math.floor(this.ram[i]! / PAGE_SIZE);
      const last = Math.floor((this.ram[i]! + this.lengths[i]! - 1) / PAGE_SIZE);
      n += last - first + 1;
    }
    return n;
  }

  private fits(at: number, length: number): boolean {
    return Number.isInteger(at) && at >= 0 && length >= 0 && at + length <= this.total;
  }

  /** The segment holding list byte `at` (binary search over segment starts). */
  private segmentAt(at: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.starts[mid]! <= at) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
