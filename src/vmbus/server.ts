// Owns: the root-side VMBus control plane of one partition: the message ports (connection ids 1 and 4),
// version negotiation (2.4 to 5.3), offers and ALLOFFERS_DELIVERED, GPADL creation and teardown, channel
// open/close, MODIFYCHANNEL, host rescind and RELID_RELEASED, UNLOAD, the outgoing message queue to SINT 2 of
// the guest's chosen VP, one event port per channel, and the counters of everything it refused.
// Must not: know any device (a VSP offers itself through `offer`), touch guest memory except through
// validated page lists, throw, loop or allocate without bound on guest input (every message is checked for
// size and state first; each refusal is an answer or a drop with a counter, listed in docs/architecture.md).
// Spec: ../shared/research/hyperv-linux-guest-checklist.md sections 4 and 6 (Linux 6.1 drivers/hv/
// connection.c, channel_mgmt.c, channel.c, vmbus_drv.c; include/linux/hyperv.h).

import type { GuestMemory } from "../memory/guest-memory.js";
import { PAGE_SIZE } from "../memory/guest-memory.js";
import { formatGuid, guidEquals } from "../support/ms-guid.js";
import { HV_STATUS_INSUFFICIENT_BUFFERS, HV_STATUS_SUCCESS } from "../hv/tlfs.js";
import type { ChannelHandler, VmbusChannel, VmbusOffer } from "./channel-api.js";
import { Channel, type ChannelHost, type ChannelInspection } from "./channel.js";
import { GpadlTable, type GpadlOutcome } from "./gpadl.js";
import * as P from "./protocol.js";
import { Msg } from "./protocol.js";
import { InboundRing, OutboundRing } from "./ring.js";

/** The root side of a partition the server needs (`Partition` satisfies it). */
export interface VmbusPartition {
  readonly memory: GuestMemory;
  readonly vpCount: number;
  registerMessagePort(
    connectionId: number,
    handler: (vpIndex: number, messageType: number, payload: Uint8Array) => number,
  ): void;
  unregisterMessagePort(connectionId: number): void;
  registerEventPort(
    connectionId: number,
    handler: (vpIndex: number, flag: number) => void,
    flagCount?: number,
  ): void;
  unregisterEventPort(connectionId: number): void;
  postMessageToGuest(vpIndex: number, sint: number, messageType: number, payload: Uint8Array): number;
  signalGuestEvent(vpIndex: number, sint: number, flag: number): number;
}

/** Relids Linux accepts (MAX_CHANNEL_RELIDS = 2048; 0 is reserved). */
export const MAX_RELID = 2047;
/** A channel's event connection id is this plus its relid. */
export const CHANNEL_CONNECTION_BASE = 0x10000;
/** Messages waiting for the guest's SIMP slot beyond which new guest messages get INSUFFICIENT_BUFFERS. */
export const OUTBOX_LIMIT = 64;
const DEFAULT_RING_MIN = 2 * PAGE_SIZE;
const DEFAULT_RING_MAX = 16 << 20;

interface Connection {
  version: number;
  offersRequested: boolean;
}

export interface VmbusServerOptions {
  partition: VmbusPartition;
  /** Where notable events go (version negotiated, unload); default nowhere. */
  log?: (line: string) => void;
}

export interface VmbusInspection {
  connected: boolean;
  version: string | null;
  messageVp: number;
  offersRequested: boolean;
  channels: ChannelInspection[];
  gpadls: number;
  gpadlPages: number;
  outbox: number;
  messagesReceived: number;
  messagesSent: number;
  /** Guest messages refused with INSUFFICIENT_BUFFERS (outbox full: the guest does not read its messages). */
  busyRefusals: number;
  /** Messages the SynIC could not take (SynIC or SIMP off): dropped. */
  undeliverable: number;
  /** Guest messages dropped, by reason. */
  dropped: Record<string, number>;
  /** Guest requests answered with a failure (GPADL_CREATED, OPENCHANNEL_RESULT, VERSION_RESPONSE...), by reason. */
  refused: Record<string, number>;
  /** Signals on event connection ids of channels that no longer exist. */
  strayEvents: number;
}

