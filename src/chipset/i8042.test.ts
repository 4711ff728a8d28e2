import { test } from "node:test";
import assert from "node:assert/strict";
import { I8042 } from "./i8042.js";
import { ResetControl, SystemControlPortA, type ResetKind } from "./reset-control.js";

function setup() {
  const resets: string[] = [];
  const irq1: boolean[] = [];
  const irq12: boolean[] = [];
  const kbc = new I8042({
    keyboardIrq: { set: (l) => irq1.push(l) },
    auxIrq: { set: (l) => irq12.push(l) },
    onReset: (kind: ResetKind, source: string) => resets.push(`${kind}:${source}`),
  });
  const cmd = (c: number) => kbc.writePort(4, 1, c);
  const data = () => kbc.readPort(0, 1);
  const status = () => kbc.readPort(4, 1);
  return { kbc, resets, irq1, irq12, cmd, data, status };
}

test("Linux i8042 probe: flush, self-test 0x55, command byte round trip, interface tests", () => {
  const { kbc, cmd, data, status } = setup();
  assert.equal(status() & 0x01, 0, "output buffer empty");
  assert.notEqual(status(), 0xff, "a controller is present");
  cmd(0xaa);
  assert.equal(status() & 0x01, 0x01);
  assert.equal(data(), 0x55);
  cmd(0x20);
  const ctr = data();
  assert.equal(ctr & 0x04, 0x04, "system flag");
  cmd(0x60);
  kbc.writePort(0, 1, ctr & ~0x03);
  cmd(0x20);
  assert.equal(data(), ctr & ~0x03);
  cmd(0xab);
  assert.equal(data(), 0x00);
  cmd(0xa9);
  assert.equal(data(), 0x00);
  // AUX loopback (0xD3) returns the byte as aux data.
  cmd(0xd3);
  kbc.writePort(0, 1, 0x5a);
  assert.equal(status() & 0x21, 0x21);
  assert.equal(data(), 0x5a);
});

test("absent keyboard and mouse: bytes sent to them time out with 0xFE", () => {
  const { kbc, cmd, data, status, irq1 } = setup();
  kbc.writePort(0, 1, 0xff); // keyboard reset
  assert.equal(status() & 0x41, 0x41, "timeout and output buffer full");
  assert.deepEqual(irq1, [true], "IRQ1 enabled by the default command byte");
  assert.equal(data(), 0xfe);
  assert.equal(status() & 0x41, 0);
  assert.deepEqual(irq1, [true, false]);
  cmd(0xd4);
  kbc.writePort(0, 1, 0xf2);
  assert.equal(status() & 0x61, 0x61, "aux data, timeout");
  assert.equal(data(), 0xfe);
});

test("reset paths: i8042 0xFE pulse, output port bit 0, port 0xCF9, port 0x92 fast reset; A20 storage", () => {
  const { cmd, resets, kbc, data } = setup();
  cmd(0xfe);
  cmd(0xff); // pulses nothing (bit 0 set)
  cmd(0xd0);
  assert.equal(data() & 0x03, 0x03);
  cmd(0xd1);
  kbc.writePort(0, 1, 0x02);
  assert.deepEqual(resets, ["hard:i8042 pulse reset", "hard:i8042 output port reset line"]);

  const seen: string[] = [];
  const rc = new ResetControl((k, s) => seen.push(`${k}:${s}`));
  rc.writePort(0, 1, 0x02);
  assert.equal(seen.length, 0, "SYS_RST alone only selects the reset type");
  assert.equal(rc.readPort(), 0x02);
  rc.writePort(0, 1, 0x06);
  assert.deepEqual(seen, ["hard:port 0xCF9"]);
  rc.writePort(0, 1, 0x04);
  assert.equal(seen[1], "soft:port 0xCF9");

  const pa = new SystemControlPortA((k, s) => seen.push(`${k}:${s}`));
  pa.writePort(0, 1, 0x02);
  assert.equal(pa.a20, true);
  assert.equal(pa.readPort(), 0x02);
  pa.writePort(0, 1, 0x03);
  pa.writePort(0, 1, 0x03);
  assert.equal(seen.length, 3, "only the 0->1 transition resets");
  pa.clearResetBit();
  pa.writePort(0, 1, 0x03);
  assert.equal(seen.length, 4);
});

test("hostile writes to the keyboard controller never throw and the queue stays bounded", () => {
  const { kbc } = setup();
  let x = 11;
  for (let i = 0; i < 20000; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    kbc.writePort(x & 1 ? 4 : 0, 1, x >>> 8);
    if (x & 0x4) kbc.readPort(x & 2 ? 4 : 0, 1);
  }
  assert.match(kbc.inspect(), /queued=([0-9]|1[0-6])\b/);
});
