// Owns: driving a Linux guest's serial console from tests and benchmarks, as a person at a terminal would:
// starting the guest under an emulator (QEMU TCG, the reference, or `viridian run`), typing lines,
// waiting for output with a time limit, running one shell command and capturing what it printed between
// two prompts, and turning any failure into an error that carries the last 50 lines of serial output and
// the processor state (Viridian's: it prints it when stopped with SIGTERM, as its CLI contract offers;
// QEMU's: from its monitor's `info registers`).
// Also the one switch that decides whether the Viridian variants of the Linux tests run.
// Must not: assert anything about the guest (the tests do), measure speed (bench/boot.ts does), or leave
// a child process running (every session ends in `close()`).
// Spec: ECMA-48 / VT100 Device Status Report (CSI 6 n asks for the cursor position, the terminal answers
// CSI row ; col R), which busybox's line editor sends after every prompt; guest/README.md (the prompt);
// QEMU 7.2 options (-kernel, -initrd, -append, -rtc base=, -no-reboot, -nographic); issue 3's `viridian run`
// contract (--kernel, --initrd, --cmdline, --memory, --rtc-offset; SIGTERM prints the CPU state, status 143).

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export type Emulator = "qemu" | "viridian";
export const EMULATORS: readonly Emulator[] = ["qemu", "viridian"];

/**
 * THE switch for the Viridian variants of the Linux guest tests. Until `viridian run` boots Linux they run
 * only with VIRIDIAN_LINUX=1; when it does, set this to true and they run in the default suite
 * (VIRIDIAN_LINUX=0 then turns them off again).
 */
const VIRIDIAN_LINUX_IN_DEFAULT_SUITE = true;

// Compiled to dist/tests/linux/, three levels below the repository root (bench/ imports the compiled file).
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const BUNDLED_KERNEL = resolve(REPO, "guest/bzImage");
export const BUNDLED_INITRD = resolve(REPO, "guest/initramfs.cpio.lz4");
const VIRIDIAN_BIN = resolve(REPO, "bin/viridian.js");
export const QEMU = "qemu-system-x86_64";

