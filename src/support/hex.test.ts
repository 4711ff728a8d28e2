import { test } from "node:test";
import assert from "node:assert/strict";
import { hex32, hex64 } from "./hex.js";

test("hex32 pads and treats negatives as unsigned", () => {
  assert.equal(hex32(0x1f), "0x0000001f");
  assert.equal(hex32(-1), "0xffffffff");
  assert.equal(hex32(0xab, 2), "0xab");
});

test("hex64 joins the halves high first", () => {
  assert.equal(hex64(0x89abcdef | 0, 0x01234567), "0x0123456789abcdef");
  assert.equal(hex64(-1, -1), "0xffffffffffffffff");
});
