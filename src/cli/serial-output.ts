// Owns: where `viridian run` sends its host output: the guest's COM1 bytes (a small buffer flushed at every
// newline, when full, and at the end of the current turn of the event loop, so a prompt without a newline
// shows at the run loop's next pause) to stdout and optionally a serial log file, and the instruction trace
// (lines buffered the same way) to stderr, all through FdOutput: a reader that is slow is waited for, one
// that is gone (EPIPE, ENOBUFS, a full disk) ends that output and reports the failure once.
// Must not: interpret the bytes (terminal safety of guest text is the failure reports' business), or keep
// more than one buffer of output per destination.
// Spec: the CLI contract in README.md (COM1 is stdout; --serial-log FILE gets a copy; --trace goes to stderr;
// status 74, EX_IOERR of sysexits.h, when the output fails).

import { openSync } from "node:fs";
import { FdOutput } from "../host/fd-output.js";

const BUFFER_BYTES = 8192;

export class SerialOutput {
  readonly stdout: FdOutput;
  readonly log: FdOutput | null;
  private readonly buf = new Uint8Array(BUFFER_BYTES);
  private used = 0;
  private scheduled = false;

  /** `onFail` is told (once per output) when stdout or the log can take no more output. */
  constructor(logPath?: string, onFail: (why: string) => void = () => undefined) {
    this.stdout = new FdOutput(1, "stdout", onFail);
    this.log =
      logPath === undefined ? null : new FdOutput(openSync(logPath, "w"), `serial log ${logPath}`, onFail);
  }

  push(byte: number): void {
    this.buf[this.used++] = byte;
    if (byte === 0x0a || this.used === BUFFER_BYTES) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  flush(): void {
    if (this.used === 0) return;
    const chunk = this.buf.subarray(0, this.used);
    this.stdout.write(chunk);
    this.log?.write(chunk);
    this.used = 0;
  }

  /** Flushes and closes the log file (stdout stays open). */
  close(): void {
    this.flush();
    this.log?.close();
  }
}

/** The instruction trace (one line per instruction) to stderr, buffered like the console. */
export class TraceOutput {
  readonly stderr: FdOutput;
  private buf = "";
  private scheduled = false;

  constructor(onFail: (why: string) => void = () => undefined) {
    this.stderr = new FdOutput(2, "stderr (the trace)", onFail);
  }

  line(text: string): void {
    if (!this.stderr.ok) return;
    this.buf += text + "\n";
    if (this.buf.length >= BUFFER_BYTES * 8) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  flush(): void {
    if (this.buf.length === 0) return;
    const text = this.buf;
    this.buf = "";
    this.stderr.writeText(text);
  }
}
