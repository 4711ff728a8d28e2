// Owns: `viridian worker`, the process that runs one VM for the service: reads the VM's configuration file,
// builds the machine, listens on the VM's socket (`<vm dir>/worker.sock`, this user only) and writes its pid
// file, then obeys the protocol of protocol.ts: run, pause, resume, shut down (the guest's shutdown IC), turn
// off, console streams, inspect, metrics, DVD media changes (a medium inserted while it runs is read through
// the service, ./remote-medium.ts). It keeps running when the service goes away and takes the next connection as its new supervisor.
// Must not: touch any file its VM's configuration does not name (the service starts it under Node's
// permission model, see src/service/supervisor.ts), or exit while the guest runs unless told to turn off.
// Spec: docs/architecture.md "Worker processes and their protocol".

import { appendFileSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildVm, VmBuildError, type Vm } from "./build-vm.js";
import type { PcMachine, PcStop } from "./pc-machine.js";
import {
  MAX_FRAME,
  type MediumInfo,
  PROTOCOL_VERSION,
  type RemoteDiskInfo,
  type SupervisorMessage,
  type WorkerMessage,
  type WorkerMetrics,
  type WorkerRequest,
  type WorkerRunState,
} from "./protocol.js";
import { MediumReads, RemoteMedium } from "./remote-medium.js";
import { DiskIoRequests, RemoteDisk } from "./remote-disk.js";
import { checkVmConfig, VmConfigError, type VmConfig } from "./vm-config.js";

/** Console output kept for late subscribers (a reattached service, a new `vm console`). */
const CONSOLE_BACKLOG = 64 * 1024;
/** console.log is cut back to nothing when it passes this size. */
const CONSOLE_LOG_LIMIT = 4 * 1024 * 1024;

class WorkerError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const NO_DVD_DRIVE = "this VM has no DVD drive (a Multiboot kernel has no VMBus devices)";
const NO_SHUTDOWN_IC =
  "the guest has not connected the shutdown integration service (no hv_utils driver, or it is still booting); turn the VM off instead";

/**
 * The VM's machine description: the `machine` section of its configuration file, which is a `VmConfig` field
 * for field except the NICs: the file names each NIC's switch (`{ mac, switch }`), which the worker resolves
 * to that switch's ports socket under `switchesDir` (the service's switches, `<data>/run/switches`); a
 * section without `nics` (schema 1, if one reaches the worker) means none. The file is untrusted here too
 * (the service validated it, but the worker reads it on its own), so it is checked again by `checkVmConfig`.
 */
export function readVmConfig(vmDir: string, switchesDir: string | null = null): VmConfig {
  const doc = JSON.parse(readFileSync(join(vmDir, "config.json"), "utf8")) as { machine?: unknown };
  const m = doc.machine;
  if (m === null || typeof m !== "object" || Array.isArray(m)) return checkVmConfig(m);
  const nics = (m as { nics?: unknown }).nics ?? [];
  const resolved = Array.isArray(nics)
    ? nics.map((n: unknown, i) => {
        if (n === null || typeof n !== "object" || !("switch" in n)) return n;
        const { switch: name, ...rest } = n as { switch: unknown };
        if (typeof name !== "string" || !SWITCH_NAME.test(name))
          throw new VmConfigError(`nics[${i}].switch`, "must be a switch name");
        if (switchesDir === null)
          throw new VmConfigError(
            `nics[${i}].switch`,
            "a switch NIC needs the worker's --switches directory",
          );
        return { ...rest, attach: { kind: "switch", socket: join(switchesDir, name, "ports.sock") } };
      })
    : nics;
  return checkVmConfig({ ...m, nics: resolved });
}

/** The service's switch names (src/api/schemas.ts SWITCH_NAME_PATTERN): never a path. */
const SWITCH_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;

/**
 * Builds the VM its configuration describes, through the one builder every VM goes through; a Linux VM gets
 * a DVD drive even when empty, so `vm dvd set` can insert a medium while it runs.
 */
function buildMachine(config: VmConfig, serial: (b: number) => void): Promise<Vm> {
  return buildVm(config, { serial, dvdDrive: true });
}

