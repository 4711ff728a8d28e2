// Owns: running a real `viridian serve` for tests (its own data directory under a temporary root, TCP on an
// ephemeral loopback port) and talking to it over real HTTP: the UNIX socket (the service's own user) or TCP
// with a bearer token; WebSockets; SIGKILL and restart; the CLI as a child process.
// Must not: import the service's internals (the tests see what a client sees) or leave a process running
// (every service and worker a test started is killed in `close()`).
// Spec: docs/architecture.md "The management API".

import { spawn, type ChildProcess } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  mkdirSync,
} from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { routePath } from "../../src/api/routes.js";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const BIN = join(REPO, "bin/viridian.js");

export interface Reply {
  status: number;
  body: unknown;
  text: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface CallOptions {
  body?: unknown;
  /** A raw body (sent as is, with content-type application/json unless `contentType`). */
  raw?: string | Buffer;
  contentType?: string;
  token?: string;
  ifMatch?: string;
  via?: "unix" | "tcp";
  headers?: Record<string, string>;
}

export class TestService {
  readonly root: string;
  readonly dataDir: string;
  child: ChildProcess | null = null;
  tcp = "";
  private agentUnix = new Agent({ keepAlive: true, maxSockets: 16 });
  private agentTcp = new Agent({ keepAlive: true, maxSockets: 16 });
  log = "";

  constructor(
    name: string,
    private readonly serviceConfig: Record<string, unknown> = {},
  ) {
    this.root = mkdtempSync(join(tmpdir(), `viridian-${name}-`));
    this.dataDir = join(this.root, "data");
    mkdirSync(this.dataDir, { mode: 0o700 });
    if (Object.keys(serviceConfig).length > 0)
      writeFileSync(join(this.dataDir, "service.json"), JSON.stringify(this.serviceConfig));
  }

  get socket(): string {
    return join(this.dataDir, "run", "api.sock");
  }

