// Owns: `viridian vhd new|info|convert|merge|resize|compact|check`: argument parsing, sizes like 10G/512M,
// progress on a terminal (stderr, only when it is a TTY), and turning StorageErrors into one-line messages
// with exit status 1 (usage errors exit 2).
// Must not: implement image logic (that is src/storage/operations.ts), or print progress into pipes.
// Spec: none; the commands are documented in README.md.

import { resolve as resolvePath } from "node:path";
import { NodeFileOpener } from "../host/node-files.js";
import { StorageError } from "../storage/disk.js";
import type { ImageFormatName } from "../storage/image-format.js";
import { createImage } from "../storage/open.js";
import { check, compact, convert, describe, merge, resize } from "../storage/operations.js";

class UsageError extends Error {}

const HELP: Record<string, string> = {
  new: `usage: viridian vhd new <path> --size <size> [--type fixed|dynamic] [--format vhd|vhdx|raw] [--block-size <size>]
       viridian vhd new <path> --parent <parent> [--format vhd|vhdx]
Creates an image (dynamic by default; differencing when --parent is given). The format defaults from the
file extension (.vhd, .vhdx, otherwise raw). Sizes take K/M/G/T suffixes (powers of 1024).`,
  info: `usage: viridian vhd info <path> [--json]
Shows format, kind, sizes and identity of an image and of each parent in its differencing chain.`,
  convert: `usage: viridian vhd convert <source> <target> [--format vhd|vhdx|raw] [--type fixed|dynamic] [--block-size <size>]
Writes the flattened contents of <source> (any format, whole chain) to a new image; only allocated, non-zero
data is copied, so zero blocks stay unallocated in dynamic targets.`,
  merge: `usage: viridian vhd merge <child>
Copies a differencing image's data into its parent. Afterwards the child can be deleted.`,
  resize: `usage: viridian vhd resize <path> --size <size> [--force]
Grows an image, or shrinks it when nothing is allocated beyond the new end (--force discards such data).`,
  compact: `usage: viridian vhd compact <path>
Releases all-zero blocks of a dynamic image and moves blocks down so the file has no holes.`,
  check: `usage: viridian vhd check <path> [--repair]
Checks an image's structures (exit status 1 when problems remain); --repair fixes what can be fixed, such as
a footer lost when a writer died.`,
};

const USAGE = `usage: viridian vhd <new|info|convert|merge|resize|compact|check> [options]
Run \`viridian vhd <subcommand> --help\` for a subcommand's options.`;

export function parseSize(text: string): number {
  const m = /^(\d+)([KMGT])?(i?B)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`invalid size '${text}' (examples: 10G, 512M, 1048576)`);
  const unit = { K: 1, M: 2, G: 3, T: 4 }[(m[2] ?? "").toUpperCase() as "K"] ?? 0;
  const n = Number(m[1]) * 1024 ** unit;
  if (!Number.isSafeInteger(n)) throw new UsageError(`size '${text}' is too large`);
  return n;
}

interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
}

function parseArgs(args: string[], withValue: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith("--")) {
      const [name, inline] = a.slice(2).split("=", 2) as [string, string | undefined];
      if (withValue.includes(name)) {
        const v = inline ?? args[++i];
        if (v === undefined) throw new UsageError(`--${name} needs a value`);
        flags.set(name, v);
      } else flags.set(name, true);
    } else positional.push(a);
  }
  return { positional, flags };
}

function str(p: Parsed, name: string): string | undefined {
  const v = p.flags.get(name);
  return typeof v === "string" ? v : undefined;
}

function formatFor(path: string, explicit: string | undefined): ImageFormatName {
  const f = explicit ?? (/\.vhdx$/i.test(path) ? "vhdx" : /\.vhd$/i.test(path) ? "vhd" : "raw");
  if (f !== "vhd" && f !== "vhdx" && f !== "raw")
    throw new UsageError(`unknown format '${f}' (vhd, vhdx, raw)`);
  return f;
}

function kindOf(p: Parsed): "fixed" | "dynamic" {
  const t = str(p, "type") ?? "dynamic";
  if (t !== "fixed" && t !== "dynamic") throw new UsageError(`--type must be fixed or dynamic`);
  return t;
}

