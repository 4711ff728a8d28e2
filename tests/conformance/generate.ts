// Owns: generating conformance cases from the opcode table: for every user-mode encoding form, randomized
// (seeded, reproducible) encodings — prefixes (66, 67, REX.W/R/X/B, segment overrides that are no-ops in
// 64-bit mode, REP/REPNE on string forms, LOCK on lockable memory forms and on invalid forms), ModRM/SIB
// addressing whose effective address lands in the data pages or deliberately outside them, immediates,
// registers and memory from edge sets, random flags — plus the per-case undefined-flags mask.
// Must not: know how cases are executed (runner.c / emulator-side.ts) or compare results.
// Spec: Intel SDM Vol. 2A ch. 2 (instruction format, ModRM/SIB tables 2-2/2-3, REX 2.2.1, RIP-relative
// 2.2.1.6), Vol. 2A-2D per-instruction "Flags Affected" (undefined flags, shift/rotate count rules), Vol. 3A
// 6.15 (exception conditions); opcode notation of Vol. 2D appendix A as used by src/x86/opcode-table.ts.

import {
  FLAG_AC,
  FLAG_CF,
  FLAG_DF,
  FLAG_OF,
  FLAGS_STATUS,
  OPCODES,
  OpMap,
  type Feature,
  type OpcodeEntry,
} from "../../src/x86/opcode-table.js";

/** Fixed linear addresses shared by the native runner and the emulator-side machine. */
export const CODE_BASE = 0x1000_0000;
export const DATA_BASE = 0x2000_0000;
export const DATA_SIZE = 8192;
/** Where the instruction normally sits in the code page; the rest of the page is the FILLER byte (HLT). */
export const CODE_OFF = 0x800;

export interface Poke {
  off: number;
  bytes: Uint8Array;
}

export interface Case {
  /** Index into the form list. */
  form: number;
  code: Uint8Array;
  codeOff: number;
  /** Seed of the data-page fill (xorshift32, identical in runner.c and emulator-side.ts). */
  memSeed: number;
  regs: bigint[];
  rflags: number;
  /** Up to two 16-byte patches of the data image (edge values at the effective address, stack slots). */
  pokes: Poke[];
  /** RFLAGS bits left undefined by this case's instruction (masked when it completes). */
  undefMask: number;
  /** XMM0-15 (256 bytes, little-endian) and MXCSR loaded before the instruction. */
  xmm: Uint8Array;
  mxcsr: number;
  /** Whether the form has XMM operands (for reporting). */
  simd: boolean;
  /** What the encoding selected, for the rules of documented model-specific behaviour (model-specific.ts). */
  ops: Operands;
}

/** The operands a case's encoding selected (not sent to the runner: both sides decode the bytes). */
export interface Operands {
  /** ModRM.mod (3: register form, -1: no ModRM), ModRM.reg and ModRM.rm with REX.R / REX.B applied. */
  mod: number;
  reg: number;
  rm: number;
  /** Operand size in bytes (2, 4 or 8) and whether a 67h prefix selected 32-bit addressing. */
  osz: number;
  a32: boolean;
  /** The F3/F2 repeat prefix of a string form, or -1. */
  rep: number;
  /** Linear address of the ModRM/moffs memory operand (null without one) and its data-page offset (-1: outside). */
  ea: bigint | null;
  memOff: number;
  /** The first 8-bit immediate, or -1. */
  imm8: number;
}

export interface Form {
  entry: OpcodeEntry;
  name: string;
  /** "exec": valid in 64-bit mode; "ud64": an opcode that is invalid in 64-bit mode (expects #UD). */
  kind: "exec" | "ud64";
}

export interface Skipped {
  name: string;
  reason: string;
}

const M64 = (1n << 64n) - 1n;

/** mulberry32: small, fast, reproducible. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  int(n: number): number {
    return this.u32() % n;
  }
  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
}

export function formName(e: OpcodeEntry): string {
  const map =
    e.map === OpMap.M0F ? "0F " : e.map === OpMap.M0F38 ? "0F 38 " : e.map === OpMap.M0F3A ? "0F 3A " : "";
  const pfx = e.prefix !== null && e.prefix !== "NP" ? `${e.prefix} ` : "";
  const op = e.opcode.toString(16).toUpperCase().padStart(2, "0");
  const mr =
    e.modrmByte >= 0
      ? ` !${e.modrmByte.toString(16).toUpperCase()}`
      : e.ext >= 0
        ? ` /${e.ext}`
        : e.modrm
          ? " /r"
          : "";
  const w = e.rexW === 1 ? " W1" : "";
  return `${e.mnemonic} ${pfx}${map}${op}${mr}${w} ${e.operands.join(",")}`.trim();
}

const X87_STATE_HANDLERS = new Set(["fxsave", "fxrstor", "xsave", "xrstor", "xgetbv", "xsetbv"]);

/** Opcodes that are prefixes (REX, VEX) in 64-bit mode, so their no64 rows have no 64-bit meaning to test. */
const PREFIX_IN_64 = new Set([
  0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f, 0xc4, 0xc5,
]);

/**
 * The forms to test: user-mode rows valid in 64-bit mode whose feature both the host and the emulated CPUID
 * have, plus no64 rows whose opcode has no other 64-bit meaning (expected #UD). Rows the table marks
 * host-dependent and ring-0 rows are skipped (listed with the reason).
 */
