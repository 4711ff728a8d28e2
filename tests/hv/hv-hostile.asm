; Hostile guest: OPS pseudo-random operations against the hypervisor interface from ring 0 — hypercalls with
; random control words (biased towards implemented codes), random input GPAs (aligned, unaligned, page
; crossing, outside RAM) and random fast/XMM inputs; random synthetic MSR writes and reads (overlay pages
; placed on scratch pages, the last RAM page or outside RAM); SynIC page programming sequences (slot and
; flag scribbling, EOM, SINT/SCONTROL changes); hypervisor CPUID leaves. #GP/#UD resume at the next operation
; and every interrupt vector returns at once. It ends with debug-exit 0 and prints how many ops faulted.
; Spec: TLFS hypercall-interface.md, the synthetic MSRs of timers.md and inter-partition-communication.md.
%include "include/boot.inc"

kmain32:
    jmp enter_long

%include "include/long.inc"
%include "hv.inc"

%ifndef OPS
OPS equ 1000000
%endif
%ifndef SEED
SEED equ 0x9e3779b97f4a7c15
%endif
RAM_TOP equ 16 << 20

; rand -> rax (xorshift64); clobbers rdx
rand:
    mov rax, [rng]
    mov rdx, rax
    shl rdx, 13
    xor rax, rdx
    mov rdx, rax
    shr rdx, 7
    xor rax, rdx
    mov rdx, rax
    shl rdx, 17
    xor rax, rdx
    mov [rng], rax
    ret

; page_value -> rax: an overlay-page MSR value: a scratch page, the last RAM page, just beyond RAM, or far
; outside; random low 12 bits except the hypercall lock bit (so the run keeps its hypercall page)
page_value:
    call rand
    mov rcx, rax
    and ecx, 0xffd                  ; low bits, no lock bit
    mov rdx, rax
    shr rdx, 12
    and edx, 7
    cmp edx, 5
    jb .scratch
    je .last
    cmp edx, 6
    je .beyond
    shr rax, 20
    shl rax, 12
    jmp .done
.scratch:
    mov rax, rdx
    shl rax, 12
    add rax, hscratch
    jmp .done
.last:
    mov rax, RAM_TOP - 4096
    jmp .done
.beyond:
    mov rax, RAM_TOP
.done:
    or rax, rcx
    ret

gp_handler:
    add rsp, 8                      ; error code
ud_handler:
    inc qword [faults]
    mov rax, [resume_rsp]
    mov [rsp + 24], rax
    mov qword [rsp], next_op
    iretq

ignore_irq:
    iretq

kmain64:
    ; every vector from 16 up returns at once; #GP and #UD resume the loop
    mov edi, 16
.gates:
    mov rsi, ignore_irq
    call set_gate
    inc edi
    cmp edi, 256
    jne .gates
    call install_irq_stubs
    mov edi, 13
    mov rsi, gp_handler
    call set_gate
    mov edi, 6
    mov rsi, ud_handler
    call set_gate
    mov rax, cr4
    or eax, 0x600                   ; OSFXSR, OSXMMEXCPT: the XMM registers carry fast-call input
    mov cr4, rax
    mov rax, SEED
    mov [rng], rax
    mov [resume_rsp], rsp
    call hv_enable
    sti
    mov qword [ops_left], OPS

next_op:
    mov rsp, [resume_rsp]
    dec qword [ops_left]
    js finish
    test qword [ops_left], 0xfff
    jnz .no_reset
    call hv_enable                  ; every 4096 ops: make hypercalls possible again
.no_reset:
    call rand
    mov rbx, rax
    and eax, 15
    cmp eax, 6
    jb op_hypercall
    cmp eax, 10
    jb op_wrmsr
    cmp eax, 12
    jb op_rdmsr
    cmp eax, 15
    jb op_synic
    jmp op_cpuid

op_hypercall:
    ; fill the input page with random qwords now and then
    test ebx, 0xf00
    jnz .nofill
    mov rdi, inbuf
    mov r9d, 40
.fill:
    call rand
    mov [rdi], rax
    add rdi, 8
    dec r9d
    jnz .fill
    call rand
    movq xmm0, rax
    movq xmm1, rdx
    pinsrq xmm2, rax, 1
.nofill:
    call rand
    mov r10, rax                    ; raw control bits
    mov ecx, ebx
    shr ecx, 8
    and ecx, 15
    movzx eax, word [codes + rcx * 2]
    cmp ecx, 12
    jb .code
    mov eax, r10d                   ; a random call code
.code:
    mov rcx, r10
    and rcx, ~0xffff
    test ebx, 0x3000
    jz .keep_high                   ; a quarter keeps every random bit (reserved ones included)
    mov rdx, 0x0fff0fff00070000     ; otherwise only fast, a small var header, small reps
    and rcx, rdx
