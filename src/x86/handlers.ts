// Owns: the name -> handler registry that connects opcode-table rows (`handler` field) to the group modules,
// and building the interpreter's dispatch array (indexed by OpcodeEntry.id) with the table's privilege rule
// (ring-0 rows #GP(0) at CPL > 0) applied once at build time.
// Must not: contain instruction semantics. New groups (x87/SSE) add their records with `registerHandlers`.
// Spec: Intel SDM Vol. 3A 5.9 (privileged instructions: #GP(0) when CPL > 0).

import { aluHandlers } from "./alu.js";
import { bitHandlers } from "./bits.js";
import { controlHandlers } from "./control.js";
import type { CpuCore, Handler } from "./core.js";
import { dataHandlers } from "./data.js";
import { fxsaveHandlers } from "./fxsave.js";
import type { Insn } from "./insn.js";
import { monitorMwaitHandlers } from "./monitor-mwait.js";
import { muldivHandlers } from "./muldiv.js";
import { OPCODES } from "./opcode-table.js";
import { segmentHandlers } from "./segments.js";
import { shiftHandlers } from "./shift.js";
import "./simd-table.js"; // appends the SIMD rows to OPCODES before any dispatch array is built
import { sseExtHandlers } from "./sse-ext.js";
import { sseFloatHandlers } from "./sse-float.js";
import { sseIntHandlers } from "./sse-int.js";
import { stackHandlers } from "./stack.js";
import { stringHandlers } from "./string-ops.js";
import { systemHandlers } from "./system.js";
import { x87Handlers } from "./x87.js";

export const HANDLERS: Record<string, Handler> = {};

export class HandlerRegistryError extends Error {
  override name = "HandlerRegistryError";
}

/** Adds a group's handlers; names must be unique across groups. */
export function registerHandlers(group: Record<string, Handler>): void {
  for (const [name, h] of Object.entries(group)) {
    if (HANDLERS[name] !== undefined) throw new HandlerRegistryError(`handler "${name}" registered twice`);
    HANDLERS[name] = h;
  }
}

for (const g of [
  aluHandlers,
  bitHandlers,
  controlHandlers,
  dataHandlers,
  muldivHandlers,
  segmentHandlers,
  shiftHandlers,
  stackHandlers,
  stringHandlers,
  systemHandlers,
  monitorMwaitHandlers,
  // SIMD groups (x87/MMX/SSE state and instructions)
  sseIntHandlers,
  sseFloatHandlers,
  fxsaveHandlers,
  x87Handlers,
  sseExtHandlers,
]) {
  registerHandlers(g);
}

function ring0(h: Handler): Handler {
  return (c: CpuCore, d: Insn) => {
    if (c.cpl !== 0) c.gp(0);
    h(c, d);
  };
}

/** Builds the dispatch array for the current table; throws if a row names no handler. */
export function buildDispatch(): Handler[] {
  const out: Handler[] = [];
  for (const e of OPCODES) {
    const h = HANDLERS[e.handler];
    if (h === undefined) throw new HandlerRegistryError(`${e.mnemonic}: no handler named "${e.handler}"`);
    out[e.id] = e.privilege === "ring0" ? ring0(h) : h;
  }
  return out;
}
