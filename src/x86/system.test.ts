// Tests system instructions: SYSCALL/SYSRET round trip through ring 3, SWAPGS, SYSENTER/SYSEXIT, owned MSRs
// (EFER, STAR, LSTAR, FS/GS base, TSC_AUX, PAT, MTRR), RDTSC monotonicity and RDTSCP, RDRAND, CPUID leaves,
// MOV CR/DR, SGDT/SIDT/SMSW, and IOPL/I-O bitmap protection of IN/OUT and CLI at CPL 3.
import { test } from "node:test";
import assert from "node:assert/strict";
import { assemble, exec, machine, reg64 } from "./nasm-harness.test.js";
import { ExitReason } from "./vm-exit.js";

const WRMSR = (msr: number, value: string): string =>
  `mov ecx, ${msr}\nmov rax, ${value}\nmov rdx, rax\nshr rdx, 32\nwrmsr\n`;

test("SYSCALL/SYSRET round trip through ring 3, SWAPGS, FS/GS base MSRs", () => {
  const cpu = exec(
    WRMSR(0xc0000080, "0xd01") + // EFER: SCE | LME | LMA | NXE
      WRMSR(0xc0000081, "(0x18 << 48) | (0x08 << 32)") +
      `lea rax, [rel kernel]\nmov rdx, rax\nshr rdx, 32\nmov ecx, 0xC0000082\nwrmsr\n` +
      WRMSR(0xc0000084, "0x200") +
      WRMSR(0xc0000102, "0xffff800012345678") + // KERNEL_GS_BASE
      WRMSR(0xc0000100, "0x5000") + // FS base
      `
    mov dword [0x5008], 0xfeed
    mov r11, 0x202
    lea rcx, [rel user]
    o64 sysret
  user:
    mov ax, cs
    movzx r8, ax
    mov r9d, [fs:8]
    syscall
    hlt
  kernel:
    mov ax, cs
    movzx r10, ax
    mov r12, r11
    mov r13, rcx
    swapgs
    mov ecx, 0xC0000101
    rdmsr
    shl rdx, 32
    or rax, rdx
    mov r14, rax
    hlt`,
  );
  assert.equal(reg64(cpu, 8), 0x2bn, "SYSRET to the 64-bit user CS (STAR[63:48] + 16, RPL 3)");
  assert.equal(reg64(cpu, 9), 0xfeedn, "FS base from IA32_FS_BASE");
  assert.equal(reg64(cpu, 10), 0x08n, "SYSCALL to STAR[47:32]");
  assert.equal(reg64(cpu, 12) & 0x200n, 0x200n, "R11 holds the user RFLAGS");
  assert.equal(cpu.getRflags() & 0x200, 0, "SFMASK cleared IF");
  assert.equal(reg64(cpu, 14), 0xffff800012345678n, "SWAPGS exchanged GS base and KERNEL_GS_BASE");
  assert.equal(cpu.getSegment(2).selector, 0x10);
});

test("SYSENTER/SYSEXIT in 32-bit protected mode", () => {
  const cpu = exec(
    `
    mov ecx, 0x174
    mov eax, 0x18
    xor edx, edx
    wrmsr
    mov ecx, 0x175
    mov eax, 0x70000
    wrmsr
    mov ecx, 0x176
    mov eax, kernel
    wrmsr
    ; SYSEXIT to ring 3: CS = 0x18 + 16 = 0x28?  our GDT has user code32 at 0x30, so use SYSENTER_CS 0x20
    mov ecx, 0x174
    mov eax, 0x20
    wrmsr
    mov ecx, 0x50000
    mov edx, user
    sysexit
  user:
    mov ax, cs
    movzx esi, ax
    sysenter
  kernel:
    mov ax, cs
    movzx edi, ax
    mov ebp, esp
    hlt`,
    "prot32",
  );
  assert.equal(cpu.getReg(6).lo, 0x33, "SYSEXIT: CS = SYSENTER_CS + 16 | 3");
  assert.equal(cpu.getReg(7).lo, 0x20, "SYSENTER: CS = SYSENTER_CS");
  assert.equal(cpu.getReg(5).lo, 0x70000);
});

