// Owns: turning a `VmConfig` into a machine ready to run: checking the configuration, reading the boot files
// it names (the bundled guest when it names none; Multiboot modules in QEMU's `-initrd` form), telling a
// bzImage from a Multiboot kernel by content, allocating guest RAM, choosing the time source, building the PC
// machine (with isa-debug-exit for Multiboot kernels, as the kernel tests run QEMU) and loading the guest into
// it; for Linux, opening the configured disks and DVD as the SCSI controller on VMBus (./vm-storage.ts) and
// connecting each configured NIC to its switch as a network VSP on VMBus (./vm-network.ts).
// The CLI's `run` and `diverge`, tests and benches (and later the worker process) build VMs here only; the
// caller ends every VM with `vm.close()` (storage flushed and closed).
// Must not: run the machine or touch the host terminal (the caller does), or accept what it cannot build (a
// disk for a Multiboot kernel, an image that does not open, is a clear error, not ignored).
// Spec: docs/architecture.md "The seam" (VmConfig -> buildVm); Linux Documentation/arch/x86/boot.rst (the
// setup header that marks a bzImage); Multiboot 0.6.96.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { GuestMemory } from "../memory/guest-memory.js";
import { BootError } from "../firmware/linux-boot.js";
import { MultibootError, type MultibootLoadResult, type MultibootModule } from "../firmware/multiboot.js";
import { PacedClock } from "./paced-clock.js";
import { PcMachine } from "./pc-machine.js";
import type { TraceRecord } from "./processor-state.js";
import { checkVmConfig, type VmConfig } from "./vm-config.js";
import { VmStorage, VmStorageError } from "./vm-storage.js";
import { VmNetwork, VmNetworkError } from "./vm-network.js";
import { NodeFileOpener } from "../host/node-files.js";

const BUNDLED_KERNEL = new URL("../../../guest/bzImage", import.meta.url);
const BUNDLED_INITRD = new URL("../../../guest/initramfs.cpio.lz4", import.meta.url);
/** The bundled guest's files (what a worker booting it must be allowed to read). */
export function bundledGuestFiles(): { kernel: string; initrd: string } {
  return { kernel: fileURLToPath(BUNDLED_KERNEL), initrd: fileURLToPath(BUNDLED_INITRD) };
}
/** The bundled guest's console is COM1; everything else is the kernel's default. */
export const DEFAULT_LINUX_CMDLINE = "console=ttyS0";
/** The TSC rate the processor reports (virtual time is the host's, so 1 GHz). */
export const TSC_HZ = 1_000_000_000;

/** What the host gives a VM: where COM1 goes, and run-time switches that are not part of the VM itself. */
export interface VmHost {
  /** Every byte the guest writes to COM1. */
  serial: (byte: number) => void;
  /** The state before every instruction (single-steps; slow). */
  trace?: ((record: TraceRecord, line: string) => void) | undefined;
  /** Stop after this many retired instructions plus faults. */
  maxInstructions?: number | undefined;
  /** Translation threshold (CpuOptions.jitThreshold); default the processor's (docs/decisions/0005). */
  jitThreshold?: number | undefined;
  /** Host calendar seconds (for the RTC); default Date.now() / 1000. */
  hostSeconds?: (() => number) | undefined;
  /**
   * A Linux VM gets a DVD drive even without a medium, so one can be inserted while it runs (the service's
   * VMs, as Hyper-V's New-VM gives one); `viridian run` offers storage only for what it was given.
   */
  dvdDrive?: boolean | undefined;
  /** Where user NICs' NATs (passt) log; default `logs/` in the runtime directory (a service would give the VM's directory). */
  natLogDir?: string | undefined;
  /** One-line notices while the VM runs (a user NIC's NAT that ended); default: none. */
  notice?: ((text: string) => void) | undefined;
}

export type Vm =
  | {
      kind: "linux";
      config: VmConfig;
      machine: PcMachine;
      /** The SCSI controller with the configured disks and DVD, or null without any. */
      storage: VmStorage | null;
      /** The NICs and their switch connections or NATs, or null without any. */
      network: VmNetwork | null;
      /** Ends the VM's use of host resources: NICs disconnected, storage I/O finished, images flushed and closed. */
      close(): Promise<void>;
    }
  /** `loaded`: where the kernel went and its entry point (the divergence finder aligns QEMU's log with it). */
  | {
      kind: "multiboot";
      config: VmConfig;
      machine: PcMachine;
      loaded: MultibootLoadResult;
      storage: null;
      network: null;
      close(): Promise<void>;
    };

