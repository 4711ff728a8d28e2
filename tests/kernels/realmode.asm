; Test microkernel: protected mode -> real mode -> protected mode. A trampoline copied below 1 MiB drops to
; 16-bit protected mode, clears CR0.PE, runs real-mode code (segment arithmetic, the IVT with INT n and a
; #DE taken through IVT vector 0, IRET, far calls), then sets CR0.PE again and returns to the 32-bit kernel.
; Spec: Intel SDM Vol. 3A 9.9.2 (switching back to real-address mode), 9.9.1 (to protected mode), 20.1
; (real-address mode operation), 6.4/20.1.4 (interrupt vector table).
%include "include/boot.inc"

RM_BASE equ 0x7000
%define RM(x) ((x) - rm_start + RM_BASE)

kmain32:
    PRINTLN "pm: copying trampoline"
    mov esi, rm_start
    mov edi, RM_BASE
    mov ecx, rm_end - rm_start
    rep movsb
    mov [saved_esp], esp
    jmp SEL_CODE16:RM(rm_start)

pm_back:
    mov ax, SEL_DATA
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, [saved_esp]
    PRINT "pm: back, cr0.pe="
    mov eax, cr0
    and eax, 1
    HEX eax
    PRINT " value from real mode="
    HEX [RM(rm_result)]
    NL
    PRINTLN "done"
    EXIT 0


bits 16
rm_start:
    mov ax, SEL_DATA16
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, cr0
    and eax, ~1
    mov cr0, eax
    jmp 0:RM(.real)
.real:
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, RM_BASE
    PRINT {"rm: in real mode", 10}
    ; cs and a far call
    call 0:RM(far_target)
    ; segment arithmetic: 0x1234:0x0010 is linear 0x12350
    mov ax, 0x1234
    mov es, ax
    mov word [es:0x0010], 0xbeef
    mov ax, 0x1235
    mov fs, ax
    mov ax, [fs:0]
    mov [RM(rm_result)], ax
    xor ax, ax
    mov es, ax
    ; IVT: vector 0x30 and vector 0 (#DE) point at our handlers
    mov word [0x30 * 4], RM(int30)
    mov word [0x30 * 4 + 2], 0
    mov word [0 * 4], RM(de_handler)
    mov word [0 * 4 + 2], 0
    mov bx, 0x55
    int 0x30
    PRINT "rm: int 0x30 returned bx="
    call hex16
    mov ax, 0x100
    mov cl, 0
    div cl
    PRINT "rm: after #de ax="
    mov bx, ax
    call hex16
    ; 32-bit operand and address size prefixes in real mode
    mov eax, 0x12345678
    mov ebx, 0x1000
    mov dword [ebx * 2], eax
    mov edx, [0x2000]
    PRINT "rm: 32-bit store/load ok="
    xor bx, bx
    cmp edx, eax
    sete bl
    call hex16
    ; back to protected mode
    o32 lgdt [RM(gdt16_ptr)]
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    jmp dword SEL_CODE32:pm_back

far_target:
    PRINT "rm: far call, cs="
    mov bx, cs
    call hex16
    retf

int30:
    PRINT "rm: int 0x30 flags.if="
    pushf
    pop bx
    shr bx, 9
    and bx, 1
    call hex16
    mov bx, 0xaa
    iret

de_handler:
    push bp
    mov bp, sp
    PRINT "rm: #de at ip="
    mov bx, [bp + 2]
    sub bx, RM(rm_start)
    call hex16
    add word [bp + 2], 2            ; skip the 2-byte DIV
    mov ax, 0x77
    pop bp
    iret

; putc16: al
putc16:
    push ax
    push dx
    mov ah, al
    mov dx, 0x3fd
.wait:
    in al, dx
    test al, 0x20
    jz .wait
    mov al, ah
    mov dx, 0x3f8
    out dx, al
    pop dx
    pop ax
    ret
; puts16: si = string
puts16:
    push ax
    push si
.next:
    mov al, [si]
    test al, al
    jz .done
    call putc16
    inc si
    jmp .next
.done:
    pop si
    pop ax
    ret
; hex16: bx as 0xNNNN and a newline
hex16:
    push ax
    push bx
    push cx
    mov al, '0'
    call putc16
    mov al, 'x'
    call putc16
    mov cx, 4
.d:
    rol bx, 4
    mov al, bl
    and al, 0xf
    add al, '0'
    cmp al, '9'
    jbe .p
    add al, 'a' - '0' - 10
.p:
    call putc16
    loop .d
    mov al, 10
    call putc16
    pop cx
    pop bx
    pop ax
    ret
gdt16_ptr:
    dw gdt_end - gdt - 1
    dd gdt
align 4
rm_result: dd 0
rm_end:

bits 32
saved_esp: dd 0

%include "include/tail.inc"