test("RDTSC never decreases; RDTSCP returns TSC_AUX; TSC offset applies", () => {
  const cpu = exec(WRMSR(0xc0000103, "7") + "rdtsc\nmov r8d, eax\nmov r9d, edx\nnop\nnop\nrdtscp\nhlt");
  const first = (BigInt(cpu.getReg(9).lo >>> 0) << 32n) | BigInt(cpu.getReg(8).lo >>> 0);
  const second = (BigInt(cpu.getReg(2).lo >>> 0) << 32n) | BigInt(cpu.getReg(0).lo >>> 0);
  assert.ok(second > first);
  assert.equal(cpu.getReg(1).lo, 7);
  const m = machine("long64", assemble("rdtsc\nhlt", 64));
  m.cpu.controls.tscOffsetHi = 5;
  assert.equal(m.cpu.run(10), ExitReason.Hlt);
  assert.equal(m.cpu.getReg(2).lo, 5);
});

test("RDRAND sets CF and produces varying values; CPUID vendor and features", () => {
  const cpu = exec(
    "rdrand rax\nsetc r10b\nrdrand rcx\nmov r8, rcx\nxor eax, eax\ncpuid\nmov r9d, ebx\nmov eax, 1\ncpuid\nhlt",
  );
  assert.equal(cpu.getReg(10).lo & 0xff, 1);
  assert.equal(cpu.getReg(9).lo, 0x756e6547, "Genu");
  assert.ok(cpu.getReg(1).lo & (1 << 23), "POPCNT advertised");
  assert.equal(cpu.getReg(2).lo & (1 << 25), 1 << 25, "SSE advertised (the SIMD groups are implemented)");
});

test("owned MSRs store values; reserved EFER bits and bad PAT types #GP; unowned MSRs exit", () => {
  const cpu = exec(
    WRMSR(0x277, "0x0007040600070406") + WRMSR(0x200, "0x12345") + "mov ecx, 0x200\nrdmsr\nhlt",
  );
  assert.equal(cpu.getReg(0).lo, 0x12345);
  const m = machine("long64", assemble("mov ecx, 0x1b\nrdmsr\nhlt", 64));
  assert.equal(m.cpu.run(10), ExitReason.Rdmsr);
  assert.equal(m.cpu.exit.msr, 0x1b);
  m.cpu.injectException(13, 0);
  assert.equal(m.cpu.getRip().hi, 0);
});

test("MOV CR/DR, SGDT/SIDT, SMSW", () => {
  const cpu = exec(`
    mov rax, cr0
    mov r8, rax
    mov rax, 0x1234
    mov dr0, rax
    mov rbx, dr0
    mov rcx, dr7
    sgdt [rel g]
    movzx r9, word [rel g]
    smsw r10d
    mov rax, cr4
    mov r11, rax
    hlt
  g: times 10 db 0`);
  assert.equal(reg64(cpu, 8) & 0x80000001n, 0x80000001n);
  assert.equal(reg64(cpu, 3), 0x1234n);
  assert.equal(reg64(cpu, 1), 0x400n);
  assert.equal(reg64(cpu, 9), 8n * 9n - 1n);
  assert.equal(reg64(cpu, 10) & 1n, 1n);
  assert.equal(reg64(cpu, 11) & 0x20n, 0x20n);
});

