// Owns: the instruction trace — a separate run loop that single-steps a Cpu and prints, per retired
// instruction, `rip  bytes  disassembly  [changed registers]`. Because it is a separate loop, tracing costs
// nothing when it is not used.
// Must not: change guest-visible state beyond what running the instructions does (code bytes are peeked
// with CR2 preserved, and a failed peek only prints "??").
// Spec: none (diagnostics); disassembly per disasm.ts.

import type { Cpu } from "./cpu.js";
import { decodeBytes, DECODE_OK } from "./decoder.js";
import { disassemble, regName } from "./disasm.js";
import { Insn } from "./insn.js";
import { ExitReason } from "./vm-exit.js";

function hex2(b: number): string {
  return b.toString(16).padStart(2, "0");
}

function ripText(lo: number, hi: number, long: boolean): string {
  return long
    ? (hi >>> 0).toString(16).padStart(8, "0") + (lo >>> 0).toString(16).padStart(8, "0")
    : (lo >>> 0).toString(16).padStart(8, "0");
}

/** Reads up to 15 code bytes at RIP without faulting (stops at the first unreadable byte). */
function peekCode(cpu: Cpu): Uint8Array {
  const out = new Uint8Array(15);
  const cr2Lo = cpu.cr2Lo;
  const cr2Hi = cpu.cr2Hi;
  const base = cpu.long64 ? 0 : cpu.segBaseLo[1]!;
  let n = 0;
  try {
    for (; n < 15; n++) {
      const s = (cpu.ripLo >>> 0) + (base >>> 0) + n;
      out[n] = cpu.readSys(s | 0, cpu.long64 ? (cpu.ripHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0 : 0, 1);
    }
  } catch {
    // unreadable (fault or MMIO): keep what we have
  }
  cpu.cr2Lo = cr2Lo;
  cpu.cr2Hi = cr2Hi;
  return out.subarray(0, n);
}

/**
 * Runs up to `budget` instructions one at a time, calling `sink` with one line per retired instruction.
 * Returns like Cpu.run (stops at the first exit).
 */
export function runTraced(cpu: Cpu, budget: number, sink: (line: string) => void): ExitReason {
  const lo = new Int32Array(16);
  const hi = new Int32Array(16);
  const d = new Insn();
  for (let i = 0; i < budget; i++) {
    lo.set(cpu.rlo);
    hi.set(cpu.rhi);
    const flags = cpu.getFlags();
    const ripLo = cpu.ripLo;
    const ripHi = cpu.ripHi;
    const long = cpu.long64;
    const bytes = peekCode(cpu);
    let text = "(bad)";
    let len = bytes.length;
    if (decodeBytes(bytes, cpu.codeMode, cpu.cpuid, d) === DECODE_OK) {
      len = d.len;
      const s = (ripLo >>> 0) + d.len;
      text = disassemble(d, s >>> 0, (ripHi + (s >= 0x1_0000_0000 ? 1 : 0)) | 0);
    }
    const before = cpu.retired;
    const r = cpu.run(1);
    const changes: string[] = [];
    for (let g = 0; g < 16; g++) {
      if (cpu.rlo[g] !== lo[g] || cpu.rhi[g] !== hi[g]) {
        const v = long
          ? (cpu.rhi[g]! === 0 ? "" : (cpu.rhi[g]! >>> 0).toString(16)) +
            (cpu.rlo[g]! >>> 0).toString(16).padStart(cpu.rhi[g]! === 0 ? 1 : 8, "0")
          : (cpu.rlo[g]! >>> 0).toString(16);
        changes.push(`${regName(g, long ? 8 : 4)}=${v}`);
      }
    }
    const nf = cpu.getFlags();
    if (nf !== flags) changes.push(`rflags=${nf.toString(16)}`);
    const bytesText = Array.from(bytes.subarray(0, len), hex2).join(" ");
    if (cpu.retired !== before || r === ExitReason.BudgetExhausted) {
      sink(
        `${ripText(ripLo, ripHi, long)}  ${bytesText.padEnd(30)}  ${text.padEnd(36)}  ${changes.join(" ")}`.trimEnd(),
      );
    } else {
      sink(`${ripText(ripLo, ripHi, long)}  ${bytesText.padEnd(30)}  ${text.padEnd(36)}  <exit ${r}>`);
    }
    if (r !== ExitReason.BudgetExhausted) return r;
  }
  return ExitReason.BudgetExhausted;
}
