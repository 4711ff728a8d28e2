// Tests the remaining integer instructions: ENTER with nesting, LAR/LSL/VERR/VERW, XLAT, LAHF/SAHF, MOVBE,
// PUSHA/POPA, LDS/LSS, CMPXCHG8B, 16-bit string and LOOP forms, far CALL/RETF, REP INSB/OUTSB with exits.
import { test } from "node:test";
import assert from "node:assert/strict";
import { assemble, exec, machine, RecordingDevices, reg64, runToExit } from "./nasm-harness.test.js";
import { ExitReason } from "./vm-exit.js";

test("ENTER with a nesting level copies frame pointers; LEAVE undoes it", () => {
  const cpu = exec(
    `
    mov ebp, 0x60000
    mov dword [0x5fffc], 0x1111
    enter 8, 2
    mov esi, ebp
    mov edi, [ebp - 4]
    mov ecx, [ebp - 8]
    leave
    hlt`,
    "prot32",
  );
  assert.equal(cpu.getReg(6).lo, 0x80000 - 4, "new EBP = frame temp");
  assert.equal(cpu.getReg(7).lo, 0x1111, "level 2 copies the outer frame pointer found at [EBP - 4]");
  assert.equal(cpu.getReg(1).lo, 0x80000 - 4, "last pushed is the frame temp");
  assert.equal(cpu.getReg(5).lo, 0x60000);
  assert.equal(cpu.getReg(4).lo, 0x80000);
});

test("LAR/LSL/VERR/VERW on GDT descriptors", () => {
  const cpu = exec(`
    mov ax, 0x10
    lar ebx, ax
    setz r8b
    lsl ecx, ax
    mov ax, 0x08
    verr ax
    setz r9b
    verw ax
    setz r10b
    mov ax, 0x200
    lsl edx, ax
    setz r11b
    hlt`);
  assert.equal(cpu.getReg(3).lo >>> 0, 0x00cf9200, "access rights as stored in the GDT");
  assert.equal(cpu.getReg(8).lo & 0xff, 1);
  assert.equal(cpu.getReg(1).lo >>> 0, 0xffffffff);
  assert.equal(cpu.getReg(9).lo & 0xff, 1, "code segment readable");
  assert.equal(cpu.getReg(10).lo & 0xff, 0, "code segment not writable");
  assert.equal(cpu.getReg(11).lo & 0xff, 0, "selector beyond the GDT limit");
});

test("XLAT, LAHF/SAHF, MOVBE, PUSHA/POPA, LDS, CMPXCHG8B (32-bit)", () => {
  let cpu = exec(
    `
    mov ebx, table
    mov al, 2
    xlatb
    mov dl, al
    mov ah, 0xd5
    sahf
    lahf
    mov dh, ah
    movbe ecx, [word32]
    hlt
  table: db 10, 20, 30, 40
  word32: db 0x11, 0x22, 0x33, 0x44`,
    "prot32",
  );
  assert.equal(cpu.getReg(2).lo & 0xff, 30);
  assert.equal((cpu.getReg(2).lo >> 8) & 0xff, 0xd7, "LAHF reads back SF ZF AF PF CF and bit 1");
  assert.equal(cpu.getReg(1).lo, 0x11223344, "MOVBE byte-swaps the little-endian 0x44332211");
  cpu = exec(
    `
    mov eax, 1
    mov esi, 7
    pusha
    mov eax, 0
    mov esi, 0
    popa
    lds edi, [farptr]
    mov bp, ds
    hlt
  farptr: dd 0x1234
    dw 0x10`,
    "prot32",
  );
  assert.equal(cpu.getReg(6).lo, 7, "POPA restored ESI");
  assert.equal(cpu.getReg(0).lo, 1);
  assert.equal(cpu.getReg(7).lo, 0x1234);
  assert.equal(cpu.getReg(5).lo & 0xffff, 0x10);
  cpu = exec(
    `
    mov eax, 1
    xor edx, edx
    mov ebx, 0x22
    mov ecx, 0x33
    cmpxchg8b [q]
    mov esi, [q]
    mov edi, [q + 4]
    hlt
  q: dd 1, 0`,
    "prot32",
  );
  assert.equal(cpu.getReg(6).lo, 0x22);
  assert.equal(cpu.getReg(7).lo, 0x33);
});

test("16-bit string ops with SI/DI wrap and LOOP on CX", () => {
  const cpu = exec(
    `
    mov ax, 0x2000
    mov es, ax
    mov ds, ax
    mov di, 0
    mov al, 0x77
    mov cx, 4
    rep stosb
    mov si, 0
    lodsw
    mov bx, ax
    mov cx, 3
    xor dx, dx
  l: inc dx
    loop l
    hlt`,
    "real",
  );
  assert.equal(cpu.getReg(3).lo & 0xffff, 0x7777);
  assert.equal(cpu.getReg(2).lo & 0xffff, 3);
  assert.equal(cpu.getReg(7).lo & 0xffff, 4);
});

