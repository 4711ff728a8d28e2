// Owns: the Linux guest benchmark (`npm run bench -- boot`): the bundled guest and Debian's stock kernel
// (with the bundled initramfs) booted to their shell prompt on Viridian with the interpreter only, on
// Viridian with its default tiers (the WebAssembly tier, docs/decisions/0005) and on QEMU TCG, with the
// same kernel, initramfs, memory and command line. Configurations are interleaved within each repetition
// (the order rotates), so that a change of machine load hits all of them alike; the load average is
// printed before and after. Per session: wall and CPU (user + system of the emulator's process) time to
// the prompt; for the bundled guest then `dd if=/dev/zero bs=1M count=32 | md5sum` four times (the warm-up
// curve of the translation tier; once for the interpreter, which has none), each with wall and CPU time, the
// digest checked; the process's peak RSS. VIRIDIAN_BENCH_REPS sets the repetitions (default 3),
// VIRIDIAN_BENCH_PHASES=0 skips the in-process runs.
// Afterwards, one in-process run per Viridian configuration (bench/guest-phases.ts) gives the retired
// instructions and MIPS per phase and the tier's statistics (compile count and milliseconds, share of
// instructions executed translated, invalidations and evictions).
// Must not: assert anything (tests do), or hide a failed session: it is reported with its reason.
// Spec: issue 11, acceptance 2; the driving is tests/linux/guest-console.ts, so the bench boots exactly what
// the acceptance tests boot.
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import {
  BUNDLED_INITRD,
  BUNDLED_KERNEL,
  limits,
  skipReason,
  startGuest,
  type GuestConsole,
} from "../tests/linux/guest-console.js";
import { stockKernel } from "../tests/linux/stock-kernel.js";
import { formatPhases, guestPhases } from "./guest-phases.js";

const CMDLINE = "console=ttyS0";
const MEMORY_MIB = 256;
const MD5_COMMAND = "dd if=/dev/zero bs=1M count=32 | md5sum";
const MD5_ZEROS_32M = "58f06dd588d8ffb3beb46ada6309436b";
const MD5_RUNS = 4;
/** Clock ticks per second of /proc/<pid>/stat's utime and stime (getconf CLK_TCK; 100 on Linux/x86). */
const CLK_TCK = 100;

type Config = "interp" | "tiers" | "qemu";
const CONFIGS: readonly Config[] = ["interp", "tiers", "qemu"];
type GuestKind = "bundled" | "stock";

interface Sample {
  bootS: number;
  bootCpuS: number;
  md5S: number[];
  md5CpuS: number[];
  peakRssMiB: number;
}

