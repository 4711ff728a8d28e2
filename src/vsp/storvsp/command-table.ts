// Owns: the one table of SCSI commands this target knows: per opcode its name, CDB length, data direction,
// whether a pending UNIT ATTENTION is reported and a medium is needed, the handler of each kind of logical
// unit (disk, dvd) and the sense a kind without a handler answers; plus REPORT LUNS, which the target (not
// a logical unit) answers. The controller dispatches through it, storvsp checks the SRB's direction against
// it, the tests and the fuzzer take their opcodes from it, and docs/architecture.md lists it.
// Must not: hold state, or answer for opcodes it does not list (the controller answers those with INVALID
// COMMAND OPERATION CODE).
// Spec: opcodes and CDB lengths from SPC-4 / SBC-3 / MMC-6 (the CDB length follows the group code: 0 → 6,
// 1-2 → 10, 4 → 16, 5 → 12); SAM-5 unit attention conditions: INQUIRY, REPORT LUNS and REQUEST SENSE do
// not report one; MMC-6 6.6/6.7: neither do GET CONFIGURATION and GET EVENT STATUS NOTIFICATION (they are
// how an initiator polls a drive); REPORT LUNS (SPC-4 6.33, peripheral device addressing below LUN 256).

import type { DiskLun } from "./disk-lun.js";
import type { DvdLun } from "./dvd-lun.js";
import {
  be32,
  check,
  GOOD,
  invalidFieldInCdb,
  putBe32,
  requestSense,
  SENSE,
  type Outcome,
  type ScsiCommand,
  type Sense,
} from "./scsi.js";

type Handler<L> = (lun: L, cmd: ScsiCommand) => Outcome | Promise<Outcome>;

export interface CommandRow {
  readonly opcode: number;
  readonly name: string;
  readonly cdbLength: 6 | 10 | 12 | 16;
  readonly direction: "in" | "out" | "none";
  /** Reports a pending UNIT ATTENTION instead of running. */
  readonly unitAttention: boolean;
  /** Needs a ready medium (a removable unit without one answers NOT READY). */
  readonly needsMedium: boolean;
  /** Answered by the target for any address (REPORT LUNS), not by a logical unit. */
  readonly target?: true;
  readonly disk?: Handler<DiskLun>;
  readonly dvd?: Handler<DvdLun>;
  /** What a kind without a handler answers; INVALID COMMAND OPERATION CODE unless given. */
  readonly otherwise?: Sense;
}

