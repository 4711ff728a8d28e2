import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AmlError,
  buffer,
  device,
  eisaId,
  eisaIdValue,
  integer,
  method,
  name,
  nameString,
  pkg,
  pkgLength,
  resourceDescriptor,
  resourceTemplate,
  ret,
  scope,
  string,
} from "./aml.js";

const bytes = (a: Uint8Array): number[] => [...a];
const ch = (s: string): number[] => Array.from(s, (c) => c.charCodeAt(0));

test("PkgLength uses 1-4 bytes and counts itself", () => {
  assert.deepEqual(bytes(pkgLength(0)), [0x01]);
  assert.deepEqual(bytes(pkgLength(62)), [0x3f]);
  assert.deepEqual(bytes(pkgLength(63)), [0x41, 0x04]); // 65 = 0x041
  assert.deepEqual(bytes(pkgLength(0xffd)), [0x4f, 0xff]); // 0xfff
  assert.deepEqual(bytes(pkgLength(0xffe)), [0x81, 0x00, 0x01]); // 0x1001
  assert.deepEqual(bytes(pkgLength(0xffffd)), [0xc1, 0x00, 0x00, 0x01]); // 0x100001
  assert.throws(() => pkgLength(0x10000000), AmlError);
  assert.throws(() => pkgLength(-1), AmlError);
});

test("NameString: root, parent, dual and multi-segment paths, NullName", () => {
  assert.deepEqual(bytes(nameString("\\_SB.COM1")), [0x5c, 0x2e, ...ch("_SB_COM1")]);
  assert.deepEqual(bytes(nameString("^^FOO")), [0x5e, 0x5e, ...ch("FOO_")]);
  assert.deepEqual(bytes(nameString("A.B.C")), [0x2f, 3, ...ch("A___B___C___")]);
  assert.deepEqual(bytes(nameString("_S5")), ch("_S5_"));
  assert.deepEqual(bytes(nameString("\\")), [0x5c, 0x00]);
  for (const bad of ["1ABC", "ABCDE", "a", "A..B", "A-B"])
    assert.throws(() => nameString(bad), AmlError, bad);
});

test("integers take the shortest encoding; strings are NUL-terminated ASCII", () => {
  assert.deepEqual(bytes(integer(0)), [0x00]);
  assert.deepEqual(bytes(integer(1)), [0x01]);
  assert.deepEqual(bytes(integer(2)), [0x0a, 0x02]);
  assert.deepEqual(bytes(integer(0x100)), [0x0b, 0x00, 0x01]);
  assert.deepEqual(bytes(integer(0x10000)), [0x0c, 0x00, 0x00, 0x01, 0x00]);
  assert.deepEqual(bytes(integer(2 ** 32)), [0x0e, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.throws(() => integer(-1), AmlError);
  assert.throws(() => integer(1.5), AmlError);
  assert.deepEqual(bytes(string("ab")), [0x0d, 0x61, 0x62, 0x00]);
  assert.throws(() => string("é"), AmlError);
});

test("EISA IDs compress to the values ASL's EISAID() produces", () => {
  assert.equal(eisaIdValue("PNP0501"), 0x0105d041);
  assert.equal(eisaIdValue("PNP0303"), 0x0303d041);
  assert.equal(eisaIdValue("PNP0B00"), 0x000bd041);
  assert.deepEqual(bytes(eisaId("PNP0000")), [0x0b, 0x41, 0xd0]);
  assert.throws(() => eisaIdValue("pnp0501"), AmlError);
});

test("resource descriptors", () => {
  assert.deepEqual(
    bytes(resourceDescriptor({ kind: "io", min: 0x3f8, length: 8 })),
    [0x47, 1, 0xf8, 3, 0xf8, 3, 1, 8],
  );
  assert.deepEqual(bytes(resourceDescriptor({ kind: "irq", irqs: [4] })), [0x22, 0x10, 0x00]);
  assert.deepEqual(bytes(resourceDescriptor({ kind: "irq", irqs: [8, 15] })), [0x22, 0x00, 0x81]);
  assert.deepEqual(
    bytes(resourceDescriptor({ kind: "memory32", base: 0xfec00000, length: 0x1000 })),
    [0x86, 9, 0, 1, 0, 0, 0xc0, 0xfe, 0, 0x10, 0, 0],
  );
  assert.deepEqual(
    bytes(resourceDescriptor({ kind: "interrupt", gsis: [5] })),
    [0x89, 6, 0, 0x03, 1, 5, 0, 0, 0],
  );
  assert.deepEqual(
    bytes(
      resourceDescriptor({ kind: "interrupt", gsis: [9, 0x100], level: true, activeLow: true, shared: true }),
    ),
    [0x89, 10, 0, 0x0d, 2, 9, 0, 0, 0, 0, 1, 0, 0],
  );
  assert.throws(() => resourceDescriptor({ kind: "irq", irqs: [16] }), AmlError);
  assert.throws(() => resourceDescriptor({ kind: "io", min: 0x10000, length: 1 }), AmlError);
  assert.throws(() => resourceDescriptor({ kind: "io", min: 0x10, max: 0x8, length: 1 }), AmlError);
  // End Tag checksum: 0x22 + 0x10 + 0x79 = 0xab, so 0x55.
  assert.deepEqual(
    bytes(resourceTemplate([{ kind: "irq", irqs: [4] }])),
    [0x11, 0x08, 0x0a, 0x05, 0x22, 0x10, 0x00, 0x79, 0x55],
  );
});

test("Name, Device, Method/Return, Package, Scope, Buffer", () => {
  assert.deepEqual(bytes(name("_UID", integer(1))), [0x08, ...ch("_UID"), 0x01]);
  assert.deepEqual(bytes(device("COM1", [name("_UID", integer(1))])), [
    0x5b,
    0x82,
    0x0b,
    ...ch("COM1"),
    0x08,
    ...ch("_UID"),
    0x01,
  ]);
  assert.deepEqual(bytes(method("_STA", 0, false, [ret(integer(0xf))])), [
    0x14,
    0x09,
    ...ch("_STA"),
    0x00,
    0xa4,
    0x0a,
    0x0f,
  ]);
  assert.deepEqual(bytes(method("_DSM", 4, true, [])), [0x14, 0x06, ...ch("_DSM"), 0x0c]);
  assert.deepEqual(bytes(pkg([integer(0), integer(0)])), [0x12, 0x04, 0x02, 0x00, 0x00]);
  assert.deepEqual(bytes(scope("\\_SB", [])), [0x10, 0x06, 0x5c, ...ch("_SB_")]);
  assert.deepEqual(bytes(buffer(Uint8Array.of(1, 2))), [0x11, 0x05, 0x0a, 0x02, 0x01, 0x02]);
  // A body past 63 bytes switches the enclosing PkgLength to two bytes.
  const big = device("BIG", [name("_STR", string("x".repeat(60)))]);
  assert.deepEqual(bytes(big.subarray(0, 4)), [
    0x5b,
    0x82,
    0x40 | ((big.length - 2) & 0xf),
    (big.length - 2) >> 4,
  ]);
  assert.throws(() => pkg(new Array(256).fill(integer(0))), AmlError);
  assert.throws(() => method("_X", 8, false, []), AmlError);
});
