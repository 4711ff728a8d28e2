; Test microkernel: exception vectors in long mode with their error codes and fault/trap RIP semantics:
; #DE, #DB (RFLAGS.TF; INT1 is left out because QEMU 7.2 TCG raises #UD for it), #BP, #UD, #NM, #DF, #NP, #SS, #GP, #PF, and INTO/BOUND being invalid in
; 64-bit mode. Each line is "exc: v=<vector> ec=<error code> rip=+<offset from the test's first byte>".
; Spec: Intel SDM Vol. 3A 6.15 (exception and interrupt reference), 6.13 (error code), 17.3.1 (debug
; exceptions), Vol. 2 DIV, INT n/INTO/INT3/INT1, BOUND, UD.
%include "include/boot.inc"

kmain32:
    jmp enter_long

%include "include/long.inc"

kmain64:
    PRINTLN "de:"
    TRY
    xor edx, edx
    mov eax, 1
    xor ecx, ecx
    div ecx
    ENDTRY
    PRINTLN "de8 (quotient overflow):"
    TRY
    mov ax, 0x1000
    mov cl, 2
    div cl
    ENDTRY
    PRINTLN "db tf:"
    TRY
    pushfq
    or qword [rsp], 0x100
    popfq
    nop
    nop
    ENDTRY
    PRINTLN "bp:"
    TRY
    int3
    ENDTRY
    PRINTLN "int n:"
    TRY
    int 0x41
    ENDTRY
    PRINTLN "ud2:"
    TRY
    ud2
    ENDTRY
    PRINTLN "into in 64-bit:"
    TRY
    db 0xce
    ENDTRY
    PRINTLN "bound in 64-bit:"
    TRY
    db 0x62, 0x00
    ENDTRY
    PRINTLN "lock nop:"
    TRY
    db 0xf0, 0x90
    ENDTRY
    PRINTLN "nm (wait with cr0.ts, cr0.mp):"
    mov rax, cr0
    or eax, 0x0a
    mov cr0, rax
    TRY
    wait
    ENDTRY
    mov rax, cr0
    and eax, ~0x0a
    mov cr0, rax
    PRINTLN "np (data segment):"
    TRY
    mov ax, SEL_NOTPRES
    mov ds, ax
    ENDTRY
    mov ax, SEL_KDATA64
    mov ds, ax
    PRINTLN "np (gate; error code low bits):"
    mov byte [idt + 0x42 * 16 + 5], 0x0e
    ECMASK_IDT
    TRY
    int 0x42
    ENDTRY
    ECMASK_ALL
    PRINTLN "ss (stack segment):"
    TRY
    mov ax, SEL_NOTPRES
    mov ss, ax
    ENDTRY
    PRINTLN "gp (selector beyond limit):"
    TRY
    mov ax, SEL_BADSEG
    mov es, ax
    ENDTRY
    PRINTLN "gp (non-canonical):"
    TRY
    mov rbx, 0x0000800000000000
    mov rax, [rbx]
    ENDTRY
    PRINTLN "gp (system descriptor into ds):"
    TRY
    mov ax, SEL_TSS64
    mov ds, ax
    ENDTRY
    PRINTLN "gp (iretq with rpl 0 to user code):"
    TRY
    mov rax, rsp
    push SEL_KDATA64
    push rax
    pushfq
    push SEL_UCODE64
    push .after
    iretq
.after:
    ENDTRY
    PRINTLN "pf (not present, above 1 GiB):"
    TRY
    mov rbx, 0x40001234
    mov eax, [rbx]
    ENDTRY
    PRINTLN "pf (write, not present):"
    TRY
    mov rbx, 0x7fff00000008
    mov [rbx], eax
    ENDTRY
    PRINTLN "df (#DE through a not-present gate):"
    mov byte [idt + 0 * 16 + 5], 0x0e
    TRY
    xor edx, edx
    xor ecx, ecx
    div ecx
    ENDTRY
    mov byte [idt + 0 * 16 + 5], 0x8e
    PRINTLN "df (#GP through a gate beyond the IDT limit):"
    mov word [idt_ptr], 16 * 13 - 1
    lidt [idt_ptr]
    TRY
    mov ax, SEL_BADSEG
    mov es, ax
    ENDTRY
    mov word [idt_ptr], 4095
    lidt [idt_ptr]
    PRINTLN "de after recovery:"
    TRY
    xor ecx, ecx
    div ecx
    ENDTRY
    PRINTLN "done"
    EXIT 0

%include "include/tail.inc"
