// Tests system instructions: SYSCALL/SYSRET round trip through ring 3, SWAPGS, SYSENTER/SYSEXIT, owned MSRs
// (EFER, STAR, LSTAR, FS/GS base, TSC_AUX, PAT, MTRR), RDTSC monotonicity and RDTSCP, RDRAND, CPUID leaves,
// MOV CR/DR, SGDT/SIDT/SMSW, IOPL/I-O bitmap protection of IN/OUT and CLI at CPL 3, INVPCID and INVLPG
// corner cases, IA32_MISC_ENABLE bits and their CPUID/EFER effects, #GP(0) for non-canonical values in the
// base and system-call target MSRs, SYSRET to a non-canonical RCX, and FSGSBASE being absent.
import { test } from "node:test";
import assert from "node:assert/strict";
import { assemble, exec, IDT64, machine, PML4_BASE, reg64, run64, runToHlt } from "./nasm-harness.test.js";
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
  // Setting a reserved bit (17) is refused with #GP(0), by the processor itself.
  const gp = run64("mov ecx, 0x1a0\nmov eax, 0x21801\nxor edx, edx\nwrmsr\nmov ebx, 1\nhlt");
  assert.equal(reg64(gp, 15), 13n, "IA32_MISC_ENABLE is the processor's, not the runner's");
  assert.equal(gp.getReg(3).lo, 0, "the WRMSR did not retire");
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

/** Runs `body` after the IDT64 prelude; returns [vector, error code] of the exception taken, or null. */
function faultOf(body: string): [number, number] | null {
  const cpu = run64(`mov r15, 0x100\n${body}\nhlt`);
  const v = Number(reg64(cpu, 15));
  return v === 0x100 ? null : [v, Number(reg64(cpu, 14))];
}

/** INVPCID with the descriptor {pcid, address} at 0x40000 and the type in RCX. */
const INVPCID = (type: string, pcid: string, address: string): string =>
  `mov rax, ${pcid}\nmov [0x40000], rax\nmov rax, ${address}\nmov [0x40008], rax\n` +
  `mov rcx, ${type}\ninvpcid rcx, [0x40000]`;
const PCIDE_ON = "mov rax, cr4\nbts eax, 17\nmov cr4, rax\n"; // CR3[11:0] is 0 in the harness

test("INVPCID: #GP(0) for a PCID with CR4.PCIDE=0 (types 0, 1), bad types, reserved bits, non-canonical", () => {
  const GP: [number, number] = [13, 0];
  assert.deepEqual(faultOf(INVPCID("0", "1", "0x1000")), GP, "type 0, PCID 1, CR4.PCIDE=0");
  assert.deepEqual(faultOf(INVPCID("1", "1", "0")), GP, "type 1, PCID 1, CR4.PCIDE=0");
  assert.equal(faultOf(INVPCID("2", "1", "0")), null, "type 2 ignores the PCID");
  assert.equal(faultOf(INVPCID("3", "0xfff", "0")), null, "type 3 ignores the PCID");
  assert.equal(faultOf(INVPCID("0", "0", "0xffff800000001000")), null, "type 0, PCID 0, canonical");
  assert.equal(faultOf(PCIDE_ON + INVPCID("0", "1", "0x1000")), null, "CR4.PCIDE=1: any PCID");
  assert.equal(faultOf(PCIDE_ON + INVPCID("1", "0xfff", "0")), null);
  assert.deepEqual(faultOf(INVPCID("0", "0", "0x0000800000000000")), GP, "type 0, non-canonical address");
  assert.equal(faultOf(INVPCID("1", "0", "0x0000800000000000")), null, "the address matters for type 0 only");
  assert.deepEqual(faultOf(INVPCID("2", "0x1000", "0")), GP, "descriptor bits 63:12 are reserved");
  assert.deepEqual(faultOf(PCIDE_ON + INVPCID("3", "0x1000", "0")), GP);
  assert.deepEqual(faultOf(INVPCID("4", "0", "0")), GP, "type > 3");
  assert.deepEqual(
    faultOf(INVPCID("0x100000002", "0", "0")),
    GP,
    "64-bit mode: the whole register is the type",
  );
  assert.deepEqual(faultOf("mov rax, 0x0000800000000000\ninvpcid rcx, [rax]"), GP, "non-canonical operand");
  assert.deepEqual(faultOf("db 0x66, 0x0f, 0x38, 0x82, 0xc1"), [6, 0], "register operand: #UD");
  // Outside 64-bit mode the register operand is 32 bits: whatever the upper half holds is not the type.
  const { cpu } = machine(
    "prot32",
    assemble("mov dword [0x40000], 0\nmov dword [0x40004], 0\ninvpcid eax, [0x40000]\nmov ebx, 1\nhlt", 32),
  );
  cpu.setReg(0, 2, 1);
  assert.equal(runToHlt(cpu), ExitReason.Hlt);
  assert.equal(cpu.getReg(3).lo, 1, "INVPCID type 2 in EAX with bits 63:32 of RAX set");
});

