// Owns: the libpcap capture file format for Ethernet frames: the global header and one record per frame,
// as bytes a host writes to a file or a socket.
// Must not: know where the bytes go, or read the clock itself (the caller stamps each frame).
// Spec: the libpcap file format (draft-ietf-opsawg-pcap: magic 0xA1B2C3D4 microsecond resolution, version
// 2.4, SnapLen, LinkType 1 = LINKTYPE_ETHERNET; record header: seconds, microseconds, captured length,
// original length), written little-endian as readers detect the byte order from the magic.

export const PCAP_MAGIC_MICROSECONDS = 0xa1b2c3d4;
export const LINKTYPE_ETHERNET = 1;
/** Captures keep whole frames: the longest the wire carries is below this (tcpdump's default too). */
export const PCAP_SNAPLEN = 262_144;
const GLOBAL_HEADER = 24;
const RECORD_HEADER = 16;

export function pcapHeader(): Uint8Array {
  const b = new Uint8Array(GLOBAL_HEADER);
  const v = new DataView(b.buffer);
  v.setUint32(0, PCAP_MAGIC_MICROSECONDS, true);
  v.setUint16(4, 2, true);
  v.setUint16(6, 4, true);
  // 8: thiszone (GMT), 12: sigfigs: both 0.
  v.setUint32(16, PCAP_SNAPLEN, true);
  v.setUint32(20, LINKTYPE_ETHERNET, true);
  return b;
}

/** One record: `timeMs` is milliseconds since the Unix epoch (fractions kept to the microsecond). */
export function pcapRecord(frame: Uint8Array, timeMs: number): Uint8Array {
  const captured = Math.min(frame.length, PCAP_SNAPLEN);
  const b = new Uint8Array(RECORD_HEADER + captured);
  const v = new DataView(b.buffer);
  const micros = Math.max(0, Math.round(timeMs * 1000));
  v.setUint32(0, Math.floor(micros / 1_000_000), true);
  v.setUint32(4, micros % 1_000_000, true);
  v.setUint32(8, captured, true);
  v.setUint32(12, frame.length, true);
  b.set(frame.subarray(0, captured), RECORD_HEADER);
  return b;
}
