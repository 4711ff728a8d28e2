; Test microkernel: 4-level paging faults and bookkeeping: #PF error codes (P, W/R, U/S, RSVD, I/D) and CR2
; for not-present, read-only (CR0.WP), supervisor-only and no-execute (EFER.NXE) entries, the accessed and
; dirty bits, and TLB invalidation with INVLPG and a CR3 reload. Reserved-bit faults are not here: QEMU 7.2
; TCG reports them without the P bit and ignores bit 63 when EFER.NXE=0, unlike hardware.
; Spec: Intel SDM Vol. 3A 4.5 (4-level paging), 4.6 (access rights, CR0.WP, NX), 4.7 (page-fault
; exceptions), 4.8 (accessed and dirty flags), 4.10.4 (invalidation of TLBs).
%include "include/boot.inc"

kmain32:
    jmp enter_long

%include "include/long.inc"

USTACK equ 0x300000
PT equ pt_test

%macro URUN 1
    mov qword [fault_base], %1
    mov rdi, %1
    mov rsi, USTACK
    mov edx, 2
    call enter_user
%endmacro

kmain64:
    ; 2 MiB..4 MiB through 4 KiB pages, all user read/write, then a few special pages
    mov rdi, PT
    mov eax, 0x200007
    mov ecx, 512
.fill:
    mov [rdi], rax
    add rax, 0x1000
    add rdi, 8
    loop .fill
    mov rax, PT + 7
    mov [pd0 + 8], rax
    mov byte [0x203000], 0xc3       ; a RET to execute on the no-execute page
    mov byte [0x202000], 0xc3       ; and on the supervisor page
    mov qword [PT + 0 * 8], 0       ; 0x200000 not present
    mov qword [PT + 1 * 8], 0x201001 ; read-only, supervisor
    mov qword [PT + 2 * 8], 0x202003 ; read/write, supervisor
    mov rax, 0x8000000000203007     ; no-execute
    mov [PT + 3 * 8], rax
    mov qword [PT + 4 * 8], 0x204007
    mov rax, cr3
    mov cr3, rax

    PRINTLN "read not present:"
    TRY
    mov eax, [0x200010]
    ENDTRY
    PRINTLN "write not present:"
    TRY
    mov dword [0x200020], 1
    ENDTRY
    PRINTLN "write read-only, cr0.wp=1:"
    mov rax, cr0
    bts rax, 16
    mov cr0, rax
    TRY
    mov dword [0x201008], 1
    ENDTRY
    PRINTLN "write read-only, cr0.wp=0:"
    mov rax, cr0
    btr rax, 16
    mov cr0, rax
    TRY
    mov dword [0x201008], 0x55
    PRINT "write ok, value="
    HEX qword [0x201008]
    NL
    mov rsp, [recover_rsp]
    jmp %$done
    ENDTRY
    PRINTLN "user read of supervisor page:"
    URUN user_read_sup
    PRINTLN "user write of supervisor page:"
    URUN user_write_sup
    PRINTLN "user write of read-only supervisor page:"
    URUN user_write_ro
    PRINTLN "user fetch from supervisor page:"
    URUN 0x202000
    PRINTLN "supervisor fetch from no-execute page:"
    TRY
    mov eax, 0x203000
    call rax
    ENDTRY
    PRINTLN "user fetch from no-execute page:"
    URUN 0x203000
    PRINTLN "read of no-execute page:"
    TRY
    movzx eax, byte [0x203000]
    PRINT "value="
    HEX rax
    NL
    mov rsp, [recover_rsp]
    jmp %$done
    ENDTRY
    PRINTLN "accessed and dirty bits:"
    PRINT "pte before="
    mov rax, [PT + 4 * 8]
    and eax, 0xfff
    HEX rax
    mov eax, [0x204000]
    PRINT " after read="
    mov rax, [PT + 4 * 8]
    and eax, 0xfff
    HEX rax
    mov dword [0x204000], 7
    PRINT " after write="
    mov rax, [PT + 4 * 8]
    and eax, 0xfff
    HEX rax
    PRINT " pde(2M) after="
    mov rax, [pd0 + 8 * 8]          ; 16 MiB page, untouched so far
    and eax, 0xff
    HEX rax
    mov eax, [0x1000000]
    PRINT ","
    mov rax, [pd0 + 8 * 8]
    and eax, 0xff
    HEX rax
    NL

    PRINTLN "invlpg and cr3 reload:"
    mov dword [0x205000], 0xaaaa
    mov dword [0x206000], 0xbbbb
    mov dword [0x207000], 0xcccc
    mov eax, [0x205000]
    mov qword [PT + 5 * 8], 0x206007
    invlpg [0x205000]
    mov eax, [0x205000]
    PRINT "after invlpg="
    HEX rax
    mov qword [PT + 5 * 8], 0x207007
    mov rax, cr3
    mov cr3, rax
    mov eax, [0x205000]
    PRINT " after cr3 reload="
    HEX rax
    NL
    PRINTLN "done"
    EXIT 0

user_read_sup:
    mov eax, [0x202010]
    UPRINT {"ring3: nofault", 10}
    URETURN
user_write_sup:
    mov dword [0x202018], 1
    UPRINT {"ring3: nofault", 10}
    URETURN
user_write_ro:
    mov dword [0x201018], 1
    UPRINT {"ring3: nofault", 10}
    URETURN

%include "include/tail.inc"
