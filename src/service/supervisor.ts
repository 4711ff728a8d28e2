// Owns: the worker processes: starting one per running VM (`viridian worker`, detached, in its own process
// group, confined by Node's permission model to the files its configuration names), speaking the protocol of
// src/worker/protocol.ts over the VM's socket, reattaching to workers a previous service instance left
// running (pid file + socket), and telling the VM service when a worker ends and why.
// Must not: share memory or handles with a worker beyond its socket, log files and inherited stdio, or stop a
// worker because the service stops (automatic stop actions are the VM service's decision).
// Spec: docs/architecture.md "Worker processes and their protocol"; Node.js permission model
// (--experimental-permission, --allow-fs-read, --allow-fs-write).

import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ApiError, isErrorCode } from "../api/errors.js";
import type { VmFile } from "../api/schemas.js";
import {
  MAX_FRAME,
  PROTOCOL_VERSION,
  type WorkerHello,
  type WorkerMessage,
  type GuestHeartbeat,
  type WorkerMetrics,
  type WorkerRequest,
  type WorkerRunState,
} from "../worker/protocol.js";
import { bundledGuestFiles } from "../worker/build-vm.js";
import type { DataDir } from "./data-dir.js";
import { openMedium, ServedMedium } from "./served-medium.js";
import { openServedDisk, ServedDisks } from "./served-disks.js";
import type { WorkerHandle, WorkerLauncher } from "./workers.js";

const INSTALL_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const BIN = fileURLToPath(new URL("../../../bin/viridian.js", import.meta.url));
/** How long a worker may take to build its VM and listen. */
const START_TIMEOUT_MS = 120_000;
/** How long a worker whose socket closed may take to end before it counts as lost (and is killed). */
const EXIT_GRACE_MS = 10_000;
/** How long a request to a worker may take before the worker counts as not answering. */
const REQUEST_TIMEOUT_MS = 30_000;

type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

/** Distributes request ids over the socket; one instance per connection. */
type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

/** True while the process exists and is not a zombie (a reattached worker is not our child: init reaps it). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/**
 * Waits until a worker whose socket closed has ended (`ended()`: our child's exit status is known, or a
 * reattached worker is no longer alive). One that still lives after
 * EXIT_GRACE_MS closed its supervisor connection without exiting: it is lost to the service (the VM is reported
 * Critical and may be started again, which must not meet a second worker), so it is killed. True if it ended.
 */
async function processEnd(pid: number, ended: () => boolean): Promise<boolean> {
  const deadline = Date.now() + EXIT_GRACE_MS;
  while (!ended()) {
    if (Date.now() > deadline) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
      return false;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

function tail(path: string, lines = 5): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join(" | ");
  } catch {
    return "";
  }
}

/**
 * The Node options that confine a worker to its VM's files (and the installation it runs from); `parents`
 * (its differencing disks' parents, checked by the caller) are readable, never writable.
 */
export function workerPermissionArgs(file: VmFile, vmDir: string, parents: readonly string[] = []): string[] {
  const m = file.machine;
  const read = [
    `${INSTALL_ROOT}dist`,
    `${INSTALL_ROOT}node_modules`,
    `${INSTALL_ROOT}bin`,
    `${INSTALL_ROOT}package.json`,
    vmDir,
  ];
  if (m.boot.kernel === null) read.push(bundledGuestFiles().kernel, bundledGuestFiles().initrd);
  else read.push(m.boot.kernel);
  if (m.boot.initrd !== null) read.push(m.boot.initrd);
  for (const d of m.disks) read.push(d.path);
  read.push(...parents);
  if (m.dvd !== null) read.push(m.dvd);
  const write = [vmDir, ...m.disks.filter((d) => !d.readOnly).map((d) => d.path)];
  return [
    "--experimental-permission",
    "--no-warnings=ExperimentalWarning",
    ...read.map((p) => `--allow-fs-read=${p}`),
    ...write.map((p) => `--allow-fs-write=${p}`),
  ];
}

