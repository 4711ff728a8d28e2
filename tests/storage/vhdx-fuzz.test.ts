// fast-check fuzzing of VHDX parsing: valid images (dynamic with data, fixed, differencing, and one with a
// pending log) are mutated in their headers, region tables, log, metadata and BAT (with checksums fixed up
// afterwards half the time, so the mutation reaches the parser behind them) or truncated. Opening, reading,
// writing, checking and closing may fail only with StorageError, must finish, and must not allocate absurdly.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { MemFile, MemFs } from "./memory-disks.js";
import { StorageError } from "../../src/storage/disk.js";
import { vhdxFormat } from "../../src/storage/vhdx/format.js";
import { crc32c, crc32cWithHole } from "../../src/support/crc32c.js";

const MiB = 1024 * 1024;
const put32 = (b: Uint8Array, at: number, v: number) =>
  new DataView(b.buffer, b.byteOffset).setUint32(at, v >>> 0, true);
const get32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true);

async function seeds(): Promise<Record<string, { fs: MemFs; path: string }>> {
  const out: Record<string, { fs: MemFs; path: string }> = {};
  const make = async (name: string, kind: "dynamic" | "fixed") => {
    const fs = new MemFs();
    await vhdxFormat.create(fs, "/img.vhdx", { kind, capacity: 6 * MiB, blockSize: MiB });
    const d = await vhdxFormat.open(fs, "/img.vhdx", { readOnly: false });
    await d.write(100, new Uint8Array(3 * MiB).fill(0x11));
    if (name === "pending-log") {
      await d.flush(); // the session's log stays live until close: this image needs replay
    } else await d.close();
    out[name] = { fs, path: "/img.vhdx" };
    return fs;
  };
  await make("dynamic", "dynamic");
  await make("fixed", "fixed");
  await make("pending-log", "dynamic");
  const fs = await make("parent", "dynamic");
  await vhdxFormat.create(fs, "/child.vhdx", {
    kind: "differencing",
    parentPath: "/img.vhdx",
    blockSize: MiB,
  });
  const c = await vhdxFormat.open(fs, "/child.vhdx", { readOnly: false });
  await c.write(2047, new Uint8Array(4096).fill(0x22));
  await c.close();
  out.differencing = { fs, path: "/child.vhdx" };
  return out;
}

/** Offsets worth mutating: the fields of each structure of the layout our creator writes. */
const regions: Array<[number, number]> = [
  [0, 16], // file identifier
  [64 * 1024, 80], // header 1 fields
  [128 * 1024, 80], // header 2 fields
  [192 * 1024, 16 + 3 * 32], // region table 1
  [256 * 1024, 16 + 3 * 32], // region table 2
  [MiB, 8192], // log: first entry header, descriptors, data sector
  [2 * MiB, 32 + 7 * 32], // metadata table
  [2 * MiB + 64 * 1024, 200], // metadata items
  [3 * MiB, 256], // BAT
];

function fixChecksums(b: Uint8Array): void {
  for (const h of [64 * 1024, 128 * 1024]) {
    if (h + 4096 <= b.length) put32(b, h + 4, crc32cWithHole(b.subarray(h, h + 4096), 4));
  }
  for (const r of [192 * 1024, 256 * 1024]) {
    if (r + 65536 <= b.length) put32(b, r + 4, crc32cWithHole(b.subarray(r, r + 65536), 4));
  }
  const len = b.length >= MiB + 8 ? get32(b, MiB + 8) : 0;
  if (len > 0 && len <= MiB && MiB + len <= b.length) {
    const e = b.subarray(MiB, MiB + len);
    let c = crc32c(e.subarray(0, 4));
    c = crc32c(new Uint8Array(4), c);
    put32(b, MiB + 4, crc32c(e.subarray(8), c));
  }
}

const mutation = fc.record({
  image: fc.constantFrom("dynamic", "fixed", "pending-log", "differencing"),
  edits: fc.array(
    fc.record({
      region: fc.nat(regions.length - 1),
      at: fc.nat(8191),
      value: fc.oneof(fc.nat(255), fc.constantFrom(0, 0xff, 0x80, 0x7f)),
      width: fc.constantFrom(1, 4),
    }),
    { minLength: 1, maxLength: 6 },
  ),
  fix: fc.boolean(),
  truncateTo: fc.option(fc.nat(9 * MiB), { freq: 4 }),
  readOnly: fc.boolean(),
});

test(
  "mutated VHDX images fail only with StorageError, finish, and allocate sanely",
  { timeout: process.env.VIRIDIAN_FULL === "1" ? 3_600_000 : 240_000 },
  async () => {
    const base = await seeds();
    let errors = 0;
    const stats = new Map<string, number>();
    let opened = 0;
    await fc.assert(
      fc.asyncProperty(mutation, async (m) => {
        const seed = base[m.image]!;
        const fs = new MemFs();
        for (const [p, f] of seed.fs.files) fs.files.set(p, new MemFile(f.contents()));
        const file = fs.file(seed.path);
        const bytes = file.contents();
        for (const e of m.edits) {
          const [start, len] = regions[e.region]!;
          const at = start + (e.at % len);
          for (let i = 0; i < e.width && at + i < bytes.length; i++)
            bytes[at + i] = i === 0 ? e.value : (e.value * 7 + i) & 0xff;
        }
        if (m.fix) fixChecksums(bytes);
        const cut = m.truncateTo === null ? bytes : bytes.subarray(0, Math.min(bytes.length, m.truncateTo));
        fs.files.set(seed.path, new MemFile(cut));
        const before = process.memoryUsage().arrayBuffers;
        try {
          const d = await vhdxFormat.open(fs, seed.path, { readOnly: m.readOnly });
          opened++;
          try {
            // A mutated size may claim up to what the BAT covers (128 GiB here): read the start and the end.
            const span = Math.min(d.capacity, 8 * MiB);
            const buf = new Uint8Array(span);
            await d.read(0, buf);
            await d.read((d.capacity - span) / d.logicalSectorSize, buf);
            if (!m.readOnly) {
              await d.write(2048, new Uint8Array(8192).fill(0x33));
              await d.trim(0, MiB / d.logicalSectorSize);
              await d.flush();
            }
            await d.check(!m.readOnly);
            await d.isAllocated(0, d.capacity / d.logicalSectorSize);
            d.info();
          } finally {
            await d.close();
          }
        } catch (e) {
          if (!(e instanceof StorageError)) throw e;
          errors++;
          const kind = `${e.code}: ${e.message.replace(/^[^:]*: /, "").replace(/\d+/g, "N")}`;
          stats.set(kind, (stats.get(kind) ?? 0) + 1);
        }
        const grown = process.memoryUsage().arrayBuffers - before;
        assert.ok(grown < 512 * MiB, `allocated ${grown} bytes`);
      }),
      {
        numRuns: Number(process.env.VIRIDIAN_FUZZ_RUNS ?? (process.env.VIRIDIAN_FULL === "1" ? 3000 : 250)),
        seed: Number(process.env.VIRIDIAN_FUZZ_SEED ?? 0x7e57),
      },
    );
    if (process.env.VIRIDIAN_FUZZ_STATS)
      console.log(
        [...stats].sort((a, b) => b[1] - a[1]),
        { opened },
      );
    // Both outcomes must occur, or the mutations are not reaching the parser.
    assert.ok(errors > 0 && opened > 0, `errors ${errors}, opened ${opened}`);
  },
);
