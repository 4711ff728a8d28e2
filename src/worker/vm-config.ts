// Owns: a VM's configuration as plain, serialisable data (`VmConfig`: what the CLI builds from its flags today
// and what the service will store in a VM's file), its defaults, and its validation: a configuration read
// from a file is untrusted input, so every field is checked and a bad one is a `VmConfigError` naming it.
// Must not: read files or build anything (`buildVm` in build-vm.ts does), or hold functions, class instances
// or host handles (it must survive JSON.stringify / JSON.parse unchanged).
// Spec: docs/architecture.md "The seam" (a VM is data first); ../shared/ARCHITECTURE.md "A VM is data first".

import { MAX_GUEST_MEMORY } from "../memory/guest-memory.js";
import type { HostForward } from "../net/host-forward.js";

/** What to boot. */
export interface BootConfig {
  /** A kernel file: a bzImage (Linux boot protocol) or a Multiboot v1 image, told apart by content; null: the bundled Linux guest (guest/bzImage). */
  kernel: string | null;
  /**
   * Linux: the initrd file (null with the bundled kernel: the bundled initramfs). Multiboot: the modules, in
   * QEMU's `-initrd` form: comma-separated, each "path" or "path arguments" (the module's string).
   */
  initrd: string | null;
  /** The kernel command line; null: the default (Linux "console=ttyS0", Multiboot empty). */
  cmdline: string | null;
}

/** A virtual disk image (raw, VHD, VHDX). */
export interface DiskConfig {
  path: string;
  readOnly: boolean;
}

/** A NIC plugged into a switch: its ports socket, or any socket speaking the stream wire format. */
export interface SwitchAttachment {
  kind: "switch";
  /** The switch's ports socket (`viridian switch create` prints it). */
  socket: string;
}

/**
 * A NIC with its own user-mode NAT (QEMU's `-nic user`): a passt process attached to this NIC alone, with
 * DHCP, DNS forwarding, NAT to the host (the gateway address reaches the host's 127.0.0.1) and port forwards.
 */
export interface UserAttachment {
  kind: "user";
  /** Host ports forwarded to the guest; each names the host address it listens on (never "every address" by omission). */
  hostForwards: HostForward[];
}

export type NicAttachment = SwitchAttachment | UserAttachment;

/** A synthetic NIC (hv_netvsc in the guest). */
export interface NicConfig {
  /** The NIC's MAC address, "aa:bb:cc:dd:ee:ff" (a unicast address). */
  mac: string;
  /** Where its frames go. */
  attach: NicAttachment;
}

/** Where guest time comes from. */
export interface TimeConfig {
  /** Host time ("host"): the partition clock follows the host's monotonic clock. */
  source: "host";
  /**
   * A pacing floor in millions of instructions per virtual second (docs/architecture.md "One time base"):
   * guest time advances at most 1/N us per instruction while the processor computes; null: none.
   */
  paceMips: number | null;
}

export interface VmConfig {
  /** Guest RAM in bytes: a multiple of 4 KiB, 2 MiB to 16 GiB. */
  memoryBytes: number;
  /** Virtual processors, 1-64 (the MADT lists them all; one runs until SMP exists). */
  processors: number;
  boot: BootConfig;
  /** Disks on the SCSI controller, in LUN order (LUN 0, 1, ...). */
  disks: DiskConfig[];
  /** An ISO image as a read-only DVD, on the LUN after the last disk. */
  dvd: string | null;
  /** Synthetic NICs, one VMBus network channel each (Linux names them eth0, eth1, ... in this order). */
  nics: NicConfig[];
  time: TimeConfig;
  /** Shift of the guest's calendar time from the host's, in whole seconds (within 100 years). */
  rtcOffsetSeconds: number;
}

