// Owns: the integration-component (IC) framework every Hyper-V IC shares: the pipe and IC message headers,
// version negotiation (framework 3.0/1.0 and each IC's message versions, the guest picking from the host's
// lists), host-initiated transactions (one outstanding request at a time, matched by the packet transaction
// id, with a timeout in partition time), and the IC's state for inspect().
// Must not: trust a guest response's sizes (every field is checked against the received payload before it is
// read; nothing the guest sends can throw), queue requests without bound, or know the VMBus server (it holds a
// channel only).
// Spec: ../shared/research/hyperv-linux-guest-checklist.md 9.1-9.2 (Linux 6.1 include/linux/hyperv.h
// struct vmbuspipe_hdr / icmsg_hdr / icmsg_negotiate, drivers/hv/channel_mgmt.c vmbus_prep_negotiate_resp).

import type {
  ChannelHandler,
  ReceivedPacket,
  TransactionId,
  VmbusChannel,
  VmbusOffer,
} from "../../vmbus/channel-api.js";

/** What an IC needs to offer itself (the VMBus server satisfies it). */
export interface ChannelOfferer {
  offer(offer: VmbusOffer, handler: ChannelHandler): VmbusChannel;
}

/** An IC version {major, minor}. */
export interface IcVersion {
  readonly major: number;
  readonly minor: number;
}

export const enum IcMessageType {
  Negotiate = 0,
  Heartbeat = 1,
  KvpExchange = 2,
  Shutdown = 3,
  TimeSync = 4,
}

/** vmbuspipe_hdr (8 bytes) + icmsg_hdr (20 bytes): the body starts here. */
export const ICMSG_HDR = 28;
const PIPE_FLAGS_DATA = 1;
export const IC_FLAG_TRANSACTION = 1;
export const IC_FLAG_REQUEST = 2;
export const IC_FLAG_RESPONSE = 4;
export const HV_S_OK = 0;
export const HV_E_FAIL = 0x80004005;
/** Framework versions the host offers, preferred first (Linux knows 3.0 and 1.0). */
export const FRAMEWORK_VERSIONS: readonly IcVersion[] = [
  { major: 3, minor: 0 },
  { major: 1, minor: 0 },
];
/** The IC pipe mode offers carry: flags ENUMERATE_DEVICE_INTERFACE | NAMED_PIPE_MODE, user data pipe mode 1. */
export const IC_CHANNEL_FLAGS = 0x0011;
/** hv_utils reads each packet into a 4 KiB buffer (VMBUS_DEFAULT_MAX_PKT_SIZE); KVP into 16 KiB. */
export const IC_MAX_PACKET = 4096;
/** Default wait for a guest answer (partition time). */
export const IC_TIMEOUT_NS = 10_000_000_000;

export type IcState =
  /** The guest has not opened the channel (no driver, or it closed it). */
  | "closed"
  /** Open; the host's NEGOTIATE waits for the guest's answer. */
  | "negotiating"
  /** Negotiated: requests flow. */
  | "ready"
  /** The guest shares no version with the host. */
  | "unsupported";

/** A parsed IC response. */
export interface IcResponse {
  readonly messageType: number;
  readonly status: number;
  /** The bytes after the IC header (host-owned). */
  readonly body: Uint8Array;
}

interface Outstanding {
  readonly id: number;
  readonly messageType: number;
  readonly sentNs: number;
  readonly timeoutNs: number;
  readonly done: (response: IcResponse | null) => void;
}

export interface IcInspection {
  name: string;
  state: IcState;
  frameworkVersion: string | null;
  messageVersion: string | null;
  requests: number;
  responses: number;
  timeouts: number;
  /** Responses that matched no request or were malformed. */
  badResponses: number;
  failures: number;
}

const fmt = (v: IcVersion | null): string | null => (v === null ? null : `${v.major}.${v.minor}`);

/**
 * One IC over one channel. Subclasses give the offer and message versions, send requests with `transact`, and
 * react in `ready()` (negotiation done) and `tick(nowNs)` (timers, called from the owner's poll).
 */
