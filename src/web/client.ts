// Owns: the browser's side of the management API: the bearer token (session storage only, never the URL),
// requests built from the route table (src/api/routes.ts), errors turned into messages a person can read, and
// the principal's rights (GET /whoami) so the page offers only what the API would allow.
// Must not: decide anything the service decides (a hidden button is a courtesy; the API still checks every
// call), keep the token anywhere but sessionStorage, or import from the service, the worker or the processor.
// Spec: docs/architecture.md "The web UI (src/web/)"; RFC 6750 (bearer tokens).

import { routeById, routePath } from "../api/routes.js";
import type { Job, Vm } from "../api/schemas.js";

const TOKEN_KEY = "viridian.token";

export type { Job, Vm };

export interface WhoAmI {
  principal: string;
  groups: string[];
  rights: Record<string, string[]>;
}

/** A failed API call: the HTTP status, the API's stable code and its message. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  /** What the page shows: 401 and 403 say plainly what happened. */
  get shown(): string {
    if (this.status === 401) return `Not signed in: ${this.message}`;
    if (this.status === 403) return `Not allowed (403): ${this.message}`;
    return `${this.code} (${this.status}): ${this.message}`;
  }
}

export function savedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}
export function saveToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}
export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

export class Client {
  constructor(private readonly token: string) {}

  async call<T>(
    id: string,
    params: Record<string, string> = {},
    body?: unknown,
    query?: Record<string, string>,
    extraHeaders: Record<string, string> = {},
  ): Promise<T> {
    const method = routeById(id).method;
    let url = routePath(id, params);
    if (query) url += `?${new URLSearchParams(query).toString()}`;
    const headers: Record<string, string> = { ...extraHeaders, authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (e) {
      throw new ApiFailure(0, "network", `the service does not answer (${(e as Error).message})`);
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: shown as text below
    }
    if (!res.ok) {
      const err = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
      throw new ApiFailure(res.status, err?.code ?? "error", err?.message ?? text.slice(0, 200));
    }
    return parsed as T;
  }

  /**
   * A WebSocket to a route, authenticated by offering the token as a subprotocol (`viridian.bearer.<token>`;
   * the service answers with `viridian` only): browsers cannot set headers on WebSockets.
   */
  websocket(id: string, params: Record<string, string> = {}): WebSocket {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${routePath(id, params)}`, [
      "viridian",
      `viridian.bearer.${this.token}`,
    ]);
    ws.binaryType = "arraybuffer";
    return ws;
  }
}

/** What the principal may do, from GET /whoami (rights per scope; `host` assignments cover every scope). */
export class Rights {
  constructor(readonly who: WhoAmI) {}

  can(op: string, scope: string): boolean {
    return (this.who.rights[scope] ?? []).includes(op) || (this.who.rights["host"] ?? []).includes(op);
  }

  /** The scopes in which the principal holds `op` (`host` meaning every scope). */
  scopesWith(op: string): string[] {
    return Object.entries(this.who.rights)
      .filter(([, ops]) => ops.includes(op))
      .map(([scope]) => scope);
  }
}