export function selectForms(
  hostHas: (f: Feature) => boolean,
  emuHas: (f: Feature) => boolean,
): { forms: Form[]; skipped: Skipped[] } {
  const forms: Form[] = [];
  const skipped: Skipped[] = [];
  for (const e of OPCODES) {
    const name = formName(e);
    if (e.privilege === "ring0") skipped.push({ name, reason: "ring 0 only" });
    else if (
      e.operands.some((o) => /^[PQN]/.test(o)) ||
      e.feature === "FPU" ||
      e.feature === "MMX" ||
      (e.map === OpMap.Primary && e.opcode >= 0xd8 && e.opcode <= 0xdf) // x87 escapes (FISTTP is SSE3)
    )
      skipped.push({ name, reason: "MMX/x87 register state is not loaded by the runner" });
    else if (X87_STATE_HANDLERS.has(e.handler))
      skipped.push({ name, reason: "saves/loads x87 state or depends on the host XCR0" });
    else if (e.hostDependent) skipped.push({ name, reason: "host-dependent (table: host)" });
    else if (!e.validIn64) {
      const shadowed = OPCODES.some(
        (o) => o !== e && o.validIn64 && o.map === e.map && o.opcode === e.opcode,
      );
      if (e.map === OpMap.Primary && PREFIX_IN_64.has(e.opcode))
        skipped.push({ name, reason: "a prefix in 64-bit mode" });
      else if (shadowed) skipped.push({ name, reason: "opcode reused in 64-bit mode" });
      else forms.push({ entry: e, name, kind: "ud64" });
    } else if (e.feature !== null && !hostHas(e.feature))
      skipped.push({ name, reason: `host lacks ${e.feature}` });
    else if (e.feature !== null && !emuHas(e.feature))
      skipped.push({ name, reason: `emulated CPUID lacks ${e.feature}` });
    else forms.push({ entry: e, name, kind: "exec" });
  }
  return { forms, skipped };
}

// ------------------------------------------------------------------------------------------------------
// value helpers

function edge(rng: Rng, bits: number): bigint {
  const max = (1n << BigInt(bits)) - 1n;
  const smin = 1n << BigInt(bits - 1);
  switch (rng.int(12)) {
    case 0:
      return 0n;
    case 1:
      return 1n;
    case 2:
      return max;
    case 3:
      return smin - 1n;
    case 4:
      return smin;
    case 5:
      return smin + 1n;
    case 6:
      return max - 1n;
    case 7:
      return BigInt(rng.int(256));
    case 8:
      return (max - BigInt(rng.int(256))) & max;
    default:
      return rng.u64() & max;
  }
}

/** A 64-bit register value: an edge value of a random width with random bits above it, or random. */
function regValue(rng: Rng): bigint {
  if (rng.chance(0.3)) return rng.u64();
  const bits = rng.pick([8, 16, 32, 64]);
  const hi = bits === 64 ? 0n : rng.chance(0.5) ? rng.u64() & ~((1n << BigInt(bits)) - 1n) & M64 : 0n;
  return hi | edge(rng, bits);
}

function leBytes(v: bigint, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = v & ((1n << BigInt(8 * n)) - 1n);
  for (let i = 0; i < n; i++) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

function sizeOfType(t: string, osz: number): number {
  if (t === "b") return 1;
  if (t === "w") return 2;
  if (t === "d") return 4;
  if (t === "q") return 8;
  if (t === "dq" || t === "x" || t === "ps" || t === "pd") return 16;
  if (t === "ss") return 4;
  if (t === "sd") return 8;
  if (t === "v") return osz;
  if (t === "z") return osz === 2 ? 2 : 4;
  if (t === "y") return osz === 8 ? 8 : 4;
  if (t === "p") return osz === 2 ? 4 : osz === 4 ? 6 : 10;
  return 8;
}

/** Single-precision patterns: zeros, one, infinities, QNaN/SNaN, denormals, extremes, 2^31/2^63/2^32. */
const F32_EDGES = [
  0, 0x80000000, 0x3f800000, 0xbf800000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7fa00000,
  0x00000001, 0x807fffff, 0x007fffff, 0x00800000, 0x7f7fffff, 0xff7fffff, 0x4f000000, 0xcf000000, 0x5f000000,
];
/** Double-precision patterns, likewise. */
const F64_EDGES = [
  0n,
  0x8000000000000000n,
  0x3ff0000000000000n,
  0x7ff0000000000000n,
  0xfff0000000000000n,
  0x7ff8000000000000n,
  0x7ff4000000000000n,
  0x0000000000000001n,
  0x000fffffffffffffn,
  0x0010000000000000n,
  0x7fefffffffffffffn,
  0x41e0000000000000n,
  0xc1e0000000000000n,
  0x43e0000000000000n,
  0xc3e0000000000000n,
];

/** Shift/rotate count values worth hitting (0, 1, masked boundaries, beyond the mask). */
const COUNTS = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 47, 63, 64, 65, 127, 128, 255];

const STACK_HANDLERS = new Set([
  "push",
  "pop",
  "pushf",
  "popf",
  "call",
  "callAbs",
  "ret",
  "enter",
  "leave",
  "pushSeg",
]);
const STRING_HANDLERS = new Set(["movs", "cmps", "stos", "lods", "scas", "ins", "outs"]);
const SHIFT_HANDLERS = new Set(["rol", "ror", "rcl", "rcr", "shl", "shr", "sar", "shld", "shrd"]);

