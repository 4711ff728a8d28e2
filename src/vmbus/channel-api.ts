// Owns: the contract between the VMBus server and a VSP (the root-side half of a synthetic device): what a
// VSP offers, the callbacks it implements, the channel object it is handed, received packets and send results.
// Types only.
// Must not: expose the SynIC, the partition, ring indices or another VSP's channel; contain behaviour.
// Spec: the VMBus channel model of ../shared/research/hyperv-linux-guest-checklist.md 6.2-6.5 (offers, rings,
// packet types inband / transfer pages / GPA direct / completion).
//
// The rule: a VSP calls `server.offer(offer, handler)` once and keeps the returned `VmbusChannel` for its life
// (it survives guest reconnects, closes and reopens). Between `onOpen` (answering true) and `onClose` the VSP
// may `receive()` packets (pulled, one at a time, each a host-owned copy: nothing in it changes behind the
// VSP's back) and send packets; outside that window every send is "closed" and `receive()` is null. A send
// that returns "full" leaves nothing in the ring: the server calls `onWritable` once the guest freed space.
// `onReadable` says "the guest kicked": pull until `receive()` is null, or stop early (back-pressure) and
// pull again later, e.g. from `onWritable`. Guest data buffers (GPA-direct ranges, GPADLs) are reached only
// through `GuestPageList`s the channel validated against the partition's RAM.

import type { GuestPageList, PageListProblem, PageRange } from "../memory/page-list.js";

/** A packet's 64-bit transaction id as two 32-bit halves (guests use kernel pointers: all 64 bits matter). */
export interface TransactionId {
  readonly lo: number;
  readonly hi: number;
}

/** What a VSP offers to the guest. */
export interface VmbusOffer {
  /** Device class (the offer's interface type), 16 bytes in wire (`guid_t`) order. */
  readonly classId: Uint8Array;
  /** Device instance, 16 bytes in wire order; unique per server. */
  readonly instanceId: Uint8Array;
  /** Short name for `inspect()` and messages, e.g. "storvsp" or "shutdown". */
  readonly name: string;
  /** The offer's chn_flags (default 0). The hv_sock provider bit (0x2000) is refused. */
  readonly channelFlags?: number;
  /** The offer's 120 user-defined bytes (e.g. pipe mode for integration services); default zeros. */
  readonly userDefined?: Uint8Array;
  /** MMIO space the device wants (offer mmio_megabytes; default 0). */
  readonly mmioMegabytes?: number;
  /**
   * The largest host-to-guest packet the guest's driver accepts: descriptor, extras and payload padded to
   * 8 bytes, without the ring trailer (Linux copies each packet into a buffer of this size and truncates
   * longer ones): storvsc 80, hv_utils 4096, KVP 16384, netvsc 4624. Sends beyond it are "too-large".
   */
  readonly maxGuestPacketBytes: number;
  /** Ring sizes (each direction, including its 4 KiB header page) the VSP accepts; default 8 KiB..16 MiB. */
  readonly ringBytes?: { readonly min: number; readonly max: number };
}

/** What a VSP implements. The server calls these synchronously; none may throw. */
export interface ChannelHandler {
  /** The guest opens the channel with OPENCHANNEL's 120 user-data bytes; false refuses (OPEN_RESULT failure). */
  onOpen(userData: Uint8Array): boolean;
  /** The guest signalled the channel: packets may be waiting in the guest-to-host ring. */
  onReadable(): void;
  /** A send returned "full" earlier and the guest has since freed ring space. */
  onWritable(): void;
  /**
   * The channel closed: the guest's CLOSECHANNEL, UNLOAD or reconnect, the host's revoke, or a ring the guest
   * corrupted. Drop per-open state; sends are "closed" from now on.
   */
  onClose(): void;
}

/** Packet types a VSP can receive (include/linux/hyperv.h enum vmbus_packet_type). */
export type ReceivedPacketType = "inband" | "transfer-pages" | "gpa-direct" | "completion";

/** A transfer-page range: bytes [byteOffset, byteOffset + byteCount) of the transfer page set. */
export interface TransferRange {
  readonly byteCount: number;
  readonly byteOffset: number;
}

/** One packet from the guest-to-host ring, copied out of guest memory before it was parsed. */
export interface ReceivedPacket {
  readonly type: ReceivedPacketType;
  readonly transactionId: TransactionId;
  /** The guest asked for a completion packet with this transaction id. */
  readonly completionRequested: boolean;
  /** The bytes from the descriptor's data offset to its end (host-owned). */
  readonly payload: Uint8Array;
  /** GPA-direct packets: the data buffers, shape-checked (offset in page, PFN count); PFNs checked by `buffer`. */
  readonly ranges: readonly PageRange[];
  /** Transfer-page packets: the set id and its ranges. */
  readonly transferPages: { readonly setId: number; readonly ranges: readonly TransferRange[] } | null;
}

/**
 * How a send ended. "ok": in the ring (and the guest signalled if it needed that); "full": not enough ring
 * space, nothing written, `onWritable` follows; "closed": the channel is not open; "too-large": beyond the
 * offer's `maxGuestPacketBytes` or the ring; "broken": the guest corrupted the ring (the channel closes).
 */
export type SendStatus = "ok" | "full" | "closed" | "too-large" | "broken";

/** The channel object a VSP holds. */
export interface VmbusChannel {
  /** The child relid the guest knows the channel by (1..2047). */
  readonly relid: number;
  readonly isOpen: boolean;
  /** The next packet from the guest, or null when the ring is empty, the channel closed or the ring broken. */
  receive(): ReceivedPacket | null;
  /** Whether an inband or completion packet with `payloadBytes` of payload fits in the ring now. */
  canSend(payloadBytes: number): boolean;
  /** An inband data packet (VM_PKT_DATA_INBAND). */
  sendInband(payload: Uint8Array, transactionId: TransactionId, completionRequested: boolean): SendStatus;
  /** A completion packet (VM_PKT_COMP) answering `transactionId`. */
  sendCompletion(transactionId: TransactionId, payload: Uint8Array): SendStatus;
  /** A transfer-page packet (VM_PKT_DATA_USING_XFER_PAGES): ranges of the set `setId`, then `payload`. */
  sendTransferPages(
    setId: number,
    ranges: readonly TransferRange[],
    payload: Uint8Array,
    transactionId: TransactionId,
    completionRequested: boolean,
  ): SendStatus;
  /** The guest memory a GPA-direct packet's ranges describe, every PFN checked against the partition's RAM. */
  buffer(ranges: readonly PageRange[]): GuestPageList | PageListProblem;
  /**
   * A GPADL the guest created for this channel (not its ring GPADL), or null. The list is detached when the
   * guest tears the GPADL down or the channel's connection ends: later accesses fail, they never reach pages
   * the guest took back.
   */
  gpadl(handle: number): GuestPageList | null;
  /** Hot-removes the device: RESCIND_CHANNELOFFER to the guest, the channel closes, the relid is freed once the guest releases it. */
  revoke(): void;
}
