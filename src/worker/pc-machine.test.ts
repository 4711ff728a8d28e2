import { test } from "node:test";
import assert from "node:assert/strict";
import { crashSummary, terminalSafe } from "./pc-machine.js";

const params = ["0", "1", "2", "3", "4"].map((d) => d.repeat(16));

test("crash summary: the guest's Kernel panic line without its timestamp, else the last line, else the parameters", () => {
  const message =
    "[   11.693971] sysrq: Trigger a crash\n[   11.694353] Kernel panic - not syncing: sysrq triggered crash\n" +
    "[   11.694726] Kernel Offset: disabled\n";
  assert.equal(
    crashSummary({ vpIndex: 0, parameters: params, message }),
    "Kernel panic - not syncing: sysrq triggered crash",
  );
  assert.equal(crashSummary({ vpIndex: 0, parameters: params, message: "a\nlast words\n\n" }), "last words");
  assert.equal(
    crashSummary({ vpIndex: 0, parameters: params, message: null }),
    `CRASH_P0-P4 ${params.join(" ")}`,
  );
});

test("guest text reaches the host terminal without control characters (no escape sequences)", () => {
  assert.equal(terminalSafe("ok\ttext\nline"), "ok\ttext\nline");
  assert.equal(terminalSafe("\x1b]0;pwned\x07\x1b[2J\r"), "\ufffd]0;pwned\ufffd\ufffd[2J\ufffd");
  assert.equal(
    crashSummary({ vpIndex: 0, parameters: params, message: "Kernel panic \x1b[31mred\n" }),
    "Kernel panic \ufffd[31mred",
  );
});
