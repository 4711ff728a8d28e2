import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestMemory, PAGE_READ } from "../memory/guest-memory.js";
import { LocalApic } from "./local-apic.js";
import { Synic } from "./synic.js";
import * as T from "./tlfs.js";

function setup(): { mem: GuestMemory; s: Synic; got: number[]; autoEoi: boolean[] } {
  const mem = new GuestMemory(1 << 20);
  const s = new Synic(mem);
  const got: number[] = [];
  const autoEoi: boolean[] = [];
  s.target = {
    acceptFixed: (v, _level, auto) => {
      got.push(v);
      autoEoi.push(auto === true);
    },
  };
  return { mem, s, got, autoEoi };
}

test("SynIC MSRs: reset values, SVERSION read-only, SINT vector rules", () => {
  const { s } = setup();
  assert.deepEqual(s.readMsr(T.MSR_SINT0 + 2), { ok: true, lo: T.SINT_MASKED, hi: 0 });
  assert.deepEqual(s.readMsr(T.MSR_SVERSION), { ok: true, lo: 1, hi: 0 });
  assert.equal(s.writeMsr(T.MSR_SVERSION, 1, 0).ok, false);
  assert.equal(s.writeMsr(T.MSR_SINT0, 0x0f, 0).ok, false, "unmasked vector < 16");
  assert.equal(s.writeMsr(T.MSR_SINT0, 0x1000f, 0).ok, true, "masked vector < 16 is fine");
  assert.equal(s.writeMsr(T.MSR_SINT0 + 2, 0xf3, 0).ok, true);
  assert.deepEqual(s.readMsr(T.MSR_EOM), { ok: true, lo: 0, hi: 0 });
  assert.equal(s.readMsr(T.MSR_SINT15 + 1).ok, false);
});

test("SIMP/SIEFP must be RAM of this partition with write rights; enabling zeroes the page", () => {
  const { mem, s } = setup();
  assert.equal(s.writeMsr(T.MSR_SIMP, 0x200001, 0).ok, false, "beyond RAM");
  assert.equal(s.writeMsr(T.MSR_SIMP, 0x1, 1).ok, false, "above 4 GiB, not RAM");
  mem.bytes.fill(0xaa, 0x3000, 0x4000);
  mem.rights[3] = PAGE_READ;
  assert.equal(s.writeMsr(T.MSR_SIEFP, 0x3001, 0).ok, false, "no write right");
  mem.rights[3] = 7;
  assert.equal(s.writeMsr(T.MSR_SIEFP, 0x3001, 0).ok, true);
  assert.equal(mem.bytes[0x3123], 0);
});

test("message delivery: free slot, busy slot sets message-pending and queues, EOM redelivers in order", () => {
  const { mem, s, got } = setup();
  const v = new DataView(mem.buffer);
  assert.equal(s.postMessage(2, 1, new Uint8Array([1])), T.HV_STATUS_INVALID_SYNIC_STATE, "SynIC off");
  s.writeMsr(T.MSR_SCONTROL, 1, 0);
  assert.equal(s.postMessage(2, 1, new Uint8Array([1])), T.HV_STATUS_INVALID_SYNIC_STATE, "SIMP off");
  s.writeMsr(T.MSR_SIMP, 0x5001, 0);
  s.writeMsr(T.MSR_SINT0 + 2, 0xf3, 0);
  const slot = 0x5000 + 2 * 256;
  assert.equal(s.postMessage(2, 7, new Uint8Array([0x11, 0x22])), 0);
  assert.equal(v.getUint32(slot, true), 7);
  assert.equal(mem.bytes[slot + 4], 2);
  assert.equal(mem.bytes[slot + 16], 0x11);
  assert.deepEqual(got, [0xf3]);
  assert.equal(s.postMessage(2, 8, new Uint8Array([0x33])), 0);
  assert.equal(s.postMessage(2, 9, new Uint8Array([0x44])), 0);
  assert.equal(mem.bytes[slot + 5]! & 1, 1, "message pending");
  assert.equal(got.length, 1, "no interrupt for a queued message");
  // EOM with the slot still busy: nothing moves
  s.writeMsr(T.MSR_EOM, 0, 0);
  assert.equal(v.getUint32(slot, true), 7);
  // the guest consumes the slot, then EOM
  v.setUint32(slot, 0, true);
  s.writeMsr(T.MSR_EOM, 0, 0);
  assert.equal(v.getUint32(slot, true), 8);
  assert.equal(mem.bytes[slot + 5]! & 1, 1, "one more queued: pending stays set");
  v.setUint32(slot, 0, true);
  s.writeMsr(T.MSR_EOM, 0, 0);
  assert.equal(v.getUint32(slot, true), 9);
  assert.equal(mem.bytes[slot + 5]! & 1, 0);
  assert.deepEqual(got, [0xf3, 0xf3, 0xf3]);
  // queue limit
  for (let i = 0; i < 16; i++) assert.equal(s.postMessage(2, 1, new Uint8Array(0)), 0);
  assert.equal(s.postMessage(2, 1, new Uint8Array(0)), T.HV_STATUS_INSUFFICIENT_BUFFERS);
  assert.equal(s.postMessage(2, 1, new Uint8Array(241)), T.HV_STATUS_INVALID_PARAMETER);
  assert.equal(s.postMessage(16, 1, new Uint8Array(1)), T.HV_STATUS_INVALID_PARAMETER);
});

