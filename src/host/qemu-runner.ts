// Owns: running a Multiboot kernel under QEMU (the reference peer of the test platform) exactly as the
// kernel tests, the divergence finder and the benchmark need: the same command line every time, the
// serial output with the firmware's banner removed, the exit status, and optionally QEMU's per-instruction
// CPU log.
// Must not: interpret kernel output (tests compare it) or run without a time limit.
// Spec: QEMU 7.2 system emulation options (-kernel Multiboot loading, -nographic, -no-reboot, -device
// isa-debug-exit, -d cpu,exec,nochain -singlestep -D for logging).

import { spawn, spawnSync } from "node:child_process";

export const QEMU = "qemu-system-x86_64";
/**
 * SeaBIOS prints this just before the option ROM jumps to the kernel; more dots may follow (a slow host
 * shows extra progress dots), so the banner is everything up to the last run of dots after it.
 */
const BOOT_BANNER = /Booting from ROM\.*/g;

export interface QemuResult {
  /** Serial output of the kernel (everything after the firmware banner). */
  output: string;
  status: number | null;
  signal: string | null;
  timedOut: boolean;
  wallMs: number;
}

export interface QemuOptions {
  timeoutMs: number;
  /** Write a per-instruction register log here (slow: single-steps TCG). */
  logFile?: string;
  memory?: string;
  /** The kernel's arguments (-append) and, for Multiboot, its modules (-initrd "path args,path"). */
  append?: string;
  initrd?: string;
}

export function qemuArgs(
  kernel: string,
  options: Pick<QemuOptions, "logFile" | "memory" | "append" | "initrd">,
): string[] {
  const args = [
    "-accel",
    "tcg",
    "-nographic",
    "-no-reboot",
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=4",
  ];
  args.push("-m", options.memory ?? "128M", "-kernel", kernel);
  if (options.append !== undefined) args.push("-append", options.append);
  if (options.initrd !== undefined) args.push("-initrd", options.initrd);
  if (options.logFile) args.push("-d", "cpu,exec,nochain", "-singlestep", "-D", options.logFile);
  return args;
}

/** The kernel's own serial output: QEMU's console also carries the BIOS banner, which is cut off. */
export function kernelOutput(raw: string): string {
  let end = -1;
  for (const m of raw.matchAll(BOOT_BANNER)) end = m.index + m[0].length;
  return end >= 0 ? raw.slice(end) : raw;
}

export function qemuAvailable(): boolean {
  const r = spawnSync(QEMU, ["--version"], { encoding: "utf8" });
  return r.status === 0;
}

export function runQemu(kernel: string, options: QemuOptions): Promise<QemuResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(QEMU, qemuArgs(kernel, options), { stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    let timedOut = false;
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.stderr.resume();
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      resolve({
        output: kernelOutput(Buffer.concat(chunks).toString("latin1")),
        status,
        signal,
        timedOut,
        wallMs: performance.now() - started,
      });
    });
  });
}
