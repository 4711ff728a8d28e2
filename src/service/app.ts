// Owns: the HTTP/WebSocket API: registers every route of src/api/routes.ts with its schemas (validation and
// the OpenAPI document come from the same objects), authenticates (bearer tokens; the UNIX socket's own user
// without one; a browser's WebSocket offers its token as a subprotocol), authorizes each request against the route's operation and target before its handler runs,
// limits request rates per principal and body sizes, and turns every failure into a stable error body.
// Must not: answer a request the route table does not describe (the web UI's static files, web-ui.ts, aside), leak an internal error's details beyond
// its message, or let a handler run before authorization.
// Spec: docs/architecture.md "The management API"; RFC 6750 (bearer tokens); OpenAPI 3.1.

import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import fastifySwagger from "@fastify/swagger";
import fastifyWebsocket from "@fastify/websocket";
import fastifyRateLimit from "@fastify/rate-limit";
import type { WebSocket } from "ws";
import { ApiError, type ErrorCode } from "../api/errors.js";
import { HOST_SCOPE, type OperationId } from "../api/operations.js";
import { ROUTES, fullPath, type RouteDef } from "../api/routes.js";
import { ErrorBody, type EventMessage } from "../api/schemas.js";
import { LOCAL_PRINCIPAL, type Identity } from "./auth-store.js";
import { RequestCounter } from "./metrics.js";
import { metricsSocket } from "./metrics-stream.js";
import type { ServiceParts } from "./service-parts.js";
import { handlers, type HandlerContext } from "./api-handlers.js";
import { registerWebUi } from "./web-ui.js";

/** Request bodies above this are refused with 413 (a configuration change is well under 4 KiB). */
export const BODY_LIMIT = 64 * 1024;
/** A WebSocket subscriber with more than this many bytes unsent is dropped (it cannot keep up). */
const WS_BACKPRESSURE_LIMIT = 4 * 1024 * 1024;

declare module "fastify" {
  interface FastifyRequest {
    identity: Identity;
    vmId: string | undefined;
  }
}

function errorBody(code: ErrorCode, message: string): { error: { code: ErrorCode; message: string } } {
  return { error: { code, message } };
}

function sendError(reply: FastifyReply, e: ApiError): void {
  void reply.code(e.status).type("application/json").send(e.body());
}

/** Maps framework and validation errors onto stable codes; anything unexpected is `internal`. */
function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const e = err as {
    validation?: unknown;
    validationContext?: string;
    code?: string;
    statusCode?: number;
    message?: string;
  };
  if (e.validation)
    return new ApiError("bad-request", `${e.validationContext ?? "request"}: ${e.message ?? "invalid"}`);
  switch (e.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new ApiError("payload-too-large", `request body larger than ${BODY_LIMIT} bytes`);
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new ApiError("unsupported-media-type", "request bodies are application/json");
    case "FST_ERR_NOT_FOUND":
      return new ApiError("not-found", "no such route");
    case "FST_ERR_MAX_PARAM_LENGTH":
      return new ApiError("bad-request", "a path parameter is longer than 200 characters");
    case "FST_ERR_BAD_URL":
      return new ApiError("bad-request", "the URL does not decode");
  }
  const status = e.statusCode ?? 500;
  if (status === 429) return new ApiError("rate-limited", e.message ?? "too many requests");
  if (status === 413) return new ApiError("payload-too-large", e.message ?? "request too large");
  if (status === 415) return new ApiError("unsupported-media-type", e.message ?? "unsupported media type");
  if (status === 404) return new ApiError("not-found", e.message ?? "not found");
  if (status === 405) return new ApiError("method-not-allowed", e.message ?? "method not allowed");
  if (status >= 400 && status < 500) return new ApiError("bad-request", e.message ?? "bad request");
  return new ApiError("internal", "internal error");
}

/** The WebSocket subprotocol the service speaks to browsers (events: JSON text; console: binary bytes). */
export const WS_PROTOCOL = "viridian";
/** The prefix of the subprotocol that carries a browser's bearer token (browsers cannot set headers). */
export const WS_BEARER_PREFIX = "viridian.bearer.";

