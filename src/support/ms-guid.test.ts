import { test } from "node:test";
import assert from "node:assert/strict";
import { formatGuid, parseGuid, randomGuid, guidEquals, isZeroGuid } from "./ms-guid.js";

test("GUIDs use the mixed-endian on-disk layout", () => {
  // The VHDX BAT region GUID as it appears in qemu's tables (data1 little-endian first).
  const g = parseGuid("2DC27766-F623-4200-9D64-115E9BFD4A08")!;
  assert.deepEqual(
    [...g],
    [0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42, 0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08],
  );
  assert.equal(formatGuid(g), "2dc27766-f623-4200-9d64-115e9bfd4a08");
  assert.ok(guidEquals(parseGuid("{2dc27766-f623-4200-9d64-115e9bfd4a08}")!, g));
});

test("parseGuid rejects malformed text", () => {
  for (const bad of [
    "",
    "2DC27766F62342009D64115E9BFD4A08",
    "{2DC27766-F623-4200-9D64-115E9BFD4A0}",
    "x".repeat(36),
  ]) {
    assert.equal(parseGuid(bad), null, bad);
  }
});

test("randomGuid is version 4 and unique", () => {
  const a = randomGuid();
  const b = randomGuid();
  assert.ok(!guidEquals(a, b));
  assert.ok(!isZeroGuid(a));
  assert.equal(formatGuid(a)[14], "4");
  assert.ok("89ab".includes(formatGuid(a)[19]!));
});
