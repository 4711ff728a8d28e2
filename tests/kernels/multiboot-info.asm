; Test microkernel: what the boot loader passes in the Multiboot information structure besides memory: the
; command line (flag 2) and the modules (flag 3): count, each module's string, size, page alignment (header
; flag 0 asks for it) and first bytes. Run with a command line and modules (QEMU: -append and -initrd
; "path args,path"; Viridian: --cmdline and --initrd in the same form); without them it prints an empty
; line and zero modules.
; Spec: Multiboot 0.6.96 3.1.2 (flag 0: page-aligned modules), 3.3 (cmdline, mods_count, mods_addr, module
; structure: mod_start, mod_end, string, reserved).
%include "include/boot.inc"

kmain32:
    mov ebx, [mb_info]
    PRINT "flags cmdline:"
    mov eax, [ebx]
    shr eax, 2
    and eax, 1
    HEX eax
    PRINT " mods:"
    mov eax, [ebx]
    shr eax, 3
    and eax, 1
    HEX eax
    NL
    PRINT "cmdline=["
    test dword [ebx], 4
    jz .nocmd
    mov esi, [ebx + 16]
    call puts32
.nocmd:
    PRINTLN "]"
    test dword [ebx], 8
    jz .done
    mov ecx, [ebx + 20]             ; mods_count
    PRINT "mods="
    HEX ecx
    NL
    mov edi, [ebx + 24]             ; mods_addr
.mod:
    test ecx, ecx
    jz .done
    PRINT "mod string=["
    mov esi, [edi + 8]
    test esi, esi
    jz .nostr
    call puts32
.nostr:
    PRINT "] size="
    mov eax, [edi + 4]
    sub eax, [edi]
    HEX eax
    PRINT " page-aligned:"
    mov eax, [edi]
    test eax, 0xfff
    setz al
    movzx eax, al
    HEX eax
    PRINT " above-kernel:"
    mov eax, [edi]
    cmp eax, mem_end
    setae al
    movzx eax, al
    HEX eax
    PRINT " first="
    mov esi, [edi]
    mov eax, [esi]
    HEX eax
    NL
    add edi, 16
    dec ecx
    jmp .mod
.done:
    PRINTLN "done"
    EXIT 0

%include "include/tail.inc"
