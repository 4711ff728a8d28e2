// Owns: the emulated half of the conformance test — a long-mode machine that mirrors what a Linux x86-64
// process sees (ring 3, CS 0x33 / SS 0x2b, CR0.AM and EFER.NXE set, the code page at CODE_BASE and two data
// pages at DATA_BASE with unmapped pages around them, INT3/INTO/INT 0x80 gates at DPL 3 and all others at
// DPL 0) and runs each case in one reused `Cpu`, reporting the same raw result as runner.c: registers, RIP,
// RFLAGS and the vector/error code/CR2 the case ended with, taken from the ring-0 exception frame.
// Must not: generate or compare cases; change the processor (it only uses the public Cpu surface plus the
// task-register fields, which have no setter in the Processor contract).
// Spec: Intel SDM Vol. 3A 4.5 (4-level paging, U/S, R/W, NX), 6.14 (64-bit IDT gates, stack frame, TSS RSP0),
// 7.7 (64-bit TSS); Linux arch/x86 GDT layout (__USER_CS = 0x33, __USER_DS = 0x2b) and IDT gate DPLs.

import { GuestMemory } from "../../src/memory/guest-memory.js";
import { Cpu } from "../../src/x86/cpu.js";
import { ExitReason } from "../../src/x86/vm-exit.js";
import { dataImage, FILLER, HAS_ERROR_CODE, type RawResult } from "./batch.js";
import { CODE_BASE, DATA_BASE, DATA_SIZE, type Case } from "./generate.js";

const GDT = 0x1000;
const IDT = 0x2000;
const TSS = 0x3000;
const HANDLERS = 0x4000;
const KSTACK_TOP = 0x9000;
const PML4 = 0xa000;
const PDPT = 0xb000;
const PD = 0xc000;
const PT_LOW = 0xd000;
const PT_CODE = 0xe000;
const PT_DATA = 0xf000;
const CODE_PHYS = 0x10000;
const DATA_PHYS = 0x11000;

const SEL_KCODE = 0x10;
const SEL_UCODE = 0x33;
const SEL_UDATA = 0x2b;

/** Linux's CR0 (PE MP ET NE WP AM PG) — AM makes RFLAGS.AC alignment checks live in ring 3. */
const CR0 = 0x80050033 | 0;
const CR4 = 0x20 | 0x200 | 0x400; // PAE, OSFXSR, OSXMMEXCPT
const EFER = 0xd01; // SCE, LME, LMA, NXE

export class EmulatedMachine {
  readonly mem = new GuestMemory(1 << 20);
  readonly cpu: Cpu;
  private readonly image = new Uint8Array(DATA_SIZE);
  private readonly codePage = new Uint8Array(4096);
  private readonly dv: DataView;

  constructor() {
    this.dv = new DataView(this.mem.buffer);
    // Translation on first execution unless VIRIDIAN_JIT_THRESHOLD says otherwise (-1: interpreter only).
    const jitThreshold = Number(process.env.VIRIDIAN_JIT_THRESHOLD ?? 0);
    this.cpu = new Cpu(this.mem, { deterministic: true, jitThreshold });
    this.buildTables();
  }

  private q(at: number, lo: number, hi: number): void {
    this.dv.setUint32(at, lo >>> 0, true);
    this.dv.setUint32(at + 4, hi >>> 0, true);
  }

  private buildTables(): void {
    const gdt: Array<[number, number]> = [
      [0, 0],
      [0, 0],
      [0x0000ffff, 0x00af9a00], // 0x10 kernel code64
      [0x0000ffff, 0x00cf9200], // 0x18 kernel data
      [0x0000ffff, 0x00cffa00], // 0x23 user code32
      [0x0000ffff, 0x00cff200], // 0x2b user data
      [0x0000ffff, 0x00affa00], // 0x33 user code64
      [0, 0],
      // 0x40: 64-bit TSS (busy), base TSS, limit 0x67
      [((TSS & 0xffff) << 16) | 0x67, ((TSS >>> 16) & 0xff) | 0x8b00 | (TSS & 0xff000000)],
      [0, 0],
    ];
    gdt.forEach(([lo, hi], i) => this.q(GDT + i * 8, lo, hi));
    for (let v = 0; v < 256; v++) {
      const off = HANDLERS + v * 8;
      const dpl = v === 3 || v === 4 || v === 0x80 ? 3 : 0;
      const at = IDT + v * 16;
      this.q(at, (SEL_KCODE << 16) | (off & 0xffff), (off & 0xffff0000) | 0x8e00 | (dpl << 13));
      this.q(at + 8, 0, 0);
      this.mem.bytes[off] = 0xf4; // HLT: stops the run with the frame on the kernel stack
    }
    this.q(TSS + 4, KSTACK_TOP, 0); // RSP0
    // I/O map base beyond the TSS limit (as Linux sets it): no I/O permission bitmap, so IN/OUT at CPL 3 #GP.
    this.dv.setUint16(TSS + 0x66, 0x68, true);
    // Page tables: low 2 MiB identity-mapped for the supervisor only; user code and data pages.
    this.q(PML4, PDPT | 7, 0);
    this.q(PDPT, PD | 7, 0);
    this.q(PD, PT_LOW | 3, 0);
    this.q(PD + ((CODE_BASE >>> 21) & 511) * 8, PT_CODE | 7, 0);
    this.q(PD + ((DATA_BASE >>> 21) & 511) * 8, PT_DATA | 7, 0);
    for (let i = 0; i < 512; i++) this.q(PT_LOW + i * 8, (i * 0x1000) | 3, 0);
    this.q(PT_CODE, CODE_PHYS | 7, 0);
    this.q(PT_DATA, DATA_PHYS | 7, 0x80000000); // NX
    this.q(PT_DATA + 8, (DATA_PHYS + 0x1000) | 7, 0x80000000);
  }

