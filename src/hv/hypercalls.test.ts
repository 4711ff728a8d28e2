import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestMemory, PAGE_WRITE } from "../memory/guest-memory.js";
import { Reg } from "../x86/processor.js";
import {
  checkInputBlock,
  decodeControl,
  executeHypercall,
  HypercallOutcome,
  type HypercallHost,
} from "./hypercalls.js";
import * as T from "./tlfs.js";

class Regs {
  r = new Map<number, { lo: number; hi: number }>();
  xmm = new Int32Array(64);
  getReg(reg: Reg): { lo: number; hi: number } {
    return this.r.get(reg) ?? { lo: 0, hi: 0 };
  }
  setReg(reg: Reg, lo: number, hi: number): void {
    this.r.set(reg, { lo, hi });
  }
}

function host(features = 0): HypercallHost & { log: string[] } {
  const log: string[] = [];
  return {
    memory: new GuestMemory(1 << 20),
    vpCount: 2,
    privilegesHigh: 0x30,
    features,
    log,
    flushTlb: (vp, ng) => log.push(`flush ${vp} ${ng}`),
    sendIpi: (vp, v) => log.push(`ipi ${vp} ${v}`),
    postMessage: (vp, c, t, p) => (
      log.push(`post ${vp} ${c} ${t} ${p.length}`),
      c === 1 ? 0 : T.HV_STATUS_INVALID_CONNECTION_ID
    ),
    signalEvent: (vp, c, f) => (
      log.push(`signal ${vp} ${c} ${f}`),
      c === 5 ? 0 : T.HV_STATUS_INVALID_CONNECTION_ID
    ),
  };
}

function call(
  h: HypercallHost,
  rcx: [number, number],
  rdx: [number, number] = [0, 0],
  r8: [number, number] = [0, 0],
) {
  const regs = new Regs();
  regs.setReg(Reg.RCX, rcx[0], rcx[1]);
  regs.setReg(Reg.RDX, rdx[0], rdx[1]);
  regs.setReg(Reg.R8, r8[0], r8[1]);
  const out = executeHypercall(h, 0, regs, true);
  const rax = regs.getReg(Reg.RAX);
  return { out, status: rax.lo & 0xffff, reps: rax.hi & 0xfff, regs };
}

test("control word decoding", () => {
  assert.deepEqual(decodeControl(0x0003 | (1 << 16) | (5 << 17), 7 | (3 << 16)), {
    code: 3,
    fast: true,
    varHeaderQwords: 5,
    repCount: 7,
    repStart: 3,
    reservedSet: false,
  });
  assert.equal(decodeControl(1 << 27, 0).reservedSet, true);
  assert.equal(decodeControl(1 << 31, 0).reservedSet, true);
  assert.equal(decodeControl(0, 1 << 12).reservedSet, true);
  assert.equal(decodeControl(0, 1 << 28).reservedSet, true);
});

