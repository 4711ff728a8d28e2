// Owns: the work a NIC does for the guest's TCP/IP stack when the VSP advertises task offloads: completing
// the TCP/UDP (and on request IPv4 header) checksums of a frame the guest sent with TCPIP_CHKSUM_PKTINFO,
// splitting a large TCP send (LSO v2, TCP_LARGESEND_PKTINFO) into MSS-sized frames with their own IP ids,
// lengths, sequence numbers, flags and checksums, and checking the checksums of a received frame so the
// guest is told "verified" only when that is true.
// Must not: trust an offset, length or MSS from the guest (each is checked against the frame and the headers
// it parses; anything inconsistent is a problem string, never an exception), emit a frame that is not a
// complete IP packet with valid checksums, or mark a received checksum good without computing it.
// Spec: RFC 791 (IPv4 header), RFC 8200 (IPv6, extension header chain), RFC 9293 (TCP header and checksum,
// flags), RFC 768 (UDP checksum, 0 sent as 0xffff), RFC 1071 (the Internet checksum); Linux 6.1
// drivers/net/hyperv/netvsc_drv.c (netvsc_xmit: what the guest puts in the frame and the PPIs for
// CHECKSUM_PARTIAL and GSO skbs), net/ipv4/tcp_offload.c (tcp_gso_segment: which flags each segment keeps),
// hyperv_net.h (ndis_tcp_ip_checksum_info, ndis_tcp_lso_info).

import { ETHERNET_HEADER, MAX_FRAME } from "../../net/frame-stream.js";

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const PROTO_TCP = 6;
const PROTO_UDP = 17;
const IPV6_HEADER = 40;
const TCP_MIN_HEADER = 20;
const UDP_HEADER = 8;
/** TCP flag bits in header byte 13. */
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;

/** A transmit checksum request (ndis_tcp_ip_checksum_info.transmit). */
export interface ChecksumRequest {
  readonly ipv4: boolean;
  readonly ipv6: boolean;
  readonly tcp: boolean;
  readonly udp: boolean;
  readonly ipHeader: boolean;
  /** Where the guest says the TCP/UDP header starts, from the frame's first byte. */
  readonly transportOffset: number;
}

/** A large send request (ndis_tcp_lso_info.lso_v2_transmit). */
export interface LsoRequest {
  readonly mss: number;
  readonly transportOffset: number;
  readonly ipv6: boolean;
}

export function parseChecksumInfo(value: number): ChecksumRequest {
  return {
    ipv4: (value & 1) !== 0,
    ipv6: (value & 2) !== 0,
    tcp: (value & 4) !== 0,
    udp: (value & 8) !== 0,
    ipHeader: (value & 0x10) !== 0,
    transportOffset: (value >>> 16) & 0x3ff,
  };
}

/** Null when the value is not an LSO v2 request (type bit 30 clear: LSO v1, which we never advertise). */
export function parseLsoInfo(value: number): LsoRequest | null {
  if (((value >>> 30) & 1) !== 1) return null;
  return { mss: value & 0xf_ffff, transportOffset: (value >>> 20) & 0x3ff, ipv6: value >>> 31 !== 0 };
}

export type OffloadProblem =
  | "offload-not-ip"
  | "offload-ip-header"
  | "offload-ip-length"
  | "offload-ipv6-extension"
  | "offload-protocol"
  | "offload-transport-offset"
  | "offload-tcp-header"
  | "offload-mss";

