// Owns: checks of the committed guest images (guest/bzImage, guest/initramfs.cpio.lz4) — present, within
// their size limits, structurally valid, carrying the tools and files guest/README.md promises with every
// shared object those tools need — and boots of them under QEMU TCG: to the shell prompt and power-off,
// and once with a virtio disk and a virtio NIC on QEMU's user network, where the guest partitions,
// formats and mounts the disk, writes with O_DIRECT, gets an address by DHCP and fetches a file from an
// HTTP server this test runs on the host's 127.0.0.1.
// Must not: rebuild the images (guest/build.sh does that) or send traffic anywhere but the loopback
// address (QEMU's user network reaches the host as 10.0.2.2; no name is ever resolved).
// Spec: Linux Documentation/x86/boot.rst (real-mode setup header: boot_flag, "HdrS", version,
// xloadflags); buffer-format.rst (newc initramfs); guest/README.md (the prompt string, the contents).

import { strict as assert } from "node:assert";
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, posix, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { ElfError, isElf, readElfDynamic } from "./elf.js";
import { decodeLz4Legacy, Lz4Error } from "./lz4.js";
import { NewcError, parseNewc, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type NewcEntry } from "./newc.js";

// Compiled to dist/tests/guest/, three levels below the repository root.
const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const bzImagePath = resolve(repo, "guest/bzImage");
const initramfsPath = resolve(repo, "guest/initramfs.cpio.lz4");
const KERNEL_LIMIT = 8 * 1024 * 1024;
const INITRAMFS_LIMIT = 4 * 1024 * 1024;
/** The guest's prompt (guest/rootfs/etc/profile) in its home directory, at the end of the output. */
const PROMPT_AT_END = /viridian-guest:~ # $/;
/**
 * Busybox's line editor follows every prompt with this cursor-position query, which a terminal would
 * answer; nothing answers through QEMU's pipe, which the shell tolerates. Ignored when matching output.
 */
const CURSOR_POSITION_QUERY = "\u001b[6n";

test("the committed guest images exist and are within their size limits", () => {
  const kernel = statSync(bzImagePath);
  const initramfs = statSync(initramfsPath);
  assert.ok(kernel.isFile() && kernel.size > 512 * 1024, `bzImage is ${kernel.size} bytes`);
  assert.ok(kernel.size < KERNEL_LIMIT, `bzImage is ${kernel.size} bytes, limit ${KERNEL_LIMIT}`);
  assert.ok(initramfs.isFile() && initramfs.size > 64 * 1024, `initramfs is ${initramfs.size} bytes`);
  assert.ok(initramfs.size < INITRAMFS_LIMIT, `initramfs is ${initramfs.size} bytes, limit ${INITRAMFS_LIMIT}`);
});

test("bzImage has a valid 64-bit boot protocol setup header", () => {
  const image = readFileSync(bzImagePath);
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  assert.equal(view.getUint16(0x1fe, true), 0xaa55, "boot_flag");
  assert.equal(image.subarray(0x202, 0x206).toString("latin1"), "HdrS", "header magic");
  const version = view.getUint16(0x206, true);
  assert.ok(version >= 0x020c, `boot protocol version 0x${version.toString(16)} < 2.12`);
  const xloadflags = view.getUint16(0x236, true);
  assert.equal(xloadflags & 1, 1, "XLF_KERNEL_64: the kernel has a 64-bit entry point at +0x200");
  // setup_sects (0 means 4) sectors of real-mode code follow the boot sector; the protected-mode kernel
  // (syssize 16-byte paragraphs) fills the rest of the file.
  const setupSects = image[0x1f1] === 0 ? 4 : image[0x1f1]!;
  const syssize = view.getUint32(0x1f4, true);
  assert.equal((setupSects + 1) * 512 + syssize * 16, image.length, "setup + payload size");
  const loadflags = image[0x211]!;
  assert.equal(loadflags & 1, 1, "LOADED_HIGH: protected-mode code loads at 1 MiB");
  const kernelAlignment = view.getUint32(0x230, true);
  const initSize = view.getUint32(0x260, true);
  assert.ok(kernelAlignment >= 0x1000 && (kernelAlignment & (kernelAlignment - 1)) === 0, "kernel_alignment");
  assert.ok(initSize > syssize * 16, "init_size covers the decompressed kernel");
});

