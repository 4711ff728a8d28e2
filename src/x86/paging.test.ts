// Tests 32-bit paging (4 KiB pages and PSE 4 MiB pages), PAE paging, U/S and CR0.WP checks, global pages
// surviving a CR3 reload, INVLPG, and single-step #DB from 32-bit protected mode with a small IDT; then
// page walks (walk() directly) whose tables, entries and frames lie above 2^31 and 2^32, both in
// guest-physical space and in the RAM buffer (offsets past 2 GiB and past 4 GiB, in the typed-array
// windows beyond the first four), with the accessed and dirty bits checked in guest RAM afterwards.
// Spec: Intel SDM Vol. 3A 4.3 (32-bit paging, PSE-36), 4.4 (PAE), 4.5 (4-level paging, 1 GiB and 2 MiB
// pages), 4.8 (A set in every paging-structure entry used; D only in the entry that maps the page, on a
// write).
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest-memory.js";
import { ACC_READ, ACC_WRITE, walk, WalkResult, type PagingRegs } from "./paging.js";
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

// ---- walks across 2^31 and 2^32 (walk() directly, on large guest memories) ----

const GiB = 1024 ** 3;
const A = 0x20n;
const D = 0x40n;
const P_RW = 3n;
const PS = 0x80n;

function put(mem: GuestMemory, gpa: number, value: bigint): void {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, value, true);
  mem.write(gpa, b);
}

function get(mem: GuestMemory, gpa: number): bigint {
  const b = new Uint8Array(8);
  mem.read(gpa, b);
  return new DataView(b.buffer).getBigUint64(0, true);
}

function translate(mem: GuestMemory, regs: PagingRegs, va: number, kind: number): number {
  const r = new WalkResult();
  const ok = walk(mem, regs, (va % 2 ** 32) | 0, Math.floor(va / 2 ** 32) | 0, kind, false, r);
  assert.ok(ok, `walk of 0x${va.toString(16)} failed with #PF error code ${r.error}`);
  return r.frame;
}

function longMode(cr3: number): PagingRegs {
  const cr3Lo = (cr3 % 2 ** 32) | 0;
  return { cr0: 0x80010001, cr3Lo, cr3Hi: Math.floor(cr3 / 2 ** 32), cr4: 0x20, lma: true, nxe: true };
}

/** The four 4-level indexes of a linear address (PML4, PDPT, PD, PT). */
function indexes(va: number): [number, number, number, number] {
  return [39, 30, 21, 12].map((s) => Math.floor(va / 2 ** s) & 511) as [number, number, number, number];
}

/** The A and D bits of each entry, in walk order. */
function ad(mem: GuestMemory, entries: number[]): bigint[] {
  return entries.map((e) => get(mem, e) & (A | D));
}

test("a 4-level walk through tables above 2^31 sets A and D there (RAM offsets past 2 GiB)", () => {
  const mem = new GuestMemory(3 * GiB);
  const [pml4, pdpt, pd, pt, frame] = [0x8000_0000, 0x8000_1000, 0xbfff_e000, 0x9000_0000, 0xbfff_f000];
  const va = 0x12_3456_7000;
  const [i4, i3, i2, i1] = indexes(va);
  const e = [pml4 + i4 * 8, pdpt + i3 * 8, pd + i2 * 8, pt + i1 * 8];
  put(mem, e[0]!, BigInt(pdpt) | P_RW);
  put(mem, e[1]!, BigInt(pd) | P_RW);
  put(mem, e[2]!, BigInt(pt) | P_RW);
  put(mem, e[3]!, BigInt(frame) | P_RW);
  assert.equal(translate(mem, longMode(pml4), va, ACC_READ), frame);
  assert.deepEqual(ad(mem, e), [A, A, A, A], "a read sets A everywhere, D nowhere");
  assert.equal(translate(mem, longMode(pml4), va, ACC_WRITE), frame);
  assert.deepEqual(ad(mem, e), [A, A, A, A | D], "a write sets D in the PTE only");
});

