// Bad input (issue 12, acceptance 5): 20,000 schema-aware random and mutated requests against a real service
// over real HTTP (both the UNIX socket and loopback TCP with a token): huge bodies, deep JSON, wrong types,
// unknown fields, path traversal in disk paths and VM names, bad methods, headers and tokens. No 5xx, no
// crash, every error body carries a stable code whose HTTP status matches it, and no file outside the data
// directory is created or read (canaries outside it, and a symbolic link into them from inside the image
// root, keep their access times). No guest is started: start and the WebSocket routes are left out.

import assert from "node:assert/strict";
import { mkdirSync, readdirSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ERROR_STATUS } from "../../src/api/errors.js";
import { ROUTES, fullPath, type RouteDef } from "../../src/api/routes.js";
import { TestService, type Reply } from "./harness.js";

const TOTAL = Number(process.env.VIRIDIAN_API_FUZZ_REQUESTS ?? 20_000);

/** A small deterministic generator (xorshift32), so a failure is reproducible from its seed. */
class Rng {
  constructor(private s: number) {}
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s / 0x100000000;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

let svc: TestService;
let outside = "";
let canaries: string[] = [];
/** Whole seconds: a millisecond time goes through floating-point seconds in utimes and may come back 1 ns off. */
const OLD = new Date(Math.floor(Date.now() / 1000 - 3 * 86400) * 1000);
/** Each canary's access time (ns) as set, before the fuzz. */
const atimes = new Map<string, bigint>();

function treeOf(dir: string, skip: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (p === skip) continue;
    out.push(p);
    const st = statSync(p, { throwIfNoEntry: false });
    if (st?.isDirectory()) out.push(...treeOf(p, skip));
  }
  return out.sort();
}

