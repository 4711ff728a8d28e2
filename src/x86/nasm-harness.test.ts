// Owns: the test harness for processor unit tests: assembling snippets with nasm at test time, and building
// a machine in real mode, flat 32-bit protected mode or 64-bit long mode (identity-mapped 2 MiB pages)
// with the snippet loaded at CODE_BASE, and a 64-bit IDT prelude whose stubs record the exception taken.
// Named *.test.ts because it uses Node built-ins (child_process).
// Must not: be imported by non-test code.
// Spec: Intel SDM Vol. 3A 9.8/9.9 (entering protected and IA-32e mode), nasm manual (-f bin).

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest-memory.js";
import { Cpu } from "./cpu.js";
import { ExitReason, type MmioIntercept, type PortIntercept } from "./vm-exit.js";

export const CODE_BASE = 0x10000;
export const STACK_TOP = 0x80000;
export const PML4_BASE = 0x100000;
export const GDT_BASE = 0x1000;
/** GDT selectors set up by `machine`: 64-bit code, flat data, 32-bit code. */
export const SEL_CODE64 = 0x08;
export const SEL_DATA = 0x10;
export const SEL_CODE32 = 0x18;
export const SEL_UDATA = 0x23;
export const SEL_UCODE64 = 0x2b;
export const SEL_UCODE32 = 0x33;
export const SEL_TSS = 0x38;