/** User + system CPU seconds of a live process (all its threads), from /proc. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the command: state is field 3, utime 14 and stime 15 (proc(5)).
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function session(config: Config, guest: GuestKind, kernel: string | undefined): Promise<Sample> {
  const emulator = config === "qemu" ? "qemu" : "viridian";
  const lim = limits(emulator, guest);
  const saved = process.env.VIRIDIAN_JIT_THRESHOLD;
  // The child inherits the environment: -1 turns translation off (the CLI reads it at start).
  if (config === "interp") process.env.VIRIDIAN_JIT_THRESHOLD = "-1";
  else delete process.env.VIRIDIAN_JIT_THRESHOLD;
  let g: GuestConsole;
  try {
    g = await startGuest(
      {
        emulator,
        ...(kernel !== undefined ? { kernel, initrd: BUNDLED_INITRD } : {}),
        cmdline: CMDLINE,
        memoryMiB: MEMORY_MIB,
      },
      lim,
    );
  } finally {
    if (saved === undefined) delete process.env.VIRIDIAN_JIT_THRESHOLD;
    else process.env.VIRIDIAN_JIT_THRESHOLD = saved;
  }
  try {
    const pid = g.pid!;
    await g.waitForPrompt(lim.bootMs);
    const bootS = (performance.now() - g.started) / 1000;
    const bootCpuS = cpuSeconds(pid);
    const md5S: number[] = [];
    const md5CpuS: number[] = [];
    // The interpreter has no warm-up to show, and one md5 run costs it minutes on a loaded machine.
    const md5Runs = guest !== "bundled" ? 0 : config === "interp" ? 1 : MD5_RUNS;
    for (let i = 0; i < md5Runs; i++) {
      const t0 = performance.now();
      const c0 = cpuSeconds(pid);
      const out = await g.run(MD5_COMMAND);
      md5S.push((performance.now() - t0) / 1000);
      md5CpuS.push(cpuSeconds(pid) - c0);
      if (!out.includes(`${MD5_ZEROS_32M}  -`))
        throw new Error(`wrong md5sum output: ${JSON.stringify(out)}`);
    }
    const rss = peakRssMiB(pid);
    g.type("poweroff");
    const status = await g.waitExit(lim.bootMs);
    if (status !== 0) throw new Error(`exit status ${g.exitText()} after poweroff`);
    return { bootS, bootCpuS, md5S, md5CpuS, peakRssMiB: rss };
  } catch (e) {
    const failure = await g.failure(e);
    throw new Error(`${config} ${guest}: ${failure.message}`);
  } finally {
    await g.close();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0
    ? NaN
    : s.length % 2
      ? s[(s.length - 1) >> 1]!
      : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function reps(): number {
  const n = Number(process.env.VIRIDIAN_BENCH_REPS);
  return Number.isInteger(n) && n > 0 ? n : 3;
}

export async function benchBoot(): Promise<void> {
  const qemuMissing = skipReason("qemu");
  // VIRIDIAN_BENCH_CONFIGS / VIRIDIAN_BENCH_GUESTS (comma-separated) narrow the run, e.g. to `tiers,qemu`.
  const only = (name: string): string[] | null =>
    process.env[name]?.split(",").filter((x) => x !== "") ?? null;
  const wantConfigs = only("VIRIDIAN_BENCH_CONFIGS");
  const configs = CONFIGS.filter(
    (c) => (c !== "qemu" || !qemuMissing) && (wantConfigs === null || wantConfigs.includes(c)),
  );
  if (qemuMissing) console.log(`boot: no QEMU figures: ${qemuMissing}`);
  let stock: string | undefined;
  try {
    stock = stockKernel();
  } catch (e) {
    console.log(`boot: no stock-kernel figures: ${(e as Error).message.split("\n")[0]}`);
  }
  const wantGuests = only("VIRIDIAN_BENCH_GUESTS");
  const guests = (
    stock !== undefined ? (["bundled", "stock"] as GuestKind[]) : (["bundled"] as GuestKind[])
  ).filter((g) => wantGuests === null || wantGuests.includes(g));
  const n = reps();
  const samples = new Map<string, Sample[]>();
  const failures: string[] = [];
  const load0 = loadavg();
  console.log(
    `boot: ${n} repetitions, configurations interleaved; ${MEMORY_MIB} MiB, cmdline "${CMDLINE}"; ` +
      `load average ${load0.map((l) => l.toFixed(1)).join(" ")} at ${new Date().toISOString()}`,
  );
  for (let r = 0; r < n; r++) {
    for (const guest of guests) {
      // Rotate the order each repetition, so that no configuration always runs first or last.
      const order = configs.map((_, i) => configs[(i + r) % configs.length]!);
      for (const config of order) {
        const key = `${config} ${guest}`;
        try {
          const s = await session(config, guest, guest === "stock" ? stock : undefined);
          const list = samples.get(key) ?? [];
          list.push(s);
          samples.set(key, list);
          console.log(
            `boot: rep ${r + 1} ${key.padEnd(15)} boot ${s.bootS.toFixed(2)} s (cpu ${s.bootCpuS.toFixed(2)} s)` +
              (s.md5S.length ? ` md5 ${s.md5S.map((x) => x.toFixed(2)).join(" / ")} s` : "") +
              ` rss ${s.peakRssMiB.toFixed(0)} MiB; load ${loadavg()[0]!.toFixed(1)}`,
          );
        } catch (e) {
          failures.push(`rep ${r + 1} ${(e as Error).message}`);
          console.error(`boot: rep ${r + 1} ${(e as Error).message}`);
        }
      }
    }
  }
  const cell = (key: string, f: (s: Sample) => number): string => {
    const list = samples.get(key);
    const xs = (list ?? []).map(f).filter((x) => x !== undefined && !Number.isNaN(x));
    return xs.length ? median(xs).toFixed(2) : "-";
  };
  const ratio = (config: Config, guest: GuestKind, f: (s: Sample) => number): string => {
    const a = samples.get(`${config} ${guest}`);
    const q = samples.get(`qemu ${guest}`);
    const xa = (a ?? []).map(f).filter((x) => x !== undefined && !Number.isNaN(x));
    const xq = (q ?? []).map(f).filter((x) => x !== undefined && !Number.isNaN(x));
    return xa.length && xq.length ? `${(median(xa) / median(xq)).toFixed(1)}x` : "-";
  };
  const rows: Array<[string, GuestKind, (s: Sample) => number]> = [
    ["boot to prompt, wall s", "bundled", (s) => s.bootS],
    ["boot to prompt, cpu s", "bundled", (s) => s.bootCpuS],
    ...Array.from({ length: MD5_RUNS }, (_, i): [string, GuestKind, (s: Sample) => number] => [
      `md5 run ${i + 1}, wall s`,
      "bundled",
      (s) => s.md5S[i]!,
    ]),
    ...Array.from({ length: MD5_RUNS }, (_, i): [string, GuestKind, (s: Sample) => number] => [
      `md5 run ${i + 1}, cpu s`,
      "bundled",
      (s) => s.md5CpuS[i]!,
    ]),
    ["peak RSS MiB", "bundled", (s) => s.peakRssMiB],
    ["stock boot, wall s", "stock", (s) => s.bootS],
    ["stock boot, cpu s", "stock", (s) => s.bootCpuS],
    ["stock peak RSS MiB", "stock", (s) => s.peakRssMiB],
  ];
  console.log(`boot: medians of ${n}; ratios to QEMU TCG`);
  console.log(
    `boot: ${"what".padEnd(24)} ${"interp".padStart(8)} ${"tiers".padStart(8)} ${"qemu".padStart(8)} ` +
      `${"interp/q".padStart(9)} ${"tiers/q".padStart(9)}`,
  );
  for (const [name, guest, f] of rows) {
    if (!guests.includes(guest)) continue;
    console.log(
      `boot: ${name.padEnd(24)} ${cell(`interp ${guest}`, f).padStart(8)} ${cell(`tiers ${guest}`, f).padStart(8)} ` +
        `${cell(`qemu ${guest}`, f).padStart(8)} ${ratio("interp", guest, f).padStart(9)} ${ratio("tiers", guest, f).padStart(9)}`,
    );
  }
  for (const f of failures) console.log(`boot: FAILED ${f.split("\n")[0]}`);
  // Instructions and the tier's counters need the machine in this process (same guest, paced clock).
  if (process.env.VIRIDIAN_BENCH_PHASES !== "0") {
    for (const [label, jitThreshold] of [
      ["interp", -1],
      ["tiers", undefined],
    ] as const) {
      try {
        const r = await guestPhases({
          kernel: BUNDLED_KERNEL,
          initrd: BUNDLED_INITRD,
          md5Runs: MD5_RUNS,
          ...(jitThreshold !== undefined ? { jitThreshold } : {}),
        });
        for (const l of formatPhases(`boot: phases ${label}:`, r)) console.log(l);
      } catch (e) {
        console.log(`boot: phases ${label}: FAILED ${(e as Error).message.split("\n")[0]}`);
      }
    }
  }
  console.log(
    `boot: load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")} at the end`,
  );
}
