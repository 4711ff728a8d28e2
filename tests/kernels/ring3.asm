; Test microkernel: privilege transitions in long mode: IRETQ to ring 3, SYSCALL/SYSRET, INT 0x80 from
; ring 3 (stack switch to TSS.RSP0), faults raised in ring 3 (#GP for privileged instructions and I/O,
; #PF on a supervisor page) and INT 3 from ring 3. Not here because QEMU 7.2 TCG differs from hardware:
; #AC (TCG does not check alignment) and #SS for a non-canonical stack (TCG raises #GP).
; Spec: Intel SDM Vol. 3A 5.8 (privilege levels), 6.12.1 (stack switching), 6.14.2 (64-bit stack frame),
; 6.15 (#GP, #PF); Vol. 2B SYSCALL, SYSRET, IRET.
%include "include/boot.inc"

kmain32:
    jmp enter_long

%include "include/long.inc"

USTACK equ 0x300000

; URUN label, rflags: run ring-3 code at label; a fault there is reported relative to label
%macro URUN 2
    mov qword [fault_base], %1
    mov rdi, %1
    mov rsi, USTACK
    mov edx, %2
    call enter_user
%endmacro

kmain64:
    PRINTLN "iretq to ring 3:"
    mov rdi, user_hello
    mov rsi, USTACK
    mov edx, 0x2
    call enter_user
    PRINT "back in ring 0: cs="
    mov ax, cs
    HEX rax
    PRINT " sys_rcx=user+"
    mov rax, [sys_rcx]
    sub rax, user_hello
    HEX rax
    PRINT " r11="
    HEX qword [sys_r11]
    NL

    PRINTLN "int 0x80 from ring 3:"
    mov rdi, user_int80
    mov rsi, USTACK
    mov edx, 0x2
    call enter_user
    PRINT "int80 frame: cs="
    HEX qword [int_cs]
    PRINT " ss="
    HEX qword [int_ss]
    PRINT " rsp=user-"
    mov rax, USTACK
    sub rax, [int_rsp]
    HEX rax
    PRINT " rflags="
    HEX qword [int_rflags]
    PRINT " handler rsp=rsp0-"
    mov rax, rsp0stack_top
    sub rax, [sys_rsp]
    HEX rax
    NL

    PRINTLN "hlt in ring 3:"
    URUN user_hlt, 0x2
    PRINTLN "cli in ring 3 (iopl 0):"
    URUN user_cli, 0x2
    PRINTLN "in in ring 3 (iopl 0):"
    URUN user_in, 0x2
    PRINTLN "mov cr3 in ring 3:"
    URUN user_cr3, 0x2
    PRINTLN "int3 in ring 3:"
    URUN user_int3, 0x2
    PRINTLN "int 0x41 (dpl 0 gate) in ring 3; error code low bits:"
    ECMASK_IDT
    URUN user_int41, 0x2
    ECMASK_ALL
    PRINTLN "supervisor page from ring 3:"
    and qword [pd0 + 8 * 2], ~4     ; 4 MiB..6 MiB: supervisor only
    invlpg [0x400000]
    URUN user_supervisor, 0x2
    PRINTLN "iopl 3 lets ring 3 use in/out:"
    mov rdi, user_iopl
    mov rsi, USTACK
    mov edx, 0x3002
    call enter_user
    PRINTLN "done"
    EXIT 0

; ---- ring-3 code (all of the first 1 GiB is user accessible unless changed above) ----
user_hello:
    UPRINT "ring3: cpl="
    mov ax, cs
    and eax, 3
    UHEX rax
    UPRINT " ss="
    mov ax, ss
    UHEX rax
    UNL
    mov rax, 0x1122334455667788
    mov rbx, rax
    UPRINT "ring3: rbx kept across syscall="
    mov rax, 0x1122334455667788
    xor rax, rbx
    setz al
    movzx eax, al
    UHEX rax
    UNL
    URETURN

user_int80:
    mov eax, 1
    mov esi, msg_int80
    int 0x80
    mov eax, 0
    int 0x80

user_hlt:
    hlt
    UPRINT {"ring3: nofault", 10}
    URETURN
user_cli:
    cli
    UPRINT {"ring3: nofault", 10}
    URETURN
user_in:
    mov dx, 0x3fd
    in al, dx
    UPRINT {"ring3: nofault", 10}
    URETURN
user_cr3:
    mov rax, cr3
    UPRINT {"ring3: nofault", 10}
    URETURN
user_int3:
    int3
    UPRINT "ring3: after int3"
    UNL
    URETURN
user_int41:
    int 0x41
    UPRINT {"ring3: nofault", 10}
    URETURN
user_supervisor:
    mov eax, [0x400010]
    UPRINT {"ring3: nofault", 10}
    URETURN
user_iopl:
    mov dx, 0x3fd
    in al, dx
    and eax, 0x20
    UPRINT "ring3: lsr.thre="
    UHEX rax
    UNL
    URETURN

msg_int80: db "ring3: hello through int 0x80", 10, 0

%include "include/tail.inc"
