// Owns: THE opcode table — the single source of truth for the decoder/interpreter, the disassembler, the
// conformance-test generator and any future JIT. Every instruction the processor implements has exactly one
// row per encoding form here (mnemonic, map, opcode, mandatory prefix, ModRM extension and mod restriction,
// operands, operand-size rule, mode validity, LOCK, privilege, flags read/written/undefined, CPUID feature
// gate, handler name). See docs/x86-internals.md "Adding an instruction".
// Must not: contain behaviour. Handlers live in the group modules (alu.ts, control.ts, ...), registered by
// name in handlers.ts; a test checks every row names an existing handler.
// Spec: Intel SDM Vol. 2D appendix A (opcode maps, operand notation A.2: Eb, Gv, Iz, Jb, M, Sw, Cd, Vx/Wx,
// ...) and the per-instruction "Flags Affected" sections of Vol. 2A-2D; AMD APM Vol. 3 for LZCNT.

/** Opcode maps (escape sequences). */
export const enum OpMap {
  Primary = 0,
  M0F = 1,
  M0F38 = 2,
  M0F3A = 3,
}

/** RFLAGS bits (Intel SDM Vol. 1 3.4.3). */
export const FLAG_CF = 0x0001;
export const FLAG_PF = 0x0004;
export const FLAG_AF = 0x0010;
export const FLAG_ZF = 0x0040;
export const FLAG_SF = 0x0080;
export const FLAG_TF = 0x0100;
export const FLAG_IF = 0x0200;
export const FLAG_DF = 0x0400;
export const FLAG_OF = 0x0800;
export const FLAG_IOPL = 0x3000;
export const FLAG_NT = 0x4000;
export const FLAG_RF = 0x10000;
export const FLAG_VM = 0x20000;
export const FLAG_AC = 0x40000;
export const FLAG_VIF = 0x80000;
export const FLAG_VIP = 0x100000;
export const FLAG_ID = 0x200000;
/** The six arithmetic status flags. */
export const FLAGS_STATUS = FLAG_CF | FLAG_PF | FLAG_AF | FLAG_ZF | FLAG_SF | FLAG_OF;
/** Every architecturally defined RFLAGS bit (used for "writes all" rows such as POPF and IRET). */
export const FLAGS_ALL = 0x3f7fd5;

/** How the `v` operand size is chosen (Intel SDM Vol. 1 3.6, Vol. 2A 2.2.1.7). */
export type SizeRule =
  /** 16/32 by CS.D and 66h; REX.W selects 64. */
  | "default"
  /** Defaults to 64 bits in 64-bit mode (no 32-bit form); 66h selects 16 (PUSH, POP, LEAVE, ...). */
  | "d64"
  /** Always 64 bits in 64-bit mode; 66h is ignored (near branches, MOV CRn/DRn). */
  | "f64";

/** Mandatory prefix of an SSE-style encoding; absent = the prefix is an ordinary prefix for this row. */
export type MandatoryPrefix = "NP" | "66" | "F2" | "F3";

export type Privilege = "user" | "ring0" | "iopl";

/** CPUID-advertised features that gate instructions (see cpuid.ts for the bits). */
export type Feature =
  | "LM"
  | "CX8"
  | "CX16"
  | "CMOV"
  | "POPCNT"
  | "LZCNT"
  | "BMI1"
  | "MOVBE"
  | "RDRAND"
  | "RDTSCP"
  | "SYSCALL"
  | "SEP"
  | "CLFSH"
  | "SSE2"
  | "INVPCID"
  | "LAHF64"
  | "FXSR"
  | "MMX"
  | "SSE"
  | "SSE3"
  | "SSSE3"
  | "SSE41"
  | "SSE42"
  | "FPU"
  | "XSAVE";

export interface OpcodeEntry {
  /** Index in OPCODES; decoded instructions carry it (`Insn.op`) for dispatch. */
  readonly id: number;
  readonly mnemonic: string;
  readonly map: OpMap;
  readonly opcode: number;
  readonly prefix: MandatoryPrefix | null;
  /** Whether a ModRM byte follows the opcode. */
  readonly modrm: boolean;
  /** ModRM.reg opcode extension (/0../7), or -1. */
  readonly ext: number;
  /** Exact ModRM byte for register-form-only encodings such as 0F 01 F8 (SWAPGS), or -1. */
  readonly modrmByte: number;
  /** ModRM.mod restriction. */
  readonly modRestrict: "any" | "mem" | "reg";
  /** Operand specifiers in SDM appendix A notation, destination first (see OPERAND NOTATION below). */
  readonly operands: readonly string[];
  readonly size: SizeRule;
  readonly validIn64: boolean;
  readonly validOutside64: boolean;
  readonly lockable: boolean;
  readonly privilege: Privilege;
  readonly flagsRead: number;
  /** Flags the instruction may modify (includes the undefined ones). */
  readonly flagsWritten: number;
  /** Flags left with an undefined value (a subset of flagsWritten); conformance tests mask these. */
  readonly flagsUndefined: number;
  readonly feature: Feature | null;
  /** 1: only with REX.W (CMPXCHG16B); 0: only without; -1: either. */
  readonly rexW: number;
  /** Row applies only when REX.B is clear (NOP 90 vs XCHG r8, rAX). */
  readonly noRexB: boolean;
  /**
   * The result depends on the host rather than on the instruction's inputs (CPUID, time stamps, random
   * numbers, descriptor tables and segment bases the OS owns), so the native conformance test skips the row.
   */
  readonly hostDependent: boolean;
  /** Handler name in handlers.ts. */
  readonly handler: string;
  /**
   * The result is architecturally defined only to an error bound (RCPPS/RSQRTPS: relative error <= 1.5*2^-12),
   * so conformance tests must not compare it bit for bit with another implementation (attribute `approx`).
   */
  readonly approximate: boolean;
}

