; The bundled default guest of `viridian run`: a Multiboot kernel that switches to 64-bit long mode and
; prints things it computed there: the processor's CPUID vendor and family, the primes below 1,000,000 by
; a sieve (count, sum, and an FNV-1a hash of the sieve), then exits through isa-debug-exit with value 0.
; Rebuild guest/demo.elf with `npm run guest:build`.
; Spec: Multiboot 0.6.96; Intel SDM Vol. 2A CPUID; FNV-1a (Fowler/Noll/Vo, 64-bit offset basis and prime).
%include "include/boot.inc"

LIMIT equ 1000000

kmain32:
    PRINTLN "viridian demo guest: Multiboot entry in 32-bit protected mode"
    jmp enter_long

%include "include/long.inc"
%include "include/decimal.inc"

kmain64:
    PRINT "long mode: efer="
    mov ecx, 0xc0000080
    rdmsr
    HEX rax
    PRINT " cr0="
    mov rax, cr0
    HEX rax
    PRINT " cr4="
    mov rax, cr4
    HEX rax
    NL
    xor eax, eax
    cpuid
    mov [vendor], ebx
    mov [vendor + 4], edx
    mov [vendor + 8], ecx
    mov r8d, eax
    PRINT "cpu: vendor '"
    mov rsi, vendor
    call puts64
    PRINT "' max leaf "
    DEC r8
    mov eax, 1
    cpuid
    mov r8d, eax
    shr r8d, 8
    and r8d, 0xf
    PRINT ", family "
    DEC r8
    NL
    ; sieve of Eratosthenes over LIMIT bytes (1 = composite)
    mov rdi, sieve
    mov rcx, LIMIT
    xor eax, eax
    rep stosb
    mov ebx, 2
.outer:
    mov rax, rbx
    imul rax, rbx
    cmp rax, LIMIT
    jae .count
    cmp byte [sieve + rbx], 0
    jne .nextp
.mark:
    mov byte [sieve + rax], 1
    add rax, rbx
    cmp rax, LIMIT
    jb .mark
.nextp:
    inc ebx
    jmp .outer
.count:
    xor r9d, r9d                    ; count
    xor r10d, r10d                  ; sum
    mov ebx, 2
.c:
    cmp byte [sieve + rbx], 0
    jne .cn
    inc r9
    add r10, rbx
.cn:
    inc ebx
    cmp ebx, LIMIT
    jb .c
    ; FNV-1a over the sieve
    mov rax, 0xcbf29ce484222325
    mov r11, 0x100000001b3
    xor ecx, ecx
.h:
    movzx edx, byte [sieve + rcx]
    xor rax, rdx
    imul rax, r11
    inc ecx
    cmp ecx, LIMIT
    jb .h
    PRINT "primes below 1000000: "
    DEC r9
    PRINT ", sum "
    DEC r10
    PRINT ", sieve fnv1a64 "
    HEX rax
    NL
    PRINTLN "demo done, exiting through isa-debug-exit with 0"
    EXIT 0

vendor: times 16 db 0

section .bss
alignb 4096
sieve: resb LIMIT

%include "include/tail.inc"
