// The authorization matrix (issue 12, acceptance 2), generated from the route table and the operation
// table: for every route, a principal holding every operation but the route's gets 403 and an audit entry,
// and one holding only that operation succeeds. Then the VM Operator story: scope lab, the same VM moved to
// prod, vm.create, vm.media.change, auth.*, console input and output as separate rights, token revocation.
// Real HTTP over loopback TCP with bearer tokens; the administrator is the service's own user on the UNIX
// socket. One service and real worker processes (the guest is started but never waited for).

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { OPERATION_IDS, type OperationId } from "../../src/api/operations.js";
import { ROUTES, routePath, type RouteDef } from "../../src/api/routes.js";
import { opened, TestService, type Reply } from "./harness.js";

interface Case {
  method: string;
  path: string;
  body?: unknown;
  query?: string;
}

let svc: TestService;
let n = 0;
const uniq = (p: string): string => `${p}${++n}`;
let labVm = "";
let labJob = "";

async function admin(method: string, path: string, body?: unknown): Promise<Reply> {
  return svc.ok(method, path, body === undefined ? {} : { body });
}

async function vmState(name: string): Promise<string> {
  return ((await admin("GET", routePath("getVm", { vm: name }))).body as { state: string }).state;
}

async function ensureState(name: string, want: "Off" | "Running" | "Paused"): Promise<void> {
  let s = await vmState(name);
  if (s === want) return;
  if (s === "Paused") {
    await admin("POST", routePath("resumeVm", { vm: name }));
    s = "Running";
  }
  if (s === "Running" && want === "Off") {
    await svc.job(await admin("POST", routePath("stopVm", { vm: name }), { turnOff: true }));
    return;
  }
  if (s === "Off" || s === "Critical") {
    if (want === "Off") return;
    const j = await svc.job(await admin("POST", routePath("startVm", { vm: name })));
    assert.equal(j.state, "completed", JSON.stringify(j));
    s = "Running";
  }
  if (want === "Paused") await admin("POST", routePath("pauseVm", { vm: name }));
}

