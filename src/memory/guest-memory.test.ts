import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestMemory, GuestMemoryError } from "./guest-memory.js";

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
