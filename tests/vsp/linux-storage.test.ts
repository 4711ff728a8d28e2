// Disks and a DVD on the bundled Linux guest through `viridian run --disk ... --dvd ...`, as a user runs it,
// in one boot: four disks (a raw image, a dynamic VHDX, a read-only raw image, a dynamic VHD) and an ISO made
// with genisoimage. In the guest: hv_storvsc finds every LUN, /sys/block shows each image's size with vendor
// `Msft` and model `Virtual Disk`, the VHDX advertises its block size as the discard granularity, data written
// with `dd oflag=direct` at known offsets reads back, the read-only disk refuses writes, the VHD gets an MBR
// partition with ext4 and a file, and the DVD mounts read-only as iso9660 with the file's md5 intact. After
// `poweroff` (status 0): the raw file and `qemu-img convert` of the VHDX hold the pattern at those offsets,
// the read-only image and the ISO are byte-identical, the VHDX checks clean, e2fsck finds the VHD's ext4
// clean and debugfs reads the file with the guest's md5, and the boot log is clean.
// Must not: assert timings (limits only keep a hang from hanging the suite); QEMU has no storvsc, so there
// is no reference variant (tests/guest/guest-images.test.ts runs the same guest tools on QEMU's virtio).
// Spec: issue 10 acceptance 1 (disks in /sys/block), 2 (direct writes and a file system seen on the host),
// 5 (DVD).
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { NodeFileOpener } from "../../src/host/node-files.js";
import { createImage, openImage } from "../../src/storage/open.js";
import {
  forbiddenLines,
  limits,
  skipReason,
  startGuest,
  type GuestConsole,
  withoutControlSequences,
} from "../linux/guest-console.js";

const lim = limits("viridian");
const MiB = 1024 * 1024;
const STEP_MS = 2 * lim.bootMs + 6 * lim.commandMs + 2 * lim.stopMs;
/** e2fsprogs live in /sbin, which need not be on a user's PATH. */
const DEBUGFS = ["/sbin/debugfs", "/usr/sbin/debugfs"].find((p) => existsSync(p)) ?? "debugfs";
const E2FSCK = ["/sbin/e2fsck", "/usr/sbin/e2fsck"].find((p) => existsSync(p)) ?? "e2fsck";
const tools = ["genisoimage", "qemu-img", DEBUGFS, E2FSCK].filter(
  (t) => spawnSync("sh", ["-c", `command -v ${t}`]).status !== 0,
);
const skip = skipReason("viridian") || (tools.length > 0 ? `needs ${tools.join(", ")}` : false);

/** The 64 KiB the guest writes: a line repeated, so a misplaced or partial write shows. */
function pattern(tag: string): Uint8Array {
  const line = new TextEncoder().encode(`viridian ${tag} pattern\n`);
  const out = new Uint8Array(65536);
  for (let i = 0; i < out.length; i++) out[i] = line[i % line.length]!;
  return out;
}
const md5 = (b: Uint8Array): string => createHash("md5").update(b).digest("hex");
const RAW_OFFSET_BLOCKS = 125; // of 64 KiB: byte 8,192,000 of the 64 MiB raw disk
const VHDX_OFFSET_BLOCKS = 4801; // byte 314,638,336 of the 1 GiB VHDX, inside its 10th 32 MiB block

interface Images {
  dir: string;
  raw: string;
  vhdx: string;
  readOnly: string;
  vhd: string;
  iso: string;
  payloadMd5: string;
  readOnlyMd5: string;
  isoMd5: string;
}