export class VmbusServer {
  private readonly partition: VmbusPartition;
  private readonly log: (line: string) => void;
  private readonly channels = new Map<number, Channel>();
  private connection: Connection | null = null;
  private gpadlTable: GpadlTable;
  /** The VP that receives messages (INITIATE_CONTACT target_vcpu for versions >= 3.0, else 0). */
  private messageVp = 0;
  private readonly outbox: Uint8Array[] = [];
  private readonly channelHost: ChannelHost;
  private messagesReceived = 0;
  private messagesSent = 0;
  private busyRefusals = 0;
  private undeliverable = 0;
  private strayEvents = 0;
  private readonly dropped = new Map<string, number>();
  private readonly refused = new Map<string, number>();
  private disposed = false;

  constructor(options: VmbusServerOptions) {
    this.partition = options.partition;
    this.log = options.log ?? (() => undefined);
    this.gpadlTable = new GpadlTable(this.partition.memory);
    this.channelHost = {
      memory: this.partition.memory,
      gpadls: () => this.gpadlTable,
      signalGuest: (vp, relid) => {
        this.partition.signalGuestEvent(vp, P.VMBUS_SINT, relid);
      },
      revoke: (channel) => this.revoke(channel),
    };
    for (const id of [P.MESSAGE_CONNECTION_ID, P.MESSAGE_CONNECTION_ID_4]) {
      this.partition.registerMessagePort(id, (vp, type, payload) => this.onMessage(vp, type, payload));
    }
  }

  get version(): number | null {
    return this.connection?.version ?? null;
  }

  /**
   * Registers a device: it gets a relid and an event connection id now and is offered to the guest at its
   * REQUESTOFFERS (at once when the guest already asked). Throws on a malformed offer (a host bug).
   */
  offer(offer: VmbusOffer, handler: ChannelHandler): VmbusChannel {
    if (this.disposed) throw new Error("VMBus server disposed");
    if (offer.classId.length !== 16 || offer.instanceId.length !== 16)
      throw new Error("offer GUIDs must be 16 bytes");
    if ((offer.userDefined?.length ?? 0) > P.USER_DEFINED_SIZE)
      throw new Error("offer user data over 120 bytes");
    if (((offer.channelFlags ?? 0) & P.CHANNEL_FLAG_TLNPI_PROVIDER) !== 0)
      throw new Error("hv_sock offers are not supported");
    if (!(offer.maxGuestPacketBytes >= 24 && offer.maxGuestPacketBytes <= 0xffff * 8)) {
      throw new Error(`bad maxGuestPacketBytes ${offer.maxGuestPacketBytes}`);
    }
    for (const c of this.channels.values()) {
      if (guidEquals(c.offer.instanceId, offer.instanceId)) {
        throw new Error(`instance ${formatGuid(offer.instanceId)} is already offered`);
      }
    }
    let relid = 1;
    while (this.channels.has(relid)) relid++;
    if (relid > MAX_RELID) throw new Error("no free relid");
    const channel = new Channel(relid, CHANNEL_CONNECTION_BASE + relid, offer, handler, this.channelHost);
    this.channels.set(relid, channel);
    this.partition.registerEventPort(channel.connectionId, () => this.onEvent(channel));
    if (this.connection?.offersRequested) {
      this.sendOffer(channel);
      this.flush();
    }
    return channel;
  }

  /** Delivers queued messages the guest's SIMP slot could not take yet; the run loop calls it each turn. */
  poll(): void {
    this.flush();
  }