/** Tries to open `path` for reading under this process's permissions: the confinement measurement. */
function probeOpen(path: string): number {
  try {
    readFileSync(path);
    console.log(`opened ${path}`);
    return 0;
  } catch (e) {
    console.log(`refused ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return 3;
  }
}

export async function workerMain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      "vm-dir": { type: "string" },
      switches: { type: "string" },
      "probe-open": { type: "string" },
    },
    strict: true,
  });
  const vmDir = values["vm-dir"];
  if (!vmDir) {
    console.error("usage: viridian worker --vm-dir DIR   (started by `viridian serve`, not by hand)");
    return 2;
  }
  if (values["probe-open"] !== undefined) return probeOpen(values["probe-open"]);
  const vmId = vmDir.split("/").filter(Boolean).pop()!;
  const sockPath = join(vmDir, "worker.sock");
  const pidPath = join(vmDir, "worker.pid");
  const consoleLog = join(vmDir, "console.log");

  let backlog = Buffer.alloc(0);
  let conn: Socket | null = null;
  let subscribed = false;
  let state: WorkerRunState = "built";
  let pending: Buffer[] = [];
  const send = (m: WorkerMessage): void => {
    if (conn && !conn.destroyed) conn.write(JSON.stringify(m) + "\n");
  };
  const flushConsole = (): void => {
    if (pending.length === 0) return;
    const chunk = Buffer.concat(pending);
    pending = [];
    backlog = Buffer.concat([backlog, chunk]);
    if (backlog.length > CONSOLE_BACKLOG) backlog = backlog.subarray(backlog.length - CONSOLE_BACKLOG);
    try {
      if ((statSync(consoleLog, { throwIfNoEntry: false })?.size ?? 0) > CONSOLE_LOG_LIMIT)
        truncateSync(consoleLog, 0);
      appendFileSync(consoleLog, chunk);
    } catch {
      // the log is a convenience; the console stream goes on
    }
    if (subscribed) send({ type: "console", data: chunk.toString("base64") });
  };
  const serial = (b: number): void => {
    if (pending.length === 0) queueMicrotask(flushConsole);
    pending.push(Buffer.of(b));
  };

  let vm: Vm;
  try {
    vm = await buildMachine(readVmConfig(vmDir, values.switches ?? null), serial);
  } catch (e) {
    // A configuration or image problem is the VM's, reported on stderr (the service keeps it as the reason).
    const known = e instanceof VmConfigError || e instanceof VmBuildError || e instanceof SyntaxError;
    console.error(
      `viridian worker: cannot build the VM: ${known ? "" : "internal error: "}${(e as Error).message}`,
    );
    return 2;
  }
  const machine: PcMachine = vm.machine;
  // The service shows the guest's heartbeat in its VM list: every change goes to it as it happens.
  machine.ics.heartbeat.onHealthChange = (health) => send({ type: "heartbeat", health });
  const mediumReads = new MediumReads();
  /** The DVD medium the service reads for this worker (inserted while it ran), or null. */
  let remoteMedium: MediumInfo | null = null;
  const sendMediumRead = (rid: number, path: string, offset: number, length: number): boolean => {
    if (!conn || conn.destroyed) return false;
    send({ type: "medium-read", rid, path, offset, length });
    return true;
  };
  const setDvd = async (medium: MediumInfo | null): Promise<null> => {
    const storage = vm.storage;
    if (storage === null || !storage.hasDvdDrive) throw new WorkerError("not-available", NO_DVD_DRIVE);
    const disk = medium === null ? null : new RemoteMedium(medium, sendMediumRead, mediumReads);
    await storage.changeDvd(disk, medium?.path ?? "none");
    remoteMedium = medium;
    return null;
  };

  const diskIo = new DiskIoRequests();
  /** Disks the service serves for this worker (hot added while it ran), named in `hello` for a new service. */
  const remoteDisks: RemoteDiskInfo[] = [];
  const addDisk = (info: RemoteDiskInfo): { lun: number } => {
    const storage = vm.storage;
    if (storage === null)
      throw new WorkerError(
        "not-available",
        "this VM has no SCSI controller (a Multiboot kernel has no VMBus devices)",
      );
    let disk: RemoteDisk;
    try {
      disk = new RemoteDisk(
        info,
        (rid, path, op, offset, length, data) => {
          if (!conn || conn.destroyed) return false;
          send({ type: "disk-io", rid, path, op, offset, length, data });
          return true;
        },
        diskIo,
      );
    } catch (e) {
      throw new WorkerError("bad-request", (e as Error).message);
    }
    const lun = storage.addDisk(disk, `disk (${info.path}, served by the service)`);
    remoteDisks.push(info);
    return { lun };
  };
  const removeDisk = async (index: number): Promise<{ lun: number }> => {
    const storage = vm.storage;
    if (storage === null || !Number.isInteger(index) || index < 0)
      throw new WorkerError("not-found", `the VM has no disk ${index}`);
    const removed = await storage.removeDisk(index).catch((e: unknown) => {
      throw new WorkerError(
        /no disk/.test((e as Error).message) ? "not-found" : "unavailable",
        (e as Error).message,
      );
    });
    const served = removed.disk instanceof RemoteDisk ? removed.disk.info : null;
    if (served) remoteDisks.splice(remoteDisks.indexOf(served), 1);
    return { lun: removed.lun };
  };

  let running: Promise<PcStop> | null = null;
  let stopped: PcStop | null = null;
  const setState = (s: WorkerRunState, reason: string | null): void => {
    state = s;
    send({ type: "state", state: s, reason });
  };

  /**
   * Hyper-V's Stop-VM through the machine's one entry (PcMachine.requestShutdown, as `viridian run` uses it):
   * answered once the guest said it will shut down; a refusal or no answer is an error, and so is a guest that
   * cannot answer (no shutdown IC, or paused). What follows (waiting, turning off) is the service's decision.
   */
  const askShutdown = (): Promise<{ state: WorkerRunState }> => {
    if (!running) throw new WorkerError("invalid-state", "the guest is not running");
    if (machine.paused)
      throw new WorkerError(
        "invalid-state",
        "the guest is paused and cannot answer a shutdown request; resume it first",
      );
    return new Promise((resolve, reject) => {
      const asked = machine.requestShutdown("shutdown", (answer) => {
        if (answer === "accepted") resolve({ state });
        else
          reject(
            new WorkerError(
              "unavailable",
              answer === "refused"
                ? "the guest refused the shutdown request"
                : "the guest did not answer the shutdown request",
            ),
          );
      });
      if (asked) return;
      // Refused at once: the IC is not connected, or it is and a request is still waiting for its answer.
      if (machine.ics.shutdown.state === "ready")
        reject(new WorkerError("conflict", "a shutdown request is already waiting for the guest's answer"));
      else reject(new WorkerError("not-available", NO_SHUTDOWN_IC));
    });
  };

  const handle = async (req: WorkerRequest): Promise<unknown> => {
    switch (req.type) {
      case "hello":
        if (req.protocol !== PROTOCOL_VERSION)
          throw new WorkerError(
            "protocol",
            `protocol ${req.protocol} asked; this worker speaks ${PROTOCOL_VERSION}`,
          );
        return {
          protocol: PROTOCOL_VERSION,
          pid: process.pid,
          vmId,
          state,
          remoteMedium,
          remoteDisks,
          heartbeat: machine.ics.heartbeat.health,
        };
      case "run":
        if (running) return { state };
        running = machine.run();
        setState("running", null);
        void running.then((stop) => {
          stopped = stop;
          flushConsole();
          setState("stopped", `${stop.kind}: ${stop.message}`);
          finish(stop.kind === "poweroff" || stop.kind === "stopped" ? 0 : 1);
        });
        return { state };
      case "pause":
        machine.pause();
        setState("paused", null);
        return { state };
      case "resume":
        machine.resume();
        setState("running", null);
        return { state };
      case "shutdown":
        return askShutdown();
      case "turn-off":
        machine.requestStop("turned off");
        if (running) await running;
        return { state: "stopped" };
      case "inspect":
        return { text: machine.inspect() };
      case "metrics": {
        const cpu = process.cpuUsage();
        const m: WorkerMetrics = {
          instructionsRetired: machine.cpu.retired,
          cpuSeconds: (cpu.user + cpu.system) / 1e6,
          rssBytes: process.memoryUsage().rss,
          guestMemoryBytes: machine.memory.size,
          diskReadBytes: vm.storage?.controller.counters.readBytes ?? 0,
          diskWriteBytes: vm.storage?.controller.counters.writeBytes ?? 0,
          netRxBytes: (vm.network?.vsps ?? []).reduce((n, v) => n + v.counters.rxBytes, 0),
          netTxBytes: (vm.network?.vsps ?? []).reduce((n, v) => n + v.counters.txBytes, 0),
          heartbeat: machine.ics.heartbeat.health,
          kvp: Object.fromEntries(machine.ics.kvp.intrinsic),
        };
        return m;
      }
      case "set-dvd":
        return setDvd(req.medium);
      case "add-disk":
        return addDisk(req.disk);
      case "remove-disk":
        return removeDisk(req.index);
      case "console-input":
        machine.sendInput(Buffer.from(req.data, "base64"));
        return null;
      case "console-subscribe": {
        flushConsole();
        subscribed = true;
        const n = Math.max(0, Math.min(CONSOLE_BACKLOG, req.backlog));
        return { backlog: backlog.subarray(backlog.length - n).toString("base64") };
      }
    }
  };

  const server = createServer((s) => {
    // A newer connection is the supervisor now (a restarted service); the old one is dropped.
    conn?.destroy();
    mediumReads.failAll();
    diskIo.failAll();
    conn = s;
    subscribed = false;
    let buf = Buffer.alloc(0);
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > MAX_FRAME) {
        s.destroy();
        return;
      }
      let nl;
      while ((nl = buf.indexOf(0x0a)) >= 0) {
        const line = buf.subarray(0, nl).toString("utf8");
        buf = buf.subarray(nl + 1);
        let msg: SupervisorMessage;
        try {
          msg = JSON.parse(line) as SupervisorMessage;
        } catch {
          s.destroy();
          return;
        }
        if (msg.type === "disk-io-done") {
          if (conn === s)
            diskIo.answer(
              msg.rid,
              typeof msg.data === "string" ? Buffer.from(msg.data, "base64") : null,
              typeof msg.error === "string" ? msg.error : null,
            );
          continue;
        }
        if (msg.type === "medium-data") {
          if (conn === s)
            mediumReads.answer(
              msg.rid,
              typeof msg.data === "string" ? Buffer.from(msg.data, "base64") : null,
              msg.error,
            );
          continue;
        }
        const req: WorkerRequest = msg;
        handle(req).then(
          (result) => {
            if (conn === s) send({ id: req.id, ok: true, result: result ?? null });
          },
          (e: unknown) => {
            const code = e instanceof WorkerError ? e.code : "internal";
            if (conn === s) send({ id: req.id, ok: false, error: { code, message: (e as Error).message } });
          },
        );
      }
    });
    s.on("error", () => undefined);
    s.on("close", () => {
      if (conn === s) {
        conn = null;
        subscribed = false;
        mediumReads.failAll();
        diskIo.failAll();
      }
    });
  });

  let exitCode = 0;
  let finishing = false;
  const finish = (code: number): void => {
    if (finishing) return;
    finishing = true;
    exitCode = code;
    // Let the last notifications reach the service, then go (images flushed and closed first).
    setTimeout(async () => {
      await vm
        .close()
        .catch((e: unknown) => console.error(`viridian worker: closing the VM: ${(e as Error).message}`));
      conn?.end();
      server.close();
      rmSync(sockPath, { force: true });
      rmSync(pidPath, { force: true });
      process.exit(exitCode);
    }, 50);
  };
  // A service that stops never takes its workers along: they ignore SIGHUP/SIGINT from its terminal.
  process.on("SIGHUP", () => undefined);
  process.on("SIGINT", () => undefined);
  process.on("SIGTERM", () => machine.requestStop("stopped by SIGTERM"));

  rmSync(sockPath, { force: true });
  const oldMask = process.umask(0o177);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(sockPath, () => resolve());
  });
  process.umask(oldMask);
  writeFileSync(pidPath, `${process.pid}\n`, { mode: 0o600 });
  void stopped;
  return new Promise<number>(() => undefined);
}