class WorkerConnection implements WorkerHandle {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private consoleListeners = new Set<(b: Uint8Array) => void>();
  private exitListeners: Array<(info: { stopped: boolean; reason: string }) => void> = [];
  private stateListeners: Array<(s: WorkerRunState, reason: string | null) => void> = [];
  private heartbeatListeners: Array<(h: GuestHeartbeat) => void> = [];
  private stoppedReason: string | null = null;
  private exited: { stopped: boolean; reason: string } | null = null;
  private detached = false;
  /** The DVD medium this service reads for the worker (one inserted while the VM runs). */
  private readonly medium: ServedMedium;
  /** The disks this service serves for the worker (hot added while the VM runs). */
  private readonly disks: ServedDisks;
  state: WorkerRunState;
  /** The guest's heartbeat as the worker last reported it; null from a worker that does not report it. */
  heartbeat: GuestHeartbeat | null;

  constructor(
    private readonly socket: Socket,
    readonly pid: number,
    hello: WorkerHello,
    private readonly describeExit: () => Promise<string>,
  ) {
    this.state = hello.state;
    this.heartbeat = isHeartbeat(hello.heartbeat) ? hello.heartbeat : null;
    this.medium = new ServedMedium(hello.remoteMedium);
    this.disks = new ServedDisks(Array.isArray(hello.remoteDisks) ? hello.remoteDisks : []);
    let buf = Buffer.alloc(0);
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > MAX_FRAME) {
        socket.destroy();
        return;
      }
      let nl;
      while ((nl = buf.indexOf(0x0a)) >= 0) {
        const line = buf.subarray(0, nl).toString("utf8");
        buf = buf.subarray(nl + 1);
        try {
          this.onMessage(JSON.parse(line) as WorkerMessage);
        } catch {
          socket.destroy();
          return;
        }
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => this.onClose());
  }

  /** Takes over the messages of the handshake connection (already parsed by `handshake`). */
  private onMessage(m: WorkerMessage): void {
    if ("id" in m) {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.ok) p.resolve(m.result);
      else p.reject(new ApiError(isErrorCode(m.error.code) ? m.error.code : "unavailable", m.error.message));
      return;
    }
    if (m.type === "medium-read") {
      void this.medium.read(m.path, m.offset, m.length).then((r) => {
        if (this.socket.destroyed) return;
        const answer =
          "data" in r
            ? { type: "medium-data", rid: m.rid, data: Buffer.from(r.data).toString("base64"), error: null }
            : { type: "medium-data", rid: m.rid, data: null, error: r.error };
        this.socket.write(JSON.stringify(answer) + "\n");
      });
    } else if (m.type === "disk-io") {
      void this.disks.io(m.path, m.op, m.offset, m.length, m.data).then((r) => {
        if (this.socket.destroyed) return;
        const answer =
          "data" in r
            ? {
                type: "disk-io-done",
                rid: m.rid,
                data: m.op === "read" ? Buffer.from(r.data).toString("base64") : null,
                error: null,
              }
            : { type: "disk-io-done", rid: m.rid, data: null, error: r.error };
        this.socket.write(JSON.stringify(answer) + "\n");
      });
    } else if (m.type === "console") {
      const bytes = Buffer.from(m.data, "base64");
      for (const l of this.consoleListeners) l(bytes);
    } else if (m.type === "state") {
      this.state = m.state;
      if (m.state === "stopped") this.stoppedReason = m.reason ?? "stopped";
      for (const l of this.stateListeners) l(m.state, m.reason);
    } else if (m.type === "heartbeat") {
      // Worker messages are not trusted: anything but the three values is ignored.
      if (!isHeartbeat(m.health) || m.health === this.heartbeat) return;
      this.heartbeat = m.health;
      for (const l of this.heartbeatListeners) l(m.health);
    }
  }

  private onClose(): void {
    void this.medium.close();
    void this.disks.close();
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new ApiError("unavailable", "the worker went away"));
    }
    this.pending.clear();
    if (this.detached) return;
    // A worker that said "stopped" ended normally; anything else is a lost worker, with what we know of why.
    if (this.stoppedReason !== null) this.exitWith({ stopped: true, reason: this.stoppedReason });
    else void this.describeExit().then((reason) => this.exitWith({ stopped: false, reason }));
  }

  private exitWith(info: { stopped: boolean; reason: string }): void {
    this.exited = info;
    for (const l of this.exitListeners) l(info);
  }

  request(req: WithoutId<WorkerRequest>, timeoutMs = REQUEST_TIMEOUT_MS): Promise<unknown> {
    if (this.socket.destroyed) return Promise.reject(new ApiError("unavailable", "the worker is gone"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new ApiError("unavailable", `the worker did not answer ${req.type} within ${timeoutMs / 1000} s`),
        );
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.write(JSON.stringify({ ...req, id }) + "\n");
    });
  }

  async pause(): Promise<void> {
    await this.request({ type: "pause" });
  }
  async resume(): Promise<void> {
    await this.request({ type: "resume" });
  }
  async shutdown(): Promise<void> {
    await this.request({ type: "shutdown" });
  }
  async turnOff(): Promise<void> {
    const gone = new Promise<void>((resolve) => this.onExit(() => resolve()));
    try {
      await this.request({ type: "turn-off" }, 10_000);
    } catch {
      // Not answering: the process is ended the hard way.
      try {
        process.kill(this.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await gone;
  }
  /** The worker cannot open a new file: the service opens the ISO and reads it for the worker. */
  async setDvd(path: string | null): Promise<void> {
    const next = path === null ? null : await openMedium(path);
    // Served before the swap: the guest may read the new medium before the worker answers.
    if (next !== null) await this.medium.add(next.info.path, next.disk);
    try {
      await this.request({ type: "set-dvd", medium: next?.info ?? null });
    } catch (e) {
      if (next !== null) await this.medium.remove(next.info.path);
      throw e;
    }
    await this.medium.keepOnly(path);
  }
  /** Hot add: the service opens the image and serves it; the worker attaches it and the guest rescans. */
  async addDisk(path: string, readOnly: boolean): Promise<void> {
    const { info, disk } = await openServedDisk(path, readOnly);
    // Served before the worker attaches it: the guest's rescan may read it at once.
    this.disks.add(path, disk);
    try {
      await this.request({ type: "add-disk", disk: info });
    } catch (e) {
      await this.disks.remove(path);
      throw e;
    }
  }
  /** Hot remove of disk `index` (configuration order): the worker detaches and closes it, then so does the service. */
  async removeDisk(index: number, path: string): Promise<void> {
    await this.request({ type: "remove-disk", index });
    await this.disks.remove(path);
  }
  async inspect(): Promise<string> {
    return ((await this.request({ type: "inspect" })) as { text: string }).text;
  }
  async metrics(): Promise<WorkerMetrics> {
    return (await this.request({ type: "metrics" })) as WorkerMetrics;
  }
  async sendConsole(bytes: Uint8Array): Promise<void> {
    await this.request({ type: "console-input", data: Buffer.from(bytes).toString("base64") });
  }
  async onConsole(l: (b: Uint8Array) => void, backlog: number): Promise<() => void> {
    const r = (await this.request({ type: "console-subscribe", backlog })) as { backlog: string };
    const first = Buffer.from(r.backlog, "base64");
    if (first.length > 0) l(first);
    this.consoleListeners.add(l);
    return () => this.consoleListeners.delete(l);
  }
  onExit(l: (info: { stopped: boolean; reason: string }) => void): void {
    if (this.exited) l(this.exited);
    else this.exitListeners.push(l);
  }
  onState(l: (s: WorkerRunState, reason: string | null) => void): void {
    this.stateListeners.push(l);
  }
  onHeartbeat(l: (h: GuestHeartbeat) => void): void {
    this.heartbeatListeners.push(l);
  }
  detach(): void {
    this.detached = true;
    this.socket.destroy();
  }
}

function connectSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once("connect", () => {
      s.removeAllListeners("error");
      resolve(s);
    });
    s.once("error", reject);
  });
}