  /** Starts the service and waits until it answers (on `listen`: an earlier run's `tcp` to keep its address). */
  async start(listen = "127.0.0.1:0"): Promise<void> {
    const apiJson = join(this.dataDir, "run", "api.json");
    rmSync(apiJson, { force: true });
    const child = spawn(process.execPath, [BIN, "serve", "--data-dir", this.dataDir, "--listen", listen], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    child.stdout!.on("data", (d: Buffer) => (this.log += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (this.log += d.toString()));
    const deadline = Date.now() + 120_000;
    while (!existsSync(apiJson)) {
      if (child.exitCode !== null) throw new Error(`the service exited (${child.exitCode}): ${this.log}`);
      if (Date.now() > deadline) throw new Error(`the service did not start: ${this.log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    this.tcp = (JSON.parse(readFileSync(apiJson, "utf8")) as { tcp: string }).tcp;
    this.agentUnix = new Agent({ keepAlive: true, maxSockets: 16 });
    this.agentTcp = new Agent({ keepAlive: true, maxSockets: 16 });
  }

  /** SIGKILL: nothing runs after it (no automatic stop action). */
  async kill(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once("exit", r));
    c.kill("SIGKILL");
    await gone;
    this.agentUnix.destroy();
    this.agentTcp.destroy();
  }

  /** SIGTERM: automatic stop actions, then exit. */
  async stop(): Promise<number | null> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return c?.exitCode ?? null;
    const gone = new Promise<number | null>((r) => c.once("exit", (code) => r(code)));
    c.kill("SIGTERM");
    const code = await gone;
    this.agentUnix.destroy();
    this.agentTcp.destroy();
    return code;
  }

  /** Pids of workers the data directory knows about. */
  workerPids(): number[] {
    const vms = join(this.dataDir, "vms");
    if (!existsSync(vms)) return [];
    const out: number[] = [];
    for (const id of readdirSync(vms)) {
      try {
        out.push(Number(readFileSync(join(vms, id, "worker.pid"), "utf8").trim()));
      } catch {
        // no worker
      }
    }
    return out;
  }

  /** Pids of the service's switch processes (each writes one in its directory under `<data>/run/switches`). */
  switchPids(): number[] {
    const dir = join(this.dataDir, "run", "switches");
    if (!existsSync(dir)) return [];
    const out: number[] = [];
    for (const name of readdirSync(dir)) {
      try {
        out.push(Number(readFileSync(join(dir, name, "switch.pid"), "utf8").trim()));
      } catch {
        // not running
      }
    }
    return out;
  }

  /** Kills the service, every worker and every switch process, and removes the temporary root. */
  async close(): Promise<void> {
    await this.kill();
    for (const pid of [...this.workerPids(), ...this.switchPids()]) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    rmSync(this.root, { recursive: true, force: true });
  }

  call(method: string, path: string, o: CallOptions = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    if (o.ifMatch) headers["if-match"] = o.ifMatch;
    let payload: Buffer | undefined;
    if (o.raw !== undefined) payload = Buffer.isBuffer(o.raw) ? o.raw : Buffer.from(o.raw);
    else if (o.body !== undefined) payload = Buffer.from(JSON.stringify(o.body));
    if (payload !== undefined) {
      headers["content-type"] ??= o.contentType ?? "application/json";
      headers["content-length"] = String(payload.length);
    }
    const via = o.via ?? (o.token ? "tcp" : "unix");
    const [host, port] = this.tcp.split(":");
    const opts =
      via === "unix"
        ? { socketPath: this.socket, path, method, headers, agent: this.agentUnix }
        : { host, port: Number(port), path, method, headers, agent: this.agentTcp };
    return new Promise((resolveReply, reject) => {
      const req = request(opts, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // text
          }
          resolveReply({ status: res.statusCode ?? 0, body, text, headers: res.headers });
        });
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(payload);
    });
  }

  /** Calls and insists on a 2xx status. */
  async ok(method: string, path: string, o: CallOptions = {}): Promise<Reply> {
    const r = await this.call(method, path, o);
    if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path}: ${r.status} ${r.text}`);
    return r;
  }

  /** Waits for a job (202 answer body) to finish and returns it. */
  async job(
    accepted: Reply,
    o: CallOptions = {},
  ): Promise<{ state: string; error: { code: string; message: string } | null; result: unknown }> {
    const id = (accepted.body as { job: { id: string } }).job.id;
    for (;;) {
      const r = await this.ok("GET", `/v1/jobs/${id}/wait?timeout=5`, { ...o, body: undefined });
      const j = r.body as { state: string; error: { code: string; message: string } | null; result: unknown };
      if (j.state !== "running" && j.state !== "queued") return j;
    }
  }

  /** A user with a token and the given role on the given scope (a custom role when `ops` is a list). */
  async principal(name: string, role: string | string[], scope: string): Promise<string> {
    await this.ok("POST", "/v1/principals", { body: { name, kind: "user" } });
    let roleName = typeof role === "string" ? role : `role-${name}`;
    if (typeof role !== "string") {
      await this.ok("POST", "/v1/roles", { body: { name: roleName, operations: role } });
    }
    await this.ok("POST", "/v1/assignments", { body: { principal: name, role: roleName, scope } });
    const t = await this.ok("POST", "/v1/tokens", { body: { user: name } });
    roleName = "";
    return (t.body as { secret: string }).secret;
  }

  websocket(path: string, o: { token?: string; via?: "unix" | "tcp" } = {}): WebSocket {
    const headers: Record<string, string> = {};
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    const via = o.via ?? (o.token ? "tcp" : "unix");
    return via === "unix"
      ? new WebSocket(`ws+unix://${this.socket}:${path}`, { headers })
      : new WebSocket(`ws://${this.tcp}${path}`, { headers });
  }

  /** Runs the CLI against this service (its UNIX socket unless the args say otherwise). */
  cli(
    args: string[],
    o: { input?: string; env?: Record<string, string> } = {},
  ): Promise<{ status: number | null; stdout: string; stderr: string }> {
    return new Promise((resolveRun) => {
      const c = spawn(process.execPath, [BIN, ...args], {
        env: { ...process.env, VIRIDIAN_DATA_DIR: this.dataDir, ...(o.env ?? {}) },
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      c.on("exit", (status) => resolveRun({ status, stdout, stderr }));
      c.stdin.end(o.input ?? "");
    });
  }
}

/** Opens a WebSocket and resolves once it is open (or rejects with the HTTP status it got instead). */
export function opened(ws: WebSocket): Promise<WebSocket> {
  return new Promise((resolveWs, reject) => {
    ws.once("open", () => resolveWs(ws));
    ws.once("unexpected-response", (_req, res) =>
      reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })),
    );
    ws.once("error", reject);
  });
}

/** A console WebSocket whose output is collected; every wait ends on output or the socket's close. */
export class Console {
  out = "";
  closed = false;
  private waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (d: Buffer, binary: boolean) => {
      if (!binary) return;
      this.out += d.toString("utf8");
      this.wake();
    });
    ws.on("close", () => {
      this.closed = true;
      this.wake();
    });
  }

  static async open(svc: TestService, vm: string): Promise<Console> {
    return new Console(await opened(svc.websocket(routePath("vmConsole", { vm }))));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  async waitFor(text: string | RegExp, from = 0): Promise<number> {
    for (;;) {
      const rest = this.out.slice(from);
      const m = typeof text === "string" ? rest.indexOf(text) : rest.search(text);
      if (m >= 0) return from + m;
      if (this.closed) throw new Error(`the console closed before ${String(text)}: ${this.out.slice(-500)}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  type(line: string): void {
    this.ws.send(Buffer.from(`${line}\n`), { binary: true });
  }

  close(): void {
    this.ws.close();
  }
}
