// Owns: the Linux half of `viridian run` once the worker built the VM: connects the host terminal (raw mode
// on a TTY, Ctrl-A X to quit; plain bytes with pipes) to COM1, runs the machine, handles SIGTERM/SIGINT, and
// turns the way the guest stopped into the process exit status (0 = power-off).
// Must not: build or configure the machine (src/worker/build-vm.ts), implement machine behaviour
// (src/worker/pc-machine.ts) or parse images (src/firmware).
// Spec: Linux Documentation/arch/x86/boot.rst (what is loaded); the CLI contract in README.md.

import { crashSummary, type PcMachine, terminalSafe } from "../worker/pc-machine.js";
import type { SerialOutput } from "./serial-output.js";

/** Exit status of a run stopped by SIGTERM (128 + 15, the shell's convention). */
export const STATUS_SIGTERM = 143;
/** Exit status when the guest dies (triple fault, panic, halt with interrupts off) or the run fails. */
export const STATUS_GUEST_FAILED = 1;
/** The quit sequence on a terminal: Ctrl-A then X (as QEMU's -nographic). */
const CTRL_A = 0x01;

/** Runs a Linux VM the worker built, with the terminal on COM1; returns the process exit status. */
export async function runLinux(
  machine: PcMachine,
  out: SerialOutput,
  o: { state: boolean },
): Promise<number> {
  const flush = (): void => out.flush();
  const stdin = process.stdin;
  const tty = stdin.isTTY === true;
  let sawCtrlA = false;
  const onData = (data: Buffer): void => {
    if (!tty) {
      machine.sendInput(data);
      return;
    }
    // Ctrl-A X quits; Ctrl-A Ctrl-A sends one Ctrl-A; anything else after Ctrl-A goes through as typed.
    const pass: number[] = [];
    for (const b of data) {
      if (sawCtrlA) {
        sawCtrlA = false;
        if (b === 0x78 || b === 0x58) {
          machine.requestStop("quit from the terminal (Ctrl-A X)");
          break;
        }
        if (b !== CTRL_A) pass.push(CTRL_A);
        pass.push(b);
      } else if (b === CTRL_A) sawCtrlA = true;
      else pass.push(b);
    }
    if (pass.length > 0) machine.sendInput(Uint8Array.from(pass));
  };
  if (tty) stdin.setRawMode(true);
  stdin.on("data", onData);
  stdin.on("error", () => undefined);
  let signal: string | null = null;
  const onSignal = (name: string) => () => {
    signal = name;
    machine.requestStop(`stopped by ${name}`);
  };
  const onTerm = onSignal("SIGTERM");
  const onInt = onSignal("SIGINT");
  process.on("SIGTERM", onTerm);
  process.on("SIGINT", onInt);
  const started = performance.now();
  if (tty) process.stderr.write("viridian: booting Linux; press Ctrl-A X to quit\r\n");

  let stop;
  try {
    stop = await machine.run();
  } catch (e) {
    flush();
    cleanup();
    console.error(`viridian run: internal error: ${(e as Error).stack ?? String(e)}\n${machine.inspect()}`);
    return STATUS_GUEST_FAILED;
  }
  flush();
  cleanup();
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const summary = `${stop.retired} instructions, ${seconds} s`;
  if (signal !== null) {
    console.error(`viridian: stopped by ${signal}\n${machine.inspect()}`);
    return signal === "SIGTERM" ? STATUS_SIGTERM : 130;
  }
  switch (stop.kind) {
    case "poweroff":
      if (o.state) console.error(`viridian: ${stop.message} (${summary})\n${machine.inspect()}`);
      return 0;
    case "guest-crash": {
      // The guest's own report (TLFS crash MSRs): its panic line first, then the whole message it sent.
      const crash = stop.crash;
      const detail =
        crash === undefined
          ? ""
          : `crash parameters (CRASH_P0-P4): ${crash.parameters.join(" ")}\n` +
            (crash.message !== null
              ? `guest crash message:\n${terminalSafe(crash.message.trimEnd())}\n`
              : "");
      console.error(
        `viridian: guest crashed: ${crash ? crashSummary(crash) : stop.message} (${summary})\n${detail}` +
          `last serial output:\n${machine.recentSerial().join("\n")}\nmachine state:\n${machine.inspect()}`,
      );
      return STATUS_GUEST_FAILED;
    }
    case "stopped":
      if (stop.message.startsWith("quit")) {
        console.error(`\r\nviridian: ${stop.message}`);
        return 0;
      }
      break;
    default:
      break;
  }
  console.error(
    `viridian: ${stop.message} (${summary})\n` +
      `last serial output:\n${machine.recentSerial().join("\n")}\nmachine state:\n${machine.inspect()}`,
  );
  return STATUS_GUEST_FAILED;

  function cleanup(): void {
    process.off("SIGTERM", onTerm);
    process.off("SIGINT", onInt);
    stdin.off("data", onData);
    if (tty) stdin.setRawMode(false);
    stdin.pause();
    stdin.unref?.();
    out.close();
  }
}

/** The block translation threshold from VIRIDIAN_JIT_THRESHOLD, or undefined for the processor's default. */
export function jitThresholdFromEnv(): number | undefined {
  const v = process.env.VIRIDIAN_JIT_THRESHOLD;
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  return Number.isInteger(n) ? n : undefined;
}
