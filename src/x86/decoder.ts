// Owns: turning instruction bytes into an `Insn` record using the opcode table: legacy prefixes (groups 1-4),
// REX (must immediately precede the opcode), operand/address size, mandatory prefixes, the 0F/0F38/0F3A
// maps, ModRM/SIB/displacement (16-, 32- and 64-bit addressing, RIP-relative), immediates, mode validity,
// LOCK legality, CPUID feature gates and the 15-byte limit.
// Must not: read guest memory or architectural state itself (the caller hands it a byte window), allocate
// per decode, or execute anything. Decoded records are cached by the caller (cpu.ts, per physical page).
// Spec: Intel SDM Vol. 2A ch. 2 (2.1 instruction format, 2.1.5 ModRM/SIB tables 2-1..2-3, 2.2.1 REX,
// 2.2.1.6 RIP-relative addressing), Vol. 2D appendix A (opcode maps, operand notation).

import { BY_OPCODE, type OpcodeEntry } from "./opcode-table.js";
import {
  CodeMode,
  Insn,
  OpKind,
  PFX_ADSIZE,
  PFX_LOCK,
  PFX_OPSIZE,
  PFX_REP,
  PFX_REPNE,
  PFX_REX,
  PFX_SEG,
} from "./insn.js";

/** decode() results: OK, or the exception vector to raise, or "window too short". */
export const DECODE_OK = 0;
export const DECODE_UD = 6;
export const DECODE_GP = 13;
export const DECODE_MORE = -1;

/** Answers the table's feature gates (CpuidModel implements it). */
export interface FeatureGate {
  has(feature: string): boolean;
}

const MAX_LEN = 15;
/**
 * Read-modify-write forms that are not LOCK-able (every LOCK-able form is read-modify-write): shifts and
 * rotates read their memory destination with write intent even when the masked count is 0.
 */
const RMW_UNLOCKABLE = new Set(["ROL", "ROR", "RCL", "RCR", "SHL", "SAL", "SHR", "SAR", "SHLD", "SHRD"]);

// Decoder cursor (module state instead of a closure so that decoding never allocates).
let buf: Uint8Array = new Uint8Array(0);
let start = 0;
let pos = 0;
let limit = 0;
let windowShort = false;

/** Thrown internally when a byte past the window or past 15 bytes is needed. */
const STOP_MORE = 1;
const STOP_GP = 2;

function next(): number {
  if (pos >= limit) throw windowShort && pos - start < MAX_LEN ? STOP_MORE : STOP_GP;
  return buf[pos++]!;
}

function next16(): number {
  const a = next();
  return a | (next() << 8);
}

function next32(): number {
  const a = next16();
  return a | (next16() << 16);
}

/**
 * Decodes one instruction from `bytes[at .. at + avail)` (avail <= 15 means the window ends there: a page
 * boundary; the caller retries with a longer window on DECODE_MORE). Fills `d`; returns DECODE_OK or the
 * exception to raise (#UD, #GP for > 15 bytes).
 */
export function decode(
  bytes: Uint8Array,
  at: number,
  avail: number,
  mode: CodeMode,
  gate: FeatureGate,
  d: Insn,
): number {
  buf = bytes;
  start = at;
  pos = at;
  windowShort = avail < MAX_LEN;
  limit = at + Math.min(avail, MAX_LEN);
  try {
    return decodeInner(mode, gate, d);
  } catch (e) {
    if (e === STOP_MORE) return DECODE_MORE;
    if (e === STOP_GP) return DECODE_GP;
    throw e;
  }
}

