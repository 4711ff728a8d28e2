// Tests exception and interrupt delivery: #PF error codes and CR2, #GP for privileged instructions at CPL 3
// (IRETQ to ring 3, TSS RSP0 stack switch back), IST, #DE/#UD/#BP, double and triple fault, external
// interrupts (IF, STI shadow, HLT wake-up, interrupt window), NMI, real-mode IVT and 32-bit ring-3 INT.
import { test } from "node:test";
import assert from "node:assert/strict";
import { assemble, exec, IDT64, machine, reg64, run64, runToHlt } from "./nasm-harness.test.js";
import { ExitReason } from "./vm-exit.js";

test("#PF: error code (P, W/R, U/S, I/D, RSVD) and CR2", () => {
  // Not present: clear PDE 2 (0x400000..0x5fffff) and write there.
  let cpu = run64(`
    mov rax, 0x100000 + 0x2000 + 2*8
    mov qword [rax], 0
    invlpg [0x400000]
    mov dword [0x400123], 1
    hlt`);
  assert.equal(reg64(cpu, 15), 14n);
  assert.equal(reg64(cpu, 14), 2n, "not present, write, supervisor");
  assert.equal(reg64(cpu, 13), 0x400123n);
  // Write to a read-only page with CR0.WP.
  cpu = run64(`
    mov rax, 0x100000 + 0x2000 + 2*8
    mov qword [rax], 0x400000 + 0x85
    mov rax, cr0
    or eax, 0x10000
    mov cr0, rax
    mov eax, [0x400000]
    mov dword [0x400010], 1
    hlt`);
  assert.equal(reg64(cpu, 15), 14n);
  assert.equal(reg64(cpu, 14), 3n, "present, write");
  // Reserved bit set in a PDE (bit 45 > MAXPHYADDR).
  cpu = run64(`
    mov rax, 0x100000 + 0x2000 + 2*8
    mov rbx, (1 << 45) | 0x400000 | 0x87
    mov [rax], rbx
    mov eax, [0x400000]
    hlt`);
  assert.equal(reg64(cpu, 14), 9n, "present, reserved");
  // NX: execute from a page marked XD with EFER.NXE.
  cpu = run64(`
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x800
    wrmsr
    mov rax, 0x100000 + 0x2000 + 2*8
    mov rbx, (1 << 63) | 0x400000 | 0x87
    mov [rax], rbx
    mov byte [0x400000], 0xc3
    mov rax, 0x400000
    call rax
    hlt`);
  assert.equal(reg64(cpu, 15), 14n);
  assert.equal(reg64(cpu, 14), 0x11n, "present, instruction fetch");
  assert.equal(reg64(cpu, 13), 0x400000n);
});

test("accessed and dirty bits are set in the page tables", () => {
  const cpu = run64(`
    mov rax, 0x100000 + 0x2000 + 2*8
    mov qword [rax], 0x400000 + 0x87
    invlpg [0x400000]
    mov ebx, [0x400000]
    mov rcx, [rax]
    mov dword [0x400000], 5
    mov rdx, [rax]
    hlt`);
  assert.equal(reg64(cpu, 1) & 0x60n, 0x20n, "accessed after a read");
  assert.equal(reg64(cpu, 2) & 0x60n, 0x60n, "dirty after a write");
});

test("#UD, #BP (INT3 pushes the next RIP), #DE, INT n", () => {
  let cpu = run64("ud2\nhlt");
  assert.equal(reg64(cpu, 15), 6n);
  cpu = run64("int3\nhlt");
  assert.equal(reg64(cpu, 15), 3n);
  cpu = run64("int 33\nhlt");
  assert.equal(reg64(cpu, 15), 33n);
  cpu = run64("xor ecx, ecx\ndiv ecx\nhlt");
  assert.equal(reg64(cpu, 15), 0n);
});

test("ring 3 via IRETQ, #GP(0) for HLT at CPL 3, stack switch to TSS.RSP0 and IST", () => {
  const cpu = run64(`
    ; 64-bit TSS at 'tss': RSP0 = 0x70000, IST1 = 0x60000
    lea rax, [rel tss]
    mov qword [rax + 4], 0x70000
    mov qword [rax + 0x24], 0x60000
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
    ; iretq to ring 3 at user_code with RSP 0x50000
    push 0x23
    push 0x50000
    push 0x202
    push 0x2b
    lea rax, [rel user_code]
    push rax
    iretq
  user_code:
    mov r11, rsp
    mov ax, cs
    mov r10w, ax
    hlt
  align 16
  tss: times 0x68 db 0`);
  assert.equal(reg64(cpu, 15), 13n, "#GP");
  assert.equal(reg64(cpu, 14), 0n);
  assert.equal(reg64(cpu, 11), 0x50000n, "ran at ring 3 on the user stack");
  assert.equal(reg64(cpu, 10) & 0xffffn, 0x2bn);
  // The handler's frame: stubs push 2 qwords on top of [err] rip cs rflags rsp ss.
  assert.equal(reg64(cpu, 12), 0x70000n - 6n * 8n + 8n, "stack switched to RSP0 (aligned), frame pushed");
  assert.equal(cpu.getSegment(1).selector, 0x08);
});