/** One request per route that the holder of the route's operation can make succeed. */
const fixtures: Record<string, () => Promise<Case>> = {
  listVms: async () => ({ method: "GET", path: routePath("listVms") }),
  createVm: async () => ({
    method: "POST",
    path: routePath("createVm"),
    body: { name: uniq("new"), scope: "lab" },
  }),
  getVm: async () => ({ method: "GET", path: routePath("getVm", { vm: labVm }) }),
  updateVm: async () => {
    await ensureState(labVm, "Off");
    return {
      method: "PATCH",
      path: routePath("updateVm", { vm: labVm }),
      body: { cmdline: `console=ttyS0 n=${++n}` },
    };
  },
  deleteVm: async () => {
    const name = uniq("doomed");
    await admin("POST", routePath("createVm"), { name, scope: "lab" });
    return { method: "DELETE", path: routePath("deleteVm", { vm: name }) };
  },
  startVm: async () => {
    await ensureState(labVm, "Off");
    return { method: "POST", path: routePath("startVm", { vm: labVm }) };
  },
  stopVm: async () => {
    await ensureState(labVm, "Running");
    return { method: "POST", path: routePath("stopVm", { vm: labVm }), body: { turnOff: true } };
  },
  pauseVm: async () => {
    await ensureState(labVm, "Running");
    return { method: "POST", path: routePath("pauseVm", { vm: labVm }) };
  },
  resumeVm: async () => {
    await ensureState(labVm, "Paused");
    return { method: "POST", path: routePath("resumeVm", { vm: labVm }) };
  },
  changeVmScope: async () => {
    const name = uniq("mover");
    await admin("POST", routePath("createVm"), { name, scope: "lab" });
    return { method: "PUT", path: routePath("changeVmScope", { vm: name }), body: { scope: "prod" } };
  },
  addDisk: async () => {
    await ensureState(labVm, "Off");
    return {
      method: "POST",
      path: routePath("addDisk", { vm: labVm }),
      body: { path: join(svc.dataDir, "images", `${uniq("d")}.img`), create: { sizeBytes: 1048576 } },
    };
  },
  changeDiskPath: async () => {
    await ensureState(labVm, "Off");
    const target = join(svc.dataDir, "images", `${uniq("other")}.img`);
    writeFileSync(target, Buffer.alloc(512));
    return {
      method: "PUT",
      path: routePath("changeDiskPath", { vm: labVm, index: 0 }),
      body: { path: target },
    };
  },
  removeDisk: async () => {
    await ensureState(labVm, "Off");
    await svc.job(
      await admin("POST", routePath("addDisk", { vm: labVm }), {
        path: join(svc.dataDir, "images", `${uniq("rm")}.img`),
        create: { sizeBytes: 1048576 },
      }),
    );
    return { method: "DELETE", path: routePath("removeDisk", { vm: labVm, index: 0 }) };
  },
  setDvd: async () => {
    await ensureState(labVm, "Off");
    const iso = join(svc.dataDir, "images", `${uniq("media")}.iso`);
    writeFileSync(iso, Buffer.alloc(2048));
    return { method: "PUT", path: routePath("setDvd", { vm: labVm }), body: { path: iso } };
  },
  ejectDvd: async () => {
    await ensureState(labVm, "Off");
    return { method: "DELETE", path: routePath("ejectDvd", { vm: labVm }) };
  },
  addNic: async () => {
    await ensureState(labVm, "Off");
    return { method: "POST", path: routePath("addNic", { vm: labVm }), body: { switch: "msw" } };
  },
  removeNic: async () => {
    await ensureState(labVm, "Off");
    await admin("POST", routePath("addNic", { vm: labVm }), { switch: "msw" });
    return { method: "DELETE", path: routePath("removeNic", { vm: labVm, index: 0 }) };
  },
  listSwitches: async () => ({ method: "GET", path: routePath("listSwitches") }),
  createSwitch: async () => ({ method: "POST", path: routePath("createSwitch"), body: { name: uniq("sw") } }),
  getSwitch: async () => ({ method: "GET", path: routePath("getSwitch", { name: "msw" }) }),
  deleteSwitch: async () => {
    const name = uniq("dsw");
    await admin("POST", routePath("createSwitch"), { name });
    return { method: "DELETE", path: routePath("deleteSwitch", { name }) };
  },
  listJobs: async () => ({ method: "GET", path: routePath("listJobs") }),
  getJob: async () => ({ method: "GET", path: routePath("getJob", { id: labJob }) }),
  waitJob: async () => ({ method: "GET", path: routePath("waitJob", { id: labJob }), query: "timeout=1" }),
  cancelJob: async () => {
    await ensureState(labVm, "Off");
    // A start job runs while the worker process starts (hundreds of milliseconds at least): cancel it then.
    const r = await admin("POST", routePath("startVm", { vm: labVm }));
    return {
      method: "DELETE",
      path: routePath("cancelJob", { id: (r.body as { job: { id: string } }).job.id }),
    };
  },
  listPrincipals: async () => ({ method: "GET", path: routePath("listPrincipals") }),
  createPrincipal: async () => ({
    method: "POST",
    path: routePath("createPrincipal"),
    body: { name: uniq("u"), kind: "user" },
  }),
  deletePrincipal: async () => {
    const name = uniq("gone");
    await admin("POST", routePath("createPrincipal"), { name, kind: "user" });
    return { method: "DELETE", path: routePath("deletePrincipal", { name }) };
  },
  addGroupMember: async () => {
    const g = uniq("g");
    const u = uniq("m");
    await admin("POST", routePath("createPrincipal"), { name: g, kind: "group" });
    await admin("POST", routePath("createPrincipal"), { name: u, kind: "user" });
    return { method: "PUT", path: routePath("addGroupMember", { name: g, user: u }) };
  },
  removeGroupMember: async () => {
    const g = uniq("g");
    const u = uniq("m");
    await admin("POST", routePath("createPrincipal"), { name: g, kind: "group" });
    await admin("POST", routePath("createPrincipal"), { name: u, kind: "user" });
    await admin("PUT", routePath("addGroupMember", { name: g, user: u }));
    return { method: "DELETE", path: routePath("removeGroupMember", { name: g, user: u }) };
  },
  listTokens: async () => ({ method: "GET", path: routePath("listTokens") }),
  createToken: async () => {
    const u = uniq("tok");
    await admin("POST", routePath("createPrincipal"), { name: u, kind: "user" });
    return { method: "POST", path: routePath("createToken"), body: { user: u } };
  },
  revokeToken: async () => {
    const u = uniq("rev");
    await admin("POST", routePath("createPrincipal"), { name: u, kind: "user" });
    const t = await admin("POST", routePath("createToken"), { user: u });
    return {
      method: "DELETE",
      path: routePath("revokeToken", { id: (t.body as { token: { id: string } }).token.id }),
    };
  },
  listRoles: async () => ({ method: "GET", path: routePath("listRoles") }),
  createRole: async () => ({
    method: "POST",
    path: routePath("createRole"),
    body: { name: uniq("r"), operations: ["vm.start", "Stop Virtual Machine"] },
  }),
  deleteRole: async () => {
    const name = uniq("dr");
    await admin("POST", routePath("createRole"), { name, operations: ["vm.start"] });
    return { method: "DELETE", path: routePath("deleteRole", { name }) };
  },
  listScopes: async () => ({ method: "GET", path: routePath("listScopes") }),
  createScope: async () => ({ method: "POST", path: routePath("createScope"), body: { name: uniq("s") } }),
  deleteScope: async () => {
    const name = uniq("ds");
    await admin("POST", routePath("createScope"), { name });
    return { method: "DELETE", path: routePath("deleteScope", { name }) };
  },
  listAssignments: async () => ({ method: "GET", path: routePath("listAssignments") }),
  createAssignment: async () => ({
    method: "POST",
    path: routePath("createAssignment"),
    body: { principal: "alice", role: "Viewer", scope: "prod" },
  }),
  deleteAssignment: async () => {
    const a = await admin("POST", routePath("createAssignment"), {
      principal: "alice",
      role: "Viewer",
      scope: "default",
    });
    return { method: "DELETE", path: routePath("deleteAssignment", { id: (a.body as { id: string }).id }) };
  },
  readAudit: async () => ({ method: "GET", path: routePath("readAudit"), query: "limit=5" }),
  getServiceConfig: async () => ({ method: "GET", path: routePath("getServiceConfig") }),
  updateServiceConfig: async () => ({
    method: "PATCH",
    path: routePath("updateServiceConfig"),
    body: { jobRetentionSeconds: 600 },
  }),
  metrics: async () => ({ method: "GET", path: routePath("metrics") }),
};