  /** Unregisters the ports and closes every channel (the VM is being torn down). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.reset();
    for (const id of [P.MESSAGE_CONNECTION_ID, P.MESSAGE_CONNECTION_ID_4])
      this.partition.unregisterMessagePort(id);
    for (const c of this.channels.values()) this.partition.unregisterEventPort(c.connectionId);
    this.channels.clear();
  }

  // ---------------------------------------------------------------- guest messages

  private drop(reason: string): number {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
    return HV_STATUS_SUCCESS;
  }

  private refuse(reason: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
  }

  /** HvPostMessage to connection id 1 or 4. The payload is the hypercall's own copy. */
  private onMessage(_vp: number, messageType: number, payload: Uint8Array): number {
    if (this.outbox.length >= OUTBOX_LIMIT) {
      // The guest is not taking its messages; it retries (Linux vmbus_post_msg backs off on this status).
      this.flush();
      if (this.outbox.length >= OUTBOX_LIMIT) {
        this.busyRefusals++;
        return HV_STATUS_INSUFFICIENT_BUFFERS;
      }
    }
    this.messagesReceived++;
    if (messageType !== P.VMBUS_HV_MESSAGE_TYPE) return this.drop("hv-message-type");
    if (payload.length < P.HEADER_SIZE) return this.drop("short");
    const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
    const type = view.getUint32(0, true);
    const min = P.GUEST_MESSAGE_MIN_SIZE[type];
    if (min === undefined) return this.drop(`type-${P.MESSAGE_NAMES[type] ?? type}`);
    if (payload.length < min) return this.drop("short");
    if (type !== Msg.InitiateContact && type !== Msg.Unload && this.connection === null) {
      return this.drop("not-connected");
    }
    switch (type) {
      case Msg.InitiateContact:
        this.initiateContact(view);
        break;
      case Msg.RequestOffers:
        this.requestOffers();
        break;
      case Msg.GpadlHeader:
        this.gpadlHeader(view, payload);
        break;
      case Msg.GpadlBody:
        this.gpadlResult(
          this.gpadlTable.append(view.getUint32(P.GB_GPADL, true), payload.subarray(P.GB_DATA)),
          view.getUint32(P.GB_GPADL, true),
        );
        break;
      case Msg.GpadlTeardown:
        this.gpadlTeardown(view.getUint32(P.GH_RELID, true), view.getUint32(P.GH_GPADL, true));
        break;
      case Msg.OpenChannel:
        this.openChannel(view, payload);
        break;
      case Msg.CloseChannel:
        this.closeChannel(view.getUint32(8, true));
        break;
      case Msg.RelidReleased:
        this.relidReleased(view.getUint32(8, true));
        break;
      case Msg.Unload:
        this.unload();
        break;
      case Msg.ModifyChannel:
        this.modifyChannel(view.getUint32(8, true), view.getUint32(12, true));
        break;
    }
    this.flush();
    return HV_STATUS_SUCCESS;
  }

  private initiateContact(view: DataView): void {
    const version = view.getUint32(P.IC_VERSION, true);
    const target = version >= P.VERSION_WIN8_1 ? view.getUint32(P.IC_TARGET_VCPU, true) : 0;
    if (target >= this.partition.vpCount) {
      this.drop("bad-target-vp");
      return;
    }
    // A new contact ends any previous connection (a kexec'd or crash kernel starts over).
    this.reset();
    this.messageVp = target;
    const supported =
      P.SUPPORTED_VERSIONS.includes(version) &&
      (version < P.VERSION_WIN10_V5 || view.getUint8(P.IC_MSG_SINT) === P.VMBUS_SINT);
    const m = P.newMessage(Msg.VersionResponse, P.VERSION_RESPONSE_SIZE);
    if (supported) {
      m.view.setUint8(P.VR_SUPPORTED, 1);
      m.view.setUint32(P.VR_MSG_CONN_ID, P.MESSAGE_CONNECTION_ID, true);
      this.connection = { version, offersRequested: false };
      this.log(`vmbus: guest connected with version ${P.formatVersion(version)}`);
    } else {
      this.refuse("unsupported-version");
    }
    this.queue(m.bytes);
  }

