// Per-phase figures of a Linux guest run in this process: boot to the first shell prompt, then md5sum of
// 32 MiB of zeros N times, then power-off. For each phase: retired instructions, wall time, process CPU
// time (user + system) and MIPS on both; for the whole run: peak RSS and the processor's translation
// statistics. The machine is the one `viridian run` builds (PcMachine), with the clock paced at a floor of
// VIRIDIAN_BENCH_PACE_MIPS (default 50) million instructions per virtual second, so that while the guest
// computes its time is a function of its instruction count and the instruction counts of two runs agree
// closely (they differ only by the timer ticks that fall into host-timed idle periods).
// Run: npm run build && node dist/bench/guest-phases.js [--md5 N] [--kernel FILE] [--initrd FILE]
// (VIRIDIAN_JIT_THRESHOLD selects the tiers as for `viridian run`).
import { readFileSync } from "node:fs";
import { GuestMemory } from "../src/memory/guest-memory.js";
import { PacedClock } from "../src/worker/paced-clock.js";
import { PcMachine } from "../src/worker/pc-machine.js";
import { jitThresholdFromEnv } from "../src/cli/run-linux.js";
import { tuneWasmEngine } from "../src/host/wasm-engine.js";
import { BUNDLED_INITRD, BUNDLED_KERNEL } from "../tests/linux/guest-console.js";

const PROMPT = /viridian-guest:[^\n]*? # $/;
const MD5_COMMAND = "dd if=/dev/zero bs=1M count=32 | md5sum\n";
const MD5_ZEROS_32M = "58f06dd588d8ffb3beb46ada6309436b";

export interface Phase {
  name: string;
  instructions: number;
  wallMs: number;
  cpuMs: number;
}

export interface GuestPhasesResult {
  phases: Phase[];
  peakRssMiB: number;
  stats: Record<string, number>;
}

export interface GuestPhasesOptions {
  kernel?: string;
  initrd?: string;
  md5Runs?: number;
  memoryMiB?: number;
  cmdline?: string;
  jitThreshold?: number;
}

export async function guestPhases(o: GuestPhasesOptions = {}): Promise<GuestPhasesResult> {
  const memory = new GuestMemory((o.memoryMiB ?? 256) * 1024 * 1024);
  const pace = Number(process.env.VIRIDIAN_BENCH_PACE_MIPS ?? 50);
  const md5Runs = o.md5Runs ?? 0;
  let text = "";
  let line = "";
  const phases: Phase[] = [];
  let mark = { ins: 0, wall: performance.now(), cpu: process.cpuUsage() };
  const names = ["boot", ...Array.from({ length: md5Runs }, (_, i) => `md5 ${i + 1}`)];
  const threshold = o.jitThreshold ?? jitThresholdFromEnv();
  const machine: PcMachine = new PcMachine({
    memory,
    clock: new PacedClock(pace * 1e6),
    tscHz: 1_000_000_000,
    ...(threshold !== undefined ? { jitThreshold: threshold } : {}),
    serial: (b) => {
      // Only the current line is searched per byte: matching the whole transcript at every byte (and
      // flattening the concatenated string for it) was quadratic and showed up in the boot's CPU time.
      const ch = String.fromCharCode(b);
      text += ch;
      line = ch === "\n" ? "" : line + ch;
      if (line.endsWith("\u001b[6n")) {
        text = text.slice(0, -4);
        line = line.slice(0, -4);
        machine.sendInput(new TextEncoder().encode("\u001b[1;1R"));
      }
      if (ch !== " " || !PROMPT.test(line)) return;
      const cu = process.cpuUsage(mark.cpu);
      const ins = machine.cpu.retired;
      phases.push({
        name: names[phases.length] ?? "?",
        instructions: ins - mark.ins,
        wallMs: performance.now() - mark.wall,
        cpuMs: (cu.user + cu.system) / 1000,
      });
      mark = { ins, wall: performance.now(), cpu: process.cpuUsage() };
      const cmd = phases.length <= md5Runs ? MD5_COMMAND : "poweroff\n";
      machine.sendInput(new TextEncoder().encode(cmd));
    },
    cpus: 1,
  });
  const kernel = readFileSync(o.kernel ?? BUNDLED_KERNEL);
  const initrd = readFileSync(o.initrd ?? BUNDLED_INITRD);
  machine.bootLinux({ kernel, initrd, cmdline: o.cmdline ?? "console=ttyS0" });
  const stop = await machine.run();
  if (stop.kind !== "poweroff")
    throw new Error(`guest did not power off: ${stop.message}\n${text.slice(-2000)}`);
  const sums = text.match(new RegExp(`${MD5_ZEROS_32M}  -`, "g"))?.length ?? 0;
  if (sums !== md5Runs) throw new Error(`expected ${md5Runs} correct md5sum outputs, saw ${sums}`);
  const cpu = machine.cpu as unknown as { tierStats?: () => Record<string, number> | null };
  const stats = cpu.tierStats?.() ?? { units: machine.cpu.translatedBlocks };
  // Share of all retired instructions that ran inside translation units (inline or through a helper).
  if (stats.translated !== undefined)
    stats.translatedPercent = (100 * stats.translated) / machine.cpu.retired;
  return { phases, peakRssMiB: process.resourceUsage().maxRSS / 1024, stats };
}

export function formatPhases(label: string, r: GuestPhasesResult): string[] {
  const out = r.phases.map(
    (p) =>
      `${label} ${p.name.padEnd(6)} ${(p.instructions / 1e6).toFixed(1).padStart(7)} M insns ` +
      `${(p.wallMs / 1000).toFixed(2).padStart(7)} s wall ${(p.cpuMs / 1000).toFixed(2).padStart(7)} s cpu ` +
      `${(p.instructions / p.wallMs / 1000).toFixed(1).padStart(6)} MIPS wall ` +
      `${(p.instructions / p.cpuMs / 1000).toFixed(1).padStart(6)} MIPS cpu`,
  );
  out.push(
    `${label} peak RSS ${r.peakRssMiB.toFixed(0)} MiB; ` +
      Object.entries(r.stats)
        .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(1)}`)
        .join(", "),
  );
  return out;
}

if (process.argv[1]?.endsWith("guest-phases.js")) {
  tuneWasmEngine();
  const args = process.argv.slice(2);
  const opt = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const r = await guestPhases({
    md5Runs: Number(opt("--md5") ?? 0),
    ...(opt("--kernel") !== undefined ? { kernel: opt("--kernel") } : {}),
    ...(opt("--initrd") !== undefined ? { initrd: opt("--initrd") } : {}),
  });
  for (const l of formatPhases("guest:", r)) console.log(l);
}