export abstract class IcService implements ChannelHandler {
  readonly name: string;
  protected readonly channel: VmbusChannel;
  private readonly messageType: IcMessageType;
  private readonly messageVersions: readonly IcVersion[];
  /** Partition time in ns. */
  protected readonly clock: () => number;
  state: IcState = "closed";
  frameworkVersion: IcVersion | null = null;
  messageVersion: IcVersion | null = null;
  private outstanding: Outstanding | null = null;
  private nextId = 1;
  private icTransaction = 0;
  requests = 0;
  responses = 0;
  timeouts = 0;
  badResponses = 0;
  failures = 0;

  constructor(
    offerer: ChannelOfferer,
    offer: Omit<VmbusOffer, "channelFlags" | "userDefined">,
    messageType: IcMessageType,
    messageVersions: readonly IcVersion[],
    clock: () => number,
  ) {
    this.name = offer.name;
    this.messageType = messageType;
    this.messageVersions = messageVersions;
    this.clock = clock;
    const userDefined = new Uint8Array(4);
    userDefined[0] = 1;
    this.channel = offerer.offer({ ...offer, channelFlags: IC_CHANNEL_FLAGS, userDefined }, this);
  }

  /** Whether a request can be sent now (negotiated, nothing outstanding). */
  get idle(): boolean {
    return this.state === "ready" && this.outstanding === null;
  }

  onOpen(): boolean {
    this.state = "negotiating";
    this.frameworkVersion = this.messageVersion = null;
    this.outstanding = null;
    const versions = [...FRAMEWORK_VERSIONS, ...this.messageVersions];
    const body = new Uint8Array(8 + versions.length * 4);
    const v = new DataView(body.buffer);
    v.setUint16(0, FRAMEWORK_VERSIONS.length, true);
    v.setUint16(2, this.messageVersions.length, true);
    versions.forEach((x, i) => {
      v.setUint16(8 + i * 4, x.major, true);
      v.setUint16(10 + i * 4, x.minor, true);
    });
    // The guest may answer much later (KVP answers only once its daemon runs): no timeout for negotiation.
    this.send(IcMessageType.Negotiate, { major: 0, minor: 0 }, body, Infinity, (r) => this.negotiated(r));
    return true;
  }

  private negotiated(r: IcResponse | null): void {
    if (r === null) return;
    const b = r.body;
    if (b.length < 8) {
      this.badResponses++;
      this.state = "unsupported";
      return;
    }
    const v = new DataView(b.buffer, b.byteOffset, b.length);
    const fwCount = v.getUint16(0, true);
    const msgCount = v.getUint16(2, true);
    if (r.status !== HV_S_OK || fwCount < 1 || msgCount < 1 || b.length < 8 + 8) {
      this.state = "unsupported";
      return;
    }
    // The guest's choice: framework version first, then the message version (one of each).
    const fw = { major: v.getUint16(8, true), minor: v.getUint16(10, true) };
    const msg = { major: v.getUint16(8 + fwCount * 4, true), minor: v.getUint16(10 + fwCount * 4, true) };
    const known = (x: IcVersion, list: readonly IcVersion[]) =>
      list.some((y) => y.major === x.major && y.minor === x.minor);
    if (
      b.length < 8 + (fwCount + msgCount) * 4 ||
      !known(fw, FRAMEWORK_VERSIONS) ||
      !known(msg, this.messageVersions)
    ) {
      this.badResponses++;
      this.state = "unsupported";
      return;
    }
    this.frameworkVersion = fw;
    this.messageVersion = msg;
    this.state = "ready";
    this.ready();
  }

  /** Partition time of this IC's next timer (a request timeout, or the subclass's own), Infinity if none. */
  nextDeadlineNs(): number {
    const o = this.outstanding;
    return o === null ? Infinity : o.sentNs + o.timeoutNs;
  }

  /** Negotiation finished: subclasses start their work. */
  protected ready(): void {}

