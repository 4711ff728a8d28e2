// Micro-benchmark of the processor core on integer loops in 64-bit mode (register ALU + branch, and a
// load/store mix through the TLB fast path), interpreted and block-translated. Prints MIPS. Run: npm run build && node dist/bench/cpu-loop.js
// (bench/run.ts, owned by the platform work, can call `benchCpuLoop`).
import { GuestMemory } from "../src/memory/guest-memory.js";
import { Cpu } from "../src/x86/cpu.js";
import { ExitReason } from "../src/x86/vm-exit.js";

const CODE = 0x10000;
const PML4 = 0x100000;

function machine(code: number[], jitThreshold?: number): Cpu {
  const mem = new GuestMemory(8 * 1024 * 1024);
  mem.write(CODE, Uint8Array.from(code));
  const dv = new DataView(mem.buffer);
  dv.setUint32(PML4, PML4 + 0x1000 + 3, true);
  dv.setUint32(PML4 + 0x1000, PML4 + 0x2000 + 3, true);
  for (let i = 0; i < 512; i++) dv.setUint32(PML4 + 0x2000 + i * 8, i * 0x200000 + 0x83, true);
  const cpu = new Cpu(mem, { jitThreshold });
  cpu.setControl("cr3", PML4, 0);
  cpu.setControl("cr4", 0x20, 0);
  cpu.setControl("efer", 0x500, 0);
  cpu.setControl("cr0", 0x80000011 | 0, 0);
  cpu.setSegment(1, { selector: 8, base: 0, limit: 0xffffffff, access: 0xa09b });
  for (const s of [0, 2, 3, 4, 5] as const)
    cpu.setSegment(s, { selector: 16, base: 0, limit: 0xffffffff, access: 0xc093 });
  cpu.setRip(CODE, 0);
  cpu.setReg(4, 0x80000, 0);
  return cpu;
}

const le32 = (v: number): number[] => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];

/** mov ecx, N; l: add eax, ecx; xor edx, eax; dec ecx; jnz l; hlt  (4 instructions per iteration) */
function aluLoop(n: number): number[] {
  return [0xb9, ...le32(n), 0x01, 0xc8, 0x31, 0xc2, 0xff, 0xc9, 0x75, 0xf8, 0xf4];
}

/** mov ecx, N; mov edi, 0x200000; l: mov [rdi], eax; add eax, [rdi+4]; add rdi, 8 -> and edi,0x2fffff ... */
function memLoop(n: number): number[] {
  // mov ecx,N ; mov edi,0x200000 ; l: mov [rdi],eax (89 07) ; mov ebx,[rdi+8] (8b 5f 08) ; add eax,ebx (01 d8)
  // ; add edi,4 (83 c7 04) ; and edi,0x20ffff (81 e7 ff ff 20 00) ; dec ecx (ff c9) ; jnz l (75 ee) ; hlt
  return [
    0xb9,
    ...le32(n),
    0xbf,
    ...le32(0x200000),
    0x89,
    0x07,
    0x8b,
    0x5f,
    0x08,
    0x01,
    0xd8,
    0x83,
    0xc7,
    0x04,
    0x81,
    0xe7,
    0xff,
    0xff,
    0x20,
    0x00,
    0xff,
    0xc9,
    0x75,
    0xec,
    0xf4,
  ];
}

function measure(name: string, code: number[], jitThreshold?: number): { name: string; mips: number } {
  const cpu = machine(code, jitThreshold);
  // Process CPU time rather than wall time: the figure should not depend on other load on the machine.
  const t0 = process.cpuUsage();
  let r: ExitReason;
  do r = cpu.run(10_000_000);
  while (r === ExitReason.BudgetExhausted);
  const u = process.cpuUsage(t0);
  const ms = (u.user + u.system) / 1000;
  if (r !== ExitReason.Hlt) throw new Error(`${name}: stopped with exit ${r}`);
  return { name, mips: cpu.retired / ms / 1000 };
}

export function benchCpuLoop(): Array<{ name: string; mips: number }> {
  measure("warm-up", aluLoop(2_000_000));
  measure("warm-up", aluLoop(2_000_000), -1);
  // Interpreter alone (translation off) next to the default (block translation, docs/decisions/0003).
  return [
    measure("alu-loop interpreted", aluLoop(10_000_000), -1),
    measure("alu-loop translated", aluLoop(10_000_000)),
    measure("mem-loop interpreted", memLoop(5_000_000), -1),
    measure("mem-loop translated", memLoop(5_000_000)),
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of benchCpuLoop()) console.log(`${r.name}: ${r.mips.toFixed(1)} MIPS`);
}
