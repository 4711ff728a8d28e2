// Boot test of the bundled guest on the PC machine, through the CLI exactly as a user runs it: `viridian run`
// with no arguments and pipes for stdin/stdout. Waits for the shell prompt, runs `echo $((6*7))`, checks the
// answer, then `poweroff`, and requires exit status 0. A failure shows the last 50 lines of guest serial output
// and the machine state: on a hang the test sends SIGTERM, and the CLI prints its state (inspect()) to stderr.
// No timing is asserted; the timeout only keeps a hung boot from hanging the suite.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const VIRIDIAN = fileURLToPath(new URL("../../../bin/viridian.js", import.meta.url));
const BZIMAGE = fileURLToPath(new URL("../../../guest/bzImage", import.meta.url));
const PROMPT = "viridian-guest:~ # ";
/** Generous for a loaded 2-core machine (a boot takes 10-30 s there); only a hang gets near it. */
const TIMEOUT_MS = Number(process.env.VIRIDIAN_BOOT_TIMEOUT_MS ?? 300_000);

function tail(text: string, lines = 50): string {
  return text.replace(/\r/g, "").split("\n").slice(-lines).join("\n");
}

test("the bundled Linux guest boots to a shell, computes $((6*7)) and powers off with status 0", async (t) => {
  if (!existsSync(BZIMAGE)) {
    t.skip("guest/bzImage is not in the tree");
    return;
  }
  const child = spawn(process.execPath, [VIRIDIAN, "run"], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  let step = 0;
  let timedOut = false;
  child.stdout.on("data", (c: Buffer) => {
    out += c.toString("latin1");
    // Step 0: the first prompt -> the arithmetic; step 1: its answer and the next prompt -> poweroff.
    if (step === 0 && out.includes(PROMPT)) {
      step = 1;
      child.stdin.write("echo $((6*7))\n");
    } else if (
      step === 1 &&
      /\n42\r?\n[^]*viridian-guest:~ # /.test(out.slice(out.indexOf("echo $((6*7))")))
    ) {
      step = 2;
      child.stdin.write("poweroff\n");
    }
  });
  child.stderr.on("data", (c: Buffer) => (err += c.toString("utf8")));
  const timer = setTimeout(() => {
    timedOut = true;
    // Twice: the first would ask a booted guest to shut down; the second turns it off with the state printed.
    child.kill("SIGTERM");
    child.kill("SIGTERM");
  }, TIMEOUT_MS);
  const status = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve(code));
  });
  clearTimeout(timer);
  const report = (why: string): string =>
    `${why}\n--- last 50 lines of guest serial output ---\n${tail(out)}\n--- viridian stderr (machine state) ---\n${err}`;
  assert.ok(!timedOut, report(`no ${["prompt", "answer 42", "power-off"][step]} within ${TIMEOUT_MS} ms`));
  assert.equal(step, 2, report(`the guest stopped before the ${["prompt", "answer 42"][step]}`));
  assert.equal(status, 0, report(`exit status ${status} after poweroff`));
  assert.match(out, /reboot: Power down|Requesting system poweroff/, report("no power-off message"));
});

test("SIGTERM stops a booting guest: `viridian: stopped by SIGTERM`, the machine state, status 143", async (t) => {
  if (!existsSync(BZIMAGE)) {
    t.skip("guest/bzImage is not in the tree");
    return;
  }
  const child = spawn(process.execPath, [VIRIDIAN, "run"], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  // The first console line means the kernel runs; stop it there (mid-boot, the case a hung boot is in).
  child.stdout.on("data", (c: Buffer) => {
    // Output is flushed at loop pauses, which can fall mid-line: wait for the whole banner, not the first chunk.
    const seen = out.includes("Linux version");
    out += c.toString("latin1");
    if (!seen && out.includes("Linux version")) child.kill("SIGTERM");
  });
  child.stderr.on("data", (c: Buffer) => (err += c.toString("utf8")));
  const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
  const status = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve(code));
  });
  clearTimeout(timer);
  assert.equal(status, 143, `status ${status}\n${err}`);
  assert.match(err, /^viridian: stopped by SIGTERM\n/m);
  assert.match(err, /rip=[0-9a-f]{16} rflags=/, "the registers");
  assert.match(err, /local APIC|APIC/, "the interrupt controller state");
  assert.match(out, /Linux version/);
});