.keep_high:
    or rcx, rax
    call rand
    mov r8, rax                     ; output GPA / second fast input word
    ; input GPA: in inbuf (maybe unaligned or near the page end), or random
    call rand
    mov rdx, rax
    test ebx, 0xc000
    jz .random_gpa
    and edx, 0xfff
    add rdx, inbuf
    test ebx, 0x10000
    jz .gpa_done
    and rdx, ~7
    jmp .gpa_done
.random_gpa:
    test ebx, 0x20000
    jz .gpa_done
    and edx, 0x3ffff8
.gpa_done:
    call hcpage
    jmp next_op

op_wrmsr:
    call rand
    mov r12, rax
    shr eax, 8
    and eax, 31
    cmp eax, 24
    jb .known
    mov ecx, r12d
    and ecx, 0x1ff
    add ecx, 0x40000000             ; anywhere in the synthetic range
    jmp .value
.known:
    mov ecx, [msrs + rax * 4]
.value:
    cmp ecx, MSR_HYPERCALL
    je .page
    cmp ecx, MSR_REF_TSC
    je .page
    cmp ecx, MSR_VP_ASSIST
    je .page
    cmp ecx, MSR_SIMP
    je .page
    cmp ecx, MSR_SIEFP
    je .page
    call rand
    test ebx, 0x100000
    jz .write
    and eax, 0xfffff                ; mostly small values: plausible configs, counts, vectors
    xor edx, edx
    jmp .write_raw
.page:
    push rcx
    call page_value
    pop rcx
.write:
    mov rdx, rax
    shr rdx, 32
.write_raw:
    wrmsr
    jmp next_op

op_rdmsr:
    mov ecx, ebx
    shr ecx, 8
    and ecx, 0x1ff
    add ecx, 0x40000000
    rdmsr
    jmp next_op

op_synic:
    ; scribble on the scratch pages (where SIMP/SIEFP may point), then EOM / SINT / SCONTROL
    mov rdi, rbx
    shr rdi, 8
    and edi, (8 * 4096 - 1) & ~3
    add rdi, hscratch
    call rand
    test ebx, 0x100
    jz .clear
    mov [rdi], eax
    jmp .reg
.clear:
    and dword [rdi], 0              ; consume a slot
.reg:
    call rand
    mov r12, rax
    and eax, 3
    jz .eom
    cmp eax, 1
    je .sint
    cmp eax, 2
    je .scontrol
    ; ask the root for messages / events (ports 1-4 are registered by the test)
    mov dword [inbuf], 1
    mov eax, r12d
    shr eax, 4
    and eax, 3
    add [inbuf], eax
    mov dword [inbuf + 8], 1
    mov dword [inbuf + 12], 4
    mov [inbuf + 16], r12d
    HC 0x5c, inbuf, 0
    HC 0x5d | (1 << 16), 1, 0
    jmp next_op
.eom:
    mov ecx, MSR_EOM
    xor eax, eax
    xor edx, edx
    wrmsr
    jmp next_op
.sint:
    mov ecx, r12d
    shr ecx, 8
    and ecx, 15
    add ecx, MSR_SINT0
    mov eax, r12d
    shr eax, 12
    and eax, 0x300ff
    xor edx, edx
    wrmsr
    jmp next_op
.scontrol:
    mov ecx, MSR_SCONTROL
    mov eax, 1
    test r12d, 0x100
    jnz .sc
    xor eax, eax
.sc:
    xor edx, edx
    wrmsr
    jmp next_op

op_cpuid:
    mov eax, ebx
    shr eax, 8
    and eax, 15
    add eax, 0x40000000
    cpuid
    jmp next_op

finish:
    cli
    PRINT "faults="
    HEX qword [faults]
    PRINT " irqs="
    mov rax, [irq_count + (0x50 - 0x40) * 8]
    HEX rax
    NL
    EXIT 0

align 4
codes: dw 0x0002, 0x0003, 0x0008, 0x000b, 0x0013, 0x0014, 0x0015, 0x005c, 0x005d, 0x005c, 0x005d, 0x0046
msrs: dd MSR_GUEST_OS_ID, MSR_HYPERCALL, MSR_VP_INDEX, MSR_VP_RUNTIME, MSR_TIME_REF, MSR_REF_TSC
      dd MSR_TSC_FREQ, MSR_APIC_FREQ, MSR_VP_ASSIST, MSR_SCONTROL, MSR_SVERSION, MSR_SIEFP
      dd MSR_SIMP, MSR_EOM, MSR_SINT0 + 2, MSR_SINT0 + 5, MSR_STIMER0_CFG, MSR_STIMER0_CNT
      dd MSR_STIMER0_CFG + 2, MSR_STIMER0_CNT + 4, MSR_STIMER0_CFG + 6, MSR_CRASH_P0 + 3, MSR_CRASH_P0 + 4
      dd MSR_CRASH_CTL

[section .bss]
alignb 4096
hscratch:   resb 8 * 4096
rng:        resq 1
resume_rsp: resq 1
ops_left:   resq 1
faults:     resq 1
__SECT__

%include "include/tail.inc"
