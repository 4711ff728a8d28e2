import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest-memory.js";
import { Synic } from "./synic.js";
import { SyntheticTimers } from "./synthetic-timers.js";
import * as T from "./tlfs.js";

const CFG = (n: number): number => T.MSR_STIMER0_CONFIG + 2 * n;
const CNT = (n: number): number => T.MSR_STIMER0_CONFIG + 2 * n + 1;

function setup(direct = true): { t: SyntheticTimers; s: Synic; got: number[]; mem: GuestMemory } {
  const mem = new GuestMemory(1 << 20);
  const s = new Synic(mem);
  const t = new SyntheticTimers(s, direct);
  const got: number[] = [];
  t.target = { acceptFixed: (v) => got.push(v) };
  s.target = t.target;
  return { t, s, got, mem };
}

test("Linux's direct-mode sequence: CONFIG 0x1ED9 then absolute COUNT; one-shot disables itself", () => {
  const { t, got } = setup();
  assert.equal(t.writeMsr(CFG(0), 0x1ed9, 0, 100).ok, true);
  assert.equal(
    t.readMsr(CFG(0)).ok && (t.readMsr(CFG(0)) as { lo: number }).lo & 1,
    0,
    "count 0: not enabled",
  );
  assert.equal(t.writeMsr(CNT(0), 1000, 0, 100).ok, true);
  assert.equal((t.readMsr(CFG(0)) as { lo: number }).lo, 0x1ed9, "auto-enable set Enable");
  assert.equal(t.nextDue(), 1000);
  t.tick(999);
  assert.deepEqual(got, []);
  t.tick(1000);
  assert.deepEqual(got, [0xed]);
  assert.equal((t.readMsr(CFG(0)) as { lo: number }).lo & 1, 0, "one-shot cleared Enable");
  assert.equal(t.nextDue(), Infinity);
  // a count in the past fires at the next tick
  t.writeMsr(CNT(0), 5, 0, 2000);
  t.tick(2000);
  assert.deepEqual(got, [0xed, 0xed]);
  // writing 0 stops it
  t.writeMsr(CNT(0), 3000, 0, 2000);
  t.writeMsr(CNT(0), 0, 0, 2000);
  t.tick(5000);
  assert.equal(got.length, 2);
});

test("periodic: first period starts at enable, then every period; lazy skips missed periods", () => {
  const { t, got } = setup();
  t.writeMsr(CNT(1), 100, 0, 0);
  t.writeMsr(CFG(1), 1 | 2 | (0x40 << 4) | T.STIMER_DIRECT, 0, 50);
  assert.equal(t.nextDue(), 150);
  t.tick(150);
  assert.equal(t.nextDue(), 250);
  t.tick(260);
  assert.equal(t.nextDue(), 350);
  assert.deepEqual(got, [0x40, 0x40]);
  // lazy: far behind -> one expiry, next due in the future
  t.writeMsr(CFG(2), 0, 0, 0);
  t.writeMsr(CNT(2), 100, 0, 0);
  t.writeMsr(CFG(2), 1 | 2 | 4 | (0x41 << 4) | T.STIMER_DIRECT, 0, 0);
  t.tick(1050);
  assert.equal(got.filter((v) => v === 0x41).length, 1);
  assert.ok(t.nextDue() > 1050);
});

test("config: reserved bits and direct mode without the feature are #GP; SINTx 0 disables message mode", () => {
  const { t } = setup(false);
  assert.equal(t.writeMsr(CFG(0), 1 << 20, 0, 0).ok, false);
  assert.equal(t.writeMsr(CFG(0), 0, 1, 0).ok, false);
  assert.equal(t.writeMsr(CFG(0), T.STIMER_DIRECT, 0, 0).ok, false);
  t.writeMsr(CNT(0), 10, 0, 0);
  assert.equal(t.writeMsr(CFG(0), 1, 0, 0).ok, true);
  assert.equal((t.readMsr(CFG(0)) as { lo: number }).lo & 1, 0);
  assert.equal(t.readMsr(T.MSR_STIMER3_COUNT + 1).ok, false);
});

test("message mode: HVMSG_TIMER_EXPIRED in the SINT slot; expirations coalesce while the slot is busy", () => {
  const { t, s, got, mem } = setup();
  const v = new DataView(mem.buffer);
  s.writeMsr(T.MSR_SCONTROL, 1, 0);
  s.writeMsr(T.MSR_SIMP, 0x8001, 0);
  s.writeMsr(T.MSR_SINT0 + 3, 0x50, 0);
  t.writeMsr(CNT(2), 100, 0, 0);
  t.writeMsr(CFG(2), 1 | 2 | (3 << 16), 0, 0);
  t.lastRef = 100;
  t.tick(100);
  const slot = 0x8000 + 3 * 256;
  assert.equal(v.getUint32(slot, true), T.HVMSG_TIMER_EXPIRED);
  assert.equal(mem.bytes[slot + 4], 24);
  assert.equal(v.getUint32(slot + 16, true), 2, "timer index");
  assert.equal(v.getUint32(slot + 24, true), 100, "expiration time");
  assert.equal(v.getUint32(slot + 32, true), 100, "delivery time");
  assert.deepEqual(got, [0x50]);
  t.tick(200);
  t.tick(300);
  assert.equal(s.pendingCount(3), 1, "one queued, the next expiry coalesced");
  v.setUint32(slot, 0, true);
  t.lastRef = 310;
  s.writeMsr(T.MSR_EOM, 0, 0);
  assert.equal(v.getUint32(slot + 24, true), 200);
  assert.equal(v.getUint32(slot + 32, true), 310, "delivered at EOM time");
});
