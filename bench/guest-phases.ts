// Per-phase figures of a Linux guest run in this process: boot to the first shell prompt, then md5sum of
// 32 MiB of zeros N times, then power-off. For each phase: retired instructions, wall time, process CPU
// time (user + system) and MIPS on both; for the whole run: peak RSS and the processor's translation
// statistics. The machine is the one `viridian run` builds (PcMachine), with the clock paced at a floor of
// VIRIDIAN_BENCH_PACE_MIPS (default 50) million instructions per virtual second, so that while the guest
// computes its time is a function of its instruction count and the instruction counts of two runs agree
// closely (they differ only by the timer ticks that fall into host-timed idle periods).
// With --segments the boot is also cut at the console lines of SEGMENT_MARKS (a Linux boot's landmarks:
// decompressed, console up, initcalls done, initramfs unpacked, /init started, the banner, the prompt),
// each segment with its instructions, CPU, wall time and the tier's statistics over it, so a slow stretch
// of the boot is found by its MIPS before anyone profiles it.
// Run: npm run build && node dist/bench/guest-phases.js [--md5 N] [--kernel FILE] [--initrd FILE] [--segments]
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

/** Console lines that end a boot segment (--segments), in the order a Linux boot prints them. */
export const SEGMENT_MARKS: readonly RegExp[] = [
  /Linux version/,
  /printk: console \[\w+\] enabled/,
  /Unpacking initramfs/,
  /Freeing initrd memory/,
  /Run \/init as init process/,
  /Viridian guest:/,
];

/** A stretch of the boot that ended at a console line (or the prompt), with the tier's statistics over it. */
export interface Segment extends Phase {
  stats: Record<string, number>;
}

export interface GuestPhasesResult {
  phases: Phase[];
  segments: Segment[];
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
  /** Cut the boot into segments at SEGMENT_MARKS. */
  segments?: boolean;
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
  const segments: Segment[] = [];
  const tierStats = (): Record<string, number> =>
    (machine.cpu as unknown as { tierStats?: () => Record<string, number> | null }).tierStats?.() ?? {};
  let segStart = { ...mark, stats: {} as Record<string, number> };
  const endSegment = (name: string): void => {
    const cu = process.cpuUsage(segStart.cpu);
    const now = tierStats();
    const stats: Record<string, number> = {};
    for (const [k, v] of Object.entries(now)) stats[k] = v - (segStart.stats[k] ?? 0);
    segments.push({
      name,
      instructions: machine.cpu.retired - segStart.ins,
      wallMs: performance.now() - segStart.wall,
      cpuMs: (cu.user + cu.system) / 1000,
      stats,
    });
    segStart = { ins: machine.cpu.retired, wall: performance.now(), cpu: process.cpuUsage(), stats: now };
  };
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
      if (ch === "\n" && o.segments && phases.length === 0 && SEGMENT_MARKS.some((m) => m.test(line)))
        endSegment(
          line
            .trimEnd()
            .replace(/^\[[\s\d.]+\] /, "")
            .slice(0, 40),
        );
      line = ch === "\n" ? "" : line + ch;
      if (line.endsWith("\u001b[6n")) {
        text = text.slice(0, -4);
        line = line.slice(0, -4);
        machine.sendInput(new TextEncoder().encode("\u001b[1;1R"));
      }
      if (ch !== " " || !PROMPT.test(line)) return;
      if (o.segments && phases.length === 0) endSegment("the prompt");
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
  return { phases, segments, peakRssMiB: process.resourceUsage().maxRSS / 1024, stats };
}

export function formatPhases(label: string, r: GuestPhasesResult): string[] {
  const out = r.phases.map(
    (p) =>
      `${label} ${p.name.padEnd(6)} ${(p.instructions / 1e6).toFixed(1).padStart(7)} M insns ` +
      `${(p.wallMs / 1000).toFixed(2).padStart(7)} s wall ${(p.cpuMs / 1000).toFixed(2).padStart(7)} s cpu ` +
      `${(p.instructions / p.wallMs / 1000).toFixed(1).padStart(6)} MIPS wall ` +
      `${(p.instructions / p.cpuMs / 1000).toFixed(1).padStart(6)} MIPS cpu`,
  );
  for (const g of r.segments) {
    const st = g.stats;
    const n = (k: string): string => (st[k] === undefined ? "-" : String(Math.round(st[k])));
    out.push(
      `${label}   to ${JSON.stringify(g.name).padEnd(44)} ${(g.instructions / 1e6).toFixed(1).padStart(6)} M insns ` +
        `${(g.cpuMs / 1000).toFixed(2).padStart(6)} s cpu ${(g.wallMs / 1000).toFixed(2).padStart(6)} s wall ` +
        `${(g.instructions / g.cpuMs / 1000).toFixed(1).padStart(6)} MIPS cpu; units ${n("units")}, emit ${n("emitMs")} ms, ` +
        `translated ${(((st.translated ?? 0) / Math.max(1, g.instructions)) * 100).toFixed(0)} %, handler calls ${n("helperCalls")}, ` +
        `unit entries ${n("calls")} (exits: branch ${n("exitBranch")}, no entry ${n("exitNoEntry")}, done ${n("exitDone")})`,
    );
  }
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
    segments: args.includes("--segments"),
  });
  for (const l of formatPhases("guest:", r)) console.log(l);
}
