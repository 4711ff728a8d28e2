// Assembles the nasm test microkernels into tests/kernels/build/ (gitignored) for the kernel tests and
// the benchmark; the kernels are flat binaries that carry their own ELF32 header (include/boot.inc).
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

/** tests/kernels in the source tree (this file runs from dist/tests/kernels). */
export const KERNEL_SOURCE_DIR = fileURLToPath(new URL("../../../tests/kernels/", import.meta.url));
export const KERNEL_BUILD_DIR = join(KERNEL_SOURCE_DIR, "build");

/** Assembles tests/kernels/<name>.asm to build/<output>.elf with the given -D definitions; returns the path. */
export function assembleKernel(
  name: string,
  defines: Record<string, string | number> = {},
  output = name,
): string {
  mkdirSync(KERNEL_BUILD_DIR, { recursive: true });
  const out = join(KERNEL_BUILD_DIR, `${output}.elf`);
  const args = ["-f", "bin", "-I", KERNEL_SOURCE_DIR, "-o", out];
  for (const [k, v] of Object.entries(defines)) args.push(`-D${k}=${v}`);
  args.push(join(KERNEL_SOURCE_DIR, `${name}.asm`));
  const r = spawnSync("nasm", args, { encoding: "utf8" });
  if (r.status !== 0)
    throw new Error(`nasm ${name}.asm failed (status ${r.status}): ${r.stderr || r.error?.message}`);
  return out;
}
