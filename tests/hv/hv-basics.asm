; Hypervisor microkernel: discovery (CPUID 0x40000000-0x40000005, CPUID.1:ECX[31]), the guest OS identity and
; hypercall page protocol, read-only/unknown synthetic MSRs (#GP), the legal hypercall environment (#UD before
; the page is enabled and from ring 3), every common hypercall input error with its documented status, the
; implemented calls (post message, signal event, IPI, flushes, long spin wait), and a guest crash report
; through the crash MSRs with a message. Prints key=value lines that tests/hv/microkernels.test.ts checks.
; Spec: TLFS feature-discovery.md, hypercall-interface.md ("Hypercall Inputs", "Common Hypercall Status
; Codes", "Alignment Requirements", "Legal Hypercall Environments"), hypercalls/*.md, the guest crash MSRs.
%include "include/boot.inc"

kmain32:
    jmp enter_long

%include "include/long.inc"
%include "hv.inc"

%macro SHOW 1
    PRINT %1
    PRINT "="
    HEX rax
    NL
%endmacro

kmain64:
    call install_irq_stubs
    mov eax, 1
    cpuid
    shr ecx, 31
    mov eax, ecx
    SHOW "cpuid1_hv"
    mov eax, 0x40000000
    cpuid
    SHOW "max_leaf"
    mov eax, ebx
    SHOW "vendor_ebx"
    mov eax, ecx
    SHOW "vendor_ecx"
    mov eax, edx
    SHOW "vendor_edx"
    mov eax, 0x40000001
    cpuid
    SHOW "interface"
    mov eax, 0x40000003
    cpuid
    push rdx
    push rbx
    SHOW "priv_low"
    pop rax
    SHOW "priv_high"
    pop rax
    SHOW "features"
    mov eax, 0x40000004
    cpuid
    SHOW "hints"
    mov eax, 0x40000005
    cpuid
    SHOW "max_vps"
    mov eax, 0x40000009
    cpuid
    or eax, ebx
    or eax, ecx
    or eax, edx
    SHOW "leaf9"

    ; hypercall before the page exists: #UD
    PRINT "ud_no_page: "
    TRY
    mov ecx, 0x5d | (1 << 16)
    vmcall
    ENDTRY

    ; enabling the page before the OS identity: enable stays 0
    mov ecx, MSR_HYPERCALL
    mov rax, hcpage + 1
    call wrmsr64
    call rdmsr64
    and eax, 1
    SHOW "hypercall_no_osid"
    call hv_enable
    mov ecx, MSR_HYPERCALL
    call rdmsr64
    sub rax, hcpage
    SHOW "hypercall_enabled"
    mov eax, [hcpage]
    SHOW "hcpage_code"
    mov ecx, MSR_VP_INDEX
    call rdmsr64
    SHOW "vp_index"
    mov ecx, MSR_TSC_FREQ
    call rdmsr64
    SHOW "tsc_hz"
    mov ecx, MSR_APIC_FREQ
    call rdmsr64
    SHOW "apic_hz"
    mov ecx, MSR_CRASH_CTL
    call rdmsr64
    SHOW "crash_ctl"
    PRINT "wr_vp_index: "
    TRY
    mov ecx, MSR_VP_INDEX
    xor eax, eax
    xor edx, edx
    wrmsr
    ENDTRY
    PRINT "wr_time_ref: "
    TRY
    mov ecx, MSR_TIME_REF
    xor eax, eax
    xor edx, edx
    wrmsr
    ENDTRY
    PRINT "rd_unknown: "
    TRY
    mov ecx, 0x40000050
    rdmsr
    ENDTRY
    PRINT "rd_guest_idle: "
    TRY
    mov ecx, 0x400000f0
    rdmsr
    ENDTRY
    PRINT "rd_vp_runtime: "
    TRY
    mov ecx, MSR_VP_RUNTIME
    rdmsr
    ENDTRY
    PRINT "wr_hypercall_outside_ram: "
    TRY
    mov ecx, MSR_HYPERCALL
    mov rax, 0x7f00000001
    call wrmsr64
    ENDTRY

    ; ---- common status codes ----
    HC 0x0001, 0, 0
    SHOW "st_unknown_code"
    HC 0x8001, inbuf, inbuf
    SHOW "st_ext_code"
    HC 0x5d | (1 << 16) | (1 << 27), 1, 0
    SHOW "st_reserved_27"
    HC 0x5d | (1 << 16) | (1 << 31), 1, 0
    SHOW "st_reserved_31"
    mov rcx, 0x5d | (1 << 16) | (1 << 44)
    mov rdx, 1
    call hcpage
    SHOW "st_reserved_44"
    mov rcx, 0x5d | (1 << 16) | (1 << 60)
    call hcpage
    SHOW "st_reserved_60"
    mov rcx, 0x5d | (1 << 16) | (1 << 32)
    call hcpage
    SHOW "st_rep_on_simple"
    mov rcx, 0x5d | (1 << 16) | (1 << 48)
    call hcpage
    SHOW "st_start_on_simple"
    mov qword [inbuf + 8], 1         ; flush flags: all processors
    HC 0x0003, inbuf, 0
    SHOW "st_rep_zero"
    mov rcx, 0x0003 | (2 << 32) | (2 << 48)
    call hcpage
    SHOW "st_start_ge_count"
    HC 0x5d | (1 << 16) | (1 << 17), 1, 0
    SHOW "st_varhdr"
    HC 0x5c | (1 << 16), inbuf, 0
    SHOW "st_fast_postmsg"
    HC 0x5c, inbuf + 4, 0
    SHOW "st_align"
    HC 0x5c, inbuf + 4096 - 8, 0
    SHOW "st_cross_page"
    mov rdx, 0x7f00000000
    mov rcx, 0x5c
    call hcpage
    SHOW "st_outside_ram"
    mov rcx, 0x0003 | (600 << 32)
    mov rdx, inbuf
    call hcpage
    SHOW "st_rep_list_cross"
    PRINT "ud_xmm_not_offered: "
    TRY
    HC 0x0002 | (1 << 16), 0, 0
    ENDTRY

    ; ---- HvPostMessage ----
    mov dword [inbuf], 1             ; connection 1 (registered by the test)
    mov dword [inbuf + 8], 0         ; type 0
    mov dword [inbuf + 12], 4
    HC 0x5c, inbuf, 0
    SHOW "st_post_type0"
    mov dword [inbuf + 8], 0x80000001
    HC 0x5c, inbuf, 0
    SHOW "st_post_type_msb"
    mov dword [inbuf + 8], 1
    mov dword [inbuf + 12], 241
    HC 0x5c, inbuf, 0
    SHOW "st_post_size"
    mov dword [inbuf + 12], 4
    mov dword [inbuf + 16], 0x64636261
    HC 0x5c, inbuf, 0
    SHOW "st_post_ok"
    mov dword [inbuf], 77
    HC 0x5c, inbuf, 0
    SHOW "st_post_unknown_conn"
    mov dword [inbuf], 0x01000001
    HC 0x5c, inbuf, 0
    SHOW "st_post_conn_reserved"
    ; ---- HvSignalEvent (fast) ----
    HC 0x5d | (1 << 16), 5, 0
    SHOW "st_signal_ok"
    mov rdx, 5 | (1 << 32)
    mov rcx, 0x5d | (1 << 16)
    call hcpage
    SHOW "st_signal_flag"
    HC 0x5d | (1 << 16), 6, 0
    SHOW "st_signal_unknown"
    ; ---- IPIs, flushes, long spin wait ----
    HC 0x0b | (1 << 16), 0x0f, 1
    SHOW "st_ipi_vector"
    HC 0x0b | (1 << 16), 0x55, 1
    SHOW "st_ipi_ok"
    sti
    nop
    cli
    mov rax, [irq_count + (0x55 - 0x40) * 8]
    SHOW "ipi_taken"
    mov qword [inbuf], 0
    mov qword [inbuf + 8], 8
    mov qword [inbuf + 16], 1
    HC 0x0002, inbuf, 0
    SHOW "st_flush_flags"
    mov qword [inbuf + 8], 0
    HC 0x0002, inbuf, 0
    SHOW "st_flush_ok"
    mov rcx, 0x0003 | (3 << 32)
    mov rdx, inbuf
    call hcpage
    SHOW "st_flush_list"
    HC 0x0008 | (1 << 16), 100, 0
    SHOW "st_spin_wait"

    ; ---- ring 3 may not call ----
    PRINT "ud_ring3: "
    mov rdi, user_hypercall
    mov rsi, kstack_top - 1024
    mov edx, 2
    call enter_user
    NL

    ; ---- guest crash with a message ----
    mov rdi, inbuf
    mov rsi, crash_text
    mov ecx, crash_len
    rep movsb
    mov ecx, MSR_CRASH_P0
    mov rax, 0x1234
    call wrmsr64
    inc ecx
    mov rax, LINUX_OS_ID
    call wrmsr64
    inc ecx
    mov rax, 0xffffffff81000000
    call wrmsr64
    inc ecx
    mov rax, inbuf
    call wrmsr64
    inc ecx
    mov rax, crash_len
    call wrmsr64
    mov ecx, MSR_CRASH_CTL
    mov rax, 0xc000000000000000
    call wrmsr64
    PRINTLN "done"
    EXIT 0

user_hypercall:
    mov ecx, 0x5d | (1 << 16)
    vmcall
    UPRINT "no-ud"
    URETURN

crash_text: db "Kernel panic - not syncing: sysrq triggered crash", 10
crash_len equ $ - crash_text

%include "include/tail.inc"