async function makeImages(): Promise<Images> {
  const dir = mkdtempSync(join(tmpdir(), "viridian-storage-"));
  const fs = new NodeFileOpener();
  const raw = join(dir, "disk0.img");
  writeFileSync(raw, new Uint8Array(0));
  spawnSync("truncate", ["-s", String(64 * MiB), raw]);
  const vhdx = join(dir, "disk1.vhdx");
  await createImage(fs, vhdx, "vhdx", { kind: "dynamic", capacity: 1024 * MiB, blockSize: 32 * MiB });
  // The read-only disk holds data, so "unchanged" means something.
  const readOnly = join(dir, "disk2-ro.img");
  const roBytes = new Uint8Array(16 * MiB);
  for (let i = 0; i < roBytes.length; i += 4096) roBytes.set(pattern(`ro ${i}`).subarray(0, 4096), i);
  writeFileSync(readOnly, roBytes);
  const vhd = join(dir, "disk3.vhd");
  await createImage(fs, vhd, "vhd", { kind: "dynamic", capacity: 32 * MiB });
  const content = join(dir, "iso");
  mkdirSync(content);
  const payload = new Uint8Array(300_000);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 2654435761) >>> 24;
  writeFileSync(join(content, "payload.bin"), payload);
  const iso = join(dir, "media.iso");
  const g = spawnSync("genisoimage", ["-quiet", "-R", "-J", "-V", "VIRIDIAN", "-o", iso, content]);
  assert.equal(g.status, 0, `genisoimage: ${g.stderr?.toString()}`);
  return {
    dir,
    raw,
    vhdx,
    readOnly,
    vhd,
    iso,
    payloadMd5: md5(payload),
    readOnlyMd5: md5(roBytes),
    isoMd5: md5(readFileSync(iso)),
  };
}

