; Test microkernel: x87 and SSE exception paths in long mode: #NM (CR0.TS, CR0.EM), #MF (unmasked x87
; zero-divide with CR0.NE, reported at the next waiting x87 instruction), #UD for SSE without CR4.OSFXSR
; or with CR0.EM, and a little x87/SSE arithmetic. #XM is left out: QEMU 7.2 TCG never raises it.
; Spec: Intel SDM Vol. 3A 2.5 (CR0.TS/EM/MP/NE, CR4.OSFXSR/OSXMMEXCPT), 6.15 (vectors 6, 7, 16), Vol. 1
; 8.7 (x87 exception handling), 11.5 (SIMD floating-point exceptions), 10.2.3 (MXCSR).
%include "include/boot.inc"

kmain32:
    jmp enter_long

%include "include/long.inc"

kmain64:
    mov rax, cr0
    or eax, 0x22                    ; NE, MP
    and eax, ~0x0c                  ; EM, TS off
    mov cr0, rax
    mov rax, cr4
    or eax, 0x600                   ; OSFXSR, OSXMMEXCPT
    mov cr4, rax
    fninit
    PRINTLN "x87 arithmetic:"
    fild dword [three]
    fsqrt
    fimul dword [million]
    fistp dword [result]
    PRINT "sqrt(3)*1e6="
    mov eax, [result]
    HEX rax
    NL
    PRINTLN "sse arithmetic:"
    cvtsi2sd xmm0, dword [three]
    sqrtsd xmm0, xmm0
    mulsd xmm0, [million_d]
    cvttsd2si eax, xmm0
    PRINT "sqrt(3)*1e6="
    HEX rax
    NL
    PRINTLN "nm (x87 with cr0.ts):"
    mov rax, cr0
    bts rax, 3
    mov cr0, rax
    TRY
    fld1
    ENDTRY
    clts
    PRINTLN "nm (x87 with cr0.em):"
    mov rax, cr0
    bts rax, 2
    mov cr0, rax
    TRY
    fld1
    ENDTRY
    PRINTLN "ud (sse with cr0.em):"
    TRY
    addps xmm0, xmm1
    ENDTRY
    mov rax, cr0
    btr rax, 2
    mov cr0, rax
    PRINTLN "mf (unmasked x87 zero divide):"
    fninit
    fldcw [cw_zm_unmasked]
    TRY
    fld1
    fldz
    fdivp st1, st0
    fwait
    ENDTRY
    fninit
    PRINTLN "ud (sse without cr4.osfxsr):"
    mov rax, cr4
    btr rax, 9
    mov cr4, rax
    TRY
    addps xmm0, xmm1
    ENDTRY
    PRINTLN "done"
    EXIT 0

align 8
three: dd 3
million: dd 1000000
result: dd 0
align 8
million_d: dq 1000000.0
cw_zm_unmasked: dw 0x037b

%include "include/tail.inc"
