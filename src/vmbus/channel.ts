// Owns: one offered VMBus channel as the server and its VSP see it: the offer, its relid and event
// connection id, its life in the current connection (offered, open, rescinded, released), and while open its
// two rings, target VP and counters; the `VmbusChannel` surface the VSP uses (pull receive, sends, guest
// buffers, GPADLs, revoke) and the guest's channel signal.
// Must not: see the SynIC or the partition (it signals through `ChannelHost`), hand a VSP guest memory that
// is not a validated page list, call the VSP after `onClose` until the next open, or throw on guest input.
// Spec: ../shared/research/hyperv-linux-guest-checklist.md 6.2-6.4b; Linux 6.1 drivers/hv/channel.c,
// channel_mgmt.c (what the guest does with each state).

import type { GuestMemory } from "../memory/guest-memory.js";
import { GuestPageList, type PageListProblem, type PageRange } from "../memory/page-list.js";
import type {
  ChannelHandler,
  ReceivedPacket,
  SendStatus,
  TransactionId,
  TransferRange,
  VmbusChannel,
  VmbusOffer,
} from "./channel-api.js";
import type { Gpadl, GpadlTable } from "./gpadl.js";
import { buildPacket, packetLength, parsePacket, transferPagesHeader } from "./packets.js";
import { PacketType, RING_TRAILER_SIZE } from "./protocol.js";
import type { InboundRing, OutboundRing, RingFault } from "./ring.js";

/** What a channel needs from its server. */
export interface ChannelHost {
  readonly memory: GuestMemory;
  /** The current connection's GPADLs. */
  gpadls(): GpadlTable;
  /** Sets the channel's SIEF flag on `vp` (and interrupts it). */
  signalGuest(vp: number, relid: number): void;
  /** Host-initiated rescind. */
  revoke(channel: Channel): void;
}

/** An open channel's rings and routing. */
interface OpenState {
  readonly gpadl: Gpadl;
  readonly inbound: InboundRing;
  readonly outbound: OutboundRing;
  targetVp: number;
  /** The VSP has seen onOpen and not yet onClose (false once the guest broke a ring). */
  vspOpen: boolean;
  fault: RingFault | null;
}

export class Channel implements VmbusChannel {
  readonly relid: number;
  readonly connectionId: number;
  readonly offer: VmbusOffer;
  readonly handler: ChannelHandler;
  private readonly host: ChannelHost;
  /** Sent to the guest in the current connection. */
  offered = false;
  /** The host revoked it; the offer waits for the guest's RELID_RELEASED. */
  rescinded = false;
  /** The guest released the relid without a rescind (its driver refused the device). */
  released = false;
  open: OpenState | null = null;
  opens = 0;
  droppedPackets = 0;
  guestSignals = 0;
  /** Guest signals that arrived while the channel could not use them (closed, broken). */
  spuriousSignals = 0;
  lastFault: RingFault | null = null;

  constructor(
    relid: number,
    connectionId: number,
    offer: VmbusOffer,
    handler: ChannelHandler,
    host: ChannelHost,
  ) {
    this.relid = relid;
    this.connectionId = connectionId;
    this.offer = offer;
    this.handler = handler;
    this.host = host;
  }

  get isOpen(): boolean {
    return this.open !== null && this.open.vspOpen;
  }

  /** Server: the guest opened the channel on these rings; asks the VSP. False means refused. */
  attach(
    gpadl: Gpadl,
    inbound: InboundRing,
    outbound: OutboundRing,
    targetVp: number,
    userData: Uint8Array,
  ): boolean {
    this.open = { gpadl, inbound, outbound, targetVp, vspOpen: true, fault: null };
    if (!this.handler.onOpen(userData)) {
      this.open = null;
      return false;
    }
    this.opens++;
    return true;
  }

  /** Server: the channel closes (guest close, unload, reconnect, revoke). Returns the ring GPADL it used. */
  detach(): Gpadl | null {
    const open = this.open;
    if (open === null) return null;
    this.open = null;
    if (open.vspOpen) this.handler.onClose();
    return open.gpadl;
  }

  setTargetVp(vp: number): boolean {
    if (this.open === null) return false;
    this.open.targetVp = vp;
    return true;
  }

  /** Server: the guest signalled this channel's connection id (HvSignalEvent). */
  guestSignal(): void {
    this.guestSignals++;
    const open = this.open;
    if (open === null || !open.vspOpen) {
      this.spuriousSignals++;
      return;
    }
    if (open.outbound.spaceFreed()) this.handler.onWritable();
    // The VSP may have closed or broken the channel in onWritable.
    if (this.open !== open || !open.vspOpen) return;
    if (open.inbound.hasData()) this.handler.onReadable();
    else if (open.inbound.fault !== null) this.breakRing(open, open.inbound.fault);
  }