function decodeInner(mode: CodeMode, gate: FeatureGate, d: Insn): number {
  const is64 = mode === CodeMode.Bits64;
  let pfx = 0;
  let rex = 0;
  let seg = -1;
  let lastRep = 0;
  let b: number;
  for (;;) {
    b = next();
    if (b === 0xf0) pfx |= PFX_LOCK;
    else if (b === 0xf2 || b === 0xf3) lastRep = b;
    else if (b === 0x66) pfx |= PFX_OPSIZE;
    else if (b === 0x67) pfx |= PFX_ADSIZE;
    else if (b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e) {
      // In 64-bit mode ES/CS/SS/DS overrides are ignored (SDM Vol. 1 3.3.7.1).
      if (!is64) seg = (b >> 3) & 3;
    } else if (b === 0x64 || b === 0x65) seg = b - 0x60;
    else if (is64 && (b & 0xf0) === 0x40) {
      rex = b;
      continue; // a REX followed by a legacy prefix is ignored: cleared below
    } else break;
    rex = 0;
  }
  if (lastRep === 0xf3) pfx |= PFX_REP;
  else if (lastRep === 0xf2) pfx |= PFX_REPNE;
  if (rex !== 0) pfx |= PFX_REX;
  if (seg >= 0) pfx |= PFX_SEG;

  let map = 0;
  let op = b;
  if (op === 0x0f) {
    op = next();
    map = 1;
    if (op === 0x38) {
      op = next();
      map = 2;
    } else if (op === 0x3a) {
      op = next();
      map = 3;
    }
  }
  const cands = BY_OPCODE[map * 256 + op];
  if (cands === undefined) return DECODE_UD;
  const first = cands[0]!;
  let modrm = -1;
  let mod = 0;
  let regf = 0;
  let rmf = 0;
  if (first.modrm) {
    modrm = next();
    mod = modrm >> 6;
    regf = (modrm >> 3) & 7;
    rmf = modrm & 7;
  }
  // Mandatory prefix: F2/F3 (last one) wins over 66 (SDM Vol. 2A 2.1.2).
  const mp = lastRep !== 0 ? lastRep : pfx & PFX_OPSIZE ? 0x66 : 0;
  let e: OpcodeEntry | null = null;
  for (const c of cands) {
    if (c.prefix !== null) {
      if (c.prefix === "NP") {
        if (mp !== 0) continue;
      } else if (parseInt(c.prefix, 16) !== mp) continue;
    }
    if (c.ext >= 0 && c.ext !== regf) continue;
    if (c.modrmByte >= 0 && c.modrmByte !== modrm) continue;
    if (c.modRestrict === "mem" && mod === 3) continue;
    if (c.modRestrict === "reg" && mod !== 3) continue;
    if (c.rexW === 1 && (rex & 8) === 0) continue;
    if (c.rexW === 0 && (rex & 8) !== 0) continue;
    if (c.noRexB && (rex & 1) !== 0) continue;
    if (is64 ? !c.validIn64 : !c.validOutside64) continue;
    if (c.feature !== null && !gate.has(c.feature)) continue;
    e = c;
    break;
  }
  if (e === null) return DECODE_UD;

  // Operand and address size (SDM Vol. 1 3.6; Vol. 2A 2.2.1.2).
  const opsizePrefix = (pfx & PFX_OPSIZE) !== 0 && e.prefix !== "66";
  let osize: number;
  if (is64) {
    if (rex & 8) osize = 8;
    else if (e.size === "f64") osize = 8;
    else if (e.size === "d64") osize = opsizePrefix ? 2 : 8;
    else osize = opsizePrefix ? 2 : 4;
  } else {
    osize = (mode === CodeMode.Bits32) !== opsizePrefix ? 4 : 2;
  }
  const adsize = (pfx & PFX_ADSIZE) !== 0;
  const asize = is64 ? (adsize ? 4 : 8) : (mode === CodeMode.Bits32) !== adsize ? 4 : 2;

  d.entry = e;
  d.op = e.id;
  d.rmw = e.lockable || RMW_UNLOCKABLE.has(e.mnemonic);
  d.mode = mode;
  d.osize = osize;
  d.asize = asize;
  d.prefixes = pfx;
  d.rex = rex;
  d.opcode = op;
  d.modrm = modrm;
  d.mod = mod;
  d.reg = regf | ((rex & 4) << 1);
  d.rm = rmf | ((rex & 1) << 3);
  d.hasMem = false;
  d.base = -1;
  d.index = -1;
  d.scale = 0;
  d.dispLo = 0;
  d.dispHi = 0;
  d.ripRel = false;
  d.seg = 3;
  d.k0 = d.k1 = d.k2 = OpKind.None;
  d.r0 = d.r1 = d.r2 = 0;
  d.s0 = d.s1 = d.s2 = 0;
  d.immLo = d.immHi = d.imm2 = 0;

  // A memory operand exists when ModRM.mod != 3, except for MOV CRn/DRn whose mod is ignored (SDM MOV-CR).
  let ignoresMod = false;
  for (const s of e.operands) {
    const c0 = s.charCodeAt(0);
    // Cd/Cy/Dd/Dy (lower-case type letter), not the fixed operands CL/CS/DS/DX.
    if ((c0 === 0x43 || c0 === 0x44) && s.charCodeAt(1) >= 0x61 && FIXED[s] === undefined) ignoresMod = true;
  }
  let defaultSS = false;
  if (modrm >= 0 && mod !== 3 && !ignoresMod) {
    d.hasMem = true;
    if (asize === 2) {
      defaultSS = decodeMem16(d, mod, rmf);
    } else {
      defaultSS = decodeMem32(d, mod, rmf, rex, is64, asize);
    }
  }
  d.seg = seg >= 0 ? seg : defaultSS ? 2 : 3;

  // Operands.
  let immCount = 0;
  const ops = e.operands;
  for (let i = 0; i < ops.length && i < 3; i++) {
    const s = ops[i]!;
    let kind: number = OpKind.None;
    let reg = 0;
    let size = 0;
    // Fixed operands first: several share a first letter with an addressing method (AL/A, ES/E, GS/G).
    const fixed = FIXED[s];
    const am = fixed !== undefined ? "#" : s.charAt(0);
    const t = s.slice(1);
    switch (am) {
      case "#": {
        const f = fixed!;
        kind = f[0];
        reg = f[1];
        size = f[2] > 0 ? f[2] : f[2] === -1 ? osize : f[2] === -2 ? (osize === 2 ? 2 : 4) : 1;
        if (s === "1") d.immLo = 1;
        break;
      }
      case "E":
      case "G":
      case "R":
      case "Z": {
        size = typeSize(t, osize);
        if (am === "E" && d.hasMem) {
          kind = OpKind.Mem;
          break;
        }
        if (am === "Z") reg = (op & 7) | ((rex & 1) << 3);
        else if (am === "G") reg = d.reg;
        else reg = d.rm;
        kind = OpKind.Reg;
        if (size === 1 && rex === 0 && reg >= 4 && reg < 8) {
          kind = OpKind.RegHigh;
          reg -= 4;
        }
        break;
      }
      case "M":
        kind = OpKind.Mem;
        size = t === "" ? 0 : t === "p" ? osize + 2 : t === "s" ? (is64 ? 10 : 6) : typeSize(t, osize);
        break;
      case "C":
      case "D":
        kind = am === "C" ? OpKind.Creg : OpKind.Dreg;
        reg = d.reg;
        size = typeSize(t, osize);
        break;
      case "S":
        kind = OpKind.Sreg;
        reg = regf;
        size = 2;
        if (reg > 5) return DECODE_UD;
        break;
      case "I": {
        kind = OpKind.Imm;
        let v: number;
        let hi = 0;
        if (t === "b") {
          v = next();
          size = 1;
        } else if (t === "bs") {
          v = (next() << 24) >> 24;
          size = osize;
          hi = v >> 31;
        } else if (t === "w") {
          v = next16();
          size = 2;
        } else if (t === "d") {
          v = next32();
          size = 4;
        } else if (t === "z") {
          size = osize;
          if (osize === 2) v = next16();
          else {
            v = next32();
            hi = v >> 31;
          }
        } else if (t === "v") {
          size = osize;
          if (osize === 2) v = next16();
          else if (osize === 4) v = next32();
          else {
            v = next32();
            hi = next32();
          }
        } else throw new Error(`decoder: unknown immediate type ${s}`);
        if (immCount++ === 0) {
          d.immLo = v;
          d.immHi = hi;
        } else d.imm2 = v;
        break;
      }
      case "J": {
        kind = OpKind.Rel;
        size = osize;
        let v: number;
        if (t === "b") v = (next() << 24) >> 24;
        else if (osize === 2) v = (next16() << 16) >> 16;
        else v = next32();
        d.immLo = v;
        d.immHi = v >> 31;
        immCount++;
        break;
      }
      case "O": {
        kind = OpKind.Mem;
        size = typeSize(t, osize);
        d.hasMem = true;
        if (asize === 2) d.dispLo = next16();
        else if (asize === 4) d.dispLo = next32();
        else {
          d.dispLo = next32();
          d.dispHi = next32();
        }
        d.seg = seg >= 0 ? seg : 3;
        break;
      }
      case "A": {
        kind = OpKind.FarPtr;
        size = osize + 2;
        d.immLo = osize === 2 ? next16() : next32();
        d.imm2 = next16();
        immCount = 2;
        break;
      }
      case "X":
      case "Y":
        size = typeSize(t, osize);
        break;
      case "V":
      case "U":
      case "W":
        size = simdSize(t);
        if (am === "W" && d.hasMem) kind = OpKind.Mem;
        else {
          kind = OpKind.Xmm;
          reg = am === "V" ? d.reg : d.rm;
        }
        break;
      case "P":
      case "N":
      case "Q":
        size = simdSize(t);
        if (am === "Q" && d.hasMem) kind = OpKind.Mem;
        else {
          kind = OpKind.Mmx;
          reg = am === "P" ? regf : rmf;
        }
        break;
      default:
        throw new Error(`decoder: unknown operand spec ${s}`);
    }
    if (i === 0) {
      d.k0 = kind;
      d.r0 = reg;
      d.s0 = size;
    } else if (i === 1) {
      d.k1 = kind;
      d.r1 = reg;
      d.s1 = size;
    } else {
      d.k2 = kind;
      d.r2 = reg;
      d.s2 = size;
    }
  }
  // 0F 3A rows carry an imm8 not always written as an operand by SIMD rows with three register operands.
  if (map === 3 && immCount === 0) {
    d.immLo = next();
  }
  if (pfx & PFX_LOCK) {
    if (!e.lockable || !d.hasMem) return DECODE_UD;
  }
  d.len = pos - start;
  return DECODE_OK;
}

