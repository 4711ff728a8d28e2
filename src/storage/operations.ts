// Owns: the format-independent image operations behind `viridian vhd`: convert (any format to raw/vhd/vhdx,
// copying only allocated, non-zero data), merge (a differencing child into its parent), resize, compact,
// check/repair, and the chain description used by `info`.
// Must not: know any format's layout (it works only through ImageDisk), or overwrite an existing file.
// Spec: the operations Hyper-V's Edit Disk wizard offers (convert, merge, expand/shrink, compact) over the
// VHD (2006) and MS-VHDX formats; semantics are those of the ImageDisk contract (./image-format.ts).

import { StorageError, type FileOpener } from "./disk.js";
import { isZero } from "./block-io.js";
import type { CheckReport, ImageDisk, ImageFormatName, ImageInfo } from "./image-format.js";
import { createImage, openImage } from "./open.js";

export type Progress = (fraction: number) => void;

const CHUNK = 1024 * 1024;

/** Whether any layer of the chain holds data for the byte range. */
async function chainAllocated(disk: ImageDisk, offset: number, length: number): Promise<boolean> {
  for (let d: ImageDisk | null = disk; d; d = d.parent) {
    const end = Math.min(offset + length, d.capacity);
    if (end <= offset) continue;
    const s = d.logicalSectorSize;
    const first = Math.floor(offset / s);
    if (await d.isAllocated(first, Math.ceil(end / s) - first)) return true;
  }
  return false;
}

export interface ConvertOptions {
  format: ImageFormatName;
  kind: "fixed" | "dynamic";
  blockSize?: number;
  onProgress?: Progress;
}

/** Writes the flattened view of `source` (its whole chain) to a new image at `target`. */
export async function convert(
  opener: FileOpener,
  source: string,
  target: string,
  o: ConvertOptions,
): Promise<void> {
  if (o.format === "iso") throw new StorageError("unsupported", `cannot convert to ISO media`);
  const src = await openImage(opener, source, { readOnly: true });
  try {
    const createOpts: Parameters<typeof createImage>[3] = { kind: o.kind, capacity: src.capacity };
    if (o.blockSize !== undefined) createOpts.blockSize = o.blockSize;
    if (o.format === "vhdx" && src.logicalSectorSize === 4096) createOpts.logicalSectorSize = 4096;
    await createImage(opener, target, o.format, createOpts);
    const dst = await openImage(opener, target, { readOnly: false });
    try {
      // A chunk never spans two target blocks, so an all-zero chunk leaves its block unallocated.
      const bs = dst.info().blockSize;
      const chunk = bs > 0 ? Math.min(CHUNK, bs) : CHUNK;
      const buf = new Uint8Array(chunk);
      const cap = Math.min(src.capacity, dst.capacity);
      for (let at = 0; at < cap; at += chunk) {
        const n = Math.min(chunk, cap - at);
        const view = buf.subarray(0, n);
        if (await chainAllocated(src, at, n)) {
          await src.read(at / src.logicalSectorSize, view);
          if (!isZero(view)) await dst.write(at / dst.logicalSectorSize, view);
        }
        o.onProgress?.(Math.min(1, (at + n) / cap));
      }
      await dst.flush();
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}

/** The sector runs in [lba, lba+count) that `layer` itself holds, found by bisection over isAllocated. */
async function ownRuns(
  layer: ImageDisk,
  lba: number,
  count: number,
  out: Array<[number, number]>,
): Promise<void> {
  if (!(await layer.isAllocated(lba, count))) return;
  if (count === 1) {
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === lba) last[1]++;
    else out.push([lba, 1]);
    return;
  }
  const half = Math.floor(count / 2);
  await ownRuns(layer, lba, half, out);
  await ownRuns(layer, lba + half, count - half, out);
}

/**
 * Copies everything the differencing child holds into its parent. Afterwards the parent alone has the
 * child's view and the child may be deleted; other children of that parent no longer match their base.
 */
export async function merge(opener: FileOpener, childPath: string, onProgress?: Progress): Promise<string> {
  const child = await openImage(opener, childPath, { readOnly: true });
  try {
    const parentPath = child.parent?.location;
    if (!child.parent || parentPath === undefined) {
      throw new StorageError("invalid-argument", `${childPath} is not a differencing image`);
    }
    const parent = await openImage(opener, parentPath, { readOnly: false });
    try {
      if (parent.logicalSectorSize !== child.logicalSectorSize) {
        throw new StorageError("unsupported", `parent and child sector sizes differ`);
      }
      if (parent.capacity < child.capacity) await parent.resize!(child.capacity, false);
      const s = child.logicalSectorSize;
      const sectors = child.capacity / s;
      const step = CHUNK / s;
      const buf = new Uint8Array(CHUNK);
      for (let lba = 0; lba < sectors; lba += step) {
        const runs: Array<[number, number]> = [];
        await ownRuns(child, lba, Math.min(step, sectors - lba), runs);
        for (const [start, n] of runs) {
          const view = buf.subarray(0, n * s);
          await child.read(start, view);
          await parent.write(start, view);
        }
        onProgress?.(Math.min(1, (lba + step) / sectors));
      }
      await parent.flush();
    } finally {
      await parent.close();
    }
    return parentPath;
  } finally {
    await child.close();
  }
}

export async function resize(
  opener: FileOpener,
  path: string,
  newCapacity: number,
  force: boolean,
): Promise<void> {
  const d = await openImage(opener, path, { readOnly: false });
  try {
    await d.resize!(newCapacity, force);
    await d.flush();
  } finally {
    await d.close();
  }
}

export async function compact(
  opener: FileOpener,
  path: string,
  onProgress?: Progress,
): Promise<{ before: number; after: number }> {
  const d = await openImage(opener, path, { readOnly: false });
  try {
    return await d.compact!(onProgress);
  } finally {
    await d.close();
  }
}

export async function check(opener: FileOpener, path: string, repair: boolean): Promise<CheckReport> {
  const d = await openImage(opener, path, { readOnly: !repair });
  try {
    return await d.check(repair);
  } finally {
    await d.close();
  }
}

/** The image and each parent below it, top first. */
export async function describe(opener: FileOpener, path: string): Promise<ImageInfo[]> {
  const d = await openImage(opener, path, { readOnly: true });
  try {
    const chain: ImageInfo[] = [];
    for (let p: ImageDisk | null = d; p; p = p.parent) chain.push(p.info());
    return chain;
  } finally {
    await d.close();
  }
}
