import { test } from "node:test";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { DOUBLE_ZERO, heapNumber } from "./heap-number.js";

// V8's own check of two objects' hidden classes; the flag applies to functions parsed after it is set.
setFlagsFromString("--allow-natives-syntax");
const sameMap = new Function("a", "b", "return %HaveSameMap(a, b)") as (a: object, b: object) => boolean;

class Fields {
  fromDoubleZero = DOUBLE_ZERO;
  fromLiteral = 0;
}

test("DOUBLE_ZERO is +0", () => {
  assert.equal(DOUBLE_ZERO, 0);
  assert.ok(Object.is(DOUBLE_ZERO, 0));
});

test("a field initialised with DOUBLE_ZERO takes doubles without changing its object's hidden class", () => {
  const a = new Fields();
  const b = new Fields();
  a.fromDoubleZero = 2 ** 40;
  assert.ok(sameMap(a, b));
  // The same store into a field that started as a small integer does change it (the check can fail).
  a.fromLiteral = 2 ** 40;
  assert.ok(!sameMap(a, b));
});

test("heapNumber keeps the value", () => {
  assert.equal(heapNumber(1048576), 1048576);
  assert.equal(heapNumber(-3.5), -3.5);
});
