// Owns: the network VSP: one synthetic NIC's VMBus channel as Linux's hv_netvsc speaks to it. NVSP version
// negotiation (2 to 6.1), the NDIS version and configuration, the receive and send buffers (GPADLs: sizes
// checked, the receive buffer cut into sub-allocations, send-buffer section indices checked), RNDIS messages
// from the guest (control through ./rndis-control.ts, data frames handed to the NIC's port), frames and
// control answers to the guest in receive-buffer sub-allocations through transfer-page packets, freed when
// the guest completes them, link indications, and back-pressure both ways.
// Must not: reach guest memory except through the page lists the channel validated; throw, loop or allocate
// without bound on guest input (every index, size and offset is checked; queues are bounded); block on the
// port (frames leave through `NicPort.send` at once); offer sub-channels, vRSS or an offload
// ./offload.ts does not do.
// Spec: Linux 6.1 drivers/net/hyperv/netvsc.c (netvsc_connect_vsp, netvsc_init_buf, netvsc_send_pkt,
// netvsc_receive, netvsc_send_completion, enq_receive_complete), rndis_filter.c (rndis_filter_receive);
// ../shared/research/hyperv-linux-guest-checklist.md 8.1-8.4; the channel contract in
// ../../vmbus/channel-api.ts.

import type { GuestPageList } from "../../memory/page-list.js";
import type {
  ChannelHandler,
  ReceivedPacket,
  TransactionId,
  TransferRange,
  VmbusChannel,
  VmbusOffer,
} from "../../vmbus/channel-api.js";
import { ETHERNET_HEADER, MAX_FRAME } from "../../net/frame-stream.js";
import {
  CHANNEL_TYPE_CONTROL,
  CHANNEL_TYPE_DATA,
  MAX_MDL_CHAIN,
  NETVSC_CLASS,
  NO_SECTION,
  NVSP_STATUS_FAILURE,
  NVSP_STATUS_SUCCESS,
  NVSP_VERSION_2,
  NvspType,
  nvspMessage,
  RECEIVE_BUFFER_ID,
  RNDIS_PKT_CHANNEL_TYPE,
  RNDIS_PKT_SECTION_INDEX,
  RNDIS_PKT_SECTION_SIZE,
  RndisType,
  SUPPORTED_NVSP_VERSIONS,
  NDIS_PACKET_TYPE_ALL_MULTICAST,
  NDIS_PACKET_TYPE_BROADCAST,
  NDIS_PACKET_TYPE_DIRECTED,
  NDIS_PACKET_TYPE_MULTICAST,
  NDIS_PACKET_TYPE_PROMISCUOUS,
} from "./nvsp-protocol.js";
import {
  MessageSource,
  packetFrames,
  receiveMessage,
  receiveMessageSize,
  splitMessages,
} from "./rndis-data.js";
import { MAX_PACKETS_PER_MESSAGE, RndisControl } from "./rndis-control.js";

/** Send-buffer section size the host announces (SEND_SEND_BUF_COMPLETE; Hyper-V's value). */
export const SEND_SECTION_BYTES = 6144;
/** The largest receive or send buffer accepted (Linux's default receive buffer is about 17 MiB). */
export const MAX_BUFFER_BYTES = 64 << 20;
/** The largest host-to-guest packet hv_netvsc takes (its channel's max_pkt_size). */
export const NETVSC_MAX_PACKET = 4624;
/** Frames one transfer-page packet carries at most (each range one RNDIS message). */
export const MAX_RANGES_PER_PACKET = 32;
/** Frames waiting for a free receive section before new ones are dropped (counted as rcvNoBuffer). */
export const RX_QUEUE_FRAMES = 256;
/** Control answers waiting for a receive section; more only if the guest floods requests without reading. */
export const CONTROL_QUEUE = 64;
/** Default MTU: the Ethernet payload the NIC reports and sizes receive sections for. */
export const DEFAULT_MTU = 1500;
/** Sub-allocations are whole multiples of this, so every RNDIS message in the receive buffer is aligned. */
const SECTION_ALIGN = 64;

/** Where the NIC's frames go: a switch port, a NAT, a test. */
export interface NicPort {
  /**
   * A frame the guest sent (a fresh copy the port may keep). False when the port's queue is now full: the
   * VSP stops taking guest packets until `NetVsp.resumeTransmit()` (the guest's ring fills and it waits).
   */
  send(frame: Uint8Array): boolean;
}