/** The one's-complement sum of bytes [start, end) added to `sum` (not folded). */
function sumBytes(b: Uint8Array, start: number, end: number, sum: number): number {
  let s = sum;
  let i = start;
  for (; i + 1 < end; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (i < end) s += b[i]! << 8;
  return s;
}

function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** The Internet checksum (RFC 1071) of bytes [start, end) with `initial` added. */
export function internetChecksum(b: Uint8Array, start: number, end: number, initial = 0): number {
  return ~fold(sumBytes(b, start, end, initial)) & 0xffff;
}

/** Where the IP header and the transport header of a frame are and what they say. */
interface Layout {
  readonly l3: number;
  readonly v6: boolean;
  /** Offset of the TCP/UDP header. */
  readonly l4: number;
  readonly protocol: number;
  /** End of the IP packet in the frame (IPv4 total length, IPv6 payload length; or the frame's end). */
  readonly end: number;
}

/**
 * Parses Ethernet + IPv4/IPv6 (+ hop-by-hop, routing and destination options headers) up to the transport
 * header. `lengthFromFrame`: the IP length fields are not to be trusted (an LSO frame: Linux zeroes tot_len),
 * the packet runs to the end of the frame.
 */
function layout(frame: Uint8Array, lengthFromFrame: boolean): Layout | OffloadProblem {
  if (frame.length < ETHERNET_HEADER + 20) return "offload-not-ip";
  const type = (frame[12]! << 8) | frame[13]!;
  const l3 = ETHERNET_HEADER;
  if (type === ETHERTYPE_IPV4) {
    if (frame[l3]! >> 4 !== 4) return "offload-ip-header";
    const ihl = (frame[l3]! & 0xf) * 4;
    if (ihl < 20 || l3 + ihl > frame.length) return "offload-ip-header";
    const total = (frame[l3 + 2]! << 8) | frame[l3 + 3]!;
    let end = frame.length;
    if (!lengthFromFrame) {
      if (total < ihl || l3 + total > frame.length) return "offload-ip-length";
      end = l3 + total;
    }
    // A fragment's transport header is in the first fragment only; the NIC cannot checksum it.
    const frag = ((frame[l3 + 6]! << 8) | frame[l3 + 7]!) & 0x3fff;
    if (frag !== 0) return "offload-ip-header";
    return { l3, v6: false, l4: l3 + ihl, protocol: frame[l3 + 9]!, end };
  }
  if (type === ETHERTYPE_IPV6) {
    if (frame.length < l3 + IPV6_HEADER || frame[l3]! >> 4 !== 6) return "offload-ip-header";
    let end = frame.length;
    if (!lengthFromFrame) {
      const payload = (frame[l3 + 4]! << 8) | frame[l3 + 5]!;
      if (l3 + IPV6_HEADER + payload > frame.length) return "offload-ip-length";
      end = l3 + IPV6_HEADER + payload;
    }
    let next = frame[l3 + 6]!;
    let at = l3 + IPV6_HEADER;
    // Hop-by-hop (0) and destination options (60) are skipped. A routing header (43) would put the final
    // destination in the pseudo-header: not done, so such a packet is refused rather than sent with a wrong
    // checksum (and not marked verified); a fragment header or anything else ends the walk.
    for (let hops = 0; next === 0 || next === 60 || next === 43; hops++) {
      if (next === 43) return "offload-ipv6-extension";
      if (hops >= 8 || at + 8 > end) return "offload-ipv6-extension";
      const len = (frame[at + 1]! + 1) * 8;
      next = frame[at]!;
      at += len;
    }
    if (at > end) return "offload-ipv6-extension";
    return { l3, v6: true, l4: at, protocol: next, end };
  }
  return "offload-not-ip";
}

/** The pseudo-header sum (RFC 9293 3.1, RFC 8200 8.1) for `length` transport bytes of `protocol`. */
function pseudoHeader(frame: Uint8Array, l: Layout, protocol: number, length: number): number {
  const s = l.v6 ? sumBytes(frame, l.l3 + 8, l.l3 + 40, 0) : sumBytes(frame, l.l3 + 12, l.l3 + 20, 0);
  return s + protocol + length;
}

function setU16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}

function ipv4HeaderChecksum(frame: Uint8Array, l: Layout): void {
  setU16(frame, l.l3 + 10, 0);
  setU16(frame, l.l3 + 10, internetChecksum(frame, l.l3, l.l4));
}

/** Writes the TCP or UDP checksum of the transport bytes [l4, end). */
function transportChecksum(frame: Uint8Array, l: Layout, protocol: number, end: number): void {
  const at = l.l4 + (protocol === PROTO_TCP ? 16 : 6);
  setU16(frame, at, 0);
  let c = internetChecksum(frame, l.l4, end, pseudoHeader(frame, l, protocol, end - l.l4));
  if (protocol === PROTO_UDP && c === 0) c = 0xffff;
  setU16(frame, at, c);
}

/**
 * Completes the checksums `req` asks for, in place (the frame is the VSP's own copy). The request must
 * agree with the frame: IPv4 or IPv6 as flagged, TCP or UDP as flagged, the transport header where it says.
 */
export function completeChecksums(frame: Uint8Array, req: ChecksumRequest): null | OffloadProblem {
  const l = layout(frame, false);
  if (typeof l === "string") return l;
  if (l.v6 ? !req.ipv6 || req.ipv4 : !req.ipv4 || req.ipv6) return "offload-ip-header";
  if (req.ipHeader && l.v6) return "offload-ip-header";
  if (req.tcp || req.udp) {
    const protocol = req.tcp ? PROTO_TCP : PROTO_UDP;
    if (req.tcp && req.udp) return "offload-protocol";
    if (l.protocol !== protocol) return "offload-protocol";
    if (req.transportOffset !== l.l4) return "offload-transport-offset";
    if (l.l4 + (req.tcp ? TCP_MIN_HEADER : UDP_HEADER) > l.end) return "offload-tcp-header";
    // UDP's own length field says where its datagram ends; it must agree with the IP length.
    if (req.udp && l.l4 + ((frame[l.l4 + 4]! << 8) | frame[l.l4 + 5]!) !== l.end) return "offload-ip-length";
    transportChecksum(frame, l, protocol, l.end);
  }
  if (req.ipHeader) ipv4HeaderChecksum(frame, l);
  return null;
}

