// Tests each integer instruction group by running nasm-assembled snippets to HLT and checking registers,
// memory and flags: ALU and lazy flags, INC/DEC/NEG/NOT, MUL/IMUL/DIV/IDIV (#DE), shifts/rotates, bit ops,
// data movement, stack, control flow, string ops with REP, and 16/32-bit modes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { exec, reg64 } from "./nasm-harness.test.js";

const CF = 1;
const PF = 4;
const AF = 0x10;
const ZF = 0x40;
const SF = 0x80;
const OF = 0x800;
const STATUS = CF | PF | AF | ZF | SF | OF;

function flags(src: string, mode: "long64" | "prot32" | "real" = "long64"): number {
  const cpu = exec(src + "\nhlt", mode);
  return cpu.getRflags() & STATUS;
}

test("ADD/SUB/CMP flags at every size (lazy evaluation)", () => {
  assert.equal(flags("mov al, 0x7f\nadd al, 1"), OF | SF | AF);
  assert.equal(flags("mov al, 0xff\nadd al, 1"), CF | ZF | AF | PF);
  assert.equal(flags("mov ax, 0x8000\nsub ax, 1"), OF | AF | PF);
  assert.equal(flags("mov eax, 0\ncmp eax, 1"), CF | SF | AF | PF);
  assert.equal(flags("mov rax, 0x7fffffffffffffff\nadd rax, 1"), OF | SF | AF | PF);
  assert.equal(flags("mov rax, -1\nadd rax, 1"), CF | ZF | AF | PF);
  assert.equal(flags("xor rax, rax\nsub rax, 1"), CF | SF | AF | PF);
  assert.equal(flags("mov eax, 5\ncmp eax, 5"), ZF | PF);
});

test("ADC/SBB chain 128-bit arithmetic", () => {
  const cpu = exec(
    "mov rax, -1\nmov rdx, 0\nadd rax, 1\nadc rdx, 0\nmov rbx, 0\nsub rbx, 1\nsbb rcx, rcx\nhlt",
  );
  assert.equal(reg64(cpu, 0), 0n);
  assert.equal(reg64(cpu, 2), 1n);
  assert.equal(reg64(cpu, 1), 0xffffffffffffffffn);
});

test("logic ops clear CF/OF; 32-bit writes zero-extend, 8/16-bit writes merge", () => {
  const cpu = exec(
    "mov rax, -1\nmov eax, 0x12345678\nmov rbx, -1\nmov bx, 0x1234\nmov rcx, -1\nmov ch, 0\nstc\nand eax, eax\nhlt",
  );
  assert.equal(reg64(cpu, 0), 0x12345678n);
  assert.equal(reg64(cpu, 3), 0xffffffffffff1234n);
  assert.equal(reg64(cpu, 1), 0xffffffffffff00ffn);
  assert.equal(cpu.getRflags() & (CF | OF), 0);
});

test("INC/DEC preserve CF; NEG/NOT", () => {
  assert.equal(flags("stc\nmov eax, 0x7fffffff\ninc eax") & (CF | OF), CF | OF);
  assert.equal(flags("clc\nmov rax, 0\ndec rax") & (CF | SF), SF);
  const cpu = exec("mov eax, 5\nneg eax\nmov rbx, 0\nnot rbx\nhlt");
  assert.equal(cpu.getReg(0).lo, -5);
  assert.equal(reg64(cpu, 3), 0xffffffffffffffffn);
  assert.equal(flags("mov eax, 0\nneg eax") & CF, 0);
  assert.equal(flags("mov eax, 1\nneg eax") & CF, CF);
});

