; CPU-bound benchmark kernel for `npm run bench`: ITER rounds of integer arithmetic, a 4 KiB memory copy,
; an FNV-1a hash loop and data-dependent branches (Collatz steps), in 64-bit long mode. Prints a checksum
; (so both emulators can be seen to do the same work) and exits through isa-debug-exit with 0.
; Assemble with -DITER=<rounds>; ITER=0 measures boot and exit alone.
; Spec: Intel SDM Vol. 2 (the instructions used); FNV-1a 64-bit constants.
%include "include/boot.inc"

%ifndef ITER
%define ITER 1000
%endif

kmain32:
    jmp enter_long

%include "include/long.inc"

kmain64:
    ; source buffer: a deterministic pattern
    mov rdi, src
    mov rax, 0x0123456789abcdef
    mov ecx, 512
.fill:
    mov [rdi], rax
    rol rax, 7
    add rax, rcx
    add rdi, 8
    loop .fill
    xor r15d, r15d                  ; checksum
    mov r14d, ITER
    test r14d, r14d
    jz .end
.round:
    ; arithmetic
    mov rax, r14
    mov ecx, 64
.arith:
    imul rax, rax, 6364136223846793005 & 0x7fffffff
    add rax, 1442695040888963407 & 0x7fffffff
    mov rdx, rax
    shr rdx, 17
    xor rax, rdx
    dec ecx
    jnz .arith
    add r15, rax
    ; memory copy, 8 bytes at a time
    mov rsi, src
    mov rdi, dst
    mov ecx, 512
.copy:
    mov rax, [rsi]
    mov [rdi], rax
    add rsi, 8
    add rdi, 8
    dec ecx
    jnz .copy
    ; FNV-1a over 1 KiB of the copy
    mov rax, 0xcbf29ce484222325
    mov r8, 0x100000001b3
    mov rsi, dst
    mov ecx, 1024
.hash:
    movzx edx, byte [rsi]
    xor rax, rdx
    imul rax, r8
    inc rsi
    dec ecx
    jnz .hash
    xor r15, rax
    ; branches: Collatz steps from 27 (111 steps: every round retires the same instruction count)
    mov eax, 27
    xor ecx, ecx
.collatz:
    cmp rax, 1
    je .cdone
    inc ecx
    test al, 1
    jz .even
    lea rax, [rax + rax * 2 + 1]
    jmp .collatz
.even:
    shr rax, 1
    jmp .collatz
.cdone:
    add r15, rcx
    ; perturb the source so rounds differ
    mov [src], r15
    dec r14d
    jnz .round
.end:
    PRINT "bench: rounds="
    HEX ITER
    PRINT " checksum="
    HEX r15
    NL
    EXIT 0

section .bss
alignb 4096
src: resb 4096
dst: resb 4096

%include "include/tail.inc"
