// Owns: the CLI's connection to the VM service: finding it (a URL with a bearer token, or the UNIX socket of a
// data directory), sending requests built from the route table (src/api/routes.ts) only, decoding the stable
// error bodies, waiting for jobs, and opening WebSockets (console, events).
// Must not: import the service's internals (the dependency rules forbid it), or send a request to a path the
// route table does not name.
// Spec: docs/architecture.md "The management API"; README.md "Exit statuses".

import { appendFileSync, readFileSync } from "node:fs";
import { request as httpRequest, type RequestOptions } from "node:http";
import { request as httpsRequest } from "node:https";
import WebSocket from "ws";
import { isErrorCode, type ErrorCode } from "../api/errors.js";
import { routeById, routePath } from "../api/routes.js";
import type { Job } from "../api/schemas.js";
import { apiSocketPath, defaultDataDir } from "../host/data-home.js";

/** Exit statuses of the API verbs (README.md "Exit statuses"). */
export const EXIT = {
  ok: 0,
  failed: 1, // the service refused or the job failed
  usage: 2,
  unreachable: 3, // no service answers
  denied: 4, // 401 or 403
  notFound: 5,
} as const;

export class CliApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | "unreachable",
    message: string,
  ) {
    super(message);
  }
  get exitStatus(): number {
    if (this.code === "unreachable") return EXIT.unreachable;
    if (this.status === 401 || this.status === 403) return EXIT.denied;
    if (this.status === 404) return EXIT.notFound;
    return EXIT.failed;
  }
}

export interface ConnectionOptions {
  url?: string | undefined;
  token?: string | undefined;
  socket?: string | undefined;
  dataDir?: string | undefined;
  ca?: string | undefined;
}

export interface ApiResponse<T> {
  status: number;
  body: T;
  headers: Record<string, string | string[] | undefined>;
}

export class ApiClient {
  private readonly base: URL | null;
  private readonly socketPath: string | null;
  private readonly token: string | undefined;
  private readonly ca: Buffer | undefined;

  constructor(o: ConnectionOptions, env: NodeJS.ProcessEnv = process.env) {
    const url = o.url ?? env.VIRIDIAN_URL;
    this.token = o.token ?? env.VIRIDIAN_TOKEN;
    const ca = o.ca ?? env.VIRIDIAN_CA;
    this.ca = ca ? readFileSync(ca) : undefined;
    if (url) {
      this.base = new URL(url);
      this.socketPath = null;
    } else {
      this.base = null;
      this.socketPath =
        o.socket ??
        env.VIRIDIAN_SOCKET ??
        apiSocketPath(o.dataDir ?? env.VIRIDIAN_DATA_DIR ?? defaultDataDir(env));
    }
  }

  get where(): string {
    return this.base ? this.base.origin : this.socketPath!;
  }

  /** Calls a route of the route table; throws CliApiError on any error status. */
  async call<T>(
    routeId: string,
    params: Record<string, string | number> = {},
    opts: { body?: unknown; query?: Record<string, string>; ifMatch?: string } = {},
  ): Promise<ApiResponse<T>> {
    const route = routeById(routeId);
    let path = routePath(routeId, params);
    if (opts.query && Object.keys(opts.query).length > 0)
      path += `?${new URLSearchParams(opts.query).toString()}`;
    const trace = process.env.VIRIDIAN_CLI_TRACE;
    if (trace) appendFileSync(trace, `${route.method} ${path}\n`);
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (opts.ifMatch) headers["if-match"] = opts.ifMatch;
    let payload: Buffer | undefined;
    if (opts.body !== undefined) {
      payload = Buffer.from(JSON.stringify(opts.body), "utf8");
      headers["content-type"] = "application/json";
      headers["content-length"] = String(payload.length);
    }
    const res = await this.send(route.method, path, headers, payload);
    const text = res.body.toString("utf8");
    let body: unknown = text;
    if ((res.headers["content-type"] ?? "").toString().includes("json") && text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        // leave it as text
      }
    }
    if (res.status >= 400) {
      const err = (body as { error?: { code?: unknown; message?: unknown } }).error;
      const code = isErrorCode(err?.code) ? err.code : "internal";
      throw new CliApiError(
        res.status,
        code,
        typeof err?.message === "string" ? err.message : `HTTP ${res.status}`,
      );
    }
    return { status: res.status, body: body as T, headers: res.headers };
  }

  private send(
    method: string,
    path: string,
    headers: Record<string, string>,
    payload: Buffer | undefined,
  ): Promise<{ status: number; body: Buffer; headers: Record<string, string | string[] | undefined> }> {
    const options: RequestOptions & { ca?: Buffer } = { method, path, headers };
    let req;
    if (this.base) {
      options.hostname = this.base.hostname.replace(/^\[|\]$/g, "");
      options.port = this.base.port;
      if (this.ca) options.ca = this.ca;
      req = (this.base.protocol === "https:" ? httpsRequest : httpRequest)(options);
    } else {
      options.socketPath = this.socketPath!;
      req = httpRequest(options);
    }
    return new Promise((resolve, reject) => {
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }),
        );
        res.on("error", reject);
      });
      req.on("error", (e: NodeJS.ErrnoException) =>
        reject(
          new CliApiError(
            0,
            "unreachable",
            `cannot reach the VM service at ${this.where}: ${e.code ?? e.message}`,
          ),
        ),
      );
      req.end(payload);
    });
  }

  /** Polls a job until it finishes; `onProgress` sees every state it reports. */
  async waitJob(id: string, onProgress?: (job: Job) => void): Promise<Job> {
    for (;;) {
      const { body } = await this.call<Job>("waitJob", { id }, { query: { timeout: "1" } });
      onProgress?.(body);
      if (body.state !== "running" && body.state !== "queued") return body;
    }
  }

  /** Opens a WebSocket route (console, events). */
  websocket(routeId: string, params: Record<string, string> = {}): WebSocket {
    const path = routePath(routeId, params);
    const trace = process.env.VIRIDIAN_CLI_TRACE;
    if (trace) appendFileSync(trace, `GET ${path}\n`);
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (this.base) {
      const scheme = this.base.protocol === "https:" ? "wss:" : "ws:";
      return new WebSocket(`${scheme}//${this.base.host}${path}`, {
        headers,
        ...(this.ca ? { ca: this.ca } : {}),
      });
    }
    return new WebSocket(`ws+unix://${this.socketPath}:${path}`, { headers });
  }
}