/*
 * OPERAND NOTATION (SDM Vol. 2D A.2, with three additions marked *):
 *   addressing: E = ModRM r/m (GPR or memory), G = ModRM reg (GPR), M = ModRM memory only, R = ModRM r/m GPR
 *   only, C/D = control/debug register in ModRM reg, S = segment register in ModRM reg, I = immediate,
 *   J = relative offset, O = moffs (no ModRM), A = direct far pointer, X = DS:rSI, Y = ES:rDI,
 *   V/W/U = XMM in reg / XMM-or-memory in r/m / XMM in r/m, P/Q/N = MMX likewise,
 *   *Z = GPR in the opcode's low three bits (+ REX.B) — the SDM's "+rb/+rw/+rd" forms.
 *   types: b byte, w word, d dword, q qword, v 16/32/64 by operand size, z 16/32 (32 for 64-bit operand
 *   size, sign-extended), y 32/64, p far pointer, s 6/10-byte descriptor-table pointer, dq/x 128-bit,
 *   ps/pd/ss/sd packed/scalar single/double; *Ibs = imm8 sign-extended to the operand size; *M alone =
 *   memory whose size is irrelevant (LEA, INVLPG, CLFLUSH).
 *   fixed: AL, CL, DX (port), eAX (AX/EAX by operand size), rAX (AX/EAX/RAX), 1 (the constant), ES CS SS DS
 *   FS GS.
 *
 * ROW SYNTAX:  "MNEMONIC | [NP|66|F2|F3] [0F [38|3A]] OPCODE[+r|+cc] [/r|/0../7|!MODRM] | OPERANDS | ATTRS | handler"
 *   +r expands to the eight registers, +cc to the sixteen conditions (mnemonic "cc" replaced by O, NO, ...).
 *   ATTRS: lock, d64, f64, no64 (invalid in 64-bit mode), o64 (64-bit mode only), ring0, iopl, mem, reg,
 *   rexw, norexw, norexb, approx (result defined only to an error bound), host (result depends on the host:
 *   skipped by the conformance test), feat:NAME, r:FLAGS, w:FLAGS, u:FLAGS where FLAGS are letters O S Z A P C T I D
 *   or "all". Undefined flags (u:) are also counted as written.
 */
