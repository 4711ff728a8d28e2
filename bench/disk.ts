// Disk throughput in the bundled Linux guest (issue 10, acceptance 8): on Viridian through storvsc (a raw
// image and a dynamic VHDX as SCSI disks on VMBus) next to QEMU TCG with the same kernel, initramfs and
// memory and the same raw image on virtio-blk (and a dynamic VHDX there too, for reference), in one run.
// Per disk, in the guest: sequential direct writes and then reads of 256 MiB in 1 MiB requests
// (`dd bs=1M count=256 oflag=direct` / `iflag=direct`), and 4 KiB direct random reads at queue depth 1
// over those 256 MiB (bench/guest-randread.c, built with gcc and added to the initramfs by
// guest/addon-initramfs.sh). Each figure is host wall time from typing the command to the next prompt
// (the prompt's round trip is included, the same on both sides). Goal: Viridian's sequential throughput
// at least 50 % of QEMU TCG's. The images live in a temporary directory and are deleted afterwards.
// Must not: be called from tests (timings are figures here, never assertions).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { NodeFileOpener } from "../src/host/node-files.js";
import { createImage } from "../src/storage/open.js";
import {
  BUNDLED_KERNEL,
  limits,
  REPO,
  skipReason,
  startGuest,
  type Emulator,
  type GuestConsole,
} from "../tests/linux/guest-console.js";

const MiB = 1024 * 1024;
const SEQ_MIB = 256;
const CAPACITY = 320 * MiB;
const RANDOM_READS = 2000;
const MEMORY_MIB = 256;
const GOAL = 0.5;

interface DiskFigures {
  writeMiBs: number;
  readMiBs: number;
  randIops: number;
}
type Row = { disk: string; emulator: Emulator; figures: DiskFigures | { error: string } };

/** Compiles the random-read helper and builds the bundled initramfs with it; returns its path in the guest. */
function guestTools(dir: string): { initrd: string; randread: string } {
  // The program keeps its host path in the guest: a directory of the repository's build output, which
  // the guest's root file system holds (its /tmp would hide it under a tmpfs).
  const randread = resolve(REPO, "dist/bench/guest-randread");
  const cc = spawnSync("gcc", ["-O2", "-o", randread, resolve(REPO, "bench/guest-randread.c")], {
    encoding: "utf8",
  });
  if (cc.status !== 0)
    throw new Error(`gcc bench/guest-randread.c failed: ${cc.error?.message ?? cc.stderr}`);
  const addon = spawnSync("bash", [resolve(REPO, "guest/addon-initramfs.sh"), randread], {
    encoding: "utf8",
    env: { ...process.env, VIRIDIAN_GUEST_ADDON_DIR: dir },
  });
  const initrd = addon.stdout.trim().split("\n").at(-1) ?? "";
  if (addon.status !== 0 || initrd === "")
    throw new Error(`guest/addon-initramfs.sh failed: ${addon.stderr}`);
  return { initrd, randread };
}

async function timed(g: GuestConsole, command: string, expect: RegExp): Promise<number> {
  const t0 = performance.now();
  const out = await g.run(command);
  const s = (performance.now() - t0) / 1000;
  if (!expect.test(out)) throw new Error(`${command}: unexpected output ${JSON.stringify(out)}`);
  return s;
}

async function measureDisk(g: GuestConsole, dev: string, randread: string): Promise<DiskFigures> {
  const records = new RegExp(`${SEQ_MIB}\\+0 records out`);
  const write = await timed(g, `dd if=/dev/zero of=${dev} bs=1M count=${SEQ_MIB} oflag=direct 2>&1`, records);
  const read = await timed(g, `dd if=${dev} of=/dev/null bs=1M count=${SEQ_MIB} iflag=direct 2>&1`, records);
  const rand = await timed(g, `${randread} ${dev} ${SEQ_MIB} ${RANDOM_READS}`, /reads=\d+ bytes=\d+/);
  return { writeMiBs: SEQ_MIB / write, readMiBs: SEQ_MIB / read, randIops: RANDOM_READS / rand };
}