export interface NetVspOptions {
  /** Instance GUID (16 bytes, wire order), distinct per NIC of a VM. */
  readonly instanceId: Uint8Array;
  /** The NIC's MAC address (6 bytes). */
  readonly mac: Uint8Array;
  readonly port: NicPort;
  /** Name in inspect() (default "netvsp"). */
  readonly name?: string;
  readonly mtu?: number;
}

/** What the guest set up so far in this open. */
export type NetPhase = "closed" | "opened" | "negotiated" | "ready";

interface ReceiveBuffer {
  readonly list: GuestPageList;
  readonly sectionBytes: number;
  readonly sections: number;
  /** Free sub-allocation indices (a stack). */
  readonly free: number[];
}

interface SendBuffer {
  readonly list: GuestPageList;
  readonly sections: number;
}

interface QueuedMessage {
  readonly bytes: Uint8Array;
  readonly control: boolean;
}

export class NetVsp implements ChannelHandler {
  readonly channel: VmbusChannel;
  readonly rndis: RndisControl;
  readonly mac: Uint8Array;
  private readonly port: NicPort;
  private readonly mtu: number;
  private phase: NetPhase = "closed";
  private version = 0;
  /** The frame size the guest configured (SEND_NDIS_CONFIG mtu, Ethernet header included). */
  private guestFrameBytes = 0;
  private recv: ReceiveBuffer | null = null;
  private send: SendBuffer | null = null;
  /** Transfer-page packets the guest has not completed yet: transaction id -> their sections. */
  private readonly inFlight = new Map<number, number[]>();
  private nextTransaction = 1;
  private readonly controlQueue: QueuedMessage[] = [];
  private readonly rxQueue: Uint8Array[] = [];
  /** NVSP completions that met a full ring, sent first from onWritable. */
  private readonly backlog: { id: TransactionId; payload: Uint8Array }[] = [];
  /** The port refused more frames: no guest packet is taken until resumeTransmit. */
  private portFull = false;
  /** Waiting for ring space for a transfer-page packet. */
  private ringFull = false;
  readonly counters = {
    packets: 0,
    txFrames: 0,
    rxFrames: 0,
    /** Ethernet bytes of those frames (the management API's throughput figures). */
    txBytes: 0,
    rxBytes: 0,
    /** Frames from the network dropped (no section, queue full, filter, link down, too long), by reason. */
    rxDropped: {} as Record<string, number>,
    /** Guest packets or messages refused, by reason. */
    refused: {} as Record<string, number>,
    completionsDropped: 0,
  };

  constructor(server: { offer(o: VmbusOffer, h: ChannelHandler): VmbusChannel }, options: NetVspOptions) {
    if (options.mac.length !== 6) throw new RangeError("a MAC address has 6 bytes");
    this.mac = options.mac.slice();
    this.port = options.port;
    this.mtu = options.mtu ?? DEFAULT_MTU;
    this.rndis = new RndisControl({ mac: this.mac, mtu: this.mtu });
    this.channel = server.offer(
      {
        classId: NETVSC_CLASS,
        instanceId: options.instanceId,
        name: options.name ?? "netvsp",
        maxGuestPacketBytes: NETVSC_MAX_PACKET,
      },
      this,
    );
  }

  get state(): NetPhase {
    return this.phase;
  }

  get protocolVersion(): number {
    return this.version;
  }

  get linkUp(): boolean {
    return this.rndis.linkUp;
  }

  // ---- ChannelHandler ----

  onOpen(): boolean {
    this.resetOpen();
    this.phase = "opened";
    return true;
  }

  onClose(): void {
    this.resetOpen();
  }

  onReadable(): void {
    this.pump();
  }

  onWritable(): void {
    while (this.backlog.length > 0) {
      const next = this.backlog[0]!;
      const status = this.channel.sendCompletion(next.id, next.payload);
      if (status === "full") return;
      if (status !== "ok") this.counters.completionsDropped++;
      this.backlog.shift();
    }
    this.ringFull = false;
    this.flushReceive();
    this.pump();
  }

  // ---- the host side ----

  /** A frame from the network for this NIC. Returns false when it was dropped. */
  receiveFrame(frame: Uint8Array): boolean {
    if (!this.accepts(frame)) return false;
    if (this.rxQueue.length >= RX_QUEUE_FRAMES) {
      this.rndis.counters.rcvNoBuffer++;
      return this.drop("queue-full");
    }
    this.rxQueue.push(frame);
    this.flushReceive();
    return true;
  }

