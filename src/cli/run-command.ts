// Owns: `viridian run`: parses its options into a VmConfig, has the worker build the VM (`buildVm`, which
// tells a bzImage from a Multiboot kernel by content), and runs it: Linux (and no --kernel at all: the
// bundled guest) with the terminal on COM1 (src/cli/run-linux.ts); a Multiboot kernel copying COM1 to
// stdout (and optionally a log file) and turning the guest's isa-debug-exit write into the process exit
// status, matching `qemu-system-x86_64 -nographic -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=4
// -kernel FILE` so test kernels run under both.
// Must not: build processors or machines (src/worker/build-vm.ts does), implement machine behaviour
// (src/worker) or parse images (src/firmware).
// Spec: QEMU's isa-debug-exit status convention ((value << 1) | 1); Multiboot 0.6.96; Linux boot.rst.

import { randomBytes } from "node:crypto";
import { qemuExitStatus } from "../chipset/debug-exit.js";
import { switchDir } from "../host/switch-client.js";
import { portsSocketOf } from "../host/switch-daemon.js";
import { parseHostForward, type HostForward } from "../net/host-forward.js";
import { NetError } from "../net/net-error.js";
import { buildVm, DEFAULT_LINUX_CMDLINE, VmBuildError, type Vm } from "../worker/build-vm.js";
import type { PcMachine } from "../worker/pc-machine.js";
import {
  MAX_MEMORY_BYTES,
  MIN_MEMORY_BYTES,
  vmConfig,
  VmConfigError,
  type DiskConfig,
  type NicConfig,
  type VmConfig,
} from "../worker/vm-config.js";
import type { Command } from "./command.js";
import { jitThresholdFromEnv, runLinux, STATUS_GUEST_FAILED } from "./run-linux.js";
import { SerialOutput, TraceOutput } from "./serial-output.js";

const DEFAULT_MEMORY = 256 * 1024 * 1024;
/** Exit status when the guest stops without writing isa-debug-exit (halt, triple fault, limit). */
export const STATUS_GUEST_STOPPED = 3;
export const STATUS_LINUX_FAILED = STATUS_GUEST_FAILED;
const STATUS_USAGE = 2;
/** The host output (stdout, the serial log, the trace on stderr) failed: EX_IOERR of sysexits.h. */
export const STATUS_OUTPUT_FAILED = 74;

const USAGE = `usage: viridian run [--kernel FILE] [--initrd FILE] [--cmdline S] [--memory SIZE] [--cpus N]
                    [--serial-log FILE] [--rtc-offset SECONDS] [--pace-mips N] [--stop-timeout SECONDS]
                    [--disk PATH[:ro]]... [--dvd ISO]
                    [--nic switch=NAME|PATH[,mac=MAC] | --nic user[,hostfwd=tcp:[ADDR]:H-:G]...[,mac=MAC]]...
                    [--trace] [--max-instructions N] [--state]

Without --kernel, boots the bundled Linux guest (guest/bzImage + guest/initramfs.cpio.lz4) with COM1 on
the terminal (raw mode; Ctrl-A X turns the VM off, Ctrl-A S asks the guest to shut down) or on
stdin/stdout when they are pipes. SIGTERM asks the guest to shut down through its shutdown integration
service and turns it off after --stop-timeout seconds (at once without the service; a second SIGTERM too).
Exit status 0 when the guest powers off (also after SIGTERM); ${STATUS_LINUX_FAILED} with the machine state on stderr
when it triple-faults, panics or halts; 143 when SIGTERM had to turn it off (after "viridian: stopped by
SIGTERM" and the machine state on stderr); 130 on SIGINT; 2 for bad options or images that do not
open; 74 when the host output or closing a disk image (its final flush) fails.
  --kernel FILE        a bzImage (Linux boot protocol) or a Multiboot v1 kernel (told apart by content);
                       for Multiboot the exit status is QEMU's isa-debug-exit status ((value << 1) | 1)
  --initrd FILE        initial ramdisk for a bzImage (default: the bundled initramfs with the bundled kernel);
                       for Multiboot, its modules as QEMU's -initrd takes them: "path args,path"
  --cmdline S          kernel command line (Linux default: "${DEFAULT_LINUX_CMDLINE}"; a Multiboot kernel
                       gets its own path, a space and S, as GRUB and QEMU pass it)
  --disk PATH[:ro]     a disk image (raw, VHD, VHDX, a differencing VHD/VHDX with its parents) as a SCSI
                       disk of the synthetic controller on VMBus, LUN 0 for the first, 1 for the next, ...
                       (repeatable, with --dvd up to 64); ":ro" attaches it read-only. Linux guests only
  --dvd ISO            an ISO 9660 image as a read-only DVD drive on the LUN after the last disk
  --nic switch=NAME|PATH[,mac=MAC]
                       a synthetic NIC (Linux: hv_netvsc, eth0 for the first) on the switch NAME (started
                       with 'viridian switch create NAME') or on the ports socket PATH (a name with a '/');
                       mac=aa:bb:cc:dd:ee:ff, default 00:15:5d and three random bytes (repeatable, up to 8)
  --nic user[,hostfwd=tcp:[ADDR]:HOSTPORT-:GUESTPORT]...[,mac=MAC]
                       a synthetic NIC with its own NAT (passt, Debian package 'passt'), as QEMU's user
                       network: DHCP gives the guest 10.0.2.15/24, gateway 10.0.2.2 (reaches the host's
                       127.0.0.1) and the host's name servers (10.0.2.3 is forwarded to the first one too);
                       hostfwd (tcp or udp, repeatable) listens on ADDR:HOSTPORT (default 127.0.0.1, not
                       every address as in QEMU) and forwards to the guest's GUESTPORT; passt's output goes
                       to a log in the runtime directory's logs/ (kept when passt fails)
  --memory SIZE        guest RAM in MiB or with a K, M or G suffix up to 64G (default 256M)
  --cpus N             processors in the ACPI tables (SMP is not supported yet, so 1 runs)
  --serial-log FILE    also write COM1 output to FILE
  --rtc-offset SECONDS shift the guest's calendar clock (signed; default 0 = the host's time)
  --pace-mips N        on a slow or loaded host: let guest time advance at most 1/N us per instruction
                       while it computes (made up when it idles), so guest lockup detectors stay quiet;
                       default: guest time is host time
  --stop-timeout SECONDS  how long SIGTERM and Ctrl-A S wait for the guest's shutdown (default 30)
  --trace              print every instruction (RIP and registers) to stderr; slow
  --max-instructions N stop after N instructions (faults and every REP iteration count)
  --state              print the processor state to stderr when the guest stops
A Multiboot guest that stops without debug-exit (HLT, triple fault, reset, the instruction limit) ends with
status ${STATUS_GUEST_STOPPED} and its state on stderr.`;

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
  if (bytes < MIN_MEMORY_BYTES || bytes > MAX_MEMORY_BYTES || bytes % 4096 !== 0) {
    throw new UsageError(
      `memory size ${text} must be a multiple of 4 KiB between 2M and ${MAX_MEMORY_BYTES / 1024 ** 3}G ` +
        `(the largest guest RAM)`,
    );
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
  stopTimeout?: number;
  trace: boolean;
  serialLog?: string;
  maxInstructions?: number;
  state: boolean;
  /** `--disk` images in order (LUN 0, 1, ...). */
  disks: DiskConfig[];
  dvd?: string;
  /** `--nic` in order (eth0, eth1, ...). */
  nics: NicConfig[];
}

