// Owns: one channel's two ring buffers as Linux lays them out, seen from the host: the guest-to-host ring the
// host reads (packets copied out whole before anything in them is used, the read index advanced, the guest
// signalled when its pending_send_sz wait is satisfied) and the host-to-guest ring the host writes (free-space
// rule, wrap-around, 8-byte trailer, write index published after the data, pending_send_sz when full, the
// guest signalled on the empty-to-non-empty transition unless it masked interrupts).
// Must not: trust the index the host owns from guest memory (the host keeps its own copy and only publishes
// it), read a guest-owned field twice for one decision, reach memory outside the ring's validated page list,
// throw or loop on hostile indices (a bad index marks the ring broken: `fault`), or interpret packets.
// Spec: Linux 6.1 include/linux/hyperv.h (struct hv_ring_buffer, hv_get_bytes_to_read/write),
// drivers/hv/ring_buffer.c (hv_ringbuffer_write: avail > total, trailer; hv_pkt_iter_close: pending_send_sz;
// hv_signal_on_write); ../shared/research/hyperv-linux-guest-checklist.md 6.3.

import type { GuestPageList } from "../memory/page-list.js";
import {
  DESCRIPTOR_SIZE,
  RING_FEATURE_BITS,
  RING_FEATURE_PENDING_SEND_SZ,
  RING_HEADER_SIZE,
  RING_INTERRUPT_MASK,
  RING_PENDING_SEND_SZ,
  RING_READ_INDEX,
  RING_TRAILER_SIZE,
  RING_WRITE_INDEX,
} from "./protocol.js";

/** Why a ring stopped: the guest wrote an index or a packet header no writer could have produced. */
export type RingFault = "bad-write-index" | "bad-read-index" | "bad-packet-length" | "bad-packet-offset";

/** A descriptor as read once from the ring: the fields every packet has. */
export interface RawPacket {
  /** Host copy of the whole packet (descriptor included), len8 * 8 bytes. */
  readonly bytes: Uint8Array;
  readonly type: number;
  /** Byte offset of the payload in `bytes` (offset8 * 8). */
  readonly dataOffset: number;
  readonly flags: number;
  readonly transLo: number;
  readonly transHi: number;
}

function validIndex(index: number, dataSize: number): boolean {
  return index >= 0 && index < dataSize && index % 8 === 0;
}

abstract class Ring {
  protected readonly pages: GuestPageList;
  readonly dataSize: number;
  fault: RingFault | null = null;

  constructor(pages: GuestPageList) {
    this.pages = pages;
    this.dataSize = pages.length - RING_HEADER_SIZE;
  }

  /** Copies `dst.length` data-area bytes starting at index `pos`, wrapping at the end of the data area. */
  protected copyOut(pos: number, dst: Uint8Array): void {
    const first = Math.min(dst.length, this.dataSize - pos);
    this.pages.read(RING_HEADER_SIZE + pos, dst.subarray(0, first));
    if (first < dst.length) this.pages.read(RING_HEADER_SIZE, dst.subarray(first));
  }

  protected copyIn(pos: number, src: Uint8Array): void {
    const first = Math.min(src.length, this.dataSize - pos);
    this.pages.write(RING_HEADER_SIZE + pos, src.subarray(0, first));
    if (first < src.length) this.pages.write(RING_HEADER_SIZE, src.subarray(first));
  }

  /** Whether the guest announced the pending_send_sz protocol (feature_bits bit 0). */
  pendingSendSupported(): boolean {
    return (this.pages.readU32(RING_FEATURE_BITS) & RING_FEATURE_PENDING_SEND_SZ) !== 0;
  }
}

/** The guest-to-host ring: the guest writes packets, the host reads them. */
export class InboundRing extends Ring {
  /** The host's read index (the copy in guest memory is only published, never read back). */
  private readIndex: number;
  packets = 0;
  bytes = 0;

  private constructor(pages: GuestPageList, readIndex: number) {
    super(pages);
    this.readIndex = readIndex;
  }

  /** The ring over `pages` (header page + data), or null when its read index is not a valid start. */
  static attach(pages: GuestPageList): InboundRing | null {
    const r = pages.readU32(RING_READ_INDEX);
    if (!validIndex(r, pages.length - RING_HEADER_SIZE)) return null;
    return new InboundRing(pages, r);
  }

  /** Bytes the guest has written and the host not yet read, or -1 (and `fault` set) for a bad write index. */
  private available(w: number): number {
    if (!validIndex(w, this.dataSize)) {
      this.fault = "bad-write-index";
      return -1;
    }
    return w >= this.readIndex ? w - this.readIndex : this.dataSize - this.readIndex + w;
  }

  /** Whether a packet is waiting (false when empty or broken). */
  hasData(): boolean {
    if (this.fault !== null) return false;
    return this.available(this.pages.readU32(RING_WRITE_INDEX)) > 0;
  }