test("CPL 3 with IOPL 0: OUT, CLI and HLT raise #GP; IOPL 3 allows OUT", () => {
  const src = (iopl: number): string => `
    lea rax, [rel handler]
    mov [rel idt + 13*16], ax
    mov word [rel idt + 13*16 + 2], 0x08
    mov word [rel idt + 13*16 + 4], 0x8e00
    shr rax, 16
    mov [rel idt + 13*16 + 6], ax
    shr rax, 16
    mov [rel idt + 13*16 + 8], eax
    lidt [rel idtr]
    lea rax, [rel tss]
    mov qword [rax + 4], 0x70000
    mov word [rax + 0x66], 0x68
    mov rbx, 0x1000 + 0x38
    mov word [rbx], 0x67
    mov [rbx + 2], ax
    shr rax, 16
    mov [rbx + 4], al
    mov byte [rbx + 5], 0x89
    mov [rbx + 7], ah
    shr rax, 16
    mov [rbx + 8], eax
    mov ax, 0x38
    ltr ax
    push 0x23
    push 0x50000
    push 0x${(0x2 | (iopl << 12)).toString(16)}
    push 0x2b
    lea rax, [rel user]
    push rax
    iretq
  user:
    mov dx, 0x3f8
    mov al, 'x'
    out dx, al
    mov r8, 1
    cli
    mov r9, 1
    hlt
  handler:
    mov r15, 13
    hlt
  align 16
  idt: times 16*16 db 0
  idtr: dw 16*16-1
    dq idt
  tss: times 0x68 db 0`;
  let cpu = exec(src(0));
  assert.equal(reg64(cpu, 15), 13n);
  assert.equal(reg64(cpu, 8), 0n, "OUT faulted");
  cpu = exec(src(3));
  assert.equal(reg64(cpu, 8), 1n, "OUT allowed with IOPL 3");
  assert.equal(reg64(cpu, 9), 1n, "CLI allowed with IOPL 3");
  assert.equal(reg64(cpu, 15), 13n, "HLT still needs CPL 0");
});

test("identification MSRs Linux reads unchecked: IA32_MISC_ENABLE, PLATFORM_ID, BIOS_SIGN_ID", () => {
  const cpu = exec(
    "mov ecx, 0x1a0\nrdmsr\nmov r8d, eax\nmov r9d, edx\n" +
      // clearing fast strings is a permitted write; read-only bits stay set
      "mov ecx, 0x1a0\nxor eax, eax\nxor edx, edx\nwrmsr\nrdmsr\nmov r10d, eax\n" +
      "mov ecx, 0x17\nrdmsr\nmov r11d, edx\n" +
      "mov ecx, 0x8b\nxor eax, eax\nxor edx, edx\nwrmsr\nmov eax, 1\ncpuid\nmov ecx, 0x8b\nrdmsr\nmov r12d, edx\nhlt",
  );
  assert.equal(cpu.getReg(8).lo, 0x1801, "fast strings on, BTS and PEBS unavailable");
  assert.equal(cpu.getReg(9).lo, 0);
  assert.equal(cpu.getReg(10).lo, 0x1800, "fast strings cleared, read-only bits kept");
  assert.equal(cpu.getReg(11).lo, 0);
  assert.equal(cpu.getReg(12).lo, 1, "microcode revision after WRMSR 0 + CPUID");
  // Setting a feature the processor lacks (bit 22: limit CPUID maxval) is refused with #GP(0).
  const m = machine("long64", assemble("mov ecx, 0x1a0\nmov eax, 0x401801\nxor edx, edx\nwrmsr\nhlt", 64));
  const r = m.cpu.run(10);
  assert.notEqual(r, ExitReason.Wrmsr, "IA32_MISC_ENABLE is the processor's, not the runner's");
  assert.notEqual(m.cpu.getRip().lo >>> 0, 0, "the WRMSR did not retire");
});

test("CPUID leaves 0x15/0x16 enumerate the TSC rate once the runner sets it; otherwise max leaf 0xD", () => {
  const src =
    "xor eax, eax\ncpuid\nmov r8d, eax\nmov eax, 0x15\ncpuid\nmov r9d, eax\nmov r10d, ebx\nmov r11d, ecx\nhlt";
  const plain = exec(src);
  assert.equal(plain.getReg(8).lo, 0xd);
  const m = machine("long64", assemble(src, 64));
  m.cpu.cpuid.setTscFrequency(1_000_000_000, 200_000_000);
  assert.equal(m.cpu.run(100), ExitReason.Hlt);
  assert.equal(m.cpu.getReg(8).lo, 0x16);
  assert.equal(m.cpu.getReg(9).lo, 1, "denominator");
  assert.equal(m.cpu.getReg(10).lo, 5, "numerator: TSC = 5 x crystal");
  assert.equal(m.cpu.getReg(11).lo, 200_000_000, "crystal Hz");
  assert.throws(() => m.cpu.cpuid.setTscFrequency(1_000_000_001, 200_000_000), RangeError);
});
