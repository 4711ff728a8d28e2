// Compares softfloat.ts bit for bit (results and MXCSR flags) with the host processor's SSE unit: a small C
// program, compiled here with gcc, executes the same scalar instructions under the same MXCSR (every
// rounding mode, with and without DAZ/FTZ, exceptions masked) on edge-heavy random operands: signed zeros,
// infinities, quiet/signalling NaNs with payloads, denormals, the normal/denormal boundary, overflow
// neighbourhoods, and binary32/binary64 rounding ties. VIRIDIAN_FULL=1 runs ten times as many cases.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hostProcessor } from "../../tests/conformance/host-processor.js";
import {
  cvt32to64,
  cvt64to32,
  F_PE,
  F_UE,
  FOp,
  intTo32,
  intTo64,
  op32,
  op64,
  sf,
  src32,
  src64,
  toInt,
} from "./softfloat.js";

// Ops 0-6: addss subss mulss divss sqrtss minss maxss; 7-13 the same for sd; 14 cvtss2sd, 15 cvtsd2ss, 16 cvtsi2ss r64, 17 cvtsi2sd r64, 18 cvtss2si r64, 19 cvttss2si r64,
// 20 cvtsd2si r64, 21 cvttsd2si r64, 22 cvtsd2si r32, 23 cvtsi2ss r32.
const C_SRC = `
#include <stdio.h>
#include <stdint.h>
struct rec { uint32_t op, mx; uint64_t a, b; };
#define BIN(name) __asm__ volatile("movq %1, %%xmm0\\n movq %2, %%xmm1\\n " name " %%xmm1, %%xmm0\\n movq %%xmm0, %0" : "=r"(o) : "r"(r.a), "r"(r.b) : "xmm0", "xmm1")
#define TOI(name) __asm__ volatile("movq %1, %%xmm1\\n " name " %%xmm1, %0" : "=r"(o) : "r"(r.a) : "xmm1")
#define FROMI(name) __asm__ volatile("movq %1, %%xmm0\\n " name " %2, %%xmm0\\n movq %%xmm0, %0" : "=r"(o) : "r"(r.b), "r"(r.a) : "xmm0")
int main(void) {
  struct rec r;
  while (fread(&r, sizeof r, 1, stdin) == 1) {
    uint64_t o = 0; uint32_t m = r.mx, f;
    uint32_t i32 = 0;
    __asm__ volatile("ldmxcsr %0" :: "m"(m));
    switch (r.op) {
      case 0: BIN("addss"); break; case 1: BIN("subss"); break; case 2: BIN("mulss"); break;
      case 3: BIN("divss"); break; case 4: BIN("sqrtss"); break; case 5: BIN("minss"); break;
      case 6: BIN("maxss"); break; case 7: BIN("addsd"); break; case 8: BIN("subsd"); break;
      case 9: BIN("mulsd"); break; case 10: BIN("divsd"); break; case 11: BIN("sqrtsd"); break;
      case 12: BIN("minsd"); break; case 13: BIN("maxsd"); break;
      case 14: BIN("cvtss2sd"); break; case 15: BIN("cvtsd2ss"); break;
      case 16: FROMI("cvtsi2ssq"); break; case 17: FROMI("cvtsi2sdq"); break;
      case 18: TOI("cvtss2si"); break; case 19: TOI("cvttss2si"); break;
      case 20: TOI("cvtsd2si"); break; case 21: TOI("cvttsd2si"); break;
      case 22: __asm__ volatile("movq %1, %%xmm1\\n cvtsd2si %%xmm1, %0" : "=r"(i32) : "r"(r.a) : "xmm1"); o = i32; break;
      case 23: __asm__ volatile("movq %1, %%xmm0\\n cvtsi2ssl %2, %%xmm0\\n movq %%xmm0, %0" : "=r"(o) : "r"(r.b), "r"((uint32_t)r.a) : "xmm0"); break;
    }
    __asm__ volatile("stmxcsr %0" : "=m"(f));
    fwrite(&o, 8, 1, stdout); fwrite(&f, 4, 1, stdout);
  }
  return 0;
}
`;

let seed = 0x12345678;
function rnd(): number {
  // xorshift32: deterministic cases so a failure reproduces.
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}

function special32(): number {
  const pick = rnd() % 24;
  const sign = rnd() & 0x80000000;
  switch (pick) {
    case 0:
      return sign;
    case 1:
      return sign | 0x7f800000;
    case 2:
      return sign | 0x7fc00000 | (rnd() & 0x3fffff); // QNaN
    case 3:
      return sign | 0x7f800000 | (rnd() & 0x3fffff || 1); // SNaN
    case 4:
      return sign | (rnd() & 0x7fffff); // denormal
    case 5:
      return sign | 0x00800000 | (rnd() & 0xff); // just above min normal
    case 6:
      return sign | 0x007fff00 | (rnd() & 0xff); // just below min normal
    case 7:
      return sign | 0x7f7fff00 | (rnd() & 0xff); // near max
    case 8:
      return sign | ((0x3f8 + (rnd() % 16)) << 20) | (rnd() & 0xfffff); // near 1
    case 9:
      return sign | ((rnd() % 60) << 23) | (rnd() & 0x7fffff); // tiny normals (products underflow)
    case 10:
      return sign | ((0x3f8 - 24 + (rnd() % 3)) << 20); // 2^-24-ish: ties against 1.0
    default:
      return rnd() | 0;
  }
}