/**
 * Splits a large TCP send into frames carrying at most `req.mss` payload bytes each, every one a complete
 * packet: IPv4 total length, id (the first one's plus the segment number) and header checksum, or the IPv6
 * payload length; the sequence number advanced by the bytes before it; FIN and PSH only on the last, CWR
 * only on the first; the TCP checksum. A send of at most one MSS comes back as one frame.
 */
export function segmentTcp(frame: Uint8Array, req: LsoRequest): Uint8Array[] | OffloadProblem {
  const l = layout(frame, true);
  if (typeof l === "string") return l;
  if (l.v6 !== req.ipv6) return "offload-ip-header";
  if (l.protocol !== PROTO_TCP) return "offload-protocol";
  if (req.transportOffset !== l.l4) return "offload-transport-offset";
  if (l.l4 + TCP_MIN_HEADER > frame.length) return "offload-tcp-header";
  const tcpHeader = (frame[l.l4 + 12]! >> 4) * 4;
  if (tcpHeader < TCP_MIN_HEADER || l.l4 + tcpHeader > frame.length) return "offload-tcp-header";
  const headers = l.l4 + tcpHeader;
  if (req.mss < 1 || headers + req.mss > MAX_FRAME) return "offload-mss";
  const payload = frame.length - headers;
  const count = Math.max(1, Math.ceil(payload / req.mss));
  const flags = frame[l.l4 + 13]!;
  const seq0 =
    ((frame[l.l4 + 4]! << 24) | (frame[l.l4 + 5]! << 16) | (frame[l.l4 + 6]! << 8) | frame[l.l4 + 7]!) >>> 0;
  const id0 = l.v6 ? 0 : (frame[l.l3 + 4]! << 8) | frame[l.l3 + 5]!;
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const from = headers + i * req.mss;
    const bytes = Math.min(req.mss, frame.length - from);
    const seg = new Uint8Array(headers + bytes);
    seg.set(frame.subarray(0, headers));
    seg.set(frame.subarray(from, from + bytes), headers);
    if (l.v6) {
      setU16(seg, l.l3 + 4, seg.length - l.l3 - IPV6_HEADER);
    } else {
      setU16(seg, l.l3 + 2, seg.length - l.l3);
      setU16(seg, l.l3 + 4, (id0 + i) & 0xffff);
      ipv4HeaderChecksum(seg, l);
    }
    const seq = (seq0 + i * req.mss) >>> 0;
    seg[l.l4 + 4] = seq >>> 24;
    seg[l.l4 + 5] = (seq >>> 16) & 0xff;
    seg[l.l4 + 6] = (seq >>> 8) & 0xff;
    seg[l.l4 + 7] = seq & 0xff;
    let f = flags;
    if (i < count - 1) f &= ~(TCP_FIN | TCP_PSH);
    if (i > 0) f &= ~TCP_CWR;
    seg[l.l4 + 13] = f;
    transportChecksum(seg, { ...l, end: seg.length }, PROTO_TCP, seg.length);
    out.push(seg);
  }
  return out;
}

/** ndis_tcp_ip_checksum_info.receive bits. */
export const RX_TCP_CHECKSUM_SUCCEEDED = 1 << 3;
export const RX_UDP_CHECKSUM_SUCCEEDED = 1 << 4;
export const RX_IP_CHECKSUM_SUCCEEDED = 1 << 5;

/**
 * The receive checksum bits that are true for `frame`: TCP or UDP succeeded only when the checksum was
 * computed here and is right (a UDP datagram sent without a checksum gets no bit), IP succeeded when an
 * IPv4 header checksum is right. 0 for anything else (the guest checks it itself).
 */
export function verifiedChecksums(frame: Uint8Array): number {
  const l = layout(frame, false);
  if (typeof l === "string") return 0;
  let bits = 0;
  if (!l.v6) {
    if (internetChecksum(frame, l.l3, l.l4) !== 0) return 0;
    bits |= RX_IP_CHECKSUM_SUCCEEDED;
  }
  if (l.protocol === PROTO_TCP) {
    if (l.l4 + TCP_MIN_HEADER > l.end) return bits;
    if (internetChecksum(frame, l.l4, l.end, pseudoHeader(frame, l, PROTO_TCP, l.end - l.l4)) === 0)
      bits |= RX_TCP_CHECKSUM_SUCCEEDED;
  } else if (l.protocol === PROTO_UDP) {
    if (l.l4 + UDP_HEADER > l.end) return bits;
    if (((frame[l.l4 + 4]! << 8) | frame[l.l4 + 5]!) !== l.end - l.l4) return bits;
    if ((frame[l.l4 + 6]! | frame[l.l4 + 7]!) === 0) return bits;
    if (internetChecksum(frame, l.l4, l.end, pseudoHeader(frame, l, PROTO_UDP, l.end - l.l4)) === 0)
      bits |= RX_UDP_CHECKSUM_SUCCEEDED;
  }
  return bits;
}
