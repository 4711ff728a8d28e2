// Child process of tests/storage-crash.test.ts: opens a VHD read-write and performs a seeded plan of random
// writes and flushes, printing "F <n>" after each acknowledged flush (writes 0..n-1 are durable), until the
// parent kills it with SIGKILL. The plan is a pure function of the seed, so the parent regenerates it.
// Run: node dist/tests/storage-crash-writer.js <image> <seed>
import { openSync, writeSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { NodeFileOpener } from "../src/host/node-files.js";
import { openImage } from "../src/storage/open.js";

export interface PlannedWrite {
  lba: number;
  sectors: number;
  /** Every 32-bit word of every sector written holds this tag. */
  tag: number;
  flushAfter: boolean;
}

export const PLAN_LENGTH = 3000;

export function plan(seed: number, capacitySectors: number): PlannedWrite[] {
  let a = seed >>> 0;
  const random = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out: PlannedWrite[] = [];
  for (let i = 0; i < PLAN_LENGTH; i++) {
    const sectors = 1 + Math.floor(random() * (random() < 0.2 ? 512 : 16));
    const lba = Math.floor(random() * (capacitySectors - sectors));
    out.push({ lba, sectors, tag: (0x10000 * (seed & 0x7fff) + i + 1) >>> 0, flushAfter: random() < 0.25 });
  }
  return out;
}

async function main(path: string, seed: number): Promise<void> {
  const disk = await openImage(new NodeFileOpener(), path, { readOnly: false });
  const writes = plan(seed, disk.capacity / 512);
  // Reports go straight to fd 1 with a blocking write(2), so a line is in the pipe before the writer moves on;
  // the progress file (for diagnosis) records how many writes were started.
  const progress = openSync(`${path}.progress`, "w");
  writeSync(1, "ready\n");
  for (let i = 0; i < writes.length; i++) {
    const w = writes[i]!;
    writeSync(progress, String(i + 1).padStart(8), 0);
    const buf = new Uint8Array(w.sectors * 512);
    new Uint32Array(buf.buffer).fill(w.tag);
    await disk.write(w.lba, buf);
    if (w.flushAfter) {
      await disk.flush();
      writeSync(1, `F ${i + 1}\n`);
    }
  }
  await disk.flush();
  writeSync(1, `F ${writes.length}\n`);
  await disk.close();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv[2]!, Number(process.argv[3])).catch((e: unknown) => {
    process.stderr.write(`writer failed: ${String(e)}\n`);
    process.exit(3);
  });
}
