// Owns: printing the functions of a module the translation tier generated as WebAssembly text (one
// instruction per line, indented by nesting), for the debug tools (`viridian diverge --unit`, tests) and
// for people reading a unit. It decodes exactly the opcode subset encoder.ts can emit.
// Must not: be needed at run time (nothing executes from it) or accept arbitrary modules as a validator.
// Spec: WebAssembly Core Specification 2.0, 5.4 (instruction encodings) and 6.5 (text format mnemonics).

import { Op, OpFC, T } from "./encoder.js";

const NAMES: Record<number, string> = {};
for (const [name, code] of Object.entries({
  unreachable: Op.Unreachable,
  nop: Op.Nop,
  else: Op.Else,
  end: Op.End,
  return: Op.Return,
  drop: Op.Drop,
  select: Op.Select,
  "i32.eqz": Op.I32Eqz,
  "i32.eq": Op.I32Eq,
  "i32.ne": Op.I32Ne,
  "i32.lt_s": Op.I32LtS,
  "i32.lt_u": Op.I32LtU,
  "i32.gt_s": Op.I32GtS,
  "i32.gt_u": Op.I32GtU,
  "i32.le_s": Op.I32LeS,
  "i32.le_u": Op.I32LeU,
  "i32.ge_s": Op.I32GeS,
  "i32.ge_u": Op.I32GeU,
  "i64.eqz": Op.I64Eqz,
  "i64.eq": Op.I64Eq,
  "i64.ne": Op.I64Ne,
  "i64.lt_s": Op.I64LtS,
  "i64.lt_u": Op.I64LtU,
  "i64.gt_s": Op.I64GtS,
  "i64.gt_u": Op.I64GtU,
  "i64.le_s": Op.I64LeS,
  "i64.le_u": Op.I64LeU,
  "i64.ge_s": Op.I64GeS,
  "i64.ge_u": Op.I64GeU,
  "f64.eq": Op.F64Eq,
  "f64.ne": Op.F64Ne,
  "i32.clz": Op.I32Clz,
  "i32.ctz": Op.I32Ctz,
  "i32.popcnt": Op.I32Popcnt,
  "i32.add": Op.I32Add,
  "i32.sub": Op.I32Sub,
  "i32.mul": Op.I32Mul,
  "i32.div_s": Op.I32DivS,
  "i32.div_u": Op.I32DivU,
  "i32.rem_s": Op.I32RemS,
  "i32.rem_u": Op.I32RemU,
  "i32.and": Op.I32And,
  "i32.or": Op.I32Or,
  "i32.xor": Op.I32Xor,
  "i32.shl": Op.I32Shl,
  "i32.shr_s": Op.I32ShrS,
  "i32.shr_u": Op.I32ShrU,
  "i32.rotl": Op.I32Rotl,
  "i32.rotr": Op.I32Rotr,
  "i64.clz": Op.I64Clz,
  "i64.ctz": Op.I64Ctz,
  "i64.popcnt": Op.I64Popcnt,
  "i64.add": Op.I64Add,
  "i64.sub": Op.I64Sub,
  "i64.mul": Op.I64Mul,
  "i64.div_s": Op.I64DivS,
  "i64.div_u": Op.I64DivU,
  "i64.rem_s": Op.I64RemS,
  "i64.rem_u": Op.I64RemU,
  "i64.and": Op.I64And,
  "i64.or": Op.I64Or,
  "i64.xor": Op.I64Xor,
  "i64.shl": Op.I64Shl,
  "i64.shr_s": Op.I64ShrS,
  "i64.shr_u": Op.I64ShrU,
  "i64.rotl": Op.I64Rotl,
  "i64.rotr": Op.I64Rotr,
  "i32.wrap_i64": Op.I32WrapI64,
  "i32.trunc_f64_u": Op.I32TruncF64U,
  "i64.extend_i32_s": Op.I64ExtendI32S,
  "i64.extend_i32_u": Op.I64ExtendI32U,
  "f64.convert_i32_u": Op.F64ConvertI32U,
  "f64.convert_i64_s": Op.F64ConvertI64S,
  "f64.convert_i64_u": Op.F64ConvertI64U,
  "i64.reinterpret_f64": Op.I64ReinterpretF64,
  "f64.reinterpret_i64": Op.F64ReinterpretI64,
  "i32.extend8_s": Op.I32Extend8S,
  "i32.extend16_s": Op.I32Extend16S,
  "i64.extend8_s": Op.I64Extend8S,
  "i64.extend16_s": Op.I64Extend16S,
  "i64.extend32_s": Op.I64Extend32S,
})) {
  NAMES[code] = name;
}