test("far CALL and RETF in 32-bit protected mode and real mode", () => {
  let cpu = exec("call 0x18:target\nmov ebx, 2\nhlt\ntarget: mov eax, 1\nretf", "prot32");
  assert.equal(cpu.getReg(0).lo, 1);
  assert.equal(cpu.getReg(3).lo, 2);
  cpu = exec("call 0x1000:target\nmov bx, 2\nhlt\ntarget: mov ax, cs\nretf", "real");
  assert.equal(cpu.getReg(0).lo & 0xffff, 0x1000);
  assert.equal(cpu.getReg(3).lo & 0xffff, 2);
});

test("REP OUTSB and REP INSB reach the port intercept once per element, in order", () => {
  const { cpu } = machine(
    "long64",
    assemble(
      "lea rsi, [rel s]\nmov dx, 0xe9\nmov ecx, 3\nrep outsb\nlea rdi, [rel t]\nmov ecx, 2\nrep insb\nmov eax, [rel t]\nhlt\ns: db 'abc'\nt: dd 0",
      64,
    ),
  );
  let next = 0x41;
  const dev = new RecordingDevices(() => next++).attach(cpu);
  assert.equal(runToExit(cpu), ExitReason.Hlt);
  assert.equal(dev.written(0xe9), "abc");
  assert.deepEqual(dev.log.slice(3), ["in e9 1", "in e9 1"]);
  assert.equal(reg64(cpu, 0), 0x4241n);
});

test("32-bit call gate from ring 3 to ring 0 with a parameter; RETF imm back to ring 3", () => {
  const cpu = exec(
    `
    mov dword [tss + 4], 0x70000
    mov dword [tss + 8], 0x10
    mov eax, tss
    mov word [0x1038], 0x67
    mov [0x103a], ax
    shr eax, 16
    mov [0x103c], al
    mov byte [0x103d], 0x89
    mov [0x103f], ah
    mov ax, 0x38
    ltr ax
    mov eax, kernel
    mov [0x1040], ax
    mov word [0x1042], 0x18
    mov byte [0x1044], 1
    mov byte [0x1045], 0xec
    shr eax, 16
    mov [0x1046], ax
    push 0x23
    push 0x50000
    push 0x2
    push 0x33
    push user
    iret
  user:
    push 0x1234
    call 0x43:0
    mov ebx, esp
    mov esi, eax
    mov edi, cs
    push 0
    call 0x43:0
  kernel:
    mov ax, 0x10                  ; IRET/RETF to ring 3 nulled DS (DPL 0 < CPL 3)
    mov ds, ax
    inc dword [calls]
    cmp dword [calls], 2
    je done
    mov eax, [esp + 8]
    mov ebp, [esp + 12]
    mov edx, cs
    retf 4
  done:
    hlt
  calls: dd 0
  tss: times 0x68 db 0`,
    "prot32",
  );
  assert.equal(cpu.getReg(6).lo, 0x1234, "parameter copied to the ring-0 stack");
  assert.equal(cpu.getReg(5).lo, 0x50000 - 4, "old ESP pushed");
  assert.equal(cpu.getReg(2).lo & 0xffff, 0x18, "ran in ring 0");
  assert.equal(cpu.getReg(3).lo, 0x50000, "RETF 4 dropped the parameter on the ring-3 stack");
  assert.equal(cpu.getReg(7).lo & 0xffff, 0x33, "back in ring 3");
});

test("64-bit call gate: CALL FAR through a 16-byte gate pushes a 64-bit frame; RETFQ returns", () => {
  const cpu = exec(`
    lea rax, [rel target]
    mov rbx, 0x1038
    mov [rbx], ax
    mov word [rbx + 2], 0x08
    mov byte [rbx + 4], 0
    mov byte [rbx + 5], 0x8c
    shr rax, 16
    mov [rbx + 6], ax
    shr rax, 16
    mov [rbx + 8], eax
    mov dword [rbx + 12], 0
    call far [rel ptr]
    mov r9, 2
    hlt
  target:
    mov r8, [rsp]
    mov r10, [rsp + 8]
    o64 retf
  ptr: dq 0
    dw 0x38`);
  assert.equal(reg64(cpu, 9), 2n);
  assert.equal(reg64(cpu, 10), 0x08n, "64-bit CS slot");
  assert.ok(reg64(cpu, 8) > 0x10000n, "return RIP pushed as 8 bytes");
});