  /** The port has room again after `send` returned false. */
  resumeTransmit(): void {
    if (!this.portFull) return;
    this.portFull = false;
    this.pump();
  }

  /** The cable: the switch connection came or went. The guest hears of it through an RNDIS indication. */
  setLink(up: boolean): void {
    if (this.rndis.linkUp === up) return;
    this.rndis.linkUp = up;
    if (!up) this.rxQueue.length = 0;
    if (this.phase === "ready" && this.rndis.state === "initialized") {
      this.queueControl(RndisControl.linkIndication(up));
    }
  }

  // ---- guest packets ----

  private resetOpen(): void {
    this.phase = "closed";
    this.version = 0;
    this.guestFrameBytes = 0;
    this.recv = null;
    this.send = null;
    this.inFlight.clear();
    this.controlQueue.length = 0;
    this.rxQueue.length = 0;
    this.backlog.length = 0;
    this.ringFull = false;
    this.rndis.reset();
  }

  private refuse(reason: string): void {
    this.counters.refused[reason] = (this.counters.refused[reason] ?? 0) + 1;
  }

  private drop(reason: string): false {
    this.counters.rxDropped[reason] = (this.counters.rxDropped[reason] ?? 0) + 1;
    return false;
  }

  private pump(): void {
    while (this.phase !== "closed" && this.backlog.length === 0 && !this.portFull) {
      const p = this.channel.receive();
      if (p === null) return;
      this.counters.packets++;
      this.handle(p);
    }
  }

  private complete(p: ReceivedPacket, payload: Uint8Array): void {
    if (!p.completionRequested) return;
    if (this.backlog.length > 0) {
      this.backlog.push({ id: p.transactionId, payload });
      return;
    }
    const status = this.channel.sendCompletion(p.transactionId, payload);
    if (status === "full") this.backlog.push({ id: p.transactionId, payload });
    else if (status !== "ok") this.counters.completionsDropped++;
  }

  private handle(p: ReceivedPacket): void {
    if (p.type === "completion") return this.onGuestCompletion(p);
    if (p.type === "transfer-pages") return this.refuse("transfer-pages-packet");
    if (p.payload.length < 4) return this.refuse("short-packet");
    const view = new DataView(p.payload.buffer, p.payload.byteOffset, p.payload.length);
    const field = (at: number): number => (p.payload.length >= at + 4 ? view.getUint32(at, true) : 0);
    const type = view.getUint32(0, true);
    switch (type) {
      case NvspType.Init:
        return this.init(p, field(4), field(8));
      case NvspType.SendNdisConfig:
        // Guest MTU plus the Ethernet header; no answer (Linux asks none). Ignored before negotiation.
        if (this.phase !== "closed" && this.phase !== "opened") this.guestFrameBytes = field(4);
        return;
      case NvspType.SendNdisVersion:
        return;
      case NvspType.SendReceiveBuffer:
        return this.setReceiveBuffer(p, field(4));
      case NvspType.SendSendBuffer:
        return this.setSendBuffer(p, field(4));
      case NvspType.RevokeReceiveBuffer:
        this.recv = null;
        this.inFlight.clear();
        this.rxQueue.length = 0;
        this.controlQueue.length = 0;
        if (this.phase === "ready") this.phase = "negotiated";
        return;
      case NvspType.RevokeSendBuffer:
        this.send = null;
        return;
      case NvspType.SendRndisPacket:
        return this.rndisPacket(
          p,
          field(RNDIS_PKT_CHANNEL_TYPE),
          field(RNDIS_PKT_SECTION_INDEX),
          field(RNDIS_PKT_SECTION_SIZE),
        );
      default:
        // SUBCHANNEL (none offered), VF association, host-to-guest types, unknown ones.
        this.refuse(`nvsp-type-${type >>> 0}`);
        if (type === NvspType.Subchannel) {
          const r = nvspMessage(NvspType.Subchannel);
          r.view.setUint32(4, NVSP_STATUS_FAILURE, true);
          this.complete(p, r.bytes);
        }
        return;
    }
  }

