// Owns: where the API listens: the local UNIX socket (mode 0600 in a 0700 directory: only the service's user
// can connect, and its connections are marked local), and TCP, on loopback unless told otherwise, with TLS
// when given a certificate and key. Both serve the same fastify app; WebSocket upgrades too.
// Must not: listen anywhere not asked for, or leave the socket reachable by other users even for an instant
// (the umask is tightened before the socket exists).
// Spec: unix(7) (socket file permissions on Linux); Node http/https/net.

import { chmodSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { connect, type Socket } from "node:net";
import type { FastifyInstance } from "fastify";
import { MAX_SOCKET_PATH } from "./data-dir.js";

export interface ListenOptions {
  socketPath: string;
  /** `host:port` for TCP, or null for none. */
  tcp: string | null;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
}

export interface Listening {
  socketPath: string;
  /** The TCP address actually bound (port 0 picks one), e.g. "127.0.0.1:7480". */
  tcp: string | null;
  tls: boolean;
  close(): Promise<void>;
}

/** True when a live service answers on this socket (a stale socket file from a crash does not). */
async function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export function parseHostPort(spec: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):([0-9]{1,5})$/.exec(spec);
  if (!m || Number(m[2]) > 65535) throw new Error(`--listen wants HOST:PORT, got '${spec}'`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]) };
}

export async function listen(
  app: FastifyInstance,
  o: ListenOptions,
  localSockets: WeakSet<object>,
): Promise<Listening> {
  if (Buffer.byteLength(o.socketPath) > MAX_SOCKET_PATH)
    throw new Error(
      `the socket path ${o.socketPath} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter --data-dir`,
    );
  if (await socketAnswers(o.socketPath)) throw new Error(`a service already listens on ${o.socketPath}`);
  rmSync(o.socketPath, { force: true });
  await app.ready();
  const handler = app.routing.bind(app) as unknown as (req: unknown, res: unknown) => void;
  // Upgrades (WebSockets) are handled by listeners fastify's plugins put on app.server.
  const forwardUpgrade = (req: unknown, socket: unknown, head: unknown): void => {
    app.server.emit("upgrade", req, socket, head);
  };

  const unixServer: HttpServer = createHttpServer(handler);
  unixServer.on("connection", (s: Socket) => localSockets.add(s));
  unixServer.on("upgrade", forwardUpgrade);
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      unixServer.once("error", reject);
      unixServer.listen(o.socketPath, () => resolve());
    });
  } finally {
    process.umask(oldMask);
  }
  chmodSync(o.socketPath, 0o600);

  let tcpServer: HttpServer | null = null;
  let tcpAddr: string | null = null;
  const tls = o.tlsCert !== undefined && o.tlsKey !== undefined;
  if (o.tcp !== null) {
    const { host, port } = parseHostPort(o.tcp);
    tcpServer = tls
      ? (createHttpsServer(
          { cert: readFileSync(o.tlsCert!), key: readFileSync(o.tlsKey!) },
          handler,
        ) as unknown as HttpServer)
      : createHttpServer(handler);
    tcpServer.on("upgrade", forwardUpgrade);
    await new Promise<void>((resolve, reject) => {
      tcpServer!.once("error", reject);
      tcpServer!.listen(port, host, () => resolve());
    });
    const a = tcpServer.address();
    if (a && typeof a === "object")
      tcpAddr = `${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`;
  }
  const closeServer = (s: HttpServer): Promise<void> =>
    new Promise((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  return {
    socketPath: o.socketPath,
    tcp: tcpAddr,
    tls,
    async close() {
      await Promise.all([closeServer(unixServer), ...(tcpServer ? [closeServer(tcpServer)] : [])]);
      rmSync(o.socketPath, { force: true });
      await app.close();
    },
  };
}