  private breakRing(open: OpenState, fault: RingFault): void {
    if (!open.vspOpen) return;
    open.fault = fault;
    this.lastFault = fault;
    open.vspOpen = false;
    this.handler.onClose();
  }

  receive(): ReceivedPacket | null {
    // Each turn consumes a packet, and the guest cannot write while the host runs: this ends within the ring.
    while (true) {
      const open = this.open;
      if (open === null || !open.vspOpen) return null;
      const r = open.inbound.read();
      if (r === null) {
        if (open.inbound.fault !== null) this.breakRing(open, open.inbound.fault);
        return null;
      }
      if (r.signal) this.host.signalGuest(open.targetVp, this.relid);
      const packet = parsePacket(r.packet);
      if (typeof packet !== "string") return packet;
      this.droppedPackets++;
    }
  }

  canSend(payloadBytes: number): boolean {
    const open = this.open;
    if (open === null || !open.vspOpen) return false;
    const length = packetLength(0, payloadBytes);
    return length <= this.offer.maxGuestPacketBytes && open.outbound.fits(length);
  }

  sendInband(payload: Uint8Array, transactionId: TransactionId, completionRequested: boolean): SendStatus {
    return this.send(PacketType.Inband, null, payload, transactionId, completionRequested);
  }

  sendCompletion(transactionId: TransactionId, payload: Uint8Array): SendStatus {
    return this.send(PacketType.Completion, null, payload, transactionId, false);
  }

  sendTransferPages(
    setId: number,
    ranges: readonly TransferRange[],
    payload: Uint8Array,
    transactionId: TransactionId,
    completionRequested: boolean,
  ): SendStatus {
    if (ranges.length > 0xffff) return "too-large";
    const extra = transferPagesHeader(setId, ranges);
    return this.send(PacketType.TransferPages, extra, payload, transactionId, completionRequested);
  }

  private send(
    type: PacketType,
    extra: Uint8Array | null,
    payload: Uint8Array,
    transactionId: TransactionId,
    completionRequested: boolean,
  ): SendStatus {
    const open = this.open;
    if (open === null || !open.vspOpen) return "closed";
    const length = packetLength(extra?.length ?? 0, payload.length);
    // len8 is a u16 count of 8-byte units.
    if (
      length > this.offer.maxGuestPacketBytes ||
      length > 0xffff * 8 ||
      length + RING_TRAILER_SIZE >= open.outbound.dataSize
    ) {
      return "too-large";
    }
    const r = open.outbound.write(buildPacket(type, extra, payload, transactionId, completionRequested));
    if (r.status === "broken") {
      this.breakRing(open, open.outbound.fault ?? "bad-read-index");
      return "broken";
    }
    if (r.signal) this.host.signalGuest(open.targetVp, this.relid);
    return r.status;
  }

  buffer(ranges: readonly PageRange[]): GuestPageList | PageListProblem {
    return GuestPageList.build(this.host.memory, ranges);
  }

  gpadl(handle: number): GuestPageList | null {
    const g = this.host.gpadls().get(handle);
    if (g === undefined || g.relid !== this.relid || g.state !== "ready" || g.ringOf !== null) return null;
    return g.list;
  }

  revoke(): void {
    this.host.revoke(this);
  }

  /** A plain summary for the server's inspect(). */
  inspect(): ChannelInspection {
    const open = this.open;
    return {
      relid: this.relid,
      name: this.offer.name,
      state: this.rescinded
        ? "rescinded"
        : this.released
          ? "released"
          : open === null
            ? this.offered
              ? "offered"
              : "not-offered"
            : open.vspOpen
              ? "open"
              : "broken",
      opens: this.opens,
      targetVp: open?.targetVp ?? null,
      ringBytes: open === null ? null : [open.inbound.dataSize + 4096, open.outbound.dataSize + 4096],
      packetsIn: open?.inbound.packets ?? 0,
      packetsOut: open?.outbound.packets ?? 0,
      bytesIn: open?.inbound.bytes ?? 0,
      bytesOut: open?.outbound.bytes ?? 0,
      ringFull: open?.outbound.fullCount ?? 0,
      droppedPackets: this.droppedPackets,
      guestSignals: this.guestSignals,
      spuriousSignals: this.spuriousSignals,
      lastFault: this.lastFault,
    };
  }
}

export interface ChannelInspection {
  relid: number;
  name: string;
  state: "not-offered" | "offered" | "open" | "broken" | "rescinded" | "released";
  opens: number;
  targetVp: number | null;
  /** Guest-to-host and host-to-guest ring sizes, header pages included. */
  ringBytes: [number, number] | null;
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  ringFull: number;
  droppedPackets: number;
  guestSignals: number;
  spuriousSignals: number;
  lastFault: RingFault | null;
}
