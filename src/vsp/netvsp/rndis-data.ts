// Owns: RNDIS messages as bytes in guest memory: the source a SEND_RNDIS_PKT's bytes come from (a send-buffer
// section, GPA-direct page buffers, or a section followed by page buffers when Linux copied only the RNDIS
// header), splitting it into the messages it holds (Linux batches up to max_pkt_per_msg), taking the Ethernet
// frame out of an RNDIS_MSG_PACKET (with its 802.1Q per-packet information put back into the frame), and
// the offloads its per-packet information asks for (checksums, large sends: ./offload.ts), and building the
// RNDIS_MSG_PACKET the receive path writes into a receive-buffer section (with the checksums we verified).
// Must not: read outside the source (every offset and length is checked against it before a copy), allocate
// more than one message's bytes (bounded by the source, itself bounded by a section or a packet's page list;
// a large send's segments by LSO's MAX_FRAME), or accept a packet that asks for an offload we never
// advertised (LSO v1, IPsec: dropped, counted).
// Spec: Linux 6.1 drivers/net/hyperv/netvsc.c (netvsc_send, netvsc_copy_to_send_buf: batching, padding to
// pkt_align, cp_partial), netvsc_drv.c (netvsc_xmit, init_ppi_data), rndis_filter.c
// (rndis_filter_receive_data, rndis_get_ppi); hyperv_net.h (struct rndis_packet, rndis_per_packet_info,
// ndis_pkt_8021q_info).

import type { GuestPageList } from "../../memory/page-list.js";
import { ETHERNET_HEADER, MAX_FRAME } from "../../net/frame-stream.js";
import {
  PPI_HEADER_SIZE,
  PPI_IEEE_8021Q,
  PPI_IPSEC,
  PPI_LSO,
  PPI_TCPIP_CHECKSUM,
  RNDIS_HEADER_SIZE,
  RNDIS_PACKET_SIZE,
  RndisType,
} from "./nvsp-protocol.js";
import {
  type ChecksumRequest,
  completeChecksums,
  type LsoRequest,
  type OffloadProblem,
  parseChecksumInfo,
  parseLsoInfo,
  segmentTcp,
  verifiedChecksums,
} from "./offload.js";

/** Guest bytes read in order from up to two validated page lists (a section, then page buffers). */
export class MessageSource {
  readonly length: number;
  private readonly parts: { list: GuestPageList; start: number; length: number }[];

  constructor(parts: { list: GuestPageList; start: number; length: number }[]) {
    this.parts = parts;
    this.length = parts.reduce((n, p) => n + p.length, 0);
  }

  /** Copies source bytes [at, at + dst.length) into dst; false when they are not all in the source. */
  read(at: number, dst: Uint8Array): boolean {
    if (at < 0 || at + dst.length > this.length) return false;
    let done = 0;
    let base = 0;
    for (const p of this.parts) {
      if (done === dst.length) break;
      const from = at + done - base;
      if (from < p.length) {
        const n = Math.min(p.length - from, dst.length - done);
        if (!p.list.read(p.start + from, dst.subarray(done, done + n))) return false;
        done += n;
      }
      base += p.length;
    }
    return done === dst.length;
  }
}

/** Why a transmitted message or frame was dropped. */
export type TxProblem =
  | "short-message"
  | "message-length"
  | "not-a-packet"
  | "data-range"
  | "frame-size"
  | "ppi-range"
  | "offload-requested"
  | "unreadable"
  | OffloadProblem;

export interface TxMessage {
  /** The RNDIS message type at this position. */
  readonly type: number;
  readonly offset: number;
  readonly length: number;
}

/**
 * The RNDIS messages in `source`, in order: each `msg_len` bytes (which includes Linux's alignment padding),
 * at most `maxMessages`. A header that does not fit or lies about its length ends the walk with a problem.
 */