function entryMap(): Map<string, NewcEntry> {
  // The limit keeps a corrupt or hostile image from inflating without bound.
  const archive = decodeLz4Legacy(readFileSync(initramfsPath), 64 * 1024 * 1024);
  return new Map(parseNewc(archive).map((e) => [e.name, e]));
}

const text = (e: NewcEntry): string => Buffer.from(e.data).toString("latin1");

/** The entry a path names, following symbolic links (absolute or relative) inside the archive. */
function lookup(entries: Map<string, NewcEntry>, path: string): NewcEntry | undefined {
  let name = posix.normalize(path).replace(/^\/+/, "");
  for (let hops = 0; hops < 8; hops++) {
    const e = entries.get(name);
    if (!e || (e.mode & S_IFMT) !== S_IFLNK) return e;
    const target = text(e);
    name = posix.normalize(target.startsWith("/") ? target : posix.join(posix.dirname(name), target));
    name = name.replace(/^\/+/, "");
  }
  return undefined;
}

test("the initramfs is an LZ4 (legacy frame) newc cpio with /init, busybox and a console node", () => {
  const compressed = readFileSync(initramfsPath);
  assert.equal(compressed.readUInt32LE(0), 0x184c2102, "LZ4 legacy magic, the format Linux's unlz4 reads");
  const entries = entryMap();
  const type = (name: string): number => {
    const e = entries.get(name);
    assert.ok(e, `/${name} is missing`);
    return e.mode & S_IFMT;
  };

  const init = entries.get("init");
  assert.ok(init, "/init is missing");
  assert.equal(type("init"), S_IFREG);
  assert.equal(init.mode & 0o111, 0o111, "/init is executable");
  assert.ok(text(init).startsWith("#!/bin/sh\n"), "/init is a shell script");

  const busybox = entries.get("bin/busybox");
  assert.ok(busybox, "/bin/busybox is missing");
  assert.equal(type("bin/busybox"), S_IFREG);
  assert.equal(busybox.mode & 0o111, 0o111, "/bin/busybox is executable");
  assert.deepEqual([...busybox.data.subarray(0, 5)], [0x7f, 0x45, 0x4c, 0x46, 2], "64-bit ELF");
  assert.equal(readElfDynamic(busybox.data).interpreter, null, "busybox is static: the shell needs no loader");

  // The applets the guest's users and tests rely on (guest/README.md): shell and power; disks (fdisk,
  // dd with oflag=direct, mount, sync, md5sum); network (udhcpc, ip, ping, wget, nc, httpd); modules
  // (modprobe, insmod: the stock-kernel initramfs) and the uevent listener /init starts.
  const applets = ["bin/sh", "sbin/init", "sbin/poweroff", "sbin/reboot", "bin/cttyhack", "usr/bin/md5sum"];
  applets.push("sbin/fdisk", "bin/dd", "bin/mount", "bin/umount", "bin/sync", "sbin/blockdev");
  applets.push("sbin/udhcpc", "sbin/ip", "bin/ping", "usr/bin/wget", "usr/bin/nc", "usr/sbin/httpd");
  applets.push("sbin/modprobe", "sbin/insmod", "sbin/uevent");
  for (const applet of applets) {
    assert.equal(type(applet), S_IFLNK, `/${applet} is a link`);
    assert.equal(text(entries.get(applet)!), "/bin/busybox", `/${applet} target`);
  }
  for (const dir of ["dev", "proc", "sys", "tmp", "run", "root", "etc", "mnt", "var/lib/hyperv"]) {
    assert.equal(type(dir), S_IFDIR, `/${dir} is a directory`);
  }
  const consoleNode = entries.get("dev/console");
  assert.equal(type("dev/console"), S_IFCHR);
  assert.deepEqual([consoleNode!.rdevMajor, consoleNode!.rdevMinor], [5, 1], "/dev/console is char 5:1");
  for (const f of ["etc/inittab", "etc/profile", "etc/passwd", "etc/group", "etc/os-release"]) {
    assert.equal(type(f), S_IFREG);
  }
  assert.match(text(entries.get("etc/profile")!), /PS1='viridian-guest:\\w # '/);
  // hv_kvp_daemon reports NAME and VERSION_ID to the host as the guest's OS.
  const osRelease = text(entries.get("etc/os-release")!);
  assert.match(osRelease, /^NAME="Viridian guest"$/m);
  assert.match(osRelease, /^VERSION_ID=\S+$/m);
  assert.match(osRelease, /^ID=[a-z0-9._-]+$/m);
  for (const script of [
    "etc/udhcpc/default.script",
    "usr/libexec/viridian/uevent",
    "usr/libexec/hypervkvpd/hv_get_dhcp_info",
    "usr/libexec/hypervkvpd/hv_get_dns_info",
  ]) {
    const e = entries.get(script);
    assert.ok(e && (e.mode & S_IFMT) === S_IFREG, `/${script} is a file`);
    assert.equal(e.mode & 0o111, 0o111, `/${script} is executable`);
    assert.ok(text(e).startsWith("#!/bin/sh\n"), `/${script} runs with busybox's sh`);
  }

  // Built reproducibly: every entry owned by root with the same timestamp.
  const stamps = new Set([...entries.values()].map((e) => e.mtime));
  assert.equal(stamps.size, 1, "one mtime for every entry");
  assert.ok([...entries.values()].every((e) => e.uid === 0 && e.gid === 0), "all entries owned by 0:0");
});

