// Owns: writing a VM's host output (the guest's console, the serial log, the instruction trace) to a file
// descriptor so that the writer never throws and never crashes the process: every byte is written with
// writeSync; a full non-blocking pipe (EAGAIN: a slow reader) is waited on in short sleeps, as a blocking
// write would wait, rather than spun on or queued without bound; any other failure (a reader that closed the
// pipe: EPIPE, a full disk, ENOBUFS) ends the output: later writes are dropped and `onFail` is told once, so
// the run loop can stop the VM cleanly.
// Must not: buffer without bound (a write returns only once its bytes are in the kernel or the output failed),
// use Node's asynchronous stream writes (their errors arrive as 'error' events nobody may be listening to),
// or decide what a failure means for the VM (the caller does).
// Spec: POSIX write(2) (EAGAIN on a full non-blocking pipe, EPIPE when no reader is left); Node's fs.writeSync.

import { closeSync, writeSync } from "node:fs";

/** How long to sleep on a full pipe before trying again; long enough not to spin, short enough to keep up. */
const FULL_PIPE_WAIT_MS = 2;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

export class FdOutput {
  /** Why the output failed (null while it works). */
  failure: string | null = null;
  private readonly text = new TextEncoder();

  constructor(
    readonly fd: number,
    /** A name for messages ("stdout", "the serial log"). */
    readonly name: string,
    /** Told once when the output fails. */
    private readonly onFail: (why: string) => void = () => undefined,
  ) {}

  get ok(): boolean {
    return this.failure === null;
  }

  /** Writes all of `bytes`, or records the failure; never throws. */
  write(bytes: Uint8Array): void {
    if (this.failure !== null) return;
    let off = 0;
    while (off < bytes.length) {
      try {
        off += writeSync(this.fd, bytes, off, bytes.length - off);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "EAGAIN") {
          // A slow reader: wait for it (back pressure), as a blocking write would; the VM waits with it.
          Atomics.wait(sleeper, 0, 0, FULL_PIPE_WAIT_MS);
          continue;
        }
        this.fail(`${this.name}: ${code === "EPIPE" ? "the reader closed it" : (e as Error).message}`);
        return;
      }
    }
  }

  /** Writes a string as UTF-8. */
  writeText(s: string): void {
    if (this.failure === null) this.write(this.text.encode(s));
  }

  /** Closes the descriptor (for files this object opened); never throws. */
  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      // Already closed or never valid: nothing left to release.
    }
  }

  private fail(why: string): void {
    this.failure = why;
    this.onFail(why);
  }
}
