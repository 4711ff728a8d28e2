import { test } from "node:test";
import assert from "node:assert/strict";
import { Bytes, FuncCode, ModuleBuilder, Op, OpFC, T } from "./encoder.js";

function leb(write: (b: Bytes) => void): number[] {
  const b = new Bytes(1);
  write(b);
  return [...b.result()];
}

test("LEB128 encodings match the specification's examples", () => {
  assert.deepEqual(
    leb((b) => b.u32(0)),
    [0],
  );
  assert.deepEqual(
    leb((b) => b.u32(624485)),
    [0xe5, 0x8e, 0x26],
  );
  assert.deepEqual(
    leb((b) => b.u32(0xffffffff)),
    [0xff, 0xff, 0xff, 0xff, 0x0f],
  );
  assert.deepEqual(
    leb((b) => b.s32(-123456)),
    [0xc0, 0xbb, 0x78],
  );
  assert.deepEqual(
    leb((b) => b.s32(63)),
    [0x3f],
  );
  assert.deepEqual(
    leb((b) => b.s32(64)),
    [0xc0, 0x00],
  );
  assert.deepEqual(
    leb((b) => b.s32(-64)),
    [0x40],
  );
  assert.deepEqual(
    leb((b) => b.s32(-65)),
    [0xbf, 0x7f],
  );
  assert.deepEqual(
    leb((b) => b.s64(0, 0)),
    [0],
  );
  assert.deepEqual(
    leb((b) => b.s64(-1, -1)),
    [0x7f],
  );
  // 2^63 - 1 and -2^63 take ten bytes.
  assert.deepEqual(
    leb((b) => b.s64(-1, 0x7fffffff)),
    [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00],
  );
  assert.deepEqual(
    leb((b) => b.s64(0, -0x80000000)),
    [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f],
  );
});

/** Compiles a module whose function "f" has the given signature and body. */
function compile(params: T[], results: T[], emit: (c: FuncCode) => void): WebAssembly.Instance {
  const m = new ModuleBuilder();
  const c = new FuncCode(params.length);
  emit(c);
  m.exportFunc("f", m.addFunc(params, results, c));
  const bytes = m.finish();
  assert.ok(WebAssembly.validate(bytes), "the module validates");
  return new WebAssembly.Instance(new WebAssembly.Module(bytes));
}

test("i64 constants round-trip through the engine for every bit position and sign", () => {
  const vals: bigint[] = [0n, 1n, -1n, 63n, 64n, -64n, -65n, 0x7fffffffffffffffn, -0x8000000000000000n];
  for (let i = 0; i < 64; i++) vals.push(1n << BigInt(i), -(1n << BigInt(i)), (1n << BigInt(i)) - 1n);
  for (const v of vals) {
    const u = BigInt.asUintN(64, v);
    const lo = Number(u & 0xffffffffn) | 0;
    const hi = Number(u >> 32n) | 0;
    const inst = compile([], [T.I64], (c) => c.i64(lo, hi));
    const f = inst.exports.f as () => bigint;
    assert.equal(f(), BigInt.asIntN(64, v), `constant ${v}`);
  }
});

test("control flow: a loop with br_if and a br_table dispatch", () => {
  // sum = 0; for (i = n; i != 0; i--) sum += i; then select by sum % 3 through br_table.
  const inst = compile([T.I32], [T.I32], (c) => {
    const sum = c.locals(1, T.I32);
    c.block();
    c.loop();
    c.get(0);
    c.op(Op.I32Eqz);
    c.brIf(1);
    c.get(sum);
    c.get(0);
    c.op(Op.I32Add);
    c.set(sum);
    c.get(0);
    c.i32(1);
    c.op(Op.I32Sub);
    c.set(0);
    c.br(0);
    c.end();
    c.end();
    c.block();
    c.block();
    c.block();
    c.get(sum);
    c.i32(3);
    c.op(Op.I32RemU);
    c.brTable([0, 1], 2);
    c.end();
    c.i32(100);
    c.op(Op.Return);
    c.end();
    c.i32(200);
    c.op(Op.Return);
    c.end();
    c.i32(300);
  });
  const f = inst.exports.f as (n: number) => number;
  for (let n = 0; n < 20; n++) {
    const s = (n * (n + 1)) / 2;
    assert.equal(f(n), [100, 200, 300][s % 3]);
  }
});

test("a shared imported memory is the SharedArrayBuffer JavaScript sees; loads, stores and fill", () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  assert.ok(memory.buffer instanceof SharedArrayBuffer);
  const m = new ModuleBuilder();
  m.importMemory("m", "mem", 1, 1, true);
  // f(addr): mem64[addr + 8] = mem64[addr] + 1 (unaligned allowed); then fill 4 bytes at 100 with 0xab.
  const c = new FuncCode(1);
  c.get(0);
  c.get(0);
  c.mem(Op.I64Load, 0, 0);
  c.i64(1, 0);
  c.op(Op.I64Add);
  c.mem(Op.I64Store, 0, 8);
  c.i32(100);
  c.i32(0xab);
  c.i32(4);
  c.prefixed(OpFC.MemoryFill);
  c.u8(0);
  m.exportFunc("f", m.addFunc([T.I32], [], c));
  const inst = new WebAssembly.Instance(new WebAssembly.Module(m.finish()), { m: { mem: memory } });
  const dv = new DataView(memory.buffer);
  dv.setBigUint64(3, 0xffffffffn, true);
  (inst.exports.f as (a: number) => void)(3);
  assert.equal(dv.getBigUint64(11, true), 0x100000000n);
  assert.deepEqual([...new Uint8Array(memory.buffer, 99, 6)], [0, 0xab, 0xab, 0xab, 0xab, 0]);
});

test("imported JavaScript functions are called with i32 and i64 arguments", () => {
  const m = new ModuleBuilder();
  const seen: Array<[number, bigint]> = [];
  const h = m.importFunc("js", "h", [T.I32, T.I64], [T.I32]);
  const c = new FuncCode(0);
  c.i32(-7);
  c.i64(5, -2);
  c.call(h);
  m.exportFunc("f", m.addFunc([], [T.I32], c));
  const inst = new WebAssembly.Instance(new WebAssembly.Module(m.finish()), {
    js: {
      h: (a: number, b: bigint) => {
        seen.push([a, b]);
        return 42;
      },
    },
  });
  assert.equal((inst.exports.f as () => number)(), 42);
  assert.deepEqual(seen, [[-7, BigInt.asIntN(64, (-2n << 32n) | 5n)]]);
});

test("if/else with a typed result, sign extension and saturating truncation", () => {
  const inst = compile([T.I32], [T.I64], (c) => {
    c.get(0);
    c.if_(T.I64);
    c.i32(0x80);
    c.op(Op.I32Extend8S);
    c.op(Op.I64ExtendI32S);
    c.else_();
    c.f64(1e30);
    c.prefixed(OpFC.I64TruncSatF64U);
    c.end();
  });
  const f = inst.exports.f as (x: number) => bigint;
  assert.equal(f(1), -128n);
  assert.equal(f(0), -1n);
});
