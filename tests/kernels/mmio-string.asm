; Test microkernel: instructions that make several MMIO accesses complete, with the right result (issue 9
; item 2: they used to exit again and again without progress): REPE CMPSD and REPE CMPSB with both operands
; in MMIO, a 16-byte SSE load from MMIO, and FXRSTOR from MMIO. The MMIO is the I/O APIC's register window
; (IOREGSEL at +0x00 reads back what was selected, IOWIN at +0x10 the selected register, the rest of the first
; 0x40 bytes reads zero) and the local APIC's page (reserved registers 0x00-0x1F read zero): reads without side
; effects whose values QEMU's PC and Viridian's agree on.
; Spec: Intel SDM Vol. 2B CMPS/REP (ECX, ZF, ESI/EDI after a mismatch), MOVUPS, FXRSTOR; 82093AA I/O APIC
; datasheet 3.0 (IOREGSEL, IOWIN, version register); SDM Vol. 3A 11.4.1 (local APIC register map).
%include "include/boot.inc"

APIC    equ 0xfee00000
IOAPIC  equ 0xfec00000

; CMP_REPORT label, base: right after a REPE CMPS, print the label, ECX, ZF and how far ESI moved from base
%macro CMP_REPORT 2
    pushfd
    pop ebx                                 ; before anything that changes the flags
    PRINT %1
    PRINT " ecx="
    HEX ecx
    PRINT " zf="
    shr ebx, 6
    and ebx, 1
    HEX ebx
    PRINT " esi+="
    mov eax, esi
    sub eax, %2
    HEX eax
    NL
%endmacro

kmain32:
    cld
    ; --- REPE CMPSD, I/O APIC window against the local APIC's reserved registers: all equal
    mov dword [IOAPIC], 0                   ; IOWIN shows the ID register (ID 0)
    mov esi, IOAPIC
    mov edi, APIC
    mov ecx, 8
    repe cmpsd
    CMP_REPORT "cmpsd equal:", IOAPIC
    ; --- REPE CMPSD with a difference at the fourth dword: IOWIN shows redirection entry 0 (masked)
    mov dword [IOAPIC], 0x10
    mov esi, IOAPIC + 4
    mov edi, APIC + 4
    mov ecx, 7
    repe cmpsd
    CMP_REPORT "cmpsd differ:", IOAPIC + 4
    ; --- REPE CMPSB between IOREGSEL and IOWIN (both in the I/O APIC): the version register (0x00170020) is
    ; selected, IOREGSEL reads back 0x01: byte 0 differs
    mov dword [IOAPIC], 0x01
    mov esi, IOAPIC
    mov edi, IOAPIC + 0x10
    mov ecx, 4
    repe cmpsb
    CMP_REPORT "cmpsb differ:", IOAPIC
    ; --- REPE CMPSB over the zero bytes 0x20-0x3F of the window: all equal
    mov esi, IOAPIC + 0x20
    mov edi, IOAPIC + 0x30
    mov ecx, 16
    repe cmpsb
    CMP_REPORT "cmpsb equal:", IOAPIC + 0x20

    ; --- SSE: enable, then a 16-byte load of the window's first 16 and next 16 bytes
    mov eax, cr4
    or eax, 0x600                           ; OSFXSR, OSXMMEXCPT
    mov cr4, eax
    mov eax, cr0
    and eax, ~4                             ; EM off
    or eax, 2                               ; MP on
    mov cr0, eax
    movups xmm0, [IOAPIC]
    movups xmm1, [IOAPIC + 0x10]
    PRINT "movups: sel="
    movd eax, xmm0
    HEX eax
    PRINT " "
    psrldq xmm0, 4
    movd eax, xmm0
    HEX eax
    PRINT " win="
    movd eax, xmm1
    HEX eax
    PRINT " "
    psrldq xmm1, 4
    movd eax, xmm1
    HEX eax
    NL

    ; --- FXRSTOR from the window: FCW is IOREGSEL's low 16 bits, MXCSR (offset 24) reads zero
    mov dword [IOAPIC], 0x7f
    fxrstor [IOAPIC]
    fnstcw [fcw]
    stmxcsr [mxcsr]
    PRINT "fxrstor: fcw="
    movzx eax, word [fcw]
    HEX eax
    PRINT " mxcsr="
    HEX [mxcsr]
    NL
    PRINTLN "done"
    EXIT 0

align 4
fcw:   dd 0
mxcsr: dd 0

%include "include/tail.inc"