test("MUL/IMUL widths and CF/OF", () => {
  let cpu = exec("mov rax, 0xffffffffffffffff\nmov rbx, 2\nmul rbx\nhlt");
  assert.equal(reg64(cpu, 0), 0xfffffffffffffffen);
  assert.equal(reg64(cpu, 2), 1n);
  assert.equal(cpu.getRflags() & (CF | OF), CF | OF);
  cpu = exec("mov eax, 0x80000000\nmov ecx, 4\nmul ecx\nhlt");
  assert.equal(cpu.getReg(0).lo, 0);
  assert.equal(cpu.getReg(2).lo, 2);
  cpu = exec("mov rax, -3\nmov rcx, 5\nimul rcx\nhlt");
  assert.equal(reg64(cpu, 0), -15n & 0xffffffffffffffffn);
  assert.equal(reg64(cpu, 2), 0xffffffffffffffffn);
  assert.equal(cpu.getRflags() & CF, 0);
  cpu = exec("mov rbx, 0x100000000\nimul rax, rbx, 0x10\nimul rcx, rbx, 0x7fffffff\nimul rbx, rbx\nhlt");
  assert.equal(reg64(cpu, 0), 0x1000000000n);
  assert.equal(reg64(cpu, 1), 0x7fffffff00000000n);
  assert.equal(reg64(cpu, 3), 0n);
  assert.equal(cpu.getRflags() & (CF | OF), CF | OF);
  const ov = (a: string, b: string): number =>
    exec(`mov rax, ${a}\nmov rbx, ${b}\nimul rax, rbx\nhlt`).getRflags() & (CF | OF);
  assert.equal(ov("-1", "-1"), 0);
  assert.equal(ov("0x8000000000000000", "-1"), CF | OF);
  assert.equal(ov("0x8000000000000000", "1"), 0);
  assert.equal(ov("-0x100000000", "0x80000000"), 0, "-2^63 fits");
  assert.equal(ov("0x100000000", "0x80000000"), CF | OF, "+2^63 does not");
  assert.equal(ov("0x7fffffffffffffff", "2"), CF | OF);
  assert.equal(ov("0xcbf29ce484222325", "0x100000001b3"), CF | OF);
  cpu = exec("mov al, -2\nmov bl, 3\nimul bl\nhlt");
  assert.equal(cpu.getReg(0).lo & 0xffff, 0xfffa);
});

test("DIV/IDIV results and #DE delivered through the IDT", () => {
  let cpu = exec("mov rdx, 1\nmov rax, 0\nmov rcx, 3\ndiv rcx\nhlt");
  assert.equal(reg64(cpu, 0), 0x5555555555555555n);
  assert.equal(reg64(cpu, 2), 1n);
  cpu = exec("mov edx, 0x12\nmov eax, 0x34567890\nmov ecx, 0x1000\ndiv ecx\nhlt");
  assert.equal(cpu.getReg(0).lo >>> 0, 0x01234567);
  assert.equal(cpu.getReg(2).lo, 0x890);
  cpu = exec("mov rax, -7\ncqo\nmov rcx, 2\nidiv rcx\nhlt");
  assert.equal(reg64(cpu, 0), -3n & 0xffffffffffffffffn);
  assert.equal(reg64(cpu, 2), -1n & 0xffffffffffffffffn);
  cpu = exec("mov ax, -7\nmov cl, 2\nidiv cl\nhlt");
  assert.equal(cpu.getReg(0).lo & 0xffff, 0xfffd);
  // Divide by zero in 64-bit mode with an IDT: handler sets r15 and halts.
  cpu = exec(`
    lea rax, [rel handler]
    mov [rel idt], ax
    mov word [rel idt + 2], 0x08
    mov byte [rel idt + 5], 0x8e
    shr rax, 16
    mov [rel idt + 6], ax
    shr rax, 16
    mov [rel idt + 8], eax
    lidt [rel idtr]
    xor ecx, ecx
    div ecx
    hlt
  handler:
    mov r15, 0xde
    hlt
  align 16
  idt: times 16 db 0
  idtr: dw 15
    dq idt`);
  assert.equal(reg64(cpu, 15), 0xden);
});

