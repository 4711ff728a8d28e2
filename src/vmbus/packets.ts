// Owns: the layout of VMBus packets: parsing a packet the host copied out of the guest-to-host ring into a
// `ReceivedPacket` (inband, completion, GPA-direct with any number of multi-page ranges, transfer pages) and
// building host-to-guest packets (descriptor, extras, payload, padding to 8 bytes).
// Must not: read guest memory (it works on host copies only), accept a range list that runs past the
// descriptor's data offset or a range whose PFN count disagrees with its offset and length, or throw on
// guest bytes (a malformed packet is a `PacketProblem`).
// Spec: Linux 6.1 include/linux/hyperv.h (struct vmpacket_descriptor, vmtransfer_page_packet_header,
// vmbus_packet_mpb_array / vmbus_channel_packet_page_buffer, enum vmbus_packet_type);
// ../shared/research/hyperv-linux-guest-checklist.md 6.4.

import { pagesSpanned, type PageRange } from "../memory/page-list.js";
import { PAGE_SIZE } from "../memory/guest-memory.js";
import type { ReceivedPacket, TransactionId, TransferRange } from "./channel-api.js";
import {
  DESCRIPTOR_SIZE,
  GPA_DIRECT_HEADER_SIZE,
  PACKET_FLAG_COMPLETION_REQUESTED,
  PacketType,
  u64,
  XFER_HEADER_SIZE,
} from "./protocol.js";
import type { RawPacket } from "./ring.js";

/** Why a packet was dropped. */
export type PacketProblem = "unknown-type" | "bad-ranges" | "bad-transfer-ranges";

/** Parses a packet copied out of the ring; every length is checked against the copy. */
export function parsePacket(raw: RawPacket): ReceivedPacket | PacketProblem {
  const view = new DataView(raw.bytes.buffer, raw.bytes.byteOffset, raw.bytes.length);
  const transactionId: TransactionId = { lo: raw.transLo, hi: raw.transHi };
  const completionRequested = (raw.flags & PACKET_FLAG_COMPLETION_REQUESTED) !== 0;
  const payload = raw.bytes.subarray(raw.dataOffset);
  switch (raw.type) {
    case PacketType.Inband:
    case PacketType.Completion:
      return {
        type: raw.type === PacketType.Inband ? "inband" : "completion",
        transactionId,
        completionRequested,
        payload,
        ranges: [],
        transferPages: null,
      };
    case PacketType.GpaDirect: {
      const ranges = parseGpaRanges(view, raw.dataOffset);
      if (ranges === null) return "bad-ranges";
      return { type: "gpa-direct", transactionId, completionRequested, payload, ranges, transferPages: null };
    }
    case PacketType.TransferPages: {
      if (raw.dataOffset < XFER_HEADER_SIZE) return "bad-transfer-ranges";
      const count = view.getUint32(20, true);
      if (count > (raw.dataOffset - XFER_HEADER_SIZE) / 8) return "bad-transfer-ranges";
      const ranges: TransferRange[] = [];
      for (let i = 0; i < count; i++) {
        const at = XFER_HEADER_SIZE + i * 8;
        ranges.push({ byteCount: view.getUint32(at, true), byteOffset: view.getUint32(at + 4, true) });
      }
      return {
        type: "transfer-pages",
        transactionId,
        completionRequested,
        payload,
        ranges: [],
        transferPages: { setId: view.getUint16(16, true), ranges },
      };
    }
    default:
      return "unknown-type";
  }
}

/** The `{u32 len, u32 offset, u64 pfn[]}` ranges of a GPA-direct packet, or null when they do not fit. */
function parseGpaRanges(view: DataView, end: number): PageRange[] | null {
  if (end < GPA_DIRECT_HEADER_SIZE) return null;
  const count = view.getUint32(20, true);
  // Each range takes at least 16 bytes, so the count is bounded by the bytes present before any allocation.
  if (count === 0 || count > (end - GPA_DIRECT_HEADER_SIZE) / 16) return null;
  const ranges: PageRange[] = [];
  let at = GPA_DIRECT_HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    if (at + 8 > end) return null;
    const length = view.getUint32(at, true);
    const offset = view.getUint32(at + 4, true);
    if (length === 0 || offset >= PAGE_SIZE) return null;
    const n = pagesSpanned(offset, length);
    at += 8;
    if (at + n * 8 > end) return null;
    const pfns: number[] = [];
    for (let p = 0; p < n; p++) pfns.push(u64(view, at + p * 8));
    at += n * 8;
    ranges.push({ pfns, offset, length });
  }
  return ranges;
}

/** Builds a host-to-guest packet: descriptor, `extra` (type-specific header), then `payload`, padded to 8. */
export function buildPacket(
  type: PacketType,
  extra: Uint8Array | null,
  payload: Uint8Array,
  transactionId: TransactionId,
  completionRequested: boolean,
): Uint8Array {
  const dataOffset = DESCRIPTOR_SIZE + (extra?.length ?? 0);
  const length = (dataOffset + payload.length + 7) & ~7;
  const bytes = new Uint8Array(length);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, type, true);
  view.setUint16(2, dataOffset / 8, true);
  view.setUint16(4, length / 8, true);
  view.setUint16(6, completionRequested ? PACKET_FLAG_COMPLETION_REQUESTED : 0, true);
  view.setUint32(8, transactionId.lo >>> 0, true);
  view.setUint32(12, transactionId.hi >>> 0, true);
  if (extra !== null) bytes.set(extra, DESCRIPTOR_SIZE);
  bytes.set(payload, dataOffset);
  return bytes;
}

/** Length of a packet with `extraBytes` of extras and `payloadBytes` of payload (what `buildPacket` makes). */
export function packetLength(extraBytes: number, payloadBytes: number): number {
  return (DESCRIPTOR_SIZE + extraBytes + payloadBytes + 7) & ~7;
}

/** The extras of a transfer-page packet: set id, sender-owns (0), range count, ranges. */
export function transferPagesHeader(setId: number, ranges: readonly TransferRange[]): Uint8Array {
  const extra = new Uint8Array(XFER_HEADER_SIZE - DESCRIPTOR_SIZE + ranges.length * 8);
  const view = new DataView(extra.buffer);
  view.setUint16(0, setId, true);
  view.setUint32(4, ranges.length, true);
  ranges.forEach((r, i) => {
    view.setUint32(8 + i * 8, r.byteCount >>> 0, true);
    view.setUint32(12 + i * 8, r.byteOffset >>> 0, true);
  });
  return extra;
}