  /** Periodic work at partition time `nowNs`; subclasses extend it (call super). */
  tick(nowNs: number): void {
    const o = this.outstanding;
    if (o !== null && nowNs - o.sentNs >= o.timeoutNs) {
      this.outstanding = null;
      this.timeouts++;
      o.done(null);
    }
  }

  /**
   * Sends a request of this IC's message type; `done` gets the response, or null on timeout or close.
   * False when not ready, busy, or the ring is full.
   */
  protected transact(
    body: Uint8Array,
    done: (response: IcResponse | null) => void,
    timeoutNs = IC_TIMEOUT_NS,
  ): boolean {
    if (!this.idle) return false;
    return this.send(this.messageType, this.messageVersion!, body, timeoutNs, done);
  }

  private send(
    type: IcMessageType,
    msgVersion: IcVersion,
    body: Uint8Array,
    timeoutNs: number,
    done: (response: IcResponse | null) => void,
  ): boolean {
    const payload = new Uint8Array(ICMSG_HDR + body.length);
    const v = new DataView(payload.buffer);
    v.setUint32(0, PIPE_FLAGS_DATA, true);
    v.setUint32(4, payload.length - 8, true);
    const fw = type === IcMessageType.Negotiate ? FRAMEWORK_VERSIONS[0]! : this.frameworkVersion!;
    v.setUint16(8, fw.major, true);
    v.setUint16(10, fw.minor, true);
    v.setUint16(12, type, true);
    v.setUint16(14, msgVersion.major, true);
    v.setUint16(16, msgVersion.minor, true);
    v.setUint16(18, body.length, true);
    this.icTransaction = (this.icTransaction + 1) & 0xff;
    v.setUint8(24, this.icTransaction);
    v.setUint8(25, IC_FLAG_TRANSACTION | IC_FLAG_REQUEST);
    payload.set(body, ICMSG_HDR);
    const id = this.nextId++;
    const tid: TransactionId = { lo: id >>> 0, hi: 0 };
    if (this.channel.sendInband(payload, tid, false) !== "ok") return false;
    this.requests++;
    this.outstanding = { id, messageType: type, sentNs: this.clock(), timeoutNs, done };
    return true;
  }

  onReadable(): void {
    let p: ReceivedPacket | null;
    // Each guest packet is at most one response; a flood is bounded by the ring and dropped as unmatched.
    while ((p = this.channel.receive()) !== null) this.received(p);
  }

  private received(p: ReceivedPacket): void {
    const o = this.outstanding;
    const b = p.payload;
    if (
      p.type !== "inband" ||
      b.length < ICMSG_HDR ||
      o === null ||
      p.transactionId.lo !== o.id ||
      p.transactionId.hi !== 0
    ) {
      this.badResponses++;
      return;
    }
    const v = new DataView(b.buffer, b.byteOffset, b.length);
    const messageType = v.getUint16(12, true);
    const flags = v.getUint8(25);
    if (messageType !== o.messageType || (flags & IC_FLAG_RESPONSE) === 0) {
      this.badResponses++;
      return;
    }
    const status = v.getUint32(20, true);
    this.outstanding = null;
    this.responses++;
    if (status !== HV_S_OK) this.failures++;
    o.done({ messageType, status, body: b.subarray(ICMSG_HDR) });
    // The next request (a queued one, the next enumeration index) need not wait for the owner's poll.
    this.tick(this.clock());
  }

  onWritable(): void {}

  onClose(): void {
    this.state = "closed";
    const o = this.outstanding;
    this.outstanding = null;
    o?.done(null);
  }

  inspectIc(): IcInspection {
    return {
      name: this.name,
      state: this.state,
      frameworkVersion: fmt(this.frameworkVersion),
      messageVersion: fmt(this.messageVersion),
      requests: this.requests,
      responses: this.responses,
      timeouts: this.timeouts,
      badResponses: this.badResponses,
      failures: this.failures,
    };
  }
}
