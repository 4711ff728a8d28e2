; Test microkernel that never stops by itself: `viridian run --max-instructions N` must end it (issue 9 item
; 2: any run can be bounded). MODE 1: a jump to itself; 2: an exception handler that faults again forever
; (the #UD handler is UD2: nothing ever retires); 3: REP LODSB with ECX = 2^32 - 1 (one instruction that
; takes billions of iterations); 4: REPE CMPSD over the I/O APIC's zero registers, both operands MMIO, with
; ECX = 2^32 - 1 (the window's first 0x40 bytes and beyond read the same on both sides); 5: console output
; without end (for the host-output tests: a reader that goes away must end the run cleanly).
; Spec: Intel SDM Vol. 2B REP/LODS/CMPS (interruptible between iterations), Vol. 3A 6.15 (#UD).
%include "include/boot.inc"

%ifndef MODE
%define MODE 1
%endif

kmain32:
    PRINTLN "running away"
%if MODE == 1
.spin:
    jmp .spin
%elif MODE == 2
    jmp enter_long
%elif MODE == 3
    cld
    xor esi, esi
    mov ecx, 0xffffffff
    rep lodsb
%elif MODE == 4
    cld
    mov esi, 0xfec00020
    mov edi, 0xfec00020
    mov ecx, 0xffffffff
    repe cmpsd
%else
.print:
    PRINT "all work and no play makes jack a dull boy "
    jmp .print
%endif
    PRINTLN "unreachable"
    EXIT 1

%include "include/long.inc"

; MODE 2, in 64-bit mode: #UD goes through IST1 (a fresh stack every time) to a handler that is itself a UD2,
; so the processor delivers #UD forever and nothing retires.
kmain64:
    mov rax, ud_spot
    mov [idt + 6 * 16], ax
    shr rax, 16
    mov [idt + 6 * 16 + 6], ax
    shr rax, 16
    mov [idt + 6 * 16 + 8], eax
    mov byte [idt + 6 * 16 + 4], 1          ; IST1
    ud2
ud_spot:
    ud2

%include "include/tail.inc"
