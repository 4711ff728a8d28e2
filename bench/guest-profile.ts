// Where a Linux guest's boot spends its instructions: runs a kernel (by default Debian's stock one with
// guest/stock-initramfs.sh's modules) on the machine `viridian run` builds, in this process, and samples the
// processor's RIP after every short batch, weighting each sample by the instructions the batch retired. At
// the first prompt the guest copies its /proc/kallsyms to a scratch disk, so kernel and module addresses
// (KASLR included) resolve to symbols; the decompressor and the early setup code run below the kernel's
// mapping and are reported as ranges. Prints the phases (setup/decompressor, kernel, user space), the
// symbols with the most instructions, and the console lines with the instructions retired before each.
// Must not: change the machine: the run is a `buildVm` like the CLI's; only the batch size differs (the
// sampling interval), which moves interrupt delivery by at most one batch.
// Run: npm run build && node --liftoff-only dist/bench/guest-profile.js [--kernel F --initrd F]
//   [--cmdline S] [--pace-mips N] [--batch N] [--top N] [--lines N]
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildVm } from "../src/worker/build-vm.js";
import { vmConfig } from "../src/worker/vm-config.js";
import { tuneWasmEngine } from "../src/host/wasm-engine.js";
import { stockInitramfs, stockKernel } from "../tests/linux/stock-kernel.js";

const PROMPT = /viridian-guest:[^\n]*? # $/;
const KALLSYMS_BYTES = 16 * 1024 * 1024;

interface Symbol {
  addr: bigint;
  name: string;
}

function parseKallsyms(text: string): Symbol[] {
  const out: Symbol[] = [];
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]{16}) ([tTwW]) (\S+)(\s+\[\S+\])?/.exec(line);
    if (m) out.push({ addr: BigInt(`0x${m[1]}`), name: m[3]! + (m[4]?.trim() ?? "") });
  }
  out.sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
  return out;
}

function lookup(syms: Symbol[], addr: bigint): string | null {
  let lo = 0;
  let hi = syms.length - 1;
  if (hi < 0 || addr < syms[0]!.addr) return null;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (syms[mid]!.addr <= addr) lo = mid;
    else hi = mid - 1;
  }
  return syms[lo]!.name;
}