/** Fixed operands: [kind, register, size] with size -1 = operand size, -2 = 16/32 by operand size. */
const FIXED: Record<string, [number, number, number]> = {
  AL: [OpKind.Reg, 0, 1],
  CL: [OpKind.Reg, 1, 1],
  AX: [OpKind.Reg, 0, 2],
  DX: [OpKind.Reg, 2, 2],
  eAX: [OpKind.Reg, 0, -2],
  rAX: [OpKind.Reg, 0, -1],
  "1": [OpKind.Imm, 0, 1],
  ES: [OpKind.Sreg, 0, 2],
  CS: [OpKind.Sreg, 1, 2],
  SS: [OpKind.Sreg, 2, 2],
  DS: [OpKind.Sreg, 3, 2],
  FS: [OpKind.Sreg, 4, 2],
  GS: [OpKind.Sreg, 5, 2],
};

function typeSize(t: string, osize: number): number {
  switch (t) {
    case "b":
      return 1;
    case "w":
      return 2;
    case "d":
      return 4;
    case "q":
      return 8;
    case "dq":
      return 16;
    case "v":
      return osize;
    case "z":
      return osize === 2 ? 2 : 4;
    case "y":
      return osize === 8 ? 8 : 4;
    default:
      return osize;
  }
}

function simdSize(t: string): number {
  switch (t) {
    case "ss":
    case "d":
      return 4;
    case "sd":
    case "q":
      return 8;
    case "w":
      return 2;
    case "b":
      return 1;
    default:
      return 16;
  }
}

