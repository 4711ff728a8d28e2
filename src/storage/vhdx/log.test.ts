import { test } from "node:test";
import assert from "node:assert/strict";
import { buildLogEntry, entryBytes, findActiveSequence, validateReplay } from "./log.js";
import { randomGuid } from "../../support/ms-guid.js";
import { crc32c } from "../../support/crc32c.js";
import { MiB, put32 } from "./layout.js";

const LOG_OFFSET = MiB;
const page = (v: number) => new Uint8Array(4096).fill(v);

function place(log: Uint8Array, pos: number, entry: Uint8Array): void {
  for (let i = 0; i < entry.length; i++) log[(pos + i) % log.length] = entry[i]!;
}

test("entries round-trip: leading and trailing bytes live in the descriptor", () => {
  const g = randomGuid();
  const data = page(0x11);
  data.set([1, 2, 3, 4, 5, 6, 7, 8], 0);
  data.set([9, 10, 11, 12], 4092);
  const log = new Uint8Array(MiB);
  place(log, 0, buildLogEntry(1, 0, g, 8 * MiB, 8 * MiB, [{ offset: 3 * MiB, data }]));
  const seq = findActiveSequence(log, g, LOG_OFFSET)!;
  assert.equal(seq.entries, 1);
  assert.deepEqual(seq.ops, [{ kind: "data", offset: 3 * MiB, data }]);
  assert.equal(entryBytes(1), 8192);
});

test("a multi-entry sequence replays from the head's tail, in order", () => {
  const g = randomGuid();
  const log = new Uint8Array(MiB);
  const e1 = buildLogEntry(7, 4096, g, 8 * MiB, 8 * MiB, [{ offset: 3 * MiB, data: page(1) }]);
  const e2 = buildLogEntry(8, 4096, g, 8 * MiB, 8 * MiB, [{ offset: 3 * MiB, data: page(2) }]);
  const e3 = buildLogEntry(9, 4096, g, 8 * MiB, 9 * MiB, [{ offset: 3 * MiB + 4096, data: page(3) }]);
  place(log, 4096, e1);
  place(log, 4096 + e1.length, e2);
  place(log, 4096 + e1.length + e2.length, e3);
  const seq = findActiveSequence(log, g, LOG_OFFSET)!;
  assert.equal(seq.entries, 3);
  assert.equal(seq.headSequence, 9);
  assert.deepEqual(
    seq.ops.map((o) => (o.kind === "data" ? o.data[100] : -1)),
    [1, 2, 3],
  );
  assert.equal(seq.lastFileOffset, 9 * MiB);
});

test("a newer entry whose tail chain is incomplete loses to an older complete sequence", () => {
  const g = randomGuid();
  const log = new Uint8Array(MiB);
  place(log, 0, buildLogEntry(3, 0, g, 8 * MiB, 8 * MiB, [{ offset: 3 * MiB, data: page(3) }]));
  // Head 10 claims its sequence starts at 512 KiB, where there is no entry 9.
  place(
    log,
    64 * 1024,
    buildLogEntry(10, 512 * 1024, g, 8 * MiB, 8 * MiB, [{ offset: 3 * MiB, data: page(10) }]),
  );
  const seq = findActiveSequence(log, g, LOG_OFFSET)!;
  assert.equal(seq.headSequence, 3);
});

test("entries may wrap around the end of the log", () => {
  const g = randomGuid();
  const log = new Uint8Array(MiB);
  const e = buildLogEntry(5, MiB - 4096, g, 8 * MiB, 8 * MiB, [
    { offset: 3 * MiB, data: page(5) },
    { offset: 3 * MiB + 4096, data: page(6) },
  ]);
  place(log, MiB - 4096, e);
  const seq = findActiveSequence(log, g, LOG_OFFSET)!;
  assert.equal(seq.ops.length, 2);
});

test("entries of another log, with a bad checksum, or writing the header or the log are ignored", () => {
  const g = randomGuid();
  const log = new Uint8Array(MiB);
  place(log, 0, buildLogEntry(1, 0, randomGuid(), 8 * MiB, 8 * MiB, [{ offset: 3 * MiB, data: page(1) }]));
  assert.equal(findActiveSequence(log, g, LOG_OFFSET), null);
  const bad = buildLogEntry(2, 0, g, 8 * MiB, 8 * MiB, [{ offset: 3 * MiB, data: page(1) }]);
  bad[5000] = bad[5000]! ^ 1;
  place(log, 0, bad);
  assert.equal(findActiveSequence(log, g, LOG_OFFSET), null);
  place(log, 0, buildLogEntry(2, 0, g, 8 * MiB, 8 * MiB, [{ offset: 64 * 1024, data: page(1) }]));
  assert.equal(findActiveSequence(log, g, LOG_OFFSET), null);
  place(log, 0, buildLogEntry(2, 0, g, 8 * MiB, 8 * MiB, [{ offset: LOG_OFFSET + 8192, data: page(1) }]));
  assert.equal(findActiveSequence(log, g, LOG_OFFSET), null);
});

test("zero descriptors are parsed and replay is refused on a truncated file", () => {
  const g = randomGuid();
  const log = new Uint8Array(MiB);
  const e = buildLogEntry(4, 0, g, 16 * MiB, 16 * MiB, [{ offset: 3 * MiB, data: page(1) }]);
  // Turn the data descriptor into a zero descriptor of 8 KiB and re-checksum.
  e.set([0x7a, 0x65, 0x72, 0x6f], 64);
  put32(e, 68, 0);
  put32(e, 72, 8192);
  put32(e, 76, 0);
  put32(e, 4, 0);
  put32(e, 4, crc32c(e));
  place(log, 0, e);
  const seq = findActiveSequence(log, g, LOG_OFFSET)!;
  assert.deepEqual(seq.ops, [{ kind: "zero", offset: 3 * MiB, length: 8192 }]);
  assert.throws(() => validateReplay(seq, 8 * MiB), /truncated/);
  validateReplay(seq, 16 * MiB);
});

test("a log of huge overlapping entry headers is refused instead of scanned quadratically", () => {
  const g = randomGuid();
  const log = new Uint8Array(64 * MiB);
  const e = buildLogEntry(1, 0, g, 8 * MiB, 8 * MiB, []);
  put32(e, 8, 64 * MiB); // every header claims the whole log
  for (let pos = 0; pos < log.length; pos += 4096) log.set(e.subarray(0, 64), pos);
  assert.throws(() => findActiveSequence(log, g, LOG_OFFSET), /too many overlapping entry headers/);
});
