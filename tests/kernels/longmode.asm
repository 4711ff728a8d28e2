; Test microkernel: Multiboot entry state, then protected mode -> PAE -> long mode, reporting what it sees.
; Spec: Multiboot 0.6.96 3.2 (EAX magic, EBX info) and 3.3 (info flags, mem_lower/upper, mmap);
; Intel SDM Vol. 3A 9.8.5 (IA-32e initialization), 2.2.1 (EFER).
%include "include/boot.inc"

kmain32:
    PRINT "mb: magic="
    HEX [mb_magic]
    mov ebx, [mb_info]
    PRINT " mem="
    mov eax, [ebx]
    and eax, 1
    HEX eax
    ; the exact figures depend on what the firmware reserves; print only what must hold
    PRINT " lower>=512K:"
    xor eax, eax
    cmp dword [ebx + 4], 512
    setae al
    HEX eax
    PRINT " upper>=64M:"
    cmp dword [ebx + 8], 65536
    setae al
    HEX eax
    NL
    ; the mmap (flag 6) must list available RAM that contains this kernel
    test dword [ebx], 0x40
    jz .nommap
    mov esi, [ebx + 48]             ; mmap_addr
    mov edi, esi
    add edi, [ebx + 44]             ; mmap_length
    xor ecx, ecx                    ; found
.entry:
    cmp esi, edi
    jae .mmdone
    cmp dword [esi + 20], 1         ; type available
    jne .skipent
    cmp dword [esi + 8], 0          ; base_addr_high
    jne .skipent
    mov eax, [esi + 4]              ; base_addr_low
    cmp eax, 0x100000
    ja .skipent
    add eax, [esi + 12]             ; + length_low
    cmp eax, mem_end
    jb .skipent
    mov ecx, 1
.skipent:
    add esi, [esi]
    add esi, 4
    jmp .entry
.mmdone:
    PRINT "mb: mmap covers kernel="
    HEX ecx
    NL
.nommap:
    mov eax, cr0
    PRINT "pm: cr0.pe="
    and eax, 1
    HEX eax
    pushfd
    pop eax
    PRINT " if="
    shr eax, 9
    and eax, 1
    HEX eax
    mov ax, cs
    PRINT " cs="
    HEX eax
    NL
    jmp enter_long

%include "include/long.inc"

kmain64:
    mov ecx, 0xc0000080
    rdmsr
    PRINT "lm: efer="
    HEX rax
    mov rax, cr0
    PRINT " cr0="
    HEX rax
    mov rax, cr4
    PRINT " cr4="
    HEX rax
    NL
    ; a 64-bit computation: sum of squares 1..1000 and a 64-bit multiply-rotate hash
    xor eax, eax
    mov ecx, 1
.sq:
    mov rdx, rcx
    imul rdx, rcx
    add rax, rdx
    inc ecx
    cmp ecx, 1000
    jbe .sq
    PRINT "lm: sumsq="
    HEX rax
    mov rax, 0x123456789abcdef0
    mov rbx, 0x9e3779b97f4a7c15
    mov ecx, 100
.h:
    imul rax, rbx
    rol rax, 13
    xor rax, rcx
    loop .h
    PRINT " hash="
    HEX rax
    NL
    PRINTLN "done"
    EXIT 0

%include "include/tail.inc"
