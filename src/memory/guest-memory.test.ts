import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { GuestMemory, GuestMemoryError, MAX_GUEST_MEMORY, PAGE_SIZE, ramPageOf } from "./guest-memory.js";

test("RAM above the MMIO hole is remapped above 4 GiB", () => {
  const m = new GuestMemory(0x20000, 0x10000);
  assert.equal(m.offsetOf(0xfff0), 0xfff0);
  assert.equal(m.offsetOf(0x10000), -1);
  assert.equal(m.offsetOf(0x1_0000_0000), 0x10000);
  assert.equal(m.offsetOf(0x1_0000_ffff), 0x1ffff);
  assert.equal(m.offsetOf(0x1_0001_0000), -1);
  assert.deepEqual(m.ramRanges(), [
    { base: 0, length: 0x10000 },
    { base: 0x1_0000_0000, length: 0x10000 },
  ]);
});

test("root-side access outside RAM is refused, never wraps", () => {
  const m = new GuestMemory(0x10000);
  assert.throws(() => m.read(0xfffc, new Uint8Array(8)), GuestMemoryError);
  assert.throws(() => m.write(-4096, new Uint8Array(1)), GuestMemoryError);
  assert.throws(() => m.read(2 ** 60, new Uint8Array(1)), GuestMemoryError);
  m.write(0x100, Uint8Array.of(1, 2, 3));
  const out = new Uint8Array(3);
  m.read(0x100, out);
  assert.deepEqual([...out], [1, 2, 3]);
});

test("writes to code pages notify caches once", () => {
  const m = new GuestMemory(0x10000);
  const seen: number[] = [];
  m.onCodeWrite = (p) => seen.push(p);
  m.codePages[2] = 1;
  m.write(0x1ffe, Uint8Array.of(9, 9, 9, 9));
  m.write(0x2000, Uint8Array.of(1));
  assert.deepEqual(seen, [2]);
});

test("sizes are validated", () => {
  assert.throws(() => new GuestMemory(1000), GuestMemoryError);
  assert.throws(() => new GuestMemory(0), GuestMemoryError);
});

test("the size limit is named", () => {
  assert.throws(() => new GuestMemory(MAX_GUEST_MEMORY + PAGE_SIZE), /exceeds the 64 GiB limit/);
});

const GiB = 1024 ** 3;

/** Resident set of this process in bytes (Linux /proc), or null elsewhere. */
function residentBytes(): number | null {
  if (!existsSync("/proc/self/status")) return null;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) * 1024 : null;
}

test("RAM past 4 GiB: root-side access across the typed-array window boundary, pages past 2^20", () => {
  // 5 GiB: 3 GiB below the hole, 2 GiB at 4..6 GiB; RAM offset 4 GiB (a window boundary) is GPA 5 GiB.
  const m = new GuestMemory(5 * GiB);
  assert.equal(m.byteWindows.length, 5, "1 GiB windows");
  assert.throws(() => m.bytes, /no single byte view/);
  const boundary = 5 * GiB;
  assert.equal(m.offsetOf(boundary), 4 * GiB);
  m.write(boundary - 3, Uint8Array.of(1, 2, 3, 4, 5, 6));
  const back = new Uint8Array(6);
  m.read(boundary - 3, back);
  assert.deepEqual([...back], [1, 2, 3, 4, 5, 6]);
  assert.equal(m.view.getUint8(4 * GiB), 4, "the DataView sees the same bytes");
  assert.equal(m.byteWindows[4]![0], 4);
  assert.equal(m.byteWindows[3]![2 ** 30 - 1], 3);
  // The top page of RAM, and nothing past it.
  m.fill(6 * GiB - PAGE_SIZE, PAGE_SIZE, 0xab);
  assert.equal(m.view.getUint8(5 * GiB - 1), 0xab);
  assert.throws(() => m.fill(6 * GiB - PAGE_SIZE, PAGE_SIZE + 1, 0), GuestMemoryError);
  // A/D-style atomic OR at an offset past 2^32.
  m.atomicOr32(4 * GiB + 8, 0x60);
  assert.equal(m.view.getUint32(4 * GiB + 8, true), 0x60);
  // Code-page bookkeeping uses the true page number, not one wrapped at 2^32 bytes (2^20 pages).
  const seen: number[] = [];
  m.onCodeWrite = (p) => seen.push(p);
  const high = ramPageOf(4 * GiB + 0x5000);
  assert.equal(high, 2 ** 20 + 5);
  m.codePages[high] = 1;
  m.codePages[5] = 1;
  m.write(boundary + 0x5000, Uint8Array.of(7));
  assert.deepEqual(seen, [high], "the page past 4 GiB was dropped, page 5 kept");
  assert.equal(m.codePages[5], 1);
});

test("processor-side copies and fills stay in their window; a copy across windows works", () => {
  const m = new GuestMemory(5 * GiB);
  m.view.setUint32(0x1000, 0xdeadbeef, true);
  m.copyOffsets(4 * GiB + 0x2000, 0x1000, 4);
  assert.equal(m.view.getUint32(4 * GiB + 0x2000, true), 0xdeadbeef);
  m.copyOffsets(0x3000, 4 * GiB + 0x2000, 4);
  assert.equal(m.view.getUint32(0x3000, true), 0xdeadbeef);
  m.fillOffsets(4 * GiB - 16, 16, 0x11);
  assert.equal(m.view.getUint8(4 * GiB - 1), 0x11);
  assert.equal(m.view.getUint8(4 * GiB), 0, "the fill stopped at its end");
});

test("clear() zeroes every written page and commits no host memory for the untouched rest", () => {
  const m = new GuestMemory(6 * GiB);
  const before = residentBytes();
  m.write(0x1000, Uint8Array.of(1));
  m.write(3 * GiB - 1, Uint8Array.of(2)); // the last byte below the hole
  m.write(4 * GiB, Uint8Array.of(3)); // the first byte above 4 GiB
  m.write(7 * GiB - 1, Uint8Array.of(4)); // the last byte of RAM (offset 6 GiB - 1, the last window)
  // A processor mapping a page for writing stores through it without noteWrite.
  m.noteWritable(ramPageOf(5 * GiB));
  m.view.setUint8(5 * GiB + 17, 5);
  m.clear();
  for (const off of [0x1000, 3 * GiB - 1, 3 * GiB, 6 * GiB - 1, 5 * GiB + 17])
    assert.equal(m.view.getUint8(off), 0, `offset 0x${off.toString(16)}`);
  const after = residentBytes();
  if (before !== null && after !== null) {
    // Zero-filling all 6 GiB would commit all of it; a few pages (and the runtime's own noise) are far less.
    assert.ok(after - before < 256 * 1024 ** 2, `resident set grew by ${(after - before) / 1024 ** 2} MiB`);
  }
});
