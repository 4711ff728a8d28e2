// Owns: the error type of the network tier: a stable code for programs and tests, a message for people.
// Must not: carry host objects (sockets, errno) — hosts translate their own failures into these codes.
// Spec: none (project convention, after StorageError in src/storage/disk.ts).

export type NetErrorCode =
  /** A stream announced a frame longer than the wire format allows: the stream is out of step, close it. */
  | "frame-too-large"
  /** A stream ended in the middle of a frame (length prefix or payload). */
  | "truncated"
  /** A caller passed a frame the wire cannot carry (empty, shorter than an Ethernet header, too long). */
  | "invalid-frame"
  /** A port, switch or name that does not exist or already exists. */
  | "not-found"
  | "exists"
  | "invalid-argument";

export class NetError extends Error {
  constructor(
    readonly code: NetErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "NetError";
  }
}