function isHeartbeat(h: unknown): h is GuestHeartbeat {
  return h === "ok" || h === "lost" || h === "no-contact";
}

/** Says hello on a fresh connection and reads the answer before the connection's own parser takes over. */
async function handshake(s: Socket): Promise<WorkerHello> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0) return;
      s.off("data", onData);
      const rest = buf.subarray(nl + 1);
      if (rest.length > 0) s.unshift(rest);
      try {
        const m = JSON.parse(buf.subarray(0, nl).toString("utf8")) as WorkerMessage;
        if ("id" in m && m.id === 0 && m.ok) resolve(m.result as WorkerHello);
        else reject(new Error(`the worker refused the handshake: ${"error" in m ? m.error.message : "?"}`));
      } catch (e) {
        reject(e as Error);
      }
    };
    s.on("data", onData);
    s.once("close", () => reject(new Error("the worker closed the connection")));
    s.write(JSON.stringify({ id: 0, type: "hello", protocol: PROTOCOL_VERSION }) + "\n");
  });
}

export class Supervisor implements WorkerLauncher {
  constructor(private readonly dirs: DataDir) {}

  async start(file: VmFile, signal: AbortSignal, parents: readonly string[] = []): Promise<WorkerHandle> {
    const id = file.id;
    const vmDir = this.dirs.vmDir(id);
    const logPath = this.dirs.workerLog(id);
    const log = openSync(logPath, "a", 0o600);
    let child: ChildProcess;
    try {
      child = spawn(
        process.execPath,
        [
          ...workerPermissionArgs(file, vmDir, parents),
          BIN,
          "worker",
          "--vm-dir",
          vmDir,
          "--switches",
          join(this.dirs.switchRuntime, "switches"),
        ],
        {
          detached: true,
          stdio: ["ignore", log, log],
          env: { ...process.env, NODE_OPTIONS: "" },
        },
      );
    } finally {
      closeSync(log);
    }
    child.unref();
    let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    child.on("exit", (code, sig) => (exit = { code, signal: sig }));
    const describeNow = (): string => {
      const how = exit
        ? exit.signal
          ? `was killed by ${exit.signal}`
          : `exited with status ${exit.code}`
        : pidAlive(child.pid!)
          ? "stopped answering (killed)"
          : "is gone";
      const last = tail(logPath, 3);
      return `worker process ${child.pid} ${how}${last ? ` (${last})` : ""}`;
    };
    // The socket closes as the process dies, a moment before its exit status is known: wait for it.
    const describe = async (): Promise<string> => {
      await processEnd(child.pid!, () => exit !== null);
      return describeNow();
    };
    const deadline = Date.now() + START_TIMEOUT_MS;
    let socket: Socket | null = null;
    while (socket === null) {
      if (signal.aborted) {
        child.kill("SIGKILL");
        throw new ApiError("conflict", "cancelled");
      }
      if (exit !== null) throw new ApiError("unavailable", `the VM did not start: ${describeNow()}`);
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new ApiError("unavailable", "the worker did not listen within 120 s");
      }
      if (existsSync(this.dirs.workerPid(id)) && existsSync(this.dirs.workerSocket(id))) {
        socket = await connectSocket(this.dirs.workerSocket(id)).catch(() => null);
      }
      if (socket === null) await new Promise((r) => setTimeout(r, 50));
    }
    const hello = await handshake(socket);
    const w = new WorkerConnection(socket, child.pid!, hello, describe);
    await w.request({ type: "run" });
    w.state = "running";
    return w;
  }

  async reattach(id: string): Promise<WorkerHandle | null> {
    let pid: number;
    try {
      pid = Number(readFileSync(this.dirs.workerPid(id), "utf8").trim());
    } catch {
      return null;
    }
    if (!Number.isInteger(pid) || pid <= 1 || !pidAlive(pid)) return null;
    const socket = await connectSocket(this.dirs.workerSocket(id)).catch(() => null);
    if (!socket) return null;
    const hello = await handshake(socket);
    if (hello.vmId !== id || hello.pid !== pid) {
      socket.destroy();
      return null;
    }
    const logPath = this.dirs.workerLog(id);
    return new WorkerConnection(socket, pid, hello, async () => {
      // Not our child: no exit status, only whether it is gone.
      const gone = await processEnd(pid, () => !pidAlive(pid));
      const last = tail(logPath, 3);
      return `worker process ${pid} ${gone ? "is gone (killed or crashed)" : "stopped answering (killed)"}${last ? ` (${last})` : ""}`;
    });
  }
}