describe("API fuzz (issue 12, acceptance 5)", { timeout: 900_000 }, () => {
  let token = "";
  let vmNames: string[] = [];
  before(async () => {
    svc = new TestService("fuzz", { rateLimit: { max: 1_000_000, windowSeconds: 60 } });
    outside = join(svc.root, "outside");
    mkdirSync(outside);
    canaries = ["secret.img", "secret.iso", "vmlinuz"].map((n) => join(outside, n));
    for (const c of canaries) {
      writeFileSync(c, "canary");
      // atime older than a day and than mtime: any read updates it (relatime).
      utimesSync(c, OLD, new Date(OLD.getTime() - 86400_000));
      atimes.set(c, statSync(c, { bigint: true }).atimeNs);
    }
    await svc.start();
    const images = join(svc.dataDir, "images");
    symlinkSync(canaries[0]!, join(images, "link.img"));
    writeFileSync(join(images, "ok.iso"), Buffer.alloc(2048));
    await svc.ok("POST", "/v1/scopes", { body: { name: "lab" } });
    token = await svc.principal("fuzzer", "Administrator", "host");
    vmNames = ["a", "b", "c"];
    await svc.ok("POST", "/v1/switches", { body: { name: "fsw" } });
    for (const name of vmNames)
      await svc.ok("POST", "/v1/vms", { body: { name, scope: "lab", memoryBytes: 64 * 1024 * 1024 } });
  });
  after(async () => {
    await svc?.close();
  });

  it(`${TOTAL} random and mutated requests: no 5xx, stable error codes, nothing touched outside`, async () => {
    const rng = new Rng(Number(process.env.VIRIDIAN_API_FUZZ_SEED ?? 0x5eed1234));
    const images = join(svc.dataDir, "images");
    const paths = [
      join(images, "new.vhdx"),
      join(images, "ok.iso"),
      join(images, "link.img"),
      join(images, "../../outside/secret.img"),
      join(images, "..", "..", "outside", "x.img"),
      `${outside}/secret.img`,
      `${outside}/new.vhdx`,
      "/etc/passwd",
      "/proc/self/mem",
      "relative/path.img",
      images + "/",
      images + "//double.img",
      images + "/sub/../escape.img",
      `${images}/\u0000nul.img`,
      "/" + "a".repeat(5000),
      images + "/x".repeat(50),
    ];
    const names = [
      "fsw",
      "fz1",
      "a",
      "b",
      "c",
      "x",
      "..",
      "../..",
      "a/b",
      "%2e%2e",
      "%2F",
      "%00",
      "a".repeat(300),
      "ünï",
      "default",
      "host",
      "lab",
      "*",
      "",
    ];
    const ops = ["vm.start", "Start Virtual Machine", "vm.fly", "", "auth.admin"];
    const value = (depth = 0): unknown => {
      switch (rng.int(depth > 2 ? 5 : 8)) {
        case 0:
          return rng.int(2) === 0 ? rng.int(1 << 30) : -rng.next() * 1e20;
        case 1:
          return rng.pick(paths);
        case 2:
          return rng.pick(names);
        case 3:
          return rng.chance(0.5);
        case 4:
          return null;
        case 5:
          return [value(depth + 1), value(depth + 1)];
        case 6:
          return { [rng.pick(["name", "path", "scope", "__proto__", "constructor", "x"])]: value(depth + 1) };
        default:
          return "x".repeat(rng.int(3000));
      }
    };
    const nic = (): Record<string, unknown> => ({
      switch: rng.pick(["fsw", "fsw", "nosuch", "../x", "fz1"]),
      ...(rng.chance(0.5)
        ? { mac: rng.pick(["02:00:00:00:00:01", "01:00:00:00:00:01", "02:00:00:00:00:0G", "02-00"]) }
        : {}),
    });
    const vmDisk = (): Record<string, unknown> => ({
      path: rng.pick(paths),
      ...(rng.chance(0.3) ? { readOnly: rng.chance(0.5) } : {}),
      ...(rng.chance(0.4)
        ? { sizeBytes: rng.pick([1, 4, 64, 0.5]) * 1024 * 1024 }
        : rng.chance(0.4)
          ? { parent: rng.pick(paths) }
          : {}),
    });
    /** A body that matches the route's schema as far as this generator knows it. */
    const validish = (r: RouteDef): Record<string, unknown> => {
      switch (r.id) {
        case "createVm":
          return {
            name: `vm${rng.int(200)}`,
            scope: rng.pick(["lab", "default", "nope"]),
            memoryBytes: rng.pick([64, 128, 3, 70000]) * 1024 * 1024,
            processors: rng.pick([1, 2, 0, 65]),
            kernel: rng.chance(0.3) ? rng.pick(paths) : null,
            ...(rng.chance(0.3) ? { nics: [nic(), ...(rng.chance(0.3) ? [nic()] : [])] } : {}),
            // Disks made with the VM (new images, differencing children) and a DVD: paths to traverse.
            ...(rng.chance(0.3) ? { disks: [vmDisk(), ...(rng.chance(0.3) ? [vmDisk()] : [])] } : {}),
            ...(rng.chance(0.2) ? { dvd: rng.pick(paths) } : {}),
          };
        case "addNic":
          return nic();
        case "createSwitch":
          return {
            name: rng.pick(["fz1", "fz2", "fsw", ...names]),
            kind: rng.pick(["private", "nat", "bridge"]),
            ...(rng.chance(0.3)
              ? { hostForwards: [rng.pick(["tcp:127.0.0.1:0-:22", "tcp:999.1.1.1:80-:80", "icmp:1:2-:3"])] }
              : {}),
            ...(rng.chance(0.1) ? { tap: rng.pick(["vfz0", "../tap", "x".repeat(40)]) } : {}),
          };
        case "updateVm":
          return {
            processors: rng.pick([1, 2, 64]),
            cmdline: "console=ttyS0",
            ...(rng.chance(0.3) ? { kernel: rng.pick(paths) } : {}),
            ...(rng.chance(0.3) ? { initrd: rng.pick(paths) } : {}),
          };
        case "addDisk":
          return {
            path: rng.pick(paths),
            readOnly: rng.chance(0.5),
            ...(rng.chance(0.5)
              ? { create: { sizeBytes: rng.pick([1, 4, 64]) * 1024 * 1024, type: "dynamic" } }
              : rng.chance(0.3)
                ? { parent: rng.pick(paths) }
                : {}),
          };
        case "changeDiskPath":
        case "setDvd":
          return { path: rng.pick(paths) };
        case "stopVm":
          return { turnOff: rng.chance(0.5) };
        case "changeVmScope":
          return { scope: rng.pick(["lab", "default", "nope", "host"]) };
        case "createPrincipal":
          return { name: rng.pick(names), kind: rng.pick(["user", "group", "robot"]) };
        case "createToken":
          return { user: rng.pick(["fuzzer", "nobody", ...names]) };
        case "createRole":
          return { name: `r${rng.int(50)}`, operations: [rng.pick(ops), rng.pick(ops)] };
        case "createScope":
          return { name: rng.pick(["s1", "s2", "host", "default", "Upper", ...names]) };
        case "createAssignment":
          return {
            principal: rng.pick(["fuzzer", "nobody"]),
            role: rng.pick(["Viewer", "VM Operator", "nope"]),
            scope: rng.pick(["lab", "host", "nope"]),
          };
        case "updateServiceConfig":
          // Image roots are not fuzzed: widening them would legitimately allow paths outside the data directory.
          return rng.chance(0.5)
            ? { jobRetentionSeconds: rng.pick([1, 300, 0, 1e9]) }
            : { stopTimeoutSeconds: rng.pick([1, 60, -1]) };
        default:
          return {};
      }
    };
    const mutate = (b: Record<string, unknown>): unknown => {
      const keys = Object.keys(b);
      switch (rng.int(7)) {
        case 0:
          if (keys.length > 0) delete b[rng.pick(keys)];
          return b;
        case 1:
          b[rng.pick(["bogus", "__proto__", "extra", "constructor"])] = value();
          return b;
        case 2:
          if (keys.length > 0) b[rng.pick(keys)] = value();
          return b;
        case 3:
          return value();
        case 4:
          return [b];
        default:
          return b;
      }
    };
    const routes = ROUTES.filter((r) => !r.websocket && r.id !== "startVm");
    const methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"];
    const bad: string[] = [];
    const statuses = new Map<number, number>();
    let sent = 0;
    /** Over-limit bodies whose connection the service closed before reading them (after answering 413). */
    let resets = 0;
    const one = async (): Promise<void> => {
      const r = rng.pick(routes);
      let path = fullPath(r).replace(/:([a-z]+)/g, (_m, p: string) =>
        encodeURIComponent(
          p === "vm"
            ? rng.pick([...vmNames, ...names])
            : p === "index"
              ? rng.pick(["0", "1", "99", "-1", "x"])
              : rng.pick(names),
        ),
      );
      if (rng.chance(0.05)) path += "/" + rng.pick(["..", "%2e%2e", "x", "%00"]);
      if (rng.chance(0.1))
        path += `?${rng.pick(["timeout=1", "deleteDisks=true", "limit=5", "after=x", "bogus=1", "timeout=99999999"])}`;
      const method = rng.chance(0.9) ? r.method : rng.pick(methods);
      const kind = rng.int(20);
      let reply: Reply;
      const token = rng.chance(0.97) ? token0() : rng.pick(["vrd_x.y", "garbage", "vrd_" + "a".repeat(300)]);
      const via = rng.chance(0.5) ? "unix" : "tcp";
      const common = {
        ...(via === "tcp" || rng.chance(0.2) ? { token } : {}),
        via,
        ...(rng.chance(0.1) ? { ifMatch: rng.pick(['"nope"', "*", 'W/"x"']) } : {}),
      } as const;
      if (kind === 0) {
        // Over the body limit: the service answers 413 and may close the connection before the client has
        // sent everything (HTTP allows it), which the client sees as a reset. Then the service must still answer.
        try {
          reply = await svc.call(method, path, { ...common, raw: "x".repeat(70 * 1024 + rng.int(1000)) });
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code !== "ECONNRESET" && code !== "EPIPE") throw e;
          await svc.ok("GET", "/v1/vms");
          sent++;
          resets++;
          return;
        }
      } else if (kind === 1)
        reply = await svc.call(method, path, {
          ...common,
          raw: "[".repeat(20_000 + rng.int(10_000)) + "]".repeat(rng.int(2) ? 20_000 : 0),
        });
      else if (kind === 2)
        reply = await svc.call(method, path, {
          ...common,
          raw: '{"a":'.repeat(5000) + "1" + "}".repeat(5000),
        });
      else if (kind === 3)
        reply = await svc.call(method, path, {
          ...common,
          raw: "{not json",
          contentType: rng.pick(["application/json", "text/plain", "application/x-www-form-urlencoded"]),
        });
      else if (kind === 4)
        reply = await svc.call(method, path, {
          ...common,
          raw: Buffer.from(Array.from({ length: rng.int(200) }, () => rng.int(256))),
        });
      else {
        const body = r.body
          ? kind < 12
            ? mutate(validish(r))
            : validish(r)
          : rng.chance(0.8)
            ? undefined
            : value();
        reply = await svc.call(method, path, { ...common, ...(body !== undefined ? { body } : {}) });
      }
      sent++;
      statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
      if (reply.status >= 500) bad.push(`${method} ${path}: ${reply.status} ${reply.text.slice(0, 300)}`);
      if (reply.status >= 400 && method !== "HEAD") {
        const e = (reply.body as { error?: { code?: string; message?: string } }).error;
        if (!e || typeof e.code !== "string" || typeof e.message !== "string" || !(e.code in ERROR_STATUS))
          bad.push(
            `${method} ${path}: ${reply.status} without a stable error body: ${reply.text.slice(0, 200)}`,
          );
        else if (ERROR_STATUS[e.code as keyof typeof ERROR_STATUS] !== reply.status)
          bad.push(`${method} ${path}: code ${e.code} with status ${reply.status}`);
      }
      // Jobs started by the fuzz (disk creation, deletion) run on: their failures must be stable codes too.
    };
    const token0 = (): string => token;
    const workers = Array.from({ length: 16 }, async () => {
      while (sent < TOTAL) await one();
    });
    await Promise.all(workers);
    assert.deepEqual(bad.slice(0, 20), [], `${bad.length} bad answers`);
    // The service still answers, and every job finished with a stable code.
    const jobs = (await svc.ok("GET", "/v1/jobs")).body as Array<{
      state: string;
      error: { code: string } | null;
    }>;
    for (const j of jobs)
      if (j.error) assert.ok(j.error.code in ERROR_STATUS && j.error.code !== "internal", JSON.stringify(j));
    // Nothing outside the data directory was created, and the canaries were never read.
    assert.deepEqual(treeOf(outside, ""), canaries.slice().sort());
    for (const c of canaries)
      assert.equal(statSync(c, { bigint: true }).atimeNs, atimes.get(c), `${c} was read`);
    assert.deepEqual(treeOf(svc.root, svc.dataDir), [outside, ...canaries].sort());
    console.log(
      `# ${sent} requests (${resets} over-limit bodies cut off by the service); statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`,
    );
  });
});