  /** Puts the processor in the ring-3 long-mode state a case starts from. */
  private setup(c: Case): void {
    const cpu = this.cpu;
    cpu.reset();
    cpu.setDescriptorTable("gdtr", GDT, 10 * 8 - 1);
    cpu.setDescriptorTable("idtr", IDT, 256 * 16 - 1);
    cpu.setControl("cr3", PML4, 0);
    cpu.setControl("cr4", CR4, 0);
    cpu.setControl("efer", EFER, 0);
    cpu.setControl("cr0", CR0, 0);
    cpu.trSel = 0x40;
    cpu.trBaseLo = TSS;
    cpu.trBaseHi = 0;
    cpu.trLimit = 0x67;
    cpu.trAccess = 0x8b;
    cpu.setSegment(1, { selector: SEL_UCODE, base: 0, limit: 0xffffffff, access: 0xa0fb });
    cpu.setSegment(2, { selector: SEL_UDATA, base: 0, limit: 0xffffffff, access: 0xc0f3 });
    for (const s of [0, 3, 4, 5] as const)
      cpu.setSegment(s, { selector: 0, base: 0, limit: 0xffffffff, access: 0xc0f3 });
    for (let r = 0; r < 16; r++) {
      const v = c.regs[r]!;
      cpu.setReg(r, Number(v & 0xffffffffn) | 0, Number(v >> 32n) | 0);
    }
    cpu.setRflags(c.rflags | 0x202);
    const xv = new DataView(c.xmm.buffer, c.xmm.byteOffset, 256);
    for (let i = 0; i < 64; i++) cpu.xmm[i] = xv.getInt32(i * 4, true);
    cpu.mxcsr = c.mxcsr;
    const rip = CODE_BASE + c.codeOff;
    cpu.setRip(rip, 0);
  }

  /** Read through a method so TypeScript does not narrow it across run(). */
  private cpl(): number {
    return this.cpu.cpl;
  }

  run(c: Case): RawResult | string {
    const cpu = this.cpu;
    const page = this.codePage;
    page.fill(FILLER);
    page.set(c.code.subarray(0, 4096 - c.codeOff), c.codeOff);
    this.mem.write(CODE_PHYS, page);
    dataImage(c, this.image);
    this.mem.write(DATA_PHYS, this.image);
    this.setup(c);
    if (cpu.cpl !== 3) return "setup did not reach ring 3";
    let reason: ExitReason = ExitReason.BudgetExhausted;
    try {
      for (let i = 0; i < 4 && reason !== ExitReason.Hlt; i++) reason = cpu.run(100_000);
    } catch (e) {
      return `emulator threw: ${e instanceof Error ? e.message : String(e)}`;
    }
    if (reason !== ExitReason.Hlt)
      return `VM exit ${reason} (see vm-exit.ts ExitReason) instead of an exception`;
    const rip = cpu.getRip();
    const at = rip.lo - 1 - HANDLERS;
    if (this.cpl() !== 0 || rip.hi !== 0 || at < 0 || at >= 256 * 8 || at % 8 !== 0) {
      return `stopped outside the exception handlers at ${rip.hi.toString(16)}:${(rip.lo >>> 0).toString(16)}`;
    }
    const vector = at / 8;
    let sp = cpu.getReg(4).lo >>> 0;
    const rd = (a: number): bigint => this.dv.getBigUint64(a, true);
    let err = 0;
    if (HAS_ERROR_CODE.has(vector)) {
      err = Number(rd(sp) & 0xffffffffn);
      sp += 8;
    }
    const frameRip = rd(sp);
    const frameFlags = Number(rd(sp + 16) & 0xffffffffn);
    const frameRsp = rd(sp + 24);
    const regs: bigint[] = [];
    for (let r = 0; r < 16; r++) {
      const v = cpu.getReg(r);
      regs.push((BigInt(v.hi >>> 0) << 32n) | BigInt(v.lo >>> 0));
    }
    regs[4] = frameRsp;
    const cr2 = cpu.getControl("cr2");
    const xmm = new Uint8Array(256);
    const xv = new DataView(xmm.buffer);
    for (let i = 0; i < 64; i++) xv.setInt32(i * 4, cpu.xmm[i]!, true);
    const diffs = new Map<number, number>();
    const now = this.mem.bytes.subarray(DATA_PHYS, DATA_PHYS + DATA_SIZE);
    for (let i = 0; i < DATA_SIZE; i++) if (now[i] !== this.image[i]) diffs.set(i, now[i]!);
    return {
      regs,
      rip: frameRip,
      rflags: frameFlags,
      cr2: (BigInt(cr2.hi >>> 0) << 32n) | BigInt(cr2.lo >>> 0),
      vector,
      err,
      xmm,
      mxcsr: cpu.mxcsr >>> 0,
      diffs,
    };
  }
}