/**
 * A bearer token offered as a WebSocket subprotocol (`viridian.bearer.<token>`), as an Authorization header
 * value, for upgrade requests without one: a browser's WebSocket API cannot set headers, and a token in the
 * URL would end up in logs and history. Tokens are base64url plus `_` and `.`, all valid subprotocol characters.
 */
function wsProtocolBearer(req: FastifyRequest): string | undefined {
  if (req.headers.upgrade?.toLowerCase() !== "websocket") return undefined;
  const offered = req.headers["sec-websocket-protocol"];
  if (typeof offered !== "string") return undefined;
  for (const p of offered.split(",")) {
    const t = p.trim();
    if (t.startsWith(WS_BEARER_PREFIX)) return `Bearer ${t.slice(WS_BEARER_PREFIX.length)}`;
  }
  return undefined;
}

export async function createApp(parts: ServiceParts): Promise<FastifyInstance> {
  const app = Fastify({
    bodyLimit: BODY_LIMIT,
    routerOptions: { maxParamLength: 200 },
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false },
    },
    logger: false,
    // Requests are answered in the order the event loop sees them; a stuck client cannot hold a worker.
    connectionTimeout: 0,
    requestTimeout: 120_000,
    return503OnClosing: true,
    // Errors the router raises before any route runs (bad URL encoding, over-long parameters).
    frameworkErrors: (err, _req, reply) => sendError(reply, toApiError(err)),
  });
  const requests = new RequestCounter();
  app.decorateRequest("identity", undefined as unknown as Identity);
  app.decorateRequest("vmId", undefined);

  await app.register(fastifySwagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Viridian VM service",
        version: parts.version,
        description:
          "The management API of the Viridian virtualization stack: VMs, jobs, events, and the authorization store. Every route needs a bearer token, except on the service's own UNIX socket. A WebSocket request may instead offer the token as the subprotocol `viridian.bearer.<token>` next to `viridian` (browsers cannot set headers on WebSockets); the service answers with `viridian`. The web UI's static files at `/` and `/ui/` need no token and are not part of this API.",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(fastifyWebsocket, {
    options: {
      maxPayload: 64 * 1024,
      // A browser offers WS_PROTOCOL and its bearer token as subprotocols (wsProtocolBearer); the answer
      // names WS_PROTOCOL only, so the token is never echoed back.
      handleProtocols: (offered: Set<string>) => (offered.has(WS_PROTOCOL) ? WS_PROTOCOL : false),
    },
  });

  // Authentication: before anything is parsed.
  app.addHook("onRequest", async (req) => {
    // The web UI's static files hold no data: the page asks for a token and every API call it makes is
    // authorized like any other (src/service/web-ui.ts).
    if (req.routeOptions.config?.publicUi) return;
    const h = req.headers.authorization ?? wsProtocolBearer(req);
    if (h !== undefined) {
      const m = /^Bearer ([\x21-\x7e]{1,256})$/.exec(h);
      const who = m ? parts.auth.verify(m[1]!) : null;
      if (!who) {
        parts.audit.append({
          principal: "(unauthenticated)",
          operation: "authenticate",
          target: `${req.method} ${req.routeOptions.url ?? req.url.slice(0, 200)}`,
          result: "deny",
          reason: "unknown or revoked token",
        });
        throw new ApiError("unauthorized", "unknown or revoked bearer token");
      }
      req.identity = who;
      return;
    }
    if (parts.isLocal(req.raw.socket)) {
      req.identity = { name: LOCAL_PRINCIPAL, groups: [], local: true };
      return;
    }
    throw new ApiError("unauthorized", "a bearer token is required (Authorization: Bearer ...)");
  });

  await app.register(fastifyRateLimit, {
    global: true,
    hook: "preParsing",
    max: (_req, _key) => parts.config.get().rateLimit.max,
    timeWindow: parts.config.get().rateLimit.windowSeconds * 1000,
    keyGenerator: (req) => (req as FastifyRequest).identity?.name ?? "(unauthenticated)",
    errorResponseBuilder: (_req, ctx) =>
      new ApiError("rate-limited", `more than ${ctx.max} requests in ${ctx.after}; retry later`),
  });

  app.setErrorHandler((err, req, reply) => {
    const e = toApiError(err);
    if (e.code === "internal") req.log.error(err);
    if (e.code === "internal" && process.env.VIRIDIAN_DEBUG_ERRORS === "1") console.error(err);
    sendError(reply, e);
  });
  app.setNotFoundHandler((_req, reply) => sendError(reply, new ApiError("not-found", "no such route")));
  app.addHook("onResponse", async (req, reply) => {
    requests.add(req.routeOptions.url ?? "(none)", reply.statusCode);
  });

  const ctx: HandlerContext = { ...parts, requests, app };
  for (const route of ROUTES) registerRoute(app, route, parts, ctx);
  registerWebUi(app);
  return app;
}