/** One boot of `emulator` with a raw image and a fresh dynamic VHDX; the figures of each disk. */
async function measure(
  emulator: Emulator,
  raw: string,
  vhdx: string,
  initrd: string,
  randread: string,
): Promise<Row[]> {
  const lim = limits(emulator);
  const disks = [
    { name: "raw", path: raw },
    { name: "dynamic VHDX", path: vhdx },
  ];
  const g = await startGuest(
    {
      emulator,
      kernel: BUNDLED_KERNEL,
      initrd,
      memoryMiB: MEMORY_MIB,
      disks: disks.map((d) => ({ path: d.path })),
    },
    lim,
  );
  const rows: Row[] = [];
  try {
    await g.waitForPrompt(lim.bootMs);
    for (const [i, d] of disks.entries()) {
      // storvsc: LUN i of the one controller; virtio-blk: the i-th drive.
      const dev =
        emulator === "qemu"
          ? `/dev/vd${String.fromCharCode(0x61 + i)}`
          : `/dev/$(ls /sys/bus/scsi/devices/0:0:0:${i}/block)`;
      rows.push({ disk: d.name, emulator, figures: await measureDisk(g, dev, randread) });
    }
    g.type("poweroff");
    await g.waitExit(lim.bootMs);
  } catch (e) {
    const failure = await g.failure(e);
    console.error(`disk: ${emulator} failed:\n${failure.message}`);
    for (const d of disks.slice(rows.length))
      rows.push({ disk: d.name, emulator, figures: { error: failure.message.split("\n")[0]! } });
  } finally {
    await g.close();
  }
  return rows;
}

export async function benchDisk(): Promise<void> {
  const skip = skipReason("qemu") || skipReason("viridian");
  if (skip) {
    console.log(`disk: not run: ${skip}`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "viridian-bench-disk-"));
  try {
    const { initrd, randread } = guestTools(dir);
    const opener = new NodeFileOpener();
    // One raw image for both emulators (it has no allocation state); a fresh VHDX each.
    const raw = join(dir, "disk.img");
    writeFileSync(raw, new Uint8Array(0));
    spawnSync("truncate", ["-s", String(CAPACITY), raw]);
    const vhdx = (name: string) => join(dir, `${name}.vhdx`);
    for (const name of ["viridian", "qemu"])
      await createImage(opener, vhdx(name), "vhdx", { kind: "dynamic", capacity: CAPACITY });
    console.log(
      `disk: bundled kernel, ${MEMORY_MIB} MiB; per disk: ${SEQ_MIB} MiB sequential dd 1 MiB direct write then ` +
        `read, ${RANDOM_READS} random 4 KiB direct reads (queue depth 1); Viridian storvsc vs QEMU TCG virtio-blk`,
    );
    const rows = [
      ...(await measure("viridian", raw, vhdx("viridian"), initrd, randread)),
      ...(await measure("qemu", raw, vhdx("qemu"), initrd, randread)),
    ];
    const cell = (r: Row | undefined, k: keyof DiskFigures, unit: string): string =>
      !r
        ? "-"
        : "error" in r.figures
          ? "failed"
          : `${r.figures[k].toFixed(k === "randIops" ? 0 : 1)} ${unit}`;
    console.log(
      `disk: ${"disk / figure".padEnd(30)} ${"viridian".padStart(12)} ${"qemu tcg".padStart(12)} ${"ratio".padStart(7)}`,
    );
    for (const disk of ["raw", "dynamic VHDX"]) {
      const v = rows.find((r) => r.disk === disk && r.emulator === "viridian");
      const q = rows.find((r) => r.disk === disk && r.emulator === "qemu");
      for (const [k, label, unit] of [
        ["writeMiBs", "sequential write", "MiB/s"],
        ["readMiBs", "sequential read", "MiB/s"],
        ["randIops", "4 KiB random read", "IOPS"],
      ] as const) {
        const ratio =
          v && q && !("error" in v.figures) && !("error" in q.figures)
            ? `${((100 * v.figures[k]) / q.figures[k]).toFixed(0)} %`
            : "-";
        console.log(
          `disk: ${`${disk}: ${label}`.padEnd(30)} ${cell(v, k, unit).padStart(12)} ${cell(q, k, unit).padStart(12)} ${ratio.padStart(7)}`,
        );
      }
    }
    const seq = rows
      .filter((r) => r.disk === "raw")
      .map((r) => r.figures)
      .filter((f): f is DiskFigures => !("error" in f));
    if (seq.length === 2) {
      const [v, q] = seq as [DiskFigures, DiskFigures];
      const worst = Math.min(v.writeMiBs / q.writeMiBs, v.readMiBs / q.readMiBs);
      console.log(
        `disk: goal: raw sequential throughput >= ${GOAL * 100} % of QEMU TCG's: ${worst >= GOAL ? "met" : "not met"}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
