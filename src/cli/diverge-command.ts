// Owns: `viridian diverge`, the divergence finder: runs one Multiboot kernel under QEMU with a
// per-instruction CPU log and under our processor with the machine's trace, aligns both at the kernel's
// entry point, and reports the first instruction where RIP or a general register differs.
// Must not: change how either side runs the kernel (same machine, same QEMU command line as the boot tests
// apart from logging).
// Spec: QEMU 7.2 logging (-d cpu,exec,nochain -singlestep -dfilter -D: the CPU state before each
// translation block, which -singlestep makes one instruction); Multiboot 0.6.96 3.2 (only EAX is defined
// at entry on both sides, so other registers are compared once they have agreed).

import { mkdtempSync, rmSync, createReadStream } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { spawn } from "node:child_process";
import type { TraceRecord } from "../worker/processor-state.js";
import { buildVm, VmBuildError, type Vm } from "../worker/build-vm.js";
import { vmConfig, VmConfigError } from "../worker/vm-config.js";
import { QEMU, qemuArgs } from "../host/qemu-runner.js";
import { parseMemorySize } from "./run-command.js";
import type { Command } from "./command.js";
import { GPR64_NAMES } from "../x86/disasm.js";

const USAGE = `usage: viridian diverge --kernel FILE [--memory 128M] [--max-instructions N] [--context N]

Runs FILE under QEMU (TCG, single-stepped, logging the CPU state before every instruction) and under
Viridian (traced), aligns both at the kernel entry point and prints the first instruction where RIP or a
general register differs, with the preceding instructions of both runs. Registers are compared once they
have held the same value on both sides (only EAX is defined at Multiboot entry); in 32-bit code only the
low halves are compared (QEMU logs 32 bits). Consecutive states at the same RIP (REP iterations) collapse
to the first. Status: 0 no divergence, 1 divergence, 2 usage or tool error.`;

const NAMES = GPR64_NAMES;
const QEMU_NAMES: Record<string, number> = {
  AX: 0,
  CX: 1,
  DX: 2,
  BX: 3,
  SP: 4,
  BP: 5,
  SI: 6,
  DI: 7,
};

/** One state: RIP and registers as 16-hex-digit strings; `wide` false when QEMU logged 32-bit values. */
export interface State {
  rip: string;
  regs: string[];
  wide: boolean;
}

/** Parses QEMU's `-d cpu` dump blocks ("RAX=... RIP=..." or "EAX=... EIP=...") into states. */
export async function parseQemuLog(path: string, limit: number): Promise<State[]> {
  const out: State[] = [];
  let cur: State | null = null;
  const rl = createInterface({ input: createReadStream(path, { encoding: "latin1" }), crlfDelay: Infinity });
  for await (const line of rl) {
    if (line.startsWith("Trace ")) {
      cur = { rip: "", regs: new Array<string>(16).fill(""), wide: false };
      continue;
    }
    if (cur === null) continue;
    for (const m of line.matchAll(/\b([RE])(AX|BX|CX|DX|SI|DI|BP|SP|IP)=([0-9a-f]+)/g)) {
      const value = m[3]!.padStart(16, "0");
      if (m[1] === "R") cur.wide = true;
      if (m[2] === "IP") {
        cur.rip = value;
        out.push(cur);
        if (out.length >= limit) {
          rl.close();
          return out;
        }
      } else {
        cur.regs[QEMU_NAMES[m[2]!]!] = value;
      }
    }
    for (const m of line.matchAll(/\bR(\d+)\s*=([0-9a-f]{16})/g)) {
      cur.regs[Number(m[1])] = m[2]!;
    }
  }
  return out;
}

function fromRecord(rec: TraceRecord): State {
  const h = (lo: number, hi: number): string =>
    hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
  return {
    rip: h(rec.ripLo, rec.ripHi),
    regs: NAMES.map((_, i) => h(rec.regs[2 * i]!, rec.regs[2 * i + 1]!)),
    wide: true,
  };
}

/** Drops states that repeat the previous RIP (REP iterations are logged per iteration by QEMU). */
export function collapse(states: State[]): State[] {
  return states.filter((s, i) => i === 0 || states[i - 1]!.rip !== s.rip);
}

export interface Divergence {
  /** Index into our (collapsed) states and QEMU's. */
  index: number;
  qemuIndex: number;
  what: string;
}

/**
 * The first state where RIP differs, or a register that has agreed before differs. One side may log a
 * state the other does not (our run(1) delivers an exception and executes the handler's first instruction
 * in one step; QEMU logs both), so a one-state gap on either side is skipped when RIPs line up after it.
 */
