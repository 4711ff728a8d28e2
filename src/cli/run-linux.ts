// Owns: the Linux half of `viridian run`: builds the PC machine on one virtual clock, loads the bzImage,
// initrd and command line, connects the host terminal (raw mode on a TTY, Ctrl-A X to quit; plain bytes
// with pipes) to COM1, copies COM1 to stdout and the serial log, handles SIGTERM/SIGINT, and turns the way
// the guest stopped into the process exit status (0 = power-off).
// Must not: implement machine behaviour (src/worker/pc-machine.ts) or parse images (src/firmware).
// Spec: Linux Documentation/arch/x86/boot.rst (what is loaded); the CLI contract in README.md.

import { openSync, writeSync, closeSync } from "node:fs";
import { GuestMemory } from "../memory/guest-memory.js";
import { PacedClock } from "../worker/paced-clock.js";
import { crashSummary, PcMachine, terminalSafe } from "../worker/pc-machine.js";
import { BootError } from "../firmware/linux-boot.js";

/** Exit status of a run stopped by SIGTERM (128 + 15, the shell's convention). */
export const STATUS_SIGTERM = 143;
/** Exit status when the guest dies (triple fault, panic, halt with interrupts off) or the run fails. */
export const STATUS_GUEST_FAILED = 1;
const STATUS_USAGE = 2;
/** The quit sequence on a terminal: Ctrl-A then X (as QEMU's -nographic). */
const CTRL_A = 0x01;

/** The TSC rate the processor reports through PIT calibration (virtual time is the host's, so 1 GHz). */
export const TSC_HZ = 1_000_000_000;

export interface LinuxRunOptions {
  kernel: Uint8Array;
  kernelPath: string;
  initrd?: Uint8Array;
  cmdline: string;
  memory: number;
  cpus: number;
  rtcOffset: number;
  /** Pacing floor in millions of instructions per virtual second (see src/worker/paced-clock.ts); none = host time. */
  paceMips?: number;
  serialLog?: string;
  trace: boolean;
  maxInstructions?: number;
  state: boolean;
}

/** True when the image carries the Linux boot protocol's setup header ("HdrS" at 0x202, 0xAA55 at 0x1FE). */
export function isBzImage(image: Uint8Array): boolean {
  return (
    image.length > 0x206 &&
    image[0x1fe] === 0x55 &&
    image[0x1ff] === 0xaa &&
    image[0x202] === 0x48 &&
    image[0x203] === 0x64 &&
    image[0x204] === 0x72 &&
    image[0x205] === 0x53
  );
}