test("shifts and rotates: counts 0, 1, masked; flags", () => {
  let cpu = exec("mov rax, 1\nshl rax, 63\nmov rbx, rax\nsar rbx, 63\nmov rcx, rax\nshr rcx, 62\nhlt");
  assert.equal(reg64(cpu, 0), 0x8000000000000000n);
  assert.equal(reg64(cpu, 3), 0xffffffffffffffffn);
  assert.equal(reg64(cpu, 1), 2n);
  assert.equal(flags("mov eax, 0x80000000\nshl eax, 1") & (CF | ZF | OF), CF | ZF | OF);
  assert.equal(flags("stc\nmov eax, 1\nmov cl, 32\nshl eax, cl") & CF, CF, "count masked to 0: flags kept");
  cpu = exec(
    "mov eax, 0x80000001\nrol eax, 1\nmov ebx, 0x80000001\nror ebx, 4\nmov rcx, 0x8000000000000001\nrol rcx, 4\nhlt",
  );
  assert.equal(cpu.getReg(0).lo, 3);
  assert.equal(cpu.getReg(3).lo >>> 0, 0x18000000);
  assert.equal(reg64(cpu, 1), 0x18n);
  cpu = exec("stc\nmov al, 0x80\nrcl al, 1\nsetc bl\nclc\nmov dl, 1\nrcr dl, 1\nsetc cl\nhlt");
  assert.equal(cpu.getReg(0).lo & 0xff, 1);
  assert.equal(cpu.getReg(3).lo & 0xff, 1);
  assert.equal(cpu.getReg(2).lo & 0xff, 0);
  assert.equal(cpu.getReg(1).lo & 0xff, 1);
  cpu = exec(
    "mov eax, 0x12345678\nmov ebx, 0x9abcdef0\nshld eax, ebx, 8\nmov rcx, 0x1122334455667788\nmov rdx, 0xaabbccddeeff0011\nshrd rcx, rdx, 16\nhlt",
  );
  assert.equal(cpu.getReg(0).lo >>> 0, 0x3456789a);
  assert.equal(reg64(cpu, 1), 0x0011112233445566n);
});

test("bit operations: BT/BTS/BTR/BTC, BSF/BSR, POPCNT, LZCNT, BSWAP", () => {
  let cpu = exec("mov rax, 0x100000000\nbt rax, 32\nsetc bl\nbts rax, 0\nbtr rax, 32\nbtc rax, 1\nhlt");
  assert.equal(cpu.getReg(3).lo & 0xff, 1);
  assert.equal(reg64(cpu, 0), 3n);
  cpu = exec("mov dword [rel v + 4], 0\nmov rcx, 35\nbts [rel v], rcx\nmov eax, [rel v + 4]\nhlt\nv: dq 0");
  assert.equal(cpu.getReg(0).lo, 8);
  cpu = exec(
    "mov rax, 0x0000010000000000\nbsf rbx, rax\nbsr rcx, rax\nmov rdx, 0xff00ff\npopcnt rdx, rdx\nmov esi, 1\nlzcnt esi, esi\nmov edi, 0x11223344\nbswap edi\nhlt",
  );
  assert.equal(cpu.getReg(3).lo, 40);
  assert.equal(cpu.getReg(1).lo, 40);
  assert.equal(cpu.getReg(2).lo, 16);
  assert.equal(cpu.getReg(6).lo, 31);
  assert.equal(cpu.getReg(7).lo, 0x44332211);
  assert.equal(flags("xor eax, eax\nbsf ebx, eax") & ZF, ZF);
});

test("MOVZX/MOVSX/MOVSXD, LEA, XCHG, CMPXCHG, XADD, CMOV, SETcc, CBW family", () => {
  const cpu = exec(`
    mov al, 0x80
    movsx rbx, al
    movzx ecx, al
    mov edx, 0x80000000
    movsxd rsi, edx
    lea rdi, [rbx + rcx*2 + 8]
    mov r8, 1
    mov r9, 2
    xchg r8, r9
    mov eax, 5
    mov dword [rel m], 5
    mov r10d, 7
    lock cmpxchg [rel m], r10d
    mov r11d, [rel m]
    mov r12d, 10
    lock xadd [rel m], r12d
    mov r13d, [rel m]
    xor r14d, r14d
    mov r15d, 99
    cmp r14d, 1
    cmovb r14d, r15d
    hlt
    m: dd 0`);
  assert.equal(reg64(cpu, 3), 0xffffffffffffff80n);
  assert.equal(cpu.getReg(1).lo, 0x80);
  assert.equal(reg64(cpu, 6), 0xffffffff80000000n);
  assert.equal(reg64(cpu, 7), 0xffffffffffffff80n + 0x100n + 8n - 0x10000000000000000n);
  assert.equal(cpu.getReg(8).lo, 2);
  assert.equal(cpu.getReg(9).lo, 1);
  assert.equal(cpu.getReg(11).lo, 7);
  assert.equal(cpu.getReg(12).lo, 7);
  assert.equal(cpu.getReg(13).lo, 17);
  assert.equal(cpu.getReg(14).lo, 99);
  const c2 = exec(
    "mov eax, 0xffff8000\ncwde\nmov ebx, eax\nmov rax, -1\nmov eax, 0x80000000\ncdqe\ncqo\nhlt",
  );
  assert.equal(c2.getReg(3).lo >>> 0, 0xffff8000);
  assert.equal(reg64(c2, 0), 0xffffffff80000000n);
  assert.equal(reg64(c2, 2), 0xffffffffffffffffn);
});

