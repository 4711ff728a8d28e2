// Owns: the one wire format between network endpoints (switch ports, QEMU `-netdev stream`, passt): each
// Ethernet frame (no preamble, no FCS) preceded by its length as a 4-byte big-endian integer. Encoding, and
// an incremental decoder that takes arbitrary stream chunks and yields whole frames.
// Must not: trust a length prefix (every byte comes from a guest or another program), buffer more than one
// frame of the maximum size, or copy a chunk more than once on its way to a frame.
// Spec: QEMU net/stream.c and passt tap.c framing (a uint32 network-order length, then the frame; vde_plug
// uses a uint16 length on its stdin/stdout); Ethernet header sizes from IEEE 802.3 / 802.1Q.

import { NetError } from "./net-error.js";

/** Destination MAC, source MAC, EtherType. */
export const ETHERNET_HEADER = 14;
/**
 * The longest frame the wire carries: a 65,535-byte IP packet behind an Ethernet header and one 802.1Q tag.
 * passt's largest MTU (65,520) fits; anything longer announces a broken or hostile peer.
 */
export const MAX_FRAME = 65_535 + ETHERNET_HEADER + 4;
/**
 * Bytes in the length prefix: 4 on the stream wire; 2 where vde_plug carries frames on its stdin/stdout
 * (the TAP port), which is the same format with a shorter prefix.
 */
export type PrefixBytes = 2 | 4;

/** The bytes that put `frame` on the wire. */
export function encodeFrame(frame: Uint8Array, prefix: PrefixBytes = 4): Uint8Array {
  if (frame.length < ETHERNET_HEADER || frame.length > MAX_FRAME) {
    throw new NetError(
      "invalid-frame",
      `an Ethernet frame has ${ETHERNET_HEADER} to ${MAX_FRAME} bytes, not ${frame.length}`,
    );
  }
  if (frame.length >= 2 ** (8 * prefix)) {
    throw new NetError("invalid-frame", `a ${frame.length}-byte frame does not fit a ${prefix}-byte length`);
  }
  const out = new Uint8Array(prefix + frame.length);
  const v = new DataView(out.buffer);
  if (prefix === 4) v.setUint32(0, frame.length);
  else v.setUint16(0, frame.length);
  out.set(frame, prefix);
  return out;
}

/** What the decoder did with a frame it could not pass on; the framing itself stayed in step. */
export interface DecoderCounters {
  /** Frames shorter than an Ethernet header (including zero-length ones), skipped. */
  runts: number;
}

/**
 * Turns a byte stream into frames. `push` returns every frame completed by the chunk; frames are fresh
 * copies the caller may keep. A length above MAX_FRAME throws NetError("frame-too-large") and the decoder
 * refuses further input: the stream has lost its framing and its connection must be closed. `end` throws
 * NetError("truncated") when the stream stopped inside a frame.
 */
export class FrameDecoder {
  readonly counters: DecoderCounters = { runts: 0 };
  private readonly prefix: Uint8Array;
  private prefixFill = 0;
  /** The frame being filled, once its length is known. */
  private frame: Uint8Array | null = null;
  private frameFill = 0;
  private broken: NetError | null = null;

  private readonly maxFrame: number;

  constructor(options: { maxFrame?: number; prefixBytes?: PrefixBytes } = {}) {
    this.maxFrame = options.maxFrame ?? MAX_FRAME;
    this.prefix = new Uint8Array(options.prefixBytes ?? 4);
  }

  push(chunk: Uint8Array): Uint8Array[] {
    if (this.broken) throw this.broken;
    const out: Uint8Array[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.frame === null) {
        const take = Math.min(this.prefix.length - this.prefixFill, chunk.length - at);
        this.prefix.set(chunk.subarray(at, at + take), this.prefixFill);
        this.prefixFill += take;
        at += take;
        if (this.prefixFill < this.prefix.length) break;
        this.prefixFill = 0;
        const v = new DataView(this.prefix.buffer);
        const length = this.prefix.length === 4 ? v.getUint32(0) : v.getUint16(0);
        if (length > this.maxFrame) {
          this.broken = new NetError(
            "frame-too-large",
            `a frame of ${length} bytes announced (at most ${this.maxFrame}): the stream is out of step`,
          );
          throw this.broken;
        }
        if (length < ETHERNET_HEADER) {
          // Skipping the runt keeps the stream in step: its length is still a valid length.
          this.counters.runts++;
          if (length === 0) continue;
        }
        this.frame = new Uint8Array(length);
        this.frameFill = 0;
        continue;
      }
      const take = Math.min(this.frame.length - this.frameFill, chunk.length - at);
      this.frame.set(chunk.subarray(at, at + take), this.frameFill);
      this.frameFill += take;
      at += take;
      if (this.frameFill === this.frame.length) {
        if (this.frame.length >= ETHERNET_HEADER) out.push(this.frame);
        this.frame = null;
      }
    }
    return out;
  }

  /** True when the stream stopped exactly between two frames. */
  get idle(): boolean {
    return this.frame === null && this.prefixFill === 0;
  }

  /** The stream has ended: throws when it ended inside a frame. */
  end(): void {
    if (this.broken) throw this.broken;
    if (this.idle) return;
    const where =
      this.frame === null
        ? `after ${this.prefixFill} of ${this.prefix.length} length bytes`
        : `after ${this.frameFill} of ${this.frame.length} frame bytes`;
    throw new NetError("truncated", `the stream ended inside a frame (${where})`);
  }
}
