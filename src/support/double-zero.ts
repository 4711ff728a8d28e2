// Owns: the initial value of number fields that will hold values outside V8's small-integer range (times in
// ns, TSC counts, unsigned 32-bit halves): a +0 that is a heap number, so V8 gives the field its double
// representation when the object is built. A field that starts as a small integer and later receives a
// double changes its object's hidden class (the old one is deprecated), which deoptimises every optimised
// function that saw the old class; one such change in the processor deoptimised ~130 functions per boot
// (docs/decisions/0005, Round 5).
// Must not: be replaced by the literal 0 or an arithmetic result (V8 makes those small integers), or by -0
// (a heap number too, but its sign is observable: Object.is, assert.strictEqual, 1 / x).
// Spec: ECMA-262 (Float64Array element reads); V8's field representations (Smi, Double, HeapObject,
// Tagged) are an engine property, not a standard: checked with %HaveSameMap (docs/decisions/0005).

/**
 * Zero as a heap number (a Float64Array element read yields one): the initial value of fields whose values
 * may leave the 31-bit integer range.
 */
export const DOUBLE_ZERO: number = new Float64Array(1)[0] ?? 0;