function progress(label: string): ((f: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  let last = -1;
  return (f) => {
    const pct = Math.floor(f * 100);
    if (pct === last) return;
    last = pct;
    process.stderr.write(`\r${label} ${pct}%${pct >= 100 ? "\n" : ""}`);
  };
}

function human(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u ? v.toFixed(1) : v} ${units[u]} (${n} bytes)`;
}

function need(p: Parsed, count: number, sub: string): string[] {
  if (p.positional.length !== count) throw new UsageError(HELP[sub]!);
  return p.positional.map((x) => resolvePath(x));
}

async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    console.log(USAGE);
    return sub === undefined ? 2 : 0;
  }
  if (!(sub in HELP)) {
    console.error(`viridian vhd: unknown subcommand '${sub}'\n${USAGE}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(HELP[sub]);
    return 0;
  }
  const opener = new NodeFileOpener();
  try {
    const p = parseArgs(rest, ["size", "type", "format", "block-size", "parent"]);
    switch (sub) {
      case "new": {
        const [path] = need(p, 1, sub) as [string];
        const format = formatFor(path, str(p, "format"));
        const parent = str(p, "parent");
        const bs = str(p, "block-size");
        if (parent !== undefined) {
          await createImage(opener, path, format, { kind: "differencing", parentPath: resolvePath(parent) });
        } else {
          const size = str(p, "size");
          if (size === undefined) throw new UsageError(`--size is required\n${HELP.new}`);
          const opts: Parameters<typeof createImage>[3] = { kind: kindOf(p), capacity: parseSize(size) };
          if (bs !== undefined) opts.blockSize = parseSize(bs);
          await createImage(opener, path, format, opts);
        }
        console.log(`created ${path}`);
        return 0;
      }
      case "info": {
        const [path] = need(p, 1, sub) as [string];
        const chain = await describe(opener, path);
        if (p.flags.has("json")) {
          console.log(JSON.stringify(chain, null, 2));
          return 0;
        }
        chain.forEach((i, depth) => {
          const lines = [
            `${depth ? "parent" : "image"}: ${depth ? (chain[depth - 1]!.parentPath ?? "?") : path}`,
            `  format: ${i.format} (${i.kind})`,
            `  capacity: ${human(i.capacity)}`,
            `  sectors: ${i.logicalSectorSize} logical, ${i.physicalSectorSize} physical`,
            ...(i.blockSize ? [`  block size: ${human(i.blockSize)}`] : []),
            `  allocated: ${human(i.allocatedBytes)}`,
            `  file size: ${human(i.fileSize)}`,
            `  identity: ${i.identity}`,
            ...(i.parentIdentity ? [`  parent identity: ${i.parentIdentity}`] : []),
          ];
          console.log(lines.join("\n"));
        });
        return 0;
      }
      case "convert": {
        const [src, dst] = need(p, 2, sub) as [string, string];
        const bs = str(p, "block-size");
        await convert(opener, src, dst, {
          format: formatFor(dst, str(p, "format")),
          kind: kindOf(p),
          ...(bs !== undefined ? { blockSize: parseSize(bs) } : {}),
          ...(progress("converting") ? { onProgress: progress("converting")! } : {}),
        });
        console.log(`converted ${src} -> ${dst}`);
        return 0;
      }
      case "merge": {
        const [child] = need(p, 1, sub) as [string];
        const cb = progress("merging");
        const parent = await merge(opener, child, cb);
        console.log(`merged ${child} into ${parent}; ${child} can now be deleted`);
        return 0;
      }
      case "resize": {
        const [path] = need(p, 1, sub) as [string];
        const size = str(p, "size");
        if (size === undefined) throw new UsageError(`--size is required\n${HELP.resize}`);
        await resize(opener, path, parseSize(size), p.flags.has("force"));
        console.log(`resized ${path} to ${human(parseSize(size))}`);
        return 0;
      }
      case "compact": {
        const [path] = need(p, 1, sub) as [string];
        const r = await compact(opener, path, progress("compacting"));
        console.log(`compacted ${path}: ${human(r.before)} -> ${human(r.after)}`);
        return 0;
      }
      case "check": {
        const [path] = need(p, 1, sub) as [string];
        const repair = p.flags.has("repair");
        const r = await check(opener, path, repair);
        for (const x of r.problems) console.log(`problem: ${x}`);
        for (const x of r.repaired) console.log(`repaired: ${x}`);
        const remaining = repair ? (await check(opener, path, false)).problems.length : r.problems.length;
        console.log(remaining === 0 ? `${path}: clean` : `${path}: ${remaining} problem(s) remain`);
        return remaining > 0 ? 1 : 0;
      }
    }
    return 2;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`viridian vhd ${sub}: ${e.message}`);
      return 2;
    }
    if (e instanceof StorageError) {
      console.error(`viridian vhd ${sub}: ${e.message} [${e.code}]`);
      return 1;
    }
    throw e;
  }
}

/** Matches main.ts's Command shape (not imported: main.ts loads this module, so importing back would cycle). */
export const command: { summary: string; run(args: string[]): Promise<number> } = {
  summary: "create, inspect, convert, merge, resize, compact and check disk images",
  run,
};