export function splitMessages(
  source: MessageSource,
  maxMessages: number,
): { messages: TxMessage[]; problem: TxProblem | null } {
  const messages: TxMessage[] = [];
  const header = new Uint8Array(RNDIS_HEADER_SIZE);
  const hv = new DataView(header.buffer);
  let at = 0;
  while (at < source.length && messages.length < maxMessages) {
    if (source.length - at < RNDIS_HEADER_SIZE) {
      // Zero padding after the last message is allowed; anything else is a torn header.
      return { messages, problem: messages.length > 0 && allZero(source, at) ? null : "short-message" };
    }
    if (!source.read(at, header)) return { messages, problem: "unreadable" };
    const type = hv.getUint32(0, true);
    const length = hv.getUint32(4, true);
    if (type === 0 && length === 0 && messages.length > 0) break; // padding to the end of the section
    if (length < RNDIS_HEADER_SIZE || length > source.length - at)
      return { messages, problem: "message-length" };
    messages.push({ type, offset: at, length });
    at += length;
  }
  return { messages, problem: null };
}

function allZero(source: MessageSource, at: number): boolean {
  const rest = new Uint8Array(source.length - at);
  return source.read(at, rest) && rest.every((b) => b === 0);
}

/**
 * The Ethernet frames an RNDIS_MSG_PACKET becomes: data_len bytes at data_offset (from the rndis_packet, i.e.
 * message byte 8) with the offloads its per-packet information asks for done (checksums completed, a large
 * send split into MSS-sized frames), and an IEEE 802.1Q per-packet information turned back into a tag in
 * each frame. Offsets in the offload requests count from the untagged frame, as the guest built it.
 */
export function packetFrames(source: MessageSource, m: TxMessage): Uint8Array[] | TxProblem {
  if (m.type !== RndisType.Packet) return "not-a-packet";
  if (m.length < RNDIS_HEADER_SIZE + RNDIS_PACKET_SIZE) return "short-message";
  const head = new Uint8Array(RNDIS_PACKET_SIZE);
  if (!source.read(m.offset + RNDIS_HEADER_SIZE, head)) return "unreadable";
  const v = new DataView(head.buffer);
  const dataOffset = v.getUint32(0, true);
  const dataLength = v.getUint32(4, true);
  const ppiOffset = v.getUint32(20, true);
  const ppiLength = v.getUint32(24, true);
  const body = m.length - RNDIS_HEADER_SIZE;
  if (dataOffset < RNDIS_PACKET_SIZE || dataOffset > body || dataLength > body - dataOffset)
    return "data-range";
  let vlanTag = -1;
  let checksum: ChecksumRequest | null = null;
  let lso: LsoRequest | null = null;
  if (ppiOffset !== 0 && ppiLength !== 0) {
    if (ppiOffset < RNDIS_PACKET_SIZE || ppiOffset > body || ppiLength > body - ppiOffset) return "ppi-range";
    const ppis = new Uint8Array(ppiLength);
    if (!source.read(m.offset + RNDIS_HEADER_SIZE + ppiOffset, ppis)) return "unreadable";
    const pv = new DataView(ppis.buffer);
    for (let at = 0; at + PPI_HEADER_SIZE <= ppiLength;) {
      const size = pv.getUint32(at, true);
      const type = pv.getUint32(at + 4, true) & 0x7fff_ffff;
      const internal = pv.getUint32(at + 4, true) >>> 31 !== 0;
      const valueAt = at + pv.getUint32(at + 8, true);
      if (size < PPI_HEADER_SIZE || size > ppiLength - at) return "ppi-range";
      if (
        !internal &&
        (type === PPI_TCPIP_CHECKSUM || type === PPI_LSO || type === PPI_IPSEC || type === PPI_IEEE_8021Q)
      ) {
        if (valueAt < at + PPI_HEADER_SIZE || valueAt + 4 > at + size) return "ppi-range";
        const value = pv.getUint32(valueAt, true);
        if (type === PPI_TCPIP_CHECKSUM) {
          // A checksum request with every bit clear asks for nothing.
          if (value !== 0) checksum = parseChecksumInfo(value);
        } else if (type === PPI_LSO) {
          lso = parseLsoInfo(value);
          if (lso === null) return "offload-requested"; // LSO v1: never advertised
        } else if (type === PPI_IPSEC) {
          if (value !== 0) return "offload-requested";
        } else {
          // ndis_pkt_8021q_info: bits 0-2 priority, 3 CFI, 4-15 VLAN id.
          vlanTag = ((value & 0x7) << 13) | (((value >>> 3) & 1) << 12) | ((value >>> 4) & 0xfff);
        }
      }
      at += size;
    }
  }
  const extra = vlanTag >= 0 ? 4 : 0;
  if (dataLength < ETHERNET_HEADER || dataLength + extra > MAX_FRAME) return "frame-size";
  const frame = new Uint8Array(dataLength);
  if (!source.read(m.offset + RNDIS_HEADER_SIZE + dataOffset, frame)) return "unreadable";
  let frames: Uint8Array[];
  if (lso !== null) {
    // LSO completes every checksum of every segment; a checksum request beside it adds nothing.
    const segments = segmentTcp(frame, lso);
    if (typeof segments === "string") return segments;
    frames = segments;
  } else {
    if (checksum !== null) {
      const problem = completeChecksums(frame, checksum);
      if (problem !== null) return problem;
    }
    frames = [frame];
  }
  return vlanTag < 0 ? frames : frames.map((f) => tagged(f, vlanTag));
}