test("common status codes: code, reserved bits, rep rules, variable header, fast, alignment, page crossing", () => {
  const h = host();
  assert.equal(call(h, [0x0001, 0]).status, T.HV_STATUS_INVALID_HYPERCALL_CODE);
  assert.equal(call(h, [0x8001, 0]).status, T.HV_STATUS_INVALID_HYPERCALL_CODE);
  assert.equal(call(h, [0x5d | (1 << 16) | (1 << 28), 0]).status, T.HV_STATUS_INVALID_HYPERCALL_INPUT);
  assert.equal(
    call(h, [0x5d | (1 << 16), 1]).status,
    T.HV_STATUS_INVALID_HYPERCALL_INPUT,
    "rep count on a simple call",
  );
  assert.equal(
    call(h, [0x5d | (1 << 16), 1 << 16]).status,
    T.HV_STATUS_INVALID_HYPERCALL_INPUT,
    "rep start on a simple call",
  );
  assert.equal(
    call(h, [0x0003, 0], [0x1000, 0]).status,
    T.HV_STATUS_INVALID_HYPERCALL_INPUT,
    "rep call with count 0",
  );
  assert.equal(
    call(h, [0x0003, 2 | (2 << 16)], [0x1000, 0]).status,
    T.HV_STATUS_INVALID_HYPERCALL_INPUT,
    "start >= count",
  );
  assert.equal(
    call(h, [0x5d | (1 << 16) | (1 << 17), 0]).status,
    T.HV_STATUS_INVALID_HYPERCALL_INPUT,
    "var header",
  );
  assert.equal(
    call(h, [0x5c | (1 << 16), 0]).status,
    T.HV_STATUS_INVALID_HYPERCALL_INPUT,
    "PostMessage is memory-only",
  );
  assert.equal(call(h, [0x5c, 0], [0x1004, 0]).status, T.HV_STATUS_INVALID_ALIGNMENT);
  assert.equal(call(h, [0x5c, 0], [0x1f08, 0]).status, T.HV_STATUS_INVALID_ALIGNMENT, "crosses a page");
  assert.equal(call(h, [0x5c, 0], [0x200000, 0]).status, T.HV_STATUS_INVALID_ALIGNMENT, "beyond RAM");
  assert.equal(call(h, [0x5c, 0], [0, 0x10]).status, T.HV_STATUS_INVALID_ALIGNMENT, "far above RAM");
  assert.equal(
    call(h, [0x0003, 600], [0x1000, 0]).status,
    T.HV_STATUS_INVALID_ALIGNMENT,
    "rep list crosses a page",
  );
  h.memory.rights[1] = PAGE_WRITE;
  assert.equal(call(h, [0x5c, 0], [0x1000, 0]).status, T.HV_STATUS_ACCESS_DENIED, "page not readable");
  assert.equal(checkInputBlock(h.memory, 0x2000, 8), 0);
});

test("XMM fast input: #UD unless offered; then the block spans RDX, R8 and XMM0-5", () => {
  assert.equal(call(host(), [0x0002 | (1 << 16), 0]).out, HypercallOutcome.InvalidOpcode);
  const h = host(T.FEATURE_XMM_HYPERCALL_INPUT);
  const regs = new Regs();
  regs.setReg(Reg.RCX, 0x0002 | (1 << 16), 0);
  regs.setReg(Reg.R8, 0, 0); // flags
  regs.xmm[0] = 2; // processor mask: VP 1
  assert.equal(executeHypercall(h, 0, regs, true), HypercallOutcome.Completed);
  assert.equal(regs.getReg(Reg.RAX).lo, 0);
  assert.deepEqual(h.log, ["flush 1 false"]);
  assert.equal(
    call(h, [0x0003 | (1 << 16), 12]).status,
    T.HV_STATUS_INVALID_HYPERCALL_INPUT,
    "over 112 bytes",
  );
});

test("flush: flags and VP sets; rep calls report every rep completed", () => {
  const h = host();
  const v = new DataView(h.memory.buffer);
  v.setUint32(0x1008, 1, true); // ALL_PROCESSORS
  let r = call(h, [0x0003, 3], [0x1000, 0]);
  assert.deepEqual([r.status, r.reps], [0, 3]);
  assert.deepEqual(h.log.splice(0), ["flush 0 false", "flush 1 false"]);
  v.setUint32(0x1008, 8, true);
  assert.equal(call(h, [0x0002, 0], [0x1000, 0]).status, T.HV_STATUS_INVALID_PARAMETER);
  v.setUint32(0x1008, 4, true);
  assert.equal(
    call(h, [0x0003, 1], [0x1000, 0]).status,
    T.HV_STATUS_INVALID_PARAMETER,
    "non-global on a list",
  );
  // Ex: sparse set, bank 0 = VP 1, one bank in the variable header
  v.setUint32(0x1008, 0, true);
  v.setUint32(0x1010, 0, true); // format 0
  v.setUint32(0x1018, 1, true); // bank 0 valid
  v.setUint32(0x1020, 2, true); // VP 1
  r = call(h, [0x0013 | (1 << 17), 0], [0x1000, 0]);
  assert.equal(r.status, 0);
  assert.deepEqual(h.log.splice(0), ["flush 1 false"]);
  assert.equal(
    call(h, [0x0013, 0], [0x1000, 0]).status,
    T.HV_STATUS_INVALID_HYPERCALL_INPUT,
    "bank count mismatch",
  );
  v.setUint32(0x1010, 2, true);
  assert.equal(
    call(h, [0x0013 | (1 << 17), 0], [0x1000, 0]).status,
    T.HV_STATUS_INVALID_HYPERCALL_INPUT,
    "format 2",
  );
});

