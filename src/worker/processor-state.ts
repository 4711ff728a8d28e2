// Owns: a processor's architectural state as the run loop, its failure reports and the trace see it: the
// per-instruction trace record and its one-line form (the view of QEMU's `-d cpu` log that `viridian diverge`
// compares), the state dump of failure messages, and putting a processor into a firmware entry state
// (Multiboot's flat protected mode, or the loader-neutral EntryState of the Linux boot).
// Must not: run a processor or know machines (pc-machine.ts does), or parse images (firmware does).
// Spec: Multiboot 0.6.96 3.2 (machine state); Linux Documentation/arch/x86/boot.rst (64-bit entry); QEMU's
// `-d cpu` register dump (the order of the general registers).

import type { EntryState } from "../firmware/entry-state.js";
import type { MultibootEntryState } from "../firmware/multiboot.js";
import { GPR64_NAMES } from "../x86/disasm.js";
import { Reg, Seg, type Processor, type SegmentState } from "../x86/processor.js";

const REG_NAMES = GPR64_NAMES;
const SEG_NAMES = ["es", "cs", "ss", "ds", "fs", "gs"];

function hex64(lo: number, hi: number): string {
  return (hi >>> 0).toString(16).padStart(8, "0") + (lo >>> 0).toString(16).padStart(8, "0");
}

/** The state before one instruction, as the trace and the divergence finder see it. */
export interface TraceRecord {
  retired: number;
  ripLo: number;
  ripHi: number;
  /** RAX..R15 as (lo, hi) pairs: regs[2 * n] is the low half of register n (Intel numbering). */
  regs: number[];
  rflags: number;
}

/** Whether two records show the same state (the trace prints a state once). */
export function sameState(a: TraceRecord, b: TraceRecord): boolean {
  if (a.ripLo !== b.ripLo || a.ripHi !== b.ripHi || a.rflags !== b.rflags) return false;
  for (let i = 0; i < 32; i++) if (a.regs[i] !== b.regs[i]) return false;
  return true;
}

export function formatTrace(rec: TraceRecord): string {
  const regs = REG_NAMES.map((n, i) => `${n}=${hex64(rec.regs[2 * i]!, rec.regs[2 * i + 1]!)}`);
  return `${rec.retired} rip=${hex64(rec.ripLo, rec.ripHi)} ${regs.join(" ")} rfl=${rec.rflags.toString(16)}`;
}

/** A processor's architectural state now: RIP, the 16 general registers as (lo, hi) pairs, RFLAGS. */
export function snapshotProcessor(cpu: Processor): TraceRecord {
  const regs = new Array<number>(32);
  for (let i = 0; i < 16; i++) {
    const r = cpu.getReg(i as Reg);
    regs[2 * i] = r.lo >>> 0;
    regs[2 * i + 1] = r.hi >>> 0;
  }
  const rip = cpu.getRip();
  return {
    retired: cpu.retired,
    ripLo: rip.lo >>> 0,
    ripHi: rip.hi >>> 0,
    regs,
    rflags: cpu.getRflags() >>> 0,
  };
}

/** RIP, RFLAGS, the general registers, control registers and segment caches of a processor. */
export function describeProcessor(cpu: Processor): string {
  const lines: string[] = [];
  const rip = cpu.getRip();
  lines.push(
    `rip=${hex64(rip.lo, rip.hi)} rflags=${cpu.getRflags().toString(16).padStart(8, "0")} retired=${cpu.retired}`,
  );
  for (let i = 0; i < 16; i += 4) {
    lines.push(
      [i, i + 1, i + 2, i + 3]
        .map((r) => {
          const v = cpu.getReg(r as Reg);
          return `${REG_NAMES[r]!.padStart(3)}=${hex64(v.lo, v.hi)}`;
        })
        .join(" "),
    );
  }
  const cr = (["cr0", "cr2", "cr3", "cr4", "cr8", "efer"] as const).map((n) => {
    const v = cpu.getControl(n);
    return `${n}=${hex64(v.lo, v.hi)}`;
  });
  lines.push(cr.join(" "));
  for (let s = 0; s < 6; s++) {
    const seg = cpu.getSegment(s as Seg);
    lines.push(
      `${SEG_NAMES[s]}=${seg.selector.toString(16).padStart(4, "0")} base=${hex64(seg.base >>> 0, seg.baseHi ?? Math.floor(seg.base / 0x1_0000_0000))} ` +
        `limit=${(seg.limit >>> 0).toString(16)} access=${seg.access.toString(16)}`,
    );
  }
  return lines.join("\n");
}

/** Puts a processor into the Multiboot entry state (flat 32-bit protected mode, paging and IF off). */
export function applyEntryState(cpu: Processor, entry: MultibootEntryState): void {
  const seg = (s: MultibootEntryState["code"]): SegmentState => ({
    selector: s.selector,
    base: s.base,
    limit: s.limit,
    access: s.access,
  });
  cpu.setControl("cr0", entry.cr0, 0);
  cpu.setControl("cr4", 0, 0);
  cpu.setControl("efer", 0, 0);
  cpu.setSegment(Seg.CS, seg(entry.code));
  for (const s of [Seg.DS, Seg.ES, Seg.SS, Seg.FS, Seg.GS]) cpu.setSegment(s, seg(entry.data));
  cpu.setRflags(entry.eflags);
  cpu.setReg(Reg.RAX, entry.eax, 0);
  cpu.setReg(Reg.RBX, entry.ebx, 0);
  cpu.setReg(Reg.RSP, entry.esp, 0);
  cpu.setRip(entry.eip, 0);
}

/** Puts a processor into a firmware EntryState (descriptor tables, control registers, segments, GPRs). */
export function applyLinuxEntryState(cpu: Processor, e: EntryState): void {
  cpu.setDescriptorTable("gdtr", e.gdtr.base, e.gdtr.limit);
  cpu.setDescriptorTable("idtr", e.idtr.base, e.idtr.limit);
  cpu.setControl("cr4", e.cr4, 0);
  cpu.setControl("cr3", e.cr3, 0);
  cpu.setControl("efer", e.efer, 0);
  cpu.setControl("cr0", e.cr0, 0);
  cpu.setSegment(Seg.CS, e.cs);
  cpu.setSegment(Seg.DS, e.ds);
  cpu.setSegment(Seg.ES, e.es);
  cpu.setSegment(Seg.SS, e.ss);
  cpu.setSegment(Seg.FS, e.fs);
  cpu.setSegment(Seg.GS, e.gs);
  cpu.setRflags(e.rflags);
  const r = e.registers;
  const set: Array<[Reg, number | undefined]> = [
    [Reg.RAX, r.rax],
    [Reg.RBX, r.rbx],
    [Reg.RCX, r.rcx],
    [Reg.RDX, r.rdx],
    [Reg.RSI, r.rsi],
    [Reg.RDI, r.rdi],
    [Reg.RBP, r.rbp],
    [Reg.RSP, r.rsp],
  ];
  for (const [reg, v] of set) {
    const n = v ?? 0;
    cpu.setReg(reg, (n % 0x1_0000_0000) | 0, Math.floor(n / 0x1_0000_0000));
  }
  cpu.setRip((e.rip % 0x1_0000_0000) | 0, Math.floor(e.rip / 0x1_0000_0000));
}