  private requestOffers(): void {
    const conn = this.connection!;
    if (conn.offersRequested) {
      this.drop("repeated-requestoffers");
      return;
    }
    conn.offersRequested = true;
    for (const c of [...this.channels.values()].sort((a, b) => a.relid - b.relid)) {
      if (!c.rescinded) this.sendOffer(c);
    }
    this.queue(P.newMessage(Msg.AllOffersDelivered, P.HEADER_SIZE).bytes);
  }

  private sendOffer(c: Channel): void {
    const m = P.newMessage(Msg.OfferChannel, P.OFFER_SIZE);
    m.bytes.set(c.offer.classId, P.OFFER_CLASS);
    m.bytes.set(c.offer.instanceId, P.OFFER_INSTANCE);
    m.view.setUint16(P.OFFER_FLAGS, c.offer.channelFlags ?? 0, true);
    m.view.setUint16(P.OFFER_MMIO_MB, c.offer.mmioMegabytes ?? 0, true);
    if (c.offer.userDefined !== undefined) m.bytes.set(c.offer.userDefined, P.OFFER_USER_DEFINED);
    m.view.setUint32(P.OFFER_RELID, c.relid, true);
    // No monitor pages: the guest kicks through HvSignalEvent on the channel's own connection id.
    m.view.setUint16(P.OFFER_DEDICATED_INTERRUPT, 1, true);
    m.view.setUint32(P.OFFER_CONNECTION_ID, c.connectionId, true);
    c.offered = true;
    this.queue(m.bytes);
  }

  /** A channel the guest may address with GPADLs and OPENCHANNEL: offered, neither rescinded nor released. */
  private liveChannel(relid: number): Channel | null {
    const c = this.channels.get(relid);
    return c !== undefined && c.offered && !c.rescinded && !c.released ? c : null;
  }

  private gpadlHeader(view: DataView, payload: Uint8Array): void {
    const relid = view.getUint32(P.GH_RELID, true);
    const handle = view.getUint32(P.GH_GPADL, true);
    if (this.liveChannel(relid) === null) {
      this.drop("gpadl-unknown-relid");
      return;
    }
    const outcome = this.gpadlTable.begin(
      handle,
      relid,
      view.getUint16(P.GH_RANGE_COUNT, true),
      view.getUint16(P.GH_RANGE_BUFLEN, true),
      payload.subarray(P.GH_RANGES),
    );
    this.gpadlResult(outcome, handle);
  }

  private gpadlResult(outcome: GpadlOutcome, handle: number): void {
    switch (outcome.kind) {
      case "pending":
        return;
      case "dropped":
        this.drop(outcome.reason);
        return;
      case "created":
        this.queue(this.gpadlCreated(outcome.gpadl.relid, handle, 0));
        return;
      case "failed":
        this.refuse(outcome.reason);
        this.queue(this.gpadlCreated(outcome.relid, handle, P.STATUS_UNSUCCESSFUL));
        return;
    }
  }

  private gpadlCreated(relid: number, handle: number, status: number): Uint8Array {
    const m = P.newMessage(Msg.GpadlCreated, P.GPADL_CREATED_SIZE);
    m.view.setUint32(8, relid, true);
    m.view.setUint32(12, handle, true);
    m.view.setUint32(16, status, true);
    return m.bytes;
  }

  private gpadlTorndown(handle: number): Uint8Array {
    const m = P.newMessage(Msg.GpadlTorndown, P.GPADL_TORNDOWN_SIZE);
    m.view.setUint32(8, handle, true);
    return m.bytes;
  }

  private gpadlTeardown(relid: number, handle: number): void {
    const g = this.gpadlTable.get(handle);
    if (g === undefined || g.relid !== relid) {
      this.drop("teardown-unknown-gpadl");
      return;
    }
    if (g.ringOf !== null) {
      // Linux closes a channel before tearing its ring down; a guest that does not waits for the close.
      if (g.teardownPending) this.drop("repeated-teardown");
      g.teardownPending = true;
      return;
    }
    this.gpadlTable.remove(g);
    this.queue(this.gpadlTorndown(handle));
  }

