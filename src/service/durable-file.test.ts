// Tests of durable-file.ts: the synchronous and thread-pool writes leave the last contents and no temporary
// file; background writes keep per-file order, answer reads with the newest version, coalesce, and report
// failures without throwing.

import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { BackgroundDurableWrites, writeFileDurable, writeFileDurableAsync } from "./durable-file.js";

const dir = mkdtempSync(join(tmpdir(), "viridian-durable-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("durable-file", () => {
  it("writeFileDurable and writeFileDurableAsync replace a file whole and leave no temporary file", async () => {
    const p = join(dir, "a.json");
    writeFileDurable(p, "one\n");
    await writeFileDurableAsync(p, "two\n");
    assert.equal(readFileSync(p, "utf8"), "two\n");
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith(".")),
      [],
    );
  });

  it("background writes: the last version wins, reads see it before it is on disk, flush waits for it", async () => {
    const p = join(dir, "state.json");
    const q = join(dir, "other.json");
    const w = new BackgroundDurableWrites();
    for (let i = 0; i < 200; i++) {
      w.write(p, `v${i}\n`);
      if (i % 7 === 0) await new Promise((r) => setImmediate(r));
      assert.equal(w.latest(p), `v${i}\n`);
    }
    w.write(q, "q\n");
    await w.flush();
    assert.equal(readFileSync(p, "utf8"), "v199\n");
    assert.equal(readFileSync(q, "utf8"), "q\n");
    assert.equal(w.latest(p), undefined);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith(".")),
      [],
    );
  });

  it("a failed background write is reported, not thrown, and later writes of the file go on", async () => {
    const errors: string[] = [];
    const w = new BackgroundDurableWrites((path, e) =>
      errors.push(`${path}: ${(e as NodeJS.ErrnoException).code}`),
    );
    const gone = join(dir, "no-such-dir", "state.json");
    w.write(gone, "x\n");
    await w.flush();
    assert.deepEqual(errors, [`${gone}: ENOENT`]);
    const p = join(dir, "after.json");
    w.write(p, "ok\n");
    await w.flush();
    assert.equal(readFileSync(p, "utf8"), "ok\n");
  });
});