/** Where Debian's x86-64 loader looks for a DT_NEEDED name when there is no ld.so.cache or RUNPATH. */
const LOADER_SEARCH_PATH = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib"];

test("each dynamically linked program finds its ELF interpreter and libraries in the initramfs", () => {
  const entries = entryMap();
  // The Debian programs guest/build.sh adds, by the names users call them.
  const programs = ["sbin/mke2fs", "sbin/mkfs.ext4", "sbin/e2fsck", "sbin/fsck.ext4", "usr/sbin/hv_kvp_daemon"];
  for (const p of programs) {
    const e = lookup(entries, p);
    assert.ok(e && (e.mode & S_IFMT) === S_IFREG && isElf(e.data), `/${p} is an ELF file`);
    assert.equal(e.mode & 0o111, 0o111, `/${p} is executable`);
    assert.notEqual(readElfDynamic(e.data).interpreter, null, `/${p} is dynamically linked`);
  }
  assert.equal(text(entries.get("sbin/mkfs.ext4")!), "mke2fs", "mke2fs picks ext4 by the name it runs as");

  // Every ELF file with an interpreter (libc.so.6 has one too), and the shared objects they pull in,
  // transitively. A DT_NEEDED on the loader itself (libc's) is met by the interpreter already in place.
  const dynamic = [...entries]
    .filter(([, e]) => (e.mode & S_IFMT) === S_IFREG && isElf(e.data))
    .map(([name, e]) => ({ name, ...readElfDynamic(e.data) }))
    .filter((d) => d.interpreter !== null);
  assert.ok(dynamic.length >= 3, `${dynamic.length} dynamically linked files`);
  const loaders = new Set(dynamic.map((d) => posix.basename(d.interpreter!)));
  const used = new Set<string>();
  const queue: string[] = [];
  const resolveNeeded = (needed: readonly string[], by: string): void => {
    for (const soname of needed.filter((n) => !loaders.has(n))) {
      const dir = LOADER_SEARCH_PATH.find((d) => lookup(entries, `${d}/${soname}`) !== undefined);
      assert.ok(dir !== undefined, `/${by} needs ${soname}, which is not in the initramfs`);
      const path = `${dir}/${soname}`;
      if (!used.has(path)) {
        used.add(path);
        queue.push(path);
      }
    }
  };
  for (const d of dynamic) {
    const loader = lookup(entries, d.interpreter!);
    assert.ok(loader && isElf(loader.data), `/${d.name}'s interpreter ${d.interpreter} is not in the initramfs`);
    used.add(d.interpreter!.replace(/^\/+/, ""));
    resolveNeeded(d.needed, d.name);
  }
  for (let path = queue.shift(); path !== undefined; path = queue.shift()) {
    const lib = lookup(entries, path)!;
    assert.ok(isElf(lib.data), `/${path} is an ELF file`);
    resolveNeeded(readElfDynamic(lib.data).needed, path);
  }
  // ...and nothing else: no shared object that no program needs.
  const libraries = [...entries.keys()].filter(
    (n) => /^(usr\/)?lib(64)?\//.test(n) && (entries.get(n)!.mode & S_IFMT) === S_IFREG,
  );
  assert.deepEqual(
    libraries.filter((n) => !used.has(n)),
    [],
    "shared objects that no program needs",
  );
});

