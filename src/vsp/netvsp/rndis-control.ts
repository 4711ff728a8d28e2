// Owns: the RNDIS control plane of one synthetic NIC: INITIALIZE, QUERY, SET, RESET, KEEPALIVE and HALT
// requests answered as Hyper-V's network VSP answers Linux's rndis_filter (the MAC from the VM's
// configuration, link state, frame size, packet filter, statistics, offload capabilities: TCP/UDP checksums
// for IPv4 and IPv6, done by ./offload.ts; LSO v2 is implemented there but not advertised yet), the
// device's RNDIS state, and the link status indications the host sends.
// Must not: read past the request it was handed (every offset and length is checked against it), answer an
// unknown OID with anything but RNDIS_STATUS_NOT_SUPPORTED, or advertise an offload the data path does not
// do (no LSO v1, IPsec, RSC or encapsulation offload).
// Spec: Linux 6.1 drivers/net/hyperv/rndis_filter.c (rndis_filter_init_device, rndis_filter_query_device,
// rndis_query_hwcaps, rndis_filter_set_offload_params, rndis_filter_set_packet_filter,
// rndis_filter_receive_response), netvsc.c / netvsc_drv.c (netvsc_linkstatus_callback); MS-RNDIS 2.2
// (message layouts); ../shared/research/hyperv-linux-guest-checklist.md 8.3.

import {
  NDIS_OBJECT_TYPE_OFFLOAD,
  NDIS_OFFLOAD_REVISION,
  NDIS_OFFLOAD_SIZE,
  Oid,
  RNDIS_HEADER_SIZE,
  RNDIS_STATUS_INVALID_DATA,
  RNDIS_STATUS_INVALID_LENGTH,
  RNDIS_STATUS_MEDIA_CONNECT,
  RNDIS_STATUS_MEDIA_DISCONNECT,
  RNDIS_STATUS_NOT_SUPPORTED,
  RNDIS_STATUS_SUCCESS,
  RndisType,
} from "./nvsp-protocol.js";

/** The largest large send (LSO v2) the guest may hand over: headers and payload, IPv4 or IPv6. */
export const LSO_MAX_BYTES = 65_535;
/** Whether LSO v2 is advertised (see offloadCapabilities: off until the NAT path's lost tail is understood). */
export const LSO_OFFERED = false;
/** Segments a large send must make at least (NDIS minsg; Linux does not read it). */
const LSO_MIN_SEGMENTS = 2;
/** NDIS_OFFLOAD_ENCAP_8023: offloads apply to Ethernet frames. */
const ENCAP_8023 = 0x2;
/** NDIS_TXCSUM/RXCSUM_CAP_*: IPv4 options, TCP options, TCP, UDP, IPv4 header (IPv6: extension headers). */
const CSUM4_ALL = 0x001 | 0x004 | 0x010 | 0x040 | 0x100;
const CSUM6_ALL = 0x001 | 0x004 | 0x010 | 0x040;
/** NDIS_LSOV2_CAP_IP6EXT | NDIS_LSOV2_CAP_TCP6OPT (Linux turns TSO6 on only with both). */
const LSO6_OPTS = 0x001 | 0x004;

/**
 * struct ndis_offload (NDIS 6.30 layout) as the network VSP fills it: checksums both ways for TCP and UDP
 * over IPv4 and IPv6 and the IPv4 header, LSO v2 for IPv4 and IPv6 up to LSO_MAX_BYTES only when
 * LSO_OFFERED; no LSO v1, IPsec, RSC or encapsulation offload. Linux reads csum.ip4_txcsum/ip6_txcsum and lsov2 (rndis_netdev_set_hwcaps).
 */
