// Storage across boots of the bundled guest through `viridian run --disk ...`, each boot ended by SIGKILL of
// the VM process in the middle of a guest loop of synchronous direct writes (a crash, not a shutdown), with
// three disks: a fresh 1 GiB dynamic VHDX, a differencing VHDX over a parent that holds data, and a dynamic
// VHDX with 1 MiB blocks for the durability trials.
// - Boot 1 partitions the fresh VHDX with fdisk, makes an ext4 file system, writes 64 MiB of pseudo-random
//   data and its md5, unmounts and syncs; writes a pattern through the differencing disk with
//   `dd oflag=direct` (and reads the parent's data through it).
// - Boot 2 mounts that file system and the md5 matches.
// - Every boot runs one durability trial: a loop writes numbered 64 KiB blocks, each at the start of its own
//   1 MiB VHDX block (so every write allocates a block and changes the BAT), with `dd oflag=direct
//   conv=fsync` (SYNCHRONIZE CACHE after the data), printing the number after dd returned; the test
//   SIGKILLs `viridian run` after a trial-specific count of numbers. The image is then reopened read-write
//   (which replays the VHDX log), every block whose number was printed, in this and earlier trials, holds
//   its pattern, and `viridian vhd check` says clean.
// - After the last boot: the parent's bytes are unchanged, `viridian vhd merge` moves the child's writes
//   into the parent, and `qemu-img convert` of the parent shows them over the parent's own data.
// Trials: 3 (so 3 boots) by default; VIRIDIAN_DURABILITY_TRIALS=50 runs 50 (one boot each, about a minute
// apiece on an idle machine).
// Must not: assert timings (limits only keep a hang from hanging the suite); QEMU has no storvsc, so there
// is no reference variant.
// Spec: issue 10 acceptance 2 (second half: the file system and md5 in a second boot), 3 (copy-on-write,
// merge) and 4 (durability under SIGKILL); storvsc completes a write after Disk.write returned and, for
// FUA or SYNCHRONIZE CACHE, after Disk.flush (src/vsp/storvsp/block-commands.ts).
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { NodeFileOpener } from "../../src/host/node-files.js";
import { createImage, openImage } from "../../src/storage/open.js";
import {
  forbiddenLines,
  limits,
  REPO,
  skipReason,
  startGuest,
  type GuestConsole,
  withoutControlSequences,
} from "../linux/guest-console.js";

const lim = limits("viridian");
const MiB = 1024 * 1024;
const BLOCK = 65536;
/** Writing or hashing 64 MiB in an interpreted guest on a loaded machine takes minutes: a wider hang guard. */
const HEAVY_MS = 4 * lim.commandMs;
const STEP_MS = 2 * lim.bootMs + 3 * HEAVY_MS + 8 * lim.commandMs + 2 * lim.stopMs;
const tools = ["qemu-img"].filter((t) => spawnSync("sh", ["-c", `command -v ${t}`]).status !== 0);
const skip = skipReason("viridian") || (tools.length > 0 ? `needs ${tools.join(", ")}` : false);
const envTrials = Number(process.env.VIRIDIAN_DURABILITY_TRIALS);
/** One boot per trial; boots 1 and 2 also carry the file-system and copy-on-write steps. */
const TRIALS = Number.isInteger(envTrials) && envTrials >= 2 ? envTrials : 3;
/** Numbers a trial may use: trial t writes blocks t * PER_TRIAL, ..., each at its own MiB. */
const PER_TRIAL = 64;
const opener = new NodeFileOpener();
const md5 = (b: Uint8Array): string => createHash("md5").update(b).digest("hex");

/** 64 KiB of a line repeated (what `yes LINE | head -c 65536` prints in the guest). */
function pattern(line: string): Uint8Array {
  const l = new TextEncoder().encode(line + "\n");
  const out = new Uint8Array(BLOCK);
  for (let i = 0; i < out.length; i++) out[i] = l[i % l.length]!;
  return out;
}
const durableLine = (n: number): string => `durable block ${n}`;
/** How many numbers trial t waits for before the kill: varied, so the kill lands at different points. */
const killAfter = (t: number): number => 3 + ((7 * t) % 13);

