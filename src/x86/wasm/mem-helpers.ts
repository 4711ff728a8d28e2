// Owns: the memory access code of translation units: the inline probe of the shared software TLB (core.ts
// layout: tags, then RAM offsets; region 0 read, 1 write, at the privilege's base address `tlbr`) that
// reaches RAM directly on a hit, and the slow-path functions every unit module defines, which call the
// run loop's linear-address accessors (CpuCore.readLin / readLinRmw / writeLin, after the stack segment's
// canonical check) and report faults and exits by return value.
// Must not: touch guest registers or flags, or access RAM without a TLB hit for the whole access.
// Spec: Intel SDM Vol. 3A 4.10 (TLBs), 6.15 (#SS for non-canonical stack references); core.ts readLin.

import { FuncCode, type ModuleBuilder, Op, T } from "./encoder.js";
import type { Emitter } from "./emitter.js";
import { TLB_ENTRIES, X, XCH } from "./layout.js";

/** Locals the inline probe uses (allocated by the unit). */
export interface ProbeLocals {
  la: number;
  t: number;
  tlbr: number;
}

/**
 * Emits the fast-path test for `size` bytes at linear address `la` in TLB region `region` (0 read, 1
 * write): pushes 1 when the access may go straight to RAM; local t then holds the TLB entry's address.
 */
export function emitProbe(e: Emitter, l: ProbeLocals, region: number, size: number): void {
  e.get(l.la);
  e.i64s(12);
  e.op(Op.I64ShrU);
  e.op(Op.I32WrapI64);
  e.i32(511);
  e.op(Op.I32And);
  e.i32(3);
  e.op(Op.I32Shl);
  e.get(l.tlbr);
  e.op(Op.I32Add);
  e.tee(l.t);
  e.mem(Op.F64Load, 3, region * 512 * 8);
  e.get(l.la);
  e.i64s(12);
  e.op(Op.I64ShrS);
  e.op(Op.F64ConvertI64S);
  e.op(Op.F64Eq);
  if (size > 1) {
    // The access must not cross the page: offset <= 4096 - size.
    e.get(l.la);
    e.op(Op.I32WrapI64);
    e.i32(0xfff);
    e.op(Op.I32And);
    e.i32(4096 - size);
    e.op(Op.I32LeU);
    e.op(Op.I32And);
  }
}

/** Pushes the RAM address of a probed hit: the entry's page offset plus la's offset in the page. */
export function emitHost(e: Emitter, l: ProbeLocals, region: number): void {
  e.get(l.t);
  e.mem(Op.F64Load, 3, TLB_ENTRIES * 8 + region * 512 * 8);
  e.op(Op.I32TruncF64U);
  e.get(l.la);
  e.op(Op.I32WrapI64);
  e.i32(0xfff);
  e.op(Op.I32And);
  e.op(Op.I32Add);
}

export const LOAD_OPS: Record<number, Op> = {
  1: Op.I64Load8U,
  2: Op.I64Load16U,
  4: Op.I64Load32U,
  8: Op.I64Load,
};
export const STORE_OPS: Record<number, Op> = {
  1: Op.I64Store8,
  2: Op.I64Store16,
  4: Op.I64Store32,
  8: Op.I64Store,
};

/**
 * Adds the slow-path functions to module m, in this order:
 *   load(la i64, segSize i32) -> (value i64, status i32)      segSize = seg | size << 4
 *   loadRmw(la i64, segSize i32) -> (value i64, status i32)   the read of a read-modify-write destination
 *   store(la i64, segSize i32, value i64) -> status i32
 * with status 0 done, 1 done and the unit stops after this instruction (a device was read or written: the
 * run loop looks at events then, docs/decisions/0004; or a store hit code), 2 fault.
 * They call the run loop's accessors through the imported bridge function `bridge`
 * (h(kind, seg, laLo, laHi, size, vLo, vHi) -> status, dispatch.ts).
 */
export function addSlowPaths(m: ModuleBuilder, bridge: number, slot: number): void {
  const key = `${bridge}:${slot}`;
  let f = slowPaths.get(key);
  if (f === undefined) {
    const xb = slot + XCH;
    f = [slowLoad(bridge, KIND_RD, xb), slowLoad(bridge, KIND_RDW, xb), slowStore(bridge)];
    slowPaths.set(key, f);
  }
  m.addFunc([T.I64, T.I32], [T.I64, T.I32], f[0]);
  m.addFunc([T.I64, T.I32], [T.I64, T.I32], f[1]);
  m.addFunc([T.I64, T.I32, T.I64], [T.I32], f[2]);
}

/** The slow-path bodies by bridge index and slot: the same in every unit of a processor, built once. */
const slowPaths = new Map<string, readonly [FuncCode, FuncCode, FuncCode]>();

/** The bridge's kinds for the accessors (dispatch.ts BRIDGED order). */
const KIND_RD = 0;
const KIND_RDW = 1;
const KIND_WR = 2;

function slowArgs(c: FuncCode, kind: number): void {
  c.i32(kind);
  c.get(1);
  c.i32(15);
  c.op(Op.I32And);
  c.get(0);
  c.op(Op.I32WrapI64);
  c.get(0);
  c.i64(32, 0);
  c.op(Op.I64ShrU);
  c.op(Op.I32WrapI64);
  c.get(1);
  c.i32(4);
  c.op(Op.I32ShrU);
}

function slowLoad(bridge: number, kind: number, xb: number): FuncCode {
  const c = new FuncCode(2);
  const st = c.locals(1, T.I32);
  slowArgs(c, kind);
  c.i32(0);
  c.i32(0);
  c.call(bridge);
  c.tee(st);
  c.i32(1);
  c.op(Op.I32GtU);
  c.if_();
  c.i64(0, 0);
  c.i32(2);
  c.op(Op.Return);
  c.end();
  c.i32(0);
  c.mem(Op.I64Load, 3, xb + X.ValLo * 4);
  c.get(st);
  return c;
}

function slowStore(bridge: number): FuncCode {
  const c = new FuncCode(3);
  slowArgs(c, KIND_WR);
  c.get(2);
  c.op(Op.I32WrapI64);
  c.get(2);
  c.i64(32, 0);
  c.op(Op.I64ShrU);
  c.op(Op.I32WrapI64);
  c.call(bridge);
  return c;
}