test("INVLPG never faults on its address: a NOP for a non-canonical one, no segment limit check", () => {
  assert.equal(faultOf("mov rax, 0x0000800000000000\ninvlpg [rax]\ninvlpg [rsp + rax]"), null);
  // Protected mode with a 4 KiB DS: the operand is only an address to invalidate (SDM INVLPG lists no
  // segment faults), so an offset past the limit is fine.
  const { cpu } = machine("prot32", assemble("invlpg [0x50000]\nmov ebx, 1\nhlt", 32));
  cpu.setSegment(3, { selector: 0x10, base: 0, limit: 0xfff, access: 0x4093 });
  assert.equal(runToHlt(cpu), ExitReason.Hlt);
  assert.equal(cpu.getReg(3).lo, 1);
});

test("IA32_MISC_ENABLE: writable bits with their CPUID and EFER effects; #GP only for reserved bits", () => {
  const RD = "mov ecx, 0x1a0\nrdmsr\n";
  const CPUID_MAX = "xor eax, eax\ncpuid\n";
  const NX = "mov eax, 0x80000001\ncpuid\nbt edx, 20\nsetc r10b\n";
  const MONITOR = "mov eax, 1\ncpuid\nbt ecx, 3\nsetc sil\n";
  // The value of the issue: real processors and other hypervisors accept it.
  let cpu = run64(
    WRMSR(0x1a0, "0x400c51809") +
      RD +
      "mov r8d, eax\nmov r9d, edx\n" +
      CPUID_MAX +
      "mov r11d, eax\n" +
      MONITOR +
      NX +
      "mov ecx, 0xc0000080\nrdmsr\nbts eax, 11\nwrmsr\nmov ebx, 1\nhlt",
  );
  assert.equal(cpu.getReg(8).lo >>> 0, 0x00c51809, "bits 0, 3, 11, 12, 16, 18, 22, 23 read back");
  assert.equal(cpu.getReg(9).lo, 0x4, "bit 34: XD bit disable");
  assert.equal(cpu.getReg(6).lo & 0xff, 1, "bit 18: CPUID.01H:ECX[3] (MONITOR) reads 1");
  assert.equal(cpu.getReg(11).lo, 2, "limit CPUID maxval: CPUID.0:EAX reads 2");
  assert.equal(cpu.getReg(10).lo & 0xff, 0, "XD disable: CPUID.80000001H:EDX[20] reads 0");
  assert.equal(reg64(cpu, 15), 13n, "XD disable: setting EFER.NXE is #GP(0)");
  assert.equal(cpu.getReg(3).lo, 0, "the WRMSR of EFER did not retire");
  // Clearing bits 22 and 34 brings the maximum leaf and the NX flag back; read-only bits ignore writes.
  cpu = run64(
    WRMSR(0x1a0, "0x400c51809") +
      WRMSR(0x1a0, "0x80") +
      RD +
      "mov r8d, eax\nmov r9d, edx\n" +
      CPUID_MAX +
      "mov r11d, eax\n" +
      MONITOR +
      NX +
      "mov ecx, 0xc0000080\nrdmsr\nbts eax, 11\nwrmsr\nrdmsr\nmov ebx, eax\nhlt",
  );
  assert.equal(cpu.getReg(8).lo, 0x1800, "bit 7 (performance monitoring available) is read-only 0 here");
  assert.equal(cpu.getReg(9).lo, 0);
  assert.equal(cpu.getReg(11).lo, 0xd);
  assert.equal(cpu.getReg(6).lo & 0xff, 0, "bit 18 cleared: MONITOR no longer offered");
  assert.equal(cpu.getReg(10).lo & 0xff, 1);
  assert.equal(cpu.getReg(3).lo & 0x800, 0x800, "EFER.NXE can be set again");
  for (const bad of ["1 << 1", "1 << 17", "1 << 24", "1 << 33", "1 << 35", "1 << 63"]) {
    cpu = run64(WRMSR(0x1a0, `0x1801 | (${bad})`) + RD + "mov r8d, eax\nhlt");
    assert.equal(reg64(cpu, 15), 13n, `bit ${bad} is refused with #GP(0)`);
    assert.equal(reg64(cpu, 14), 0n);
    assert.equal(reg64(cpu, 8), 0n, "the faulting WRMSR changed nothing");
  }
  // A reset returns the MSR and its CPUID effects to their power-on state.
  const m = machine("long64", assemble(WRMSR(0x1a0, "0x400441801") + "hlt", 64));
  assert.equal(runToHlt(m.cpu), ExitReason.Hlt);
  assert.equal(m.cpu.cpuid.query(0, 0)[0], 2);
  assert.equal(m.cpu.cpuid.query(1, 0)[2]! & 8, 8);
  m.cpu.reset();
  assert.equal(m.cpu.cpuid.query(0, 0)[0], 0xd);
  assert.equal(m.cpu.cpuid.query(0x80000001, 0)[3]! & (1 << 20), 1 << 20);
  assert.equal(m.cpu.cpuid.query(1, 0)[2]! & 8, 0, "bit 18 powers on clear: MONITOR not offered");
  // A processor model without MONITOR/MWAIT refuses bit 18 like a reserved bit and has no leaf 5.
  const plain = machine("long64", assemble(IDT64 + WRMSR(0x1a0, "0x41801") + "mov ebx, 1\nhlt", 64));
  plain.cpu.cpuid.disable("MONITOR");
  assert.equal(runToHlt(plain.cpu), ExitReason.Hlt);
  assert.equal(reg64(plain.cpu, 15), 13n, "bit 18 without MONITOR/MWAIT: #GP(0)");
  assert.deepEqual([...plain.cpu.cpuid.query(5, 0)], [0, 0, 0, 0]);
});

