// Crash trials for VHD: a writer process (tests/storage-crash-writer.ts, compiled) does seeded random writes
// and flushes on a dynamic VHD or a differencing VHD over a shared base, reporting each acknowledged flush;
// we SIGKILL it at a random moment and then require:
//   - the image opens (read-only, with no repair) and every write acknowledged by a flush reads back;
//   - every sector holds either its last flushed contents or the contents of one unflushed write to it;
//   - check() is clean, or clean after check(repair) (the count of trials that needed repair is printed).
// VIRIDIAN_CRASH_TRIALS sets the number of trials (default 100: 50 dynamic + 50 differencing);
// VIRIDIAN_SEED fixes the seed. The seed is printed on failure.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { NodeFileOpener } from "../src/host/node-files.js";
import { createImage, openImage } from "../src/storage/open.js";
import { check } from "../src/storage/operations.js";
import { plan } from "./storage-crash-writer.js";

const WRITER = fileURLToPath(new URL("./storage-crash-writer.js", import.meta.url));
const CAPACITY = 16 * 1024 * 1024;
const SECTORS = CAPACITY / 512;
const opener = new NodeFileOpener();

function baseTag(sector: number): number {
  return (0xb0000000 | sector) >>> 0;
}

/** Runs the writer until killed after `delayMs` past "ready"; returns the count of flushed writes. */
function runWriter(image: string, seed: number, delayMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, image, String(seed)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let flushed = 0;
    let pending = "";
    let stderr = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line === "ready") setTimeout(() => child.kill("SIGKILL"), delayMs);
        else if (line.startsWith("F ")) flushed = Math.max(flushed, Number(line.slice(2)));
      }
    });
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (signal !== "SIGKILL" && code !== 0) reject(new Error(`writer exited ${code}: ${stderr}`));
      else resolve(flushed);
    });
  });
}

async function verify(image: string, seed: number, flushed: number, differencing: boolean): Promise<void> {
  const writes = plan(seed, SECTORS);
  const last = new Uint32Array(SECTORS);
  if (differencing) for (let s = 0; s < SECTORS; s++) last[s] = baseTag(s);
  for (let i = 0; i < flushed; i++) {
    const w = writes[i]!;
    last.fill(w.tag, w.lba, w.lba + w.sectors);
  }
  // Writes after the last acknowledged flush, up to and including the next planned flush, may be present.
  const maybe = new Map<number, Set<number>>();
  for (let i = flushed; i < writes.length; i++) {
    const w = writes[i]!;
    for (let s = w.lba; s < w.lba + w.sectors; s++) {
      let set = maybe.get(s);
      if (!set) maybe.set(s, (set = new Set()));
      set.add(w.tag);
    }
    if (w.flushAfter) break;
  }
  const disk = await openImage(opener, image, { readOnly: true });
  const buf = new Uint8Array(CAPACITY);
  await disk.read(0, buf);
  await disk.close();
  const words = new Uint32Array(buf.buffer);
  for (let s = 0; s < SECTORS; s++) {
    const v = words[s * 128]!;
    for (let k = 1; k < 128; k++) {
      if (words[s * 128 + k] !== v) assert.fail(`sector ${s} is torn inside (word ${k})`);
    }
    if (v !== last[s] && !maybe.get(s)?.has(v)) {
      assert.fail(
        `sector ${s} holds ${v.toString(16)}, expected ${last[s]!.toString(16)} (flushed=${flushed})`,
      );
    }
  }
}

test("VHD crash trials: flushed writes survive SIGKILL at random moments; images open and check clean", async () => {
  const trials = Number(process.env.VIRIDIAN_CRASH_TRIALS ?? 100);
  const seed0 = Number(process.env.VIRIDIAN_SEED ?? Math.floor(Math.random() * 2 ** 24));
  const dir = mkdtempSync(join(tmpdir(), "viridian-crash-"));
  const stats = { repaired: 0, flushedWrites: 0, killedBeforeEnd: 0 };
  let current = seed0;
  try {
    const base = join(dir, "base.vhd");
    await createImage(opener, base, "vhd", { kind: "dynamic", capacity: CAPACITY, blockSize: 1 << 20 });
    const b = await openImage(opener, base, { readOnly: false });
    const fill = new Uint32Array(CAPACITY / 4);
    for (let s = 0; s < SECTORS; s++) fill.fill(baseTag(s), s * 128, s * 128 + 128);
    await b.write(0, new Uint8Array(fill.buffer));
    await b.flush();
    await b.close();
    const one = async (t: number): Promise<void> => {
      const seed = seed0 + t;
      current = seed;
      const differencing = t % 2 === 1;
      const image = join(dir, `t${t}.vhd`);
      const blockSize = [64 * 1024, 512 * 1024, 2 * 1024 * 1024][seed % 3]!;
      await createImage(
        opener,
        image,
        "vhd",
        differencing
          ? { kind: "differencing", parentPath: base, blockSize }
          : { kind: "dynamic", capacity: CAPACITY, blockSize },
      );
      const delay = (seed * 7919) % 150;
      const flushed = await runWriter(image, seed, delay);
      stats.flushedWrites += flushed;
      if (flushed < 3000) stats.killedBeforeEnd++;
      try {
        await verify(image, seed, flushed, differencing);
        const report = await check(opener, image, false);
        if (report.problems.length) {
          stats.repaired++;
          await check(opener, image, true);
          assert.deepEqual((await check(opener, image, false)).problems, [], "clean after repair");
          await verify(image, seed, flushed, differencing);
        }
      } catch (e) {
        let started = "?";
        try {
          started = readFileSync(`${image}.progress`, "utf8").trim();
        } catch {
          // no progress file: the writer died before its first write
        }
        throw new Error(
          `crash trial ${t} (seed ${seed}, ${differencing ? "differencing" : "dynamic"}, ` +
            `writes started ${started}, flushed ${flushed}): ${String(e)}`,
        );
      }
      rmSync(image, { force: true });
      rmSync(`${image}.progress`, { force: true });
    };
    // Three trials at a time: most of a trial is the writer's Node start-up, not I/O.
    for (let t = 0; t < trials; t += 3) {
      await Promise.all([t, t + 1, t + 2].filter((k) => k < trials).map((k) => one(k)));
    }
    console.log(
      `crash trials: ${trials}, killed mid-run ${stats.killedBeforeEnd}, flushed writes verified ${stats.flushedWrites}, ` +
        `needed repair ${stats.repaired} (seed base ${seed0})`,
    );
    assert.ok(stats.killedBeforeEnd >= trials / 2, "most trials were killed mid-run");
  } catch (e) {
    console.error(`crash trials failed: VIRIDIAN_SEED=${seed0} (trial seed ${current})`);
    throw e;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