  private openChannel(view: DataView, payload: Uint8Array): void {
    const relid = view.getUint32(P.OC_RELID, true);
    const c = this.liveChannel(relid);
    if (c === null) {
      this.drop("open-unknown-relid");
      return;
    }
    const openId = view.getUint32(P.OC_OPENID, true);
    const problem = this.tryOpen(
      c,
      view.getUint32(P.OC_GPADL, true),
      view.getUint32(P.OC_TARGET_VP, true),
      view.getUint32(P.OC_DOWNSTREAM_OFFSET, true),
      payload.slice(P.OC_USER_DATA, P.OC_USER_DATA + P.USER_DEFINED_SIZE),
    );
    if (problem !== null) this.refuse(problem);
    const m = P.newMessage(Msg.OpenChannelResult, P.OPEN_RESULT_SIZE);
    m.view.setUint32(8, relid, true);
    m.view.setUint32(12, openId, true);
    m.view.setUint32(16, problem === null ? 0 : P.STATUS_UNSUCCESSFUL, true);
    this.queue(m.bytes);
  }

  /** Opens `c` on the rings in GPADL `handle`; null on success, else why not. */
  private tryOpen(
    c: Channel,
    handle: number,
    targetVp: number,
    downstream: number,
    userData: Uint8Array,
  ): string | null {
    if (c.open !== null) return "open-already-open";
    if (targetVp >= this.partition.vpCount) return "open-bad-target-vp";
    const g = this.gpadlTable.get(handle);
    if (g === undefined || g.relid !== c.relid || g.state !== "ready" || g.list === null)
      return "open-bad-gpadl";
    if (g.ringOf !== null || g.teardownPending) return "open-gpadl-in-use";
    const range = g.ranges!.length === 1 ? g.ranges![0]! : null;
    if (range === null || range.offset !== 0 || range.length % PAGE_SIZE !== 0) return "open-bad-ring-layout";
    const pages = range.length / PAGE_SIZE;
    // Each ring is a header page and at least one data page.
    if (downstream < 2 || pages - downstream < 2) return "open-bad-ring-layout";
    const limits = c.offer.ringBytes ?? { min: DEFAULT_RING_MIN, max: DEFAULT_RING_MAX };
    for (const bytes of [downstream * PAGE_SIZE, (pages - downstream) * PAGE_SIZE]) {
      if (bytes < limits.min || bytes > limits.max) return "open-ring-size";
    }
    const inPages = c.buffer([
      { pfns: range.pfns.slice(0, downstream), offset: 0, length: downstream * PAGE_SIZE },
    ]);
    const outPages = c.buffer([
      { pfns: range.pfns.slice(downstream), offset: 0, length: (pages - downstream) * PAGE_SIZE },
    ]);
    if (typeof inPages === "string" || typeof outPages === "string") return "open-bad-gpadl";
    const inbound = InboundRing.attach(inPages);
    const outbound = OutboundRing.attach(outPages);
    if (inbound === null || outbound === null) return "open-bad-ring-index";
    g.ringOf = c.relid;
    if (!c.attach(g, inbound, outbound, targetVp, userData)) {
      g.ringOf = null;
      return "open-refused-by-device";
    }
    return null;
  }

  /** Closes `c` (no message to the guest) and finishes a teardown of its ring the guest asked for meanwhile. */
  private close(c: Channel): void {
    const g = c.detach();
    if (g === null) return;
    g.ringOf = null;
    if (g.teardownPending && this.gpadlTable.get(g.handle) === g) {
      this.gpadlTable.remove(g);
      this.queue(this.gpadlTorndown(g.handle));
    }
  }

  private closeChannel(relid: number): void {
    const c = this.channels.get(relid);
    if (c === undefined || c.open === null) {
      this.drop("close-not-open");
      return;
    }
    this.close(c);
  }

  private relidReleased(relid: number): void {
    const c = this.channels.get(relid);
    if (c === undefined || !c.offered || c.released) {
      this.drop("release-unknown-relid");
      return;
    }
    this.close(c);
    if (c.rescinded) this.remove(c);
    else c.released = true;
  }