const tokens = new Map<string, string>();
async function userFor(kind: "without" | "only", op: OperationId, extra?: OperationId): Promise<string> {
  const key = `${kind}:${op}${extra ? `+${extra}` : ""}`;
  const have = tokens.get(key);
  if (have) return have;
  const ops =
    kind === "only" ? [op, ...(extra ? [extra] : [])] : OPERATION_IDS.filter((o) => o !== op && o !== extra);
  const name = `${kind}-${op.replace(/\./g, "-")}${extra ? `-and-${extra.replace(/\./g, "-")}` : ""}`;
  const t = await svc.principal(name, ops, "host");
  tokens.set(key, t);
  return t;
}

async function send(c: Case, token: string): Promise<Reply> {
  return svc.call(c.method, c.query ? `${c.path}?${c.query}` : c.path, {
    token,
    ...(c.body !== undefined ? { body: c.body } : {}),
  });
}

async function lastAuditFor(principal: string): Promise<{ operation: string; result: string } | undefined> {
  const all = (await admin("GET", `${routePath("readAudit")}?limit=10000`)).body as Array<{
    principal: string;
    operation: string;
    result: string;
  }>;
  let after = all.length > 0 ? (all[all.length - 1] as unknown as { seq: number }).seq : 0;
  let rest = all;
  while (rest.length === 10000) {
    rest = (await admin("GET", `${routePath("readAudit")}?limit=10000&after=${after}`)).body as typeof all;
    all.push(...rest);
    after = rest.length > 0 ? (rest[rest.length - 1] as unknown as { seq: number }).seq : after;
  }
  return all.filter((e) => e.principal === principal).pop();
}