test("IPI, post message, signal event, long spin wait", () => {
  const h = host();
  assert.equal(call(h, [0x000b | (1 << 16), 0], [0x0f, 0], [3, 0]).status, T.HV_STATUS_INVALID_PARAMETER);
  assert.equal(call(h, [0x000b | (1 << 16), 0], [0x100, 0], [3, 0]).status, T.HV_STATUS_INVALID_PARAMETER);
  assert.equal(
    call(h, [0x000b | (1 << 16), 0], [0x30 | ((1 << 8) * 0), 1], [3, 0]).status,
    T.HV_STATUS_INVALID_PARAMETER,
    "VTL",
  );
  assert.equal(call(h, [0x000b | (1 << 16), 0], [0x30, 0], [7, 0]).status, 0);
  assert.deepEqual(h.log.splice(0), ["ipi 0 48", "ipi 1 48"]);
  const v = new DataView(h.memory.buffer);
  v.setUint32(0x3000, 1, true);
  v.setUint32(0x3008, 0, true);
  assert.equal(call(h, [0x5c, 0], [0x3000, 0]).status, T.HV_STATUS_INVALID_PARAMETER, "type 0");
  v.setUint32(0x3008, 0x80000001, true);
  assert.equal(call(h, [0x5c, 0], [0x3000, 0]).status, T.HV_STATUS_INVALID_PARAMETER, "type msb");
  v.setUint32(0x3008, 1, true);
  v.setUint32(0x300c, 241, true);
  assert.equal(call(h, [0x5c, 0], [0x3000, 0]).status, T.HV_STATUS_INVALID_PARAMETER, "size");
  v.setUint32(0x300c, 240, true);
  assert.equal(call(h, [0x5c, 0], [0x3000, 0]).status, 0);
  v.setUint32(0x3000, 2, true);
  assert.equal(call(h, [0x5c, 0], [0x3000, 0]).status, T.HV_STATUS_INVALID_CONNECTION_ID);
  assert.equal(call(h, [0x5d | (1 << 16), 0], [5, 3]).status, 0);
  assert.equal(call(h, [0x5d | (1 << 16), 0], [6, 0]).status, T.HV_STATUS_INVALID_CONNECTION_ID);
  assert.equal(call(h, [0x5d | (1 << 16), 0], [5 | 0x01000000, 0]).status, T.HV_STATUS_INVALID_CONNECTION_ID);
  assert.deepEqual(h.log.splice(0), ["post 0 1 1 240", "post 0 2 1 240", "signal 0 5 3", "signal 0 6 0"]);
  assert.equal(call(h, [0x0008 | (1 << 16), 0], [1000, 0]).status, 0);
  const noPriv = { ...host(), privilegesHigh: 0 };
  assert.equal(call(noPriv, [0x5d | (1 << 16), 0], [5, 0]).status, T.HV_STATUS_ACCESS_DENIED);
  assert.equal(call(noPriv, [0x5c, 0], [0x3004, 0]).status, T.HV_STATUS_ACCESS_DENIED);
});

test("32-bit convention: EDX:EAX control, EBX:ECX input, result in EDX:EAX", () => {
  const h = host();
  const regs = new Regs();
  regs.setReg(Reg.RAX, 0x0003, 0);
  regs.setReg(Reg.RDX, 2, 0); // rep count 2 in the high dword
  regs.setReg(Reg.RCX, 0x1000, 0);
  regs.setReg(Reg.RBX, 0, 0);
  new DataView(h.memory.buffer).setUint32(0x1008, 1, true);
  executeHypercall(h, 0, regs, false);
  assert.equal(regs.getReg(Reg.RAX).lo, 0);
  assert.equal(regs.getReg(Reg.RDX).lo, 2);
});