/** Authorizes a request for its route's operation and target; records the decision. */
function authorizeRoute(route: RouteDef, req: FastifyRequest, parts: ServiceParts): void {
  const who = req.identity;
  const op = route.operation;
  if (route.target === "self" || route.target === "filter" || op === null) return;
  const params = (req.params ?? {}) as Record<string, string>;
  let scope: string;
  let target: string;
  let ops: OperationId[] = [op];
  switch (route.target) {
    case "host":
      scope = HOST_SCOPE;
      target = "host";
      break;
    case "create": {
      const body = (req.body ?? {}) as { scope?: string; name?: string };
      scope = body.scope ?? "default";
      target = `scope:${scope}`;
      break;
    }
    case "vm": {
      const id = parts.vms.resolve(params.vm!);
      req.vmId = id;
      scope = parts.vms.scopeOf(id);
      const v = parts.vms.view(id);
      target = `vm:${v.name} (scope ${scope})`;
      if (route.alsoAccepts) ops = [op, route.alsoAccepts];
      break;
    }
    case "job": {
      const j = parts.jobs.get(params.id!);
      scope = j.scope;
      target = `job:${j.job.id} (scope ${scope})`;
      if (route.id === "cancelJob") ops = [j.operation];
      break;
    }
  }
  let allowed = false;
  let reason = "";
  for (const o of ops) {
    const d = parts.authz.authorize(who, o, scope, target);
    allowed ||= d.allowed;
    reason = d.reason;
  }
  if (!allowed)
    throw new ApiError("forbidden", `${who.name} may not ${ops.join(" or ")} on ${target}: ${reason}`);
  if (route.alsoRequires) {
    const sw = (req.body as { switch?: unknown } | undefined)?.switch;
    const on = typeof sw === "string" ? `switch:${sw}` : "host";
    const d = parts.authz.authorize(who, route.alsoRequires, HOST_SCOPE, on);
    if (!d.allowed)
      throw new ApiError("forbidden", `${who.name} may not ${route.alsoRequires} on ${on}: ${d.reason}`);
  }
}

