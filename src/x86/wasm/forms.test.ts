// Owns: tests of the translator's per-instruction classifications (forms.ts handlerName, plan.ts endKind
// and isStraight): they are cached per opcode table slot, and must follow the entry an instruction decoded
// to, including entries registered after the caches were first used.
// Must not: decode or translate anything (the differential and boot tests cover that).
// Spec: opcode-table.ts registerRows (the table grows); plan.ts EndKind.

import { test } from "node:test";
import assert from "node:assert/strict";
import "../handlers.js";
import { Insn } from "../insn.js";
import { OPCODES, type OpcodeEntry } from "../opcode-table.js";
import { handlerName } from "./forms.js";
import { EndKind, endKind, isStraight } from "./plan.js";

function insnOf(e: OpcodeEntry, osize = 8): Insn {
  const d = new Insn();
  d.entry = e;
  d.op = e.id;
  d.osize = osize;
  return d;
}

test("handlerName is the entry's handler for every opcode table row", () => {
  for (const e of OPCODES) assert.equal(handlerName(insnOf(e)), e.handler);
});

test("classifications follow the entry in an opcode slot, also for rows added later", () => {
  const base = OPCODES.find((e) => e.handler === "add")!;
  // Slots past the table's current end, as rows registered later (x87/SSE groups) get.
  const op = OPCODES.length + 7;
  const jmp: OpcodeEntry = { ...base, id: op, handler: "jmp" };
  const add: OpcodeEntry = { ...base, id: op, handler: "add" };
  const cli: OpcodeEntry = { ...base, id: op, handler: "cli" };
  const hlt: OpcodeEntry = { ...base, id: op, handler: "hlt" };
  assert.equal(handlerName(insnOf(jmp)), "jmp");
  assert.equal(endKind(insnOf(jmp)), EndKind.Jmp);
  assert.equal(isStraight(insnOf(jmp)), false);
  // Another entry in the same slot: nothing cached for the first one may answer for it.
  assert.equal(handlerName(insnOf(add)), "add");
  assert.equal(endKind(insnOf(add)), -1);
  assert.equal(isStraight(insnOf(add)), true);
  assert.equal(endKind(insnOf(cli)), -1);
  assert.equal(endKind(insnOf(hlt)), EndKind.Terminal);
  assert.equal(handlerName(insnOf(hlt)), "hlt");
  // A control transfer ends a block as such only with its 64-bit operand size.
  assert.equal(endKind(insnOf(jmp, 4)), EndKind.Terminal);
});