export function firstDivergence(ours: State[], qemu: State[]): Divergence | null {
  const tracked = new Array<boolean>(16).fill(false);
  tracked[0] = true;
  let i = 0;
  let j = 0;
  while (i < ours.length && j < qemu.length) {
    const a = ours[i]!;
    const b = qemu[j]!;
    const cut = (v: string): string => (b.wide ? v : v.slice(8));
    if (cut(a.rip) !== cut(b.rip)) {
      const qNext = qemu[j + 1];
      const oNext = ours[i + 1];
      if (qNext && cut(qNext.rip) === cut(a.rip)) {
        j++;
        continue;
      }
      if (oNext && cut(oNext.rip) === cut(b.rip)) {
        i++;
        continue;
      }
      return { index: i, qemuIndex: j, what: `rip viridian=${a.rip} qemu=${b.rip}` };
    }
    for (let r = 0; r < 16; r++) {
      const qv = b.regs[r];
      if (!qv) continue; // not logged (R8-R15 outside 64-bit mode)
      const same = cut(a.regs[r]!) === cut(qv);
      if (tracked[r] && !same)
        return { index: i, qemuIndex: j, what: `${NAMES[r]} viridian=${a.regs[r]} qemu=${qv}` };
      if (same) tracked[r] = true;
    }
    i++;
    j++;
  }
  return null;
}

function describe(s: State | undefined): string {
  if (!s) return "(none)";
  return (
    `rip=${s.rip} ` +
    s.regs
      .map((v, i) => (v ? `${NAMES[i]}=${v}` : ""))
      .filter(Boolean)
      .join(" ")
  );
}

async function run(args: string[]): Promise<number> {
  let kernel: string | undefined;
  let memory = 128 * 1024 * 1024;
  let max = 2_000_000;
  let context = 5;
  try {
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      const v = args[i + 1];
      if (a === "--help" || a === "-h") {
        console.log(USAGE);
        return 0;
      }
      if (v === undefined) throw new Error(`${a} needs a value`);
      i++;
      if (a === "--kernel") kernel = v;
      else if (a === "--memory") memory = parseMemorySize(v);
      else if (a === "--max-instructions") max = Number(v);
      else if (a === "--context") context = Number(v);
      else throw new Error(`unknown option '${a}'`);
    }
    if (!kernel) throw new Error("--kernel is required");
    if (!Number.isSafeInteger(max) || max <= 0 || !Number.isSafeInteger(context) || context < 0) {
      throw new Error("--max-instructions and --context need non-negative integers");
    }
  } catch (e) {
    console.error(`viridian diverge: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  // Our side first: it tells us the entry point and which ranges hold the kernel (QEMU's log filter).
  const ours: State[] = [];
  let vm: Vm;
  try {
    vm = buildVm(vmConfig({ memoryBytes: memory, boot: { kernel } }), {
      serial: () => {},
      trace: (rec) => {
        ours.push(fromRecord(rec));
      },
      maxInstructions: max,
    });
  } catch (e) {
    if (!(e instanceof VmBuildError || e instanceof VmConfigError)) throw e;
    console.error(`viridian diverge: ${e.message}`);
    return 2;
  }
  if (vm.kind !== "multiboot") {
    console.error(
      `viridian diverge: ${kernel} is a Linux kernel; the divergence finder runs Multiboot kernels`,
    );
    return 2;
  }
  const loaded = vm.loaded;
  const stop = await vm.machine.run();
  const entry = loaded.entry.eip.toString(16).padStart(16, "0");

  const dir = mkdtempSync(join(tmpdir(), "viridian-diverge-"));
  try {
    const log = join(dir, "qemu.log");
    const ranges = loaded.loaded.map((r) => `0x${r.base.toString(16)}+0x${r.length.toString(16)}`);
    const qargs = [...qemuArgs(kernel, { logFile: log, memory: `${memory / 1024 / 1024}M` })];
    // Only the kernel's ranges and conventional memory (for trampolines), not the BIOS.
    qargs.push("-dfilter", [...ranges, "0x0+0xa0000"].join(","));
    const status = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(QEMU, qargs, { stdio: "ignore" });
      const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
      child.on("error", reject);
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    const all = await parseQemuLog(log, max * 4);
    const start = all.findIndex((s) => s.rip === entry || s.rip.slice(8) === entry.slice(8));
    if (start < 0) {
      console.error(
        `viridian diverge: QEMU's log (status ${status}) never reaches the entry point 0x${entry}`,
      );
      return 2;
    }
    const q = collapse(all.slice(start));
    const v = collapse(ours);
    const d = firstDivergence(v, q);
    console.log(
      `viridian: ${v.length} states (${stop.message}); qemu: ${q.length} states from the entry point`,
    );
    if (d === null) {
      const n = Math.min(v.length, q.length);
      console.log(`no divergence in the first ${n} instructions`);
      return 0;
    }
    console.log(`first divergence at instruction ${d.index} after entry: ${d.what}`);
    for (let k = context; k >= 0; k--) {
      const i = d.index - k;
      const j = d.qemuIndex - k;
      if (i >= 0) console.log(`  viridian #${i} ${describe(v[i])}`);
      if (j >= 0) console.log(`  qemu     #${j} ${describe(q[j])}`);
    }
    return 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const command: Command = {
  summary: "find the first instruction where Viridian and QEMU differ on a kernel",
  run,
};