// 16-bit ModRM addressing (SDM Vol. 2A Table 2-1). Returns whether SS is the default segment.
const BASE16 = [3, 3, 5, 5, 6, 7, 5, 3]; // BX, BX, BP, BP, SI, DI, BP, BX
const INDEX16 = [6, 7, 6, 7, -1, -1, -1, -1]; // SI, DI, SI, DI

function decodeMem16(d: Insn, mod: number, rm: number): boolean {
  if (mod === 0 && rm === 6) {
    d.dispLo = next16();
    return false;
  }
  d.base = BASE16[rm]!;
  d.index = INDEX16[rm]!;
  if (mod === 1) d.dispLo = (next() << 24) >> 24;
  else if (mod === 2) d.dispLo = (next16() << 16) >> 16;
  return rm === 2 || rm === 3 || rm === 6;
}

// 32/64-bit ModRM + SIB addressing (SDM Vol. 2A Tables 2-2, 2-3; 2.2.1.2 REX.X/REX.B; 2.2.1.6 RIP-relative).
function decodeMem32(d: Insn, mod: number, rm: number, rex: number, is64: boolean, asize: number): boolean {
  let ss = false;
  if (rm === 4) {
    const sib = next();
    const sbase = sib & 7;
    const sidx = ((sib >> 3) & 7) | ((rex & 2) << 2);
    d.scale = sib >> 6;
    if (sidx !== 4) d.index = sidx; // index 100b without REX.X means "none"; with REX.X it is R12
    if (sbase === 5 && mod === 0) {
      d.dispLo = next32();
      d.dispHi = asize === 8 ? d.dispLo >> 31 : 0;
      return false;
    }
    d.base = sbase | ((rex & 1) << 3);
    ss = sbase === 4 || sbase === 5;
  } else if (rm === 5 && mod === 0) {
    d.dispLo = next32();
    d.dispHi = asize === 8 ? d.dispLo >> 31 : 0;
    d.ripRel = is64;
    return false;
  } else {
    d.base = rm | ((rex & 1) << 3);
    ss = rm === 5;
  }
  if (mod === 1) d.dispLo = (next() << 24) >> 24;
  else if (mod === 2) d.dispLo = next32();
  d.dispHi = asize === 8 ? d.dispLo >> 31 : 0;
  return ss && (d.base & 8) === 0;
}

