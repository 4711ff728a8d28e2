// Owns: finding Debian's stock x86-64 kernel for the Linux guest tests: the copy cached by
// guest/fetch-stock-kernel.sh, fetched with it (apt) when absent.
// Must not: install packages, touch the repository, or fetch when a cached kernel exists.
// Spec: guest/fetch-stock-kernel.sh (cache directory VIRIDIAN_STOCK_KERNEL_DIR, default
// ${TMPDIR:-/tmp}/viridian-stock-kernel; prints the kernel's path as its last line).

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