test("IST stack is used when the gate names one", () => {
  const cpu = run64(`
    lea rax, [rel tss]
    mov qword [rax + 0x24], 0x60000
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
    lea rdi, [rel idt + 3*16]
    mov byte [rdi + 4], 1
    int3
    hlt
  align 16
  tss: times 0x68 db 0`);
  assert.equal(reg64(cpu, 15), 3n);
  assert.equal(reg64(cpu, 12), 0x60000n - 5n * 8n);
});

test("double fault on a contributory fault during delivery; triple fault without a #DF handler", () => {
  // #GP handler gate not present -> #NP while delivering #GP -> #DF.
  let cpu = run64(`
    lea rdi, [rel idt + 13*16]
    mov byte [rdi + 5], 0x6e
    mov rax, 0x8000000000000000
    mov eax, [rax]
    hlt`);
  assert.equal(reg64(cpu, 15), 8n);
  assert.equal(reg64(cpu, 14), 0n);
  const { cpu: c2 } = machine("long64", assemble("xor ecx, ecx\ndiv ecx\nhlt", 64));
  c2.setDescriptorTable("idtr", 0, 0);
  assert.equal(c2.run(100), ExitReason.TripleFault);
  assert.equal(c2.run(100), ExitReason.TripleFault, "stays in shutdown");
  c2.reset();
  assert.equal(c2.getRip().lo, 0xfff0);
  cpu = run64("mov rax, 0x8000000000000000\nmov eax, [rax]\nhlt");
  assert.equal(reg64(cpu, 15), 13n, "non-canonical address: #GP");
});

test("external interrupts: IF, STI shadow, HLT wake-up, acknowledge, interrupt window, NMI", () => {
  const src =
    IDT64 +
    `
    sti
    hlt
    mov rbx, 1
    cli
    hlt`;
  const { cpu } = machine("long64", assemble(src, 64));
  let pending = false;
  let acked = 0;
  cpu.interrupts = {
    hasInterrupt: () => pending,
    acknowledge: () => {
      pending = false;
      acked++;
      return 32;
    },
  };
  cpu.controls.hltExiting = false;
  assert.equal(runToHlt(cpu), ExitReason.Hlt, "halted with IF=1, no interrupt");
  pending = true;
  assert.equal(cpu.run(1000), ExitReason.Hlt);
  assert.equal(acked, 1);
  assert.equal(reg64(cpu, 15), 32n, "vector 32 delivered after waking");
  // Interrupt window: IF=0 -> no exit; IF=1 -> exit.
  const m = machine("long64", assemble("cli\nnop\nsti\nnop\nnop\nhlt", 64));
  m.cpu.controls.interruptWindowExiting = true;
  assert.equal(m.cpu.run(100), ExitReason.InterruptWindow);
  const rip = m.cpu.getRip().lo;
  // After STI the shadow covers one instruction: the exit comes after the NOP following STI.
  const first = assemble("cli\nnop\nsti\nnop", 64).length;
  assert.equal(rip, 0x10000 + first, "window opens after the instruction following STI");
  // NMI ignores IF.
  const n = machine("long64", assemble(IDT64 + "cli\nhlt\nnop\nhlt", 64));
  assert.equal(runToHlt(n.cpu), ExitReason.Hlt);
  n.cpu.raiseNmi();
  assert.equal(runToHlt(n.cpu), ExitReason.Hlt);
  assert.equal(reg64(n.cpu, 15), 2n);
});

test("real mode: INT through the IVT and IRET", () => {
  const cpu = exec(
    `
    xor ax, ax
    mov es, ax
    mov word [es:0x21*4], handler
    mov word [es:0x21*4+2], 0x1000
    mov bx, 1
    int 0x21
    add bx, 10
    hlt
  handler:
    add bx, 100
    iret`,
    "real",
  );
  assert.equal(cpu.getReg(3).lo & 0xffff, 111);
});