const ROWS: readonly string[] = [
  // ---- binary arithmetic and logic (alu.ts) ----
  ...aluRows("ADD", 0x00, "add", "lock w:OSZAPC"),
  ...aluRows("OR", 0x08, "or", "lock w:OSZAPC u:A"),
  ...aluRows("ADC", 0x10, "adc", "lock r:C w:OSZAPC"),
  ...aluRows("SBB", 0x18, "sbb", "lock r:C w:OSZAPC"),
  ...aluRows("AND", 0x20, "and", "lock w:OSZAPC u:A"),
  ...aluRows("SUB", 0x28, "sub", "lock w:OSZAPC"),
  ...aluRows("XOR", 0x30, "xor", "lock w:OSZAPC u:A"),
  ...aluRows("CMP", 0x38, "cmp", "w:OSZAPC"),
  ...grp1Rows(),
  "INC | 40+r | Zv | no64 w:OSZAP | inc",
  "DEC | 48+r | Zv | no64 w:OSZAP | dec",
  "INC | FE /0 | Eb | lock w:OSZAP | inc",
  "DEC | FE /1 | Eb | lock w:OSZAP | dec",
  "INC | FF /0 | Ev | lock w:OSZAP | inc",
  "DEC | FF /1 | Ev | lock w:OSZAP | dec",
  "TEST | 84 /r | Eb,Gb | w:OSZAPC u:A | test",
  "TEST | 85 /r | Ev,Gv | w:OSZAPC u:A | test",
  "TEST | A8 | AL,Ib | w:OSZAPC u:A | test",
  "TEST | A9 | rAX,Iz | w:OSZAPC u:A | test",
  "TEST | F6 /0 | Eb,Ib | w:OSZAPC u:A | test",
  "TEST | F6 /1 | Eb,Ib | w:OSZAPC u:A | test",
  "TEST | F7 /0 | Ev,Iz | w:OSZAPC u:A | test",
  "TEST | F7 /1 | Ev,Iz | w:OSZAPC u:A | test",
  "NOT | F6 /2 | Eb | lock | not",
  "NOT | F7 /2 | Ev | lock | not",
  "NEG | F6 /3 | Eb | lock w:OSZAPC | neg",
  "NEG | F7 /3 | Ev | lock w:OSZAPC | neg",
  // ---- multiply and divide (muldiv.ts) ----
  "MUL | F6 /4 | Eb | w:OSZAPC u:SZAP | mul",
  "MUL | F7 /4 | Ev | w:OSZAPC u:SZAP | mul",
  "IMUL | F6 /5 | Eb | w:OSZAPC u:SZAP | imul1",
  "IMUL | F7 /5 | Ev | w:OSZAPC u:SZAP | imul1",
  "DIV | F6 /6 | Eb | w:OSZAPC u:OSZAPC | div",
  "DIV | F7 /6 | Ev | w:OSZAPC u:OSZAPC | div",
  "IDIV | F6 /7 | Eb | w:OSZAPC u:OSZAPC | idiv",
  "IDIV | F7 /7 | Ev | w:OSZAPC u:OSZAPC | idiv",
  "IMUL | 0F AF /r | Gv,Ev | w:OSZAPC u:SZAP | imul",
  "IMUL | 69 /r | Gv,Ev,Iz | w:OSZAPC u:SZAP | imul",
  "IMUL | 6B /r | Gv,Ev,Ibs | w:OSZAPC u:SZAP | imul",
  // ---- shifts and rotates (shift.ts) ----
  ...shiftRows(),
  "SHLD | 0F A4 /r | Ev,Gv,Ib | w:OSZAPC u:OA | shld",
  "SHLD | 0F A5 /r | Ev,Gv,CL | w:OSZAPC u:OA | shld",
  "SHRD | 0F AC /r | Ev,Gv,Ib | w:OSZAPC u:OA | shrd",
  "SHRD | 0F AD /r | Ev,Gv,CL | w:OSZAPC u:OA | shrd",
  // ---- bit operations (bits.ts) ----
  "BT | 0F A3 /r | Ev,Gv | w:OSAPC u:OSAP | bt",
  "BTS | 0F AB /r | Ev,Gv | lock w:OSAPC u:OSAP | bts",
  "BTR | 0F B3 /r | Ev,Gv | lock w:OSAPC u:OSAP | btr",
  "BTC | 0F BB /r | Ev,Gv | lock w:OSAPC u:OSAP | btc",
  "BT | 0F BA /4 | Ev,Ib | w:OSAPC u:OSAP | bt",
  "BTS | 0F BA /5 | Ev,Ib | lock w:OSAPC u:OSAP | bts",
  "BTR | 0F BA /6 | Ev,Ib | lock w:OSAPC u:OSAP | btr",
  "BTC | 0F BA /7 | Ev,Ib | lock w:OSAPC u:OSAP | btc",
  "POPCNT | F3 0F B8 /r | Gv,Ev | feat:POPCNT w:OSZAPC | popcnt",
  "TZCNT | F3 0F BC /r | Gv,Ev | feat:BMI1 w:OSZAPC u:OSAP | tzcnt",
  "LZCNT | F3 0F BD /r | Gv,Ev | feat:LZCNT w:OSZAPC u:OSAP | lzcnt",
  "BSF | 0F BC /r | Gv,Ev | w:OSZAPC u:OSAPC | bsf",
  "BSR | 0F BD /r | Gv,Ev | w:OSZAPC u:OSAPC | bsr",
  "BSWAP | 0F C8+r | Zy | | bswap",
  // ---- data movement (data.ts) ----
  "MOV | 88 /r | Eb,Gb | | mov",
  "MOV | 89 /r | Ev,Gv | | mov",
  "MOV | 8A /r | Gb,Eb | | mov",
  "MOV | 8B /r | Gv,Ev | | mov",
  "MOV | 8C /r | Ev,Sw | | movFromSreg",
  "MOV | 8E /r | Sw,Ew | host | movToSreg",
  "MOV | A0 | AL,Ob | | mov",
  "MOV | A1 | rAX,Ov | | mov",
  "MOV | A2 | Ob,AL | | mov",
  "MOV | A3 | Ov,rAX | | mov",
  "MOV | B0+r | Zb,Ib | | mov",
  "MOV | B8+r | Zv,Iv | | mov",
  "MOV | C6 /0 | Eb,Ib | | mov",
  "MOV | C7 /0 | Ev,Iz | | mov",
  "LEA | 8D /r | Gv,M | mem | lea",
  "MOVZX | 0F B6 /r | Gv,Eb | | movzx",
  "MOVZX | 0F B7 /r | Gv,Ew | | movzx",
  "MOVSX | 0F BE /r | Gv,Eb | | movsx",
  "MOVSX | 0F BF /r | Gv,Ew | | movsx",
  "ARPL | 63 /r | Ew,Gw | no64 w:Z | arpl",
  "BOUND | 62 /r | Gv,Ma | mem no64 | bound",
  "MOVSXD | 63 /r | Gv,Ed | o64 | movsx",
  "PAUSE | F3 90 | | | nop",
  "NOP | 90 | | norexb | nop",
  "XCHG | 90+r | Zv,rAX | | xchg",
  "XCHG | 86 /r | Eb,Gb | lock | xchg",
  "XCHG | 87 /r | Ev,Gv | lock | xchg",
  "CMPXCHG | 0F B0 /r | Eb,Gb | lock w:OSZAPC | cmpxchg",
  "CMPXCHG | 0F B1 /r | Ev,Gv | lock w:OSZAPC | cmpxchg",
  "CMPXCHG16B | 0F C7 /1 | Mdq | mem rexw lock feat:CX16 w:Z | cmpxchg8b",
  "CMPXCHG8B | 0F C7 /1 | Mq | mem norexw lock feat:CX8 w:Z | cmpxchg8b",
  "XADD | 0F C0 /r | Eb,Gb | lock w:OSZAPC | xadd",
  "XADD | 0F C1 /r | Ev,Gv | lock w:OSZAPC | xadd",
  "MOVBE | 0F 38 F0 /r | Gv,Mv | mem feat:MOVBE | movbe",
  "MOVBE | 0F 38 F1 /r | Mv,Gv | mem feat:MOVBE | movbe",
  "CMOVcc | 0F 40+cc /r | Gv,Ev | feat:CMOV r:OSZPC | cmovcc",
  "SETcc | 0F 90+cc /r | Eb | r:OSZPC | setcc",
  "CBW | 98 | | | cbw",
  "CWD | 99 | | | cwd",
  "LAHF | 9F | | r:SZAPC | lahf",
  "SAHF | 9E | | w:SZAPC | sahf",
  "XLAT | D7 | | | xlat",
  "LDS | C5 /r | Gz,Mp | mem no64 | loadFar",
  "LES | C4 /r | Gz,Mp | mem no64 | loadFar",
  "LSS | 0F B2 /r | Gz,Mp | mem host | loadFar",
  "LFS | 0F B4 /r | Gz,Mp | mem host | loadFar",
  "LGS | 0F B5 /r | Gz,Mp | mem host | loadFar",
  // ---- decimal arithmetic (alu.ts) ----
  "DAA | 27 | | no64 r:AC w:OSZAPC u:O | daa",
  "DAS | 2F | | no64 r:AC w:OSZAPC u:O | das",
  "AAA | 37 | | no64 r:A w:OSZAPC u:OSZP | aaa",
  "AAS | 3F | | no64 r:A w:OSZAPC u:OSZP | aas",
  "AAM | D4 | Ib | no64 w:OSZAPC u:OAC | aam",
  "AAD | D5 | Ib | no64 w:OSZAPC u:OAC | aad",
  // ---- stack (stack.ts) ----
  "PUSH | 50+r | Zv | d64 | push",
  "POP | 58+r | Zv | d64 | pop",
  "PUSH | 68 | Iz | d64 | push",
  "PUSH | 6A | Ibs | d64 | push",
  "PUSH | FF /6 | Ev | d64 | push",
  "POP | 8F /0 | Ev | d64 | pop",
  "PUSH | 06 | ES | no64 | pushSeg",
  "POP | 07 | ES | no64 | popSeg",
  "PUSH | 0E | CS | no64 | pushSeg",
  "PUSH | 16 | SS | no64 | pushSeg",
  "POP | 17 | SS | no64 | popSeg",
  "PUSH | 1E | DS | no64 | pushSeg",
  "POP | 1F | DS | no64 | popSeg",
  "PUSH | 0F A0 | FS | d64 | pushSeg",
  "POP | 0F A1 | FS | d64 host | popSeg",
  "PUSH | 0F A8 | GS | d64 | pushSeg",
  "POP | 0F A9 | GS | d64 host | popSeg",
  "PUSHA | 60 | | no64 | pusha",
  "POPA | 61 | | no64 | popa",
  "PUSHF | 9C | | d64 r:all | pushf",
  "POPF | 9D | | d64 w:all | popf",
  "ENTER | C8 | Iw,Ib | d64 | enter",
  "LEAVE | C9 | | d64 | leave",
  // ---- control transfer (control.ts) ----
  "Jcc | 70+cc | Jb | f64 r:OSZPC | jcc",
  "Jcc | 0F 80+cc | Jz | f64 r:OSZPC | jcc",
  "JMP | EB | Jb | f64 | jmp",
  "JMP | E9 | Jz | f64 | jmp",
  "JMP | FF /4 | Ev | f64 | jmpAbs",
  "CALL | E8 | Jz | f64 | call",
  "CALL | FF /2 | Ev | f64 | callAbs",
  "RET | C3 | | f64 | ret",
  "RET | C2 | Iw | f64 | ret",
  "JMPF | EA | Ap | no64 | jmpFar",
  "JMPF | FF /5 | Mp | mem host | jmpFar",
  "CALLF | 9A | Ap | no64 | callFar",
  "CALLF | FF /3 | Mp | mem host | callFar",
  "RETF | CB | | host | retf",
  "RETF | CA | Iw | host | retf",
  "LOOPNE | E0 | Jb | f64 r:Z | loop",
  "LOOPE | E1 | Jb | f64 r:Z | loop",
  "LOOP | E2 | Jb | f64 | loop",
  "JCXZ | E3 | Jb | f64 | jcxz",
  "INT3 | CC | | w:TI | int3",
  "INT | CD | Ib | w:TI | int",
  "INTO | CE | | no64 r:O w:TI | into",
  "INT1 | F1 | | w:TI | int1",
  "IRET | CF | | host w:all | iret",
  // ---- string instructions (string-ops.ts) ----
  "MOVS | A4 | Yb,Xb | r:D | movs",
  "MOVS | A5 | Yv,Xv | r:D | movs",
  "CMPS | A6 | Xb,Yb | r:D w:OSZAPC | cmps",
  "CMPS | A7 | Xv,Yv | r:D w:OSZAPC | cmps",
  "STOS | AA | Yb,AL | r:D | stos",
  "STOS | AB | Yv,rAX | r:D | stos",
  "LODS | AC | AL,Xb | r:D | lods",
  "LODS | AD | rAX,Xv | r:D | lods",
  "SCAS | AE | AL,Yb | r:D w:OSZAPC | scas",
  "SCAS | AF | rAX,Yv | r:D w:OSZAPC | scas",
  "INS | 6C | Yb,DX | iopl r:D | ins",
  "INS | 6D | Yz,DX | iopl r:D | ins",
  "OUTS | 6E | DX,Xb | iopl r:D | outs",
  "OUTS | 6F | DX,Xz | iopl r:D | outs",
  // ---- flags and I/O (system.ts) ----
  "CLC | F8 | | w:C | clc",
  "STC | F9 | | w:C | stc",
  "CMC | F5 | | r:C w:C | cmc",
  "CLD | FC | | w:D | cld",
  "STD | FD | | w:D | std",
  "CLI | FA | | iopl w:I | cli",
  "STI | FB | | iopl w:I | sti",
  "IN | E4 | AL,Ib | iopl | in",
  "IN | E5 | eAX,Ib | iopl | in",
  "IN | EC | AL,DX | iopl | in",
  "IN | ED | eAX,DX | iopl | in",
  "OUT | E6 | Ib,AL | iopl | out",
  "OUT | E7 | Ib,eAX | iopl | out",
  "OUT | EE | DX,AL | iopl | out",
  "OUT | EF | DX,eAX | iopl | out",
  "HLT | F4 | | ring0 | hlt",
  "FWAIT | 9B | | | fwait",
  "CPUID | 0F A2 | | host | cpuid",
  "UD2 | 0F 0B | | | ud",
  "UD1 | 0F B9 /r | Gv,Ev | | ud",
  "NOP | 0F 1F /0 | Ev | | nop",
  "NOP | 0F 19 /r | Ev | | nop",
  "NOP | 0F 1A /r | Ev | | nop",
  "NOP | 0F 1B /r | Ev | | nop",
  "NOP | 0F 1C /r | Ev | | nop",
  "NOP | 0F 1D /r | Ev | | nop",
  "NOP | 0F 1E /r | Ev | | nop",
  "NOP | 0F 1F /r | Ev | | nop",
  "PREFETCHNTA | 0F 18 /0 | Mb | mem | nop",
  "PREFETCHT0 | 0F 18 /1 | Mb | mem | nop",
  "PREFETCHT1 | 0F 18 /2 | Mb | mem | nop",
  "PREFETCHT2 | 0F 18 /3 | Mb | mem | nop",
  "NOP | 0F 18 /r | Ev | | nop",
  "PREFETCHW | 0F 0D /1 | Mb | mem | nop",
  "PREFETCH | 0F 0D /r | Mb | mem | nop",
  "LFENCE | NP 0F AE !E8 | | feat:SSE2 | nop",
  "MFENCE | NP 0F AE !F0 | | feat:SSE2 | nop",
  "SFENCE | NP 0F AE !F8 | | feat:SSE | nop",
  "CLFLUSH | 0F AE /7 | Mb | mem feat:CLFSH | clflush",
  "RDTSC | 0F 31 | | host | rdtsc",
  "RDTSCP | 0F 01 !F9 | | host feat:RDTSCP | rdtscp",
  "RDRAND | 0F C7 /6 | Rv | reg host feat:RDRAND w:OSZAPC | rdrand",
  // ---- system (system.ts, segments.ts) ----
  "SLDT | 0F 00 /0 | Ew | host | sldt",
  "STR | 0F 00 /1 | Ew | host | str",
  "LLDT | 0F 00 /2 | Ew | ring0 | lldt",
  "LTR | 0F 00 /3 | Ew | ring0 | ltr",
  "VERR | 0F 00 /4 | Ew | host w:Z | verr",
  "VERW | 0F 00 /5 | Ew | host w:Z | verw",
  "VMCALL | 0F 01 !C1 | | host | vmcall",
  "SWAPGS | 0F 01 !F8 | | o64 ring0 | swapgs",
  // CPL > 0 is #UD, not the table's ring-0 #GP, and availability follows IA32_MISC_ENABLE[18] at run time
  // (monitor-mwait.ts); `host`: the native conformance run cannot execute them in ring 3 either.
  "MONITOR | 0F 01 !C8 | | host | monitor",
  "MWAIT | 0F 01 !C9 | | host | mwait",
  "SGDT | 0F 01 /0 | Ms | mem host | sgdt",
  "SIDT | 0F 01 /1 | Ms | mem host | sidt",
  "LGDT | 0F 01 /2 | Ms | mem ring0 | lgdt",
  "LIDT | 0F 01 /3 | Ms | mem ring0 | lidt",
  "SMSW | 0F 01 /4 | Ev | host | smsw",
  "LMSW | 0F 01 /6 | Ew | ring0 | lmsw",
  "INVLPG | 0F 01 /7 | M | mem ring0 | invlpg",
  "LAR | 0F 02 /r | Gv,Ew | host w:Z | lar",
  "LSL | 0F 03 /r | Gv,Ew | host w:Z | lsl",
  "SYSCALL | 0F 05 | | o64 host feat:SYSCALL w:all | syscall",
  "CLTS | 0F 06 | | ring0 | clts",
  "SYSRET | 0F 07 | | o64 ring0 feat:SYSCALL w:all | sysret",
  "INVD | 0F 08 | | ring0 | nop0",
  "WBINVD | 0F 09 | | ring0 | nop0",
  "MOV | 0F 20 /r | Ry,Cy | f64 ring0 | movFromCr",
  "MOV | 0F 21 /r | Ry,Dy | f64 ring0 | movFromDr",
  "MOV | 0F 22 /r | Cy,Ry | f64 ring0 | movToCr",
  "MOV | 0F 23 /r | Dy,Ry | f64 ring0 | movToDr",
  "WRMSR | 0F 30 | | ring0 | wrmsr",
  "RDMSR | 0F 32 | | ring0 | rdmsr",
  "SYSENTER | 0F 34 | | host feat:SEP w:all | sysenter",
  "SYSEXIT | 0F 35 | | ring0 feat:SEP w:all | sysexit",
  "INVPCID | 66 0F 38 82 /r | Gq,Mdq | mem ring0 feat:INVPCID | invpcid",
];

