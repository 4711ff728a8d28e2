; Hypervisor microkernel: the four synthetic timers in direct mode, one-shot (auto-enable, absolute count)
; and periodic, and in message mode (HVMSG_TIMER_EXPIRED in a SINT slot), on a deterministic clock. Each
; interrupt handler records the reference counter at entry; the test checks every expiry against its due
; time: never early, at most a few 100 ns units late.
; Spec: TLFS timers.md ("Synthetic Timers", configuration and count registers, "Direct Synthetic Timers",
; "Synthetic Timer Expiration Message"), datatypes/hv_timer_message_payload.md.
%include "include/boot.inc"

kmain32:
    jmp enter_long

%include "include/long.inc"
%include "hv.inc"

ONESHOT_DELAY equ 500               ; 50 us
PERIOD       equ 1000               ; 100 us
TICKS        equ 4
MSG_VEC      equ 0x58

; wait_count: edi = vector, esi = count to reach (sleeps with HLT, STI shadow closes the race)
wait_count:
    push rax
.again:
    cli
    mov rax, [irq_count + rdi * 8 - 0x40 * 8]
    cmp rax, rsi
    jae .done
    sti
    hlt
    jmp .again
.done:
    sti
    pop rax
    ret

kmain64:
    call install_irq_stubs
%ifdef USE_APIC
    call apic_enable
%endif
    call hv_enable
    ; ---- one-shot, direct: CONFIG = auto-enable | direct | vector, then COUNT = now + delay ----
    xor ebx, ebx
.oneshot:
    lea ecx, [MSR_STIMER0_CFG + rbx * 2]
    lea eax, [rbx + 0x60]
    shl eax, 4
    or eax, (1 << 12) | (1 << 3)
    call wrmsr64
    mov ecx, MSR_TIME_REF
    call rdmsr64
    lea rax, [rax + ONESHOT_DELAY]
    mov r12, rax
    lea ecx, [MSR_STIMER0_CNT + rbx * 2]
    call wrmsr64
    lea edi, [rbx + 0x60]
    mov esi, 1
    call wait_count
    PRINT "oneshot timer="
    HEX rbx
    PRINT " due="
    HEX r12
    PRINT " at="
    mov rax, [irq_ref + rbx * 8 + (0x60 - 0x40) * 8]
    HEX rax
    PRINT " cfg="
    lea ecx, [MSR_STIMER0_CFG + rbx * 2]
    call rdmsr64
    HEX rax
    NL
    inc ebx
    cmp ebx, 4
    jne .oneshot

    ; ---- periodic, direct ----
    xor ebx, ebx
.periodic:
    lea ecx, [MSR_STIMER0_CNT + rbx * 2]
    mov eax, PERIOD
    call wrmsr64
    mov ecx, MSR_TIME_REF
    call rdmsr64
    mov r12, rax
    lea ecx, [MSR_STIMER0_CFG + rbx * 2]
    lea eax, [rbx + 0x68]
    shl eax, 4
    or eax, (1 << 12) | 3
    call wrmsr64
    PRINT "periodic timer="
    HEX rbx
    PRINT " start="
    HEX r12
    mov r13d, 1
.tick:
    lea edi, [rbx + 0x68]
    mov esi, r13d
    call wait_count
    PRINT " at="
    mov rax, [irq_ref + rbx * 8 + (0x68 - 0x40) * 8]
    HEX rax
    inc r13d
    cmp r13d, TICKS + 1
    jne .tick
    lea ecx, [MSR_STIMER0_CFG + rbx * 2]
    xor eax, eax
    call wrmsr64
    NL
    inc ebx
    cmp ebx, 4
    jne .periodic

    ; ---- message mode: SINT3, one-shot on timer 1 and periodic on timer 2 ----
    mov ecx, MSR_SIMP
    mov rax, simp + 1
    call wrmsr64
    mov ecx, MSR_SINT0 + 3
    mov eax, MSG_VEC
    call wrmsr64
    mov ecx, MSR_SCONTROL
    mov eax, 1
    call wrmsr64
    mov ecx, MSR_TIME_REF
    call rdmsr64
    lea r12, [rax + ONESHOT_DELAY]
    mov ecx, MSR_STIMER0_CNT + 2
    mov rax, r12
    call wrmsr64
    mov ecx, MSR_STIMER0_CFG + 2
    mov eax, 1 | (3 << 16)
    call wrmsr64
    mov edi, MSG_VEC
    mov esi, 1
    call wait_count
    PRINT "message due="
    HEX r12
    PRINT " at="
    mov rax, [irq_ref + (MSG_VEC - 0x40) * 8]
    HEX rax
    PRINT " type="
    mov eax, [simp + 3 * 256]
    HEX rax
    PRINT " size="
    movzx eax, byte [simp + 3 * 256 + 4]
    HEX rax
    PRINT " index="
    mov eax, [simp + 3 * 256 + 16]
    HEX rax
    PRINT " expiration="
    mov rax, [simp + 3 * 256 + 24]
    HEX rax
    PRINT " delivery="
    mov rax, [simp + 3 * 256 + 32]
    HEX rax
    NL
    mov dword [simp + 3 * 256], 0
    ; periodic message timer: consume each message and EOM only when pending
    mov ecx, MSR_STIMER0_CNT + 4
    mov eax, PERIOD
    call wrmsr64
    mov ecx, MSR_TIME_REF
    call rdmsr64
    mov r12, rax
    mov ecx, MSR_STIMER0_CFG + 4
    mov eax, 3 | (3 << 16)
    call wrmsr64
    PRINT "msgperiodic start="
    HEX r12
    mov r13d, 2
.mtick:
    mov edi, MSG_VEC
    mov esi, r13d
    call wait_count
    PRINT " at="
    mov rax, [irq_ref + (MSG_VEC - 0x40) * 8]
    HEX rax
    PRINT " exp="
    mov rax, [simp + 3 * 256 + 24]
    HEX rax
    mov al, [simp + 3 * 256 + 5]
    mov dword [simp + 3 * 256], 0
    test al, 1
    jz .noeom
    mov ecx, MSR_EOM
    call wrmsr64
.noeom:
    inc r13d
    cmp r13d, TICKS + 2
    jne .mtick
    mov ecx, MSR_STIMER0_CFG + 4
    xor eax, eax
    call wrmsr64
    NL
    EXIT 0

%include "include/tail.inc"
