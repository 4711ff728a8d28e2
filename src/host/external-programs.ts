// Owns: starting the external programs behind the NAT and TAP ports (Debian's passt and vde_plug), with a
// clear error naming the Debian package when one is missing, and stopping them.
// Must not: run a program without a way to stop it, or leave it running after its port is gone.
// Spec: passt(1) (-f foreground, -F/--fd a connected socket, -m MTU, -t/-u forwards; the socket carries the
// 4-byte-length wire format), vde_plug(1) (`vde_plug tap://IF` carries
// frames on stdin/stdout with a 2-byte big-endian length).

import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { accessSync, constants, existsSync, statSync } from "node:fs";
import { Socket } from "node:net";
import { delimiter, join } from "node:path";
import type { Duplex } from "node:stream";
import { NetError } from "../net/net-error.js";
import type { HostForward } from "../net/host-forward.js";

/** The MTU passt hands out by DHCP: Ethernet's, which every NIC of ours (and QEMU's) takes. */
export const NAT_MTU = 1500;

const PACKAGES: Record<string, string> = { passt: "passt", vde_plug: "vdeplug" };

/** Whether `program` is an executable file in a directory of $PATH (where spawn will look for it). */
function onPath(program: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((dir) => {
    if (dir === "") return false;
    const file = join(dir, program);
    try {
      accessSync(file, constants.X_OK);
      return statSync(file).isFile();
    } catch {
      return false;
    }
  });
}

export function requireProgram(program: "passt" | "vde_plug"): void {
  if (!onPath(program)) {
    throw new NetError(
      "not-found",
      `${program} is not installed: install the Debian package '${PACKAGES[program]}' (apt-get install ${PACKAGES[program]})`,
    );
  }
}

/** passt's arguments: foreground, quiet, the connected socket on fd 3, our MTU, the forwards. */
export function passtArgs(forwards: readonly HostForward[]): string[] {
  const args = ["-f", "-q", "--fd", "3", "-m", String(NAT_MTU)];
  for (const f of forwards) {
    const where = f.hostAddress ? `${f.hostAddress}/` : "";
    args.push(f.protocol === "tcp" ? "-t" : "-u", `${where}${f.hostPort}:${f.guestPort}`);
  }
  return args;
}

export interface RunningProgram {
  readonly child: ChildProcess;
  /** stderr so far (for errors). */
  stderr(): string;
  stop(): void;
}

function run(program: string, args: string[], stdio: StdioOptions): RunningProgram {
  const child = spawn(program, args, { stdio });
  let err = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (s: string) => {
    if (err.length < 16_384) err += s;
  });
  child.on("error", () => undefined);
  return {
    child,
    stderr: () => err.replace(/^Failed to send \d+ bytes to syslog\n/gm, ""),
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    },
  };
}

/**
 * Starts passt on one end of a socketpair (Node's spawn makes a `pipe` stdio entry a UNIX socketpair):
 * passt talks the wire format on its fd 3, the switch on the returned socket. No socket path is involved,
 * so nothing else can connect to the NAT, and passt's own sandbox (it moves into new namespaces) does not
 * hide the socket from us.
 */
export function startPasst(forwards: readonly HostForward[]): { program: RunningProgram; socket: Duplex } {
  requireProgram("passt");
  const program = run("passt", passtArgs(forwards), ["ignore", "ignore", "pipe", "pipe"]);
  const socket = program.child.stdio[3];
  if (!(socket instanceof Socket)) throw new NetError("invalid-argument", "passt's socket did not open");
  return { program, socket };
}

/** Starts `vde_plug tap://DEV`: frames of the TAP device on its stdout, frames for it on its stdin. */
export function startTap(device: string): RunningProgram {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(device)) {
    throw new NetError("invalid-argument", `'${device}' is not a network interface name`);
  }
  // vde_plug run by root would create a missing device; the external port is for a device the user made.
  if (!existsSync(`/sys/class/net/${device}/tun_flags`)) {
    throw new NetError(
      "not-found",
      `no TAP device '${device}': create it with 'ip tuntap add ${device} mode tap user $USER' (as root)`,
    );
  }
  requireProgram("vde_plug");
  return run("vde_plug", [`tap://${device}`], ["pipe", "pipe", "pipe"]);
}