test("masked SINT: message lands, no interrupt", () => {
  const { s, got } = setup();
  s.writeMsr(T.MSR_SCONTROL, 1, 0);
  s.writeMsr(T.MSR_SIMP, 0x5001, 0);
  assert.equal(s.postMessage(3, 1, new Uint8Array(4)), 0);
  assert.deepEqual(got, []);
});

test("event flags: set once, interrupt only on a 0 -> 1 transition", () => {
  const { mem, s, got } = setup();
  s.writeMsr(T.MSR_SCONTROL, 1, 0);
  assert.equal(s.signalEvent(2, 5), T.HV_STATUS_INVALID_SYNIC_STATE);
  s.writeMsr(T.MSR_SIEFP, 0x6001, 0);
  s.writeMsr(T.MSR_SINT0 + 2, 0xf3, 0);
  assert.equal(s.signalEvent(2, 13), 0);
  assert.equal(mem.bytes[0x6000 + 512 + 1], 1 << 5);
  assert.equal(s.signalEvent(2, 13), 0);
  assert.deepEqual(got, [0xf3]);
  assert.equal(s.signalEvent(2, 2048), T.HV_STATUS_INVALID_PARAMETER);
});

test("AutoEOI SINTs are asserted with the target's AutoEOI acceptance", () => {
  const { s, got, autoEoi } = setup();
  s.writeMsr(T.MSR_SCONTROL, 1, 0);
  s.writeMsr(T.MSR_SIEFP, 0x6001, 0);
  s.writeMsr(T.MSR_SINT0 + 1, 0x30 | T.SINT_AUTO_EOI, 0);
  s.writeMsr(T.MSR_SINT0 + 2, 0x31, 0);
  s.signalEvent(1, 0);
  s.signalEvent(2, 0);
  assert.deepEqual(got, [0x30, 0x31]);
  assert.deepEqual(autoEoi, [true, false]);
});

test("with the real local APIC, an AutoEOI SINT never blocks lower-priority vectors; a normal one does", () => {
  for (const auto of [true, false]) {
    const mem = new GuestMemory(1 << 20);
    const s = new Synic(mem);
    const apic = new LocalApic({ clock: { nowNs: () => 0 }, virtualWire: true });
    s.target = apic;
    s.writeMsr(T.MSR_SCONTROL, 1, 0);
    s.writeMsr(T.MSR_SIEFP, 0x6001, 0);
    s.writeMsr(T.MSR_SINT0 + 2, 0x50 | (auto ? T.SINT_AUTO_EOI : 0), 0);
    s.signalEvent(2, 1);
    assert.equal(apic.hasInterrupt(), true);
    assert.equal(apic.acknowledge(), 0x50);
    apic.acceptFixed(0x40, false);
    assert.equal(apic.hasInterrupt(), auto, `AutoEOI ${auto}`);
  }
});