/** The shell prompt in any directory (guest/rootfs/etc/profile sets PS1='viridian-guest:\w # '). */
const PROMPT = /viridian-guest:[^\n]*? # /;
/** Busybox's line editor asks for the cursor position after each prompt (Device Status Report). */
const CURSOR_QUERY = "\u001b[6n";
/** What could be the start of a cursor query or of a CR LF pair, held back at the end of a chunk. */
// eslint-disable-next-line no-control-regex -- terminal control characters are what this matches
const INCOMPLETE_AT_END = /(\u001b(\[6?)?|\r+)$/;
/** An ECMA-48 control sequence (CSI ... final byte): cursor movement, colours, erase. */
// eslint-disable-next-line no-control-regex -- terminal control characters are what this matches
const CONTROL_SEQUENCE = /\u001b\[[0-9;?]*[A-Za-z]/g;
const CONTROL_SEQUENCE_HERE = new RegExp(CONTROL_SEQUENCE.source, "y");
/** Lines kept for failure reports. */
const TAIL_LINES = 50;

/** Why a variant does not run, or false when it runs. */
export function skipReason(emulator: Emulator): string | false {
  if (emulator === "qemu") {
    const missing = spawnSync(QEMU, ["--version"], { stdio: "ignore" }).error !== undefined;
    return missing ? `${QEMU} not found: install qemu-system-x86` : false;
  }
  const env = process.env.VIRIDIAN_LINUX;
  const on = env === undefined || env === "" ? VIRIDIAN_LINUX_IN_DEFAULT_SUITE : env === "1";
  return on ? false : "Viridian does not boot Linux yet: set VIRIDIAN_LINUX=1 to run this variant";
}

/** Time limits, generous because Viridian's interpreter on a loaded 2-core machine boots in 30-60 s. */
export interface Limits {
  bootMs: number;
  commandMs: number;
  /** How long a stopped emulator may take to print its state and exit before it is killed. */
  stopMs: number;
}

export function limits(emulator: Emulator, kernel: "bundled" | "stock" = "bundled"): Limits {
  // Debian's stock kernel takes 2-8 times as long as the bundled one under QEMU TCG (more initcalls,
  // a bigger image to decompress).
  const scale = kernel === "stock" ? 4 : 1;
  const env = Number(process.env.VIRIDIAN_LINUX_BOOT_TIMEOUT);
  if (emulator === "qemu") return { bootMs: 60_000 * scale, commandMs: 60_000, stopMs: 10_000 };
  const boot = Number.isFinite(env) && env > 0 ? env * 1000 : 300_000 * scale;
  return { bootMs: boot, commandMs: 300_000, stopMs: 30_000 };
}

export interface GuestOptions {
  emulator: Emulator;
  /** Kernel image; default the bundled guest (for Viridian: no --kernel, the CLI's own default). */
  kernel?: string;
  /** Initial ramdisk; default the bundled initramfs when `kernel` is given. */
  initrd?: string;
  /** The whole kernel command line; default `console=ttyS0` for QEMU, the CLI's default for Viridian. */
  cmdline?: string;
  /**
   * Guest RAM in MiB. Default: 256 for QEMU (the reference configuration of guest/README.md); for
   * Viridian no --memory, so that the bundled session runs the README's command exactly (`viridian run`).
   * The bench passes 256 to both.
   */
  memoryMiB?: number;
  /** Seconds added to the host's UTC for the guest's CMOS clock. */
  rtcOffsetSeconds?: number;
  /** QEMU: let a guest reset restart the machine (no -no-reboot). Viridian always restarts. */
  allowReboot?: boolean;
  /**
   * Disk images: Viridian `--disk PATH[:ro]` (LUN 0, 1, ...), QEMU virtio-blk (/dev/vda, vdb, ...); and
   * (Viridian only) an ISO as the DVD (`--dvd`).
   */
  disks?: ReadonlyArray<{ path: string; readOnly?: boolean }>;
  dvd?: string;
  /** Viridian: NICs, each the value of one `--nic` (e.g. `switch=/path/ports.sock,mac=00:15:5d:00:00:01`). */
  nics?: readonly string[];
  /** Viridian: `--pace-mips N` (the pacing floor of docs/architecture.md, "One time base"). */
  paceMips?: number;
  /** Viridian: `--state` (the machine state, ICs included, on stderr when the guest powers off). */
  state?: boolean;
  /** Variables added to the emulator's environment (e.g. VIRIDIAN_RUNTIME_DIR, where `--nic switch=NAME` looks). */
  env?: Readonly<Record<string, string>>;
}

/** The command line that starts a guest; exported so that the bench runs exactly what the tests run. */
export function guestCommand(o: GuestOptions, now = Date.now()): { command: string; args: string[] } {
  if (o.emulator === "qemu") {
    if (o.dvd !== undefined || o.nics !== undefined)
      throw new Error("DVDs and NICs are Viridian options here");
    const args = ["-accel", "tcg", "-m", String(o.memoryMiB ?? 256), "-nographic"];
    // Disks as virtio-blk (the reference for storvsc), in order (/dev/vda, vdb, ...), without the host's
    // page cache in the way (cache=none needs O_DIRECT on the host file system, which tmpfs lacks).
    for (const d of o.disks ?? []) {
      const format = /\.vhdx$/i.test(d.path) ? "vhdx" : /\.vhd$/i.test(d.path) ? "vpc" : "raw";
      const ro = d.readOnly === true ? ",readonly=on" : "";
      args.push("-drive", `file=${d.path},format=${format},if=virtio,cache=writeback${ro}`);
    }
    if (!o.allowReboot) args.push("-no-reboot");
    args.push("-kernel", o.kernel ?? BUNDLED_KERNEL, "-initrd", o.initrd ?? BUNDLED_INITRD);
    args.push("-append", o.cmdline ?? "console=ttyS0");
    if (o.rtcOffsetSeconds !== undefined) args.push("-rtc", `base=${rtcBase(now, o.rtcOffsetSeconds)}`);
    return { command: QEMU, args };
  }
  const args = [VIRIDIAN_BIN, "run"];
  if (o.memoryMiB !== undefined) args.push("--memory", `${o.memoryMiB}M`);
  if (o.kernel !== undefined) args.push("--kernel", o.kernel, "--initrd", o.initrd ?? BUNDLED_INITRD);
  else if (o.initrd !== undefined) args.push("--initrd", o.initrd);
  if (o.cmdline !== undefined) args.push("--cmdline", o.cmdline);
  if (o.rtcOffsetSeconds !== undefined) args.push("--rtc-offset", String(o.rtcOffsetSeconds));
  for (const d of o.disks ?? []) args.push("--disk", d.readOnly === true ? `${d.path}:ro` : d.path);
  if (o.dvd !== undefined) args.push("--dvd", o.dvd);
  for (const n of o.nics ?? []) args.push("--nic", n);
  if (o.paceMips !== undefined) args.push("--pace-mips", String(o.paceMips));
  if (o.state === true) args.push("--state");
  return { command: process.execPath, args };
}

/**
 * QEMU's `-rtc base=` takes a date with whole seconds and keeps the difference to the host's clock as of
 * the second in which QEMU parses it; the caller starts QEMU early in a second (`startGuest` waits for
 * one) so that this difference is the offset asked for.
 */
function rtcBase(nowMs: number, offsetSeconds: number): string {
  return new Date((Math.floor(nowMs / 1000) + offsetSeconds) * 1000).toISOString().slice(0, 19);
}

/** A failure of a guest session: the message carries the serial tail and, for Viridian, the CPU state. */
export class GuestFailure extends Error {
  override name = "GuestFailure";
}

interface Waiter {
  pattern: RegExp;
  from: number;
  resolve: (m: RegExpExecArray) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** One running guest and everything it printed. */
export class GuestConsole {
  /** Serial output as a terminal shows it: cursor queries removed, CR LF as LF. */
  text = "";
  stderr = "";
  exitStatus: number | null = null;
  exitSignal: string | null = null;
  readonly started = performance.now();
  /** Offsets in `text` of our command exchanges, so the boot-log check can skip what we typed. */
  readonly exchanges: Array<{ from: number; to: number }> = [];
  private carry = "";
  private waiter: Waiter | null = null;
  private readonly exited: Promise<void>;
  /** Why the session stopped being usable (first failure or exit), shown by later steps. */
  private ended: string | null = null;
  private failures = 0;
  private stateCollected = false;
  /** QEMU's processor state from its monitor, taken when a failing session is stopped. */
  private qemuState = "";
  readonly describe: string;
  private readonly child: ChildProcess;

  constructor(
    readonly emulator: Emulator,
    command: string,
    args: string[],
    private readonly limits: Limits,
    env?: Readonly<Record<string, string>>,
  ) {
    this.describe = `${command === process.execPath ? "node" : command} ${args.join(" ")}`;
    this.child = spawn(command, args, {
      cwd: REPO,
      stdio: ["pipe", "pipe", "pipe"],
      ...(env !== undefined ? { env: { ...process.env, ...env } } : {}),
    });
    this.child.stdout!.setEncoding("latin1");
    this.child.stderr!.setEncoding("latin1");
    this.child.stdout!.on("data", (chunk: string) => this.receive(chunk));
    this.child.stderr!.on("data", (chunk: string) => (this.stderr += chunk));
    // A guest that stops reading its console must not crash the test process with EPIPE.
    this.child.stdin!.on("error", () => undefined);
    this.exited = new Promise((resolveExit) => {
      this.child.on("error", (e) => {
        this.stderr += `\n(spawn failed: ${e.message})`;
        this.exitStatus = -1;
        this.onExit();
        resolveExit();
      });
      this.child.on("close", (code, signal) => {
        this.exitStatus = code;
        this.exitSignal = signal;
        this.onExit();
        resolveExit();
      });
    });
  }

  /** The emulator's process id (a test reads its resident memory from /proc). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitStatus === null && this.exitSignal === null;
  }

  private onExit(): void {
    this.ended ??= `the guest exited (${this.exitText()})`;
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      clearTimeout(w.timer);
      w.reject(new Error(`${this.ended} while waiting for ${w.pattern}`));
    }
  }

  exitText(): string {
    return this.exitSignal !== null ? `signal ${this.exitSignal}` : `status ${this.exitStatus}`;
  }

  private receive(chunk: string): void {
    let s = this.carry + chunk;
    // Hold back what could be the start of a cursor query or of a CR LF pair split across chunks.
    const hold = INCOMPLETE_AT_END.exec(s);
    this.carry = hold ? hold[0] : "";
    if (hold) s = s.slice(0, s.length - hold[0].length);
    const queries = s.split(CURSOR_QUERY).length - 1;
    this.text += s.replaceAll(CURSOR_QUERY, "").replace(/\r+\n/g, "\n");
    // Answer as a terminal would, with the column after what is on the current line (busybox then
    // knows the prompt ends where it thinks it does, and changes nothing).
    for (let i = 0; i < queries; i++) this.send(cursorReport(this.text));
    this.check();
  }

  private check(): void {
    const w = this.waiter;
    if (!w) return;
    w.pattern.lastIndex = 0;
    const m = w.pattern.exec(this.text.slice(w.from));
    if (m) {
      this.waiter = null;
      clearTimeout(w.timer);
      m.index += w.from;
      w.resolve(m);
    }
  }

  /** The current end of the output: later waits and captures start here. */
  mark(): number {
    return this.text.length;
  }

  /** Types raw bytes on the console. */
  send(text: string): void {
    if (this.running) this.child.stdin!.write(text, "latin1");
  }

  /** Waits for `pattern` in the output from offset `from`; the match's index is an offset in `text`. */
  waitFor(pattern: RegExp, timeoutMs: number, from = 0): Promise<RegExpExecArray> {
    if (this.waiter) throw new Error("GuestConsole: one wait at a time");
    return new Promise((resolveWait, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`timed out after ${timeoutMs / 1000} s waiting for ${pattern}`));
      }, timeoutMs);
      this.waiter = { pattern, from, resolve: resolveWait, reject, timer };
      this.check();
      // Output that is already complete either holds the pattern or never will.
      if (this.waiter && !this.running) this.onExit();
    });
  }

  /** Waits for a shell prompt after offset `from`; returns the offset just past it. */
  async waitForPrompt(timeoutMs = this.limits.bootMs, from = 0): Promise<number> {
    const m = await this.waitFor(PROMPT, timeoutMs, from);
    return m.index + m[0].length;
  }

  /**
   * Runs one command at the prompt and returns what it printed (LF line ends), without the echoed command
   * line and the next prompt. The console must be at a prompt.
   */
  async run(command: string, timeoutMs = this.limits.commandMs): Promise<string> {
    const from = this.mark();
    this.send(command + "\n");
    const m = await this.waitFor(PROMPT, timeoutMs, from);
    this.exchanges.push({ from, to: m.index + m[0].length });
    // Kernel messages may land anywhere in the exchange, even inside the echo or a line of output.
    return stripEcho(this.text.slice(from, m.index).replace(KERNEL_MESSAGE, ""), command);
  }

  /** Types a command after which no prompt is expected (poweroff, reboot); records it as ours. */
  type(command: string): number {
    const from = this.mark();
    this.send(command + "\n");
    // The echo is the command and its line end; the shell may print one more prompt, which is harmless.
    this.exchanges.push({ from, to: from + command.length + 1 });
    return from;
  }

  /** Waits for the emulator to exit; returns its status (null when ended by a signal). */
  async waitExit(timeoutMs = this.limits.commandMs): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeoutMs)));
    const r = await Promise.race([this.exited.then(() => "exited" as const), timeout]);
    clearTimeout(timer);
    if (r === "timeout") throw new Error(`the emulator did not exit within ${timeoutMs / 1000} s`);
    return this.exitStatus;
  }

  /** The last `n` lines of serial output, as a terminal shows them. */
  tail(n = TAIL_LINES): string {
    const lines = (this.text + this.carry).replace(/\r/g, "").split("\n");
    if (lines.at(-1) === "") lines.pop();
    return lines.slice(-n).join("\n");
  }

  /**
   * Stops Viridian with SIGTERM twice (turn-off) so that it prints the processor state; asks QEMU's monitor for the
   * state (Ctrl-A c switches -nographic's console to the monitor) and kills it. Waits for the end.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.stateCollected = this.emulator === "viridian";
    if (this.emulator === "qemu" && !this.waiter) {
      const from = this.mark();
      this.send("\u0001cinfo registers\n");
      try {
        await this.waitFor(/\nRIP=[\s\S]*\n\(qemu\) $/, this.limits.stopMs, from);
      } catch {
        // A QEMU too stuck to answer is killed all the same; the report then has no state.
      }
      // The monitor's conversation is not guest output.
      const monitor = withoutControlSequences(this.text.slice(from));
      this.text = this.text.slice(0, from);
      const cpu = monitor.indexOf("CPU#");
      this.qemuState = cpu < 0 ? "" : monitor.slice(cpu).replace(/\n\(qemu\) $/, "");
    }
    if (this.emulator === "viridian") {
      // The first SIGTERM asks a guest with the shutdown integration service to shut down; the second turns
      // the VM off at once, and only a turn-off prints the processor state this report wants.
      this.child.kill("SIGTERM");
      this.child.kill("SIGTERM");
    } else this.child.kill("SIGKILL");
    try {
      await this.waitExit(this.limits.stopMs);
    } catch {
      this.child.kill("SIGKILL");
      await this.exited;
    }
  }

  /** Sends the emulator a signal (e.g. one SIGTERM: `viridian run`'s orderly shutdown request). */
  signal(name: NodeJS.Signals): void {
    if (this.running) this.child.kill(name);
  }

  /** Ends the session however it stands; for `after` hooks. */
  async close(): Promise<void> {
    if (this.running) {
      this.child.kill("SIGKILL");
      await this.exited;
    }
  }

  /**
   * The failure report for `reason`: what went wrong, the last 50 lines of serial output, and the
   * processor state (Viridian's stderr, QEMU's monitor). Stops a guest that is still running.
   */
  async failure(reason: unknown): Promise<GuestFailure> {
    const first = this.failures++ === 0;
    const wasRunning = this.running;
    const why = reason instanceof Error ? reason.message : String(reason);
    this.ended ??= `an earlier step failed: ${why.split("\n")[0]}`;
    await this.stop();
    const parts = [
      why,
      "",
      `emulator: ${this.describe}`,
      wasRunning ? `stopped by the test (${this.exitText()})` : `exited: ${this.exitText()}`,
      `--- last ${TAIL_LINES} lines of guest serial output ---`,
      this.tail(),
    ];
    if (this.emulator === "viridian") {
      const how = this.stateCollected ? "after SIGTERM" : "as it exited";
      parts.push(`--- Viridian stderr (processor state ${how}) ---`, this.stderr.trimEnd() || "(nothing)");
    } else {
      if (this.qemuState !== "")
        parts.push("--- QEMU processor state (monitor: info registers) ---", this.qemuState);
      if (this.stderr.trim() !== "") parts.push("--- QEMU stderr ---", this.stderr.trimEnd());
    }
    const e = new GuestFailure(parts.join("\n"));
    if (first) e.cause = reason;
    return e;
  }

  /**
   * Runs one test step; any error becomes a GuestFailure with the diagnostics. After a failure (which
   * stopped the guest) later steps of the session are not run but fail with the same diagnostics, except
   * `afterFailureToo` steps, which only examine what was collected.
   */
  async step<T>(body: () => Promise<T>, afterFailureToo = false): Promise<T> {
    if (this.failures > 0 && !afterFailureToo) throw await this.failure(`not run: ${this.ended}`);
    try {
      return await body();
    } catch (e) {
      throw await this.failure(e);
    }
  }

  /** Kernel and boot lines: all output except our command exchanges, whose kernel lines are kept. */
  consoleLog(): string[] {
    const out: string[] = [];
    let at = 0;
    for (const x of this.exchanges) {
      out.push(...this.text.slice(at, x.from).split("\n"));
      for (const m of this.text.slice(x.from, x.to).matchAll(KERNEL_MESSAGE)) out.push(m[0].trimEnd());
      at = x.to;
    }
    out.push(...this.text.slice(at).split("\n"));
    return out;
  }
}

