// Owns: `viridian run`: parses its options and picks the machine by the kernel's content: a bzImage (and no
// --kernel at all: the bundled Linux guest) boots on the PC machine (src/cli/run-linux.ts); a Multiboot
// image boots on the minimal machine, copying COM1 to stdout (and optionally a log file) and turning the
// guest's isa-debug-exit write into the process exit status, matching `qemu-system-x86_64 -nographic
// -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel FILE` so test kernels run under both.
// Must not: implement machine behaviour (src/worker) or parse images (src/firmware).
// Spec: QEMU's isa-debug-exit status convention ((value << 1) | 1); Multiboot 0.6.96; Linux boot.rst.

import { readFileSync, writeFileSync, appendFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { GuestMemory } from "../memory/guest-memory.js";
import { Cpu } from "../x86/cpu.js";
import { Machine } from "../worker/machine.js";
import { qemuExitStatus } from "../chipset/debug-exit.js";
import { MultibootError } from "../firmware/multiboot.js";
import type { Command } from "./command.js";
import { isBzImage, jitThresholdFromEnv, runLinux, STATUS_GUEST_FAILED } from "./run-linux.js";

const BUNDLED_KERNEL = new URL("../../../guest/bzImage", import.meta.url);
const BUNDLED_INITRD = new URL("../../../guest/initramfs.cpio.lz4", import.meta.url);
/** The bundled guest's console is COM1; everything else is the kernel's default. */
export const DEFAULT_LINUX_CMDLINE = "console=ttyS0";
const DEFAULT_LINUX_MEMORY = 256 * 1024 * 1024;
const DEFAULT_MULTIBOOT_MEMORY = 128 * 1024 * 1024;
/** Exit status when the guest stops without writing isa-debug-exit (halt, triple fault, limit). */
export const STATUS_GUEST_STOPPED = 3;
export const STATUS_LINUX_FAILED = STATUS_GUEST_FAILED;
const STATUS_USAGE = 2;

const USAGE = `usage: viridian run [--kernel FILE] [--initrd FILE] [--cmdline S] [--memory SIZE] [--cpus N]
                    [--serial-log FILE] [--rtc-offset SECONDS] [--pace-mips N] [--trace]
                    [--max-instructions N] [--state]

Without --kernel, boots the bundled Linux guest (guest/bzImage + guest/initramfs.cpio.lz4) with COM1 on
the terminal (raw mode; Ctrl-A X quits) or on stdin/stdout when they are pipes. Exit status 0 when the
guest powers off; ${STATUS_LINUX_FAILED} with the machine state on stderr when it triple-faults, panics or halts; 143 on
SIGTERM (after "viridian: stopped by SIGTERM" and the machine state on stderr).
  --kernel FILE        a bzImage (Linux boot protocol) or a Multiboot v1 kernel (told apart by content);
                       for Multiboot the exit status is QEMU's isa-debug-exit status ((value << 1) | 1)
  --initrd FILE        initial ramdisk for a bzImage (default: the bundled initramfs with the bundled kernel)
  --cmdline S          kernel command line (Linux default: "${DEFAULT_LINUX_CMDLINE}")
  --memory SIZE        guest RAM in MiB or with a K, M or G suffix (default 256M; Multiboot 128M)
  --cpus N             virtual processors (accepted; SMP is not supported yet, so 1 is used)
  --serial-log FILE    also write COM1 output to FILE
  --rtc-offset SECONDS shift the guest's calendar clock (signed; default 0 = the host's time)
  --pace-mips N        on a slow or loaded host: let guest time advance at most 1/N us per instruction
                       while it computes (made up when it idles), so guest lockup detectors stay quiet;
                       default: guest time is host time
  --trace              print every instruction (RIP and registers) to stderr; slow
  --max-instructions N stop after N instructions
  --state              print the processor state to stderr when the guest stops
A Multiboot guest that stops without debug-exit (HLT, triple fault) ends with status ${STATUS_GUEST_STOPPED} and its state on stderr.`;

export class UsageError extends Error {
  override name = "UsageError";
}

/** Parses "128M", "1G", "65536K", or a plain number of MiB ("256"). */
export function parseMemorySize(text: string): number {
  const m = /^(\d+)([KMG]?)(i?B)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`cannot parse memory size '${text}' (examples: 256, 128M, 1G)`);
  const unit = { "": 1024 ** 2, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[
    m[2]!.toUpperCase() as "" | "K" | "M" | "G"
  ];
  const bytes = Number(m[1]) * unit;
  if (bytes < 2 * 1024 * 1024 || bytes > 16 * 1024 ** 3 || bytes % 4096 !== 0) {
    throw new UsageError(`memory size ${text} must be a multiple of 4 KiB between 2M and 16G`);
  }
  return bytes;
}

export interface RunOptions {
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  memory?: number;
  cpus?: number;
  rtcOffset?: number;
  paceMips?: number;
  trace: boolean;
  serialLog?: string;
  maxInstructions?: number;
  state: boolean;
}

export function parseRunArgs(args: string[]): RunOptions {
  const o: RunOptions = { trace: false, state: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (): string => {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case "--kernel":
        o.kernel = value();
        break;
      case "--initrd":
        o.initrd = value();
        break;
      case "--cmdline":
        o.cmdline = value();
        break;
      case "--cpus": {
        const n = Number(value());
        if (!Number.isSafeInteger(n) || n < 1 || n > 64)
          throw new UsageError("--cpus needs an integer 1..64");
        o.cpus = n;
        break;
      }
      case "--pace-mips": {
        const n = Number(value());
        if (!Number.isFinite(n) || n < 0.1 || n > 100_000)
          throw new UsageError(
            "--pace-mips needs a number of millions of instructions per second (0.1..100000)",
          );
        o.paceMips = n;
        break;
      }
      case "--rtc-offset": {
        const n = Number(value());
        if (!Number.isSafeInteger(n) || Math.abs(n) > 100 * 366 * 86400)
          throw new UsageError("--rtc-offset needs a whole number of seconds (within 100 years)");
        o.rtcOffset = n;
        break;
      }
      case "--memory":
        o.memory = parseMemorySize(value());
        break;
      case "--trace":
        o.trace = true;
        break;
      case "--serial-log":
        o.serialLog = value();
        break;
      case "--max-instructions": {
        const n = Number(value());
        if (!Number.isSafeInteger(n) || n <= 0)
          throw new UsageError("--max-instructions needs a positive integer");
        o.maxInstructions = n;
        break;
      }
      case "--state":
        o.state = true;
        break;
      default:
        throw new UsageError(`unknown option '${a}'`);
    }
  }
  return o;
}

async function run(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  let opts: RunOptions;
  try {
    opts = parseRunArgs(args);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`viridian run: ${e.message}\n\n${USAGE}`);
      return STATUS_USAGE;
    }
    throw e;
  }
  const path = opts.kernel ?? fileURLToPath(BUNDLED_KERNEL);
  let image: Uint8Array;
  try {
    image = readFileSync(path);
  } catch (e) {
    console.error(`viridian run: cannot read kernel ${path}: ${(e as Error).message}`);
    return STATUS_USAGE;
  }
  if (isBzImage(image)) {
    const initrdPath = opts.initrd ?? (opts.kernel === undefined ? fileURLToPath(BUNDLED_INITRD) : undefined);
    let initrd: Uint8Array | undefined;
    if (initrdPath !== undefined) {
      try {
        initrd = readFileSync(initrdPath);
      } catch (e) {
        console.error(`viridian run: cannot read initrd ${initrdPath}: ${(e as Error).message}`);
        return STATUS_USAGE;
      }
    }
    return runLinux({
      kernel: image,
      kernelPath: path,
      ...(initrd ? { initrd } : {}),
      cmdline: opts.cmdline ?? DEFAULT_LINUX_CMDLINE,
      memory: opts.memory ?? DEFAULT_LINUX_MEMORY,
      cpus: opts.cpus ?? 1,
      rtcOffset: opts.rtcOffset ?? 0,
      ...(opts.paceMips !== undefined ? { paceMips: opts.paceMips } : {}),
      ...(opts.serialLog !== undefined ? { serialLog: opts.serialLog } : {}),
      trace: opts.trace,
      ...(opts.maxInstructions !== undefined ? { maxInstructions: opts.maxInstructions } : {}),
      state: opts.state,
    });
  }
  if (opts.initrd !== undefined) {
    console.error(`viridian run: --initrd needs a bzImage kernel; ${path} is not one`);
    return STATUS_USAGE;
  }
  if (opts.serialLog) writeFileSync(opts.serialLog, "");
  const out = new Uint8Array(4096);
  let used = 0;
  const flush = (): void => {
    if (used === 0) return;
    const chunk = out.slice(0, used);
    process.stdout.write(chunk);
    if (opts.serialLog) appendFileSync(opts.serialLog, chunk);
    used = 0;
  };
  let memory: GuestMemory;
  try {
    memory = new GuestMemory(opts.memory ?? DEFAULT_MULTIBOOT_MEMORY);
  } catch (e) {
    // A SharedArrayBuffer the host cannot provide is a usage problem, not a crash.
    console.error(
      `viridian run: cannot allocate ${opts.memory ?? DEFAULT_MULTIBOOT_MEMORY} bytes of guest RAM: ${(e as Error).message}`,
    );
    return STATUS_USAGE;
  }
  const machine = new Machine({
    memory,
    // VIRIDIAN_JIT_THRESHOLD (tests, experiments): block translation threshold, -1 for the interpreter only.
    processor: new Cpu(memory, { jitThreshold: jitThresholdFromEnv() }),
    serial: (byte) => {
      out[used++] = byte;
      if (byte === 0x0a || used === out.length) flush();
    },
    trace: opts.trace ? (_record, line) => process.stderr.write(line + "\n") : undefined,
    maxInstructions: opts.maxInstructions,
  });
  try {
    machine.bootMultiboot(image, opts.cmdline ?? "");
  } catch (e) {
    if (e instanceof MultibootError) {
      console.error(`viridian run: ${path}: ${e.message}`);
      return STATUS_USAGE;
    }
    throw e;
  }
  const stop = machine.run();
  flush();
  if (opts.state || stop.kind !== "debug-exit") {
    console.error(`viridian run: ${stop.message} after ${stop.retired} instructions\n${machine.inspect()}`);
  }
  if (stop.kind !== "debug-exit") return STATUS_GUEST_STOPPED;
  return qemuExitStatus(stop.exitValue);
}

export const command: Command = {
  summary: "boot Linux (default: the bundled guest) or a Multiboot kernel, COM1 on the terminal",
  run,
};
