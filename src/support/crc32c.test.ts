import { test } from "node:test";
import assert from "node:assert/strict";
import { crc32c, crc32cWithHole } from "./crc32c.js";

const ascii = (s: string) => new TextEncoder().encode(s);

test("crc32c matches the standard check value and RFC 3720 B.4 vectors", () => {
  assert.equal(crc32c(ascii("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
  assert.equal(crc32c(new Uint8Array(0)), 0);
});

test("crc32c can be continued across pieces of any length", () => {
  const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 131 + 7) & 0xff);
  const whole = crc32c(data);
  for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
    assert.equal(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut))), whole, `cut ${cut}`);
  }
});

test("crc32cWithHole treats the checksum field as zero", () => {
  const data = Uint8Array.from({ length: 64 }, (_, i) => i + 1);
  const zeroed = data.slice();
  zeroed.fill(0, 4, 8);
  assert.equal(crc32cWithHole(data, 4), crc32c(zeroed));
});
