// Host output (issue 9 item 9): `viridian run` writing into a pipe whose reader goes away ends cleanly, with
// a message on stderr when stderr still works and status 74 (EX_IOERR), never a Node stack trace from an
// unhandled EPIPE/ENOBUFS; a reader that is merely slow is waited for and gets everything.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { assembleKernel } from "./assemble.js";

const VIRIDIAN = fileURLToPath(new URL("../../../bin/viridian.js", import.meta.url));
const STATUS_OUTPUT_FAILED = 74;
const STATUS_GUEST_STOPPED = 3;
/** How much output the reader takes before it goes away. */
const TAKE = 64 * 1024;

interface Outcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: number;
  stderr: string;
}

/**
 * Runs `viridian run args`; the reader of `closing` ("stdout" or "stderr") closes its end after TAKE bytes,
 * or, with `pauseMs`, stops reading stdout for that long once and then reads on.
 */
function run(args: string[], closing: "stdout" | "stderr" | null, pauseMs = 0): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [VIRIDIAN, "run", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = 0;
    let stderrBytes = 0;
    const err: Buffer[] = [];
    let paused = false;
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.length;
      if (closing === "stdout" && stdout >= TAKE) child.stdout.destroy();
      if (pauseMs > 0 && !paused && stdout >= TAKE) {
        paused = true;
        child.stdout.pause();
        setTimeout(() => child.stdout.resume(), pauseMs);
      }
    });
    child.stderr.on("data", (c: Buffer) => {
      stderrBytes += c.length;
      if (closing === "stderr") {
        if (stderrBytes >= TAKE) child.stderr.destroy();
      } else err.push(c);
    });
    child.on("error", reject);
    child.on("close", (status, signal) =>
      resolve({ status, signal, stdout, stderr: Buffer.concat(err).toString("utf8") }),
    );
  });
}

const NODE_CRASH = /node:internal|Unhandled 'error' event|^\s+at .+:\d+:\d+\)?$/m;

test("a reader that closes stdout early ends the run: status 74, a message, no stack trace", async () => {
  const elf = assembleKernel("runaway", { MODE: 5 }, "runaway-5");
  const r = await run(["--kernel", elf, "--max-instructions", "500000000"], "stdout");
  assert.equal(r.signal, null);
  assert.equal(r.status, STATUS_OUTPUT_FAILED, r.stderr.slice(0, 3000));
  assert.match(r.stderr, /viridian run: stopped: the host output failed: stdout: the reader closed it/);
  assert.doesNotMatch(r.stderr, NODE_CRASH);
});

test("a reader that closes stderr early while --trace writes to it ends the run with status 74", async () => {
  const elf = assembleKernel("runaway", { MODE: 1 }, "runaway-1");
  const r = await run(["--kernel", elf, "--trace", "--max-instructions", "50000000"], "stderr");
  assert.equal(r.signal, null);
  // stderr is gone, so the status is all there is to tell.
  assert.equal(r.status, STATUS_OUTPUT_FAILED);
  // How far the guest got before the host saw stderr close depends on scheduling (the trace fills the pipe
  // within the first few hundred instructions, while the banner is still being printed), so the console
  // holds at most the banner, never more (the VM stopped).
  assert.ok(r.stdout <= "running away\n".length, `${r.stdout} bytes on stdout`);
});

test("a slow reader is waited for: the run ends at its own limit and the reader gets its output", async () => {
  const elf = assembleKernel("runaway", { MODE: 5 }, "runaway-5");
  // About 100 KiB of console output, more than a pipe holds: the guest waits while the reader pauses.
  const r = await run(["--kernel", elf, "--max-instructions", "2000000"], null, 1500);
  assert.equal(r.status, STATUS_GUEST_STOPPED, r.stderr.slice(0, 2000));
  assert.match(r.stderr, /stopped at the instruction limit/);
  assert.ok(r.stdout > TAKE, `${r.stdout} bytes`);
  assert.doesNotMatch(r.stderr, NODE_CRASH);
});