test("CMPXCHG16B and CMPXCHG8B", () => {
  const cpu = exec(`
    mov rax, 1
    mov rdx, 2
    mov rbx, 3
    mov rcx, 4
    mov qword [rel m], 1
    mov qword [rel m + 8], 2
    lock cmpxchg16b [rel m]
    setz sil
    mov r8, [rel m]
    mov r9, [rel m + 8]
    hlt
    align 16
    m: dq 0, 0`);
  assert.equal(cpu.getReg(6).lo & 0xff, 1);
  assert.equal(reg64(cpu, 8), 3n);
  assert.equal(reg64(cpu, 9), 4n);
});

test("stack: PUSH/POP, PUSHF/POPF, ENTER/LEAVE, CALL/RET", () => {
  const cpu = exec(`
    mov rbp, 0x1234
    push 0x55
    pop rax
    push rax
    push word 0x66
    pop bx
    pop rcx
    call f
    enter 16, 0
    mov r8, rbp
    leave
    stc
    pushfq
    pop r9
    hlt
  f:
    mov r10, [rsp]
    ret`);
  assert.equal(reg64(cpu, 0), 0x55n);
  assert.equal(cpu.getReg(3).lo & 0xffff, 0x66);
  assert.equal(reg64(cpu, 1), 0x55n);
  assert.equal(reg64(cpu, 5), 0x1234n);
  assert.equal(reg64(cpu, 8), 0x80000n - 0x8n);
  assert.equal(cpu.getReg(9).lo & 1, 1);
  assert.equal(reg64(cpu, 4), 0x80000n);
});

test("control flow: Jcc signed/unsigned, LOOP, JRCXZ, indirect jumps", () => {
  const cpu = exec(`
    xor eax, eax
    mov ecx, 10
  l1: add eax, ecx
    loop l1
    mov ebx, -1
    cmp ebx, 1
    jl neg_ok
    mov eax, 0
  neg_ok:
    cmp ebx, 1
    ja above_ok
    mov eax, 0
  above_ok:
    xor ecx, ecx
    jrcxz z
    mov eax, 0
  z:
    lea rdx, [rel tgt]
    jmp rdx
    mov eax, 0
  tgt:
    hlt`);
  assert.equal(cpu.getReg(0).lo, 55);
});

test("string instructions: REP MOVSB/STOSD, REPE CMPSB, REPNE SCASB, LODS, STD", () => {
  const cpu = exec(`
    lea rsi, [rel src]
    lea rdi, [rel dst]
    mov ecx, 5
    rep movsb
    lea rdi, [rel fill]
    mov eax, 0xabababab
    mov ecx, 4
    rep stosd
    lea rsi, [rel src]
    lea rdi, [rel dst]
    mov ecx, 5
    repe cmpsb
    mov r8, rcx
    lea rdi, [rel src]
    mov al, 'l'
    mov ecx, 5
    repne scasb
    mov r9, rcx
    lea rsi, [rel src + 4]
    std
    lodsb
    cld
    mov r10, rsi
    hlt
  src: db 'hello'
  dst: times 5 db 0
  fill: times 16 db 0`);
  assert.equal(cpu.getReg(8).lo, 0, "all equal");
  assert.equal(cpu.getReg(9).lo, 2, "found 'l' at index 2");
  assert.equal(cpu.getReg(0).lo & 0xff, "o".charCodeAt(0));
});

