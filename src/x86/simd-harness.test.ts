// Owns: helpers for the SIMD unit tests: running a 64-bit nasm snippet with CR4.OSFXSR/OSXMMEXCPT set and a
// data block at DATA (rbx = DATA), catching the first exception's vector through a minimal IDT, and
// formatting XMM registers. Named *.test.ts because it uses Node built-ins through nasm-harness.
// Must not: be imported by non-test code.
// Spec: Intel SDM Vol. 3A 6.14.1 (64-bit interrupt gates), used for the exception stubs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { assemble, CODE_BASE, machine, runToHlt } from "./nasm-harness.test.js";
import { ExitReason } from "./vm-exit.js";
import type { Cpu } from "./cpu.js";

export const DATA = 0x20000;
const STUBS = 0x30000;
const IDT = 0x40000;

function build(src: string, data: number[], cr4Extra: number, cr0Extra: number): Cpu {
  const { cpu, mem } = machine(
    "long64",
    assemble(`mov rbx, ${DATA}\nmov eax, -1\n${src}\nhlt`, 64, CODE_BASE),
  );
  mem.write(DATA, new Uint8Array(data));
  // IDT entry i -> stub i at STUBS + 8i: "mov eax, i; hlt" (B8 imm32 F4).
  const dv = new DataView(mem.buffer);
  for (let i = 0; i < 32; i++) {
    const h = STUBS + 8 * i;
    dv.setUint8(h, 0xb8);
    dv.setUint32(h + 1, i, true);
    dv.setUint8(h + 5, 0xf4);
    dv.setUint16(IDT + i * 16, h & 0xffff, true);
    dv.setUint16(IDT + i * 16 + 2, 0x08, true);
    dv.setUint16(IDT + i * 16 + 4, 0x8e00, true);
    dv.setUint16(IDT + i * 16 + 6, h >>> 16, true);
  }
  cpu.setDescriptorTable("idtr", IDT, 32 * 16 - 1);
  cpu.setControl("cr4", 0x20 | cr4Extra, 0);
  if (cr0Extra) cpu.setControl("cr0", cpu.getControl("cr0").lo | cr0Extra, 0);
  return cpu;
}

/** Runs a snippet to HLT (CR4 = PAE | cr4Extra, default OSFXSR|OSXMMEXCPT); asserts no exception happened. */
export function run(src: string, data: number[] = [], cr4Extra = 0x600, cr0Extra = 0): Cpu {
  const cpu = build(src, data, cr4Extra, cr0Extra);
  assert.equal(runToHlt(cpu), ExitReason.Hlt);
  const rip = cpu.getRip().lo;
  assert.ok(rip < STUBS, `exception ${cpu.getReg(0).lo} raised`);
  return cpu;
}

/** Runs a snippet and returns the vector of the first exception, or the final EAX if none was raised. */
export function faultVector(src: string, data: number[] = [], cr4Extra = 0x600, cr0Extra = 0): number {
  const cpu = build(src, data, cr4Extra, cr0Extra);
  assert.equal(runToHlt(cpu), ExitReason.Hlt);
  return cpu.getReg(0).lo;
}

/** XMM register n as 32 hex digits, most significant first (like a 128-bit literal). */
export function xmm(cpu: Cpu, n: number): string {
  let s = "";
  for (let k = 3; k >= 0; k--) s += (cpu.xmm[n * 4 + k]! >>> 0).toString(16).padStart(8, "0");
  return s;
}

export const bytes = (n: number, f: (i: number) => number): number[] =>
  Array.from({ length: n }, (_, i) => f(i) & 0xff);

/** Little-endian bytes of 32-bit floats / 64-bit doubles for data blocks. */
export function f32s(...v: number[]): number[] {
  const dv = new DataView(new ArrayBuffer(v.length * 4));
  v.forEach((x, i) => dv.setFloat32(i * 4, x, true));
  return [...new Uint8Array(dv.buffer)];
}
export function f64s(...v: number[]): number[] {
  const dv = new DataView(new ArrayBuffer(v.length * 8));
  v.forEach((x, i) => dv.setFloat64(i * 8, x, true));
  return [...new Uint8Array(dv.buffer)];
}

test("simd harness: exceptions are caught by vector", () => {
  assert.equal(faultVector("ud2"), 6);
  assert.equal(faultVector("mov eax, 5"), 5);
});