export async function runLinux(o: LinuxRunOptions): Promise<number> {
  if (o.cpus > 1)
    console.error(`viridian run: SMP is not supported yet; running with 1 CPU (asked for ${o.cpus})`);
  let memory: GuestMemory;
  try {
    memory = new GuestMemory(o.memory);
  } catch (e) {
    console.error(`viridian run: cannot allocate ${o.memory} bytes of guest RAM: ${(e as Error).message}`);
    return STATUS_USAGE;
  }
  const logFd = o.serialLog !== undefined ? openSync(o.serialLog, "w") : -1;
  const out = new Uint8Array(8192);
  let used = 0;
  const flush = (): void => {
    if (used === 0) return;
    const chunk = out.subarray(0, used);
    writeAllSync(1, chunk);
    if (logFd >= 0) writeAllSync(logFd, chunk);
    used = 0;
  };
  // One virtual clock: the partition's, on this source (host time, or paced with --pace-mips); the TSC,
  // reference time, synthetic timers, every chipset timer and the APIC timer read the same nanoseconds.
  const clock = new PacedClock(o.paceMips !== undefined ? o.paceMips * 1e6 : null);
  const machine = new PcMachine({
    memory,
    clock,
    tscHz: TSC_HZ,
    ...(jitThresholdFromEnv() !== undefined ? { jitThreshold: jitThresholdFromEnv() } : {}),
    rtcOffsetSeconds: o.rtcOffset,
    serial: (byte) => {
      // Output leaves at the run loop's next pause (every few milliseconds), not byte by byte.
      if (used === 0) queueMicrotask(flush);
      out[used++] = byte;
      if (used === out.length) flush();
    },
    trace: o.trace ? (_r, line) => process.stderr.write(line + "\n") : undefined,
    ...(o.maxInstructions !== undefined ? { maxInstructions: o.maxInstructions } : {}),
    cpus: 1,
  });
  try {
    machine.bootLinux({ kernel: o.kernel, ...(o.initrd ? { initrd: o.initrd } : {}), cmdline: o.cmdline });
  } catch (e) {
    if (logFd >= 0) closeSync(logFd);
    if (e instanceof BootError) {
      console.error(`viridian run: ${o.kernelPath}: ${e.message}`);
      return STATUS_USAGE;
    }
    throw e;
  }

  const stdin = process.stdin;
  const tty = stdin.isTTY === true;
  let sawCtrlA = false;
  const onData = (data: Buffer): void => {
    if (!tty) {
      machine.sendInput(data);
      return;
    }
    // Ctrl-A X quits; Ctrl-A Ctrl-A sends one Ctrl-A; anything else after Ctrl-A goes through as typed.
    const pass: number[] = [];
    for (const b of data) {
      if (sawCtrlA) {
        sawCtrlA = false;
        if (b === 0x78 || b === 0x58) {
          machine.requestStop("quit from the terminal (Ctrl-A X)");
          break;
        }
        if (b !== CTRL_A) pass.push(CTRL_A);
        pass.push(b);
      } else if (b === CTRL_A) sawCtrlA = true;
      else pass.push(b);
    }
    if (pass.length > 0) machine.sendInput(Uint8Array.from(pass));
  };
  if (tty) stdin.setRawMode(true);
  stdin.on("data", onData);
  stdin.on("error", () => undefined);
  let signal: string | null = null;
  const onSignal = (name: string) => () => {
    signal = name;
    machine.requestStop(`stopped by ${name}`);
  };
  const onTerm = onSignal("SIGTERM");
  const onInt = onSignal("SIGINT");
  process.on("SIGTERM", onTerm);
  process.on("SIGINT", onInt);
  const started = performance.now();
  if (tty) process.stderr.write("viridian: booting Linux; press Ctrl-A X to quit\r\n");

  let stop;
  try {
    stop = await machine.run();
  } catch (e) {
    flush();
    cleanup();
    console.error(`viridian run: internal error: ${(e as Error).stack ?? String(e)}\n${machine.inspect()}`);
    return STATUS_GUEST_FAILED;
  }
  flush();
  cleanup();
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const summary = `${stop.retired} instructions, ${seconds} s`;
  if (signal !== null) {
    console.error(`viridian: stopped by ${signal}\n${machine.inspect()}`);
    return signal === "SIGTERM" ? STATUS_SIGTERM : 130;
  }
  switch (stop.kind) {
    case "poweroff":
      if (o.state) console.error(`viridian: ${stop.message} (${summary})\n${machine.inspect()}`);
      return 0;
    case "guest-crash": {
      // The guest's own report (TLFS crash MSRs): its panic line first, then the whole message it sent.
      const crash = stop.crash;
      const detail =
        crash === undefined
          ? ""
          : `crash parameters (CRASH_P0-P4): ${crash.parameters.join(" ")}\n` +
            (crash.message !== null
              ? `guest crash message:\n${terminalSafe(crash.message.trimEnd())}\n`
              : "");
      console.error(
        `viridian: guest crashed: ${crash ? crashSummary(crash) : stop.message} (${summary})\n${detail}` +
          `last serial output:\n${machine.recentSerial().join("\n")}\nmachine state:\n${machine.inspect()}`,
      );
      return STATUS_GUEST_FAILED;
    }
    case "stopped":
      if (stop.message.startsWith("quit")) {
        console.error(`\r\nviridian: ${stop.message}`);
        return 0;
      }
      break;
    default:
      break;
  }
  console.error(
    `viridian: ${stop.message} (${summary})\n` +
      `last serial output:\n${machine.recentSerial().join("\n")}\nmachine state:\n${machine.inspect()}`,
  );
  return STATUS_GUEST_FAILED;

  function cleanup(): void {
    process.off("SIGTERM", onTerm);
    process.off("SIGINT", onInt);
    stdin.off("data", onData);
    if (tty) stdin.setRawMode(false);
    stdin.pause();
    stdin.unref?.();
    if (logFd >= 0) closeSync(logFd);
  }
}

function writeAllSync(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) {
    try {
      off += writeSync(fd, data, off, data.length - off);
    } catch (e) {
      // A full non-blocking pipe: try again (the reader drains it); anything else ends the copy.
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") return;
    }
  }
}

/** The translation threshold from VIRIDIAN_JIT_THRESHOLD, or undefined for the processor's default. */
export function jitThresholdFromEnv(): number | undefined {
  const v = process.env.VIRIDIAN_JIT_THRESHOLD;
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  return Number.isInteger(n) ? n : undefined;
}
