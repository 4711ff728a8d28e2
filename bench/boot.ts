// Boot-to-shell time of the bundled Linux guest and the time of a CPU-bound userland command in it, on
// Viridian and under QEMU TCG with the same kernel, initramfs, memory and command line, each as a ratio
// (issue 3, acceptance item 5; target: Viridian boots to the shell in under 15 s).
// Boot to shell: host wall time from starting the emulator's process to the guest's first shell prompt on
// the serial console (process start, firmware, kernel, initramfs and busybox init included). md5sum: host
// wall time from typing `dd if=/dev/zero bs=1M count=32 | md5sum` to the next prompt, the digest checked.
// Each figure is the best of several runs (boots: VIRIDIAN_BENCH_BOOT_RUNS, default 3 for QEMU and 1 for
// Viridian, whose boot costs a minute; md5sum: 3 and 2 per boot). A Viridian that does not reach the shell
// is reported as such, with the reason; no figure is shown for it.
// The driving is tests/linux/guest-console.ts, so the bench boots exactly what the acceptance tests boot.
import {
  BUNDLED_INITRD,
  BUNDLED_KERNEL,
  limits,
  skipReason,
  startGuest,
  type Emulator,
} from "../tests/linux/guest-console.js";

const CMDLINE = "console=ttyS0";
const MEMORY_MIB = 256;
const MD5_COMMAND = "dd if=/dev/zero bs=1M count=32 | md5sum";
const MD5_ZEROS_32M = "58f06dd588d8ffb3beb46ada6309436b";
const TARGET_BOOT_S = 15;

export type BootFigures =
  { ok: true; bootS: number; md5S: number; boots: number; md5Runs: number } | { ok: false; reason: string };

export interface BootBenchResult {
  viridian: BootFigures;
  qemu: BootFigures;
}

function runsFor(emulator: Emulator): { boots: number; md5Runs: number } {
  const env = Number(process.env.VIRIDIAN_BENCH_BOOT_RUNS);
  const boots = Number.isInteger(env) && env > 0 ? env : emulator === "qemu" ? 3 : 1;
  return { boots, md5Runs: emulator === "qemu" ? 3 : 2 };
}

async function measure(emulator: Emulator): Promise<BootFigures> {
  const unavailable = emulator === "qemu" ? skipReason("qemu") : false;
  if (unavailable) return { ok: false, reason: unavailable };
  const lim = limits(emulator);
  const { boots, md5Runs } = runsFor(emulator);
  let bootS = Number.POSITIVE_INFINITY;
  let md5S = Number.POSITIVE_INFINITY;
  for (let b = 0; b < boots; b++) {
    const g = await startGuest(
      { emulator, kernel: BUNDLED_KERNEL, initrd: BUNDLED_INITRD, cmdline: CMDLINE, memoryMiB: MEMORY_MIB },
      lim,
    );
    try {
      await g.waitForPrompt(lim.bootMs);
      bootS = Math.min(bootS, (performance.now() - g.started) / 1000);
      for (let i = 0; i < md5Runs; i++) {
        const t0 = performance.now();
        const out = await g.run(MD5_COMMAND);
        const s = (performance.now() - t0) / 1000;
        if (!out.includes(`${MD5_ZEROS_32M}  -`))
          throw new Error(`wrong md5sum output: ${JSON.stringify(out)}`);
        md5S = Math.min(md5S, s);
      }
      g.type("poweroff");
      const status = await g.waitExit(lim.bootMs);
      if (status !== 0) throw new Error(`exit status ${g.exitText()} after poweroff`);
    } catch (e) {
      // The full report (serial tail, processor state) goes to stderr; the table gets its first line.
      const failure = await g.failure(e);
      console.error(`boot: ${emulator} run ${b + 1} failed:\n${failure.message}`);
      const said = g.stderr.split("\n").find((l) => l.trim() !== "");
      const reason =
        failure.message.split("\n")[0]! + (said && !g.running ? ` (stderr: ${said.trim()})` : "");
      return { ok: false, reason };
    } finally {
      await g.close();
    }
  }
  return { ok: true, bootS, md5S, boots, md5Runs };
}

export async function benchBoot(): Promise<BootBenchResult> {
  console.log(
    `boot: bundled guest (guest/bzImage, guest/initramfs.cpio.lz4), ${MEMORY_MIB} MiB, cmdline "${CMDLINE}"`,
  );
  const qemu = await measure("qemu");
  const viridian = await measure("viridian");
  const cell = (f: BootFigures, key: "bootS" | "md5S"): string => (f.ok ? `${f[key].toFixed(2)} s` : "-");
  const ratio = (key: "bootS" | "md5S"): string =>
    viridian.ok && qemu.ok ? `${(viridian[key] / qemu[key]).toFixed(1)}x` : "-";
  const rows: Array<[string, string, string, string]> = [
    ["what", "viridian", "qemu tcg", "viridian/qemu"],
    ["boot to shell", cell(viridian, "bootS"), cell(qemu, "bootS"), ratio("bootS")],
    ["md5sum of 32 MiB zeros", cell(viridian, "md5S"), cell(qemu, "md5S"), ratio("md5S")],
  ];
  for (const r of rows) {
    console.log(`boot: ${r[0].padEnd(24)} ${r[1].padStart(10)} ${r[2].padStart(10)} ${r[3].padStart(14)}`);
  }
  for (const [name, f] of [
    ["viridian", viridian],
    ["qemu tcg", qemu],
  ] as const) {
    if (f.ok) console.log(`boot: ${name}: best of ${f.boots} boot(s), md5sum best of ${f.md5Runs} per boot`);
    else console.log(`boot: ${name}: no figures: ${f.reason}`);
  }
  const verdict = viridian.ok
    ? viridian.bootS < TARGET_BOOT_S
      ? "met"
      : "not met"
    : "not measured (Viridian did not reach the shell)";
  console.log(`boot: target: Viridian boot to shell under ${TARGET_BOOT_S} s: ${verdict}`);
  return { viridian, qemu };
}
