// The hostile-code fuzzing loop: random instruction bytes run in ring 0 and ring 3 of the sandbox with a
// small instruction budget; every run() must return a valid ExitReason (never throw, never hang), and the
// outcomes are counted: exceptions by vector (which handler stub was reached), exits by reason.
// Used by hostile-code.test.ts through worker threads, one per core.
import { GuestMemory } from "../../src/memory/guest-memory.js";
import { Cpu } from "../../src/x86/cpu.js";
import { Reg } from "../../src/x86/processor.js";
import { ExitReason } from "../../src/x86/vm-exit.js";
import {
  buildSandboxImage,
  CODE_PAGE,
  enterLongMode,
  HANDLER_BASE,
  SANDBOX_RAM,
  SCRATCH,
  setupSandbox,
  SYSCALL_ENTRY,
  USER_STACK,
} from "./sandbox.js";

export const SEQUENCE_BYTES = 16;
export const BUDGET = 32;
const MAX_EXITS_PER_SEQUENCE = 8;

const EXIT_NAMES: Record<number, string> = {
  [ExitReason.BudgetExhausted]: "budget",
  [ExitReason.Rdmsr]: "rdmsr",
  [ExitReason.Wrmsr]: "wrmsr",
  [ExitReason.Cpuid]: "cpuid",
  [ExitReason.Vmcall]: "vmcall",
  [ExitReason.Hlt]: "hlt",
  [ExitReason.InterruptWindow]: "interrupt-window",
  [ExitReason.TripleFault]: "triple-fault",
  [ExitReason.AccessViolation]: "access-violation",
};

export interface FuzzResult {
  sequences: number;
  /** Final outcome of each sequence: "#<vector>", "syscall", "hlt", "budget", "triple-fault", ... */
  outcomes: Record<string, number>;
  /** Every exit seen (including ones handled mid-sequence), and device accesses ("io", "mmio"). */
  exits: Record<string, number>;
  /** Failures: a thrown host exception or an invalid return value, with the bytes that caused it. */
  failures: string[];
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** `jitThreshold`: block translation threshold of the fuzzed processor (0: translate on first execution). */
export function runFuzz(seed: number, count: number, jitThreshold?: number): FuzzResult {
  const memory = new GuestMemory(SANDBOX_RAM);
  const cpu = new Cpu(memory, { jitThreshold });
  cpu.controls.ioBitmap.fill(0xff);
  cpu.controls.cpuidExiting = false;
  cpu.controls.hltExiting = true;
  const { image, setupEnd } = buildSandboxImage();
  const result: FuzzResult = { sequences: 0, outcomes: {}, exits: {}, failures: [] };
  const bump = (map: Record<string, number>, key: string): void => {
    map[key] = (map[key] ?? 0) + 1;
  };
  // A floating bus: every port and MMIO access is counted, reads return all ones.
  cpu.ports = {
    read: () => (bump(result.exits, "io"), -1),
    write: () => bump(result.exits, "io"),
  };
  cpu.mmio = {
    hi: -1,
    read: () => (bump(result.exits, "mmio"), -1),
    write: () => bump(result.exits, "mmio"),
  };
  let state = seed >>> 0 || 1;
  const rand = (): number => {
    // xorshift32: fast and reproducible from the seed printed by the test
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  const code = new Uint8Array(4096);
  if (!setupSandbox(memory, cpu, image, setupEnd)) {
    result.failures.push("the sandbox setup stub did not reach its HLT");
    return result;
  }
  for (let n = 0; n < count; n++) {
    const user = (n & 1) === 1;
    const bytes = code.subarray(0, SEQUENCE_BYTES);
    try {
      // Ring-0 code may have changed GDTR/IDTR/TR/MSRs: re-run the setup stub (it also restores memory).
      if (!user) {
        if (!setupSandbox(memory, cpu, image, setupEnd)) {
          result.failures.push(`setup failed after a ring-0 sequence (seed ${seed}, n ${n - 1})`);
          return result;
        }
      } else {
        memory.write(0, image);
      }
      for (let i = 0; i < SEQUENCE_BYTES; i += 4) {
        const r = rand();
        code[i] = r;
        code[i + 1] = r >>> 8;
        code[i + 2] = r >>> 16;
        code[i + 3] = r >>> 24;
      }
      code.fill(0xf4, SEQUENCE_BYTES); // running off the end reaches HLT
      memory.write(CODE_PAGE, code);
      enterLongMode(cpu, user);
      for (let r = 0; r < 16; r++) {
        const v = rand();
        // Half the registers point into the scratch page so memory operands often hit mapped RAM.
        if (v & 1) cpu.setReg(r as Reg, SCRATCH + ((v >>> 1) & 0xff8), 0);
        else cpu.setReg(r as Reg, rand() | 0, v & 2 ? -1 : 0);
      }
      cpu.setReg(Reg.RSP, USER_STACK, 0);
      cpu.setRflags(0x2 | (rand() & 0x8d5)); // random arithmetic flags and DF, IF and TF clear
      cpu.setRip(CODE_PAGE, 0);
      let left = BUDGET;
      let outcome = "";
      for (let e = 0; e < MAX_EXITS_PER_SEQUENCE && outcome === ""; e++) {
        const before = cpu.retired;
        const reason = cpu.run(left);
        const name = EXIT_NAMES[reason];
        if (name === undefined) throw new Error(`run() returned ${String(reason)}, not an ExitReason`);
        if (cpu.retired < before) throw new Error("retired count went backwards");
        left -= cpu.retired - before;
        bump(result.exits, name);
        switch (reason) {
          case ExitReason.BudgetExhausted:
            break; // the budget ran out (outcome below) or a device write ended the batch early
          case ExitReason.Rdmsr:
          case ExitReason.Wrmsr:
            cpu.injectException(13, 0);
            break;
          case ExitReason.Vmcall:
            cpu.injectException(6);
            break;
          case ExitReason.Cpuid:
            cpu.completeCpuid(0, 0, 0, 0);
            break;
          case ExitReason.InterruptWindow:
            break;
          case ExitReason.Hlt: {
            const at = cpu.getRip().lo - 1;
            if (at >= HANDLER_BASE && at < HANDLER_BASE + 256) outcome = `#${at - HANDLER_BASE}`;
            else if (at === SYSCALL_ENTRY) outcome = "syscall";
            else outcome = "hlt";
            break;
          }
          case ExitReason.TripleFault:
            outcome = "triple-fault";
            cpu.reset();
            if (!setupSandbox(memory, cpu, image, setupEnd)) {
              result.failures.push(`setup failed after a triple fault (seed ${seed}, n ${n})`);
              return result;
            }
            break;
          default:
            outcome = name;
        }
        if (outcome === "" && left <= 0) outcome = "budget";
      }
      bump(result.outcomes, outcome === "" ? "exit-limit" : outcome);
    } catch (err) {
      result.failures.push(
        `${user ? "ring 3" : "ring 0"} bytes [${hex(bytes)}]: ${(err as Error).stack ?? String(err)}`,
      );
      if (result.failures.length >= 10) return result;
      cpu.reset();
      setupSandbox(memory, cpu, image, setupEnd);
    }
    result.sequences++;
  }
  return result;
}
