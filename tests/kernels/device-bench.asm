; Device-access benchmark kernel for `npm run bench -- device`: ITER iterations of one kind of intercepted
; access in 32-bit protected mode (no paging), then "done" and isa-debug-exit 0. OP selects the access:
; 1 = 4-byte MMIO read, 2 = 4-byte MMIO write, 3 = 1-byte port read (COM1 LSR), 4 = 16-byte SSE MMIO read
; (MOVUPS, two 8-byte accesses). The MMIO address is the I/O APIC's IOREGSEL (0xFEC00000): on a machine
; without an I/O APIC the reads float to all ones and the writes are dropped, which is still an intercept.
; Assemble with -DOP=<n> -DITER=<count>; docs/decisions/0004 records the figures.
; Spec: Intel SDM Vol. 2 (MOV, IN, MOVUPS); 82093AA I/O APIC datasheet 3.0 (IOREGSEL).
%include "include/boot.inc"

%ifndef ITER
%define ITER 100000
%endif
%ifndef OP
%define OP 1
%endif

kmain32:
%if OP == 4
    mov eax, cr4
    or eax, 0x600                   ; OSFXSR, OSXMMEXCPT
    mov cr4, eax
    mov eax, cr0
    and eax, ~4                     ; EM off
    or eax, 2                       ; MP on
    mov cr0, eax
%endif
    mov ecx, ITER
    mov edi, 0xfec00000
    mov dx, 0x3fd
    jecxz .end
.loop:
%if OP == 1
    mov eax, [edi]
%elif OP == 2
    mov [edi], ecx
%elif OP == 3
    in al, dx
%else
    movups xmm0, [edi]
%endif
    dec ecx
    jnz .loop
.end:
    PRINTLN "done"
    EXIT 0

%include "include/tail.inc"