function offloadCapabilities(): Uint8Array {
  const b = new Uint8Array(NDIS_OFFLOAD_SIZE);
  const v = new DataView(b.buffer);
  b[0] = NDIS_OBJECT_TYPE_OFFLOAD;
  b[1] = NDIS_OFFLOAD_REVISION;
  v.setUint16(2, NDIS_OFFLOAD_SIZE, true);
  // csum (offset 4): {ip4_txenc, ip4_txcsum, ip4_rxenc, ip4_rxcsum, ip6_txenc, ip6_txcsum, ip6_rxenc, ip6_rxcsum}.
  const csum = [ENCAP_8023, CSUM4_ALL, ENCAP_8023, CSUM4_ALL, ENCAP_8023, CSUM6_ALL, ENCAP_8023, CSUM6_ALL];
  csum.forEach((x, i) => v.setUint32(4 + i * 4, x, true));
  // lsov2 (offset 80, after lsov1 and ipsecv1): {ip4_encap, ip4_maxsz, ip4_minsg, ip6_encap, ip6_maxsz,
  // ip6_minsg, ip6_opts}. The encapsulations stay 0 (LSO not offered) while LSO_OFFERED is false: with TSO on,
  // a guest -> host TCP stream through the NAT (passt) lost its tail (bench/net.ts: 3.4 of 4 MiB arrived)
  // although every segment on the wire was valid; the data path still splits LSO v2 sends correctly.
  const encap = LSO_OFFERED ? ENCAP_8023 : 0;
  const lso = [encap, LSO_MAX_BYTES, LSO_MIN_SEGMENTS, encap, LSO_MAX_BYTES, LSO_MIN_SEGMENTS, LSO6_OPTS];
  lso.forEach((x, i) => v.setUint32(80 + i * 4, x, true));
  return b;
}

/** Frames the guest may batch in one send-buffer section (INIT_COMPLETE max_pkt_per_msg). */
export const MAX_PACKETS_PER_MESSAGE = 8;
/** Batched RNDIS messages start on 2^3 = 8-byte boundaries (INIT_COMPLETE pkt_alignment_factor). */
export const PACKET_ALIGNMENT_FACTOR = 3;
/** The largest RNDIS message the guest may send (INIT_COMPLETE max_transfer_size). */
export const MAX_TRANSFER_SIZE = 0x4000;
/** Reported link speed: 10 Gbit/s, in units of 100 bit/s. */
export const LINK_SPEED_100BPS = 100_000_000;
/** Multicast list entries accepted by SET OID_802_3_MULTICAST_LIST. */
export const MULTICAST_LIST_MAX = 32;
const FRIENDLY_NAME = "Viridian Network Adapter";
const VENDOR_DESCRIPTION = "Viridian synthetic network adapter";

export type RndisState = "uninitialized" | "initialized";

/** What the control plane reports; the data path updates the traffic counters. */
export interface NicCounters {
  xmitOk: number;
  rcvOk: number;
  xmitError: number;
  rcvError: number;
  rcvNoBuffer: number;
}

const SUPPORTED_OIDS: readonly Oid[] = [
  Oid.GenSupportedList,
  Oid.GenHardwareStatus,
  Oid.GenMediaSupported,
  Oid.GenMediaInUse,
  Oid.GenMaximumLookahead,
  Oid.GenMaximumFrameSize,
  Oid.GenLinkSpeed,
  Oid.GenTransmitBlockSize,
  Oid.GenReceiveBlockSize,
  Oid.GenVendorId,
  Oid.GenVendorDescription,
  Oid.GenCurrentPacketFilter,
  Oid.GenCurrentLookahead,
  Oid.GenMaximumTotalSize,
  Oid.GenMediaConnectStatus,
  Oid.GenMaximumSendPackets,
  Oid.GenVendorDriverVersion,
  Oid.GenXmitOk,
  Oid.GenRcvOk,
  Oid.GenXmitError,
  Oid.GenRcvError,
  Oid.GenRcvNoBuffer,
  Oid.GenFriendlyName,
  Oid.Ieee8023PermanentAddress,
  Oid.Ieee8023CurrentAddress,
  Oid.Ieee8023MulticastList,
  Oid.Ieee8023MaximumListSize,
  Oid.Ieee8023RcvErrorAlignment,
  Oid.Ieee8023XmitOneCollision,
  Oid.Ieee8023XmitMoreCollisions,
  Oid.TcpOffloadHardwareCapabilities,
];