const ROWS: readonly CommandRow[] = [
  {
    opcode: 0x00,
    name: "TEST UNIT READY",
    cdbLength: 6,
    direction: "none",
    unitAttention: true,
    needsMedium: true,
    disk: () => GOOD,
    dvd: () => GOOD,
  },
  {
    opcode: 0x03,
    name: "REQUEST SENSE",
    cdbLength: 6,
    direction: "in",
    unitAttention: false,
    needsMedium: false,
    disk: requestSense,
    dvd: requestSense,
  },
  {
    opcode: 0x08,
    name: "READ(6)",
    cdbLength: 6,
    direction: "in",
    unitAttention: true,
    needsMedium: true,
    disk: (l, c) => l.read(c),
  },
  {
    opcode: 0x0a,
    name: "WRITE(6)",
    cdbLength: 6,
    direction: "out",
    unitAttention: true,
    needsMedium: true,
    disk: (l, c) => l.write(c),
    otherwise: SENSE.writeProtected,
  },
  {
    opcode: 0x12,
    name: "INQUIRY",
    cdbLength: 6,
    direction: "in",
    unitAttention: false,
    needsMedium: false,
    disk: (l, c) => l.inquiry(c),
    dvd: (l, c) => l.inquiry(c),
  },
  {
    opcode: 0x1a,
    name: "MODE SENSE(6)",
    cdbLength: 6,
    direction: "in",
    unitAttention: true,
    needsMedium: false,
    disk: (l, c) => l.modeSense(c),
    dvd: (l, c) => l.modeSense(c),
  },
  {
    opcode: 0x1b,
    name: "START STOP UNIT",
    cdbLength: 6,
    direction: "none",
    unitAttention: true,
    needsMedium: false,
    disk: (l, c) => l.startStopUnit(c),
    dvd: (l, c) => l.startStopUnit(c),
  },
  {
    opcode: 0x1e,
    name: "PREVENT ALLOW MEDIUM REMOVAL",
    cdbLength: 6,
    direction: "none",
    unitAttention: true,
    needsMedium: false,
    disk: () => GOOD,
    dvd: (l, c) => l.preventAllowMediumRemoval(c),
  },
  {
    opcode: 0x25,
    name: "READ CAPACITY(10)",
    cdbLength: 10,
    direction: "in",
    unitAttention: true,
    needsMedium: true,
    disk: (l, c) => l.readCapacity10(c),
    dvd: (l, c) => l.readCapacity(c),
  },
  {
    opcode: 0x28,
    name: "READ(10)",
    cdbLength: 10,
    direction: "in",
    unitAttention: true,
    needsMedium: true,
    disk: (l, c) => l.read(c),
    dvd: (l, c) => l.read(c),
  },
  {
    opcode: 0x2a,
    name: "WRITE(10)",
    cdbLength: 10,
    direction: "out",
    unitAttention: true,
    needsMedium: true,
    disk: (l, c) => l.write(c),
    otherwise: SENSE.writeProtected,
  },
  {
    opcode: 0x35,
    name: "SYNCHRONIZE CACHE(10)",
    cdbLength: 10,
    direction: "none",
    unitAttention: true,
    needsMedium: true,
    disk: (l, c) => l.synchronizeCache(c),
  },
  {
    opcode: 0x41,
    name: "WRITE SAME(10)",
    cdbLength: 10,
    direction: "out",
    unitAttention: true,
    needsMedium: true,
    disk: (l, c) => l.writeSame(c),
    otherwise: SENSE.writeProtected,
  },
  {
    opcode: 0x42,
    name: "UNMAP",
    cdbLength: 10,
    direction: "out",
    unitAttention: true,
    needsMedium: true,
    disk: (l, c) => l.unmap(c),
    otherwise: SENSE.writeProtected,
  },
  {
    opcode: 0x43,
    name: "READ TOC/PMA/ATIP",
    cdbLength: 10,
    direction: "in",
    unitAttention: true,
    needsMedium: true,
    dvd: (l, c) => l.readToc(c),
  },
  {
    opcode: 0x46,
    name: "GET CONFIGURATION",
    cdbLength: 10,
    direction: "in",
    unitAttention: false,
    needsMedium: false,
    dvd: (l, c) => l.getConfiguration(c),
  },
  {
    opcode: 0x4a,
    name: "GET EVENT STATUS NOTIFICATION",
    cdbLength: 10,
    direction: "in",
    unitAttention: false,
    needsMedium: false,
    dvd: (l, c) => l.getEventStatusNotification(c),
  },
  {
    opcode: 0x51,
    name: "READ DISC INFORMATION",
    cdbLength: 10,
    direction: "in",
    unitAttention: true,
    needsMedium: true,
    dvd: (l, c) => l.readDiscInformation(c),
  },
  {
    opcode: 0x52,
    name: "READ TRACK INFORMATION",
    cdbLength: 10,
    direction: "in",
    unitAttention: true,
    needsMedium: true,
    dvd: (l, c) => l.readTrackInformation(c),
  },
  {
    opcode: 0x5a,
    name: "MODE SENSE(10)",
    cdbLength: 10,
    direction: "in",
    unitAttention: true,
    needsMedium: false,
    disk: (l, c) => l.modeSense(c),
    dvd: (l, c) => l.modeSense(c),
  },
  {
    opcode: 0x88,
    name: "READ(16)",
    cdbLength: 16,
    direction: "in",
    unitAttention: true,
    needsMedium: true,
    disk: (l, c) => l.read(c),
    dvd: (l, c) => l.read(c),
  },
  {
    opcode: 0x8a,
    name: "WRITE(16)",
    cdbLength: 16,
    direction: "out",
    unitAttention: true,
    needsMedium: true,
    disk: (l, c) => l.write(c),
    otherwise: SENSE.writeProtected,
  },
  {
    opcode: 0x91,
    name: "SYNCHRONIZE CACHE(16)",
    cdbLength: 16,
    direction: "none",
    unitAttention: true,
    needsMedium: true,
    disk: (l, c) => l.synchronizeCache(c),
  },
  {
    opcode: 0x93,
    name: "WRITE SAME(16)",
    cdbLength: 16,
    direction: "out",
    unitAttention: true,
    needsMedium: true,
    disk: (l, c) => l.writeSame(c),
    otherwise: SENSE.writeProtected,
  },
  {
    opcode: 0x9e,
    name: "SERVICE ACTION IN(16)",
    cdbLength: 16,
    direction: "in",
    unitAttention: true,
    needsMedium: true,
    disk: (l, c) => l.serviceActionIn16(c),
  },
  {
    opcode: 0xa0,
    name: "REPORT LUNS",
    cdbLength: 12,
    direction: "in",
    unitAttention: false,
    needsMedium: false,
    target: true,
  },
  {
    opcode: 0xa8,
    name: "READ(12)",
    cdbLength: 12,
    direction: "in",
    unitAttention: true,
    needsMedium: true,
    disk: (l, c) => l.read(c),
    dvd: (l, c) => l.read(c),
  },
  {
    opcode: 0xaa,
    name: "WRITE(12)",
    cdbLength: 12,
    direction: "out",
    unitAttention: true,
    needsMedium: true,
    disk: (l, c) => l.write(c),
    otherwise: SENSE.writeProtected,
  },
  {
    opcode: 0xbd,
    name: "MECHANISM STATUS",
    cdbLength: 12,
    direction: "in",
    unitAttention: true,
    needsMedium: false,
    dvd: (l, c) => l.mechanismStatus(c),
  },
];

/** The table, indexed by opcode. */
export const COMMANDS: ReadonlyMap<number, CommandRow> = new Map(ROWS.map((r) => [r.opcode, r]));

/** REPORT LUNS: the logical units at the addressed target, in ascending order. */
export function reportLuns(luns: readonly number[], cmd: ScsiCommand): Outcome {
  const c = cmd.cdb;
  if (c[2]! > 2) return check(invalidFieldInCdb(2)); // SELECT REPORT: 0, 1 and 2 describe the same list
  const allocation = be32(c, 6);
  if (allocation < 16) return check(invalidFieldInCdb(6));
  const sorted = [...luns].sort((a, b) => a - b);
  const b = new Uint8Array(8 + 8 * sorted.length);
  putBe32(b, 0, 8 * sorted.length);
  sorted.forEach((lun, i) => {
    // Peripheral device addressing: bus 0, the LUN in the second byte.
    b[8 + i * 8 + 1] = lun & 0xff;
  });
  return cmd.dataIn(b, allocation);
}
