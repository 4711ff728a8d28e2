// Owns: one VM NIC's private user-mode NAT (`--nic user`, QEMU's user networking): a passt process attached to
// that NIC alone through a socketpair, with QEMU's address plan (guest 10.0.2.15/24, gateway 10.0.2.2 = the
// host's loopback; 10.0.2.3 forwarded to the host's first name server), DHCP (which offers the host's name
// servers: Debian 12's passt does not offer the forwarded address), and the NIC's port forwards; its output
// in a log file; its start checked (each forwarded host port free, passt initialised) before the VM runs.
// Must not: leave passt running without its NIC (passt's --fd mode quits when the socket closes, so even a
// killed worker leaves no orphan), listen anywhere a forward did not name, or write passt's output to the
// console.
// Spec: passt(1) (-f, --fd, -P "write own PID once initialisation is done", -a/-n/-g, --dns-forward, -m,
// -t/-u ADDR/HOST:GUEST); QEMU's `-nic user` address plan (docs/system/devices/net.rst, "user networking").

import { spawn, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import {
  chmodSync,
  createWriteStream,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatHostForward, type HostForward } from "../net/host-forward.js";
import { NetError } from "../net/net-error.js";
import { NAT_MTU, requireProgram } from "./external-programs.js";

/** QEMU's user-network plan, so `--nic user` guests see the addresses QEMU users know. */
export const USER_NET = {
  guest: "10.0.2.15",
  prefixLength: 24,
  gateway: "10.0.2.2",
  dns: "10.0.2.3",
} as const;

/** How long passt may take to initialise (it binds its forwards, then writes its pid file); generous for load. */
const READY_TIMEOUT_MS = 60_000;
/** passt output kept in memory for error messages. */
const TAIL_CHARS = 4096;

export interface UserNatOptions {
  forwards: readonly HostForward[];
  /** passt's standard output and error go here (created or truncated). */
  logPath: string;
  readyTimeoutMs?: number;
}

export interface UserNat {
  /** The NIC's end of the socketpair: the stream wire format (4-byte length + Ethernet frame). */
  readonly socket: Socket;
  readonly pid: number;
  readonly logPath: string;
  /** passt's exit status ("1", "SIGTERM") once it has exited, else null. */
  exitStatus(): string | null;
  /** The last lines of passt's output on one line, for messages (syslog noise removed). */
  outputTail(): string;
  /** Settles when passt has exited. */
  readonly exited: Promise<void>;
  /** Closes the NIC's socket (passt quits on its own) and asks passt to stop. */
  stop(): void;
}

/** passt's arguments for one NIC: foreground, the socketpair on fd 3, QEMU's addresses, MTU, forwards. */
export function userNatArgs(forwards: readonly HostForward[], pidFile: string): string[] {
  const args = ["-f", "--fd", "3", "-P", pidFile, "-m", String(NAT_MTU)];
  args.push("-a", USER_NET.guest, "-n", String(USER_NET.prefixLength), "-g", USER_NET.gateway);
  args.push("--dns-forward", USER_NET.dns);
  for (const f of forwards) {
    // Every forward names its address: passt would otherwise listen on every interface.
    if (f.hostAddress === "")
      throw new NetError("invalid-argument", `hostfwd ${formatHostForward(f)} names no host address`);
    args.push(f.protocol === "tcp" ? "-t" : "-u", `${f.hostAddress}/${f.hostPort}:${f.guestPort}`);
  }
  return args;
}

function describe(f: HostForward): string {
  return `hostfwd=${formatHostForward(f)}`;
}

/**
 * Binds each forward's host socket for a moment: a port in use, an address this host does not have, or a
 * privileged port is an error naming the forward, before anything starts. (passt would refuse too, but
 * only with its own words in its log; this names the forward.)
 */
export async function checkForwardsFree(forwards: readonly HostForward[]): Promise<void> {
  for (const f of forwards) {
    const error = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      if (f.protocol === "tcp") {
        const server = createServer();
        server.once("error", (e) => resolve(e));
        server.listen({ host: f.hostAddress, port: f.hostPort, exclusive: true }, () =>
          server.close(() => resolve(null)),
        );
      } else {
        const socket = createSocket("udp4");
        socket.once("error", (e) => resolve(e));
        socket.bind({ address: f.hostAddress, port: f.hostPort, exclusive: true }, () =>
          socket.close(() => resolve(null)),
        );
      }
    });
    if (error === null) continue;
    const where = `${f.protocol.toUpperCase()} port ${f.hostPort} on ${f.hostAddress}`;
    const why =
      error.code === "EADDRINUSE"
        ? `${where} is in use`
        : error.code === "EADDRNOTAVAIL"
          ? `${f.hostAddress} is not an address of this host`
          : error.code === "EACCES"
            ? `${where} needs privileges (ports below 1024 are reserved to root)`
            : `${where} cannot be opened: ${error.code ?? error.message}`;
    throw new NetError(error.code === "EADDRINUSE" ? "exists" : "invalid-argument", `${describe(f)}: ${why}`);
  }
}