const MEM_NAMES: Record<number, string> = {
  [Op.I32Load]: "i32.load",
  [Op.I64Load]: "i64.load",
  [Op.F32Load]: "f32.load",
  [Op.F64Load]: "f64.load",
  [Op.I32Load8S]: "i32.load8_s",
  [Op.I32Load8U]: "i32.load8_u",
  [Op.I32Load16S]: "i32.load16_s",
  [Op.I32Load16U]: "i32.load16_u",
  [Op.I64Load8S]: "i64.load8_s",
  [Op.I64Load8U]: "i64.load8_u",
  [Op.I64Load16S]: "i64.load16_s",
  [Op.I64Load16U]: "i64.load16_u",
  [Op.I64Load32S]: "i64.load32_s",
  [Op.I64Load32U]: "i64.load32_u",
  [Op.I32Store]: "i32.store",
  [Op.I64Store]: "i64.store",
  [Op.F32Store]: "f32.store",
  [Op.F64Store]: "f64.store",
  [Op.I32Store8]: "i32.store8",
  [Op.I32Store16]: "i32.store16",
  [Op.I64Store8]: "i64.store8",
  [Op.I64Store16]: "i64.store16",
  [Op.I64Store32]: "i64.store32",
};

const TYPE_NAMES: Record<number, string> = {
  [T.I32]: "i32",
  [T.I64]: "i64",
  [T.F32]: "f32",
  [T.F64]: "f64",
};

class Reader {
  pos = 0;
  constructor(readonly b: Uint8Array) {}
  u8(): number {
    if (this.pos >= this.b.length) throw new Error("wat: unexpected end of module");
    return this.b[this.pos++]!;
  }
  u32(): number {
    let v = 0;
    let shift = 0;
    for (;;) {
      const x = this.u8();
      v += (x & 0x7f) * 2 ** shift;
      if ((x & 0x80) === 0) return v;
      shift += 7;
    }
  }
  /** A signed LEB128 as a BigInt (printing only). */
  sleb(): bigint {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const x = this.u8();
      v |= BigInt(x & 0x7f) << shift;
      shift += 7n;
      if ((x & 0x80) === 0) {
        if (x & 0x40) v -= 1n << shift;
        return v;
      }
    }
  }
}

/** The text of every function defined in `module`, one instruction per line. */
export function moduleText(module: Uint8Array): string {
  const r = new Reader(module);
  r.pos = 8;
  const out: string[] = [];
  let imported = 0;
  while (r.pos < module.length) {
    const id = r.u8();
    const size = r.u32();
    const end = r.pos + size;
    if (id === 2) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        const names: string[] = [];
        for (let k = 0; k < 2; k++) {
          const len = r.u32();
          names.push(String.fromCharCode(...module.subarray(r.pos, r.pos + len)));
          r.pos += len;
        }
        const kind = r.u8();
        if (kind === 0) {
          out.push(`(import "${names[0]}" "${names[1]}" (func ${imported}))`);
          imported++;
          r.u32();
        } else if (kind === 1) {
          out.push(`(import "${names[0]}" "${names[1]}" (table))`);
          r.u8();
          const flags = r.u8();
          r.u32();
          if (flags & 1) r.u32();
        } else {
          out.push(`(import "${names[0]}" "${names[1]}" (memory))`);
          const flags = r.u8();
          r.u32();
          if (flags & 1) r.u32();
        }
      }
    } else if (id === 10) {
      const n = r.u32();
      for (let f = 0; f < n; f++) {
        const len = r.u32();
        const bodyEnd = r.pos + len;
        out.push(`(func ${imported + f}`);
        const runs = r.u32();
        const locals: string[] = [];
        for (let i = 0; i < runs; i++) {
          const count = r.u32();
          locals.push(`${count} x ${TYPE_NAMES[r.u8()] ?? "?"}`);
        }
        out.push(`  (locals ${locals.join(", ")})`);
        body(r, bodyEnd, out);
        out.push(")");
      }
    }
    r.pos = end;
  }
  return out.join("\n");
}