function u32(value: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value >>> 0, true);
  return b;
}

/** A u64 counter as NDIS statistics OIDs carry it (Linux reads 4 or 8 bytes; we answer 8). */
function u64(value: number): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint32(0, value % 0x1_0000_0000, true);
  v.setUint32(4, Math.floor(value / 0x1_0000_0000), true);
  return b;
}

function utf16(text: string): Uint8Array {
  const b = new Uint8Array((text.length + 1) * 2);
  const v = new DataView(b.buffer);
  for (let i = 0; i < text.length; i++) v.setUint16(i * 2, text.charCodeAt(i), true);
  return b;
}

function ascii(text: string): Uint8Array {
  return Uint8Array.from([...text].map((c) => c.charCodeAt(0) & 0x7f).concat([0]));
}

/** A message `type` with `body` bytes after the 8-byte header, msg_len filled in. */
function message(type: RndisType, bodyBytes: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(RNDIS_HEADER_SIZE + bodyBytes);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, type, true);
  view.setUint32(4, bytes.length, true);
  return { bytes, view };
}

export interface RndisControlOptions {
  /** The NIC's MAC address, 6 bytes. */
  readonly mac: Uint8Array;
  /** The largest Ethernet payload the data path carries (OID_GEN_MAXIMUM_FRAME_SIZE; 1500). */
  readonly mtu: number;
}

export class RndisControl {
  state: RndisState = "uninitialized";
  /** NDIS_PACKET_TYPE_* bits the guest set; 0 until it opens the interface. */
  packetFilter = 0;
  linkUp = true;
  readonly counters: NicCounters = { xmitOk: 0, rcvOk: 0, xmitError: 0, rcvError: 0, rcvNoBuffer: 0 };
  /** Requests answered with a failure status, by reason (unknown OIDs by number). */
  readonly refused: Record<string, number> = {};
  private readonly mac: Uint8Array;
  private readonly mtu: number;

  constructor(options: RndisControlOptions) {
    this.mac = options.mac.slice(0, 6);
    this.mtu = options.mtu;
  }

  /** Back to the state of a freshly offered device (the channel closed or the guest halted the device). */
  reset(): void {
    this.state = "uninitialized";
    this.packetFilter = 0;
  }

  private refuse(reason: string): void {
    this.refused[reason] = (this.refused[reason] ?? 0) + 1;
  }

  /**
   * Answers one control message (`msg` is exactly the message: its msg_len bytes). Returns the response to
   * deliver through the receive buffer, or null when the message has none (HALT, malformed requests that
   * carry no request id to answer).
   */
  handle(msg: Uint8Array): Uint8Array | null {
    if (msg.length < RNDIS_HEADER_SIZE + 4) {
      this.refuse("short-control");
      return null;
    }
    const view = new DataView(msg.buffer, msg.byteOffset, msg.length);
    const type = view.getUint32(0, true);
    const requestId = view.getUint32(8, true);
    switch (type) {
      case RndisType.Init:
        return this.initialize(requestId);
      case RndisType.Halt:
        this.reset();
        return null;
      case RndisType.Query:
        return this.query(view, requestId);
      case RndisType.Set:
        return this.set(view, requestId);
      case RndisType.Reset: {
        // RESET_COMPLETE {status, addressing_reset}: the filter survives a reset (MS-RNDIS 2.2.12).
        const r = message(RndisType.ResetComplete, 8);
        r.view.setUint32(8, RNDIS_STATUS_SUCCESS, true);
        r.view.setUint32(12, 0, true);
        return r.bytes;
      }
      case RndisType.KeepAlive: {
        const r = message(RndisType.KeepAliveComplete, 8);
        r.view.setUint32(8, requestId, true);
        r.view.setUint32(12, RNDIS_STATUS_SUCCESS, true);
        return r.bytes;
      }
      default:
        // Completions and indications are host-to-guest only; anything else is unknown.
        this.refuse(`control-type-${type >>> 0}`);
        return null;
    }
  }

