; Test microkernel for behaviour where QEMU 7.2 TCG departs from the Intel SDM, so it is checked against
; a hand-written expectation (sdm-only.expected, each line derived from the SDM section cited) instead
; of against QEMU: INT1 (ICEBP) raising #DB, #AC in ring 3, #SS(0) for a non-canonical stack reference,
; #XM for an unmasked SSE exception, reserved-bit page faults (error code P|RSVD), bit 63 reserved while
; EFER.NXE=0, and IDT-gate error codes (vector << 3 | IDT bit) in 64-bit mode.
; Spec: Intel SDM Vol. 3A 6.15 (#DB "INT1", #AC, #SS, #XM, #GP/#NP error codes), 6.13 (error code format:
; bits 15:3 selector index; for the IDT, the vector), 4.7 (page-fault error code: P=1 and RSVD=1 for
; reserved-bit violations), 4.5.4 (bit 63 is reserved when IA32_EFER.NXE = 0); Vol. 2A INT1.
%include "include/boot.inc"

kmain32:
    jmp enter_long

%include "include/long.inc"

USTACK equ 0x300000
%macro URUN 2
    mov qword [fault_base], %1
    mov rdi, %1
    mov rsi, USTACK
    mov edx, %2
    call enter_user
%endmacro

kmain64:
    PRINTLN "int1:"
    TRY
    int1
    ENDTRY
    PRINTLN "np (gate):"
    mov byte [idt + 0x42 * 16 + 5], 0x0e
    TRY
    int 0x42
    ENDTRY
    mov byte [idt + 0x42 * 16 + 5], 0x8e
    PRINTLN "gp (dpl 0 gate from ring 3):"
    URUN user_int41, 0x2
    PRINTLN "ss (non-canonical stack in ring 3):"
    URUN user_badstack, 0x2
    PRINTLN "ac (misaligned load in ring 3, cr0.am and rflags.ac):"
    mov rax, cr0
    bts rax, 18
    mov cr0, rax
    URUN user_ac, 0x40002
    PRINTLN "ac clear in rflags: no check:"
    URUN user_ac, 0x2
    mov rax, cr0
    btr rax, 18
    mov cr0, rax
    PRINTLN "pf (reserved bit 13 in a 2 MiB pde), read:"
    mov rax, 0x400087 | 0x2000
    mov [pd0 + 16], rax
    invlpg [0x400000]
    TRY
    mov eax, [0x400100]
    ENDTRY
    PRINTLN "pf (reserved bit), write:"
    TRY
    mov dword [0x400200], 1
    ENDTRY
    PRINTLN "pf (reserved bit), user read:"
    URUN user_read_rsvd, 0x2
    mov qword [pd0 + 16], 0x400087
    invlpg [0x400000]
    PRINTLN "pf (bit 63 with efer.nxe=0):"
    mov rax, 0x8000000000600087
    mov [pd0 + 24], rax
    invlpg [0x600000]
    mov ecx, 0xc0000080
    rdmsr
    btr eax, 11
    wrmsr
    TRY
    mov eax, [0x600010]
    ENDTRY
    mov ecx, 0xc0000080
    rdmsr
    bts eax, 11
    wrmsr
    mov qword [pd0 + 24], 0x600087
    invlpg [0x600000]
    PRINTLN "xm (unmasked sse zero divide):"
    mov rax, cr0
    and eax, ~0x0c
    or eax, 0x22
    mov cr0, rax
    mov rax, cr4
    or eax, 0x600
    mov cr4, rax
    TRY
    ldmxcsr [mxcsr_zm_unmasked]
    mov eax, 1
    cvtsi2ss xmm0, eax
    xorps xmm1, xmm1
    divss xmm0, xmm1
    ENDTRY
    PRINTLN "done"
    EXIT 0

user_int41:
    int 0x41
    UPRINT {"ring3: nofault", 10}
    URETURN
user_badstack:
    mov rsp, 0x0000800000000010
    push rax
    UPRINT {"ring3: nofault", 10}
    URETURN
user_ac:
    mov eax, [rsp - 7]
    UPRINT {"ring3: nofault", 10}
    URETURN
user_read_rsvd:
    mov eax, [0x400300]
    UPRINT {"ring3: nofault", 10}
    URETURN

align 4
mxcsr_zm_unmasked: dd 0x1d80

%include "include/tail.inc"