function body(r: Reader, end: number, out: string[]): void {
  let depth = 1;
  while (r.pos < end) {
    const op = r.u8();
    const pad = "  ".repeat(depth);
    const blockType = (): string => {
      const t = r.u8();
      return t === T.Void ? "" : ` (result ${TYPE_NAMES[t] ?? "?"})`;
    };
    switch (op) {
      case Op.Block:
      case Op.Loop:
      case Op.If: {
        const name = op === Op.Block ? "block" : op === Op.Loop ? "loop" : "if";
        out.push(`${pad}${name}${blockType()}`);
        depth++;
        break;
      }
      case Op.Else:
        out.push(`${"  ".repeat(depth - 1)}else`);
        break;
      case Op.End:
        depth--;
        if (depth > 0) out.push(`${"  ".repeat(depth)}end`);
        break;
      case Op.Br:
      case Op.BrIf:
        out.push(`${pad}${op === Op.Br ? "br" : "br_if"} ${r.u32()}`);
        break;
      case Op.BrTable: {
        const n = r.u32();
        const t: number[] = [];
        for (let i = 0; i < n; i++) t.push(r.u32());
        out.push(`${pad}br_table ${t.join(" ")} (default ${r.u32()})`);
        break;
      }
      case Op.Call:
        out.push(`${pad}call ${r.u32()}`);
        break;
      case Op.CallIndirect:
        out.push(`${pad}call_indirect (type ${r.u32()}) (table ${r.u8()})`);
        break;
      case Op.LocalGet:
      case Op.LocalSet:
      case Op.LocalTee:
        out.push(`${pad}local.${op === Op.LocalGet ? "get" : op === Op.LocalSet ? "set" : "tee"} ${r.u32()}`);
        break;
      case Op.I32Const:
      case Op.I64Const:
        out.push(`${pad}${op === Op.I32Const ? "i32" : "i64"}.const ${r.sleb()}`);
        break;
      case Op.F64Const: {
        const v = new DataView(r.b.buffer, r.b.byteOffset + r.pos, 8).getFloat64(0, true);
        r.pos += 8;
        out.push(`${pad}f64.const ${v}`);
        break;
      }
      case 0xfc: {
        const sub = r.u32();
        if (sub === OpFC.MemoryCopy) {
          r.u8();
          r.u8();
          out.push(`${pad}memory.copy`);
        } else if (sub === OpFC.MemoryFill) {
          r.u8();
          out.push(`${pad}memory.fill`);
        } else out.push(`${pad}${sub === OpFC.I32TruncSatF64U ? "i32" : "i64"}.trunc_sat_f64_u`);
        break;
      }
      default: {
        const m = MEM_NAMES[op];
        if (m !== undefined) {
          const align = r.u32();
          const offset = r.u32();
          out.push(`${pad}${m} offset=${offset} align=${2 ** align}`);
          break;
        }
        const name = NAMES[op];
        if (name === undefined) throw new Error(`wat: unknown opcode 0x${op.toString(16)}`);
        out.push(`${pad}${name}`);
      }
    }
  }
}