function special64(): [number, number] {
  const pick = rnd() % 24;
  const sign = rnd() & 0x80000000;
  const lo = rnd() | 0;
  switch (pick) {
    case 0:
      return [0, sign];
    case 1:
      return [0, sign | 0x7ff00000];
    case 2:
      return [lo, sign | 0x7ff80000 | (rnd() & 0x7ffff)];
    case 3:
      return [lo | 1, sign | 0x7ff00000 | (rnd() & 0x7ffff)];
    case 4:
      return [lo, sign | (rnd() & 0xfffff)];
    case 5:
      return [lo, sign | 0x00100000 | (rnd() & 0xf)];
    case 6:
      return [lo, sign | 0x000ffff0 | (rnd() & 0xf)];
    case 7:
      return [lo, sign | 0x7fefff00 | (rnd() & 0xff)];
    case 8:
      return [lo, sign | ((0x3fe + (rnd() % 4)) << 20) | (rnd() & 0xfffff)];
    case 9:
      return [lo, sign | ((rnd() % 600) << 20) | (rnd() & 0xfffff)];
    case 10:
      return [0, sign | ((0x3ff - 53 + (rnd() % 3)) << 20)]; // 2^-53-ish: ties against 1.0
    case 11:
      return [0, sign | ((0x380 + (rnd() % 8)) << 20) | ((rnd() & 0xf) << 16)]; // binary32 boundary
    case 12: {
      // a double exactly between two binary32 values plus/minus a little (cvtsd2ss ties)
      const f = (rnd() & 0x7fffff) | 0;
      return [(1 << 28) | (rnd() % 2 ? 0 : rnd() & 0xff), sign | (0x3f0 << 20) | (f >>> 3)];
    }
    default:
      return [lo, rnd() | 0];
  }
}

