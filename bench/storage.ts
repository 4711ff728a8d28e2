// Measures sequential and random 4 KiB read and write throughput of raw images, dynamic VHDs and (when the
// vhdx format is registered) dynamic VHDX, each as a ratio to plain file I/O (fs/promises positional reads and
// writes) measured in the same run on the same machine. Page-cache throughput: no flushes inside the loops,
// so the figures compare format overhead, not the disk. Run: npm run bench -- --only storage
import { open as fsOpen } from "node:fs/promises";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeFileOpener } from "../src/host/node-files.js";
import { createImage, openImage } from "../src/storage/open.js";
import type { ImageFormatName } from "../src/storage/image-format.js";

const SIZE = 64 * 1024 * 1024;
const IO = 4096;
const OPS = SIZE / IO;
const PASSES = 5;

interface Target {
  read(offset: number, buf: Uint8Array): Promise<void>;
  write(offset: number, buf: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

type Pattern = "seq-write" | "seq-read" | "rand-write" | "rand-read";
const PATTERNS: Pattern[] = ["seq-write", "seq-read", "rand-write", "rand-read"];

function offsets(random: boolean): number[] {
  const o = Array.from({ length: OPS }, (_, i) => i * IO);
  if (!random) return o;
  let s = 12345;
  for (let i = o.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [o[i], o[j]] = [o[j]!, o[i]!];
  }
  return o;
}

async function timeOne(t: Target, p: Pattern, list: number[], buf: Uint8Array): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (const off of list) {
    if (p.endsWith("write")) await t.write(off, buf);
    else await t.read(off, buf);
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return SIZE / s / (1024 * 1024);
}

async function plainFile(path: string): Promise<Target> {
  const fh = await fsOpen(path, "w+");
  await fh.truncate(SIZE);
  return {
    read: async (o, b) => void (await fh.read(b, 0, b.length, o)),
    write: async (o, b) => void (await fh.write(b, 0, b.length, o)),
    close: () => fh.close(),
  };
}

async function image(path: string, format: ImageFormatName): Promise<Target> {
  const opener = new NodeFileOpener();
  await createImage(opener, path, format, { kind: format === "raw" ? "fixed" : "dynamic", capacity: SIZE });
  const d = await openImage(opener, path, { readOnly: false });
  return {
    read: (o, b) => d.read(o / d.logicalSectorSize, b),
    write: (o, b) => d.write(o / d.logicalSectorSize, b),
    close: () => d.close(),
  };
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "viridian-bench-"));
  try {
    const rows: Array<[string, Record<Pattern, number>]> = [];
    const targets: Array<[string, () => Promise<Target>]> = [
      ["plain fs", () => plainFile(join(dir, "plain.img"))],
      ["raw", () => image(join(dir, "r.img"), "raw")],
      ["vhd dynamic", () => image(join(dir, "d.vhd"), "vhd")],
      ["vhdx dynamic", () => image(join(dir, "d.vhdx"), "vhdx")],
    ];
    // Targets are opened together and measured in turns, best of five passes, patterns interleaved, so load from other
    // processes on the machine spreads over all of them; the first pass also fills every file.
    const opened: Array<[string, Target]> = [];
    try {
      for (const [name, make] of targets) opened.push([name, await make()]);
      const best = new Map<string, Record<Pattern, number>>();
      for (const [name] of opened)
        best.set(name, { "seq-write": 0, "seq-read": 0, "rand-write": 0, "rand-read": 0 });
      const buf = new Uint8Array(IO).fill(0x5a);
      for (let pass = 0; pass < PASSES; pass++) {
        for (const p of PATTERNS) {
          const list = offsets(p.startsWith("rand"));
          for (const [name, t] of opened) {
            const b = best.get(name)!;
            b[p] = Math.max(b[p], await timeOne(t, p, list, buf));
          }
        }
      }
      for (const [name] of opened) rows.push([name, best.get(name)!]);
    } finally {
      for (const [, t] of opened) await t.close();
    }
    const base = rows[0]![1];
    console.log(
      `storage: ${OPS} x 4 KiB operations over ${SIZE >> 20} MiB per pattern, best of ${PASSES} (MiB/s, ratio to plain fs)`,
    );
    console.log(["target".padEnd(14), ...PATTERNS.map((p) => p.padStart(20))].join(""));
    for (const [name, r] of rows) {
      const cells = PATTERNS.map((p) => `${r[p].toFixed(0)} (${(r[p] / base[p]).toFixed(2)}x)`.padStart(20));
      console.log([name.padEnd(14), ...cells].join(""));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