test("the LZ4 and ELF readers reject malformed input with their own errors", () => {
  const u8 = (...b: number[]): Uint8Array => new Uint8Array(b);
  const magic = [0x02, 0x21, 0x4c, 0x18];
  const block = (...b: number[]): number[] => [b.length, 0, 0, 0, ...b];
  assert.throws(() => decodeLz4Legacy(u8(1, 2, 3, 4), 100), Lz4Error);
  assert.throws(() => decodeLz4Legacy(u8(...magic, 9, 0, 0, 0, 1), 100), /block size/);
  // Token 0x04: no literals, then a match at distance 1 with nothing decoded yet.
  assert.throws(() => decodeLz4Legacy(u8(...magic, ...block(0x04, 1, 0)), 100), /points outside/);
  // Literal length 15 and no extension byte.
  assert.throws(() => decodeLz4Legacy(u8(...magic, ...block(0xf0)), 100), /past the end/);
  // "ab", then a match of 4+2 bytes at distance 2 repeats the pattern; then an empty last sequence.
  const repeat = u8(...magic, ...block(0x22, 0x61, 0x62, 2, 0, 0x00));
  assert.equal(Buffer.from(decodeLz4Legacy(repeat, 100)).toString("latin1"), "abababab");
  assert.throws(() => decodeLz4Legacy(repeat, 5), /limit/);
  // Two concatenated frames (the second magic is skipped) decode as one stream.
  const two = u8(...magic, ...block(0x10, 0x78), ...magic, ...block(0x10, 0x79));
  assert.equal(Buffer.from(decodeLz4Legacy(two, 100)).toString("latin1"), "xy");

  assert.throws(() => readElfDynamic(u8(0x7f, 0x45, 0x4c, 0x46)), ElfError);
  const elf = new Uint8Array(64);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1]);
  const view = new DataView(elf.buffer);
  view.setBigUint64(0x20, 1n << 40n, true); // program headers far past the end of the file
  view.setUint16(0x36, 56, true);
  view.setUint16(0x38, 1, true);
  assert.throws(() => readElfDynamic(elf), /out of range/);
});

test("the newc reader rejects malformed archives with a NewcError", () => {
  const header = (name: string, size: number): string =>
    "070701" +
    [0, 0o100644, 0, 0, 1, 0, size, 0, 0, 0, 0, name.length + 1, 0]
      .map((v) => v.toString(16).padStart(8, "0"))
      .join("");
  const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"));
  assert.throws(() => parseNewc(enc("")), NewcError);
  assert.throws(() => parseNewc(enc("070707" + "0".repeat(104))), /magic/);
  assert.throws(() => parseNewc(enc(header("a", 1 << 30) + "a\0\0\0")), /past the end/);
  assert.throws(() => parseNewc(enc(header("a", 0).replace(/^(.{22})0{8}/, "$1zzzzzzzz") + "a\0")), /hex/);
  assert.throws(() => parseNewc(enc(header("ab", 0) + "abc\0\0\0")), /NUL/);
  // A well-formed archive: one file, then the trailer.
  const ok = parseNewc(enc(header("x", 2) + "x\0" + "hi\0\0" + header("TRAILER!!!", 0) + "TRAILER!!!\0"));
  assert.equal(ok.length, 1);
  assert.equal(Buffer.from(ok[0]!.data).toString("latin1"), "hi");
});


/** Collects a child's console output and resolves when it matches, or rejects when the child exits. */
class Console {
  text = "";
  private waiter: { pattern: RegExp; from: number; resolve: () => void; reject: (e: Error) => void } | null =
    null;
  exitCode: number | null = null;

  constructor(private readonly child: ReturnType<typeof spawn>) {
    child.stdout!.setEncoding("latin1");
    child.stdout!.on("data", (chunk: string) => {
      this.text += chunk;
      this.check();
    });
    child.on("exit", (code, signal) => {
      this.exitCode = code ?? -1;
      const w = this.waiter;
      this.waiter = null;
      w?.reject(new Error(`QEMU exited (${code ?? signal}) before ${w.pattern}; console:\n${this.text}`));
    });
  }

  private check(): void {
    const w = this.waiter;
    if (w && w.pattern.test(this.text.slice(w.from).replaceAll(CURSOR_POSITION_QUERY, ""))) {
      this.waiter = null;
      w.resolve();
    }
  }