/** IA32_MISC_ENABLE with bit 18 (ENABLE MONITOR FSM) set, everything else at its power-on value. */
const MONITOR_ON = WRMSR(0x1a0, "0x41801");
/** The monitored byte's address in RAX, ECX (extensions) and EDX (hints) 0. */
const ARM = (rax: string): string => `mov rax, ${rax}\nxor ecx, ecx\nxor edx, edx\n`;

/** After IDT64: enters ring 3 through IRETQ (TSS.RSP0 for the way back) and runs `user`, then HLT (#GP). */
const RING3 = (user: string): string => `
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
    push 0x2
    push 0x2b
    lea rax, [rel user]
    push rax
    iretq
  user:
    ${user}
    hlt
  align 16
  tss: times 0x68 db 0`;

test("MONITOR/MWAIT: #UD until IA32_MISC_ENABLE[18] offers them, then CPL 0 only; ECX and address checks", () => {
  const UD: [number, number] = [6, 0];
  const GP: [number, number] = [13, 0];
  // Power-on: bit 18 clear, CPUID.01H:ECX[3] = 0, both instructions #UD.
  const cpuid = exec("mov eax, 1\ncpuid\nmov r8d, ecx\nmov eax, 5\ncpuid\nmov r9d, eax\nmov r10d, ecx\nhlt");
  assert.equal(cpuid.getReg(8).lo & 8, 0, "CPUID.01H:ECX[3] at power-on");
  assert.equal(cpuid.getReg(9).lo, 64, "leaf 5: 64-byte monitor line");
  assert.equal(cpuid.getReg(10).lo, 3, "leaf 5: extensions, interrupts as break events");
  assert.deepEqual(faultOf(ARM("0x40000") + "monitor"), UD, "MONITOR with bit 18 clear");
  assert.deepEqual(faultOf("xor eax, eax\nxor ecx, ecx\nmwait"), UD, "MWAIT with bit 18 clear");
  // Enabled: both retire at CPL 0; MWAIT ECX[0] (interrupt as break event) is offered, with IF = 0.
  assert.equal(
    faultOf(
      MONITOR_ON + ARM("0x40000") + "monitor\nxor eax, eax\nmwait\nmov ecx, 1\nmwait\nmov eax, 0x10\nmwait",
    ),
    null,
  );
  // Clearing bit 18 again takes them away.
  assert.deepEqual(faultOf(MONITOR_ON + WRMSR(0x1a0, "0x1801") + ARM("0x40000") + "monitor"), UD);
  // No MONITOR extensions; MWAIT extensions other than bit 0 are reserved (64-bit mode: all of RCX).
  assert.deepEqual(faultOf(MONITOR_ON + ARM("0x40000") + "mov ecx, 1\nmonitor"), GP, "MONITOR ECX = 1");
  assert.deepEqual(faultOf(MONITOR_ON + ARM("0x40000") + "mov rcx, 1 << 32\nmonitor"), GP, "MONITOR RCX[32]");
  assert.deepEqual(faultOf(MONITOR_ON + "xor eax, eax\nmov ecx, 2\nmwait"), GP, "MWAIT ECX[1]");
  assert.deepEqual(faultOf(MONITOR_ON + "xor eax, eax\nmov ecx, 0x80000001\nmwait"), GP, "MWAIT ECX[31]");
  assert.deepEqual(faultOf(MONITOR_ON + "xor eax, eax\nmov rcx, (1 << 32) | 1\nmwait"), GP, "MWAIT RCX[32]");
  assert.equal(faultOf(MONITOR_ON + "mov eax, -1\nxor ecx, ecx\nmwait"), null, "EAX hints are never checked");
  // The address is checked like a byte load: canonical form (#SS for SS), paging (#PF, read, supervisor).
  assert.deepEqual(faultOf(MONITOR_ON + ARM("0x0000800000040000") + "monitor"), GP, "non-canonical");
  assert.equal(
    faultOf(MONITOR_ON + ARM("0x0000800000040000") + "db 0x67\nmonitor"),
    null,
    "32-bit address size: EAX only",
  );
  const pf = run64(MONITOR_ON + ARM("0x40000000") + "monitor\nhlt");
  assert.equal(reg64(pf, 15), 14n, "#PF for an unmapped address");
  assert.equal(reg64(pf, 14), 0n, "not present, read, supervisor");
  assert.equal(reg64(pf, 13), 0x40000000n, "CR2");
  // DS by default, FS/GS overrides add their base.
  const FS_BASE = WRMSR(0xc0000100, "0x40000000");
  assert.equal(faultOf(MONITOR_ON + FS_BASE + ARM("0x1000") + "monitor"), null, "DS: 0x1000 is mapped");
  const fs = run64(MONITOR_ON + FS_BASE + ARM("0x1000") + "fs monitor\nhlt");
  assert.equal(reg64(fs, 15), 14n, "FS: base 0x40000000 + 0x1000 is not mapped");
  assert.equal(reg64(fs, 13), 0x40001000n, "CR2");
  // Like a load, MONITOR sets the accessed bit of the translation, not the dirty bit.
  const PDE3 = PML4_BASE + 0x2000 + 3 * 8;
  const ad = run64(
    MONITOR_ON +
      `and qword [${PDE3}], ~0x60\ninvlpg [0x600000]\n` +
      ARM("0x600100") +
      `monitor\nmov r8, [${PDE3}]\nhlt`,
  );
  assert.equal(reg64(ad, 15), 0n, "no fault");
  assert.equal(Number(reg64(ad, 8) & 0x60n), 0x20, "accessed set, dirty clear");
  // CPL 3: #UD even while offered (ring-3 MONITOR/MWAIT is not offered); the harness first reaches ring 3.
  assert.equal(reg64(run64(MONITOR_ON + RING3("nop")), 15), 13n, "ring 3 reached: its HLT is #GP");
  assert.equal(reg64(run64(MONITOR_ON + RING3(ARM("0x40000") + "monitor")), 15), 6n, "MONITOR at CPL 3");
  assert.equal(
    reg64(run64(MONITOR_ON + RING3("xor eax, eax\nxor ecx, ecx\nmwait")), 15),
    6n,
    "MWAIT at CPL 3",
  );
});

