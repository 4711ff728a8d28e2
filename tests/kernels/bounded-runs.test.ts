// Any run can be bounded (issue 9 item 2): `viridian run --max-instructions N` ends a kernel that never
// stops by itself, whatever it loops on: a jump to itself, an exception handler that faults forever (nothing
// retires), one REP instruction with a count of 2^32 - 1, and REPE CMPSD between two MMIO ranges (which used to
// exit forever without completing an element); with --trace the trace ends at the limit too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { assembleKernel } from "./assemble.js";
import { runViridian } from "./run-viridian.js";

const MODES: Array<[number, string]> = [
  [1, "a jump to itself"],
  [2, "a fault loop through IST (nothing retires)"],
  [3, "REP LODSB with ECX = 2^32 - 1"],
  [4, "REPE CMPSD between two MMIO ranges with ECX = 2^32 - 1"],
];
const LIMIT = 100_000;
const TRACE_LIMIT = 20_000;

for (const [mode, what] of MODES) {
  test(`--max-instructions ends ${what}, with and without --trace`, async () => {
    const elf = assembleKernel("runaway", { MODE: mode }, `runaway-${mode}`);
    const plain = await runViridian(["--kernel", elf, "--max-instructions", String(LIMIT)]);
    assert.equal(plain.status, 3, `status ${plain.status}\n${plain.stderr.slice(0, 2000)}`);
    assert.equal(plain.output, "running away\n");
    const m = /stopped at the instruction limit \((\d+): (\d+) instructions retired, (\d+) exceptions/.exec(
      plain.stderr,
    );
    assert.ok(m, plain.stderr.slice(0, 2000));
    assert.equal(Number(m[1]), LIMIT);
    // A REP chunk may finish its last iterations past the limit; nothing else does.
    assert.ok(Number(m[2]) + Number(m[3]) >= LIMIT && Number(m[2]) + Number(m[3]) < LIMIT + 4096);
    if (mode === 2) assert.ok(Number(m[3]) > LIMIT / 2, "the faults are what reached the limit");

    const traced = await runViridian(["--kernel", elf, "--max-instructions", String(TRACE_LIMIT), "--trace"]);
    assert.equal(traced.status, 3, traced.stderr.slice(-2000));
    const lines = traced.stderr.split("\n").filter((l) => /^\d+ rip=/.test(l)).length;
    // One line per state before an instruction (a repeated state once), plus the last 50 in the state dump.
    assert.ok(lines > 0 && lines <= TRACE_LIMIT + 50, `${lines} trace lines`);
  });
}