/** Decodes from a plain byte array (tests, disassembler): the whole array is the window. */
export function decodeBytes(
  bytes: Uint8Array,
  mode: CodeMode,
  gate: FeatureGate,
  d: Insn = new Insn(),
): number {
  return decode(bytes, 0, Math.min(bytes.length, MAX_LEN), mode, gate, d);
}

let warmed = false;

/**
 * Decodes every row of the opcode table once in each mode, with the prefixes, REX forms and ModRM/SIB
 * addressing forms, into a scratch record, so that the decoder's type feedback covers all its paths before
 * V8 optimises it. Without this V8 optimises `decodeInner` on the first kernel code it sees and throws the
 * optimised code away at each path met later (0F 38, a mandatory prefix, an address-size prefix, ...):
 * about six recompiles of its largest function per boot (docs/decisions/0005, Round 5). Once per process;
 * `gate` must be the processor's own gate object, so its calls stay monomorphic.
 */
export function warmDecoder(gate: FeatureGate): void {
  if (warmed) return;
  warmed = true;
  const all = warmSequences();
  const d = new Insn();
  // One short loop body: V8 may optimise this loop on the stack, and then it inlines only `decode`.
  for (let at = 0; at < all.length; at += WARM_RECORD) {
    decode(all, at + 1, all[at + 1]! === 0 ? 4 : MAX_LEN, all[at]! as CodeMode, gate, d);
  }
}

/** A warm-up record: the mode, then a 15-byte window (a first byte of 0 asks for a window too short). */
const WARM_RECORD = 1 + MAX_LEN;

function warmSequences(): Uint8Array {
  const out: number[] = [];
  const add = (mode: CodeMode, b: readonly number[]): void => {
    out.push(mode, ...b);
    for (let i = b.length; i < MAX_LEN; i++) out.push(0);
  };
  // mod/rm forms: register, [reg], SIB, disp32 (RIP-relative in 64-bit mode), disp8 + SIB, disp32 + base.
  const forms = [0xc0, 0x00, 0x04, 0x05, 0x44, 0x86];
  const prefixes = [0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x41, 0x44, 0x4c, 0x48];
  const modes = [CodeMode.Bits64, CodeMode.Bits32, CodeMode.Bits16];
  // The rare paths first: V8 may start optimising the decoder before the warm-up ends, and its code then
  // has only the feedback seen so far. Legacy prefixes and REX on an ALU form with each addressing form and
  // on an immediate form; a window that ends early (DECODE_MORE); an instruction longer than 15 bytes (#GP).
  for (const mode of modes) {
    for (const p of prefixes) {
      for (const f of forms) {
        add(mode, [p, 0x01, f | (2 << 3)]);
        add(mode, [p, 0x81, f]);
      }
    }
    add(mode, [0, 0x81]);
    add(mode, [0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x01]);
  }
  for (const mode of modes) {
    let n = 0;
    for (const cands of BY_OPCODE) {
      if (cands === undefined) continue;
      for (const e of cands) {
        const lead: number[] = [];
        if (e.prefix !== null && e.prefix !== "NP") lead.push(parseInt(e.prefix, 16));
        if (mode === CodeMode.Bits64 && e.rexW === 1) lead.push(0x48);
        if (e.map === 1) lead.push(0x0f);
        else if (e.map === 2) lead.push(0x0f, 0x38);
        else if (e.map === 3) lead.push(0x0f, 0x3a);
        lead.push(e.opcode);
        if (!e.modrm) {
          add(mode, lead);
          continue;
        }
        if (e.modrmByte >= 0) {
          add(mode, [...lead, e.modrmByte]);
          continue;
        }
        const reg = (e.ext >= 0 ? e.ext : 1) << 3;
        // A register form and one memory form per row, the memory forms taken in turn.
        if (e.modRestrict !== "mem") add(mode, [...lead, 0xc0 | reg]);
        if (e.modRestrict !== "reg") add(mode, [...lead, forms[1 + (n++ % (forms.length - 1))]! | reg]);
      }
    }
  }
  return Uint8Array.from(out);
}
