// Owns: `viridian serve`: parses its options, opens the data directory and every store, reattaches to
// surviving workers and applies automatic start actions, listens (UNIX socket, TCP/TLS), writes where it
// listens to `<data>/run/api.json` for clients, and on SIGTERM/SIGINT applies automatic stop actions and exits.
// Must not: be imported by the CLI (bin/viridian.js dispatches `serve` here directly; the CLI reaches the
// service over HTTP only).
// Spec: README.md "The service"; docs/architecture.md "The VM service".

import { readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { AuditLog } from "./audit-log.js";
import { AuthStore } from "./auth-store.js";
import { Authorizer } from "./authorizer.js";
import { createApp } from "./app.js";
import { DataDir, defaultDataDir } from "./data-dir.js";
import { writeFileDurable } from "./durable-file.js";
import { EventBus } from "./events.js";
import { Jobs } from "./jobs.js";
import { listen, type Listening } from "./listen.js";
import { ServiceConfigStore } from "./service-config.js";
import { SwitchService } from "./switches.js";
import { Supervisor } from "./supervisor.js";
import { VmService } from "./vm-service.js";
import { LOCAL_PRINCIPAL } from "./auth-store.js";

export const DEFAULT_TCP = "127.0.0.1:7480";

const USAGE = `usage: viridian serve [--data-dir DIR] [--listen HOST:PORT | --no-tcp] [--tls-cert FILE --tls-key FILE]

Runs the VM service. The data directory (default $XDG_DATA_HOME/viridian) holds the VMs, the authorization
store and the audit log; the API listens on <data-dir>/run/api.sock (this user only) and on TCP
${DEFAULT_TCP} (bearer tokens; TLS with --tls-cert and --tls-key). SIGTERM or SIGINT stops it after each
VM's automatic stop action. Exit status: 0 stopped, 1 failed to start, 2 usage.`;

function version(): string {
  return (
    JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string }
  ).version;
}

/** Removes temporary files a crash mid-write may have left (durable-file.ts names them `.name.xxxx.tmp`). */
function sweepTemporaries(dirs: DataDir): void {
  const dirsToSweep = [dirs.root, ...safeList(dirs.vmsDir).map((n) => join(dirs.vmsDir, n))];
  for (const d of dirsToSweep)
    for (const n of safeList(d))
      if (n.startsWith(".") && n.endsWith(".tmp")) rmSync(join(d, n), { force: true });
}

function safeList(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

export async function serve(argv: string[]): Promise<number> {
  let opts;
  try {
    opts = parseArgs({
      args: argv,
      options: {
        "data-dir": { type: "string" },
        listen: { type: "string" },
        "no-tcp": { type: "boolean" },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }).values;
  } catch (e) {
    console.error(`viridian serve: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  if ((opts["tls-cert"] === undefined) !== (opts["tls-key"] === undefined)) {
    console.error("viridian serve: --tls-cert and --tls-key go together");
    return 2;
  }
  const dirs = new DataDir(opts["data-dir"] ?? defaultDataDir());
  let listening: Listening;
  let vms: VmService;
  let audit: AuditLog;
  let switches: SwitchService;
  try {
    dirs.create();
    sweepTemporaries(dirs);
    const config = new ServiceConfigStore(dirs.serviceConfig);
    const auth = new AuthStore(dirs.authStore);
    audit = new AuditLog(dirs.auditLog);
    const authz = new Authorizer(auth, audit);
    const events = new EventBus();
    audit.onEntry((e) => events.emit("audit", e, "host"));
    const jobs = new Jobs(config.get().jobRetentionSeconds * 1000);
    jobs.onChange((job, scope) => events.emit("job", job, scope));
    const { VmStore } = await import("./vm-store.js");
    const store = new VmStore(dirs);
    const supervisor = new Supervisor(dirs);
    // The switch inventory asks the VM service which VMs use a switch; the VM service asks it which exist.
    switches = new SwitchService(dirs, (name) => vms.switchUsers(name));
    vms = new VmService(
      dirs,
      store,
      auth,
      supervisor,
      jobs,
      events,
      () => config.get(),
      (name) => switches.has(name),
    );
    const localSockets = new WeakSet<object>();
    const app = await createApp({
      auth,
      authz,
      audit,
      jobs,
      events,
      vms,
      switches,
      config,
      isLocal: (s) => localSockets.has(s as object),
      version: version(),
    });
    // Switches first: VMs started by their automatic start action connect to them.
    await switches.init();
    switches.watch();
    await vms.init(LOCAL_PRINCIPAL);
    listening = await listen(
      app,
      {
        socketPath: dirs.apiSocket,
        tcp: opts["no-tcp"] ? null : (opts.listen ?? DEFAULT_TCP),
        tlsCert: opts["tls-cert"],
        tlsKey: opts["tls-key"],
      },
      localSockets,
    );
  } catch (e) {
    console.error(`viridian serve: ${(e as Error).message}`);
    return 1;
  }
  writeFileDurable(
    join(dirs.runDir, "api.json"),
    JSON.stringify({
      pid: process.pid,
      socket: listening.socketPath,
      tcp: listening.tcp,
      tls: listening.tls,
    }) + "\n",
  );
  console.error(
    `viridian serve: listening on ${listening.socketPath}${listening.tcp ? ` and ${listening.tls ? "https" : "http"}://${listening.tcp}` : ""} (data ${dirs.root})`,
  );
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (sig: string) => async () => {
      if (stopping) return;
      stopping = true;
      console.error(`viridian serve: ${sig}: applying automatic stop actions`);
      switches.stopWatching();
      await vms.shutdown();
      await listening.close();
      audit.close();
      rmSync(join(dirs.runDir, "api.json"), { force: true });
      resolve(0);
    };
    process.on("SIGTERM", stop("SIGTERM"));
    process.on("SIGINT", stop("SIGINT"));
  });
}