/** After IDT64: #GP(0) increments r15 and skips the 2-byte faulting instruction (WRMSR). */
const GP_SKIPS_WRMSR = `
  lea rax, [rel gp_skip]
  mov [rel idt + 13*16], ax
  shr rax, 16
  mov [rel idt + 13*16 + 6], ax
  shr rax, 16
  mov [rel idt + 13*16 + 8], eax
  xor r15, r15
  jmp gp_body
gp_skip:
  inc r15
  mov r14, [rsp]
  add rsp, 8
  add qword [rsp], 2
  iretq
gp_body:
`;

test("non-canonical FS/GS/KERNEL_GS base, LSTAR, CSTAR, SYSENTER_EIP/ESP: #GP(0), value kept; SYSRET, FSGSBASE", () => {
  const bad = ["0x0000800000000000", "0x8000000000000000", "0x7fff000000000000", "0xffff7fffffffffff"];
  for (const msr of [0xc0000100, 0xc0000101, 0xc0000102, 0xc0000082, 0xc0000083, 0x176, 0x175]) {
    const hex = `0x${msr.toString(16)}`;
    const cpu = run64(
      GP_SKIPS_WRMSR +
        WRMSR(msr, "0xffff800000001000") +
        bad.map((v) => WRMSR(msr, v)).join("") +
        `mov ecx, ${hex}\nrdmsr\nshl rdx, 32\nor rax, rdx\nmov r9, rax\nhlt`,
    );
    assert.equal(reg64(cpu, 15), BigInt(bad.length), `${hex}: every non-canonical write is #GP`);
    assert.equal(reg64(cpu, 14), 0n, "#GP(0)");
    assert.equal(reg64(cpu, 9), 0xffff800000001000n, `${hex}: keeps the canonical value written before`);
  }
  // SYSRET to a non-canonical RCX raises #GP(0) while still in ring 0 (Intel; SDM SYSRET).
  let cpu = run64(
    WRMSR(0xc0000080, "0xd01") +
      WRMSR(0xc0000081, "(0x18 << 48) | (0x08 << 32)") +
      "mov rcx, 0x0000800000000000\nmov r11, 0x202\nsysret_at:\no64 sysret\nhlt",
  );
  assert.equal(reg64(cpu, 15), 13n, "SYSRET with a non-canonical RCX");
  assert.equal(reg64(cpu, 14), 0n);
  assert.equal(cpu.getSegment(1).selector, 0x08, "still in ring 0");
  // FSGSBASE is not offered (CPUID.07H:EBX[0] = 0): CR4.FSGSBASE is reserved and WRFSBASE is #UD.
  const leaf7 = exec("mov eax, 7\nxor ecx, ecx\ncpuid\nhlt");
  assert.equal(leaf7.getReg(3).lo & 1, 0);
  cpu = run64("mov rax, cr4\nbts eax, 16\nmov cr4, rax\nhlt");
  assert.equal(reg64(cpu, 15), 13n, "CR4.FSGSBASE without FSGSBASE: #GP(0)");
  cpu = run64("mov rax, 0x1000\nwrfsbase rax\nhlt");
  assert.equal(reg64(cpu, 15), 6n, "WRFSBASE: #UD");
  cpu = run64("mov rax, 0x1000\nwrgsbase rax\nhlt");
  assert.equal(reg64(cpu, 15), 6n, "WRGSBASE: #UD");
});