/**
 * A directory for passt's pid file. passt started as root changes to `nobody` before it writes the file, so
 * then the directory must be searchable and the (pre-created) file writable by others; its name is random.
 */
function pidFileDir(): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), "viridian-passt-"));
  const file = join(dir, "passt.pid");
  writeFileSync(file, "", { mode: 0o600 });
  if (process.getuid?.() === 0) {
    chmodSync(dir, 0o711);
    chmodSync(file, 0o666);
  }
  return { dir, file };
}

function readPid(file: string): number | null {
  try {
    const n = Number(readFileSync(file, "utf8").trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/**
 * Starts the NAT of one NIC and resolves once passt is initialised (its forwards listen); rejects with a
 * NetError naming the problem (passt not installed: the Debian package; a forward's port in use; passt's own
 * refusal, with its output) and leaves nothing running.
 */
export async function startUserNat(options: UserNatOptions): Promise<UserNat> {
  requireProgram("passt");
  await checkForwardsFree(options.forwards);
  const pid = pidFileDir();
  let args: string[];
  try {
    args = userNatArgs(options.forwards, pid.file);
  } catch (e) {
    rmSync(pid.dir, { recursive: true, force: true });
    throw e;
  }
  let logFd: number;
  try {
    // Opened here, synchronously, so that a log that cannot be written is this error and not a stream event.
    logFd = openSync(options.logPath, "w", 0o600);
  } catch (e) {
    rmSync(pid.dir, { recursive: true, force: true });
    throw new NetError(
      "invalid-argument",
      `cannot write passt's log ${options.logPath}: ${(e as Error).message}`,
    );
  }
  const log = createWriteStream("", { fd: logFd });
  // A log that fails later (a full disk) loses passt's output, nothing else.
  log.on("error", () => undefined);
  let tail = "";
  const child: ChildProcess = spawn("passt", args, { stdio: ["ignore", "pipe", "pipe", "pipe"] });
  const keep = (chunk: Buffer): void => {
    log.write(chunk);
    tail = (tail + chunk.toString("utf8")).slice(-TAIL_CHARS);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let status: string | null = null;
  let spawnError: Error | null = null;
  const exited = new Promise<void>((resolve) => {
    child.once("error", (e) => {
      spawnError = e;
      status ??= "not started";
      log.end();
      resolve();
    });
    child.once("close", (code, signal) => {
      status = String(code ?? signal);
      log.end();
      resolve();
    });
  });
  const socket = child.stdio[3];
  const outputTail = (): string =>
    tail
      .replace(/^Failed to send \d+ bytes to syslog\n/gm, "")
      .trim()
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "")
      .slice(-4)
      .join(" / ");
  const stop = (): void => {
    if (socket instanceof Socket) socket.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  };
  try {
    if (!(socket instanceof Socket)) throw new NetError("invalid-argument", "passt's socket did not open");
    const limit = options.readyTimeoutMs ?? READY_TIMEOUT_MS;
    const started = Date.now();
    // passt writes its pid file at the end of its initialisation, and exits instead when a forward fails.
    while (readPid(pid.file) === null) {
      if (status !== null) {
        const why = spawnError ? `: ${(spawnError as Error).message}` : "";
        throw new NetError(
          "invalid-argument",
          `passt exited (${status})${why} before it was ready: ${outputTail() || "no output"} (log: ${options.logPath})`,
        );
      }
      if (Date.now() - started > limit)
        throw new NetError(
          "invalid-argument",
          `passt did not finish starting within ${limit / 1000} s (log: ${options.logPath})`,
        );
      await Promise.race([exited, new Promise((r) => setTimeout(r, 20))]);
    }
  } catch (e) {
    stop();
    await exited;
    throw e;
  } finally {
    rmSync(pid.dir, { recursive: true, force: true });
  }
  return {
    socket,
    pid: child.pid!,
    logPath: options.logPath,
    exitStatus: () => status,
    outputTail,
    exited,
    stop,
  };
}