function registerRoute(
  app: FastifyInstance,
  route: RouteDef,
  parts: ServiceParts,
  ctx: HandlerContext,
): void {
  const response: Record<string, unknown> = { "4xx": ErrorBody, "5xx": ErrorBody };
  if (route.websocket) response["101"] = { description: "Switching Protocols (WebSocket)", type: "null" };
  else if (route.status === 204) response["204"] = { description: "Done", type: "null" };
  else if (route.response) response[String(route.status)] = route.response;
  // additionalProperties: the serializer would otherwise drop every field of a schema-less document.
  else
    response[String(route.status)] = {
      description: "The document",
      type: "object",
      additionalProperties: true,
    };
  const schema: Record<string, unknown> = {
    operationId: route.id,
    summary: route.summary,
    tags: [route.path.split("/")[1] ?? "service"],
    response,
    ...(route.operation
      ? {
          description: `Needs \`${route.operation}\`${route.alsoAccepts ? ` or \`${route.alsoAccepts}\`` : ""} (target: ${route.target})${route.alsoRequires ? `, and \`${route.alsoRequires}\` on the host` : ""}.`,
        }
      : {}),
  };
  if (route.params) schema.params = route.params;
  if (route.query) schema.querystring = route.query;
  if (route.body) schema.body = route.body;
  const preHandler = async (req: FastifyRequest): Promise<void> => authorizeRoute(route, req, parts);
  if (route.websocket) {
    app.route({
      method: "GET",
      url: fullPath(route),
      schema,
      preHandler,
      handler: async (_req, reply) => {
        // Reached only by a plain GET without an upgrade.
        sendError(
          reply,
          new ApiError("bad-request", "this endpoint is a WebSocket: send an upgrade request"),
        );
      },
      wsHandler: (socket: WebSocket, req: FastifyRequest) => {
        if (route.id === "events") eventsSocket(socket, req, parts);
        else if (route.id === "vmMetrics") metricsSocket(socket, req.vmId!, parts.vms);
        else consoleSocket(socket, req, parts);
      },
    });
    return;
  }
  const handler = handlers[route.id];
  if (!handler) throw new Error(`route ${route.id} has no handler`);
  app.route({
    method: route.method,
    url: fullPath(route),
    schema,
    preHandler,
    handler: async (req, reply) => {
      const out = await handler(req, reply, ctx);
      if (reply.sent) return;
      if (route.status === 204) {
        void reply.code(204).send();
        return;
      }
      void reply.code(route.status);
      return out;
    },
  });
}

function safeSend(socket: WebSocket, data: string | Uint8Array): void {
  if (socket.readyState !== 1) return;
  if (socket.bufferedAmount > WS_BACKPRESSURE_LIMIT) {
    socket.close(1008, "too slow: events dropped");
    return;
  }
  socket.send(data);
}

function eventsSocket(socket: WebSocket, req: FastifyRequest, parts: ServiceParts): void {
  const who = req.identity;
  parts.authz.record(who, "events.subscribe", "events", { allowed: true, reason: "filtered per event" });
  const unsubscribe = parts.events.subscribe((e: EventMessage, scope: string) => {
    // The subscriber's own audit entries would echo forever; everything else is filtered by right.
    if (e.type === "audit") {
      if (!parts.authz.check(who, "auth.admin", HOST_SCOPE).allowed) return;
      const d = e.data as { principal?: string; operation?: string };
      if (d.operation === "events.subscribe") return;
    } else if (!parts.authz.check(who, "vm.config.read", scope).allowed) return;
    safeSend(socket, JSON.stringify(e));
  });
  socket.on("close", unsubscribe);
  socket.on("error", unsubscribe);
  socket.on("message", () => undefined);
}

/** Ctrl-A X on the client side detaches; the service never interprets console bytes. */
function consoleSocket(socket: WebSocket, req: FastifyRequest, parts: ServiceParts): void {
  const who = req.identity;
  const id = req.vmId!;
  const scope = parts.vms.scopeOf(id);
  const canIn = parts.authz.check(who, "vm.console.input", scope).allowed;
  const canOut = parts.authz.check(who, "vm.console.output", scope).allowed;
  let worker;
  try {
    worker = parts.vms.worker(id);
  } catch (e) {
    socket.close(1011, (e as Error).message.slice(0, 120));
    return;
  }
  let unsubscribe: (() => void) | null = null;
  let closed = false;
  const close = (): void => {
    closed = true;
    unsubscribe?.();
  };
  socket.on("close", close);
  socket.on("error", close);
  if (canOut) {
    worker
      .onConsole((bytes) => safeSend(socket, bytes), 4096)
      .then((u) => {
        if (closed) u();
        else unsubscribe = u;
      })
      .catch(() => socket.close(1011, "the worker does not answer"));
  }
  worker.onExit(({ reason }) => socket.close(1000, `VM stopped: ${reason}`.slice(0, 120)));
  socket.on("message", (data: Buffer, isBinary: boolean) => {
    if (!canIn) {
      safeSend(socket, JSON.stringify(errorBody("forbidden", "console input needs vm.console.input")));
      return;
    }
    const bytes = isBinary ? data : Buffer.from(data.toString("utf8"), "utf8");
    worker.sendConsole(bytes).catch(() => undefined);
  });
}