/** A configuration that cannot be built: a missing file, a bad image, something not supported yet. */
export class VmBuildError extends Error {
  override name = "VmBuildError";
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

function readBootFile(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new VmBuildError(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

function allocate(bytes: number): GuestMemory {
  try {
    return new GuestMemory(bytes);
  } catch (e) {
    // A SharedArrayBuffer the host cannot provide is a configuration problem, not a crash.
    throw new VmBuildError(`cannot allocate ${bytes} bytes of guest RAM: ${(e as Error).message}`);
  }
}

/**
 * Builds the VM `config` describes, with the guest loaded and its processor at the entry point and, for
 * Linux, its disks and DVD open on the SCSI controller.
 */
export async function buildVm(config: VmConfig, host: VmHost): Promise<Vm> {
  const c = checkVmConfig(config);
  const kernelPath = c.boot.kernel ?? fileURLToPath(BUNDLED_KERNEL);
  const kernel = readBootFile(kernelPath, "kernel");
  if (isBzImage(kernel)) return buildLinux(c, host, kernelPath, kernel);
  if (c.disks.length > 0 || c.dvd !== null) {
    // A Multiboot kernel gets no VMBus device in its ACPI tables, so it could never see them.
    throw new VmBuildError(`disks and DVDs need a Linux guest (VMBus); ${kernelPath} is a Multiboot kernel`);
  }
  if (c.nics.length > 0) {
    throw new VmBuildError(`NICs need a Linux guest (VMBus); ${kernelPath} is a Multiboot kernel`);
  }
  return buildMultiboot(c, host, kernelPath, kernel);
}

/** The PC machine for `c`: guest RAM, the time source, the partition and the chipset. */
function pcMachine(
  c: VmConfig,
  host: VmHost,
  jitThreshold: number | undefined,
  debugExit: boolean,
): PcMachine {
  const memory = allocate(c.memoryBytes);
  // One virtual clock: the partition's, on this source (host time, or paced); the TSC, reference time,
  // synthetic timers, every chipset timer and the APIC timer read the same nanoseconds.
  const clock = new PacedClock(c.time.paceMips !== null ? c.time.paceMips * 1e6 : null);
  return new PcMachine({
    memory,
    clock,
    tscHz: TSC_HZ,
    ...(jitThreshold !== undefined ? { jitThreshold } : {}),
    rtcOffsetSeconds: c.rtcOffsetSeconds,
    ...(host.hostSeconds !== undefined ? { hostSeconds: host.hostSeconds } : {}),
    serial: host.serial,
    trace: host.trace,
    ...(host.maxInstructions !== undefined ? { maxInstructions: host.maxInstructions } : {}),
    cpus: c.processors,
    debugExit,
  });
}

async function buildLinux(c: VmConfig, host: VmHost, kernelPath: string, kernel: Uint8Array): Promise<Vm> {
  const initrdPath = c.boot.initrd ?? (c.boot.kernel === null ? fileURLToPath(BUNDLED_INITRD) : null);
  const initrd = initrdPath === null ? undefined : readBootFile(initrdPath, "initrd");
  const machine = pcMachine(c, host, host.jitThreshold, false);
  try {
    machine.bootLinux({
      kernel,
      ...(initrd ? { initrd } : {}),
      cmdline: c.boot.cmdline ?? DEFAULT_LINUX_CMDLINE,
    });
  } catch (e) {
    if (e instanceof BootError) throw new VmBuildError(`${kernelPath}: ${e.message}`);
    throw e;
  }
  let storage: VmStorage | null;
  try {
    storage = await VmStorage.open(
      machine.vmbus,
      new NodeFileOpener(),
      c.disks,
      c.dvd,
      host.dvdDrive ?? false,
    );
  } catch (e) {
    if (e instanceof VmStorageError) throw new VmBuildError(e.message);
    throw e;
  }
  let network: VmNetwork | null;
  try {
    network = await VmNetwork.open(machine.vmbus, c.nics, {
      ...(host.natLogDir !== undefined ? { natLogDir: host.natLogDir } : {}),
      ...(host.notice !== undefined ? { notice: host.notice } : {}),
    });
  } catch (e) {
    await storage?.close().catch(() => undefined);
    if (e instanceof VmNetworkError) throw new VmBuildError(e.message);
    throw e;
  }
  if (storage !== null || network !== null)
    machine.deviceSummary = () => [...(storage?.summary() ?? []), ...(network?.summary() ?? [])];
  return {
    kind: "linux",
    config: c,
    machine,
    storage,
    network,
    // A flush or close that fails is a VmStorageError naming the image.
    close: () => {
      network?.close();
      return storage?.close() ?? Promise.resolve();
    },
  };
}

/**
 * Multiboot modules in QEMU's `-initrd` form: comma-separated entries, each a path optionally followed by a
 * space and arguments; the module's string is the whole entry, as QEMU and GRUB pass it.
 */
export function parseModuleList(list: string): Array<{ path: string; string: string }> {
  return list.split(",").map((entry) => {
    const space = entry.indexOf(" ");
    const path = space < 0 ? entry : entry.slice(0, space);
    if (path === "") throw new VmBuildError(`empty module path in the module list "${list}"`);
    return { path, string: entry };
  });
}

function buildMultiboot(c: VmConfig, host: VmHost, kernelPath: string, kernel: Uint8Array): Vm {
  const modules: MultibootModule[] = (c.boot.initrd === null ? [] : parseModuleList(c.boot.initrd)).map(
    (m) => ({
      data: readBootFile(m.path, "module"),
      string: m.string,
    }),
  );
  const machine = pcMachine(c, host, host.jitThreshold, true);
  let loaded: MultibootLoadResult;
  try {
    // The command line a Multiboot kernel sees starts with its own path, as GRUB and QEMU pass it.
    loaded = machine.bootMultiboot({ kernel, cmdline: `${kernelPath} ${c.boot.cmdline ?? ""}`, modules });
  } catch (e) {
    if (e instanceof MultibootError) throw new VmBuildError(`${kernelPath}: ${e.message}`);
    throw e;
  }
  return {
    kind: "multiboot",
    config: c,
    machine,
    loaded,
    storage: null,
    network: null,
    close: () => Promise.resolve(),
  };
}
