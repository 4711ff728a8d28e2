// Owns: the deterministic operation stream shared by the VHDX crash-test writer (a child process) and the
// checker, so the checker can recompute what every acknowledged flush covered from the seed alone.
// Must not: be imported from src/ (test-only).
// Spec: none (test scaffolding for MS-VHDX section 2.3 crash consistency).

import { rng } from "./memory-disks.js";

export const CRASH_CAPACITY = 16 * 1024 * 1024;
export const CRASH_BLOCK = 1024 * 1024;
const SECTORS = CRASH_CAPACITY / 512;

export type CrashOp = { kind: "write" | "trim"; lba: number; count: number } | { kind: "flush" };

export function crashOps(seed: number, n: number): CrashOp[] {
  const r = rng(seed);
  const out: CrashOp[] = [];
  for (let i = 0; i < n; i++) {
    const x = r();
    if (x < 0.15) out.push({ kind: "flush" });
    else if (x < 0.22) {
      const block = Math.floor(r() * (CRASH_CAPACITY / CRASH_BLOCK - 3));
      out.push({
        kind: "trim",
        lba: block * 2048 + Math.floor(r() * 4),
        count: 2048 * (1 + Math.floor(r() * 2)),
      });
    } else {
      const count = 1 + Math.floor(r() * (r() < 0.1 ? 2048 : 64));
      out.push({ kind: "write", lba: Math.floor(r() * (SECTORS - count)), count });
    }
  }
  return out;
}

/** The content op `id` writes to sector `lba`: tagged so a checker can tell whose data a sector holds. */
export function sectorContent(id: number, lba: number, out: Uint8Array = new Uint8Array(512)): Uint8Array {
  const v = new DataView(out.buffer, out.byteOffset, 512);
  v.setUint32(0, id, true);
  v.setUint32(4, lba, true);
  for (let k = 8; k < 512; k += 4)
    v.setUint32(k, (Math.imul(id, 0x9e3779b1) ^ Math.imul(lba, 0x85ebca6b) ^ k) >>> 0, true);
  return out;
}

/** Parent content for the differencing variant: every sector tagged with owner 0. */
export const parentContent = (lba: number, out?: Uint8Array) => sectorContent(0x7fffffff, lba, out);