// The parent of the differencing disk: 64 MiB, its first 8 MiB written by the host with one line per 64 KiB.
const PARENT_DATA_BLOCKS = 128;
const parentLine = (b: number): string => `parent block ${b}`;
/** Where the guest writes through the child: over parent data, and where the parent has none. */
const COW_BLOCKS = [48, 700] as const;
const cowLine = (b: number): string => `child block ${b}`;

interface Images {
  dir: string;
  fresh: string;
  parent: string;
  child: string;
  durable: string;
  parentMd5: string;
}

async function makeImages(): Promise<Images> {
  const dir = mkdtempSync(join(tmpdir(), "viridian-reboot-"));
  const fresh = join(dir, "fresh.vhdx");
  await createImage(opener, fresh, "vhdx", { kind: "dynamic", capacity: 1024 * MiB });
  const parent = join(dir, "parent.vhdx");
  await createImage(opener, parent, "vhdx", { kind: "dynamic", capacity: 64 * MiB, blockSize: 2 * MiB });
  const p = await openImage(opener, parent, { readOnly: false });
  try {
    for (let b = 0; b < PARENT_DATA_BLOCKS; b++) await p.write((b * BLOCK) / 512, pattern(parentLine(b)));
    await p.flush();
  } finally {
    await p.close();
  }
  const child = join(dir, "child.vhdx");
  await createImage(opener, child, "vhdx", { kind: "differencing", parentPath: parent });
  const durable = join(dir, "durable.vhdx");
  await createImage(opener, durable, "vhdx", { kind: "dynamic", capacity: 4096 * MiB, blockSize: MiB });
  return { dir, fresh, parent, child, durable, parentMd5: md5(readFileSync(parent)) };
}

