; Test microkernel for the local APIC (src/hv/local-apic.ts), run by tests/hv/apic.test.ts on the emulated
; processor: in long mode it maps the xAPIC page, enables the APIC, takes a one-shot and ten periodic timer
; interrupts through its IDT, blocks a self-IPI with CR8 and releases it, switches to x2APIC mode, sends a
; self-IPI through SELF_IPI, checks a #GP for a reserved x2APIC register, and takes a TSC-deadline interrupt.
; Not a QEMU-compared kernel (it lives outside tests/kernels/): timer counts depend on the run loop's time.
; Spec: Intel SDM Vol. 3A 11.4.1 (xAPIC page), 11.5.4 (timer modes, 11.5.4.1 TSC deadline), 11.6 (ICR,
; self shorthand), 11.8.6 (CR8 and TPR), 11.12 (x2APIC MSRs, SELF IPI, #GP), 4.5 (2 MiB pages, PCD/PWT).
%include "include/boot.inc"

APIC_BASE   equ 0xfee00000
V_ONESHOT   equ 0x40
V_PERIODIC  equ 0x41
V_SELF      equ 0x42                ; class 4: blocked while CR8 = 5
V_X2SELF    equ 0x51
V_TSCDL     equ 0x60
V_SPURIOUS  equ 0xff

kmain32:
    jmp enter_long

%include "include/long.inc"

%macro SETGATE 2
    mov rax, %2
    mov rdi, idt + %1 * 16
    mov [rdi], ax
    shr rax, 16
    mov [rdi + 6], ax
    shr rax, 16
    mov [rdi + 8], eax
%endmacro

%macro COUNT 2                      ; COUNT "label", [counter]
    PRINT %1
    mov eax, %2
    HEX rax
%endmacro

kmain64:
    ; 3-4 GiB: one page directory (pt_test) with a single uncached 2 MiB page at the APIC base
    mov rdi, pt_test
    xor eax, eax
    mov ecx, 1024
    rep stosd
    mov eax, APIC_BASE | 0x9b       ; P, RW, PWT, PCD, PS (zero-extended: a qword immediate would sign-extend)
    mov [pt_test + ((APIC_BASE >> 21) & 511) * 8], rax
    mov qword [pdpt + 3 * 8], pt_test + 3
    mov rax, cr3
    mov cr3, rax
    mov r15, APIC_BASE              ; r15 = the xAPIC page for the rest of the kernel
    SETGATE V_ONESHOT, isr_oneshot
    SETGATE V_PERIODIC, isr_periodic
    SETGATE V_SELF, isr_self
    SETGATE V_X2SELF, isr_x2self
    SETGATE V_TSCDL, isr_tscdl
    SETGATE V_SPURIOUS, isr_spurious

    mov ecx, 0x1b                   ; IA32_APIC_BASE
    rdmsr
    PRINT "apic: base="
    HEX rax
    PRINT " version="
    mov eax, [r15 + 0x30]
    HEX rax
    NL
    mov dword [r15 + 0xf0], 0x100 | V_SPURIOUS ; software enable

    ; one-shot: 100000 counts at 200 MHz / 16 = 8 ms
    mov dword [r15 + 0x3e0], 0x3
    mov dword [r15 + 0x320], V_ONESHOT
    mov dword [r15 + 0x380], 100000
    sti
.wait_oneshot:
    hlt
    cmp dword [cnt_oneshot], 1
    jb .wait_oneshot
    COUNT "oneshot: count=", [cnt_oneshot]
    PRINT " current="
    mov eax, [r15 + 0x390]
    HEX rax
    NL

    ; periodic: 20000 counts = 1.6 ms, ten periods, then masked and stopped
    mov dword [r15 + 0x320], 0x20000 | V_PERIODIC
    mov dword [r15 + 0x380], 20000
.wait_periodic:
    hlt
    cmp dword [cnt_periodic], 10
    jb .wait_periodic
    mov dword [r15 + 0x320], 0x30000 | V_PERIODIC
    mov dword [r15 + 0x380], 0
    COUNT "periodic: count=", [cnt_periodic]
    NL

    ; a self-IPI below the processor priority set through CR8 waits in IRR
    mov eax, 5
    mov cr8, rax
    PRINT "tpr="
    mov eax, [r15 + 0x80]
    HEX rax
    mov dword [r15 + 0x300], 0x40000 | V_SELF ; fixed, edge, shorthand self
    mov ecx, 100000
.spin:
    dec ecx
    jnz .spin
    COUNT " blocked: count=", [cnt_self]
    PRINT " irr="
    mov eax, [r15 + 0x220]              ; IRR bits 64-95
    HEX rax
    xor eax, eax
    mov cr8, rax
.wait_self:
    cmp dword [cnt_self], 1
    jb .wait_self
    COUNT " released: count=", [cnt_self]
    NL

    ; x2APIC mode: MSR interface, SELF IPI, #GP for a reserved register
    mov ecx, 0x1b
    rdmsr
    or eax, 0x400
    wrmsr
    mov ecx, 0x802
    rdmsr
    PRINT "x2apic: id="
    HEX rax
    mov ecx, 0x80d
    rdmsr
    PRINT " ldr="
    HEX rax
    NL
    mov ecx, 0x83f
    mov eax, V_X2SELF
    xor edx, edx
    wrmsr
.wait_x2:
    cmp dword [cnt_x2self], 1
    jb .wait_x2
    COUNT "x2apic self-ipi: count=", [cnt_x2self]
    NL
    TRY
    mov ecx, 0x809                  ; APR does not exist in x2APIC mode
    rdmsr
    ENDTRY
    sti                             ; the #GP recovery path left through an interrupt gate without IRETQ

    ; TSC deadline 1000000 TSC ticks ahead
    mov ecx, 0x832
    mov eax, 0x40000 | V_TSCDL
    xor edx, edx
    wrmsr
    rdtsc
    add eax, 1000000
    adc edx, 0
    mov ecx, 0x6e0
    wrmsr
.wait_tscdl:
    hlt
    cmp dword [cnt_tscdl], 1
    jb .wait_tscdl
    cli
    mov ecx, 0x6e0
    rdmsr
    shl rdx, 32
    or rax, rdx
    mov r14, rax
    COUNT "tsc-deadline: count=", [cnt_tscdl]
    PRINT " msr="
    HEX r14
    NL
    COUNT "totals: oneshot=", [cnt_oneshot]
    COUNT " periodic=", [cnt_periodic]
    COUNT " spurious=", [cnt_spurious]
    NL
    PRINTLN "done"
    EXIT 0

isr_oneshot:
    inc dword [cnt_oneshot]
    mov dword [r15 + 0xb0], 0       ; xAPIC EOI
    iretq
isr_periodic:
    inc dword [cnt_periodic]
    mov dword [r15 + 0xb0], 0
    iretq
isr_self:
    inc dword [cnt_self]
    mov dword [r15 + 0xb0], 0
    iretq
isr_x2self:
    inc dword [cnt_x2self]
    jmp x2eoi
isr_tscdl:
    inc dword [cnt_tscdl]
x2eoi:
    push rax
    push rcx
    push rdx
    mov ecx, 0x80b                  ; x2APIC EOI
    xor eax, eax
    xor edx, edx
    wrmsr
    pop rdx
    pop rcx
    pop rax
    iretq
isr_spurious:
    inc dword [cnt_spurious]        ; no EOI for the spurious vector
    iretq

section .data
align 4
cnt_oneshot:  dd 0
cnt_periodic: dd 0
cnt_self:     dd 0
cnt_x2self:   dd 0
cnt_tscdl:    dd 0
cnt_spurious: dd 0

%include "include/tail.inc"
