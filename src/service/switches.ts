// Owns: the virtual switches the service manages: their inventory (`<data>/switches.json`, written atomically
// and durably), one switch process each (`viridian switch serve NAME --keep`, detached, its sockets under
// `<data>/run/switches/NAME/`, its log in `<data>/logs/`), starting the ones that are not running when the
// service starts (a switch process outlives a service restart: it is found through its control socket), the
// API view of each, and deletion (refused while a running VM is connected).
// Must not: forward frames (the switch process does), know VM configurations (the VM service tells it which
// VMs use a switch), or start a switch whose sockets would not fit a UNIX socket path.
// Spec: docs/architecture.md "Switches and NICs in the service"; src/host/switch-daemon.ts (control protocol).

import { spawn } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { ApiError } from "../api/errors.js";
import { SwitchCreate, SwitchKind, type Switch } from "../api/schemas.js";
import { controlRequest } from "../host/switch-client.js";
import { controlSocketOf, portsSocketOf, type SwitchInfo } from "../host/switch-daemon.js";
import { MAX_SOCKET_PATH, type DataDir } from "./data-dir.js";
import { writeFileDurable } from "./durable-file.js";

const BIN = fileURLToPath(new URL("../../../bin/viridian.js", import.meta.url));
/** How long a switch process may take to answer on its control socket after it was started. */
const START_TIMEOUT_MS = 60_000;
/** How long a deleted switch's process may take to remove its sockets. */
const STOP_TIMEOUT_MS = 10_000;
/** How often the watchdog looks for switch processes that went away. */
const WATCH_INTERVAL_MS = 2_000;

const SwitchEntry = Type.Object(
  {
    name: SwitchCreate.properties.name,
    kind: SwitchKind,
    hostForwards: Type.Array(Type.String()),
    tap: Type.Union([Type.String(), Type.Null()]),
    created: Type.String(),
  },
  { additionalProperties: false },
);
type SwitchEntry = (typeof SwitchEntry)["static"];

const SwitchesFile = Type.Object(
  { schemaVersion: Type.Literal(1), switches: Type.Array(SwitchEntry) },
  { additionalProperties: false },
);

/** A VM with a NIC on a switch, as the VM service reports it. */
export interface SwitchUser {
  id: string;
  name: string;
  running: boolean;
}

function tail(path: string): string {
  try {
    return readFileSync(path, "utf8").trim().split("\n").slice(-3).join(" | ");
  } catch {
    return "";
  }
}

/**
 * The ranges the schema's pattern cannot say: an IPv4 host address and ports 1-65535 (the switch process
 * parses the forward again when it starts; this answers a plain 400 instead of a failed start).
 */
function checkForward(text: string): void {
  const m = /^(tcp|udp):([0-9.]+):([0-9]+)-:([0-9]+)$/.exec(text);
  const octets = m?.[2]!.split(".").map(Number) ?? [];
  const ok =
    m !== null &&
    octets.length === 4 &&
    octets.every((o) => o <= 255) &&
    [m[3], m[4]].every((p) => Number(p) >= 1 && Number(p) <= 65535);
  if (!ok)
    throw new ApiError(
      "bad-request",
      `hostForwards: '${text}' is not tcp|udp:IPV4:HOSTPORT-:GUESTPORT with ports 1-65535`,
    );
}

export class SwitchService {
  private entries: SwitchEntry[] = [];
  /** Why switches.json could not be read: then the inventory is read-only (never overwritten). */
  private loadError: string | null = null;
  /** Why a switch is not running, when the service knows (its start failed). */
  private reasons = new Map<string, string>();
  /** Names being created or deleted right now (a second request for the same name is a conflict). */
  private busy = new Set<string>();
  /** The watchdog's timer, and per switch the earliest time of its next restart attempt and the wait after it. */
  private watchdog: NodeJS.Timeout | null = null;
  private retry = new Map<string, { at: number; wait: number }>();
  private checking = false;

  constructor(
    private readonly dirs: DataDir,
    /** The VMs whose configuration has a NIC on a switch (the VM service answers). */
    private readonly users: (name: string) => SwitchUser[],
  ) {
    this.load();
  }

