// Owns: serving the web UI (the browser bundle built from src/web/ into dist/web/) at `/` on the API's own
// origin: a fixed list of files read once at start, each with its content type, no caching surprises and a
// content security policy that lets the page reach only its own origin.
// Must not: serve anything but the files the build wrote (no path from the request reaches the file system),
// need a token (the page holds no data; every API call it makes is authorized as usual), or appear in the
// OpenAPI document (it is not part of the API).
// Spec: docs/architecture.md "The web UI (src/web/)"; CSP Level 3.

import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";

/** Where `npm run build` puts the bundle (dist/src/service/ -> dist/web/). */
export const WEB_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../../web");

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

// xterm.js sets style attributes and injects its theme's <style> element, hence 'unsafe-inline' for styles
// only; scripts come from this origin alone, and the page may connect only to this origin (HTTP and WS).
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

declare module "fastify" {
  interface FastifyContextConfig {
    /** Lets a request through without a token (the UI's static files only). */
    publicUi?: true;
  }
}

/** Registers `/` and `/ui/<file>` for the files of the built bundle (a clear 404 when it was never built). */
export function registerWebUi(app: FastifyInstance, dir = WEB_DIR): void {
  const files = new Map<string, { body: Buffer; type: string }>();
  if (existsSync(dir))
    for (const name of readdirSync(dir)) {
      const type = CONTENT_TYPES[extname(name)];
      if (type) files.set(name, { body: readFileSync(join(dir, name)), type });
    }
  const config = { publicUi: true as const };
  const send = (name: string) => {
    const f = files.get(name);
    return { f, missing: `the web UI's ${name} is not built (run npm run build)` };
  };
  app.get("/", { schema: { hide: true }, config }, async (_req, reply) => {
    const { f, missing } = send("index.html");
    void reply.header("cache-control", "no-cache").header("x-content-type-options", "nosniff");
    if (!f) return reply.code(404).type("text/plain; charset=utf-8").send(missing);
    return reply.header("content-security-policy", CSP).type(f.type).send(f.body);
  });
  app.get<{ Params: { file: string } }>(
    "/ui/:file",
    { schema: { hide: true }, config },
    async (req, reply) => {
      // Only names the build wrote match: the parameter is a map key, never a path.
      const { f } = send(req.params.file);
      void reply.header("cache-control", "no-cache").header("x-content-type-options", "nosniff");
      if (!f) return reply.code(404).type("text/plain; charset=utf-8").send("no such file");
      return reply.type(f.type).send(f.body);
    },
  );
}
