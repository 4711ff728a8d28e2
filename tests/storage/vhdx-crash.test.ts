// Crash consistency of VHDX writes: a writer child process (compiled code in dist/) runs random writes,
// flushes and trims on a dynamic or a differencing image and is SIGKILLed at a random moment (sometimes
// again while the next open replays the log). Afterwards the image must open, check clean (ours, and
// `qemu-img check` for dynamic images, whose log qemu also replays on a copy to the same bytes), and every
// write acknowledged by a flush must be present. Seeded; the seed is printed on failure.
// VIRIDIAN_CRASH_TRIALS overrides the trial count (default 100; 500 with VIRIDIAN_FULL=1).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { NodeFileOpener as NodeOpener } from "../../src/host/node-files.js";
import { rng } from "./memory-disks.js";
import { CRASH_BLOCK, CRASH_CAPACITY, crashOps, parentContent, sectorContent } from "./vhdx-crash-ops.js";
import { vhdxFormat } from "../../src/storage/vhdx/format.js";

const here = dirname(fileURLToPath(import.meta.url));
const writer = join(here, "vhdx-crash-writer.js");
// SIGKILL keeps the page cache, so durability syscalls do not change what survives: tmpfs keeps them cheap.
const dir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "vhdx-crash-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const opener = new NodeOpener();
const TRIALS = Number(process.env.VIRIDIAN_CRASH_TRIALS ?? (process.env.VIRIDIAN_FULL === "1" ? 500 : 100));
const SECTORS = CRASH_CAPACITY / 512;

/**
 * Runs the writer and SIGKILLs it `delay` ms after it reports ready (or after spawn when `early`); returns
 * the report file's contents.
 */
function runAndKill(args: string[], delay: number, early: boolean): Promise<string> {
  const report = `${args[0]}.report`;
  writeFileSync(report, "");
  const [path, seed, ...rest] = args;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [writer, path!, seed!, report, ...rest], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let timer: NodeJS.Timeout | undefined;
    const arm = () => (timer ??= setTimeout(() => child.kill("SIGKILL"), delay));
    if (early) arm();
    child.stdout.on("data", arm);
    child.on("close", () => {
      if (timer) clearTimeout(timer);
      const out = readFileSync(report, "utf8");
      rmSync(report, { force: true });
      resolve(out);
    });
  });
}

async function makeParent(): Promise<string> {
  const p = join(dir, "parent.vhdx");
  await vhdxFormat.create(opener, p, { kind: "dynamic", capacity: CRASH_CAPACITY, blockSize: CRASH_BLOCK });
  const d = await vhdxFormat.open(opener, p, { readOnly: false });
  const b = new Uint8Array(CRASH_CAPACITY);
  for (let s = 0; s < SECTORS; s++) parentContent(s, b.subarray(s * 512, s * 512 + 512));
  await d.write(0, b);
  await d.close();
  return p;
}

test(`SIGKILLed VHDX writers leave consistent images holding every flushed write (${TRIALS} trials)`, async () => {
  const parent = await makeParent();
  const master = rng(Number(process.env.VIRIDIAN_CRASH_SEED ?? 0xc0ffee));
  const seeds = Array.from({ length: TRIALS }, () => Math.floor(master() * 2 ** 31));
  const trial = async (t: number) => {
    const seed = seeds[t]!;
    const diff = t % 2 === 1;
    const path = join(dir, `t${t}.vhdx`);
    const where = `trial ${t} (${diff ? "differencing" : "dynamic"}), seed ${seed}`;
    try {
      if (diff)
        await vhdxFormat.create(opener, path, {
          kind: "differencing",
          parentPath: parent,
          blockSize: CRASH_BLOCK,
        });
      else
        await vhdxFormat.create(opener, path, {
          kind: "dynamic",
          capacity: CRASH_CAPACITY,
          blockSize: CRASH_BLOCK,
        });
      const r = rng(seed);
      const out = await runAndKill([path, String(seed)], Math.floor(r() * 250), r() < 0.1);
      if (r() < 0.15) await runAndKill([path, String(seed), "--open-only"], Math.floor(r() * 60), true);
      await verify(path, seed, out, diff, where, t % 8 === 0);
    } catch (e) {
      console.error(`VHDX crash test failed: ${where}`);
      throw e;
    } finally {
      rmSync(path, { force: true });
    }
  };
  // Three trials at a time: most of a trial is waiting for a child process to start or be killed.
  let next = 0;
  const lane = async () => {
    while (next < TRIALS) await trial(next++);
  };
  await Promise.all([lane(), lane(), lane()]);
});

