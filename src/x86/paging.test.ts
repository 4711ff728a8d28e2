// Tests 32-bit paging (4 KiB pages and PSE 4 MiB pages), PAE paging, U/S and CR0.WP checks, global pages
// surviving a CR3 reload, INVLPG, and single-step #DB — all from 32-bit protected mode with a small IDT.
import { test } from "node:test";
import assert from "node:assert/strict";
import { exec } from "./nasm-harness.test.js";

/** 32-bit prelude: IDT for vectors 0..31 recording vector (ebp), error code (esi), CR2 (edi); then HLT. */
const IDT32 = `
  jmp start
%macro STUB 1
stub%1:
  %if (%1 == 8) || (%1 >= 10 && %1 <= 14) || (%1 == 17)
  %else
    push 0
  %endif
  push %1
  jmp isr_common
%endmacro
%assign i 0
%rep 32
  STUB i
%assign i i+1
%endrep
isr_common:
  pop ebp
  pop esi
  mov edi, cr2
  hlt
stubs:
%assign i 0
%rep 32
  dd stub %+ i
%assign i i+1
%endrep
align 8
idt: times 32*8 db 0
idtr: dw 32*8-1
  dd idt
start:
  mov ecx, 0
.l:
  mov eax, [stubs + ecx*4]
  mov [idt + ecx*8], ax
  mov word [idt + ecx*8 + 2], 0x18
  mov word [idt + ecx*8 + 4], 0x8e00
  shr eax, 16
  mov [idt + ecx*8 + 6], ax
  inc ecx
  cmp ecx, 32
  jne .l
  lidt [idtr]
`;

/** Page directory at 0x200000 identity-mapping 0..4 MiB with 4 KiB pages (table at 0x201000), 4..8 MiB with PSE. */
const PAGING32 = `
  mov edi, 0x200000
  mov ecx, 2048
  xor eax, eax
  rep stosd
  mov dword [0x200000], 0x201000 | 7
  mov dword [0x200004], 0x400000 | 0x87
  mov ecx, 0
.pt:
  mov eax, ecx
  shl eax, 12
  or eax, 7
  mov [0x201000 + ecx*4], eax
  inc ecx
  cmp ecx, 1024
  jne .pt
  mov eax, cr4
  or eax, 0x10
  mov cr4, eax
  mov eax, 0x200000
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80010000
  mov cr0, eax
`;

test("32-bit paging: 4 KiB and 4 MiB pages translate; not-present #PF", () => {
  const cpu = exec(
    IDT32 +
      PAGING32 +
      `
    mov dword [0x500000], 0x1234
    mov ebx, [0x500000]
    mov dword [0x201000 + 0x300*4], 0   ; unmap 0x300000
    invlpg [0x300000]
    mov eax, [0x300010]
    hlt`,
    "prot32",
  );
  assert.equal(cpu.getReg(3).lo, 0x1234);
  assert.equal(cpu.getReg(5).lo, 14);
  assert.equal(cpu.getReg(6).lo, 0, "not present, read, supervisor");
  assert.equal(cpu.getReg(7).lo, 0x300010);
});

test("32-bit paging: CR0.WP makes read-only pages fault for supervisor writes", () => {
  const cpu = exec(
    IDT32 +
      PAGING32 +
      `
    mov dword [0x201000 + 0x300*4], 0x300000 | 5   ; present, read-only, user
    invlpg [0x300000]
    mov eax, [0x300000]
    mov dword [0x300000], 1
    hlt`,
    "prot32",
  );
  assert.equal(cpu.getReg(5).lo, 14);
  assert.equal(cpu.getReg(6).lo, 3);
});

test("a stale TLB entry is used until INVLPG; global pages survive MOV CR3", () => {
  const cpu = exec(
    IDT32 +
      PAGING32 +
      `
    mov eax, cr4
    or eax, 0x80                      ; PGE
    mov cr4, eax
    mov dword [0x300000], 0xaaaa
    mov dword [0x301000], 0xbbbb
    mov dword [0x201000 + 0x300*4], 0x300000 | 0x107   ; global
    invlpg [0x300000]
    mov eax, [0x300000]               ; TLB now holds 0x300000 -> 0x300000 (global)
    mov dword [0x201000 + 0x300*4], 0x301000 | 7       ; remap to 0x301000 without invalidating
    mov eax, cr3
    mov cr3, eax                      ; does not flush the global entry
    mov ebx, [0x300000]
    invlpg [0x300000]
    mov ecx, [0x300000]
    hlt`,
    "prot32",
  );
  assert.equal(cpu.getReg(3).lo, 0xaaaa, "global entry kept across CR3 reload");
  assert.equal(cpu.getReg(1).lo, 0xbbbb, "INVLPG dropped it");
});

test("PAE paging with 2 MiB pages", () => {
  const cpu = exec(
    IDT32 +
      `
    mov edi, 0x200000
    mov ecx, 3072
    xor eax, eax
    rep stosd
    mov dword [0x200000], 0x201000 | 1       ; PDPTE 0
    mov dword [0x201000], 0x000000 | 0x87    ; 0..2 MiB
    mov dword [0x201008], 0x200000 | 0x87    ; 2..4 MiB
    mov dword [0x201010], 0x600000 | 0x87    ; 4..6 MiB -> 6..8 MiB
    mov dword [0x600000], 0x55               ; (physical, before paging)
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov eax, 0x200000
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    mov ebx, [0x400000]
    hlt`,
    "prot32",
  );
  assert.equal(cpu.getReg(3).lo, 0x55);
});

test("single-step: RFLAGS.TF traps with #DB after one instruction", () => {
  const cpu = exec(
    IDT32 +
      `
    pushfd
    or dword [esp], 0x100
    popfd
    mov eax, 1
    mov eax, 2
    hlt`,
    "prot32",
  );
  assert.equal(cpu.getReg(5).lo, 1, "#DB");
  assert.equal(cpu.getReg(0).lo, 1, "trap after the first instruction under TF");
});