describe("authorization matrix (issue 12, acceptance 2)", { timeout: 600_000 }, () => {
  before(async () => {
    svc = new TestService("authz", { rateLimit: { max: 100000, windowSeconds: 60 } });
    await svc.start();
    await admin("POST", routePath("createScope"), { name: "lab" });
    await admin("POST", routePath("createScope"), { name: "prod" });
    await admin("POST", routePath("createPrincipal"), { name: "alice", kind: "user" });
    await admin("POST", routePath("createSwitch"), { name: "msw" });
    labVm = "m-lab";
    await admin("POST", routePath("createVm"), { name: labVm, scope: "lab", memoryBytes: 64 * 1024 * 1024 });
    const j = await admin("POST", routePath("addDisk", { vm: labVm }), {
      path: join(svc.dataDir, "images", "first.img"),
      create: { sizeBytes: 1048576 },
    });
    labJob = (j.body as { job: { id: string } }).job.id;
    await svc.job(j);
    // The disk stays in the configuration; the worker refuses disks until the storage VSP exists, so runs
    // use a second, disk-less VM for the routes that need a running guest.
    await admin("DELETE", routePath("removeDisk", { vm: labVm, index: 0 }));
  });
  after(async () => {
    await svc?.close();
  });

  it("has a fixture for every route that needs an operation, and the others need only a token", async () => {
    for (const r of ROUTES) {
      if (r.operation === null || r.target === "self") {
        const t = await svc.principal(uniq("nobody"), ["switch.read"], "host");
        const res = await svc.call(r.method, routePath(r.id), { token: t });
        assert.equal(res.status, 200, `${r.id}: ${res.text}`);
        continue;
      }
      if (r.websocket) continue;
      assert.ok(fixtures[r.id], `route ${r.id} has no fixture in the matrix`);
    }
  });

  const plain = ROUTES.filter((r) => r.operation !== null && r.target !== "self" && !r.websocket);
  for (const route of plain) {
    it(`${route.id}: ${route.method} ${route.path} needs ${route.operation}`, async () => {
      const op = route.operation!;
      const c = await fixtures[route.id]!();
      if (route.target === "filter") {
        const without = await send(c, await userFor("without", op));
        assert.equal(without.status, 200, without.text);
        assert.deepEqual(without.body, [], `${route.id}: nothing is visible without ${op}`);
        const withOp = await send(c, await userFor("only", op));
        assert.equal(withOp.status, 200, withOp.text);
        assert.ok((withOp.body as unknown[]).length > 0, `${route.id}: visible with ${op}`);
        return;
      }
      const denyOp: OperationId = route.id === "cancelJob" ? "vm.start" : op;
      const denied = await send(c, await userFor("without", denyOp));
      assert.equal(denied.status, 403, `${route.id} without ${denyOp}: ${denied.text}`);
      assert.equal((denied.body as { error: { code: string } }).error.code, "forbidden");
      const entry = await lastAuditFor(`without-${denyOp.replace(/\./g, "-")}`);
      assert.ok(entry, "the denial is audited");
      assert.equal(entry.operation, denyOp);
      assert.equal(entry.result, "deny");
      if (route.alsoRequires) {
        // The route's operation alone is not enough: the second one is needed on the host as well.
        const half = await send(c, await userFor("only", denyOp));
        assert.equal(half.status, 403, `${route.id} without ${route.alsoRequires}: ${half.text}`);
        const e = await lastAuditFor(`only-${denyOp.replace(/\./g, "-")}`);
        assert.equal(e?.operation, route.alsoRequires);
        assert.equal(e?.result, "deny");
      }
      const allowed = await send(c, await userFor("only", denyOp, route.alsoRequires));
      if (route.id === "cancelJob" && allowed.status === 409) {
        // The start finished before the cancel arrived: authorization passed, the job was no longer running.
        assert.equal((allowed.body as { error: { code: string } }).error.code, "invalid-state");
      } else {
        assert.ok(
          allowed.status >= 200 && allowed.status < 300,
          `${route.id} with only ${denyOp}: ${allowed.status} ${allowed.text}`,
        );
      }
      if (route.status === 202) await svc.job(allowed);
      const okEntry = await lastAuditFor(
        `only-${denyOp.replace(/\./g, "-")}${route.alsoRequires ? `-and-${route.alsoRequires.replace(/\./g, "-")}` : ""}`,
      );
      assert.equal(okEntry?.result, "allow");
    });
  }

  it("vmConsole (WebSocket) needs vm.console.output or vm.console.input, vmMetrics vm.config.read; events are filtered by vm.config.read", async () => {
    // A fresh disk-less VM (the matrix left disks and a DVD on m-lab, which the worker refuses for now).
    const vm = "m-console";
    await admin("POST", routePath("createVm"), { name: vm, scope: "lab", memoryBytes: 64 * 1024 * 1024 });
    await ensureState(vm, "Running");
    const path = routePath("vmConsole", { vm });
    const deny = await svc.principal(
      "console-none",
      OPERATION_IDS.filter((o) => o !== "vm.console.input" && o !== "vm.console.output"),
      "host",
    );
    await assert.rejects(
      opened(svc.websocket(path, { token: deny })),
      (e: { status?: number }) => e.status === 403,
    );
    const ws = await opened(svc.websocket(path, { token: await userFor("only", "vm.console.output") }));
    ws.close();
    // The metrics stream needs vm.config.read on the VM's scope, and its first sample comes at once.
    const metrics = routePath("vmMetrics", { vm });
    await assert.rejects(
      opened(svc.websocket(metrics, { token: await userFor("without", "vm.config.read") })),
      (e: { status?: number }) => e.status === 403,
    );
    const mws = await opened(svc.websocket(metrics, { token: await userFor("only", "vm.config.read") }));
    const first = await new Promise<{ state: string; counters: { instructionsRetired: number } | null }>(
      (r) => mws.once("message", (d: Buffer) => r(JSON.parse(d.toString()) as never)),
    );
    mws.close();
    assert.equal(first.state, "Running");
    assert.ok(first.counters && first.counters.instructionsRetired > 0, JSON.stringify(first));
    // Events: a lifecycle event of a lab VM reaches a reader of lab, not a principal without vm.config.read.
    const seen = { with: 0, without: 0 };
    const wWith = await opened(
      svc.websocket(routePath("events"), { token: await userFor("only", "vm.config.read") }),
    );
    const wWithout = await opened(
      svc.websocket(routePath("events"), { token: await userFor("without", "vm.config.read") }),
    );
    wWith.on(
      "message",
      (d: Buffer) => (JSON.parse(d.toString()) as { type: string }).type === "lifecycle" && seen.with++,
    );
    wWithout.on(
      "message",
      (d: Buffer) => (JSON.parse(d.toString()) as { type: string }).type === "lifecycle" && seen.without++,
    );
    await ensureState(vm, "Off");
    while (seen.with === 0) await new Promise((r) => setTimeout(r, 20));
    // Sent in the same turn of the service's event loop as the first one: it has arrived if it was sent.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(seen.without, 0);
    wWith.close();
    wWithout.close();
  });

  it("a VM Operator of lab: start and console in lab; 403 in prod, for vm.create, vm.media.change, auth.*; revocation is immediate", async () => {
    const op = await svc.principal("operator", "VM Operator", "lab");
    await admin("POST", routePath("createVm"), { name: "opvm", scope: "lab", memoryBytes: 64 * 1024 * 1024 });
    const started = await svc.call("POST", routePath("startVm", { vm: "opvm" }), { token: op });
    assert.equal(started.status, 202, started.text);
    assert.equal((await svc.job(started, { token: op })).state, "completed");
    const ws = await opened(svc.websocket(routePath("vmConsole", { vm: "opvm" }), { token: op }));
    ws.close();
    const moved = await svc.job(await admin("POST", routePath("stopVm", { vm: "opvm" }), { turnOff: true }));
    assert.equal(moved.state, "completed");
    await admin("PUT", routePath("changeVmScope", { vm: "opvm" }), { scope: "prod" });
    assert.equal((await svc.call("POST", routePath("startVm", { vm: "opvm" }), { token: op })).status, 403);
    await assert.rejects(
      opened(svc.websocket(routePath("vmConsole", { vm: "opvm" }), { token: op })),
      (e: { status?: number }) => e.status === 403,
    );
    assert.equal((await svc.call("GET", routePath("getVm", { vm: "opvm" }), { token: op })).status, 403);
    assert.equal(
      (await svc.call("POST", routePath("createVm"), { token: op, body: { name: "nope", scope: "lab" } }))
        .status,
      403,
    );
    const iso = join(svc.dataDir, "images", "op.iso");
    writeFileSync(iso, Buffer.alloc(2048));
    await admin("PUT", routePath("changeVmScope", { vm: "opvm" }), { scope: "lab" });
    assert.equal(
      (await svc.call("PUT", routePath("setDvd", { vm: "opvm" }), { token: op, body: { path: iso } })).status,
      403,
    );
    for (const r of ROUTES.filter((x: RouteDef) => x.operation === "auth.admin")) {
      const res = await svc.call(r.method, routePath(r.id, { name: "alice", user: "alice", id: "x" }), {
        token: op,
        ...(r.body ? { body: {} } : {}),
      });
      // A body that does not validate is refused before authorization (400); every valid one is 403.
      assert.ok(res.status === 403 || res.status === 400, `${r.id}: ${res.status}`);
      if (!r.body) assert.equal(res.status, 403, r.id);
    }
    // Console input and output are separate rights.
    await ensureState("opvm", "Running");
    const outOnly = await svc.principal("reader", ["vm.console.output", "vm.config.read"], "lab");
    const reader = await opened(svc.websocket(routePath("vmConsole", { vm: "opvm" }), { token: outOnly }));
    let screen = "";
    const refusal = new Promise<string>((resolve) =>
      reader.on("message", (d: Buffer, bin: boolean) => {
        if (bin) screen += d.toString("latin1");
        else resolve(d.toString());
      }),
    );
    reader.send(Buffer.from("echo refused-input\n"));
    assert.match(await refusal, /forbidden/);
    const inOnly = await svc.principal("typist", ["vm.console.input"], "lab");
    const typist = await opened(svc.websocket(routePath("vmConsole", { vm: "opvm" }), { token: inOnly }));
    let typistGotOutput = false;
    typist.on("message", (_d: Buffer, bin: boolean) => bin && (typistGotOutput = true));
    // Typed once the shell runs (input sent during boot is discarded when the console is opened).
    const promptBy = Date.now() + 300_000;
    while (!/viridian-guest:[^\n]*# /.test(screen)) {
      assert.ok(Date.now() < promptBy, `no shell prompt; screen: ${screen.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    typist.send(Buffer.from("echo typed-by-$((6*7))\n"));
    const deadline = Date.now() + 300_000;
    while (!screen.includes("typed-by-42")) {
      assert.ok(Date.now() < deadline, `the typist's command never ran; screen: ${screen.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(
      !screen.includes("refused-input"),
      "input from an output-only principal never reached the guest",
    );
    assert.equal(
      typistGotOutput,
      false,
      "an input-only principal gets no console output (not even the backlog)",
    );
    reader.close();
    typist.close();
    // Revocation is immediate.
    const tokensNow = (await admin("GET", routePath("listTokens"))).body as Array<{
      id: string;
      user: string;
    }>;
    const opToken = tokensNow.find((t) => t.user === "operator")!;
    assert.equal((await svc.call("GET", routePath("listVms"), { token: op })).status, 200);
    await admin("DELETE", routePath("revokeToken", { id: opToken.id }));
    const after = await svc.call("GET", routePath("listVms"), { token: op });
    assert.equal(after.status, 401);
    assert.equal((after.body as { error: { code: string } }).error.code, "unauthorized");
    await ensureState("opvm", "Off");
  });
});