function aluRows(mn: string, base: number, h: string, attrs: string): string[] {
  const b = (n: number): string => (base + n).toString(16).toUpperCase().padStart(2, "0");
  const noLock = attrs.replace("lock ", "");
  return [
    `${mn} | ${b(0)} /r | Eb,Gb | ${attrs} | ${h}`,
    `${mn} | ${b(1)} /r | Ev,Gv | ${attrs} | ${h}`,
    `${mn} | ${b(2)} /r | Gb,Eb | ${noLock} | ${h}`,
    `${mn} | ${b(3)} /r | Gv,Ev | ${noLock} | ${h}`,
    `${mn} | ${b(4)} | AL,Ib | ${noLock} | ${h}`,
    `${mn} | ${b(5)} | rAX,Iz | ${noLock} | ${h}`,
  ];
}

function grp1Rows(): string[] {
  const names: Array<[string, string, string]> = [
    ["ADD", "add", "lock w:OSZAPC"],
    ["OR", "or", "lock w:OSZAPC u:A"],
    ["ADC", "adc", "lock r:C w:OSZAPC"],
    ["SBB", "sbb", "lock r:C w:OSZAPC"],
    ["AND", "and", "lock w:OSZAPC u:A"],
    ["SUB", "sub", "lock w:OSZAPC"],
    ["XOR", "xor", "lock w:OSZAPC u:A"],
    ["CMP", "cmp", "w:OSZAPC"],
  ];
  const out: string[] = [];
  names.forEach(([mn, h, attrs], ext) => {
    const a = attrs;
    out.push(`${mn} | 80 /${ext} | Eb,Ib | ${a} | ${h}`);
    out.push(`${mn} | 81 /${ext} | Ev,Iz | ${a} | ${h}`);
    out.push(`${mn} | 82 /${ext} | Eb,Ib | ${a} no64 | ${h}`);
    out.push(`${mn} | 83 /${ext} | Ev,Ibs | ${a} | ${h}`);
  });
  return out;
}