/**
 * A console message of a kernel with CONFIG_PRINTK_TIME (the bundled and Debian's kernels),
 * "[    1.234567] text" up to its line end; the kernel starts one wherever the cursor is.
 */
const KERNEL_MESSAGE = /\[ *\d+\.\d{6}\] [^\n]*\n/g;

/** The Device Status Report answer for the cursor after `text`: row 24 (any row will do), 1-based column. */
export function cursorReport(text: string): string {
  const line = text.slice(text.lastIndexOf("\n") + 1);
  const visible = line.slice(line.lastIndexOf("\r") + 1).replace(CONTROL_SEQUENCE, "");
  return `\u001b[24;${(visible.length % 80) + 1}R`;
}

/**
 * The output of a command from what followed typing it: the line editor's echo of the command (which it
 * may wrap at the terminal width with CR, LF and cursor sequences) and the line end are dropped.
 */
export function stripEcho(after: string, command: string): string {
  let i = 0;
  for (const ch of command) {
    for (;;) {
      const c = after[i];
      if (c === "\r" || c === "\n") {
        i++;
      } else if (c === "\u001b") {
        CONTROL_SEQUENCE_HERE.lastIndex = i;
        const esc = CONTROL_SEQUENCE_HERE.exec(after);
        i += esc ? esc[0].length : 1;
      } else break;
    }
    if (after[i] !== ch) throw new Error(`the console did not echo '${command}': ${JSON.stringify(after)}`);
    i++;
  }
  const nl = after.indexOf("\n", i);
  return nl < 0 ? "" : after.slice(nl + 1);
}

/** Acceptance item 2's forbidden boot-log lines. */
export const FORBIDDEN_LOG_LINES: readonly RegExp[] = [
  /unchecked MSR access/,
  /BUG:/,
  /WARNING:/,
  /Call Trace/,
  /Kernel panic/,
  /timed out/,
  /clocksource.*unstable|unstable.*clocksource/i,
];

/** Text without terminal control sequences (colours of `ls`, cursor movement of the line editor). */
export function withoutControlSequences(text: string): string {
  return text.replace(CONTROL_SEQUENCE, "");
}

export function forbiddenLines(lines: readonly string[]): string[] {
  return lines.filter((l) => FORBIDDEN_LOG_LINES.some((p) => p.test(l)));
}

/** Starts a guest (for a QEMU RTC offset, early in a second: see rtcBase). */
export async function startGuest(o: GuestOptions, lim = limits(o.emulator)): Promise<GuestConsole> {
  if (o.emulator === "qemu" && o.rtcOffsetSeconds !== undefined) {
    const ms = Date.now() % 1000;
    if (ms > 100) await new Promise((r) => setTimeout(r, 1000 - ms));
  }
  const { command, args } = guestCommand(o);
  return new GuestConsole(o.emulator, command, args, lim, o.env);
}
