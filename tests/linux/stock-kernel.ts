// Owns: finding Debian's stock x86-64 kernel for the Linux guest tests: the copy cached by
// guest/fetch-stock-kernel.sh, fetched with it (apt) when absent; and the initramfs that carries its
// modules, built by guest/stock-initramfs.sh.
// Must not: install packages, touch the repository, or fetch when a cached kernel exists.
// Spec: guest/fetch-stock-kernel.sh and guest/stock-initramfs.sh (cache directory
// VIRIDIAN_STOCK_KERNEL_DIR, default ${TMPDIR:-/tmp}/viridian-stock-kernel; each prints its result's path
// as its last line).

import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { REPO } from "./guest-console.js";

export function stockKernelDir(): string {
  return (
    process.env.VIRIDIAN_STOCK_KERNEL_DIR || join(process.env.TMPDIR || tmpdir(), "viridian-stock-kernel")
  );
}

/** The path of the stock kernel; fetches it (one apt download, about 70 MB) if the cache has none. */
export function stockKernel(): string {
  const cached = join(stockKernelDir(), "vmlinuz");
  if (existsSync(cached) && statSync(cached).size > 1024 * 1024) return cached;
  const r = spawnSync("bash", [resolve(REPO, "guest/fetch-stock-kernel.sh")], {
    encoding: "utf8",
    timeout: 15 * 60_000,
  });
  const printed = r.stdout?.trim().split("\n").at(-1) ?? "";
  if (r.status !== 0 || !existsSync(printed)) {
    throw new Error(
      `guest/fetch-stock-kernel.sh failed (status ${r.status}${r.error ? `, ${r.error.message}` : ""}); ` +
        `it needs apt access (run it as root once, or set VIRIDIAN_STOCK_KERNEL_DIR to a directory ` +
        `holding vmlinuz):\n${r.stderr}`,
    );
  }
  return printed;
}

/**
 * The stock kernel's initramfs: the bundled userspace plus Debian's own hv_vmbus, hv_storvsc, hv_utils,
 * hv_netvsc, SCSI disk/CD-ROM, ext4, ISO 9660 and virtio modules, which its /init loads. Built (a few
 * seconds; the kernel is fetched first if absent) when the cached one is missing or older than its inputs.
 */
export function stockInitramfs(): string {
  const r = spawnSync("bash", [resolve(REPO, "guest/stock-initramfs.sh")], {
    encoding: "utf8",
    timeout: 15 * 60_000,
  });
  const printed = r.stdout?.trim().split("\n").at(-1) ?? "";
  if (r.status !== 0 || !existsSync(printed)) {
    throw new Error(
      `guest/stock-initramfs.sh failed (status ${r.status}${r.error ? `, ${r.error.message}` : ""}); ` +
        `it needs the stock kernel's modules (guest/fetch-stock-kernel.sh, apt) and depmod, cpio, lz4:\n${r.stderr}`,
    );
  }
  return printed;
}
