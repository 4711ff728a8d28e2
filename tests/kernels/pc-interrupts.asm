; Test microkernel: the PC platform a Multiboot kernel finds (QEMU's PC with -kernel, Viridian's PC machine):
; IA32_APIC_BASE and the local APIC's identification registers, the APIC timer in one-shot and periodic mode
; taking interrupts through the IDT, and an interrupt from the PIT routed through the I/O APIC (ISA IRQ 0 on
; GSI 2, the MADT's interrupt source override) instead of the 8259, which is re-initialised and masked so
; both platforms start alike. Only register values and whether enough interrupts arrived are printed (no
; timing: how many periodic ticks land before the next CLI depends on the host's speed).
; Spec: Intel SDM Vol. 3A 11.4.4 (IA32_APIC_BASE), 11.4.6-11.4.8 (ID, version), 11.5.1 (LVT), 11.5.4 (timer),
; 11.8.5 (EOI), 11.9 (spurious vector); 82093AA I/O APIC datasheet 3.0, 3.2.4 (IOREGSEL/IOWIN, redirection
; table); 8254 PIT (mode 2); 8259A (ICW1-ICW4, OCW1); ACPI 6.5 5.2.12.5 (IRQ0 -> GSI 2).
%include "include/boot.inc"

APIC            equ 0xfee00000
IOAPIC          equ 0xfec00000
VEC_TIMER       equ 0x40
VEC_PIT         equ 0x50
VEC_SPURIOUS    equ 0xff
APIC_TICKS      equ 3
PIT_TICKS       equ 3

; OUTB port, value
%macro OUTB 2
    mov dx, %1
    mov al, %2
    out dx, al
%endmacro

; GATE vector, handler: a 32-bit interrupt gate in the IDT
%macro GATE 2
    mov eax, %2
    mov [idt + %1 * 8], ax
    mov word [idt + %1 * 8 + 2], SEL_CODE32
    mov word [idt + %1 * 8 + 4], 0x8e00
    shr eax, 16
    mov [idt + %1 * 8 + 6], ax
%endmacro

kmain32:
    ; --- the 8259 pair: re-initialised (vectors 0x20/0x28) and fully masked
    OUTB 0x20, 0x11
    OUTB 0x21, 0x20
    OUTB 0x21, 0x04
    OUTB 0x21, 0x01
    OUTB 0xa0, 0x11
    OUTB 0xa1, 0x28
    OUTB 0xa1, 0x02
    OUTB 0xa1, 0x01
    OUTB 0x21, 0xff
    OUTB 0xa1, 0xff
    ; --- IDT: every vector to `unexpected`, then the three this kernel expects
    xor ecx, ecx
.fill:
    mov eax, unexpected
    mov [idt + ecx * 8], ax
    mov word [idt + ecx * 8 + 2], SEL_CODE32
    mov word [idt + ecx * 8 + 4], 0x8e00
    shr eax, 16
    mov [idt + ecx * 8 + 6], ax
    inc ecx
    cmp ecx, 256
    jb .fill
    GATE VEC_TIMER, on_timer
    GATE VEC_PIT, on_pit
    GATE VEC_SPURIOUS, on_spurious
    lidt [idtr]

    ; --- IA32_APIC_BASE
    mov ecx, 0x1b
    rdmsr
    mov esi, eax
    PRINT "apic base="
    mov eax, esi
    and eax, 0xfffff000
    HEX eax
    PRINT " high="
    HEX edx
    PRINT " bsp="
    mov eax, esi
    shr eax, 8
    and eax, 1
    HEX eax
    PRINT " x2apic="
    mov eax, esi
    shr eax, 10
    and eax, 1
    HEX eax
    PRINT " enabled="
    mov eax, esi
    shr eax, 11
    and eax, 1
    HEX eax
    NL

    ; --- identification registers
    PRINT "apic id="
    mov eax, [APIC + 0x20]
    shr eax, 24
    HEX eax
    PRINT " version="
    mov eax, [APIC + 0x30]
    and eax, 0xff
    HEX eax
    PRINT " max lvt="
    mov eax, [APIC + 0x30]
    shr eax, 16
    and eax, 0xff
    HEX eax
    NL

    ; --- software-enable the APIC (spurious vector 0xFF), accept every priority, LINT0/LINT1 masked
    mov dword [APIC + 0xf0], 0x100 | VEC_SPURIOUS
    mov dword [APIC + 0x80], 0
    mov dword [APIC + 0x350], 0x10000
    mov dword [APIC + 0x360], 0x10000
    PRINT "svr="
    HEX [APIC + 0xf0]
    NL

    ; --- APIC timer, one-shot
    mov dword [APIC + 0x3e0], 0xb               ; divide by 1
    mov dword [APIC + 0x320], VEC_TIMER          ; one-shot, unmasked
    mov dword [APIC + 0x380], 100000
.oneshot:
    sti
    hlt
    cli
    cmp dword [apic_ticks], 1
    jb .oneshot
    PRINT "one-shot: interrupts="
    HEX [apic_ticks]
    PRINT " current count="
    HEX [APIC + 0x390]
    PRINT " lvt="
    HEX [APIC + 0x320]
    NL

    ; --- APIC timer, periodic, until APIC_TICKS interrupts
    mov dword [apic_ticks], 0
    mov dword [APIC + 0x320], 0x20000 | VEC_TIMER
    mov dword [APIC + 0x380], 50000
.periodic:
    sti
    hlt
    cli
    cmp dword [apic_ticks], APIC_TICKS
    jb .periodic
    ; A tick that arrives while the handler runs is delivered right after its IRET, before the CLI: how many
    ; arrive depends on the host's speed, so only "at least APIC_TICKS" is printed.
    PRINT "periodic: at least 3 interrupts:"
    xor eax, eax
    cmp dword [apic_ticks], APIC_TICKS
    setae al
    HEX eax
    PRINT " initial count="
    HEX [APIC + 0x380]
    PRINT " lvt="
    HEX [APIC + 0x320]
    NL
    mov dword [APIC + 0x320], 0x30000 | VEC_TIMER ; masked
    mov dword [APIC + 0x380], 0

    ; --- the PIT through the I/O APIC: GSI 2, vector VEC_PIT, fixed, physical, edge, to APIC ID 0
    mov dword [IOAPIC], 0x10 + 2 * 2 + 1
    mov dword [IOAPIC + 0x10], 0
    mov dword [IOAPIC], 0x10 + 2 * 2
    mov dword [IOAPIC + 0x10], VEC_PIT
    PRINT "ioapic pin 2="
    HEX [IOAPIC + 0x10]
    NL
    OUTB 0x43, 0x34                             ; counter 0, LSB then MSB, mode 2
    OUTB 0x40, 0x9c                             ; 11932: about 100 Hz
    OUTB 0x40, 0x2e
.pit:
    sti
    hlt
    cli
    cmp dword [pit_ticks], PIT_TICKS
    jb .pit
    mov dword [IOAPIC], 0x10 + 2 * 2
    mov dword [IOAPIC + 0x10], 0x10000 | VEC_PIT ; masked again
    PRINT "ioapic pit: at least 3 interrupts:"
    xor eax, eax
    cmp dword [pit_ticks], PIT_TICKS
    setae al
    HEX eax
    PRINT " spurious="
    HEX [spurious]
    NL
    PRINTLN "done"
    EXIT 0

on_timer:
    inc dword [apic_ticks]
    mov dword [APIC + 0xb0], 0
    iret

on_pit:
    inc dword [pit_ticks]
    mov dword [APIC + 0xb0], 0
    iret

on_spurious:
    inc dword [spurious]                        ; no EOI for the spurious vector (SDM 11.9)
    iret

unexpected:
    PRINTLN "unexpected interrupt or exception"
    EXIT 2

align 4
apic_ticks: dd 0
pit_ticks:  dd 0
spurious:   dd 0
idtr:
    dw 256 * 8 - 1
    dd idt

section .bss
alignb 8
idt: resb 256 * 8

%include "include/tail.inc"
