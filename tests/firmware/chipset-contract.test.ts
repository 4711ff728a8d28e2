// The firmware's ACPI tables describe the chipset the worker builds; the two tiers may not import each other,
// so this integration test holds them to one contract: the FADT's fixed-hardware ports, SCI, timer width and
// reset register equal what src/chipset/acpi-pm.ts and reset-control.ts implement.
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildFadt, FADT_TMR_VAL_EXT } from "../../src/firmware/acpi/tables.js";
import * as pm from "../../src/chipset/acpi-pm.js";

test("FADT fixed hardware matches the chipset's ACPI PM block", () => {
  const fadt = buildFadt(0x1000, 0x2000, true);
  const v = new DataView(fadt.buffer, fadt.byteOffset, fadt.byteLength);
  assert.equal(v.getUint16(46, true), pm.SCI_IRQ, "SCI_INT");
  assert.equal(v.getUint32(56, true), pm.PM1A_EVT_BLK, "PM1a_EVT_BLK");
  assert.equal(v.getUint32(64, true), pm.PM1A_CNT_BLK, "PM1a_CNT_BLK");
  assert.equal(v.getUint32(76, true), pm.PM_TMR_BLK, "PM_TMR_BLK");
  assert.equal(v.getUint32(80, true), pm.GPE0_BLK, "GPE0_BLK");
  assert.equal(v.getUint8(88), pm.PM1_EVT_LEN, "PM1_EVT_LEN");
  assert.equal(v.getUint8(89), pm.PM1_CNT_LEN, "PM1_CNT_LEN");
  assert.equal(v.getUint8(91), pm.PM_TMR_LEN, "PM_TMR_LEN");
  assert.equal(v.getUint8(92), pm.GPE0_BLK_LEN, "GPE0_BLK_LEN");
  const flags = v.getUint32(112, true);
  assert.equal((flags & FADT_TMR_VAL_EXT) !== 0, pm.PM_TIMER_32BIT, "TMR_VAL_EXT must match the timer width");
  // RESET_REG: a system-I/O generic address at 116, value at 128 (ACPI 6.x 5.2.9).
  assert.equal(v.getUint8(116), 1, "RESET_REG is in system I/O space");
  assert.equal(Number(v.getBigUint64(120, true)), 0xcf9, "RESET_REG address");
  assert.equal(v.getUint8(128), 0x06, "RESET_VALUE");
});