async function verify(
  path: string,
  seed: number,
  out: string,
  diff: boolean,
  where: string,
  convert: boolean,
): Promise<void> {
  let acked = -1; // operations before this index are durable
  let started = -1;
  for (const line of out.split("\n")) {
    const [k, v] = line.split(" ");
    if (k === "F") acked = Number(v);
    if (k === "S") started = Number(v);
  }
  const ops = crashOps(seed, started + 1);
  // owner[s]: 0 = base content, -1 = zeros (trimmed), n = written by op n-1. maybe[s]: later candidates.
  const owner = new Int32Array(SECTORS);
  const maybe = new Map<number, Set<number>>();
  const apply = (i: number, target: (s: number, v: number) => void) => {
    const op = ops[i]!;
    if (op.kind === "write") for (let s = op.lba; s < op.lba + op.count; s++) target(s, i + 1);
    else if (op.kind === "trim") {
      const spb = CRASH_BLOCK / 512;
      for (let b = Math.ceil(op.lba / spb); (b + 1) * spb <= op.lba + op.count; b++) {
        for (let s = b * spb; s < (b + 1) * spb; s++) target(s, -1);
      }
    }
  };
  for (let i = 0; i < ops.length; i++) {
    if (i < acked) apply(i, (s, v) => (owner[s] = v));
    else apply(i, (s, v) => (maybe.get(s) ?? maybe.set(s, new Set()).get(s)!).add(v));
  }
  const d = await vhdxFormat.open(opener, path, { readOnly: false });
  assert.deepEqual(await d.check(false), { problems: [], repaired: [] }, where);
  const all = new Uint8Array(CRASH_CAPACITY);
  await d.read(0, all);
  await d.close();
  const zero = new Uint8Array(512);
  const base = (s: number) => (diff ? parentContent(s) : zero);
  const content = (v: number, s: number) => (v === 0 ? base(s) : v === -1 ? zero : sectorContent(v, s));
  for (let s = 0; s < SECTORS; s++) {
    const got = all.subarray(s * 512, s * 512 + 512);
    if (Buffer.compare(got, content(owner[s]!, s)) === 0) continue;
    const alts = maybe.get(s);
    const ok = alts !== undefined && [...alts].some((v) => Buffer.compare(got, content(v, s)) === 0);
    if (!ok && process.env.VIRIDIAN_CRASH_KEEP)
      copyFileSync(path, `${process.env.VIRIDIAN_CRASH_KEEP}/${seed}.vhdx`);
    const tag = new DataView(got.buffer, got.byteOffset, 8);
    assert.ok(
      ok,
      `${where}: sector ${s} lost its flushed content (owner ${owner[s]}, acked ${acked}, started ${started}; ` +
        `holds tag ${tag.getUint32(0, true)}/${tag.getUint32(4, true)})`,
    );
  }
  if (!diff) {
    const check = spawnSync("qemu-img", ["check", "-f", "vhdx", path], { encoding: "utf8" });
    assert.equal(check.status, 0, `${where}: qemu-img check: ${check.stdout}${check.stderr}`);
    if (convert) {
      const raw = `${path}.raw`;
      execFileSync("qemu-img", ["convert", "-f", "vhdx", "-O", "raw", path, raw]);
      assert.equal(Buffer.compare(readFileSync(raw), all), 0, `${where}: qemu reads different bytes`);
      rmSync(raw, { force: true });
    }
  }
}

test("qemu replays a log we left behind to the same bytes our replay gives", async () => {
  for (let t = 0; t < 4; t++) {
    const seed = 777 + t;
    const path = join(dir, `q${t}.vhdx`);
    await vhdxFormat.create(opener, path, {
      kind: "dynamic",
      capacity: CRASH_CAPACITY,
      blockSize: CRASH_BLOCK,
    });
    const out = await runAndKill([path, String(seed)], 150 + t * 40, false);
    copyFileSync(path, `${path}.q`);
    // qemu refuses a read-only open of an image whose log needs replay; `check -r all` replays it.
    const rep = spawnSync("qemu-img", ["check", "-r", "all", "-f", "vhdx", `${path}.q`], {
      encoding: "utf8",
    });
    assert.equal(rep.status, 0, `seed ${seed}: ${rep.stdout}${rep.stderr}`);
    execFileSync("qemu-img", ["convert", "-f", "vhdx", "-O", "raw", `${path}.q`, `${path}.raw`]);
    const d = await vhdxFormat.open(opener, path, { readOnly: true });
    const ours = new Uint8Array(CRASH_CAPACITY);
    await d.read(0, ours);
    await d.close();
    assert.equal(
      Buffer.compare(readFileSync(`${path}.raw`), ours),
      0,
      `seed ${seed}: replays differ (${out.length} bytes of writer output)`,
    );
    for (const p of [path, `${path}.q`, `${path}.raw`]) rmSync(p, { force: true });
  }
});