  private init(p: ReceivedPacket, min: number, max: number): void {
    const version = SUPPORTED_NVSP_VERSIONS.find((v) => v >= min && v <= max) ?? 0;
    const r = nvspMessage(NvspType.InitComplete);
    r.view.setUint32(4, version, true);
    r.view.setUint32(8, MAX_MDL_CHAIN, true);
    r.view.setUint32(12, version === 0 ? NVSP_STATUS_FAILURE : NVSP_STATUS_SUCCESS, true);
    if (version !== 0) {
      // A renegotiation starts the device over (Linux does this only after closing the channel).
      const open = this.phase !== "closed";
      this.resetOpen();
      if (open) this.phase = "negotiated";
      this.version = version;
    } else {
      this.refuse("nvsp-version");
    }
    this.complete(p, r.bytes);
  }

  /** Receive sub-allocation size: the largest frame the guest may need plus the RNDIS headers, aligned. */
  private receiveSectionBytes(): number {
    const frame = Math.min(Math.max(this.guestFrameBytes, this.mtu + ETHERNET_HEADER), MAX_FRAME);
    const raw = receiveMessageSize(frame);
    return Math.ceil(raw / SECTION_ALIGN) * SECTION_ALIGN;
  }

  private setReceiveBuffer(p: ReceivedPacket, handle: number): void {
    const r = nvspMessage(NvspType.SendReceiveBufferComplete);
    const fail = (reason: string): void => {
      this.refuse(reason);
      r.view.setUint32(4, NVSP_STATUS_FAILURE, true);
      this.complete(p, r.bytes);
    };
    if (this.phase !== "negotiated" || this.version < NVSP_VERSION_2) return fail("receive-buffer-state");
    if (this.recv !== null) return fail("receive-buffer-twice");
    const list = this.channel.gpadl(handle);
    if (list === null) return fail("receive-buffer-gpadl");
    if (!list.writable) return fail("receive-buffer-read-only");
    const sectionBytes = this.receiveSectionBytes();
    const bytes = Math.min(list.length, MAX_BUFFER_BYTES);
    const sections = Math.floor(bytes / sectionBytes);
    if (sections < 2) return fail("receive-buffer-size");
    const free: number[] = [];
    for (let i = sections - 1; i >= 0; i--) free.push(i);
    this.recv = { list, sectionBytes, sections, free };
    // One section for the whole buffer: offset 0, sub-allocations of sectionBytes.
    r.view.setUint32(4, NVSP_STATUS_SUCCESS, true);
    r.view.setUint32(8, 1, true);
    r.view.setUint32(12, 0, true);
    r.view.setUint32(16, sectionBytes, true);
    r.view.setUint32(20, sections, true);
    r.view.setUint32(24, sectionBytes * sections, true);
    this.complete(p, r.bytes);
    this.checkReady();
  }

  private setSendBuffer(p: ReceivedPacket, handle: number): void {
    const r = nvspMessage(NvspType.SendSendBufferComplete);
    const fail = (reason: string): void => {
      this.refuse(reason);
      r.view.setUint32(4, NVSP_STATUS_FAILURE, true);
      this.complete(p, r.bytes);
    };
    if (this.phase !== "negotiated" && this.phase !== "ready") return fail("send-buffer-state");
    if (this.send !== null) return fail("send-buffer-twice");
    const list = this.channel.gpadl(handle);
    if (list === null) return fail("send-buffer-gpadl");
    const sections = Math.floor(Math.min(list.length, MAX_BUFFER_BYTES) / SEND_SECTION_BYTES);
    if (sections < 1) return fail("send-buffer-size");
    this.send = { list, sections };
    r.view.setUint32(4, NVSP_STATUS_SUCCESS, true);
    r.view.setUint32(8, SEND_SECTION_BYTES, true);
    this.complete(p, r.bytes);
    this.checkReady();
  }

  private checkReady(): void {
    if (this.phase === "negotiated" && this.recv !== null) {
      this.phase = "ready";
      this.flushReceive();
    }
  }

  private rndisComplete(p: ReceivedPacket, ok: boolean): void {
    const r = new Uint8Array(8);
    const v = new DataView(r.buffer);
    v.setUint32(0, NvspType.SendRndisPacketComplete, true);
    v.setUint32(4, ok ? NVSP_STATUS_SUCCESS : NVSP_STATUS_FAILURE, true);
    this.complete(p, r);
  }