function viridianVhd(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [resolve(REPO, "bin/viridian.js"), "vhd", ...args], {
    encoding: "utf8",
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The block device of each LUN (probe order need not be LUN order). */
async function lunDevices(g: GuestConsole, luns: number): Promise<string[]> {
  const out = withoutControlSequences(
    await g.run(
      `for l in $(seq 0 ${luns - 1}); do echo "lun=$l dev=$(ls /sys/bus/scsi/devices/*:0:0:$l/block)"; done`,
    ),
  );
  const devs: string[] = [];
  for (const m of out.matchAll(/^lun=(\d+) dev=(sd[a-z]+)$/gm)) devs[Number(m[1])] = `/dev/${m[2]}`;
  for (let l = 0; l < luns; l++) assert.ok(devs[l], `no block device for LUN ${l}:\n${out}`);
  return devs;
}

/** Output of a command that ends with `echo rc=$?`, checked for status 0. */
async function ok(g: GuestConsole, command: string, timeoutMs = lim.commandMs): Promise<string> {
  const out = withoutControlSequences(await g.run(`${command}; echo rc=$?`, timeoutMs));
  assert.match(out, /rc=0\s*$/, `${command}:\n${out}`);
  return out;
}

describe("storage across SIGKILLed boots: file system, copy-on-write and merge, durability", { skip }, () => {
  const holder: { img?: Images; printed: number[]; failed?: string } = { printed: [] };
  before(async () => {
    holder.img = await makeImages();
  });
  after(() => {
    if (holder.img) rmSync(holder.img.dir, { recursive: true, force: true });
  });

  for (let trial = 0; trial < TRIALS; trial++) {
    const title =
      trial === 0
        ? "boot 1: fdisk + mkfs.ext4 + 64 MiB and its md5 on a fresh VHDX; copy-on-write writes; trial 1"
        : trial === 1
          ? "boot 2: the file system mounts and the md5 matches; trial 2"
          : `boot ${trial + 1}: trial ${trial + 1}`;
    it(`${title}; SIGKILL; every synced block intact, vhd check clean`, { timeout: STEP_MS }, async () => {
      const img = holder.img;
      assert.ok(img, "no images");
      // Each boot builds on the images the one before left.
      assert.equal(holder.failed, undefined, `not run: ${holder.failed} failed`);
      holder.failed = `boot ${trial + 1}`;
      const g = await startGuest(
        { emulator: "viridian", disks: [{ path: img.fresh }, { path: img.child }, { path: img.durable }] },
        lim,
      );
      try {
        await g.step(async () => {
          await g.waitForPrompt();
          const [fresh, child, durable] = (await lunDevices(g, 3)) as [string, string, string];
          if (trial === 0) await firstBoot(g, fresh, child);
          if (trial === 1) {
            await ok(g, `mkdir -p /mnt/d && mount -t ext4 ${fresh}1 /mnt/d`);
            const check = await ok(g, "(cd /mnt/d && md5sum -c random.md5)", HEAVY_MS);
            assert.match(check, /^random\.bin: OK$/m, check);
            await ok(g, "umount /mnt/d");
          }
          await durabilityTrial(g, durable, trial, holder.printed);
          assert.deepEqual(forbiddenLines(g.consoleLog()), [], "the boot log is clean");
        });
      } finally {
        await g.close();
      }
      // Reopen read-write (a crashed VHDX's log is replayed), then check every block printed so far.
      const d = await openImage(opener, img.durable, { readOnly: false });
      try {
        const got = new Uint8Array(BLOCK);
        const lost: number[] = [];
        for (const n of holder.printed) {
          await d.read((n * MiB) / 512, got);
          if (md5(got) !== md5(pattern(durableLine(n)))) lost.push(n);
        }
        assert.deepEqual(lost, [], `blocks printed as synced but not intact (of ${holder.printed.length})`);
      } finally {
        await d.close();
      }
      // The other two were SIGKILLed with a session open too: reopen them read-write (log replay), then check.
      for (const path of [img.fresh, img.child])
        await (await openImage(opener, path, { readOnly: false })).close();
      for (const path of [img.durable, img.fresh, img.child]) {
        const c = viridianVhd("check", path);
        assert.equal(c.status, 0, `viridian vhd check ${path}:\n${c.out}`);
        assert.match(c.out, /: clean$/m);
      }
      assert.equal(md5(readFileSync(img.parent)), img.parentMd5, "the parent's bytes are unchanged");
      holder.failed = undefined;
    });
  }

  it("viridian vhd merge puts the child's writes in the parent (qemu-img convert)", async () => {
    const img = holder.img;
    assert.ok(img, "no images");
    assert.equal(holder.failed, undefined, `not run: ${holder.failed} failed`);
    const m = viridianVhd("merge", img.child);
    assert.equal(m.status, 0, m.out);
    const flat = join(img.dir, "parent.raw");
    const q = spawnSync("qemu-img", ["convert", "-f", "vhdx", "-O", "raw", img.parent, flat]);
    assert.equal(q.status, 0, `qemu-img convert: ${q.stderr?.toString()}`);
    const raw = readFileSync(flat);
    assert.equal(raw.length, 64 * MiB);
    const at = (b: number) => md5(raw.subarray(b * BLOCK, (b + 1) * BLOCK));
    for (const b of COW_BLOCKS) assert.equal(at(b), md5(pattern(cowLine(b))), `block ${b} after the merge`);
    for (const b of [0, 47, 49, PARENT_DATA_BLOCKS - 1])
      assert.equal(at(b), md5(pattern(parentLine(b))), `the parent's own block ${b}`);
    assert.equal(at(PARENT_DATA_BLOCKS), md5(new Uint8Array(BLOCK)), "beyond the parent's data: zeros");
    rmSync(flat);
  });
});

async function firstBoot(g: GuestConsole, fresh: string, child: string): Promise<void> {
  // One primary partition from sector 2048 to the end (busybox fdisk reads its answers from stdin).
  await ok(g, `printf 'n\\np\\n1\\n2048\\n\\nw\\n' | fdisk ${fresh} >/dev/null`);
  await ok(g, `mkfs.ext4 -q ${fresh}1`);
  await ok(g, `mkdir -p /mnt/d && mount -t ext4 ${fresh}1 /mnt/d`);
  // 64 MiB from 1 MiB of /dev/urandom, each MiB rotated by a different 4099-byte multiple: every 4 KiB
  // block of the file differs (a misplaced block shows), at the cost of a copy instead of 64 MiB of
  // ChaCha20, which an interpreted guest needs minutes for.
  await ok(g, "dd if=/dev/urandom of=/tmp/seed bs=1M count=1 2>/dev/null");
  await ok(
    g,
    "for i in $(seq 1 64); do dd if=/tmp/seed bs=65536 iflag=skip_bytes skip=$((i*4099)) 2>/dev/null; " +
      "dd if=/tmp/seed bs=65536 iflag=count_bytes count=$((i*4099)) 2>/dev/null; done > /mnt/d/random.bin",
    HEAVY_MS,
  );
  const size = await ok(g, "stat -c %s /mnt/d/random.bin");
  assert.match(size, new RegExp(`^${64 * MiB}$`, "m"));
  await ok(g, "(cd /mnt/d && md5sum random.bin > random.md5)", HEAVY_MS);
  await ok(g, "umount /mnt/d && sync", HEAVY_MS);
  // Copy-on-write: the parent's data shows through the child; writes go to the child.
  const through = await ok(g, `dd if=${child} bs=${BLOCK} skip=5 count=1 iflag=direct 2>/dev/null | md5sum`);
  assert.match(through, new RegExp(md5(pattern(parentLine(5)))), "parent data read through the child");
  for (const b of COW_BLOCKS) {
    await ok(g, `yes '${cowLine(b)}' | head -c ${BLOCK} > /tmp/cow`);
    await ok(
      g,
      `dd if=/tmp/cow of=${child} bs=${BLOCK} seek=${b} count=1 oflag=direct conv=fsync 2>/dev/null`,
    );
    const back = await ok(
      g,
      `dd if=${child} bs=${BLOCK} skip=${b} count=1 iflag=direct 2>/dev/null | md5sum`,
    );
    assert.match(back, new RegExp(md5(pattern(cowLine(b)))), `child block ${b} reads back`);
  }
}

/**
 * Starts the write loop, waits until it printed `killAfter(trial)` numbers, and SIGKILLs the VM while the
 * next write is in flight. Adds every number the guest printed to `printed`.
 */
async function durabilityTrial(
  g: GuestConsole,
  dev: string,
  trial: number,
  printed: number[],
): Promise<void> {
  const first = trial * PER_TRIAL;
  const last = first + PER_TRIAL - 1;
  const from = g.type(
    `i=${first}; while [ $i -le ${last} ]; do yes 'durable block '$i | head -c ${BLOCK} > /tmp/b && ` +
      `dd if=/tmp/b of=${dev} bs=${BLOCK} seek=$((i*16)) count=1 oflag=direct conv=fsync 2>/dev/null && ` +
      `echo synced $i; i=$((i+1)); done`,
  );
  await g.waitFor(new RegExp(`synced ${first + killAfter(trial) - 1}\\n`), lim.commandMs, from);
  g.signal("SIGKILL");
  await g.waitExit(lim.stopMs);
  assert.equal(g.exitSignal, "SIGKILL");
  const text = g.text.slice(from);
  const numbers = [...text.matchAll(/synced (\d+)\n/g)].map((m) => Number(m[1]));
  assert.ok(numbers.length >= killAfter(trial), `printed: ${numbers.join(" ")}`);
  for (const n of numbers) {
    assert.ok(n >= first && n <= last, `a number outside the trial: ${n}`);
    printed.push(n);
  }
}