test("32-bit protected mode and 16-bit real mode arithmetic", () => {
  let cpu = exec("mov eax, 0xffffffff\nadd eax, 2\npush eax\npop ebx\nhlt", "prot32");
  assert.equal(cpu.getReg(3).lo, 1);
  cpu = exec("mov ax, 0xffff\ninc ax\nmov bx, 0x1234\nmov [0x500], bx\nmov cx, [0x500]\nhlt", "real");
  assert.equal(cpu.getReg(0).lo & 0xffff, 0);
  assert.equal(cpu.getReg(1).lo & 0xffff, 0x1234);
  cpu = exec("mov al, 0x19\nadd al, 0x28\ndaa\nmov bl, al\nmov ax, 0x0109\nadd al, 3\naaa\nhlt", "real");
  assert.equal(cpu.getReg(3).lo & 0xff, 0x47);
  assert.equal(cpu.getReg(0).lo & 0xffff, 0x0202);
});

test("self-modifying code invalidates the decode cache", () => {
  const cpu = exec(`
    mov ecx, 2
  again:
    mov eax, 1
  patch equ $ - 4
    dec ecx
    jz done
    mov dword [rel patch], 42
    jmp again
  done:
    hlt`);
  assert.equal(cpu.getReg(0).lo, 42);
});

test("REP MOVS/STOS fast path across pages, overlap and a 16-bit fallback agree with the element loop", () => {
  const cpu = exec(`
    mov rdi, 0x300ff0
    mov eax, 0x5a
    mov ecx, 0x2000
    rep stosb                 ; crosses two page boundaries
    mov rsi, 0x300ff0
    mov rdi, 0x310ff8
    mov ecx, 0x400
    rep movsq                 ; 8 KiB copy, both sides straddle pages
    mov rsi, 0x320000
    mov dword [rsi], 0x44332211
    lea rdi, [rsi + 1]
    mov ecx, 7
    rep movsb                 ; forward overlap replicates the first byte
    mov r8, [0x320000]
    mov r9, [0x312ff0]
    mov r10, rcx
    mov r11, rdi
    hlt`);
  assert.equal(reg64(cpu, 8), 0x1111111111111111n);
  assert.equal(reg64(cpu, 9), 0x5a5a5a5a5a5a5a5an);
  assert.equal(reg64(cpu, 10), 0n);
  assert.equal(reg64(cpu, 11), 0x320008n);
});

test("INC/DEC after a 64-bit IMUL preserve its (lazily computed) CF", () => {
  const CFOF = 0x801;
  let cpu = exec("mov rax, 0x7fffffffffffffff\nmov rbx, 2\nimul rax, rbx\ninc rcx\ndec rdx\nsetc r8b\nhlt");
  assert.equal(cpu.getReg(8).lo & 0xff, 1);
  assert.equal(cpu.getRflags() & CFOF, 1, "CF from IMUL, OF from DEC");
  cpu = exec("mov rax, 3\nmov rbx, 2\nimul rax, rbx\ninc rcx\nsetc r8b\nhlt");
  assert.equal(cpu.getReg(8).lo & 0xff, 0);
});

test("64-bit effective addresses carry and borrow between the 32-bit halves (LEA: base, index, displacement)", () => {
  const cpu = exec(
    [
      "mov rbx, 0xffffffff",
      "lea rax, [rbx + 1]",
      "mov rcx, 0x100000000",
      "lea rdx, [rcx - 1]",
      "mov rsi, 0x80000000",
      "lea rdi, [rsi*2]",
      "mov r8, 0x7fffffff80000000",
      "lea r9, [r8 + rsi*1 + 0x10]",
      "mov r10, 0xfffffffffffffff0",
      "lea r11, [r10 + rbx + 0x11]",
      "hlt",
    ].join("\n"),
  );
  assert.equal(reg64(cpu, 0), 0x100000000n);
  assert.equal(reg64(cpu, 2), 0xffffffffn);
  assert.equal(reg64(cpu, 7), 0x100000000n);
  assert.equal(reg64(cpu, 9), 0x8000000000000010n);
  assert.equal(reg64(cpu, 11), 0x100000000n);
});