  /** SEND_RNDIS_PKT: the RNDIS bytes in a send-buffer section, in GPA-direct buffers, or both in that order. */
  private rndisPacket(p: ReceivedPacket, channelType: number, index: number, size: number): void {
    const fail = (reason: string): void => {
      this.refuse(reason);
      this.rndisComplete(p, false);
    };
    if (this.phase !== "ready") return fail("rndis-before-ready");
    if (channelType !== CHANNEL_TYPE_DATA && channelType !== CHANNEL_TYPE_CONTROL)
      return fail("channel-type");
    const parts: { list: GuestPageList; start: number; length: number }[] = [];
    if (index !== NO_SECTION) {
      if (this.send === null) return fail("no-send-buffer");
      if (index >= this.send.sections) return fail("section-index");
      if (size === 0 || size > SEND_SECTION_BYTES) return fail("section-size");
      parts.push({ list: this.send.list, start: index * SEND_SECTION_BYTES, length: size });
    }
    if (p.type === "gpa-direct") {
      const list = this.channel.buffer(p.ranges);
      if (typeof list === "string") return fail(`page-list-${list}`);
      parts.push({ list, start: 0, length: list.length });
    }
    if (parts.length === 0) return fail("no-data");
    const source = new MessageSource(parts);
    const { messages, problem } = splitMessages(source, MAX_PACKETS_PER_MESSAGE);
    if (problem !== null) this.refuse(`rndis-${problem}`);
    let ok = problem === null;
    for (const m of messages) {
      if (m.type === RndisType.Packet) {
        const frames = packetFrames(source, m);
        if (typeof frames === "string") {
          this.refuse(`tx-${frames}`);
          this.rndis.counters.xmitError++;
          ok = false;
          continue;
        }
        if (this.rndis.state !== "initialized" || !this.rndis.linkUp) {
          this.rndis.counters.xmitError++;
          continue;
        }
        this.rndis.counters.xmitOk++;
        // The segments of one large send all go: the port's queue may overrun by one send's worth.
        for (const frame of frames) {
          this.counters.txFrames++;
          this.counters.txBytes += frame.length;
          if (!this.port.send(frame)) this.portFull = true;
        }
      } else {
        this.control(source, m.offset, m.length);
      }
    }
    this.rndisComplete(p, ok);
  }

  private control(source: MessageSource, offset: number, length: number): void {
    if (length > 4096) return this.refuse("control-too-long");
    const msg = new Uint8Array(length);
    if (!source.read(offset, msg)) return this.refuse("control-unreadable");
    const reply = this.rndis.handle(msg);
    if (reply !== null) this.queueControl(reply);
  }

  private queueControl(bytes: Uint8Array): void {
    if (this.controlQueue.length >= CONTROL_QUEUE) return this.refuse("control-queue-full");
    this.controlQueue.push({ bytes, control: true });
    this.flushReceive();
  }

  private onGuestCompletion(p: ReceivedPacket): void {
    // The guest returns each transfer-page packet with SEND_RNDIS_PKT_COMPLETE; its sections are free again.
    const sections = p.transactionId.hi === 0 ? this.inFlight.get(p.transactionId.lo) : undefined;
    if (sections === undefined) return this.refuse("completion-unknown");
    this.inFlight.delete(p.transactionId.lo);
    if (this.recv !== null) for (const s of sections) this.recv.free.push(s);
    this.flushReceive();
  }

  /** Whether the guest asked for this frame (its packet filter) and the link is up. */
  private accepts(frame: Uint8Array): boolean {
    if (frame.length < ETHERNET_HEADER) return this.drop("runt");
    if (!this.rndis.linkUp) return this.drop("link-down");
    if (this.phase !== "ready" || this.rndis.state !== "initialized") return this.drop("not-ready");
    const filter = this.rndis.packetFilter;
    if ((filter & NDIS_PACKET_TYPE_PROMISCUOUS) !== 0) return true;
    const d = frame;
    if ((d[0]! & 1) === 0) {
      const mine = this.mac.every((b, i) => d[i] === b);
      return (filter & NDIS_PACKET_TYPE_DIRECTED) !== 0 && mine ? true : this.drop("filter");
    }
    const broadcast =
      d[0] === 0xff && d[1] === 0xff && d[2] === 0xff && d[3] === 0xff && d[4] === 0xff && d[5] === 0xff;
    if (broadcast) return (filter & NDIS_PACKET_TYPE_BROADCAST) !== 0 ? true : this.drop("filter");
    // No multicast list is kept (Linux never sets one): MULTICAST passes every group address, as ALL_MULTICAST.
    const multicast = NDIS_PACKET_TYPE_MULTICAST | NDIS_PACKET_TYPE_ALL_MULTICAST;
    return (filter & multicast) !== 0 ? true : this.drop("filter");
  }