export const MIN_MEMORY_BYTES = 2 * 1024 * 1024;
export const MAX_MEMORY_BYTES = MAX_GUEST_MEMORY;
export const MAX_PROCESSORS = 64;
/** LUNs of the one SCSI controller: disks and the DVD together. */
export const MAX_LUNS = 64;
/** Synthetic NICs per VM (Hyper-V allows 8 synthetic adapters per VM). */
export const MAX_NICS = 8;
/** Port forwards of one user NIC (each is a listening socket of its passt). */
export const MAX_HOST_FORWARDS = 32;
const MAX_RTC_OFFSET_SECONDS = 100 * 366 * 86400;
const MAX_PATH_CHARS = 4096;
const MAX_CMDLINE_CHARS = 4095;
const MAC_TEXT = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const IPV4_TEXT = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export class VmConfigError extends Error {
  override name = "VmConfigError";
  constructor(
    /** The offending field, e.g. "boot.kernel" or "disks[1].path". */
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** A configuration with the defaults for every field not given. */
export function vmConfig(
  partial: Partial<Omit<VmConfig, "boot" | "time">> & {
    boot?: Partial<BootConfig>;
    time?: Partial<TimeConfig>;
  },
): VmConfig {
  return {
    memoryBytes: partial.memoryBytes ?? 256 * 1024 * 1024,
    processors: partial.processors ?? 1,
    boot: {
      kernel: partial.boot?.kernel ?? null,
      initrd: partial.boot?.initrd ?? null,
      cmdline: partial.boot?.cmdline ?? null,
    },
    disks: partial.disks ?? [],
    dvd: partial.dvd ?? null,
    nics: partial.nics ?? [],
    time: { source: "host", paceMips: partial.time?.paceMips ?? null },
    rtcOffsetSeconds: partial.rtcOffsetSeconds ?? 0,
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function onlyKeys(v: Record<string, unknown>, keys: string[], field: string): void {
  for (const k of Object.keys(v))
    if (!keys.includes(k)) throw new VmConfigError(field === "" ? k : `${field}.${k}`, "unknown field");
}

function path(v: unknown, field: string): string {
  if (typeof v !== "string" || v.length === 0 || v.length > MAX_PATH_CHARS || v.includes("\0"))
    throw new VmConfigError(field, `must be a file path (1-${MAX_PATH_CHARS} characters, no NUL)`);
  return v;
}

function nullable<T>(v: unknown, field: string, check: (v: unknown, field: string) => T): T | null {
  return v === null || v === undefined ? null : check(v, field);
}

function port(v: unknown, field: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 65535)
    throw new VmConfigError(field, "must be a port number 1-65535");
  return v;
}

function checkAttachment(a: unknown, field: string): NicAttachment {
  if (!isRecord(a)) throw new VmConfigError(field, 'must be an object with kind "switch" or "user"');
  if (a.kind === "switch") {
    onlyKeys(a, ["kind", "socket"], field);
    return { kind: "switch", socket: path(a.socket, `${field}.socket`) };
  }
  if (a.kind !== "user") throw new VmConfigError(`${field}.kind`, 'must be "switch" or "user"');
  onlyKeys(a, ["kind", "hostForwards"], field);
  const forwards = a.hostForwards;
  if (!Array.isArray(forwards) || forwards.length > MAX_HOST_FORWARDS)
    throw new VmConfigError(
      `${field}.hostForwards`,
      `must be a list of at most ${MAX_HOST_FORWARDS} port forwards`,
    );
  const hostForwards = forwards.map((f: unknown, j): HostForward => {
    const ff = `${field}.hostForwards[${j}]`;
    if (!isRecord(f)) throw new VmConfigError(ff, "must be an object");
    onlyKeys(f, ["protocol", "hostAddress", "hostPort", "guestPort"], ff);
    if (f.protocol !== "tcp" && f.protocol !== "udp")
      throw new VmConfigError(`${ff}.protocol`, 'must be "tcp" or "udp"');
    // The address is always explicit: a forward open to every interface must be asked for (0.0.0.0).
    if (typeof f.hostAddress !== "string" || !IPV4_TEXT.test(f.hostAddress))
      throw new VmConfigError(`${ff}.hostAddress`, "must be an IPv4 address (e.g. 127.0.0.1)");
    return {
      protocol: f.protocol,
      hostAddress: f.hostAddress,
      hostPort: port(f.hostPort, `${ff}.hostPort`),
      guestPort: port(f.guestPort, `${ff}.guestPort`),
    };
  });
  return { kind: "user", hostForwards };
}

/**
 * No two forwards of the VM may want the same host socket: the same protocol and port on the same address, or
 * on any address when one of them listens on 0.0.0.0 (Linux refuses the second bind either way).
 */
function checkForwardsDisjoint(nics: readonly NicConfig[]): void {
  const seen: Array<{ f: HostForward; where: string }> = [];
  nics.forEach((n, i) => {
    if (n.attach.kind !== "user") return;
    n.attach.hostForwards.forEach((f, j) => {
      const where = `nics[${i}].attach.hostForwards[${j}]`;
      const clash = seen.find(
        (s) =>
          s.f.protocol === f.protocol &&
          s.f.hostPort === f.hostPort &&
          (s.f.hostAddress === f.hostAddress || s.f.hostAddress === "0.0.0.0" || f.hostAddress === "0.0.0.0"),
      );
      if (clash)
        throw new VmConfigError(
          where,
          `${f.protocol} ${f.hostAddress}:${f.hostPort} is already forwarded by ${clash.where}`,
        );
      seen.push({ f, where });
    });
  });
}

/**
 * Checks untrusted data (e.g. a parsed VM file) and returns it as a VmConfig; throws VmConfigError naming the
 * first bad field. Every field must be present (the file is written complete by `vmConfig`). A NIC in the form
 * written before attachments existed, `{mac, switchSocket}`, is read as `{mac, attach: {kind: "switch", socket}}`.
 */
export function checkVmConfig(value: unknown): VmConfig {
  if (!isRecord(value)) throw new VmConfigError("config", "must be an object");
  onlyKeys(
    value,
    ["memoryBytes", "processors", "boot", "disks", "dvd", "nics", "time", "rtcOffsetSeconds"],
    "",
  );
  const memoryBytes = value.memoryBytes;
  if (
    typeof memoryBytes !== "number" ||
    !Number.isSafeInteger(memoryBytes) ||
    memoryBytes < MIN_MEMORY_BYTES ||
    memoryBytes > MAX_MEMORY_BYTES ||
    memoryBytes % 4096 !== 0
  )
    throw new VmConfigError(
      "memoryBytes",
      `must be a multiple of 4 KiB between 2 MiB and ${MAX_GUEST_MEMORY / 1024 ** 3} GiB`,
    );
  const processors = value.processors;
  if (
    typeof processors !== "number" ||
    !Number.isInteger(processors) ||
    processors < 1 ||
    processors > MAX_PROCESSORS
  )
    throw new VmConfigError("processors", `must be an integer 1-${MAX_PROCESSORS}`);
  const boot = value.boot;
  if (!isRecord(boot)) throw new VmConfigError("boot", "must be an object");
  onlyKeys(boot, ["kernel", "initrd", "cmdline"], "boot");
  const cmdline = boot.cmdline;
  if (
    cmdline !== null &&
    cmdline !== undefined &&
    (typeof cmdline !== "string" || cmdline.length > MAX_CMDLINE_CHARS)
  )
    throw new VmConfigError("boot.cmdline", `must be a string of at most ${MAX_CMDLINE_CHARS} characters`);
  const initrd = boot.initrd;
  if (
    initrd !== null &&
    initrd !== undefined &&
    (typeof initrd !== "string" || initrd.length === 0 || initrd.length > MAX_PATH_CHARS * 16)
  )
    throw new VmConfigError(
      "boot.initrd",
      "must be a non-empty string (paths, comma-separated for Multiboot modules)",
    );
  const disks = value.disks;
  if (!Array.isArray(disks) || disks.length > MAX_LUNS)
    throw new VmConfigError("disks", `must be a list of at most ${MAX_LUNS} disks`);
  const checkedDisks = disks.map((d: unknown, i): DiskConfig => {
    const field = `disks[${i}]`;
    if (!isRecord(d)) throw new VmConfigError(field, "must be an object");
    onlyKeys(d, ["path", "readOnly"], field);
    if (typeof d.readOnly !== "boolean")
      throw new VmConfigError(`${field}.readOnly`, "must be true or false");
    return { path: path(d.path, `${field}.path`), readOnly: d.readOnly };
  });
  const dvd = nullable(value.dvd, "dvd", path);
  if (checkedDisks.length + (dvd === null ? 0 : 1) > MAX_LUNS)
    throw new VmConfigError(
      "disks",
      `at most ${MAX_LUNS} disks and DVD together (the SCSI controller's LUNs)`,
    );
  const nics = value.nics;
  if (!Array.isArray(nics) || nics.length > MAX_NICS)
    throw new VmConfigError("nics", `must be a list of at most ${MAX_NICS} NICs`);
  const checkedNics = nics.map((n: unknown, i): NicConfig => {
    const field = `nics[${i}]`;
    if (!isRecord(n)) throw new VmConfigError(field, "must be an object");
    // A configuration written before NICs had attachments: `{mac, switchSocket}` is a switch NIC.
    const legacy = "switchSocket" in n;
    onlyKeys(n, legacy ? ["mac", "switchSocket"] : ["mac", "attach"], field);
    const mac = n.mac;
    if (typeof mac !== "string" || !MAC_TEXT.test(mac))
      throw new VmConfigError(`${field}.mac`, "must be a MAC address aa:bb:cc:dd:ee:ff");
    if ((parseInt(mac.slice(0, 2), 16) & 1) !== 0)
      throw new VmConfigError(
        `${field}.mac`,
        `${mac} is a group (multicast) address; a NIC needs a unicast one`,
      );
    const attach: NicAttachment = legacy
      ? { kind: "switch", socket: path(n.switchSocket, `${field}.switchSocket`) }
      : checkAttachment(n.attach, `${field}.attach`);
    return { mac: mac.toLowerCase(), attach };
  });
  const macs = checkedNics.map((n) => n.mac);
  const twice = macs.find((m, i) => macs.indexOf(m) !== i);
  if (twice !== undefined) throw new VmConfigError("nics", `two NICs have the MAC address ${twice}`);
  checkForwardsDisjoint(checkedNics);
  const time = value.time;
  if (!isRecord(time)) throw new VmConfigError("time", "must be an object");
  onlyKeys(time, ["source", "paceMips"], "time");
  if (time.source !== "host") throw new VmConfigError("time.source", 'must be "host"');
  const paceMips = time.paceMips;
  if (paceMips !== null && (typeof paceMips !== "number" || !(paceMips >= 0.1 && paceMips <= 100_000)))
    throw new VmConfigError("time.paceMips", "must be null or a number of MIPS in 0.1-100000");
  const rtc = value.rtcOffsetSeconds;
  if (typeof rtc !== "number" || !Number.isSafeInteger(rtc) || Math.abs(rtc) > MAX_RTC_OFFSET_SECONDS)
    throw new VmConfigError("rtcOffsetSeconds", "must be a whole number of seconds within 100 years");
  return {
    memoryBytes,
    processors,
    boot: {
      kernel: nullable(boot.kernel, "boot.kernel", path),
      initrd: (initrd as string | null | undefined) ?? null,
      cmdline: (cmdline as string | null | undefined) ?? null,
    },
    disks: checkedDisks,
    dvd,
    nics: checkedNics,
    time: { source: "host", paceMips: paceMips as number | null },
    rtcOffsetSeconds: rtc,
  };
}
