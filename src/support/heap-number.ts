// Owns: numbers that V8 holds as heap numbers (doubles), for two engine effects measured on the boot
// (docs/decisions/0005, Round 5):
// - a field initialised with one gets V8's double representation from the start. A field that starts as a
//   small integer (the literal 0) and later receives a value outside the 31-bit range changes its object's
//   hidden class (the old one is deprecated), which deoptimises every optimised function that saw the old
//   class: the TSC passing 2^31 in `Cpu.tscLast` deoptimised ~130 functions per boot;
// - an arithmetic operation with one as an operand records "number" type feedback from its first run, so
//   optimised code computes in doubles instead of speculating on small integers and deoptimising at the
//   first result past 2^31 (the TLB tag `hi * 2^20 + vpn` of a kernel address).
// Must not: be replaced by literals or arithmetic results (V8 makes integral ones small integers), or by -0
// (a heap number too, but its sign is observable: Object.is, assert.strictEqual, 1 / x).
// Spec: ECMA-262 (Float64Array element reads); V8's field representations and binary-operation feedback
// are engine properties, not a standard: checked with %HaveSameMap and --trace-deopt.

/** `v` as a heap number: a Float64Array element read yields one. Call at module load, not on hot paths. */
export function heapNumber(v: number): number {
  const cell = new Float64Array(1);
  cell[0] = v;
  return cell[0] ?? v;
}

/** +0 as a heap number: the initial value of fields whose values may leave V8's small-integer (int32) range. */
export const DOUBLE_ZERO: number = heapNumber(0);
