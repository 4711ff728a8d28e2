// Measures candidate representations of 64-bit guest registers on the interpreter's typical work:
// add with carry-out, xor, shift, compare, and an address computation (base + index*8 + disp).
// Drives docs/decisions/0001-64-bit-registers.md. Run: node dist/bench/reg64-representation.js
const N = 20_000_000;

function bigintFile(): number {
  const r = new BigUint64Array(16);
  const M = (1n << 64n) - 1n;
  r[0] = 0x123456789abcdefn;
  r[1] = 0xfedcba987654321n;
  let acc = 0;
  for (let i = 0; i < N; i++) {
    const a = r[i & 7]!;
    const b = r[(i + 1) & 7]!;
    const s = (a + b) & M;
    r[(i + 2) & 7] = s ^ (b >> 3n);
    const addr = (a + b * 8n + 16n) & M;
    if (s < a) acc++;
    acc += Number(addr & 0xffn);
  }
  return acc;
}

function splitFile(): number {
  const lo = new Int32Array(16);
  const hi = new Int32Array(16);
  lo[0] = 0x89abcdef | 0;
  hi[0] = 0x1234567;
  lo[1] = 0x87654321 | 0;
  hi[1] = 0xfedcba9;
  let acc = 0;
  for (let i = 0; i < N; i++) {
    const ia = i & 7;
    const ib = (i + 1) & 7;
    const alo = lo[ia]!,
      ahi = hi[ia]!,
      blo = lo[ib]!,
      bhi = hi[ib]!;
    const slo = (alo + blo) | 0;
    const carry = slo >>> 0 < alo >>> 0 ? 1 : 0;
    const shi = (ahi + bhi + carry) | 0;
    const d = (i + 2) & 7;
    lo[d] = slo ^ ((blo >>> 3) | (bhi << 29));
    hi[d] = shi ^ (bhi >>> 3);
    // address = a + b*8 + 16 (only the low byte is consumed, like a TLB index)
    const t = (blo << 3) | 0;
    const alo2 = (alo + t + 16) | 0;
    if (shi >>> 0 < ahi >>> 0 || (shi === ahi && slo >>> 0 < alo >>> 0)) acc++;
    acc += alo2 & 0xff;
  }
  return acc;
}

function time(name: string, f: () => number): number {
  f(); // warm up the JIT
  const t0 = process.hrtime.bigint();
  const v = f();
  const ns = Number(process.hrtime.bigint() - t0);
  const per = ns / N;
  console.log(`${name.padEnd(28)} ${per.toFixed(2)} ns/op  (checksum ${v})`);
  return per;
}

const a = time("BigUint64Array + BigInt", bigintFile);
const b = time("Int32Array lo/hi pairs", splitFile);
console.log(`ratio BigInt / split: ${(a / b).toFixed(1)}x`);