describe("disks and a DVD on the bundled guest (viridian run --disk --dvd)", { skip }, () => {
  const holder: { g?: GuestConsole; img?: Images } = {};
  before(async () => {
    const img = await makeImages();
    holder.img = img;
    holder.g = await startGuest(
      {
        emulator: "viridian",
        disks: [
          { path: img.raw },
          { path: img.vhdx },
          { path: img.readOnly, readOnly: true },
          { path: img.vhd },
        ],
        dvd: img.iso,
      },
      lim,
    );
  });
  after(async () => {
    await holder.g?.close();
    if (holder.img) rmSync(holder.img.dir, { recursive: true, force: true });
  });
  const step = (
    name: string,
    body: (g: GuestConsole, img: Images) => Promise<void>,
    afterFailureToo = false,
  ) =>
    it(name, { timeout: STEP_MS }, async () => {
      const g = holder.g;
      const img = holder.img;
      assert.ok(g && img, "the guest was not started");
      await g.step(() => body(g, img), afterFailureToo);
    });
  /** The md5 of the file the guest wrote on the VHD's ext4 partition. */
  const ext4Md5 = { value: "" };
  /** The block device name of each LUN (probe order need not be LUN order). */
  const names = new Map<number, string>();
  const dev = (lun: number): string => {
    const n = names.get(lun);
    assert.ok(n, `no block device for LUN ${lun}`);
    return `/dev/${n}`;
  };

  step("hv_storvsc finds every LUN: sizes, vendor Msft, model Virtual Disk, the DVD as sr", async (g) => {
    await g.waitForPrompt();
    const out = withoutControlSequences(
      await g.run(
        "for l in 0 1 2 3 4; do d=/sys/bus/scsi/devices/*:0:0:$l; b=$(ls $d/block); " +
          'echo "lun=$l dev=$b size=$(cat /sys/block/$b/size) ro=$(cat /sys/block/$b/ro) ' +
          "type=$(cat $d/type) vendor=$(cat $d/vendor) model=$(cat $d/model) " +
          'dgran=$(cat /sys/block/$b/queue/discard_granularity)"; done',
      ),
    );
    const rows = new Map<number, Record<string, string>>();
    for (const line of out.split("\n")) {
      const m = /^lun=(\d) (.*)$/.exec(line.trim());
      if (!m) continue;
      const fields: Record<string, string> = {};
      for (const kv of m[2]!.matchAll(/(\w+)=(\S*)/g)) fields[kv[1]!] = kv[2]!;
      rows.set(Number(m[1]), fields);
      names.set(Number(m[1]), fields.dev!);
    }
    const expect = [
      { lun: 0, sectors: (64 * MiB) / 512, ro: "0" },
      { lun: 1, sectors: (1024 * MiB) / 512, ro: "0" },
      { lun: 2, sectors: (16 * MiB) / 512, ro: "1" },
      { lun: 3, sectors: (32 * MiB) / 512, ro: "0" },
    ];
    for (const e of expect) {
      const r = rows.get(e.lun);
      assert.ok(r, `LUN ${e.lun} missing:\n${out}`);
      assert.match(r.dev!, /^sd[a-z]$/, `LUN ${e.lun}: ${out}`);
      assert.equal(r.size, String(e.sectors), `LUN ${e.lun} size`);
      assert.equal(r.ro, e.ro, `LUN ${e.lun} read-only flag`);
      assert.equal(r.type, "0", `LUN ${e.lun} peripheral type`);
      assert.equal(r.vendor, "Msft", `LUN ${e.lun} vendor`);
      assert.equal(r.model, "Virtual", `LUN ${e.lun} model (first word)`);
    }
    // The VHDX's 32 MiB blocks are its unmap granularity (VPD B0), which Linux uses as discard granularity.
    assert.equal(rows.get(1)!.dgran, String(32 * MiB));
    const dvd = rows.get(4);
    assert.ok(dvd, `the DVD is missing:\n${out}`);
    assert.match(dvd.dev!, /^sr\d$/);
    assert.equal(dvd.type, "5");
    assert.equal(dvd.ro, "1");
    const model = withoutControlSequences(await g.run(`cat /sys/block/${names.get(0)}/device/model`)).trim();
    assert.equal(model, "Virtual Disk");
    const log = g.consoleLog().join("\n");
    assert.match(log, /scsi 0:0:0:0: Direct-Access +Msft +Virtual Disk/);
    assert.match(log, /scsi 0:0:0:4: CD-ROM +Msft/);
  });

  step("dd oflag=direct writes at known offsets read back; the read-only disk refuses writes", async (g) => {
    const ok = (text: string) => /rc=0\s*$/.test(withoutControlSequences(text).trim());
    for (const [tag, lun, block] of [
      ["lun0", 0, RAW_OFFSET_BLOCKS],
      ["lun1", 1, VHDX_OFFSET_BLOCKS],
    ] as const) {
      const want = md5(pattern(tag));
      await g.run(`yes 'viridian ${tag} pattern' | head -c 65536 > /tmp/${tag}`);
      const made = withoutControlSequences(await g.run(`md5sum /tmp/${tag}`));
      assert.match(made, new RegExp(want), "the guest built the same pattern");
      const wrote = await g.run(
        `dd if=/tmp/${tag} of=${dev(lun)} bs=65536 seek=${block} count=1 oflag=direct conv=notrunc; echo rc=$?`,
      );
      assert.ok(ok(wrote), `direct write to LUN ${lun}: ${wrote}`);
      const back = await g.run(`dd if=${dev(lun)} bs=65536 skip=${block} count=1 iflag=direct | md5sum`);
      assert.match(withoutControlSequences(back), new RegExp(want), `direct read-back of LUN ${lun}`);
    }
    const refused = withoutControlSequences(
      await g.run(`dd if=/tmp/lun0 of=${dev(2)} bs=4096 count=1 oflag=direct; echo rc=$?`),
    );
    assert.doesNotMatch(refused, /rc=0\s*$/, `a write to the read-only disk: ${refused}`);
    await g.run("sync");
  });

  step(
    "a partition of the VHD gets ext4 (busybox fdisk, mkfs.ext4), a file is written and its md5 kept",
    async (g) => {
      const parted = withoutControlSequences(
        await g.run(
          `printf 'o\\nn\\np\\n1\\n\\n\\nw\\n' | fdisk ${dev(3)} >/dev/null 2>&1; sleep 1; ls ${dev(3)}1`,
        ),
      );
      assert.match(parted, new RegExp(`^${dev(3)}1$`, "m"), parted);
      const made = withoutControlSequences(
        await g.run(
          `mkfs.ext4 -q ${dev(3)}1 && mkdir -p /data && mount -t ext4 ${dev(3)}1 /data && ` +
            "dd if=/dev/urandom of=/data/random.bin bs=65536 count=64 2>/dev/null && md5sum /data/random.bin && " +
            "umount /data; echo rc=$?",
        ),
      );
      assert.match(made, /rc=0\s*$/, made);
      const m = /^([0-9a-f]{32})\s+\/data\/random\.bin$/m.exec(made);
      assert.ok(m, `md5sum output: ${made}`);
      ext4Md5.value = m[1]!;
    },
  );

  step("the DVD mounts read-only as iso9660, its file's md5 matches, writing fails", async (g, img) => {
    await g.run("mkdir -p /dvd");
    const mounted = withoutControlSequences(await g.run(`mount -t iso9660 -o ro ${dev(4)} /dvd; echo rc=$?`));
    assert.match(mounted, /rc=0/, mounted);
    const sum = withoutControlSequences(await g.run("md5sum /dvd/payload.bin"));
    assert.match(sum, new RegExp(`^${img.payloadMd5}\\s`, "m"), sum);
    const write = withoutControlSequences(await g.run("echo x > /dvd/new; echo rc=$?"));
    assert.match(write, /Read-only file system/, write);
    const rwMount = withoutControlSequences(
      await g.run(`umount /dvd; mount -t iso9660 -o rw ${dev(4)} /dvd 2>&1; grep /dvd /proc/mounts`),
    );
    // Linux's cdrom layer refuses a writable open: the mount falls back to read-only (or fails).
    assert.doesNotMatch(rwMount, /\srw[\s,]/, rwMount);
    await g.run("umount /dvd 2>/dev/null; true");
  });

  step(
    "after poweroff (status 0) the host sees the writes; the read-only disk and ISO are unchanged",
    async (g, img) => {
      g.type("poweroff");
      const status = await g.waitExit(lim.bootMs);
      assert.equal(status, 0, `exit status (${g.exitText()})\n${g.stderr}`);
      const raw = readFileSync(img.raw);
      const at = RAW_OFFSET_BLOCKS * 65536;
      assert.equal(md5(raw.subarray(at, at + 65536)), md5(pattern("lun0")), "raw disk at the written offset");
      assert.equal(md5(raw.subarray(0, at)), md5(new Uint8Array(at)), "nothing written before the offset");
      const converted = join(img.dir, "disk1.raw");
      const q = spawnSync("qemu-img", ["convert", "-f", "vhdx", "-O", "raw", img.vhdx, converted]);
      assert.equal(q.status, 0, `qemu-img convert: ${q.stderr?.toString()}`);
      const flat = readFileSync(converted);
      assert.equal(flat.length, 1024 * MiB);
      const vat = VHDX_OFFSET_BLOCKS * 65536;
      assert.equal(
        md5(flat.subarray(vat, vat + 65536)),
        md5(pattern("lun1")),
        "VHDX (qemu-img) at the offset",
      );
      rmSync(converted);
      assert.equal(md5(readFileSync(img.readOnly)), img.readOnlyMd5, "the read-only disk is unchanged");
      assert.equal(md5(readFileSync(img.iso)), img.isoMd5, "the ISO is byte-identical");
      // The VHD's ext4 file system: its partition from the MBR, checked clean, the file's md5 as in the guest.
      const vhdRaw = join(img.dir, "disk3.raw");
      const v = spawnSync("qemu-img", ["convert", "-f", "vpc", "-O", "raw", img.vhd, vhdRaw]);
      assert.equal(v.status, 0, `qemu-img convert: ${v.stderr?.toString()}`);
      const disk = readFileSync(vhdRaw);
      const mbr = new DataView(disk.buffer, disk.byteOffset, 512);
      assert.equal(mbr.getUint16(510, true), 0xaa55, "an MBR");
      const start = mbr.getUint32(446 + 8, true) * 512;
      const sectors = mbr.getUint32(446 + 12, true);
      const part = join(img.dir, "part.ext4");
      writeFileSync(part, disk.subarray(start, start + sectors * 512));
      const fsck = spawnSync(E2FSCK, ["-fn", part]);
      assert.equal(fsck.status, 0, `e2fsck: ${fsck.stdout?.toString()}${fsck.stderr?.toString()}`);
      const dumped = join(img.dir, "random.bin");
      const d = spawnSync(DEBUGFS, ["-R", `dump /random.bin ${dumped}`, part]);
      assert.equal(d.status, 0, `debugfs: ${d.stderr?.toString()}`);
      assert.equal(md5(readFileSync(dumped)), ext4Md5.value, "the ext4 file's md5 on the host");
      const opened = await openImage(new NodeFileOpener(), img.vhdx, { readOnly: true });
      try {
        assert.deepEqual((await opened.check(false)).problems, [], "the VHDX checks clean");
      } finally {
        await opened.close();
      }
    },
  );

  step(
    "the boot log has no unchecked MSR access, WARNING, BUG, Call Trace, probe failed or timed out",
    async (g) => {
      const log = g.consoleLog();
      assert.deepEqual(forbiddenLines(log), []);
      assert.deepEqual(
        log.filter((l) => /probe failed|probe of .* failed/.test(l)),
        [],
      );
    },
    true,
  );
});
