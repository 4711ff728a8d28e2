; Chipset cross-check microkernel: programs the PC devices into a known state, records register values that
; do not depend on timing, then prints them; tests/chipset/qemu-registers.test.ts runs it on viridian's
; chipset and under QEMU 7.2 and compares. Values are recorded first and printed last, because the UART
; probes put COM1 (the console) into loopback.
; Departures from QEMU that are excluded on purpose (the datasheets decide): the 8254 read-back NULL COUNT
; bit (QEMU never sets it), absent keyboard/mouse (QEMU has both), PM1_CNT.SCI_EN (QEMU sets it on the
; SMI_CMD handshake), GPE0 (QEMU's is elsewhere), the RTC periodic/update flags in register C (QEMU keeps
; SeaBIOS's settings and timing), changing the RTC data mode without rewriting every time byte (undefined
; on the chip), and the 8254 mode 2 OUT level (QEMU models it as a positive pulse).
; Spec: 8259A, 8254, MC146818A, PC16550D, 82093AA and ACPI 6.5 4.8.3 (see src/chipset/*.ts headers).
%include "include/boot.inc"

%assign nres 0
%macro REC 0
    mov [results + nres * 4], eax
%assign nres nres + 1
%endmacro

%macro OUTB 2
    mov dx, %1
    mov al, %2
    out dx, al
%endmacro

%macro INB 1
    mov dx, %1
    xor eax, eax
    in al, dx
%endmacro

%macro CMOS_W 2
    OUTB 0x70, %1
    OUTB 0x71, %2
%endmacro

%macro CMOS_R 1
    OUTB 0x70, %1
    INB 0x71
%endmacro

%macro IOAPIC_W 2
    mov dword [0xfec00000], %1
    mov dword [0xfec00010], %2
%endmacro

%macro IOAPIC_R 1
    mov dword [0xfec00000], %1
    mov eax, [0xfec00010]
%endmacro

kmain32:
    ; --- PIT: stop the firmware's 18.2 Hz tick so the PIC sees no new timer edges (mode 0, long count).
    OUTB 0x43, 0x30
    OUTB 0x40, 0xff
    OUTB 0x40, 0xff
    ; --- 8259A pair: Linux's init sequence, all masked.
    OUTB 0x21, 0xff
    OUTB 0xa1, 0xff
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
    INB 0x21                        ; 00 master IMR
    REC
    OUTB 0x21, 0xfb
    INB 0x21                        ; 01 IMR reads back
    REC
    OUTB 0x20, 0x0b
    INB 0x20                        ; 02 master ISR
    REC
    OUTB 0x4d0, 0xff
    INB 0x4d0                       ; 03 ELCR1: IRQ0-2 stay edge
    REC
    OUTB 0x4d1, 0xff
    INB 0x4d1                       ; 04 ELCR2: IRQ8 and 13 stay edge
    REC
    OUTB 0x4d0, 0x00
    OUTB 0x4d1, 0x00
    ; --- 16550A on COM1, in loopback.
    OUTB 0x3f9, 0x00
    OUTB 0x3fa, 0x00                ; FIFO off (16450 mode)
    OUTB 0x3fc, 0x1a                ; LOOP | OUT2 | RTS
    INB 0x3fe                       ; 05 MSR: CTS and DCD from RTS and OUT2
    and al, 0xf0
    REC
    OUTB 0x3f9, 0x0f
    INB 0x3f9                       ; 06 IER keeps 4 bits
    REC
    OUTB 0x3f9, 0x00
    INB 0x3fa                       ; 07 IIR: none, FIFO off
    REC
    OUTB 0x3fa, 0x01
    INB 0x3fa                       ; 08 IIR: FIFO on (16550A)
    REC
    OUTB 0x3fa, 0x00
    OUTB 0x3f8, 0x41                ; loopback transmit
    INB 0x3fd                       ; 09 LSR: data ready, THRE, TEMT
    REC
    OUTB 0x3f9, 0x05                ; RDA + line status interrupts
    INB 0x3fa                       ; 10 IIR: received data
    REC
    INB 0x3f8                       ; 11 RBR
    REC
    INB 0x3fa                       ; 12 IIR: none
    REC
    OUTB 0x3f8, 0x42
    OUTB 0x3f8, 0x43                ; overrun in 16450 mode
    INB 0x3fa                       ; 13 IIR: line status outranks data
    REC
    INB 0x3fd                       ; 14 LSR with OE
    REC
    INB 0x3fd                       ; 15 LSR: OE cleared by the read
    REC
    INB 0x3f8                       ; 16 RBR keeps the newest byte
    REC
    OUTB 0x3f9, 0x02                ; THRE interrupt on an empty THR
    INB 0x3fa                       ; 17 IIR: THRE
    REC
    INB 0x3fa                       ; 18 IIR: THRE cleared by reading IIR
    REC
    ; PIC poll mode with the UART's IRQ4: raise THRE again, unmask IRQ4, poll (IF is clear).
    OUTB 0x3f9, 0x00
    OUTB 0x3f9, 0x02
    OUTB 0x21, 0xef
    OUTB 0x20, 0x0a
    INB 0x20                        ; 19 master IRR has IR4
    and al, 0x10
    REC
    OUTB 0x20, 0x0c
    INB 0x20                        ; 20 poll word
    REC
    OUTB 0x20, 0x0b
    INB 0x20                        ; 21 ISR after the poll
    REC
    OUTB 0x20, 0x64                 ; specific EOI 4
    INB 0x20                        ; 22 ISR after EOI
    REC
    OUTB 0x21, 0xff
    OUTB 0x3f9, 0x00
    OUTB 0x3ff, 0xa5
    INB 0x3ff                       ; 23 scratch
    REC
    OUTB 0x3fb, 0x83
    INB 0x3f8                       ; 24 divisor latch low (1 from serial_init)
    REC
    OUTB 0x3fb, 0x03
    OUTB 0x3fc, 0x0b                ; back to normal: DTR, RTS, OUT2
    INB 0x3fe                       ; 25 MSR lines from the host (CTS, DSR, DCD)
    and al, 0xf0
    REC
    OUTB 0x3fa, 0xc7
    INB 0x3fa                       ; 26 IIR with FIFO
    REC
    ; --- CMOS RTC: binary 24-hour, set a date with SET, read it back.
    CMOS_W 0x0a, 0x26
    CMOS_R 0x0a                     ; 27 register A (UIP masked)
    and al, 0x7f
    REC
    CMOS_W 0x0b, 0x86               ; SET | binary | 24h
    CMOS_W 0x00, 56
    CMOS_W 0x02, 34
    CMOS_W 0x04, 12
    CMOS_W 0x06, 1
    CMOS_W 0x07, 15
    CMOS_W 0x08, 6
    CMOS_W 0x09, 25
    CMOS_W 0x32, 20
    CMOS_W 0x0b, 0x06
    CMOS_R 0x0b                     ; 28 register B
    REC
    CMOS_R 0x02                     ; 29 minutes
    REC
    CMOS_R 0x04                     ; 30 hours
    REC
    CMOS_R 0x07                     ; 31 day of month
    REC
    CMOS_R 0x08                     ; 32 month
    REC
    CMOS_R 0x09                     ; 33 year
    REC
    CMOS_R 0x0d                     ; 34 register D: VRT
    REC
    CMOS_W 0x0b, 0x84               ; SET, binary, 12-hour
    CMOS_W 0x04, 0x81               ; 1 PM
    CMOS_W 0x0b, 0x04
    CMOS_R 0x04                     ; 35 12-hour PM hour
    REC
    CMOS_W 0x0b, 0x02
    OUTB 0x70, 0xc0                 ; NMI off, index 0x40
    OUTB 0x71, 0x5a
    CMOS_R 0x40                     ; 36 NVRAM byte
    REC
    ; --- 8254: read-back status of a loaded counter, port 0x61 gate bits.
    OUTB 0x43, 0x36                 ; counter 0, lo/hi, mode 3 (QEMU models mode 2 OUT as a pulse)
    OUTB 0x40, 0x00
    OUTB 0x40, 0x10
    OUTB 0x43, 0xe2                 ; read-back status, counter 0
    INB 0x40                        ; 37 status (NULL COUNT masked)
    and al, 0xbf
    REC
    OUTB 0x43, 0xb6                 ; counter 2, lo/hi, mode 3
    INB 0x61
    and al, 0xfc
    or al, 0x01
    out dx, al
    INB 0x61                        ; 38 port 0x61: gate on, speaker off
    and al, 0x03
    REC
    OUTB 0x61, 0x00
    OUTB 0x43, 0xe8                 ; read-back status, counter 2
    INB 0x42                        ; 39 counter 2 status
    and al, 0x3f
    REC
    ; --- i8042: self-test, command byte, interface test, AUX loopback.
    OUTB 0x64, 0xad                 ; keyboard off so no scan codes interleave
    OUTB 0x64, 0xa7
.flush:
    INB 0x64
    test al, 1
    jz .flushed
    INB 0x60
    jmp .flush
.flushed:
    OUTB 0x64, 0xaa
    call kbc_read                   ; 40 self-test
    REC
    OUTB 0x64, 0x60
    OUTB 0x60, 0x34
    OUTB 0x64, 0x20
    call kbc_read                   ; 41 command byte round trip
    REC
    OUTB 0x64, 0xab
    call kbc_read                   ; 42 keyboard interface test
    REC
    OUTB 0x64, 0xd3
    OUTB 0x60, 0x5a
    INB 0x64                        ; 43 status: OBF with AUX data
    and al, 0x21
    REC
    INB 0x60                        ; 44 the AUX loopback byte
    REC
    ; --- ACPI PM (SeaBIOS puts QEMU's PIIX4 PM block at 0x600, the FADT ports here).
    mov dx, 0x602
    mov ax, 0x0100
    out dx, ax
    xor eax, eax
    in ax, dx                       ; 45 PM1_EN: PWRBTN_EN
    REC
    mov dx, 0x602
    xor ax, ax
    out dx, ax
    mov dx, 0x608
    in eax, dx
    mov ebx, eax
    mov ecx, 1000
.spin:
    loop .spin
    in eax, dx
    sub eax, ebx
    and eax, 0xffffff
    setnz al
    movzx eax, al                   ; 46 PM timer advances
    REC
    ; --- I/O APIC.
    IOAPIC_R 1                      ; 47 version register
    REC
    IOAPIC_W 0x1a, 0x0001a035       ; pin 5: masked, level, active low, vector 0x35
    IOAPIC_W 0x1b, 0x01000000
    IOAPIC_R 0x1a                   ; 48 low half
    REC
    IOAPIC_R 0x1b                   ; 49 high half
    REC
    IOAPIC_R 0x3f                   ; 50 beyond the table
    REC
    mov eax, [0xfec00000]           ; 51 IOREGSEL reads back
    REC

    ; --- print everything.
    xor esi, esi
.print:
    cmp esi, nres
    jae .done
    mov eax, esi
    call puthex32
    mov al, ' '
    call putc32
    mov eax, [results + esi * 4]
    call puthex32
    mov al, 10
    call putc32
    inc esi
    jmp .print
.done:
    PRINTLN "done"
    EXIT 0

kbc_read:
    push edx
.wait:
    mov dx, 0x64
    in al, dx
    test al, 1
    jz .wait
    xor eax, eax
    mov dx, 0x60
    in al, dx
    pop edx
    ret

section .bss
results: resd 64
section .text

%include "include/tail.inc"