interface Build {
  bytes: number[];
  dispAt: number;
  ripRel: boolean;
  ripTarget: bigint;
}

/** Whether an address is in the data pages or the unmapped pages on either side of them. */
function nearData(ea: bigint): boolean {
  return ea >= BigInt(DATA_BASE - 4096) && ea < BigInt(DATA_BASE + DATA_SIZE + 4096);
}

/** Generates one case for a form. */
export function generateCase(form: Form, formIndex: number, rng: Rng): Case {
  const e = form.entry;
  const h = e.handler;
  const regs: bigint[] = Array.from({ length: 16 }, () => regValue(rng));
  const fixed = new Set<number>();
  const pokes: Poke[] = [];
  let memSeed = rng.u32();
  if (memSeed === 0) memSeed = 1;
  let rflags = (rng.u32() & FLAGS_STATUS) | 0x202;
  if (rng.chance(0.25)) rflags |= FLAG_DF;
  if (rng.chance(0.1)) rflags |= FLAG_AC;

  const ops = e.operands;
  const hasMemOperand = e.modrm && e.modrmByte < 0 && e.modRestrict !== "reg";
  const isMem = hasMemOperand && (e.modRestrict === "mem" || rng.chance(0.5));
  const gprF3 =
    e.prefix === "F3" && (e.feature === "POPCNT" || e.feature === "BMI1" || e.feature === "LZCNT");

  // ---- prefixes ----
  const lockable = e.lockable && isMem;
  const lock = lockable ? rng.chance(0.25) : rng.chance(0.04);
  // BSWAP of a 16-bit register is undefined (SDM BSWAP); near branches with 66h differ between vendors.
  const allow66 = (e.prefix === null || gprF3) && e.size !== "f64" && h !== "bswap";
  const op66 = allow66 && rng.chance(0.25);
  const rexW = e.rexW === 1 ? true : e.rexW === 0 ? false : rng.chance(0.35);
  const noRex = e.modrmByte >= 0;
  const useRex = !noRex && (rexW || rng.chance(0.4));
  const rexR = useRex && rng.chance(0.5);
  const rexX = useRex && rng.chance(0.5);
  let rexB = useRex && rng.chance(0.5);
  if (e.map === OpMap.Primary && e.opcode === 0x90) rexB = e.mnemonic === "XCHG" && useRex;
  const isString = STRING_HANDLERS.has(h);
  const adsizeUser =
    isMem || isString || h === "loop" || h === "jcxz" || h === "xlat" || ops.some((o) => o.startsWith("O"));
  const a32 = adsizeUser && rng.chance(0.2);
  const segOv =
    (isMem || isString || h === "xlat") && rng.chance(0.08) ? rng.pick([0x26, 0x2e, 0x36, 0x3e]) : -1;
  let rep = -1;
  if (isString && rng.chance(0.6)) rep = h === "cmps" || h === "scas" ? rng.pick([0xf3, 0xf2]) : 0xf3;

  let osz: number;
  if (e.size === "f64") osz = 8;
  else if (e.size === "d64") osz = op66 && !rexW ? 2 : 8;
  else osz = rexW ? 8 : op66 ? 2 : 4;

  const b: Build = { bytes: [], dispAt: -1, ripRel: false, ripTarget: 0n };
  const pre: number[] = [];
  if (lock) pre.push(0xf0);
  if (segOv >= 0) pre.push(segOv);
  if (op66) pre.push(0x66);
  if (a32) pre.push(0x67);
  if (rep >= 0) pre.push(rep);
  if (e.prefix === "F2") pre.push(0xf2);
  else if (e.prefix === "F3") pre.push(0xf3);
  else if (e.prefix === "66") pre.push(0x66);
  // Shuffle the order of the legacy prefixes (the mandatory one stays last).
  const mand = e.prefix === "F2" || e.prefix === "F3" || e.prefix === "66" ? pre.pop() : undefined;
  for (let i = pre.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [pre[i], pre[j]] = [pre[j]!, pre[i]!];
  }
  if (mand !== undefined) pre.push(mand);
  b.bytes.push(...pre);

  // ---- ModRM fields ----
  let mod = 3;
  let regField = 0;
  let rmField = 0;
  if (e.modrm) {
    if (e.modrmByte >= 0) {
      mod = e.modrmByte >> 6;
      regField = (e.modrmByte >> 3) & 7;
      rmField = e.modrmByte & 7;
    } else {
      regField = e.ext >= 0 ? e.ext : rng.int(8);
      mod = isMem ? rng.int(3) : 3;
      rmField = rng.int(8);
    }
  }

  // ---- handler-specific register values (addressing may override some) ----
  const stackForm = STACK_HANDLERS.has(h);
  if (stackForm) {
    const r = rng.u32() % 100;
    let off: number;
    if (r < 8) off = rng.int(48);
    else if (r < 12) off = DATA_SIZE - rng.int(24);
    else off = 512 + rng.int(DATA_SIZE - 1024);
    if (rng.chance(0.85)) off &= ~7;
    regs[4] = BigInt(DATA_BASE + off);
    fixed.add(4);
  }
  if (isString || h === "xlat") {
    const place = (): bigint => {
      const r = rng.u32() % 100;
      const off = r < 6 ? DATA_SIZE - rng.int(40) : r < 10 ? rng.int(40) : 256 + rng.int(DATA_SIZE - 512);
      const base = BigInt(DATA_BASE + off);
      return a32 && rng.chance(0.5) ? (rng.u64() & 0xffffffff00000000n) | base : base;
    };
    regs[6] = place();
    regs[7] = place();
    regs[3] = place();
    if (rep >= 0 || rng.chance(0.3)) {
      const c = rng.chance(0.1) ? 0n : BigInt(rng.int(24));
      regs[1] = a32 && rng.chance(0.3) ? (rng.u64() & 0xffffffff00000000n) | c : c;
    }
    if ((h === "cmps" || h === "scas") && rng.chance(0.4)) {
      // Equal runs so REPE continues past the first element.
      const bytes = new Uint8Array(16).map(() => rng.int(256));
      const si = Number((regs[6]! & 0xffffffffn) - BigInt(DATA_BASE));
      const di = Number((regs[7]! & 0xffffffffn) - BigInt(DATA_BASE));
      const fl = (rflags & FLAG_DF) !== 0 ? -15 : 0;
      for (const o of h === "cmps" ? [si + fl, di + fl] : [di + fl]) {
        if (o >= 0 && o + 16 <= DATA_SIZE) pokes.push({ off: o, bytes });
      }
      if (h === "scas") regs[0] = bytesToBig(bytes.slice(0, 8));
    }
  }
  if (h === "loop" || h === "jcxz") {
    regs[1] = rng.pick([0n, 1n, 2n, 0x1_0000_0000n, 0x1_0000_0001n, M64, 0xffff_ffffn, regValue(rng)]);
  }
  if (h === "leave" || h === "enter") {
    regs[5] = BigInt(DATA_BASE + 1024 + (rng.int(DATA_SIZE - 2048) & ~7));
    fixed.add(5);
    if (h === "enter") {
      regs[4] = BigInt(DATA_BASE + 2048 + (rng.int(DATA_SIZE - 2048) & ~7));
    }
  }
  if (h === "div" || h === "idiv") {
    // Dividend in rDX:rAX (AX for the byte form); the divisor is set once the operand is known.
    if (h === "idiv" && rng.chance(0.5)) regs[2] = (regs[0]! >> 63n) & 1n ? M64 : 0n;
    else if (rng.chance(0.5)) regs[2] = BigInt(rng.int(4));
  }

  // ---- opcode ----
  const rex = 0x40 | (rexW ? 8 : 0) | (rexR ? 4 : 0) | (rexX ? 2 : 0) | (rexB ? 1 : 0);
  if (useRex) b.bytes.push(rex);
  if (e.map === OpMap.M0F) b.bytes.push(0x0f);
  else if (e.map === OpMap.M0F38) b.bytes.push(0x0f, 0x38);
  else if (e.map === OpMap.M0F3A) b.bytes.push(0x0f, 0x3a);
  b.bytes.push(e.opcode);

  // ---- ModRM / SIB / displacement and the memory target ----
  const memOp = ops.find((o) => /^[EMRQW]/.test(o) || o === "M") ?? "";
  const memSize = memOp === "M" ? 1 : sizeOfType(memOp.slice(1) || "q", osz);
  let memOff = -1; // data-page offset of the effective address, when it is in the data pages
  let memEa: bigint | null = null;
  if (e.modrm) {
    if (mod === 3) {
      b.bytes.push(0xc0 | (regField << 3) | rmField);
    } else {
      const m = encodeMemory(rng, b, mod, regField, rmField, {
        regs,
        fixed,
        rexX,
        rexB,
        a32,
        memSize,
        btReg: (h === "bt" || h === "bts" || h === "btr" || h === "btc") && !ops.includes("Ib"),
        stackForm,
      });
      memOff = m.off;
      memEa = m.ea;
    }
  }

  // ---- immediates ----
  let shiftCount = -1;
  let imm8 = -1;
  for (const o of ops) {
    if (o === "Ib" || o === "Ibs") {
      let v = rng.int(256);
      if (SHIFT_HANDLERS.has(h) || h === "bt" || h === "bts" || h === "btr" || h === "btc")
        v = rng.chance(0.7) ? rng.pick(COUNTS) : v;
      // INT n: 3 and 4 reach DPL-3 gates; other vectors below 0x20 are handled idiosyncratically by the host
      // kernel (not by the processor), and int 0x80 would be a real system call, so those are left out.
      if (h === "int")
        v = rng.chance(0.3) ? rng.pick([3, 4, 0x20, 0x21, 0x2e, 0x81, 0xff]) : v < 0x20 ? v + 0x20 : v;
      if (h === "int" && v === 0x80) v = 0x81;
      if (h === "enter") v = rng.chance(0.8) ? rng.int(4) : rng.int(256);
      // SHLD/SHRD r/m16 with a masked count above 16: result undefined (SDM SHLD/SHRD); keep it defined.
      if ((h === "shld" || h === "shrd") && osz === 2 && (v & 31) > 16) v &= 15;
      if (SHIFT_HANDLERS.has(h)) shiftCount = v;
      if (imm8 < 0) imm8 = v;
      b.bytes.push(v);
    } else if (o === "Iw") {
      const v = h === "enter" ? (rng.chance(0.9) ? rng.int(0x200) : rng.int(0x10000)) : Number(edge(rng, 16));
      b.bytes.push(v & 0xff, v >> 8);
    } else if (o === "Iz") {
      b.bytes.push(...leBytes(edge(rng, 32), osz === 2 ? 2 : 4));
    } else if (o === "Iv") {
      b.bytes.push(...leBytes(edge(rng, osz * 8), osz));
    } else if (o === "Ob" || o === "Ov") {
      const n = a32 ? 4 : 8;
      const accessSize = o === "Ob" ? 1 : osz;
      let t = memTarget(rng, accessSize);
      if (a32 && !nearData(t.ea)) t = { ea: BigInt(DATA_BASE + DATA_SIZE + rng.int(4096)), off: -1 };
      memOff = t.off;
      memEa = a32 ? t.ea & 0xffffffffn : t.ea;
      b.bytes.push(...leBytes(memEa, n));
    } else if (o === "Jb" || o === "Jz") {
      b.bytes.push(...branchPlaceholder(o));
    }
  }
  if (form.kind === "exec" && ops.includes("1") && SHIFT_HANDLERS.has(h)) shiftCount = 1;
  if (ops.includes("CL") && SHIFT_HANDLERS.has(h) && !fixed.has(1)) {
    regs[1] = (regs[1]! & ~0xffn) | BigInt(rng.chance(0.8) ? rng.pick(COUNTS) : rng.int(256));
  }
  if ((h === "shld" || h === "shrd") && osz === 2 && ops.includes("CL") && Number(regs[1]! & 31n) > 16) {
    if (fixed.has(1)) return generateCase(form, formIndex, rng);
    regs[1] = regs[1]! & ~16n;
  }

  // ---- finalize length-dependent fields: branch displacements, RIP-relative displacement ----
  let codeOff = CODE_OFF;
  const len = b.bytes.length;
  if (len > 15) return generateCase(form, formIndex, rng); // rare: too many optional prefixes
  // Straddling into the unmapped page: fetch #PF. Not for invalid opcodes, where vendors order the fetch
  // fault and #UD differently (AMD fetches 82h's immediate before #UD but raises UD1's #UD first).
  if (rng.chance(0.02) && len > 1 && form.kind === "exec" && h !== "ud")
    codeOff = 4096 - 1 - rng.int(len - 1);
  const next = CODE_BASE + codeOff + len;
  const jOp = ops.find((o) => o === "Jb" || o === "Jz");
  if (jOp !== undefined) {
    const n = jOp === "Jb" ? 1 : 4;
    const target = branchTarget(rng, codeOff, len, n);
    const rel = target - next;
    const rb = leBytes(BigInt.asUintN(n * 8, BigInt(rel)), n);
    for (let i = 0; i < n; i++) b.bytes[len - n + i] = rb[i]!;
  }
  if (b.ripRel) {
    const disp = BigInt.asUintN(32, b.ripTarget - BigInt(next));
    const db = leBytes(disp, 4);
    for (let i = 0; i < 4; i++) b.bytes[b.dispAt + i] = db[i]!;
  }

  // ---- operand values that depend on the final encoding ----
  if (memOff >= 0 && memOff + memSize <= DATA_SIZE && memSize <= 16) {
    let v = edge(rng, Math.min(memSize, 8) * 8);
    if (h === "callAbs" || h === "jmpAbs") v = codeTargetValue(rng, codeOff, len);
    const bytes = leBytes(v, memSize);
    if (memSize === 16) bytes.set(leBytes(edge(rng, 64), 8), 8);
    pokes.push({ off: memOff, bytes });
  }
  const rmReg = rmField + (rexB ? 8 : 0);
  const regReg = regField + (rexR ? 8 : 0);
  if ((h === "callAbs" || h === "jmpAbs") && mod === 3) regs[rmReg] = codeTargetValue(rng, codeOff, len);
  if (h === "ret") {
    const sp = Number(regs[4]! - BigInt(DATA_BASE));
    if (sp >= 0 && sp + 8 <= DATA_SIZE)
      pokes.push({ off: sp, bytes: leBytes(codeTargetValue(rng, codeOff, len), 8) });
  }
  if (h === "popf") {
    const sp = Number(regs[4]! - BigInt(DATA_BASE));
    const v = rng.u64() & ~0x100n; // TF would single-step the trampoline (not modelled here)
    if (sp >= 0 && sp + 8 <= DATA_SIZE) pokes.push({ off: sp, bytes: leBytes(v, 8) });
  }
  if (h === "div" || h === "idiv")
    setDivisor(rng, e, osz, mod, rmReg, regs, pokes, memOff, h === "idiv", useRex);
  if (h === "cmpxchg" && rng.chance(0.5)) {
    const sz = ops[0] === "Eb" ? 1 : osz;
    const m = (1n << BigInt(sz * 8)) - 1n;
    let cur: bigint;
    if (mod === 3) cur = readReg(regs, rmReg, sz, useRex);
    else {
      const p = pokes.find((x) => x.off === memOff);
      cur = p === undefined ? 0n : bytesToBig(p.bytes.slice(0, sz));
    }
    if (!(mod !== 3 && memOff < 0)) regs[0] = (regs[0]! & ~m) | (cur & m);
  }
  if (h === "cmpxchg8b" && memOff >= 0 && rng.chance(0.5)) {
    const p = pokes.find((x) => x.off === memOff);
    if (p !== undefined) {
      const half = rexW ? 8 : 4;
      const m = (1n << BigInt(half * 8)) - 1n;
      const lo = bytesToBig(p.bytes.slice(0, half));
      const hi = bytesToBig(p.bytes.slice(half, half * 2));
      regs[0] = (regs[0]! & ~m & M64) | lo;
      regs[2] = (regs[2]! & ~m & M64) | hi;
    }
  }
  if (h === "bt" || h === "bts" || h === "btr" || h === "btc") {
    if (mod !== 3 && !ops.includes("Ib")) {
      // The bit offset selects memory relative to the operand: it must not also be an address register,
      // and stays small enough to remain in (or just outside) the data pages.
      if (fixed.has(regReg)) return generateCase(form, formIndex, rng);
      const m = (1n << BigInt(osz * 8)) - 1n;
      regs[regReg] =
        (regs[regReg]! & ~m & M64) | (BigInt.asUintN(osz * 8, BigInt(rng.int(24000) - 12000)) & m);
    }
  }

  // ---- per-case undefined flags ----
  let undef = e.flagsUndefined;
  if (SHIFT_HANDLERS.has(h)) {
    const cnt = ops.includes("CL") ? Number(regs[1]! & 0xffn) : shiftCount;
    const w = ops[0] === "Eb" ? 8 : osz * 8;
    const masked = cnt & (w === 64 ? 63 : 31);
    if (masked === 0) undef = 0;
    else {
      if (masked === 1) undef &= ~FLAG_OF;
      // SDM SAL/SAR/SHL/SHR: CF is undefined for SHL/SHR when the count is >= the operand width.
      if ((h === "shl" || h === "shr") && masked >= w) undef |= FLAG_CF;
      // SHLD/SHRD: a count greater than the operand size leaves result and flags undefined.
      if ((h === "shld" || h === "shrd") && masked > w) undef |= FLAGS_STATUS;
    }
  }
  // ---- SIMD state ----
  const simd = ops.some((o) => /^[VWU]/.test(o));
  const xmm = new Uint8Array(256);
  const xv = new DataView(xmm.buffer);
  for (let i = 0; i < 64; i += 2) {
    const r = rng.int(4);
    if (r === 0) {
      xv.setUint32(i * 4, rng.pick(F32_EDGES), true);
      xv.setUint32(i * 4 + 4, rng.pick(F32_EDGES), true);
    } else if (r === 1) {
      xv.setBigUint64(i * 4, rng.pick(F64_EDGES), true);
    } else {
      xv.setUint32(i * 4, rng.u32(), true);
      xv.setUint32(i * 4 + 4, rng.u32(), true);
    }
  }
  let mxcsr = 0x1f80;
  if (simd) {
    mxcsr |= rng.int(4) << 13; // rounding control
    if (rng.chance(0.3)) mxcsr |= 0x40; // DAZ
    if (rng.chance(0.3)) mxcsr |= 0x8000; // FTZ
    if (rng.chance(0.3)) mxcsr |= rng.int(64); // sticky exception flags
    if (rng.chance(0.25)) mxcsr &= ~((rng.int(64) | 1) << 7); // unmask some exceptions: #XM
    if (memOff >= 0 && memSize >= 4 && memSize <= 16 && rng.chance(0.6)) {
      // Float edge values at the memory operand too.
      const bytes = new Uint8Array(memSize);
      const bv = new DataView(bytes.buffer);
      for (let i = 0; i + 4 <= memSize; i += 4) bv.setUint32(i, rng.pick(F32_EDGES), true);
      const k = pokes.findIndex((p) => p.off === memOff);
      if (k >= 0) pokes[k] = { off: memOff, bytes };
    }
  }
  if (h === "maskmov") regs[7] = BigInt(DATA_BASE + 64 + rng.int(DATA_SIZE - 128));
  const code = Uint8Array.from(b.bytes);
  return {
    form: formIndex,
    code,
    codeOff,
    memSeed,
    regs,
    rflags,
    pokes: pokes.slice(0, 2),
    undefMask: undef,
    xmm,
    mxcsr,
    simd,
    ops: {
      mod: e.modrm ? mod : -1,
      reg: e.modrm ? regReg : -1,
      rm: e.modrm ? rmReg : -1,
      osz,
      a32,
      rep,
      ea: memEa,
      memOff,
      imm8,
    },
  };
}

