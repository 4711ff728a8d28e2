// Owns: the GPADLs (guest physical address descriptor lists) of one VMBus connection: assembling a GPADL from
// GPADL_HEADER and GPADL_BODY messages, validating it (range layout, PFN counts, every PFN RAM of this
// partition), the page list it becomes, and its life: ready, in use as an open channel's ring, torn down.
// Must not: allocate more than the guest's messages declare and the limits allow (range_buflen is a u16, the
// number of GPADLs and of pages held per connection are bounded), keep a page list usable after teardown
// (it is detached), or throw on guest input (every refusal is a `GpadlOutcome`).
// Spec: Linux 6.1 include/linux/hyperv.h (struct vmbus_channel_gpadl_header / _body, struct gpa_range),
// drivers/hv/channel.c (create_gpadl_header, __vmbus_establish_gpadl); checklist 6.2.

import type { GuestMemory } from "../memory/guest-memory.js";
import { GuestPageList, pagesSpanned, type PageRange } from "../memory/page-list.js";
import { PAGE_SIZE } from "../memory/guest-memory.js";

/** GPADLs one connection may hold at once (Linux uses one per ring plus a few device buffers per channel). */
export const MAX_GPADLS = 1024;
/**
 * Pages all GPADLs of one connection may describe together (1 GiB of guest memory; the host keeps about 16
 * bytes per page, so at most 4 MiB). A GPADL claims its pages when its header arrives.
 */
export const MAX_GPADL_PAGES_TOTAL = 262144;

export type GpadlState = "building" | "ready";

export interface Gpadl {
  readonly handle: number;
  readonly relid: number;
  readonly rangeCount: number;
  state: GpadlState;
  /** The range array as the guest sends it (u32 byte_count, u32 byte_offset, u64 pfn[]...), assembled. */
  readonly rangeBytes: Uint8Array;
  filled: number;
  /** Pages this GPADL counts against `MAX_GPADL_PAGES_TOTAL` (claimed from range_buflen at the header). */
  readonly pageBudget: number;
  ranges: PageRange[] | null;
  list: GuestPageList | null;
  /** The open channel whose rings live in this GPADL (teardown waits until that channel closes). */
  ringOf: number | null;
  /** The guest asked for teardown while the GPADL was a ring: answer GPADL_TORNDOWN when the channel closes. */
  teardownPending: boolean;
}

/** What a GPADL message led to. */
export type GpadlOutcome =
  /** Complete and valid: answer GPADL_CREATED with status 0. */
  | { kind: "created"; gpadl: Gpadl }
  /** Waiting for more GPADL_BODY messages. */
  | { kind: "pending" }
  /** Refused: answer GPADL_CREATED with a failure status (the handle is free again). */
  | { kind: "failed"; relid: number; reason: string }
  /** Not answerable (unknown handle, duplicate handle): drop the message. */
  | { kind: "dropped"; reason: string };

export class GpadlTable {
  private readonly memory: GuestMemory;
  private readonly gpadls = new Map<number, Gpadl>();
  private pagesHeld = 0;

  constructor(memory: GuestMemory) {
    this.memory = memory;
  }

  get size(): number {
    return this.gpadls.size;
  }

  get pages(): number {
    return this.pagesHeld;
  }

  get(handle: number): Gpadl | undefined {
    return this.gpadls.get(handle);
  }

  all(): IterableIterator<Gpadl> {
    return this.gpadls.values();
  }