  private load(): void {
    let text: string;
    try {
      text = readFileSync(this.dirs.switchesFile, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      this.loadError = `cannot read switches.json: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
      return;
    }
    try {
      const doc: unknown = JSON.parse(text);
      if (!Value.Check(SwitchesFile, doc)) {
        const first = Value.Errors(SwitchesFile, doc).First();
        throw new Error(`${first?.path || "/"}: ${first?.message ?? "does not match the schema"}`);
      }
      this.entries = doc.switches;
    } catch (e) {
      this.loadError = `switches.json is invalid (left as it is): ${(e as Error).message}`;
    }
  }

  private save(): void {
    writeFileDurable(
      this.dirs.switchesFile,
      JSON.stringify({ schemaVersion: 1, switches: this.entries }, null, 2) + "\n",
    );
  }

  private writable(): void {
    if (this.loadError) throw new ApiError("invalid-configuration", this.loadError);
  }

  /** Whether the inventory holds a switch of this name. */
  has(name: string): boolean {
    return this.entries.some((e) => e.name === name);
  }

  /** The ports socket VMs connect their NICs to. */
  portsSocket(name: string): string {
    return portsSocketOf(this.dirs.switchDir(name));
  }

  private async info(name: string): Promise<SwitchInfo | null> {
    try {
      return await controlRequest<SwitchInfo>(name, { op: "info" }, this.dirs.switchDir(name));
    } catch {
      return null;
    }
  }

  /** Starts the switch's process unless it already answers; resolves once it does. */
  private async ensureRunning(e: SwitchEntry): Promise<void> {
    if (await this.info(e.name)) {
      this.reasons.delete(e.name);
      return;
    }
    const args = [BIN, "switch", "serve", e.name, "--keep"];
    if (e.kind === "nat") args.push("--nat");
    for (const f of e.hostForwards) args.push(`--hostfwd=${f}`);
    if (e.tap !== null) args.push("--tap", e.tap);
    const logPath = this.dirs.switchLog(e.name);
    const log = openSync(logPath, "a", 0o600);
    let exited: string | null = null;
    try {
      const child = spawn(process.execPath, args, {
        detached: true,
        stdio: ["ignore", log, log],
        env: { ...process.env, NODE_OPTIONS: "", VIRIDIAN_RUNTIME_DIR: this.dirs.switchRuntime },
      });
      child.once("exit", (code, signal) => (exited = signal ?? `status ${code}`));
      child.unref();
    } finally {
      closeSync(log);
    }
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (await this.info(e.name)) {
        this.reasons.delete(e.name);
        return;
      }
      if (exited !== null || Date.now() > deadline) {
        const why = `switch process ${exited !== null ? `exited (${exited})` : "did not answer within 60 s"}: ${tail(logPath)}`;
        this.reasons.set(e.name, why);
        throw new ApiError("unavailable", `switch '${e.name}' did not start: ${why}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Starts every switch of the inventory that is not running (after a host restart); failures are kept as reasons. */
  async init(): Promise<void> {
    if (this.loadError) console.error(`viridian serve: ${this.loadError}`);
    // A switch started for a create that never reached switches.json (the service was killed in between) is
    // not the inventory's: it is stopped, so the name can be created again.
    if (!this.loadError) {
      let running: string[] = [];
      try {
        running = readdirSync(join(this.dirs.switchRuntime, "switches"));
      } catch {
        // none yet
      }
      for (const name of running.filter((n) => !this.has(n)))
        await this.stopProcess(name).catch(() => undefined);
    }
    await Promise.all(
      this.entries.map((e) =>
        this.ensureRunning(e).catch((err: unknown) =>
          console.error(`viridian serve: ${(err as Error).message}`),
        ),
      ),
    );
  }

  /**
   * Restarts a switch whose process went away (killed, crashed) while the service runs, checking every
   * WATCH_INTERVAL_MS; a switch that fails to start is retried after 1 s, then twice as long each time up to
   * a minute, with the reason on the service's stderr and in the switch's view. The VMs' NICs reconnect by
   * themselves (src/worker/vm-network.ts).
   */
  watch(): void {
    if (this.watchdog) return;
    this.watchdog = setInterval(() => void this.checkAll(), WATCH_INTERVAL_MS);
    this.watchdog.unref();
  }

  stopWatching(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
  }

  private async checkAll(): Promise<void> {
    if (this.checking || this.loadError) return;
    this.checking = true;
    try {
      for (const e of [...this.entries]) {
        if (this.busy.has(e.name) || !this.watchdog) continue;
        if (await this.info(e.name)) {
          this.retry.delete(e.name);
          continue;
        }
        const r = this.retry.get(e.name) ?? { at: 0, wait: 1000 };
        if (Date.now() < r.at || this.busy.has(e.name) || !this.has(e.name)) continue;
        this.busy.add(e.name);
        try {
          await this.ensureRunning(e);
          this.retry.delete(e.name);
          console.error(`viridian serve: switch '${e.name}': its process had gone; restarted`);
        } catch (err) {
          this.retry.set(e.name, { at: Date.now() + r.wait, wait: Math.min(r.wait * 2, 60_000) });
          console.error(`viridian serve: ${(err as Error).message}; next attempt in ${r.wait / 1000} s`);
        } finally {
          this.busy.delete(e.name);
        }
      }
    } finally {
      this.checking = false;
    }
  }

  async view(name: string): Promise<Switch> {
    const e = this.entries.find((x) => x.name === name);
    if (!e) throw new ApiError("not-found", `no switch '${name}'`);
    const info = await this.info(name);
    return {
      name: e.name,
      kind: e.kind,
      hostForwards: e.hostForwards,
      tap: e.tap,
      state: info ? "running" : "stopped",
      reason: info ? null : (this.reasons.get(name) ?? "its process is not running"),
      pid: info?.pid ?? null,
      ports: (info?.ports ?? []).map((p) => ({
        id: p.id,
        name: p.name,
        kind: p.kind,
        rxFrames: p.stats.rxFrames,
        txFrames: p.stats.txFrames,
        rxDropped: p.stats.rxDropped,
        txDropped: p.stats.txDropped,
      })),
      vms: this.users(name),
      created: e.created,
    };
  }

  async list(): Promise<Switch[]> {
    return Promise.all(this.entries.map((e) => this.view(e.name)));
  }

  async create(body: SwitchCreate): Promise<Switch> {
    this.writable();
    const name = body.name;
    if (this.has(name) || this.busy.has(name))
      throw new ApiError("conflict", `a switch named '${name}' exists`);
    const kind = body.kind ?? "private";
    const forwards = body.hostForwards ?? [];
    if (forwards.length > 0 && kind !== "nat")
      throw new ApiError("bad-request", "hostForwards need a NAT switch (kind: nat)");
    for (const f of forwards) checkForward(f);
    const control = controlSocketOf(this.dirs.switchDir(name));
    if (Buffer.byteLength(control) > MAX_SOCKET_PATH)
      throw new ApiError(
        "bad-request",
        `the switch's socket path ${control} is longer than ${MAX_SOCKET_PATH} bytes: use a shorter name or data directory`,
      );
    if (await this.info(name))
      throw new ApiError("conflict", `a switch process named '${name}' already runs in this data directory`);
    const entry: SwitchEntry = {
      name,
      kind,
      hostForwards: forwards,
      tap: body.tap ?? null,
      created: new Date().toISOString(),
    };
    this.busy.add(name);
    try {
      await this.ensureRunning(entry);
      this.entries.push(entry);
      this.save();
    } catch (err) {
      // Half-started: make sure no process is left behind.
      await this.stopProcess(name).catch(() => undefined);
      // A switch that does not come up meets the host's state (a TAP device that is absent or busy, a
      // forwarded port in use): a conflict the request can fix, not a service failure.
      if (err instanceof ApiError && err.code === "unavailable") throw new ApiError("conflict", err.message);
      throw err;
    } finally {
      this.busy.delete(name);
    }
    return this.view(name);
  }

  async delete(name: string): Promise<void> {
    this.writable();
    if (!this.has(name)) throw new ApiError("not-found", `no switch '${name}'`);
    if (this.busy.has(name)) throw new ApiError("conflict", `switch '${name}' is being changed`);
    const running = this.users(name).filter((u) => u.running);
    if (running.length > 0)
      throw new ApiError(
        "in-use",
        `switch '${name}' is in use by running VM${running.length > 1 ? "s" : ""} ${running.map((u) => u.name).join(", ")}: stop them or remove their NICs first`,
      );
    this.busy.add(name);
    try {
      await this.stopProcess(name);
      this.entries = this.entries.filter((e) => e.name !== name);
      this.reasons.delete(name);
      this.save();
    } finally {
      this.busy.delete(name);
    }
  }

  /** Asks the switch process to stop and waits until its control socket is gone. */
  private async stopProcess(name: string): Promise<void> {
    const dir = this.dirs.switchDir(name);
    await controlRequest(name, { op: "delete" }, dir).catch(() => undefined);
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (await this.info(name)) {
      if (Date.now() > deadline) throw new ApiError("unavailable", `switch '${name}' did not stop`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