function shiftRows(): string[] {
  const ops: Array<[number, string, string, string]> = [
    [0, "ROL", "rol", "w:OC u:O"],
    [1, "ROR", "ror", "w:OC u:O"],
    [2, "RCL", "rcl", "r:C w:OC u:O"],
    [3, "RCR", "rcr", "r:C w:OC u:O"],
    [4, "SHL", "shl", "w:OSZAPC u:OA"],
    [5, "SHR", "shr", "w:OSZAPC u:OA"],
    [6, "SAL", "shl", "w:OSZAPC u:OA"],
    [7, "SAR", "sar", "w:OSZAPC u:OA"],
  ];
  const out: string[] = [];
  for (const [ext, mn, h, f] of ops) {
    out.push(`${mn} | C0 /${ext} | Eb,Ib | ${f} | ${h}`);
    out.push(`${mn} | C1 /${ext} | Ev,Ib | ${f} | ${h}`);
    out.push(`${mn} | D0 /${ext} | Eb,1 | ${f} | ${h}`);
    out.push(`${mn} | D1 /${ext} | Ev,1 | ${f} | ${h}`);
    out.push(`${mn} | D2 /${ext} | Eb,CL | ${f} | ${h}`);
    out.push(`${mn} | D3 /${ext} | Ev,CL | ${f} | ${h}`);
  }
  return out;
}