  private initialize(requestId: number): Uint8Array {
    this.state = "initialized";
    this.packetFilter = 0;
    // INITIALIZE_COMPLETE: request id, status, version 1.0, connectionless, 802.3, batching limits.
    const r = message(RndisType.InitComplete, 44);
    const v = r.view;
    v.setUint32(8, requestId, true);
    v.setUint32(12, RNDIS_STATUS_SUCCESS, true);
    v.setUint32(16, 1, true); // major
    v.setUint32(20, 0, true); // minor
    v.setUint32(24, 1, true); // RNDIS_DF_CONNECTIONLESS
    v.setUint32(28, 0, true); // NdisMedium802_3
    v.setUint32(32, MAX_PACKETS_PER_MESSAGE, true);
    v.setUint32(36, MAX_TRANSFER_SIZE, true);
    v.setUint32(40, PACKET_ALIGNMENT_FACTOR, true);
    v.setUint32(44, 0, true); // af_list_offset
    v.setUint32(48, 0, true); // af_list_size
    return r.bytes;
  }

  /** QUERY {request id, oid, info_buflen, info_buf_offset, device_vc_handle}; the input buffer is not needed. */
  private query(view: DataView, requestId: number): Uint8Array {
    const oid = view.byteLength >= 16 ? view.getUint32(12, true) : 0;
    const value = view.byteLength >= 16 ? this.queryValue(oid) : null;
    if (value === null) this.refuse(view.byteLength >= 16 ? `query-oid-${oid.toString(16)}` : "short-query");
    const info = value ?? new Uint8Array(0);
    // QUERY_COMPLETE {request id, status, info_buflen, info_buf_offset (from the request id field)}.
    const r = message(RndisType.QueryComplete, 16 + info.length);
    r.view.setUint32(8, requestId, true);
    r.view.setUint32(12, value === null ? RNDIS_STATUS_NOT_SUPPORTED : RNDIS_STATUS_SUCCESS, true);
    r.view.setUint32(16, info.length, true);
    r.view.setUint32(20, 16, true);
    r.bytes.set(info, 24);
    return r.bytes;
  }

  private queryValue(oid: number): Uint8Array | null {
    const c = this.counters;
    const frame = this.mtu + 14;
    switch (oid) {
      case Oid.GenSupportedList: {
        const b = new Uint8Array(SUPPORTED_OIDS.length * 4);
        SUPPORTED_OIDS.forEach((o, i) => new DataView(b.buffer).setUint32(i * 4, o >>> 0, true));
        return b;
      }
      case Oid.GenHardwareStatus:
        return u32(0); // NdisHardwareStatusReady
      case Oid.GenMediaSupported:
      case Oid.GenMediaInUse:
        return u32(0); // NdisMedium802_3
      case Oid.GenMaximumFrameSize:
      case Oid.GenMaximumLookahead:
      case Oid.GenCurrentLookahead:
        return u32(this.mtu);
      case Oid.GenLinkSpeed:
        return u32(LINK_SPEED_100BPS);
      case Oid.GenTransmitBlockSize:
      case Oid.GenReceiveBlockSize:
      case Oid.GenMaximumTotalSize:
        return u32(frame);
      case Oid.GenVendorId:
        return u32(0x00155d); // the OUI of Hyper-V's generated MAC addresses
      case Oid.GenVendorDescription:
        return ascii(VENDOR_DESCRIPTION);
      case Oid.GenVendorDriverVersion:
        return u32(0x0001_0000);
      case Oid.GenCurrentPacketFilter:
        return u32(this.packetFilter);
      case Oid.GenMediaConnectStatus:
        return u32(this.linkUp ? 0 : 1); // NdisMediaStateConnected = 0
      case Oid.GenMaximumSendPackets:
        return u32(MAX_PACKETS_PER_MESSAGE);
      case Oid.GenXmitOk:
        return u64(c.xmitOk);
      case Oid.GenRcvOk:
        return u64(c.rcvOk);
      case Oid.GenXmitError:
        return u64(c.xmitError);
      case Oid.GenRcvError:
        return u64(c.rcvError);
      case Oid.GenRcvNoBuffer:
        return u64(c.rcvNoBuffer);
      case Oid.GenFriendlyName:
        return utf16(FRIENDLY_NAME);
      case Oid.Ieee8023PermanentAddress:
      case Oid.Ieee8023CurrentAddress:
        return this.mac.slice();
      case Oid.Ieee8023MaximumListSize:
        return u32(MULTICAST_LIST_MAX);
      case Oid.Ieee8023RcvErrorAlignment:
      case Oid.Ieee8023XmitOneCollision:
      case Oid.Ieee8023XmitMoreCollisions:
        return u32(0);
      case Oid.TcpOffloadHardwareCapabilities:
        return offloadCapabilities();
      default:
        // Includes OID_GEN_RECEIVE_SCALE_CAPABILITIES: no vRSS, so Linux uses one channel.
        return null;
    }
  }

