; Hypervisor microkernel: the reference TSC page against the reference counter and the TSC. For ITERATIONS
; rounds it reads RDTSC (t1), TIME_REF_COUNT (r), RDTSC (t2) and checks ((t * scale) >> 64) + offset
; brackets r (f(t1) <= r <= f(t2)), that the TSC and the counter never decrease, and counts the rounds where
; f(t1) == r exactly. A periodic direct timer interrupts the loop and every 64th round halts until it fires,
; so time also advances through idle skips.
; Spec: TLFS timers.md ("Partition Reference Time Enlightenment", "Reference Counter"); Intel SDM Vol. 2B RDTSC.
%include "include/boot.inc"

kmain32:
    jmp enter_long

%include "include/long.inc"
%include "hv.inc"

%ifndef ITERATIONS
ITERATIONS equ 20000
%endif
%ifndef TIMER_PERIOD
TIMER_PERIOD equ 50
%endif

; f(rax = tsc) -> rax = ((tsc * scale) >> 64) + offset, as Linux's hv_read_tsc_page computes it
tsc_to_ref:
    push rdx
    mul qword [tscpage + 8]
    mov rax, rdx
    add rax, [tscpage + 16]
    pop rdx
    ret

kmain64:
    call install_irq_stubs
    call hv_enable
    mov ecx, MSR_REF_TSC
    mov rax, tscpage + 1
    call wrmsr64
    PRINT "seq="
    mov eax, [tscpage]
    HEX rax
    PRINT " scale="
    HEX qword [tscpage + 8]
    PRINT " offset="
    HEX qword [tscpage + 16]
    NL
    ; stimer0: periodic, direct, vector 0x70, every TIMER_PERIOD units (default 5 us)
    mov ecx, MSR_STIMER0_CNT
    mov eax, TIMER_PERIOD
    call wrmsr64
    mov ecx, MSR_STIMER0_CFG
    mov eax, 3 | (1 << 12) | (0x70 << 4)
    call wrmsr64
    sti
    xor r12, r12                    ; bracket violations
    xor r13, r13                    ; TSC decreases
    xor r14, r14                    ; exact matches
    xor r15, r15                    ; reference counter decreases
    xor ebx, ebx                    ; previous TSC
    xor ebp, ebp                    ; previous reference count
    mov r9d, ITERATIONS
.loop:
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov r10, rax                    ; t1
    mov ecx, MSR_TIME_REF
    rdmsr
    shl rdx, 32
    or rax, rdx
    mov r11, rax                    ; r
    rdtsc
    shl rdx, 32
    or rax, rdx                     ; t2
    cmp r10, rbx
    jae .t1ok
    inc r13
.t1ok:
    cmp rax, r10
    jae .t2ok
    inc r13
.t2ok:
    mov rbx, rax
    cmp r11, rbp
    jae .rok
    inc r15
.rok:
    mov rbp, r11
    call tsc_to_ref                 ; f(t2)
    cmp r11, rax
    jbe .upper_ok
    inc r12
.upper_ok:
    mov rax, r10
    call tsc_to_ref                 ; f(t1)
    cmp rax, r11
    jbe .lower_ok
    inc r12
.lower_ok:
    jne .not_equal
    inc r14
.not_equal:
    test r9d, 63
    jnz .nohalt
    hlt                             ; woken by the timer; the clock skips ahead
.nohalt:
    dec r9d
    jnz .loop
    cli
    mov ecx, MSR_STIMER0_CFG
    xor eax, eax
    call wrmsr64
    PRINT "violations="
    HEX r12
    PRINT " tsc_decreases="
    HEX r13
    PRINT " ref_decreases="
    HEX r15
    PRINT " exact="
    HEX r14
    PRINT " ticks="
    HEX qword [irq_count + (0x70 - 0x40) * 8]
    PRINT " final_ref="
    HEX rbp
    NL
    EXIT 0

%include "include/tail.inc"