/** Condition-code suffixes in encoding order (SDM Vol. 1 B.1). */
export const CONDITION_NAMES = [
  "O",
  "NO",
  "B",
  "AE",
  "E",
  "NE",
  "BE",
  "A",
  "S",
  "NS",
  "P",
  "NP",
  "L",
  "GE",
  "LE",
  "G",
];

export class OpcodeTableError extends Error {
  override name = "OpcodeTableError";
}

function parseFlags(s: string): number {
  if (s === "all") return FLAGS_ALL;
  let m = 0;
  for (const ch of s) {
    const bit = {
      O: FLAG_OF,
      S: FLAG_SF,
      Z: FLAG_ZF,
      A: FLAG_AF,
      P: FLAG_PF,
      C: FLAG_CF,
      T: FLAG_TF,
      I: FLAG_IF,
      D: FLAG_DF,
    }[ch];
    if (bit === undefined) throw new OpcodeTableError(`bad flag letter ${ch} in "${s}"`);
    m |= bit;
  }
  return m;
}

const FEATURES: ReadonlySet<string> = new Set<Feature>([
  "LM",
  "CX8",
  "CX16",
  "CMOV",
  "POPCNT",
  "LZCNT",
  "BMI1",
  "MOVBE",
  "RDRAND",
  "RDTSCP",
  "SYSCALL",
  "SEP",
  "CLFSH",
  "SSE2",
  "INVPCID",
  "LAHF64",
  "FXSR",
  "MMX",
  "SSE",
  "SSE3",
  "SSSE3",
  "SSE41",
  "SSE42",
  "FPU",
  "XSAVE",
]);