/** A MAC address in Hyper-V's range (00:15:5d, the OUI its dynamic MACs use) with three random bytes. */
export function randomMac(): string {
  const tail = [...randomBytes(3)].map((b) => b.toString(16).padStart(2, "0"));
  return ["00", "15", "5d", ...tail].join(":");
}

const NIC_FORMS = "switch=NAME|PATH[,mac=MAC] or user[,hostfwd=tcp:[ADDR]:HOSTPORT-:GUESTPORT]...[,mac=MAC]";

/**
 * `--nic switch=NAME|PATH[,mac=MAC]`: a switch name (its ports socket in the runtime directory) or a socket
 * path (anything with a '/'); `--nic user[,hostfwd=...]...[,mac=MAC]`: the NIC's own NAT with port forwards
 * in QEMU's spelling, a forward without a host address listening on 127.0.0.1 only (QEMU's would listen on
 * every address). Without `mac=` the NIC gets a random one in Hyper-V's range.
 */
export function parseNicArg(text: string): NicConfig {
  const parts = text.split(",");
  const user = parts[0] === "user";
  let target: string | undefined;
  let mac: string | undefined;
  const forwards: HostForward[] = [];
  for (const part of user ? parts.slice(1) : parts) {
    const eq = part.indexOf("=");
    const key = eq < 0 ? part : part.slice(0, eq);
    const val = eq < 0 ? "" : part.slice(eq + 1);
    if (!user && key === "switch" && val !== "" && target === undefined) target = val;
    else if (key === "mac" && val !== "" && mac === undefined) mac = val;
    else if (user && key === "hostfwd" && eq >= 0) {
      try {
        const f = parseHostForward(val);
        forwards.push({ ...f, hostAddress: f.hostAddress || "127.0.0.1" });
      } catch (e) {
        if (e instanceof NetError) throw new UsageError(`--nic: ${e.message}`);
        throw e;
      }
    } else throw new UsageError(`--nic: cannot use '${part}' (expected ${NIC_FORMS})`);
  }
  if (mac !== undefined && !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac))
    throw new UsageError(`--nic: '${mac}' is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  const nicMac = (mac ?? randomMac()).toLowerCase();
  if (user) return { mac: nicMac, attach: { kind: "user", hostForwards: forwards } };
  if (target === undefined) throw new UsageError(`--nic needs ${NIC_FORMS}`);
  let socket: string;
  if (target.includes("/")) socket = target;
  else {
    try {
      socket = portsSocketOf(switchDir(target));
    } catch (e) {
      if (e instanceof NetError) throw new UsageError(`--nic: ${e.message}`);
      throw e;
    }
  }
  return { mac: nicMac, attach: { kind: "switch", socket } };
}

/** `--disk PATH[:ro]`: an image path, read-only with the `:ro` suffix. */
export function parseDiskArg(text: string): DiskConfig {
  const readOnly = text.endsWith(":ro");
  const path = readOnly ? text.slice(0, -3) : text;
  if (path === "") throw new UsageError("--disk needs an image path (PATH or PATH:ro)");
  return { path, readOnly };
}

export function parseRunArgs(args: string[]): RunOptions {
  const o: RunOptions = { trace: false, state: false, disks: [], nics: [] };
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
      case "--disk":
        o.disks.push(parseDiskArg(value()));
        break;
      case "--nic":
        o.nics.push(parseNicArg(value()));
        break;
      case "--dvd":
        if (o.dvd !== undefined) throw new UsageError("--dvd can be given once (one DVD drive)");
        o.dvd = value();
        if (o.dvd === "") throw new UsageError("--dvd needs an ISO image path");
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
      case "--stop-timeout": {
        const n = Number(value());
        if (!Number.isFinite(n) || n < 0 || n > 3600)
          throw new UsageError("--stop-timeout needs a number of seconds (0..3600)");
        o.stopTimeout = n;
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

/** The VM the options describe (plain data; `buildVm` checks and builds it). */
export function runConfig(o: RunOptions): VmConfig {
  return vmConfig({
    memoryBytes: o.memory ?? DEFAULT_MEMORY,
    processors: o.cpus ?? 1,
    boot: { kernel: o.kernel ?? null, initrd: o.initrd ?? null, cmdline: o.cmdline ?? null },
    time: { paceMips: o.paceMips ?? null },
    rtcOffsetSeconds: o.rtcOffset ?? 0,
    disks: o.disks,
    dvd: o.dvd ?? null,
    nics: o.nics,
  });
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
  // A host output that fails (a reader that closed its pipe, a full disk) stops the VM; the run then ends
  // with STATUS_OUTPUT_FAILED and a message on stderr (when stderr still works).
  let outputFailure: string | null = null;
  let vm: Vm | null = null;
  const onOutputFailed = (why: string): void => {
    outputFailure ??= why;
    vm?.machine.requestStop(`the host output failed: ${why}`);
  };
  let out: SerialOutput;
  try {
    out = new SerialOutput(opts.serialLog, onOutputFailed);
  } catch (e) {
    console.error(`viridian run: cannot open the serial log ${opts.serialLog}: ${(e as Error).message}`);
    return STATUS_USAGE;
  }
  const trace = opts.trace ? new TraceOutput(onOutputFailed) : null;
  try {
    const built = await buildVm(runConfig(opts), {
      serial: (byte) => out.push(byte),
      trace: trace === null ? undefined : (_record, line) => trace.line(line),
      maxInstructions: opts.maxInstructions,
      // The terminal may be in raw mode: CR LF, and a line of its own.
      notice: (text) => void process.stderr.write(`\r\nviridian: ${text}\r\n`),
      // VIRIDIAN_JIT_THRESHOLD (tests, experiments): block translation threshold, -1 for the interpreter only.
      jitThreshold: jitThresholdFromEnv(),
    });
    vm = built;
  } catch (e) {
    out.close();
    if (e instanceof VmBuildError || e instanceof VmConfigError) {
      console.error(`viridian run: ${e.message}`);
      return STATUS_USAGE;
    }
    throw e;
  }
  const built = vm;
  if (built.config.processors > 1) {
    // The MADT lists every processor; the partition runs the boot processor only until SMP exists.
    console.error(
      `viridian run: SMP is not supported yet; running with 1 CPU (asked for ${built.config.processors})`,
    );
  }
  const status =
    built.kind === "linux"
      ? await runLinux(built.machine, out, { state: opts.state, stopTimeout: opts.stopTimeout })
      : await runMultiboot(built.machine, out, opts.state);
  trace?.flush();
  try {
    // Disk I/O still in flight finishes, writable images are flushed and closed.
    await built.close();
  } catch (e) {
    console.error(`viridian run: closing the VM's storage failed: ${(e as Error).message}`);
    return STATUS_OUTPUT_FAILED;
  }
  if (outputFailure !== null) {
    // console.error ignores a broken stderr: the status says it all then.
    console.error(`viridian run: stopped: the host output failed: ${outputFailure}`);
    return STATUS_OUTPUT_FAILED;
  }
  return status;
}

/** Runs a Multiboot kernel to its isa-debug-exit write: QEMU's exit status convention, state on failure. */
async function runMultiboot(machine: PcMachine, out: SerialOutput, state: boolean): Promise<number> {
  const stop = await machine.run();
  out.flush();
  out.close();
  if (state || stop.kind !== "debug-exit") {
    console.error(`viridian run: ${stop.message} (${stop.retired} instructions)\n${machine.inspect()}`);
  }
  if (stop.kind !== "debug-exit") return STATUS_GUEST_STOPPED;
  return qemuExitStatus(stop.exitValue ?? 0);
}

export const command: Command = {
  summary: "boot Linux (default: the bundled guest) or a Multiboot kernel, COM1 on the terminal",
  run,
};
