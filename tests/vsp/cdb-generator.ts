// Owns: the random CDB generator the SCSI fuzz tests share (the target's own and the storvsp one through
// the partition), and the independent model of what a successful write does to a 512-byte-sector raw image.
// Must not: be imported from src/ (test-only), or decode CDBs with the target's code (the model is the oracle).
// Spec: SBC-3 CDB layouts of READ/WRITE(6/10/12/16) and WRITE SAME(10/16) (UNMAP, NDOB bits).

import { COMMANDS } from "../../src/vsp/storvsp/command-table.js";
import type { ScsiAddress } from "../../src/vsp/storvsp/scsi-controller.js";

/** A LUN as the generator aims at it; `weight` is how often it is picked. */
export interface FuzzUnit {
  readonly kind: "disk" | "dvd" | null;
  readonly blockSize: number;
  readonly blocks: number;
  readonly weight: number;
}

export interface FuzzCommand {
  readonly address: ScsiAddress;
  readonly cdb: Uint8Array;
  readonly direction: "in" | "out" | "none";
  /** The buffer: its size disagrees with the CDB as often as not; Data-Out contents are random. */
  readonly bytes: Uint8Array;
}

const OPCODES = [...COMMANDS.keys()];

/** Opcodes that may change a disk. */
export const WRITE_OPCODES = new Set([0x0a, 0x2a, 0xaa, 0x8a, 0x41, 0x93, 0x42]);

export function randomCommand(r: () => number, units: readonly FuzzUnit[]): FuzzCommand {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const int = (n: number): number => Math.floor(r() * n);
  const lun = r() < 0.03 ? int(256) : pick(units.flatMap((u, i) => Array<number>(u.weight).fill(i)));
  const address = r() < 0.02 ? { path: int(8), target: int(2), lun } : { path: 0, target: 0, lun };
  // Two in five commands are well formed for their unit (an opcode it implements, fields in range, the
  // buffer the CDB asks for); the rest are mutated or random.
  const wellFormed = r() < 0.4;
  const unit = units[lun];
  const kind = unit?.kind ?? "disk";
  const opcode = wellFormed
    ? pick(OPCODES.filter((o) => COMMANDS.get(o)![kind]))
    : r() < 0.85
      ? pick(OPCODES)
      : int(256);
  const row = COMMANDS.get(opcode);
  const cdb = new Uint8Array(r() < 0.03 ? int(20) : 16);
  for (let i = 0; i < cdb.length; i++) cdb[i] = wellFormed || r() < 0.6 ? 0 : int(256);
  if (cdb.length > 0) cdb[0] = opcode;
  const length = row?.cdbLength ?? 10;
  const blockSize = unit?.blockSize ?? 512;
  const blocks = unit?.blocks ?? 0;
  let count = 0;
  // Most commands get plausible fields: an LBA inside or at an edge, a small transfer length, a sane
  // control byte; the rest keep their random bytes.
  if (r() < 0.75 && cdb.length >= 16) {
    const lba =
      r() < 0.6 ? int(blocks) : pick([0, blocks - 1, blocks, blocks + 1, 2 ** 32 - 1, int(2 ** 32)]);
    count = pick([0, 1, 1, 2, 3, 8, int(64), int(300), 0xffff]);
    const put = (at: number, width: number, v: number): void => {
      for (let i = width - 1; i >= 0; i--) {
        cdb[at + i] = v & 0xff;
        v = Math.floor(v / 256);
      }
    };
    if (length === 6) {
      put(1, 3, Math.max(0, lba) & 0x1fffff);
      cdb[4] = count & 0xff;
    } else if (length === 10) {
      put(2, 4, Math.max(0, lba));
      put(7, 2, count);
    } else if (length === 12) {
      put(2, 4, Math.max(0, lba));
      put(6, 4, count);
    } else {
      put(2, 8, Math.max(0, lba));
      put(10, 4, count);
    }
    if (wellFormed && opcode === 0x12) cdb[4] = 0xff;
    if (wellFormed && (opcode === 0x1a || opcode === 0x5a)) cdb[2] = 0x3f;
    if (wellFormed && opcode === 0x9e) cdb[1] = 0x10;
    if (r() < 0.8) cdb[1] = cdb[1]! & pick([0x00, 0x00, 0x08, 0x01, 0x02, 0x10]);
    if (r() < 0.3) cdb[2] = 0;
    cdb[length - 1] = r() < 0.95 ? 0 : cdb[length - 1]!;
  }
  const direction = row && (wellFormed || r() < 0.85) ? row.direction : pick(["in", "out", "none"] as const);
  const allocation = (cdb[7]! << 8) | cdb[8]!;
  const size = wellFormed
    ? Math.max(count * blockSize, 255)
    : pick([
        count * blockSize,
        count * blockSize,
        (count + 1) * blockSize,
        Math.max(0, count - 1) * blockSize,
        0,
        8,
        18,
        36,
        255,
        blockSize,
        allocation,
        int(70_000),
      ]);
  const bytes = new Uint8Array(Math.min(size, 1 << 20));
  for (let i = 0; i < bytes.length; i += 97) bytes[i] = int(256);
  return { address, cdb, direction, bytes };
}

/** The effect a successful command has on the raw disk, decoded here (not by the target). */
export function applyToShadow(shadow: Uint8Array, cdb: Uint8Array, dataOut: Uint8Array): void {
  const op = cdb[0]!;
  const be = (at: number, n: number): number => {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + (cdb[at + i] ?? 0);
    return v;
  };
  let lba: number;
  let blocks: number;
  switch (op) {
    case 0x0a:
      lba = be(1, 3) & 0x1fffff;
      blocks = cdb[4] || 256;
      break;
    case 0x2a:
      [lba, blocks] = [be(2, 4), be(7, 2)];
      break;
    case 0xaa:
      [lba, blocks] = [be(2, 4), be(6, 4)];
      break;
    case 0x8a:
      [lba, blocks] = [be(2, 8), be(10, 4)];
      break;
    case 0x41:
    case 0x93: {
      if (cdb[1]! & 0x08) return; // UNMAP on a raw image keeps the data
      [lba, blocks] = op === 0x41 ? [be(2, 4), be(7, 2)] : [be(2, 8), be(10, 4)];
      const pattern = op === 0x93 && cdb[1]! & 0x01 ? new Uint8Array(512) : dataOut.subarray(0, 512);
      for (let i = 0; i < blocks; i++) shadow.set(pattern, (lba + i) * 512);
      return;
    }
    default:
      return; // reads, UNMAP (raw trim keeps data), and everything else change nothing
  }
  shadow.set(dataOut.subarray(0, blocks * 512), lba * 512);
}