function bytesToBig(a: Uint8Array): bigint {
  let v = 0n;
  for (let i = a.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(a[i]!);
  return v;
}

function readReg(regs: bigint[], r: number, sz: number, rex: boolean): bigint {
  if (sz === 1 && !rex && r >= 4 && r < 8) return (regs[r - 4]! >> 8n) & 0xffn;
  return regs[r]! & ((1n << BigInt(sz * 8)) - 1n);
}

function setDivisor(
  rng: Rng,
  e: OpcodeEntry,
  osz: number,
  mod: number,
  rmReg: number,
  regs: bigint[],
  pokes: Poke[],
  memOff: number,
  signed: boolean,
  rex: boolean,
): void {
  const sz = e.operands[0] === "Eb" ? 1 : osz;
  const bits = sz * 8;
  const r = rng.int(8);
  let d: bigint;
  if (r === 0) d = 0n;
  else if (r === 1 && signed)
    d = (1n << BigInt(bits)) - 1n; // -1 (with a minimum dividend: #DE)
  else if (r < 5) d = BigInt(1 + rng.int(255));
  else d = edge(rng, bits) | 1n;
  if (r === 1 && signed && rng.chance(0.5)) {
    // Most negative dividend / -1 overflows.
    if (sz === 1) regs[0] = (regs[0]! & ~0xffffn) | 0x8000n;
    else {
      const m = (1n << BigInt(bits)) - 1n;
      regs[0] = regs[0]! & ~m & M64;
      regs[2] = (regs[2]! & ~m & M64) | (1n << BigInt(bits - 1));
    }
  }
  if (mod === 3) {
    if (sz === 1 && !rex && rmReg >= 4 && rmReg < 8) {
      // Without REX these encodings are AH..BH.
      regs[rmReg - 4] = (regs[rmReg - 4]! & ~0xff00n) | (d << 8n);
    } else {
      const m = (1n << BigInt(bits)) - 1n;
      regs[rmReg] = (regs[rmReg]! & ~m & M64) | d;
    }
  } else if (memOff >= 0 && memOff + sz <= DATA_SIZE) {
    const i = pokes.findIndex((p) => p.off === memOff);
    const p = { off: memOff, bytes: leBytes(d, sz) };
    if (i >= 0) pokes[i] = p;
    else pokes.push(p);
  }
}

/** A value for an indirect branch target: mostly a filler byte in the code page, sometimes elsewhere. */
function codeTargetValue(rng: Rng, codeOff: number, len: number): bigint {
  const r = rng.int(100);
  if (r < 80) return BigInt(CODE_BASE + fillerOffset(rng, codeOff, len));
  if (r < 88) return BigInt(DATA_BASE + rng.int(DATA_SIZE)); // not executable: #PF
  if (r < 94) return BigInt(CODE_BASE + 0x1000 + rng.int(0x1000)); // unmapped: #PF
  return (rng.u64() | 0x8000_0000_0000_0000n) & ~0x4000_0000_0000_0000n; // non-canonical: #GP
}

function fillerOffset(rng: Rng, codeOff: number, len: number): number {
  for (;;) {
    const o = rng.int(4096);
    if (o < codeOff || o >= codeOff + len) return o;
  }
}

function branchPlaceholder(o: string): number[] {
  return o === "Jb" ? [0] : [0, 0, 0, 0];
}

/** A branch target (absolute) reachable with an n-byte displacement. */
function branchTarget(rng: Rng, codeOff: number, len: number, n: number): number {
  const next = codeOff + len;
  if (n === 1) {
    for (;;) {
      const rel = rng.int(256) - 128;
      const t = next + rel;
      if (t >= 0 && t < 4096 && (t < codeOff || t >= next)) return CODE_BASE + t;
      if (t < 0 || t >= 4096) {
        if (rng.chance(0.2)) return CODE_BASE + t; // off the page (straddling placement): #PF
      }
    }
  }
  const r = rng.int(100);
  if (r < 85) return CODE_BASE + fillerOffset(rng, codeOff, len);
  if (r < 92) return DATA_BASE + rng.int(DATA_SIZE);
  return CODE_BASE + 0x1000 + rng.int(0x10000);
}

interface MemCtx {
  regs: bigint[];
  fixed: Set<number>;
  rexX: boolean;
  rexB: boolean;
  a32: boolean;
  memSize: number;
  btReg: boolean;
  stackForm: boolean;
}

/** Where a memory operand should point: mostly inside the data pages, sometimes deliberately not. */
function memTarget(rng: Rng, size: number): { ea: bigint; off: number } {
  const r = rng.int(100);
  const sz = Math.max(1, Math.min(size, 16));
  if (r < 78) {
    let off = rng.int(DATA_SIZE - sz + 1);
    if (rng.chance(0.5)) off &= ~(Math.min(sz, 8) - 1);
    return { ea: BigInt(DATA_BASE + off), off };
  }
  if (r < 84) {
    const off = 4096 - sz + rng.int(sz); // crosses from data page 0 into page 1
    return { ea: BigInt(DATA_BASE + off), off: off >= 0 && off + sz <= DATA_SIZE ? off : -1 };
  }
  if (r < 90) {
    const off = DATA_SIZE - sz + 1 + rng.int(Math.max(1, sz)); // runs into the unmapped page
    return { ea: BigInt(DATA_BASE + off), off: -1 };
  }
  if (r < 94) return { ea: BigInt(DATA_BASE - 4096 + rng.int(4096)), off: -1 };
  if (r < 97)
    return {
      ea: ((0x0000_8000_0000_0000n + rng.u64()) & 0x7fff_ffff_ffff_ffffn) | 0x0000_8000_0000_0000n,
      off: -1,
    };
  return { ea: 0xffff_ffff_8000_0000n + BigInt(rng.int(0x1000000)), off: -1 };
}

/**
 * Emits ModRM (+SIB, +displacement) for a memory operand and sets the base/index registers so the
 * effective address hits the chosen target. Returns the linear address and its data-page offset (-1 when it
 * is outside the data pages).
 */
function encodeMemory(
  rng: Rng,
  b: Build,
  mod: number,
  regField: number,
  rmField: number,
  c: MemCtx,
): { off: number; ea: bigint } {
  const mask = c.a32 ? 0xffff_ffffn : M64;
  let target = memTarget(rng, c.memSize);
  // 32-bit addressing truncates: keep such targets where truncation cannot reach host mappings.
  if (c.a32 && !nearData(target.ea)) target = { ea: BigInt(DATA_BASE - 4096 + rng.int(4096)), off: -1 };
  if (c.btReg) {
    // A register bit offset addresses memory relative to the operand: keep the base mid-page.
    const off = 2048 + rng.int(4096);
    target = { ea: BigInt(DATA_BASE + off), off };
  }
  const useSib = rmField === 4 || rng.chance(0.3);
  let ripRel = false;
  if (!useSib && mod === 0 && rmField === 5) ripRel = true;
  if (!useSib && mod === 0 && rng.chance(0.15)) {
    rmField = 5;
    ripRel = true;
  }
  if (useSib) rmField = 4;
  let base = -1;
  let index = -1;
  let scale = 0;
  let sib = -1;
  let dispSize = mod === 1 ? 1 : mod === 2 ? 4 : 0;
  if (useSib) {
    const sBase = rng.int(8);
    let sIndex = rng.int(8);
    scale = rng.int(4);
    if (mod === 0 && sBase === 5) dispSize = 4;
    else base = sBase + (c.rexB ? 8 : 0);
    index = sIndex === 4 && !c.rexX ? -1 : sIndex + (c.rexX ? 8 : 0);
    if (index === base && index >= 0) {
      sIndex = (sIndex + 1) & 7;
      if (sIndex === 4 && !c.rexX) sIndex = 5;
      index = sIndex + (c.rexX ? 8 : 0);
    }
    sib = (scale << 6) | (sIndex << 3) | sBase;
  } else if (!ripRel) base = rmField + (c.rexB ? 8 : 0);
  if (ripRel) dispSize = 4;
  b.bytes.push((mod << 6) | (regField << 3) | rmField);
  if (sib >= 0) b.bytes.push(sib);
  // Choose register values and the displacement.
  const smallDisp = (): bigint => BigInt(rng.int(256) - 128);
  let disp = 0n;
  if (dispSize === 1) disp = smallDisp();
  else if (dispSize === 4) disp = rng.chance(0.5) ? smallDisp() : BigInt(rng.int(0x10000) - 0x8000);
  const fixedBase = base >= 0 && c.fixed.has(base);
  if (ripRel) {
    // RIP-relative reaches +-2 GiB only: far targets would wrap onto arbitrary host mappings.
    if (!nearData(target.ea)) target = { ea: BigInt(DATA_BASE), off: 0 };
    b.ripRel = true;
    b.ripTarget = target.ea;
    b.dispAt = b.bytes.length;
    b.bytes.push(0, 0, 0, 0);
    return { off: target.off, ea: target.ea };
  }
  let idxVal = 0n;
  if (index >= 0) {
    idxVal = c.fixed.has(index) ? c.regs[index]! : BigInt(rng.int(64)) - (rng.chance(0.3) ? 64n : 0n);
    if (!c.fixed.has(index))
      c.regs[index] = c.a32 && rng.chance(0.5) ? (rng.u64() & ~mask & M64) | (idxVal & mask) : idxVal & M64;
  }
  let off = target.off;
  let ea = target.ea & mask;
  if (fixedBase) {
    // The base (RSP/RBP of a stack form) keeps its value; the operand lands near it.
    if (dispSize === 4) disp = smallDisp();
    ea = (c.regs[base]! + (idxVal << BigInt(scale)) + disp) & mask;
    const o = Number(ea) - DATA_BASE;
    off = o >= 0 && o + c.memSize <= DATA_SIZE ? o : -1;
  } else if (base >= 0) {
    const v = (target.ea - (idxVal << BigInt(scale)) - disp) & mask;
    c.regs[base] = c.a32 && rng.chance(0.5) ? (rng.u64() & ~mask & M64) | v : v & M64;
  } else {
    // No base: disp32 carries the address (index value small).
    disp = BigInt.asIntN(32, target.ea - (idxVal << BigInt(scale)));
    dispSize = 4;
    ea = (disp + (idxVal << BigInt(scale))) & mask;
    const o = Number(ea & 0xffff_ffffn) - DATA_BASE;
    off = ea === target.ea && o >= 0 && o + c.memSize <= DATA_SIZE ? o : -1;
  }
  if (base >= 0) c.fixed.add(base);
  if (index >= 0) c.fixed.add(index);
  b.bytes.push(...leBytes(BigInt.asUintN(dispSize * 8, disp), dispSize));
  return { off, ea };
}

/** All cases for all forms; `perForm` cases each, deterministic in `seed`. */
export function generateAll(forms: readonly Form[], perForm: number, seed: number): Case[] {
  const out: Case[] = [];
  forms.forEach((f, i) => {
    // Seeded by the form's name, so a filtered run reproduces exactly the cases of the full run.
    let hsh = 0x811c9dc5;
    for (let k = 0; k < f.name.length; k++) hsh = Math.imul(hsh ^ f.name.charCodeAt(k), 0x01000193);
    const rng = new Rng((seed ^ hsh) >>> 0);
    for (let k = 0; k < perForm; k++) out.push(generateCase(f, i, rng));
  });
  return out;
}
