// Tests the mode transitions a Multiboot kernel performs: real mode -> 32-bit protected mode (LGDT, MOV CR0,
// far JMP) -> PAE paging -> long mode (EFER.LME via WRMSR, CR0.PG, far JMP to a 64-bit segment), printing
// over port 0x3F8 with OUT (posted Io exits), plus CPUID/RDMSR answered by the processor itself.
import { test } from "node:test";
import assert from "node:assert/strict";
import { assemble, CODE_BASE, machine } from "./nasm-harness.test.js";
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

test("real -> protected -> PAE long mode, printing over COM1 with OUT exits", () => {
  const { cpu } = machine("real", assemble(BOOT, 16, CODE_BASE));
  // Real mode cannot reach 0x10000 with CS=0 and 16-bit IP; run from CS=0x1000:0.
  let out = "";
  for (let guard = 0; guard < 100; guard++) {
    const r = cpu.run(100000);
    if (r === ExitReason.Io) {
      assert.equal(cpu.exit.isWrite, true);
      assert.equal(cpu.exit.port, 0x3f8);
      out += String.fromCharCode(cpu.exit.valueLo);
      continue;
    }
    assert.equal(r, ExitReason.Hlt, `stopped with ${r} at ${cpu.getRip().lo.toString(16)}`);
    break;
  }
  assert.equal(out, "RPL");
  assert.equal(cpu.getReg(15).lo & 0x500, 0x500, "EFER.LME and LMA");
  assert.ok(cpu.getReg(14).lo & (1 << 29), "CPUID reports long mode");
  assert.equal(cpu.getReg(3).lo >>> 0, 0x9abcdef0);
  assert.equal(cpu.getReg(3).hi >>> 0, 0x12345678);
});

test("IN exits before retiring and completes with the runner's value", () => {
  const { cpu } = machine("long64", assemble("mov dx, 0x60\nin al, dx\nmov bl, al\nhlt", 64));
  assert.equal(cpu.run(1000), ExitReason.Io);
  assert.equal(cpu.exit.isWrite, false);
  assert.equal(cpu.exit.port, 0x60);
  assert.equal(cpu.exit.size, 1);
  cpu.completeIoRead(0xab);
  assert.equal(cpu.run(1000), ExitReason.Hlt);
  assert.equal(cpu.getReg(3).lo & 0xff, 0xab);
});

test("MMIO read exits, completes by replay; MMIO write is posted", () => {
  const src = "mov eax, [0xfee00030]\nmov ebx, eax\nmov dword [0xfee000b0], 0x55\nhlt";
  const { cpu } = machine("long64", assemble(src, 64));
  // Map the APIC page: 4 GiB identity is not in the harness tables, so use a 32-bit flat machine instead.
  void cpu;
  const m = machine("prot32", assemble(src, 32));
  const c = m.cpu;
  assert.equal(c.run(1000), ExitReason.Mmio);
  assert.equal(c.exit.gpa, 0xfee00030);
  assert.equal(c.exit.isWrite, false);
  assert.equal(c.exit.size, 4);
  c.completeMmioRead(0x50014, 0);
  assert.equal(c.run(1000), ExitReason.Mmio);
  assert.equal(c.exit.isWrite, true);
  assert.equal(c.exit.gpa, 0xfee000b0);
  assert.equal(c.exit.valueLo, 0x55);
  assert.equal(c.getReg(3).lo, 0x50014);
  assert.equal(c.run(1000), ExitReason.Hlt);
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