test("32-bit protected mode: INT 0x80 from ring 3 switches to TSS.ESP0 and IRET returns", () => {
  const cpu = exec(
    `
    ; 32-bit TSS at 'tss' with SS0:ESP0 = 0x10:0x70000, descriptor in the 0x38 slot
    mov dword [tss + 4], 0x70000
    mov dword [tss + 8], 0x10
    mov eax, tss
    mov ebx, 0x1000 + 0x38
    mov word [ebx], 0x67
    mov [ebx + 2], ax
    shr eax, 16
    mov [ebx + 4], al
    mov byte [ebx + 5], 0x89
    mov [ebx + 7], ah
    mov ax, 0x38
    ltr ax
    ; IDT entry 0x80: 32-bit interrupt gate, DPL 3 -> handler
    mov eax, handler
    mov [idt + 0x80*8], ax
    mov word [idt + 0x80*8 + 2], 0x18
    mov word [idt + 0x80*8 + 4], 0xee00
    shr eax, 16
    mov [idt + 0x80*8 + 6], ax
    lidt [idtr]
    ; to ring 3
    push 0x23
    push 0x50000
    push 0x202
    push 0x33
    push user
    iret
  user:
    mov ax, 0x23
    mov ds, ax
    int 0x80
    mov edi, esp
    mov esi, cs
    ; back in ring 3: a privileged instruction faults -> vector 13 has no gate -> #DF -> ... shutdown.
    ; Instead signal completion with a second INT.
    int 0x80
  handler:
    mov ebp, esp
    mov ecx, [esp + 4]
    inc dword [count]
    cmp dword [count], 2
    je done
    iret
  done:
    hlt
  count: dd 0
  align 8
  idt: times 256*8 db 0
  idtr: dw 256*8-1
    dd idt
  tss: times 0x68 db 0`,
    "prot32",
  );
  assert.equal(cpu.getReg(7).lo, 0x50000, "user ESP restored by IRET");
  assert.equal(cpu.getReg(6).lo & 0xffff, 0x33, "back in ring 3");
  assert.equal(cpu.getReg(5).lo, 0x70000 - 20, "handler ran on the ring-0 stack with SS:ESP pushed");
  assert.equal(cpu.getReg(1).lo & 0xffff, 0x33, "pushed CS");
});

test("BOUND raises #BR in 32-bit mode", () => {
  const cpu = exec(
    `
    mov eax, handler
    mov [idt + 5*8], ax
    mov word [idt + 5*8 + 2], 0x18
    mov word [idt + 5*8 + 4], 0x8e00
    shr eax, 16
    mov [idt + 5*8 + 6], ax
    lidt [idtr]
    mov ebx, 5
    bound ebx, [limits]
    mov ecx, 1
    mov ebx, 50
    bound ebx, [limits]
    hlt
  handler:
    mov edx, 0xbb
    hlt
  limits: dd 0, 10
  align 8
  idt: times 8*8 db 0
  idtr: dw 8*8-1
    dd idt`,
    "prot32",
  );
  assert.equal(cpu.getReg(1).lo, 1);
  assert.equal(cpu.getReg(2).lo, 0xbb);
});

test("faults report the faulting instruction's RIP: #UD from decode, #PF on instruction fetch", () => {
  let cpu = run64("nop\nbad: db 0xf0, 0x90\nhlt");
  assert.equal(reg64(cpu, 15), 6n);
  const { cpu: c2 } = machine("long64", assemble(IDT64 + "nop\nbad: db 0xf0, 0x90\nhlt", 64));
  void c2;
  cpu = run64("mov rax, 0x100000 + 0x2000 + 2*8\nmov qword [rax], 0\nmov rax, 0x400010\ncall rax\nhlt");
  assert.equal(reg64(cpu, 15), 14n);
  assert.equal(reg64(cpu, 14), 0n, "not present, read (I/D is only reported with EFER.NXE)");
  assert.equal(reg64(cpu, 5), 0x400010n, "pushed RIP is the branch target");
  cpu = run64("db 0xce\nhlt");
  assert.equal(reg64(cpu, 15), 6n, "INTO is #UD in 64-bit mode");
});

