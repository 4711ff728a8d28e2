; Test microkernel: CPUID invariants that hold on any x86-64 processor (not raw values, which differ between
; processors): basic and extended maximum leaves, a printable vendor string, the x86-64 baseline feature
; bits, LM/NX/SYSCALL; and TSC behaviour: RDTSC never goes backwards and advances, and CR4.TSD makes RDTSC
; fault in ring 3.
; Spec: Intel SDM Vol. 2A CPUID (leaves 0, 1, 0x80000000, 0x80000001), Vol. 2B RDTSC, Vol. 3A 17.17 (TSC).
%include "include/boot.inc"

kmain32:
    jmp enter_long

%include "include/long.inc"

BASELINE_EDX equ (1 << 0) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 15) | (1 << 24) | (1 << 25) | (1 << 26)

kmain64:
    xor eax, eax
    cpuid
    PRINT "cpuid: max>=1:"
    xor r8d, r8d
    cmp eax, 1
    setae r8b
    HEX r8
    ; vendor: 12 printable ASCII bytes
    mov [vendor], ebx
    mov [vendor + 4], edx
    mov [vendor + 8], ecx
    mov r8d, 1
    xor ecx, ecx
.v:
    mov al, [vendor + rcx]
    cmp al, 0x20
    jb .bad
    cmp al, 0x7e
    jbe .ok
.bad:
    xor r8d, r8d
.ok:
    inc ecx
    cmp ecx, 12
    jne .v
    PRINT " vendor printable:"
    HEX r8
    mov eax, 1
    cpuid
    and edx, BASELINE_EDX
    xor r8d, r8d
    cmp edx, BASELINE_EDX
    sete r8b
    PRINT " baseline:"
    HEX r8
    PRINT " apic id:"
    shr ebx, 24
    HEX rbx
    NL
    mov eax, 0x80000000
    cpuid
    PRINT "cpuid: ext max>=0x80000001:"
    xor r8d, r8d
    cmp eax, 0x80000001
    setae r8b
    HEX r8
    mov eax, 0x80000001
    cpuid
    PRINT " lm:"
    bt edx, 29
    setc r8b
    HEX r8
    PRINT " nx:"
    bt edx, 20
    setc r8b
    HEX r8
    PRINT " syscall:"
    bt edx, 11
    setc r8b
    HEX r8
    NL
    ; cpuid clears the upper halves of the 64-bit registers it writes
    mov rax, -1
    mov rbx, -1
    mov rcx, -1
    mov rdx, -1
    xor eax, eax
    cpuid
    or rax, rbx
    or rax, rcx
    or rax, rdx
    shr rax, 32
    PRINT "cpuid: upper halves zero:"
    xor r8d, r8d
    test rax, rax
    setz r8b
    HEX r8
    NL

    ; TSC
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov r9, rax                     ; first
    mov r10, rax                    ; previous
    mov r11d, 1                     ; monotonic
    mov ecx, 1000
.t:
    push rcx
    rdtsc
    shl rdx, 32
    or rax, rdx
    pop rcx
    cmp rax, r10
    jae .fine
    xor r11d, r11d
.fine:
    mov r10, rax
    loop .t
    PRINT "tsc: monotonic:"
    HEX r11
    PRINT " advanced:"
    xor r8d, r8d
    cmp r10, r9
    seta r8b
    HEX r8
    NL
    PRINTLN "rdtsc in ring 3 with cr4.tsd:"
    mov rax, cr4
    bts rax, 2
    mov cr4, rax
    mov qword [fault_base], user_rdtsc
    mov rdi, user_rdtsc
    mov rsi, 0x300000
    mov edx, 2
    call enter_user
    PRINTLN "rdtsc in ring 3 without cr4.tsd:"
    mov rax, cr4
    btr rax, 2
    mov cr4, rax
    mov qword [fault_base], user_rdtsc
    mov rdi, user_rdtsc
    mov rsi, 0x300000
    mov edx, 2
    call enter_user
    PRINTLN "done"
    EXIT 0

user_rdtsc:
    rdtsc
    UPRINT {"ring3: rdtsc ok", 10}
    URETURN

vendor: times 12 db 0

%include "include/tail.inc"
