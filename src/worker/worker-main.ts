// Owns: `viridian worker`, the process that runs one VM for the service: reads the VM's configuration file,
// builds the machine, listens on the VM's socket (`<vm dir>/worker.sock`, this user only) and writes its pid
// file, then obeys the protocol of protocol.ts: run, pause, resume, turn off, console streams, inspect,
// metrics. It keeps running when the service goes away and takes the next connection as its new supervisor.
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
  PROTOCOL_VERSION,
  type WorkerMessage,
  type WorkerMetrics,
  type WorkerRequest,
  type WorkerRunState,
} from "./protocol.js";
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

const NO_STORAGE_VSP = "DVD media changes need the storage VSP on VMBus, which this build does not have yet";
const NO_SHUTDOWN_IC =
  "graceful shutdown needs the shutdown integration service on VMBus, which this build does not have yet; turn the VM off instead";

/**
 * The VM's machine description: the `machine` section of its configuration file, which is a `VmConfig` field
 * for field. The file is untrusted here too (the service validated it, but the worker reads it on its own),
 * so it is checked again by `checkVmConfig`.
 */
export function readVmConfig(vmDir: string): VmConfig {
  const doc = JSON.parse(readFileSync(join(vmDir, "config.json"), "utf8")) as { machine?: unknown };
  return checkVmConfig(doc.machine);
}

/** Builds the VM its configuration describes, through the one builder every VM goes through. */
function buildMachine(config: VmConfig, serial: (b: number) => void): Promise<Vm> {
  return buildVm(config, { serial });
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
    options: { "vm-dir": { type: "string" }, "probe-open": { type: "string" } },
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
    vm = await buildMachine(readVmConfig(vmDir), serial);
  } catch (e) {
    // A configuration or image problem is the VM's, reported on stderr (the service keeps it as the reason).
    const known = e instanceof VmConfigError || e instanceof VmBuildError || e instanceof SyntaxError;
    console.error(
      `viridian worker: cannot build the VM: ${known ? "" : "internal error: "}${(e as Error).message}`,
    );
    return 2;
  }
  const machine: PcMachine = vm.machine;

  let running: Promise<PcStop> | null = null;
  let stopped: PcStop | null = null;
  const setState = (s: WorkerRunState, reason: string | null): void => {
    state = s;
    send({ type: "state", state: s, reason });
  };

  const handle = async (req: WorkerRequest): Promise<unknown> => {
    switch (req.type) {
      case "hello":
        if (req.protocol !== PROTOCOL_VERSION)
          throw new WorkerError(
            "protocol",
            `protocol ${req.protocol} asked; this worker speaks ${PROTOCOL_VERSION}`,
          );
        return { protocol: PROTOCOL_VERSION, pid: process.pid, vmId, state };
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
        throw new WorkerError("not-available", NO_SHUTDOWN_IC);
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
        };
        return m;
      }
      case "set-dvd":
        throw new WorkerError("not-available", NO_STORAGE_VSP);
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
        let req: WorkerRequest;
        try {
          req = JSON.parse(line) as WorkerRequest;
        } catch {
          s.destroy();
          return;
        }
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
