; Hypervisor microkernel: SynIC message delivery with a busy slot, the message-pending flag and EOM, masked
; SINTs, event flags, and a disabled SynIC. The test registers root ports: a message to connection 2 makes the
; root post N messages (N = first payload byte) to SINT2 of this VP; a signal on connection 6 makes the root
; set event flag 9 of SINT2; message connection 3 returns the status of one root post (SynIC state check).
; Spec: TLFS inter-partition-communication.md ("SIM Page", "Message Buffers", "EOM Register", "SIEF Page",
; "SINTx Registers", "SCONTROL").
%include "include/boot.inc"

kmain32:
    jmp enter_long

%include "include/long.inc"
%include "hv.inc"

SLOT2 equ simp + 2 * 256
SINT_VEC equ 0x50

%macro SHOW 1
    PRINT %1
    PRINT "="
    HEX rax
    PRINT " "
%endmacro

; show_slot: prints the SINT2 slot's message type, the pending flag and the SINT interrupt count
show_slot:
    push rax
    mov eax, [SLOT2]
    SHOW "type"
    movzx eax, byte [SLOT2 + 5]
    and eax, 1
    SHOW "pending"
    mov rax, [irq_count + (SINT_VEC - 0x40) * 8]
    SHOW "irqs"
    NL
    pop rax
    ret

; post_root: asks the root for al messages on SINT2 (HvPostMessage to connection 2)
post_root:
    mov dword [inbuf], 2
    mov dword [inbuf + 8], 1
    mov dword [inbuf + 12], 1
    mov [inbuf + 16], al
    HC 0x5c, inbuf, 0
    ret

kmain64:
    call install_irq_stubs
    call hv_enable
    mov ecx, MSR_SIMP
    mov rax, simp + 1
    call wrmsr64
    mov ecx, MSR_SIEFP
    mov rax, siefp + 1
    call wrmsr64
    mov ecx, MSR_SINT0 + 2
    mov eax, SINT_VEC
    call wrmsr64
    mov ecx, MSR_SCONTROL
    mov eax, 1
    call wrmsr64
    sti

    PRINT "s1: "
    mov al, 3
    call post_root
    SHOW "status"
    call show_slot                  ; first message in, two queued: pending set, one interrupt
    PRINT "s2: "
    mov ecx, MSR_EOM
    xor eax, eax
    call wrmsr64                    ; EOM while the slot is still busy: nothing moves
    call show_slot
    PRINT "s3: "
    mov dword [SLOT2], 0            ; consume without EOM: the queued message waits
    nop
    nop
    call show_slot
    PRINT "s4: "
    call wrmsr64                    ; EOM: the second message, still pending
    call show_slot
    PRINT "s5: "
    mov dword [SLOT2], 0
    call wrmsr64
    call show_slot                  ; the third, no longer pending
    PRINT "s6: "
    mov eax, [SLOT2 + 16]
    SHOW "payload"
    mov dword [SLOT2], 0
    mov ecx, MSR_EOM
    call wrmsr64
    call show_slot                  ; nothing left

    ; masked SINT: the message lands, no interrupt
    PRINT "s7: "
    mov ecx, MSR_SINT0 + 2
    mov eax, SINT_VEC | 0x10000
    call wrmsr64
    mov al, 1
    call post_root
    call show_slot
    mov dword [SLOT2], 0
    mov ecx, MSR_SINT0 + 2
    mov eax, SINT_VEC
    call wrmsr64

    ; event flags
    PRINT "e1: "
    HC 0x5d | (1 << 16), 6, 0
    SHOW "status"
    movzx eax, byte [siefp + 2 * 256 + 1]
    SHOW "flags"
    mov rax, [irq_count + (SINT_VEC - 0x40) * 8]
    SHOW "irqs"
    NL
    PRINT "e2: "
    HC 0x5d | (1 << 16), 6, 0       ; flag already set: no new interrupt
    mov rax, [irq_count + (SINT_VEC - 0x40) * 8]
    SHOW "irqs"
    NL
    PRINT "e3: "
    mov byte [siefp + 2 * 256 + 1], 0
    HC 0x5d | (1 << 16), 6, 0
    mov rax, [irq_count + (SINT_VEC - 0x40) * 8]
    SHOW "irqs"
    NL

    ; SynIC disabled: the root's post fails with INVALID_SYNIC_STATE
    PRINT "d1: "
    mov ecx, MSR_SCONTROL
    xor eax, eax
    call wrmsr64
    mov dword [inbuf], 3
    mov dword [inbuf + 8], 1
    mov dword [inbuf + 12], 0
    HC 0x5c, inbuf, 0
    SHOW "status"
    NL
    ; SIMP/SIEFP outside RAM: #GP
    PRINT "d2: "
    TRY
    mov ecx, MSR_SIMP
    mov rax, 0x7f00000001
    call wrmsr64
    ENDTRY
    PRINT "d3: "
    TRY
    mov ecx, MSR_SINT0 + 2
    mov eax, 5                      ; unmasked vector below 16
    call wrmsr64
    ENDTRY
    EXIT 0

%include "include/tail.inc"
