// Owns: joining byte streams to a virtual switch: one switch port per stream (a UNIX socket connection from
// a VM, QEMU's `-netdev stream`, passt, or vde_plug's stdin/stdout), decoding frames from the stream into the
// switch and writing the port's queue back with the stream's own back-pressure.
// Must not: let one stream stall the switch (a stream that does not drain loses frames in its bounded port
// queue), keep a port after its stream ends, or survive a stream that breaks the framing (it is closed).
// Spec: src/net/frame-stream.ts (the wire format), Node stream back-pressure (write() false, then 'drain').

import type { Readable, Writable } from "node:stream";
import { encodeFrame, FrameDecoder, type PrefixBytes } from "../net/frame-stream.js";
import { NetError } from "../net/net-error.js";
import type { PortOptions, SwitchPort, VirtualSwitch } from "../net/virtual-switch.js";

export interface StreamPortOptions extends PortOptions {
  prefixBytes?: PrefixBytes;
  /** Called once when the port has left the switch (stream ended, failed, or broke the framing). */
  onClose?: (port: SwitchPort, error: NetError | Error | null) => void;
}

export interface StreamPort {
  readonly port: SwitchPort;
  /** Takes the port off the switch and closes the stream. */
  close(): void;
}

/**
 * Joins a stream to the switch. `input` carries frames from the endpoint, `output` to it (the same socket for
 * a connection, two pipes for a child process).
 */
export function attachStream(
  sw: VirtualSwitch,
  input: Readable,
  output: Writable,
  options: StreamPortOptions,
): StreamPort {
  const port = sw.addPort(options);
  const prefix = options.prefixBytes ?? 4;
  const decoder = new FrameDecoder({ prefixBytes: prefix });
  let blocked = false;
  let closed = false;

  const finish = (error: NetError | Error | null) => {
    if (closed) return;
    closed = true;
    sw.removePort(port);
    input.off("data", onData);
    output.off("drain", pump);
    input.destroy();
    if ((output as unknown) !== input) output.destroy();
    options.onClose?.(port, error);
  };

  const pump = () => {
    blocked = false;
    for (let f = port.take(); f; f = port.take()) {
      if (!output.write(encodeFrame(f, prefix))) {
        // The endpoint is slow: further frames wait in the bounded port queue (and drop when it is full).
        blocked = true;
        return;
      }
    }
  };
  port.onQueued = () => {
    if (!blocked && !closed) pump();
  };
  output.on("drain", pump);

  const onData = (chunk: Buffer) => {
    let frames: Uint8Array[];
    try {
      frames = decoder.push(chunk);
    } catch (e) {
      finish(e as NetError);
      return;
    }
    for (const f of frames) sw.input(port, f);
  };
  input.on("data", onData);
  input.on("end", () => {
    let error: NetError | null = null;
    try {
      decoder.end();
    } catch (e) {
      error = e as NetError;
    }
    finish(error);
  });
  input.on("error", (e) => finish(e));
  output.on("error", (e) => finish(e));
  input.on("close", () => finish(null));
  if ((output as unknown) !== input) output.on("close", () => finish(null));
  return { port, close: () => finish(null) };
}
