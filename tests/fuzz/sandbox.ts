// A long-mode sandbox for hostile-code fuzzing: page tables, GDT, IDT, TSS and handler stubs written
// straight into guest RAM, so random instruction bytes can be run in ring 0 or ring 3 and every outcome is
// an architectural event (an exception delivered to a known handler, a VM exit, a triple fault) that the
// runner can classify.
//
// Layout (guest-physical = linear, 4 KiB pages over the first 2 MiB):
//   0x1000 PML4, 0x2000 PDPT, 0x3000 PD, 0x4000 PT      (supervisor; A/D preset so walks never write)
//   0x5000 GDT, 0x6000 IDT, 0x7000 TSS                   (supervisor)
//   0x8000 ring-0 stack (RSP0 = 0x9000), 0x9000 IST1 stack (top 0xa000)
//   0xb000 handler stubs: vector v's handler is a HLT at 0xb000 + v; SYSCALL enters a HLT at 0xb100
//   0xc000 setup stub: loads GDTR, IDTR, TR and the SYSCALL MSRs, then HLT
//   0x10000 code page (user), 0x11000 stack page (user, RSP starts at 0x11800), 0x12000 scratch (user)
//   page 0 is not present.
// Spec: Intel SDM Vol. 3A 4.5 (4-level paging), 3.4.5 (segment descriptors), 6.14 (64-bit IDT gates, IST),
// 7.7 (64-bit TSS), Vol. 2B SYSCALL (STAR/LSTAR/FMASK).

import type { GuestMemory } from "../../src/memory/guest-memory.js";
import { Reg, Seg, type Processor, type SegmentState } from "../../src/x86/processor.js";
import { ExitReason } from "../../src/x86/vm-exit.js";

export const SANDBOX_RAM = 2 * 1024 * 1024;
export const HANDLER_BASE = 0xb000;
export const SYSCALL_ENTRY = 0xb100;
export const SETUP_STUB = 0xc000;
export const CODE_PAGE = 0x10000;
export const USER_STACK = 0x11800;
export const SCRATCH = 0x12000;
/** Bytes restored before every sequence: all system structures, stubs, code, stack and scratch pages. */
export const RESTORE_BYTES = 0x13000;

const PTE_P = 1,
  PTE_W = 2,
  PTE_U = 4,
  PTE_A = 0x20,
  PTE_D = 0x40;

export const KERNEL_CS: SegmentState = { selector: 0x08, base: 0, limit: 0xffffffff, access: 0xa09b };
export const KERNEL_SS: SegmentState = { selector: 0x10, base: 0, limit: 0xffffffff, access: 0xc093 };
export const USER_CS: SegmentState = { selector: 0x2b, base: 0, limit: 0xffffffff, access: 0xa0fb };
export const USER_SS: SegmentState = { selector: 0x23, base: 0, limit: 0xffffffff, access: 0xc0f3 };
export const NULL_SEG: SegmentState = { selector: 0, base: 0, limit: 0, access: 0x1c000 };

function put64(b: Uint8Array, off: number, lo: number, hi = 0): void {
  const v = new DataView(b.buffer, b.byteOffset);
  v.setUint32(off, lo >>> 0, true);
  v.setUint32(off + 4, hi >>> 0, true);
}

