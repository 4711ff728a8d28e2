// The audit log's reads: backward (GET /v1/audit?before=: the newest entries before a sequence number) and
// forward (after a number), from memory and from the file alike (a reopened log has only the file), oldest
// first, bounded; a torn line in the file (a crash mid-append) is skipped.

import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { AuditLog } from "./audit-log.js";

const seqs = (es: Array<{ seq: number }>) => es.map((e) => e.seq);

describe("AuditLog.readBefore", () => {
  it("answers the newest entries before a number, from memory and from the file the same way", () => {
    const dir = mkdtempSync(join(tmpdir(), "viridian-audit-"));
    try {
      const path = join(dir, "audit.log");
      const log = new AuditLog(path);
      for (let i = 0; i < 30; i++)
        log.append({ principal: "p", operation: "vm.start", target: `t${i}`, result: "allow", reason: null });
      const cases: Array<[number, number, number, number[]]> = [
        [1e15, 0, 5, [26, 27, 28, 29, 30]],
        [10, 0, 3, [7, 8, 9]],
        [10, 7, 5, [8, 9]],
        [3, 0, 10, [1, 2]],
        [1, 0, 10, []],
      ];
      for (const [before, after, limit, want] of cases)
        assert.deepEqual(
          seqs(log.readBefore(before, after, limit)),
          want,
          `memory ${before} ${after} ${limit}`,
        );
      log.close();
      const reopened = new AuditLog(path);
      for (const [before, after, limit, want] of cases)
        assert.deepEqual(
          seqs(reopened.readBefore(before, after, limit)),
          want,
          `file ${before} ${after} ${limit}`,
        );
      assert.deepEqual(seqs(reopened.read(27, 10)), [28, 29, 30], "forward, from the file");
      assert.deepEqual(seqs(reopened.read(0, 2)), [1, 2]);
      // New entries after the reopen: the newest come from memory, older ones from the file.
      reopened.append({ principal: "p", operation: "vm.stop", target: "t", result: "deny", reason: "no" });
      assert.deepEqual(seqs(reopened.readBefore(1e15, 0, 3)), [29, 30, 31]);
      reopened.close();
      // A torn last line (the service killed mid-append) is skipped by both readers.
      appendFileSync(path, '{"seq": 32, "time": "2026-');
      const torn = new AuditLog(path);
      assert.deepEqual(seqs(torn.read(29, 10)), [30, 31]);
      assert.deepEqual(seqs(torn.readBefore(1e15, 0, 2)), [30, 31]);
      // The next entry lands on a line of its own and reads back, from memory and from the file.
      torn.append({
        principal: "p",
        operation: "vm.start",
        target: "after-crash",
        result: "allow",
        reason: null,
      });
      assert.deepEqual(seqs(torn.read(30, 10)), [31, 32]);
      torn.close();
      const again = new AuditLog(path);
      assert.deepEqual(seqs(again.read(30, 10)), [31, 32]);
      assert.equal(again.read(31, 1)[0]?.target, "after-crash");
      again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
