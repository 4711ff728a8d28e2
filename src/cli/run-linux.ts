// Owns: the Linux half of `viridian run` once the worker built the VM: connects the host terminal (raw mode
// on a TTY, Ctrl-A X to turn off, Ctrl-A S to shut down; plain bytes with pipes) to COM1, runs the machine,
// handles SIGTERM (an orderly shutdown through the shutdown integration service, turn-off after
// --stop-timeout) and SIGINT, and turns the way the guest stopped into the process exit status (0 = power-off).
// Must not: build or configure the machine (src/worker/build-vm.ts), implement machine behaviour
// (src/worker/pc-machine.ts) or parse images (src/firmware).
// Spec: Linux Documentation/arch/x86/boot.rst (what is loaded); the CLI contract in README.md.

import { crashSummary, type PcMachine, terminalSafe } from "../worker/pc-machine.js";
import type { SerialOutput } from "./serial-output.js";

/** How long SIGTERM and Ctrl-A S wait for the guest's orderly shutdown before turning it off (seconds). */
export const DEFAULT_STOP_TIMEOUT = 30;
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
  o: { state: boolean; stopTimeout?: number | undefined },
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
    // Ctrl-A X turns the VM off; Ctrl-A S asks the guest to shut down; Ctrl-A Ctrl-A sends one Ctrl-A;
    // anything else after Ctrl-A goes through as typed.
    const pass: number[] = [];
    for (const b of data) {
      if (sawCtrlA) {
        sawCtrlA = false;
        if (b === 0x78 || b === 0x58) {
          machine.requestStop("quit from the terminal (Ctrl-A X)");
          break;
        }
        if (b === 0x73 || b === 0x53) {
          orderlyStop("Ctrl-A S");
          continue;
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
  const stopTimeout = o.stopTimeout ?? DEFAULT_STOP_TIMEOUT;
  let stopTimer: ReturnType<typeof setTimeout> | null = null;
  /** How a turn-off came about, for the exit message: the signal, or why the orderly shutdown ended. */
  let turnOff = (why: string): void => {
    machine.requestStop(why);
  };
  /**
   * Hyper-V's Stop-VM: ask the guest through the shutdown IC and turn it off if it has no IC, refuses, or is
   * not off after `stopTimeout` seconds. A second request while waiting turns it off at once.
   */
  function orderlyStop(source: string): void {
    if (stopTimer !== null) {
      turnOff(`turned off: ${source} while waiting for the guest to shut down`);
      return;
    }
    const asked = machine.requestShutdown("shutdown", (answer) => {
      if (answer !== "accepted")
        turnOff(
          `turned off: the guest ${answer === "refused" ? "refused" : "did not answer"} the shutdown request`,
        );
    });
    if (!asked) {
      turnOff(`turned off: ${source} (the guest has no shutdown integration service)`);
      return;
    }
    process.stderr.write(
      `\r\nviridian: ${source}: asking the guest to shut down (turned off in ${stopTimeout} s otherwise)\r\n`,
    );
    stopTimer = setTimeout(
      () => turnOff(`turned off: the guest did not shut down within ${stopTimeout} s`),
      stopTimeout * 1000,
    );
  }
  const onTerm = (): void => {
    signal = "SIGTERM";
    orderlyStop("SIGTERM");
  };
  const onInt = (): void => {
    signal = "SIGINT";
    machine.requestStop("stopped by SIGINT");
  };
  process.on("SIGTERM", onTerm);
  process.on("SIGINT", onInt);
  const started = performance.now();
  if (tty) process.stderr.write("viridian: booting Linux; Ctrl-A X turns it off, Ctrl-A S shuts it down\r\n");

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
  if (signal !== null && stop.kind !== "poweroff") {
    console.error(`viridian: stopped by ${signal}\nviridian: ${stop.message}\n${machine.inspect()}`);
    return signal === "SIGTERM" ? STATUS_SIGTERM : 130;
  }
  if (stop.kind === "poweroff" && stopTimer !== null) {
    console.error(`viridian: the guest shut down (${summary})`);
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
      if (stop.message.startsWith("quit") || stop.message.startsWith("turned off")) {
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
    if (stopTimer !== null) clearTimeout(stopTimer);
    turnOff = () => undefined;
    process.off("SIGTERM", onTerm);
    process.off("SIGINT", onInt);
    stdin.off("data", onData);
    if (tty) stdin.setRawMode(false);
    stdin.pause();
    stdin.unref?.();
    out.close();
  }
}

/** The translation threshold from VIRIDIAN_JIT_THRESHOLD, or undefined for the processor's default. */
export function jitThresholdFromEnv(): number | undefined {
  const v = process.env.VIRIDIAN_JIT_THRESHOLD;
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  return Number.isInteger(n) ? n : undefined;
}