test("IRETQ to a DPL-3 code segment with RPL 0 is #GP(selector); non-canonical RSP push is #SS(0)", () => {
  let cpu = run64(`
    mov rax, rsp
    push 0x10
    push rax
    push 0x2
    push 0x28
    lea rax, [rel $ + 8]
    push rax
    iretq
    hlt`);
  assert.equal(reg64(cpu, 15), 13n);
  assert.equal(reg64(cpu, 14), 0x28n);
  // #SS is delivered on an IST stack (the faulting stack itself is unusable).
  cpu = run64(`
    lea rax, [rel tss]
    mov qword [rax + 0x24], 0x60000
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
    lea rdi, [rel idt + 12*16]
    mov byte [rdi + 4], 1
    mov rsp, 0x0000800000000008
    push rax
    hlt
  align 16
  tss: times 0x68 db 0`);
  assert.equal(reg64(cpu, 15), 12n);
  assert.equal(reg64(cpu, 14), 0n);
});

test("#AC for a misaligned ring-3 access with CR0.AM and RFLAGS.AC; WAIT with CR0.TS+MP is #NM", () => {
  let cpu = run64(`
    lea rax, [rel tss]
    mov qword [rax + 4], 0x70000
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
    mov rax, cr0
    or eax, 0x40000
    mov cr0, rax
    push 0x23
    push 0x50000
    push 0x40002
    push 0x2b
    lea rax, [rel user]
    push rax
    iretq
  user:
    mov eax, [0x50004]
    mov r10, 1
    mov eax, [0x50001]
    hlt
  align 16
  tss: times 0x68 db 0`);
  assert.equal(reg64(cpu, 10), 1n, "aligned access is fine");
  assert.equal(reg64(cpu, 15), 17n);
  assert.equal(reg64(cpu, 14), 0n);
  cpu = run64("mov rax, cr0\nor eax, 0xa\nmov cr0, rax\nwait\nhlt");
  assert.equal(reg64(cpu, 15), 7n);
});

test("#AC for 16-byte SSE operands follows the model: unaligned moves and MASKMOVDQU at 8-byte granularity, PCMPxSTRx never", () => {
  // docs/x86-internals.md "Model-specific behaviour": SDM Vol. 3A 6.15 lets MOVUPS/MOVUPD/MOVDQU/LDDQU raise
  // #AC when not 8-byte aligned (Viridian does, and MASKMOVDQU likewise whatever its mask); an 8-byte aligned
  // one, and PCMPxSTRx (exception type 4, which has no #AC), must not raise it.
  const user = (insn: string): ReturnType<typeof run64> =>
    run64(`
    lea rax, [rel tss]
    mov qword [rax + 4], 0x70000
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
    mov rax, cr0
    or eax, 0x40000
    mov cr0, rax
    mov rax, cr4
    or eax, 0x600
    mov cr4, rax
    mov r15, -1
    push 0x23
    push 0x50000
    push 0x40002
    push 0x2b
    lea rax, [rel user]
    push rax
    iretq
  user:
    mov eax, 0xc
    mov edx, 0xc
    ${insn}
    hlt
  align 16
  tss: times 0x68 db 0`);
  // At ring 3 HLT is #GP(0): vector 13 means the instruction completed; 17 is its own #AC.
  const cases: Array<[string, bigint]> = [
    ["movups xmm0, [0x50008]", 13n],
    ["movups [0x50008], xmm0", 13n],
    ["movdqu xmm0, [0x50018]", 13n],
    ["lddqu xmm0, [0x50008]", 13n],
    ["movupd xmm0, [0x50004]", 17n],
    ["movdqu [0x50001], xmm0", 17n],
    ["lddqu xmm0, [0x50002]", 17n],
    ["pcmpestri xmm0, [0x50001], 0x0c", 13n],
    ["pcmpistrm xmm0, [0x50004], 0x0c", 13n],
    ["movq xmm0, [0x50004]", 17n],
    ["mov edi, 0x50008\n    pcmpeqb xmm1, xmm1\n    maskmovdqu xmm0, xmm1", 13n],
    ["mov edi, 0x50004\n    pcmpeqb xmm1, xmm1\n    maskmovdqu xmm0, xmm1", 17n],
    ["mov edi, 0x50002\n    pxor xmm1, xmm1\n    maskmovdqu xmm0, xmm1", 17n],
  ];
  for (const [insn, vector] of cases) assert.equal(reg64(user(insn), 15), vector, insn);
});