  /** GPADL_HEADER: `first` holds the first bytes of the range array (the rest come in GPADL_BODY messages). */
  begin(
    handle: number,
    relid: number,
    rangeCount: number,
    rangeBufLen: number,
    first: Uint8Array,
  ): GpadlOutcome {
    if (this.gpadls.has(handle)) return { kind: "dropped", reason: "duplicate-gpadl" };
    if (this.gpadls.size >= MAX_GPADLS) return { kind: "failed", relid, reason: "too-many-gpadls" };
    // Each range needs at least its 8-byte header and one PFN; the buffer is whole 8-byte units.
    if (rangeCount === 0 || rangeBufLen % 8 !== 0 || rangeBufLen < rangeCount * 16) {
      return { kind: "failed", relid, reason: "bad-range-layout" };
    }
    const pageBudget = rangeBufLen / 8 - rangeCount;
    if (this.pagesHeld + pageBudget > MAX_GPADL_PAGES_TOTAL) {
      return { kind: "failed", relid, reason: "too-many-pages" };
    }
    if (first.length > rangeBufLen) return { kind: "failed", relid, reason: "bad-range-layout" };
    const gpadl: Gpadl = {
      handle,
      relid,
      rangeCount,
      state: "building",
      rangeBytes: new Uint8Array(rangeBufLen),
      filled: 0,
      pageBudget,
      ranges: null,
      list: null,
      ringOf: null,
      teardownPending: false,
    };
    gpadl.rangeBytes.set(first);
    gpadl.filled = first.length;
    this.gpadls.set(handle, gpadl);
    this.pagesHeld += pageBudget;
    return this.maybeComplete(gpadl);
  }

  /** GPADL_BODY: the next bytes of the range array of GPADL `handle`. */
  append(handle: number, data: Uint8Array): GpadlOutcome {
    const gpadl = this.gpadls.get(handle);
    if (gpadl === undefined || gpadl.state !== "building")
      return { kind: "dropped", reason: "unknown-gpadl" };
    if (gpadl.filled + data.length > gpadl.rangeBytes.length) {
      this.remove(gpadl);
      return { kind: "failed", relid: gpadl.relid, reason: "body-overflow" };
    }
    gpadl.rangeBytes.set(data, gpadl.filled);
    gpadl.filled += data.length;
    return this.maybeComplete(gpadl);
  }

  private maybeComplete(gpadl: Gpadl): GpadlOutcome {
    if (gpadl.filled < gpadl.rangeBytes.length) return { kind: "pending" };
    const ranges = parseRanges(gpadl.rangeBytes, gpadl.rangeCount);
    if (ranges === null) {
      this.remove(gpadl);
      return { kind: "failed", relid: gpadl.relid, reason: "bad-range-layout" };
    }
    const list = GuestPageList.build(this.memory, ranges);
    if (typeof list === "string") {
      this.remove(gpadl);
      return { kind: "failed", relid: gpadl.relid, reason: `pfn-${list}` };
    }
    gpadl.ranges = ranges;
    gpadl.list = list;
    gpadl.state = "ready";
    return { kind: "created", gpadl };
  }

  /** Forgets a GPADL and detaches its page list. */
  remove(gpadl: Gpadl): void {
    if (this.gpadls.get(gpadl.handle) !== gpadl) return;
    this.gpadls.delete(gpadl.handle);
    this.pagesHeld -= gpadl.pageBudget;
    gpadl.list?.detach();
  }

  /** Forgets every GPADL (UNLOAD, reconnect). */
  clear(): void {
    for (const g of [...this.gpadls.values()]) this.remove(g);
  }
}

/** The ranges of an assembled range array, or null when they do not exactly fill it. */
function parseRanges(bytes: Uint8Array, count: number): PageRange[] | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const ranges: PageRange[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 8 > bytes.length) return null;
    const length = view.getUint32(at, true);
    const offset = view.getUint32(at + 4, true);
    if (length === 0 || offset >= PAGE_SIZE) return null;
    const n = pagesSpanned(offset, length);
    at += 8;
    if (at + n * 8 > bytes.length) return null;
    const pfns: number[] = [];
    for (let p = 0; p < n; p++) {
      pfns.push(view.getUint32(at + p * 8 + 4, true) * 0x1_0000_0000 + view.getUint32(at + p * 8, true));
    }
    at += n * 8;
    ranges.push({ pfns, offset, length });
  }
  return at === bytes.length ? ranges : null;
}
