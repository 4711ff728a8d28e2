// Owns: a VM NIC's connection to a switch: a UNIX stream socket to the switch's ports socket (or anything
// speaking the same wire format, e.g. QEMU's `-netdev stream,server=on`), frames out with the socket's
// back-pressure reported to the caller, frames in decoded from the stream, and the end of the connection.
// Must not: know the NIC (the worker joins this to a VSP), buffer without bound (a write beyond the high-water
// mark reports "full" and the caller stops sending until `onDrain`), or keep reading a stream that broke its
// framing (the connection is closed and reported).
// Spec: src/net/frame-stream.ts (4-byte big-endian length + Ethernet frame); Node net.Socket back-pressure.

import { connect, type Socket } from "node:net";
import { encodeFrame, FrameDecoder, MAX_FRAME, ETHERNET_HEADER } from "../net/frame-stream.js";
import { NetError } from "../net/net-error.js";

/** Bytes waiting in the socket beyond which `send` says "full" (the sender pauses until drain). */
export const LINK_HIGH_WATER = 1 << 20;

export interface SwitchLinkEvents {
  /** A frame from the switch. */
  onFrame(frame: Uint8Array): void;
  /** The socket can take more after `send` returned false. */
  onDrain(): void;
  /** The connection ended (the switch stopped, a stream error, broken framing); called once. */
  onClose(reason: string): void;
}

export interface SwitchLink {
  /** Writes one frame; false when the socket is now above its high-water mark. */
  send(frame: Uint8Array): boolean;
  readonly open: boolean;
  close(): void;
}

/**
 * A link over a socket that is already connected (e.g. one end of a socketpair whose other end a NAT program
 * holds): the same framing, back-pressure and end as a switch connection. `peer` names the other end in
 * close reasons ("the user NAT").
 */
export function streamLink(socket: Socket, events: SwitchLinkEvents, peer = "the switch"): SwitchLink {
  const decoder = new FrameDecoder();
  let closed = false;
  const finish = (reason: string): void => {
    if (closed) return;
    closed = true;
    socket.destroy();
    events.onClose(reason);
  };
  socket.on("data", (chunk: Buffer) => {
    let frames: Uint8Array[];
    try {
      frames = decoder.push(chunk);
    } catch (e) {
      finish((e as Error).message);
      return;
    }
    for (const f of frames) events.onFrame(f);
  });
  socket.on("drain", () => events.onDrain());
  socket.on("end", () => finish(`${peer} closed the connection`));
  socket.on("close", () => finish("the connection closed"));
  socket.on("error", (e) => finish(e.message));
  return {
    send(frame: Uint8Array): boolean {
      if (closed || frame.length < ETHERNET_HEADER || frame.length > MAX_FRAME) return true;
      socket.write(encodeFrame(frame));
      return socket.writableLength < LINK_HIGH_WATER;
    },
    get open() {
      return !closed;
    },
    close: () => finish("closed by the VM"),
  };
}

/** Connects to the stream socket at `path`; rejects with a NetError naming the path when that fails. */
export function connectSwitchLink(path: string, events: SwitchLinkEvents): Promise<SwitchLink> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(path);
    const refuse = (e: NodeJS.ErrnoException): void => {
      socket.destroy();
      const hint =
        e.code === "ENOENT" || e.code === "ECONNREFUSED"
          ? " (is the switch running? `viridian switch create NAME` prints its ports socket)"
          : "";
      reject(
        new NetError(
          "not-found",
          `cannot connect to the switch socket ${path}: ${e.code ?? e.message}${hint}`,
        ),
      );
    };
    socket.once("error", refuse);
    socket.once("connect", () => {
      socket.off("error", refuse);
      socket.setNoDelay(true);
      resolve(streamLink(socket, events));
    });
  });
}
