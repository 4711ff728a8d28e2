// Measures a dynamic VHDX's 4 KiB throughput (sequential and random, read and write) through the Disk
// interface, next to the same access pattern on a raw file as the peer, in MB/s by case.
// Called by bench/run.ts (and by bench/storage.ts when present) as benchVhdx(dir). Uses the test-only Node
// FileOpener until src/host/node-files.ts lands.
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { NodeOpener } from "../tests/storage/node-opener.js";
import { vhdxFormat } from "../src/storage/vhdx/format.js";
import type { FileHandle } from "../src/storage/disk.js";

const MiB = 1024 * 1024;
const SPAN = 64 * MiB;
const IO = 4096;

/** A deterministic LCG so every run touches the same offsets. */
function offsets(n: number, seed: number): number[] {
  let x = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out.push((x % (SPAN / IO)) * IO);
  }
  return out;
}

async function timed(bytes: number, f: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await f();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return bytes / MiB / s;
}

export async function benchVhdx(dir: string): Promise<Record<string, number>> {
  const work = mkdtempSync(join(dir, "vhdx-bench-"));
  const opener = new NodeOpener();
  const out: Record<string, number> = {};
  const buf = new Uint8Array(IO).fill(0xa5);
  const seq = Array.from({ length: SPAN / IO }, (_, i) => i * IO);
  const rnd = offsets(8192, 12345);
  try {
    const path = join(work, "bench.vhdx");
    await vhdxFormat.create(opener, path, { kind: "dynamic", capacity: 4 * SPAN });
    const d = await vhdxFormat.open(opener, path, { readOnly: false });
    const s = d.logicalSectorSize;
    out["vhdx seq write 4K (allocating)"] = await timed(SPAN, async () => {
      for (const o of seq) await d.write(o / s, buf);
      await d.flush();
    });
    out["vhdx seq read 4K"] = await timed(SPAN, async () => {
      for (const o of seq) await d.read(o / s, buf);
    });
    out["vhdx random write 4K"] = await timed(rnd.length * IO, async () => {
      for (const o of rnd) await d.write(o / s, buf);
      await d.flush();
    });
    out["vhdx random read 4K"] = await timed(rnd.length * IO, async () => {
      for (const o of rnd) await d.read(o / s, buf);
    });
    await d.close();

    const raw: FileHandle = await opener.create(join(work, "bench.raw"));
    out["raw seq write 4K"] = await timed(SPAN, async () => {
      for (const o of seq) await raw.write(o, buf);
      await raw.flush();
    });
    out["raw seq read 4K"] = await timed(SPAN, async () => {
      for (const o of seq) await raw.read(o, buf);
    });
    out["raw random write 4K"] = await timed(rnd.length * IO, async () => {
      for (const o of rnd) await raw.write(o, buf);
      await raw.flush();
    });
    out["raw random read 4K"] = await timed(rnd.length * IO, async () => {
      for (const o of rnd) await raw.read(o, buf);
    });
    await raw.close();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}