  /**
   * Copies the next packet out and consumes it. Returns null when the ring is empty or broken; `signal` is
   * set when the guest waits for space (pending_send_sz) and this read gave it enough.
   */
  read(): { packet: RawPacket; signal: boolean } | null {
    if (this.fault !== null) return null;
    const avail = this.available(this.pages.readU32(RING_WRITE_INDEX));
    if (avail <= 0) return null;
    if (avail < DESCRIPTOR_SIZE + RING_TRAILER_SIZE) {
      this.fault = "bad-packet-length";
      return null;
    }
    const desc = new Uint8Array(DESCRIPTOR_SIZE);
    this.copyOut(this.readIndex, desc);
    const dv = new DataView(desc.buffer);
    const type = dv.getUint16(0, true);
    const dataOffset = dv.getUint16(2, true) * 8;
    const length = dv.getUint16(4, true) * 8;
    if (length < DESCRIPTOR_SIZE || length + RING_TRAILER_SIZE > avail) {
      this.fault = "bad-packet-length";
      return null;
    }
    if (dataOffset < DESCRIPTOR_SIZE || dataOffset > length) {
      this.fault = "bad-packet-offset";
      return null;
    }
    // The descriptor is kept from the first copy; only the bytes after it are copied now.
    const bytes = new Uint8Array(length);
    bytes.set(desc);
    this.copyOut((this.readIndex + DESCRIPTOR_SIZE) % this.dataSize, bytes.subarray(DESCRIPTOR_SIZE));
    const freeBefore = this.dataSize - avail;
    const consumed = length + RING_TRAILER_SIZE;
    this.readIndex = (this.readIndex + consumed) % this.dataSize;
    this.pages.writeU32(RING_READ_INDEX, this.readIndex);
    this.packets++;
    this.bytes += length;
    // Linux's reader rule (hv_pkt_iter_close), from the host's side: signal the waiting writer only when
    // this read crossed its threshold.
    let signal = false;
    if (this.pendingSendSupported()) {
      const pending = this.pages.readU32(RING_PENDING_SEND_SZ);
      signal = pending !== 0 && freeBefore <= pending && freeBefore + consumed > pending;
    }
    return {
      packet: {
        bytes,
        type,
        dataOffset,
        flags: dv.getUint16(6, true),
        transLo: dv.getUint32(8, true),
        transHi: dv.getUint32(12, true),
      },
      signal,
    };
  }
}

/** The host-to-guest ring: the host writes packets, the guest reads them. */
export class OutboundRing extends Ring {
  /** The host's write index (published to guest memory after each packet). */
  private writeIndex: number;
  /** The host set pending_send_sz and waits for the guest to free space. */
  waiting = false;
  /** The bytes the waiting packet needs (the host's copy of what it published as pending_send_sz). */
  private pendingTotal = 0;
  packets = 0;
  bytes = 0;
  fullCount = 0;

  private constructor(pages: GuestPageList, writeIndex: number) {
    super(pages);
    this.writeIndex = writeIndex;
  }

  static attach(pages: GuestPageList): OutboundRing | null {
    const w = pages.readU32(RING_WRITE_INDEX);
    if (!validIndex(w, pages.length - RING_HEADER_SIZE)) return null;
    return new OutboundRing(pages, w);
  }

  /** Bytes used now, or -1 (and `fault` set) when the guest's read index is bad. */
  private used(r: number): number {
    if (!validIndex(r, this.dataSize)) {
      this.fault = "bad-read-index";
      return -1;
    }
    return this.writeIndex >= r ? this.writeIndex - r : this.dataSize - r + this.writeIndex;
  }

  /** Whether a packet of `length` bytes (8-aligned, without trailer) fits now. */
  fits(length: number): boolean {
    if (this.fault !== null) return false;
    const used = this.used(this.pages.readU32(RING_READ_INDEX));
    return used >= 0 && this.dataSize - used > length + RING_TRAILER_SIZE;
  }

  /**
   * Writes `packet` (8-aligned, descriptor included, without trailer). "full" sets pending_send_sz so the
   * guest signals when it has freed enough; `signal` says whether the guest must be interrupted now.
   */
  write(packet: Uint8Array): { status: "ok" | "full" | "broken"; signal: boolean } {
    if (this.fault !== null) return { status: "broken", signal: false };
    const r = this.pages.readU32(RING_READ_INDEX);
    const used = this.used(r);
    if (used < 0) return { status: "broken", signal: false };
    const total = packet.length + RING_TRAILER_SIZE;
    // Strictly greater: the ring never becomes completely full (full and empty would look alike).
    if (this.dataSize - used <= total) {
      this.pages.writeU32(RING_PENDING_SEND_SZ, total);
      this.pendingTotal = total;
      if (!this.waiting) this.fullCount++;
      this.waiting = true;
      return { status: "full", signal: false };
    }
    const start = this.writeIndex;
    this.copyIn(start, packet);
    const trailer = new Uint8Array(RING_TRAILER_SIZE);
    new DataView(trailer.buffer).setUint32(4, start, true);
    this.copyIn((start + packet.length) % this.dataSize, trailer);
    this.writeIndex = (start + total) % this.dataSize;
    if (this.waiting) {
      this.pages.writeU32(RING_PENDING_SEND_SZ, 0);
      this.waiting = false;
    }
    this.pages.writeU32(RING_WRITE_INDEX, this.writeIndex);
    this.packets++;
    this.bytes += packet.length;
    // Linux's writer rule (hv_signal_on_write): interrupt only on the empty-to-non-empty transition, and not
    // while the reader masks interrupts. The reader index is the value read above (read once).
    const masked = this.pages.readU32(RING_INTERRUPT_MASK) !== 0;
    return { status: "ok", signal: !masked && used === 0 };
  }

  /** After a guest signal: whether a waiting writer may try again (space freed, or the ring broke). */
  spaceFreed(): boolean {
    if (!this.waiting) return false;
    const used = this.used(this.pages.readU32(RING_READ_INDEX));
    if (used < 0) return true;
    return this.dataSize - used > this.pendingTotal;
  }
}