/** Operand specs the decoder understands (see OPERAND NOTATION). */
const OPERAND_SPEC =
  /^(?:AL|CL|AX|DX|eAX|rAX|1|ES|CS|SS|DS|FS|GS|[EGRZ][bwdqvyz]|Ibs|I[bwdzv]|J[bz]|M(?:[bwdqvpsa]|dq)?|[CD][dqy]|Sw|O[bv]|Ap|[XY][bvz]|[VUW](?:ps|pd|ss|sd|x|dq|q|d|w|b)|[PNQ](?:q|d))$/;

/** Parses one ROW into one or more entries (+r and +cc expand). Exported for tests and helper tables. */
export function parseRow(row: string, firstId: number): OpcodeEntry[] {
  const parts = row.split("|").map((p) => p.trim());
  if (parts.length !== 5) throw new OpcodeTableError(`row needs 5 fields: ${row}`);
  const [mnemonic, enc, ops, attrs, handler] = parts as [string, string, string, string, string];
  const toks = enc.split(/\s+/);
  let prefix: MandatoryPrefix | null = null;
  let i = 0;
  if (toks[0] === "NP" || toks[0] === "66" || toks[0] === "F2" || toks[0] === "F3") {
    prefix = toks[0];
    i++;
  }
  let map = OpMap.Primary;
  if (toks[i] === "0F") {
    map = OpMap.M0F;
    i++;
    if (toks[i] === "38" && toks.length > i + 1 && /^[0-9A-F]{2}/.test(toks[i + 1] ?? "")) {
      map = OpMap.M0F38;
      i++;
    } else if (toks[i] === "3A" && toks.length > i + 1 && /^[0-9A-F]{2}/.test(toks[i + 1] ?? "")) {
      map = OpMap.M0F3A;
      i++;
    }
  }
  const opTok = toks[i++] ?? "";
  const m = /^([0-9A-F]{2})(\+r|\+cc)?$/.exec(opTok);
  if (!m) throw new OpcodeTableError(`bad opcode "${opTok}" in: ${row}`);
  const opcode = parseInt(m[1]!, 16);
  const expand = m[2] ?? "";
  let modrm = false;
  let ext = -1;
  let modrmByte = -1;
  const mr = toks[i];
  if (mr !== undefined) {
    if (mr === "/r") modrm = true;
    else if (/^\/[0-7]$/.test(mr)) {
      modrm = true;
      ext = Number(mr[1]);
    } else if (/^![0-9A-F]{2}$/.test(mr)) {
      modrm = true;
      modrmByte = parseInt(mr.slice(1), 16);
      ext = (modrmByte >> 3) & 7;
    } else throw new OpcodeTableError(`bad ModRM spec "${mr}" in: ${row}`);
  }
  const at = attrs.split(/\s+/).filter((a) => a.length > 0);
  let size: SizeRule = "default";
  let validIn64 = true;
  let validOutside64 = true;
  let lockable = false;
  let privilege: Privilege = "user";
  let modRestrict: "any" | "mem" | "reg" = modrmByte >= 0 ? "reg" : "any";
  let fr = 0;
  let fw = 0;
  let fu = 0;
  let feature: Feature | null = null;
  let rexW = -1;
  let noRexB = false;
  let approximate = false;
  let hostDependent = false;
  for (const a of at) {
    if (a === "lock") lockable = true;
    else if (a === "d64" || a === "f64") size = a;
    else if (a === "no64") validIn64 = false;
    else if (a === "o64") validOutside64 = false;
    else if (a === "ring0" || a === "iopl") privilege = a;
    else if (a === "mem" || a === "reg") modRestrict = a;
    else if (a === "rexw") rexW = 1;
    else if (a === "norexw") rexW = 0;
    else if (a === "norexb") noRexB = true;
    else if (a === "approx") approximate = true;
    else if (a === "host") hostDependent = true;
    else if (a.startsWith("feat:")) {
      const f = a.slice(5);
      if (!FEATURES.has(f)) throw new OpcodeTableError(`unknown feature ${f} in: ${row}`);
      feature = f as Feature;
    } else if (a.startsWith("r:")) fr = parseFlags(a.slice(2));
    else if (a.startsWith("w:")) fw = parseFlags(a.slice(2));
    else if (a.startsWith("u:")) fu = parseFlags(a.slice(2));
    else throw new OpcodeTableError(`unknown attribute "${a}" in: ${row}`);
  }
  const operands = ops.length === 0 ? [] : ops.split(",").map((o) => o.trim());
  for (const o of operands) {
    if (!OPERAND_SPEC.test(o)) throw new OpcodeTableError(`unknown operand spec "${o}" in: ${row}`);
  }
  const make = (id: number, mn: string, op: number): OpcodeEntry => ({
    id,
    mnemonic: mn,
    map,
    opcode: op,
    prefix,
    modrm,
    ext,
    modrmByte,
    modRestrict,
    operands,
    size,
    validIn64,
    validOutside64,
    lockable,
    privilege,
    flagsRead: fr,
    flagsWritten: fw | fu,
    flagsUndefined: fu,
    feature,
    rexW,
    noRexB,
    hostDependent,
    handler,
    approximate,
  });
  if (expand === "+r") return Array.from({ length: 8 }, (_, r) => make(firstId + r, mnemonic, opcode + r));
  if (expand === "+cc")
    return CONDITION_NAMES.map((cc, n) => make(firstId + n, mnemonic.replace("cc", cc), opcode + n));
  return [make(firstId, mnemonic, opcode)];
}

