// The configuration store: validation on every read, a bad file as a state with its reason (never a crash or
// an overwrite), migrations, If-Match, atomic writes.

import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ApiError } from "../api/errors.js";
import type { VmFile } from "../api/schemas.js";
import { DataDir } from "./data-dir.js";
import { etagMatches, parseVmFile, serializeVmFile, VmStore, type Migration } from "./vm-store.js";

const root = mkdtempSync(join(tmpdir(), "viridian-vmstore-"));
after(() => rmSync(root, { recursive: true, force: true }));

function sample(id = "0b9d2f7e-3c1a-4d5e-9f00-112233445566"): VmFile {
  return {
    schemaVersion: 2,
    id,
    name: "web1",
    scope: "default",
    created: "2026-12-07T00:00:00.000Z",
    machine: {
      memoryBytes: 256 * 1024 * 1024,
      processors: 1,
      boot: { kernel: null, initrd: null, cmdline: null },
      disks: [],
      dvd: null,
      nics: [],
      time: { source: "host", paceMips: null },
      rtcOffsetSeconds: 0,
    },
    automaticStartAction: "nothing",
    automaticStopAction: "shutdown",
  };
}

describe("VmStore", () => {
  const dirs = new DataDir(join(root, "data"));
  dirs.create();
  const store = new VmStore(dirs);

  it("round-trips a configuration and versions it with an ETag", async () => {
    const etag = await store.create(sample());
    const rec = store.read(sample().id);
    assert.ok(rec.ok);
    assert.deepEqual(rec.file, sample());
    assert.equal(rec.etag, etag);
  });

  it("If-Match: the current ETag updates, a stale one is 412 and changes nothing", async () => {
    const id = sample().id;
    const cur = store.read(id);
    assert.ok(cur.ok);
    const { etag: next } = await store.update(id, cur.etag, (f) => ({
      ...f,
      machine: { ...f.machine, processors: 2 },
    }));
    assert.notEqual(next, cur.etag);
    const before = readFileSync(dirs.vmConfig(id));
    await assert.rejects(
      () => store.update(id, cur.etag, (f) => f),
      (e: unknown) => e instanceof ApiError && e.code === "precondition-failed",
    );
    assert.deepEqual(readFileSync(dirs.vmConfig(id)), before);
    assert.ok(etagMatches(`W/"x", ${next}`, next));
    assert.ok(etagMatches("*", next));
  });

  it("a hand-broken file is an invalid record with the parse error, and is never rewritten", async () => {
    const id = sample().id;
    const broken = '{"schemaVersion": 2, "id": ';
    writeFileSync(dirs.vmConfig(id), broken);
    const rec = store.read(id);
    assert.equal(rec.ok, false);
    assert.match((rec as { error: string }).error, /not JSON/);
    await assert.rejects(
      () => store.update(id, undefined, (f) => f),
      (e: unknown) => e instanceof ApiError && e.code === "invalid-configuration",
    );
    assert.equal(readFileSync(dirs.vmConfig(id), "utf8"), broken);
  });

  it("schema violations name the field; unknown fields and wrong types are refused", () => {
    const bad = { ...sample(), machine: { ...sample().machine, memoryBytes: "lots" } };
    assert.throws(() => parseVmFile(JSON.stringify(bad)), /memoryBytes/);
    assert.throws(() => parseVmFile(JSON.stringify({ ...sample(), extra: 1 })), /\//);
    assert.throws(() => parseVmFile(JSON.stringify({ ...sample(), schemaVersion: 7 })), /newer/);
    assert.throws(() => parseVmFile("[]"), /not a JSON object/);
  });

  it("migrates older documents step by step, and refuses a gap", () => {
    const doc = sample() as unknown as Record<string, unknown>;
    const v0 = { ...doc, schemaVersion: 0 } as Record<string, unknown>;
    // Version 0 is not valid (versions start at 1): a positive integer is required.
    assert.throws(() => parseVmFile(JSON.stringify(v0)), /positive integer/);
    // Documents of the current version pass through untouched, whatever the table; an absent step is an error.
    const steps: Migration[] = [{ from: 1, migrate: (d) => ({ ...d, schemaVersion: 2 }) }];
    assert.deepEqual(parseVmFile(serializeVmFile(sample()), steps), sample());
    const noStep: Migration[] = [];
    assert.deepEqual(parseVmFile(serializeVmFile(sample()), noStep), sample());
    const v1 = { ...doc, schemaVersion: 1 };
    assert.throws(() => parseVmFile(JSON.stringify(v1), noStep), /no migration to 2/);
  });

  it("a version 1 file on disk (no NICs) reads as version 2 with none, and is written as version 2", async () => {
    const id = "2b9d2f7e-3c1a-4d5e-9f00-112233445566";
    // Byte for byte what a version 1 service wrote (schema 1 had no `nics` in `machine`).
    const v1Text = `{
  "schemaVersion": 1,
  "id": "${id}",
  "name": "old1",
  "scope": "default",
  "created": "2026-12-01T10:00:00.000Z",
  "machine": {
    "memoryBytes": 134217728,
    "processors": 1,
    "boot": {
      "kernel": null,
      "initrd": null,
      "cmdline": "console=ttyS0"
    },
    "disks": [
      {
        "path": "/srv/images/old1.vhdx",
        "readOnly": false
      }
    ],
    "dvd": null,
    "time": {
      "source": "host",
      "paceMips": null
    },
    "rtcOffsetSeconds": 0
  },
  "automaticStartAction": "start-if-running",
  "automaticStopAction": "shutdown"
}
`;
    await store.create(sample(id));
    writeFileSync(dirs.vmConfig(id), v1Text);
    const rec = store.read(id);
    assert.ok(rec.ok, JSON.stringify(rec));
    assert.equal(rec.file.schemaVersion, 2);
    assert.deepEqual(rec.file.machine.nics, []);
    assert.deepEqual(rec.file.machine.disks, [{ path: "/srv/images/old1.vhdx", readOnly: false }]);
    assert.equal(rec.file.automaticStartAction, "start-if-running");
    // Reading never writes; the first change writes the current version.
    assert.equal(readFileSync(dirs.vmConfig(id), "utf8"), v1Text);
    await store.update(id, rec.etag, (f) => ({ ...f, name: "old1b" }));
    const written = JSON.parse(readFileSync(dirs.vmConfig(id), "utf8")) as VmFile;
    assert.equal(written.schemaVersion, 2);
    assert.deepEqual(written.machine.nics, []);
  });

  it("writes leave no temporary file behind", async () => {
    const id = "1b9d2f7e-3c1a-4d5e-9f00-112233445566";
    await store.create(sample(id));
    for (let i = 0; i < 20; i++)
      await store.update(id, undefined, (f) => ({ ...f, machine: { ...f.machine, rtcOffsetSeconds: i } }));
    assert.deepEqual(readdirSync(dirs.vmDir(id)).sort(), ["config.json"]);
  });

  it("changes of one VM arriving together apply one after another: none is lost, one If-Match wins", async () => {
    const id = "3b9d2f7e-3c1a-4d5e-9f00-112233445566";
    await store.create(sample(id));
    // Twenty read-modify-writes issued in one tick, each adding one: with the file written off the event
    // loop, only the per-VM order keeps every one of them.
    const bump = (f: VmFile): VmFile => ({
      ...f,
      machine: { ...f.machine, rtcOffsetSeconds: f.machine.rtcOffsetSeconds + 1 },
    });
    await Promise.all(Array.from({ length: 20 }, () => store.update(id, undefined, bump)));
    const rec = store.read(id);
    assert.ok(rec.ok);
    assert.equal(rec.file.machine.rtcOffsetSeconds, 20);
    // Two changes conditional on the same version: the second sees the first's result and is refused.
    const results = await Promise.allSettled([
      store.update(id, rec.etag, bump),
      store.update(id, rec.etag, bump),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ["fulfilled", "rejected"],
    );
    const second = results[1] as PromiseRejectedResult;
    assert.ok(second.reason instanceof ApiError && second.reason.code === "precondition-failed");
    const after = store.read(id);
    assert.ok(after.ok);
    assert.equal(after.file.machine.rtcOffsetSeconds, 21);
  });

  it("a change and a removal of one VM arriving together: the change lands first, a later one finds no VM", async () => {
    const id = "4b9d2f7e-3c1a-4d5e-9f00-112233445566";
    await store.create(sample(id));
    const bump = (f: VmFile): VmFile => ({ ...f, name: `${f.name}-b` });
    // Issued in one tick, as a PATCH and a DELETE job can be: the removal waits for the change's write (which
    // would otherwise fail in a removed directory: an internal error), and the change after it is not-found.
    const change = store.update(id, undefined, bump);
    const removal = store.remove(id);
    const late = store.update(id, undefined, bump);
    assert.equal((await change).file.name, `${sample(id).name}-b`);
    await removal;
    await assert.rejects(late, (e: unknown) => e instanceof ApiError && e.code === "not-found");
    assert.equal(store.exists(id), false);
  });
});
