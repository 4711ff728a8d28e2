; Test microkernel: exceptions that exist only outside 64-bit mode, in 32-bit protected mode: #OF from INTO,
; #BR from BOUND, #TS from an interrupt out of ring 3 whose TSS.SS0 selector is invalid, plus #DE and
; INT n with 32-bit interrupt gates and the 32-bit TSS stack switch. (Segment-limit #GP is left out: QEMU
; 7.2 TCG does not check data segment limits.)
; Spec: Intel SDM Vol. 3A 6.15 (vectors 4, 5, 10), 7.2 (32-bit TSS), 6.12.1 (stack switch, conforming code
; segments), Vol. 2A BOUND, INTO.
%include "include/boot.inc"

USTACK equ 0x300000

%macro TRY32 0
%push try
    mov dword [recover_eip], %$done
    mov [recover_esp], esp
    mov dword [fault_base32], %$insn
%$insn:
%endmacro
%macro ENDTRY32 0
    PRINTLN "nofault"
%$done:
%pop
%endmacro

kmain32:
    ; TSS32: SS0:ESP0 for ring 3 -> 0
    mov dword [tss32 + 4], ring0stack_top
    mov dword [tss32 + 8], SEL_DATA
    mov word [tss32 + 102], 104
    mov eax, tss32
    mov word [gdt_tss32], 103
    mov [gdt_tss32 + 2], ax
    shr eax, 16
    mov [gdt_tss32 + 4], al
    mov byte [gdt_tss32 + 5], 0x89
    mov byte [gdt_tss32 + 6], 0
    mov [gdt_tss32 + 7], ah
    mov ax, SEL_TSS32
    ltr ax
    ; IDT: 32-bit interrupt gates to 8-byte stubs
    xor ecx, ecx
.idt:
    mov eax, ecx
    shl eax, 4
    add eax, stubs32
    mov [idt32 + ecx * 8], ax
    mov word [idt32 + ecx * 8 + 2], SEL_CODE32
    mov word [idt32 + ecx * 8 + 4], 0x8e00
    shr eax, 16
    mov [idt32 + ecx * 8 + 6], ax
    inc ecx
    cmp ecx, 256
    jne .idt
    mov byte [idt32 + 0x80 * 8 + 5], 0xee ; ring 3 may INT 0x80 (back to ring 0)
    ; #TS is handled in a conforming segment: no privilege change, so no use of the broken TSS.SS0
    mov word [idt32 + 10 * 8 + 2], SEL_CONFORM
    lidt [idt32_ptr]

    PRINTLN "into with of=1:"
    TRY32
    mov al, 0x7f
    add al, 1
    into
    ENDTRY32
    PRINTLN "into with of=0:"
    TRY32
    xor eax, eax
    into
    PRINTLN "no trap"
    mov esp, [recover_esp]
    jmp %$done
    ENDTRY32
    PRINTLN "bound out of range:"
    TRY32
    mov eax, 11
    bound eax, [bounds]
    ENDTRY32
    PRINTLN "bound in range:"
    TRY32
    mov eax, 10
    bound eax, [bounds]
    PRINTLN "in range"
    mov esp, [recover_esp]
    jmp %$done
    ENDTRY32
    PRINTLN "de:"
    TRY32
    xor edx, edx
    xor ecx, ecx
    div ecx
    ENDTRY32
    PRINTLN "ring 3 and back through int 0x80:"
    TRY32
    push SEL_UDATA | 3
    push USTACK
    push 0x3002                     ; IOPL 3 so that ring 3 can print
    push SEL_UCODE32 | 3
    push user32
    iretd
    ENDTRY32
    PRINTLN "ts (int from ring 3 with an invalid TSS.SS0):"
    mov dword [tss32 + 8], SEL_BADSEG
    TRY32
    push SEL_UDATA | 3
    push USTACK
    push 0x3002
    push SEL_UCODE32 | 3
    push user32_ts
    iretd
    ENDTRY32
    PRINTLN "done"
    EXIT 0

; [esp] vector, +4 error code, +8 EIP, +12 CS, +16 EFLAGS (+20 ESP, +24 SS from ring 3)
common32:
    ; ring-3 code runs with its own data segments; IRET to ring 3 nulls DPL-0 ones (SDM IRET, "RETURN-TO-
    ; OUTER-PRIVILEGE-LEVEL"), so reload before touching memory (unless this is the #TS handler, which
    ; runs at CPL 3 in the conforming segment and keeps the user's)
    mov ax, cs
    test al, 3
    jnz .segs_ok
    mov ax, SEL_DATA
    mov ds, ax
    mov es, ax
.segs_ok:
    mov ebx, esp
    PRINT "exc: v="
    HEX [ebx]
    PRINT " ec="
    HEX [ebx + 4]
    PRINT " eip=+"
    mov eax, [ebx + 8]
    sub eax, [fault_base32]
    HEX eax
    PRINT " cpl="
    mov eax, [ebx + 12]
    and eax, 3
    HEX eax
    NL
    cmp dword [ebx], 10
    jne .recover
    ; #TS runs in ring 3 (conforming): repair TSS.SS0 and reach ring 0 through INT 0x80
    mov dword [tss32 + 8], SEL_DATA
    int 0x80
.recover:
    mov ax, SEL_DATA
    mov ds, ax
    mov es, ax
    mov esp, [recover_esp]
    jmp [recover_eip]

align 16
stubs32:
%assign v 0
%rep 256
    align 16
%if v == 8 || (v >= 10 && v <= 14) || v == 17
%else
    push 0
%endif
    push v
    jmp common32
%assign v v + 1
%endrep

user32:
    mov ax, SEL_UDATA | 3
    mov ds, ax
    mov es, ax
    mov ax, cs
    and eax, 3
    PRINT "ring3: cpl="
    HEX eax
    NL
    int 0x80
user32_ts:
    mov ax, SEL_UDATA | 3
    mov ds, ax
    mov es, ax
    int 0x80

align 4
bounds: dd 0, 10
idt32_ptr:
    dw 256 * 8 - 1
    dd idt32

section .bss
alignb 4096
idt32:      resb 2048
tss32:      resb 104
alignb 16
            resb 4096
ring0stack_top:
recover_eip: resd 1
recover_esp: resd 1
fault_base32: resd 1

%include "include/tail.inc"
