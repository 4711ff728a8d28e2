; Test microkernel for a guest with more than 4 GiB of RAM (run with 5 GiB: 3 GiB below the PCI hole,
; 2 GiB from 4 GiB up, in QEMU's PC layout and Viridian's alike): pages just below and above 2 GiB, the
; top of RAM below the hole, 4 GiB, 5 GiB (where Viridian's RAM buffer passes 4 GiB) and the top of RAM
; are reached through 2 MiB pages and through 4 KiB pages whose page tables themselves lie above 2 GiB,
; 4 GiB and near the top of RAM. Each page is written and read back through two mappings and the 2 MiB
; alias; the accessed and dirty bits are printed where the SDM says they change; quadword stores straddle
; the 2 GiB and 5 GiB boundaries; string instructions fill, copy and compare across them; code placed
; above 5 GiB runs, is rewritten and runs again.
; Spec: Intel SDM Vol. 3A 4.5 (4-level paging, 2 MiB and 4 KiB pages), 4.8 (A set in every entry used,
; D only in the entry that maps the page, on a write), 4.10.4.1 (MOV CR3 invalidation), 11.6 (self-
; modifying code); Multiboot 0.6.96 3.3 (mmap_length/mmap_addr entries: size, base, length, type).
%include "include/boot.inc"

kmain32:
    jmp enter_long

%include "include/long.inc"

NPAGES   equ 7
WIN      equ 0x80000000             ; pdpt[2]: one 2 MiB page per test page's region
VA_A     equ 0xc0000000             ; pdpt[3] -> PD_high[0] -> PT_A: 4 KiB pages
VA_B     equ 0xc0200000             ; PD_high[1] -> PT_B: the same pages again
PT_A_PHYS equ 0x80001000            ; just above 2 GiB
PT_B_PHYS equ 0x140001000           ; just above 5 GiB
NEEDED_TOP equ 0x180000000          ; 5 GiB of RAM: 3 GiB below the hole, 2 GiB from 4 GiB

%macro MOVQ 2                       ; 64-bit immediate (no sign-extended imm32 for addresses >= 2 GiB)
    mov %1, %2
%endmacro

kmain64:
    ; ---- the top of RAM: the highest end of an available region of the Multiboot memory map
    mov ebx, [mb_info]
    mov ecx, [rbx + 44]             ; mmap_length
    mov esi, [rbx + 48]             ; mmap_addr
    lea rdi, [rsi + rcx]
    xor r8d, r8d
.mm:
    cmp rsi, rdi
    jae .mm_done
    cmp dword [rsi + 20], 1
    jne .mm_next
    mov rax, [rsi + 4]
    add rax, [rsi + 12]
    cmp rax, r8
    jbe .mm_next
    mov r8, rax
.mm_next:
    mov eax, [rsi]
    lea rsi, [rsi + rax + 4]
    jmp .mm
.mm_done:
    PRINT "top of ram: "
    HEX r8
    NL
    MOVQ rax, NEEDED_TOP
    cmp r8, rax
    jae .enough
    PRINTLN "needs 5 GiB of RAM"
    EXIT 3
.enough:
    lea rax, [r8 - 0x1000]
    mov [pages + 6 * 8], rax

    ; ---- the window: pdpt[2] -> pdw; entry i maps the 2 MiB region holding page i
    mov rdi, pdw
    mov ecx, 512
    xor eax, eax
    rep stosq
    xor ecx, ecx
.win:
    mov rax, [pages + rcx * 8]
    and rax, -0x200000
    or rax, 0x83                    ; present, writable, 2 MiB
    mov [pdw + rcx * 8], rax
    inc ecx
    cmp ecx, NPAGES
    jne .win
    mov qword [pdpt + 2 * 8], pdw + 3

    ; ---- page tables above 2 GiB, 5 GiB and near the top of RAM, written through the window
    mov ecx, 1
    call win_addr
    add rax, 0x1000
    mov [pt_a_win], rax             ; PT_A at 0x80001000
    mov ecx, 5
    call win_addr
    add rax, 0x1000
    mov [pt_b_win], rax             ; PT_B at 0x140001000
    mov ecx, 6
    call win_addr
    sub rax, 0x1000
    mov [pd_high_win], rax          ; PD_high at top - 0x2000
    mov rdi, [pt_a_win]
    call zero_page
    mov rdi, [pt_b_win]
    call zero_page
    mov rdi, [pd_high_win]
    call zero_page
    mov rsi, [pt_a_win]
    mov rdi, [pt_b_win]
    xor ecx, ecx
.pte:
    mov rax, [pages + rcx * 8]
    or rax, 3                       ; present, writable
    mov [rsi + rcx * 8], rax
    mov [rdi + rcx * 8], rax
    inc ecx
    cmp ecx, NPAGES
    jne .pte
    mov rdi, [pd_high_win]
    MOVQ rax, PT_A_PHYS | 3
    mov [rdi], rax
    MOVQ rax, PT_B_PHYS | 3
    mov [rdi + 8], rax
    lea rax, [r8 - 0x2000 + 3]
    mov [pdpt + 3 * 8], rax
    mov rax, cr3
    mov cr3, rax

    ; ---- each page: read, write, read back through the other mappings; A/D bits of its PTEs
    xor ebx, ebx
.page:
    PRINT "page "
    HEX qword [pages + rbx * 8]
    MOVQ r12, VA_A
    MOVQ r13, VA_B
    mov rax, rbx
    shl rax, 12
    add r12, rax
    add r13, rax
    mov ecx, ebx
    call win_addr
    mov r14, rax
    mov rax, [r12]                  ; a read through PT_A
    PRINT ": read a/d="
    mov rsi, [pt_a_win]
    call print_ad
    MOVQ r15, 0x5a5a5a5a00000000
    xor r15, [pages + rbx * 8]
    mov [r12], r15
    not r15
    mov [r12 + 0xff8], r15
    not r15
    PRINT " write a/d="
    call print_ad
    PRINT " alias:"
    cmp [r14], r15
    jne .bad
    cmp [r13], r15
    jne .bad
    not r15
    cmp [r14 + 0xff8], r15
    jne .bad
    mov [r13 + 8], r15              ; a write through PT_B, read through PT_A
    cmp [r12 + 8], r15
    jne .bad
    PRINT " ok"
    jmp .next
.bad:
    PRINT " MISMATCH"
.next:
    PRINT " b a/d="
    mov rsi, [pt_b_win]
    call print_ad
    NL
    inc ebx
    cmp ebx, NPAGES
    jne .page

    ; ---- quadword stores straddling 2 GiB and 5 GiB (two 2 MiB pages of the window)
    PRINT "straddle 2 GiB:"
    xor ecx, ecx
    call straddle
    PRINT "straddle 5 GiB:"
    mov ecx, 4
    call straddle

    ; ---- string instructions: fill the page above 5 GiB, copy it below 2 GiB, compare
    MOVQ rdi, VA_A + 5 * 0x1000
    MOVQ rax, 0xa5a5a5a5a5a5a5a5
    mov ecx, 512
    cld
    rep stosq
    MOVQ rsi, VA_A + 5 * 0x1000
    MOVQ rdi, VA_A + 0 * 0x1000
    mov ecx, 512
    rep movsq
    MOVQ rsi, VA_A + 5 * 0x1000
    MOVQ rdi, VA_A + 0 * 0x1000
    mov ecx, 512
    repe cmpsq
    PRINT "rep stosq/movsq/cmpsq across 5 GiB and 2 GiB: left="
    HEX rcx
    PRINT " last="
    HEX qword [rdi - 8]
    NL
    MOVQ rsi, VA_A + 6 * 0x1000
    MOVQ rdi, VA_A + 1 * 0x1000 + 0x10
    mov ecx, 13
    rep movsb                       ; bytes from the top page to the page above 2 GiB
    PRINT "rep movsb from the top of ram: "
    HEX qword [rdi - 8]
    NL

    ; ---- code above 5 GiB and at the top of RAM: run, rewrite, run again
    PRINT "code at 5 GiB:"
    MOVQ rdi, VA_A + 5 * 0x1000 + 0x800
    call code_twice
    PRINT "code at the top of ram:"
    MOVQ rdi, VA_A + 6 * 0x1000 + 0x800
    call code_twice

    ; ---- A/D bits of the non-leaf entries above the top and of the window's 2 MiB pages
    PRINT "pd_high a/d: "
    mov rsi, [pd_high_win]
    mov rax, [rsi]
    and eax, 0x60
    HEX rax
    PRINT " "
    mov rax, [rsi + 8]
    and eax, 0x60
    HEX rax
    NL
    PRINT "window a/d:"
    xor ecx, ecx
.wad:
    PRINT " "
    mov rax, [pdw + rcx * 8]
    and eax, 0x60
    HEX rax
    inc ecx
    cmp ecx, NPAGES
    jne .wad
    NL
    PRINTLN "done"
    EXIT 0

; rax = window address of page index ecx
win_addr:
    push rdx
    mov rax, [pages + rcx * 8]
    and eax, 0x1fffff
    mov edx, ecx
    shl rdx, 21
    add rax, rdx
    MOVQ rdx, WIN
    add rax, rdx
    pop rdx
    ret

; zeroes the 4 KiB page at rdi
zero_page:
    push rcx
    push rax
    mov ecx, 512
    xor eax, eax
    rep stosq
    pop rax
    pop rcx
    ret

; prints the A/D bits (as 0x0, 0x20, 0x60) of entry rbx of the page table mapped at rsi
print_ad:
    push rax
    mov rax, [rsi + rbx * 8]
    and eax, 0x60
    HEX rax
    pop rax
    ret

; a quadword store at the last 4 bytes of page index ecx's 2 MiB region through the window, which runs on
; into the next window entry (page index ecx + 1); prints both halves as read through PT_A
straddle:
    call win_addr
    add rax, 0xffc
    MOVQ rdx, 0x1122334455667788
    mov [rax], rdx
    MOVQ rsi, VA_A
    shl ecx, 12
    add rsi, rcx
    PRINT " "
    mov eax, [rsi + 0xffc]
    HEX rax
    PRINT " "
    mov eax, [rsi + 0x1000]
    HEX rax
    NL
    ret

; writes "mov eax, imm32 ; ret" at rdi, calls it, changes the immediate, calls it again; prints both
code_twice:
    mov byte [rdi], 0xb8
    mov dword [rdi + 1], 0x1234
    mov byte [rdi + 5], 0xc3
    call rdi
    PRINT " "
    HEX rax
    mov dword [rdi + 1], 0x5678
    call rdi
    PRINT " "
    HEX rax
    NL
    ret

align 8
pages:
    dq 0x7ffff000                   ; below 2 GiB
    dq 0x80000000                   ; above 2 GiB
    dq 0xbffff000                   ; the top of RAM below the PCI hole
    dq 0x100000000                  ; above 4 GiB
    dq 0x13ffff000                  ; below 5 GiB (Viridian: RAM offset 4 GiB - 4 KiB)
    dq 0x140000000                  ; above 5 GiB (Viridian: RAM offset 4 GiB)
    dq 0                            ; the top page of RAM (from the memory map)
pt_a_win:    dq 0
pt_b_win:    dq 0
pd_high_win: dq 0

section .bss
alignb 4096
pdw: resb 4096

%include "include/tail.inc"