function build(rows: readonly string[]): OpcodeEntry[] {
  const out: OpcodeEntry[] = [];
  for (const r of rows) out.push(...parseRow(r, out.length));
  return out;
}

/** Every implemented encoding form. Other modules (SIMD) append with `registerRows` before the first decode. */
export const OPCODES: OpcodeEntry[] = build(ROWS);

/** Candidate rows per (map, opcode byte), in table order; index map * 256 + opcode. */
export const BY_OPCODE: Array<OpcodeEntry[] | undefined> = new Array<OpcodeEntry[] | undefined>(4 * 256);

function index(e: OpcodeEntry, priority = false): void {
  const k = e.map * 256 + e.opcode;
  const list = BY_OPCODE[k] ?? (BY_OPCODE[k] = []);
  const first = list[0];
  if (first !== undefined && first.modrm !== e.modrm) {
    throw new OpcodeTableError(`${e.mnemonic}: rows for map ${e.map} opcode ${e.opcode} disagree on ModRM`);
  }
  if (priority) list.unshift(e);
  else list.push(e);
}
for (const e of OPCODES) index(e);

/**
 * Adds rows (same syntax) to the table — the extension point for instruction groups kept in their own
 * modules (x87/SSE). Must run before the processor is constructed, since dispatch is built from OPCODES.
 * `priority` rows are tried before the existing rows of their opcode (a mandatory-prefix form such as
 * F2 0F 38 F0 CRC32 that an earlier prefix-agnostic row, MOVBE, would otherwise shadow).
 */
export function registerRows(rows: readonly string[], priority = false): OpcodeEntry[] {
  const added: OpcodeEntry[] = [];
  for (const r of rows) {
    for (const e of parseRow(r, OPCODES.length)) {
      OPCODES.push(e);
      index(e, priority);
      added.push(e);
    }
  }
  return added;
}
