// Durability of configuration writes (issue 12, acceptance 4): two clients (one on the UNIX socket, one on
// loopback TCP with a token) make 500 read-modify-write updates of one VM's configuration with If-Match while
// the service is SIGKILLed at random moments (a seeded generator) and restarted. After every kill and at the
// end: the file on disk parses, and equals the last version a client was told succeeded or one whose request
// was in flight when the service died (never an older one: no acknowledged update is lost). No two updates
// succeed on the same base version (a lost update); the losers of a race get 412 with the stable code.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { routePath } from "../../src/api/routes.js";
import { TestService, type CallOptions, type Reply } from "./harness.js";

const TOTAL = Number(process.env.VIRIDIAN_DURABILITY_UPDATES ?? 500);
const SEED = Number(process.env.VIRIDIAN_DURABILITY_SEED ?? 0x5eed1234);

/** xorshift32: the kill moments are reproducible from the seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

interface VmFileJson {
  machine: { boot: { cmdline: string | null } };
}
interface VmView {
  id: string;
  etag: string | null;
  config: VmFileJson | null;
}

describe("durability of configuration writes (issue 12, acceptance 4)", { timeout: 1_800_000 }, () => {
  let svc: TestService;
  let token = "";
  let vmId = "";
  before(async () => {
    svc = new TestService("durability");
    await svc.start();
    token = await svc.principal("tcp-admin", "Administrator", "host");
    vmId = ((await svc.ok("POST", routePath("createVm"), { body: { name: "durable" } })).body as VmView).id;
  });
  after(async () => {
    await svc.close();
  });

  it(`${TOTAL} updates from two clients while the service is SIGKILLed: nothing acknowledged is lost, no silent overwrite`, async (t) => {
    const path = routePath("updateVm", { vm: vmId });
    const file = join(svc.dataDir, "vms", vmId, "config.json");
    /** The file a client was told exists, by cmdline value (each update writes a unique one). */
    const acked = new Map<string, VmFileJson>();
    /** Values in acknowledgement order. */
    const ackOrder: string[] = [];
    /** If-Match of each acknowledged update: two alike would be a lost update. */
    const bases = new Map<string, string>();
    /** Values whose request had no answer (the service died): applied or not, both are fine. */
    const unknown = new Set<string>();
    let attempts = 0;
    let conflicts = 0;
    /** Client requests not yet settled (answered and recorded, or failed). */
    let inFlight = 0;
    let kills = 0;
    const random = rng(SEED);

    const client = async (name: string, o: CallOptions): Promise<void> => {
      for (;;) {
        if (attempts >= TOTAL) return;
        let current: Reply;
        try {
          current = await svc.call("GET", routePath("getVm", { vm: vmId }), o);
        } catch {
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        if (current.status !== 200) {
          // 503 while the service closes is the only other answer a read may get here.
          assert.equal(current.status, 503, current.text);
          continue;
        }
        const base = (current.body as VmView).etag!;
        const value = `${name}-${++attempts}`;
        let r: Reply;
        inFlight++;
        try {
          r = await svc.call("PATCH", path, { ...o, ifMatch: base, body: { cmdline: value } });
        } catch {
          unknown.add(value);
          inFlight--;
          continue;
        }
        if (r.status === 200) {
          const vm = r.body as VmView;
          assert.equal(vm.config?.machine.boot.cmdline, value);
          assert.equal(bases.has(base), false, `two updates succeeded on ${base}`);
          bases.set(base, value);
          acked.set(value, vm.config!);
          ackOrder.push(value);
        } else if (r.status === 412) {
          assert.equal((r.body as { error: { code: string } }).error.code, "precondition-failed");
          conflicts++;
        } else {
          assert.equal(r.status, 503, r.text);
          unknown.add(value);
        }
        inFlight--;
      }
    };

    /** The file on disk: parses, and is the last acknowledged version or one in flight since. */
    const check = (): void => {
      const onDisk = JSON.parse(readFileSync(file, "utf8")) as VmFileJson;
      const value = onDisk.machine.boot.cmdline;
      const last = ackOrder.at(-1);
      if (value !== null && unknown.has(value)) {
        // An update nobody heard about landed: it must be newer than the last acknowledged one.
        const n = Number(value.split("-").at(-1));
        if (last !== undefined) assert.ok(n > Number(last.split("-").at(-1)), `${value} older than ${last}`);
        return;
      }
      assert.equal(value, last ?? null, "the last acknowledged update is on disk");
      if (last !== undefined) assert.deepEqual(onDisk, acked.get(last));
    };

    const killer = async (): Promise<void> => {
      while (attempts < TOTAL) {
        // A random moment: after 5-80 further update attempts.
        const at = attempts + 5 + Math.floor(random() * 76);
        while (attempts < at && attempts < TOTAL) await new Promise((r) => setTimeout(r, 1 + random() * 5));
        if (attempts >= TOTAL) return;
        await svc.kill();
        kills++;
        // Once every request of the dead service is answered or failed, the disk holds a version a client knows.
        while (inFlight > 0) await new Promise((r) => setTimeout(r, 5));
        check();
        await svc.start();
      }
    };

    await Promise.all([client("unix", {}), client("tcp", { token }), killer()]);
    check();
    // The service reads the same file back and agrees.
    const final = (await svc.ok("GET", routePath("getVm", { vm: vmId }))).body as VmView;
    assert.deepEqual(final.config, JSON.parse(readFileSync(file, "utf8")));
    t.diagnostic(
      `${attempts} attempts: ${ackOrder.length} acknowledged, ${conflicts} got 412, ${unknown.size} unanswered; ${kills} SIGKILLs`,
    );
    assert.ok(kills >= 5, `the service was killed ${kills} times`);
    assert.ok(conflicts > 0, "the two clients raced (412s seen)");
    assert.ok(ackOrder.length > TOTAL / 4, "most updates went through");
  });
});