  /** Waits for `pattern` in output that arrives after the current end of the console text. */
  expect(pattern: RegExp, from = this.text.length): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiter = { pattern, from, resolve, reject };
      this.check();
    });
  }

  send(line: string): void {
    this.child.stdin!.write(line + "\n");
  }

  /**
   * Runs a shell command line and resolves with what it printed once the next prompt is back; asserts
   * that it succeeded. The status marker is split in the typed line, so only the shell's output holds it.
   */
  async run(command: string): Promise<string> {
    const from = this.text.length;
    this.send(`${command}; echo "@@""status=$?"`);
    await this.expect(/@@status=\d+\r?\n[^]*viridian-guest:[^\n]* # $/, from);
    const after = this.text.slice(from).replaceAll(CURSOR_POSITION_QUERY, "");
    const m = /@@status=(\d+)/.exec(after)!;
    assert.equal(m[1], "0", `\`${command}\` failed; console:\n${after}`);
    return after.slice(0, m.index);
  }
}

const qemu = "qemu-system-x86_64";
const qemuMissing = spawnSync(qemu, ["--version"], { stdio: "ignore" }).error !== undefined;
const skipWithoutQemu = qemuMissing ? `${qemu} not found: install qemu-system-x86 to boot the guest images` : false;

function startQemu(extra: readonly string[]): { child: ReturnType<typeof spawn>; con: Console } {
  const child = spawn(
    qemu,
    [
      ...["-accel", "tcg", "-m", "256", "-nographic", "-no-reboot"],
      ...["-kernel", bzImagePath, "-initrd", initramfsPath],
      ...["-append", "console=ttyS0 earlyprintk=serial"],
      ...extra,
    ],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  return { child, con: new Console(child) };
}

async function powerOff(child: ReturnType<typeof spawn>, con: Console): Promise<void> {
  const exited = new Promise<number>((resolve) => child.on("exit", (code) => resolve(code ?? -1)));
  con.send("poweroff");
  assert.equal(await exited, 0, `QEMU exit status; console:\n${con.text}`);
  assert.match(con.text, /reboot: Power down/);
}

test(
  "the guest boots under QEMU TCG to the prompt, computes, and powers off",
  { skip: skipWithoutQemu, timeout: 90_000 },
  async () => {
    const { child, con } = startQemu(["-net", "none"]);
    try {
      await con.expect(PROMPT_AT_END, 0);
      assert.match(con.text, /Viridian guest: Linux 6\.1\.\d+-viridian x86_64/);
      const from = con.text.length;
      con.send("echo $((6*7))");
      await con.expect(/\r?\n42\r?\n/, from);
      await powerOff(child, con);
    } finally {
      if (con.exitCode === null) child.kill("SIGKILL");
    }
  },
);

/** What the guest writes with O_DIRECT at DIRECT_OFFSET of the raw disk: `yes` of a line, 4 KiB. */
const DIRECT_LINE = "viridian-direct-io";
const DIRECT_OFFSET = 48 * 1024 * 1024;

test(
  "under QEMU TCG the guest partitions, formats and mounts a virtio disk, writes with O_DIRECT, mounts " +
    "an ISO from a SCSI CD-ROM, and fetches a file over HTTP from the host through DHCP on a virtio NIC",
  { skip: skipWithoutQemu, timeout: 300_000 },
  async () => {
    const blob = randomBytes(256 * 1024);
    const blobMd5 = createHash("md5").update(blob).digest("hex");
    const server = createServer((req, res) => {
      if (req.url === "/blob") res.end(blob);
      else res.writeHead(404).end();
    });
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    const port = (server.address() as AddressInfo).port;
    const dir = mkdtempSync(join(tmpdir(), "viridian-guest-io-"));
    const disk = join(dir, "disk.raw");
    closeSync(openSync(disk, "w"));
    truncateSync(disk, 64 * 1024 * 1024);
    // An ISO 9660 image with Joliet and Rock Ridge holding the blob, on QEMU's SCSI CD-ROM (virtio-scsi),
    // which Linux drives with sr, as it does storvsc's DVD.
    mkdirSync(join(dir, "iso"));
    writeFileSync(join(dir, "iso", "blob.bin"), blob);
    const iso = join(dir, "disc.iso");
    const mkisofs = spawnSync("genisoimage", ["-quiet", "-J", "-R", "-V", "VIRIDIAN", "-o", iso, join(dir, "iso")]);
    assert.equal(mkisofs.status, 0, `genisoimage: ${mkisofs.error?.message ?? String(mkisofs.stderr)}`);
    const { child, con } = startQemu([
      ...["-drive", `file=${disk},if=virtio,format=raw`],
      ...["-device", "virtio-scsi-pci,id=scsi0", "-drive", `file=${iso},if=none,id=cd0,media=cdrom,readonly=on`],
      ...["-device", "scsi-cd,drive=cd0,bus=scsi0.0"],
      ...["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"],
    ]);
    try {
      await con.expect(PROMPT_AT_END, 0);
      assert.match(await con.run("cat /sys/block/vda/size"), /^131072\r?$/m, "64 MiB in 512-byte sectors");

      // One 32 MiB partition; ext4 on it, a file and its md5, read back after a remount.
      await con.run("printf 'n\\np\\n1\\n\\n+32M\\nw\\n' | fdisk /dev/vda >/dev/null");
      const start = /^(\d+)\r?$/m.exec(await con.run("cat /sys/block/vda/vda1/start"));
      assert.ok(start, "the partition's first sector");
      const partitionOffset = Number(start[1]) * 512;
      await con.run("mkfs.ext4 -q /dev/vda1 && mount /dev/vda1 /mnt");
      await con.run("dd if=/dev/urandom of=/mnt/data bs=64k count=32 2>/dev/null && md5sum /mnt/data >/mnt/md5");
      await con.run("umount /mnt && echo 3 >/proc/sys/vm/drop_caches && mount -o ro /dev/vda1 /mnt");
      assert.match(await con.run("md5sum -c /mnt/md5"), /\/mnt\/data: OK/);
      await con.run("umount /mnt && fsck.ext4 -n /dev/vda1 >/dev/null");
      // A known pattern at a known raw offset past the partition, written with O_DIRECT.
      const seek = DIRECT_OFFSET / 4096;
      await con.run(`yes ${DIRECT_LINE} | head -c 4096 >/tmp/p`);
      await con.run(`dd if=/tmp/p of=/dev/vda bs=4096 seek=${seek} oflag=direct conv=notrunc 2>/dev/null && sync`);

      // The DVD: mounted read-only, the file intact, writes refused.
      await con.run("mkdir -p /cdrom && mount -t iso9660 -o ro /dev/sr0 /cdrom");
      assert.match(await con.run("md5sum /cdrom/blob.bin"), new RegExp(`${blobMd5}  /cdrom/blob.bin`));
      assert.match(await con.run("touch /cdrom/new 2>&1 || true"), /Read-only file system/);
      await con.run("umount /cdrom");

      // DHCP runs in the background from boot: wait (bounded) for the lease, then use it.
      const lease = await con.run(
        "i=0; until ip -4 addr show dev eth0 | grep -q 'inet '; do i=$((i+1)); [ $i -gt 600 ] && break; " +
          "sleep 0.1; done; ip -4 addr show dev eth0; ip route",
      );
      assert.match(lease, /inet 10\.0\.2\.15\/24/, "the address QEMU's DHCP server hands out");
      assert.match(lease, /default via 10\.0\.2\.2 dev eth0/);
      assert.match(await con.run("/usr/libexec/hypervkvpd/hv_get_dhcp_info eth0"), /^Enabled\r?$/m);
      assert.match(await con.run(`wget -q -O - http://10.0.2.2:${port}/blob | md5sum`), new RegExp(blobMd5));
      await powerOff(child, con);

      // On the host: the ext4 superblock's magic in the partition, and the direct write.
      const fd = openSync(disk, "r");
      try {
        const magic = Buffer.alloc(2);
        readSync(fd, magic, 0, 2, partitionOffset + 1024 + 0x38);
        assert.equal(magic.readUInt16LE(0), 0xef53, "ext4 superblock magic");
        const written = Buffer.alloc(4096);
        readSync(fd, written, 0, 4096, DIRECT_OFFSET);
        const expected = (DIRECT_LINE + "\n").repeat(Math.ceil(4096 / (DIRECT_LINE.length + 1))).slice(0, 4096);
        assert.equal(written.toString("latin1"), expected);
      } finally {
        closeSync(fd);
      }
    } finally {
      if (con.exitCode === null) child.kill("SIGKILL");
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
