// The OpenAPI document (issue 12, acceptance 7): the document a running service serves validates against the
// OpenAPI 3.1 schema (an independent validator from npm), equals the one checked in at docs/openapi.json
// (regenerate with `VIRIDIAN_UPDATE_OPENAPI=1 node --test dist/tests/service/openapi.test.js`), documents every
// route the service serves and nothing it does not (each documented route is asked for, and reaches its
// handler rather than the router's "no such route"), and the CLI names only documented routes.

import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import { ROUTES, openApiPath, routeById, routePath } from "../../src/api/routes.js";
import { REPO, TestService } from "./harness.js";

const CHECKED_IN = join(REPO, "docs/openapi.json");

type Doc = { openapi: string; paths: Record<string, Record<string, { operationId?: string }>> };

describe("the OpenAPI document (issue 12, acceptance 7)", { timeout: 300_000 }, () => {
  let svc: TestService;
  let doc: Doc;
  before(async () => {
    svc = new TestService("openapi");
    await svc.start();
    doc = (await svc.ok("GET", routePath("openApi"))).body as Doc;
  });
  after(async () => {
    await svc.close();
  });

  it("validates as OpenAPI 3.1", async () => {
    assert.equal(doc.openapi, "3.1.0");
    const result = await new Validator().validate(doc as unknown as Record<string, unknown>);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
  });

  it("is the document checked in at docs/openapi.json", () => {
    const served = JSON.stringify(doc, null, 2) + "\n";
    if (process.env.VIRIDIAN_UPDATE_OPENAPI === "1") writeFileSync(CHECKED_IN, served);
    assert.equal(
      served,
      readFileSync(CHECKED_IN, "utf8"),
      "docs/openapi.json is stale: regenerate it (see this test's header)",
    );
  });

  it("documents exactly the routes of the route table, and the service serves each", async () => {
    const documented = Object.entries(doc.paths)
      .flatMap(([p, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${p}`))
      .sort();
    const table = ROUTES.map((r) => `${r.method} ${openApiPath(r)}`).sort();
    assert.deepEqual(documented, table);
    for (const [p, methods] of Object.entries(doc.paths))
      for (const [m, op] of Object.entries(methods)) {
        assert.equal(typeof op.operationId, "string", `${m} ${p} has an operationId`);
        const r = routeById(op.operationId!);
        assert.equal(`${r.method} ${openApiPath(r)}`, `${m.toUpperCase()} ${p}`);
        // Every documented route is served: a request reaches it (whatever it then answers), never the router's 404.
        const url = p.replace(/\{[a-z]+\}/g, "00000000-0000-4000-8000-000000000000");
        const reply = await svc.call(m.toUpperCase(), url, m === "get" || m === "delete" ? {} : { body: {} });
        const err = (reply.body as { error?: { message?: string } }).error;
        assert.notEqual(err?.message, "no such route", `${m} ${p} is documented but not served`);
      }
    // And a path outside the table is not served.
    const stray = await svc.call("GET", "/v1/not-a-route");
    assert.equal(stray.status, 404);
    assert.equal((stray.body as { error: { message: string } }).error.message, "no such route");
  });

  it("the CLI names only documented routes", () => {
    const ids = new Set(
      Object.values(doc.paths).flatMap((ms) => Object.values(ms).map((o) => o.operationId)),
    );
    const cliDir = join(REPO, "src/cli");
    const used = new Set<string>();
    for (const f of readdirSync(cliDir).filter((n) => n.endsWith(".ts") && !n.endsWith(".test.ts"))) {
      const text = readFileSync(join(cliDir, f), "utf8");
      // The client reaches the service only through route ids (api-client.ts builds every URL from the table).
      for (const m of text.matchAll(/\b(?:call|websocket|callRaw)(?:<[^>]*>)?\(\s*"([A-Za-z]+)"/g))
        used.add(m[1]!);
      assert.doesNotMatch(text, /["'`]\/v1\//, `${f} spells an API path itself`);
    }
    assert.ok(used.size >= 20, `the CLI's route ids were found (${[...used].join(", ")})`);
    for (const id of used) assert.ok(ids.has(id), `the CLI uses ${id}, which is not documented`);
  });
});