/** `frame` with an 802.1Q tag (TPID 0x8100) between the source address and the EtherType. */
function tagged(frame: Uint8Array, tag: number): Uint8Array {
  const out = new Uint8Array(frame.length + 4);
  out.set(frame.subarray(0, 12));
  out[12] = 0x81;
  out[13] = 0x00;
  out[14] = tag >> 8;
  out[15] = tag & 0xff;
  out.set(frame.subarray(12), 16);
  return out;
}

/** The receive path's checksum per-packet information: header and one u32 value. */
const RX_CHECKSUM_PPI_BYTES = PPI_HEADER_SIZE + 4;

/** The most bytes the RNDIS_MSG_PACKET carrying a frame of `frameBytes` to the guest can take. */
export function receiveMessageSize(frameBytes: number): number {
  return RNDIS_HEADER_SIZE + RNDIS_PACKET_SIZE + RX_CHECKSUM_PPI_BYTES + frameBytes;
}

/**
 * The RNDIS_MSG_PACKET for `frame`: header, rndis_packet, then (when a checksum in the frame was verified
 * here) a TCPIP_CHKSUM_PKTINFO saying which, then the frame. Linux trusts the TCP/UDP "succeeded" bits
 * (CHECKSUM_UNNECESSARY), so they are set only after the checksum was computed and found right.
 */
export function receiveMessage(frame: Uint8Array): Uint8Array {
  const verified = verifiedChecksums(frame);
  const ppiBytes = verified !== 0 ? RX_CHECKSUM_PPI_BYTES : 0;
  const bytes = new Uint8Array(RNDIS_HEADER_SIZE + RNDIS_PACKET_SIZE + ppiBytes + frame.length);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, RndisType.Packet, true);
  v.setUint32(4, bytes.length, true);
  v.setUint32(8, RNDIS_PACKET_SIZE + ppiBytes, true); // data_offset, from the rndis_packet
  v.setUint32(12, frame.length, true);
  if (ppiBytes !== 0) {
    const at = RNDIS_HEADER_SIZE + RNDIS_PACKET_SIZE;
    v.setUint32(RNDIS_HEADER_SIZE + 20, RNDIS_PACKET_SIZE, true); // per_pkt_info_offset
    v.setUint32(RNDIS_HEADER_SIZE + 24, ppiBytes, true); // per_pkt_info_len
    v.setUint32(at, ppiBytes, true);
    v.setUint32(at + 4, PPI_TCPIP_CHECKSUM, true);
    v.setUint32(at + 8, PPI_HEADER_SIZE, true);
    v.setUint32(at + 12, verified, true);
  }
  bytes.set(frame, RNDIS_HEADER_SIZE + RNDIS_PACKET_SIZE + ppiBytes);
  return bytes;
}