async function main(): Promise<void> {
  tuneWasmEngine();
  const args = process.argv.slice(2);
  const opt = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const batch = Number(opt("--batch") ?? 10_000);
  const top = Number(opt("--top") ?? 60);
  const lineCount = Number(opt("--lines") ?? 40);
  const pace = opt("--pace-mips");
  const dir = mkdtempSync(join(tmpdir(), "viridian-profile-"));
  const disk = join(dir, "kallsyms.img");
  writeFileSync(disk, new Uint8Array(KALLSYMS_BYTES));

  let text = "";
  let line = "";
  const lines: Array<{ text: string; before: number }> = [];
  let lineMark = 0;
  let stage: "boot" | "kallsyms" | "off" = "boot";
  let bootInstructions = 0;
  const cpuStart = process.cpuUsage();
  const wallStart = performance.now();
  let bootCpuMs = 0;
  let bootWallMs = 0;
  // eslint-disable-next-line prefer-const
  let send: (s: string) => void;
  const retired = (): number => vm.machine.cpu.retired;
  const vm = await buildVm(
    vmConfig({
      boot: {
        kernel: opt("--kernel") ?? stockKernel(),
        initrd: opt("--initrd") ?? stockInitramfs(),
        cmdline: opt("--cmdline") ?? "console=ttyS0",
      },
      disks: [{ path: disk, readOnly: false }],
      time: { paceMips: pace === undefined ? null : Number(pace) },
    }),
    {
      serial: (b) => {
        const c = String.fromCharCode(b);
        text += c;
        line += c;
        // The shell's line editor asks where the cursor is after each prompt: answer, and keep it out of the text.
        if (line.endsWith("\u001b[6n")) {
          text = text.slice(0, -4);
          line = line.slice(0, -4);
          send("\u001b[1;1R");
        }
        if (c === "\n") {
          const r = retired();
          if (stage === "boot") lines.push({ text: line.replace(/\r?\n$/, ""), before: r - lineMark });
          lineMark = r;
          line = "";
        }
        if (!PROMPT.test(line)) return;
        if (stage === "boot") {
          stage = "kallsyms";
          bootInstructions = retired();
          const cu = process.cpuUsage(cpuStart);
          bootCpuMs = (cu.user + cu.system) / 1000;
          bootWallMs = performance.now() - wallStart;
          send("cat /proc/kallsyms > /dev/sda; sync; echo kallsyms-$((6*7))\n");
        } else if (stage === "kallsyms" && /kallsyms-42\r?\n/.test(text)) {
          stage = "off";
          send("poweroff\n");
        }
      },
    },
  );
  send = (s) => vm.machine.sendInput(new TextEncoder().encode(s));
  let total = 0;
  /** Per console line (index into `lines` of the line that ends the interval): samples as above. */
  const lineSamples = new Map<number, Map<string, number>>();
  let firstKernelAt = -1;
  let firstKernelCpuMs = 0;
  const partition = vm.machine.partition;
  const runVp = partition.runVp.bind(partition);
  partition.runVp = (vp, budget) => {
    const before = retired();
    const r = runVp(vp, Math.min(budget, batch));
    if (stage !== "boot") return r;
    const n = retired() - before;
    const rip = vm.machine.cpu.getRip();
    const key = ((BigInt(rip.hi >>> 0) << 32n) | BigInt(rip.lo >>> 0)).toString(16).padStart(16, "0");
    if (firstKernelAt < 0 && key >= "ffffffff80000000") {
      firstKernelAt = before;
      const cu = process.cpuUsage(cpuStart);
      firstKernelCpuMs = (cu.user + cu.system) / 1000;
    }
    total += n;
    let per = lineSamples.get(lines.length);
    if (per === undefined) lineSamples.set(lines.length, (per = new Map()));
    per.set(key, (per.get(key) ?? 0) + n);
    return r;
  };
  const stop = await vm.machine.run();
  await vm.close();
  const kallsyms = readFileSync(disk, "latin1").replace(/\0+$/, "");
  rmSync(dir, { recursive: true, force: true });
  if (stop.kind !== "poweroff")
    throw new Error(`guest did not power off: ${stop.message}\n${text.slice(-3000)}`);

  const syms = parseKallsyms(kallsyms);
  let user = 0;
  let low = 0;
  const kernelSpace = (key: string) => key >= "ffff800000000000";
  // Below the kernel's mapping before its first console line: the setup code and the decompressor (named
  // by 1 MiB range); after it, user space.
  for (const [i, per] of lineSamples)
    for (const [key, n] of per) {
      if (kernelSpace(key)) continue;
      if (i === 0) low += n;
      else user += n;
    }
  const nameOf = (key: string, line: number): string => {
    if (kernelSpace(key)) return lookup(syms, BigInt(`0x${key}`)) ?? `? ${key}`;
    return line === 0 ? `[low ${key.slice(0, -5).replace(/^0+/, "")}xxxxx]` : "[user]";
  };
  const bySymbol = new Map<string, number>();
  for (const [i, per] of lineSamples)
    for (const [key, n] of per) {
      const name = nameOf(key, i);
      bySymbol.set(name, (bySymbol.get(name) ?? 0) + n);
    }
  const pct = (n: number) => ((100 * n) / total).toFixed(1).padStart(5);
  console.log(
    `boot to prompt: ${(bootInstructions / 1e6).toFixed(0)} M instructions, ${(bootCpuMs / 1000).toFixed(1)} s CPU, ` +
      `${(bootWallMs / 1000).toFixed(1)} s wall; ${syms.length} symbols`,
  );
  console.log(
    `before the kernel's first instruction: ${(firstKernelAt / 1e6).toFixed(0)} M instructions, ` +
      `${(firstKernelCpuMs / 1000).toFixed(1)} s CPU; low addresses ${pct(low)} %, user ${pct(user)} %`,
  );
  console.log("\ntop symbols (M instructions, % of the boot):");
  for (const [name, n] of [...bySymbol].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`${(n / 1e6).toFixed(1).padStart(8)} ${pct(n)} %  ${name}`);
  console.log("\nconsole lines after the most instructions (M instructions before the line):");
  const ranked = [...lines.keys()].sort((a, b) => lines[b]!.before - lines[a]!.before).slice(0, lineCount);
  for (const i of ranked) {
    const l = lines[i]!;
    console.log(`${(l.before / 1e6).toFixed(1).padStart(8)}  ${l.text.slice(0, 150)}`);
    // The interval's own top symbols (its samples were taken while `lines` had i entries).
    const per = new Map<string, number>();
    for (const [key, n] of lineSamples.get(i) ?? []) {
      const name = nameOf(key, i);
      per.set(name, (per.get(name) ?? 0) + n);
    }
    const best = [...per].sort((a, b) => b[1] - a[1]).slice(0, 6);
    console.log(`          ${best.map(([name, n]) => `${name} ${(n / 1e6).toFixed(1)}`).join(", ")}`);
  }
  const log = opt("--log");
  if (log !== undefined) writeFileSync(log, text);
}

await main();
