// Owns: the per-processor dispatcher module. (1) The bridge to the run loop: it imports the JavaScript
// helpers once (slow-path memory access, handler calls) and exports them as WebAssembly functions, which
// the units import: instantiating a unit then needs no JavaScript call wrappers of its own. (2) The loop
// that runs translation units back to back inside
// WebAssembly while they only branch (a return, an indirect or cross-page jump or call ends a unit with
// Status.Branch): it finds the unit of the next RIP through the execute entries of the shared TLB and the
// processor's page map (RAM page -> 1 + table index), calls it through the unit table, and returns to the
// run loop when a unit needs it (Done, Signal, Interp), when no unit starts at RIP, or at the budget.
// Must not: translate addresses itself (a TLB miss goes back to the run loop, which walks the page tables),
// or change guest state: units do, and each writes its state back before it returns.
// Spec: docs/decisions/0005-wasm-tier.md (chaining); core.ts (TLB layout: region 2 = execute).

import { FuncCode, ModuleBuilder, Op, T } from "./encoder.js";
import { TLB_ENTRIES, UNIT_MAP, X, XCH } from "./layout.js";
import { BRIDGE_PARAMS, BRIDGED, Status } from "./protocol.js";

/**
 * Bytes of the dispatcher module for a processor's slot (imports: memory "x.mem", table "x.tab", the
 * JavaScript helpers "js.*"; exports: "dispatch" and the bridged helpers).
 */
export function buildDispatcher(slot: number, memPages: number, tableSize: number): Uint8Array {
  const m = new ModuleBuilder();
  const imported: Array<[string, number, readonly T[]]> = [];
  for (const [name, params] of Object.entries(BRIDGED))
    imported.push([name, m.importFunc("js", name, params, [T.I32]), params]);
  m.importMemory("x", "mem", memPages, memPages, true);
  m.importTable("x", "tab", tableSize, tableSize);
  // h(kind, a..f): one export for all of them, so that a unit imports a single function.
  const h = new FuncCode(7);
  h.block();
  for (let i = 0; i < imported.length; i++) h.block();
  h.get(0);
  h.brTable(
    imported.map((_, i) => i),
    imported.length,
  );
  for (const [, fn, params] of imported) {
    h.end();
    for (let i = 0; i < params.length; i++) h.get(1 + i);
    h.call(fn);
    h.op(Op.Return);
  }
  h.end();
  h.op(Op.Unreachable);
  m.exportFunc("h", m.addFunc(BRIDGE_PARAMS, [T.I32], h));
  const runType = m.type([T.I32, T.I32, T.I32, T.I32], [T.I32]);
  const xb = slot + XCH;
  const xa = (s: number): number => xb + s * 4;
  // dispatch(ripLo, ripHi, budget) -> status; RIP and the total count in the exchange area.
  const c = new FuncCode(3);
  const rip = c.locals(1, T.I64);
  const total = c.locals(1, T.I32);
  const st = c.locals(1, T.I32);
  const t = c.locals(1, T.I32);
  const u = c.locals(1, T.I32);
  c.get(0);
  c.op(Op.I64ExtendI32U);
  c.get(1);
  c.op(Op.I64ExtendI32U);
  c.i64(32, 0);
  c.op(Op.I64Shl);
  c.op(Op.I64Or);
  c.set(rip);
  c.i32(Status.NoEntry);
  c.set(st);
  c.block(); // done
  c.loop();
  // The execute TLB entry of RIP's page (region 2 of the privilege's TLB).
  c.get(rip);
  c.i64(12, 0);
  c.op(Op.I64ShrU);
  c.op(Op.I32WrapI64);
  c.i32(511);
  c.op(Op.I32And);
  c.i32(3);
  c.op(Op.I32Shl);
  c.i32(0);
  c.mem(Op.I32Load, 2, xa(X.Tlbu));
  c.op(Op.I32Add);
  c.tee(t);
  c.mem(Op.F64Load, 3, 2 * 512 * 8);
  c.get(rip);
  c.i64(12, 0);
  c.op(Op.I64ShrS);
  c.op(Op.F64ConvertI64S);
  c.op(Op.F64Ne);
  c.brIf(1);
  // The unit of its RAM page.
  c.get(t);
  c.mem(Op.F64Load, 3, TLB_ENTRIES * 8 + 2 * 512 * 8);
  c.op(Op.I32TruncF64U);
  c.i32(12);
  c.op(Op.I32ShrU);
  c.i32(1);
  c.op(Op.I32Shl);
  c.mem(Op.I32Load16U, 1, slot + UNIT_MAP);
  c.tee(u);
  c.op(Op.I32Eqz);
  c.brIf(1);
  // Tell the helpers which unit runs, its RIP base and the count so far.
  c.i32(0);
  c.get(u);
  c.mem(Op.I32Store, 2, xa(X.Unit));
  c.i32(0);
  c.get(rip);
  c.op(Op.I32WrapI64);
  c.i32(~0xfff);
  c.op(Op.I32And);
  c.mem(Op.I32Store, 2, xa(X.BaseLo));
  c.i32(0);
  c.get(rip);
  c.i64(32, 0);
  c.op(Op.I64ShrU);
  c.op(Op.I32WrapI64);
  c.mem(Op.I32Store, 2, xa(X.BaseHi));
  c.i32(0);
  c.get(total);
  c.mem(Op.I32Store, 2, xa(X.Chain));
  // run(page offset, ripBaseLo, ripBaseHi, budget left)
  c.get(rip);
  c.op(Op.I32WrapI64);
  c.i32(0xfff);
  c.op(Op.I32And);
  c.i32(0);
  c.mem(Op.I32Load, 2, xa(X.BaseLo));
  c.i32(0);
  c.mem(Op.I32Load, 2, xa(X.BaseHi));
  c.get(2);
  c.get(total);
  c.op(Op.I32Sub);
  c.get(u);
  c.i32(1);
  c.op(Op.I32Sub);
  c.callIndirect(runType);
  c.tee(st);
  c.i32(Status.NoEntry);
  c.op(Op.I32Eq);
  c.brIf(1);
  c.get(total);
  c.i32(0);
  c.mem(Op.I32Load, 2, xa(X.Count));
  c.op(Op.I32Add);
  c.set(total);
  c.get(st);
  c.i32(Status.Branch);
  c.op(Op.I32Ne);
  c.brIf(1);
  c.i32(0);
  c.mem(Op.I64Load, 3, xa(X.RipLo));
  c.set(rip);
  c.get(total);
  c.get(2);
  c.op(Op.I32LtU);
  c.brIf(0);
  c.end(); // loop (budget reached after a branch)
  c.end(); // done
  // RIP: where chaining stopped (the unit stored it for Done, Branch and Interp; kept for the rest).
  c.get(st);
  c.i32(Status.NoEntry);
  c.op(Op.I32Eq);
  c.if_();
  c.i32(0);
  c.get(rip);
  c.mem(Op.I64Store, 3, xa(X.RipLo));
  c.end();
  c.i32(0);
  c.get(total);
  c.mem(Op.I32Store, 2, xa(X.Count));
  c.get(st);
  m.exportFunc("dispatch", m.addFunc([T.I32, T.I32, T.I32], [T.I32], c));
  return m.finish();
}
