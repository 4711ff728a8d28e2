// Owns: checks of the committed guest images (guest/bzImage, guest/initramfs.cpio.gz) — present, within
// their size limits, structurally valid — and one boot of them under QEMU TCG to the shell prompt.
// Must not: rebuild the images (guest/build.sh does that) or need the network.
// Spec: Linux Documentation/x86/boot.rst (real-mode setup header: boot_flag, "HdrS", version,
// xloadflags); buffer-format.rst (newc initramfs); guest/README.md (the prompt string).

import { strict as assert } from "node:assert";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { NewcError, parseNewc, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type NewcEntry } from "./newc.js";

// Compiled to dist/tests/guest/, three levels below the repository root.
const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const bzImagePath = resolve(repo, "guest/bzImage");
const initramfsPath = resolve(repo, "guest/initramfs.cpio.gz");
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
  const compressed = readFileSync(initramfsPath);
  assert.equal(compressed[0], 0x1f, "gzip magic");
  assert.equal(compressed[1], 0x8b, "gzip magic");
  // The limit keeps a corrupt or hostile image from inflating without bound.
  const archive = gunzipSync(compressed, { maxOutputLength: 64 * 1024 * 1024 });
  return new Map(parseNewc(archive).map((e) => [e.name, e]));
}

test("the initramfs is a gzip'd newc cpio with /init, busybox and a console node", () => {
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
  assert.ok(Buffer.from(init.data).toString("latin1").startsWith("#!/bin/sh\n"), "/init is a shell script");

  const busybox = entries.get("bin/busybox");
  assert.ok(busybox, "/bin/busybox is missing");
  assert.equal(type("bin/busybox"), S_IFREG);
  assert.equal(busybox.mode & 0o111, 0o111, "/bin/busybox is executable");
  assert.deepEqual([...busybox.data.subarray(0, 5)], [0x7f, 0x45, 0x4c, 0x46, 2], "64-bit ELF");

  for (const applet of ["bin/sh", "sbin/init", "sbin/poweroff", "sbin/reboot", "bin/cttyhack", "usr/bin/md5sum"]) {
    assert.equal(type(applet), S_IFLNK, `/${applet} is a link`);
    assert.equal(Buffer.from(entries.get(applet)!.data).toString("latin1"), "/bin/busybox", `/${applet} target`);
  }
  for (const dir of ["dev", "proc", "sys", "tmp", "run", "root", "etc"]) assert.equal(type(dir), S_IFDIR);
  const consoleNode = entries.get("dev/console");
  assert.equal(type("dev/console"), S_IFCHR);
  assert.deepEqual([consoleNode!.rdevMajor, consoleNode!.rdevMinor], [5, 1], "/dev/console is char 5:1");
  for (const f of ["etc/inittab", "etc/profile", "etc/passwd", "etc/group"]) assert.equal(type(f), S_IFREG);
  assert.match(Buffer.from(entries.get("etc/profile")!.data).toString("latin1"), /PS1='viridian-guest:\\w # '/);

  // Built reproducibly: every entry owned by root with the same timestamp.
  const stamps = new Set([...entries.values()].map((e) => e.mtime));
  assert.equal(stamps.size, 1, "one mtime for every entry");
  assert.ok([...entries.values()].every((e) => e.uid === 0 && e.gid === 0), "all entries owned by 0:0");
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
}

const qemu = "qemu-system-x86_64";
const qemuMissing = spawnSync(qemu, ["--version"], { stdio: "ignore" }).error !== undefined;

test(
  "the guest boots under QEMU TCG to the prompt, computes, and powers off",
  {
    skip: qemuMissing ? `${qemu} not found: install qemu-system-x86 to boot the guest images` : false,
    timeout: 90_000,
  },
  async () => {
    const child = spawn(
      qemu,
      [
        ...["-accel", "tcg", "-m", "256", "-nographic", "-no-reboot"],
        ...["-kernel", bzImagePath, "-initrd", initramfsPath],
        ...["-append", "console=ttyS0 earlyprintk=serial"],
      ],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    const con = new Console(child);
    try {
      await con.expect(PROMPT_AT_END, 0);
      assert.match(con.text, /Viridian guest: Linux 6\.1\.\d+-viridian x86_64/);
      const from = con.text.length;
      con.send("echo $((6*7))");
      await con.expect(/\r?\n42\r?\n/, from);
      const exited = new Promise<number>((resolve) => child.on("exit", (code) => resolve(code ?? -1)));
      con.send("poweroff");
      assert.equal(await exited, 0, `QEMU exit status; console:\n${con.text}`);
      assert.match(con.text, /reboot: Power down/);
    } finally {
      if (con.exitCode === null) child.kill("SIGKILL");
    }
  },
);