test("segment loads: beyond the GDT limit #GP(sel), not present #NP(sel), SS with DPL != CPL #GP(sel), null SS in 64-bit ring 0", () => {
  let cpu = run64("mov ax, 0x80\nmov ds, ax\nhlt");
  assert.equal(reg64(cpu, 15), 13n);
  assert.equal(reg64(cpu, 14), 0x80n);
  cpu = run64("mov rbx, 0x1000 + 0x20\nand byte [rbx + 5], 0x7f\nmov ax, 0x20\nmov ds, ax\nhlt");
  assert.equal(reg64(cpu, 15), 11n);
  assert.equal(reg64(cpu, 14), 0x20n);
  cpu = run64("mov ax, 0x20\nmov ss, ax\nhlt");
  assert.equal(reg64(cpu, 15), 13n);
  assert.equal(reg64(cpu, 14), 0x20n);
  cpu = run64("xor eax, eax\nmov ss, ax\nmov r8, 1\nhlt");
  assert.equal(reg64(cpu, 8), 1n, "a null SS is allowed in 64-bit mode at CPL 0");
  cpu = run64("mov ax, 0x08\nmov ds, ax\nmov eax, [0x1000]\nmov r8, 2\nhlt");
  assert.equal(reg64(cpu, 8), 2n, "readable code in DS is fine");
});

test("a handler that faults forever does not hang run(): exception deliveries count against the budget", () => {
  // #PF handler on an IST stack at an unmapped address: every delivery faults again on instruction fetch.
  const { cpu } = machine(
    "long64",
    assemble(
      IDT64 +
        `
    lea rax, [rel tss]
    mov qword [rax + 0x24], 0x60000
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
    lea rdi, [rel idt + 14*16]
    mov byte [rdi + 4], 1
    mov word [rdi], 0
    mov word [rdi + 6], 0x0040      ; handler at 0x400000
    mov rax, 0x100000 + 0x2000 + 2*8
    mov qword [rax], 0
    mov eax, [0x400000]
    hlt
  align 16
  tss: times 0x68 db 0`,
      64,
    ),
  );
  assert.equal(cpu.run(5000), ExitReason.BudgetExhausted);
  assert.equal(cpu.run(5000), ExitReason.BudgetExhausted);
});

/**
 * Writes a 16-byte system descriptor (access byte `access`, base low half from `tss`, base[63:32] = `hi`,
 * fourth dword `upper`) at GDT slot 0x38 and loads it with `insn` (LTR or LLDT).
 */
const SYSTEM_DESCRIPTOR = (insn: string, access: number, hi: string, upper: string): string => `
    lea rax, [rel tss]
    mov rbx, 0x1000 + 0x38
    mov word [rbx], 0x67
    mov [rbx + 2], ax
    shr rax, 16
    mov [rbx + 4], al
    mov byte [rbx + 5], ${access}
    mov [rbx + 7], ah
    mov dword [rbx + 8], ${hi}
    mov dword [rbx + 12], ${upper}
    mov r15, 0x100
    mov ax, 0x38
    ${insn} ax
    mov r8, 1
    hlt
  align 16
  tss: times 0x68 db 0`;

test("LTR/LLDT in IA-32e mode: a non-canonical 64-bit base or a non-zero upper type is #GP(selector)", () => {
  for (const [insn, access] of [
    ["ltr", 0x89],
    ["lldt", 0x82],
  ] as const) {
    for (const [hi, upper, why] of [
      ["0x00008000", "0", "base 0x00008000_xxxxxxxx is not canonical"],
      ["0x80000000", "0", "base 0x80000000_xxxxxxxx is not canonical"],
      ["0", "0x100", "type field of the upper 8 bytes is 1"],
      ["0", "0x1f00", "type field of the upper 8 bytes is 0x1f"],
    ] as const) {
      const cpu = run64(SYSTEM_DESCRIPTOR(insn, access, hi, upper));
      assert.equal(reg64(cpu, 15), 13n, `${insn}: ${why}`);
      assert.equal(reg64(cpu, 14), 0x38n, `${insn}: #GP(selector)`);
      assert.equal(reg64(cpu, 8), 0n);
      if (insn === "ltr") assert.equal(cpu.getSegment(1).selector, 0x08);
    }
    const ok = run64(SYSTEM_DESCRIPTOR(insn, access, "0xffff8000", "0xffffe0ff"));
    assert.equal(
      reg64(ok, 15),
      0x100n,
      `${insn}: a canonical upper-half base (other upper bits are ignored)`,
    );
    assert.equal(reg64(ok, 8), 1n);
  }
  // The failed LTR left the descriptor available (not busy).
  const { cpu, mem } = machine(
    "long64",
    assemble(IDT64 + SYSTEM_DESCRIPTOR("ltr", 0x89, "0x00008000", "0"), 64),
  );
  assert.equal(runToHlt(cpu), ExitReason.Hlt);
  assert.equal(mem.bytes[0x1000 + 0x38 + 5], 0x89);
});