  private unload(): void {
    this.reset();
    this.log("vmbus: guest unloaded");
    this.queue(P.newMessage(Msg.UnloadResponse, P.HEADER_SIZE).bytes);
  }

  private modifyChannel(relid: number, targetVp: number): void {
    const version = this.connection!.version;
    const c = this.liveChannel(relid);
    if (version < P.VERSION_WIN10_V4_1 || c === null) {
      this.drop("modify-unknown-relid");
      return;
    }
    const ok = targetVp < this.partition.vpCount && c.setTargetVp(targetVp);
    if (!ok) this.refuse("modify-bad-target");
    if (version >= P.VERSION_WIN10_V5_3) {
      const m = P.newMessage(Msg.ModifyChannelResponse, P.MODIFY_RESPONSE_SIZE);
      m.view.setUint32(8, relid, true);
      m.view.setInt32(12, ok ? 0 : P.STATUS_UNSUCCESSFUL | 0, true);
      this.queue(m.bytes);
    }
  }

  // ---------------------------------------------------------------- host side

  /** Host rescind (hot remove) of a channel. */
  private revoke(c: Channel): void {
    if (this.channels.get(c.relid) !== c || c.rescinded) return;
    this.close(c);
    if (this.connection !== null && c.offered && !c.released) {
      c.rescinded = true;
      const m = P.newMessage(Msg.RescindChannelOffer, 12);
      m.view.setUint32(8, c.relid, true);
      this.queue(m.bytes);
      this.flush();
    } else {
      this.remove(c);
    }
  }

  /** Forgets a channel: its relid and event port are free again, its GPADLs gone. */
  private remove(c: Channel): void {
    this.close(c);
    for (const g of [...this.gpadlTable.all()]) if (g.relid === c.relid) this.gpadlTable.remove(g);
    this.channels.delete(c.relid);
    this.partition.unregisterEventPort(c.connectionId);
  }

  /** Ends the connection: every channel closes, GPADLs go, rescinded channels are forgotten. */
  private reset(): void {
    for (const c of [...this.channels.values()]) {
      this.close(c);
      if (c.rescinded) this.remove(c);
      c.offered = false;
      c.released = false;
    }
    this.gpadlTable.clear();
    this.connection = null;
  }

  private onEvent(c: Channel): void {
    if (this.channels.get(c.relid) !== c) {
      this.strayEvents++;
      return;
    }
    c.guestSignal();
  }

  // ---------------------------------------------------------------- messages to the guest

  private queue(message: Uint8Array): void {
    this.outbox.push(message);
  }

  private flush(): void {
    while (this.outbox.length > 0) {
      const status = this.partition.postMessageToGuest(
        this.messageVp,
        P.VMBUS_SINT,
        P.VMBUS_HV_MESSAGE_TYPE,
        this.outbox[0]!,
      );
      if (status === HV_STATUS_INSUFFICIENT_BUFFERS) return;
      this.outbox.shift();
      if (status === HV_STATUS_SUCCESS) this.messagesSent++;
      else this.undeliverable++;
    }
  }

  // ---------------------------------------------------------------- inspection

  inspect(): VmbusInspection {
    const sorted = (m: Map<string, number>): Record<string, number> =>
      Object.fromEntries([...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    return {
      connected: this.connection !== null,
      version: this.connection === null ? null : P.formatVersion(this.connection.version),
      messageVp: this.messageVp,
      offersRequested: this.connection?.offersRequested ?? false,
      channels: [...this.channels.values()].sort((a, b) => a.relid - b.relid).map((c) => c.inspect()),
      gpadls: this.gpadlTable.size,
      gpadlPages: this.gpadlTable.pages,
      outbox: this.outbox.length,
      messagesReceived: this.messagesReceived,
      messagesSent: this.messagesSent,
      busyRefusals: this.busyRefusals,
      undeliverable: this.undeliverable,
      dropped: sorted(this.dropped),
      refused: sorted(this.refused),
      strayEvents: this.strayEvents,
    };
  }
}