  /** SET {request id, oid, info_buflen, info_buf_offset (from the request id field), device_vc_handle}. */
  private set(view: DataView, requestId: number): Uint8Array {
    const status = this.setStatus(view);
    if (status !== RNDIS_STATUS_SUCCESS) {
      const oid = view.byteLength >= 16 ? view.getUint32(12, true) : 0;
      this.refuse(status === RNDIS_STATUS_NOT_SUPPORTED ? `set-oid-${oid.toString(16)}` : "set-bad-buffer");
    }
    const r = message(RndisType.SetComplete, 8);
    r.view.setUint32(8, requestId, true);
    r.view.setUint32(12, status, true);
    return r.bytes;
  }

  private setStatus(view: DataView): number {
    if (view.byteLength < 28) return RNDIS_STATUS_INVALID_LENGTH;
    const oid = view.getUint32(12, true);
    const length = view.getUint32(16, true);
    const offset = view.getUint32(20, true);
    // The information buffer is `length` bytes at `offset` from the request id field (message byte 8).
    const start = RNDIS_HEADER_SIZE + offset;
    if (offset < 20 || start > view.byteLength || length > view.byteLength - start)
      return RNDIS_STATUS_INVALID_DATA;
    switch (oid) {
      case Oid.GenCurrentPacketFilter:
        if (length < 4) return RNDIS_STATUS_INVALID_LENGTH;
        this.packetFilter = view.getUint32(start, true);
        return RNDIS_STATUS_SUCCESS;
      case Oid.Ieee8023MulticastList:
        // Linux never sets a list (it asks for all multicast instead); a list is accepted and not used.
        if (length % 6 !== 0 || length / 6 > MULTICAST_LIST_MAX) return RNDIS_STATUS_INVALID_LENGTH;
        return RNDIS_STATUS_SUCCESS;
      case Oid.TcpOffloadParameters:
        // Linux switches on what the capabilities offer (and the IPv4 header checksum off). The data path
        // does whatever a packet's per-packet information asks for, so there is nothing to switch here.
        return RNDIS_STATUS_SUCCESS;
      case Oid.GenCurrentLookahead:
        return RNDIS_STATUS_SUCCESS;
      default:
        // Receive-side scaling and RNDIS config parameters (a changed MAC) are not supported.
        return RNDIS_STATUS_NOT_SUPPORTED;
    }
  }

  /** The INDICATE_STATUS message for a link change (status buffer empty). */
  static linkIndication(up: boolean): Uint8Array {
    const r = message(RndisType.Indicate, 12);
    r.view.setUint32(8, up ? RNDIS_STATUS_MEDIA_CONNECT : RNDIS_STATUS_MEDIA_DISCONNECT, true);
    r.view.setUint32(12, 0, true);
    r.view.setUint32(16, 0, true);
    return r.bytes;
  }
}