test("softfloat matches the host SSE unit bit for bit (results and MXCSR flags)", () => {
  const dir = mkdtempSync(join(tmpdir(), "viridian-sf-"));
  try {
    writeFileSync(join(dir, "ref.c"), C_SRC);
    execFileSync("gcc", ["-O1", "-o", join(dir, "ref"), join(dir, "ref.c")], { stdio: "pipe" });
    const per = process.env.VIRIDIAN_FULL === "1" ? 40000 : 4000;
    const nOps = 24;
    const count = per * nOps;
    const buf = new DataView(new ArrayBuffer(count * 24));
    const recs: Array<[number, number, number, number, number, number]> = [];
    for (let i = 0; i < count; i++) {
      const op = i % nOps;
      const mx = 0x1f80 | ((rnd() & 3) << 13) | (rnd() % 4 === 0 ? 0x40 : 0) | (rnd() % 4 === 0 ? 0x8000 : 0);
      let alo: number, ahi: number, blo: number, bhi: number;
      if (op < 7 || op === 14 || op === 18 || op === 19) {
        alo = special32();
        blo = special32();
        if (rnd() % 4 === 0) blo = alo ^ (rnd() & 0x8000000f); // near-cancellation and equal operands
        ahi = bhi = 0;
      } else if (op === 16 || op === 17 || op === 23) {
        // integers: random 64-bit, small, and near powers of two (rounding ties)
        const k = rnd() % 4;
        alo = rnd() | 0;
        ahi = k === 0 ? rnd() | 0 : k === 1 ? (rnd() & 0x3ff) - 512 : k === 2 ? 1 << (rnd() % 31) : alo >> 31;
        if (k === 2) alo = (1 << (rnd() % 31)) | (rnd() % 2 ? 1 << 30 : 0);
        blo = rnd() | 0;
        bhi = rnd() | 0;
      } else {
        [alo, ahi] = special64();
        [blo, bhi] = special64();
        if (rnd() % 4 === 0) {
          blo = alo ^ (rnd() & 0xf);
          bhi = ahi ^ (rnd() & 0x80000000);
        }
        if (op >= 18 && rnd() % 2 === 0) {
          // doubles near integer boundaries for the conversions: small magnitudes and x.5 ties
          const v = ((rnd() % 2000000) - 1000000) / (rnd() % 2 ? 2 : 4);
          const dv = new DataView(new ArrayBuffer(8));
          dv.setFloat64(0, op === 22 ? v * 4096 : v, true);
          alo = dv.getInt32(0, true);
          ahi = dv.getInt32(4, true);
        }
      }
      const o = i * 24;
      buf.setUint32(o, op, true);
      buf.setUint32(o + 4, mx, true);
      buf.setInt32(o + 8, alo, true);
      buf.setInt32(o + 12, ahi, true);
      buf.setInt32(o + 16, blo, true);
      buf.setInt32(o + 20, bhi, true);
      recs.push([op, mx, alo, ahi, blo, bhi]);
    }
    const out = execFileSync(join(dir, "ref"), {
      input: new Uint8Array(buf.buffer),
      maxBuffer: count * 12 + 1024,
    });
    const ov = new DataView(out.buffer, out.byteOffset, out.byteLength);
    assert.equal(out.byteLength, count * 12);
    const fails: string[] = [];
    for (let i = 0; i < count; i++) {
      const [op, mx, alo, ahi, blo, bhi] = recs[i]!;
      sf.mxcsr = mx;
      sf.flags = 0;
      let rlo = 0;
      let rhi = 0;
      const fop = [FOp.Add, FOp.Sub, FOp.Mul, FOp.Div, FOp.Sqrt, FOp.Min, FOp.Max];
      if (op < 7) {
        rlo = op32(fop[op]!, alo, blo);
        rhi = 0;
      } else if (op < 14) {
        rlo = op64(fop[op - 7]!, alo, ahi, blo, bhi);
        rhi = sf.hi;
      } else if (op === 14) {
        rlo = cvt32to64(blo);
        rhi = sf.hi;
      } else if (op === 15) {
        rlo = cvt64to32(blo, bhi);
        rhi = ahi; // the upper half of the low quadword keeps the destination's bits
      } else if (op === 16) {
        rlo = intTo32(alo, ahi, true);
        rhi = bhi;
      } else if (op === 17) {
        rlo = intTo64(alo, ahi, true);
        rhi = sf.hi;
      } else if (op === 18 || op === 19) {
        rlo = toInt(src32(alo), true, op === 19);
        rhi = sf.hi;
      } else if (op === 20 || op === 21) {
        rlo = toInt(src64(alo, ahi), true, op === 21);
        rhi = sf.hi;
      } else if (op === 22) {
        rlo = toInt(src64(alo, ahi), false, false);
        rhi = 0;
      } else {
        rlo = intTo32(alo, 0, false);
        rhi = bhi;
      }
      const hlo = ov.getInt32(i * 12, true);
      const hhi = ov.getInt32(i * 12 + 4, true);
      const hf = ov.getUint32(i * 12 + 8, true) & 0x3f;
      if (hlo !== rlo || hhi !== rhi || hf !== sf.flags) {
        const h = (v: number): string => (v >>> 0).toString(16).padStart(8, "0");
        fails.push(
          `op ${op} mx ${mx.toString(16)} a ${h(ahi)}${h(alo)} b ${h(bhi)}${h(blo)}: host ${h(hhi)}${h(hlo)} f${hf.toString(16)}, ours ${h(rhi)}${h(rlo)} f${sf.flags.toString(16)}`,
        );
      }
    }
    assert.equal(
      fails.length,
      0,
      `${fails.length} mismatches of ${count} on ${hostProcessor()}:\n${fails.slice(0, 25).join("\n")}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an unmasked underflow reports PE only when the result with an unbounded exponent is inexact", () => {
  // SDM Vol. 1 11.5.2.5 / 4.9.1.5: with UM clear the destination is left alone, so inexactness is that of
  // the full-significand result, not of a denormal that is never delivered (as hardware reports it).
  const saved = { ...sf };
  const flags = (mxcsr: number, f: () => void): number => {
    sf.mxcsr = mxcsr;
    sf.flags = 0;
    f();
    return sf.flags;
  };
  const unmasked = 0x1f80 & ~0x800;
  try {
    // binary32: a 24-bit significand times 2^-126 is exact however tiny; (1+2^-23)(1.5+2^-23) is not.
    assert.equal(
      flags(unmasked, () => op32(FOp.Mul, 0xa34df469 | 0, 0x00800000)),
      F_UE,
    );
    assert.equal(
      flags(unmasked, () => op32(FOp.Mul, 0x3f000001, 0x00c00001)),
      F_UE | F_PE,
    );
    assert.equal(
      flags(0x1f80, () => op32(FOp.Mul, 0xa34df469 | 0, 0x00800000)),
      F_UE | F_PE,
      "masked",
    );
    // binary64 products and quotients.
    assert.equal(
      flags(unmasked, () => op64(FOp.Mul, 1, 0x3fe00000, 0, 0x00100000)),
      F_UE,
    );
    assert.equal(
      flags(unmasked, () => op64(FOp.Mul, 1, 0x3fe80000, 1, 0x00100000)),
      F_UE | F_PE,
    );
    assert.equal(
      flags(unmasked, () => op64(FOp.Div, 0, 0x00100000, 0, 0x40100000)),
      F_UE,
      "2^-1022 / 4",
    );
    assert.equal(
      flags(unmasked, () => op64(FOp.Div, 0, 0x00100000, 0, 0x40080000)),
      F_UE | F_PE,
      "/ 3",
    );
    assert.equal(
      flags(0x1f80, () => op64(FOp.Mul, 1, 0x3fe00000, 0, 0x00100000)),
      F_UE | F_PE,
      "masked",
    );
  } finally {
    Object.assign(sf, saved);
  }
});