/** Assembles nasm source (without BITS/ORG, which are added) into flat bytes. */
export function assemble(src: string, bits: 16 | 32 | 64, org = CODE_BASE): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "viridian-asm-"));
  try {
    writeFileSync(join(dir, "t.asm"), `bits ${bits}\norg ${org}\n${src}\n`);
    execFileSync("nasm", ["-f", "bin", "-o", join(dir, "t.bin"), join(dir, "t.asm")], { stdio: "pipe" });
    return new Uint8Array(readFileSync(join(dir, "t.bin")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export type Mode = "real" | "prot32" | "long64";

/** Builds a CPU with 8 MiB of RAM in the given mode, code at CODE_BASE, RSP at STACK_TOP. */
export function machine(
  mode: Mode,
  code: Uint8Array,
  memBytes = 8 * 1024 * 1024,
): { cpu: Cpu; mem: GuestMemory } {
  const mem = new GuestMemory(memBytes);
  // Translate on first execution (so these short snippets run translated code); VIRIDIAN_JIT_THRESHOLD=-1
  // runs them on the interpreter alone.
  const jitThreshold = Number(process.env.VIRIDIAN_JIT_THRESHOLD ?? 0);
  const cpu = new Cpu(mem, { deterministic: true, jitThreshold });
  setupMode(cpu, mem, mode, code);
  return { cpu, mem };
}

/** Resets `cpu` and puts it in `mode` with GDT, page tables (long mode) and `code` at CODE_BASE. */
export function setupMode(cpu: Cpu, mem: GuestMemory, mode: Mode, code: Uint8Array): void {
  cpu.reset();
  mem.write(CODE_BASE, code);
  const flat = (
    sel: number,
    access: number,
  ): { selector: number; base: number; limit: number; access: number } => ({
    selector: sel,
    base: 0,
    limit: 0xffffffff,
    access,
  });
  const dv = new DataView(mem.buffer);
  // 0x08 code64, 0x10 data, 0x18 code32, 0x20 user data, 0x28 user code64, 0x30 user code32, 0x38 TSS slot
  // (16 bytes, filled by tests that need one).
  const gdt = [
    0n,
    0x00af9a000000ffffn,
    0x00cf92000000ffffn,
    0x00cf9a000000ffffn,
    0x00cff2000000ffffn,
    0x00affa000000ffffn,
    0x00cffa000000ffffn,
    0n,
    0n,
  ];
  gdt.forEach((v, i) => dv.setBigUint64(GDT_BASE + i * 8, v, true));
  cpu.setDescriptorTable("gdtr", GDT_BASE, gdt.length * 8 - 1);
  if (mode === "real") {
    // Code at CODE_BASE as 0x1000:0000 (assembled with org 0 by `exec`).
    cpu.setSegment(1, { selector: CODE_BASE >> 4, base: CODE_BASE, limit: 0xffff, access: 0x9b });
    for (const s of [0, 2, 3, 4, 5] as const)
      cpu.setSegment(s, { selector: 0, base: 0, limit: 0xffff, access: 0x93 });
  } else if (mode === "prot32") {
    cpu.setControl("cr0", 0x11, 0);
    cpu.setSegment(1, flat(SEL_CODE32, 0xc09b));
    for (const s of [0, 2, 3, 4, 5] as const) cpu.setSegment(s, flat(SEL_DATA, 0xc093));
  } else {
    // Identity map the first 1 GiB with 2 MiB pages: PML4 -> PDPT -> PD.
    dv.setUint32(PML4_BASE, PML4_BASE + 0x1000 + 7, true);
    dv.setUint32(PML4_BASE + 0x1000, PML4_BASE + 0x2000 + 7, true);
    for (let i = 0; i < 512; i++) dv.setUint32(PML4_BASE + 0x2000 + i * 8, i * 0x200000 + 0x87, true);
    cpu.setControl("cr3", PML4_BASE, 0);
    cpu.setControl("cr4", 0x20, 0);
    cpu.setControl("efer", 0x500, 0);
    cpu.setControl("cr0", 0x80000011 | 0, 0);
    cpu.setSegment(1, flat(SEL_CODE64, 0xa09b));
    for (const s of [0, 2, 3, 4, 5] as const) cpu.setSegment(s, flat(SEL_DATA, 0xc093));
  }
  cpu.setRip(mode === "real" ? 0 : CODE_BASE, 0);
  cpu.setReg(4, STACK_TOP, 0);
}

/** Runs until HLT (or another exit / the budget); returns the exit reason. */
export function runToHlt(cpu: Cpu, budget = 1_000_000): ExitReason {
  return cpu.run(budget);
}

/**
 * A recording device layer for the processor's intercepts: every port and MMIO access in order, as text
 * ("in 60 1", "out 3f8 1 41", "mr fee00030 4", "mw fee000b0 4 55 0"), reads answered by `answer` (default:
 * all ones, or the low bytes of the address for MMIO so that every byte read is identifiable).
 */
export class RecordingDevices {
  readonly log: string[] = [];
  readonly ports: PortIntercept;
  readonly mmio: MmioIntercept;

  constructor(
    answerPort: (port: number, size: number) => number = () => -1,
    answerMmio: (gpa: number, size: number) => { lo: number; hi: number } = (gpa) => ({
      lo: ((gpa & 0xff) * 0x01010101) | 0,
      hi: ((gpa & 0xff) * 0x01010101) | 0,
    }),
  ) {
    const log = this.log;
    this.ports = {
      read: (port, size) => {
        log.push(`in ${port.toString(16)} ${size}`);
        return answerPort(port, size);
      },
      write: (port, size, value) => {
        log.push(`out ${port.toString(16)} ${size} ${(value >>> 0).toString(16)}`);
      },
    };
    const mmio: MmioIntercept = {
      hi: 0,
      read: (gpa, size) => {
        log.push(`mr ${gpa.toString(16)} ${size}`);
        const v = answerMmio(gpa, size);
        mmio.hi = v.hi;
        return v.lo;
      },
      write: (gpa, size, lo, hi) => {
        log.push(`mw ${gpa.toString(16)} ${size} ${(lo >>> 0).toString(16)} ${(hi >>> 0).toString(16)}`);
      },
    };
    this.mmio = mmio;
  }

  /** Connects this recorder to `cpu` (every port intercepted). */
  attach(cpu: Cpu): this {
    cpu.ports = this.ports;
    cpu.mmio = this.mmio;
    cpu.controls.ioBitmap.fill(0xff);
    return this;
  }

  /** The bytes written to `port`, as a string. */
  written(port: number): string {
    const prefix = `out ${port.toString(16)} `;
    return this.log
      .filter((l) => l.startsWith(prefix))
      .map((l) => String.fromCharCode(parseInt(l.split(" ")[3]!, 16)))
      .join("");
  }
}

/** Runs until the processor reports anything but the end of a batch (a device write ends one early). */
export function runToExit(cpu: Cpu, budget = 1_000_000): ExitReason {
  const limit = cpu.retired + budget;
  for (;;) {
    const r = cpu.run(Math.max(1, limit - cpu.retired));
    if (r !== ExitReason.BudgetExhausted || cpu.retired >= limit) return r;
  }
}

/** Assembles, builds and runs a snippet that ends in HLT; asserts it reached HLT. */
export function exec(src: string, mode: Mode = "long64"): Cpu {
  const bits = mode === "real" ? 16 : mode === "prot32" ? 32 : 64;
  const { cpu } = machine(mode, assemble(src, bits, mode === "real" ? 0 : CODE_BASE));
  const r = runToHlt(cpu);
  assert.equal(r, ExitReason.Hlt, `expected HLT, got exit ${r} at rip ${cpu.getRip().lo.toString(16)}`);
  return cpu;
}

/**
 * 64-bit prelude: an IDT whose stubs (vectors 0-33) record vector (r15), error code (r14), CR2 (r13), the
 * handler's RSP (r12) and the faulting RIP (rbp), then HLT.
 */
export const IDT64 = `
  jmp start
%macro STUB 1
stub%1:
  %if (%1 == 8) || (%1 >= 10 && %1 <= 14) || (%1 == 17)
  %else
    push 0
  %endif
  push %1
  jmp isr_common
%endmacro
%assign i 0
%rep 34
  STUB i
%assign i i+1
%endrep
isr_common:
  pop r15
  pop r14
  mov r13, cr2
  mov r12, rsp
  mov rbp, [rsp]
  hlt
align 8
stubs:
%assign i 0
%rep 34
  dq stub %+ i
%assign i i+1
%endrep
align 16
idt: times 34*16 db 0
idtr: dw 34*16-1
  dq idt
setup_idt:
  lea rdi, [rel idt]
  lea rsi, [rel stubs]
  mov ecx, 34
.l:
  mov rax, [rsi]
  mov [rdi], ax
  mov word [rdi+2], 0x08
  mov word [rdi+4], 0xee00
  shr rax, 16
  mov [rdi+6], ax
  shr rax, 16
  mov [rdi+8], eax
  mov dword [rdi+12], 0
  add rdi, 16
  add rsi, 8
  loop .l
  lidt [rel idtr]
  ret
start:
  call setup_idt
`;

/** Runs IDT64 + `body` in long mode to HLT; an exception ends there too, with its vector in r15. */
export function run64(body: string): ReturnType<typeof exec> {
  return exec(IDT64 + body);
}

/** 64-bit register value as a BigInt (tests only). */
export function reg64(cpu: Cpu, r: number): bigint {
  const v = cpu.getReg(r);
  return (BigInt(v.hi >>> 0) << 32n) | BigInt(v.lo >>> 0);
}

test("harness: nasm assembles and a 64-bit snippet reaches HLT", () => {
  const cpu = exec("mov rax, 0x1122334455667788\nhlt");
  assert.equal(reg64(cpu, 0), 0x1122334455667788n);
});
