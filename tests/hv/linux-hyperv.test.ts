// Linux on the hypervisor, through the CLI exactly as a user runs it (`viridian run`, pipes): in one boot the
// guest must detect Microsoft Hyper-V, print its privilege flags, switch to the reference-TSC-page clocksource,
// use the synthetic timer as its clock event device (read from sysfs at the prompt), log no unchecked MSR
// access, WARNING, BUG or call trace, and then, after `echo c > /proc/sysrq-trigger`, be reported by the host
// through the TLFS crash MSRs with its panic message while the VM stops with a non-zero status.
// The bundled guest always runs; Debian's stock kernel runs too when VIRIDIAN_STOCK_KERNEL names its vmlinuz
// (guest/fetch-stock-kernel.sh prints the path). A failure shows the last 50 serial lines and the machine
// state (on a hang the test sends SIGTERM and the CLI prints its state). No timing is asserted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const VIRIDIAN = fileURLToPath(new URL("../../../bin/viridian.js", import.meta.url));
const BZIMAGE = fileURLToPath(new URL("../../../guest/bzImage", import.meta.url));
const INITRD = fileURLToPath(new URL("../../../guest/initramfs.cpio.lz4", import.meta.url));
const PROMPT = "viridian-guest:~ # ";
const CLOCKEVENT = "/sys/devices/system/clockevents/clockevent0/current_device";
/** Generous for a loaded 2-core machine; only a hang gets near it. */
const TIMEOUT_MS = Number(process.env.VIRIDIAN_BOOT_TIMEOUT_MS ?? 300_000);

function tail(text: string, lines = 50): string {
  return text.replace(/\r/g, "").split("\n").slice(-lines).join("\n");
}

interface Run {
  out: string;
  err: string;
  status: number | null;
  timedOut: boolean;
  /** Serial output from the start up to the sysrq command (the boot and the sysfs read). */
  beforeCrash: string;
}

/** Boots, reads the clock event device at the first prompt, then crashes the guest through sysrq. */
async function bootAndCrash(args: string[]): Promise<Run> {
  const child = spawn(process.execPath, [VIRIDIAN, "run", ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  let step = 0;
  let beforeCrash = "";
  let timedOut = false;
  child.stdout.on("data", (c: Buffer) => {
    out += c.toString("latin1");
    const prompts = out.split(PROMPT).length - 1;
    if (step === 0 && prompts >= 1) {
      step = 1;
      child.stdin.write(`cat ${CLOCKEVENT}\n`);
    } else if (step === 1 && prompts >= 2) {
      step = 2;
      beforeCrash = out;
      child.stdin.write("echo c > /proc/sysrq-trigger\n");
    }
  });
  child.stdin.on("error", () => undefined);
  child.stderr.on("data", (c: Buffer) => (err += c.toString("utf8")));
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGTERM");
  }, TIMEOUT_MS);
  const status = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve(code));
  });
  clearTimeout(timer);
  return { out, err, status, timedOut, beforeCrash: beforeCrash || out };
}

function check(r: Run): void {
  const report = (why: string): string =>
    `${why}\n--- last 50 lines of guest serial output ---\n${tail(r.out)}\n` +
    `--- viridian stderr (machine state) ---\n${r.err}`;
  assert.ok(!r.timedOut, report(`no crash report within ${TIMEOUT_MS} ms`));
  const log = r.beforeCrash;
  assert.match(log, /Hypervisor detected: Microsoft Hyper-V/, report("no Hyper-V detection"));
  assert.match(
    log,
    /Hyper-V: privilege flags low 0x[0-9a-f]+, high 0x[0-9a-f]+, hints 0x[0-9a-f]+, misc 0x[0-9a-f]+/,
    report("no privilege flags line"),
  );
  assert.match(
    log,
    /clocksource: Switched to clocksource hyperv_clocksource_tsc_page/,
    report("the TSC page is not the clocksource"),
  );
  // The shell echoes the command wrapped at 80 columns, so the answer is looked for after the command's start.
  const answer = log.slice(log.indexOf(`cat ${CLOCKEVENT.slice(0, 40)}`));
  assert.match(
    answer,
    /\nHyper-V clockevent\r?\n/,
    report(`${CLOCKEVENT} does not read "Hyper-V clockevent"`),
  );
  for (const bad of [
    /unchecked MSR access/,
    /WARNING:/,
    /BUG:/,
    /Call Trace/,
    // The clocksource watchdog (TSC page against the ACPI PM timer): any complaint means two clocks disagree.
    /clocksource.*(unstable|watchdog)/i,
    /soft lockup|rcu.*stall/i,
  ]) {
    const line = log.split("\n").find((l) => bad.test(l));
    assert.equal(line, undefined, report(`the boot log has a bad line: ${line}`));
  }
  // The crash: reported by the host from the crash MSRs, with the guest's own panic line, and a stop.
  assert.match(r.out, /Kernel panic - not syncing: sysrq triggered crash/, report("no panic on the console"));
  assert.match(
    r.err,
    /^viridian: guest crashed: Kernel panic - not syncing: sysrq triggered crash/m,
    report("no crash report from the crash MSRs"),
  );
  assert.match(r.err, /crash parameters \(CRASH_P0-P4\): [0-9a-f]{16}/, report("no crash parameters"));
  assert.equal(r.status, 1, report(`exit status ${r.status} after the guest crashed`));
}

test("the bundled guest detects Microsoft Hyper-V, uses the TSC page and the synthetic timer, and its panic is reported through the crash MSRs", async (t) => {
  if (!existsSync(BZIMAGE)) {
    t.skip("guest/bzImage is not in the tree");
    return;
  }
  check(await bootAndCrash([]));
});

test("Debian's stock kernel detects Microsoft Hyper-V the same way (VIRIDIAN_STOCK_KERNEL=vmlinuz)", async (t) => {
  const kernel = process.env.VIRIDIAN_STOCK_KERNEL;
  if (kernel === undefined || !existsSync(kernel)) {
    t.skip("set VIRIDIAN_STOCK_KERNEL to the vmlinuz guest/fetch-stock-kernel.sh prints");
    return;
  }
  check(await bootAndCrash(["--kernel", kernel, "--initrd", INITRD]));
});
