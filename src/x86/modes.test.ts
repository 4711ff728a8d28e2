// Tests the mode transitions a Multiboot kernel performs: real mode -> 32-bit protected mode (LGDT, MOV CR0,
// far JMP) -> PAE paging -> long mode (EFER.LME via WRMSR, CR0.PG, far JMP to a 64-bit segment), printing
// over port 0x3F8 with OUT (through the port intercept), plus CPUID/RDMSR answered by the processor itself,
// and the device intercepts: IN and MMIO reads complete in place, MMIO writes reach the device.
import { test } from "node:test";
import assert from "node:assert/strict";
import { assemble, CODE_BASE, machine, RecordingDevices, runToExit } from "./nasm-harness.test.js";
import { ExitReason } from "./vm-exit.js";

const BOOT = `
  cli
  mov ax, 0x1000
  mov ds, ax
  xor ax, ax
  mov ss, ax
  mov sp, 0x7000
  mov dx, 0x3f8
  mov al, 'R'
  out dx, al
  lgdt [gdtr - 0x10000]
  mov eax, cr0
  or eax, 1
  mov cr0, eax
  jmp dword 0x08:pm32

bits 32
pm32:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov esp, 0x70000
  mov dx, 0x3f8
  mov al, 'P'
  out dx, al
  ; page tables at 0x200000: PML4 -> PDPT -> PD with 2 MiB pages identity-mapping 1 GiB
  mov edi, 0x200000
  mov ecx, 3 * 4096 / 4
  xor eax, eax
  rep stosd
  mov dword [0x200000], 0x201003
  mov dword [0x201000], 0x202003
  mov edi, 0x202000
  mov eax, 0x83
  mov ecx, 512
.fill:
  mov [edi], eax
  add eax, 0x200000
  add edi, 8
  loop .fill
  mov eax, 0x200000
  mov cr3, eax
  mov eax, cr4
  or eax, 0x20
  mov cr4, eax
  mov ecx, 0xC0000080
  rdmsr
  or eax, 0x100
  wrmsr
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  jmp 0x18:lm64

bits 64
lm64:
  mov dx, 0x3f8
  mov al, 'L'
  out dx, al
  mov ecx, 0xC0000080
  rdmsr
  mov r15, rax            ; EFER with LMA
  mov eax, 0x80000001
  cpuid
  mov r14, rdx            ; LM bit 29
  mov rax, 0x123456789abcdef0
  mov [rel scratch], rax
  mov rbx, [rel scratch]
  hlt

align 8
scratch: dq 0
gdt:
  dq 0
  dq 0x00cf9a000000ffff   ; 0x08 32-bit code
  dq 0x00cf92000000ffff   ; 0x10 data
  dq 0x00af9a000000ffff   ; 0x18 64-bit code
gdtr:
  dw gdtr - gdt - 1
  dd gdt
`;

test("real -> protected -> PAE long mode, printing over COM1 through the port intercept", () => {
  const { cpu } = machine("real", assemble(BOOT, 16, CODE_BASE));
  // Real mode cannot reach 0x10000 with CS=0 and 16-bit IP; run from CS=0x1000:0.
  const dev = new RecordingDevices().attach(cpu);
  const r = runToExit(cpu, 10_000_000);
  assert.equal(r, ExitReason.Hlt, `stopped with ${r} at ${cpu.getRip().lo.toString(16)}`);
  const out = dev.written(0x3f8);
  assert.equal(out, "RPL");
  assert.equal(cpu.getReg(15).lo & 0x500, 0x500, "EFER.LME and LMA");
  assert.ok(cpu.getReg(14).lo & (1 << 29), "CPUID reports long mode");
  assert.equal(cpu.getReg(3).lo >>> 0, 0x9abcdef0);
  assert.equal(cpu.getReg(3).hi >>> 0, 0x12345678);
});

