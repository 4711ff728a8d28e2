import { test } from "node:test";
import assert from "node:assert/strict";
import { kernelOutput, qemuArgs } from "./qemu-runner.js";

test("the firmware banner and its progress dots are cut from QEMU's console output", () => {
  assert.equal(kernelOutput("SeaBIOS\r\nBooting from ROM..mb: ok\n"), "mb: ok\n");
  assert.equal(kernelOutput("SeaBIOS\r\nBooting from ROM...mb: ok\n"), "mb: ok\n");
  assert.equal(kernelOutput("no banner\n"), "no banner\n");
});

test("QEMU runs with the boot tests' command line, plus logging when asked", () => {
  const a = qemuArgs("k.elf", {});
  assert.deepEqual(a.slice(0, 6), [
    "-accel",
    "tcg",
    "-nographic",
    "-no-reboot",
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=4",
  ]);
  assert.ok(a.includes("-kernel") && a.includes("k.elf"));
  assert.ok(qemuArgs("k.elf", { logFile: "q.log" }).includes("-singlestep"));
});