test("4-level walks with CR3 and tables above 2^32 reach 4 KiB, 2 MiB and 1 GiB frames (RAM offsets past 4 GiB)", () => {
  // 5 GiB: 3 GiB below the hole, 2 GiB at 4..6 GiB (RAM offsets 3..5 GiB: offsets past 2^32).
  const mem = new GuestMemory(5 * GiB);
  const pml4 = 0x1_4000_0000; // RAM offset exactly 4 GiB: the first byte of a window
  const pdpt = 0x1_7fff_f000; // the last page of RAM
  const pd = 0x1_3fff_f000; // RAM offset 4 GiB - 4 KiB: the last page of the window before
  const pt = 0x8000_0000;
  const base = 0x7f12_4000_0000; // 1 GiB aligned
  const va4k = base + 0x5000;
  const va2m = base + 2 * 1024 * 1024; // the next PD entry
  const va1g = base + GiB; // the next PDPT entry
  const [i4, i3, i2, i1] = indexes(va4k);
  const pml4e = pml4 + i4 * 8;
  const pdpte = pdpt + i3 * 8;
  const pdpte1g = pdpt + (i3 + 1) * 8;
  const pde = pd + i2 * 8;
  const pde2m = pd + (i2 + 1) * 8;
  const pte = pt + i1 * 8;
  put(mem, pml4e, BigInt(pdpt) | P_RW);
  put(mem, pdpte, BigInt(pd) | P_RW);
  put(mem, pdpte1g, 0x1_4000_0000n | PS | P_RW);
  put(mem, pde, BigInt(pt) | P_RW);
  put(mem, pde2m, 0x1_7fe0_0000n | PS | P_RW);
  put(mem, pte, 0x1_5000_0000n | P_RW);
  const regs = longMode(pml4);
  assert.equal(translate(mem, regs, va4k + 0x123, ACC_WRITE), 0x1_5000_0000);
  assert.deepEqual(ad(mem, [pml4e, pdpte, pde, pte]), [A, A, A, A | D]);
  assert.equal(translate(mem, regs, va2m + 0x1f_f123, ACC_READ), 0x1_7fff_f000);
  assert.deepEqual(ad(mem, [pde2m]), [A], "a read of a 2 MiB page sets A only");
  translate(mem, regs, va2m, ACC_WRITE);
  assert.deepEqual(ad(mem, [pde2m]), [A | D]);
  assert.equal(translate(mem, regs, va1g + 0x3fff_f000, ACC_WRITE), 0x1_7fff_f000);
  assert.deepEqual(ad(mem, [pdpte1g]), [A | D], "1 GiB leaf: A and D in the PDPTE");
  // The bits landed where the guest sees them, not at the address wrapped to 32 bits.
  assert.equal(get(mem, pml4e % 2 ** 32), 0n, "nothing written at the wrapped address");
});

test("PAE: a PDPT below 4 GiB leads to a page directory and table above 2^32", () => {
  const mem = new GuestMemory(5 * GiB);
  const pdpt = 0xbfff_ffe0; // CR3 is 32 bits in PAE mode; the PDPT is 32-byte aligned
  const pd = 0x1_3fff_f000;
  const pt = 0x1_4000_0000;
  const va = 0xc020_3000; // PDPTE 3, PDE 1, PTE 3
  put(mem, pdpt + 3 * 8, BigInt(pd) | 1n);
  put(mem, pd + 1 * 8, BigInt(pt) | P_RW);
  put(mem, pt + 3 * 8, 0x1_7fff_f000n | P_RW);
  const regs: PagingRegs = { cr0: 0x80010001, cr3Lo: pdpt | 0, cr3Hi: 0, cr4: 0x20, lma: false, nxe: false };
  assert.equal(translate(mem, regs, va, ACC_WRITE), 0x1_7fff_f000);
  assert.deepEqual(ad(mem, [pd + 8, pt + 24]), [A, A | D]);
});

test("32-bit paging: a PSE-36 4 MiB page above 4 GiB through a directory above 2^31", () => {
  const mem = new GuestMemory(5 * GiB);
  const pdir = 0x9000_0000;
  const va = 0x8040_1234; // PDE 0x201
  // PDE bits 20:13 hold physical address bits 39:32; bits 31:22 the rest of the 4 MiB frame.
  const frame = 0x1_7fc0_0000;
  const pdeValue = (frame % 2 ** 32) | (Math.floor(frame / 2 ** 32) << 13) | 0x83;
  put(mem, pdir + 0x201 * 4, BigInt(pdeValue >>> 0));
  const regs: PagingRegs = { cr0: 0x80010001, cr3Lo: pdir | 0, cr3Hi: 0, cr4: 0x10, lma: false, nxe: false };
  assert.equal(translate(mem, regs, va, ACC_WRITE), 0x1_7fc0_1000);
  assert.equal(get(mem, pdir + 0x201 * 4) & (A | D), A | D);
});