test("IN completes in place with the intercept's value", () => {
  const { cpu } = machine("long64", assemble("mov dx, 0x60\nin al, dx\nmov bl, al\nhlt", 64));
  const dev = new RecordingDevices((port) => (port === 0x60 ? 0xab : -1)).attach(cpu);
  assert.equal(cpu.run(1000), ExitReason.Hlt);
  assert.deepEqual(dev.log, ["in 60 1"]);
  assert.equal(cpu.getReg(3).lo & 0xff, 0xab);
});

test("MMIO reads complete in place; an MMIO write reaches the device and ends the batch", () => {
  const src = "mov eax, [0xfee00030]\nmov ebx, eax\nmov dword [0xfee000b0], 0x55\nmov ecx, 1\nhlt";
  const { cpu: c } = machine("prot32", assemble(src, 32));
  const dev = new RecordingDevices(undefined, () => ({ lo: 0x50014, hi: 0 })).attach(c);
  assert.equal(c.run(1000), ExitReason.BudgetExhausted, "the write ended the batch");
  assert.equal(c.retired, 3, "after the write's instruction retired");
  assert.deepEqual(dev.log, ["mr fee00030 4", "mw fee000b0 4 55 0"]);
  assert.equal(c.getReg(3).lo, 0x50014);
  assert.equal(c.run(1000), ExitReason.Hlt);
  assert.equal(c.getReg(1).lo, 1);
});

test("without intercepts, ports and MMIO float to all ones and writes vanish", () => {
  const src =
    "mov eax, [0xfee00030]\nmov dword [0xfee000b0], 0x55\nmov dx, 0x60\nin al, dx\nmov ebx, eax\nhlt";
  const { cpu: c } = machine("prot32", assemble(src, 32));
  c.controls.ioBitmap.fill(0xff);
  assert.equal(c.run(1000), ExitReason.Hlt);
  assert.equal(c.getReg(3).lo, -1);
});

test("CPUID exiting, RDMSR of an unowned MSR and VMCALL leave the instruction for the runner", () => {
  const src = "cpuid\nmov ecx, 0x40000000\nrdmsr\nvmcall\nhlt";
  const { cpu } = machine("long64", assemble(src, 64));
  cpu.controls.cpuidExiting = true;
  cpu.setReg(0, 0x40000000, 0);
  assert.equal(cpu.run(100), ExitReason.Cpuid);
  assert.equal(cpu.exit.cpuidLeaf, 0x40000000);
  const before = cpu.retired;
  cpu.completeCpuid(1, 2, 3, 4);
  assert.equal(cpu.retired, before + 1);
  assert.equal(cpu.getReg(3).lo, 2);
  assert.equal(cpu.run(100), ExitReason.Rdmsr);
  assert.equal(cpu.exit.msr, 0x40000000);
  cpu.completeRdmsr(0x11, 0x22);
  assert.equal(cpu.getReg(2).lo, 0x22);
  assert.equal(cpu.run(100), ExitReason.Vmcall);
  const rip = cpu.getRip().lo;
  cpu.completeVmcall();
  assert.equal(cpu.getRip().lo, rip + 3);
  assert.equal(cpu.run(100), ExitReason.Hlt);
  assert.equal(CODE_BASE > 0, true);
});

test("unreal mode: a 4 GiB data limit loaded in protected mode survives the return to real mode", () => {
  const src = `
  mov ax, 0x1000
  mov ds, ax
  lgdt [gdtr - 0x10000]
  mov eax, cr0
  or al, 1
  mov cr0, eax
  mov bx, 0x10
  mov es, bx
  and al, 0xfe
  mov cr0, eax
  xor ax, ax
  mov es, ax
  mov edi, 0x300000
  mov dword [es:edi], 0xcafe
  mov ecx, [es:edi]
  hlt
align 8
gdt:
  dq 0
  dq 0x00cf9a000000ffff
  dq 0x00cf92000000ffff
gdtr:
  dw gdtr - gdt - 1
  dd gdt
`;
  const { cpu } = machine("real", assemble(src, 16, CODE_BASE));
  assert.equal(cpu.run(1000), ExitReason.Hlt);
  assert.equal(cpu.getReg(1).lo, 0xcafe);
});
