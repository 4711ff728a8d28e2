import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AcpiPm,
  GPE0_BLK,
  PM1A_CNT_BLK,
  PM1A_EVT_BLK,
  PM_TIMER_HZ,
  PM_TMR_BLK,
  SLP_TYP_S5,
} from "./acpi-pm.js";
import { ManualClock, nsForTicks } from "./clock.js";
import { PortBus } from "./port-bus.js";

function setup() {
  const clock = new ManualClock(0);
  let sci = false;
  let off = 0;
  const pm = new AcpiPm({ clock, sci: { set: (l) => (sci = l) }, onPowerOff: () => off++ });
  const bus = new PortBus();
  bus.map(PM1A_EVT_BLK, 4, pm.eventBlock, "evt");
  bus.map(PM1A_CNT_BLK, 2, pm.controlBlock, "cnt");
  bus.map(PM_TMR_BLK, 4, pm.timerBlock, "tmr");
  bus.map(GPE0_BLK, 8, pm.gpeBlock, "gpe");
  return { pm, bus, clock, sci: () => sci, off: () => off };
}

test("PM1 control: SLP_TYP = S5 with SLP_EN powers off; SLP_EN reads 0; SCI_EN set from reset", () => {
  const { bus, off } = setup();
  assert.equal(bus.read(PM1A_CNT_BLK, 2) & 1, 1, "SCI_EN: ACPI mode without an SMI_CMD handshake");
  bus.write(PM1A_CNT_BLK, 2, 1 | (5 << 10)); // SLP_TYP 5 without SLP_EN: nothing
  assert.equal(off(), 0);
  assert.equal(bus.read(PM1A_CNT_BLK, 2), 1 | (5 << 10));
  bus.write(PM1A_CNT_BLK, 2, 1 | (3 << 10) | (1 << 13)); // a sleep type the DSDT does not declare
  assert.equal(off(), 0);
  bus.write(PM1A_CNT_BLK, 2, 1 | (SLP_TYP_S5 << 10) | (1 << 13));
  assert.equal(off(), 1);
  assert.equal(bus.read(PM1A_CNT_BLK, 2) & (1 << 13), 0);
  // Byte-wide write of the high byte (SLP_EN | SLP_TYP) as some guests do.
  bus.write(PM1A_CNT_BLK + 1, 1, 0x20 | (SLP_TYP_S5 << 2));
  assert.equal(off(), 2);
});

test("PM timer counts at 3.579545 MHz from the clock, 32 bits", () => {
  const { bus, clock } = setup();
  assert.equal(bus.read(PM_TMR_BLK, 4), 0);
  clock.set(1e9);
  assert.equal(bus.read(PM_TMR_BLK, 4), PM_TIMER_HZ);
  clock.set(nsForTicks(0x1_0000_0005, PM_TIMER_HZ));
  assert.equal(bus.read(PM_TMR_BLK, 4), 5, "wraps at 2^32");
  bus.write(PM_TMR_BLK, 4, 0); // read-only
  assert.equal(bus.read(PM_TMR_BLK, 4), 5);
});

test("PM1 status is write-1-to-clear; enabled status raises SCI; timer overflow at bit 31", () => {
  const { pm, bus, clock, sci } = setup();
  pm.pressPowerButton();
  assert.equal(bus.read(PM1A_EVT_BLK, 2) & 0x100, 0x100);
  assert.equal(sci(), false, "not enabled");
  bus.write(PM1A_EVT_BLK + 2, 2, 0x100); // PWRBTN_EN
  assert.equal(bus.read(PM1A_EVT_BLK + 2, 2), 0x100);
  assert.equal(sci(), true);
  bus.write(PM1A_EVT_BLK, 2, 0x0001); // writing 0 to PWRBTN_STS leaves it
  assert.equal(sci(), true);
  bus.write(PM1A_EVT_BLK, 2, 0x0100);
  assert.equal(sci(), false);
  assert.equal(bus.read(PM1A_EVT_BLK, 4), 0x01000000, "dword view: STS low, EN high");
  bus.write(PM1A_EVT_BLK, 4, 0x00010000); // TMR_EN only
  const d = pm.nextDeadlineNs();
  assert.equal(d, nsForTicks(0x80000000, PM_TIMER_HZ));
  clock.set(d);
  pm.tick(d);
  assert.equal(bus.read(PM1A_EVT_BLK, 2) & 1, 1, "TMR_STS");
  assert.equal(sci(), true);
  bus.write(PM1A_EVT_BLK, 2, 1);
  assert.equal(sci(), false);
  // SCI_EN clear gates the SCI.
  pm.pressPowerButton();
  bus.write(PM1A_EVT_BLK + 2, 2, 0x100);
  assert.equal(sci(), true);
  bus.write(PM1A_CNT_BLK, 2, 0);
  assert.equal(sci(), false);
});

test("GPE0: status half then enable half; W1C status", () => {
  const { pm, bus, sci } = setup();
  pm.raiseGpe(3);
  assert.equal(bus.read(GPE0_BLK, 1), 0x08);
  bus.write(GPE0_BLK + 4, 1, 0x08);
  assert.equal(bus.read(GPE0_BLK + 4, 4), 0x08);
  assert.equal(sci(), true);
  bus.write(GPE0_BLK, 1, 0x08);
  assert.equal(sci(), false);
  assert.match(pm.inspect(), /GPE0_EN=0x8/);
});

test("hostile writes to every PM port never throw", () => {
  const { bus, clock, pm } = setup();
  let x = 5;
  for (let i = 0; i < 20000; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    const port = [PM1A_EVT_BLK, PM1A_CNT_BLK, PM_TMR_BLK, GPE0_BLK][x & 3]! + ((x >>> 2) & 7);
    const size = [1, 2, 4][(x >>> 5) % 3]!;
    if (x & 0x100) bus.write(port, size, x >>> 9);
    else bus.read(port, size);
    clock.advance(x % 1_000_000);
    pm.tick(clock.nowNs());
  }
});