/** Builds the sandbox image (the first RESTORE_BYTES of RAM); `setupEnd` is the RIP after the stub's HLT. */
export function buildSandboxImage(): { image: Uint8Array; setupEnd: number } {
  const m = new Uint8Array(RESTORE_BYTES);
  // Paging: PML4[0] -> PDPT[0] -> PD[0] -> PT; PT maps 0..2 MiB.
  put64(m, 0x1000, 0x2000 | PTE_P | PTE_W | PTE_U | PTE_A);
  put64(m, 0x2000, 0x3000 | PTE_P | PTE_W | PTE_U | PTE_A);
  put64(m, 0x3000, 0x4000 | PTE_P | PTE_W | PTE_U | PTE_A);
  for (let page = 1; page < 512; page++) {
    const user = page >= 0x10 && page <= 0x12;
    put64(m, 0x4000 + page * 8, (page << 12) | PTE_P | PTE_W | PTE_A | PTE_D | (user ? PTE_U : 0));
  }
  // GDT: null, kernel code64 0x08, kernel data 0x10, user code32 0x18, user data 0x20, user code64 0x28,
  // TSS 0x30 (16 bytes). Accessed bits preset.
  const gdt = [
    [0, 0],
    [0x0000ffff, 0x00af9b00],
    [0x0000ffff, 0x00cf9300],
    [0x0000ffff, 0x00cffb00],
    [0x0000ffff, 0x00cff300],
    [0x0000ffff, 0x00affb00],
  ];
  gdt.forEach(([lo, hi], i) => put64(m, 0x5000 + i * 8, lo!, hi!));
  const tss = 0x7000;
  put64(
    m,
    0x5030,
    (103 & 0xffff) | ((tss & 0xffff) << 16),
    ((tss >>> 16) & 0xff) | (0x89 << 8) | (tss & 0xff000000),
  );
  put64(m, 0x5038, 0, 0);
  // IDT: gate v -> HANDLER_BASE + v, kernel CS; #DF, NMI and #MC on IST1; INT3/INTO callable from ring 3.
  for (let v = 0; v < 256; v++) {
    const target = HANDLER_BASE + v;
    const ist = v === 2 || v === 8 || v === 18 ? 1 : 0;
    const dpl = v === 3 || v === 4 ? 3 : 0;
    const o = 0x6000 + v * 16;
    put64(m, o, (target & 0xffff) | (0x08 << 16), ist | ((0x8e | (dpl << 5)) << 8) | (target & 0xffff0000));
    put64(m, o + 8, 0, 0);
  }
  // TSS: RSP0 and IST1; the I/O map base past the limit denies ring-3 port access above IOPL.
  put64(m, tss + 4, 0x9000);
  put64(m, tss + 36, 0xa000);
  new DataView(m.buffer).setUint16(tss + 102, 104, true);
  m.fill(0xf4, HANDLER_BASE, HANDLER_BASE + 0x101);
  // Setup stub (64-bit): lgdt [gdtr]; lidt [idtr]; mov ax,0x30; ltr ax; STAR/LSTAR/FMASK via wrmsr; hlt.
  const stub: number[] = [];
  const gdtr = SETUP_STUB + 0x100;
  const idtr = SETUP_STUB + 0x110;
  stub.push(0x0f, 0x01, 0x14, 0x25, ...le32(gdtr)); // lgdt [abs gdtr]
  stub.push(0x0f, 0x01, 0x1c, 0x25, ...le32(idtr)); // lidt [abs idtr]
  stub.push(0x66, 0xb8, 0x30, 0x00, 0x0f, 0x00, 0xd8); // mov ax,0x30; ltr ax
  const wrmsr = (msr: number, lo: number, hi: number): void => {
    stub.push(0xb9, ...le32(msr), 0xb8, ...le32(lo), 0xba, ...le32(hi), 0x0f, 0x30);
  };
  wrmsr(0xc0000081, 0, (0x18 << 16) | 0x08); // STAR: user base 0x18, kernel 0x08
  wrmsr(0xc0000082, SYSCALL_ENTRY, 0); // LSTAR
  wrmsr(0xc0000084, 0x4700, 0); // FMASK: TF, IF, DF, NT
  wrmsr(0xc0000100, 0, 0); // FS base
  wrmsr(0xc0000101, 0, 0); // GS base
  wrmsr(0xc0000102, 0, 0); // kernel GS base
  stub.push(0xf4);
  m.set(stub, SETUP_STUB);
  const dv = new DataView(m.buffer);
  dv.setUint16(gdtr - 0, 0x3f, true);
  dv.setUint32(gdtr + 2, 0x5000, true);
  dv.setUint16(idtr, 0xfff, true);
  dv.setUint32(idtr + 2, 0x6000, true);
  return { image: m, setupEnd: SETUP_STUB + stub.length };
}

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

/** Control registers and segments for 64-bit mode; `user` selects ring 3. */
export function enterLongMode(cpu: Processor, user: boolean): void {
  cpu.setControl("efer", 0xd01, 0); // SCE, LME, LMA, NXE
  cpu.setControl("cr4", 0x620, 0); // PAE, OSFXSR, OSXMMEXCPT
  cpu.setControl("cr3", 0x1000, 0);
  cpu.setControl("cr0", 0x80050033, 0); // PG, AM, WP, NE, ET, MP, PE
  cpu.setDescriptorTable("gdtr", 0x5000, 0x3f);
  cpu.setDescriptorTable("idtr", 0x6000, 0xfff);
  cpu.setSegment(Seg.CS, user ? USER_CS : KERNEL_CS);
  cpu.setSegment(Seg.SS, user ? USER_SS : KERNEL_SS);
  for (const s of [Seg.DS, Seg.ES, Seg.FS, Seg.GS]) cpu.setSegment(s, user ? USER_SS : NULL_SEG);
}

/** Loads the sandbox into RAM and runs the setup stub (TR, GDTR, IDTR, MSRs). Returns false if it failed. */
export function setupSandbox(
  memory: GuestMemory,
  cpu: Processor,
  image: Uint8Array,
  setupEnd: number,
): boolean {
  memory.write(0, image);
  enterLongMode(cpu, false);
  cpu.setRflags(0x2);
  cpu.setReg(Reg.RSP, 0x9000, 0);
  cpu.setRip(SETUP_STUB, 0);
  for (let i = 0; i < 16; i++) {
    const r = cpu.run(64);
    if (r === ExitReason.Hlt) return cpu.getRip().lo === setupEnd;
    // MSRs the processor leaves to its runner are accepted as written.
    if (r === ExitReason.Wrmsr) cpu.completeWrmsr();
    else if (r !== ExitReason.BudgetExhausted) return false;
  }
  return false;
}
