// Owns: `viridian run`: boots a Multiboot kernel (or the bundled demo guest) on the minimal machine, copies
// COM1 to stdout (and optionally a log file) and turns the guest's isa-debug-exit write into the process
// exit status, matching `qemu-system-x86_64 -nographic -no-reboot -device isa-debug-exit,iobase=0xf4,
// iosize=4 -kernel FILE` so test kernels can be run under both and compared.
// Must not: implement machine behaviour (src/worker/machine.ts does) or parse images (src/firmware).
// Spec: QEMU's isa-debug-exit status convention ((value << 1) | 1); Multiboot 0.6.96 for --kernel images.

import { readFileSync, writeFileSync, appendFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { GuestMemory } from "../memory/guest-memory.js";
import { Cpu } from "../x86/cpu.js";
import { Machine } from "../worker/machine.js";
import { qemuExitStatus } from "../chipset/debug-exit.js";
import { MultibootError } from "../firmware/multiboot.js";
import type { Command } from "./command.js";

const DEFAULT_GUEST = new URL("../../../guest/demo.elf", import.meta.url);
/** Exit status when the guest stops without writing isa-debug-exit (halt, triple fault, limit). */
export const STATUS_GUEST_STOPPED = 3;
const STATUS_USAGE = 2;

const USAGE = `usage: viridian run [--kernel FILE] [--cmdline S] [--memory 128M] [--trace] [--serial-log FILE]
                    [--max-instructions N] [--state]

Boots a Multiboot v1 kernel (default: the bundled demo guest) with COM1 on stdout.
  --kernel FILE        the kernel; exit status is QEMU's isa-debug-exit status ((value << 1) | 1)
                       (without --kernel, the demo guest's debug-exit value is the exit status)
  --cmdline S          the Multiboot command line
  --memory SIZE        guest RAM (K, M or G suffix; default 128M)
  --trace              print every instruction (RIP and registers) to stderr; slow
  --serial-log FILE    also write COM1 output to FILE
  --max-instructions N stop after N instructions (status ${STATUS_GUEST_STOPPED})
  --state              print the processor state to stderr when the guest stops
A guest that stops without debug-exit (HLT, triple fault) ends with status ${STATUS_GUEST_STOPPED} and its state on stderr.`;

export class UsageError extends Error {
  override name = "UsageError";
}

/** Parses "128M", "1G", "65536K" or a byte count. */
export function parseMemorySize(text: string): number {
  const m = /^(\d+)([KMG]?)(i?B)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`cannot parse memory size '${text}' (examples: 128M, 1G)`);
  const unit = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as "" | "K" | "M" | "G"];
  const bytes = Number(m[1]) * unit;
  if (bytes < 2 * 1024 * 1024 || bytes > 16 * 1024 ** 3 || bytes % 4096 !== 0) {
    throw new UsageError(`memory size ${text} must be a multiple of 4 KiB between 2M and 16G`);
  }
  return bytes;
}

export interface RunOptions {
  kernel?: string;
  cmdline: string;
  memory: number;
  trace: boolean;
  serialLog?: string;
  maxInstructions?: number;
  state: boolean;
}

export function parseRunArgs(args: string[]): RunOptions {
  const o: RunOptions = { cmdline: "", memory: 128 * 1024 * 1024, trace: false, state: false };
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
      case "--cmdline":
        o.cmdline = value();
        break;
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
  const path = opts.kernel ?? fileURLToPath(DEFAULT_GUEST);
  let image: Uint8Array;
  try {
    image = readFileSync(path);
  } catch (e) {
    console.error(`viridian run: cannot read kernel ${path}: ${(e as Error).message}`);
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
    memory = new GuestMemory(opts.memory);
  } catch (e) {
    // A SharedArrayBuffer the host cannot provide is a usage problem, not a crash.
    console.error(`viridian run: cannot allocate ${opts.memory} bytes of guest RAM: ${(e as Error).message}`);
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
    machine.bootMultiboot(image, opts.cmdline);
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
  return opts.kernel === undefined ? stop.exitValue & 0xff : qemuExitStatus(stop.exitValue);
}

export const command: Command = {
  summary: "boot a Multiboot kernel (default: the bundled demo guest) with COM1 on stdout",
  run,
};

/** The block translation threshold from VIRIDIAN_JIT_THRESHOLD, or undefined for the processor's default. */
function jitThresholdFromEnv(): number | undefined {
  const v = process.env.VIRIDIAN_JIT_THRESHOLD;
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  return Number.isInteger(n) ? n : undefined;
}