  /** Moves queued control answers, then frames, into free receive sections and sends them to the guest. */
  private flushReceive(): void {
    const recv = this.recv;
    if (recv === null || this.phase !== "ready" || this.ringFull) return;
    while (this.controlQueue.length > 0 && recv.free.length > 0) {
      const m = this.controlQueue[0]!;
      if (!this.deliver([m.bytes], CHANNEL_TYPE_CONTROL)) return;
      this.controlQueue.shift();
    }
    while (this.rxQueue.length > 0 && recv.free.length > 0) {
      const batch: Uint8Array[] = [];
      const n = Math.min(this.rxQueue.length, recv.free.length, MAX_RANGES_PER_PACKET);
      for (let i = 0; i < n; i++) batch.push(receiveMessage(this.rxQueue[i]!));
      const oversize = batch.findIndex((m) => m.length > recv.sectionBytes);
      if (oversize >= 0) {
        // Longer than the guest's configured frame size: it could not take it.
        this.rxQueue.splice(oversize, 1);
        this.rndis.counters.rcvError++;
        this.drop("too-long");
        continue;
      }
      if (!this.deliver(batch, CHANNEL_TYPE_DATA)) return;
      for (let i = 0; i < n; i++) this.counters.rxBytes += this.rxQueue[i]!.length;
      this.rxQueue.splice(0, n);
      this.counters.rxFrames += n;
      this.rndis.counters.rcvOk += n;
    }
  }

  /** One transfer-page packet with `messages` in fresh sections; false (nothing kept) when the ring is full. */
  private deliver(messages: Uint8Array[], channelType: number): boolean {
    const recv = this.recv!;
    const sections: number[] = [];
    const ranges: TransferRange[] = [];
    for (const m of messages) {
      const s = recv.free.pop()!;
      sections.push(s);
      const at = s * recv.sectionBytes;
      if (!recv.list.write(at, m)) {
        // The guest tore the buffer down under us (the list is detached): nothing more can be delivered.
        for (const back of sections) recv.free.push(back);
        this.refuse("receive-buffer-gone");
        this.recv = null;
        this.phase = "negotiated";
        return false;
      }
      ranges.push({ byteCount: m.length, byteOffset: at });
    }
    const payload = nvspMessage(NvspType.SendRndisPacket);
    payload.view.setUint32(RNDIS_PKT_CHANNEL_TYPE, channelType, true);
    payload.view.setUint32(RNDIS_PKT_SECTION_INDEX, NO_SECTION, true);
    payload.view.setUint32(RNDIS_PKT_SECTION_SIZE, 0, true);
    const id = this.nextTransaction;
    this.nextTransaction = this.nextTransaction >= 0xffff_ffff ? 1 : this.nextTransaction + 1;
    const status = this.channel.sendTransferPages(
      RECEIVE_BUFFER_ID,
      ranges,
      payload.bytes,
      { lo: id, hi: 0 },
      true,
    );
    if (status === "ok") {
      this.inFlight.set(id, sections);
      return true;
    }
    for (const back of sections) recv.free.push(back);
    if (status === "full") this.ringFull = true;
    else this.refuse(`receive-send-${status}`);
    return false;
  }

  inspect(): Record<string, unknown> {
    return {
      relid: this.channel.relid,
      phase: this.phase,
      nvsp: this.version === 0 ? null : `${this.version >>> 16}.${this.version & 0xffff}`,
      rndis: this.rndis.state,
      link: this.rndis.linkUp ? "up" : "down",
      packetFilter: this.rndis.packetFilter,
      receiveSections: this.recv
        ? { size: this.recv.sectionBytes, count: this.recv.sections, free: this.recv.free.length }
        : null,
      sendSections: this.send?.sections ?? null,
      rxQueued: this.rxQueue.length,
      counters: {
        ...this.counters,
        rxDropped: { ...this.counters.rxDropped },
        refused: { ...this.counters.refused },
      },
      nic: { ...this.rndis.counters },
      rndisRefused: { ...this.rndis.refused },
    };
  }
}
